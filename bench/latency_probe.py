"""A sequential GET client in a process of its own, for bench/api.py's latency under load: one
request, 5 ms of think time, the next, until its stdin closes; then it prints the latencies
(ms) as a JSON list. Its own process, so its timings are not bent by the bench's SSE follower
threads sharing its interpreter.

Run by bench/api.py: python bench/latency_probe.py URL PATH '{"header": "value"}'"""

from __future__ import annotations

import json
import sys
import threading
import time

import httpx

THINK_S = 0.005
MAX_SAMPLES = 100_000


def main() -> None:
    url, path = sys.argv[1], sys.argv[2]
    hdrs = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    times_ms: list[float] = []
    with httpx.Client(base_url=url, headers=hdrs, timeout=30) as client:
        while not stop.is_set() and len(times_ms) < MAX_SAMPLES:
            started = time.perf_counter()
            client.get(path).raise_for_status()
            times_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(THINK_S)
    print(json.dumps(times_ms))


if __name__ == "__main__":
    main()
