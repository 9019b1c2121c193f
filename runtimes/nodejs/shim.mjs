// AVA nodejs shim: one job envelope on stdin -> one call of the user's handler -> one frame.
// Handlers: `module.exports = async function handler({ input, env })`, `module.exports.handler`,
// or an ES module's `export default` (or `export function handler`). See runtimes/README.md.
// Everything the shim needs is imported before stdin is read, so a container started ahead of
// its job (warm pool) only has the user's code left to load once the envelope arrives.

import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import vm from "node:vm";

import {
  CODE_DIR, EXIT_OK, JobFailure, checkEnvelope, describe, entrypointOf, endMarker,
  failureBody, frame, okBody, parseEnvelope, pickHandler, stackOf,
} from "./protocol.mjs";

const DEFAULT_ENTRYPOINT = "index.js";
// What V8 says when CommonJS meets ES module syntax: such a file is loaded as a module.
const ESM_HINTS = [
  "Cannot use import statement outside a module",
  "Unexpected token 'export'",
  "Cannot use 'import.meta' outside a module",
  "await is only valid in async functions and the top level bodies of modules",
];

let nonce = null;
let phase = "loading"; // which error type a stray exception from user code maps to
let finished = false;

// A task with no stdin (a swarm service) finds its envelope in the file AVA_ENVELOPE_FILE
// names (or the files: paths joined by ":", their contents one after the other, as a swarm
// secret holds 500 KiB at most); the variable is removed before user code runs.
function readEnvelopeFile(file) {
  try {
    const bytes = Buffer.concat(file.split(":").map((f) => fs.readFileSync(f)));
    const at = bytes.indexOf(10);
    return bytes.subarray(0, at === -1 ? bytes.length : at).toString("utf8");
  } catch (err) {
    process.stderr.write(`ava: cannot read the envelope file: ${err.code || err.message}\n`);
    return "";
  }
}

function readLine() {
  const file = process.env.AVA_ENVELOPE_FILE;
  delete process.env.AVA_ENVELOPE_FILE;
  if (file) return Promise.resolve(readEnvelopeFile(file));
  return new Promise((resolve) => {
    const chunks = [];
    // a prewarmed container waits AVA_WARM_TTL_S at most for its job, then ends itself
    const ttl = Number(process.env.AVA_WARM_TTL_S || 0);
    delete process.env.AVA_WARM_TTL_S;
    const idle = ttl > 0 ? setTimeout(() => process.exit(EXIT_OK), ttl * 1000) : null;
    const onData = (chunk) => {
      if (idle) clearTimeout(idle);
      const at = chunk.indexOf(10);
      chunks.push(at === -1 ? chunk : chunk.subarray(0, at));
      if (at !== -1) done();
    };
    const done = () => {
      process.stdin.off("data", onData).off("end", done);
      process.stdin.pause();
      process.stdin.unref?.(); // a handler must not be kept waiting on a stdin nobody closes
      resolve(Buffer.concat(chunks).toString("utf8"));
    };
    process.stdin.on("data", onData).on("end", done);
  });
}

function finish(body, code) {
  if (finished) return;
  finished = true;
  process.exitCode = code;
  if (nonce === null) return process.exit(code);
  // Queued after every write user code made, so the frame is the last thing on stdout (and
  // the end marker on stderr).
  process.stderr.write(endMarker(nonce));
  process.stdout.write(frame(nonce, body), () => process.exit(code));
}

function fail(failure) {
  if (failure.kind === "bad_envelope") process.stderr.write(`ava: bad envelope: ${failure.message}\n`);
  finish(failureBody(failure), failure.exitCode);
}

function isModuleSyntax(file, source) {
  if (file.endsWith(".mjs")) return true;
  if (file.endsWith(".cjs")) return false;
  if (nearestPackageType(path.dirname(file)) === "module") return true;
  try {
    vm.compileFunction(source, ["exports", "require", "module", "__filename", "__dirname"], {
      filename: file,
    });
    return false;
  } catch (err) {
    if (ESM_HINTS.some((hint) => String(err?.message).includes(hint))) return true;
    process.stderr.write(`${stackOf(err)}\n`);
    throw new JobFailure("syntax_error", describe(err));
  }
}

