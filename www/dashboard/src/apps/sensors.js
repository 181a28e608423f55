// IoT sensors (seed 000): simulated sensors on this device, each its own writer loop,
// write readings into the local replica — online or not. Background sync (the device's
// interval, 5 s by default) carries them to the server; the analytics are local SQL over
// every device's readings that have arrived.
//
// `sensors.readings` and `fleet_totals.readings` are counters: every device's increments
// all count, so the fleet total equals the number of readings exactly once synced.
import { lineChart } from "../charts.js";
import { $, ago, card, clock, fill, h, newId, simpleTable, coalesce } from "../ui.js";

export const id = "sensors";
export const title = "IoT sensors";

export const schema = [
  `create table if not exists sensors (id text primary key, device text not null, name text not null, kind text not null,
     unit text not null, readings integer not null default 0)`,
  `create table if not exists sensor_readings (id text primary key, sensor text not null, device text not null,
     ts integer not null, value real not null)`,
  "create index if not exists sensor_readings_ts on sensor_readings (ts)",
  "create table if not exists fleet_totals (id text primary key, readings integer not null default 0)",
];

export const replicate = [
  ["sensors", { readings: "counter" }],
  ["sensor_readings", {}],
  ["fleet_totals", { readings: "counter" }],
];

const KINDS = [
  { kind: "temperature", unit: "°C", base: 21, spread: 3 },
  { kind: "humidity", unit: "%", base: 45, spread: 10 },
  { kind: "pressure", unit: "hPa", base: 1013, spread: 6 },
];

/** This device's sensors: one per kind, named after the device. */
function ownSensors(device) {
  const slug = device.config.device.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return KINDS.map((k) => ({ ...k, id: `${slug}-${k.kind}`, name: `${device.config.device} ${k.kind}` }));
}

/** The writers run at device level, so they keep writing while another page is shown. */
const writers = { timers: new Map(), running: false };

async function ensureSensors(device) {
  const db = device.db;
  await db.batch(
    [
      "insert or ignore into fleet_totals (id) values ('all')",
      ...ownSensors(device).map((s) => ({
        sql: "insert or ignore into sensors (id, device, name, kind, unit) values (?, ?, ?, ?, ?)",
        args: [s.id, device.config.device, s.name, s.kind, s.unit],
      })),
    ],
    "write",
  );
}

/** One reading of one sensor: the row, its sensor's counter and the fleet's, in one transaction. */
export async function writeReading(device, s, t = Date.now()) {
  const phase = (t / 60_000) * Math.PI * 2;
  const value = Math.round((s.base + Math.sin(phase + s.kind.length) * s.spread + (Math.random() - 0.5) * s.spread * 0.4) * 100) / 100;
  await device.db.batch(
    [
      { sql: "insert into sensor_readings (id, sensor, device, ts, value) values (?, ?, ?, ?, ?)", args: [newId("r"), s.id, device.config.device, t, value] },
      { sql: "update sensors set readings = readings + 1 where id = ?", args: [s.id] },
      "update fleet_totals set readings = readings + 1 where id = 'all'",
    ],
    "write",
  );
  device.changed("sensor_readings", "sensors", "fleet_totals");
}

export function setSimulation(device, on) {
  writers.running = on;
  for (const t of writers.timers.values()) clearTimeout(t);
  writers.timers.clear();
  if (!on) return;
  // Several writers: each sensor has its own loop and its own rhythm.
  for (const s of ownSensors(device)) {
    const loop = () => {
      writers.timers.set(s.id, setTimeout(async () => {
        if (!writers.running) return;
        try {
          await writeReading(device, s);
        } catch (e) {
          console.error("sensor write failed", e);
        }
        loop();
      }, 700 + Math.random() * 900));
    };
    loop();
  }
}

/** A burst: `perSensor` readings from every sensor of this device, the writers interleaved. */
export async function burst(device, perSensor) {
  const t0 = Date.now();
  await Promise.all(
    ownSensors(device).map(async (s, i) => {
      for (let k = 0; k < perSensor; k++) {
        await writeReading(device, s, t0 + k * 10 + i);
        await new Promise((r) => setTimeout(r, 0));
      }
    }),
  );
}

export function init(device) {
  void ensureSensors(device);
}

