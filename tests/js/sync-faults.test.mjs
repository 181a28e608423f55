// Network faults injected by the fault proxy on push and pull, and sqld killed and
// restarted mid-traffic: nothing lost, nothing twice.
//
// The random tests print their seed; rerun one with EDGESYNC_SEED=<seed>. (The op
// sequence is fully determined by the seed; how in-flight syncs interleave with it
// also depends on timing.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { randomBytes } from "node:crypto";
import { EdgesyncError } from "edgesync";
import { dump, env, scalar } from "../support/sync-env.mjs";
import { guardUnhandledRejections, prng, seedFor, rejectsWith, syncUntilOk, serverLogUnique } from "../support/sync-helpers.mjs";

guardUnhandledRejections();

// ---------------------------------------------------------------------------------
// fault injection

const LEDGER_SQL = "create table ledger (id text primary key, site integer not null, v integer)";
const CTR_SQL = "create table ctr (id integer primary key, n integer not null default 0, tags text not null default '[]')";

async function setupLedger(db) {
  await db.execute(LEDGER_SQL);
  await db.execute(CTR_SQL);
  db.replicate("ledger");
  db.replicate("ctr", { n: "counter", tags: "set" });
}

test("each fault kind on push and on pull: nothing lost, nothing twice", async () => {
  const e = await env({ proxies: 1 });
  const proxy = e.proxies[0];
  try {
    const a = e.replica({ syncUrl: proxy.url, timeout: 1000 });
    await setupLedger(a);
    await a.execute("insert into ctr (id) values (1)");
    await a.sync();
    let rows = 0;
    let n = 0;
    const tags = new Set();
    const cases = [];
    for (const kind of ["cut", "lose", "duplicate", "drop", "delay", "offline"]) {
      cases.push({ kind, next: [kind], what: "push" });
      cases.push({ kind, next: ["pass", kind], what: "pull" });
    }
    cases.push({ kind: "mix", next: ["lose", "cut", "duplicate", "lose", "delay", "drop", "duplicate"], what: "push, repeatedly" });
    for (const [k, c] of cases.entries()) {
      for (let j = 0; j < 3; j++) {
        await a.execute({ sql: "insert into ledger values (?, 0, ?)", args: [`${k}.${j}`, j] });
        rows++;
      }
      await a.execute({ sql: "update ctr set n = n + ?, tags = json_insert(tags, '$[#]', ?) where id = 1", args: [k + 1, `t${k}`] });
      n += k + 1;
      tags.add(`t${k}`);
      proxy.setFaults({ next: c.next, delayMs: 200 });
      const failsFirst = ["cut", "lose", "drop", "offline", "mix"].includes(c.kind);
      if (failsFirst) {
        const err = await rejectsWith(a.sync(), ["SERVER_UNREACHABLE", "TIMEOUT"]);
        assert.equal(err.retryable, true, `${c.kind} on ${c.what}: retryable`);
        const st = a.status();
        assert.equal(st.online, false);
        assert.ok(st.retryCount >= 1);
        if (c.what !== "pull") assert.ok(st.pendingChanges > 0, `${c.kind} on ${c.what}: the changes are still pending`);
      }
      await syncUntilOk(a);
      assert.equal(a.status().pendingChanges, 0, `${c.kind} on ${c.what}: nothing pending`);
      assert.equal(a.status().retryCount, 0);
      assert.equal(await scalar(e.server, "select count(*) from ledger"), rows, `${c.kind} on ${c.what}: rows`);
      assert.equal(await scalar(e.server, "select n from ctr where id = 1"), n, `${c.kind} on ${c.what}: counter`);
      assert.equal(await scalar(e.server, "select tags from ctr where id = 1"), JSON.stringify([...tags].sort()), `${c.kind}: set`);
      await serverLogUnique(e.server);
    }
    const log = proxy.stats().log;
    for (const kind of ["cut", "lose", "duplicate", "drop", "delay", "offline"]) assert.ok(log.includes(kind), `${kind} was injected`);
    // A fresh replica sees exactly the server's state.
    const b = e.replica();
    await setupLedger(b);
    await b.sync();
    assert.deepEqual(await dump(b, "ledger"), await dump(e.server, "ledger"));
    assert.deepEqual(await dump(b, "ctr"), await dump(e.server, "ctr"));
    assert.deepEqual(await dump(a, "ctr"), await dump(e.server, "ctr"));
    assert.equal((await dump(a, "ledger")).length, rows);
  } finally {
    await e.stop();
  }
});

