// The client features the dashboard and the seed apps need, in Node against a real sqld
// (through a fault proxy where the network must fail): pause()/resume() (the
// online/offline switch), maxRetries and the "gave up" state, a sync when the replica
// opens, the exact back-off countdown, and pendingKeys() (per-row sync state); and
// close() in each of those states (paused with a sync in flight, a retry scheduled,
// given up): nothing thrown outside a promise, no call into the freed object.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "edgesync";
import { dump, env, scalar, waitFor } from "../support/sync-env.mjs";
import { guardUnhandledRejections, rejectsWith, throwsCode } from "../support/sync-helpers.mjs";

guardUnhandledRejections();
// A call into a freed wasm object from a timer would throw outside any promise.
const uncaught = [];
process.on("uncaughtException", (e) => uncaught.push(e));
after(() => assert.deepEqual(uncaught.map(String), [], "nothing thrown outside a promise"));

async function notes(db) {
  await db.execute("create table if not exists notes (id text primary key, body text, likes integer not null default 0)");
  db.replicate("notes", { likes: "counter" });
}

/** Records the named events of a replica, in order. */
function record(db, names) {
  const seen = [];
  for (const n of names) db.on(n, (d) => seen.push([n, d]));
  return seen;
}

test("config: maxRetries and syncOnOpen are checked at createClient", () => {
  for (const maxRetries of [-1, 1.5, "3", NaN]) {
    throwsCode(() => createClient({ url: ":memory:", maxRetries }), "INVALID_ARGUMENT");
  }
  for (const syncOnOpen of ["yes", 1, null]) {
    throwsCode(() => createClient({ url: ":memory:", syncOnOpen }), "INVALID_ARGUMENT");
  }
  throwsCode(() => createClient({ url: ":memory:", paused: "no" }), "INVALID_ARGUMENT");
  const db = createClient({ url: ":memory:", maxRetries: 0, syncOnOpen: false });
  assert.deepEqual(
    (({ paused, gaveUp, nextSyncAt }) => ({ paused, gaveUp, nextSyncAt }))(db.status()),
    { paused: false, gaveUp: false, nextSyncAt: null },
  );
  db.close();
});

test("syncOnOpen: one sync when the replica opens, without a syncInterval", async () => {
  const e = await env();
  try {
    const seed = e.replica();
    await notes(seed);
    await seed.execute("insert into notes (id, body) values ('n1', 'on the server')");
    await seed.sync();

    // Without syncOnOpen (and no interval) nothing syncs by itself…
    const idle = e.replica();
    await notes(idle);
    await sleep(400);
    assert.equal(idle.status().lastPull, null);
    assert.equal(idle.metrics().syncs, 0);

    // …with it, the replica pulls as soon as it is open, once.
    const db = e.replica({ syncOnOpen: true });
    const events = record(db, ["sync:completed"]);
    await notes(db); // the tables are declared in the same tick: the open sync sees them
    await waitFor("the open sync", () => db.status().lastPull?.ok);
    assert.equal(await scalar(db, "select body from notes where id = 'n1'"), "on the server");
    await sleep(400);
    assert.equal(events.length, 1, "one sync, no background loop");
    assert.equal(db.status().nextSyncAt, null);

    // With a syncInterval it is on by default; syncOnOpen: false waits for the first interval.
    const late = e.replica({ syncInterval: 0.7, syncOnOpen: false });
    await notes(late);
    const due = late.status().nextSyncAt;
    assert.ok(due !== null && due > Date.now() + 300, `first sync due after the interval (${due - Date.now()} ms)`);
    await sleep(250);
    assert.equal(late.metrics().syncs, 0);
    await waitFor("the first interval sync", () => late.status().lastPull?.ok, 5000);
  } finally {
    await e.stop();
  }
});

