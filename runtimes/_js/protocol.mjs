// The parts of the AVA shim protocol that the nodejs and deno shims share: envelope checks,
// entrypoint resolution, strict result serialisation and the result frame. Plain ES2022 with
// no runtime APIs, so the same file runs under both (the builder copies it next to each shim).
// The contract itself is documented in runtimes/README.md.

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_BAD_ENVELOPE = 2;
export const CODE_DIR = "/tmp/ava/code";

const NONCE_RE = /^[0-9a-f]{32}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_MESSAGE_CHARS = 65536; // the platform redacts, then cuts to 2000

/** A failure reported as {"ok": false, "error": {type, message}}. */
export class JobFailure extends Error {
  constructor(kind, message, exitCode = EXIT_FAILED) {
    super(oneLine(message));
    this.kind = kind;
    this.exitCode = exitCode;
  }
}

export function oneLine(text) {
  // The message travels inside one frame line and is read by humans as a summary.
  const flat = String(text).split(/\s+/).filter(Boolean).join(" ");
  return flat.length <= MAX_MESSAGE_CHARS ? flat : flat.slice(0, MAX_MESSAGE_CHARS - 1) + "…";
}

/** "TypeError: boom" for errors; something readable for whatever else JS lets you throw. */
export function describe(err) {
  if (err instanceof Error || (err && typeof err === "object" && "message" in err)) {
    const name = err.name || err.constructor?.name || "Error";
    return err.message ? `${name}: ${err.message}` : name;
  }
  try {
    return `thrown ${typeof err}: ${typeof err === "string" ? err : JSON.stringify(err)}`;
  } catch {
    return `thrown ${typeof err}`;
  }
}

export function stackOf(err) {
  return err instanceof Error && err.stack ? err.stack : describe(err);
}

function badEnvelope(message) {
  return new JobFailure("bad_envelope", message, EXIT_BAD_ENVELOPE);
}

/** Parses the envelope line; returns {envelope, nonce} or throws JobFailure(bad_envelope). */
export function parseEnvelope(line) {
  if (!line.trim()) throw badEnvelope("no envelope on stdin");
  let envelope;
  try {
    envelope = JSON.parse(line);
  } catch (err) {
    throw badEnvelope(`envelope is not JSON: ${err.message}`);
  }
  if (envelope === null || typeof envelope !== "object" || Array.isArray(envelope)) {
    throw badEnvelope("envelope is not a JSON object");
  }
  const nonce = typeof envelope.nonce === "string" && NONCE_RE.test(envelope.nonce)
    ? envelope.nonce
    : null;
  return { envelope, nonce };
}

/** Throws JobFailure(bad_envelope) unless the envelope (with a valid nonce) is usable. */
export function checkEnvelope(envelope, nonce) {
  if (nonce === null) throw badEnvelope("nonce must be 32 lowercase hex characters");
  if (envelope.v !== 1) throw badEnvelope(`unsupported envelope version ${envelope.v}`);
  const env = envelope.env ?? {};
  if (env === null || typeof env !== "object" || Array.isArray(env)) {
    throw badEnvelope("env must be an object");
  }
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME_RE.test(name) || typeof value !== "string" || value.includes("\0")) {
      throw badEnvelope(`env entry ${JSON.stringify(name)} must be a valid name with a string value`);
    }
  }
  if (typeof envelope.source !== "string" && typeof envelope.bundle_dir !== "string") {
    throw badEnvelope("envelope has neither source nor bundle_dir");
  }
}

/** The entrypoint path relative to the code dir, refusing paths that leave it. */
export function entrypointOf(envelope, defaultName) {
  const entry = envelope.entrypoint || defaultName;
  if (typeof entry !== "string" || entry.startsWith("/") || entry.split("/").includes("..")) {
    throw badEnvelope(`entrypoint must be a relative path inside the code dir: ${entry}`);
  }
  return entry;
}

function typeName(value) {
  if (typeof value !== "object") return typeof value;
  return value.constructor?.name ?? "object";
}

// JSON.stringify quietly turns NaN into null and drops functions, and a Map becomes {}; the
// contract wants those refused, the way Python's json module refuses a set.
function strictReplacer(key, value) {
  const kind = typeof value;
  if (kind === "function" || kind === "symbol" || kind === "bigint") {
    throw new JobFailure("result_not_serializable", `handler result has a ${kind} at ${where(key)}`);
  }
  if (kind === "number" && !Number.isFinite(value)) {
    throw new JobFailure("result_not_serializable", `handler result has ${value} at ${where(key)}`);
  }
  if (kind === "object" && value !== null && !Array.isArray(value)) {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new JobFailure(
        "result_not_serializable",
        `handler result has a ${typeName(value)} at ${where(key)}; return plain objects and arrays`,
      );
    }
  }
  return value;
}

function where(key) {
  return key === "" ? "the top level" : `key ${JSON.stringify(key)}`;
}

// Escaped so the frame is one line even for readers that also split on U+2028/U+2029/U+0085.
function escapeLineBreaks(json) {
  return json.replace(/[\u0085\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The frame body for a result; throws JobFailure(result_not_serializable). */
export function okBody(result) {
  let json;
  try {
    json = JSON.stringify(result === undefined ? null : result, strictReplacer);
  } catch (err) {
    if (err instanceof JobFailure) throw err;
    // TypeError for cycles; RangeError when nesting is too deep for the stack.
    throw new JobFailure("result_not_serializable", `handler result: ${describe(err)}`);
  }
  return escapeLineBreaks(`{"ok":true,"result":${json}}`);
}

export function failureBody(failure) {
  const error = { type: failure.kind, message: failure.message };
  return escapeLineBreaks(JSON.stringify({ ok: false, error }));
}

export function frame(nonce, body) {
  return `AVA-RESULT-${nonce} ${body}\n`;
}

/** Written on stderr just before the frame: stderr is complete once the platform reads it. */
export function endMarker(nonce) {
  return `AVA-END-${nonce}\n`;
}

/** Picks the handler among a module's exports (first defined wins) and checks its shape. */
export function pickHandler(candidates, file) {
  const handler = candidates.find((c) => c !== undefined && c !== null);
  if (handler === undefined) {
    throw new JobFailure("handler_missing", `${file} exports no handler (default export or "handler")`);
  }
  if (typeof handler !== "function") {
    throw new JobFailure("handler_signature", `the exported handler is a ${typeName(handler)}, not a function`);
  }
  if (handler.length > 1) {
    // handler(input, env) would silently get the {input, env} object as `input`.
    throw new JobFailure(
      "handler_signature",
      `handler declares ${handler.length} parameters; it takes one: ({ input, env })`,
    );
  }
  return handler;
}