async function faultMix(t, { custom }) {
  const seed = seedFor(t);
  const rand = prng(seed);
  const e = await env({ proxies: 3 });
  try {
    const reps = [];
    for (let i = 0; i < 3; i++) {
      // Small chunks: a sync is several batches, and a fault can hit any of them.
      const db = e.replica({ syncUrl: e.proxies[i].url, timeout: 600, pushChunk: 4, pullChunk: 6 });
      await setupLedger(db);
      // Optionally a custom column too: sales resolved by the delta rule, retried
      // through faults (the stock never nears 0, so every sale must count once).
      await db.execute("create table stock (id integer primary key, n integer not null)");
      db.replicate("stock", custom ? { n: (local, remote, base) => Math.max(0, remote + (local - (base ?? 0))) } : {});
      reps.push(db);
    }
    await reps[0].batch(["insert into ctr (id) values (1)", "insert into ctr (id) values (2)", "insert into stock values (1, 100000)"], "write");
    for (const db of reps) await db.sync();
    for (const [i, p] of e.proxies.entries()) {
      p.setFaults({ random: { cut: 0.12, lose: 0.12, duplicate: 0.12, drop: 0.03, delay: 0.1, offline: 0.08 }, seed: seed + i, delayMs: 50 });
    }
    const want = { rows: 0, n: [0, 0, 0], tags: [null, new Set(), new Set()], stock: 100000 };
    const plans = reps.map((_, i) => {
      const steps = [];
      for (let k = 0; k < 14; k++) {
        steps.push({ rows: 1 + Math.floor(rand() * 4), id: 1 + Math.floor(rand() * 2), d: Math.floor(rand() * 21) - 5, tag: `s${i}k${k % 5}` });
      }
      return steps;
    });
    const codes = [];
    await Promise.all(
      reps.map(async (db, i) => {
        for (const [k, s] of plans[i].entries()) {
          const stmts = [];
          for (let j = 0; j < s.rows; j++) stmts.push({ sql: "insert into ledger values (?, ?, ?)", args: [`${i}.${k}.${j}`, i, j] });
          stmts.push({ sql: "update ctr set n = n + ? where id = ?", args: [s.d, s.id] });
          stmts.push({
            sql: "update ctr set tags = json_insert(tags, '$[#]', ?1) where id = ?2 and not exists (select 1 from json_each(ctr.tags) where value = ?1)",
            args: [s.tag, s.id],
          });
          if (custom) stmts.push({ sql: "update stock set n = n - ? where id = 1", args: [s.rows] });
          await db.batch(stmts, "write");
          if (custom) want.stock -= s.rows;
          want.rows += s.rows;
          want.n[s.id] += s.d;
          want.tags[s.id].add(s.tag);
          try {
            await db.sync();
          } catch (err) {
            assert.ok(err instanceof EdgesyncError && err.retryable, `retryable: ${err}`);
            codes.push(err.code);
          }
        }
      }),
    );
    for (const p of e.proxies) p.setFaults("pass");
    for (let round = 0; round < 2; round++) for (const db of reps) await db.sync();
    assert.ok(codes.length > 0, "some syncs failed");
    for (const c of codes) assert.ok(["SERVER_UNREACHABLE", "TIMEOUT"].includes(c), c);
    const ref = { ledger: await dump(e.server, "ledger"), ctr: await dump(e.server, "ctr"), stock: await dump(e.server, "stock") };
    assert.deepEqual(ref.stock, [[1, want.stock]], `every sale once through the custom rule (seed ${seed})`);
    assert.equal(ref.ledger.length, want.rows, `every row once (seed ${seed})`);
    for (const [i, db] of reps.entries()) {
      assert.deepEqual(await dump(db, "ledger"), ref.ledger, `replica ${i} ledger (seed ${seed})`);
      assert.deepEqual(await dump(db, "ctr"), ref.ctr, `replica ${i} ctr (seed ${seed})`);
      assert.deepEqual(await dump(db, "stock"), ref.stock, `replica ${i} stock (seed ${seed})`);
      assert.equal(db.status().pendingChanges, 0);
    }
    for (const [id, n, tags] of ref.ctr) {
      assert.equal(n, want.n[id], `ctr ${id}: every delta once (seed ${seed})`);
      assert.deepEqual(JSON.parse(tags), [...want.tags[id]].sort(), `ctr ${id}: every add (seed ${seed})`);
    }
    await serverLogUnique(e.server);
    const stats = e.proxies.map((p) => p.stats());
    assert.ok(stats.some((s) => s.cut + s.lose + s.duplicate > 0), "faults were injected");
  } finally {
    await e.stop();
  }
}

