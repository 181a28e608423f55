// Text columns through the edge sync gateway, in a real workerd (wrangler dev) in front
// of a real sqld: the server's column is always the text replicas converge to — a crafted
// record whose CRDT update disagrees with its rendering cannot make them differ — and
// rules may name text columns (they see the merged text).
//
//   node --test tests/js/gateway-text.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { createClient, Text } from "edgesync";
import { startSqld } from "../support/sqld.mjs";
import { startWorker } from "../support/worker-env.mjs";
import { hs256Token } from "../support/jwt.mjs";
import { rowsOf } from "../support/sync-env.mjs";

const JWT_SECRET = crypto.randomBytes(32).toString("hex");
// Anyone may edit a document, but its text may not hold a "!".
const RULES = { docs: { read: "true", write: "body IS NULL OR instr(body, '!') = 0" } };
const SCHEMA = "create table docs (id text primary key, body text)";

let sqld;
let w;
let admin; // a trusted replica syncing straight to sqld
let primary; // a plain client of sqld
const replicas = [];

before(async () => {
  sqld = await startSqld({ auth: true });
  w = await startWorker({
    name: "gateway-text",
    vars: { REGIONS: JSON.stringify([{ id: "fra", url: sqld.url, role: "primary" }]), SYNC_RULES: RULES },
    secrets: { LIBSQL_AUTH_TOKEN: sqld.tokens.rw, JWT_SECRET },
  });
  admin = createClient({ url: ":memory:", syncUrl: sqld.url, authToken: sqld.tokens.rw });
  await admin.execute(SCHEMA);
  admin.replicate("docs", { body: "text" });
  await admin.execute("insert into docs values ('d1', 'hello'), ('d2', 'one')");
  await admin.sync();
  primary = createClient({ url: sqld.url, authToken: sqld.tokens.rw });
}, { timeout: 180_000 });

after(async () => {
  for (const r of replicas) r.close();
  admin?.close();
  primary?.close();
  await w?.stop();
  await sqld?.stop();
});

const token = (sub) => hs256Token(JWT_SECRET, sub);

/** A user's replica syncing through the Worker. */
async function userReplica(sub) {
  const db = createClient({ url: ":memory:", syncUrl: w.base, authToken: token(sub) });
  replicas.push(db);
  await db.execute(SCHEMA);
  db.replicate("docs", { body: "text" });
  await db.sync();
  return db;
}

const one = async (db, sql) => rowsOf(await db.execute(sql))[0]?.[0];
const bodyOf = (db, id) => one(db, `select body from docs where id = '${id}'`);

