// The documentation's TypeScript snippets are type-checked (scripts/check-doc-snippets.mjs,
// run by `bash scripts/test.sh lint`). This checks the checker: it finds every block
// with its line, and a snippet that does not match the API fails, named by file:line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { check, defaultFiles, extract, REPO } from "../../scripts/check-doc-snippets.mjs";

const dir = mkdtempSync(path.join(tmpdir(), "edgesync-snippets-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function doc(name, text) {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

test("extract: ts blocks with their first line and kind; other fences ignored", () => {
  const file = doc("a.md", ["# A", "```ts", "const a = 1;", "```", "", "```sh", "echo no", "```", "```ts worker", "export {};", "```"].join("\n"));
  const s = extract(file);
  assert.deepEqual(
    s.map(({ line, kind, code }) => ({ line, kind, code })),
    [
      { line: 3, kind: "node", code: "const a = 1;" },
      { line: 10, kind: "worker", code: "export {};" },
    ],
  );
});

test("a snippet that does not match the API fails, reported at its line in the Markdown file", () => {
  const good = ['```ts', 'import { createClient } from "edgesync";', 'const db = createClient({ url: ":memory:" });', "await db.execute(\"select 1\");", "```"];
  const bad = ["", "```ts", 'import { createClient } from "edgesync";', 'const db = createClient({ url: ":memory:" });', 'await db.exec("select 1"); // no such method', "```"];
  const file = doc("b.md", [...good, ...bad].join("\n"));
  // Compiled inside the repo, where `edgesync` and the type packages resolve.
  const { snippets, errors } = check([file], path.join(REPO, "target/doc-snippets-selftest"));
  assert.equal(snippets, 2);
  assert.equal(errors.length, 1, errors.join("\n"));
  assert.match(errors[0], /b\.md:10:\d+: error TS2339: Property 'exec' does not exist/);
});

test("the real documentation has snippets to check in README, docs/ and the package README", () => {
  const files = defaultFiles().map((f) => path.basename(f));
  for (const f of ["README.md", "client.md", "replicas.md", "errors.md", "config.md"]) assert.ok(files.includes(f), f);
  const count = defaultFiles().flatMap(extract).length;
  assert.ok(count >= 10, `${count} snippets`);
});