test("3 replicas under a random mix of faults: exact totals once the network heals", (t) => faultMix(t, { custom: false }));

test(
  "3 replicas under a random mix of faults, with a custom column: every sale once",
  (t) => faultMix(t, { custom: true }),
);

test("a custom-column push whose response was lost is not applied twice", async () => {
  const e = await env({ proxies: 1 });
  try {
    const rule = (local, remote, base) => Math.max(0, remote + (local - (base ?? 0)));
    const a = e.replica({ syncUrl: e.proxies[0].url, timeout: 1000 });
    const b = e.replica();
    for (const r of [a, b]) {
      await r.execute("create table stock (sku text primary key, n integer not null)");
      r.replicate("stock", { n: rule });
    }
    await a.execute("insert into stock values ('w', 100)");
    await a.sync();
    await b.sync();
    await a.execute("update stock set n = n - 1 where sku = 'w'");
    e.proxies[0].setFaults({ next: ["lose"] });
    await rejectsWith(a.sync(), "SERVER_UNREACHABLE"); // the server committed 99
    await b.sync();
    await b.execute("update stock set n = n - 2 where sku = 'w'");
    await b.sync(); // 97, against a's (committed) version
    await a.sync(); // a retries its sale of 1: it is already in
    await b.sync();
    for (const db of [e.server, a, b]) assert.equal(await scalar(db, "select n from stock"), 97, "100 - 1 - 2");
  } finally {
    await e.stop();
  }
});

test("sqld killed and restarted mid-traffic: nothing lost, nothing twice", async () => {
  const e = await env();
  try {
    const reps = [];
    for (let i = 0; i < 3; i++) {
      const db = e.replica({ timeout: 1500 });
      await setupLedger(db);
      reps.push(db);
    }
    await reps[0].execute("insert into ctr (id) values (1)");
    for (const db of reps) await db.sync();
    let rows = 0;
    let n = 0;
    const codes = [];
    let ok = 0;
    let stop = false;
    let restarted = false;
    const writers = reps.map(async (db, i) => {
      for (let k = 0; !stop || k < 5; k++) {
        await db.batch(
          [
            { sql: "insert into ledger values (?, ?, ?)", args: [`${i}.${k}`, i, k] },
            { sql: "update ctr set n = n + ? where id = 1", args: [k + 1] },
          ],
          "write",
        );
        rows++;
        n += k + 1;
        try {
          await db.sync();
          if (restarted) ok++;
        } catch (err) {
          assert.ok(err instanceof EdgesyncError && err.retryable, `retryable: ${err}`);
          codes.push(err.code);
        }
        await sleep(5);
        if (k > 400) break;
      }
    });
    await sleep(150);
    await e.sqld.kill();
    await sleep(300);
    await e.sqld.restart();
    restarted = true;
    await sleep(150);
    stop = true;
    await Promise.all(writers);
    for (let round = 0; round < 2; round++) for (const db of reps) await db.sync();
    assert.ok(codes.includes("SERVER_UNREACHABLE"), `syncs failed while sqld was down: ${codes}`);
    assert.ok(ok > 0, "syncs succeeded after the restart");
    assert.equal(await scalar(e.server, "select count(*) from ledger"), rows, "every row once");
    assert.equal(await scalar(e.server, "select n from ctr where id = 1"), n, "every increment once");
    await serverLogUnique(e.server);
    const ref = await dump(e.server, "ledger");
    for (const db of reps) {
      assert.deepEqual(await dump(db, "ledger"), ref);
      assert.equal(await scalar(db, "select n from ctr where id = 1"), n);
      assert.equal(db.status().pendingChanges, 0);
      assert.equal(db.status().retryCount, 0);
    }
  } finally {
    await e.stop();
  }
});

