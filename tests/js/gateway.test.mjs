// The edge sync gateway in a real workerd (wrangler dev) in front of a real libSQL
// cluster (a sqld primary and a read replica): embedded replicas in Node syncing through
// the Worker with their user's JWT (browser-style: nothing but syncUrl and authToken
// differ from a direct replica), and crafted requests sent by hand.
//
//   node --test tests/js/gateway.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { createClient } from "edgesync";
import { startSqldCluster } from "../support/sqld.mjs";
import { request, startWorker } from "../support/worker-env.mjs";
import { hubSocket } from "../support/hub-socket.mjs";
import { hs256Token, signHs256, base64url } from "../support/jwt.mjs";
import { rowsOf } from "../support/sync-env.mjs";

const JWT_SECRET = crypto.randomBytes(32).toString("hex");

const RULES = {
  todos: { read: "owner = :sub OR shared = 1", write: "owner = :sub", columns: ["title", "done", "shared"] },
  members: { read: "user_id = :sub" },
  messages: {
    read: "room IN (SELECT room FROM members WHERE user_id = :sub)",
    insert: "author = :sub AND room IN (SELECT room FROM members WHERE user_id = :sub)",
    update: "author = :sub",
    delete: "author = :sub",
  },
};

const SCHEMA = [
  "create table todos (id text primary key, owner text, title text, done integer, shared integer default 0)",
  "create table members (room text, user_id text, primary key (room, user_id))",
  "create table messages (id integer primary key, room text, author text, body text)",
  "create table secrets (id text primary key, owner text, v text)",
];

let cluster;
let w; // the gateway worker
let tight; // the same, with small limits
let admin; // a trusted replica syncing straight to the primary
const replicas = [];
const responses = []; // every body the workers answered, checked for the database token

