// Sizes past the server's limits (sqld refuses values and statements of 5,000,000 bytes
// or more, and results over 10 MB): pushes, pulls and bootstraps are sized by bytes and
// split until they fit; a single change too large for the server gets ROW_TOO_LARGE for
// that row and is set aside, and the replica goes on syncing everything else.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EdgesyncError } from "edgesync";
import { env, rowsOf, scalar } from "../support/sync-env.mjs";
import { guardUnhandledRejections } from "../support/sync-helpers.mjs";

guardUnhandledRejections();

const SCHEMA = "create table big (id integer primary key, body text, n integer not null default 0)";

async function fill(db, rows, bytes, from = 0) {
  const body = "x".repeat(bytes);
  await db.batch(
    Array.from({ length: rows }, (_, i) => ({ sql: "insert into big (id, body, n) values (?, ?, 1)", args: [from + i, body] })),
    "write",
  );
}

async function serverCount(e) {
  return Number(await scalar(e.server, "select count(*) from big"));
}

test("push of 2,000 rows × 3,000 B (6 MB) with the default pushChunk", async () => {
  const e = await env();
  try {
    const a = e.replica();
    await a.execute(SCHEMA);
    a.replicate("big", { n: "counter" });
    await fill(a, 2000, 3000);
    const r = await a.sync();
    assert.equal(r.changesPushed, 2000);
    assert.equal(a.status().pendingChanges, 0);
    assert.equal(await serverCount(e), 2000);
  } finally {
    await e.stop();
  }
});

test("pull of 5,000 rows × 2,500 B (12.5 MB) with the default pullChunk", async () => {
  const e = await env();
  try {
    const [a, b] = [e.replica({ pushChunk: 500 }), e.replica()];
    for (const r of [a, b]) {
      await r.execute(SCHEMA);
      r.replicate("big", { n: "counter" });
    }
    await b.sync(); // bootstrapped while the table is empty: the rows come by pull
    await fill(a, 5000, 2500);
    await a.sync();
    const r = await b.sync();
    assert.equal(r.changesApplied, 5000);
    assert.equal(Number(await scalar(b, "select count(*) from big")), 5000);
    assert.equal(Number(await scalar(b, "select sum(length(body)) from big")), 5000 * 2500);
  } finally {
    await e.stop();
  }
});

test("a new replica bootstraps a table of 20,000 rows × 300 B (6 MB), with the default pullChunk and with pullChunk 100", async () => {
  const e = await env();
  try {
    const a = e.replica();
    await a.execute(SCHEMA);
    a.replicate("big", { n: "counter" });
    await fill(a, 20_000, 300);
    await a.sync();
    for (const pullChunk of [undefined, 100]) {
      const b = e.replica(pullChunk ? { pullChunk } : {});
      await b.execute(SCHEMA);
      b.replicate("big", { n: "counter" });
      await b.sync();
      const bumped = pullChunk ? 1 : 0; // the first new replica's increment below
      assert.equal(Number(await scalar(b, "select count(*) from big")), 20_000);
      assert.equal(Number(await scalar(b, "select sum(n) from big")), 20_000 + bumped);
      // And it goes on syncing both ways.
      await b.execute("update big set n = n + 1 where id = 7");
      await b.sync();
      await a.sync();
      assert.equal(Number(await scalar(a, "select n from big where id = 7")), 2 + bumped);
    }
  } finally {
    await e.stop();
  }
});

// One record carries a whole change; the server's merge builds values about twice the
// size of the largest (sqld 0.24: a 2.5 MB value goes through, 2.6 MB does not).
const NEAR = 2_400_000;

test("pull and bootstrap of large records (2.4 MB each, 19 MB in all): pages cut by bytes", async () => {
  const e = await env();
  try {
    const a = e.replica();
    const b = e.replica();
    for (const r of [a, b]) {
      await r.execute(SCHEMA);
      r.replicate("big", { n: "counter" });
    }
    await b.sync();
    await fill(a, 8, NEAR); // 19 MB in all
    await a.sync();
    await b.sync(); // by pull
    const c = e.replica();
    await c.execute(SCHEMA);
    c.replicate("big", { n: "counter" });
    await c.sync(); // by bootstrap
    for (const r of [b, c]) {
      assert.deepEqual(rowsOf(await r.execute("select count(*), sum(length(body)), sum(n) from big")), [[8, 8 * NEAR, 8]]);
    }
  } finally {
    await e.stop();
  }
});

test("bootstrap of a row whose answer is escaped to 11 MB (written on the server)", async () => {
  const e = await env();
  try {
    const WIDE = "create table wide (id integer primary key, a text, b text)";
    const a = e.replica();
    await a.execute(WIDE);
    a.replicate("wide");
    await a.execute("insert into wide values (1, 'a', 'b'), (2, 'x', 'y')");
    await a.sync();
    // Straight into the server's row state (a row under the 5 MB limit): 1.8 MB of a
    // control character, which the answer's JSON escapes to six bytes each.
    const ctl = "\u0001".repeat(1_800_000);
    await e.server.execute({ sql: "update _es_row_wide set c_a = ? where pk = '[1]'", args: [ctl] });
    const c = e.replica();
    await c.execute(WIDE);
    c.replicate("wide");
    await c.sync();
    assert.deepEqual(rowsOf(await c.execute("select id, length(a), a = ?, b from wide order by id", [ctl])), [
      [1, 1_800_000, 1, "b"],
      [2, 1, 0, "y"],
    ]);
  } finally {
    await e.stop();
  }
});

