// status(), metrics(), metricsText(), events and the sync log.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { env, scalar } from "../support/sync-env.mjs";
import { guardUnhandledRejections, rejectsWith } from "../support/sync-helpers.mjs";

guardUnhandledRejections();

// ---------------------------------------------------------------------------------
// status, metrics, events, sync log

/** Checks Prometheus text exposition format 0.0.4; returns { name{labels}: value }. */
function parsePrometheus(text) {
  assert.ok(text.endsWith("\n"), "ends with a newline");
  const help = new Set();
  const type = new Map();
  const samples = {};
  const name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  const labels = `\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*")*)?\\}`;
  const value = "(?:NaN|[+-]Inf|[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?)";
  const sample = new RegExp(`^(${name})(${labels})? (${value})$`);
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.+)$/.exec(line);
      assert.ok(m, `comment line: ${line}`);
      if (m[1] === "HELP") help.add(m[2]);
      else {
        assert.ok(["counter", "gauge", "summary", "histogram", "untyped"].includes(m[3]), line);
        assert.ok(!type.has(m[2]), `one TYPE per metric: ${line}`);
        type.set(m[2], m[3]);
      }
      continue;
    }
    const m = sample.exec(line);
    assert.ok(m, `sample line \`name{labels} value\`: ${JSON.stringify(line)}`);
    const family = type.has(m[1]) ? m[1] : m[1].replace(/_(sum|count|bucket)$/, "");
    assert.ok(type.has(family), `TYPE before ${line}`);
    assert.ok(help.has(family), `HELP before ${line}`);
    if (type.get(family) === "counter") assert.ok(Number(m[3]) >= 0, line);
    samples[m[1] + (m[2] ?? "")] = Number(m[3]);
  }
  return samples;
}

