"""How the scheduler obtains a job's secret values. The vault implements this protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ava_platform.errors import MissingSecret


class SecretSource(Protocol):
    async def resolve(self, tenant_id: str, names: Sequence[str]) -> dict[str, str]:
        """All values for `names`, or MissingSecret naming every one that is not set."""
        ...


class EmptySecrets:
    """No vault: any named secret is missing."""

    async def resolve(self, tenant_id: str, names: Sequence[str]) -> dict[str, str]:
        if names:
            raise MissingSecret(tenant_id, names)
        return {}
