// The console's router: the page and its parameters live in location.hash (#/path?query), so every view is a link.

import * as alerts from "./alerts.js";
import * as audit from "./audit.js";
import { errorBox } from "./dom.js";
import * as fleet from "./fleet.js";
import * as fn from "./function.js";
import * as search from "./search.js";
import { REFRESHES, ZONES, refreshSeconds, setRefreshSeconds, setZone, zone } from "./settings.js";

const RANGES = ["15m", "1h", "6h", "24h", "7d"];
const DEFAULT_RANGE = "1h";

// [pattern, page module, nav entry, whether the global range applies, whether it refreshes on the interval]
// (search keeps what the user paged to and has its live tail instead)
const ROUTES = [
  [/^\/$/, fleet, "fleet", true, true],
  [/^\/function\/([^/]+)$/, fn, "fleet", true, true],
  [/^\/search$/, search, "search", true, false],
  [/^\/audit$/, audit, "audit", false, true],
  [/^\/alerts$/, alerts, "alerts", false, true],
];

export function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?", 2);
  return { path: path || "/", params: new URLSearchParams(query) };
}

// Change some parameters of the current view (a new history entry, so Back works).
export function setParams(updates) {
  const { path, params } = parseHash();
  for (const [key, value] of Object.entries(updates)) {
    if (value === undefined || value === null || value === "" || value === false) params.delete(key);
    else params.set(key, value);
  }
  const qs = params.toString();
  location.hash = `${path}${qs ? `?${qs}` : ""}`;
}

let cleanup = null;
let refresh = null; // the current page's own refresh, else null (then it is drawn again)
let refreshes = false;
let lastDrawn = 0;

async function render() {
  cleanup?.();
  cleanup = null;
  refresh = null;
  lastDrawn = Date.now();
  const { path, params } = parseHash();
  const range = RANGES.includes(params.get("range")) ? params.get("range") : DEFAULT_RANGE;
  const rangeSelect = document.getElementById("range");
  rangeSelect.value = range;
  const main = document.getElementById("page");
  // A fresh view per render: a slow answer for a page already left lands in a detached node.
  const view = document.createElement("div");
  view.className = "view";
  main.replaceChildren(view);
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", route !== undefined && link.dataset.nav === route[2]);
    link.href = `#${link.getAttribute("href").replace(/^#/, "").split("?")[0]}?range=${range}`;
  }
  if (!route) {
    view.append(errorBox(new Error(`no page ${path}`)));
    return;
  }
  const [pattern, page, , usesRange, refreshable] = route;
  rangeSelect.parentElement.hidden = !usesRange;
  refreshes = refreshable;
  const args = pattern.exec(path).slice(1).map(decodeURIComponent);
  try {
    const out = (await page.render(view, { params, range, args, setParams })) ?? null;
    if (typeof out === "function") cleanup = out;
    else if (out) ({ cleanup = null, refresh = null } = out);
  } catch (error) {
    view.append(errorBox(error));
  }
}

// Auto-refresh: every chosen interval while the tab is shown; a hidden tab asks nothing, and catches up at once
// when shown again.
function tick() {
  const every = refreshSeconds();
  if (!every || !refreshes || document.visibilityState !== "visible") return;
  if (Date.now() - lastDrawn < every * 1000 - 250) return;
  lastDrawn = Date.now();
  if (refresh) refresh();
  else {
    const y = window.scrollY;
    render().then(() => window.scrollTo(0, y));
  }
}

function choices(select, options, chosen, onChange) {
  select.replaceChildren(
    ...Object.entries(options).map(([value, text]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      option.selected = String(chosen) === value;
      return option;
    }),
  );
  select.addEventListener("change", () => onChange(select.value));
}

choices(document.getElementById("refresh"), REFRESHES, refreshSeconds(), (value) => {
  setRefreshSeconds(value);
  lastDrawn = Date.now();
});
choices(document.getElementById("zone"), ZONES, zone(), (value) => {
  setZone(value);
  render();
});
setInterval(tick, 1000);
document.addEventListener("visibilitychange", tick);

// a range chosen replaces a span zoomed into on the search histogram
document.getElementById("range").addEventListener("change", (event) => setParams({ range: event.target.value, since: null, until: null }));
window.addEventListener("hashchange", render);
window.addEventListener("fnscope:token", render);
render();