test("status, metrics, metricsText, events and the sync log follow what happened", async () => {
  const e = await env({ proxies: 1 });
  const proxy = e.proxies[0];
  try {
    const a = e.replica({ syncUrl: proxy.url, timeout: 1000 });
    const b = e.replica();
    const resolver = (local, remote, base) => Math.max(0, remote + (local - (base ?? 0)));
    for (const r of [a, b]) {
      await r.execute("create table inv (sku text primary key, stock integer not null, label text)");
      r.replicate("inv", { stock: resolver });
    }
    const events = { completed: [], error: [], conflict: [] };
    a.on("sync:completed", (d) => events.completed.push(d));
    a.on("sync:error", (d) => events.error.push(d));
    const offConflict = a.on("conflict", (d) => events.conflict.push(d));
    const bConflicts = [];
    b.on("conflict", (d) => bConflicts.push(d));
    a.on("sync:completed", () => {
      throw new Error("a listener that throws does not break syncing");
    });

    let st = a.status();
    assert.deepEqual(
      { ...st },
      { pendingChanges: 0, lastPush: null, lastPull: null, lagMs: 0, retryCount: 0, online: st.online, cursor: 0, nextSyncInMs: 0, writesInDoubt: 0, rejectedChanges: 0, syncing: false, paused: false, gaveUp: false, nextSyncAt: null },
    );
    assert.match(a.siteId, /^[0-9a-f]{16}$/);
    assert.notEqual(a.siteId, b.siteId);

    await b.sync(); // b bootstraps now (empty), so a's rows reach it as pulled changes
    await a.batch(
      ["insert into inv values ('w', 10, 'widget')", "insert into inv values ('g', 5, 'gadget')", "insert into inv values ('h', 1, 'hook')"],
      "write",
    );
    await sleep(20);
    st = a.status();
    assert.equal(st.pendingChanges, 3, "three captured writes");
    assert.ok(st.lagMs >= 15 && st.lagMs < 5000, `lag ${st.lagMs}`);
    const r1 = await a.sync();
    // Change records: at least one per written row (a custom column adds its own).
    assert.ok(r1.changesPushed >= 3, `pushed ${r1.changesPushed}`);
    assert.equal(r1.changesApplied, 0);
    assert.equal(typeof r1.duration, "number");
    assert.equal(events.completed.length, 1);
    assert.deepEqual(events.completed[0], r1);
    st = a.status();
    assert.equal(st.pendingChanges, 0);
    assert.equal(st.lagMs, 0);
    assert.equal(st.online, true);
    assert.equal(st.lastPush.ok, true);
    assert.equal(st.lastPull.ok, true);
    assert.equal(st.lastPush.error, null);
    assert.ok(Math.abs(st.lastPush.at - Date.now()) < 5000);
    assert.ok(st.cursor >= 3, `cursor ${st.cursor}`);
    const r2 = await b.sync();
    assert.equal(r2.changesPushed, 0);
    assert.equal(r2.changesApplied, r1.changesPushed, "b applies what a pushed");
    assert.equal(b.status().cursor, st.cursor);

    // Offline: every attempt fails, the retry count grows, changes wait.
    proxy.setFaults("offline");
    await a.execute("update inv set label = 'offline edit' where sku = 'g'");
    for (let i = 1; i <= 3; i++) {
      await rejectsWith(a.sync(), "SERVER_UNREACHABLE");
      st = a.status();
      assert.equal(st.retryCount, i);
      assert.equal(st.online, false);
      assert.equal(st.pendingChanges, 1);
      assert.equal(st.lastPush.ok, false);
      assert.equal(st.lastPush.error, "SERVER_UNREACHABLE");
      assert.equal(st.lastPull.ok, false);
      const cap = 500 * 2 ** (i - 1);
      assert.ok(st.nextSyncInMs >= cap / 2 && st.nextSyncInMs <= cap, `backoff ${st.nextSyncInMs} after ${i} failures`);
    }
    assert.equal(events.error.length, 3);
    for (const d of events.error) {
      assert.equal(d.code, "SERVER_UNREACHABLE");
      assert.equal(d.retryable, true);
      assert.equal(typeof d.message, "string");
    }
    let m = a.metrics();
    assert.equal(m.syncs, 4);
    assert.equal(m.failures, 3);
    assert.equal(m.successRate, 0.25);
    let prom = parsePrometheus(a.metricsText());
    assert.equal(prom['edgesync_syncs_total{outcome="ok"}'], 1);
    assert.equal(prom['edgesync_syncs_total{outcome="error"}'], 3);
    assert.equal(prom.edgesync_sync_retries, 3);
    assert.equal(prom.edgesync_online, 0);
    assert.equal(prom.edgesync_pending_changes, 1);
    assert.ok(prom.edgesync_sync_lag_seconds > 0);

    // Back online.
    proxy.setFaults("pass");
    const r3 = await a.sync();
    assert.equal(r3.changesPushed, 1, "the label edit");
    st = a.status();
    assert.equal(st.retryCount, 0);
    assert.equal(st.online, true);
    assert.equal(st.nextSyncInMs, 0);
    assert.equal(st.pendingChanges, 0);

    // A sync in flight shows in status().syncing.
    proxy.setFaults({ kind: "delay", delayMs: 200 });
    const inflight = a.sync();
    assert.equal(a.status().syncing, true);
    await inflight;
    assert.equal(a.status().syncing, false);
    proxy.setFaults("pass");

    // Conflicts on the custom column: both sell from 10; a pushes first, b resolves.
    await a.execute("update inv set stock = stock - 7 where sku = 'w'");
    await b.execute("update inv set stock = stock - 6 where sku = 'w'");
    await a.sync();
    await b.sync();
    await a.sync();
    assert.equal(bConflicts.length, 1, "b's compare-and-set lost");
    const c = bConflicts[0];
    assert.deepEqual(
      { table: c.table, key: c.key, column: c.column, local: c.local, remote: c.remote, base: c.base, resolved: c.resolved },
      { table: "inv", key: '["w"]', column: "stock", local: 4, remote: 3, base: 10, resolved: 0 },
    );
    assert.equal(b.metrics().conflicts, 1);
    assert.equal(await scalar(a, "select stock from inv where sku = 'w'"), 0);
    assert.equal(await scalar(e.server, "select stock from inv where sku = 'w'"), 0);
    // a conflict event on a: now a loses against b.
    await b.execute("update inv set stock = stock + 20 where sku = 'g'");
    await a.execute("update inv set stock = stock - 2 where sku = 'g'");
    await b.sync();
    await a.sync();
    assert.equal(events.conflict.length, 1);
    assert.equal(events.conflict[0].resolved, 23, "max(0, 25 + (3 - 5))");
    offConflict();
    await b.execute("update inv set stock = stock + 1 where sku = 'h'");
    await a.execute("update inv set stock = stock + 1 where sku = 'h'");
    await b.sync();
    await a.sync();
    assert.equal(events.conflict.length, 1, "an unsubscribed listener gets nothing");
    assert.equal(a.metrics().conflicts, 2);

    m = a.metrics();
    assert.equal(m.syncs - m.failures, events.completed.length);
    assert.ok(m.p50 <= m.p95 && m.p95 <= m.p99, JSON.stringify(m));
    assert.ok(m.p99 >= 200, "the delayed sync is in the durations");
    assert.ok(m.httpRequests >= m.syncs);
    assert.ok(m.bytesSent > 0);
    assert.ok(m.changesPushed >= 5);
    prom = parsePrometheus(a.metricsText());
    assert.equal(prom['edgesync_syncs_total{outcome="ok"}'], m.syncs - m.failures);
    assert.equal(prom.edgesync_sync_duration_seconds_count, m.syncs - m.failures);
    assert.equal(prom['edgesync_sync_duration_seconds{quantile="0.99"}'], m.p99 / 1000);
    assert.equal(prom.edgesync_changes_pushed_total, m.changesPushed);
    assert.equal(prom.edgesync_changes_applied_total, m.changesApplied);
    assert.equal(prom.edgesync_conflicts_total, 2);
    assert.equal(prom.edgesync_sync_http_requests_total, m.httpRequests);
    assert.equal(prom.edgesync_sync_bytes_sent_total, m.bytesSent);
    assert.equal(prom.edgesync_online, 1);
    assert.equal(prom.edgesync_sync_retries, 0);

    // The sync log: newest first, mirrors the events.
    const log = await a.syncLog();
    assert.ok(log.length >= 7);
    for (let i = 1; i < log.length; i++) assert.ok(log[i - 1].id > log[i].id && log[i - 1].at >= log[i].at, "newest first");
    const names = log.map((l) => l.event).reverse();
    const firstError = names.indexOf("sync:error");
    assert.deepEqual(names.slice(firstError, firstError + 4), ["sync:error", "sync:error", "sync:error", "sync:completed"]);
    const err = log.find((l) => l.event === "sync:error");
    assert.equal(err.details.code, "SERVER_UNREACHABLE");
    const done = log.find((l) => l.event === "sync:completed");
    assert.equal(typeof done.details.changesPushed, "number");
    assert.ok(log.some((l) => l.event === "conflict"));
    assert.equal((await a.syncLog(2)).length, 2);
    assert.equal(
      (await a.execute("select count(*) from _es_sync_log")).rows[0][0],
      events.completed.length + events.error.length + 2,
      "one row per event",
    );
  } finally {
    await e.stop();
  }
});
