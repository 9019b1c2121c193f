"""Builds the runtime images (`ava/runtime-<name>:<version>`) that every job runs in. The
namespace `ava` is `$AVA_IMAGE_NAMESPACE` when set (the tests build under `ava-test`).

Layering: a Debian bookworm image -> `ava/runtime-base` (ca-certificates, user `ava` 10001)
-> one image per runtime (its interpreter plus our shim from `runtimes/<name>/`).

No registry is needed: when `debian:bookworm-slim` is neither local nor pullable, Debian is
debootstrapped from its mirror and `docker import`ed (images/bootstrap-base.sh).

Builds are incremental: each image carries a label with the hash of its build context (the
Dockerfile, the shim files, build args) and of its parent image's id; a build whose hash
matches the existing image's label is skipped, so a second run takes seconds.

The engine is reached through executor/engine.py (the client factory and the build-output
reader every image build shares). `ava images build` calls this through ava_platform/images.py.

Errors: errors.BuildFailed (a build or the bootstrap failed, or the project tree is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

from ava_platform import __version__
from ava_platform.errors import BuildFailed
from ava_platform.executor.engine import NEGOTIATE, LineSink, engine_client, read_build_output
from ava_platform.executor.runtime_context import (
    context_files,
    context_hash,
    project_root,
    stage_context,
)
from ava_platform.models import image_namespace

RUNTIMES = ("python", "nodejs", "deno", "shell", "wasm")
DEBIAN_SLIM = "debian:bookworm-slim"
DEBIAN_BOOTSTRAPPED = "ava/debian-base:bookworm"
HASH_LABEL = "ava.content-hash"
RUNTIME_LABEL = "ava.runtime"
DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Runtimes whose Dockerfile fetches from PyPI in a builder stage and so needs the CA bundle.
NEEDS_CA_BUNDLE = frozenset({"deno", "wasm"})
BUILD_TIMEOUT_S = 1800
# Builds on one engine take turns: two at once would each see the other's half-done images.
LOCK_PATH = Path(tempfile.gettempdir()) / "ava-images-build.lock"


@dataclass(frozen=True)
class ImageReport:
    runtime: str  # "base" or a runtime name
    tag: str
    built: bool  # False: an up-to-date image already existed and the build was skipped
    seconds: float
    size_bytes: int


def runtime_image_tag(runtime: str) -> str:
    if runtime != "base" and runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    return f"{image_namespace()}/runtime-{runtime}:{__version__}"


def _client() -> Any:
    return engine_client(version=NEGOTIATE, timeout_s=BUILD_TIMEOUT_S)


def _image_or_none(client: Any, ref: str) -> Any:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def ensure_debian_image(*, log: LineSink = print, client: Any = None) -> str:
    """A local Debian bookworm image ref: the slim one if local or pullable, else bootstrapped."""
    client = client or _client()
    for ref in (DEBIAN_SLIM, DEBIAN_BOOTSTRAPPED):
        if _image_or_none(client, ref) is not None:
            return ref
    try:
        client.images.pull(DEBIAN_SLIM)
        return DEBIAN_SLIM
    except docker.errors.APIError as exc:
        log(f"debian_pull_failed image={DEBIAN_SLIM} reason={str(exc).splitlines()[0]!r}")
    log(f"debian_bootstrap_start tag={DEBIAN_BOOTSTRAPPED} (about a minute)")
    script = project_root() / "images" / "bootstrap-base.sh"
    done = subprocess.run(
        ["bash", str(script), DEBIAN_BOOTSTRAPPED], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-20:])
        raise BuildFailed(f"bootstrapping {DEBIAN_BOOTSTRAPPED} failed:\n{tail}")
    log(f"debian_bootstrap_done tag={DEBIAN_BOOTSTRAPPED}")
    return DEBIAN_BOOTSTRAPPED


def _run_build(
    client: Any,
    context: Path,
    tag: str,
    args: dict[str, str],
    labels: dict[str, str],
    *,
    no_cache: bool,
    log: LineSink,
) -> None:
    stream = client.api.build(
        path=str(context),
        nocache=no_cache,
        tag=tag,
        buildargs=args,
        labels=labels,
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    error = read_build_output(stream, log)
    if error is not None:
        raise BuildFailed(f"building {tag} failed: {error}")


def _drop_if_dangling(client: Any, image_id: str) -> None:
    # A rebuild leaves the old image untagged; remove it unless something still uses it.
    try:
        if not client.images.get(image_id).tags:
            client.images.remove(image_id)
    except docker.errors.APIError:
        pass


def _build_one(
    client: Any,
    name: str,
    parent_ref: str,
    ca_bundle: Path | None,
    *,
    force: bool,
    no_cache: bool,
    log: LineSink,
) -> ImageReport:
    started = time.monotonic()
    tag = runtime_image_tag(name)
    arg_name = "DEBIAN_IMAGE" if name == "base" else "BASE_IMAGE"
    parent_id = client.images.get(parent_ref).id
    files = list(context_files(name, project_root()))
    # The parent's id is hashed so that a rebuilt base image rebuilds everything on top of it.
    content_hash = context_hash(files, {arg_name: parent_ref, "parent_id": parent_id})
    existing = _image_or_none(client, tag)
    up_to_date = existing is not None and existing.labels.get(HASH_LABEL) == content_hash
    if up_to_date and not (force or no_cache):
        log(f"image_up_to_date runtime={name} tag={tag}")
        return ImageReport(name, tag, False, time.monotonic() - started, existing.attrs["Size"])
    log(f"image_build_start runtime={name} tag={tag}")
    labels = {RUNTIME_LABEL: name, HASH_LABEL: content_hash, "ava.version": __version__}
    with tempfile.TemporaryDirectory(prefix=f"ava-image-{name}-") as context:
        stage_context(files, ca_bundle if name in NEEDS_CA_BUNDLE else None, Path(context))
        args = {arg_name: parent_ref}
        _run_build(client, Path(context), tag, args, labels, no_cache=no_cache, log=log)
    if existing is not None:
        _drop_if_dangling(client, existing.id)
    size_bytes = client.images.get(tag).attrs["Size"]
    seconds = time.monotonic() - started
    log(f"image_built runtime={name} tag={tag} seconds={seconds:.1f} size_bytes={size_bytes}")
    return ImageReport(name, tag, True, seconds, size_bytes)


def ensure_base_image(
    *, force: bool = False, no_cache: bool = False, log: LineSink = print, client: Any = None
) -> ImageReport:
    """Builds `ava/runtime-base` (bootstrapping Debian first if needed) unless up to date."""
    client = client or _client()
    debian_ref = ensure_debian_image(log=log, client=client)
    return _build_one(client, "base", debian_ref, None, force=force, no_cache=no_cache, log=log)


def build_images(
    runtimes: Sequence[str] | None = None,
    *,
    ca_bundle: Path | None = None,
    force: bool = False,
    no_cache: bool = False,
    log: LineSink = print,
) -> list[ImageReport]:
    """Builds the base image and the given runtimes' images (all when None), in that order.

    `force` rebuilds even up-to-date images (Docker's layer cache still applies); `no_cache`
    rebuilds every layer too (a cold build, short of re-bootstrapping Debian). `ca_bundle` is
    the CA bundle builds trust to reach PyPI; default: the host's.
    """
    names = list(RUNTIMES if runtimes is None else dict.fromkeys(runtimes))
    for name in names:
        runtime_image_tag(name)  # validates before any slow work starts
    bundle = ca_bundle or DEFAULT_CA_BUNDLE
    if NEEDS_CA_BUNDLE.intersection(names) and not bundle.is_file():
        raise BuildFailed(f"CA bundle {bundle} not found; pass ca_bundle / --ca-bundle")
    client = _client()
    with _build_lock(log):
        return _build_all(client, names, bundle, force=force, no_cache=no_cache, log=log)


@contextlib.contextmanager
def _build_lock(log: LineSink) -> Iterator[None]:
    with LOCK_PATH.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"image_build_waiting lock={LOCK_PATH} (another build is running)")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # the lock goes with the file's close


def _build_all(
    client: Any, names: Sequence[str], bundle: Path, *, force: bool, no_cache: bool, log: LineSink
) -> list[ImageReport]:
    reports = [ensure_base_image(force=force, no_cache=no_cache, log=log, client=client)]
    base_tag = reports[0].tag
    for name in names:
        report = _build_one(client, name, base_tag, bundle, force=force, no_cache=no_cache, log=log)
        reports.append(report)
    return reports


def format_reports(reports: Sequence[ImageReport]) -> str:
    rows = [f"{'image':<32} {'status':<8} {'seconds':>8} {'size_mb':>8}"]
    for r in reports:
        status = "built" if r.built else "skipped"
        rows.append(f"{r.tag:<32} {status:<8} {r.seconds:>8.1f} {r.size_bytes / 1e6:>8.1f}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ava_platform.images")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the base and runtime images")
    build.add_argument("--runtime", action="append", choices=RUNTIMES, help="repeatable")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.add_argument("--no-cache", action="store_true", help="rebuild every layer (cold)")
    build.add_argument("--ca-bundle", type=Path, default=None, help="CA bundle for PyPI fetches")
    build.add_argument("--quiet", action="store_true", help="only print the summary")
    commands.add_parser("tags", help="print the image tag of every runtime")
    args = parser.parse_args(argv)
    if args.command == "tags":
        print("\n".join(runtime_image_tag(name) for name in RUNTIMES))
        return 0
    log: LineSink = (lambda _line: None) if args.quiet else print
    try:
        reports = build_images(
            args.runtime,
            ca_bundle=args.ca_bundle,
            force=args.force,
            no_cache=args.no_cache,
            log=log,
        )
    except (BuildFailed, docker.errors.DockerException) as exc:
        print(f"ava images: {exc}", file=sys.stderr)
        return 1
    print(format_reports(reports))
    return 0
