"""A container's hijacked attach socket, read and written on the event loop itself.

The engine multiplexes stdout and stderr on one stream in frames: an 8-byte header (stream
id, three zero bytes, a big-endian 32-bit length) and the payload. Reading it with a thread
per attempt cost a thread hop per frame and a thread competing with the loop for the GIL
under floods of output; here the socket is non-blocking, read with `loop.sock_recv`, and the
frames are taken apart as the bytes come.

Output is paced: the sink is handed at most SLICE_BYTES at a time and the loop gets a turn
(its I/O polled, other tasks run) between slices, so one job printing a million lines cannot
hold it for more than one slice's work. While a slice is being handled nothing more is read,
so a job writing faster than the platform consumes is held back by the engine's buffers,
never buffered without bound here.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from ava_platform.executor.base import OutputSink

HEADER_BYTES = 8
READ_BYTES = 64 * 1024
# one turn's work: about 2,000 one-character lines split, redacted and queued (a few ms)
SLICE_BYTES = 4 * 1024
_STREAMS = {1: "stdout", 2: "stderr"}


def raw_socket(sock: Any) -> socket.socket:
    """The socket beneath the SDK's wrapper (a SocketIO on a unix socket)."""
    raw = getattr(sock, "_sock", sock)
    assert isinstance(raw, socket.socket)
    return raw


async def send_stdin(sock: Any, data: bytes) -> None:
    """The envelope, then a half-close: the engine closes the container's stdin, so the shim
    sees EOF after its one line."""
    raw = raw_socket(sock)
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(raw, data if data.endswith(b"\n") else data + b"\n")
    raw.shutdown(socket.SHUT_WR)


class FrameReader:
    """Splits the engine's multiplexed stream into (stream, bytes) pieces of at most
    SLICE_BYTES; a frame's payload is passed on as it arrives, not held until complete."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._stream = "stdout"
        self._left = 0  # payload bytes of the current frame still to come

    def push(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> tuple[str, bytes] | None:
        while True:
            if self._left == 0:
                if len(self._buf) < HEADER_BYTES:
                    return None
                self._stream = _STREAMS.get(self._buf[0], "stdout")
                self._left = int.from_bytes(self._buf[4:8], "big")
                del self._buf[:HEADER_BYTES]
                continue
            take = min(self._left, len(self._buf), SLICE_BYTES)
            if take == 0:
                return None
            piece = bytes(self._buf[:take])
            del self._buf[:take]
            self._left -= take
            return self._stream, piece


async def pump(sock: Any, on_output: OutputSink) -> None:
    """Reads until the engine ends the stream (the container exited or was removed), handing
    each piece to `on_output`; closes the socket when done, or when cancelled."""
    raw = raw_socket(sock)
    reader = _Pump(raw, on_output)
    try:
        raw.setblocking(False)
        await reader.run()
    finally:
        reader.stop()
        for part in (sock, raw):  # the SDK's wrapper does not close the socket beneath it
            with contextlib.suppress(OSError):
                part.close()


class _Pump:
    """The socket stays registered with the loop while output trickles in (one read, one
    piece per wake-up, nothing registered anew per read); a read that holds more than one
    piece unregisters it while the rest is handed on, one piece per loop turn."""

    def __init__(self, raw: socket.socket, on_output: OutputSink) -> None:
        self._raw = raw
        self._fd = raw.fileno()
        self._on_output = on_output
        self._frames = FrameReader()
        self._loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[None] = self._loop.create_future()
        self._done = False

    async def run(self) -> None:
        self._loop.add_reader(self._fd, self._readable)
        await self._ended

    def stop(self, exc: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        self._loop.remove_reader(self._fd)
        if not self._ended.done():
            if exc is None:
                self._ended.set_result(None)
            else:
                self._ended.set_exception(exc)

    def _readable(self) -> None:
        try:
            data = self._raw.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # the container went away; what was read is kept
        if not data:
            self.stop()
            return
        self._frames.push(data)
        piece = self._frames.next()
        if piece is not None and self._give(piece):
            following = self._frames.next()
            if following is not None:
                self._loop.remove_reader(self._fd)
                self._loop.call_soon(self._hand_on, following)

    def _hand_on(self, piece: tuple[str, bytes]) -> None:
        if self._done or not self._give(piece):
            return
        following = self._frames.next()
        if following is None:
            self._loop.add_reader(self._fd, self._readable)
        else:
            self._loop.call_soon(self._hand_on, following)

    def _give(self, piece: tuple[str, bytes]) -> bool:
        try:
            self._on_output(*piece)
        except Exception as exc:  # a bug in the sink: the attempt sees it, the loop does not
            self.stop(exc)
            return False
        return True
