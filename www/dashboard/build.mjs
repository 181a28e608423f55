// Vendors the dashboard's one dependency, uPlot (from node_modules, installed from npm
// by package-lock.json), into www/dashboard/vendor/: the page loads nothing from a CDN.
// Run by scripts/build.sh; idempotent.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "..", "..", "node_modules", "uplot", "dist");
const vendor = path.join(here, "vendor");
fs.mkdirSync(vendor, { recursive: true });
for (const file of ["uPlot.esm.js", "uPlot.min.css"]) {
  const from = path.join(dist, file);
  if (!fs.existsSync(from)) throw new Error(`${from} is missing: run npm ci (uplot is a devDependency)`);
  fs.copyFileSync(from, path.join(vendor, file));
}
const { version } = JSON.parse(fs.readFileSync(path.join(dist, "..", "package.json"), "utf8"));
fs.writeFileSync(path.join(vendor, "README"), `uPlot ${version} (MIT), copied from node_modules/uplot/dist by www/dashboard/build.mjs. Generated: not committed.\n`);
