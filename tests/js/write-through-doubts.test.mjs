// Write-through (writeMode "remote") when an answer is lost: exact timings driven
// through the fault proxy against a real sqld. Each write W_k is one atomic batch that
// inserts k into `led` and adds inc_k to a counter, so the server's `led` says exactly
// which writes committed. Whatever the timing, at the end:
//   - every acknowledged write committed, and only attempted writes did;
//   - the counter is the base plus the increments of exactly the committed writes;
//   - the writer, another replica and the server hold the same rows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dump, env, rowsOf } from "../support/sync-env.mjs";
import { guardUnhandledRejections, syncUntilOk } from "../support/sync-helpers.mjs";
import { EdgesyncError } from "edgesync";

guardUnhandledRejections();

const SCHEMA = [
  "create table t (id integer primary key, name text, n integer not null default 0, note text not null default '')",
  "create table led (id integer primary key)",
];
const BASE = 10;
/** The push batch of a write (it stores the chunk); other requests do not. */
const isPush = (body) => body.includes("_es_chunk");

async function setup({ timeout = 800 } = {}) {
  const e = await env({ proxies: 1 });
  const proxy = e.proxies[0];
  const w = e.replica({ writeMode: "remote", syncUrl: proxy.url, timeout });
  const o = e.replica();
  for (const r of [w, o]) {
    for (const s of SCHEMA) await r.execute(s);
    r.replicate("t", { n: "counter", note: "text" });
    r.replicate("led");
  }
  await w.execute(`insert into t (id, name, n) values (1, 'a0', ${BASE})`);
  await w.sync(); // bootstrapped: a sync's first request is now the one settling doubts
  await o.sync();
  const writes = new Map(); // k -> { inc, acked }
  /** W_k: one atomic write-through batch; resolves to true when acknowledged. */
  async function write(k, inc) {
    writes.set(k, { inc, acked: false });
    try {
      await w.batch([`insert into led (id) values (${k})`, `update t set name = 'W${k}', n = n + ${inc} where id = 1`], "write");
      writes.get(k).acked = true;
      return true;
    } catch (err) {
      assert.ok(err instanceof EdgesyncError, String(err));
      // A lost or garbled answer: retryable, or a protocol error (never a SQL error).
      assert.ok(err.retryable || err.code === "HRANA_PROTO_ERROR", `a lost answer: ${err.code} ${err.message}`);
      return false;
    }
  }
  /** Heals the network, lets everything settle, then checks the three rules above. */
  async function check(t) {
    proxy.setFaults("pass");
    await proxy.release();
    for (let i = 0; i < 2; i++) {
      await syncUntilOk(w);
      await syncUntilOk(o);
    }
    const committed = new Set(rowsOf(await e.server.execute("select id from led")).map((r) => Number(r[0])));
    for (const [k, { acked }] of writes) if (acked) assert.ok(committed.has(k), `acknowledged W${k} is on the server`);
    for (const k of committed) assert.ok(writes.has(k), `W${k} was attempted`);
    const want = BASE + [...committed].reduce((s, k) => s + writes.get(k).inc, 0);
    const server = await dump(e.server, "t");
    assert.equal(server[0][2], want, `counter = base + increments of committed writes ${[...committed]}`);
    for (const table of ["t", "led"]) {
      const s = await dump(e.server, table);
      assert.deepEqual(await dump(w, table), s, `writer ${table} = server`);
      assert.deepEqual(await dump(o, table), s, `other replica ${table} = server`);
    }
    t.diagnostic(`committed ${[...committed].sort()} of ${[...writes.keys()]}; n = ${want}`);
  }
  return { e, proxy, w, o, write, check };
}

// A write-through call makes (once the replica has synced) one request for its push and,
// when the answer is lost, one more to settle the write at once. `next` below names the
// faults of those requests in that order.

test("late commit: a write held past the timeout commits after the writer's next call", async (t) => {
  const s = await setup();
  try {
    // The push is held past the timeout; settling it at once fails too.
    s.proxy.setFaults({ next: ["stall", "offline"] });
    assert.equal(await s.write(1, 5), false, "timed out");
    assert.equal(s.w.status().writesInDoubt, 1);
    await s.w.sync(); // the application's next call settles the write's fate
    assert.equal(s.w.status().writesInDoubt, 0);
    await s.proxy.release(); // only now does the held request reach sqld
    assert.equal(await s.write(2, 1), true);
    assert.equal(await s.write(3, 1), true);
    await s.check(t);
  } finally {
    await s.e.stop();
  }
});

test("late commit: a held write commits before the writer's next call", async (t) => {
  const s = await setup();
  try {
    s.proxy.setFaults({ next: ["stall", "offline"] });
    assert.equal(await s.write(1, 5), false, "timed out");
    await s.proxy.release(); // committed late, before anything else
    assert.equal(await s.write(2, 1), true);
    assert.equal(await s.write(3, 1), true);
    await s.check(t);
  } finally {
    await s.e.stop();
  }
});