before(async () => {
  cluster = await startSqldCluster();
  const vars = {
    REGIONS: JSON.stringify([
      { id: "fra", url: cluster.primary.url, role: "primary" },
      { id: "nyc", url: cluster.replica.url, role: "replica" },
    ]),
    SYNC_RULES: RULES,
    CORS_ORIGINS: "http://app.example",
  };
  const secrets = { LIBSQL_AUTH_TOKEN: cluster.tokens.rw, JWT_SECRET, SESSION_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}` };
  [w, tight] = await Promise.all([
    startWorker({ name: "gateway", vars, secrets }),
    startWorker({
      name: "gateway-tight",
      vars: { ...vars, SYNC_LIMITS: { maxBodyBytes: 20000, maxRecords: 50, recordsPerMinute: 60 } },
      secrets,
    }),
  ]);
  admin = createClient({ url: ":memory:", syncUrl: cluster.primary.url, authToken: cluster.tokens.rw });
  for (const sql of SCHEMA) await admin.execute(sql);
  for (const t of ["todos", "members", "messages", "secrets"]) admin.replicate(t);
  await admin.execute("insert into todos (id, owner, title) values ('a1', 'alice', 'A'), ('b1', 'bob', 'B'), ('s1', 'carol', 'S')");
  await admin.execute("update todos set shared = 1 where id = 's1'");
  await admin.execute("insert into members values ('r1', 'alice'), ('r1', 'bob'), ('r2', 'alice')");
  await admin.execute("insert into messages values (1, 'r1', 'alice', 'hi'), (2, 'r1', 'bob', 'yo'), (3, 'r2', 'alice', 'private')");
  await admin.execute("insert into secrets values ('k', 'alice', 'the secret')");
  await admin.sync();
}, { timeout: 180_000 });

after(async () => {
  for (const r of replicas) r.close();
  admin?.close();
  primaryClient?.close();
  await Promise.all([w, tight].filter(Boolean).map((x) => x.stop()));
  await cluster?.stop();
});

const token = (sub, extra) => hs256Token(JWT_SECRET, sub, extra);

/** A user's replica: only `syncUrl` (the Worker) and `authToken` (their JWT) differ. */
async function userReplica(sub, tables = ["todos", "members", "messages"]) {
  const db = createClient({ url: ":memory:", syncUrl: w.base, authToken: token(sub) });
  replicas.push(db);
  for (const sql of SCHEMA) await db.execute(sql);
  for (const t of tables) db.replicate(t);
  return db;
}

const rows = async (db, sql) => rowsOf(await db.execute(sql));

/** A raw request to a worker; returns {status, body, headers}. */
async function raw(worker, step, body, { auth = token("bob"), method = "POST" } = {}) {
  const res = await fetch(worker.base + step, {
    method,
    headers: { "content-type": "application/json", ...(auth ? { authorization: `Bearer ${auth}` } : {}) },
    body: method === "GET" ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  responses.push(text);
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

const hlc = () => Date.now() * 65536;
let primaryClient;
const server = async (sql) => {
  primaryClient ??= createClient({ url: cluster.primary.url, authToken: cluster.tokens.rw });
  return rowsOf(await primaryClient.execute(sql));
};

test("two users sync through the Worker and each sees only their rows", async () => {
  const [alice, bob] = [await userReplica("alice"), await userReplica("bob")];
  await alice.sync();
  await bob.sync();
  assert.deepEqual(await rows(alice, "select id from todos order by id"), [["a1"], ["s1"]]);
  assert.deepEqual(await rows(bob, "select id from todos order by id"), [["b1"], ["s1"]]);
  assert.deepEqual(await rows(bob, "select id from messages order by id"), [[1], [2]]);
  await alice.execute("insert into todos (id, owner, title) values ('a2', 'alice', 'from alice')");
  await alice.sync();
  await admin.sync();
  assert.deepEqual(await rows(admin, "select title from todos where id = 'a2'"), [["from alice"]]);
  await bob.sync();
  assert.deepEqual(await rows(bob, "select id from todos order by id"), [["b1"], ["s1"]], "bob never sees alice's todo");
  // The table without rules: a replica that declares it gets PERMISSION_DENIED.
  const eve = await userReplica("eve", ["todos", "secrets"]);
  await assert.rejects(eve.sync(), (e) => e.code === "PERMISSION_DENIED");
  assert.deepEqual(await rows(eve, "select * from secrets"), []);
});

test("a refused write is dropped from the outbox, restored, and reported", async () => {
  const alice = await userReplica("alice");
  await alice.sync();
  const refused = [];
  alice.on("sync:refused", (e) => refused.push(e));
  await alice.execute("update todos set title = 'mine' where id = 's1'");
  await alice.execute("insert into todos (id, owner, title) values ('x9', 'bob', 'for bob')");
  await alice.sync();
  assert.deepEqual(refused.map((e) => [e.table, e.key, e.code]).sort(), [
    ["todos", '["s1"]', "PERMISSION_DENIED"],
    ["todos", '["x9"]', "PERMISSION_DENIED"],
  ]);
  assert.deepEqual(await rows(alice, "select id, title from todos where id in ('s1', 'x9')"), [["s1", "S"]]);
  assert.equal((await alice.sync()).changesPushed, 0, "nothing is retried");
  assert.deepEqual(await server("select title from todos where id = 's1'"), [["S"]]);
});

test("rows leave and enter a user's scope; a user removed from a room loses its messages", async () => {
  const bob = await userReplica("bob");
  await bob.sync();
  assert.deepEqual(await rows(bob, "select id from messages order by id"), [[1], [2]]);
  await admin.execute("delete from members where room = 'r1' and user_id = 'bob'");
  await admin.execute("insert into members values ('r2', 'bob')");
  await admin.execute("update todos set owner = 'bob' where id = 'a1'");
  await admin.sync();
  await bob.sync();
  assert.deepEqual(await rows(bob, "select id, body from messages order by id"), [[3, "private"]]);
  assert.deepEqual(await rows(bob, "select id, owner, title from todos where id = 'a1'"), [["a1", "bob", "A"]]);
  const alice = await userReplica("alice");
  await alice.sync();
  assert.deepEqual(await rows(alice, "select id from todos where id = 'a1'"), []);
  // Put things back for the other tests.
  await admin.execute("insert into members values ('r1', 'bob')");
  await admin.execute("delete from members where room = 'r2' and user_id = 'bob'");
  await admin.execute("update todos set owner = 'alice' where id = 'a1'");
  await admin.sync();
});

test("crafted pushes are refused with documented codes and change nothing", async () => {
  const before = await server("select * from todos order by id");
  const h = hlc();
  const site = "00000000000000b1";
  const push = (records, who = "bob", s = site) => raw(w, "/sync/v1/push", { site: s, records }, { auth: token(who) });
  const r = await push([
    [h, "todos", ["a1"], "u", { title: "pwned" }], // another user's key
    [h, "todos", ["zz"], "i", { owner: "alice", title: "x" }], // a row for another user
    [h, "todos", ["b1"], "u", { owner: "alice" }], // moving his row out / a forbidden column
    [h, "todos'; DROP TABLE todos; --", ["b1"], "u", { title: "x" }], // SQL in a name
    [h, "todos", ["b1"], "u", { "title = 'x' --": "x" }], // SQL in a column name
    [h, "secrets", ["k"], "u", { v: "mine" }], // a table not in the rules
    [h, "todos", ["b1"], "u", { nope: 1 }], // an unknown column
  ]);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.accepted, 0);
  assert.deepEqual(r.body.refused.map((x) => x.code), Array(7).fill("PERMISSION_DENIED"));
  // SQL in values and keys is data.
  const evil = "x'); DROP TABLE todos; --";
  const ok = await push([[h, "todos", [evil], "i", { owner: "bob", title: evil, done: 0, shared: 0 }]]);
  assert.equal(ok.body.accepted, 1, JSON.stringify(ok.body));
  assert.deepEqual(await server(`select title from todos where id = '${evil.replace(/'/g, "''")}'`), [[evil]]);
  // A replayed chunk changes nothing.
  const log = await server("select count(*) from _es_log");
  assert.equal((await push([[h, "todos", [evil], "i", { owner: "bob", title: evil, done: 0, shared: 0 }]])).body.accepted, 1);
  assert.deepEqual(await server("select count(*) from _es_log"), log);
  // A forged site id (another user's replica, or a trusted replica's) is refused whole.
  const forged = await push([[h, "todos", ["a9"], "i", { owner: "alice", title: "x" }]], "alice", site);
  assert.equal(forged.status, 403);
  assert.equal(forged.body.error.code, "PERMISSION_DENIED");
  // Oversized: too many bytes, too many records.
  const big = await raw(tight, "/sync/v1/push", { site, records: [[h, "todos", ["big"], "i", { owner: "bob", title: "x".repeat(30_000) }]] });
  assert.equal(big.status, 413);
  assert.equal(big.body.error.code, "BODY_TOO_LARGE");
  const many = await raw(tight, "/sync/v1/push", { site, records: Array.from({ length: 51 }, (_, i) => [h, "todos", [`m${i}`], "d", null]) });
  assert.equal(many.status, 413);
  // Malformed bodies.
  assert.equal((await raw(w, "/sync/v1/push", "{not json")).status, 400);
  assert.equal((await raw(w, "/sync/v1/pull", { site: "x", cursor: 0 })).status, 400);
  assert.equal((await raw(w, "/sync/v1/bootstrap", { table: "secrets" })).status, 403);
  const after = (await server("select * from todos order by id")).filter((r) => r[0] !== evil);
  assert.deepEqual(after, before, "nothing refused reached the server");
  assert.deepEqual(await server("select v from secrets"), [["the secret"]]);
});