test("maxRetries: failed background syncs are retried with back-off, then the replica gives up; a working sync resumes it", async () => {
  const e = await env({ proxies: 1 });
  try {
    const proxy = e.proxies[0];
    proxy.setFaults("offline");
    const db = e.replica({ syncUrl: proxy.url, syncOnOpen: true, maxRetries: 2, syncInterval: 60 });
    const events = record(db, ["sync:error", "sync:gaveup", "sync:resumed", "sync:completed"]);
    const failedAt = [];
    db.on("sync:error", () => failedAt.push(Date.now()));
    await notes(db);
    await db.execute("insert into notes (id, body) values ('a', 'written offline')");

    // The countdown is the real timer's: it shrinks as time passes.
    await waitFor("the first failure", () => db.status().retryCount === 1);
    const s1 = db.status();
    assert.ok(s1.nextSyncAt !== null && s1.nextSyncInMs > 0, JSON.stringify(s1));
    assert.ok(Math.abs(s1.nextSyncInMs - (s1.nextSyncAt - Date.now())) <= 20, "nextSyncInMs is the time left to nextSyncAt");
    // …and the retry runs when nextSyncAt said (an offline attempt fails within a few ms).
    await waitFor("the second failure", () => failedAt.length === 2);
    assert.ok(failedAt[1] >= s1.nextSyncAt - 2, `the retry came ${s1.nextSyncAt - failedAt[1]} ms before nextSyncAt`);
    // Late only by the machine's load: this bound catches "never retried", not speed.
    assert.ok(failedAt[1] - s1.nextSyncAt < 5_000, `the retry came ${failedAt[1] - s1.nextSyncAt} ms after nextSyncAt`);

    // The open attempt + 2 retries fail: then the replica gives up, once.
    await waitFor("giving up", () => db.status().gaveUp, 10_000);
    const s = db.status();
    assert.equal(s.retryCount, 3);
    assert.equal(s.nextSyncAt, null);
    assert.equal(s.nextSyncInMs, 0);
    assert.equal(s.pendingChanges, 1, "the write is kept");
    const gaveUp = events.filter(([n]) => n === "sync:gaveup");
    assert.equal(gaveUp.length, 1);
    assert.equal(gaveUp[0][1].retryCount, 3);
    assert.equal(gaveUp[0][1].code, "SERVER_UNREACHABLE");
    assert.equal(events.filter(([n]) => n === "sync:error").length, 3);
    // Given up means given up: no more attempts.
    const attempts = proxy.stats().total;
    await sleep(1200);
    assert.equal(proxy.stats().total, attempts, "no request after giving up");
    assert.equal(db.metrics().syncs, 3);

    // A manual sync that works again ends the state and restarts the background loop.
    proxy.setFaults("pass");
    await db.sync();
    const after = db.status();
    assert.equal(after.gaveUp, false);
    assert.equal(after.retryCount, 0);
    assert.ok(after.nextSyncAt !== null, "background sync scheduled again");
    assert.equal(events.filter(([n]) => n === "sync:resumed").length, 1);
    assert.equal(await scalar(e.server, "select body from notes where id = 'a'"), "written offline");
  } finally {
    await e.stop();
  }
});

test("maxRetries: 0 gives up at the first failure; resume() tries again", async () => {
  const e = await env({ proxies: 1 });
  try {
    const proxy = e.proxies[0];
    proxy.setFaults("offline");
    const db = e.replica({ syncUrl: proxy.url, syncInterval: 0.04, maxRetries: 0 });
    const events = record(db, ["sync:gaveup", "sync:resumed", "sync:completed"]);
    await notes(db);
    await waitFor("giving up", () => db.status().gaveUp);
    assert.equal(db.status().retryCount, 1);
    proxy.setFaults("pass");
    await db.resume();
    // The event comes once the sync's result is in (status() may show the pull a moment before).
    await waitFor("a background sync after resume()", () => events.some(([n]) => n === "sync:completed"));
    assert.equal(db.status().lastPull?.ok, true);
    assert.equal(db.status().gaveUp, false);
    assert.deepEqual(events.map(([n]) => n).slice(0, 3), ["sync:gaveup", "sync:resumed", "sync:completed"]);
  } finally {
    await e.stop();
  }
});

