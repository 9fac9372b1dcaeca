// Small DOM helpers shared by the pages: elements, tables, links, formatting. Text is always set as text, never HTML.

import { zone, zoneLabel } from "./settings.js";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false));
  return node;
}

export function hashLink(path, params, text) {
  return el("a", { href: hashOf(path, params) }, text);
}

export function hashOf(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== "") query.set(key, value);
  const qs = query.toString();
  return `#${path}${qs ? `?${qs}` : ""}`;
}

export function functionLink(name, range) {
  return el("a", { href: hashOf(`/function/${encodeURIComponent(name)}`, { range }), class: "fn" }, name);
}

export function errorBox(error) {
  return el("div", { class: "error", role: "alert" }, error.message || String(error));
}

export function loading() {
  return el("div", { class: "loading" }, "Loading…");
}

export function parseTime(value) {
  return new Date(typeof value === "number" ? value : value.endsWith("Z") ? value : `${value}Z`);
}

// A time in the zone the viewer chose (settings.js), to the millisecond.
export function fmtTime(value) {
  if (!value) return "";
  const date = parseTime(value);
  if (Number.isNaN(date.getTime())) return String(value);
  if (zone() === "utc") return date.toISOString().replace("T", " ").replace("Z", "").slice(0, 23);
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().replace("T", " ").replace("Z", "").slice(0, 23);
}

const NUMBER = new Intl.NumberFormat("en", { maximumFractionDigits: 3 });

export function fmtValue(value, unit = "") {
  if (value === null || value === undefined) return "–";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value !== "number") return String(value);
  if (!unit && value !== 0 && Math.abs(value) < 0.01) return value.toPrecision(3); // small costs and rates
  switch (unit) {
    case "ms":
      return `${NUMBER.format(value)} ms`;
    case "s":
      return `${NUMBER.format(value)} s`;
    case "percent":
      return `${NUMBER.format(value)} %`;
    case "percentunit":
      return `${NUMBER.format(value * 100)} %`;
    case "currencyUSD":
      return `$${value < 1 ? value.toPrecision(3) : value.toFixed(2)}`;
    default:
      return NUMBER.format(value);
  }
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d/;

// The unit a table column's values are in, from its name (the dashboards name columns so).
export function columnUnit(column) {
  if (column === "error_rate") return "percentunit";
  if (column.endsWith("_pct")) return "percent";
  if (column.endsWith("_ms")) return "ms";
  if (column === "cost_usd") return "currencyUSD";
  return "";
}

// A column heading: its words, and the zone of a time column.
function heading(column) {
  const words = column.replace(/_pct$/, " %").replace(/_ms$/, "").replace(/_usd$/, "").replaceAll("_", " ");
  return column === "time" || column.endsWith("_at") || column === "last_seen" ? `${words} (${zoneLabel()})` : words;
}

// columns: names; rows: arrays or objects; cell(column, value, row) may return a node for a column. A `state`
// column (ok, warning, critical) colours its row and shows as a badge.
export function table(columns, rows, { cell, className = "" } = {}) {
  const head = el("tr", {}, columns.map((c) => el("th", {}, heading(c))));
  const stateAt = columns.indexOf("state");
  const body = rows.map((row) => {
    const values = Array.isArray(row) ? row : columns.map((c) => row[c]);
    const state = stateAt >= 0 ? values[stateAt] : null;
    return el(
      "tr",
      { class: state ? `state-${state}` : "" },
      columns.map((column, i) => {
        const value = values[i];
        if (i === stateAt) return el("td", {}, el("span", { class: `badge state-${value}` }, value));
        const custom = cell ? cell(column, value, row) : undefined;
        const content = custom ?? (ISO_TIME.test(value) ? fmtTime(value) : fmtValue(value, columnUnit(column)));
        const kind = typeof value === "number" ? "num" : typeof value === "string" && value.length > 60 ? "long" : "";
        return el("td", { class: kind }, content);
      }),
    );
  });
  return el("div", { class: `table-wrap ${className}` }, el("table", {}, el("thead", {}, head), el("tbody", {}, body)));
}

export function section(title, ...children) {
  return el("section", { class: "card wide" }, el("h2", {}, title), ...children);
}
