// The API as the dashboard uses it: the signed-in identity (session storage only: never a
// URL, a cookie or local storage), JSON calls with the four headers, and a job's live logs.

const KEY = "ava.session";

export function currentSession() {
  try {
    const value = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return value && value.secret ? value : null;
  } catch {
    return null;
  }
}

export function saveSession(value) {
  sessionStorage.setItem(KEY, JSON.stringify(value));
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

function authHeaders(who) {
  return {
    "x-internal-secret": who.secret,
    "x-tenant-id": who.tenant,
    "x-user-id": who.user,
    "x-platform-role": who.role,
  };
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || "error";
    this.details = error.details ?? null;
  }
}

function apiUrl(path, query) {
  const url = new URL(`/v1/ava${path}`, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url;
}

export async function call(method, path, { body, query, signal, who } = {}) {
  const identity = who || currentSession();
  const init = { method, headers: authHeaders(identity), signal, cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const response = await fetch(apiUrl(path, query), init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, body, options) => call("POST", path, { ...options, body });
export const patch = (path, body, options) => call("PATCH", path, { ...options, body });

// Server-Sent Events read with fetch() and a stream reader: EventSource cannot send headers.
function parseEvent(block) {
  const event = { type: "message", data: "", id: null };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.type = value;
    else if (field === "data") data.push(value);
    else if (field === "id") event.id = value;
  }
  event.data = data.join("\n");
  return event;
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n?/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      onEvent(parseEvent(buffer.slice(0, end)));
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
    }
  }
}

const MAX_RECONNECTS = 5;

// Calls onLine({ts, stream, attempt, line}) for every line, from the first, until the job has
// ended (then onEnd(status)); a dropped stream is resumed after the last line it delivered.
export async function followLogs(jobId, { onLine, onEnd, onProblem, signal }) {
  let lastId = "";
  let ended = false;
  for (let tries = 0; !ended && tries <= MAX_RECONNECTS && !signal.aborted; tries += 1) {
    const headers = { ...authHeaders(currentSession()), accept: "text/event-stream" };
    if (lastId) headers["last-event-id"] = lastId;
    try {
      const response = await fetch(apiUrl(`/jobs/${encodeURIComponent(jobId)}/logs`), {
        headers,
        signal,
        cache: "no-store",
      });
      if (!response.ok) {
        onProblem(new ApiError(response.status, await response.json().catch(() => null)));
        return;
      }
      await readEvents(response, (event) => {
        if (event.type === "log") {
          if (event.id) lastId = event.id;
          onLine(JSON.parse(event.data));
        } else if (event.type === "end") {
          ended = true;
          onEnd(JSON.parse(event.data).status);
        }
      });
    } catch (error) {
      if (signal.aborted) return;
      onProblem(error);
    }
    if (!ended) await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

let cachedDocument = null;

// The served OpenAPI document: the dashboard offers an action only if the API has it.
export async function apiHas(path, method) {
  if (!cachedDocument) {
    cachedDocument = fetch("/docs/openapi.json", { cache: "no-store" })
      .then((response) => (response.ok ? response.json() : { paths: {} }))
      .catch(() => ({ paths: {} }));
  }
  const document = await cachedDocument;
  return Boolean(document.paths && document.paths[path] && document.paths[path][method]);
}

let cachedRoles = null;

export async function rolePermissions() {
  if (!cachedRoles) {
    cachedRoles = fetch("/ui/roles.json", { cache: "no-store" }).then((r) => r.json());
  }
  return cachedRoles;
}

export async function can(permission) {
  const who = currentSession();
  const roles = await rolePermissions();
  return Boolean(who && roles[who.role] && roles[who.role].includes(permission));
}
