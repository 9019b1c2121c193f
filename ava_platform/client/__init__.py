"""A Python client for the AVA API (httpx; sync and async), typed with the server's Structs.

    from ava_platform.client import AvaClient, Identity

    with AvaClient.from_env() as ava:               # AVA_URL, AVA_INTERNAL_SECRET, ...
        job = ava.run_job("wkr_...", {"n": 1})
        job = ava.wait_for_job(job.id, timeout_s=60)

Every error answer raises a subclass of `AvaApiError` (see `errors` for the tree).
"""

from __future__ import annotations

from ava_platform.client._base import DEFAULT_URL, Identity
from ava_platform.client.async_ import AsyncAvaClient
from ava_platform.client.calls import Health, LogEnd, LogEntry
from ava_platform.client.errors import (
    AvaApiError,
    AvaClientError,
    AvaConnectionError,
    WaitTimeout,
)
from ava_platform.client.sync import AvaClient

__all__ = [
    "DEFAULT_URL",
    "AsyncAvaClient",
    "AvaApiError",
    "AvaClient",
    "AvaClientError",
    "AvaConnectionError",
    "Health",
    "Identity",
    "LogEnd",
    "LogEntry",
    "WaitTimeout",
]
