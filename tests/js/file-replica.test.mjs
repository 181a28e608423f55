// Embedded replicas on real files in Node (`createClient({ url: "file:…" })`: the wasm
// build's SQLite on Node's fs, src/store/vfs/ + src/wasm/nodefs.rs), against a real
// sqld on loopback:
//   - data and queued changes survive close/reopen and a SIGKILL of the writing
//     process (every write it acknowledged is in the file, then on the server);
//   - a process killed in the middle of sync() — before a request, or after the server
//     committed a chunk whose answer it never saw: after recovery the server has every
//     row once and no counter increment twice;
//   - one owner per file, across processes (DATABASE_LOCKED), stale locks taken over;
//   - bad file URLs and paths are clear errors.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "edgesync";
import { createClient as libsql } from "@libsql/client";
import { startSqld, REPO_ROOT } from "../support/sqld.mjs";
import { dump, scalar } from "../support/sync-env.mjs";

const dirs = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "edgesync-file-replica-"));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const SCHEMA = "create table if not exists notes (id integer primary key, body text not null, n integer not null default 0)";
const open = (file, sqld, extra = {}) =>
  createClient({ url: `file:${file}`, syncUrl: sqld?.url ?? "http://127.0.0.1:9", authToken: sqld?.tokens.rw, timeout: 5000, ...extra });

/**
 * A child Node process running `body` (an async function's body, with `createClient`,
 * `env` and `say(line)` in scope) against the package; `lines` yields its stdout lines.
 */
function child(body, env) {
  // stdout blocks when the parent has not read yet: a loop whose awaits all resolve as
  // microtasks (a replica's local execute) never lets Node flush a queued write, so
  // with a non-blocking stdout a busy machine could leave the parent waiting for a
  // line the child never sends while the child writes on forever.
  const code = `import { createClient } from "edgesync";
    process.stdout._handle?.setBlocking?.(true);
    const env = process.env; const say = (l) => process.stdout.write(l + "\\n");
    try { ${body} } catch (e) { say("error " + (e.code ?? "") + " " + e.message); process.exitCode = 3; }`;
  const p = spawn(process.execPath, ["--input-type=module", "-e", code], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: p.stdout })[Symbol.asyncIterator]();
  const exited = new Promise((resolve) => p.on("exit", (code, signal) => resolve({ code, signal })));
  return { p, lines, exited };
}

/** Runs `body({ sqld, server })` against a fresh sqld, stopped (by PID) afterwards. */
async function withServer(body) {
  const sqld = await startSqld();
  const server = libsql({ url: sqld.url, authToken: sqld.tokens.rw });
  try {
    await body({ sqld, server });
  } finally {
    server.close();
    await sqld.stop();
  }
}

async function nextLine(c) {
  const { value, done } = await c.lines.next();
  assert.ok(!done, "the child ended early");
  assert.ok(!value.startsWith("error"), value);
  return value;
}

test("data and queued changes survive close and reopen, then reach the server", () =>
  withServer(async ({ sqld, server }) => {
    const file = join(tempDir(), "app.db");
    let db = open(file, null); // offline: the server is not there
    await db.execute(SCHEMA);
    db.replicate("notes", { n: "counter" });
    for (let i = 0; i < 200; i++) await db.execute({ sql: "insert into notes (id, body, n) values (?, ?, 1)", args: [i, `note ${i}`] });
    await db.execute("update notes set n = n + 1 where id < 50");
    await assert.rejects(db.sync(), (e) => e.code === "SERVER_UNREACHABLE");
    const before = await dump(db, "notes");
    const site = db.siteId;
    assert.equal(db.status().pendingChanges, 250);
    db.close();
    assert.ok(!existsSync(`${file}-lock`), "close releases the lock");
    assert.ok(!existsSync(`${file}-wal`), "close checkpoints the WAL");

    db = open(file, sqld);
    assert.equal(db.siteId, site, "the site id is kept");
    assert.deepEqual(await dump(db, "notes"), before);
    assert.equal(db.status().pendingChanges, 250, "the outbox is kept");
    db.replicate("notes", { n: "counter" }); // at every start: a no-op
    const r = await db.sync();
    assert.equal(r.changesPushed, 250);
    assert.equal(db.status().pendingChanges, 0);
    assert.deepEqual(await dump(server, "notes"), before);
    assert.equal(Number(await scalar(server, "select sum(n) from notes")), 250);
    db.close();
    // The cursor and the bootstrap are kept too: a reopened replica pulls nothing twice.
    db = open(file, sqld);
    assert.equal((await db.sync()).changesApplied, 0);
    assert.deepEqual(await dump(db, "notes"), before);
    db.close();
  }));

