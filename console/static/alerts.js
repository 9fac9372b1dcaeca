// Alerts (#/alerts): alerts pending, firing or resolved with their severity, acknowledgement and silence; the
// silences made here (or through the API); the history of transitions and notifications; the rules in force.
// Acknowledging and silencing need a token with the admin scope (the API says so otherwise).

import { api, apiSend } from "./api.js";
import { el, errorBox, fmtTime, fmtValue, functionLink, loading, section, table } from "./dom.js";

const STATES = ["pending", "firing", "resolved"];
const SINCE = ["1h", "24h", "7d", "30d"];
const DURATIONS = ["15m", "1h", "2h", "4h", "1d", "7d"];
// what an on-call engineer acts on first (severity, labels, acknowledgement, the buttons), then the figures and times
const ALERT_COLUMNS = ["state", "severity", "rule", "labels", "ack_or_silence", "actions", "summary", "value", "active_since", "fired_at", "resolved_at"];

function severity(value) {
  return el("span", { class: `sev sev-${value}` }, value);
}

// Labels as one chip each (function links to its page); the tenant is the token's own and not shown.
function chips(value) {
  return el(
    "span",
    { class: "chips labels" },
    Object.entries(value || {})
      .filter(([key]) => key !== "tenant")
      .map(([key, v]) =>
        el("span", { class: "chip", dataset: { label: key } }, el("span", { class: "chip-key" }, key), "=", key === "function" ? functionLink(v, "1h") : el("span", { class: "chip-value" }, v)),
      ),
  );
}

function cells(column, value) {
  if (column === "labels" || column === "matchers") return chips(value);
  if (column === "severity") return severity(value);
  if (column === "value" && typeof value === "number") return fmtValue(value);
  if (column === "match") return Object.keys(value || {}).length ? JSON.stringify(value) : "";
  return undefined;
}

// An alert's acknowledgement and the silence holding back its notifications, as text.
function handled(alert) {
  return el(
    "span",
    { class: "handled" },
    alert.ack ? el("span", { class: "acked", title: alert.ack.comment || "" }, `acknowledged by ${alert.ack.by} at ${fmtTime(alert.ack.at)}`) : null,
    alert.ack && alert.silenced_by ? el("br") : null,
    alert.silenced_by ? el("span", { class: "silenced" }, `silenced: ${alert.silenced_by}`) : null,
  );
}

