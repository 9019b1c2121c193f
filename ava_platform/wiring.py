"""The composition root: builds the store, services, executor and scheduler from Settings."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from ava_platform.clock import Clock, SystemClock
from ava_platform.config import Settings
from ava_platform.executor.base import Executor
from ava_platform.executor.builds import DockerImageBuilder
from ava_platform.executor.docker import DockerExecutor
from ava_platform.executor.egress import EgressGuard
from ava_platform.executor.sandbox import EngineSandbox
from ava_platform.executor.swarm import SwarmExecutor
from ava_platform.executor.swarm_egress import SwarmEgress
from ava_platform.metrics import PlatformMetrics
from ava_platform.scheduler.cron import CronLoop
from ava_platform.scheduler.loop import Scheduler
from ava_platform.scheduler.runner import AttemptRunner
from ava_platform.scheduler.webhooks import WebhookLoop
from ava_platform.service.deploy import DeployService, ImageBuilder
from ava_platform.service.events import JobEvents, Relay
from ava_platform.service.jobs import JobService
from ava_platform.service.quotas import QuotaService
from ava_platform.service.sandbox import OpenSandbox, Sandbox
from ava_platform.service.schedules import ScheduleService
from ava_platform.service.secrets import SecretService
from ava_platform.service.secrets_source import SecretSource
from ava_platform.service.vault import Keyring, VaultSecrets
from ava_platform.service.versions import VersionService
from ava_platform.service.webhook_urls import UrlPolicy
from ava_platform.service.webhooks import DeliveryLog, WebhookSecrets
from ava_platform.service.workers import WorkerService
from ava_platform.stopping import bounded
from ava_platform.store.database import Database
from ava_platform.store.db import Database as SqliteDatabase
from ava_platform.store.jobs import JobStore
from ava_platform.store.logs import LogStore
from ava_platform.store.quotas import QuotaStore
from ava_platform.store.schedules import ScheduleStore
from ava_platform.store.secrets import SecretStore
from ava_platform.store.versions import BuildStore
from ava_platform.store.webhooks import WebhookStore
from ava_platform.store.workers import VersionStore, WorkerStore


def platform_id(settings: Settings) -> str:
    """One platform is one store: its containers are labelled with this, derived from the
    store's absolute path (or its database URL), so a restart on the same store finds its own
    orphans."""
    where = settings.database_url or str(settings.db_path.resolve())
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def open_database(settings: Settings) -> tuple[Database, Relay | None]:
    """PostgreSQL when AVA_DATABASE_URL names one (with LISTEN/NOTIFY between the processes
    sharing it), else the SQLite file (one process: its events stay in memory)."""
    if settings.database_url is not None:
        from ava_platform.store.postgres.db import PostgresDatabase
        from ava_platform.store.postgres.notify import PostgresRelay

        return PostgresDatabase(settings.database_url), PostgresRelay(settings.database_url)
    return SqliteDatabase(settings.db_path), None


def build_egress(settings: Settings) -> EgressGuard | SwarmEgress:
    """What protects egress jobs: the local firewall, or the swarm network an operator
    firewalled on every node."""
    if settings.executor == "swarm":
        return SwarmEgress(settings.swarm_egress_network, settings.docker_host)
    return EgressGuard(settings.docker_host, allow_cidrs=settings.egress_allow_cidrs)


def build_executor(settings: Settings, egress: EgressGuard | SwarmEgress) -> Executor:
    """The local engine's executor (the default), or the swarm's (AVA_EXECUTOR=swarm)."""
    if isinstance(egress, SwarmEgress):
        return SwarmExecutor(
            platform_id=platform_id(settings),
            base_url=settings.docker_host,
            constraints=settings.swarm_constraints,
            egress=egress,
        )
    return DockerExecutor(
        platform_id=platform_id(settings),
        base_url=settings.docker_host,
        egress=egress,
        pool=settings.warm,
    )


class Platform:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        executor: Executor | None = None,
        run_scheduler: bool = True,
        builder: ImageBuilder | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db, relay = open_database(settings)
        self.events = JobEvents(relay)
        guard = build_egress(settings)
        # the engine's sandbox is prepared at start: only with the engine's own executor
        self._engine_sandbox = (
            EngineSandbox(guard, settings.docker_host, services=settings.executor == "swarm")
            if executor is None
            else None
        )
        self.sandbox: Sandbox = sandbox or self._engine_sandbox or OpenSandbox()
        self.executor = executor or build_executor(settings, guard)
        self.worker_store = WorkerStore(self.db)
        self.version_store = VersionStore(self.db)
        self.job_store = JobStore(self.db)
        self.log_store = LogStore(self.db)
        self.keyring = Keyring([settings.secret_key, *settings.previous_secret_keys])
        self.secret_store = SecretStore(self.db)
        self.secrets: SecretSource = VaultSecrets(self.secret_store, self.keyring)
        self.url_policy = UrlPolicy(allow_private=settings.webhook_allow_private)
        self.workers = WorkerService(
            self.worker_store,
            self.version_store,
            self.clock,
            sandbox=self.sandbox,
            check_webhook_url=self.url_policy.check,
        )
        self.jobs = JobService(
            jobs=self.job_store,
            logs=self.log_store,
            workers=self.workers,
            events=self.events,
            clock=self.clock,
            sandbox=self.sandbox,
            max_queued=settings.tenant_max_queued,
            check_webhook_url=self.url_policy.check,
        )
        self.quota_store = QuotaStore(self.db)
        self.quotas = QuotaService(
            self.quota_store,
            self.clock,
            default_running=settings.tenant_max_running or settings.max_concurrent_jobs,
            default_queued=settings.tenant_max_queued,
        )
        self.metrics = PlatformMetrics()
        self.runner = AttemptRunner(
            observer=self.metrics,
            settings=settings,
            clock=self.clock,
            jobs=self.job_store,
            logs=self.log_store,
            secrets=self.secrets,
            executor=self.executor,
            events=self.events,
        )
        self.scheduler = Scheduler(
            settings=settings,
            clock=self.clock,
            jobs=self.job_store,
            runner=self.runner,
            executor=self.executor,
            exclusive=relay is None,
        )
        self.events.subscribe(enqueued=self.scheduler.wake, cancel=self.scheduler.cancel)
        self.metrics.bind(
            self.job_store,
            lambda: self.scheduler.running_count,
            self.clock,
            self.executor.pool_stats,
            tenant_load=self.quota_store.load,
        )
        self._exclusive = relay is None
        self._wire_deploys_and_schedules(settings, builder)
        # `--role api` serves requests only; the schedulers run elsewhere on the same store
        self._run_scheduler = run_scheduler and settings.role != "api"
        self._wire_webhooks(settings)

    async def start(self) -> None:
        await self.db.open()
        await self.events.start()
        if self._engine_sandbox is not None:
            await self._engine_sandbox.prepare()  # says at start when egress is refused
        if self._run_scheduler:
            await self.scheduler.start()
        await self.deploys.start()
        if self._run_scheduler:
            await self.cron.start()
            await self.webhook_loop.start()

    async def stop(self) -> None:
        if self._run_scheduler:
            await bounded("webhooks", self.webhook_loop.stop())
            await bounded("cron", self.cron.stop())
            await bounded("scheduler", self.scheduler.stop())
        await bounded("deploys", self.deploys.stop())
        await bounded("executor", self.executor.close())
        await bounded("events", self.events.stop())
        await bounded("store", self.db.close())

    def _wire_deploys_and_schedules(self, settings: Settings, builder: ImageBuilder | None) -> None:
        """Secrets, deploys, versions and schedules."""
        self.secret_service = SecretService(self.secret_store, self.keyring, self.clock)
        self.build_store = BuildStore(self.db)
        self.deploys = DeployService(
            workers=self.workers,
            worker_store=self.worker_store,
            builds=self.build_store,
            builder=builder or DockerImageBuilder(base_url=settings.docker_host),
            clock=self.clock,
            scratch_root=settings.db_path.parent / "scratch",
            ca_bundle=settings.ca_bundle,
            retention=settings.image_retention,
            concurrency=settings.build_concurrency,
            # beside other processes, a build in progress may be theirs: held under a lease
            owner=None if self._exclusive else f"build_{uuid.uuid4().hex[:12]}",
            lease_s=settings.lease_s,
        )
        self.versions = VersionService(
            workers=self.workers,
            worker_store=self.worker_store,
            builds=self.build_store,
            clock=self.clock,
        )
        self.schedule_store = ScheduleStore(self.db)
        self.cron = CronLoop(store=self.schedule_store, jobs=self.jobs, clock=self.clock)
        self.schedules = ScheduleService(
            self.schedule_store, self.workers, self.clock, on_change=self.cron.wake
        )

    def _wire_webhooks(self, settings: Settings) -> None:
        self.webhook_store = WebhookStore(self.db)
        self.webhook_secrets = WebhookSecrets(self.webhook_store, self.keyring, self.clock)
        self.deliveries = DeliveryLog(self.webhook_store, self.jobs)
        self.webhook_loop = WebhookLoop(
            settings=settings,
            clock=self.clock,
            store=self.webhook_store,
            jobs=self.job_store,
            secrets=self.webhook_secrets,
        )
        self.events.subscribe(finished=self.webhook_loop.wake)

    async def readiness(self) -> dict[str, bool]:
        return {"store": await self.db.ping(), "docker": await self.executor.ping()}

    def pool(self) -> dict[str, Any]:
        return self.executor.pool_stats()