test("pause(): no sync at all (background, manual or by interval) until resume(); local writes go on", async () => {
  const e = await env();
  try {
    const a = e.replica({ syncInterval: 0.03 });
    const b = e.replica({ syncInterval: 0.03 });
    await notes(a);
    await notes(b);
    await waitFor("both synced", () => a.status().lastPull?.ok && b.status().lastPull?.ok);
    const events = record(b, ["sync:paused", "sync:resumed"]);

    // pause() waits for a sync in flight, then nothing syncs. (The sync starts at once
    // only when no background sync runs: one queued behind it would be refused by the
    // pause, below. Between waitFor's check and b.sync() no timer can fire.)
    await waitFor("no background sync in flight", () => !b.status().syncing, 10_000, 1);
    const inflight = b.sync();
    await b.pause();
    assert.equal(b.status().syncing, false, "pause() resolved after the sync in flight");
    await inflight;
    const st = b.status();
    assert.equal(st.paused, true);
    assert.equal(st.nextSyncAt, null);
    const syncs = b.metrics().syncs;
    await rejectsWith(b.sync(), "INVALID_OPERATION");
    await b.execute("insert into notes (id, body) values ('b1', 'while paused')");
    await b.execute("update notes set likes = likes + 1 where id = 'b1'");
    await a.execute("insert into notes (id, body) values ('a1', 'from a')");
    await sleep(300);
    assert.equal(b.metrics().syncs, syncs, "no sync while paused");
    assert.equal(await scalar(b, "select count(*) from notes where id = 'a1'"), 0, "nothing pulled");
    assert.equal(b.status().pendingChanges, 2);
    await b.pause(); // twice is fine
    assert.deepEqual(events.map(([n]) => n), ["sync:paused"]);
    // A sync() called before pause() but still queued behind one in flight is refused.
    await b.resume();
    await waitFor("a background sync in flight", () => b.status().syncing, 10_000, 1);
    const queued = b.sync();
    await b.pause();
    await rejectsWith(queued, "INVALID_OPERATION");

    await b.resume();
    await waitFor("b to catch up", async () => (await scalar(b, "select count(*) from notes")) === 2 && b.status().pendingChanges === 0);
    await waitFor("a to see b's row", async () => (await scalar(a, "select coalesce((select likes from notes where id = 'b1'), -1)")) === 1);
    assert.deepEqual(events.map(([n]) => n), ["sync:paused", "sync:resumed", "sync:paused", "sync:resumed"]);
    assert.equal(b.status().paused, false);

    // Opened paused (an offline switch kept across restarts): not even the open sync runs.
    const c = e.replica({ syncInterval: 0.03, paused: true });
    await notes(c);
    await sleep(200);
    assert.equal(c.metrics().syncs, 0);
    assert.equal(c.status().paused, true);
    await c.resume();
    await waitFor("c's first sync", async () => (await scalar(c, "select count(*) from notes")) === 2);

    b.close();
    await rejectsWith(b.pause(), "CLIENT_CLOSED");
    await rejectsWith(b.resume(), "CLIENT_CLOSED");
  } finally {
    await e.stop();
  }
});

test("pendingKeys(): the rows with changes not yet on the server, per table", async () => {
  const e = await env({ proxies: 1 });
  try {
    const proxy = e.proxies[0];
    const db = e.replica({ syncUrl: proxy.url });
    await db.execute("create table tx (id text primary key, amount integer not null)");
    await db.execute("create table acct (id integer primary key, balance integer not null default 0)");
    db.replicate("tx");
    db.replicate("acct", { balance: "counter" });
    assert.deepEqual(await db.pendingKeys("tx"), []);
    await db.batch(["insert into tx values ('t2', 5)", "insert into tx values ('t1', 7)", "insert into acct (id) values (1)"], "write");
    assert.deepEqual(await db.pendingKeys("tx"), ['["t1"]', '["t2"]']);
    assert.deepEqual(await db.pendingKeys("acct"), ["[1]"]);

    // Offline: they stay pending (the failed sync folds them into the outbox).
    proxy.setFaults("offline");
    await rejectsWith(db.sync(), "SERVER_UNREACHABLE");
    await db.execute("update tx set amount = 8 where id = 't1'");
    assert.deepEqual(await db.pendingKeys("tx"), ['["t1"]', '["t2"]']);

    proxy.setFaults("pass");
    await db.sync();
    assert.deepEqual(await db.pendingKeys("tx"), []);
    assert.deepEqual(await db.pendingKeys("acct"), []);
    await db.execute("delete from tx where id = 't2'");
    assert.deepEqual(await db.pendingKeys("tx"), ['["t2"]'], "a delete is pending too");
    assert.deepEqual(await db.pendingKeys("no_such_table"), []);
    await rejectsWith(db.pendingKeys(42), "INVALID_ARGUMENT");
    db.close();
    await rejectsWith(db.pendingKeys("tx"), "CLIENT_CLOSED");
  } finally {
    await e.stop();
  }
});

