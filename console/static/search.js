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

function lineItem(row, range, live = false) {
  const context = el("div", { class: "context", hidden: true });
  const toggle = el("button", { type: "button", class: "link context-link" }, "context");
  toggle.addEventListener("click", () => showContext(row, context, range));
  return el(
    "li",
    { class: `line level-${row.level}${live ? " live" : ""}`, dataset: { ref: row.ref } },
    el(
      "div",
      { class: "line-head" },
      el("time", {}, fmtTime(row.time)),
      functionLink(row.function, range),
      el("span", { class: "level" }, row.level),
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
  async function page(cursor) {
    const out = await api("/api/search", { q, since, limit: PAGE, cursor, histogram: !cursor });
    if (!cursor) {
      const hist = out.histogram;
      status.textContent = `${hist.total} matching lines in the last ${range}`;
      if (hist.total) histogram(chart, hist.buckets, hist.interval_seconds);
    }
    list.append(...out.results.map((row) => lineItem(row, range)));
    more.replaceChildren();
    if (out.next_cursor) {
      const older = el("button", { type: "button", class: "older" }, "Older");
      older.addEventListener("click", () => page(out.next_cursor).catch((error) => more.replaceChildren(errorBox(error))));
      more.append(older);
    } else if (!list.children.length) {
      more.append(el("p", { class: "empty" }, "Nothing matches in this range."));
    }
  }

  let tail = null;
  async function follow(controller) {
    try {
      for await (const row of ndjson("/api/search/tail", { q }, controller.signal)) {
        if (row.error) throw new Error(row.error);
        list.prepend(lineItem(row, range, true));
        while (list.children.length > LIVE_MAX) list.lastElementChild.remove();
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
  return () => tail?.abort();
}
