// writeMode "remote" (write-through): the server first, then the local database.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dump, env, scalar } from "../support/sync-env.mjs";
import { guardUnhandledRejections, rejectsWith } from "../support/sync-helpers.mjs";

guardUnhandledRejections();

// ---------------------------------------------------------------------------------
// write-through

test('writeMode "remote": writes are on the server before execute resolves; server down → SERVER_UNREACHABLE, local unchanged', async () => {
  const e = await env();
  try {
    const w = e.replica({ writeMode: "remote", timeout: 1000 });
    await w.execute("create table acct (id integer primary key, owner text, bal integer not null default 0, tags text)");
    w.replicate("acct", { bal: "counter", tags: "set" });
    const rs = await w.execute("insert into acct (id, owner, bal, tags) values (1, 'ann', 100, '[\"vip\"]')");
    assert.equal(rs.rowsAffected, 1);
    // Read on the server right after execute resolved.
    assert.deepEqual(await dump(e.server, "acct"), [[1, "ann", 100, '["vip"]']]);
    assert.deepEqual(await dump(w, "acct"), [[1, "ann", 100, '["vip"]']], "then applied locally");
    await w.execute("update acct set bal = bal - 30 where id = 1");
    assert.equal(await scalar(e.server, "select bal from acct"), 70);
    const [ins, upd] = await w.batch(
      ["insert into acct (id, owner) values (2, 'bob')", "update acct set bal = bal + 5, owner = 'ann b' where id = 1"],
      "write",
    );
    assert.equal(ins.rowsAffected, 1);
    assert.equal(upd.rowsAffected, 1);
    // (A set column left NULL replicates as NULL: issue 13, §3.)
    assert.deepEqual(await dump(e.server, "acct"), [[1, "ann b", 75, '["vip"]'], [2, "bob", 0, null]]);
    assert.deepEqual(await dump(w, "acct"), await dump(e.server, "acct"));
    assert.equal(w.status().pendingChanges, 0, "nothing left to push");

    // Reads stay local: they make no request.
    const before = w.metrics().httpRequests;
    assert.equal(await scalar(w, "select count(*) from acct"), 2);
    await w.batch(["select * from acct", "select 1"], "read");
    await w.batch(["select count(*) from acct"]);
    assert.equal(w.metrics().httpRequests, before, "reads make no request");

    // SQL errors come back with their codes; nothing changes.
    await rejectsWith(w.execute("insert into acct (id, owner) values (1, 'dup')"), "SQLITE_CONSTRAINT");

    // Server down.
    await e.sqld.kill();
    const local = await dump(w, "acct");
    await rejectsWith(w.execute("insert into acct (id, owner) values (3, 'cy')"), "SERVER_UNREACHABLE");
    await rejectsWith(w.execute("update acct set bal = bal + 1000 where id = 1"), "SERVER_UNREACHABLE");
    await rejectsWith(w.execute("delete from acct where id = 2"), "SERVER_UNREACHABLE");
    await rejectsWith(w.batch(["update acct set owner = 'x'", "insert into acct (id) values (9)"], "write"), "SERVER_UNREACHABLE");
    assert.deepEqual(await dump(w, "acct"), local, "the local rows are unchanged");
    assert.equal(w.status().pendingChanges, 0, "a failed write-through queues nothing");
    assert.equal(await scalar(w, "select owner from acct where id = 1"), "ann b", "reads work while the server is down");

    await e.sqld.restart();
    await w.execute("update acct set bal = bal + 1 where id = 1");
    assert.equal(await scalar(e.server, "select bal from acct where id = 1"), 76, "the failed +1000 never happened");
    assert.deepEqual(await dump(w, "acct"), await dump(e.server, "acct"));
    // Another replica sees the same.
    const r = e.replica();
    await r.execute("create table acct (id integer primary key, owner text, bal integer not null default 0, tags text)");
    r.replicate("acct", { bal: "counter", tags: "set" });
    await r.sync();
    assert.deepEqual(await dump(r, "acct"), await dump(e.server, "acct"));
  } finally {
    await e.stop();
  }
});

