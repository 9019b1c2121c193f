// A job: status, attempts, timings, result or error, and its logs live. The logs come over the
// SSE endpoint read with fetch() (the auth headers cannot go on an EventSource); each line is
// shown as text, stdout and stderr told apart, and the view follows the end while it grows.
import { apiHas, can, followLogs, get, post } from "../api.js";
import {
  badge, definitions, duration, errorBox, h, jobHref, json, link, replace, section, table, when, workerHref,
} from "../dom.js";

const FINISHED = new Set(["succeeded", "failed", "timed_out", "cancelled"]);
const REFRESH_MS = 1000;
const RERUN_PATH = "/v1/ava/jobs/{job_id}/rerun";
const DELIVERIES_PATH = "/v1/ava/jobs/{job_id}/deliveries";
const DELIVERY_POLLS = 30; // after the job ends, its delivery log is read again until settled
const enc = encodeURIComponent;

const ATTEMPT_COLUMNS = [
  { label: "#", cell: (a) => String(a.number) },
  { label: "Outcome", cell: (a) => (a.outcome ? badge(a.outcome) : badge("running")) },
  { label: "Exit code", cell: (a) => (a.exit_code == null ? "—" : String(a.exit_code)) },
  { label: "Started", cell: (a) => when(a.started_at) },
  { label: "Duration", cell: (a) => duration(a.started_at, a.finished_at) },
  { label: "Error", cell: (a) => (a.error ? `${a.error.type}: ${a.error.message}` : "") },
];

// the Error column only when an attempt has one: the table stays readable on a narrow card
function attemptColumns(job) {
  const anyError = job.attempts.some((a) => a.error);
  return anyError ? ATTEMPT_COLUMNS : ATTEMPT_COLUMNS.filter((c) => c.label !== "Error");
}

const DELIVERY_COLUMNS = [
  { label: "Status", cell: (d) => badge(d.status) },
  { label: "Attempts", cell: (d) => String(d.attempts.length) },
  { label: "Last answer", cell: (d) => lastAnswer(d.attempts[d.attempts.length - 1]) },
  { label: "When", cell: (d) => (d.status === "pending" && d.next_attempt_at ? h("span", null, "next ", when(d.next_attempt_at)) : when(d.delivered_at)) },
];

function lastAnswer(attempt) {
  if (!attempt) return "—";
  return attempt.response_status == null ? attempt.error || "no answer" : `HTTP ${attempt.response_status}`;
}

// a job that names a webhook: where it goes and how each delivery went
function deliveries(job, sent) {
  if (!job.webhook_url || !sent) return null;
  return section(
    "Webhook deliveries",
    h("p", { class: "muted" }, "To ", h("code", null, job.webhook_url)),
    table(DELIVERY_COLUMNS, sent, { empty: FINISHED.has(job.status) ? "Not queued yet." : "Sent when the job ends." }),
  );
}

const settled = (sent) => sent && sent.length > 0 && sent.every((d) => d.status !== "pending");

function outcome(job) {
  if (job.error) {
    return section(
      "Error",
      h("div", { class: "error-block" }, h("p", { class: "error-type" }, job.error.type), h("pre", { class: "code error-message" }, job.error.message)),
    );
  }
  if (job.status === "succeeded") return section("Result", json(job.result));
  return null;
}

function summary(job, worker) {
  return section(
    "Summary",
    definitions([
      ["Status", badge(job.status)],
      ["Worker", h("span", null, link(workerHref(job.worker_id), worker ? worker.name : h("code", null, job.worker_id)), ` v${job.worker_version}`)],
      ["Attempt", `${job.attempt} of ${job.max_retries + 1}`],
      ["Trigger", job.trigger],
      job.rerun_of && ["Re-run of", link(jobHref(job.rerun_of), h("code", null, job.rerun_of))],
      ["Created", h("span", null, when(job.created_at, { both: true }), " by ", job.created_by)],
      ["Started", when(job.started_at, { both: true })],
      ["Finished", when(job.finished_at, { both: true })],
      ["Duration", duration(job.started_at, job.finished_at)],
      job.next_attempt_at && ["Next attempt", when(job.next_attempt_at, { both: true })],
    ]),
  );
}

function actions(job, { mayRun, hasRerun }) {
  const box = h("div", { class: "actions" });
  const act = (label, path, danger) => {
    const button = h("button", { type: "button", class: danger ? "btn btn-danger" : "btn" }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const next = await post(path);
        if (next && next.id && next.id !== job.id) window.location.hash = jobHref(next.id);
      } catch (error) {
        box.append(errorBox(error));
      }
    });
    return button;
  };
  if (mayRun && !FINISHED.has(job.status)) box.append(act("Cancel", `/jobs/${enc(job.id)}/cancel`, true));
  if (mayRun && hasRerun && FINISHED.has(job.status)) box.append(act("Re-run", `/jobs/${enc(job.id)}/rerun`, false));
  return box;
}