test("a server with smaller limits: chunks and pages refused as too large are split until they fit", async () => {
  const e = await env({ proxies: 1 });
  try {
    const proxy = e.proxies[0];
    const a = e.replica({ syncUrl: proxy.url });
    const b = e.replica({ syncUrl: proxy.url });
    for (const r of [a, b]) {
      await r.execute(SCHEMA);
      r.replicate("big", { n: "counter" });
    }
    await fill(a, 100, 10);
    await a.sync();
    await b.sync();
    await fill(a, 300, 100, 1000);
    await fill(b, 50, 100, 5000);
    const refuse = (code, message) => ({
      errorStatus: 200,
      // As sqld answers a one-shot pipeline (the request, then its close).
      errorBody: JSON.stringify({ baton: null, base_url: null, results: [{ type: "error", error: { message, code } }, { type: "ok", response: { type: "close" } }] }),
    });
    // Pushes: refused twice as too large (as a server refuses a value), then accepted.
    proxy.setFaults({ next: ["error", "error"], matchBody: (body) => body.includes("_es_chunk"), ...refuse("SQLITE_TOOBIG", "SQLite error: string or blob too big") });
    await a.sync();
    assert.equal(proxy.stats().error, 2);
    assert.equal(a.status().pendingChanges, 0);
    // Pull pages: refused twice (RESPONSE_TOO_LARGE), then smaller pages are accepted.
    proxy.resetStats();
    proxy.setFaults({ next: ["error", "error"], matchBody: (body) => body.includes("octet_length(rec)"), ...refuse("RESPONSE_TOO_LARGE", "Response is too large") });
    await b.sync();
    assert.equal(proxy.stats().error, 2);
    // Bootstrap pages too.
    proxy.resetStats();
    proxy.setFaults({ next: ["error", "error", "error"], matchBody: (body) => body.includes("_asked"), ...refuse("RESPONSE_TOO_LARGE", "Response is too large") });
    const c = e.replica({ syncUrl: proxy.url });
    await c.execute(SCHEMA);
    c.replicate("big", { n: "counter" });
    await c.sync();
    assert.equal(proxy.stats().error, 3);
    proxy.setFaults("pass");
    await a.sync();
    for (const r of [a, b, c]) {
      assert.deepEqual(rowsOf(await r.execute("select count(*), sum(n), sum(length(body)) from big")), [[450, 450, 100 * 10 + 350 * 100]]);
    }
  } finally {
    await e.stop();
  }
});

test("one row too large for the server: ROW_TOO_LARGE for that row, everything else still syncs", async () => {
  const e = await env();
  try {
    const [a, b] = [e.replica(), e.replica()];
    for (const r of [a, b]) {
      await r.execute(SCHEMA);
      r.replicate("big", { n: "counter" });
    }
    await fill(a, 10, 1000);
    await a.execute({ sql: "insert into big (id, body) values (100, ?)", args: ["y".repeat(6_000_000)] });
    await fill(a, 10, 1000, 200);
    const events = [];
    a.on("sync:error", (d) => events.push(d));
    await assert.rejects(a.sync(), (err) => {
      assert.ok(err instanceof EdgesyncError);
      assert.equal(err.code, "ROW_TOO_LARGE", err.message);
      assert.equal(err.retryable, false);
      assert.match(err.message, /big/);
      assert.match(err.message, /100/);
      return true;
    });
    assert.ok(events.some((d) => d.code === "ROW_TOO_LARGE"));
    assert.equal(await serverCount(e), 20, "the other rows reached the server");
    assert.equal(a.status().pendingChanges, 0, "nothing is stuck in the outbox");
    assert.equal(a.status().rejectedChanges, 1);
    // Later syncs work, both ways.
    await a.execute("update big set n = n + 5 where id = 3");
    await a.sync();
    await b.sync();
    assert.equal(Number(await scalar(b, "select count(*) from big")), 20);
    assert.equal(Number(await scalar(b, "select n from big where id = 3")), 6);
    // The row stays as written here only. Written again, smaller, it goes through.
    await a.execute("delete from big where id = 100");
    await a.execute("insert into big (id, body) values (100, 'small')");
    await a.sync();
    await b.sync();
    assert.equal(await scalar(b, "select body from big where id = 100"), "small");
    assert.equal(a.status().rejectedChanges, 1, "the rejected change is kept for the application to see");
  } finally {
    await e.stop();
  }
});

test("write-through of a row too large for the server: ROW_TOO_LARGE at the call, nothing changed", async () => {
  const e = await env();
  try {
    const w = e.replica({ writeMode: "remote" });
    await w.execute(SCHEMA);
    w.replicate("big", { n: "counter" });
    await w.execute("insert into big (id, body) values (1, 'a')");
    await assert.rejects(w.execute({ sql: "update big set body = ? where id = 1", args: ["z".repeat(6_000_000)] }), (err) => {
      assert.equal(err.code, "ROW_TOO_LARGE", err.message);
      return true;
    });
    assert.equal(await scalar(w, "select body from big where id = 1"), "a");
    assert.equal(await scalar(e.server, "select body from big where id = 1"), "a");
    assert.equal(w.status().writesInDoubt, 0);
    await w.execute("update big set n = n + 1 where id = 1");
    assert.equal(Number(await scalar(e.server, "select n from big where id = 1")), 1);
  } finally {
    await e.stop();
  }
});
