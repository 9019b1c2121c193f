"""`ava jobs rerun` (one job, or every finished job a filter finds) and `ava tenants quota`
(read a tenant's quotas; the platform operator sets them)."""

from __future__ import annotations

from typing import Annotated

import typer

from ava_platform.cli.config import make_client
from ava_platform.cli.output import JsonFlag, handle_errors, options, output
from ava_platform.models import FINISHED, Job

MAX_BULK = 100
RERUN_COLUMNS = ("id", "rerun_of", "worker_id", "worker_version", "status")
QUOTA_FIELDS = (
    "tenant_id",
    "max_running",
    "max_queued",
    "effective_max_running",
    "effective_max_queued",
    "running",
    "queued",
    "updated_at",
    "updated_by",
)

tenants_app = typer.Typer(
    help="Tenants: quotas (set by the platform operator).", no_args_is_help=True
)
quota_app = typer.Typer(help="A tenant's quotas and load.", no_args_is_help=True)
tenants_app.add_typer(quota_app, name="quota")


def rerun(
    ctx: typer.Context,
    job_ids: Annotated[list[str] | None, typer.Argument(help="Finished jobs to re-run.")] = None,
    same_version: Annotated[
        bool, typer.Option(help="Run each on its old worker version, if still runnable.")
    ] = False,
    error_type: Annotated[
        str | None, typer.Option(help="Instead of ids: finished jobs whose error has this type.")
    ] = None,
    created_after: Annotated[
        str | None, typer.Option(help="With a filter: created after this ISO 8601 time.")
    ] = None,
    created_before: Annotated[
        str | None, typer.Option(help="With a filter: created before this ISO 8601 time.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Re-run finished jobs with the same input; each new job records `rerun_of`."""
    filtered = any(f is not None for f in (error_type, created_after, created_before))
    if bool(job_ids) == filtered:
        raise typer.BadParameter("give job ids, or filters (--error-type, --created-…), not both")
    with make_client(options(ctx)) as client:
        if filtered:
            page = client.list_jobs(
                error_type=error_type,
                created_after=created_after,
                created_before=created_before,
                per_page=MAX_BULK,
            )
            job_ids = [j.id for j in page.data if j.status in FINISHED]
        new: list[Job] = [client.rerun_job(i, same_version=same_version) for i in job_ids or []]
    out = output(ctx, json_out)
    if len(new) == 1 and not filtered:
        out.record(new[0], RERUN_COLUMNS)
    else:
        out.table(new, RERUN_COLUMNS)


def register(jobs_app: typer.Typer) -> None:
    jobs_app.command("rerun")(handle_errors(rerun))


@quota_app.command("show")
@handle_errors
def show_quota(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    json_out: JsonFlag = False,
) -> None:
    """A tenant's quotas (as set, and in force) and its queued and running jobs."""
    with make_client(options(ctx)) as client:
        quota = client.get_quota(tenant)
    output(ctx, json_out).record(quota, QUOTA_FIELDS)


@quota_app.command("set")
@handle_errors
def set_quota(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    max_running: Annotated[
        int | None, typer.Option(min=1, help="Jobs running at once; omit: the default.")
    ] = None,
    max_queued: Annotated[
        int | None, typer.Option(min=1, help="Jobs queued at once; omit: the default.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Override a tenant's quotas (needs --role tenant-system-admin: the operator's role)."""
    with make_client(options(ctx)) as client:
        quota = client.set_quota(tenant, max_running=max_running, max_queued=max_queued)
    output(ctx, json_out).record(quota, QUOTA_FIELDS)
