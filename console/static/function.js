// Function (#/function/NAME): the Function detail dashboard for one function, its other variables as selects.

import { api } from "./api.js";
import { el, hashOf } from "./dom.js";
import { dashboard, renderDashboard, varParams } from "./panels.js";

export async function render(view, { args: [name], params, range, setParams }) {
  const board = await dashboard("fnscope-function");
  const vars = { function: name };
  const controls = el("div", { class: "controls" });
  view.append(
    el(
      "header",
      { class: "page-head" },
      el("h1", {}, name),
      el("p", {}, board.description, " ", el("a", { href: hashOf("/search", { q: `function:${name}`, range }) }, "Search its logs")),
    ),
    controls,
  );
  for (const variable of board.variables) {
    const values = await api(`/api/dashboards/${board.uid}/variables/${variable.name}`, {
      since: range,
      ...varParams(vars),
    });
    const chosen = variable.name === "function" ? name : params.get(variable.name) ?? "";
    const options = [...(variable.include_all ? [""] : []), ...values.values];
    if (!options.includes(chosen)) options.push(chosen);
    const select = el(
      "select",
      { name: variable.name, "aria-label": variable.label },
      options.map((value) => el("option", { value, selected: value === chosen }, value === "" ? "All" : value)),
    );
    select.addEventListener("change", () => {
      if (variable.name === "function") location.hash = hashOf(`/function/${encodeURIComponent(select.value)}`, { range });
      else setParams({ [variable.name]: select.value });
    });
    controls.append(el("label", {}, variable.label, " ", select));
    vars[variable.name] = chosen;
  }
  return { refresh: renderDashboard(view, board, { range, vars }) };
}
