// Search (#/search?q=...): the query language over /api/search, a histogram, older pages, a live tail and each
// line's correlation (its invocation, the API request behind it, the function's recent changes).

import { api, ndjson } from "./api.js";
import { histogram } from "./charts.js";
import { el, errorBox, fmtTime, fmtValue, functionLink, hashOf, table } from "./dom.js";

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

function lineItem(row, range, live = false) {
  const context = el("div", { class: "context", hidden: true });
  const toggle = el("button", { type: "button", class: "link context-link" }, "context");
  toggle.addEventListener("click", () => showContext(row, context, range));
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
      toggle,
    ),
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
      ? table(["time", "action", "principal_name", "source_ip", "mfa", "error_code"], changes, { className: "changes" })
      : el("p", { class: "muted" }, "None."),
  );
  const links = [functionLink(found.line.function, range)];
  if (found.same_request_query) links.push(el("a", { href: hashOf("/search", { q: found.same_request_query, range }) }, "all lines of this request"));
  parts.push(el("p", { class: "links" }, links.flatMap((l, i) => (i ? [" · ", l] : [l]))));
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
  const liveToggle = el("input", { type: "checkbox", name: "live" });
  const status = el("div", { class: "status" });
  const chart = el("div", { class: "histogram" });
  const list = el("ol", { class: "results" });
  const more = el("div", { class: "more" });
  view.append(
    el("header", { class: "page-head" }, el("h1", {}, "Search")),
    el("div", { class: "card wide" }, form, el("label", { class: "live-toggle" }, liveToggle, " Live tail"), status, chart),
    el("div", { class: "card wide" }, list, more),
  );

  const since = range;
  const shown = new Map(); // event id -> its <li>: a line is on screen once
  let total = 0;
  let bars = null; // the histogram's data and chart, kept to count live lines in
  function showTotal() {
    status.textContent = `${total} matching lines in the last ${range}`;
  }
  async function page(cursor) {
    const out = await api("/api/search", { q, since, limit: PAGE, cursor, histogram: !cursor });
    if (!cursor) {
      const hist = out.histogram;
      total = hist.total;
      showTotal();
      bars = { interval: hist.interval_seconds, xs: [], ys: [], plot: null };
      for (const b of hist.buckets) {
        bars.xs.push(Date.parse(b.bucket.endsWith("Z") ? b.bucket : `${b.bucket}Z`) / 1000);
        bars.ys.push(b.count);
      }
      if (hist.total) bars.plot = histogram(chart, hist.buckets, hist.interval_seconds);
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
      else if (chart.isConnected) bars.plot = histogram(chart, buckets, bars.interval);
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

  try {
    await page(null);
  } catch (error) {
    status.replaceChildren(errorBox(error)); // a query the API cannot run: its reason, where the user typed
  }
  return () => {
    tail?.abort();
    clearTimeout(redraw);
  };
}