export function mount(el, device) {
  const db = device.db;
  el.append(
    h("div.app-head", null,
      h("div", null,
        h("p", null, "Each sensor of this device is its own writer, recording readings into the local replica whether the device is online or not. Background sync pushes them every ", h("b", null, `${device.config.interval / 1000} s`), "; the analytics below are plain SQL on the local copy of every device's readings."),
      ),
      h("div.row", null,
        h("button.btn#sim-toggle", { type: "button", onclick: () => { setSimulation(device, !writers.running); paintControls(); } }),
        h("button.btn#sim-burst", { type: "button", onclick: async () => { await burst(device, 10); } }, "Record 10 each"),
        h("button.btn.primary#sim-sync", { type: "button", onclick: () => void device.syncNow() }, "Sync now"),
      ),
    ),
    h("div.stats", null,
      h("div.stat", null, h("div.label", null, "Fleet readings (counter)"), h("div.value#fleet-total", null, "—"), h("div.sub#fleet-sub")),
      h("div.stat", null, h("div.label", null, "Readings on this device"), h("div.value#local-total", null, "—"), h("div.sub", null, "rows in sensor_readings")),
      h("div.stat", null, h("div.label", null, "Readings / min"), h("div.value#per-minute", null, "—"), h("div.sub", null, "last full minute, all devices")),
      h("div.stat", null, h("div.label", null, "Sync"), h("div.value#sensor-sync", null, "—"), h("div.sub#sensor-sync-sub")),
    ),
    h("div.grid.side", { style: { marginTop: "16px" } },
      card("Readings per minute (all sensors)", h("div.chart#rpm-chart")),
      card("This device's sensors", h("div.sensor-grid#sensor-grid")),
    ),
    h("div", { style: { marginTop: "16px" } }, card("Analytics (local SQL)", h("div#analytics"))),
  );
  const chart = lineChart($("rpm-chart"), { series: [{ label: "readings / min", color: "#2f6fde", fill: true }], format: (v) => String(Math.round(v)), minMax: 5 });

  function paintControls() {
    const b = $("sim-toggle");
    b.textContent = writers.running ? "Stop sensors" : "Start sensors";
    b.className = writers.running ? "btn danger" : "btn";
  }

  const paint = coalesce(async () => {
    const [fleet] = (await db.execute("select readings from fleet_totals where id = 'all'")).rows;
    const total = Number((await db.execute("select count(*) as n from sensor_readings")).rows[0].n);
    $("fleet-total").textContent = fleet ? String(fleet.readings) : "0";
    $("fleet-sub").textContent = fleet && Number(fleet.readings) === total ? "= rows here: all synced" : "rows still on their way";
    $("local-total").textContent = String(total);
    const now = Date.now();
    const minute = Math.floor(now / 60_000) - 1;
    const perMin = await db.execute({ sql: "select ts / 60000 as m, count(*) as n from sensor_readings where ts >= ? group by m order by m", args: [(minute - 14) * 60_000] });
    const byMin = new Map(perMin.rows.map((r) => [Number(r.m), Number(r.n)]));
    $("per-minute").textContent = String(byMin.get(minute) ?? 0);
    const xs = [], ys = [];
    for (let m = minute - 14; m <= minute + 1; m++) {
      xs.push(m * 60);
      ys.push(byMin.get(m) ?? 0);
    }
    chart.set([xs, ys]);

    const stats = await db.execute(`select s.name, s.device, s.unit, s.readings, count(r.id) as n, round(avg(r.value), 2) as avg,
        min(r.value) as min, max(r.value) as max, max(r.ts) as last
      from sensors s left join sensor_readings r on r.sensor = s.id group by s.id order by s.device, s.name`);
    fill($("analytics"), stats.rows.length
      ? h("div.table-wrap", null, simpleTable(
          ["Sensor", "Device", "Readings (counter)", "Rows", "Avg", "Min", "Max", "Last"],
          stats.rows.map((r) => [r.name, r.device, String(r.readings), String(r.n), r.avg === null ? "—" : `${r.avg} ${r.unit}`, r.min === null ? "—" : `${r.min}`, r.max === null ? "—" : `${r.max}`, r.last ? clock(Number(r.last)) : "—"]),
        ))
      : h("div.empty", null, "No sensors yet"));

    const latest = await db.execute({ sql: `select s.id, s.name, s.unit, (select value from sensor_readings where sensor = s.id order by ts desc limit 1) as v
        from sensors s where s.device = ? order by s.name`, args: [device.config.device] });
    fill($("sensor-grid"), latest.rows.map((r) => h(`div.sensor${writers.running ? ".running" : ""}`, null, h("div.name", null, r.name), h("div.reading", null, r.v === null ? "—" : `${r.v} ${r.unit}`))));
  });

  const paintSync = () => {
    const s = device.status();
    $("sensor-sync").textContent = s.paused ? "offline" : s.retryCount ? `retry ${s.retryCount}` : s.lastPull?.ok ? ago(s.lastPull.at) : "—";
    $("sensor-sync-sub").textContent = `${s.pendingChanges} pending · every ${device.config.interval / 1000} s`;
  };
  paintControls();
  paint();
  paintSync();
  const timer = setInterval(paintSync, 500);
  const off = device.on("changed", paint);
  return () => {
    clearInterval(timer);
    off();
    chart.destroy();
  };
}
