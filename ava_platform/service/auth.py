"""Who is asking, and what their role lets them do (the role table of API.md)."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from ava_platform.errors import Forbidden
from ava_platform.models import Role


class Permission(StrEnum):
    READ = "read"  # workers, jobs, logs, versions, schedules
    RUN = "run"  # trigger and cancel jobs
    MANAGE = "manage"  # create/update/delete workers, deploy, schedules
    SECRETS_LIST = "secrets_list"  # list secret names
    SECRETS_WRITE = "secrets_write"  # set and delete secret values
    WEBHOOK_SECRET = "webhook_secret"  # read and rotate the tenant's webhook signing secret
    # the platform operator's: set any tenant's quotas (README: quotas)
    QUOTAS_WRITE = "quotas_write"


_ALL = frozenset(Permission)
_TENANT_ADMIN = _ALL - {Permission.QUOTAS_WRITE}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SYSTEM_ADMIN: _ALL,
    Role.ADMIN: _TENANT_ADMIN,
    Role.DEVELOPER: _TENANT_ADMIN - {Permission.SECRETS_WRITE, Permission.WEBHOOK_SECRET},
    Role.OPERATOR: frozenset({Permission.READ, Permission.RUN}),
    Role.VIEWER: frozenset({Permission.READ}),
}


class Principal(msgspec.Struct, frozen=True):
    tenant_id: str
    user_id: str
    role: Role

    def require(self, permission: Permission) -> None:
        if permission not in ROLE_PERMISSIONS[self.role]:
            raise Forbidden(
                f"role {self.role.value} may not {permission.value.replace('_', ' ')}",
                code="forbidden",
            )
