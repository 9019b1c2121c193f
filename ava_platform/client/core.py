"""The clients' loops, written once and free of I/O: the sync and async clients only carry
out what these objects ask for (make this call, sleep this long) and hand back what came.

    Poll         a wait loop: the call to repeat, then for each answer and the time it came,
                 Done(value) or Sleep(seconds); WaitTimeout once the deadline has passed.
    LogFollow    following a job's log over SSE: the call to make (with Last-Event-ID after a
                 cut), the events in each chunk of the body, and after a cut stream the pause
                 before reconnecting (AvaConnectionError once retries are used up).

Time comes in as an argument (`now`, monotonic seconds), so the arithmetic is tested without
clocks or sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ava_platform.client import calls
from ava_platform.client.calls import Call, LogEnd
from ava_platform.client.errors import AvaApiError, AvaConnectionError, WaitTimeout, error_for
from ava_platform.client.sse import Event, SseLines, SseParser
from ava_platform.models import Job, VersionInfo

T = TypeVar("T")
FINISHED = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
FIRST_POLL_S = 0.2
MAX_POLL_S = 1.0
POLL_GROWTH = 1.5
MAX_STREAM_RETRIES = 5
RECONNECT_BASE_S = 0.2


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


def poll_delay(previous_s: float) -> float:
    return min(MAX_POLL_S, previous_s * POLL_GROWTH)


def cannot_reach(url: str, reason: BaseException | str) -> AvaConnectionError:
    text = reason if isinstance(reason, str) else str(reason) or type(reason).__name__
    return AvaConnectionError(f"cannot reach the AVA server at {url}: {text}")


class Poll(Generic[T]):
    """Repeat `call` until `finished(answer)`. Pauses start at `poll_s` and grow to 1 s; with
    a timeout no pause runs past the deadline, and the answer fetched at the deadline is the
    last chance before WaitTimeout (which carries that answer)."""

    def __init__(
        self,
        call: Call[T],
        finished: Callable[[T], bool],
        *,
        now: float,
        timeout_s: float | None,
        poll_s: float = FIRST_POLL_S,
        describe: Callable[[T], str],
    ) -> None:
        self.call = call
        self._finished = finished
        self._describe = describe
        self._timeout_s = timeout_s
        self.deadline = None if timeout_s is None else now + timeout_s
        self._delay = poll_s

    def answer(self, value: T, now: float) -> Done[T] | Sleep:
        if self._finished(value):
            return Done(value)
        if self.deadline is not None and now >= self.deadline:
            raise WaitTimeout(f"{self._describe(value)} after {self._timeout_s}s", value)
        pause = self._delay if self.deadline is None else min(self._delay, self.deadline - now)
        self._delay = poll_delay(self._delay)
        return Sleep(pause)


def job_wait(job_id: str, *, now: float, timeout_s: float | None, poll_s: float) -> Poll[Job]:
    return Poll(
        calls.get_job(job_id),
        lambda job: job.status.value in FINISHED,
        now=now,
        timeout_s=timeout_s,
        poll_s=poll_s,
        describe=lambda job: f"job {job_id} still {job.status.value}",
    )


def version_wait(
    worker_id: str, version: int, *, now: float, timeout_s: float | None
) -> Poll[VersionInfo]:
    return Poll(
        calls.get_version(worker_id, version),
        lambda info: info.status.value != "building",
        now=now,
        timeout_s=timeout_s,
        describe=lambda _info: f"version {version} still building",
    )


class LogFollow:
    """One followed log. The driver loops: make `request()`; if the answer is an error, raise
    `rejected(status, body)`; else `feed` each body chunk and pass on the events it returns,
    until `done`; when the stream breaks (`error`) or closes before the end, sleep `cut(...)`
    and start again. Events already seen are not repeated: the next request resumes after
    the last event id."""

    def __init__(
        self,
        job_id: str,
        url: str,
        *,
        max_retries: int = MAX_STREAM_RETRIES,
        base_delay_s: float = RECONNECT_BASE_S,
    ) -> None:
        self.job_id = job_id
        self.url = url
        self.max_retries = max_retries
        self.base_delay_s = base_delay_s
        self.parser = SseParser()
        self.failures = 0
        self.done = False
        self._lines = SseLines()

    def request(self) -> Call[None]:
        """The next request; a half-received line or event of a cut stream is dropped."""
        self._lines = SseLines()
        self.parser.reset()
        return calls.follow_logs(self.job_id, self.parser.last_id)

    def rejected(self, status: int, body: bytes) -> AvaApiError:
        return error_for(status, body)

    def feed(self, chunk: bytes) -> list[Event]:
        events: list[Event] = []
        for line in self._lines.feed(chunk):
            event = self.parser.feed(line)
            if event is None:
                continue
            self.failures = 0  # the stream works: retries count again from zero
            events.append(event)
            if isinstance(event, LogEnd):
                self.done = True
                break
        return events

    def cut(self, error: BaseException | None = None) -> Sleep:
        """The stream broke (`error`) or closed before the `end` event: how long to wait before
        the next request, or AvaConnectionError when it failed too often in a row."""
        self.failures += 1
        if self.failures > self.max_retries:
            if error is not None:
                raise cannot_reach(self.url, error) from error
            raise AvaConnectionError(f"the log stream of {self.job_id} kept closing early")
        base = self.base_delay_s if self.parser.retry_ms is None else self.parser.retry_ms / 1000
        return Sleep(base * self.failures)
