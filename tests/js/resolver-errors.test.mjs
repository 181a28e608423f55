// A custom conflict resolver that throws: the sync fails with RESOLVER_ERROR whose
// message is the resolver's own (no stack text, no wasm frames), with what it threw as
// the error's `cause`; the change stays queued, and a fixed resolver lets it through.
import { test } from "node:test";
import assert from "node:assert/strict";
import { env } from "../support/sync-env.mjs";

async function conflictWith(resolver) {
  const e = await env();
  const a = e.replica();
  const b = e.replica();
  for (const r of [a, b]) {
    await r.execute("create table inv (sku text primary key, stock integer not null)");
    r.replicate("inv", { stock: resolver });
  }
  await a.execute("insert into inv values ('w', 10)");
  await a.sync();
  await b.sync();
  await a.execute("update inv set stock = stock - 7 where sku = 'w'");
  await b.execute("update inv set stock = stock - 6 where sku = 'w'");
  await a.sync();
  return { e, a, b };
}

test("a resolver's exception: RESOLVER_ERROR with its message, the exception as cause, no stack in the message", async () => {
  let throwing = true;
  const boom = new Error("boom: stock cannot be merged");
  const { e, b } = await conflictWith((local, remote, base) => {
    if (throwing) throw boom;
    return Math.max(0, remote + (local - (base ?? 0)));
  });
  try {
    const err = await b.sync().catch((x) => x);
    assert.equal(err.code, "RESOLVER_ERROR");
    assert.equal(err.message, "RESOLVER_ERROR: conflict resolver failed: boom: stock cannot be merged");
    assert.doesNotMatch(err.message, /\n|\bat |wasm-function|JsValue/);
    assert.equal(err.cause, boom, "the thrown value is the cause");
    assert.ok(b.status().pendingChanges >= 1, "the change stays queued");
    throwing = false;
    await b.sync();
    assert.equal((await b.execute("select stock from inv")).rows[0].stock, 0, "max(0, 3 + (4 - 10))");
  } finally {
    await e.stop();
  }
});

test("a resolver that throws something other than an Error", async () => {
  const { e, b } = await conflictWith(() => {
    throw "not an Error object";
  });
  try {
    const err = await b.sync().catch((x) => x);
    assert.equal(err.code, "RESOLVER_ERROR");
    assert.equal(err.message, "RESOLVER_ERROR: conflict resolver failed: not an Error object");
    assert.equal(err.cause, "not an Error object");
  } finally {
    await e.stop();
  }
});
