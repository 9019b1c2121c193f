"""The scheduler: claims due jobs up to this process's concurrency, runs each attempt as a task,
renews their leases, relays cancels, and recovers what a crashed platform left behind.

Alone on its store (`exclusive`, SQLite), every running job at start is a dead predecessor's.
Beside other schedulers (PostgreSQL), a running job belongs to whoever holds its lease: only
a lapsed lease is taken over (the attempt counted lost and retried), an attempt whose lease
another process took is killed here, and a process that cannot renew its leases for a whole
lease kills its own attempts, so a partitioned node never runs a job taken over elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import timedelta

import msgspec

from ava_platform.clock import Clock, iso
from ava_platform.config import Settings
from ava_platform.errors import ExecutorError
from ava_platform.executor.base import Executor
from ava_platform.log import get_logger
from ava_platform.models import JobStatus
from ava_platform.scheduler.runner import AttemptRunner, lost_outcome
from ava_platform.store.jobs import Claimed, JobStore

log = get_logger("ava.scheduler")
SWEEP_EVERY_S = 15.0  # how often containers left behind are looked for while running
WATCH_EVERY_S = 0.2  # how often the lease watchdog looks at the last renewal


class Scheduler:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        jobs: JobStore,
        runner: AttemptRunner,
        executor: Executor,
        exclusive: bool = True,
    ) -> None:
        self._settings = settings
        self._exclusive = exclusive
        self._renewed_at = time.monotonic()
        self._clock = clock
        self._jobs = jobs
        self._runner = runner
        self._executor = executor
        self.owner = f"sched_{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancels: dict[str, asyncio.Event] = {}
        self._attempts: dict[str, int] = {}  # the attempt each task of ours runs
        self._background: list[asyncio.Task[None]] = []
        self._abandoned: set[str] = set()  # attempts stopped for want of a lease

    @property
    def running_count(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        await self.recover()
        # every lease claimed from now on ends a lease after this at the earliest
        self._renewed_at = time.monotonic()
        self._background = [
            asyncio.create_task(self._claim_loop(), name="ava-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="ava-heartbeat"),
        ]
        if not self._exclusive:
            self._background.append(
                asyncio.create_task(self._lease_watchdog(), name="ava-lease-watchdog")
            )

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._background, *self._tasks.values(), return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        event = self._cancels.get(job_id)
        if event is not None:
            event.set()

    # -- claiming ----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while True:
            self._wake.clear()
            claimed: list[Claimed] = []
            free = self._settings.max_concurrent_jobs - len(self._tasks)
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except Exception as exc:
                    log.error("claim_failed", error=str(exc))
            for one in claimed:
                self._spawn(one)
            if claimed and len(claimed) == free:
                continue  # every free slot taken: more may be due once one frees
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.job_poll_interval_s)

    async def _claim(self, free: int) -> list[Claimed]:
        """Up to `free` jobs in one claim (one statement on PostgreSQL), in fair-share order;
        fewer: nothing more is claimable now."""
        now = self._clock.now()
        return await self._jobs.claim_batch(
            now=iso(now),
            owner=self.owner,
            lease_until=iso(now + timedelta(seconds=self._settings.lease_s)),
            max_running=self._settings.max_concurrent_jobs,
            limit=free,
            tenant_max_running=self._settings.tenant_max_running or None,
        )

    def _spawn(self, claimed: Claimed) -> None:
        cancel = asyncio.Event()
        self._cancels[claimed.job_id] = cancel
        task = asyncio.create_task(self._runner.run(claimed, cancel), name=f"job-{claimed.job_id}")
        self._tasks[claimed.job_id] = task
        self._attempts[claimed.job_id] = claimed.attempt

        def done(_: asyncio.Task[None]) -> None:
            self._abandoned.discard(claimed.job_id)
            self._tasks.pop(claimed.job_id, None)
            self._attempts.pop(claimed.job_id, None)
            self._cancels.pop(claimed.job_id, None)
            self._wake.set()

        task.add_done_callback(done)

    # -- leases, cancels, recovery ----------------------------------------------------------

    def _heartbeat_interval(self) -> float:
        return max(0.2, min(self._settings.lease_s / 3, 2.0))

    def _takeover_grace_s(self) -> float:
        """Beside others, a lease is taken over only this long after it lapsed: its owner,
        cut off, stops its attempts when the lease ends (the watchdog), so its container is
        gone before the job can start elsewhere."""
        if self._exclusive:
            return 0.0
        return min(self._heartbeat_interval(), self._settings.lease_s / 4)

    async def _heartbeat_loop(self) -> None:
        interval = self._heartbeat_interval()
        beats = 0
        next_at = time.monotonic()
        while True:
            # renewals asked at a steady rate: a slow one does not push the next one back
            next_at = max(next_at + interval, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())
            beats += 1
            try:
                await self._heartbeat()
                if beats * interval >= SWEEP_EVERY_S:
                    beats = 0
                    await self._remove_orphans(jobs_only=True)
            except Exception as exc:
                log.error("heartbeat_failed", error=str(exc))
                self._give_up_if_lease_lapsed()

    async def _lease_watchdog(self) -> None:
        """Beside other schedulers, apart from the heartbeat: on a partitioned network a
        renewal may hang (no error, no answer) for as long as the driver's timeout, far longer
        than a lease, and by then another process may have taken the jobs over."""
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            self._give_up_if_lease_lapsed()

    def _give_up_if_lease_lapsed(self) -> None:
        """Leases not renewed for a whole lease may be taken over soon: stop every attempt.
        Beside others, they are taken over only a grace after they lapsed
        (`_takeover_grace_s`), so the container is gone before the job may start elsewhere;
        the task is cancelled (not the job: no user asked), which kills its container and
        offers the attempt as lost, an answer the store drops once the job was taken over."""
        if time.monotonic() - self._renewed_at < self._settings.lease_s:
            return
        for job_id, task in list(self._tasks.items()):
            if job_id in self._abandoned:
                continue
            self._abandoned.add(job_id)
            log.warning("attempt_abandoned", job_id=job_id, reason="lease_not_renewed")
            task.cancel()

    async def _heartbeat(self) -> None:
        now = self._clock.now()
        asked = time.monotonic()  # the leases below end a lease from now, not from the answer
        ours = set(self._tasks)  # before renewing: each of these was claimed before it
        held = await self._jobs.renew_leases(
            self.owner, iso(now + timedelta(seconds=self._settings.lease_s))
        )
        self._renewed_at = asked
        for job_id in ours - held:
            # not ours any more, yet not ended by us either: taken over elsewhere, stop it
            status = await self._jobs.status(job_id)
            if job_id in self._tasks and status in (JobStatus.QUEUED, JobStatus.RUNNING):
                log.warning("attempt_abandoned", job_id=job_id, reason="lease_taken_over")
                self.cancel(job_id)
        for row in await self._jobs.running():
            if row.cancel_requested:
                self.cancel(row.job_id)
        # a running job that no task of ours owns and whose lease lapsed was lost (alone on the
        # store: also any job another owner left, a dead predecessor's)
        not_owner = self.owner if self._exclusive else None
        lapsed = iso(now - timedelta(seconds=self._takeover_grace_s()))
        for row in await self._jobs.running(expired_before=lapsed, not_owner=not_owner):
            if row.job_id not in self._tasks:
                await self._recover_one(row.job_id, row.attempt, row.container_id)

    async def recover(self) -> None:
        """At start. Alone on the store: every running job belongs to a dead scheduler; kill
        its container first, then count the attempt as lost (retried on its own budget);
        remove orphan containers. Beside others: the same, for lapsed leases only."""
        if not self._exclusive:
            lapsed = self._clock.now() - timedelta(seconds=self._takeover_grace_s())
            for row in await self._jobs.running(expired_before=iso(lapsed)):
                await self._recover_one(row.job_id, row.attempt, row.container_id)
            await self._remove_orphans()
            return
        for row in await self._jobs.running():
            await self._recover_one(row.job_id, row.attempt, row.container_id)
        await self._remove_orphans()

    async def _recover_one(self, job_id: str, attempt: int, container_id: str | None) -> None:
        """Alone on the store: kill first, then count the attempt lost. Beside others: take
        the job over in the store first (only while its lease is still lapsed, so a slow but
        live owner keeps it), and kill its containers only once it is ours to retry."""
        if self._exclusive:
            await self._kill_containers_of(job_id, container_id)
        claimed = await self._jobs.current_attempt(job_id)
        if claimed is None:
            return
        # the attempt seen running; if it moved on since, the store drops this answer
        claimed = msgspec.structs.replace(claimed, attempt=attempt)
        grace = timedelta(seconds=self._takeover_grace_s())
        lapsed = None if self._exclusive else iso(self._clock.now() - grace)
        taken = await self._runner.record(
            claimed, lost_outcome("the platform stopped during the attempt"), lapsed_before=lapsed
        )
        if not self._exclusive and taken:
            await self._kill_containers_of(job_id, container_id)
        log.warning("attempt_recovered", job_id=job_id, attempt=attempt, taken=taken)

    async def _kill_containers_of(self, job_id: str, container_id: str | None) -> None:
        try:
            for ref in await self._executor.list_containers():
                if ref.job_id == job_id:
                    await self._executor.kill_and_remove(ref.container_id)
        except ExecutorError as exc:
            log.warning("recover_list_failed", job_id=job_id, error=exc.message)
        if container_id:
            await self._executor.kill_and_remove(container_id)

    async def _remove_orphans(self, *, jobs_only: bool = False) -> None:
        """Containers no attempt of ours owns. At start, all of them; later (`jobs_only`),
        those of attempts no task of ours runs: left behind when their removal failed, e.g. while
        the engine restarted. Prewarmed containers carry no job id and are left alone then."""
        try:
            refs = await self._executor.list_containers()
        except ExecutorError as exc:
            log.warning("orphan_sweep_failed", error=exc.message)
            return
        # beside other schedulers, a container is an orphan only when its job is not running
        # (theirs are running jobs; their prewarmed containers end at their own idle TTL)
        live = set() if self._exclusive else {r.job_id for r in await self._jobs.running()}
        for ref in refs:
            if not ref.job_id and (jobs_only or not self._exclusive):
                continue
            ours = ref.job_id in self._tasks
            if not ours and ref.job_id in live:
                continue  # another scheduler's running job
            if jobs_only and ours and ref.attempt != self._attempts.get(ref.job_id):
                ours = False  # an earlier attempt's container, its removal failed then
            if not ours:
                await self._executor.kill_and_remove(ref.container_id)
                log.info("orphan_removed", container_id=ref.container_id, job_id=ref.job_id)
