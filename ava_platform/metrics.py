"""Prometheus metrics of one platform, in its own registry (several platforms can share a
process, as tests do).

Counted as things happen (the attempt runner and the API call the hooks):
    ava_job_attempts_total{outcome}                    attempts that ended, by outcome
    ava_jobs_finished_total{status}                    jobs that reached a final status
    ava_job_attempt_duration_seconds{outcome}          histogram, claim to recorded outcome
    ava_container_start_latency_seconds                histogram, create to handler start
    ava_http_request_duration_seconds{method,route,status}  histogram, by route template
Read from the store at scrape time (so they survive restarts):
    ava_jobs{status,runtime}                           jobs by status and worker runtime
    ava_queue_depth                                    queued jobs (incl. those in backoff)
    ava_queue_oldest_age_seconds                       how long the oldest due job has waited
    ava_running_containers                             attempts running now, one container each
    ava_tenant_jobs{tenant,status}                     queued and running jobs per tenant
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ava_platform.clock import Clock, parse_iso
from ava_platform.models import AttemptOutcome, JobStatus, Runtime

CONTENT_TYPE = CONTENT_TYPE_LATEST
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class JobCounts(Protocol):
    """What the scrape reads from the store (JobStore implements it)."""

    async def counts_by_status_runtime(self) -> list[tuple[str, str, int]]: ...

    async def queue_stats(self) -> dict[str, Any]: ...


class PlatformMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.attempts = Counter(
            "ava_job_attempts", "Job attempts that ended, by outcome.", ["outcome"], registry=r
        )
        self.jobs_finished = Counter(
            "ava_jobs_finished", "Jobs that reached a final status.", ["status"], registry=r
        )
        self.attempt_duration = Histogram(
            "ava_job_attempt_duration_seconds",
            "Wall time of one attempt, from claim to recorded outcome.",
            ["outcome"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.container_start = Histogram(
            "ava_container_start_latency_seconds",
            "From creating an attempt's container to its handler starting.",
            buckets=_START_BUCKETS,
            registry=r,
        )
        self.http = Histogram(
            "ava_http_request_duration_seconds",
            "API request latency by route template and status.",
            ["method", "route", "status"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        self._http_children: dict[tuple[str, str, int], Any] = {}
        self.jobs = Gauge(
            "ava_jobs", "Jobs by status and runtime.", ["status", "runtime"], registry=r
        )
        self.queue_depth = Gauge("ava_queue_depth", "Queued jobs, due or in backoff.", registry=r)
        self.oldest_age = Gauge(
            "ava_queue_oldest_age_seconds",
            "Age of the oldest due queued job (0: none).",
            registry=r,
        )
        self.running = Gauge(
            "ava_running_containers", "Attempts running now, each in its own container.", registry=r
        )
        self.pool_hits = Gauge(
            "ava_warm_pool_hits",
            "Attempts that took a prewarmed container (since start).",
            registry=r,
        )
        self.pool_misses = Gauge(
            "ava_warm_pool_misses",
            "Attempts that found no prewarmed container and started cold (since start).",
            registry=r,
        )
        self.pool_idle = Gauge(
            "ava_warm_pool_idle", "Prewarmed containers waiting, by shape.", ["shape"], registry=r
        )
        self.pool_handover = Gauge(
            "ava_warm_pool_handover_seconds",
            "Median time to hand a job to a prewarmed container (last 1,000).",
            registry=r,
        )
        self.tenant_jobs = Gauge(
            "ava_tenant_jobs",
            "Queued and running jobs per tenant.",
            ["tenant", "status"],
            registry=r,
        )
        self._tenant_load: Callable[[], Awaitable[list[Any]]] | None = None
        self._started: dict[tuple[str, int], float] = {}
        self._source: tuple[JobCounts, Callable[[], int], Clock] | None = None
        self._pool_stats: Callable[[], dict[str, Any]] = dict

    def bind(
        self,
        jobs: JobCounts,
        running_count: Callable[[], int],
        clock: Clock,
        pool_stats: Callable[[], dict[str, Any]] = dict,
        tenant_load: Callable[[], Awaitable[list[Any]]] | None = None,
    ) -> None:
        """Where the scrape-time gauges come from."""
        self._source = (jobs, running_count, clock)
        self._pool_stats = pool_stats
        self._tenant_load = tenant_load

    # -- hooks of the attempt runner --------------------------------------------------------

    def attempt_started(self, claimed: Any) -> None:
        if len(self._started) > 10_000:  # attempts whose outcome was dropped never pop theirs
            self._started.clear()
        self._started[(claimed.job_id, claimed.attempt)] = time.monotonic()

    def container_started(self, latency_s: float) -> None:
        self.container_start.observe(max(0.0, latency_s))

    def attempt_finished(self, claimed: Any, outcome: AttemptOutcome, status: JobStatus) -> None:
        self.attempts.labels(outcome=outcome.value).inc()
        started = self._started.pop((claimed.job_id, claimed.attempt), None)
        if started is not None:
            self.attempt_duration.labels(outcome=outcome.value).observe(time.monotonic() - started)
        if status is not JobStatus.QUEUED:
            self.jobs_finished.labels(status=status.value).inc()

    # -- the API ----------------------------------------------------------------------------

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        # the labelled child is kept: `labels()` builds and locks its way to it on every call,
        # and route templates, methods and statuses are few
        key = (method, route, status)
        child = self._http_children.get(key)
        if child is None:
            child = self.http.labels(method=method, route=route, status=str(status))
            self._http_children[key] = child
        child.observe(seconds)

    async def render(self) -> bytes:
        """The Prometheus text exposition, with the store-derived gauges refreshed first."""
        if self._source is not None:
            await self._refresh(*self._source)
        return generate_latest(self.registry)

    async def _refresh(
        self, jobs: JobCounts, running_count: Callable[[], int], clock: Clock
    ) -> None:
        counts = await jobs.counts_by_status_runtime()
        self.jobs.clear()
        runtimes = {rt.value for rt in Runtime} | {runtime for _, runtime, _ in counts}
        for runtime in runtimes:
            for status in JobStatus:
                self.jobs.labels(status=status.value, runtime=runtime).set(0)
        for status_value, runtime, n in counts:
            self.jobs.labels(status=status_value, runtime=runtime).set(n)
        stats = await jobs.queue_stats()
        self.queue_depth.set(int(stats["by_status"].get(JobStatus.QUEUED.value, 0)))
        oldest = stats["oldest_queued"]
        age_s = (clock.now() - parse_iso(oldest)).total_seconds() if oldest else 0.0
        self.oldest_age.set(max(0.0, age_s))
        self.running.set(running_count())
        self._refresh_pool(self._pool_stats())
        await self._refresh_tenants()

    async def _refresh_tenants(self) -> None:
        if self._tenant_load is None:
            return
        self.tenant_jobs.clear()  # a tenant whose jobs all ended drops out
        for load in await self._tenant_load():
            self.tenant_jobs.labels(tenant=load.tenant_id, status="queued").set(load.queued)
            self.tenant_jobs.labels(tenant=load.tenant_id, status="running").set(load.running)

    def _refresh_pool(self, pool: dict[str, Any]) -> None:
        self.pool_hits.set(pool.get("hits", 0))
        self.pool_misses.set(pool.get("misses", 0))
        self.pool_idle.clear()
        for shape in pool.get("shapes", []):
            self.pool_idle.labels(shape=shape["shape"]).set(shape["idle"])
        handover_ms = pool.get("handover_ms_p50")
        self.pool_handover.set((handover_ms or 0) / 1000)
