"""`ava schedules …`: cron schedules of a worker."""

from __future__ import annotations

from typing import Annotated

import typer

from ava_platform.cli.config import make_client
from ava_platform.cli.jobs import parse_input
from ava_platform.cli.output import JsonFlag, handle_errors, options, output
from ava_platform.cli.workers import WorkerRef, resolve_worker
from ava_platform.models import ScheduleCreate

schedules_app = typer.Typer(help="Cron schedules that queue jobs.", no_args_is_help=True)

COLUMNS = ("id", "worker_id", "cron", "timezone", "next_run_at", "created_at")
RUN_COLUMNS = ("slot", "status", "job_id", "reason", "created_at")
ScheduleId = Annotated[str, typer.Argument(help="Schedule id (sch_…).")]


@schedules_app.command("create")
@handle_errors
def create(
    ctx: typer.Context,
    worker: WorkerRef,
    cron: Annotated[str, typer.Option(help='5-field cron, e.g. "*/5 * * * *".')],
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "UTC",
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="JSON, @file, or @- for stdin.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Queue a job of WORKER on every cron slot."""
    body = ScheduleCreate(cron=cron, timezone=timezone, input=parse_input(input))
    with make_client(options(ctx)) as client:
        schedule = client.create_schedule(resolve_worker(client, worker), body)
    output(ctx, json_out).record(schedule)


@schedules_app.command("list")
@handle_errors
def list_schedules(
    ctx: typer.Context,
    worker: WorkerRef,
    page: Annotated[int, typer.Option(min=1)] = 1,
    json_out: JsonFlag = False,
) -> None:
    """A worker's schedules."""
    with make_client(options(ctx)) as client:
        result = client.list_schedules(resolve_worker(client, worker), page=page)
    output(ctx, json_out).table(result.data, COLUMNS, page=result)


@schedules_app.command("get")
@handle_errors
def get(
    ctx: typer.Context, worker: WorkerRef, schedule: ScheduleId, json_out: JsonFlag = False
) -> None:
    """Show one schedule."""
    with make_client(options(ctx)) as client:
        found = client.get_schedule(resolve_worker(client, worker), schedule)
    output(ctx, json_out).record(found)


@schedules_app.command("delete")
@handle_errors
def delete(ctx: typer.Context, worker: WorkerRef, schedule: ScheduleId) -> None:
    """Delete a schedule."""
    with make_client(options(ctx)) as client:
        client.delete_schedule(resolve_worker(client, worker), schedule)
    output(ctx).note(f"schedule {schedule} deleted")


@schedules_app.command("runs")
@handle_errors
def runs(
    ctx: typer.Context,
    worker: WorkerRef,
    schedule: ScheduleId,
    page: Annotated[int, typer.Option(min=1)] = 1,
    json_out: JsonFlag = False,
) -> None:
    """The slots a schedule fired: queued, skipped or failed."""
    with make_client(options(ctx)) as client:
        result = client.schedule_runs(resolve_worker(client, worker), schedule, page=page)
    output(ctx, json_out).table(result.data, RUN_COLUMNS, page=result)
