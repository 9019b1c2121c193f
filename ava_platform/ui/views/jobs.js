// Jobs: the tenant's jobs, newest first, filtered by status; the list refreshes itself every
// few seconds while the view is open, so running jobs move on without a reload.
import { apiHas, can, currentSession, get } from "../api.js";
import { badge, definitions, duration, errorBox, h, jobHref, link, replace, section, table, when, workerHref } from "../dom.js";
import { pager } from "./workers.js";

const PER_PAGE = 20;
const REFRESH_MS = 2000;
const QUOTA_PATH = "/v1/ava/tenants/{tenant_id}/quota";
const STATUSES = ["", "queued", "running", "succeeded", "failed", "timed_out", "cancelled"];

const COLUMNS = [
  { label: "Job", cell: (j) => link(jobHref(j.id), h("code", null, j.id)) },
  { label: "Status", cell: (j) => badge(j.status) },
  { label: "Worker", cell: (j) => link(workerHref(j.worker_id), h("code", null, j.worker_id)) },
  { label: "Attempt", cell: (j) => `${j.attempt} of ${j.max_retries + 1}` },
  { label: "Created", cell: (j) => when(j.created_at) },
  { label: "Duration", cell: (j) => duration(j.started_at, j.finished_at) },
];

const limit = (count, max) => `${count} of at most ${max}`;

// the tenant's quotas beside what it has queued and running now (shown when the API serves
// the route and the role may read it)
function quotaCard(quota) {
  return section(
    "Tenant quota",
    definitions([
      ["Queued", limit(quota.queued, quota.effective_max_queued)],
      ["Running", quota.effective_max_running > 0 ? limit(quota.running, quota.effective_max_running) : `${quota.running} (no tenant limit)`],
    ]),
  );
}

async function readQuota(showQuota, signal) {
  if (!showQuota) return null;
  const tenant = currentSession().tenant;
  return get(`/tenants/${encodeURIComponent(tenant)}/quota`, { signal }).then(quotaCard, () => null);
}

function setQuery(status, page) {
  const params = new URLSearchParams();
  if (status) params.set("status", status);
  if (page > 1) params.set("page", String(page));
  const text = params.toString();
  window.location.hash = `#/jobs${text ? `?${text}` : ""}`;
}

export async function renderJobs(main, { query, signal }) {
  const status = query.get("status") || "";
  const page = Number(query.get("page") || 1);
  const filter = h(
    "select",
    { id: "jobs-status" },
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s ? s.replace("_", " ") : "Any status")),
  );
  filter.addEventListener("change", () => setQuery(filter.value, 1));
  const stamp = h("span", { class: "muted live" });
  const results = h("div", { class: "results" }, h("p", { class: "muted" }, "Loading…"));
  const quota = h("div", { class: "quota" });
  const [hasQuota, mayRead] = await Promise.all([apiHas(QUOTA_PATH, "get"), can("read")]);
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Jobs"), stamp),
    quota,
    h("div", { class: "filters" }, h("div", { class: "field inline" }, h("label", { for: "jobs-status" }, "Status"), filter)),
    results,
  );

  let timer = null;
  const refresh = async () => {
    try {
      const [found, card] = await Promise.all([
        get("/jobs", { query: { "filter[status]": status, page, per_page: PER_PAGE }, signal }),
        readQuota(hasQuota && mayRead, signal),
      ]);
      replace(quota, card);
      const empty = status ? `No ${status.replace("_", " ")} jobs.` : "No jobs yet.";
      replace(results, table(COLUMNS, found.data, { empty }), found.meta.total > PER_PAGE && pager(found.meta, (n) => setQuery(status, n)));
      replace(stamp, `Live · updated ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      if (signal.aborted) return;
      replace(results, errorBox(error));
    }
    if (!signal.aborted) timer = setTimeout(refresh, REFRESH_MS);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  await refresh();
}
