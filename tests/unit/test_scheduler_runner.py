"""The scheduler and the attempt runner on a real SQLite file, with containers replaced by the
fake executor: retries, cancel, idempotency, the lost-attempt budget and the job's snapshot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ava_platform.clock import utcnow
from ava_platform.config import load_settings
from ava_platform.executor.base import RunSpec
from ava_platform.executor.builds import FakeImageBuilder
from ava_platform.executor.fake import FakeExecutor, echo_script
from ava_platform.executor.protocol import encode_frame, read_envelope
from ava_platform.models import (
    FINISHED,
    AttemptOutcome,
    Job,
    JobStatus,
    Role,
    WorkerCreate,
    WorkerPatch,
)
from ava_platform.scheduler.runner import lost_outcome
from ava_platform.service.auth import Principal
from ava_platform.wiring import Platform
from tests.support import server_env

WHO = Principal("ten_a", "usr_a", Role.ADMIN)
FAR = "9999-01-01T00:00:00.000000Z"
Chunks = tuple[list[tuple[str, bytes]], int]


def fails_first_attempt(spec: RunSpec, envelope: dict[str, Any]) -> Chunks:
    if envelope["attempt"] == 1:
        body = {"ok": False, "error": {"type": "ValueError", "message": "first fails"}}
        return [("stdout", encode_frame(envelope["nonce"], body))], 1
    return echo_script(spec, envelope)


def env_script(spec: RunSpec, envelope: dict[str, Any]) -> Chunks:
    return [("stdout", encode_frame(envelope["nonce"], {"ok": True, "result": envelope["env"]}))], 0


async def _platform(
    tmp_path: Path, executor: FakeExecutor, *, scheduler: bool = True, **env: str
) -> Platform:
    settings = load_settings(
        server_env(
            tmp_path / "ava.db",
            AVA_RETRY_BASE_S="0.05",
            AVA_POLL_INTERVAL_S="0.05",
            AVA_MAX_WORKER_LOST="2",
            **env,
        )
    )
    platform = Platform(
        settings, executor=executor, run_scheduler=scheduler, builder=FakeImageBuilder()
    )
    await platform.start()
    return platform


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Platform] = []

    async def factory(executor: FakeExecutor, **kw: Any) -> Platform:
        made.append(await _platform(tmp_path, executor, **kw))
        return made[-1]

    yield factory
    for platform in made:
        await platform.stop()


async def _worker(platform: Platform, **fields: Any) -> str:
    body = WorkerCreate(name="w", runtime="python", source_code="x", **fields)  # type: ignore[arg-type]
    return (await platform.workers.create(WHO, body)).id


async def _finished(platform: Platform, job_id: str, timeout_s: float = 10) -> Job:
    for _ in range(int(timeout_s / 0.02)):
        job = await platform.jobs.get(WHO, job_id)
        if job.status in FINISHED:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s}s")


async def test_a_failed_attempt_is_retried_and_the_retry_succeeds(make: Any) -> None:
    platform = await make(FakeExecutor(fails_first_attempt))
    job, _ = await platform.jobs.trigger(WHO, await _worker(platform, max_retries=1), {"n": 1})
    done = await _finished(platform, job.id)
    assert done.status is JobStatus.SUCCEEDED and done.result == {"n": 1}
    outcomes = [a.outcome for a in done.attempts]
    assert outcomes == [AttemptOutcome.FAILED, AttemptOutcome.SUCCEEDED]


async def test_without_retries_the_first_failure_is_final(make: Any) -> None:
    executor = FakeExecutor(fails_first_attempt)
    platform = await make(executor)
    job, _ = await platform.jobs.trigger(WHO, await _worker(platform, max_retries=0), {})
    done = await _finished(platform, job.id)
    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error.message == "first fails"
    assert len(executor.runs) == 1


async def test_cancel_kills_a_running_attempt(make: Any) -> None:
    executor = FakeExecutor(delay_s=30)
    platform = await make(executor)
    job, _ = await platform.jobs.trigger(WHO, await _worker(platform), {})
    for _ in range(250):
        if (await platform.jobs.get(WHO, job.id)).status is JobStatus.RUNNING and executor.runs:
            break
        await asyncio.sleep(0.02)
    await platform.jobs.cancel(WHO, job.id)
    done = await _finished(platform, job.id, timeout_s=5)
    assert done.status is JobStatus.CANCELLED
    assert [a.outcome for a in done.attempts] == [AttemptOutcome.CANCELLED]


async def test_an_idempotent_repeat_returns_the_first_job_and_runs_once(make: Any) -> None:
    executor = FakeExecutor()
    platform = await make(executor)
    worker_id = await _worker(platform)
    first, created = await platform.jobs.trigger(WHO, worker_id, {"a": 1}, idempotency_key="k-1")
    again, created_again = await platform.jobs.trigger(
        WHO, worker_id, {"a": 2}, idempotency_key="k-1"
    )
    other, _ = await platform.jobs.trigger(WHO, worker_id, {"a": 3}, idempotency_key="k-2")
    assert (created, created_again) == (True, False)
    assert again.id == first.id and other.id != first.id
    assert (await _finished(platform, first.id)).result == {"a": 1}
    await _finished(platform, other.id)
    assert sorted(read_envelope(s.envelope)["input"]["a"] for s in executor.runs) == [1, 3]


async def test_exactly_max_worker_lost_crashes_are_allowed(make: Any) -> None:
    # AVA_MAX_WORKER_LOST=2: the first lost attempt is requeued, the second ends the job
    platform = await make(FakeExecutor(), scheduler=False)
    job, _ = await platform.jobs.trigger(WHO, await _worker(platform, max_retries=5), {})
    statuses = []
    for _ in range(2):
        claimed = await platform.job_store.claim_next(
            now=FAR, owner="o", lease_until=FAR, max_running=4
        )
        assert claimed is not None and claimed.job_id == job.id
        await platform.runner.record(claimed, lost_outcome("crash"))
        statuses.append((await platform.jobs.get(WHO, job.id)).status)
    assert statuses == [JobStatus.QUEUED, JobStatus.FAILED]
    done = await platform.jobs.get(WHO, job.id)
    assert done.error is not None and done.error.type == "worker_lost"
    assert [a.outcome for a in done.attempts] == [AttemptOutcome.WORKER_LOST] * 2


async def test_a_job_runs_with_the_settings_it_was_queued_with(make: Any) -> None:
    executor = FakeExecutor(env_script)
    platform = await make(executor, scheduler=False)
    worker_id = await _worker(platform, config={"K": "a"}, timeout_seconds=30, memory_mb=128)
    job, _ = await platform.jobs.trigger(WHO, worker_id, {})
    patch = WorkerPatch(config={"K": "b"}, timeout_seconds=5, memory_mb=512, source_code="y")
    await platform.workers.update(WHO, worker_id, patch)
    later, _ = await platform.jobs.trigger(WHO, worker_id, {})
    for _ in range(2):
        claimed = await platform.job_store.claim_next(
            now=utcnow(), owner="o", lease_until=FAR, max_running=4
        )
        assert claimed is not None
        await platform.runner.run(claimed, asyncio.Event())
    first, second = executor.runs
    assert (first.timeout_s, first.memory_mb) == (30, 128)
    assert (second.timeout_s, second.memory_mb) == (5, 512)
    assert read_envelope(first.envelope)["source"] == "x"
    assert read_envelope(second.envelope)["source"] == "y"
    assert (await platform.jobs.get(WHO, job.id)).result["K"] == "a"
    assert (await platform.jobs.get(WHO, later.id)).result["K"] == "b"


class SlowLogs:
    """The real log store, each write taking a while: the attempt may end mid-write."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self._inner, self._delay_s = inner, delay_s

    async def append(self, *args: Any, **kwargs: Any) -> int:
        await asyncio.sleep(self._delay_s)
        return int(await self._inner.append(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class TalkThenAnswer(FakeExecutor):
    """Lines, a pause long enough for a periodic flush to start, then the frame at once."""

    async def run(self, spec: RunSpec, on_output: Any, cancel: Any, **_: Any) -> Any:
        from ava_platform.executor.base import RunResult

        self.runs.append(spec)
        nonce = read_envelope(spec.envelope)["nonce"]
        on_output("stdout", b"line 1\nline 2\n")
        on_output("stderr", b"err 1\n")
        await asyncio.sleep(0.15)  # the flusher drained the lines and is writing them now
        on_output("stdout", encode_frame(nonce, {"ok": True, "result": 1}))
        return RunResult(exit_code=None, ended_by_frame=True)


async def test_no_line_is_lost_when_the_attempt_ends_during_a_log_write(make: Any) -> None:
    platform = await make(TalkThenAnswer(), scheduler=False)
    platform.runner._logs = SlowLogs(platform.log_store, delay_s=0.2)
    job, _ = await platform.jobs.trigger(WHO, await _worker(platform), {})
    claimed = await platform.job_store.claim_next(
        now=utcnow(), owner="o", lease_until=FAR, max_running=4
    )
    assert claimed is not None
    await platform.runner.run(claimed, asyncio.Event())
    done = await platform.jobs.get(WHO, job.id)
    assert done.status is JobStatus.SUCCEEDED and done.attempts[0].exit_code == 0
    lines = [line.line for line in await platform.jobs.logs(WHO, job.id)]
    assert sorted(lines) == ["err 1", "line 1", "line 2"]
