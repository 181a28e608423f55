// The dashboard's entry: opens the device (local replica), keeps the header's status
// live, and routes `#/<view>` to a view or an app.
//
// For tests and the demo tour: `window.edgesync = { createClient }`,
// `window.dashboard = { device, db }`, and <body data-ready="1"> once the replica is open
// and every app's tables exist.
import { createClient } from "edgesync";
import { loadConfig } from "./config.js";
import { Device } from "./device.js";
import { $, ago, duration, fill, h, toast, untilNext, viewChanged } from "./ui.js";
import * as overview from "./views/overview.js";
import * as activity from "./views/activity.js";
import * as data from "./views/data.js";
import { APPS } from "./apps/index.js";

window.edgesync = { createClient };

/** @type {Record<string, { title: string, mount: (el: HTMLElement, device: Device) => (() => void) | void }>} */
const ROUTES = {
  overview: { title: "Overview", mount: overview.mount },
  activity: { title: "Sync log & conflicts", mount: activity.mount },
  data: { title: "Tables & SQL", mount: data.mount },
};
for (const app of APPS) ROUTES[app.id] = { title: app.title, mount: app.mount };

let unmount = () => {};

function route(device) {
  const name = location.hash.replace(/^#\/?/, "") || "overview";
  const r = ROUTES[name] ?? ROUTES.overview;
  unmount();
  viewChanged();
  const view = $("view");
  fill(view);
  view.dataset.view = ROUTES[name] ? name : "overview";
  $("view-title").textContent = r.title;
  document.title = `${r.title} · edgesync`;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("data-route") === view.dataset.view);
  const off = r.mount(view, device);
  unmount = typeof off === "function" ? off : () => {};
}

/** The header: connection state, pending changes, hub; the switch and Sync now. */
function header(device) {
  const pill = $("conn-pill");
  const text = $("conn-text");
  const chip = $("pending-chip");
  const hubChip = $("hub-chip");
  const sw = /** @type {HTMLInputElement} */ ($("online-switch"));
  const label = $("online-label");

  const paint = () => {
    const s = device.status();
    let state, words;
    if (s.paused) [state, words] = ["paused", "Offline (paused)"];
    else if (s.gaveUp) [state, words] = ["gave-up", `Gave up after ${s.retryCount} attempts`];
    else if (s.syncing) [state, words] = ["syncing", "Syncing…"];
    else if (!device.config.sync) [state, words] = ["offline", "Local only"];
    else if (s.retryCount > 0) [state, words] = ["offline", `Offline · retry in ${duration(untilNext(s))}`];
    else if (s.lastPull?.ok) [state, words] = ["online", `Online · synced ${ago(s.lastPull.at)}`];
    else [state, words] = ["starting", "Connecting…"];
    pill.dataset.state = state;
    text.textContent = words;
    chip.textContent = `${s.pendingChanges} pending`;
    chip.className = `chip${s.pendingChanges > 0 ? " warn" : " ok"}`;
    sw.checked = !s.paused;
    label.textContent = s.paused ? "Offline" : "Online";
    if (!device.config.hub) hubChip.textContent = "hub off";
    else hubChip.textContent = device.hubConnected ? "hub live" : "hub connecting";
    hubChip.className = `chip${device.hubConnected ? " ok" : ""}`;
    const banner = $("banner");
    if (s.gaveUp) {
      banner.hidden = false;
      banner.className = "banner";
      banner.textContent = `Sync gave up after ${s.retryCount} failed attempts (${s.lastPull?.error ?? "error"}). Your changes are kept locally. Use “Sync now” or switch online to try again.`;
    } else {
      banner.hidden = true;
    }
  };
  sw.addEventListener("change", async () => {
    await device.setOnline(sw.checked);
    toast(sw.checked ? "Back online: syncing" : "Offline: changes stay on this device until you go online");
    paint();
  });
  $("sync-now").addEventListener("click", async () => {
    const btn = /** @type {HTMLButtonElement} */ ($("sync-now"));
    btn.disabled = true;
    const r = await device.syncNow();
    btn.disabled = false;
    if (r instanceof Error) toast(`Sync failed: ${/** @type {any} */ (r).code ?? "ERROR"} — ${r.message}`, "bad");
    else toast(`Synced: ${r.changesPushed} pushed, ${r.changesApplied} applied in ${duration(r.duration)}`);
    paint();
  });
  device.on("gave-up", (e) => toast(`Sync gave up: ${e.code}`, "bad"));
  device.on("hub", paint);
  setInterval(paint, 250);
  paint();
}

function sidebar(device) {
  const c = device.config;
  $("device-name").textContent = `${c.device} · ${c.user}`;
  const store = $("device-store");
  const paint = () => {
    const s = /** @type {any} */ (device.status());
    const persistent = device.storage === "opfs" && s.persistent !== false;
    store.textContent = persistent ? `OPFS · file:${c.store}` : `memory (not persistent)`;
    store.className = `device-store ${persistent ? "persistent" : "memory"}`;
    store.title = device.storageNote || "";
  };
  device.on("storage", paint);
  setInterval(paint, 1000);
  paint();
  $("server-line").textContent = c.sync ? `sqld ${c.sync}` : "no server: local only";
}

async function start() {
  const config = await loadConfig();
  const device = new Device(
    config,
    APPS.map((a) => ({ schema: a.schema, replicate: /** @type {any} */ (a.replicate) })),
  );
  try {
    await device.open();
  } catch (e) {
    fill($("view"), h("div.card", null, h("h2", null, "The local replica did not open"), h("pre.mono", null, `${/** @type {any} */ (e).code ?? ""} ${String(e)}`)));
    throw e;
  }
  for (const app of APPS) /** @type {any} */ (app).init?.(device);
  window.dashboard = { device, db: device.db };
  header(device);
  sidebar(device);
  window.addEventListener("hashchange", () => route(device));
  route(device);
  document.body.dataset.ready = "1";
}

void start();
