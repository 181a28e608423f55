// The remote client against the official @libsql/client, over HTTP and over WebSocket:
// each scenario runs on both clients (each on its own sqld, so both databases go through
// the same states) and the outcomes — results, their JSON, errors with their class,
// name, code and statement index — must be the same. edgesync runs with the official
// defaults for what it does differently by default (`intMode: "number"`,
// `numberArgs: "real"`); those defaults are tested on their own below.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createClient as official } from "@libsql/client";
import { createClient, LibsqlError, LibsqlBatchError } from "edgesync";
import { startSqld } from "../support/sqld.mjs";
import { compare } from "../support/compat.mjs";
import { scenarios } from "../support/remote-scenarios.mjs";

let oracle, ours;
before(async () => {
  [oracle, ours] = await Promise.all([startSqld({ auth: true }), startSqld({ auth: true })]);
});
after(async () => {
  await Promise.all([oracle?.stop(), ours?.stop()]);
});

const OFFICIAL_DEFAULTS = { intMode: "number", numberArgs: "real" };

for (const [proto, scheme] of [["http", "http"], ["ws", "ws"]]) {
  test(`remote over ${proto}: the same outcomes as @libsql/client`, async () => {
    const o = official({ url: oracle.url.replace("http", scheme), authToken: oracle.tokens.rw, intMode: "number" });
    const e = createClient({ url: ours.url.replace("http", scheme), authToken: ours.tokens.rw, ...OFFICIAL_DEFAULTS });
    try {
      await compare(o, e, scenarios(`t_${proto}`));
    } finally {
      o.close();
      e.close();
    }
  });
}

test("errors are LibsqlError / LibsqlBatchError, with the official fields and edgesync's additions", async () => {
  const c = createClient({ url: ours.url, authToken: ours.tokens.rw });
  try {
    await c.execute("create table if not exists e1(id integer primary key)");
    await c.execute("insert or ignore into e1 values (1)");
    const e = await c.execute("insert into e1 values (1)").catch((x) => x);
    assert.ok(e instanceof LibsqlError && e instanceof Error);
    assert.equal(e.name, "LibsqlError");
    assert.equal(e.code, "SQLITE_CONSTRAINT");
    assert.match(e.message, /^SQLITE_CONSTRAINT: /);
    assert.equal(e.retryable, false);
    assert.equal(e.serverCode, "SQLITE_CONSTRAINT");
    const b = await c.batch(["select 1", "insert into e1 values (1)"]).catch((x) => x);
    assert.ok(b instanceof LibsqlBatchError && b instanceof LibsqlError);
    assert.equal(b.name, "LibsqlBatchError");
    assert.equal(b.statementIndex, 1);
    assert.doesNotMatch(b.message, /^SQLITE_CONSTRAINT: SQLITE_CONSTRAINT: /, "one code prefix");
  } finally {
    c.close();
  }
});

test("a custom fetch is called with one Request, as by @libsql/client", async () => {
  const seen = [];
  // A wrapper that forwards only its first argument: with `fetch(url, init)` it would send a bodiless GET.
  const fetchFirstOnly = (input) => {
    seen.push(input instanceof Request ? input.method : typeof input);
    return fetch(input);
  };
  const c = createClient({ url: ours.url, authToken: ours.tokens.rw, fetch: fetchFirstOnly });
  try {
    const rs = await c.execute("select 41 + 1 as answer");
    assert.equal(rs.rows[0].answer, 42);
    assert.ok(seen.length >= 1 && seen.every((m) => m === "POST"), JSON.stringify(seen));
  } finally {
    c.close();
  }
});

test("edgesync's defaults: exact integers (intMode auto) and whole numbers bound as INTEGER", async () => {
  const c = createClient({ url: ours.url, authToken: ours.tokens.rw });
  try {
    const rs = await c.execute("select 9007199254740993 big, 7 small, typeof(?) t, ? / 2 h", [3, 5]);
    assert.deepEqual([rs.rows[0].big, rs.rows[0].small, rs.rows[0].t, rs.rows[0].h], [9007199254740993n, 7, "integer", 2]);
  } finally {
    c.close();
  }
});

test("a closed client: CLIENT_CLOSED over HTTP and WebSocket; reconnect() opens it again", async () => {
  for (const scheme of ["http", "ws"]) {
    const c = createClient({ url: ours.url.replace("http", scheme), authToken: ours.tokens.rw });
    await c.execute("select 1");
    c.close();
    assert.equal(c.closed, true);
    const e = await c.execute("select 1").catch((x) => x);
    assert.equal(e.code, "CLIENT_CLOSED", scheme);
    await c.reconnect();
    assert.equal(c.closed, false);
    assert.equal((await c.execute("select 2 v")).rows[0].v, 2, scheme);
    c.close();
  }
});
