// Test harness: headless Chromium (the Debian package) through playwright-core, with
// the pages the browser-replica tests and benchmark load. Node built-ins + playwright-core.
//
//   const web = await startStaticServer({ root: REPO_ROOT, routes: PAGES });
//   const browser = await launchProfile(profileDir());        // a persistent profile
//   const tab = await openTab(browser, `${web.url}/edgesync-test.html`);
//   await crash(tab);                                         // the renderer, via CDP
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.EDGESYNC_CHROMIUM || '/usr/bin/chromium'; // docs/testing.md
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A page that loads the package (`window.edgesync`) and marks `<body data-ready>`. */
export const TEST_PAGE = `<!doctype html><meta charset="utf-8"><title>edgesync test</title><body><script type="module">
import * as edgesync from "/pkg/web.js";
window.edgesync = edgesync;
document.body.dataset.ready = "1";
</script></body>`;

/** Static-server routes for the test page (and an empty favicon, so no 404 is logged). */
export const PAGES = {
  '/edgesync-test.html': { type: 'text/html; charset=utf-8', body: TEST_PAGE },
  '/favicon.ico': { type: 'image/x-icon', body: '' },
};

const profiles = [];
/** A fresh profile directory, removed at exit. */
export function profileDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgesync-chromium-'));
  profiles.push(dir);
  return dir;
}
process.on('exit', () => {
  for (const d of profiles) fs.rmSync(d, { recursive: true, force: true });
});

/** A browser on a persistent profile (OPFS survives closing and relaunching it). */
export function launchProfile(dir, extraArgs = []) {
  return chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS, ...extraArgs],
    viewport: { width: 900, height: 600 },
  });
}

/**
 * Opens `url` in a new tab of `context` and waits for the package. Uncaught errors and
 * console errors of the tab are pushed to `problems` (tests assert it stays empty).
 */
export async function openTab(context, url, problems = []) {
  const page = await context.newPage();
  watch(page, problems);
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { state: 'attached', timeout: 30_000 });
  return page;
}

/** Records a page's uncaught errors and console errors in `problems`. */
export function watch(page, problems) {
  page.on('pageerror', (e) => problems.push(`pageerror: ${e?.stack ?? e}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console.error: ${m.text()}`);
  });
}

/**
 * Crashes the tab's renderer (CDP `Page.crash`, which never answers: sent without
 * waiting, then the page's `crash` event is awaited).
 */
export async function crash(page) {
  const cdp = await page.context().newCDPSession(page);
  const crashed = page.waitForEvent('crash', { timeout: 30_000 });
  cdp.send('Page.crash').catch(() => {});
  await crashed;
}
