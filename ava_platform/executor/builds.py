"""Per-worker image builds on the Docker engine (the legacy builder, from a context tarball the
deploy service assembled): the ImageBuilder of service/deploy.py, and a fake beside it.
Blocking SDK calls run on this module's own small thread pool, never on the event loop; the
build log streams back line by line (executor/engine.py reads the engine's output); a failed
build raises errors.BuildFailed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker.errors

from ava_platform.errors import BuildFailed
from ava_platform.executor.engine import LineSink, emit_lines, engine_client, read_build_output

T = TypeVar("T")
BUILD_TIMEOUT_S = 1800
BUILD_MEMORY_BYTES = 2 * 1024 * 1024 * 1024


class DockerImageBuilder:
    def __init__(self, *, base_url: str | None = None, max_builds: int = 2) -> None:
        self._base_url = base_url
        self._client: Any = None
        self._pool = ThreadPoolExecutor(max_workers=max_builds + 1, thread_name_prefix="ava-build")

    def _api(self) -> Any:
        if self._client is None:
            self._client = engine_client(self._base_url, timeout_s=BUILD_TIMEOUT_S).api
        return self._client

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args))

    async def build(self, context_tar: Path, tag: str, on_line: LineSink) -> None:
        loop = asyncio.get_running_loop()

        def sink(line: str) -> None:
            loop.call_soon_threadsafe(on_line, line)

        try:
            await self._call(self._build, context_tar, tag, sink)
        except BuildFailed:
            raise
        except Exception as exc:
            raise BuildFailed(f"the image build failed: {type(exc).__name__}: {exc}") from exc

    def _build(self, context_tar: Path, tag: str, sink: LineSink) -> None:
        with context_tar.open("rb") as context:
            stream = self._api().build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                container_limits={"memory": BUILD_MEMORY_BYTES, "memswap": -1},
            )
            error = read_build_output(stream, sink)
        if error is not None:
            emit_lines(error, sink)
            raise BuildFailed(error.splitlines()[-1] if error else "build failed")

    async def remove(self, tag: str) -> bool:
        try:
            await self._call(self._remove, tag)
        except docker.errors.NotFound:
            return True
        except Exception:
            return False  # a container still uses it: a later prune retries
        return True

    def _remove(self, tag: str) -> None:
        self._api().remove_image(tag, force=False, noprune=False)

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class FakeImageBuilder:
    """For unit tests: records builds; `fail_with` makes the next builds fail."""

    def __init__(self, fail_with: str | None = None) -> None:
        self.fail_with = fail_with
        self.built: list[str] = []
        self.removed: list[str] = []
        self.gate: asyncio.Event | None = None  # set: builds wait for it

    async def build(self, context_tar: Path, tag: str, on_line: LineSink) -> None:
        on_line(f"Step 1/1 : FROM fake for {tag}")
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with:
            on_line(self.fail_with)
            raise BuildFailed(self.fail_with)
        self.built.append(tag)

    async def remove(self, tag: str) -> bool:
        self.removed.append(tag)
        return True

    async def close(self) -> None:
        return None
