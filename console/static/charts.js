// Charts with uPlot (vendored under /console/vendor/uplot, loaded as the global `uPlot`).

import { fmtValue } from "./dom.js";

const COLORS = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00"];

function epochSeconds(value) {
  const text = String(value);
  return Date.parse(text.endsWith("Z") ? text : `${text}Z`) / 1000;
}

// Keep a chart as wide as its box.
function fit(plot, box, height) {
  const observer = new ResizeObserver(() => {
    if (!box.isConnected) {
      observer.disconnect(); // the page was left
      plot.destroy();
      return;
    }
    const width = Math.max(box.clientWidth, 200);
    if (width !== plot.width) plot.setSize({ width, height });
  });
  observer.observe(box);
  return plot;
}

const MAX_SERIES = 10;

// A label keeps its colour on every chart (a function is the same colour everywhere).
function colourOf(label) {
  let hash = 0;
  for (const ch of String(label)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return COLORS[hash % COLORS.length];
}

// Long rows (time, label, value) to wide: one column per label, the MAX_SERIES labels with the highest peaks.
function pivot(rows) {
  const times = [...new Set(rows.map((r) => r[0]))].sort();
  const peaks = new Map();
  for (const [, label, value] of rows) peaks.set(label, Math.max(peaks.get(label) ?? -Infinity, value ?? -Infinity));
  const labels = [...peaks.keys()].sort((a, b) => peaks.get(b) - peaks.get(a) || String(a).localeCompare(b));
  const shown = labels.slice(0, MAX_SERIES);
  const at = new Map(times.map((t, i) => [t, i]));
  const wide = times.map((t) => [t, ...shown.map(() => null)]);
  const column = new Map(shown.map((label, i) => [label, i + 1]));
  for (const [t, label, value] of rows) if (column.has(label)) wide[at.get(t)][column.get(label)] = value;
  return { names: shown, rows: wide, hidden: labels.length - shown.length };
}

// A time series panel: the first column is the time, every other column one line; with `seriesBy`, rows are
// (time, label, value) and each label is a line.
// The x axis spans [since, until] (ISO times), the range asked for, whatever part of it has data.
export function timeSeries(box, columns, rows, { unit = "", height = 220, since, until, seriesBy = "" } = {}) {
  let names = columns.slice(1);
  if (seriesBy) {
    const wide = pivot(rows);
    ({ names, rows } = wide);
    if (wide.hidden) box.dataset.hidden = String(wide.hidden);
  }
  const data = [rows.map((r) => epochSeconds(r[0])), ...names.map((_, i) => rows.map((r) => r[i + 1]))];
  const opts = {
    width: Math.max(box.clientWidth, 200),
    height,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true, ...(since && until ? { range: () => [epochSeconds(since), epochSeconds(until)] } : {}) } },
    axes: [{}, { values: (_u, ticks) => ticks.map((t) => fmtValue(t, unit)), size: 70 }],
    series: [
      {},
      ...names.map((name, i) => ({
        label: seriesBy ? String(name) : name.replaceAll("_", " "),
        stroke: seriesBy ? colourOf(name) : COLORS[i % COLORS.length],
        width: 1.5,
        spanGaps: true,
        value: (_u, v) => fmtValue(v, unit),
      })),
    ],
  };
  box.dataset.series = String(names.length);
  const plot = fit(new uPlot(opts, data, box), box, height);
  if (box.dataset.hidden) box.append(`${box.dataset.hidden} more with lower peaks not shown`);
  return plot;
}

// The search histogram: matching lines per bucket, as bars.
export function histogram(box, buckets, intervalSeconds, { height = 110 } = {}) {
  const data = [buckets.map((b) => epochSeconds(b.bucket)), buckets.map((b) => b.count)];
  const opts = {
    width: Math.max(box.clientWidth, 200),
    height,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true, range: (_u, min, max) => [min, max + intervalSeconds] } },
    axes: [{}, { size: 50 }],
    series: [{}, { label: "lines", points: { show: false }, fill: "#3366cc99", stroke: "#3366cc", paths: uPlot.paths.bars({ size: [0.9, 40], align: 1 }) }],
  };
  box.dataset.series = "1";
  return fit(new uPlot(opts, data, box), box, height);
}
