// Pre-bundles a browser entry of the built package in place (scripts/build.sh):
//   node scripts/lib/bundle-entry.mjs pkg/entries/replica.web.js
// One ES module where tsc left a graph of them, so that a page that loads the package
// unbundled fetches one file (plus the chunk it shares with its lazy parts) instead of
// 22 modules level by level. The output replaces the entry, in the same directory: the
// `new URL("…", import.meta.url)` literals in it keep naming the right files.
// - Dynamic imports (browser/host.js, run only where a page has no worker) become lazy
//   chunks beside it, named after the entry; the code they share with the entry goes to
//   a chunk the entry imports, so each module is still one instance.
// - The inline copy of the wasm (`…/inline.js`) stays a file of its own, imported only
//   where the .wasm file is missing.
// - The error classes (wasm-errors.js) stay the package's one module, imported from
//   where it is: `LibsqlError` from `edgesync` and from `edgesync/replica` remain one
//   class, as when both were unbundled.
import path from "node:path";
import { build } from "esbuild";

const entry = path.resolve(process.argv[2]);
const dir = path.dirname(entry);
const name = path.basename(entry).split(".")[0];
const pkg = path.resolve(dir, "..");
const shared = path.join(pkg, "wasm-errors.js");

const keepShared = {
  name: "keep-shared",
  setup(b) {
    b.onResolve({ filter: /(^|\/)(wasm-errors|inline)\.js$/ }, (args) => {
      const abs = path.resolve(args.resolveDir, args.path);
      if (abs !== shared && !abs.endsWith(`${path.sep}inline.js`)) return undefined;
      let rel = path.relative(dir, abs).split(path.sep).join("/");
      if (!rel.startsWith(".")) rel = `./${rel}`;
      return { path: rel, external: true };
    });
  },
};

await build({
  entryPoints: [entry],
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  outdir: dir,
  entryNames: "[name]",
  chunkNames: `${name}-[name]-[hash]`,
  allowOverwrite: true,
  plugins: [keepShared],
  logLevel: "warning",
  logOverride: { "duplicate-object-key": "silent" },
});
