// Bad input on the sync API gets stable error codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "edgesync";
import { startSqld } from "../support/sqld.mjs";
import { dump, env, scalar } from "../support/sync-env.mjs";
import { guardUnhandledRejections, rejectsWith, throwsCode } from "../support/sync-helpers.mjs";

guardUnhandledRejections();

// ---------------------------------------------------------------------------------
// bad input

test("bad input gets stable error codes", async () => {
  const e = await env();
  try {
    const a = e.replica();
    await a.execute("create table u (id integer primary key, name text, qty integer, tags text)");
    await a.execute("create table nopk (a, b)");
    await a.execute("create table gen (id integer primary key, qty integer, twice integer as (qty * 2))");
    await a.execute("create table realkey (k real primary key, v)");
    throwsCode(() => a.replicate("nowhere"), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("u", { nope: "lww" }), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("nopk"), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("u", { name: "counter" }), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("u", { qty: "set" }), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("u", { id: "counter" }), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("gen"), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("realkey"), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("u", { qty: "bogus" }), "INVALID_ARGUMENT");
    throwsCode(() => a.replicate("u", { qty: 42 }), "INVALID_ARGUMENT");
    throwsCode(() => a.replicate("u", "counter"), "INVALID_ARGUMENT");
    // Nothing above made u replicated: its writes are not captured.
    await a.execute("insert into u (id, name) values (1, 'x')");
    assert.equal(a.status().pendingChanges, 0);
    a.replicate("u", { qty: "counter", tags: "set" });
    a.replicate("u", { qty: "counter", tags: "set" }); // the same again is fine
    throwsCode(() => a.replicate("u", { qty: "lww" }), "SCHEMA_ERROR");
    assert.equal(a.status().pendingChanges, 1, "rows already there are queued once");

    throwsCode(() => createClient({ url: ":memory:", writeMode: "remote" }), "INVALID_ARGUMENT");
    throwsCode(() => createClient({ url: ":memory:", syncUrl: e.sqld.url, writeMode: "both" }), "INVALID_ARGUMENT");
    throwsCode(() => createClient({ url: ":memory:", syncUrl: e.sqld.url, syncInterval: 0 }), "INVALID_ARGUMENT");
    throwsCode(() => createClient({ url: ":memory:", syncUrl: e.sqld.url, syncInterval: -1 }), "INVALID_ARGUMENT");
    throwsCode(() => createClient({ url: ":memory:", syncUrl: "ftp://nowhere" }), "URL_SCHEME_NOT_SUPPORTED");
    const local = createClient({ url: ":memory:" });
    await rejectsWith(local.sync(), "INVALID_OPERATION");
    local.close();

    // Auth.
    const withToken = async (authToken) => {
      const r = e.replica({ authToken });
      await r.execute("create table u (id integer primary key, name text, qty integer, tags text)");
      r.replicate("u", { qty: "counter", tags: "set" });
      const errs = [];
      r.on("sync:error", (d) => errs.push(d));
      return { r, errs };
    };
    let t = await withToken("not-a-jwt");
    await rejectsWith(t.r.sync(), "SERVER_ERROR", { status: 401 });
    assert.deepEqual(
      t.errs.map((d) => [d.code, d.retryable]),
      [["SERVER_ERROR", false]],
    );
    const other = await startSqld();
    const foreign = other.tokens.rw;
    await other.stop();
    t = await withToken(foreign);
    await rejectsWith(t.r.sync(), "SERVER_ERROR", { status: 401 });
    t = await withToken(undefined);
    await rejectsWith(t.r.sync(), "SERVER_ERROR", { status: 401 });
    t = await withToken(e.sqld.tokens.ro);
    await rejectsWith(t.r.sync(), "SERVER_ERROR", { status: 403 });

    // Schema drift between replicas: the same table with other columns, or other policies.
    await a.sync();
    const drift = e.replica();
    await drift.execute("create table u (id integer primary key, name text, qty integer, tags text, extra integer)");
    drift.replicate("u", { qty: "counter", tags: "set" });
    await rejectsWith(drift.sync(), "SCHEMA_MISMATCH");
    const typed = e.replica();
    await typed.execute("create table u (id integer primary key, name text, qty text, tags text)");
    typed.replicate("u", { tags: "set" });
    await rejectsWith(typed.sync(), "SCHEMA_MISMATCH");
    const policy = e.replica();
    await policy.execute("create table u (id integer primary key, name text, qty integer, tags text)");
    policy.replicate("u", { qty: "counter" });
    await rejectsWith(policy.sync(), "SCHEMA_MISMATCH");
    // None of it reached the server.
    assert.equal(await scalar(e.server, "select count(*) from u"), 1);
    assert.deepEqual(await dump(e.server, "u"), await dump(a, "u"));
  } finally {
    await e.stop();
  }
});