test("a writer killed with SIGKILL loses none of the writes it acknowledged", () =>
  withServer(async ({ sqld, server }) => {
    const file = join(tempDir(), "crash.db");
    const c = child(
      `const db = createClient({ url: "file:" + env.FILE });
       await db.execute(${JSON.stringify(SCHEMA)});
       db.replicate("notes", { n: "counter" });
       say("open");
       for (let i = 0; ; i++) {
         await db.execute({ sql: "insert into notes (id, body, n) values (?, ?, 1)", args: [i, "note " + i] });
         if (i % 7 === 0) await db.execute({ sql: "update notes set n = n + 1 where id = ?", args: [i] });
         say("ok " + i);
       }`,
      { FILE: file },
    );
    assert.equal(await nextLine(c), "open");
    let acked = -1;
    while (acked < 1500) acked = Number((await nextLine(c)).split(" ")[1]);
    c.p.kill("SIGKILL");
    assert.equal((await c.exited).signal, "SIGKILL");
    assert.ok(existsSync(`${file}-lock`), "the killed process left its lock behind");

    const db = open(file, sqld); // takes over the stale lock
    const ids = (await db.execute("select id from notes order by id")).rows.map((r) => Number(r.id));
    assert.ok(ids.length >= acked + 1, `${ids.length} rows, ${acked + 1} acknowledged`);
    assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => i), "no gaps");
    const local = await dump(db, "notes");
    // Every write is queued: each row's insert, and the updates.
    const updates = ids.filter((i) => i % 7 === 0).length;
    const pending = db.status().pendingChanges;
    assert.ok(pending >= ids.length + updates - 1 && pending <= ids.length + updates, `${pending} pending`);
    db.replicate("notes", { n: "counter" });
    await db.sync();
    assert.deepEqual(await dump(server, "notes"), local);
    db.close();
  }));

test("a process killed in the middle of sync(): after recovery every row and increment is on the server once", () =>
  withServer(async ({ sqld, server }) => {
    const ROWS = 3000;
    const records = 2 * ROWS; // an insert and an increment per row
    // The child's sync() sends: request 1 the schema check, 2…16 the 15 chunks of 400
    // records, 17 the pull. It kills itself with SIGKILL just before sending request
    // `at`, or just after its answer arrived (the server committed; the replica never
    // saw the answer).
    const kills = [
      [1, "after"],
      [2, "before"],
      [2, "after"],
      [7, "after"],
      [9, "before"],
      [16, "after"],
      [17, "after"],
    ];
    for (const [round, [at, when]] of kills.entries()) {
      const table = `notes_${round}`;
      const file = join(tempDir(), `${table}.db`);
      let db = open(file, sqld);
      await db.execute(SCHEMA.replace("notes", table));
      db.replicate(table, { n: "counter" });
      await db.sync(); // schema on the server
      await db.batch(Array.from({ length: ROWS }, (_, i) => ({ sql: `insert into ${table} (id, body, n) values (?, ?, 1)`, args: [i, `r${i}`] })), "write");
      await db.execute(`update ${table} set n = n + 1`);
      const expected = await dump(db, table);
      db.close();

      const c = child(
        `let n = 0;
         const die = () => process.kill(process.pid, "SIGKILL");
         const fetchThenDie = async (url, init) => {
           n += 1;
           if (n === Number(env.AT) && env.WHEN === "before") die();
           const res = await fetch(url, init);
           const body = await res.arrayBuffer();
           if (n === Number(env.AT) && env.WHEN === "after") die();
           return new Response(body, { status: res.status, headers: res.headers });
         };
         const db = createClient({ url: "file:" + env.FILE, syncUrl: env.URL, authToken: env.TOKEN, pushChunk: 400, fetch: fetchThenDie });
         db.replicate(env.TABLE, { n: "counter" });
         await db.sync();
         say("synced without being killed after " + n + " requests");`,
        { FILE: file, URL: sqld.url, TOKEN: sqld.tokens.rw, TABLE: table, AT: String(at), WHEN: when },
      );
      const { value } = await c.lines.next();
      assert.equal(value, undefined, `${when} request ${at}: the child must die, but said ${value}`);
      assert.equal((await c.exited).signal, "SIGKILL");
      const logged = async () => Number(await scalar(server, "select count(*) from _es_log where rec ->> 1 = ?", [table]));
      const before = await logged();
      const chunksCommitted = Math.min(15, Math.max(0, at - (when === "before" ? 2 : 1)));
      assert.equal(before, chunksCommitted * 400, `${when} request ${at}: records on the server before recovery`);

      db = open(file, sqld);
      db.replicate(table, { n: "counter" });
      await db.sync();
      assert.equal(db.status().pendingChanges, 0);
      assert.deepEqual(await dump(server, table), expected, `${when} request ${at}: the server's rows`);
      assert.equal(Number(await scalar(server, `select sum(n) from ${table}`)), 2 * ROWS, `${when} request ${at}: no increment twice`);
      assert.deepEqual(await dump(db, table), expected);
      assert.equal(await logged(), records, "each change record logged once");
      db.close();
    }
  }));

