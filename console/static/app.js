// The console's router: the page and its parameters live in location.hash (#/path?query), so every view is a link.

import * as alerts from "./alerts.js";
import * as audit from "./audit.js";
import { errorBox } from "./dom.js";
import * as fleet from "./fleet.js";
import * as fn from "./function.js";
import * as search from "./search.js";

const RANGES = ["15m", "1h", "6h", "24h", "7d"];
const DEFAULT_RANGE = "1h";

// [pattern, page module, nav entry, whether the global range applies]
const ROUTES = [
  [/^\/$/, fleet, "fleet", true],
  [/^\/function\/([^/]+)$/, fn, "fleet", true],
  [/^\/search$/, search, "search", true],
  [/^\/audit$/, audit, "audit", false],
  [/^\/alerts$/, alerts, "alerts", false],
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

async function render() {
  cleanup?.();
  cleanup = null;
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
  const [pattern, page, , usesRange] = route;
  rangeSelect.parentElement.hidden = !usesRange;
  const args = pattern.exec(path).slice(1).map(decodeURIComponent);
  try {
    cleanup = (await page.render(view, { params, range, args, setParams })) ?? null;
  } catch (error) {
    view.append(errorBox(error));
  }
}

document.getElementById("range").addEventListener("change", (event) => setParams({ range: event.target.value }));
window.addEventListener("hashchange", render);
window.addEventListener("fnscope:token", render);
render();
