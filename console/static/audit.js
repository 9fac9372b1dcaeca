// Audit (#/audit): filtered CloudTrail events, the saved compliance queries, and the store's integrity status.

import { api } from "./api.js";
import { el, errorBox, functionLink, hashOf, loading, section, table } from "./dom.js";

const FIELDS = [
  ["principal", "Principal", "user, role or ARN part, access key"],
  ["action", "Action", "e.g. UpdateFunctionCode"],
  ["resource", "Resource", "function name or ARN"],
  ["source", "Source", "IP or user agent"],
];
const FLAGS = [["failed", "Failed only"]];
const SINCE = ["24h", "7d", "30d", "90d"];
const EVENT_COLUMNS = [
  "time", "principal_name", "principal_type", "action", "function", "source_ip", "mfa", "error_code", "history",
];
// What the page leaves out until asked (URL `reads=show`, `data=show`): an auditor starts from the calls that
// changed something in the control plane; read-only calls and data events (each Invoke, each S3 object read) are
// most of a trail and one click away. A record that doesn't say whether it is read-only stays shown.
const HIDDEN = [
  ["reads", "Read-only calls", "Get…, List…, Describe…"],
  ["data", "Data events", "Invoke, S3 object access, network activity"],
];
const DETAIL_PARTS = [
  ["request_parameters", "Request parameters"],
  ["response_elements", "Response elements"],
  ["additional_event_data", "Additional event data"],
];
const expanded = new Set(); // rows opened, kept across refreshes: `${event_id}/${content}`

// The API parameters for what the page hides by default (see HIDDEN).
function scopeParams(params) {
  return {
    hide_reads: params.get("reads") === "show" ? "" : "true",
    category: params.get("data") === "show" ? [] : ["Management", "Insight"],
  };
}

function scopeText(params) {
  const hidden = HIDDEN.filter(([key]) => params.get(key) !== "show").map(([, label]) => label.toLowerCase());
  if (!hidden.length) return "Showing every event: management and data events, read-only calls included.";
  const shown = params.get("data") === "show" ? "Events" : "Management events";
  const what = params.get("reads") === "show" ? "" : " that change something";
  return `${shown}${what}: ${hidden.join(" and ")} are hidden.`;
}

function scopeBar(params, setParams) {
  return el(
    "div",
    { class: "audit-scope" },
    el("span", { class: "scope-text" }, scopeText(params)),
    " Show: ",
    HIDDEN.map(([key, label, hint]) =>
      el(
        "label",
        { class: "flag", title: hint },
        el("input", {
          type: "checkbox",
          name: key,
          checked: params.get(key) === "show",
          onchange: (event) => setParams({ [key]: event.target.checked ? "show" : "" }),
        }),
        ` ${label}`,
      ),
    ),
  );
}

// A record part (JSON from the API) as a key/value tree, every key and value as text.
function tree(value) {
  if (value === null || typeof value !== "object") return el("span", { class: `kv-value kv-${value === null ? "null" : typeof value}` }, fmtLeaf(value));
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  if (!entries.length) return el("span", { class: "kv-value kv-null" }, Array.isArray(value) ? "[]" : "{}");
  return el(
    "ul",
    { class: "kv-tree" },
    entries.map(([key, v]) => el("li", {}, el("span", { class: "kv-key" }, `${key}:`), " ", tree(v))),
  );
}