function nearestPackageType(dir) {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      return JSON.parse(fs.readFileSync(path.join(d, "package.json"), "utf8")).type;
    } catch {
      if (d === path.dirname(d)) return undefined;
    }
  }
}

function writeInlineSource(entry, source, esm) {
  const file = path.join(CODE_DIR, entry);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, source);
  // Node picks the module system from package.json, so an ESM index.js needs this beside it.
  if (esm) fs.writeFileSync(path.join(CODE_DIR, "package.json"), '{"type":"module"}\n');
  return file;
}

async function importModule(file) {
  try {
    const ns = await import(pathToFileURL(file).href);
    return [ns.default, ns.handler];
  } catch (err) {
    // A parse error has no stack frame in the user's file; a throw at top level does.
    const url = pathToFileURL(file).href;
    const parse = err instanceof SyntaxError && stackFramesOf(err, url) === "";
    process.stderr.write(`${stackOf(err)}\n`);
    throw new JobFailure(parse ? "syntax_error" : "import_error", describe(err));
  }
}

function stackFramesOf(err, url) {
  return String(err.stack).split("\n").filter((l) => l.includes(url) && /^\s+at /.test(l)).join("\n");
}

function requireModule(file) {
  try {
    const exported = createRequire(file)(file);
    return [typeof exported === "function" ? exported : undefined, exported?.handler, exported?.default];
  } catch (err) {
    process.stderr.write(`${stackOf(err)}\n`);
    throw new JobFailure("import_error", describe(err));
  }
}

async function loadHandler(envelope) {
  const entry = entrypointOf(envelope, DEFAULT_ENTRYPOINT);
  let file = path.join(envelope.bundle_dir ?? CODE_DIR, entry);
  const inline = typeof envelope.source === "string";
  if (!inline && !fs.existsSync(file)) {
    throw new JobFailure("handler_missing", `entrypoint ${file} does not exist`);
  }
  const source = inline ? envelope.source : fs.readFileSync(file, "utf8");
  const esm = isModuleSyntax(inline ? path.join(CODE_DIR, entry) : file, source);
  if (inline) file = writeInlineSource(entry, source, esm);
  process.chdir(path.dirname(file)); // relative paths in user code mean their bundle's files
  const candidates = esm ? await importModule(file) : requireModule(file);
  return pickHandler(candidates, file);
}

async function runJob(envelope) {
  checkEnvelope(envelope, nonce);
  const env = { ...(envelope.env ?? {}) };
  Object.assign(process.env, env);
  const handler = await loadHandler(envelope);
  phase = "running";
  let result;
  try {
    result = await handler({ input: envelope.input ?? null, env: { ...env } });
  } catch (err) {
    process.stderr.write(`${stackOf(err)}\n`);
    throw new JobFailure("handler_error", describe(err));
  }
  phase = "done";
  return okBody(result);
}

function onStrayError(err) {
  // An exception from a timer or an unawaited promise of the user's: fail the job with it.
  process.stderr.write(`${stackOf(err)}\n`);
  if (phase === "done") return;
  fail(new JobFailure(phase === "loading" ? "import_error" : "handler_error", describe(err)));
}

process.on("uncaughtException", onStrayError);
process.on("exit", () => {
  // The event loop ran dry while the handler's promise was still pending.
  if (!finished && nonce !== null) {
    const failure = new JobFailure("handler_error", "handler's promise never settled");
    fs.writeSync(2, endMarker(nonce));
    fs.writeSync(1, frame(nonce, failureBody(failure)));
    process.exitCode = failure.exitCode;
  }
});

const line = await readLine();
try {
  const parsed = parseEnvelope(line);
  nonce = parsed.nonce;
  finish(await runJob(parsed.envelope), EXIT_OK);
} catch (err) {
  if (err instanceof JobFailure) fail(err);
  else onStrayError(err); // e.g. the code dir could not be written
}
