"""`ava jobs …`: run (optionally waiting and following the logs), get, list, logs, cancel, wait.

`ava jobs run --wait` exits 0 when the job succeeded, 1 failed, 2 usage or auth error,
3 timed out (the job's own timeout, or --timeout elapsing first), 4 cancelled.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from ava_platform.cli.config import CliOptions, make_async_client, make_client
from ava_platform.cli.output import (
    EXIT_BY_STATUS,
    EXIT_TIMEOUT,
    JsonFlag,
    Output,
    handle_errors,
    options,
    output,
)
from ava_platform.cli.workers import WorkerRef, resolve_worker
from ava_platform.client import AsyncAvaClient, LogEntry
from ava_platform.client.errors import JobFinishedError
from ava_platform.clock import parse_iso
from ava_platform.models import Job, JobStatus

jobs_app = typer.Typer(help="Jobs: executions of a worker.", no_args_is_help=True)

LIST_COLUMNS = ("id", "worker_id", "status", "attempt", "trigger", "created_at", "finished_at")
JOB_FIELDS = (
    "id",
    "worker_id",
    "worker_version",
    "status",
    "attempt",
    "max_retries",
    "trigger",
    "created_by",
    "created_at",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "error",
    "result",
    "rerun_of",
    "webhook_url",
)
JobId = Annotated[str, typer.Argument(help="Job id (job_…).")]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(min=0, help="Stop waiting after S seconds (exit 3); the job keeps running."),
]
FollowOpt = Annotated[
    bool, typer.Option("--follow", "-f", help="Stream the job's logs while waiting.")
]
CancelOpt = Annotated[bool, typer.Option(help="Cancel the job when --timeout elapses.")]


def parse_input(raw: str | None) -> Any:
    """JSON text, `@file`, or `@-` for stdin."""
    if raw is None:
        return {}
    text = raw
    if raw.startswith("@"):
        source = raw[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {source}: {exc}", param_hint="--input") from None
    try:
        return msgspec.json.decode(text.encode())
    except msgspec.DecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="--input") from None


@jobs_app.command("run")
@handle_errors
def run(
    ctx: typer.Context,
    worker: WorkerRef,
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="JSON, @file, or @- for stdin.")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for the job; exit code tells how it ended.")
    ] = False,
    follow: FollowOpt = False,
    timeout: TimeoutOpt = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Repeats with the same key return the first job.")
    ] = None,
    cancel_on_timeout: CancelOpt = False,
    json_out: JsonFlag = False,
) -> None:
    """Queue a job of WORKER; with --wait (or --follow, or --timeout) wait for its end."""
    out = output(ctx, json_out)
    payload = parse_input(input)
    with make_client(options(ctx)) as client:
        job = client.run_job(
            resolve_worker(client, worker), payload, idempotency_key=idempotency_key
        )
    if not (wait or follow or timeout is not None):
        if out.json_mode:
            out.json(job)
        else:
            out.line(job.id)
            out.note(f"queued {job.id}; see it with: ava jobs get {job.id}")
        return
    out.note(f"{job.id} {job.status.value}")
    _wait_and_exit(options(ctx), out, job.id, follow, timeout, cancel_on_timeout)


@jobs_app.command("wait")
@handle_errors
def wait_command(
    ctx: typer.Context,
    job_id: JobId,
    follow: FollowOpt = False,
    timeout: TimeoutOpt = None,
    cancel_on_timeout: CancelOpt = False,
    json_out: JsonFlag = False,
) -> None:
    """Wait for a job to end; same exit codes as `run --wait`."""
    _wait_and_exit(options(ctx), output(ctx, json_out), job_id, follow, timeout, cancel_on_timeout)


def _wait_and_exit(
    opts: CliOptions,
    out: Output,
    job_id: str,
    follow: bool,
    timeout_s: float | None,
    cancel_on_timeout: bool,
) -> None:
    try:
        final = asyncio.run(_await_job(opts, out, job_id, follow, timeout_s, cancel_on_timeout))
    except KeyboardInterrupt:
        out.note(f"stopped waiting; {job_id} goes on (ava jobs cancel {job_id} to stop it)")
        raise typer.Exit(130) from None
    report(out, final)
    raise typer.Exit(EXIT_BY_STATUS[final.status.value])


async def _await_job(
    opts: CliOptions,
    out: Output,
    job_id: str,
    follow: bool,
    timeout_s: float | None,
    cancel_on_timeout: bool,
) -> Job:
    async with make_async_client(opts) as client:
        try:
            if follow:
                await asyncio.wait_for(_follow(client, out, job_id), timeout_s)
                return await client.wait_for_job(job_id, timeout_s=30)
            with out.waiting(f"{job_id}: waiting") as update:

                def pending(job: Job) -> None:
                    update(f"{job_id}: {job.status.value} (attempt {job.attempt or 1})")

                wait = client.wait_for_job(job_id, on_pending=pending)
                return await asyncio.wait_for(wait, timeout_s)
        except TimeoutError:
            await _timed_out(client, out, job_id, timeout_s, cancel_on_timeout)
            raise typer.Exit(EXIT_TIMEOUT) from None


async def _follow(client: AsyncAvaClient, out: Output, job_id: str) -> None:
    """Each log line as it arrives: to stdout, or to stderr when stdout carries --json."""
    stream = sys.stderr if out.json_mode else sys.stdout
    attempt = 1
    async for event in client.follow_logs(job_id):
        if not isinstance(event, LogEntry):
            return
        if event.attempt != attempt:
            attempt = event.attempt
            out.note(f"--- attempt {attempt} ---")
        stream.write(event.line + "\n")
        stream.flush()


async def _timed_out(
    client: AsyncAvaClient, out: Output, job_id: str, timeout_s: float | None, cancel: bool
) -> None:
    if cancel:
        try:
            await client.cancel_job(job_id)
            out.note(f"{job_id}: not finished after {timeout_s:g}s; cancelled it")
            return
        except JobFinishedError:
            pass
    out.note(f"{job_id}: not finished after {timeout_s:g}s; it keeps running")


def _seconds(job: Job) -> str:
    if not job.started_at or not job.finished_at:
        return ""
    delta = parse_iso(job.finished_at) - parse_iso(job.started_at)
    return f" in {delta.total_seconds():.1f}s"


def report(out: Output, job: Job) -> None:
    """The job's end: its JSON with --json; else a summary on stderr and the result on stdout."""
    if out.json_mode:
        out.json(job)
        return
    if job.status is JobStatus.SUCCEEDED:
        out.note(f"{job.id} succeeded{_seconds(job)}")
        out.line(msgspec.json.encode(job.result).decode())
        return
    reason = f": {job.error.type}: {job.error.message}" if job.error else ""
    out.note(f"{job.id} {job.status.value}{_seconds(job)}{reason}")