function fmtLeaf(value) {
  if (value === null) return "null";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function detailsRow(row, width) {
  const parts = DETAIL_PARTS.filter(([key]) => row[key] !== null && row[key] !== undefined);
  return el(
    "tr",
    { class: "audit-details" },
    el(
      "td",
      { colspan: String(width) },
      parts.length
        ? parts.map(([key, title]) => el("div", { class: "kv-part", dataset: { part: key } }, el("h4", {}, title), tree(row[key])))
        : el("p", { class: "muted" }, "The record has no request parameters, response elements or additional data."),
    ),
  );
}

function toggleDetails(button, row, width) {
  const tr = button.closest("tr");
  const key = `${row.event_id}/${row.content}`;
  const open = tr.nextElementSibling?.classList.contains("audit-details");
  if (open) {
    tr.nextElementSibling.remove();
    expanded.delete(key);
  } else {
    tr.after(detailsRow(row, width));
    expanded.add(key);
  }
  button.setAttribute("aria-expanded", String(!open));
  button.textContent = open ? "▸ details" : "▾ details";
}

// An event's place in its append-only history: another version beside it, a correction it names or is named by.
function history(row) {
  const notes = [];
  if ((row.versions || 1) > 1) notes.push(`version ${row.version} of ${row.versions}`);
  if (row.corrects) notes.push(`corrects ${row.corrects}`);
  if (row.corrected_by && row.corrected_by.length) notes.push(`corrected by ${row.corrected_by.join(", ")}`);
  return notes.join("; ");
}

function eventsTable(rows, range) {
  // rows from /api/audit carry their record's parts: a last column opens them under the row
  const withDetails = rows.length > 0 && "request_parameters" in rows[0];
  const columns = withDetails ? [...EVENT_COLUMNS, "details"] : EVENT_COLUMNS;
  const buttons = [];
  const wrap = table(columns, rows.map((row) => ({ ...row, history: history(row) })), {
    className: "audit-events",
    cell: (column, value, row) => {
      if (column === "function" && value) return functionLink(value, range);
      if (column !== "details") return undefined;
      const button = el("button", { type: "button", class: "link expand", "aria-expanded": "false" }, "▸ details");
      button.addEventListener("click", () => toggleDetails(button, row, columns.length));
      buttons.push([button, row]);
      return button;
    },
  });
  for (const [button, row] of buttons) if (expanded.has(`${row.event_id}/${row.content}`)) toggleDetails(button, row, columns.length);
  return wrap;
}

// A saved query's rows have its own columns (a burst query counts per source, say): show what came back.
function anyRows(rows) {
  if (!rows.length) return el("p", { class: "empty" }, "No rows: nothing of this kind in the range.");
  const events = "event_id" in rows[0] && "action" in rows[0];
  return events ? eventsTable(rows, "1h") : table(Object.keys(rows[0]), rows);
}

function integrity(report) {
  if (report.ok) {
    return el(
      "div",
      { class: "integrity ok", dataset: { ok: "true" } },
      el("strong", {}, "Verified"),
      ` — ${report.events} events (${report.versions} versions) in ${report.digests} digests, ${report.unsealed_events} not sealed yet; signatures: ${report.signatures}.`,
      ...report.notes.map((note) => el("p", { class: "muted" }, note)),
    );
  }
  const counts = Object.entries(report.problem_counts).map(([kind, n]) => `${n} ${kind}`).join(", ");
  return el(
    "div",
    { class: "integrity bad", dataset: { ok: "false" } },
    el("strong", {}, "Tampering found"),
    ` — ${counts}${report.truncated ? " (list truncated)" : ""}.`,
    table(["kind", "event_id", "seq", "detail"], report.problems),
  );
}

export async function render(view, { params, setParams }) {
  const since = SINCE.includes(params.get("since")) ? params.get("since") : "90d";
  const filters = Object.fromEntries([...FIELDS.map(([k]) => [k, params.get(k) ?? ""]), ...FLAGS.map(([k]) => [k, params.get(k) === "true"])]);
  const inputs = {};
  const form = el(
    "form",
    { class: "filters" },
    FIELDS.map(([key, label, hint]) => el("label", {}, label, " ", (inputs[key] = el("input", { name: key, value: filters[key], placeholder: hint })))),
    FLAGS.map(([key, label]) => el("label", { class: "flag" }, (inputs[key] = el("input", { type: "checkbox", name: key, checked: filters[key] })), ` ${label}`)),
    el("label", {}, "Since ", (inputs.since = el("select", { name: "since" }, SINCE.map((s) => el("option", { value: s, selected: s === since }, s))))),
    el("button", { type: "submit" }, "Apply"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const updates = { since: inputs.since.value, query: "" };
    for (const [key] of FIELDS) updates[key] = inputs[key].value.trim();
    for (const [key] of FLAGS) updates[key] = inputs[key].checked ? "true" : "";
    setParams(updates);
  });

  const results = el("div", { class: "results" }, loading());
  const resultsTitle = el("h2", {}, "Events");
  const saved = el("div", { class: "saved-queries" }, loading());
  const status = el("div", {}, loading());
  view.append(
    el("header", { class: "page-head" }, el("h1", {}, "Audit"), el("p", {}, "Who did what, to what, from where, with MFA — from CloudTrail.")),
    el("section", { class: "card wide" }, el("h2", {}, "Integrity"), status),
    el("section", { class: "card wide" }, form, params.get("query") ? null : scopeBar(params, setParams)),
    el("section", { class: "card wide" }, resultsTitle, results),
    section("Saved compliance queries", saved),
  );

  const runSaved = (query) => setParams({ query: query.name, since });

  const showSaved = api("/api/audit/queries").then(({ queries }) => {
    saved.replaceChildren(
      el(
        "ul",
        { class: "query-list" },
        queries.map((query) =>
          el(
            "li",
            { dataset: { query: query.name } },
            el("button", { type: "button", class: "run", onclick: () => runSaved(query) }, "Run"),
            el("strong", {}, query.title),
            el("span", { class: "muted" }, ` ${query.description} `),
            el("span", { class: "controls-cited" }, query.controls.join(" · ")),
          ),
        ),
      ),
    );
    return queries;
  });

  const chosen = params.get("query");
  const loadResults = async () => {
    if (chosen) {
      const queries = await showSaved;
      const query = queries.find((q) => q.name === chosen);
      const out = await api(`/api/audit/queries/${encodeURIComponent(chosen)}`, { since });
      resultsTitle.replaceChildren(
        `Saved query: ${query ? query.title : chosen} `,
        el("span", { class: "count" }, `(${out.results.length} rows, since ${since})`),
        " ",
        el("a", { href: hashOf("/audit", { since }) }, "back to events"),
      );
      results.replaceChildren(anyRows(out.results));
      return;
    }
    const changes = params.get("changes") === "true"; // older links: readOnly false only
    const out = await api("/api/audit", { ...filters, changes, ...scopeParams(params), since, limit: 500, details: true });
    resultsTitle.replaceChildren(
      "Events ",
      el("span", { class: "count", dataset: { shown: String(out.results.length) } }, `(${out.results.length} shown, newest first)`),
    );
    results.replaceChildren(out.results.length ? eventsTable(out.results, "1h") : el("p", { class: "empty" }, "No events match."));
  };
  const loadIntegrity = () => api("/api/audit/verify").then((report) => status.replaceChildren(integrity(report)));
  // the form and the rows opened stay as they are when the page refreshes
  const refresh = () =>
    Promise.all([
      loadResults().catch((error) => results.replaceChildren(errorBox(error))),
      loadIntegrity().catch((error) => status.replaceChildren(errorBox(error))),
    ]);

  await Promise.all([showSaved.catch((error) => saved.replaceChildren(errorBox(error))), refresh()]);
  return { refresh };
}
