// Building the page. Everything shown comes in as text (createTextNode / textContent): a name,
// a log line or a result that holds HTML is displayed, never parsed. No innerHTML anywhere.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const STATUS_WORDS = {
  timed_out: "timed out",
};

// A status by colour and by word.
export function badge(status) {
  const word = STATUS_WORDS[status] || status || "unknown";
  return h("span", { class: `badge badge-${status || "unknown"}` }, h("span", { class: "dot" }), word);
}

const UNITS = [
  ["day", 86400],
  ["h", 3600],
  ["min", 60],
  ["s", 1],
];

export function relative(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.round((now - then) / 1000);
  const size = Math.abs(seconds);
  if (size < 2) return "just now";
  for (const [unit, span] of UNITS) {
    if (size >= span) {
      const count = Math.floor(size / span);
      const label = unit === "day" && count > 1 ? "days" : unit;
      return seconds > 0 ? `${count} ${label} ago` : `in ${count} ${label}`;
    }
  }
  return "";
}

export function absolute(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

// A time both ways: relative in words, absolute beside it (and in the tooltip).
export function when(iso, { both = false } = {}) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const el = h("time", { datetime: iso, title: absolute(iso) }, relative(iso));
  if (!both) return el;
  return h("span", { class: "when" }, el, h("span", { class: "muted abs" }, absolute(iso)));
}

export function duration(startIso, endIso) {
  if (!startIso) return "—";
  const end = endIso ? Date.parse(endIso) : Date.now();
  const ms = Math.max(0, end - Date.parse(startIso));
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function json(value) {
  return h("pre", { class: "code" }, JSON.stringify(value, null, 2));
}

export function errorBox(error) {
  return h("div", { class: "alert", role: "alert" }, error.message || String(error));
}

export function table(columns, rows, { empty = "Nothing here yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      null,
      h("thead", null, h("tr", null, columns.map((c) => h("th", { scope: "col" }, c.label)))),
      h(
        "tbody",
        null,
        rows.map((row) => h("tr", null, columns.map((c) => h("td", { "data-label": c.label }, c.cell(row))))),
      ),
    ),
  );
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), ...children);
}

export function definitions(pairs) {
  return h(
    "dl",
    { class: "defs" },
    pairs.filter(Boolean).map(([term, value]) => [h("dt", null, term), h("dd", null, value)]),
  );
}

export function link(href, ...children) {
  return h("a", { href }, ...children);
}

export const workerHref = (id) => `#/workers/${encodeURIComponent(id)}`;
export const jobHref = (id) => `#/jobs/${encodeURIComponent(id)}`;
