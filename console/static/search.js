// Search (#/search?q=...): the query language over /api/search, a histogram (drag across it to zoom: since/until in
// the URL), facets of the matching lines (a click adds the value's filter to the query), older pages, a live tail,
// each line's structured fields and its correlation (its invocation, the API request behind it, the function's
// recent changes).

import { api, ndjson } from "./api.js";
import { histogram } from "./charts.js";
import { el, errorBox, fmtTime, fmtValue, functionLink, hashOf, table } from "./dom.js";
import { zoneLabel } from "./settings.js";

const PAGE = 100;
const LIVE_MAX = 500; // lines kept on screen while tailing

// The message with the matched terms in <mark>; offsets are code points (Python's), hence Array.from.
export function highlighted(message, spans) {
  const chars = Array.from(message);
  const out = [];
  let at = 0;
  for (const [start, end] of spans) {
    if (start > at) out.push(chars.slice(at, start).join(""));
    out.push(el("mark", {}, chars.slice(start, end).join("")));
    at = end;
  }
  if (at < chars.length) out.push(chars.slice(at).join(""));
  return out;
}

// A line's place in time order: its time in ms, then its event id (the order the API and the tail use).
function lineKey(row) {
  return [Date.parse(row.time.endsWith("Z") ? row.time : `${row.time}Z`), row.event_id];
}

function before(a, b) {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

// A structured line's fields, as text, except the message when it is the line's message shown already.
function lineFields(row) {
  return Object.entries(row.fields || {}).filter(([key, value]) => !(key === "message" && value === row.message));
}

function fieldList(fields) {
  return el("dl", { class: "facts fields", hidden: true }, fields.map(([key, value]) => [el("dt", {}, key), el("dd", {}, value)]));
}

function lineItem(row, range, live = false) {
  const context = el("div", { class: "context", hidden: true });
  const toggle = el("button", { type: "button", class: "link context-link" }, "context");
  toggle.addEventListener("click", () => showContext(row, context, range));
  const fields = lineFields(row);
  const list = fields.length ? fieldList(fields) : null;
  const fieldsToggle = list && el("button", { type: "button", class: "link fields-link", "aria-expanded": "false" }, `${fields.length} field${fields.length === 1 ? "" : "s"}`);
  fieldsToggle?.addEventListener("click", () => {
    list.hidden = !list.hidden;
    fieldsToggle.setAttribute("aria-expanded", String(!list.hidden));
  });
  return el(
    "li",
    { class: `line level-${row.level}${live ? " live" : ""}${row.late ? " late" : ""}`, dataset: { ref: row.ref, eventId: row.event_id, ms: lineKey(row)[0] } },
    el(
      "div",
      { class: "line-head" },
      el("time", {}, fmtTime(row.time)),
      functionLink(row.function, range),
      el("span", { class: "level" }, row.level),
      row.late ? el("span", { class: "late-mark", title: "arrived after later lines were shown; placed in time order" }, "late") : null,
      el("span", { class: "message" }, highlighted(row.message, row.highlights || [])),
      fieldsToggle,
      toggle,
    ),
    list,
    context,
  );
}

async function showContext(row, box, range) {
  if (!box.hidden) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.replaceChildren(el("div", { class: "loading" }, "Loading…"));
  try {
    const found = await api("/api/search/context", { ref: row.ref });
    box.replaceChildren(...contextParts(found, range));
  } catch (error) {
    box.replaceChildren(errorBox(error));
  }
}

function contextParts(found, range) {
  const parts = [];
  const inv = found.invocation;
  if (inv) {
    const facts = [
      ["status", inv.status || "success"],
      ["duration", fmtValue(inv.duration_ms, "ms")],
      ["billed", fmtValue(inv.billed_duration_ms, "ms")],
      ["memory", inv.max_memory_used_mb == null ? "–" : `${inv.max_memory_used_mb} of ${inv.memory_size_mb} MB`],
      ["cold start", inv.cold_start ? `yes (init ${fmtValue(inv.init_duration_ms, "ms")})` : "no"],
      ["version", inv.version || "–"],
      ["error", inv.error_type || "–"],
    ];
    parts.push(
      el("h4", {}, "Invocation ", el("code", {}, inv.request_id)),
      el("dl", { class: "facts invocation" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { fact: k } }, v)])),
    );
  } else {
    parts.push(el("p", { class: "muted" }, "No invocation record for this line."));
  }
  const requests = found.api_requests || [];
  parts.push(el("h4", {}, "API request"));
  parts.push(
    requests.length
      ? table(["time", "method", "path", "status", "latency_ms", "source_ip", "match"], requests, { className: "api-requests" })
      : el("p", { class: "muted" }, "No API Gateway request for this invocation."),
  );
  const changes = found.changes || [];
  parts.push(el("h4", {}, "Changes to the function in the 24 h before"));
  parts.push(
    changes.length
      ? table(["time", "action", "summary", "principal_name", "source_ip", "mfa", "error_code"], changes, { className: "changes" })
      : el("p", { class: "muted" }, "None."),
  );
  const links = [functionLink(found.line.function, range)];
  if (found.same_request_query) links.push(el("a", { href: hashOf("/search", { q: found.same_request_query, range }) }, "all lines of this request"));
  parts.push(el("p", { class: "links" }, links.flatMap((l, i) => (i ? [" · ", l] : [l]))));
  return parts;
}

