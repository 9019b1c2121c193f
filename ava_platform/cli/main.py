"""`ava`: the root command, its connection options, and every command group, registered here
explicitly (one module per group beside this one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ava_platform import __version__
from ava_platform.cli import rerun as rerun_command
from ava_platform.cli import serve as serve_command
from ava_platform.cli.config import CliOptions
from ava_platform.cli.images import images_app
from ava_platform.cli.jobs import jobs_app
from ava_platform.cli.rerun import tenants_app
from ava_platform.cli.schedules import schedules_app
from ava_platform.cli.secrets import secrets_app
from ava_platform.cli.workers import workers_app

app = typer.Typer(
    help="AVA: run autonomous agents in fresh, hardened containers.", no_args_is_help=True
)
app.add_typer(images_app, name="images")
app.add_typer(secrets_app, name="secrets")
app.add_typer(workers_app, name="workers")
app.add_typer(jobs_app, name="jobs")
app.add_typer(schedules_app, name="schedules")
app.add_typer(tenants_app, name="tenants")
rerun_command.register(jobs_app)
serve_command.register(app)


@app.callback()
def connection_options(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="Server URL (env AVA_URL; default http://127.0.0.1:8080).")
    ] = None,
    internal_secret: Annotated[
        str | None,
        typer.Option(
            help="Internal secret (env AVA_INTERNAL_SECRET; prefer the env: argv is visible)."
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant id (env AVA_TENANT_ID).")] = None,
    user: Annotated[str | None, typer.Option(help="User id (env AVA_USER_ID).")] = None,
    role: Annotated[
        str | None, typer.Option(help="Role (env AVA_ROLE; default tenant-admin).")
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option(help="Profile file (env AVA_PROFILE; default ~/.config/ava/profile.toml)."),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="JSON output for every command.")
    ] = False,
) -> None:
    """Connection settings: flags, then AVA_* variables, then the profile file."""
    flags = {
        "url": url,
        "internal_secret": internal_secret,
        "tenant_id": tenant,
        "user_id": user,
        "role": role,
    }
    ctx.obj = CliOptions(flags=flags, profile=profile, json=json_out)


@app.command()
def version() -> None:
    """Print the platform version."""
    typer.echo(__version__)


def main() -> None:
    app(prog_name="ava")


if __name__ == "__main__":
    main()
