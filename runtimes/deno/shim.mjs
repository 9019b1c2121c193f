// AVA deno shim: one job envelope on stdin -> one call of the user's handler -> one frame.
// Handlers: `export default async function handler({ input, env })` (or `export function
// handler`), TypeScript or JavaScript. See runtimes/README.md.
// Plain JS so that Deno has nothing of ours to transpile at start; user code is TypeScript.

import {
  CODE_DIR, EXIT_OK, JobFailure, checkEnvelope, describe, endMarker, entrypointOf, failureBody, frame,
  okBody, parseEnvelope, pickHandler, stackOf,
} from "./protocol.mjs";

const DEFAULT_ENTRYPOINT = "main.ts";
const encoder = new TextEncoder();

let nonce = null;
let phase = "loading"; // which error type a stray exception from user code maps to
let finished = false;

function concatBytes(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// A task with no stdin (a swarm service) finds its envelope in the file AVA_ENVELOPE_FILE
// names (or the files: paths joined by ":", their contents one after the other, as a swarm
// secret holds 500 KiB at most); the variable is removed before user code runs.
function readEnvelopeFile(file) {
  try {
    const bytes = concatBytes(file.split(":").map((f) => Deno.readFileSync(f)));
    const at = bytes.indexOf(10);
    return new TextDecoder().decode(bytes.subarray(0, at === -1 ? bytes.length : at));
  } catch (err) {
    writeAll(Deno.stderr, `ava: cannot read the envelope file: ${err.name}\n`);
    return "";
  }
}

async function readLine() {
  const file = Deno.env.get("AVA_ENVELOPE_FILE");
  if (file) {
    Deno.env.delete("AVA_ENVELOPE_FILE");
    return readEnvelopeFile(file);
  }
  const chunks = [];
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await Deno.stdin.read(buf);
    if (n === null) break;
    const at = buf.subarray(0, n).indexOf(10);
    chunks.push(buf.slice(0, at === -1 ? n : at));
    if (at !== -1) break;
  }
  const bytes = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  chunks.reduce((offset, c) => (bytes.set(c, offset), offset + c.length), 0);
  return new TextDecoder().decode(bytes);
}

function writeAll(file, text) {
  const bytes = encoder.encode(text);
  for (let off = 0; off < bytes.length;) off += file.writeSync(bytes.subarray(off));
}

function finish(body, code) {
  if (finished) return;
  finished = true;
  // console.* writes synchronously, so the frame follows every line user code printed.
  if (nonce !== null) {
    writeAll(Deno.stderr, endMarker(nonce)); // stderr is complete, then stdout with the frame
    writeAll(Deno.stdout, frame(nonce, body));
  }
  Deno.exit(code);
}

function fail(failure) {
  if (failure.kind === "bad_envelope") writeAll(Deno.stderr, `ava: bad envelope: ${failure.message}\n`);
  finish(failureBody(failure), failure.exitCode);
}

function isParseError(err, url) {
  // Deno reports a module that does not parse as a TypeError("SyntaxError: ...") raised while
  // building the module graph. A SyntaxError V8 raises itself is a parse error only if none of
  // the user's code ran (JSON.parse at top level also throws SyntaxError).
  if (/^SyntaxError: /.test(String(err?.message))) return true;
  const framesInUserCode = String(err?.stack).split("\n").some((l) => /^\s+at /.test(l) && l.includes(url));
  return err instanceof SyntaxError && !framesInUserCode;
}

async function loadHandler(envelope) {
  const entry = entrypointOf(envelope, DEFAULT_ENTRYPOINT);
  let file = `${envelope.bundle_dir ?? CODE_DIR}/${entry}`;
  if (typeof envelope.source === "string") {
    Deno.mkdirSync(file.slice(0, file.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(file, envelope.source);
  } else {
    try {
      Deno.statSync(file);
    } catch {
      throw new JobFailure("handler_missing", `entrypoint ${file} does not exist`);
    }
  }
  Deno.chdir(file.slice(0, file.lastIndexOf("/"))); // relative paths mean the bundle's files
  const url = `file://${file}`;
  let ns;
  try {
    ns = await import(url);
  } catch (err) {
    writeAll(Deno.stderr, `${stackOf(err)}\n`);
    if (isParseError(err, url)) throw new JobFailure("syntax_error", err.message);
    throw new JobFailure("import_error", describe(err));
  }
  return pickHandler([ns.default, ns.handler], file);
}

async function runJob(envelope) {
  checkEnvelope(envelope, nonce);
  const env = { ...(envelope.env ?? {}) };
  for (const [name, value] of Object.entries(env)) Deno.env.set(name, value);
  const handler = await loadHandler(envelope);
  phase = "running";
  let result;
  try {
    result = await handler({ input: envelope.input ?? null, env: { ...env } });
  } catch (err) {
    writeAll(Deno.stderr, `${stackOf(err)}\n`);
    throw new JobFailure("handler_error", describe(err));
  }
  phase = "done";
  return okBody(result);
}

function onStrayError(event) {
  // An exception from a timer or an unawaited promise of the user's: fail the job with it.
  event.preventDefault();
  const err = event.error ?? event.reason;
  writeAll(Deno.stderr, `${stackOf(err)}\n`);
  if (phase === "done") return;
  fail(new JobFailure(phase === "loading" ? "import_error" : "handler_error", describe(err)));
}

globalThis.addEventListener("error", onStrayError);
globalThis.addEventListener("unhandledrejection", onStrayError);
globalThis.addEventListener("unload", () => {
  // The event loop ran dry while the handler's promise was still pending.
  if (!finished && nonce !== null) {
    finished = true;
    const failure = new JobFailure("handler_error", "handler's promise never settled");
    writeAll(Deno.stderr, endMarker(nonce));
    writeAll(Deno.stdout, frame(nonce, failureBody(failure)));
    Deno.exitCode = failure.exitCode;
  }
});

async function main() {
  // a prewarmed container waits AVA_WARM_TTL_S at most for its job, then ends itself
  const ttl = Number(Deno.env.get("AVA_WARM_TTL_S") || 0);
  if (ttl > 0) Deno.env.delete("AVA_WARM_TTL_S");
  const idle = ttl > 0 ? setTimeout(() => Deno.exit(EXIT_OK), ttl * 1000) : null;
  const line = await readLine();
  if (idle) clearTimeout(idle);
  try {
    const parsed = parseEnvelope(line);
    nonce = parsed.nonce;
    finish(await runJob(parsed.envelope), EXIT_OK);
  } catch (err) {
    if (err instanceof JobFailure) fail(err);
    else onStrayError({ error: err, preventDefault() {} });
  }
}

// Not a top-level await: with one, Deno ends a run whose handler never settles with its own
// error and no "unload" event, so no frame could be written.
main();
