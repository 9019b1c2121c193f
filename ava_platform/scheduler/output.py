"""Turns a container's raw output into log lines and the shim's result frame (the format is
in executor/protocol.py). Pure. Lines are split here, before redaction, so a secret split
across two writes is still seen whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ava_platform.clock import utcnow
from ava_platform.executor.protocol import (
    MAX_FRAME_BYTES,
    BadFrame,
    decode_frame,
    end_marker,
    frame_marker,
)
from ava_platform.scheduler.redact import Redactor

MAX_LINE_BYTES = 64 * 1024
TRUNCATION_MARKER = (
    "[ava] log truncated: this job's log reached its {cap}-byte limit; later lines are dropped"
)


class OutputCollector:
    def __init__(
        self,
        nonce: str,
        *,
        budget_bytes: int,
        redactor: Redactor | None = None,
        cap_bytes: int | None = None,
        on_result: Callable[[], None] | None = None,
    ) -> None:
        self._marker = frame_marker(nonce)
        self._end = end_marker(nonce)
        self._budget = budget_bytes
        self._cap = cap_bytes if cap_bytes is not None else budget_bytes
        self._redactor = redactor or Redactor(())
        # told once, when the frame (or its failure) is known and stderr's end marker is read
        self._on_result = on_result
        self.stderr_ended = False
        self._buffers: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._pending: list[tuple[str, str, str]] = []
        self._in_frame = False
        self._frame_buf = bytearray()
        self._frame_overflow = False
        self.frame: Any = None
        self.frame_error: str | None = None
        self.truncated = False
        self.stored_bytes = 0
        self._now = utcnow()

    # -- input ---------------------------------------------------------------------------

    def feed(self, stream: str, data: bytes) -> None:
        # the lines of one piece arrived together: one timestamp for all (formatting a time
        # per line was most of a tiny line's cost)
        self._now = utcnow()
        buf = self._buffers.setdefault(stream, bytearray())
        buf.extend(data)
        if buf.find(b"\n") < 0:
            if len(buf) > MAX_LINE_BYTES:
                self._overlong(stream, buf)
            return
        *lines, rest = bytes(buf).split(b"\n")
        buf[:] = rest
        if self.truncated:
            lines = self._after_cap(stream, lines)
        for line in lines:
            self._line(stream, line)
        if len(buf) > MAX_LINE_BYTES:
            self._overlong(stream, buf)

    def _after_cap(self, stream: str, lines: list[bytes]) -> list[bytes]:
        """Past the log cap no line is stored: only the ones that may carry the frame (or a
        frame still being read) or stderr's end marker are looked at."""
        if stream == "stdout":
            if self._in_frame:
                return lines[:1] + [line for line in lines[1:] if self._marker in line]
            return [line for line in lines if self._marker in line]
        if stream == "stderr" and not self.stderr_ended:
            return [line for line in lines if self._end in line]
        return []

    def close(self) -> None:
        self._now = utcnow()
        for stream, buf in self._buffers.items():
            if buf:
                self._line(stream, bytes(buf))
                buf.clear()

    def drain(self) -> list[tuple[str, str, str]]:
        """(ts, stream, line) stored since the last drain."""
        lines, self._pending = self._pending, []
        return lines

    # -- internals -------------------------------------------------------------------------

    def _line(self, stream: str, line: bytes) -> None:
        if stream == "stdout":
            if self._in_frame:
                self._finish_frame(line)
                return
            idx = line.find(self._marker)
            if idx >= 0 and self.frame is None and self.frame_error is None:
                if idx:
                    self._emit(stream, line[:idx])
                self._finish_frame(line[idx + len(self._marker) :])
                return
        elif stream == "stderr" and not self.stderr_ended:
            idx = line.find(self._end)
            if idx >= 0:
                if idx:
                    self._emit(stream, line[:idx])
                self.stderr_ended = True
                self._notify()
                return
        self._emit(stream, line)

    def _overlong(self, stream: str, buf: bytearray) -> None:
        if stream == "stdout":
            if self._in_frame:
                self._grow_frame(buf)
                return
            idx = buf.find(self._marker)
            if idx >= 0 and self.frame is None:
                if idx:
                    self._emit(stream, bytes(buf[:idx]))
                del buf[: idx + len(self._marker)]
                self._in_frame = True
                self._frame_buf = bytearray()
                self._grow_frame(buf)
                return
            self._cut(stream, buf, max(len(self._marker), self._redactor.longest) - 1)
            return
        self._cut(stream, buf, max(len(self._end), self._redactor.longest) - 1)

    def _cut(self, stream: str, buf: bytearray, keep: int) -> None:
        """Emits an overlong line's head. The tail kept back is long enough that a marker or a
        secret form still being written is seen whole in the next piece, and the cut is moved
        back so that it splits no form already complete in the buffer."""
        keep = max(0, min(keep, len(buf) - 1))
        head = self._redactor.safe_cut(buf, len(buf) - keep)
        if head is None:
            # only a form repeated over the whole line straddles every cut: mask it all at once
            head = len(buf)
        if head == 0:
            return
        self._emit(stream, bytes(buf[:head]))
        del buf[:head]

    def _grow_frame(self, buf: bytearray) -> None:
        if not self._frame_overflow:
            self._frame_buf.extend(buf)
            if len(self._frame_buf) > MAX_FRAME_BYTES:
                self._frame_overflow = True
                self._frame_buf = bytearray()
        buf.clear()

    def _finish_frame(self, tail: bytes) -> None:
        if self._in_frame:
            data = bytes(self._frame_buf) + tail
            overflow = self._frame_overflow or len(data) > MAX_FRAME_BYTES
            self._in_frame = False
            self._frame_buf = bytearray()
        else:
            data, overflow = tail, len(tail) > MAX_FRAME_BYTES
        if overflow:
            self.frame_error = "result_too_large"
        else:
            try:
                self.frame = decode_frame(data)
            except BadFrame:
                self.frame_error = "bad_frame"
        self._notify()

    def _notify(self) -> None:
        known = self.frame is not None or self.frame_error is not None
        if known and self.stderr_ended and self._on_result is not None:
            self._on_result()
            self._on_result = None

    def _emit(self, stream: str, raw: bytes) -> None:
        if self.truncated:
            return
        text = self._redactor(raw.decode("utf-8", errors="replace").rstrip("\r"))
        size = (len(text) if text.isascii() else len(text.encode())) + 1
        if self.stored_bytes + size > self._budget:
            self.truncated = True
            self._pending.append((self._now, "system", TRUNCATION_MARKER.format(cap=self._cap)))
            return
        self.stored_bytes += size
        self._pending.append((self._now, stream, text))
