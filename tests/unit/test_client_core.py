"""The clients' sans-IO core (`client.core`, `client.sse`) tested directly: wait-loop timing
from given times, the log follower's reconnect policy and Last-Event-ID from given chunks;
then both clients driving it over real HTTP against a server that cuts the stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from ava_platform.client import AsyncAvaClient, AvaClient, AvaConnectionError, LogEnd, LogEntry
from ava_platform.client import errors as e
from ava_platform.client.core import Done, LogFollow, Sleep, job_wait, version_wait
from ava_platform.client.sse import SseLines, SseParser
from ava_platform.models import Job, JobStatus, VersionInfo, VersionStatus
from tests.support import SECRET, app_server
from tests.unit.test_client import identity

T0 = 1000.0


@dataclass(frozen=True)
class Seen:
    """A job or version as an answer: the loops read only its status."""

    status: JobStatus | VersionStatus


def job(status: str) -> Job:
    return cast(Job, Seen(JobStatus(status)))


def version(status: str) -> VersionInfo:
    return cast(VersionInfo, Seen(VersionStatus(status)))


def log_event(seq: int, line: str) -> bytes:
    data = json.dumps({"ts": "t", "stream": "stdout", "attempt": 1, "line": line})
    return f"id: {seq}\r\nevent: log\r\ndata: {data}\r\n\r\n".encode()


END = b'event: end\r\ndata: {"status": "succeeded"}\r\n\r\n'


# -- wait loops ---------------------------------------------------------------------------------


def test_job_wait_backs_off_and_stops_at_the_deadline() -> None:
    wait = job_wait("job_1", now=T0, timeout_s=1.0, poll_s=0.2)
    assert wait.call.path == "/v1/ava/jobs/job_1"
    assert wait.deadline == T0 + 1.0
    running = job("running")
    assert wait.answer(running, T0) == Sleep(0.2)
    assert wait.answer(running, T0 + 0.2) == Sleep(pytest.approx(0.3))
    assert wait.answer(running, T0 + 0.5) == Sleep(pytest.approx(0.45))
    # the next pause (0.675 s) would run past the deadline: it is cut to the time left
    assert wait.answer(running, T0 + 0.95) == Sleep(pytest.approx(0.05))
    with pytest.raises(e.WaitTimeout, match=r"job job_1 still running after 1.0s") as info:
        wait.answer(running, T0 + 1.0)  # the answer at the deadline was the last chance
    assert info.value.job is running


def test_job_wait_returns_the_finished_job_even_at_the_deadline() -> None:
    wait = job_wait("job_1", now=T0, timeout_s=1.0, poll_s=0.2)
    done = job("failed")
    assert wait.answer(done, T0 + 5.0) == Done(done)


def test_job_wait_without_timeout_grows_its_pause_to_one_second() -> None:
    wait = job_wait("job_1", now=T0, timeout_s=None, poll_s=0.2)
    pauses = [cast(Sleep, wait.answer(job("queued"), T0 + i * 100)).seconds for i in range(7)]
    assert pauses == pytest.approx([0.2, 0.3, 0.45, 0.675, 1.0, 1.0, 1.0])


def test_version_wait_ends_when_the_build_does() -> None:
    wait = version_wait("wkr_1", 3, now=T0, timeout_s=10)
    assert wait.call.path == "/v1/ava/workers/wkr_1/versions/3"
    building, ready = version("building"), version("ready")
    assert wait.answer(building, T0 + 1) == Sleep(0.2)
    assert wait.answer(ready, T0 + 2) == Done(ready)
    with pytest.raises(e.WaitTimeout, match="version 3 still building after 10s"):
        version_wait("wkr_1", 3, now=T0, timeout_s=10).answer(building, T0 + 10)


# -- the SSE decoder ----------------------------------------------------------------------------


def test_sse_lines_split_on_cr_lf_and_crlf_only_across_chunks() -> None:
    lines = SseLines()
    assert lines.feed(b"\xef\xbb\xbfdata: a\r") == []  # BOM dropped; CR may start a CRLF
    assert lines.feed("\ndata: b\u2028c\x85d".encode()) == ["data: a"]
    assert lines.feed(b"\rdata: \xc3") == ["data: b\u2028c\x85d"]  # not split at U+2028/NEL
    assert lines.feed(b"\xa9\n\n") == ["data: \u00e9", ""]  # a UTF-8 char cut across chunks


def test_sse_parser_keeps_the_last_id_and_reads_retry() -> None:
    parser = SseParser()
    for line in ["retry: 1500", "id: 4", "event: log", 'data: {"ts":"t","stream":"s",']:
        assert parser.feed(line) is None
    assert parser.feed('data: "attempt":1,"line":"x"}') is None
    # two data lines join with "\n" into one JSON text
    assert parser.feed("") == LogEntry("t", "s", 1, "x")
    assert parser.last_id == 4 and parser.retry_ms == 1500
    assert parser.feed("id: bad\0id") is None  # an id with NUL is ignored
    assert parser.feed("event: end") is None
    assert parser.feed("") == LogEnd(None)
    assert parser.last_id == 4  # kept across events without an id


# -- following a log ----------------------------------------------------------------------------


def test_follow_resumes_after_a_cut_stream_with_last_event_id() -> None:
    follow = LogFollow("job_1", "http://ava.test")
    first = follow.request()
    assert first.params == {"follow": "true"}
    assert first.headers == {"accept": "text/event-stream"}  # nothing seen yet: no id
    stream = log_event(1, "one") + log_event(2, "two") + log_event(3, "thr")
    assert follow.feed(stream[:20]) == []
    assert follow.feed(stream[20:-30]) == [
        LogEntry("t", "stdout", 1, "one"),
        LogEntry("t", "stdout", 1, "two"),
    ]
    assert follow.cut(OSError("connection reset")) == Sleep(0.2)  # event 3 half received
    again = follow.request()
    assert again.headers["last-event-id"] == "2"
    assert again.path == first.path
    # the half event of the cut stream is dropped, not glued to the new stream's first one
    assert follow.feed(log_event(3, "three") + END) == [
        LogEntry("t", "stdout", 1, "three"),
        LogEnd("succeeded"),
    ]
    assert follow.done


def test_follow_ends_at_the_end_event() -> None:
    follow = LogFollow("job_1", "http://ava.test")
    follow.request()
    events = follow.feed(log_event(1, "only") + END + log_event(2, "after the end"))
    assert events == [LogEntry("t", "stdout", 1, "only"), LogEnd("succeeded")]
    assert follow.done


def test_follow_gives_up_after_repeated_cuts_and_events_reset_the_count() -> None:
    follow = LogFollow("job_1", "http://ava.test", max_retries=3, base_delay_s=0.5)
    follow.request()
    assert [follow.cut().seconds for _ in range(3)] == [0.5, 1.0, 1.5]  # closed early each time
    follow.request()
    follow.feed(log_event(1, "progress"))
    assert follow.failures == 0  # a working stream: the count starts over
    assert follow.cut(OSError("reset")) == Sleep(0.5)
    follow.cut()
    follow.cut()
    with pytest.raises(
        AvaConnectionError, match=r"cannot reach the AVA server at http://ava\.test: refused"
    ):
        follow.cut(OSError("refused"))
    closing = LogFollow("job_9", "http://ava.test", max_retries=0)
    with pytest.raises(AvaConnectionError, match="the log stream of job_9 kept closing early"):
        closing.cut()


def test_follow_waits_as_long_as_the_server_asks() -> None:
    follow = LogFollow("job_1", "http://ava.test")
    follow.request()
    follow.feed(b"retry: 50\r\n\r\n")
    assert follow.cut() == Sleep(0.05)


def test_follow_turns_an_error_answer_into_its_exception() -> None:
    body = b'{"error": {"code": "job_not_found", "message": "no job"}}'
    assert isinstance(LogFollow("j", "u").rejected(404, body), e.JobNotFoundError)


# -- both clients drive it over real HTTP -------------------------------------------------------


class CuttingServer:
    """An SSE endpoint that sends events 1-2 and half of 3, then drops the connection, on the
    first request; afterwards it answers from the Last-Event-ID the client sends."""

    def __init__(self) -> None:
        self.last_ids: list[str | None] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": f"{kind}.complete"})
                if kind == "lifespan.shutdown":
                    return
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        headers = dict(scope["headers"])
        assert headers[b"x-internal-secret"] == SECRET.encode()
        last = headers.get(b"last-event-id")
        self.last_ids.append(last.decode() if last else None)
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-type", b"text/event-stream")]})
        if last is None:
            body = log_event(1, "one") + log_event(2, "two") + log_event(3, "three")[:25]
            await send({"type": "http.response.body", "body": body, "more_body": True})
            raise RuntimeError("the connection drops")  # uvicorn closes it mid-body
        rest = b"".join(log_event(n, w) for n, w in ((3, "three"), (4, "four")))
        await send({"type": "http.response.body", "body": rest + END})


@pytest.fixture
def cutting() -> Iterator[tuple[str, CuttingServer]]:
    app = CuttingServer()
    with app_server(app) as url:
        yield url, app


def test_sync_client_reconnects_after_a_cut(cutting: tuple[str, CuttingServer]) -> None:
    url, app = cutting
    with AvaClient(url, identity()) as ava:
        events = list(ava.follow_logs("job_1"))
    assert [ev.line for ev in events if isinstance(ev, LogEntry)] == ["one", "two", "three", "four"]
    assert events[-1] == LogEnd("succeeded")
    assert app.last_ids == [None, "2"]


async def test_async_client_reconnects_after_a_cut(cutting: tuple[str, CuttingServer]) -> None:
    url, app = cutting
    async with AsyncAvaClient(url, identity()) as ava:
        events = [ev async for ev in ava.follow_logs("job_1")]
    assert [ev.line for ev in events if isinstance(ev, LogEntry)] == ["one", "two", "three", "four"]
    assert events[-1] == LogEnd("succeeded")
    assert app.last_ids == [None, "2"]
