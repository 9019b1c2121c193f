"""Shutdown that always ends: each step of Platform.stop gets a time bound, and a step that
overruns is logged with what every task was waiting on, then cancelled, so SIGTERM ends the
process (and a test's platform stops) even when one part hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from ava_platform.log import get_logger

log = get_logger("ava.platform")
STEP_LIMIT_S = 60.0  # above the longest bounded wait of any step (the executor's 30 s)


async def bounded(step: str, work: Awaitable[None], limit_s: float = STEP_LIMIT_S) -> bool:
    """Runs one shutdown step; False when it overran `limit_s` (it is then cancelled)."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=limit_s)
    except asyncio.CancelledError:  # the stop itself is cancelled: so is its step
        task.cancel()
        raise
    if done:
        task.result()
        return True
    log.error("stop_step_overran", step=step, limit_s=limit_s, waiting=waiting_tasks())
    task.cancel()
    return False


def waiting_tasks() -> list[str]:
    """Each pending task as its name and the innermost frames it is suspended in."""
    out = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task() or task.done():
            continue
        frames = task.get_stack(limit=4)
        where = " <- ".join(
            f"{f.f_code.co_name} ({f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno})"
            for f in reversed(frames)
        )
        out.append(f"{task.get_name()}: {where}")
    return out
