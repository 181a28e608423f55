// The seed apps as integration tests: embedded replicas (createClient({ url: ":memory:",
// syncUrl })) against a real sqld on loopback, checked from the server side with
// @libsql/client.
//   - IoT sensors: devices with background sync writing readings; analytics on the server.
//   - Offline-first transactions: record offline, retries with backoff, the sync log.
//   - Inventory with a conservative custom merge rule: concurrent sales never oversell.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { dump, env, rowsOf, scalar, waitFor } from "../support/sync-env.mjs";

const unhandled = [];
process.on("unhandledRejection", (e) => unhandled.push(e));
after(() => assert.deepEqual(unhandled, [], "no unhandled promise rejections"));

// ---------------------------------------------------------------------------------
// helpers

/** A count on the server, or -1 while the table does not exist there yet. */
async function serverCount(server, table, where = "1") {
  try {
    return Number(await scalar(server, `select count(*) from ${table} where ${where}`));
  } catch (e) {
    if (/no such table/.test(String(e?.message))) return -1;
    throw e;
  }
}

// ---------------------------------------------------------------------------------
// IoT sensors

test("IoT: 4 devices with background sync; server analytics match what was written", async () => {
  const e = await env();
  try {
    const DEVICES = 4;
    const PER_DEVICE = 60;
    const schema = async (db) => {
      await db.execute("create table readings (id text primary key, device text not null, ts integer not null, temp real not null)");
      await db.execute("create table device_counts (device text primary key, n integer not null default 0)");
      db.replicate("readings");
      db.replicate("device_counts", { n: "counter" });
    };
    // Provisioning: one device creates the counter rows; everyone starts from them.
    const setup = e.replica();
    await schema(setup);
    const names = Array.from({ length: DEVICES }, (_, i) => `dev-${i}`);
    await setup.batch([...names, "all"].map((d) => ({ sql: "insert into device_counts (device) values (?)", args: [d] })), "write");
    await setup.sync();

    const devices = [];
    for (let i = 0; i < DEVICES; i++) {
      const db = e.replica({ syncInterval: (40 + 15 * i) / 1000 });
      await schema(db);
      const errors = [];
      db.on("sync:error", (d) => errors.push(d));
      devices.push({ name: names[i], db, errors });
    }
    await waitFor("every device bootstrapped", () => devices.every((d) => d.db.status().lastPull?.ok));

    // Readings: deterministic values, written concurrently by all devices.
    const written = new Map(names.map((n) => [n, []]));
    const t0 = 1_700_000_000_000;
    await Promise.all(
      devices.map(async ({ name, db }, i) => {
        for (let k = 0; k < PER_DEVICE; k++) {
          const temp = Math.round((18 + i * 2.5 + Math.sin(k / 3 + i) * 4 + (k % 7) * 0.125) * 1000) / 1000;
          written.get(name).push(temp);
          await db.batch(
            [
              { sql: "insert into readings values (?, ?, ?, ?)", args: [`${name}:${k}`, name, t0 + k * 1000, temp] },
              { sql: "update device_counts set n = n + 1 where device = ? or device = 'all'", args: [name] },
            ],
            "write",
          );
          if (k % 10 === 9) await sleep(5 + i * 3);
        }
      }),
    );
    const total = DEVICES * PER_DEVICE;
    await waitFor("every reading on the server", async () => (await serverCount(e.server, "readings")) === total, 20_000);
    await waitFor(
      "every device to have everything",
      async () => {
        for (const { db } of devices) {
          if ((await scalar(db, "select count(*) from readings")) !== total) return false;
          if ((await scalar(db, "select n from device_counts where device = 'all'")) !== total) return false;
          if (db.status().pendingChanges !== 0) return false;
        }
        return true;
      },
      20_000,
    );

    // Analytics on the server, straight SQL through @libsql/client.
    const rs = await e.server.execute(
      "select device, count(*) as n, avg(temp) as avg, max(temp) as max, min(ts) as first, max(ts) as last from readings group by device order by device",
    );
    assert.equal(rs.rows.length, DEVICES);
    for (const row of rs.rows) {
      const temps = written.get(row.device);
      assert.equal(row.n, PER_DEVICE, row.device);
      const avg = temps.reduce((s, t) => s + t, 0) / temps.length;
      assert.ok(Math.abs(row.avg - avg) < 1e-9, `${row.device} avg ${row.avg} vs ${avg}`);
      assert.equal(row.max, Math.max(...temps), `${row.device} max`);
      assert.equal(row.first, t0);
      assert.equal(row.last, t0 + (PER_DEVICE - 1) * 1000);
    }
    const counts = Object.fromEntries(rowsOf(await e.server.execute("select device, n from device_counts")));
    assert.deepEqual(counts, Object.fromEntries([...names.map((n) => [n, PER_DEVICE]), ["all", total]]));
    assert.equal(
      await scalar(e.server, "select count(*) from readings r join device_counts c on c.device = r.device"),
      total,
      "joins across replicated tables work on the server",
    );
    const [[lc, ld]] = rowsOf(await e.server.execute("select count(*), count(distinct id) from _es_log"));
    assert.equal(lc, ld, "each change once in the log");
    // Every device holds the same data as the server.
    const ref = await dump(e.server, "readings");
    for (const { name, db, errors } of devices) {
      assert.deepEqual(await dump(db, "readings"), ref, name);
      assert.deepEqual(await dump(db, "device_counts"), await dump(e.server, "device_counts"), name);
      assert.deepEqual(errors, [], `${name} had no sync errors`);
      assert.ok(db.metrics().syncs >= 2, `${name} synced in the background`);
    }
  } finally {
    await e.stop();
  }
});

