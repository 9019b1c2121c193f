"""The stores write `?` and `:name` placeholders (SQLite's); PostgreSQL's driver takes `$1`.
Translated once per distinct statement, skipping quoted text and `::` casts."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ava_platform.store.database import Params

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|\?|:([A-Za-z_][A-Za-z0-9_]*)")


@lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, tuple[str, ...] | None]:
    """(the statement with `$n` placeholders, the names in `$n` order or None for `?`)."""
    names: list[str] = []
    count = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal count
        token = match.group(0)
        if token == "?":
            count += 1
            return f"${count}"
        name = match.group(1)
        if name is None:  # a quoted string or a cast: unchanged
            return token
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    out = _TOKEN.sub(swap, sql)
    return out, (tuple(names) if names else None)


def bind(sql: str, params: Params) -> tuple[str, list[Any]]:
    text, names = translate(sql)
    if isinstance(params, dict):
        return text, [params[n] for n in names or ()]
    return text, list(params)
