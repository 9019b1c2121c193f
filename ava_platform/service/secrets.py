"""Secret use cases: set/replace, list names, delete; per tenant, by the role table. A value
goes in once and never comes out through the API."""

from __future__ import annotations

from ava_platform.clock import Clock, iso
from ava_platform.errors import NotFound
from ava_platform.models import SecretInfo
from ava_platform.service.auth import Permission, Principal
from ava_platform.service.validation import Problems, check_env_names
from ava_platform.service.vault import Keyring
from ava_platform.store.secrets import SecretStore

MAX_NAME_LEN = 128


def check_name(name: str) -> None:
    problems = Problems()
    if len(name) > MAX_NAME_LEN:
        problems.add("name", f"must be at most {MAX_NAME_LEN} characters")
    else:
        check_env_names(problems, "name", [name])
    problems.raise_if_any()


class SecretService:
    def __init__(self, store: SecretStore, keyring: Keyring, clock: Clock) -> None:
        self._store = store
        self._keyring = keyring
        self._clock = clock

    async def put(self, who: Principal, name: str, value: str) -> tuple[SecretInfo, bool]:
        """Creates or replaces; returns the info and whether it was created."""
        who.require(Permission.SECRETS_WRITE)
        check_name(name)
        sealed = self._keyring.seal(who.tenant_id, name, value)
        return await self._store.put(sealed, iso(self._clock.now()))

    async def list(
        self, who: Principal, *, page: int, per_page: int
    ) -> tuple[list[SecretInfo], int]:
        who.require(Permission.SECRETS_LIST)
        return await self._store.page(who.tenant_id, limit=per_page, offset=(page - 1) * per_page)

    async def delete(self, who: Principal, name: str) -> None:
        who.require(Permission.SECRETS_WRITE)
        if not await self._store.delete(who.tenant_id, name):
            raise NotFound(f"secret {name} not found", code="secret_not_found")