test("CORS: pages of the origins CORS_ORIGINS lists may call the gateway; others get no CORS headers", async () => {
  const allowed = "http://app.example";
  const ask = (origin) => request(w, "OPTIONS", "/sync/v1/push", {
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
  });
  const pre = await ask(allowed);
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), allowed);
  assert.match(pre.headers.get("access-control-allow-headers"), /authorization/);
  const other = await ask("http://elsewhere.example");
  assert.equal(other.status, 403);
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  // Answers (errors too, so the page can read their codes) carry the header for that origin only.
  const ok = await request(w, "POST", "/sync/v1/schema", { token: token("alice"), body: {}, headers: { origin: allowed } });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("access-control-allow-origin"), allowed);
  const denied = await request(w, "POST", "/sync/v1/schema", { body: {}, headers: { origin: allowed } });
  assert.equal(denied.status, 401);
  assert.equal(denied.headers.get("access-control-allow-origin"), allowed);
  const foreign = await request(w, "POST", "/sync/v1/schema", { token: token("alice"), body: {}, headers: { origin: "http://elsewhere.example" } });
  assert.equal(foreign.headers.get("access-control-allow-origin"), null, "the browser of another origin refuses it");
});

test("tokens: missing, expired, alg none, other key — refused with 401", async () => {
  const step = "/sync/v1/pull";
  const body = { site: "00000000000000b1", cursor: 0 };
  assert.equal((await raw(w, step, body, { auth: null })).body.error.code, "AUTH_REQUIRED");
  const expired = token("bob", { exp: Math.floor(Date.now() / 1000) - 3600 });
  assert.equal((await raw(w, step, body, { auth: expired })).status, 401);
  const none = `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ sub: "bob", exp: 9e9 })}.`;
  assert.equal((await raw(w, step, body, { auth: none })).status, 401);
  const other = signHs256("another secret", { sub: "bob", exp: Math.floor(Date.now() / 1000) + 60 });
  assert.equal((await raw(w, step, body, { auth: other })).status, 401);
  // A Hrana request is told to use the gateway.
  const hrana = await raw(w, "/v3/pipeline", { requests: [] });
  assert.equal(hrana.status, 404);
  assert.equal(hrana.body.error.code, "USE_SYNC_GATEWAY");
});