// A slow link (or a server slowed by load): a full chunk or page cannot cross within the
// client's timeout, smaller ones can. A timed-out request halves the next ones
// (src/sync/net/pace.rs), so push, bootstrap and pull all get through in a few syncs —
// with fixed sizes every attempt would time out the same way, forever.
test("a slow link: pushes, bootstraps and pulls too large for the timeout converge in smaller requests", async (t) => {
  const e = await env({ proxies: 1 });
  const proxy = e.proxies[0];
  const SCHEMA = "create table doc (id integer primary key, body text not null, n integer not null default 0)";
  const ROWS = 2000;
  const open = async (opts) => {
    const db = e.replica({ timeout: 800, ...opts });
    await db.execute(SCHEMA);
    db.replicate("doc", { n: "counter" });
    return db;
  };
  // Syncs until one succeeds; returns the codes of the failures before it.
  const syncThrough = async (db) => {
    const codes = [];
    for (let i = 0; i < 30; i++) {
      try {
        await db.sync();
        return codes;
      } catch (err) {
        codes.push(err.code);
      }
    }
    assert.fail(`no sync got through in 30 tries: ${codes.join(", ")}`);
  };
  try {
    const puller = await open({ syncUrl: proxy.url });
    await puller.sync(); // bootstrapped while the table is empty: the rows come by pull
    // 200 KB/s: one full chunk (~2,000 records, ~0.6 MB) takes seconds, 100 records 0.15 s.
    // (The bodies are random: answers may travel compressed.)
    proxy.setFaults({ kind: "pass", bytesPerSec: 200_000 });

    const writer = await open({ syncUrl: proxy.url });
    await writer.batch(
      Array.from({ length: ROWS }, (_, i) => ({ sql: "insert into doc (id, body, n) values (?, ?, 1)", args: [i, randomBytes(60).toString("hex")] })),
      "write",
    );
    const pushFailures = await syncThrough(writer);
    t.diagnostic(`push: ${pushFailures.length} timeouts before it got through`);
    assert.ok(pushFailures.length > 0 && pushFailures.every((c) => c === "TIMEOUT"), `the first pushes timed out: ${pushFailures}`);
    assert.equal(writer.status().pendingChanges, 0);
    assert.equal(Number(await scalar(e.server, "select count(*) from doc")), ROWS);

    const pullFailures = await syncThrough(puller);
    t.diagnostic(`pull: ${pullFailures.length} timeouts`);
    assert.ok(pullFailures.length > 0 && pullFailures.every((c) => c === "TIMEOUT"), `the first pulls timed out: ${pullFailures}`);
    assert.equal(Number(await scalar(puller, "select count(*) from doc")), ROWS);

    const late = await open({ syncUrl: proxy.url }); // bootstraps the 2,000 rows
    const bootFailures = await syncThrough(late);
    t.diagnostic(`bootstrap: ${bootFailures.length} timeouts`);
    assert.ok(bootFailures.length > 0 && bootFailures.every((c) => c === "TIMEOUT"), `the first bootstraps timed out: ${bootFailures}`);
    assert.equal(Number(await scalar(late, "select sum(n) from doc")), ROWS);
    assert.equal(Number(await scalar(late, "select sum(length(body)) from doc")), ROWS * 120);
  } finally {
    await e.stop();
  }
});
