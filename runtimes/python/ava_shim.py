"""AVA python shim: one job envelope on stdin -> one call of `handler(input, env)` -> one frame.

The user's module is loaded like `python main.py` would (its directory first on sys.path,
`__file__` set, but `__name__` is the module's name, not "__main__"), then `handler(input, env)`
is called; a coroutine it returns is run with asyncio. The protocol (stdin, framing, exit codes)
is in ava_protocol.py and runtimes/README.md.

Everything the shim needs is imported before stdin is read, so a container started ahead of
the job (warm pool) only has the user's own code left to load once the envelope arrives.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import traceback
import types
from typing import Any

from ava_protocol import (
    Envelope,
    JobFailure,
    describe,
    entrypoint_path,
    ok_body,
    print_user_traceback,
    serve,
)

DEFAULT_ENTRYPOINT = "main.py"


def locate_code(envelope: Envelope) -> str:
    path = entrypoint_path(envelope, DEFAULT_ENTRYPOINT)
    source = envelope.get("source")
    if isinstance(source, str):
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
    except (SyntaxError, ValueError) as exc:  # ValueError: the source has NUL bytes
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        raise JobFailure("syntax_error", describe(exc)) from None
    name = os.path.splitext(os.path.basename(path))[0]
    module = types.ModuleType(name)
    module.__file__ = path
    # Registered so dataclasses/pickle can find it, but never over a module already loaded.
    sys.modules.setdefault(name, module)
    sys.path[0] = os.path.dirname(path)  # replaces the shim's dir: siblings are importable
    os.chdir(os.path.dirname(path))  # relative paths in user code mean their bundle's files
    sys.argv = [path]
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
        message = f"handler(input, env) cannot be called: {exc}"
        raise JobFailure("handler_signature", message) from None
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
    except BaseException as exc:  # SystemExit too: the handler failed to return
        print_user_traceback(exc)
        raise JobFailure("handler_error", describe(exc)) from None
    return result


def run_job(envelope: Envelope, env: dict[str, str]) -> str:
    module = load_module(locate_code(envelope))
    input_value = envelope.get("input")
    handler = find_handler(module, input_value, env)
    return ok_body(call_handler(handler, input_value, dict(env)))


if __name__ == "__main__":
    serve(run_job)
