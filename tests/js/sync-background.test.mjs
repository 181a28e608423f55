// Background sync (syncInterval): changes flow without sync() calls, and never block
// local reads and writes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { dump, env, scalar, waitFor } from "../support/sync-env.mjs";
import { guardUnhandledRejections, rejectsWith } from "../support/sync-helpers.mjs";

guardUnhandledRejections();

// ---------------------------------------------------------------------------------
// background sync

test("syncInterval: changes reach another replica without sync() calls", async () => {
  const e = await env();
  try {
    const a = e.replica({ syncInterval: 0.05 });
    const b = e.replica({ syncInterval: 0.05 });
    for (const r of [a, b]) {
      await r.execute("create table notes (id integer primary key, body text, likes integer not null default 0)");
      r.replicate("notes", { likes: "counter" });
    }
    const completed = [];
    b.on("sync:completed", (d) => completed.push(d));
    await a.execute("insert into notes (id, body) values (1, 'from a')");
    await waitFor("b to see a's row", async () => (await dump(b, "notes")).length === 1);
    await b.execute("update notes set likes = likes + 2 where id = 1");
    await a.execute("update notes set likes = likes + 3 where id = 1");
    await waitFor("both to see 5 likes", async () => (await scalar(a, "select likes from notes")) === 5 && (await scalar(b, "select likes from notes")) === 5);
    await waitFor("the server to see 5 likes", async () => (await scalar(e.server, "select likes from notes")) === 5);
    assert.ok(completed.length >= 2, "background syncs emit sync:completed");
    // close() stops the background sync.
    b.close();
    const n = completed.length;
    await a.execute("insert into notes (id, body) values (2, 'after close')");
    await sleep(300);
    assert.equal(completed.length, n);
    await rejectsWith(b.execute("select 1"), "CLIENT_CLOSED");
    await rejectsWith(b.sync(), "CLIENT_CLOSED");
  } finally {
    await e.stop();
  }
});

test("a background sync never blocks local reads and writes", async () => {
  const e = await env({ proxies: 1 });
  try {
    const DELAY = 1500;
    const a = e.replica({ syncUrl: e.proxies[0].url, syncInterval: 0.03 });
    await a.execute("create table ev (id integer primary key, at integer, body text)");
    a.replicate("ev");
    await waitFor("a first background sync", () => a.status().lastPull?.ok === true);
    e.proxies[0].setFaults({ kind: "delay", delayMs: DELAY });
    await a.execute("insert into ev values (0, 0, 'start')");
    // A background sync's request has reached the proxy and is being held there.
    await waitFor("a delayed sync request", () => e.proxies[0].stats().delay > 0, 3000, 5);
    assert.equal(a.status().syncing, true);
    const t0 = performance.now();
    for (let i = 1; i <= 200; i++) {
      await a.execute({ sql: "insert into ev values (?, ?, ?)", args: [i, Date.now(), `event ${i}`] });
      if (i % 20 === 0) {
        assert.equal(await scalar(a, "select count(*) from ev"), i + 1);
        await new Promise((r) => setImmediate(r)); // let the event loop (and the sync) run
      }
    }
    await a.batch(["update ev set body = body || '!' where id % 2 = 0", "delete from ev where id > 190"], "write");
    const elapsed = performance.now() - t0;
    assert.ok(a.status().syncing, "the sync is still waiting on the network");
    assert.equal(e.proxies[0].stats().delay, 1, "still the one held request");
    assert.ok(elapsed < DELAY / 3, `200 local writes took ${elapsed.toFixed(0)} ms while a sync waited ${DELAY} ms`);
    e.proxies[0].setFaults("pass");
    await waitFor("everything on the server", async () => (await scalar(e.server, "select count(*) from ev")) === 191, 15_000);
    assert.deepEqual(await dump(e.server, "ev"), await dump(a, "ev"));
  } finally {
    await e.stop();
  }
});

test("a replica whose database keeps erroring retries with the back-off, not every millisecond", async () => {
  // A loopback port with nothing listening: every sync fails at once.
  const { createServer } = await import("node:net");
  const srv = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => srv.once("listening", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  const { createClient } = await import("edgesync");
  const db = createClient({ url: ":memory:", syncUrl: `http://127.0.0.1:${port}`, syncInterval: 60 });
  try {
    await db.execute("create table t (id integer primary key)");
    db.replicate("t");
    // Without its internal table status() fails: the retry delay must not depend on it
    // (it once fell back to 0, a 1 ms timer).
    await db.execute("drop table _es_rejected");
    await rejectsWith(Promise.resolve().then(() => db.status()), "SQLITE_ERROR");
    let errors = 0;
    db.on("sync:error", () => errors++);
    await sleep(400);
    assert.ok(errors <= 2, `${errors} failed syncs in 400 ms (the first back-off step is 250–500 ms)`);
  } finally {
    await db.close();
  }
});