@jobs_app.command("get")
@handle_errors
def get_job(ctx: typer.Context, job_id: JobId, json_out: JsonFlag = False) -> None:
    """Show one job."""
    with make_client(options(ctx)) as client:
        job = client.get_job(job_id)
    output(ctx, json_out).record(job, JOB_FIELDS)


@jobs_app.command("list")
@handle_errors
def list_jobs(
    ctx: typer.Context,
    status: Annotated[JobStatus | None, typer.Option(help="Only this status.")] = None,
    worker: Annotated[str | None, typer.Option(help="Only this worker's (id or name).")] = None,
    error_type: Annotated[str | None, typer.Option(help="Only errors of this type.")] = None,
    created_after: Annotated[str | None, typer.Option(help="ISO 8601 time, with offset.")] = None,
    created_before: Annotated[str | None, typer.Option(help="ISO 8601 time, with offset.")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=100)] = 20,
    json_out: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    with make_client(options(ctx)) as client:
        worker_id = resolve_worker(client, worker) if worker else None
        result = client.list_jobs(
            status=status,
            worker_id=worker_id,
            page=page,
            per_page=per_page,
            error_type=error_type,
            created_after=created_after,
            created_before=created_before,
        )
    output(ctx, json_out).table(result.data, LIST_COLUMNS, page=result)


@jobs_app.command("logs")
@handle_errors
def logs(
    ctx: typer.Context,
    job_id: JobId,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming until the job ends.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object a line: ts, stream, attempt, line.")
    ] = False,
) -> None:
    """A job's log lines (stdout and stderr of every attempt)."""
    json_mode = json_out or options(ctx).json
    with make_client(options(ctx)) as client:
        if follow:
            for event in client.follow_logs(job_id):
                if isinstance(event, LogEntry):
                    _print_entry(event, json_mode)
        elif json_mode:
            for entry in client.job_log_entries(job_id):
                _print_entry(entry, True)
        else:
            sys.stdout.write(client.job_logs(job_id))


def _print_entry(entry: LogEntry, json_mode: bool) -> None:
    text = msgspec.json.encode(entry).decode() if json_mode else entry.line
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@jobs_app.command("cancel")
@handle_errors
def cancel(ctx: typer.Context, job_id: JobId, json_out: JsonFlag = False) -> None:
    """Cancel a queued or running job."""
    with make_client(options(ctx)) as client:
        job = client.cancel_job(job_id)
    out = output(ctx, json_out)
    if out.json_mode:
        out.json(job)
    else:
        state = "cancel requested" if job.status is JobStatus.RUNNING else job.status.value
        out.note(f"{job.id}: {state}")
