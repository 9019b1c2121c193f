"""The prewarmed pool's sizing, with a clock of the test's own: it grows with demand, stays
under its caps, gives way to the shapes asked for now, and never hands out a container near
its TTL."""

from __future__ import annotations

from ava_platform.config import PoolSettings
from ava_platform.executor.warm import DEMAND_WINDOW_S, HANDOUT_MARGIN_S, Idle, Shape, WarmPool

PY = Shape("ava/runtime-python:0.1.0", 256, 1.0, False)
JS = Shape("ava/runtime-nodejs:0.1.0", 256, 1.0, False)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def pool(**kw: object) -> tuple[WarmPool, Clock]:
    clock = Clock()
    return WarmPool(PoolSettings(**kw), now=clock), clock  # type: ignore[arg-type]


def fill(p: WarmPool, clock: Clock) -> int:
    """Prewarm what the pool wants until it wants nothing; how many it made."""
    made = 0
    while (shape := p.wanted()) is not None and made < 100:
        p.put(Idle(f"c{made}", shape, clock.t))
        made += 1
    return made


def test_no_demand_no_containers_and_the_first_job_goes_cold() -> None:
    p, clock = pool()
    assert p.wanted() is None
    assert p.take(PY) is None and (p.hits, p.misses) == (0, 1)
    assert fill(p, clock) == 1  # one asked for: one prewarmed


def test_the_pool_grows_with_demand_up_to_its_maximum() -> None:
    p, clock = pool(max_per_shape=3)
    for _ in range(10):
        p.take(PY)
        clock.t += 0.3
    assert p.target(PY) == 3
    assert fill(p, clock) == 3
    assert p.take(PY) is not None and p.hits == 1


def test_global_caps_on_count_and_memory() -> None:
    p, clock = pool(max_per_shape=4, max_idle=5, max_idle_memory_mb=1024)
    for _ in range(5):
        p.take(PY)
        p.take(JS)
    assert fill(p, clock) == 4  # 4 x 256 MB: the memory cap binds before the count cap


def test_a_shape_no_longer_asked_for_gives_way() -> None:
    p, clock = pool(max_per_shape=4, max_idle_memory_mb=1024, idle_ttl_s=60)
    for _ in range(5):
        p.take(PY)
    fill(p, clock)
    clock.t += DEMAND_WINDOW_S + 1
    for _ in range(5):
        p.take(JS)
    assert p.wanted() is None  # full of python
    surplus = p.surplus()
    assert len(surplus) == 3 and all(i.shape == PY for i in surplus)  # python keeps one
    assert p.wanted() == JS


def test_idle_containers_past_their_demand_wait_out_the_ttl_while_nothing_needs_the_room() -> None:
    p, clock = pool(max_per_shape=4, idle_ttl_s=60)
    for _ in range(4):
        p.take(PY)
    fill(p, clock)
    clock.t += DEMAND_WINDOW_S + 1
    assert p.target(PY) == 1
    assert p.surplus() == []  # a burst coming back finds all four
    assert [p.take(PY) is not None for _ in range(5)] == [True] * 4 + [False]


def test_a_container_near_its_ttl_is_never_handed_out_and_expires() -> None:
    p, clock = pool(idle_ttl_s=20)
    p.take(PY)
    fill(p, clock)
    clock.t += 20 - HANDOUT_MARGIN_S
    assert p.take(PY) is None
    assert [i.container_id for i in p.expired()] == ["c0"]


def test_the_oldest_usable_container_goes_first_the_newest_may_still_be_starting() -> None:
    p, clock = pool(idle_ttl_s=20)
    for name, age in (("near_ttl", 18.0), ("older", 9.0), ("newer", 4.0), ("newest", 0.0)):
        p.put(Idle(name, PY, clock.t - age))
    assert [p.take(PY).container_id for _ in range(3)] == ["older", "newer", "newest"]  # type: ignore[union-attr]
    assert p.take(PY) is None
    assert [i.container_id for i in p.expired()] == ["near_ttl"]


def test_idle_shrinks_to_the_minimum_when_demand_stops() -> None:
    p, clock = pool(min_per_shape=1, idle_ttl_s=30)
    for _ in range(4):
        p.take(PY)
    assert p.target(PY) == 4
    clock.t += 31
    assert p.target(PY) == 1  # no demand within the TTL: the minimum


def test_a_disabled_pool_wants_nothing() -> None:
    p, clock = pool(enabled=False)
    p.take(PY)
    assert p.wanted() is None and fill(p, clock) == 0