test("one owner per file: another process is refused with DATABASE_LOCKED until it closes", async () => {
  const file = join(tempDir(), "owned.db");
  const c = child(
    `const db = createClient({ url: "file:" + env.FILE });
     await db.execute("create table t (x)");
     say("open " + process.pid);
     for await (const _ of process.stdin) {}
     db.close();
     say("closed");`,
    { FILE: file },
  );
  const pid = (await nextLine(c)).split(" ")[1];
  assert.throws(
    () => createClient({ url: `file:${file}` }),
    (e) => e.code === "DATABASE_LOCKED" && e.message.includes(`process ${pid}`) && e.name === "LibsqlError",
  );
  c.p.stdin.end();
  assert.equal(await nextLine(c), "closed");
  await c.exited;
  const db = createClient({ url: `file:${file}` });
  assert.deepEqual((await db.execute("select count(*) from t")).rows[0][0], 0);
  // In this process too: a second client on an open file is refused.
  assert.throws(() => createClient({ url: `file:${file}` }), (e) => e.code === "DATABASE_LOCKED" && /already open in this process/.test(e.message));
  // Under another spelling too: through a symlink to its directory, or to the file.
  const dir = tempDir();
  symlinkSync(dirname(file), join(dir, "link"));
  symlinkSync(file, join(dir, "file-link.db"));
  for (const other of [join(dir, "link", "owned.db"), join(dir, "file-link.db")]) {
    assert.throws(() => createClient({ url: `file:${other}` }), (e) => e.code === "DATABASE_LOCKED", other);
  }
  db.close();
  createClient({ url: `file:${file}` }).close();
});

test("bad file URLs and paths are clear errors", () => {
  const dir = tempDir();
  const code = (url) => {
    try {
      createClient({ url }).close();
      return "opened";
    } catch (e) {
      assert.equal(e.name, "LibsqlError");
      return e.code;
    }
  };
  assert.equal(code("file://other-host/app.db"), "URL_INVALID");
  assert.equal(code(`file:${dir}/app.db?mode=ro`), "URL_PARAM_NOT_SUPPORTED");
  assert.equal(code(`file:${dir}/missing-dir/app.db`), "INVALID_ARGUMENT");
  assert.throws(() => createClient({ url: `file:${dir}/missing-dir/app.db` }), /its directory does not exist/);
  assert.equal(code(`file:${dir}`), "INVALID_ARGUMENT"); // a directory (EISDIR)
  writeFileSync(join(dir, "junk.db"), Buffer.alloc(8192, 7));
  assert.equal(code(`file:${dir}/junk.db`), "SQLITE_NOTADB"); // not a database
  assert.ok(!existsSync(join(dir, "junk.db-lock")), "a failed open releases its lock");
  assert.equal(code(`file://localhost${dir}/ok.db`), "opened");
  assert.equal(code(`file:///${dir.slice(1)}/ok.db`), "opened");
  assert.equal(code("file::memory:"), "opened");
});
