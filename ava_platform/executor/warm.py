"""The prewarmed-container pool's bookkeeping and sizing. Pure: no engine calls, so the sizing
is unit-tested with a clock of the test's own.

A prewarmed container is created with the same hardening as a cold one and started; its shim
blocks reading stdin. It holds no input, config or secret until an attempt takes it, and is
used by that attempt only: nothing ever returns to the pool. Pools are per shape (image,
memory, cpus, network, isolation), sized by recent demand (in the spirit of OpenWhisk's reactive
prewarming): a shape that was asked for in the last DEMAND_WINDOW_S wants as many containers
as it was asked for there (at least one while asked for within the idle TTL), between the
per-shape minimum and maximum, and all shapes together stay under a cap on idle containers
and on their memory. A container that no attempt takes ends itself after the idle TTL; one
is removed before it only when the caps must make room for a shape asked for now.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ava_platform.config import PoolSettings

DEMAND_WINDOW_S = 10.0
# a container this close to its TTL is not handed out: its shim may exit under the job
HANDOUT_MARGIN_S = 3.0


class Shape(NamedTuple):
    image: str
    memory_mb: int
    cpus: float
    network_enabled: bool
    isolation: str = "container"  # a gVisor container is never handed to a runc job

    def label(self) -> str:
        net = "egress" if self.network_enabled else "none"
        return f"{self.image}|{self.memory_mb}m|{self.cpus:g}cpu|{net}|{self.isolation}"


@dataclass
class Idle:
    container_id: str
    shape: Shape
    born_s: float
    handle: Any = None  # the engine's attach socket, owned by the executor
    exited: Any = None  # the engine's wait for its exit, registered ahead of the job


@dataclass
class _ShapeState:
    idle: deque[Idle] = field(default_factory=deque)
    demand: deque[float] = field(default_factory=deque)  # when attempts asked for this shape
    creating: int = 0


class WarmPool:
    def __init__(self, settings: PoolSettings, now: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._now = now
        self._shapes: dict[Shape, _ShapeState] = {}
        self.hits = 0
        self.misses = 0

    # -- attempts -----------------------------------------------------------------------------

    def take(self, shape: Shape) -> Idle | None:
        """The oldest container of `shape` not near its TTL, or None (the attempt goes cold).
        Either way the demand is counted, so the pool grows toward it."""
        state = self._shapes.setdefault(shape, _ShapeState())
        now = self._now()
        state.demand.append(now)
        # oldest first: the newest was started a moment ago and its runtime may still be
        # loading (node takes ~0.3 s), which a job taking it would wait for; the older ones
        # near their TTL are left to expire
        for idle in state.idle:
            if now - idle.born_s < self.settings.idle_ttl_s - HANDOUT_MARGIN_S:
                state.idle.remove(idle)
                self.hits += 1
                return idle
        self.misses += 1
        return None

    # -- refilling ------------------------------------------------------------------------------

    def wanted(self) -> Shape | None:
        """The shape to prewarm one more container for next, or None when every pool is as
        large as its demand (or the global caps) allow."""
        if not self.settings.enabled:
            return None
        best: tuple[int, Shape] | None = None
        for shape in self._shapes:
            gap = self._short_of_target(shape)
            if gap > 0 and self._fits(shape) and (best is None or gap > best[0]):
                best = (gap, shape)
        return best[1] if best else None

    def target(self, shape: Shape) -> int:
        state = self._shapes.get(shape)
        if state is None:
            return 0
        now = self._now()
        while state.demand and now - state.demand[0] > max(self.settings.idle_ttl_s, 1.0):
            state.demand.popleft()
        recent = sum(1 for t in state.demand if now - t <= DEMAND_WINDOW_S)
        wanted = max(recent, 1 if state.demand else 0)
        return max(self.settings.min_per_shape, min(self.settings.max_per_shape, wanted))

    def _short_of_target(self, shape: Shape) -> int:
        """How many containers `shape` lacks of its target, counting those being made."""
        state = self._shapes[shape]
        return self.target(shape) - len(state.idle) - state.creating

    def _crowded_out(self) -> bool:
        """Some shape short of its target that the caps have no room for."""
        return any(
            self._short_of_target(shape) > 0 and not self._fits(shape) for shape in self._shapes
        )

    def _fits(self, shape: Shape) -> bool:
        count = sum(len(s.idle) + s.creating for s in self._shapes.values())
        memory = sum((len(s.idle) + s.creating) * k.memory_mb for k, s in self._shapes.items())
        return (
            count < self.settings.max_idle
            and memory + shape.memory_mb <= self.settings.max_idle_memory_mb
        )

    def creating(self, shape: Shape, delta: int) -> None:
        self._shapes.setdefault(shape, _ShapeState()).creating += delta

    def put(self, idle: Idle) -> None:
        self._shapes.setdefault(idle.shape, _ShapeState()).idle.append(idle)

    def surplus(self) -> list[Idle]:
        """Idle containers beyond their shape's target (its demand moved away), oldest first,
        taken off the pool when the caps keep a shape asked for now from its containers.
        Otherwise they wait out their TTL: removing one early is engine work that a burst
        coming back would pay for twice, to remove it and to make its replacement."""
        if not self._crowded_out():
            return []
        out = []
        for shape, state in self._shapes.items():
            extra = len(state.idle) - self.target(shape)
            for _ in range(max(0, extra)):
                out.append(state.idle.popleft())
        return out

    def expired(self) -> list[Idle]:
        """Idle containers past handing out, taken off the pool (their shims end themselves
        at the TTL; the executor removes them now)."""
        now, out = self._now(), []
        for state in self._shapes.values():
            limit = self.settings.idle_ttl_s - HANDOUT_MARGIN_S
            while state.idle and now - state.idle[0].born_s >= limit:
                out.append(state.idle.popleft())
        return out

    def prune(self, dead: Callable[[Idle], bool]) -> list[Idle]:
        """Takes off the pool every container `dead` says is gone (its shim exited)."""
        out = []
        for state in self._shapes.values():
            alive = deque(i for i in state.idle if not dead(i))
            out += [i for i in state.idle if i not in alive]
            state.idle = alive
        return out

    def drain(self) -> list[Idle]:
        out = [idle for state in self._shapes.values() for idle in state.idle]
        for state in self._shapes.values():
            state.idle.clear()
        return out

    # -- visibility -------------------------------------------------------------------------------

    def idle_by_shape(self) -> dict[str, int]:
        return {shape.label(): len(s.idle) for shape, s in self._shapes.items()}

    def stats(self) -> dict[str, Any]:
        return {
            "enabled": self.settings.enabled,
            "hits": self.hits,
            "misses": self.misses,
            "idle": sum(len(s.idle) for s in self._shapes.values()),
            "shapes": [
                {
                    "shape": shape.label(),
                    "idle": len(s.idle),
                    "creating": s.creating,
                    "target": self.target(shape),
                }
                for shape, s in self._shapes.items()
            ],
            "settings": {
                "min_per_shape": self.settings.min_per_shape,
                "max_per_shape": self.settings.max_per_shape,
                "idle_ttl_s": self.settings.idle_ttl_s,
                "max_idle": self.settings.max_idle,
                "max_idle_memory_mb": self.settings.max_idle_memory_mb,
            },
        }
