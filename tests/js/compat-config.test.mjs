// URLs and configs against the official @libsql/client: tests/data/urls.json is read by
// the Rust parser's tests and here, where each URL is given to both clients' createClient
// — the same protocol, or the same error code (a fixture's `differs` names a deliberate
// difference, docs/compatibility.md) — and to the TypeScript parser for the base URL.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createClient as official } from "@libsql/client";
import { createClient } from "edgesync";
import { expandConfig } from "../../pkg/url.js";

const fixture = JSON.parse(readFileSync(new URL("../data/urls.json", import.meta.url), "utf8"));

function outcome(make, config) {
  try {
    const c = make(config);
    const p = c.protocol;
    c.close();
    return { protocol: p };
  } catch (e) {
    return { error: e.code ?? e.constructor.name };
  }
}

test("remote URLs: the same protocol or error code as @libsql/client, and the fixture's base URL", () => {
  for (const c of fixture.remote) {
    const ours = outcome(createClient, { url: c.url });
    if (c.error) {
      assert.deepEqual(ours, { error: c.error }, c.url);
      if (!c.differs) assert.deepEqual(outcome(official, { url: c.url }), { error: c.error }, `${c.url} (official)`);
    } else {
      assert.deepEqual(ours, { protocol: c.ws ? "ws" : "http" }, c.url);
      assert.deepEqual(outcome(official, { url: c.url }), ours, `${c.url} (official)`);
      const t = expandConfig({ url: c.url }).target;
      assert.deepEqual([t.base, t.websocket], [c.base, c.ws], c.url);
    }
  }
});

test("local URLs: what they open, or the official error code", () => {
  for (const c of fixture.local) {
    if (c.error) {
      assert.deepEqual(outcome(createClient, { url: c.url }), { error: c.error }, c.url);
      assert.deepEqual(outcome(official, { url: c.url }), { error: c.error }, `${c.url} (official)`);
    } else {
      const t = expandConfig({ url: c.url }).target;
      assert.equal(t.kind, "local", c.url);
      if (c.memory) assert.equal(t.url, ":memory:", c.url);
      else assert.equal(t.url, `file:${c.path}`, c.url);
    }
  }
});

test("config errors: the official client's classes and codes", () => {
  const same = (config) => assert.deepEqual(outcome(createClient, config), outcome(official, config), JSON.stringify(config));
  same("libsql://h");
  same(null);
  same({ url: "http://h", intMode: "float" });
  same({});
  same({ url: 42 });
  same({ url: "http://h", tls: true });
  same({ url: "https://h", tls: false });
  same({ url: "libsql://h", tls: false });
  same({ url: "libsql://h:1", tls: false });
  // @libsql/client's fields are accepted.
  assert.deepEqual(outcome(createClient, { url: "http://h", concurrency: 0, readYourWrites: true, offline: true, syncInterval: 5 }), { protocol: "http" });
  // edgesync's own `intMode: "auto"` (its default) is a config the official client refuses.
  assert.deepEqual(outcome(createClient, { url: "http://h", intMode: "auto" }), { protocol: "http" });
});
