"""`ava secrets set|list|delete`: tenant secrets through the API. `register` adds them to the
`secrets` group, which also holds the operator's vault commands (`secrets_keys`).

A value is read from stdin when stdin is not a terminal, else from a hidden prompt; it is never
an argument (argv is visible to every user of the machine) and never printed.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ava_platform.cli.config import make_client
from ava_platform.cli.output import JsonFlag, handle_errors, options, output

SecretName = Annotated[
    str, typer.Argument(help="The secret's name (an environment variable name).")
]


def read_value(name: str) -> str:
    if not sys.stdin.isatty():
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
    else:
        value = typer.prompt(f"Value of {name}", hide_input=True, confirmation_prompt=True)
    if not value:
        raise typer.BadParameter("the value is empty")
    return value


@handle_errors
def set_secret(ctx: typer.Context, name: SecretName, json_out: JsonFlag = False) -> None:
    """Create or replace a secret; the value comes from stdin or a hidden prompt."""
    value = read_value(name)
    with make_client(options(ctx)) as client:
        info = client.set_secret(name, value)
    out = output(ctx, json_out)
    if out.json_mode:
        out.json(info)
    else:
        out.note(f"secret {info.name} set (updated {info.updated_at})")


@handle_errors
def list_secrets(
    ctx: typer.Context,
    page: Annotated[int, typer.Option(min=1)] = 1,
    json_out: JsonFlag = False,
) -> None:
    """Secret names with their times; values are never shown."""
    with make_client(options(ctx)) as client:
        result = client.list_secrets(page=page)
    output(ctx, json_out).table(result.data, ("name", "created_at", "updated_at"), page=result)


@handle_errors
def delete_secret(ctx: typer.Context, name: SecretName) -> None:
    """Delete a secret."""
    with make_client(options(ctx)) as client:
        client.delete_secret(name)
    output(ctx).note(f"secret {name} deleted")


def register(app: typer.Typer) -> None:
    """Adds `set`, `list` and `delete` to the `secrets` group."""
    app.command("set")(set_secret)
    app.command("list")(list_secrets)
    app.command("delete")(delete_secret)
