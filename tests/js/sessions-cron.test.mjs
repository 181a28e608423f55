// The expired-session sweep on a cron trigger: wrangler.toml declares it, and workerd
// runs the Worker's scheduled() for it (wrangler dev --test-scheduled exposes the
// trigger at /__scheduled), deleting expired sessions from the primary and nothing else.
//
//   node --test tests/js/sessions-cron.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "edgesync";
import { startSqld, REPO_ROOT } from "../support/sqld.mjs";
import { request, startWorker } from "../support/worker-env.mjs";
import { hs256Token } from "../support/jwt.mjs";

const JWT_SECRET = crypto.randomBytes(32).toString("hex");
let db;
let w;
let primary;

/** The cron expressions wrangler.toml declares under [triggers]. */
function declaredCrons() {
  const toml = fs.readFileSync(path.join(REPO_ROOT, "wrangler.toml"), "utf8");
  const m = /^\[triggers\][^[]*?^crons\s*=\s*\[([^\]]*)\]/ms.exec(toml);
  return m ? [...m[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]) : [];
}

before(async () => {
  db = await startSqld({ auth: true });
  w = await startWorker({
    name: "sessions-cron",
    vars: { REGIONS: "", LIBSQL_URL: db.url, SESSION_OPTIONS: { idleTtlMs: 1500, absoluteTtlMs: 600_000 } },
    secrets: { LIBSQL_AUTH_TOKEN: db.tokens.rw, JWT_SECRET, SESSION_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}` },
    args: ["--test-scheduled"],
  });
  primary = createClient({ url: db.url, authToken: db.tokens.rw });
}, { timeout: 120_000 });

after(async () => {
  primary?.close();
  await w?.stop();
  await db?.stop();
});

const count = async () => Number((await primary.execute("select count(*) from es_sessions")).rows[0][0]);

test("wrangler.toml declares a cron trigger for the sweep", () => {
  const crons = declaredCrons();
  assert.equal(crons.length, 1, `crons: ${JSON.stringify(crons)}`);
  assert.match(crons[0], /^(\S+\s+){4}\S+$/, "a five-field cron expression");
});

test("the cron trigger deletes expired sessions, and only those", async () => {
  const alice = hs256Token(JWT_SECRET, "alice");
  for (let i = 0; i < 3; i++) {
    const r = await request(w, "POST", "/sessions", { token: alice, body: { data: { n: i } } });
    assert.equal(r.status, 201, r.text);
  }
  assert.equal(await count(), 3);
  await sleep(2_000); // past the idle lifetime of those three
  const live = await request(w, "POST", "/sessions", { token: alice, body: { data: { n: "live" } } });
  assert.equal(live.status, 201);
  assert.equal(await count(), 4, "nothing swept before the trigger fires");
  const cron = declaredCrons()[0];
  const fired = await fetch(`${w.base}/__scheduled?cron=${encodeURIComponent(cron)}`);
  assert.equal(fired.status, 200, await fired.text());
  const deadline = Date.now() + 10_000;
  while ((await count()) !== 1 && Date.now() < deadline) await sleep(100);
  assert.equal(await count(), 1, "the three expired sessions are gone");
  const still = await request(w, "GET", `/sessions/${live.body.id}`, { token: alice });
  assert.equal(still.status, 200, still.text);
});
