// The dashboard's entry: a hash router (#/workers, #/workers/ID, #/jobs, #/jobs/ID). Each view
// gets an AbortSignal that fires when the user leaves it, which ends its polls and streams.
import { clearSession, currentSession } from "./api.js";
import { replace } from "./dom.js";
import { renderJob } from "./views/job.js";
import { renderJobs } from "./views/jobs.js";
import { renderSignIn } from "./views/signin.js";
import { renderWorker } from "./views/worker.js";
import { renderWorkers } from "./views/workers.js";

const ROUTES = [
  [/^#\/workers\/([^/?]+)$/, renderWorker, "workers"],
  [/^#\/workers(?:\?.*)?$/, renderWorkers, "workers"],
  [/^#\/jobs\/([^/?]+)$/, renderJob, "jobs"],
  [/^#\/jobs(?:\?.*)?$/, renderJobs, "jobs"],
];

let leaving = null;

function showIdentity(who) {
  document.getElementById("nav").hidden = !who;
  document.getElementById("who").hidden = !who;
  if (who) {
    replace(document.getElementById("who-text"), `${who.user} · ${who.tenant} · ${who.role}`);
  }
}

function markSection(section) {
  for (const a of document.querySelectorAll("#nav a[data-section]")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

export function query() {
  const hash = window.location.hash;
  const at = hash.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : hash.slice(at + 1));
}

function route() {
  if (leaving) leaving.abort();
  leaving = new AbortController();
  const main = document.getElementById("main");
  const who = currentSession();
  showIdentity(who);
  if (!who) {
    markSection(null);
    renderSignIn(main, { signal: leaving.signal, done: () => route() });
    return;
  }
  const hash = window.location.hash || "#/workers";
  for (const [pattern, render, section] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      markSection(section);
      const params = match.slice(1).map(decodeURIComponent);
      render(main, { params, query: query(), signal: leaving.signal });
      return;
    }
  }
  window.location.hash = "#/workers";
}

document.getElementById("sign-out").addEventListener("click", () => {
  clearSession();
  window.location.hash = "#/workers";
  route();
});
window.addEventListener("hashchange", route);
route();
