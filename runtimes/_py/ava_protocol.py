"""The parts of the AVA shim protocol that the python and wasm shims share.

`serve(run_job)` is the whole life of a shim process: block on stdin for one envelope line,
check it, let `run_job` do the runtime's part, then write `AVA-END-<nonce>` on the original
stderr and exactly one frame, `AVA-RESULT-<nonce> {"ok":...}`, on the original stdout, after
all user output, and exit
0 (ok), 1 (user code failed) or 2 (bad envelope). The contract is in runtimes/README.md.
The builder copies this file next to each shim that imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_OK, EXIT_FAILED, EXIT_BAD_ENVELOPE = 0, 1, 2
NONCE_RE = re.compile(r"[0-9a-f]{32}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CODE_DIR = "/tmp/ava/code"
MAX_MESSAGE_CHARS = 65536  # the platform redacts, then cuts to 2000
SHIM_DIR = os.path.dirname(os.path.abspath(__file__))
WARM_TTL_ENV = "AVA_WARM_TTL_S"
ENVELOPE_FILE_ENV = "AVA_ENVELOPE_FILE"  # where a task with no stdin (a swarm service) finds it

Envelope = dict[str, Any]


class JobFailure(Exception):
    """A failure reported to the platform as {"ok": false, "error": {type, message}}."""

    def __init__(self, kind: str, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = one_line(message)
        self.exit_code = exit_code


def one_line(text: str) -> str:
    # The message travels inside a single frame line and is read by humans as a summary.
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 1] + "…"


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def print_user_traceback(exc: BaseException) -> None:
    # Drop the shim's own frames: the user wants to see where *their* code failed.
    tb = exc.__traceback__
    while tb is not None and os.path.dirname(tb.tb_frame.f_code.co_filename) == SHIM_DIR:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    sys.stderr.flush()


def bad_envelope(message: str) -> NoReturn:
    raise JobFailure("bad_envelope", message, EXIT_BAD_ENVELOPE)


def parse_envelope(raw: bytes) -> Envelope:
    if not raw.strip():
        bad_envelope("no envelope on stdin")
    try:
        envelope = json.loads(raw)
    except ValueError as exc:
        bad_envelope(f"envelope is not JSON: {exc}")
    if not isinstance(envelope, dict):
        bad_envelope("envelope is not a JSON object")
    return envelope


def check_envelope(envelope: Envelope) -> dict[str, str]:
    """Raises bad_envelope unless the envelope is usable; returns its env."""
    if envelope.get("v") != 1:
        bad_envelope(f"unsupported envelope version {envelope.get('v')!r}")
    env = envelope.get("env") or {}
    if not isinstance(env, dict):
        bad_envelope("env must be an object")
    for name, value in env.items():
        if not ENV_NAME_RE.fullmatch(name) or not isinstance(value, str) or "\0" in value:
            bad_envelope(f"env entry {name!r} must be a valid name with a string value")
    if not isinstance(envelope.get("source"), str) and not isinstance(
        envelope.get("bundle_dir"), str
    ):
        bad_envelope("envelope has neither source nor bundle_dir")
    return dict(env)


def entrypoint_path(envelope: Envelope, default: str) -> str:
    """Where the entrypoint lives: under CODE_DIR for inline source, else under bundle_dir."""
    entry = envelope.get("entrypoint") or default
    if not isinstance(entry, str) or entry.startswith("/") or ".." in entry.split("/"):
        bad_envelope(f"entrypoint must be a relative path inside the code dir: {entry!r}")
    base = CODE_DIR if isinstance(envelope.get("source"), str) else envelope["bundle_dir"]
    return os.path.join(base, entry)


def ok_body(result: Any) -> str:
    # ensure_ascii keeps the frame one line for any reader (U+2028 and friends get escaped).
    try:
        return json.dumps({"ok": True, "result": result}, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise JobFailure("result_not_serializable", f"handler result: {exc}") from None


def failure_body(failure: JobFailure) -> str:
    error = {"type": failure.kind, "message": failure.message}
    return json.dumps({"ok": False, "error": error}, separators=(",", ":"))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a pipe takes a large frame in several writes
        view = view[os.write(fd, view) :]


def detach_stdin() -> None:
    # The envelope is all stdin carries; user code reading stdin must see EOF, not hang.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the process


def flush_user_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        # OSError/ValueError: user code closed it; nothing of theirs is left to flush.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def handle(
    raw: bytes, run_job: Callable[[Envelope, dict[str, str]], str]
) -> tuple[str | None, str, int]:
    """(nonce or None, frame body, exit code) for one envelope line."""
    nonce = None
    try:
        envelope = parse_envelope(raw)
        candidate = envelope.get("nonce")
        if isinstance(candidate, str) and NONCE_RE.fullmatch(candidate):
            nonce = candidate
        else:
            bad_envelope("nonce must be 32 lowercase hex characters")
        env = check_envelope(envelope)
        os.environ.update(env)
        return nonce, run_job(envelope, env), EXIT_OK
    except JobFailure as failure:
        if failure.exit_code == EXIT_BAD_ENVELOPE:
            sys.stderr.write(f"ava: bad envelope: {failure.message}\n")
        return nonce, failure_body(failure), failure.exit_code


def wait_for_job() -> None:
    """A prewarmed container waits at most AVA_WARM_TTL_S for its job, then ends itself (and
    the engine removes it), so the pool of a platform that died never outlives its TTL."""
    ttl = os.environ.pop(WARM_TTL_ENV, "")
    if ttl:
        readable, _, _ = select.select([0], [], [], float(ttl))
        if not readable:
            os._exit(EXIT_OK)


def read_envelope_line() -> bytes:
    """The envelope's line: from the files AVA_ENVELOPE_FILE names when it is set (one path,
    or several joined by ":" whose contents follow each other: a swarm secret holds 500 KiB
    at most; the variable is removed before user code runs), else from stdin, blocking until
    the job arrives (warm containers wait here)."""
    paths = os.environ.pop(ENVELOPE_FILE_ENV, "")
    if not paths:
        wait_for_job()
        return sys.stdin.buffer.readline()
    try:
        parts = []
        for path in paths.split(":"):
            with open(path, "rb") as file:
                parts.append(file.read())
    except OSError as exc:
        sys.stderr.write(f"ava: cannot read the envelope file: {exc.strerror}\n")
        return b""
    return b"".join(parts).split(b"\n", 1)[0] + b"\n"


def serve(run_job: Callable[[Envelope, dict[str, str]], str]) -> NoReturn:
    """Runs one job from stdin (or AVA_ENVELOPE_FILE) through `run_job(envelope, env) -> ok
    body`, then exits."""
    frame_out = os.dup(1)  # user code may close or redirect fd 1; the frame still gets out
    end_out = os.dup(2)  # likewise for the end-of-stderr marker
    raw = read_envelope_line()
    detach_stdin()
    nonce, body, code = handle(raw, run_job)
    flush_user_output()
    if nonce is not None:
        # stderr is complete once its end marker is read, stdout once the frame is
        write_all(end_out, f"AVA-END-{nonce}\n".encode())
        write_all(frame_out, f"AVA-RESULT-{nonce} {body}\n".encode())
    # os._exit: threads or atexit hooks the user left behind must not hold the container open
    # once the frame is out.
    os._exit(code)
