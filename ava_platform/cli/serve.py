"""`ava serve`: the API server and the job scheduler in one process, or (`--role api` or
`--role scheduler`, on a shared PostgreSQL) one of the two, any number of each."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer


def listening_url(host: str, servers: list[Any]) -> str:
    """The address the server accepts connections on (the bound port, so `--port 0` shows
    the one the system picked)."""
    port = servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """SIGTERM/SIGINT end a graceful shutdown with exit code 0 (uvicorn would re-raise the
        signal afterwards, which reports the clean stop as a death by signal)."""

        def handle_exit(self, sig: int, frame: object) -> None:
            super().handle_exit(sig, frame)  # type: ignore[arg-type]
            self._captured_signals.clear()

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            # started: the sockets listen and the app's startup hooks are done. On stdout, which
            # nothing else uses: the logs (JSON off a terminal) go to stderr.
            if self.started and not self.should_exit:
                _freeze_startup_heap()
                sys.stdout.write(f"listening on {listening_url(self.config.host, self.servers)}\n")
                sys.stdout.flush()

    return Server


def _freeze_startup_heap() -> None:
    """Moves what start-up made (modules, classes, the app: about 135,000 objects) out of the
    collector's reach. Every full collection walked them all, 180 ms each on this machine's
    2 cores, and it ran on whichever thread allocated: /healthz answered in 190-380 ms at
    those moments. What is allocated from here on is collected as before."""
    gc.collect()
    gc.freeze()


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8080,
    db: Annotated[Path | None, typer.Option(help="SQLite file (default $AVA_DB_PATH).")] = None,
    role: Annotated[
        str | None,
        typer.Option(
            help="all: API and scheduler; api: requests only; scheduler: jobs and cron only "
            "(health and metrics still answer). Default $AVA_ROLE, else all."
        ),
    ] = None,
) -> None:
    """Start the API server and the job scheduler."""
    import uvicorn

    from ava_platform import log
    from ava_platform.api.app import create_app
    from ava_platform.config import load_settings
    from ava_platform.errors import ConfigError
    from ava_platform.wiring import Platform

    try:
        env = dict(os.environ) | ({"AVA_ROLE": role} if role is not None else {})
        settings = load_settings(env, db_path=db)
    except ConfigError as exc:
        typer.echo(f"ava serve: {exc.message}", err=True)
        raise typer.Exit(2) from None
    log.configure()
    log.register_secret(settings.internal_secret)
    application = create_app(
        Platform(settings),
        internal_secret=settings.internal_secret,
        serve_api=settings.role != "scheduler",
    )
    # the loop shares the interpreter with the engine calls' and the store's threads: a thread
    # holding the GIL makes the loop wait up to this long each time it wants it back, which
    # the default 5 ms turned into tens of ms on a warm job's answer and on a GET's tail
    sys.setswitchinterval(0.001)
    server = _server_class()(
        uvicorn.Config(
            application,
            host=host,
            port=port,
            log_level="warning",
            # at "warning" no access line is ever written; off, uvicorn skips building each one
            access_log=False,
            loop="uvloop",
            http="httptools",
        )
    )
    server.run()
    if not server.started:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Adds `serve` to the root command."""
    app.command("serve")(serve)
