"""One attempt of one job, split into steps: prepare, run the container, classify, record.

The claim hands over everything the attempt needs (the job's settings snapshot, the pinned
version's code, the input bytes); only secret values are read here, at attempt start, so a
rotation applies to the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any, Protocol

import msgspec
import structlog

from ava_platform.clock import Clock, iso
from ava_platform.config import Settings
from ava_platform.errors import AvaError, ExecutorError, MissingSecret, StoreError
from ava_platform.executor.base import BindSink, Executor, RunResult, RunSpec
from ava_platform.executor.protocol import MAX_RESULT_BYTES, build_envelope, job_env, new_nonce
from ava_platform.log import get_logger
from ava_platform.models import AttemptOutcome, ErrorInfo, JobStatus, Network, runtime_image
from ava_platform.scheduler import retry
from ava_platform.scheduler.output import OutputCollector
from ava_platform.scheduler.redact import Redactor
from ava_platform.service.events import JobEvents
from ava_platform.service.secrets_source import SecretSource
from ava_platform.store.jobs import Claimed, JobStore
from ava_platform.store.logs import LogStore

log = get_logger("ava.runner")
FLUSH_INTERVAL_S = 0.1
# lines per store transaction: a flood is written in bounded pieces, each a short hold of the
# writer and of the loop (building its rows), with other work between them
FLUSH_BATCH_LINES = 2000
MAX_MESSAGE_CHARS = 2000  # what the API shows of a handler's error message
CUT_MARKER = " …[cut]"
RECORD_RETRY_S = (0.5, 1, 2, 4, 8, 15, 30, 30, 30, 30, 30)  # about 3 minutes in all


class AttemptObserver(Protocol):
    """What watches attempts (the metrics): told when each starts, starts its container, ends."""

    def attempt_started(self, claimed: Claimed) -> None: ...

    def container_started(self, latency_s: float) -> None: ...

    def attempt_finished(
        self, claimed: Claimed, outcome: AttemptOutcome, status: JobStatus
    ) -> None: ...


class Outcome(msgspec.Struct, frozen=True):
    kind: AttemptOutcome
    result: Any = None
    error: ErrorInfo | None = None
    exit_code: int | None = None


class AttemptRunner:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        jobs: JobStore,
        logs: LogStore,
        secrets: SecretSource,
        executor: Executor,
        events: JobEvents,
        observer: AttemptObserver | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._jobs = jobs
        self._logs = logs
        self._secrets = secrets
        self._executor = executor
        self._events = events
        self._observer = observer

    async def run(self, claimed: Claimed, cancel: asyncio.Event) -> None:
        # each attempt runs in its own task, so this context is the attempt's alone
        structlog.contextvars.bind_contextvars(
            job_id=claimed.job_id, worker_id=claimed.worker_id, tenant_id=claimed.tenant_id
        )
        log.info("attempt_started", job_id=claimed.job_id, attempt=claimed.attempt)
        if self._observer is not None:
            self._observer.attempt_started(claimed)
        try:
            outcome = await self._attempt(claimed, cancel)
        except asyncio.CancelledError:
            # the platform is shutting down: the attempt is lost, not failed
            await asyncio.shield(
                self.record(claimed, lost_outcome("the platform stopped during the attempt"))
            )
            raise
        except Exception as exc:
            # a bug or a store fault must not leave the job running forever
            log.exception("attempt_crashed", job_id=claimed.job_id, error_type=type(exc).__name__)
            outcome = _failed(
                "platform", f"internal error: {type(exc).__name__}", AttemptOutcome.PLATFORM
            )
        await self._record_until_stored(claimed, outcome)

    async def _record_until_stored(self, claimed: Claimed, outcome: Outcome) -> None:
        """An outcome the store cannot take now (its disk full) is offered again, so the job
        does not stay running under a lease this platform keeps renewing."""
        for delay_s in RECORD_RETRY_S:
            try:
                await self.record(claimed, outcome)
                return
            except StoreError as exc:
                log.warning("record_failed", job_id=claimed.job_id, error=exc.message)
                await asyncio.sleep(delay_s)
        await self.record(claimed, outcome)

    async def _attempt(self, claimed: Claimed, cancel: asyncio.Event) -> Outcome:
        try:
            secret_values = await self._secrets.resolve(claimed.tenant_id, claimed.run.secrets)
        except MissingSecret as exc:
            return Outcome(AttemptOutcome.FAILED, error=ErrorInfo("missing_secret", exc.message))
        except AvaError as exc:
            return _failed(
                "platform", f"cannot read the job's secrets: {exc.code}", AttemptOutcome.PLATFORM
            )
        nonce = new_nonce()
        redactor = Redactor(secret_values.values())
        result_seen = asyncio.Event()
        collector = OutputCollector(
            nonce,
            budget_bytes=max(0, self._settings.log_cap_bytes - claimed.log_bytes),
            cap_bytes=self._settings.log_cap_bytes,
            redactor=redactor,
            on_result=result_seen.set,
        )
        spec = run_spec(claimed, nonce, secret_values)
        stop_flushing = asyncio.Event()
        flusher = asyncio.create_task(self._flush_loop(claimed, collector, stop_flushing))
        try:
            result = await self._executor.run(
                spec,
                collector.feed,
                cancel,
                on_bound=self._binder(claimed),
                result_seen=result_seen,
            )
        except ExecutorError as exc:
            return _failed("platform", exc.message, AttemptOutcome.PLATFORM)
        finally:
            collector.close()
            # never cancelled: a flush cut mid-write would lose the lines it had drained
            stop_flushing.set()
            await asyncio.shield(flusher)
            await self._flush(claimed, collector)
        if self._observer is not None and result.start_latency_s is not None:
            self._observer.container_started(result.start_latency_s)
        return classify(result, collector, claimed.run.timeout_seconds, redactor)

    def _binder(self, claimed: Claimed) -> BindSink:
        async def bind(container_id: str) -> None:
            await self._jobs.set_container(claimed.job_id, claimed.attempt, container_id)

        return bind

    async def _flush_loop(
        self, claimed: Claimed, collector: OutputCollector, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), FLUSH_INTERVAL_S)
            await self._flush(claimed, collector)

    async def _flush(self, claimed: Claimed, collector: OutputCollector) -> None:
        lines = collector.drain()
        for start in range(0, len(lines), FLUSH_BATCH_LINES):
            batch = lines[start : start + FLUSH_BATCH_LINES]
            last = start + FLUSH_BATCH_LINES >= len(lines)
            await self._logs.append(
                claimed.job_id, claimed.attempt, batch, truncated=last and collector.truncated
            )
            self._events.changed(claimed.job_id)

    async def record(
        self, claimed: Claimed, outcome: Outcome, *, lapsed_before: str | None = None
    ) -> bool:
        """Stores the attempt's end and decides the job's next step; False when the store
        dropped it (the attempt is no longer current, or with `lapsed_before`, its lease was
        renewed after all: a takeover that must not happen)."""
        lost = outcome.kind is AttemptOutcome.WORKER_LOST
        decision = retry.decide(
            outcome.kind,
            attempt=claimed.attempt,
            max_retries=claimed.run.max_retries,
            lost_count=claimed.lost_count + (1 if lost else 0),
            max_lost=self._settings.max_worker_lost,
            base_s=self._settings.retry_base_s,
        )
        now = self._clock.now()
        next_at = None
        if decision.retry_in_s is not None:
            next_at = iso(now + timedelta(seconds=decision.retry_in_s))
        accepted = await self._jobs.finish_attempt(
            claimed.job_id,
            claimed.attempt,
            now=iso(now),
            outcome=outcome.kind,
            exit_code=outcome.exit_code,
            error=outcome.error,
            result=outcome.result,
            status=decision.status,
            next_attempt_at=next_at,
            lost=lost,
            lapsed_before=lapsed_before,
        )
        log.info(
            "attempt_finished",
            job_id=claimed.job_id,
            attempt=claimed.attempt,
            outcome=outcome.kind.value,
            status=decision.status.value,
            accepted=accepted,
        )
        if self._observer is not None and accepted:
            self._observer.attempt_finished(claimed, outcome.kind, decision.status)
        if decision.status is JobStatus.QUEUED:
            self._events.changed(claimed.job_id)
            self._events.enqueued()
        else:
            self._events.finished(claimed.job_id)
        return accepted


def run_spec(claimed: Claimed, nonce: str, secrets: dict[str, str]) -> RunSpec:
    run = claimed.run
    env = job_env(
        run, secrets, worker_id=claimed.worker_id, job_id=claimed.job_id, attempt=claimed.attempt
    )
    envelope = build_envelope(
        nonce=nonce,
        job_id=claimed.job_id,
        worker_id=claimed.worker_id,
        attempt=claimed.attempt,
        entrypoint=run.entrypoint,
        source=claimed.source_code if run.image is None else None,
        input_json=claimed.input_json,
        env=env,
    )
    return RunSpec(
        job_id=claimed.job_id,
        tenant_id=claimed.tenant_id,
        worker_id=claimed.worker_id,
        attempt=claimed.attempt,
        image=run.image or runtime_image(run.runtime),
        envelope=envelope,
        memory_mb=run.memory_mb,
        cpus=run.cpus,
        network_enabled=run.network is Network.EGRESS,
        isolation=run.isolation.value,
        timeout_s=float(run.timeout_seconds),
    )


def classify(
    result: RunResult,
    collector: OutputCollector,
    timeout_s: int,
    redactor: Redactor | None = None,
) -> Outcome:
    redactor = redactor or Redactor(())
    code = result.exit_code
    if result.ended_by_frame:  # the shim exits 0 after an ok frame, 1 after a failure's
        ok = isinstance(collector.frame, dict) and collector.frame.get("ok") is True
        code = 0 if ok else 1
    if result.cancelled:
        return Outcome(
            AttemptOutcome.CANCELLED,
            error=ErrorInfo("cancelled", "cancelled by a user"),
            exit_code=code,
        )
    if result.timed_out:
        return _failed(
            "timeout",
            f"the attempt exceeded timeout_seconds={timeout_s}",
            AttemptOutcome.TIMED_OUT,
            code,
        )
    if result.oom_killed:
        return _failed("out_of_memory", "the container ran out of memory and was killed", code=code)
    if collector.frame_error == "result_too_large":
        return _failed(
            "result_too_large", f"the result exceeds {MAX_RESULT_BYTES} bytes", code=code
        )
    frame = collector.frame
    if isinstance(frame, dict) and frame.get("ok") is True:
        return _success(redactor.value(frame.get("result")), code)
    if isinstance(frame, dict) and isinstance(frame.get("error"), dict):
        err = frame["error"]
        # type and message are the handler's own text: either may quote a secret
        message = error_message(str(err.get("message", "")), redactor)
        return _failed(redactor(str(err.get("type", "handler_error"))), message, code=code)
    return _failed(
        "no_result", f"the container exited with code {code} without reporting a result", code=code
    )


def error_message(raw: str, redactor: Redactor) -> str:
    """Redacted first, then cut, so no part of a secret survives the cut. A shim cuts at
    65,536 characters, so a long message may end in part of a secret: its tail goes (masking
    shrinks text by 3/8 at most, so what is dropped lies past the cut anyway)."""
    if len(raw) > 8 * MAX_MESSAGE_CHARS:
        raw = raw[: max(0, len(raw) - redactor.longest)]
    text = redactor(raw)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - len(CUT_MARKER)] + CUT_MARKER
    return text


def _success(result: Any, code: int | None) -> Outcome:
    if len(msgspec.json.encode(result)) > MAX_RESULT_BYTES:
        return _failed(
            "result_too_large", f"the result exceeds {MAX_RESULT_BYTES} bytes", code=code
        )
    return Outcome(AttemptOutcome.SUCCEEDED, result=result, exit_code=code)


def _failed(
    type_: str,
    message: str,
    kind: AttemptOutcome = AttemptOutcome.FAILED,
    code: int | None = None,
) -> Outcome:
    return Outcome(kind, error=ErrorInfo(type_, message), exit_code=code)


def lost_outcome(message: str) -> Outcome:
    return Outcome(AttemptOutcome.WORKER_LOST, error=ErrorInfo("worker_lost", message))
