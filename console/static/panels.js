// Renders a dashboard from GET /api/dashboards (the definitions Grafana renders too): rows as headings, each
// panel in a card sized from its width (of 24 columns), its rows from GET /api/dashboards/{uid}/panels/{index}.

import { api } from "./api.js";
import { timeSeries } from "./charts.js";
import { el, errorBox, fmtTime, fmtValue, functionLink, hashOf, loading, table } from "./dom.js";

let catalogue = null;

export async function dashboard(uid) {
  catalogue ??= api("/api/dashboards").catch((error) => {
    catalogue = null; // ask again next time (a token may have been given since)
    throw error;
  });
  const found = (await catalogue).dashboards.find((d) => d.uid === uid);
  if (!found) throw new Error(`dashboard ${uid} is not served here`);
  return found;
}

export function varParams(vars) {
  return Object.fromEntries(Object.entries(vars).map(([name, value]) => [`var-${name}`, value]));
}

// Draws the board into view; answers a function that fetches every panel again and redraws each in place when
// its answer comes (no "Loading" flash on a refresh; a failed refresh shows its error in the panel).
export function renderDashboard(view, board, { range, vars = {} }) {
  const grid = el("div", { class: "grid" });
  view.append(grid);
  const bodies = [];
  for (const item of board.items) {
    if (item.type === "row") {
      grid.append(el("h2", { class: "row-title" }, item.title));
      continue;
    }
    const body = el("div", { class: "panel-body" }, loading());
    const card = el(
      "section",
      { class: `card panel kind-${item.kind}`, style: `--span: ${item.width}`, dataset: { panel: item.title } },
      el("h3", { title: item.description || "" }, item.title),
      body,
    );
    grid.append(card);
    bodies.push([item, body]);
  }
  const load = () =>
    Promise.all(
      bodies.map(([item, body]) =>
        api(`/api/dashboards/${board.uid}/panels/${item.index}`, { since: range, ...varParams(vars) })
          .then((result) => draw(item, result, body, range))
          .catch((error) => body.replaceChildren(errorBox(error))),
      ),
    );
  load();
  return load;
}

function draw(item, result, body, range) {
  const { columns, rows } = result;
  body.replaceChildren();
  if (item.kind === "stat") {
    const value = rows.length ? rows[0][0] : null;
    body.append(el("div", { class: "stat", dataset: { value: value ?? "" } }, fmtValue(value, item.unit)));
  } else if (!rows.length) {
    body.append(el("div", { class: "empty" }, "No data in this range"));
  } else if (item.kind === "timeseries") {
    timeSeries(body, columns, rows, {
      unit: item.unit,
      height: item.height * 26,
      since: result.since,
      until: result.until,
      seriesBy: item.series_by,
    });
  } else if (item.kind === "logs") {
    body.append(logLines(columns, rows, range));
  } else {
    body.append(tablePanel(columns, rows, range));
  }
}

function tablePanel(columns, rows, range) {
  return table(columns, rows, {
      cell: (column, value) => {
        if (column === "function" && value) return functionLink(value, range);
        if (column === "time" || column === "last_seen") return fmtTime(value);
        if (column === "utilisation_pct" && value !== null) return meter(value);
        return undefined;
      },
  });
}

// A share of a limit as a number and a bar (full at 100 %, capped there; the number says how far past).
function meter(pct) {
  return el(
    "span",
    { class: "meter" },
    el("span", { class: "meter-bar", style: `--fill: ${Math.min(100, Math.max(0, pct))}%` }),
    fmtValue(pct, "percent"),
  );
}

function logLines(columns, rows, range) {
  const at = (name) => columns.indexOf(name);
  const [time, level, body, requestId] = [0, at("level"), at("body"), at("request_id")];
  return el(
    "ol",
    { class: "log-lines" },
    rows.map((row) =>
      el(
        "li",
        { class: `level-${row[level]}` },
        el("time", {}, fmtTime(row[time])),
        el("span", { class: "level" }, row[level]),
        el("span", { class: "message" }, row[body]),
        row[requestId]
          ? el("a", { href: hashOf("/search", { q: `request_id:"${row[requestId]}"`, range }), class: "req" }, "request")
          : null,
      ),
    ),
  );
}