test("late commit: a write held past the timeout and settled at once never commits", async (t) => {
  const s = await setup();
  try {
    s.proxy.setFaults({ next: ["stall"] });
    assert.equal(await s.write(1, 5), false, "timed out, and settled as not committed");
    assert.equal(s.w.status().writesInDoubt, 0);
    await s.proxy.release(); // the held request reaches sqld: the ledger refuses it
    assert.equal(await s.write(2, 1), true);
    await s.check(t);
    assert.equal(await s.e.server.execute("select count(*) from led where id = 1").then((r) => Number(r.rows[0][0])), 0);
  } finally {
    await s.e.stop();
  }
});

test("race with a sync: a write lost after commit while a sync's first request is held", async (t) => {
  const s = await setup();
  try {
    s.proxy.setFaults({ next: ["lose", "offline"] });
    assert.equal(await s.write(1, 5), false, "W1's answer is lost after the commit");
    // A sync starts; its first request (settling W1) is held.
    s.proxy.setFaults({ next: ["stall"] });
    const sync = s.w.sync().then(
      () => "ok",
      (e) => e.code,
    );
    await s.proxy.waitStalled(1);
    // W2 (settling W1 first) is lost after the commit too, while the sync waits.
    s.proxy.setFaults({ next: ["pass", "lose", "offline"] });
    assert.equal(await s.write(2, 7), false);
    s.proxy.setFaults("pass");
    await s.proxy.release();
    t.diagnostic(`the held sync: ${await sync}`);
    assert.equal(await s.write(3, 1), true);
    assert.equal(await s.write(4, 1), true);
    await s.check(t);
  } finally {
    await s.e.stop();
  }
});

test("race with a sync: the sync's pull runs after a write committed whose answer is still on its way", async (t) => {
  const s = await setup({ timeout: 1500 });
  try {
    // W1's push is held; a sync runs to the end meanwhile (its pull sees the log before
    // and after W1's commit); then W1's answer is lost.
    s.proxy.setFaults({ next: ["stall"], matchBody: isPush });
    const w1 = s.write(1, 5);
    await s.proxy.waitStalled(1);
    const sync = s.w.sync().then(
      () => "ok",
      (e) => e.code,
    );
    // Let W1 commit (the proxy forwards it); its client has not had the answer yet.
    await s.proxy.release();
    t.diagnostic(`W1 acknowledged: ${await w1}, the sync: ${await sync}`);
    assert.equal(await s.write(2, 1), true);
    assert.equal(await s.write(3, 1), true);
    await s.check(t);
  } finally {
    await s.e.stop();
  }
});

test("each lost-answer fault on a write-through write: the writer ends equal to the server, counters exact", async (t) => {
  for (const kind of ["lose", "cut", "duplicate", "garbage", "error", "offline", "drop", "stall"]) {
    await t.test(kind, async (t) => {
      const s = await setup();
      try {
        s.proxy.setFaults({ next: [kind], matchBody: isPush });
        await s.write(1, 5);
        // A second fault on the next request, whatever it is (settling the first write).
        s.proxy.setFaults({ next: [kind] });
        await s.write(2, 3);
        s.proxy.setFaults("pass");
        await s.proxy.release();
        assert.equal(await s.write(3, 1), true);
        assert.equal(await s.write(4, 1), true);
        await s.check(t);
      } finally {
        await s.e.stop();
      }
    });
  }
});

test("a committed write whose answer was lost and whose custom value lost its compare-and-set: the resolver still runs", async (t) => {
  const e = await env({ proxies: 1 });
  try {
    const proxy = e.proxies[0];
    const max = (local, remote) => (Number(local) >= Number(remote) ? local : remote);
    const w = e.replica({ writeMode: "remote", syncUrl: proxy.url, timeout: 800 });
    const o = e.replica();
    for (const r of [w, o]) {
      await r.execute("create table c (id integer primary key, hi integer not null default 0, note text)");
      r.replicate("c", { hi: max });
    }
    await w.execute("insert into c (id, hi) values (1, 10)");
    await o.sync();
    await o.execute("update c set hi = 50 where id = 1");
    await o.sync();
    // The writer has not seen 50: its 70 loses the compare-and-set on the server, and
    // the answer saying so is lost after the commit; settling it at once fails too.
    proxy.setFaults({ next: ["lose", "offline"] });
    await assert.rejects(w.execute("update c set hi = 70, note = 'w' where id = 1"));
    assert.equal(w.status().writesInDoubt, 1);
    await w.sync(); // settles it: committed, and the lost custom value is resolved (max)
    await w.sync();
    await o.sync();
    for (const r of [w, o, e.server]) assert.deepEqual(await dump(r, "c"), [[1, 70, "w"]]);
  } finally {
    await e.stop();
  }
});
