"""A Server-Sent Events parser for the job log stream: `log` events become LogEntry values,
the closing `end` event a LogEnd."""

from __future__ import annotations

import msgspec

from ava_platform.client.calls import LogEnd, LogEntry

Event = LogEntry | LogEnd


class SseParser:
    """Feed it lines (without their line ending); it returns an event at each blank line."""

    def __init__(self) -> None:
        self.last_id = 0
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
        elif name == "id":
            self._id = value
        return None

    def _dispatch(self) -> Event | None:
        event, data, id_ = self._event, "\n".join(self._data), self._id
        self._event, self._data, self._id = "message", [], None
        if id_ is not None and id_.isdigit():
            self.last_id = int(id_)
        if event == "log" and data:
            return msgspec.json.decode(data, type=LogEntry)
        if event == "end":
            return msgspec.json.decode(data or "{}", type=LogEnd)
        return None
