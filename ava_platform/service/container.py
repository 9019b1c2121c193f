"""What the API needs from the running platform. `ava_platform.wiring` builds the concrete one;
the API sees only this protocol, so it never imports the executor or the store."""

from __future__ import annotations

from typing import Any, Protocol

from ava_platform.metrics import PlatformMetrics
from ava_platform.service.deploy import DeployService
from ava_platform.service.jobs import JobService
from ava_platform.service.quotas import QuotaService
from ava_platform.service.schedules import ScheduleService
from ava_platform.service.secrets import SecretService
from ava_platform.service.versions import VersionService
from ava_platform.service.webhooks import DeliveryLog, WebhookSecrets
from ava_platform.service.workers import WorkerService


class Services(Protocol):
    workers: WorkerService
    jobs: JobService
    secret_service: SecretService
    deploys: DeployService
    metrics: PlatformMetrics
    versions: VersionService
    schedules: ScheduleService
    quotas: QuotaService
    webhook_secrets: WebhookSecrets
    deliveries: DeliveryLog

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def readiness(self) -> dict[str, bool]: ...

    def pool(self) -> dict[str, Any]: ...
