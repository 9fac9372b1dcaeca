// Fleet (#/): the Fleet overview dashboard's panels; function names link to the function page. Above them, each
// disabled function (reserved concurrency 0) with who disabled it, when and from where (/api/stats/disabled).

import { api } from "./api.js";
import { el, errorBox, fmtTime, functionLink } from "./dom.js";
import { dashboard, renderDashboard } from "./panels.js";
import { zoneLabel } from "./settings.js";

export async function render(view, { range }) {
  const board = await dashboard("fnscope-fleet");
  const notices = el("div", { class: "notices", "aria-live": "polite" });
  view.append(el("header", { class: "page-head" }, el("h1", {}, "Fleet"), el("p", {}, board.description)), notices);
  const panels = renderDashboard(view, board, { range });
  const disabled = () =>
    api("/api/stats/disabled")
      .then((out) => notices.replaceChildren(...out.disabled.map((f) => note(f, range))))
      .catch((error) => notices.replaceChildren(errorBox(error)));
  disabled();
  return { refresh: () => Promise.all([panels(), disabled()]) };
}

function note(row, range) {
  const { at, by, source_ip: ip } = row;
  return el(
    "p",
    { class: "notice state-disabled", dataset: { function: row.function } },
    functionLink(row.function, range),
    ` is disabled (reserved concurrency 0) since ${fmtTime(at)} ${zoneLabel()} by ${by || "an unknown principal"}`,
    ip ? ` from ${ip}` : "",
    ".",
  );
}
