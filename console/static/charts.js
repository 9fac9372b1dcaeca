// Charts with uPlot (vendored under /console/vendor/uplot, loaded as the global `uPlot`).

import { fmtValue } from "./dom.js";
import { zone } from "./settings.js";

// Twenty colours far apart (Kelly's and Tableau's), then golden-angle hues: distinct, never reused.
const COLORS = [
  "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
  "#003f5c", "#a05195", "#f95d6a", "#00876c", "#ffa600", "#665191", "#b3672b", "#4d9de0", "#e15554", "#3bb273",
];

function nthColour(n) {
  return n < COLORS.length ? COLORS[n] : `hsl(${Math.round((n * 137.508) % 360)} 65% 42%)`;
}

const ASSIGNED_KEY = "fnscope.colours";

// A label keeps its colour on every chart and every visit: the first label seen gets the first colour, the next
// one the next, remembered in this browser; no two labels share one.
function colourOf(label) {
  let assigned;
  try {
    assigned = JSON.parse(localStorage.getItem(ASSIGNED_KEY) || "{}");
  } catch {
    assigned = {};
  }
  const key = String(label);
  if (!(key in assigned)) {
    assigned[key] = Object.keys(assigned).length;
    localStorage.setItem(ASSIGNED_KEY, JSON.stringify(assigned));
  }
  return nthColour(assigned[key]);
}

// Axis ticks: short, with the unit; milliseconds of a second or more in seconds (20 s, not 20,000 ms).
const SHORT = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
function tick(value, unit) {
  if (value === null || value === undefined) return "";
  if (unit === "ms") return Math.abs(value) >= 1000 ? `${SHORT.format(value / 1000)} s` : `${SHORT.format(value)} ms`;
  if (unit === "percent") return `${SHORT.format(value)} %`;
  if (unit === "percentunit") return `${SHORT.format(value * 100)} %`;
  if (unit === "currencyUSD") return `$${value < 1 ? value.toPrecision(2) : SHORT.format(value)}`;
  return SHORT.format(value);
}

// An axis as wide as its longest tick label (none is cut), labelled with what it counts.
function valueAxis(unit, label) {
  return {
    label,
    labelSize: 18,
    values: (_u, ticks) => ticks.map((t) => tick(t, unit)),
    size: (u, values) => {
      if (!values) return 50;
      u.ctx.font = "12px system-ui, sans-serif";
      return Math.ceil(Math.max(...values.map((v) => u.ctx.measureText(v).width))) + 18;
    },
  };
}

// Times on the x axis in the zone the viewer chose.
function tzDate() {
  return zone() === "utc" ? (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC") : (ts) => new Date(ts * 1e3);
}

// Ticks carry their unit (20 s, 75 %); the axis label says what is measured.
const UNIT_WORDS = { ms: "duration", s: "duration", percent: "percent", percentunit: "percent", currencyUSD: "USD", short: "" };

function epochSeconds(value) {
  const text = String(value);
  return Date.parse(text.endsWith("Z") ? text : `${text}Z`) / 1000;
}

// Keep a chart as wide as its box.
function fit(plot, box, height) {
  const observer = new ResizeObserver(() => {
    if (!plot.root.isConnected) {
      observer.disconnect(); // the page was left, or the panel redrawn
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
    tzDate: tzDate(),
    axes: [{}, valueAxis(unit, axisLabel(unit, seriesBy ? columns.at(-1) : "", names))],
    series: [
      {},
      ...names.map((name, i) => ({
        label: seriesBy ? String(name) : name.replaceAll("_", " "),
        stroke: seriesBy ? colourOf(name) : nthColour(i),
        width: 1.5,
        spanGaps: true,
        points: { filter: isolatedPoints },
        value: (_u, v) => fmtValue(v, unit),
      })),
    ],
  };
  box.dataset.series = String(names.length);
  const plot = fit(new uPlot(opts, data, box), box, height);
  if (box.dataset.hidden) box.append(`${box.dataset.hidden} more with lower peaks not shown`);
  return plot;
}

// Lines span gaps, so a series with one value in the range (one cold start, say) has no line to draw, and
// uPlot's own points appear only where data is sparse: mark that value with a dot, or the chart looks empty.
function isolatedPoints(u, seriesIdx, show) {
  if (show) return null; // uPlot draws every point itself
  const present = [];
  u.data[seriesIdx].forEach((v, i) => v != null && present.push(i));
  return present.length === 1 ? present : null;
}

// What the value axis counts: the unit in words, else the one measured column's name, else a count.
function axisLabel(unit, column, names) {
  const words = UNIT_WORDS[unit] ?? unit;
  if (words) return words;
  if (column) return column.replaceAll("_", " ");
  return names.length === 1 ? names[0].replaceAll("_", " ") : "count";
}

// The search histogram: matching lines per bucket, as bars. With `onZoom(fromSeconds, toSeconds)`, dragging across
// it picks a span (the chart itself keeps its range: the caller searches the span and draws it anew).
export function histogram(box, buckets, intervalSeconds, { height = 110, onZoom = null } = {}) {
  const data = [buckets.map((b) => epochSeconds(b.bucket)), buckets.map((b) => b.count)];
  const opts = {
    width: Math.max(box.clientWidth, 200),
    height,
    legend: { show: false },
    cursor: { drag: { x: Boolean(onZoom), y: false, setScale: false } },
    tzDate: tzDate(),
    scales: { x: { time: true, range: (_u, min, max) => [min, max + intervalSeconds] } },
    axes: [{}, valueAxis("", "lines")],
    series: [{}, { label: "lines", points: { show: false }, fill: "#3366cc99", stroke: "#3366cc", paths: uPlot.paths.bars({ size: [0.9, 40], align: 1 }) }],
    hooks: onZoom ? { setSelect: [(u) => zoomed(u, onZoom)] } : {},
  };
  box.dataset.series = "1";
  if (onZoom) box.title = "Drag across the bars to search that span";
  return fit(new uPlot(opts, data, box), box, height);
}

// The end of a drag: the span under it, in epoch seconds (a click, a few pixels at most, is no zoom).
function zoomed(u, onZoom) {
  const { left, width } = u.select;
  if (width < 3) return;
  const from = u.posToVal(left, "x");
  const to = u.posToVal(left + width, "x");
  u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
  onZoom(from, to);
}