// The zoomed span (since/until in the URL, as the histogram's drag sets them), or null for the page's range.
function zoomOf(params) {
  const since = params.get("since");
  const until = params.get("until");
  if (!since || !until) return null;
  const from = Date.parse(since);
  const to = Date.parse(until);
  return Number.isFinite(from) && Number.isFinite(to) && from < to ? { since, until } : null;
}

const isoOf = (seconds) => new Date(Math.round(seconds * 1000)).toISOString();

// Where the filter stands in the query as one of its ANDed terms (so taking it out only widens the query), or -1:
// not inside parentheses or a phrase, not negated (-x, NOT x), and the query has no OR at its top level.
function termAt(q, filter) {
  if (topLevelOr(q)) return -1;
  for (let at = q.indexOf(filter); at >= 0; at = q.indexOf(filter, at + 1)) {
    const before = at === 0 ? " " : q[at - 1];
    const after = q[at + filter.length] ?? " ";
    const negated = /(^|\s)NOT\s+$/.test(q.slice(0, at));
    if (/\s/.test(before) && /\s/.test(after) && !negated && depthAt(q, at) === 0) return at;
  }
  return -1;
}

// Walk the query up to `end`, outside phrases, telling `visit` each position and how many parentheses are open
// there; stops early when `visit` says so. Returns the state at the stop: { depth, quoted, stopped }.
function scanQuery(q, end = q.length, visit = () => false) {
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < end; i++) {
    const ch = q[i];
    if (quoted) {
      if (ch === "\\") i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === "(") depth++;
    else if (ch === ")") depth--;
    else if (visit(i, depth)) return { depth, quoted, stopped: true };
  }
  return { depth, quoted, stopped: false };
}

// How many parentheses are open at position `end` (-1 inside a phrase).
function depthAt(q, end) {
  const { depth, quoted } = scanQuery(q, end);
  return quoted ? -1 : depth;
}

// Whether the query has an OR outside parentheses and phrases (then a term added must AND all of it, not its end).
function topLevelOr(q) {
  const isOr = (i, depth) =>
    depth === 0 && q.startsWith("OR", i) && /[\s(]/.test(q[i - 1] ?? " ") && /[\s)]/.test(q[i + 2] ?? " ");
  return scanQuery(q, q.length, isOr).stopped;
}

// The query with a facet's filter added (ANDed to all of it), or taken out again when it is there.
export function toggledFilter(q, filter) {
  const at = termAt(q, filter);
  if (at >= 0) return `${q.slice(0, at)}${q.slice(at + filter.length)}`.replace(/\s+/g, " ").trim();
  const query = q.trim();
  if (!query) return filter;
  return topLevelOr(query) ? `(${query}) ${filter}` : `${query} ${filter}`;
}