test("rate limit: 429 with Retry-After; refusals in the audit trail for service tokens", async () => {
  const site = "00000000000000d1";
  const recs = (n, p) => Array.from({ length: n }, (_, i) => [hlc(), "todos", [`${p}${i}`], "i", { owner: "dave", title: "t", done: 0, shared: 0 }]);
  assert.equal((await raw(tight, "/sync/v1/push", { site, records: recs(40, "q") }, { auth: token("dave") })).status, 200);
  const limited = await raw(tight, "/sync/v1/push", { site, records: recs(40, "r") }, { auth: token("dave") });
  assert.equal(limited.status, 429);
  assert.equal(limited.body.error.code, "RATE_LIMITED");
  const after = Number(limited.headers.get("retry-after"));
  assert.ok(after >= 1 && after <= 60, `Retry-After ${after}`);
  // The audit trail: who, what, why — service tokens only.
  assert.equal((await raw(w, "/sync/v1/audit?since=0", undefined, { method: "GET", auth: token("bob") })).status, 403);
  const audit = await raw(w, "/sync/v1/audit?since=0&limit=100", undefined, { method: "GET", auth: token("ops", { role: "service" }) });
  assert.equal(audit.status, 200);
  const mine = audit.body.entries.filter((e) => e.sub === "bob" && e.table === "todos");
  assert.ok(mine.length >= 5, JSON.stringify(audit.body).slice(0, 500));
  assert.ok(mine.every((e) => e.code && e.reason && e.site && e.op));
});

