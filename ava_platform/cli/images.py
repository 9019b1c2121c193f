"""`ava images …`: the runtime images jobs run in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

images_app = typer.Typer(help="Runtime images.", no_args_is_help=True)


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
