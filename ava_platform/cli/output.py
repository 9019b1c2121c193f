"""How the CLI talks back: rich tables for people, `--json` for machines, plain tab-separated
text when stdout is not a terminal, a spinner on stderr while waiting (plain status lines when
stderr is not a terminal), and one exit code per kind of failure.

Exit codes: 0 ok, 1 failed (the job, or the request), 2 usage or auth error, 3 timed out,
4 cancelled.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, ParamSpec, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ava_platform.cli.config import CliOptions, ConfigProblem
from ava_platform.client.errors import AvaApiError, AvaClientError, AvaConnectionError, WaitTimeout

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_CANCELLED = 4
USAGE_STATUSES = frozenset({400, 401, 403, 413, 415, 422})
EXIT_BY_STATUS = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "timed_out": EXIT_TIMEOUT}
EXIT_BY_STATUS["cancelled"] = EXIT_CANCELLED

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (for scripts and CI).")
]
P = ParamSpec("P")
R = TypeVar("R")


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, ConfigProblem):
        return EXIT_USAGE
    if isinstance(exc, AvaApiError) and exc.status in USAGE_STATUSES:
        return EXIT_USAGE
    return EXIT_FAILED


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON error envelope's body: the server's own for an error answer; a client-side code
    for the rest (`connection_error`, `wait_timeout`, `usage_error`)."""
    if isinstance(exc, AvaApiError):
        return {"code": exc.code, "message": exc.message, "details": exc.details}
    if isinstance(exc, AvaConnectionError):
        code = "connection_error"
    elif isinstance(exc, WaitTimeout):
        code = "wait_timeout"
    elif isinstance(exc, ConfigProblem):
        code = "usage_error"
    else:
        code = "client_error"
    message = exc.args[0] if exc.args else type(exc).__name__
    return {"code": code, "message": str(message), "details": None}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        # one record a line, one field a column: a value that would break either is quoted
        return msgspec.json.encode(value).decode() if any(c in value for c in "\n\t\r") else value
    if hasattr(value, "value") and isinstance(value.value, str):  # an enum
        return str(value.value)
    return msgspec.json.encode(value).decode()


class Output:
    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def tty(self) -> bool:
        return self.out.is_terminal

    # -- data on stdout ---------------------------------------------------------------------

    def json(self, value: Any) -> None:
        raw = msgspec.json.encode(value)
        text = msgspec.json.format(raw, indent=2) if self.tty else raw
        sys.stdout.write(text.decode() + "\n")
        sys.stdout.flush()

    def table(self, rows: Sequence[Any], columns: Sequence[str], *, page: Any = None) -> None:
        """A list of Structs: a table (TTY) or tab-separated lines with a header (pipe)."""
        if self.json_mode:
            self.json(page if page is not None else list(rows))
            return
        cells = [[_cell(getattr(r, c, None)) for c in columns] for r in rows]
        if not self.tty:
            for line in [list(columns), *cells]:
                sys.stdout.write("\t".join(line) + "\n")
            return
        table = Table(*columns, header_style="bold")
        for line in cells:
            table.add_row(*(escape(c) for c in line))
        self.out.print(table)
        meta = getattr(page, "meta", None)
        if meta is not None and meta.total > len(rows):
            self.err.print(f"page {meta.page}: {len(rows)} of {meta.total} (use --page)")

    def record(self, value: Any, fields: Sequence[str] | None = None) -> None:
        """One Struct: `key value` lines, or the JSON object."""
        if self.json_mode:
            self.json(value)
            return
        names = fields or [f for f in getattr(value, "__struct_fields__", ())]
        if not self.tty:
            for name in names:
                sys.stdout.write(f"{name}\t{_cell(getattr(value, name, None))}\n")
            return
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for name in names:
            table.add_row(name, escape(_cell(getattr(value, name, None))))
        self.out.print(table)

    def line(self, text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    # -- messages on stderr -----------------------------------------------------------------

    def note(self, text: str) -> None:
        """A message for people; never mixed into stdout."""
        self.err.print(escape(text))

    def error(self, exc: BaseException) -> None:
        """The failure on stderr: `{"error": {code, message, details}}` in JSON mode (whatever
        the failure: an error answer, an unreachable server, a usage problem), else a message."""
        if self.json_mode:
            sys.stderr.write(msgspec.json.encode({"error": error_body(exc)}).decode() + "\n")
            sys.stderr.flush()
            return
        message = exc.args[0] if isinstance(exc, ConfigProblem) else str(exc)
        self.err.print(f"[red]ava:[/red] {escape(message)}")
        details = getattr(exc, "details", None)
        if isinstance(details, list):
            for item in details:
                if isinstance(item, dict) and "field" in item:
                    self.err.print(
                        f"  {escape(str(item['field']))}: {escape(str(item.get('message')))}"
                    )

    @contextmanager
    def waiting(self, text: str) -> Iterator[Callable[[str], None]]:
        """A spinner on a terminal; elsewhere, one stderr line per distinct status text."""
        if self.err.is_terminal:
            with self.err.status(escape(text)) as status:
                yield lambda new: status.update(escape(new))
            return
        last = [text]
        sys.stderr.write(text + "\n")

        def update(new: str) -> None:
            if new != last[0]:
                last[0] = new
                sys.stderr.write(new + "\n")
                sys.stderr.flush()

        yield update


def options(ctx: Any) -> CliOptions:
    """The root command's options. `ctx` is whatever context typer passed: typer vendors its
    own click, so the context is not necessarily an instance of `typer.Context`."""
    obj = getattr(ctx, "obj", None)
    return obj if isinstance(obj, CliOptions) else CliOptions()


def output(ctx: Any, json_flag: bool = False) -> Output:
    return Output(json_mode=json_flag or options(ctx).json)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Client errors become a message on stderr (JSON with `--json`, given before or after the
    command) and the matching exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (AvaClientError, ConfigProblem) as exc:
            json_mode = bool(kwargs.get("json_out")) or options(kwargs.get("ctx")).json
            Output(json_mode=json_mode).error(exc)
            raise typer.Exit(exit_code_for(exc)) from None

    return wrapper
