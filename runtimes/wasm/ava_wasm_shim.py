"""AVA wasm shim: one job envelope on stdin -> one run of a WASI preview 1 module -> one frame.

The module's `_start` runs with the input JSON on its stdin and the job's env as its WASI
environment (and a scratch dir preopened as /tmp). The last non-empty line of its stdout, if
it is JSON, is the result (else the result is null); everything else it writes on stdout and
stderr is passed through as logs, as it is written. A trap or a non-zero exit is `wasm_trap`;
bytes that are not a loadable module are `invalid_module`. The protocol (stdin, framing, exit
codes) is in ava_protocol.py and runtimes/README.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from typing import Any, BinaryIO

import wasmtime
from ava_protocol import (
    CODE_DIR,
    Envelope,
    JobFailure,
    entrypoint_path,
    ok_body,
    serve,
)

DEFAULT_ENTRYPOINT = "main.wasm"
SCRATCH_DIR = "/tmp/ava/scratch"
# Created before stdin is read: engine set-up is most of the start-up cost.
ENGINE = wasmtime.Engine()
NO_RESULT = object()


class StdoutSplitter:
    """Passes stdout through line by line, holding back the last non-empty line (the result)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.partial = b""  # an unfinished line
        self.pending = b""  # the last non-empty line, and any blank lines after it

    def write(self, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            self._line(line + b"\n")

    def _line(self, line: bytes) -> None:
        if not line.strip() and not self.pending:
            self._emit(line)
        elif not line.strip():
            self.pending += line
        else:
            self._emit(self.pending)
            self.pending = line

    def _emit(self, data: bytes) -> None:
        if data:
            self.out.write(data)
            self.out.flush()

    def finish(self) -> Any:
        """The result (NO_RESULT if none); whatever is not the result goes out as logs."""
        self._line(self.partial)
        last, _, blanks = self.pending.partition(b"\n")
        result = parse_json_line(last)
        self._emit(self.pending if result is NO_RESULT else blanks)
        self.partial = self.pending = b""
        return result


def parse_json_line(line: bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        return (
            json.loads(line.decode("utf-8"), parse_constant=refuse) if line.strip() else NO_RESULT
        )
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return NO_RESULT


def module_bytes(envelope: Envelope) -> bytes:
    path = entrypoint_path(envelope, DEFAULT_ENTRYPOINT)  # checked even when unused
    source = envelope.get("source")
    if isinstance(source, str):
        try:
            return base64.b64decode(source, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise JobFailure("invalid_module", f"source is not base64: {exc}") from None
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise JobFailure("handler_missing", f"entrypoint {path} does not exist") from None


def wasi_config(envelope: Envelope, env: dict[str, str], stdout: StdoutSplitter) -> Any:
    os.makedirs(SCRATCH_DIR, exist_ok=True)
    input_path = os.path.join(CODE_DIR, "input.json")
    os.makedirs(CODE_DIR, exist_ok=True)
    with open(input_path, "w", encoding="utf-8") as f:
        json.dump(envelope.get("input"), f)
    config = wasmtime.WasiConfig()
    config.argv = [envelope.get("entrypoint") or DEFAULT_ENTRYPOINT]
    config.env = list(env.items())
    config.stdin_file = input_path
    config.stdout_custom = stdout.write
    config.inherit_stderr()
    config.preopen_dir(SCRATCH_DIR, "/tmp")
    return config


def instantiate(wasm: bytes, config: Any) -> tuple[Any, Any]:
    try:
        module = wasmtime.Module(ENGINE, wasm)
    except wasmtime.WasmtimeError as exc:
        raise JobFailure("invalid_module", f"not a valid wasm module: {exc}") from None
    store = wasmtime.Store(ENGINE)
    store.set_wasi(config)
    linker = wasmtime.Linker(ENGINE)
    linker.define_wasi()
    try:
        instance = linker.instantiate(store, module)
    except wasmtime.Trap as exc:
        raise JobFailure("wasm_trap", f"trap in the start function: {exc}") from None
    except wasmtime.WasmtimeError as exc:  # e.g. imports that WASI preview 1 does not provide
        raise JobFailure("invalid_module", f"module cannot be instantiated: {exc}") from None
    start = instance.exports(store).get("_start")
    if not isinstance(start, wasmtime.Func):
        raise JobFailure("handler_missing", "module exports no `_start` function")
    return store, start


def run_start(store: Any, start: Any) -> None:
    try:
        start(store)
    except wasmtime.ExitTrap as exc:
        if exc.code != 0:
            raise JobFailure("wasm_trap", f"module exited with code {exc.code}") from None
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        sys.stderr.write(f"{exc}\n")
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "trap"
        raise JobFailure("wasm_trap", first_line) from None


def run_job(envelope: Envelope, env: dict[str, str]) -> str:
    stdout = StdoutSplitter(sys.stdout.buffer)
    store, start = instantiate(module_bytes(envelope), wasi_config(envelope, env, stdout))
    try:
        run_start(store, start)
    finally:
        result = stdout.finish()
    return ok_body(None if result is NO_RESULT else result)


if __name__ == "__main__":
    serve(run_job)