// ---------------------------------------------------------------------------------
// offline-first transactions

test("offline-first transactions: record offline, back off while offline, sync once online", async () => {
  const e = await env({ proxies: 1 });
  const proxy = e.proxies[0];
  try {
    const app = e.replica({ syncUrl: proxy.url, syncInterval: 0.1, timeout: 1000 });
    await app.execute("create table transactions (id text primary key, amount integer not null, note text, status text not null default 'pending')");
    app.replicate("transactions");
    const errors = [];
    const completed = [];
    app.on("sync:error", (d) => errors.push({ ...d, at: performance.now() }));
    app.on("sync:completed", (d) => completed.push(d));
    const record = (id, amount, note) => app.execute({ sql: "insert into transactions (id, amount, note) values (?, ?, ?)", args: [id, amount, note] });

    await record("t1", 1250, "coffee beans");
    await record("t2", -400, "refund");
    await waitFor("the first transactions on the server", async () => (await serverCount(e.server, "transactions")) === 2);
    await waitFor("a completed sync", () => completed.length > 0 && app.status().pendingChanges === 0 && !app.status().syncing, 10_000, 5);

    // Offline: the app keeps working locally.
    proxy.setFaults("offline");
    const before = errors.length;
    for (let i = 3; i <= 7; i++) await record(`t${i}`, i * 100, `offline purchase ${i}`);
    await app.execute("update transactions set status = 'cleared' where id = 't1'");
    assert.equal(await scalar(app, "select count(*) from transactions"), 7, "reads see offline writes at once");
    assert.equal(await scalar(app, "select sum(amount) from transactions"), 1250 - 400 + 2500);
    await waitFor("three failed background syncs", () => app.status().retryCount >= 3, 5000, 10);
    const st = app.status();
    assert.equal(st.online, false);
    assert.equal(st.pendingChanges, 6);
    assert.ok(st.lagMs > 0);
    assert.ok(st.nextSyncInMs > 0, "a retry is scheduled");
    assert.equal(st.lastPush.ok, false);
    assert.equal(st.lastPush.error, "SERVER_UNREACHABLE");
    // Exponential backoff with jitter: after the k-th failure the next attempt comes
    // within [0.5, 1] × 500 ms × 2^(k-1) (plus scheduling slack).
    const offline = errors.slice(before);
    assert.ok(offline.length >= 3);
    for (const d of offline) assert.deepEqual([d.code, d.retryable], ["SERVER_UNREACHABLE", true]);
    for (let k = 1; k < offline.length && k <= 3; k++) {
      const gap = offline[k].at - offline[k - 1].at;
      const cap = 500 * 2 ** (k - 1);
      assert.ok(gap >= cap / 2 - 30 && gap <= cap + 400, `gap after failure ${k}: ${gap.toFixed(0)} ms, want ~[${cap / 2}, ${cap}]`);
    }
    assert.equal(await scalar(e.server, "select count(*) from transactions"), 2, "nothing reached the server");

    // Online again: the next scheduled retry pushes everything.
    proxy.setFaults("pass");
    await waitFor("the offline transactions on the server", async () => (await serverCount(e.server, "transactions")) === 7, 10_000);
    await waitFor("a clean status", () => {
      const s = app.status();
      return s.retryCount === 0 && s.online && s.pendingChanges === 0;
    });
    assert.deepEqual(await dump(e.server, "transactions"), await dump(app, "transactions"));
    assert.equal(await scalar(e.server, "select status from transactions where id = 't1'"), "cleared");

    // The sync log: newest first; oldest-first it reads completed…, errors…, completed.
    const log = await app.syncLog(1000);
    const events = log.map((l) => l.event).reverse();
    const firstErr = events.indexOf("sync:error");
    assert.ok(firstErr > 0 && events[0] === "sync:completed", JSON.stringify(log));
    const afterErr = events.slice(firstErr);
    const firstOk = afterErr.indexOf("sync:completed");
    assert.ok(firstOk >= 3, `at least 3 errors before the recovery: ${afterErr.join(",")}`);
    assert.ok(afterErr.slice(0, firstOk).every((x) => x === "sync:error"));
    const lastError = log.find((x) => x.event === "sync:error").id;
    const recovery = log.find((l) => l.event === "sync:completed" && l.id > lastError && l.details.changesPushed > 0);
    assert.ok(recovery, "the recovering sync pushed the offline changes");
    // The same log as a table.
    const table = rowsOf(await app.execute("select event, details from _es_sync_log where event = 'sync:error' order by id"));
    assert.ok(table.length >= 3);
    assert.equal(JSON.parse(table[0][1]).code, "SERVER_UNREACHABLE");

    // A second device (the back office) sees the same books.
    const office = e.replica();
    await office.execute("create table transactions (id text primary key, amount integer not null, note text, status text not null default 'pending')");
    office.replicate("transactions");
    await office.sync();
    assert.deepEqual(await dump(office, "transactions"), await dump(app, "transactions"));
    await office.execute("update transactions set status = 'cleared' where status = 'pending'");
    await office.sync();
    await waitFor("the app to see the cleared status", async () => (await scalar(app, "select count(*) from transactions where status = 'cleared'")) === 7);
  } finally {
    await e.stop();
  }
});

