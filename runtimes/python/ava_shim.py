"""AVA python shim: one job envelope on stdin -> one call of the user's handler -> one result frame.

The contract lives in runtimes/README.md. In short: read one JSON line from stdin, export the
job's env, load the user's module, call `handler(input, env)` (sync or async), then write
`AVA-RESULT-<nonce> {"ok":...}` on the original stdout, after all user output.

Everything the shim needs is imported before stdin is read, so a container started ahead of
the job (warm pool) only has the user's own code left to load once the envelope arrives.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import sys
import traceback
import types
from typing import Any, NoReturn

EXIT_OK, EXIT_FAILED, EXIT_BAD_ENVELOPE = 0, 1, 2
NONCE_RE = re.compile(r"[0-9a-f]{32}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CODE_DIR = "/tmp/ava/code"
DEFAULT_ENTRYPOINT = "main.py"
MAX_MESSAGE_CHARS = 2000
SHIM_FILE = os.path.abspath(__file__)


class JobFailure(Exception):
    """A failure reported to the platform as {"ok": false, "error": {type, message}}."""

    def __init__(self, kind: str, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = one_line(message)
        self.exit_code = exit_code


def one_line(text: str) -> str:
    # The message travels inside a single frame line and is shown to humans as a summary.
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 1] + "…"


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def print_user_traceback(exc: BaseException) -> None:
    # Drop the shim's own frames: the user wants to see where *their* code failed.
    tb = exc.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == SHIM_FILE:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    sys.stderr.flush()


def bad_envelope(message: str) -> NoReturn:
    raise JobFailure("bad_envelope", message, EXIT_BAD_ENVELOPE)


def parse_envelope(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        bad_envelope("no envelope on stdin")
    try:
        envelope = json.loads(raw)
    except ValueError as exc:
        bad_envelope(f"envelope is not JSON: {exc}")
    if not isinstance(envelope, dict):
        bad_envelope("envelope is not a JSON object")
    return envelope


def check_envelope(envelope: dict[str, Any]) -> None:
    if envelope.get("v") != 1:
        bad_envelope(f"unsupported envelope version {envelope.get('v')!r}")
    env = envelope.get("env", {})
    if not isinstance(env, dict):
        bad_envelope("env must be an object")
    for name, value in env.items():
        if not ENV_NAME_RE.fullmatch(name) or not isinstance(value, str) or "\0" in value:
            bad_envelope(f"env entry {name!r} must be a valid name with a string value")
    if not isinstance(envelope.get("source"), str) and not isinstance(
        envelope.get("bundle_dir"), str
    ):
        bad_envelope("envelope has neither source nor bundle_dir")


def entrypoint_path(envelope: dict[str, Any]) -> str:
    entry = envelope.get("entrypoint") or DEFAULT_ENTRYPOINT
    if not isinstance(entry, str) or entry.startswith("/") or ".." in entry.split("/"):
        bad_envelope(f"entrypoint must be a relative path inside the code dir: {entry!r}")
    source = envelope.get("source")
    if not isinstance(source, str):
        return os.path.join(envelope["bundle_dir"], entry)
    path = os.path.join(CODE_DIR, entry)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    return path


def load_module(path: str) -> types.ModuleType:
    try:
        with open(path, "rb") as f:
            source = f.read()
    except FileNotFoundError:
        raise JobFailure("handler_missing", f"entrypoint {path} does not exist") from None
    try:
        # dont_inherit: the shim's own `from __future__` flags must not leak into user code.
        code = compile(source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        raise JobFailure("syntax_error", describe(exc)) from None
    name = os.path.splitext(os.path.basename(path))[0]
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    sys.path[0] = os.path.dirname(path)  # like `python main.py`: siblings are importable
    try:
        exec(code, module.__dict__)
    except BaseException as exc:
        print_user_traceback(exc)
        raise JobFailure("import_error", describe(exc)) from None
    return module


def find_handler(module: types.ModuleType, input_value: Any, env: dict[str, str]) -> Any:
    handler = getattr(module, "handler", None)
    if handler is None:
        raise JobFailure("handler_missing", f"{module.__file__} defines no `handler`")
    if not callable(handler):
        raise JobFailure("handler_signature", f"`handler` is a {type(handler).__name__}")
    try:
        inspect.signature(handler).bind(input_value, env)
    except TypeError as exc:
        raise JobFailure("handler_signature", f"handler(input, env) cannot be called: {exc}")
    except ValueError:
        pass  # some builtins have no introspectable signature; let the call decide
    return handler


async def await_result(awaitable: Any) -> Any:
    return await awaitable


def call_handler(handler: Any, input_value: Any, env: dict[str, str]) -> Any:
    try:
        result = handler(input_value, env)
        if inspect.isawaitable(result):
            result = asyncio.run(await_result(result))
    except BaseException as exc:
        print_user_traceback(exc)
        raise JobFailure("handler_error", describe(exc)) from None
    return result


def serialize(result: Any) -> str:
    # ensure_ascii keeps the frame one line for any reader (U+2028 and friends get escaped).
    try:
        return json.dumps({"ok": True, "result": result}, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise JobFailure("result_not_serializable", f"handler result: {exc}") from None


def run_job(envelope: dict[str, Any]) -> str:
    check_envelope(envelope)
    env: dict[str, str] = dict(envelope.get("env") or {})
    path = entrypoint_path(envelope)
    os.environ.update(env)
    sys.argv = [path]
    module = load_module(path)
    input_value = envelope.get("input")
    handler = find_handler(module, input_value, env)
    return serialize(call_handler(handler, input_value, dict(env)))


def failure_frame(failure: JobFailure) -> str:
    error = {"type": failure.kind, "message": failure.message}
    return json.dumps({"ok": False, "error": error}, separators=(",", ":"))


def detach_stdin() -> None:
    # The envelope is all stdin carries; user code reading stdin must see EOF, not hang.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the process


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a pipe takes a large frame in several writes
        view = view[os.write(fd, view) :]


def main() -> int:
    frame_out = os.dup(1)  # user code may close or redirect fd 1; the frame still gets out
    raw = sys.stdin.buffer.readline()  # blocks until the job arrives
    detach_stdin()
    nonce = None
    try:
        envelope = parse_envelope(raw)
        candidate = envelope.get("nonce")
        nonce = candidate if isinstance(candidate, str) and NONCE_RE.fullmatch(candidate) else None
        if nonce is None:
            bad_envelope("nonce must be 32 lowercase hex characters")
        body, code = run_job(envelope), EXIT_OK
    except JobFailure as failure:
        if failure.exit_code == EXIT_BAD_ENVELOPE:
            sys.stderr.write(f"ava: bad envelope: {failure.message}\n")
        body, code = failure_frame(failure), failure.exit_code
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # user closed it; nothing of theirs is left to flush
    if nonce is not None:
        write_all(frame_out, f"AVA-RESULT-{nonce} {body}\n".encode())
    return code


if __name__ == "__main__":
    # os._exit: threads or atexit hooks the user left behind must not hold the container open
    # once the frame is out.
    os._exit(main())
