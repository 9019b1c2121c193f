// A worker: its settings (config values, secret names only), versions, schedules and recent
// jobs, and the actions the signed-in role may take: Run (with a JSON input), Pause/Resume.
import { can, get, patch, post } from "../api.js";
import {
  badge, definitions, errorBox, h, jobHref, link, replace, section, table, when,
} from "../dom.js";

const enc = encodeURIComponent;

function settings(worker) {
  const config = Object.entries(worker.config || {});
  return section(
    "Settings",
    definitions([
      ["Description", worker.description || h("span", { class: "muted" }, "—")],
      ["Runtime", worker.runtime],
      ["Entrypoint", h("code", null, worker.entrypoint)],
      ["Timeout", `${worker.timeout_seconds} s`],
      ["Retries", String(worker.max_retries)],
      ["Memory", `${worker.memory_mb} MB`],
      ["CPUs", String(worker.cpus)],
      ["Network", worker.network],
      ["Max concurrency", worker.max_concurrency == null ? "unlimited" : String(worker.max_concurrency)],
      ["Created", h("span", null, when(worker.created_at, { both: true }), " by ", worker.created_by)],
      ["Updated", when(worker.updated_at, { both: true })],
    ]),
    h("h3", null, "Config"),
    config.length
      ? table(
          [
            { label: "Key", cell: ([k]) => h("code", null, k) },
            { label: "Value", cell: ([, v]) => h("code", null, JSON.stringify(v)) },
          ],
          config,
        )
      : h("p", { class: "empty" }, "No config."),
    h("h3", null, "Secrets"),
    worker.secrets.length
      ? h("ul", { class: "chips" }, worker.secrets.map((name) => h("li", { class: "tag" }, name)))
      : h("p", { class: "empty" }, "No secrets."),
    worker.source_code != null &&
      h("details", null, h("summary", null, "Source code"), h("pre", { class: "code" }, worker.source_code)),
  );
}

function runForm(worker) {
  const input = h("textarea", { id: "run-input", rows: 5, spellcheck: "false", class: "mono" }, "{}");
  const message = h("div", { class: "form-message", "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "btn btn-primary" }, "Run");
  const form = h(
    "form",
    { class: "run-form" },
    h("div", { class: "field" }, h("label", { for: "run-input" }, "Input (JSON)"), input),
    message,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let value;
    try {
      value = JSON.parse(input.value.trim() || "{}");
    } catch (error) {
      replace(message, errorBox(new Error(`The input is not valid JSON: ${error.message}`)));
      return;
    }
    button.disabled = true;
    try {
      const job = await post(`/workers/${enc(worker.id)}/jobs`, { input: value });
      window.location.hash = jobHref(job.id);
    } catch (error) {
      replace(message, errorBox(error));
      button.disabled = false;
    }
  });
  return section("Run", form);
}

function pauseButton(worker, reload) {
  if (worker.status === "deprecated") return null;
  const next = worker.status === "paused" ? "active" : "paused";
  const button = h("button", { type: "button", class: "btn" }, next === "paused" ? "Pause" : "Resume");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await patch(`/workers/${enc(worker.id)}`, { status: next });
      reload();
    } catch (error) {
      button.replaceWith(errorBox(error));
    }
  });
  return button;
}

const JOB_COLUMNS = [
  { label: "Job", cell: (j) => link(jobHref(j.id), h("code", null, j.id)) },
  { label: "Status", cell: (j) => badge(j.status) },
  { label: "Version", cell: (j) => `v${j.worker_version}` },
  { label: "Trigger", cell: (j) => j.trigger },
  { label: "Created", cell: (j) => when(j.created_at) },
];
const VERSION_COLUMNS = [
  { label: "Version", cell: (v) => h("span", null, `v${v.version}`, v.current ? h("span", { class: "tag tag-current" }, "current") : null) },
  { label: "Kind", cell: (v) => v.kind },
  { label: "Status", cell: (v) => badge(v.status) },
  { label: "Created", cell: (v) => h("span", null, when(v.created_at), " by ", v.created_by) },
  { label: "Error", cell: (v) => v.error || "" },
];
const SCHEDULE_COLUMNS = [
  { label: "Cron", cell: (s) => h("code", null, s.cron) },
  { label: "Time zone", cell: (s) => s.timezone },
  { label: "Next run", cell: (s) => when(s.next_run_at) },
  { label: "Last run", cell: (s) => (s.last_run ? h("span", null, badge(s.last_run.status), " ", when(s.last_run.slot)) : "—") },
];

async function listed(path, columns, empty, signal) {
  try {
    const page = await get(path, { query: { per_page: 10 }, signal });
    return table(columns, page.data, { empty });
  } catch (error) {
    return errorBox(error);
  }
}

export async function renderWorker(main, { params, signal }) {
  const [id] = params;
  const reload = () => renderWorker(main, { params, signal });
  let worker;
  try {
    worker = await get(`/workers/${enc(id)}`, { signal });
  } catch (error) {
    if (!signal.aborted) replace(main, h("p", null, link("#/workers", "← Workers")), errorBox(error));
    return;
  }
  const [mayRun, mayManage] = await Promise.all([can("run"), can("manage")]);
  const [jobs, versions, schedules] = await Promise.all([
    listed(`/workers/${enc(id)}/jobs`, JOB_COLUMNS, "No jobs yet.", signal),
    listed(`/workers/${enc(id)}/versions`, VERSION_COLUMNS, "No versions.", signal),
    listed(`/workers/${enc(id)}/schedules`, SCHEDULE_COLUMNS, "No schedules.", signal),
  ]);
  if (signal.aborted) return;
  const head = h(
    "div",
    { class: "page-head" },
    h("div", null, h("p", { class: "crumbs" }, link("#/workers", "Workers")), h("h1", null, worker.name),
      h("p", { class: "meta" }, badge(worker.status), h("span", { class: "tag" }, worker.runtime), `v${worker.version}`, h("code", { class: "muted" }, worker.id))),
    h("div", { class: "actions" }, mayManage && pauseButton(worker, reload)),
  );
  replace(
    main,
    head,
    h(
      "div",
      { class: "grid" },
      h("div", { class: "col" }, mayRun && worker.status === "active" && runForm(worker), section("Recent jobs", jobs), section("Versions", versions), section("Schedules", schedules)),
      h("div", { class: "col" }, settings(worker)),
    ),
  );
}
