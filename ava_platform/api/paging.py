"""Shared list parameters: paging bounds and the rule that unknown filters are an error."""

from __future__ import annotations

from typing import Annotated, Any

from litestar.params import QueryParameter

from ava_platform.errors import BadRequest

MAX_PER_PAGE = 100
Page = Annotated[int, QueryParameter(ge=1, le=1_000_000, description="Page number, from 1.")]
PerPage = Annotated[
    int, QueryParameter(ge=1, le=MAX_PER_PAGE, description="Items per page (max 100).")
]


def reject_unknown_filters(query: Any, allowed: set[str]) -> None:
    for key in query:
        if key.startswith("filter[") and key not in allowed:
            raise BadRequest(f"unknown filter {key}", code="invalid_filter")
        if len(query.getall(key)) > 1:  # otherwise the last one would silently win
            raise BadRequest(f"{key} is given more than once", code="bad_request")
