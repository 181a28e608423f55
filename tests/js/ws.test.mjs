// Hrana over WebSocket (ws://): interactive transactions visible to others only once
// committed, a dropped socket failing the calls in flight and the next call
// reconnecting, auth failures as the official client reports them, and many calls in
// flight on one socket. Against a real sqld.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createClient as official } from "@libsql/client";
import { createClient, LibsqlError } from "edgesync";
import { startSqld } from "../support/sqld.mjs";

let sqld, wsUrl;
before(async () => {
  sqld = await startSqld({ auth: true });
  wsUrl = sqld.url.replace("http://", "ws://");
});
after(async () => {
  await sqld?.stop();
});

test("ws:// speaks WebSocket; transactions commit and roll back, seen by another client only once committed", async () => {
  const c = createClient({ url: wsUrl, authToken: sqld.tokens.rw });
  const other = official({ url: sqld.url, authToken: sqld.tokens.rw });
  try {
    assert.equal(c.protocol, "ws");
    await c.execute("create table acct (id integer primary key, bal integer not null)");
    await c.batch(["insert into acct values (1, 100)", "insert into acct values (2, 0)"], "write");
    const tx = await c.transaction("write");
    await tx.execute("update acct set bal = bal - 30 where id = 1");
    await tx.execute("update acct set bal = bal + 30 where id = 2");
    assert.deepEqual((await tx.execute("select bal from acct order by id")).rows.map((r) => r.bal), [70, 30]);
    assert.deepEqual((await other.execute("select bal from acct order by id")).rows.map((r) => r.bal), [100, 0], "not visible before commit");
    await tx.commit();
    assert.equal(tx.closed, true);
    assert.deepEqual((await other.execute("select bal from acct order by id")).rows.map((r) => r.bal), [70, 30]);

    const rb = await c.transaction("write");
    await rb.batch(["update acct set bal = 0", "insert into acct values (3, 5)"]);
    await rb.rollback();
    assert.deepEqual((await c.execute("select count(*) n, sum(bal) s from acct")).rows.map((r) => [r.n, r.s]), [[2, 100]]);

    // Many calls in flight at once on one socket.
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => c.execute({ sql: "select ? as i", args: [i] })));
    assert.deepEqual(results.map((r) => r.rows[0].i), Array.from({ length: 50 }, (_, i) => i));
  } finally {
    c.close();
    other.close();
  }
});

test("a dropped socket fails the calls in flight; the next call reconnects; a transaction on it is gone", async () => {
  const own = await startSqld({ auth: false });
  const c = createClient({ url: own.url.replace("http://", "ws://") });
  try {
    await c.execute("create table k (x)");
    await c.execute("insert into k values (1)");
    const tx = await c.transaction("write");
    await tx.execute("insert into k values (2)");
    await own.kill();
    const e = await c.execute("select count(*) from k").catch((x) => x);
    assert.ok(e instanceof LibsqlError, String(e));
    assert.ok(["HRANA_WEBSOCKET_ERROR", "SERVER_UNREACHABLE"].includes(e.code), e.message);
    assert.equal(e.retryable, true);
    await own.restart();
    assert.equal((await c.execute("select count(*) as n from k")).rows[0].n, 1, "reconnected; the uncommitted insert is gone");
    const te = await tx.execute("select 1").catch((x) => x);
    assert.ok(te instanceof LibsqlError, "the transaction died with its socket");
    assert.equal(tx.closed, true);
  } finally {
    c.close();
    await own.stop();
  }
});

test("auth over WebSocket: the codes the official client reports", async () => {
  // sqld answers a refused token with `hello_error` and closes the socket, and refuses a
  // read-only token's write by closing it: which the client sees first depends on
  // timing, for the official client as for edgesync.
  const code = async (client, sql = "select 1") => {
    try {
      await client.execute(sql);
      return "ok";
    } catch (e) {
      assert.equal(e.name, "LibsqlError", String(e)); // each client's own class
      return e.code;
    } finally {
      client.close();
    }
  };
  for (const [authToken, sql, codes] of [
    ["not.a.jwt", "select 1", ["AUTH_JWT_INVALID", "HRANA_WEBSOCKET_ERROR"]],
    [undefined, "select 1", ["AUTH_HEADER_NOT_FOUND", "HRANA_WEBSOCKET_ERROR"]],
    [sqld.tokens.ro, "create table nope(x)", ["HRANA_WEBSOCKET_ERROR"]],
  ]) {
    assert.ok(codes.includes(await code(createClient({ url: wsUrl, authToken }), sql)), `edgesync, token ${authToken}`);
    assert.ok(codes.includes(await code(official({ url: wsUrl, authToken }), sql)), `official, token ${authToken}`);
  }
  const ro = createClient({ url: wsUrl, authToken: sqld.tokens.ro });
  assert.equal((await ro.execute("select 41 + 1 as v")).rows[0].v, 42, "a read-only token reads");
  ro.close();
});
