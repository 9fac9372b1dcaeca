// Alerts (#/alerts): the rules in force, alerts pending, firing or resolved, and the history of transitions.

import { api } from "./api.js";
import { el, errorBox, fmtValue, functionLink, loading, section, table } from "./dom.js";

const STATES = ["pending", "firing", "resolved"];
const SINCE = ["1h", "24h", "7d", "30d"];

function labels(value) {
  return Object.entries(value || {})
    .filter(([key]) => key !== "tenant")
    .map(([key, v]) => (key === "function" ? functionLink(v, "1h") : `${key}=${v}`));
}

function labelCell(column, value) {
  if (column === "labels") return el("span", { class: "labels" }, labels(value));
  if (column === "state") return el("span", { class: `badge state-${value}` }, value);
  if (column === "value" && typeof value === "number") return fmtValue(value);
  if (column === "match") return Object.keys(value || {}).length ? JSON.stringify(value) : "";
  return undefined;
}

export async function render(view, { params, setParams }) {
  const chosen = params.has("state") ? params.get("state").split(",").filter((s) => STATES.includes(s)) : ["pending", "firing"];
  const since = SINCE.includes(params.get("since")) ? params.get("since") : "7d";
  const boxes = STATES.map((state) => el("input", { type: "checkbox", name: state, checked: chosen.includes(state) }));
  const sinceSelect = el("select", { name: "since" }, SINCE.map((s) => el("option", { value: s, selected: s === since }, s)));
  const apply = () => setParams({ state: STATES.filter((_, i) => boxes[i].checked).join(",") || "none", since: sinceSelect.value });
  for (const box of [...boxes, sinceSelect]) box.addEventListener("change", apply);

  const current = el("div", {}, loading());
  const rules = el("div", {}, loading());
  const history = el("div", {}, loading());
  view.append(
    el("header", { class: "page-head" }, el("h1", {}, "Alerts")),
    el(
      "div",
      { class: "card wide controls" },
      STATES.map((state, i) => el("label", { class: "flag" }, boxes[i], ` ${state}`)),
      el("label", {}, "History since ", sinceSelect),
    ),
    section("Alerts", current),
    section("History", history),
    section("Rules", rules),
  );

  const states = STATES.filter((s) => chosen.includes(s));
  const showAlerts = (async () => {
    const out = states.length ? await api("/api/alerts", { state: states }) : await api("/api/alerts", {});
    const alerts = states.length ? out.alerts : [];
    current.replaceChildren(
      alerts.length
        ? table(["state", "rule", "labels", "value", "summary", "active_since", "fired_at", "resolved_at"], alerts, { cell: labelCell, className: "alerts" })
        : el("p", { class: "empty" }, `No ${states.join(" or ") || "selected"} alerts.`),
    );
    rules.replaceChildren(
      table(["name", "kind", "threshold", "window_s", "for_s", "resolve_after_s", "severity", "enabled", "match", "summary"], out.rules, {
        cell: labelCell,
        className: "rules",
      }),
    );
  })();
  const showHistory = (async () => {
    const out = await api("/api/alerts/history", { since });
    history.replaceChildren(
      out.history.length
        ? table(["time", "rule", "kind", "severity", "labels", "summary", "target", "delivery", "http_status"], out.history, { cell: labelCell, className: "history" })
        : el("p", { class: "empty" }, `Nothing in the last ${since}.`),
    );
  })();
  await Promise.all([
    showAlerts.catch((error) => {
      current.replaceChildren(errorBox(error));
      rules.replaceChildren(errorBox(error));
    }),
    showHistory.catch((error) => history.replaceChildren(errorBox(error))),
  ]);
}
