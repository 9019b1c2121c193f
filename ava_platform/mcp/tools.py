"""The tenant's workers as tools: the catalogue a client lists, and a call run as a job.

A call is refused before anything is queued when the role may not run jobs or the arguments
break the worker's `input_schema`; otherwise it is a job like any other (`trigger = "mcp"`),
followed until it ends, each log line handed to `report` as it is stored."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec

from ava_platform.errors import AvaError, Conflict, NotFound
from ava_platform.mcp.names import tool_names
from ava_platform.models import FINISHED, Job, JobStatus, LogLine, Trigger, Worker, WorkerStatus
from ava_platform.service.auth import Permission, Principal
from ava_platform.service.input_schema import ANY_OBJECT, argument_problems
from ava_platform.service.jobs import JobService
from ava_platform.service.workers import WorkerQuery, WorkerService

PAGE_WORKERS = 500
PAGE_LINES = 1000
POLL_S = 1.0  # a missed wake-up costs at most this much latency

Report = Callable[[str, LogLine], Awaitable[None]]  # (job id, line)


class UnknownTool(Exception):
    """No worker of the caller's tenant has this tool name (a protocol error, not a tool's)."""


@dataclass(frozen=True)
class Outcome:
    """What a call ended with: `body` is the structured content; an error has `body["error"]`
    with `type` and `message`."""

    body: dict[str, Any]
    is_error: bool
    text: str


class WorkerTools:
    def __init__(self, workers: WorkerService, jobs: JobService) -> None:
        self._workers = workers
        self._jobs = jobs

    async def catalogue(self, who: Principal) -> dict[str, Worker]:
        """Tool name -> worker, over every worker of the tenant (names stay stable)."""
        found: list[Worker] = []
        for status in (None, WorkerStatus.DEPRECATED):  # None: active and paused
            found.extend(await self._all(who, status))
        return tool_names(found)

    async def listed(self, who: Principal) -> list[tuple[str, Worker]]:
        """The tools a client sees: active workers only, newest first."""
        active = [(n, w) for n, w in (await self.catalogue(who)).items() if _listed(w)]
        return sorted(active, key=lambda item: (item[1].created_at, item[1].id), reverse=True)

    async def call(self, who: Principal, name: str, arguments: Any, report: Report) -> Outcome:
        try:
            who.require(Permission.RUN)
        except AvaError as exc:
            return refused(exc.code, exc.message)
        worker = (await self.catalogue(who)).get(name)
        if worker is None:
            raise UnknownTool(name)
        problems = argument_problems(worker.input_schema, arguments)
        if problems:
            first = problems[0]
            where = f" at {first['path']}" if first["path"] else ""
            return refused("validation_error", f"arguments{where}: {first['message']}", problems)
        try:
            job, _ = await self._jobs.trigger(who, worker.id, arguments, trigger=Trigger.MCP)
        except AvaError as exc:
            return refused(exc.code, exc.message)
        try:
            await self._follow(who, job.id, report)
        except BaseException:  # the client cancelled the request (or went away): so is the job
            with anyio.CancelScope(shield=True):
                await self._cancel(who, job.id)
            raise
        return finished(await self._jobs.get(who, job.id))

    async def _follow(self, who: Principal, job_id: str, report: Report) -> None:
        """Every log line, in order, until the job has ended and its last line is reported."""
        after = 0
        while True:
            status = await self._jobs.status(job_id)
            page = await self._jobs.logs(who, job_id, after_seq=after, limit=PAGE_LINES)
            for line in page:
                after = line.seq
                await report(job_id, line)
            if len(page) == PAGE_LINES:
                continue
            if status is None or status in FINISHED:
                return
            await self._jobs.wait_changed(job_id, POLL_S)

    async def _cancel(self, who: Principal, job_id: str) -> None:
        with contextlib.suppress(Conflict, NotFound):  # it ended meanwhile
            await self._jobs.cancel(who, job_id)

    async def _all(self, who: Principal, status: WorkerStatus | None) -> list[Worker]:
        found: list[Worker] = []
        for page in range(1, 10_000):
            query = WorkerQuery(status=status, page=page, per_page=PAGE_WORKERS)
            items, total = await self._workers.list(who, query)
            found.extend(items)
            if not items or len(found) >= total:
                break
        return found


def _listed(worker: Worker) -> bool:
    return worker.status is WorkerStatus.ACTIVE


def tool_schema(worker: Worker) -> dict[str, Any]:
    return dict(worker.input_schema) if worker.input_schema is not None else dict(ANY_OBJECT)


def refused(kind: str, message: str, details: Any = None) -> Outcome:
    error: dict[str, Any] = {"type": kind, "message": message}
    if details is not None:
        error["details"] = details
    return Outcome(body={"error": error}, is_error=True, text=f"{kind}: {message}")


def finished(job: Job) -> Outcome:
    """A succeeded job's result; any other end is a tool error with the job's (redacted)
    error, or the status itself when the job stored none."""
    body: dict[str, Any] = {"job_id": job.id, "status": job.status.value}
    if job.status is JobStatus.SUCCEEDED:
        body["result"] = job.result
        return Outcome(body=body, is_error=False, text=msgspec.json.encode(job.result).decode())
    kind = job.error.type if job.error else job.status.value
    message = job.error.message if job.error else f"job {job.status.value}"
    body["error"] = {"type": kind, "message": message}
    return Outcome(body=body, is_error=True, text=f"{kind}: {message}")
