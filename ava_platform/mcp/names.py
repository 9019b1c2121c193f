"""Tool names from worker names: valid per the protocol (1-128 of `A-Za-z0-9_.-`), unique
within a tenant, and stable.

A name is the worker's name, lower-cased, accents dropped and every run of other characters
turned into `_`. When several workers of a tenant give the same name, the oldest (first
created, whatever its status now) keeps it and each later one gets `__` and the end of its
own id: pausing, resuming, deprecating or adding workers never renames another's tool. A
tool's name changes only when its worker is renamed (or an older worker is renamed into the
same name)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from ava_platform.models import Worker

MAX_TOOL_NAME = 128
ID_TAIL = 10  # characters of the id kept to tell same-named workers apart
_BASE_MAX = MAX_TOOL_NAME - 2 - ID_TAIL
_INVALID = re.compile(r"[^a-z0-9_.-]+")
VALID_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
FALLBACK = "worker"


def base_name(worker_name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", worker_name).encode("ascii", "ignore").decode()
    slug = _INVALID.sub("_", ascii_name.lower()).strip("_.-")
    return slug[:_BASE_MAX].rstrip("_.-") or FALLBACK


def tool_names(workers: Iterable[Worker]) -> dict[str, Worker]:
    """Tool name -> worker, for all of a tenant's workers (deprecated ones included, so the
    order of first use never changes)."""
    by_base: dict[str, list[Worker]] = {}
    for worker in sorted(workers, key=lambda w: (w.created_at, w.id)):
        by_base.setdefault(base_name(worker.name), []).append(worker)
    names = {base: group[0] for base, group in by_base.items()}
    for base, group in by_base.items():
        for worker in group[1:]:
            names[_free_name(names, base, worker.id)] = worker
    return names


def _free_name(taken: dict[str, Worker], base: str, worker_id: str) -> str:
    """`base__<id tail>`; a longer part of the id (then a counter) only if a worker's own
    name already gives exactly that."""
    for tail in (worker_id[-ID_TAIL:], worker_id.split("_")[-1]):
        name = f"{base[: MAX_TOOL_NAME - 2 - len(tail)]}__{tail}"
        if name not in taken:
            return name
    for count in range(2, len(taken) + 3):
        numbered = f"{name[: MAX_TOOL_NAME - 1 - len(str(count))]}_{count}"
        if numbered not in taken:
            return numbered
    raise AssertionError("unreachable: more free counters than taken names")