async function push(sub, site, records) {
  const res = await fetch(`${w.base}/sync/v1/push`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token(sub)}` },
    body: JSON.stringify({ site, records }),
    signal: AbortSignal.timeout(20_000),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

/** A CRDT update inserting `s` at the start of a new writer's empty document. */
function insertion(s) {
  const doc = new Text(BigInt(1 + Math.floor(Math.random() * 2 ** 40)));
  doc.insert(0, s);
  const u = Buffer.from(doc.encodeUpdateSince()).toString("base64");
  doc.free();
  return u;
}

/** Every replica and the server hold `id`'s same text; returns it. */
async function converged(id, dbs) {
  for (const db of dbs) await db.sync();
  for (const db of dbs) await db.sync();
  const server = await bodyOf(primary, id);
  for (const db of dbs) assert.equal(await bodyOf(db, id), server, "a replica differs from the server");
  return server;
}

test("a crafted push whose update disagrees with its rendering: the server's column is the update's text, like every replica's", async () => {
  const [alice, bob] = [await userReplica("alice"), await userReplica("bob")];
  const site = crypto.randomBytes(8).toString("hex");
  const r = await push("mallory", site, [
    [Date.now() * 65536, "docs", ["d1"], "u", { body: { t: "nice and harmless", u: insertion("EVIL ") } }],
  ]);
  assert.equal(r.accepted, 1, JSON.stringify(r));
  const server = await bodyOf(primary, "d1");
  assert.notEqual(server, "nice and harmless");
  assert.ok(server.includes("EVIL") && server.includes("hello"), server);
  assert.equal(await converged("d1", [alice, bob, admin]), server);
  // A rendering without an update (what a replica sends to correct the server's column)
  // cannot set other text either.
  const again = await push("mallory", site, [[Date.now() * 65536, "docs", ["d1"], "u", { body: { t: "gone", u: "" } }]]);
  assert.equal(again.accepted, 1);
  assert.equal(await bodyOf(primary, "d1"), server);
  assert.equal(await converged("d1", [alice, bob, admin]), server);
});

test("rules naming a text column see the merged text, not the writer's rendering", async () => {
  const alice = await userReplica("alice");
  const before = await bodyOf(primary, "d1");
  const site = crypto.randomBytes(8).toString("hex");
  const r = await push("mallory", site, [
    [Date.now() * 65536, "docs", ["d1"], "u", { body: { t: before, u: insertion("!") } }],
  ]);
  assert.equal(r.accepted, 0);
  assert.deepEqual(r.refused.map((x) => x.code), ["PERMISSION_DENIED"]);
  assert.equal(await bodyOf(primary, "d1"), before);
  // An honest replica's edit the rule refuses: restored from the server, never applied.
  await alice.execute("update docs set body = body || '!' where id = 'd1'");
  await alice.sync();
  assert.equal(await converged("d1", [alice, admin]), before);
  // And one it allows goes through, text column and all.
  await alice.execute("update docs set body = 'Dear ' || body where id = 'd1'");
  assert.equal(await converged("d1", [alice, admin]), `Dear ${before}`);
});

test("concurrent text edits through the gateway converge, and the server's column is the replicas' text", async () => {
  const dbs = [await userReplica("alice"), await userReplica("bob"), await userReplica("carol")];
  for (let round = 0; round < 4; round++) {
    // Every replica edits both documents without seeing the others' edits, then all push
    // at once (each push through the Worker, in separate chunks, racing for the cells).
    await Promise.all(
      dbs.map(async (db, i) => {
        await db.execute(`update docs set body = '${i}' || body || '${round}' where id = 'd2'`);
        await db.execute(`update docs set body = body || ' ${"abc"[i]}${round}' where id = 'd1'`);
      }),
    );
    await Promise.all(dbs.map((db) => db.sync()));
    const d2 = await converged("d2", dbs);
    const d1 = await converged("d1", dbs);
    for (let i = 0; i < dbs.length; i++) {
      assert.ok(d2.includes(`${i}`), `d2 lost replica ${i}'s edit: ${d2}`);
      assert.ok(d1.includes(` ${"abc"[i]}${round}`), `d1 lost replica ${i}'s edit: ${d1}`);
    }
  }
  await admin.sync();
  assert.equal(await bodyOf(admin, "d2"), await bodyOf(primary, "d2"));
});

test("a text inserted on the server by plain SQL (seeded) edits through the Worker like any other", async () => {
  await primary.execute("insert into docs values ('d3', 'seeded by SQL')");
  const [alice, bob] = [await userReplica("alice"), await userReplica("bob")];
  assert.equal(await bodyOf(alice, "d3"), "seeded by SQL");
  await alice.execute("update docs set body = body || ', edited' where id = 'd3'");
  await bob.execute("update docs set body = 'Re: ' || body where id = 'd3'");
  await Promise.all([alice.sync(), bob.sync()]);
  assert.equal(await converged("d3", [alice, bob, admin]), "Re: seeded by SQL, edited");
});

test("eight pushes racing for one cell through the Worker: every edit is kept, the server's column is the merged text", async (t) => {
  const [alice, bob] = [await userReplica("alice"), await userReplica("bob")];
  const words = Array.from({ length: 8 }, (_, i) => `<w${i}>`);
  const results = await Promise.all(
    words.map((word) =>
      push(`user-${word}`, crypto.randomBytes(8).toString("hex"), [
        [Date.now() * 65536, "docs", ["d2"], "u", { body: { t: word, u: insertion(word) } }],
      ]),
    ),
  );
  for (const r of results) assert.equal(r.accepted, 1, JSON.stringify(r));
  const server = await bodyOf(primary, "d2");
  for (const word of words) assert.ok(server.includes(word), `${word} missing from ${server}`);
  assert.equal(await converged("d2", [alice, bob, admin]), server);
  const metrics = await fetch(`${w.base}/metrics`, { headers: { authorization: `Bearer ${hs256Token(JWT_SECRET, "ops", { role: "service" })}` } });
  const retries = /edgesync_gateway_text_retries_total (\d+)/.exec(await metrics.text());
  assert.ok(retries, "the metric edgesync_gateway_text_retries_total");
  t.diagnostic(`pushes read again after a concurrent edit: ${retries[1]}`);
});