// One facet: its values, commonest first, each a button that adds (or removes) its filter.
function facetGroup(title, values, total, q, setParams, label = (v) => v) {
  return el(
    "section",
    { class: "facet", dataset: { facet: title } },
    el("h3", {}, title),
    el(
      "ul",
      {},
      values.map((v) => {
        const on = v.filter !== null && termAt(q, v.filter) >= 0;
        const share = total ? Math.round((100 * v.count) / total) : 0;
        const button = el(
          "button",
          {
            type: "button",
            class: "facet-value",
            title: v.filter ? `${on ? "remove" : "add"} ${v.filter}` : "no filter can name this value",
            disabled: v.filter === null,
            "aria-pressed": String(on),
            dataset: { value: v.value },
            style: `--share: ${share}%`,
          },
          el("span", { class: "facet-label" }, label(v.value)),
          el("span", { class: "facet-count" }, fmtValue(v.count)),
        );
        button.addEventListener("click", () => setParams({ q: toggledFilter(q, v.filter) }));
        return el("li", {}, button);
      }),
    ),
  );
}

function facetParts(found, q, setParams) {
  if (!found.total) return [el("p", { class: "muted" }, "No matching lines.")];
  const parts = [
    facetGroup("function", found.functions, found.total, q, setParams),
    facetGroup("level", found.levels, found.total, q, setParams, (v) => v.toLowerCase() || "(none)"),
  ];
  for (const field of found.fields) {
    const group = facetGroup(field.key, field.values, found.total, q, setParams);
    group.querySelector("h3").append(" ", el("span", { class: "count" }, `${fmtValue(field.lines)} lines`));
    parts.push(group);
  }
  if (!found.fields.length) parts.push(el("p", { class: "muted" }, "No structured fields in these lines."));
  return parts;
}

