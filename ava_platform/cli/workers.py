"""`ava workers …`: list, get, create, update, delete, deploy a directory, versions."""

from __future__ import annotations

import io
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from ava_platform.cli.config import ConfigProblem, make_client
from ava_platform.cli.output import (
    EXIT_FAILED,
    EXIT_TIMEOUT,
    JsonFlag,
    Output,
    handle_errors,
    options,
    output,
)
from ava_platform.client import AvaClient, WaitTimeout
from ava_platform.client.errors import WorkerNotFoundError
from ava_platform.models import (
    Network,
    PatchableStatus,
    Runtime,
    VersionInfo,
    Worker,
    WorkerCreate,
    WorkerPatch,
    WorkerStatus,
)

workers_app = typer.Typer(help="Workers: the blueprints jobs run.", no_args_is_help=True)

LIST_COLUMNS = ("id", "name", "runtime", "status", "version", "updated_at")
VERSION_COLUMNS = ("version", "kind", "status", "current", "created_at", "error")
MANIFEST = "ava.toml"
SKIP_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv", ".mypy_cache"})
PATCHABLE_FROM_MANIFEST = (
    "description",
    "entrypoint",
    "config",
    "secrets",
    "timeout_seconds",
    "max_retries",
    "memory_mb",
    "cpus",
    "network",
    "max_concurrency",
)

WorkerRef = Annotated[str, typer.Argument(help="Worker id (wkr_…) or exact name.")]
SourceOpt = Annotated[
    Path | None,
    typer.Option("--source", help="File with the inline source ('-': stdin).", allow_dash=True),
]
ConfigOpt = Annotated[
    list[str] | None, typer.Option("--config", help="KEY=VALUE, repeatable (values are strings).")
]
SecretOpt = Annotated[
    list[str] | None, typer.Option("--secret", help="Secret name to inject, repeatable.")
]


def resolve_worker(client: AvaClient, ref: str) -> str:
    """A worker id from an id or an exact, unambiguous name (deprecated ones left out)."""
    if ref.startswith("wkr_"):
        return ref
    page = client.list_workers(q=ref, per_page=100)
    ids = [w.id for w in page.data if w.name == ref]
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise WorkerNotFoundError(404, "worker_not_found", f"no worker named {ref!r}")
    raise ConfigProblem(f"{len(ids)} workers are named {ref!r}; pass an id: {', '.join(ids)}")


def _read_source(path: Path | None) -> str | None:
    if path is None:
        return None
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--source") from None


def _config(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--config")
        out[key] = value
    return out


def _show_worker(ctx: typer.Context, worker: Worker, json_out: bool) -> None:
    """Every field; the inline source only in --json (`ava workers get W --json | jq -r .source_code`)."""
    fields = [f for f in Worker.__struct_fields__ if f != "source_code"]
    output(ctx, json_out).record(worker, fields)


@workers_app.command("list")
@handle_errors
def list_workers(
    ctx: typer.Context,
    status: Annotated[WorkerStatus | None, typer.Option(help="Only this status.")] = None,
    runtime: Annotated[Runtime | None, typer.Option(help="Only this runtime.")] = None,
    q: Annotated[str | None, typer.Option("--q", "-q", help="Name contains (any case).")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=100)] = 20,
    json_out: JsonFlag = False,
) -> None:
    """List workers (deprecated ones only with --status deprecated)."""
    with make_client(options(ctx)) as client:
        result = client.list_workers(
            status=status.value if status else None,
            runtime=runtime.value if runtime else None,
            q=q,
            page=page,
            per_page=per_page,
        )
    output(ctx, json_out).table(result.data, LIST_COLUMNS, page=result)


@workers_app.command("get")
@handle_errors
def get_worker(ctx: typer.Context, worker: WorkerRef, json_out: JsonFlag = False) -> None:
    """Show one worker."""
    with make_client(options(ctx)) as client:
        found = client.get_worker(resolve_worker(client, worker))
    _show_worker(ctx, found, json_out)


