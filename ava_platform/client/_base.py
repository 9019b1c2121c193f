"""What the sync and async clients share besides their loops (those are in `core`): identity
headers, settings from the environment, and how an HTTP answer becomes a Struct or an
AvaApiError."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx

from ava_platform import __version__
from ava_platform.client.calls import Call
from ava_platform.client.core import cannot_reach
from ava_platform.client.errors import AvaConnectionError, error_for

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 30.0
# a followed log can stay quiet for as long as the handler does; only connecting is bounded
STREAM_TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=10.0)


@dataclass(frozen=True)
class Identity:
    """Who the client speaks as: the four headers every /v1/ava request carries."""

    internal_secret: str
    tenant_id: str
    user_id: str
    role: str

    def headers(self) -> dict[str, str]:
        return {
            "x-internal-secret": self.internal_secret,
            "x-tenant-id": self.tenant_id,
            "x-user-id": self.user_id,
            "x-platform-role": self.role,
            "user-agent": f"ava-client/{__version__}",
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Identity:
        env = os.environ if env is None else env
        return cls(
            internal_secret=env.get("AVA_INTERNAL_SECRET", ""),
            tenant_id=env.get("AVA_TENANT_ID", ""),
            user_id=env.get("AVA_USER_ID", ""),
            role=env.get("AVA_ROLE", "tenant-admin"),
        )


def url_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get("AVA_URL") or DEFAULT_URL).rstrip("/")


def result(call: Call[T], response: httpx.Response) -> T:
    if response.is_success or response.status_code in call.ok_statuses:
        return call.decode(response.content)
    raise error_for(response.status_code, response.content)


def connection_error(url: str, exc: httpx.HTTPError) -> AvaConnectionError:
    return cannot_reach(url, exc)
