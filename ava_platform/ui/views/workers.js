// Workers: search by name, filter by status and runtime, page through. The filters live in the
// hash (#/workers?q=…&status=…), so Back and a reload keep them.
import { get } from "../api.js";
import { badge, errorBox, h, link, replace, table, when, workerHref } from "../dom.js";

const PER_PAGE = 20;
const STATUSES = ["", "active", "paused", "deprecated"];
const RUNTIMES = ["", "python", "nodejs", "deno", "shell", "wasm"];

function select(id, label, values, current) {
  const el = h(
    "select",
    { id },
    values.map((v) => h("option", { value: v, selected: v === current }, v || `Any ${label.toLowerCase()}`)),
  );
  return h("div", { class: "field inline" }, h("label", { for: id }, label), el);
}

function setQuery(params) {
  const clean = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) clean.set(k, v);
  const text = clean.toString();
  window.location.hash = `#/workers${text ? `?${text}` : ""}`;
}

export function pager(meta, goTo) {
  const pages = Math.max(1, Math.ceil(meta.total / meta.per_page));
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", class: "btn", disabled: meta.page <= 1, onclick: () => goTo(meta.page - 1) }, "← Previous"),
    h("span", { class: "muted" }, `Page ${meta.page} of ${pages} · ${meta.total} in all`),
    h("button", { type: "button", class: "btn", disabled: meta.page >= pages, onclick: () => goTo(meta.page + 1) }, "Next →"),
  );
}

const COLUMNS = [
  { label: "Name", cell: (w) => link(workerHref(w.id), w.name) },
  { label: "Runtime", cell: (w) => h("span", { class: "tag" }, w.runtime) },
  { label: "Status", cell: (w) => badge(w.status) },
  { label: "Version", cell: (w) => `v${w.version}` },
  { label: "Updated", cell: (w) => when(w.updated_at) },
];

export async function renderWorkers(main, { query, signal }) {
  const state = {
    q: query.get("q") || "",
    status: query.get("status") || "",
    runtime: query.get("runtime") || "",
    page: Number(query.get("page") || 1),
  };
  const search = h("input", { id: "workers-search", type: "search", placeholder: "Search workers by name", value: state.q });
  const results = h("div", { class: "results", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const filters = h(
    "div",
    { class: "filters" },
    h("div", { class: "field grow" }, h("label", { for: "workers-search" }, "Search"), search),
    select("workers-status", "Status", STATUSES, state.status),
    select("workers-runtime", "Runtime", RUNTIMES, state.runtime),
  );
  replace(main, h("div", { class: "page-head" }, h("h1", null, "Workers")), filters, results);

  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => setQuery({ ...state, q: search.value.trim(), page: "" }), 300);
  });
  filters.querySelector("#workers-status").addEventListener("change", (e) => setQuery({ ...state, status: e.target.value, page: "" }));
  filters.querySelector("#workers-runtime").addEventListener("change", (e) => setQuery({ ...state, runtime: e.target.value, page: "" }));
  signal.addEventListener("abort", () => clearTimeout(typing));

  try {
    const page = await get("/workers", {
      query: { q: state.q, "filter[status]": state.status, "filter[runtime]": state.runtime, page: state.page, per_page: PER_PAGE },
      signal,
    });
    const empty = state.q || state.status || state.runtime ? "No worker matches these filters." : "No workers yet: create one with the API or `ava workers create`.";
    replace(results, table(COLUMNS, page.data, { empty }), page.meta.total > PER_PAGE && pager(page.meta, (n) => setQuery({ ...state, page: String(n) })));
  } catch (error) {
    if (!signal.aborted) replace(results, errorBox(error));
  }
  if (state.q && document.activeElement !== search) {
    search.focus();
    search.setSelectionRange(search.value.length, search.value.length);
  }
}