test("no user token reaches another user's rows by any route", async () => {
  const [alice, svc] = [token("alice"), token("ops", { role: "service" })];
  // Whole words only: HLCs and site ids are hex, and "…cb13…" holds "b1".
  const leaks = (text) => /"B"|\bb1\b|the secret|\byo\b/.test(text);
  // /query and /batch: a user token runs no SQL at all (the gateway is its way in).
  for (const sql of ["select * from todos", "select * from todos where owner = 'bob'", "select rec from _es_log", "select * from secrets"]) {
    const q = await request(w, "POST", "/query", { token: alice, body: { sql } });
    assert.equal(q.status, 403, q.text);
    assert.ok(!leaks(q.text), q.text);
    const b = await request(w, "POST", "/batch", { token: alice, body: { statements: [sql] } });
    assert.equal(b.status, 403, b.text);
    assert.ok(!leaks(b.text), b.text);
  }
  // The read cache: a service token's cached read is not served to her either.
  const warm = await request(w, "POST", "/query", { token: svc, body: { sql: "select title from todos where id = ?", args: ["b1"] } });
  assert.equal(warm.status, 200, warm.text);
  const hit = await request(w, "POST", "/query", { token: alice, body: { sql: "select title from todos where id = ?", args: ["b1"] } });
  assert.equal(hit.status, 403);
  assert.ok(!leaks(hit.text));
  // Sessions: bob's session (holding his data) is his.
  const mine = await request(w, "POST", "/sessions", { token: token("bob"), body: { data: { todo: "B", note: "the secret" } } });
  assert.equal(mine.status, 201, mine.text);
  for (const [method, body] of [["GET"], ["PUT", { data: { todo: "x" } }], ["DELETE"]]) {
    const r = await request(w, method, `/sessions/${mine.body.id}`, { token: alice, body });
    assert.ok(r.status === 403 || r.status === 404, `${method}: ${r.status} ${r.text}`);
    assert.ok(!leaks(r.text), r.text);
  }
  // The hub: bob's channels and the worker's announcements are not hers. Bob publishes
  // a secret on his channel (kept in its history) and again while she listens; his own
  // socket shows it arrives, so her sockets' silence means something.
  const publish = async (data) => {
    const res = await fetch(w.base + "/publish", {
      method: "POST",
      headers: { authorization: `Bearer ${token("bob")}`, "content-type": "application/json" },
      body: JSON.stringify({ channel: "user:bob:notes", data }),
    });
    assert.equal(res.status, 200, await res.text());
  };
  await publish({ note: "the secret" });
  const his = hubSocket(w.wsBase, token("bob"), { channels: "user:bob:*", since: "0" });
  await his.opened;
  await his.next((m) => JSON.stringify(m).includes("the secret"));
  for (const channels of ["user:bob:*", "*", "table:todos", "sync:todos"]) {
    const sock = hubSocket(w.wsBase, alice, { channels, since: "0" });
    const refused = await sock.opened.then(() => false, (e) => e.status === 403);
    if (!refused) {
      const ready = await sock.next((m) => m.type === "ready" || m.type === "error");
      const seen = his.frames.length;
      await publish({ note: "the secret, live" });
      await his.next((m) => JSON.stringify(m).includes("the secret, live"), seen);
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(!JSON.stringify(sock.frames).includes("the secret"), channels);
      assert.notEqual(ready.type, "event");
    }
    await sock.close?.();
  }
  await his.close();
  // The gateway's own reads: whatever she asks for, only her rows come back.
  const rows = await raw(w, "/sync/v1/rows", { tables: { todos: [["b1"], ["a1"], ["s1"]], secrets: [["k"]] } }, { auth: alice });
  assert.equal(rows.status, 200);
  assert.deepEqual(Object.keys(rows.body.tables), ["todos"]);
  assert.deepEqual(rows.body.tables.todos.rows.map((r) => r[0]).sort(), ['["a1"]', '["s1"]']);
  const scope = await raw(w, "/sync/v1/scope", { site: "00000000000000a9", cursor: 1e12, digests: { todos: "x", secrets: "x" } }, { auth: alice });
  assert.equal(scope.status, 200);
  assert.ok(!leaks(JSON.stringify(scope.body)), JSON.stringify(scope.body));
  const boot = await raw(w, "/sync/v1/bootstrap", { table: "todos", limit: 100 }, { auth: alice });
  assert.equal(boot.status, 200, JSON.stringify(boot.body));
  const booted = boot.body.state.tables.todos.rows.map((r) => r[0]);
  assert.ok(booted.includes('["a1"]') && booted.includes('["s1"]'), JSON.stringify(booted));
  assert.ok(!leaks(JSON.stringify(boot.body.state)), JSON.stringify(boot.body.state));
  const pull = await raw(w, "/sync/v1/pull", { site: "00000000000000a9", cursor: 0, limit: 5000 }, { auth: alice });
  assert.equal(pull.status, 200, JSON.stringify(pull.body));
  const pulled = pull.body.records.filter(([, , rec]) => rec[1] === "todos").map(([, , rec]) => rec[2][0]);
  assert.ok(pulled.includes("a1") && pulled.includes("s1"), JSON.stringify(pulled));
  for (const [, , rec] of pull.body.records) assert.ok(!["b1", "k"].includes(rec[2][0]), JSON.stringify(rec));
});

test("the database token never appears in a response or a log line", async () => {
  const secret = cluster.tokens.rw;
  for (const text of responses) assert.ok(!text.includes(secret), "a response carried the database token");
  // Errors from the primary (a schema problem) don't carry it either.
  for (const worker of [w, tight]) assert.ok(!worker.output.includes(secret), "the worker logged the database token");
  const metrics = await fetch(w.base + "/metrics", { headers: { authorization: `Bearer ${token("ops", { role: "service" })}` } });
  const text = await metrics.text();
  assert.ok(!text.includes(secret));
  assert.match(text, /edgesync_gateway_records_refused_total \d+/);
});
