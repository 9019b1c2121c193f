"""A scripted executor for unit tests of the scheduler: no containers, same contract."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ava_platform.executor.base import BindSink, ContainerRef, OutputSink, RunResult, RunSpec
from ava_platform.executor.protocol import encode_frame, read_envelope

Script = Callable[[RunSpec, dict[str, Any]], tuple[list[tuple[str, bytes]], int]]


def echo_script(spec: RunSpec, envelope: dict[str, Any]) -> tuple[list[tuple[str, bytes]], int]:
    return [
        ("stdout", encode_frame(envelope["nonce"], {"ok": True, "result": envelope["input"]}))
    ], 0


class FakeExecutor:
    def __init__(self, script: Script = echo_script, delay_s: float = 0.0) -> None:
        self.script = script
        self.delay_s = delay_s
        self.runs: list[RunSpec] = []

    async def run(
        self,
        spec: RunSpec,
        on_output: OutputSink,
        cancel: asyncio.Event,
        on_bound: BindSink | None = None,
        result_seen: asyncio.Event | None = None,
    ) -> RunResult:
        self.runs.append(spec)
        if on_bound is not None:
            await on_bound(f"fake-{spec.job_id}-{spec.attempt}")
        envelope = read_envelope(spec.envelope)
        try:
            await asyncio.wait_for(cancel.wait(), timeout=self.delay_s or 0.001)
            return RunResult(exit_code=137, cancelled=True)
        except TimeoutError:
            pass
        chunks, code = self.script(spec, envelope)
        for stream, data in chunks:
            on_output(stream, data)
        return RunResult(exit_code=code)

    def pool_stats(self) -> dict[str, Any]:
        return {"enabled": False, "hits": 0, "misses": len(self.runs), "idle": 0, "shapes": []}

    async def list_containers(self) -> list[ContainerRef]:
        return []

    async def kill_and_remove(self, container_id: str) -> None:
        return None

    async def image_exists(self, image: str) -> bool:
        return True

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
