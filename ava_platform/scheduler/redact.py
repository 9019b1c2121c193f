"""Redacts a job's secret values from its log lines: raw, base64 and URL-encoded forms."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterable

MASK = "***"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


def _forms(value: str) -> set[str]:
    raw = value.encode()
    forms = {
        value,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
    }
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


class Redactor:
    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            if len(value) >= MIN_SECRET_LEN:
                forms |= _forms(value)
        # longest first, so a value inside another's encoding is not half-masked
        self._forms = sorted(forms, key=len, reverse=True)
        # bytes a line cut must carry over so no form is split across two stored lines
        self.longest = len(self._forms[0].encode()) if self._forms else 0

    def __call__(self, line: str) -> str:
        for form in self._forms:
            if form in line:
                line = line.replace(form, MASK)
        return line
