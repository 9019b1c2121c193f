"""The engine's HTTP API called from the event loop, for the calls on every job's path: create,
attach, start, wait, kill, inspect, remove. aiohttp on the engine's socket (its C parser, its
kept-alive connections); an attach is a plain socket hijacked here, read by executor/attach.py.

Why not the docker SDK on a thread, as before: each call cost about 3 ms of CPU on this
machine (requests and urllib3 building and parsing every exchange), 40 jobs made some 250 of
them, and each of those threads took the GIL from the loop serving the API. Through aiohttp
a call costs about 1 ms, on the loop, with no thread. The engine's rarer calls (images,
networks, listing, swarm services) stay on the SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from ava_platform.errors import ExecutorError
from ava_platform.executor.engine import API_VERSION

DEFAULT_SOCKET = "/var/run/docker.sock"
CALL_TIMEOUT_S = 60.0  # as the SDK's default: an engine that hangs fails the call, not the job
HEAD_BYTES = 64 * 1024


class EngineRefused(Exception):
    """The engine answered a call with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class EngineNotFound(EngineRefused):
    """404: no such container (or image)."""


def refused(status: int, body: bytes) -> EngineRefused:
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace").strip()
    kind = EngineNotFound if status == 404 else EngineRefused
    return kind(status, message or f"status {status}")


class Endpoint:
    """Where the engine listens: a unix socket (the default, or unix://) or plain TCP
    (tcp:// or http://). TLS and ssh engines are reached through the SDK only."""

    def __init__(self, base_url: str | None) -> None:
        url = base_url or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
        parts = urlsplit(url)
        self.unix_path: str | None = None
        self.address: tuple[str, int] | None = None
        if parts.scheme in ("unix", "http+unix") or (not parts.scheme and url.startswith("/")):
            self.unix_path = parts.path or url
        elif parts.scheme in ("tcp", "http") and parts.hostname:
            self.address = (parts.hostname, parts.port or 2375)
        else:
            raise ExecutorError(f"the engine at {url} is reached over unix:// or plain tcp:// only")

    def connector(self) -> aiohttp.BaseConnector:
        # no limit on connections: every running container holds one open for its exit
        if self.unix_path is not None:
            return aiohttp.UnixConnector(path=self.unix_path, limit=0)
        return aiohttp.TCPConnector(limit=0)

    @property
    def origin(self) -> str:
        if self.address is None:
            return "http://docker"
        return f"http://{self.address[0]}:{self.address[1]}"

    async def open_socket(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = self.unix_path
        else:
            assert self.address is not None
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = self.address
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, target)
        except BaseException:
            sock.close()
            raise
        return sock


class EngineAPI:
    """One session on one loop; a caller on another loop (a test's next one) gets its own."""

    def __init__(self, base_url: str | None) -> None:
        self._base_url = base_url
        self._reached: Endpoint | None = None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def _endpoint(self) -> Endpoint:
        # parsed at the first call: an address it cannot reach fails each job with its
        # reason, and the platform still starts (its /readyz tells the engine is missing)
        if self._reached is None:
            self._reached = Endpoint(self._base_url)
        return self._reached

    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=self._endpoint.connector(),
                json_serialize=json.dumps,
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S),
            )
            self._loop = loop
        return self._session

    def _url(self, path: str) -> str:
        return f"{self._endpoint.origin}/v{API_VERSION}{path}"

    async def call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> Any:
        """The decoded JSON answer (None when there is none); EngineRefused on an error."""
        async with self._http().request(method, self._url(path), params=params, json=body) as res:
            data = await res.read()
            if res.status >= 400:
                raise refused(res.status, data)
            return json.loads(data) if data else None

    async def wait(self, container_id: str) -> aiohttp.ClientResponse:
        """A wait for the container's next exit, registered with the engine when this returns:
        the engine answers its headers at once and its body (the exit status) at the exit."""
        res = await self._http().post(
            self._url(f"/containers/{container_id}/wait"),
            params={"condition": "next-exit"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CALL_TIMEOUT_S),
        )
        if res.status >= 400:
            data = await res.read()
            res.close()
            raise refused(res.status, data)
        return res

    async def hijack(self, path: str, params: dict[str, str]) -> socket.socket:
        """The connection of an upgraded call, as a plain non-blocking socket: from here it
        carries the call's raw stream both ways."""
        sock = await self._endpoint.open_socket()
        try:
            head = (
                f"POST /v{API_VERSION}{path}?{urlencode(params)} HTTP/1.1\r\n"
                "Host: docker\r\nContent-Length: 0\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
            )
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_sendall(sock, head.encode("latin-1")), CALL_TIMEOUT_S)
            status, rest = await asyncio.wait_for(_read_head(sock), CALL_TIMEOUT_S)
            if status not in (101, 200):
                raise refused(status, rest)
            return sock
        except BaseException:
            sock.close()
            raise

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            with contextlib.suppress(Exception):
                await self._session.close()
        self._session = None


async def _read_head(sock: socket.socket) -> tuple[int, bytes]:
    """The status of an upgrade's answer, its headers taken off the socket and not a byte
    more (what follows is the stream's); for an error, what came of its body."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            seen = sock.recv(HEAD_BYTES, socket.MSG_PEEK)
        except BlockingIOError:
            seen = None
        if seen == b"":
            raise ConnectionError("the engine closed the connection")
        end = seen.find(b"\r\n\r\n") if seen else -1
        if seen is not None and end >= 0:
            head = sock.recv(end + 4)
            status = int(head.split(b" ", 2)[1])
            if status in (101, 200):
                return status, b""
            body = b""
            with contextlib.suppress(BlockingIOError, OSError):
                body = sock.recv(HEAD_BYTES)
            return status, body
        if seen:
            await asyncio.sleep(0.001)  # a head cut in two: its rest is on the way
            continue
        await _readable(loop, sock)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())
