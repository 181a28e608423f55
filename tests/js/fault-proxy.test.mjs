// The fault-injection proxy (tests/support/fault-proxy.mjs) between plain fetch and a real sqld.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { startSqld, freePort } from "../support/sqld.mjs";
import { startFaultProxy, FAULT_PROXY_PATH, mulberry32 } from "../support/fault-proxy.mjs";

let sqld;
let proxy;
const unhandled = [];
process.on("unhandledRejection", (e) => unhandled.push(e));

before(async () => {
  sqld = await startSqld({ auth: true });
  proxy = await startFaultProxy({ target: sqld.url });
  const out = await pipelineTo(sqld.url, ["create table t(tag text, x integer)"]);
  assert.equal(out.results[0].type, "ok", JSON.stringify(out));
});
after(async () => {
  await proxy?.stop();
  await sqld?.stop();
  assert.deepEqual(unhandled, [], "no unhandled promise rejections");
});

function headers(token = sqld.tokens.rw) {
  return { authorization: `Bearer ${token}`, "content-type": "application/json" };
}

function pipelineBody(sqls) {
  return JSON.stringify({
    requests: [...sqls.map((sql) => ({ type: "execute", stmt: { sql } })), { type: "close" }],
  });
}

/** POST a Hrana v2 pipeline; returns the fetch Response (body unread). */
function post(base, sqls, { signal, path = "/v2/pipeline", token } = {}) {
  return fetch(base + path, { method: "POST", headers: headers(token), body: pipelineBody(sqls), signal });
}

/** POST and parse the JSON body; throws on any transport failure or non-200. */
async function pipelineTo(base, sqls, opts) {
  const res = await post(base, sqls, opts);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text);
}

/** Rows with this tag, read directly from sqld (never through the proxy). */
async function countTag(tag) {
  const out = await pipelineTo(sqld.url, [`select count(*) from t where tag = '${tag}'`]);
  assert.equal(out.results[0].type, "ok", JSON.stringify(out));
  return Number(out.results[0].response.result.rows[0][0].value);
}