@workers_app.command("create")
@handle_errors
def create_worker(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Human-readable name.")],
    runtime: Annotated[Runtime, typer.Option(help="The runtime.")],
    source: SourceOpt = None,
    entrypoint: Annotated[str | None, typer.Option(help="Entrypoint file in a bundle.")] = None,
    description: Annotated[str, typer.Option(help="What it does.")] = "",
    config: ConfigOpt = None,
    secret: SecretOpt = None,
    timeout_seconds: Annotated[int, typer.Option(min=1, max=3600)] = 300,
    max_retries: Annotated[int, typer.Option(min=0, max=5)] = 0,
    memory_mb: Annotated[int, typer.Option(min=16, max=8192)] = 256,
    cpus: Annotated[float, typer.Option(min=0.1)] = 1.0,
    network: Annotated[Network, typer.Option()] = Network.EGRESS,
    max_concurrency: Annotated[int | None, typer.Option(min=1)] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create a worker (inline source with --source, or deploy a bundle afterwards)."""
    body = WorkerCreate(
        name=name,
        runtime=runtime,
        description=description,
        entrypoint=entrypoint,
        source_code=_read_source(source),
        config=dict(_config(config)),
        secrets=list(secret or []),
        timeout_seconds=timeout_seconds,
        max_retries=max_retries,
        memory_mb=memory_mb,
        cpus=cpus,
        network=network,
        max_concurrency=max_concurrency,
    )
    with make_client(options(ctx)) as client:
        created = client.create_worker(body)
    _show_worker(ctx, created, json_out)


@workers_app.command("update")
@handle_errors
def update_worker(
    ctx: typer.Context,
    worker: WorkerRef,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    status: Annotated[PatchableStatus | None, typer.Option(help="active | paused")] = None,
    source: SourceOpt = None,
    entrypoint: Annotated[str | None, typer.Option()] = None,
    config: ConfigOpt = None,
    unset_config: Annotated[
        list[str] | None, typer.Option("--unset-config", help="Config key to remove, repeatable.")
    ] = None,
    secret: Annotated[
        list[str] | None, typer.Option("--secret", help="Replaces the secret names, repeatable.")
    ] = None,
    timeout_seconds: Annotated[int | None, typer.Option(min=1, max=3600)] = None,
    max_retries: Annotated[int | None, typer.Option(min=0, max=5)] = None,
    memory_mb: Annotated[int | None, typer.Option(min=16, max=8192)] = None,
    cpus: Annotated[float | None, typer.Option(min=0.1)] = None,
    network: Annotated[Network | None, typer.Option()] = None,
    max_concurrency: Annotated[int | None, typer.Option(min=1)] = None,
    json_out: JsonFlag = False,
) -> None:
    """Change a worker; only the options given are sent (config is merged)."""
    changes: dict[str, Any] = {
        "name": name,
        "description": description,
        "status": status,
        "source_code": _read_source(source),
        "entrypoint": entrypoint,
        "secrets": secret,
        "timeout_seconds": timeout_seconds,
        "max_retries": max_retries,
        "memory_mb": memory_mb,
        "cpus": cpus,
        "network": network,
        "max_concurrency": max_concurrency,
    }
    patch: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    merged: dict[str, str | None] = {**_config(config), **dict.fromkeys(unset_config or [])}
    if merged:
        patch["config"] = merged
    if not patch:
        raise typer.BadParameter("nothing to change: pass at least one option")
    with make_client(options(ctx)) as client:
        updated = client.update_worker(resolve_worker(client, worker), patch)
    _show_worker(ctx, updated, json_out)


@workers_app.command("delete")
@handle_errors
def delete_worker(ctx: typer.Context, worker: WorkerRef, json_out: JsonFlag = False) -> None:
    """Deprecate a worker (soft delete: its jobs and logs stay readable)."""
    with make_client(options(ctx)) as client:
        deleted = client.delete_worker(resolve_worker(client, worker))
    out = output(ctx, json_out)
    if out.json_mode:
        out.json(deleted)
    else:
        out.note(f"{deleted.id} is {deleted.status.value}")


# -- deploy -------------------------------------------------------------------------------------


def bundle_directory(directory: Path) -> bytes:
    """The directory as a tar.gz, without VCS, caches and installed dependencies."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if SKIP_DIRS.intersection(rel.parts) or path.suffix == ".pyc":
                continue
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=rel.as_posix(), recursive=False)
    return buffer.getvalue()


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise ConfigProblem(f"no --worker given and no {MANIFEST} in {directory}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigProblem(f"{path}: {exc}") from None
    worker = data.get("worker")
    if not isinstance(worker, dict) or "name" not in worker or "runtime" not in worker:
        raise ConfigProblem(f"{path}: needs a [worker] table with at least name and runtime")
    return worker


def _worker_for_manifest(client: AvaClient, manifest: dict[str, Any]) -> tuple[str, bool]:
    """The id of the manifest's worker, patched to the manifest, or created; and if created."""
    try:
        body = msgspec.convert(manifest, WorkerCreate)
    except msgspec.ValidationError as exc:
        raise ConfigProblem(f"{MANIFEST}: {exc}") from None
    try:
        worker_id = resolve_worker(client, body.name)
    except WorkerNotFoundError:
        return client.create_worker(body).id, True
    patch = {k: manifest[k] for k in PATCHABLE_FROM_MANIFEST if k in manifest}
    if patch:
        client.update_worker(worker_id, msgspec.convert(patch, WorkerPatch))
    return worker_id, False


@workers_app.command("deploy")
@handle_errors
def deploy(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="The source bundle's directory.")
    ],
    worker: Annotated[
        str | None,
        typer.Option(
            help="Worker id or name; default: the [worker] of DIR/ava.toml (created if new)."
        ),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the build to finish.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the build.")] = 900,
    json_out: JsonFlag = False,
) -> None:
    """Upload DIR as a bundle; the platform installs its dependencies into a new image."""
    out = output(ctx, json_out)
    bundle = bundle_directory(directory)
    with make_client(options(ctx)) as client:
        if worker is None:
            worker_id, created = _worker_for_manifest(client, read_manifest(directory))
            if created:
                out.note(f"created worker {worker_id}")
        else:
            worker_id = resolve_worker(client, worker)
        info = client.deploy(worker_id, bundle)
        if wait:
            info = _wait_build(client, out, info, timeout)
        failed = info.status.value == "failed"
        tail = client.build_log(worker_id, info.version).splitlines()[-30:] if failed else []
    if out.json_mode:
        out.json(info)
    else:
        out.record(info, ("worker_id", "version", "status", "image", "error"))
    for line in tail:
        out.note(line)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _wait_build(client: AvaClient, out: Output, info: VersionInfo, timeout_s: float) -> VersionInfo:
    label = f"building {info.worker_id} version {info.version}"
    with out.waiting(label):
        try:
            return client.wait_for_version(info.worker_id, info.version, timeout_s=timeout_s)
        except WaitTimeout:
            out.note(f"{label}: still building after {timeout_s:g}s")
            raise typer.Exit(EXIT_TIMEOUT) from None


# -- versions -----------------------------------------------------------------------------------


@workers_app.command("versions")
@handle_errors
def versions(
    ctx: typer.Context,
    worker: WorkerRef,
    page: Annotated[int, typer.Option(min=1)] = 1,
    json_out: JsonFlag = False,
) -> None:
    """A worker's versions, newest first."""
    with make_client(options(ctx)) as client:
        result = client.list_versions(resolve_worker(client, worker), page=page)
    output(ctx, json_out).table(result.data, VERSION_COLUMNS, page=result)


@workers_app.command("build-log")
@handle_errors
def build_log(ctx: typer.Context, worker: WorkerRef, version: int) -> None:
    """The build log of one version."""
    with make_client(options(ctx)) as client:
        text = client.build_log(resolve_worker(client, worker), version)
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


@workers_app.command("rollback")
@handle_errors
def rollback(
    ctx: typer.Context, worker: WorkerRef, version: int, json_out: JsonFlag = False
) -> None:
    """Point the worker at an earlier ready version."""
    with make_client(options(ctx)) as client:
        updated = client.rollback(resolve_worker(client, worker), version)
    _show_worker(ctx, updated, json_out)