// ---------------------------------------------------------------------------------
// inventory

test("inventory: a conservative custom rule never oversells, and every copy agrees", async () => {
  const e = await env();
  try {
    const conservative = (local, remote, base) => Math.max(0, remote + (local - (base ?? 0)));
    const warehouses = [];
    for (const name of ["north", "south"]) {
      const db = e.replica();
      await db.execute("create table inventory (sku text primary key, name text not null, stock integer not null)");
      const calls = [];
      db.replicate("inventory", {
        stock: (local, remote, base) => {
          calls.push([local, remote, base]);
          return conservative(local, remote, base);
        },
      });
      const conflicts = [];
      db.on("conflict", (c) => conflicts.push(c));
      warehouses.push({ name, db, calls, conflicts });
    }
    const [north, south] = warehouses;
    await north.db.batch(["insert into inventory values ('widget', 'Widget', 10)", "insert into inventory values ('gadget', 'Gadget', 20)"], "write");
    await north.db.sync();
    await south.db.sync();
    assert.deepEqual(await dump(south.db, "inventory"), await dump(north.db, "inventory"));

    const stockEverywhere = async (sku) => {
      const vals = [];
      for (const db of [north.db, south.db, e.server]) vals.push(await scalar(db, "select stock from inventory where sku = ?", [sku]));
      return vals;
    };
    const round = async () => {
      await north.db.sync();
      await south.db.sync();
      await north.db.sync();
    };

    // Both sell more widgets than there are, concurrently: 7 + 6 > 10.
    await north.db.execute("update inventory set stock = stock - 7 where sku = 'widget'");
    await south.db.execute("update inventory set stock = stock - 6 where sku = 'widget'");
    // Gadgets: concurrent sales that fit, 5 + 4 ≤ 20.
    await north.db.execute("update inventory set stock = stock - 5 where sku = 'gadget'");
    await south.db.execute("update inventory set stock = stock - 4 where sku = 'gadget'");
    await round();
    // north pushed first (its compare-and-set won); south's lost and was resolved:
    // widget max(0, 3 + (4 - 10)) = 0, gadget max(0, 15 + (16 - 20)) = 11.
    assert.deepEqual(await stockEverywhere("widget"), [0, 0, 0]);
    assert.deepEqual(await stockEverywhere("gadget"), [11, 11, 11]);
    assert.equal(north.conflicts.length, 0);
    const bySku = Object.fromEntries(south.conflicts.map((c) => [JSON.parse(c.key)[0], c]));
    assert.equal(south.conflicts.length, 2);
    assert.deepEqual(
      (({ table, column, local, remote, base, resolved }) => ({ table, column, local, remote, base, resolved }))(bySku.widget),
      { table: "inventory", column: "stock", local: 4, remote: 3, base: 10, resolved: 0 },
    );
    assert.deepEqual([bySku.gadget.local, bySku.gadget.remote, bySku.gadget.base, bySku.gadget.resolved], [16, 15, 20, 11]);
    assert.equal(south.db.metrics().conflicts, 2);

    // Concurrent restocks of the empty widget bin: both count (0 + 5 + 3).
    await north.db.execute("update inventory set stock = stock + 5 where sku = 'widget'");
    await south.db.execute("update inventory set stock = stock + 3 where sku = 'widget'");
    await round();
    assert.deepEqual(await stockEverywhere("widget"), [8, 8, 8]);
    assert.equal(south.conflicts.length, 3);
    assert.deepEqual([south.conflicts[2].local, south.conflicts[2].remote, south.conflicts[2].base, south.conflicts[2].resolved], [3, 5, 0, 8]);

    // South pushes first this time; north's sale of all 8 meets south's sale of 2.
    await south.db.execute("update inventory set stock = stock - 2 where sku = 'widget'");
    await north.db.execute("update inventory set stock = stock - 8 where sku = 'widget'");
    await south.db.sync();
    await north.db.sync();
    await south.db.sync();
    assert.deepEqual(await stockEverywhere("widget"), [0, 0, 0], "max(0, 6 + (0 - 8))");
    assert.equal(north.conflicts.length, 1);
    assert.deepEqual([north.conflicts[0].local, north.conflicts[0].remote, north.conflicts[0].base, north.conflicts[0].resolved], [0, 6, 8, 0]);

    for (const sku of ["widget", "gadget"]) for (const v of await stockEverywhere(sku)) assert.ok(v >= 0, `${sku} stock ${v} ≥ 0`);
    assert.deepEqual(await dump(north.db, "inventory"), await dump(e.server, "inventory"));
    assert.deepEqual(await dump(south.db, "inventory"), await dump(e.server, "inventory"));
    // The resolver saw exactly the conflicts.
    assert.equal(north.calls.length + south.calls.length, north.conflicts.length + south.conflicts.length);
    // Conflicts are in the sync log too.
    assert.equal((await south.db.syncLog()).filter((l) => l.event === "conflict").length, south.conflicts.length);
  } finally {
    await e.stop();
  }
});
