// Audit (#/audit): filtered CloudTrail events, the saved compliance queries, and the store's integrity status.

import { api } from "./api.js";
import { el, errorBox, functionLink, hashOf, loading, section, table } from "./dom.js";

const FIELDS = [
  ["principal", "Principal", "user, role or ARN part, access key"],
  ["action", "Action", "e.g. UpdateFunctionCode"],
  ["resource", "Resource", "function name or ARN"],
  ["source", "Source", "IP or user agent"],
];
const FLAGS = [
  ["failed", "Failed only"],
  ["changes", "Changes only"],
];
const SINCE = ["24h", "7d", "30d", "90d"];
const EVENT_COLUMNS = [
  "time", "principal_name", "principal_type", "action", "function", "source_ip", "mfa", "error_code", "history",
];

// An event's place in its append-only history: another version beside it, a correction it names or is named by.
function history(row) {
  const notes = [];
  if ((row.versions || 1) > 1) notes.push(`version ${row.version} of ${row.versions}`);
  if (row.corrects) notes.push(`corrects ${row.corrects}`);
  if (row.corrected_by && row.corrected_by.length) notes.push(`corrected by ${row.corrected_by.join(", ")}`);
  return notes.join("; ");
}

function eventsTable(rows, range) {
  return table(EVENT_COLUMNS, rows.map((row) => ({ ...row, history: history(row) })), {
    className: "audit-events",
    cell: (column, value) => (column === "function" && value ? functionLink(value, range) : undefined),
  });
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
    el("section", { class: "card wide" }, form),
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
  const showResults = (async () => {
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
    const out = await api("/api/audit", { ...filters, since, limit: 500 });
    resultsTitle.replaceChildren("Events ", el("span", { class: "count" }, `(${out.results.length} shown, newest first)`));
    results.replaceChildren(out.results.length ? eventsTable(out.results, "1h") : el("p", { class: "empty" }, "No events match."));
  })();

  const showIntegrity = api("/api/audit/verify").then((report) => status.replaceChildren(integrity(report)));

  await Promise.all([
    showSaved.catch((error) => saved.replaceChildren(errorBox(error))),
    showResults.catch((error) => results.replaceChildren(errorBox(error))),
    showIntegrity.catch((error) => status.replaceChildren(errorBox(error))),
  ]);
}
