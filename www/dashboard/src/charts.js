// Time-series charts with uPlot (vendored from npm by www/dashboard/build.mjs).
import uPlot from "uplot";

const PALETTE = ["#2f6fde", "#f79009", "#d92d20", "#12805c", "#6941c6", "#0ba5ec", "#ee46bc", "#667085"];

/**
 * A line chart that fills its container's width.
 * Returns `{ set(data), destroy() }`; `data` is uPlot's layout: [xs (seconds), ys…].
 * @param {HTMLElement} el
 * @param {{ title?: string, series: Array<{ label: string, color?: string, fill?: boolean, bars?: boolean }>,
 *   height?: number, yLabel?: string, format?: (v: number) => string, minMax?: number }} opts
 *   `minMax`: the y axis shows at least 0..minMax.
 */
export function lineChart(el, { title, series, height = 200, yLabel = "", format = (v) => String(v), minMax = 1 }) {
  /** @type {any} */
  const opts = {
    title,
    width: Math.max(280, el.clientWidth || 480),
    height,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(minMax, (max ?? 1) * 1.15)] } },
    axes: [
      { stroke: "#667085", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#eef0f3" } },
      { stroke: "#667085", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#eef0f3" }, label: yLabel, size: 56, values: (_u, vals) => vals.map(format) },
    ],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color ?? PALETTE[i % PALETTE.length],
        width: 2,
        fill: s.fill ? `${s.color ?? PALETTE[i % PALETTE.length]}22` : undefined,
        spanGaps: true,
        points: { show: false },
        paths: s.bars ? uPlot.paths.bars?.({ size: [0.6, 12] }) : undefined,
        value: (_u, v) => (v === null || v === undefined ? "—" : format(v)),
      })),
    ],
  };
  /** @type {any} */
  const empty = [[], ...series.map(() => [])];
  const plot = new uPlot(opts, empty, el);
  const resize = new ResizeObserver(() => {
    const w = el.clientWidth;
    if (w > 0 && Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height });
  });
  resize.observe(el);
  return {
    plot,
    set(data) {
      plot.setData(data);
    },
    destroy() {
      resize.disconnect();
      plot.destroy();
    },
  };
}

export { PALETTE };
