"""Names of the injected dependencies, marked explicitly as Litestar 3 will require, and the
provider of a service."""

from __future__ import annotations

from typing import Any

from litestar.di import NamedDependency, Provide

from ava_platform.service.auth import Principal
from ava_platform.service.deploy import DeployService
from ava_platform.service.jobs import JobService
from ava_platform.service.quotas import QuotaService
from ava_platform.service.schedules import ScheduleService
from ava_platform.service.secrets import SecretService
from ava_platform.service.versions import VersionService
from ava_platform.service.webhooks import DeliveryLog, WebhookSecrets
from ava_platform.service.workers import WorkerService

PrincipalDep = NamedDependency[Principal]
WorkersDep = NamedDependency[WorkerService]
JobsDep = NamedDependency[JobService]
SecretsDep = NamedDependency[SecretService]
DeployDep = NamedDependency[DeployService]
VersionsDep = NamedDependency[VersionService]
SchedulesDep = NamedDependency[ScheduleService]
QuotasDep = NamedDependency[QuotaService]
WebhookSecretsDep = NamedDependency[WebhookSecrets]
DeliveriesDep = NamedDependency[DeliveryLog]


def provide_service(service: Any) -> Provide:
    """A service's provider. It takes the principal (which it ignores) so that Litestar resolves
    the two one after the other: dependencies of one level are resolved in an anyio task group,
    a task spawned for each on every request, for awaits that never block."""

    async def provide(principal: PrincipalDep) -> Any:
        return service

    return Provide(provide)
