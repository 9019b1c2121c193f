"""Redacts a job's secret values from everything the job gives back: log lines, error
messages and results.

A value leaves a handler in many shapes, so each secret is expanded into every form it takes
on its way out: itself, each of its lines (a PEM key printed line by line), its whitespace-
collapsed form (what a shim makes of a multi-line error message), its JSON- and repr-escaped
forms (`print(json.dumps(env))`, `print(env)`), standard and URL-safe base64 with and without
padding (also wrapped at 64 and 76 columns, as PEM and `base64` wrap), and its URL-encoded
forms. Forms shorter than MIN_SECRET_LEN are left out: they would mask ordinary words.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterable
from typing import Any

MASK = "***"
MIN_SECRET_LEN = 4  # shorter values (and lines, and forms) would mask ordinary words
WRAP_COLUMNS = (64, 76)


def _escaped(text: str) -> set[str]:
    return {
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
        repr(text)[1:-1],
    }


def _encoded(text: str) -> set[str]:
    raw = text.encode()
    std = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode()
    out = {std, url, std.rstrip("="), url.rstrip("=")}
    for form in (std, url):
        for width in WRAP_COLUMNS:
            if len(form) > width:
                out.update(form[i : i + width] for i in range(0, len(form), width))
    out.add(urllib.parse.quote(text, safe=""))
    out.add(urllib.parse.quote_plus(text, safe=""))
    return out


def forms(value: str) -> set[str]:
    """Every shape of `value` that redaction masks."""
    shapes = {value, " ".join(value.split())}
    shapes.update(line.strip() for line in value.splitlines())
    out: set[str] = set()
    for shape in shapes:
        out.add(shape)
        out |= _escaped(shape)
    out |= _encoded(value)
    return {f for f in out if len(f) >= MIN_SECRET_LEN}


class Redactor:
    def __init__(self, values: Iterable[str]) -> None:
        found: set[str] = set()
        for value in values:
            if len(value) >= MIN_SECRET_LEN:
                found |= forms(value)
        # longest first, so a value inside another's encoding is not half-masked
        self._forms = sorted(found, key=len, reverse=True)
        self._forms_bytes = [f.encode() for f in self._forms]
        # bytes a line cut must carry over so no form is split across two stored lines
        self.longest = len(self._forms_bytes[0]) if self._forms_bytes else 0

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def value(self, data: Any) -> Any:
        """A JSON value with every string (keys included) redacted; a number whose digits
        spell a secret is masked whole."""
        if not self._forms:
            return data
        if isinstance(data, str):
            return self(data)
        if isinstance(data, dict):
            return {self(str(k)): self.value(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.value(v) for v in data]
        if isinstance(data, int | float) and not isinstance(data, bool):
            return MASK if self(str(data)) != str(data) else data
        return data

    def safe_cut(self, data: bytes | bytearray, at: int) -> int | None:
        """A cut position at or before `at` that splits no form found in `data`, nor a UTF-8
        character, so both sides are redacted whole; None when only a cut far back would do
        (a self-overlapping form repeated over the whole line)."""
        floor = max(0, at - 2 * self.longest - 4)
        moved = True
        while moved:
            moved = False
            for form in self._forms_bytes:
                start = data.find(form, max(0, at - len(form) + 1), at + len(form) - 1)
                if start != -1:  # straddles the cut: cut before it
                    at, moved = start, True
            if at < floor:
                return None
        while 0 < at < len(data) and (data[at] & 0xC0) == 0x80:
            at -= 1
        return at
