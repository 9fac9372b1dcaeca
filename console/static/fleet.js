// Fleet (#/): the Fleet overview dashboard's panels; function names link to the function page.

import { el } from "./dom.js";
import { dashboard, renderDashboard } from "./panels.js";

export async function render(view, { range }) {
  const board = await dashboard("fnscope-fleet");
  view.append(el("header", { class: "page-head" }, el("h1", {}, "Fleet"), el("p", {}, board.description)));
  return { refresh: renderDashboard(view, board, { range }) };
}