function logPanel() {
  const lines = h("ol", { class: "log", id: "log-lines", "aria-label": "Log lines" });
  const follow = h("input", { type: "checkbox", id: "log-follow", checked: true });
  const state = h("span", { class: "muted", id: "log-state" }, "connecting…");
  const panel = section(
    "Logs",
    h("div", { class: "log-bar" }, state, h("label", { class: "check" }, follow, " Follow")),
    h("div", { class: "log-scroll", id: "log-scroll" }, lines),
  );
  return { panel, lines, follow, state };
}

function addLine(log, entry) {
  const stream = entry.stream === "stderr" ? "stderr" : "stdout";
  const time = new Date(entry.ts);
  log.lines.append(
    h(
      "li",
      { class: `log-line ${stream}` },
      h("span", { class: "log-ts", title: entry.ts }, Number.isNaN(time.getTime()) ? "" : time.toISOString().slice(11, 23)),
      h("span", { class: "log-stream" }, stream === "stderr" ? "err" : "out"),
      h("span", { class: "log-attempt", title: `attempt ${entry.attempt}` }, `#${entry.attempt}`),
      h("span", { class: "log-text" }, entry.line),
    ),
  );
  if (log.follow.checked) {
    const scroll = log.lines.parentElement;
    scroll.scrollTop = scroll.scrollHeight;
  }
}

export async function renderJob(main, { params, signal }) {
  const [id] = params;
  let job;
  try {
    job = await get(`/jobs/${enc(id)}`, { signal });
  } catch (error) {
    if (!signal.aborted) replace(main, h("p", null, link("#/jobs", "← Jobs")), errorBox(error));
    return;
  }
  const [mayRun, hasRerun, hasDeliveries, worker] = await Promise.all([
    can("run"),
    apiHas(RERUN_PATH, "post"),
    apiHas(DELIVERIES_PATH, "get"),
    get(`/workers/${enc(job.worker_id)}`, { signal }).catch(() => null),
  ]);
  let sent = null;
  const readDeliveries = async () => {
    if (!hasDeliveries || !job.webhook_url) return;
    try {
      sent = (await get(`/jobs/${enc(id)}/deliveries`, { signal })).data;
    } catch {
      // shown again at the next read; the job itself stays on the page
    }
  };
  await readDeliveries();
  if (signal.aborted) return;
  const head = h("div", { class: "page-head" });
  const details = h("div", { class: "col" });
  const logs = logPanel();
  const draw = () => {
    replace(
      head,
      h("div", null, h("p", { class: "crumbs" }, link("#/jobs", "Jobs"), " / ", link(workerHref(job.worker_id), worker ? worker.name : job.worker_id)),
        h("h1", null, h("code", null, job.id)), h("p", { class: "meta" }, badge(job.status), `attempt ${job.attempt} of ${job.max_retries + 1}`)),
      actions(job, { mayRun, hasRerun }),
    );
    replace(
      details,
      summary(job, worker),
      outcome(job),
      job.attempts.length > 0 && section("Attempts", table(attemptColumns(job), job.attempts)),
      deliveries(job, sent),
      section("Input", json(job.input)),
    );
  };
  draw();
  replace(main, head, h("div", { class: "grid job-grid" }, h("div", { class: "col" }, logs.panel), details));

  let timer = null;
  let polls = 0;
  const refresh = async () => {
    try {
      job = await get(`/jobs/${enc(id)}`, { signal });
      await readDeliveries();
      draw();
    } catch (error) {
      if (signal.aborted) return;
    }
    if (FINISHED.has(job.status)) polls += 1;
    const more = !FINISHED.has(job.status) || (job.webhook_url && !settled(sent) && polls < DELIVERY_POLLS);
    if (!signal.aborted && more) timer = setTimeout(refresh, REFRESH_MS);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  if (!FINISHED.has(job.status) || (job.webhook_url && !settled(sent))) timer = setTimeout(refresh, REFRESH_MS);

  replace(logs.state, "live");
  logs.state.classList.add("live");
  await followLogs(id, {
    signal,
    onLine: (entry) => addLine(logs, entry),
    onEnd: () => {
      logs.state.classList.remove("live");
      replace(logs.state, logs.lines.childElementCount ? `ended · ${logs.lines.childElementCount} lines` : "ended · no output");
      clearTimeout(timer);
      refresh();
    },
    onProblem: (error) => replace(logs.state, `reconnecting: ${error.message}`),
  });
}
