// Type-checks the TypeScript examples in the documentation, so the docs cannot drift
// from the API: every ```ts block of the given Markdown files becomes a module of its
// own under target/doc-snippets/, compiled with `tsc --noEmit` against the built
// package exactly as a user's program imports it (`import … from "edgesync"`).
//
//   node scripts/check-doc-snippets.mjs [file.md …]   (default: README.md, docs/*.md, js/README.md)
//
// A block fenced ```ts is a program for Node or a browser (lib ES2022 + DOM, @types/node);
// ```ts worker is a Cloudflare Worker (@cloudflare/workers-types, the `workerd` export
// condition). Other fences (```sh, ```js, ```toml, …) are not checked. Snippets must be
// complete programs: declare what they use. Errors are reported as `file.md:line`.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const FENCE = /^```(ts|typescript)(?:\s+(\w+))?\s*$/;

/** The TypeScript blocks of one Markdown file: `{ file, line, kind, code }` (`line`: of the first code line). */
export function extract(file) {
  const lines = readFileSync(file, "utf8").split("\n");
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const m = lines[i].match(FENCE);
    if (!m) continue;
    const kind = m[2] === "worker" ? "worker" : "node";
    if (m[2] !== undefined && m[2] !== "worker") throw new Error(`${file}:${i + 1}: unknown snippet kind ${m[2]}`);
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end].startsWith("```")) end++;
    if (end === lines.length) throw new Error(`${file}:${i + 1}: unterminated code block`);
    out.push({ file, line: start + 1, kind, code: lines.slice(start, end).join("\n") });
    i = end;
  }
  return out;
}

/** The Markdown files checked by default. */
export function defaultFiles() {
  const docs = path.join(REPO, "docs");
  const files = [path.join(REPO, "README.md"), path.join(REPO, "js/README.md")];
  if (existsSync(docs)) {
    for (const f of readdirSync(docs).sort()) if (f.endsWith(".md")) files.push(path.join(docs, f));
  }
  return files.filter((f) => existsSync(f));
}

const COMMON = {
  target: "ES2022",
  module: "ES2022",
  moduleResolution: "bundler",
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  isolatedModules: true,
};

const PROJECTS = {
  node: { ...COMMON, lib: ["ES2022", "DOM"], types: ["node"] },
  worker: { ...COMMON, lib: ["ES2022"], types: ["@cloudflare/workers-types"], customConditions: ["workerd"] },
};

/**
 * Writes the snippets of `files` under `outDir` and type-checks them. Returns
 * `{ snippets, errors }`: `errors` are tsc's messages with `file.md:line` locations.
 */
export function check(files, outDir = path.join(REPO, "target/doc-snippets")) {
  rmSync(outDir, { recursive: true, force: true });
  const snippets = files.flatMap(extract);
  const where = new Map(); // generated file name → snippet
  const byKind = { node: [], worker: [] };
  snippets.forEach((s, n) => {
    const name = `${path.basename(s.file, ".md")}-${n}.ts`;
    where.set(name, s);
    byKind[s.kind].push(name);
    mkdirSync(path.join(outDir, s.kind), { recursive: true });
    // `export {}` makes every snippet a module (its own scope, top-level await allowed).
    writeFileSync(path.join(outDir, s.kind, name), `${s.code}\nexport {};\n`);
  });
  const tsc = path.join(REPO, "node_modules/.bin/tsc");
  const errors = [];
  for (const [kind, names] of Object.entries(byKind)) {
    if (names.length === 0) continue;
    const dir = path.join(outDir, kind);
    writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: PROJECTS[kind], files: names }, null, 2));
    const r = spawnSync(tsc, ["-p", dir, "--pretty", "false"], { encoding: "utf8" });
    if (r.status === 0) continue;
    const text = `${r.stdout}${r.stderr}`.trim();
    for (const line of text.split("\n")) {
      const m = line.match(/^(?:.*[\\/])?([^\\/()]+\.ts)\((\d+),(\d+)\): (.*)$/);
      const s = m && where.get(m[1]);
      errors.push(s ? `${path.relative(REPO, s.file)}:${s.line + Number(m[2]) - 1}:${m[3]}: ${m[4]}` : line);
    }
  }
  return { snippets: snippets.length, errors };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => path.resolve(f)) : defaultFiles();
  const { snippets, errors } = check(files);
  if (errors.length > 0) {
    console.error(errors.join("\n"));
    console.error(`${errors.length} error(s) in the documentation's TypeScript snippets`);
    process.exit(1);
  }
  console.log(`${snippets} TypeScript snippets in ${files.length} Markdown files type-check`);
}
