"""A shutdown step that hangs is cut off at its bound, named in the log with what each task
waits on; one that ends or fails does so as before."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog.testing

from ava_platform.stopping import bounded


async def test_a_step_that_ends_is_awaited_whole() -> None:
    done: list[str] = []

    async def step() -> None:
        await asyncio.sleep(0.05)
        done.append("yes")

    assert await bounded("quick", step(), limit_s=5) is True
    assert done == ["yes"]


async def test_a_step_that_hangs_is_cut_off_and_named_with_what_it_waits_on() -> None:
    never = asyncio.Event()

    async def stuck_on_the_event() -> None:
        await never.wait()

    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        assert await bounded("scheduler", stuck_on_the_event(), limit_s=0.2) is False
    assert time.monotonic() - started < 2
    (entry,) = [e for e in logs if e["event"] == "stop_step_overran"]
    assert entry["step"] == "scheduler"
    assert any("stuck_on_the_event" in line for line in entry["waiting"])


async def test_a_step_that_fails_raises_its_own_error() -> None:
    async def broken() -> None:
        raise RuntimeError("engine gone")

    with pytest.raises(RuntimeError, match="engine gone"):
        await bounded("executor", broken(), limit_s=5)
