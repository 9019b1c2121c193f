"""Server-Sent Events for the job log stream, without I/O: `SseLines` turns the body's bytes
into lines, `SseParser` turns lines into events (`log` events become LogEntry values, the
closing `end` event a LogEnd).

Lines end at CRLF, LF or CR only, as the SSE spec says: not at the other line breaks Python's
`str.splitlines` (and so httpx's `iter_lines`) also splits on, such as U+2028 or U+0085, which
a log line may hold.
"""

from __future__ import annotations

import codecs

import msgspec

from ava_platform.client.calls import LogEnd, LogEntry

Event = LogEntry | LogEnd


class SseLines:
    """Feed it the body's chunks as they arrive; it returns the complete lines (without their
    line ending). The stream is UTF-8, a leading BOM is dropped."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._started = False

    def feed(self, chunk: bytes) -> list[str]:
        text = self._partial + self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        # a CR at the end may be the first half of a CRLF: keep it for the next chunk
        cut = len(text) - 1 if text.endswith("\r") else len(text)
        body, self._partial = text[:cut], text[cut:]
        lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._partial = lines.pop() + self._partial
        return lines


class SseParser:
    """Feed it lines (without their line ending); it returns an event at each blank line.

    `last_id` is the id of the last event that carried one (kept across events, as the spec
    says); `retry_ms` the reconnection time the server asked for, if it did."""

    def __init__(self) -> None:
        self.last_id = 0
        self.retry_ms: int | None = None
        self.reset()

    def reset(self) -> None:
        """Drops a half-received event (its stream broke off); `last_id` stays."""
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Event | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        event, data, id_ = self._event, "\n".join(self._data), self._id
        self.reset()
        if id_ is not None and id_.isdigit():
            self.last_id = int(id_)
        if event == "log" and data:
            return msgspec.json.decode(data, type=LogEntry)
        if event == "end":
            return msgspec.json.decode(data or "{}", type=LogEnd)
        return None
