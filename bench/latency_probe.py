"""A sequential GET client in a process of its own, for bench/api.py's latency under load: one
request, 5 ms of think time, the next, until its stdin closes; then it prints the latencies
(ms) as a JSON list. Its own process, so its timings are not bent by the bench's SSE follower
threads sharing its interpreter.

HTTP/1.1 on one kept-alive socket, written out by hand: on two cores the probe competes with
what it measures, and httpx spent about a tenth of a core on it (8% of the machine in top),
this about a tenth of that.

Run by bench/api.py: python bench/latency_probe.py URL PATH '{"header": "value"}'"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

THINK_S = 0.005
MAX_SAMPLES = 100_000


def request_bytes(host: str, path: str, hdrs: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"host: {host}", *(f"{k}: {v}" for k, v in hdrs.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(sock: socket.socket, buf: bytearray) -> int:
    """Reads one response (Content-Length framed, as the routes probed answer) off `sock`;
    returns its status. What follows it stays in `buf`."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        buf += _recv(sock)
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = next(
        int(line.split(":", 1)[1])
        for line in head[1:]
        if line.lower().startswith("content-length:")
    )
    while len(buf) < end + 4 + length:
        buf += _recv(sock)
    del buf[: end + 4 + length]
    return status


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise SystemExit("latency probe: the server closed the connection")
    return data


def main() -> None:
    url, path = urlsplit(sys.argv[1]), sys.argv[2]
    hdrs = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    request = request_bytes(url.netloc, path, hdrs)
    times_ms: list[float] = []
    buf = bytearray()
    with socket.create_connection((url.hostname, url.port or 80), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not stop.is_set() and len(times_ms) < MAX_SAMPLES:
            started = time.perf_counter()
            sock.sendall(request)
            status = read_response(sock, buf)
            times_ms.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise SystemExit(f"latency probe: {path} answered {status}")
            time.sleep(THINK_S)
    print(json.dumps(times_ms))


if __name__ == "__main__":
    main()