test('writeMode "remote": a write whose response was lost still converges, counters exact', async () => {
  const e = await env({ proxies: 1 });
  try {
    const proxy = e.proxies[0];
    const w = e.replica({ writeMode: "remote", syncUrl: proxy.url, timeout: 1000 });
    await w.execute("create table acct (id integer primary key, owner text, bal integer not null default 0)");
    w.replicate("acct", { bal: "counter" });
    await w.execute("insert into acct (id, owner, bal) values (1, 'ann', 1)");
    await w.sync();
    // The server commits; the answer never arrives, and neither does the one to the
    // request that would settle it at once. The caller sees a retryable error.
    proxy.setFaults({ next: ["lose", "offline"] });
    await rejectsWith(w.execute("insert into acct (id, owner) values (2, 'bob')"), "SERVER_UNREACHABLE");
    // (This call first settles the earlier write: that request passes.)
    proxy.setFaults({ next: ["pass", "lose", "offline"] });
    await rejectsWith(w.execute("update acct set bal = bal + 10 where id = 1"), "SERVER_UNREACHABLE");
    await w.execute("update acct set bal = bal + 5 where id = 1");
    for (let i = 0; i < 2; i++) await w.sync();
    const server = await dump(e.server, "acct");
    assert.deepEqual(await dump(w, "acct"), server, "the replica converges with the server");
    // The +10 may or may not count (its outcome was unknown), but the +5 must.
    assert.ok([6, 16].includes(server[0][2]), `bal ${server[0][2]} is 1 + 5 or 1 + 10 + 5`);
  } finally {
    await e.stop();
  }
});

test('writeMode "remote": a write whose answer is lost is settled within the call when the server can be asked', async () => {
  const e = await env({ proxies: 1 });
  try {
    const proxy = e.proxies[0];
    const w = e.replica({ writeMode: "remote", syncUrl: proxy.url, timeout: 1000 });
    await w.execute("create table acct (id integer primary key, owner text, bal integer not null default 0)");
    w.replicate("acct", { bal: "counter" });
    await w.execute("insert into acct (id, owner, bal) values (1, 'ann', 1)");
    // Lost after the commit: the call asks the server and finds it committed.
    proxy.setFaults({ next: ["lose"] });
    await w.execute("update acct set bal = bal + 10 where id = 1");
    // Never forwarded: the call asks, finds it did not commit, and reports the error.
    proxy.setFaults({ next: ["offline"] });
    await rejectsWith(w.execute("update acct set bal = bal + 100 where id = 1"), "SERVER_UNREACHABLE");
    assert.equal(w.status().writesInDoubt, 0, "both settled within their calls");
    assert.deepEqual(await dump(w, "acct"), [[1, "ann", 11]]);
    assert.deepEqual(await dump(e.server, "acct"), [[1, "ann", 11]]);
  } finally {
    await e.stop();
  }
});

test('writeMode "remote": concurrent write-through calls on one replica all count', async () => {
  const e = await env();
  try {
    const w = e.replica({ writeMode: "remote" });
    await w.execute("create table c (id integer primary key, n integer not null default 0, tags text not null default '[]', body text not null default '')");
    w.replicate("c", { n: "counter", tags: "set", body: "text" });
    await w.execute("insert into c (id, body) values (1, 'hello')");
    // Two requests of an app handled at once, each a write-through.
    await Promise.all([
      w.execute("update c set n = n + 1, body = body || ' X' where id = 1"),
      w.execute("update c set n = n + 10, body = body || ' Y' where id = 1"),
      w.execute("update c set tags = json_insert(tags, '$[#]', 'a') where id = 1"),
      w.execute("update c set tags = json_insert(tags, '$[#]', 'b') where id = 1"),
    ]);
    await w.sync();
    const server = await dump(e.server, "c");
    assert.deepEqual(await dump(w, "c"), server, "the replica agrees with the server");
    const [[, n, tags, body]] = server;
    assert.equal(n, 11, "both increments count");
    assert.equal(tags, '["a","b"]');
    assert.ok(body.includes(" X") && body.includes(" Y") && body.startsWith("hello"), `both appends: ${body}`);
  } finally {
    await e.stop();
  }
});