/** Resolves with the error when the fetch or the body read fails; fails the test if both succeed. */
async function failsToRead(promise) {
  try {
    const res = await promise;
    const text = await res.text();
    assert.fail(`expected a broken response, got ${res.status} ${text}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return err;
  }
}

function insert(tag, x = 1) {
  return `insert into t values ('${tag}', ${x})`;
}

test("pass forwards method, path, auth and body and streams the answer back", async () => {
  proxy.setFaults("pass");
  proxy.resetStats();
  const out = await pipelineTo(proxy.url, [insert("pass")]);
  assert.equal(out.results[0].type, "ok", JSON.stringify(out));
  assert.equal(out.results[0].response.result.affected_row_count, 1);
  assert.equal(await countTag("pass"), 1);
  // v3 works too.
  const v3 = await pipelineTo(proxy.url, ["select 1"], { path: "/v3/pipeline" });
  assert.equal(v3.results[0].type, "ok");
  // Authorization is forwarded: a bad token is rejected by sqld, not the proxy.
  const bad = await post(proxy.url, ["select 1"], { token: "nope" });
  await bad.arrayBuffer();
  assert.equal(bad.status, 401);
  // A read-only token is forwarded as such.
  const ro = await post(proxy.url, [insert("pass-ro")], { token: sqld.tokens.ro });
  assert.equal(ro.status, 403, await ro.text());
  assert.equal(await countTag("pass-ro"), 0);
  const s = proxy.stats();
  assert.equal(s.total, 4);
  assert.equal(s.pass, 4);
  assert.deepEqual(s.log, ["pass", "pass", "pass", "pass"]);
});

test("offline resets the connection at once and forwards nothing", async () => {
  proxy.setFaults("offline");
  proxy.resetStats();
  const t0 = Date.now();
  await assert.rejects(post(proxy.url, [insert("offline")]), TypeError);
  assert.ok(Date.now() - t0 < 1000, `fails fast (${Date.now() - t0} ms)`);
  assert.equal(await countTag("offline"), 0);
  assert.equal(proxy.stats().offline, 1);
  proxy.setFaults("pass");
});

test("delay waits delayMs and then answers normally", async () => {
  proxy.setFaults({ next: ["delay"], delayMs: 300 });
  proxy.resetStats();
  const t0 = Date.now();
  const out = await pipelineTo(proxy.url, [insert("delay")]);
  const took = Date.now() - t0;
  assert.ok(took >= 280, `delayed (${took} ms)`);
  assert.equal(out.results[0].type, "ok");
  assert.equal(await countTag("delay"), 1);
  // The queue is used up: the next request is quick.
  const t1 = Date.now();
  await pipelineTo(proxy.url, ["select 1"]);
  assert.ok(Date.now() - t1 < 280);
  assert.deepEqual(proxy.stats().log, ["delay", "pass"]);
});

test("drop never answers: the client times out, nothing reaches sqld", async () => {
  proxy.setFaults({ next: ["drop"] });
  proxy.resetStats();
  const t0 = Date.now();
  await assert.rejects(post(proxy.url, [insert("drop")], { signal: AbortSignal.timeout(300) }), (e) => {
    assert.equal(e.name, "TimeoutError");
    return true;
  });
  assert.ok(Date.now() - t0 >= 280);
  assert.equal(await countTag("drop"), 0);
  // The held socket is released once the client gives up.
  for (let i = 0; i < 50 && proxy.stats().held > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(proxy.stats().held, 0);
  const out = await pipelineTo(proxy.url, ["select 1"]);
  assert.equal(out.results[0].type, "ok");
  assert.deepEqual(proxy.stats().log, ["drop", "pass"]);
});

test("cut: sqld commits, the client gets a truncated response", async () => {
  proxy.setFaults("cut");
  proxy.resetStats();
  const err = await failsToRead(post(proxy.url, [insert("cut")]));
  assert.ok(err instanceof Error, String(err));
  assert.equal(await countTag("cut"), 1);
  // Raw view: the status line and headers arrive, then half the announced body, then EOF.
  const raw = await rawRequest(proxy.port, "/v2/pipeline", pipelineBody([insert("cut-raw")]));
  assert.match(raw.head, /^HTTP\/1\.1 200 /);
  const len = Number(/\r\ncontent-length: (\d+)/i.exec(raw.head)?.[1]);
  assert.ok(len > 0, raw.head);
  assert.equal(raw.body.length, Math.floor(len / 2));
  assert.equal(await countTag("cut-raw"), 1);
  assert.equal(proxy.stats().cut, 2);
  proxy.setFaults("pass");
});

test("lose: sqld commits, the client gets nothing", async () => {
  proxy.setFaults({ next: ["lose", "lose"] });
  proxy.resetStats();
  await assert.rejects(post(proxy.url, [insert("lose")]), TypeError);
  assert.equal(await countTag("lose"), 1);
  const raw = await rawRequest(proxy.port, "/v2/pipeline", pipelineBody([insert("lose")]));
  assert.equal(raw.all.length, 0, "not a byte is sent");
  assert.equal(await countTag("lose"), 2);
  await pipelineTo(proxy.url, [insert("lose")]); // queue used up: passes
  assert.equal(await countTag("lose"), 3);
  assert.deepEqual(proxy.stats().log, ["lose", "lose", "pass"]);
});

test("duplicate: sqld runs the request twice, the client sees the second answer", async () => {
  proxy.setFaults({ next: ["duplicate"] });
  proxy.resetStats();
  const out = await pipelineTo(proxy.url, [insert("dup")]);
  assert.equal(out.results[0].type, "ok");
  assert.equal(await countTag("dup"), 2);
  // The answer is the replay's: its rowid is the later of the two.
  const rowids = await pipelineTo(sqld.url, ["select max(rowid) from t where tag = 'dup'"]);
  assert.equal(out.results[0].response.result.last_insert_rowid, rowids.results[0].response.result.rows[0][0].value);
  assert.equal(proxy.stats().duplicate, 1);
});

test("stall holds a request past the client's timeout, then forwards it on release(): a late commit", async () => {
  proxy.setFaults({ next: ["stall", "stall"] });
  proxy.resetStats();
  await assert.rejects(post(proxy.url, [insert("stall")], { signal: AbortSignal.timeout(200) }), (e) => e.name === "TimeoutError");
  assert.equal(proxy.stalled(), 1);
  assert.equal(await countTag("stall"), 0, "held: nothing reached sqld yet");
  await proxy.release();
  assert.equal(proxy.stalled(), 0);
  assert.equal(await countTag("stall"), 1, "committed after the client gave up");
  // A client still waiting gets the answer once released.
  const waiting = pipelineTo(proxy.url, [insert("stall-2")]);
  await proxy.waitStalled(1);
  await proxy.release();
  assert.equal((await waiting).results[0].type, "ok");
  assert.equal(await countTag("stall-2"), 1);
  // stallMs releases by itself.
  proxy.setFaults({ next: ["stall"], stallMs: 150 });
  const t0 = Date.now();
  await pipelineTo(proxy.url, [insert("stall-3")]);
  assert.ok(Date.now() - t0 >= 140);
  assert.deepEqual(proxy.stats().log, ["stall", "stall", "stall"]);
});

test("error answers 500 without forwarding; garbage forwards and answers 200 with a body that is not JSON", async () => {
  proxy.setFaults({ next: ["error", "garbage"] });
  proxy.resetStats();
  const e500 = await post(proxy.url, [insert("e500")]);
  assert.equal(e500.status, 500);
  await e500.text();
  assert.equal(await countTag("e500"), 0);
  const junk = await post(proxy.url, [insert("junk")]);
  assert.equal(junk.status, 200);
  const text = await junk.text();
  assert.throws(() => JSON.parse(text), SyntaxError, text);
  assert.equal(await countTag("junk"), 1, "the server committed");
  assert.deepEqual(proxy.stats().log, ["error", "garbage"]);
});

test("matchBody faults only requests whose body matches", async () => {
  proxy.setFaults({ next: ["offline"], matchBody: (b) => b.includes("mb-hit") });
  proxy.resetStats();
  await pipelineTo(proxy.url, [insert("mb-miss")]);
  await assert.rejects(post(proxy.url, [insert("mb-hit")]), TypeError);
  await pipelineTo(proxy.url, [insert("mb-hit")]); // queue used up
  assert.equal(await countTag("mb-miss"), 1);
  assert.equal(await countTag("mb-hit"), 1);
  assert.deepEqual(proxy.stats().log, ["pass", "offline", "pass"]);
  proxy.setFaults("pass");
});

test("next queue applies kinds in order, then passes", async () => {
  proxy.setFaults({ next: ["cut", "pass", "lose"] });
  proxy.resetStats();
  await failsToRead(post(proxy.url, [insert("q1")]));
  await pipelineTo(proxy.url, [insert("q2")]);
  await failsToRead(post(proxy.url, [insert("q3")]));
  await pipelineTo(proxy.url, [insert("q4")]);
  for (const tag of ["q1", "q2", "q3", "q4"]) assert.equal(await countTag(tag), 1, tag);
  const s = proxy.stats();
  assert.deepEqual(s.log, ["cut", "pass", "lose", "pass"]);
  assert.equal(s.total, 4);
  assert.equal(s.cut, 1);
  assert.equal(s.lose, 1);
  assert.equal(s.pass, 2);
});

test("pathPrefix and match restrict which requests are faulted", async () => {
  proxy.setFaults({ kind: "offline", pathPrefix: "/v3/" });
  proxy.resetStats();
  await pipelineTo(proxy.url, ["select 1"]); // /v2 passes
  await assert.rejects(post(proxy.url, ["select 1"], { path: "/v3/pipeline" }), TypeError);
  proxy.setFaults({ next: ["lose"], match: (req) => req.method === "POST" && req.headers["x-fault"] === "yes" });
  const health = await fetch(proxy.url + "/health");
  await health.arrayBuffer();
  assert.equal(health.status, 200); // not matched: passes, queue untouched
  await pipelineTo(proxy.url, ["select 1"]); // no header: passes
  await assert.rejects(
    fetch(proxy.url + "/v2/pipeline", { method: "POST", headers: { ...headers(), "x-fault": "yes" }, body: pipelineBody(["select 1"]) }),
    TypeError,
  );
  assert.deepEqual(proxy.stats().log, ["pass", "offline", "pass", "pass", "lose"]);
  assert.throws(() => proxy.setFaults("explode"), /unknown fault kind/);
  assert.throws(() => proxy.setFaults({ random: { cut: 0.7, lose: 0.7 } }), /sum/);
  proxy.setFaults("pass");
});

test("random mode with a seed is reproducible and the server effects match the log", async () => {
  const spec = (seed) => ({
    random: { drop: 0.05, cut: 0.1, lose: 0.1, duplicate: 0.1, offline: 0.05, delay: 0.1 },
    seed,
    delayMs: 20,
  });
  const N = 30;
  const run = async (seed, tag) => {
    proxy.setFaults(spec(seed));
    proxy.resetStats();
    for (let i = 0; i < N; i++) {
      try {
        const res = await post(proxy.url, [insert(tag, i)], { signal: AbortSignal.timeout(300) });
        await res.arrayBuffer();
      } catch {
        /* faulted */
      }
    }
    return proxy.stats();
  };
  const a = await run(42, "rnd-a");
  const b = await run(42, "rnd-b");
  const c = await run(7, "rnd-c");
  proxy.setFaults("pass");
  assert.equal(a.total, N);
  assert.deepEqual(a.log, b.log, "same seed, same sequence");
  assert.notDeepEqual(a.log, c.log, "another seed, another sequence");
  assert.ok(new Set(a.log).size >= 4, `a mix of kinds: ${a.log.join(",")}`);
  for (const k of ["pass", "offline", "delay", "drop", "cut", "lose", "duplicate"]) {
    assert.equal(a[k], a.log.filter((x) => x === k).length, k);
  }
  // Each kind's effect on the server: offline/drop 0 rows, duplicate 2, the rest 1.
  const expected = (log) => log.reduce((n, k) => n + ({ offline: 0, drop: 0, duplicate: 2 }[k] ?? 1), 0);
  assert.equal(await countTag("rnd-a"), expected(a.log));
  assert.equal(await countTag("rnd-b"), expected(b.log));
  assert.equal(await countTag("rnd-c"), expected(c.log));
  // mulberry32 itself is deterministic.
  const r1 = mulberry32(42);
  const r2 = mulberry32(42);
  for (let i = 0; i < 5; i++) assert.equal(r1(), r2());
});

test("an unreachable upstream gives 502 and the proxy survives client misbehaviour", async () => {
  const dead = await startFaultProxy({ target: `http://127.0.0.1:${await freePort()}` });
  try {
    const res = await post(dead.url, ["select 1"]);
    assert.equal(res.status, 502);
    await res.text();
    dead.setFaults("lose");
    await assert.rejects(post(dead.url, ["select 1"]), TypeError);
    assert.equal(dead.stats().upstreamErrors, 2);
  } finally {
    await dead.stop();
  }
  // Garbage, a half-sent request and an abort during a delay do not crash the proxy.
  await new Promise((resolve) => {
    const s = net.connect(proxy.port, "127.0.0.1", () => s.end("NOT HTTP\r\n\r\n"));
    s.on("error", resolve);
    s.on("close", resolve);
    s.resume();
  });
  await new Promise((resolve) => {
    const s = net.connect(proxy.port, "127.0.0.1", () => {
      s.write("POST /v2/pipeline HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"req");
      setTimeout(() => s.destroy(), 50);
    });
    s.on("error", resolve);
    s.on("close", resolve);
  });
  proxy.setFaults({ next: ["delay"], delayMs: 300 });
  await assert.rejects(post(proxy.url, [insert("aborted-delay")], { signal: AbortSignal.timeout(50) }));
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(await countTag("aborted-delay"), 0, "the client left before the delay ended: nothing forwarded");
  const out = await pipelineTo(proxy.url, ["select 1"]);
  assert.equal(out.results[0].type, "ok");
});

test("stop() closes held (dropped) sockets and keep-alive connections", async () => {
  const p = await startFaultProxy({ target: sqld.url });
  p.setFaults("drop");
  const pending = post(p.url, [insert("stopped")], { signal: AbortSignal.timeout(10_000) });
  pending.catch(() => {});
  for (let i = 0; i < 100 && p.stats().held < 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(p.stats().held, 1);
  const t0 = Date.now();
  await p.stop();
  await assert.rejects(pending, (e) => e.name !== "TimeoutError");
  assert.ok(Date.now() - t0 < 2000, `stop released the client promptly (${Date.now() - t0} ms)`);
  await assert.rejects(fetch(p.url + "/health"), TypeError); // no longer listening
  assert.equal(await countTag("stopped"), 0);
});

test("CLI: prints the port, takes faults over /__proxy/faults, stops on SIGTERM", async () => {
  const child = spawn(process.execPath, [FAULT_PROXY_PATH, "--target", sqld.url], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = once(child, "exit");
  try {
    const line = await new Promise((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new Error(`no port line; stderr: ${stderr}`)), 10_000);
      child.stdout.on("data", (d) => {
        buf += d;
        const nl = buf.indexOf("\n");
        if (nl >= 0) {
          clearTimeout(timer);
          resolve(buf.slice(0, nl));
        }
      });
      child.once("exit", (code) => reject(new Error(`exited ${code}; stderr: ${stderr}`)));
    });
    const info = JSON.parse(line);
    assert.equal(typeof info.port, "number");
    assert.equal(info.url, `http://127.0.0.1:${info.port}`);

    const set = await fetch(info.url + "/__proxy/faults", { method: "POST", body: JSON.stringify({ next: ["lose", "duplicate"] }) });
    await set.arrayBuffer();
    assert.equal(set.status, 204);
    const bad = await fetch(info.url + "/__proxy/faults", { method: "POST", body: '"nonsense"' });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, /unknown fault kind/);

    await assert.rejects(post(info.url, [insert("cli-lose")]), TypeError);
    assert.equal(await countTag("cli-lose"), 1);
    await pipelineTo(info.url, [insert("cli-dup")]);
    assert.equal(await countTag("cli-dup"), 2);
    await pipelineTo(info.url, [insert("cli-pass")]);
    assert.equal(await countTag("cli-pass"), 1);

    const stats = await (await fetch(info.url + "/__proxy/stats")).json();
    assert.equal(stats.total, 3, "control requests are not counted or forwarded");
    assert.deepEqual(stats.log, ["lose", "duplicate", "pass"]);
    assert.equal(stats.lose, 1);
    assert.equal(stats.duplicate, 1);
    const reset = await fetch(info.url + "/__proxy/reset", { method: "POST" });
    assert.equal(reset.status, 204);
    assert.equal((await (await fetch(info.url + "/__proxy/stats")).json()).total, 0);
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGTERM");
    const [code, signal] = await exited;
    assert.equal(code, 0, `clean exit on SIGTERM (signal ${signal}); stderr: ${stderr}`);
  }
});

/**
 * A raw HTTP/1.1 request over a fresh socket; collects everything until the peer closes.
 * Resolves { all, head, body } (Buffers / string).
 */
function rawRequest(port, path, body) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const s = net.connect(port, "127.0.0.1", () => {
      s.write(
        `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nauthorization: Bearer ${sqld.tokens.rw}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n` +
          body,
      );
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error("raw request: no close within 5 s"));
    }, 5000);
    s.on("data", (c) => chunks.push(c));
    const done = () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const sep = all.indexOf("\r\n\r\n");
      resolve({ all, head: sep < 0 ? all.toString("latin1") : all.subarray(0, sep).toString("latin1"), body: sep < 0 ? Buffer.alloc(0) : all.subarray(sep + 4) });
    };
    s.on("error", done);
    s.on("close", done);
  });
}