// The silence form for one alert: its rule and labels as matchers (each can be left out), a duration, a reason.
function silenceForm(alert, done) {
  const labels = { rule: alert.rule, ...Object.fromEntries(Object.entries(alert.labels || {}).filter(([key]) => key !== "tenant")) };
  const boxes = Object.entries(labels).map(([key, value]) => [key, value, el("input", { type: "checkbox", name: `m-${key}`, checked: value !== "" })]);
  const duration = el("select", { name: "duration" }, DURATIONS.map((d) => el("option", { value: d, selected: d === "2h" }, d)));
  const comment = el("input", { name: "comment", required: true, maxlength: "1000", placeholder: "why (kept with the silence)" });
  const status = el("div", { class: "form-status" });
  const form = el(
    "form",
    { class: "silence-form", dataset: { fingerprint: alert.fingerprint } },
    el("strong", {}, `Silence ${alert.rule}`),
    boxes.map(([key, value, box]) => el("label", { class: "flag" }, box, ` ${key}=${value}`)),
    el("label", {}, "For ", duration),
    el("label", {}, "Reason ", comment),
    el("button", { type: "submit" }, "Create silence"),
    el("button", { type: "button", onclick: () => form.remove() }, "Cancel"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const matchers = Object.fromEntries(boxes.filter(([, , box]) => box.checked).map(([key, value]) => [key, value]));
    try {
      await apiSend("POST", "/api/alerts/silences", { matchers, duration: duration.value, comment: comment.value.trim() });
      form.remove();
      done();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
}

export async function render(view, { params, setParams }) {
  const chosen = params.has("state") ? params.get("state").split(",").filter((s) => STATES.includes(s)) : ["pending", "firing"];
  const since = SINCE.includes(params.get("since")) ? params.get("since") : "7d";
  const boxes = STATES.map((state) => el("input", { type: "checkbox", name: state, checked: chosen.includes(state) }));
  const sinceSelect = el("select", { name: "since" }, SINCE.map((s) => el("option", { value: s, selected: s === since }, s)));
  const apply = () => setParams({ state: STATES.filter((_, i) => boxes[i].checked).join(",") || "none", since: sinceSelect.value });
  for (const box of [...boxes, sinceSelect]) box.addEventListener("change", apply);

  const forms = el("div", { class: "silence-forms" }); // outside the table: a refresh keeps a form being filled in
  const actionError = el("div");
  const current = el("div", {}, loading());
  const silences = el("div", {}, loading());
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
    section("Alerts", actionError, forms, current),
    section("Silences", silences),
    section("History", history),
    section("Rules", rules),
  );

  const states = STATES.filter((s) => chosen.includes(s));
  const act = async (change) => {
    actionError.replaceChildren();
    try {
      await change();
      await refresh();
    } catch (error) {
      actionError.replaceChildren(errorBox(error));
    }
  };

  const actions = (alert) => {
    if (alert.state === "resolved") return "";
    return el(
      "span",
      { class: "alert-actions" },
      alert.state === "firing" && !alert.ack
        ? el("button", { type: "button", class: "ack", onclick: () => act(() => apiSend("POST", "/api/alerts/ack", { fingerprint: alert.fingerprint })) }, "Acknowledge")
        : null,
      el(
        "button",
        {
          type: "button",
          class: "silence",
          onclick: () => {
            forms.querySelector(`form[data-fingerprint="${CSS.escape(alert.fingerprint)}"]`)?.remove();
            forms.prepend(silenceForm(alert, refresh));
          },
        },
        "Silence…",
      ),
    );
  };

  const showAlerts = async () => {
    const out = states.length ? await api("/api/alerts", { state: states }) : await api("/api/alerts", {});
    const alerts = states.length ? out.alerts : [];
    const rows = alerts.map((alert) => ({ ...alert, ack_or_silence: handled(alert), actions: actions(alert) }));
    current.replaceChildren(
      alerts.length
        ? table(ALERT_COLUMNS, rows, { cell: (column, value) => (column === "ack_or_silence" || column === "actions" ? value : cells(column, value)), className: "alerts" })
        : el("p", { class: "empty" }, `No ${states.join(" or ") || "selected"} alerts.`),
    );
    // a row's severity and acknowledgement also mark the row (its edge, a lighter tint once acknowledged)
    current.querySelectorAll("tbody tr").forEach((tr, i) => {
      tr.classList.add(`sev-row-${alerts[i].severity}`);
      if (alerts[i].ack) tr.classList.add("is-acked");
      tr.dataset.fingerprint = alerts[i].fingerprint;
    });
    rules.replaceChildren(
      table(["name", "severity", "kind", "threshold", "window_s", "for_s", "resolve_after_s", "enabled", "match", "summary"], out.rules, {
        cell: cells,
        className: "rules",
      }),
    );
  };

  const showSilences = async () => {
    const out = await api("/api/alerts/silences", {});
    const rows = out.silences.map((s) => ({
      ...s,
      expire:
        s.state === "expired"
          ? ""
          : el("button", { type: "button", class: "expire", onclick: () => act(() => apiSend("DELETE", `/api/alerts/silences/${encodeURIComponent(s.id)}`)) }, "Expire now"),
    }));
    silences.replaceChildren(
      rows.length
        ? table(["state", "matchers", "starts_at", "ends_at", "comment", "created_by", "expired_by", "expire"], rows, {
            cell: (column, value) => (column === "expire" ? value : cells(column, value)),
            className: "silences",
          })
        : el("p", { class: "empty" }, "No silences in force or ended in the last 24 h. Silence an alert from its row above."),
      ...(out.configured.length ? [el("p", { class: "muted" }, `${out.configured.length} more in fnscope.yaml (alerts.silences).`)] : []),
    );
  };

  const showHistory = async () => {
    const out = await api("/api/alerts/history", { since });
    history.replaceChildren(
      out.history.length
        ? table(["time", "rule", "kind", "severity", "labels", "summary", "target", "delivery", "http_status"], out.history, { cell: cells, className: "history" })
        : el("p", { class: "empty" }, `Nothing in the last ${since}.`),
    );
  };

  const refresh = () =>
    Promise.all([
      showAlerts().catch((error) => {
        current.replaceChildren(errorBox(error));
        rules.replaceChildren(errorBox(error));
      }),
      showSilences().catch((error) => silences.replaceChildren(errorBox(error))),
      showHistory().catch((error) => history.replaceChildren(errorBox(error))),
    ]);
  await refresh();
  return { refresh };
}