export async function render(view, { params, range, setParams }) {
  const q = params.get("q") ?? "";
  const input = el("input", { type: "search", name: "q", value: q, placeholder: 'words, "phrases", level:>=warn, function:NAME, /regex/', "aria-label": "Search query" });
  const form = el("form", { class: "search-form" }, input, el("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value === q) window.dispatchEvent(new Event("hashchange")); // the same query again: run it again
    else setParams({ q: input.value });
  });
  const zoom = zoomOf(params);
  // a zoomed span is in the past: the live tail (lines from now on) belongs to the page's range
  const liveToggle = el("input", { type: "checkbox", name: "live", disabled: Boolean(zoom), title: zoom ? "zoom out to tail live" : null });
  const status = el("div", { class: "status" });
  const chart = el("div", { class: "histogram" });
  const list = el("ol", { class: "results" });
  const more = el("div", { class: "more" });
  const facetBox = el("div", { class: "facets-body" }, el("div", { class: "loading" }, "Loading…"));
  view.append(
    el("header", { class: "page-head" }, el("h1", {}, "Search")),
    el("div", { class: "card wide" }, form, el("label", { class: "live-toggle" }, liveToggle, " Live tail"), status, chart),
    el("section", { class: "card wide facets", "aria-label": "Facets" }, facetBox),
    el("div", { class: "card wide" }, list, more),
  );

  const span = zoom ?? { since: range };
  const shown = new Map(); // event id -> its <li>: a line is on screen once
  let total = 0;
  let bars = null; // the histogram's data and chart, kept to count live lines in
  function showTotal() {
    if (!zoom) {
      status.textContent = `${total} matching lines in the last ${range}`;
      return;
    }
    const out = el("button", { type: "button", class: "link zoom-out" }, "zoom out");
    out.addEventListener("click", () => setParams({ since: null, until: null }));
    status.replaceChildren(`${total} matching lines from ${fmtTime(zoom.since)} to ${fmtTime(zoom.until)} (${zoneLabel()}) · `, out);
  }
  function zoomTo(from, to) {
    const end = Math.max(to, from + 1); // a second at least: the histogram's finest bucket
    setParams({ since: isoOf(from), until: isoOf(end) });
  }
  async function facets() {
    try {
      const found = await api("/api/search/facets", { q, ...span });
      facetBox.replaceChildren(...facetParts(found, q, setParams));
    } catch (error) {
      facetBox.replaceChildren(errorBox(error));
    }
  }
  async function page(cursor) {
    const out = await api("/api/search", { q, ...span, limit: PAGE, cursor, histogram: !cursor });
    if (!cursor) {
      const hist = out.histogram;
      total = hist.total;
      showTotal();
      bars = { interval: hist.interval_seconds, xs: [], ys: [], plot: null };
      for (const b of hist.buckets) {
        bars.xs.push(Date.parse(b.bucket.endsWith("Z") ? b.bucket : `${b.bucket}Z`) / 1000);
        bars.ys.push(b.count);
      }
      if (hist.total) bars.plot = histogram(chart, hist.buckets, hist.interval_seconds, { onZoom: zoomTo });
    }
    for (const row of out.results) {
      if (shown.has(row.event_id)) continue;
      const item = lineItem(row, range);
      shown.set(row.event_id, item);
      list.append(item);
    }
    more.replaceChildren();
    if (out.next_cursor) {
      const older = el("button", { type: "button", class: "older" }, "Older");
      older.addEventListener("click", () => page(out.next_cursor).catch((error) => more.replaceChildren(errorBox(error))));
      more.append(older);
    } else if (!list.children.length) {
      more.append(el("p", { class: "empty" }, "Nothing matches in this range."));
    }
  }

  // A live line into the list (newest first) at its place in time: a late line goes below newer ones.
  function place(row) {
    const item = lineItem(row, range, true);
    const key = lineKey(row);
    let next = list.firstElementChild;
    while (next && before(key, [Number(next.dataset.ms), next.dataset.eventId])) next = next.nextElementSibling;
    list.insertBefore(item, next);
    shown.set(row.event_id, item);
    while (list.children.length > LIVE_MAX) {
      shown.delete(list.lastElementChild.dataset.eventId);
      list.lastElementChild.remove();
    }
  }

  let redraw = null;
  function count(row) {
    total += 1;
    showTotal();
    if (!bars) return;
    const at = Math.floor(lineKey(row)[0] / 1000 / bars.interval) * bars.interval;
    if (!bars.xs.length) {
      bars.xs.push(at);
      bars.ys.push(0);
    }
    while (at > bars.xs[bars.xs.length - 1]) {
      bars.xs.push(bars.xs[bars.xs.length - 1] + bars.interval);
      bars.ys.push(0);
    }
    const i = bars.xs.indexOf(at);
    if (i >= 0) bars.ys[i] += 1;
    redraw ??= setTimeout(() => {
      redraw = null;
      const buckets = bars.xs.map((x, j) => ({ bucket: new Date(x * 1000).toISOString(), count: bars.ys[j] }));
      if (bars.plot) bars.plot.setData([bars.xs, bars.ys]);
      else if (chart.isConnected) bars.plot = histogram(chart, buckets, bars.interval, { onZoom: zoomTo });
      chart.dataset.total = String(bars.ys.reduce((a, b) => a + b, 0));
    }, 500);
  }

  let tail = null;
  async function follow(controller) {
    try {
      // the newest lines already stored come first, so none stored since the page was read is missed
      for await (const row of ndjson("/api/search/tail", { q, backlog: PAGE }, controller.signal)) {
        if (row.error) throw new Error(row.error);
        if (shown.has(row.event_id)) continue;
        place(row);
        count(row);
      }
    } catch (error) {
      if (error.name !== "AbortError") status.replaceChildren(errorBox(error));
    }
  }
  liveToggle.addEventListener("change", () => {
    tail?.abort();
    tail = null;
    if (liveToggle.checked) {
      tail = new AbortController();
      follow(tail);
    }
  });

  const facetsShown = facets();
  try {
    await page(null);
  } catch (error) {
    status.replaceChildren(errorBox(error)); // a query the API cannot run: its reason, where the user typed
  }
  await facetsShown;
  return () => {
    tail?.abort();
    clearTimeout(redraw);
  };
}
