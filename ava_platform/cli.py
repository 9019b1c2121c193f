"""`ava` entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ava_platform import __version__
from ava_platform import cli_secrets_user as _secrets_user  # noqa: F401  (adds set/list/delete)
from ava_platform.cli_config import CliOptions
from ava_platform.cli_jobs import jobs_app
from ava_platform.cli_schedules import schedules_app
from ava_platform.cli_secrets import secrets_app
from ava_platform.cli_workers import workers_app

app = typer.Typer(
    help="AVA: run autonomous agents in fresh, hardened containers.", no_args_is_help=True
)
images_app = typer.Typer(help="Runtime images.", no_args_is_help=True)
app.add_typer(images_app, name="images")
app.add_typer(secrets_app, name="secrets")
app.add_typer(workers_app, name="workers")
app.add_typer(jobs_app, name="jobs")
app.add_typer(schedules_app, name="schedules")


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


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """SIGTERM/SIGINT end a graceful shutdown with exit code 0 (uvicorn would re-raise the
        signal afterwards, which reports the clean stop as a death by signal)."""

        def handle_exit(self, sig: int, frame: object) -> None:
            super().handle_exit(sig, frame)  # type: ignore[arg-type]
            self._captured_signals.clear()

    return Server


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8080,
    db: Annotated[Path | None, typer.Option(help="SQLite file (default $AVA_DB_PATH).")] = None,
) -> None:
    """Start the API server and the job scheduler."""
    import uvicorn

    from ava_platform import log
    from ava_platform.api.app import create_app
    from ava_platform.config import load_settings
    from ava_platform.errors import ConfigError
    from ava_platform.wiring import Platform

    try:
        settings = load_settings(db_path=db)
    except ConfigError as exc:
        typer.echo(f"ava serve: {exc.message}", err=True)
        raise typer.Exit(2) from None
    log.configure()
    log.register_secret(settings.internal_secret)
    application = create_app(Platform(settings), internal_secret=settings.internal_secret)
    server = _server_class()(uvicorn.Config(application, host=host, port=port, log_level="warning"))
    server.run()
    if not server.started:
        raise typer.Exit(1)


@images_app.command("build")
def images_build(
    runtime: Annotated[list[str] | None, typer.Option(help="Only these runtimes.")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when up to date.")] = False,
    ca_bundle: Annotated[
        Path | None, typer.Option(help="CA bundle builds trust (default: the host's).")
    ] = None,
) -> None:
    """Build the runtime images (incremental; works with no registry)."""
    from ava_platform.images import ImageBuildError, build_images

    try:
        reports = build_images(runtime or None, ca_bundle=ca_bundle, force=force)
    except (ImageBuildError, ValueError) as exc:
        typer.echo(f"ava images build: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, ValueError) else 1) from None
    for report in reports:
        typer.echo(
            f"{report.tag}\t{'built' if report.built else 'up to date'}\t{report.seconds:.1f}s"
        )


@app.command()
def version() -> None:
    """Print the platform version."""
    typer.echo(__version__)


def main() -> None:
    app(prog_name="ava")


if __name__ == "__main__":
    main()
