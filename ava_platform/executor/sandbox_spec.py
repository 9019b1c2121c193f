"""The hardening every job container gets, as the engine's host-config options: one pure
builder, so a unit test reads the spec the engine is given (README: Security model).

The engine's default seccomp profile applies because no `seccomp=` option is ever passed (an
`unconfined` one would switch it off). On top of it, the images' entrypoint (ava-seal,
images/base/seal.c) stacks our own filter denying ptrace; nothing here overrides the entrypoint.
`no-new-privileges` stops setuid binaries regaining what `cap_drop=ALL` removed.
"""

from __future__ import annotations

from typing import Any

from ava_platform.executor.base import RunSpec
from ava_platform.executor.egress import CONTAINER_SYSCTLS, NETWORK
from ava_platform.executor.warm import Shape
from ava_platform.models import Isolation

PIDS_LIMIT = 256
TMPFS_MB = 64
# the engine's name for each isolation (README: gVisor); runc is the engine's default
RUNTIMES = {Isolation.CONTAINER: None, Isolation.GVISOR: "runsc"}


def hardening(shape: RunSpec | Shape, *, auto_remove: bool = False) -> dict[str, Any]:
    options: dict[str, Any] = {
        "mem_limit": f"{shape.memory_mb}m",
        "memswap_limit": f"{shape.memory_mb}m",  # same as memory: no swap
        "nano_cpus": int(shape.cpus * 1e9),
        "pids_limit": PIDS_LIMIT,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={TMPFS_MB}m"},
        # egress: the managed network (executor/egress.py); none: networking disabled in the
        # container config (loopback only)
        "network_mode": NETWORK if shape.network_enabled else None,
        "auto_remove": auto_remove,
    }
    if shape.network_enabled:
        options["sysctls"] = dict(CONTAINER_SYSCTLS)
    runtime = RUNTIMES[Isolation(shape.isolation)]
    if runtime is not None:
        options["runtime"] = runtime
    return options