test("close() while paused with a sync in flight: pause() resolves, the sync rejects CLIENT_CLOSED, the file is released", async () => {
  const e = await env({ proxies: 1 });
  const dir = mkdtempSync(join(tmpdir(), "edgesync-paused-"));
  try {
    const proxy = e.proxies[0];
    const file = join(dir, "p.db");
    const db = createClient({ url: `file:${file}`, syncUrl: proxy.url, authToken: e.sqld.tokens.rw, syncInterval: 60, syncOnOpen: false, timeout: 30_000 });
    await notes(db);
    await db.execute("insert into notes (id, body) values ('p', 'kept')");
    proxy.setFaults({ next: ["stall"] });
    const syncing = db.sync();
    await proxy.waitStalled(1);
    const pausing = db.pause();
    assert.equal(db.status().paused, true);
    assert.equal(db.status().nextSyncAt, null, "the interval timer is stopped");
    const t0 = Date.now();
    await db.close();
    await pausing; // resolves: the sync it waited for ended (cancelled)
    await rejectsWith(syncing, "CLIENT_CLOSED");
    assert.ok(Date.now() - t0 < 2000, `cancelled at once (${Date.now() - t0} ms)`);
    await rejectsWith(db.pause(), "CLIENT_CLOSED");
    await rejectsWith(db.resume(), "CLIENT_CLOSED");
    await rejectsWith(db.sync(), "CLIENT_CLOSED");
    throwsCode(() => db.status(), "CLIENT_CLOSED");
    // Released: the file opens again (paused, as an app's offline switch would), the write still queued.
    const again = createClient({ url: `file:${file}`, syncUrl: e.sqld.url, authToken: e.sqld.tokens.rw, paused: true });
    await proxy.release();
    assert.deepEqual(await dump(again, "notes"), [["p", "kept", 0]]);
    assert.equal(again.status().pendingChanges, 1);
    await again.close();
  } finally {
    await e.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("close() with a back-off retry scheduled, after giving up, or from a sync:error / sync:gaveup listener: no timer left, no request after", async () => {
  const e = await env({ proxies: 1 });
  try {
    const proxy = e.proxies[0];
    proxy.setFaults("offline");
    const open = (opts) => e.replica({ syncUrl: proxy.url, syncOnOpen: true, ...opts });

    // A retry is due (nextSyncAt set): close() clears its timer.
    const retrying = open({ maxRetries: 5 });
    await notes(retrying);
    await waitFor("the first failure", () => retrying.status().retryCount === 1);
    const due = retrying.status().nextSyncAt;
    assert.ok(due !== null && due > Date.now(), "a retry is scheduled");
    // Given up: nothing scheduled; close() is plain.
    const gaveUp = open({ maxRetries: 0 });
    await notes(gaveUp);
    await waitFor("giving up", () => gaveUp.status().gaveUp);
    // Closed by its own listeners, in the middle of the retry loop.
    const fromError = open({ maxRetries: 5 });
    fromError.on("sync:error", () => void fromError.close());
    await notes(fromError);
    const fromGaveUp = open({ maxRetries: 0 });
    const gaveUpEvents = [];
    fromGaveUp.on("sync:gaveup", (d) => {
      gaveUpEvents.push(d);
      void fromGaveUp.close();
    });
    await notes(fromGaveUp);
    await waitFor("both listeners closed their replica", () => fromError.closed && fromGaveUp.closed);
    assert.equal(gaveUpEvents.length, 1);

    await Promise.all([retrying.close(), gaveUp.close()]);
    await rejectsWith(gaveUp.resume(), "CLIENT_CLOSED");
    proxy.setFaults("pass");
    const requests = proxy.stats().total;
    // Past the scheduled retry, with room for the longest first back-off (≤ 500 ms).
    await sleep(Math.max(0, due - Date.now()) + 700);
    assert.equal(proxy.stats().total, requests, "no sync after close()");
  } finally {
    await e.stop();
  }
});
