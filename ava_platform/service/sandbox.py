"""What the engine can isolate with, as the services see it: the seam through which worker
validation learns the engine's runtimes and job triggers learn whether egress is protected,
without the service importing the executor. `executor/sandbox.py` is the engine's; the
`OpenSandbox` here is for tests that run on the fake executor."""

from __future__ import annotations

from typing import Protocol

from ava_platform.errors import Unavailable
from ava_platform.models import Isolation, Network

GVISOR_RUNTIME = "runsc"


class Sandbox(Protocol):
    def egress_problem(self) -> str | None:
        """Why egress jobs are refused now, or None when they may run."""
        ...

    async def runtimes(self) -> frozenset[str]:
        """The container runtimes the engine has registered (`docker info`)."""
        ...


class OpenSandbox:
    def __init__(
        self,
        runtimes: frozenset[str] = frozenset({"runc", GVISOR_RUNTIME}),
        egress: str | None = None,
    ) -> None:
        self._runtimes = runtimes
        self._egress = egress

    def egress_problem(self) -> str | None:
        return self._egress

    async def runtimes(self) -> frozenset[str]:
        return self._runtimes


async def isolation_problem(sandbox: Sandbox, isolation: Isolation) -> str | None:
    """The reason the engine cannot give a worker this isolation, or None."""
    if isolation is Isolation.GVISOR and GVISOR_RUNTIME not in await sandbox.runtimes():
        return (
            "the engine has no gVisor runtime (runsc) registered; "
            "run scripts/ensure-docker.sh as root to install and register it"
        )
    return None


def require_egress(sandbox: Sandbox, network: Network) -> None:
    """Refuses to queue an egress job the engine could not run protected."""
    problem = sandbox.egress_problem() if network is Network.EGRESS else None
    if problem is not None:
        raise Unavailable(
            f"egress jobs are refused: {problem} (or set the worker's network to none)",
            code="egress_unavailable",
        )
