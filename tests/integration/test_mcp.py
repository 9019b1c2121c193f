"""Workers as MCP tools, seen through the official SDK's own client over real HTTP, against a
real server and engine: the handshake, the tool list, calls that run real jobs, their log
lines as notifications, refusals, cancellation, and the list following the workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.integration.conftest import Ava, tenant_ava
from tests.integration.sources import NODE_ECHO, PY_RAISE, PY_SLEEP
from tests.support import headers

pytestmark = pytest.mark.docker

PY_ADD = (
    "import sys\n"
    "def handler(input, env):\n"
    "    print('adding', input['a'], input['b'], flush=True)\n"
    "    print('to stderr', file=sys.stderr, flush=True)\n"
    "    return {'sum': input['a'] + input['b']}\n"
)
ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
    "required": ["a", "b"],
}


@dataclass
class Seen:
    """What the client received besides results, in arrival order."""

    logs: list[types.LoggingMessageNotificationParams] = field(default_factory=list)
    progress: list[str | None] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)
    first_log: anyio.Event = field(default_factory=anyio.Event)
    list_changed: anyio.Event = field(default_factory=anyio.Event)

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)
        self.first_log.set()

    async def on_progress(self, _done: float, _total: float | None, message: str | None) -> None:
        self.progress.append(message)

    async def on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            return
        self.notifications.append(message.method)
        if isinstance(message, types.ToolListChangedNotification):
            self.list_changed.set()

    def lines(self) -> list[str]:
        return [log.data["line"] for log in self.logs]


@asynccontextmanager
async def mcp_client(
    server: str, identity: dict[str, str], seen: Seen | None = None
) -> AsyncIterator[ClientSession]:
    seen = seen or Seen()
    async with (
        httpx2.AsyncClient(headers=identity, timeout=60) as http,
        streamable_http_client(f"{server}/v1/ava/mcp", http_client=http) as (read, write),
        ClientSession(
            read, write, logging_callback=seen.on_log, message_handler=seen.on_message
        ) as session,
    ):
        await session.initialize()
        yield session


def make(ava: Ava, runtime: str, source: str, name: str, **fields: Any) -> dict[str, Any]:
    """A worker without network access: no MCP test needs one."""
    return ava.worker(runtime, source, name=name, network="none", **fields)


def identity_of(ava: Ava, role: str | None = None) -> dict[str, str]:
    names = ("x-internal-secret", "x-tenant-id", "x-user-id", "x-platform-role")
    found = {name: ava.client.headers[name] for name in names}
    if role:
        found["x-platform-role"] = role
    return found


def job_total(ava: Ava, worker_id: str) -> int:
    resp = ava.client.get(f"/workers/{worker_id}/jobs")
    assert resp.status_code == 200, resp.text
    return int(resp.json()["meta"]["total"])


async def test_initialize_and_list_only_this_tenants_active_workers(
    jobs_server: str, ava: Ava
) -> None:
    add = make(ava, "python", PY_ADD, name="Add Numbers", description="Adds a and b",
                     input_schema=ADD_SCHEMA)  # fmt: skip
    free = make(ava, "nodejs", NODE_ECHO, name="echo", description="Echoes")
    paused = make(ava, "python", PY_ADD, name="paused one")
    assert (
        ava.client.patch(f"/workers/{paused['id']}", json={"status": "paused"}).status_code == 200
    )
    gone = make(ava, "python", PY_ADD, name="deprecated one")
    assert ava.client.delete(f"/workers/{gone['id']}").status_code in (200, 204)
    twin = make(ava, "python", PY_ADD, name="ADD  numbers!")  # sanitised: add_numbers too
    with tenant_ava(jobs_server) as other:
        make(other, "python", PY_ADD, name="other tenant tool")

    async with mcp_client(jobs_server, identity_of(ava)) as session:
        assert session.initialize_result is not None
        init = session.initialize_result
        assert init.server_info.name == "ava"
        assert init.capabilities.tools is not None and init.capabilities.tools.list_changed
        tools = {t.name: t for t in (await session.list_tools()).tools}

    twin_name = f"add_numbers__{twin['id'][-10:]}"
    assert set(tools) == {"add_numbers", "echo", twin_name}
    assert tools["add_numbers"].description == "Adds a and b"
    assert tools["add_numbers"].input_schema == ADD_SCHEMA
    assert tools["echo"].input_schema == {"type": "object"}  # no schema: any object
    assert add["input_schema"] == ADD_SCHEMA and free["input_schema"] is None


async def test_calls_run_jobs_and_stream_their_log_lines(jobs_server: str, ava: Ava) -> None:
    add = make(ava, "python", PY_ADD, name="add", input_schema=ADD_SCHEMA)
    make(ava, "nodejs", NODE_ECHO, name="node echo")
    seen = Seen()
    async with mcp_client(jobs_server, identity_of(ava), seen) as session:
        result = await session.call_tool(
            "add", {"a": 2, "b": 3}, progress_callback=seen.on_progress
        )
        lines_at_result = seen.lines()
        echoed = await session.call_tool("node_echo", {"hello": "mcp"})

    assert not result.is_error, result
    assert result.structured_content is not None
    assert result.structured_content["result"] == {"sum": 5}
    assert result.structured_content["status"] == "succeeded"
    assert isinstance(result.content[0], types.TextContent)
    assert result.content[0].text == '{"sum":5}'
    # every line had arrived, as a log message and as progress, before the result did
    assert sorted(lines_at_result) == ["adding 2 3", "to stderr"]
    assert sorted(p or "" for p in seen.progress) == ["adding 2 3", "to stderr"]
    levels = {log.data["line"]: log.level for log in seen.logs}
    assert levels == {"adding 2 3": "info", "to stderr": "warning"}
    job = ava.client.get(f"/jobs/{result.structured_content['job_id']}").json()
    assert job["trigger"] == "mcp" and job["input"] == {"a": 2, "b": 3}
    assert job["worker_id"] == add["id"]

    assert not echoed.is_error, echoed
    assert echoed.structured_content is not None
    assert echoed.structured_content["result"] == {"echo": {"hello": "mcp"}}


async def test_refusals_and_failures_are_tool_errors(jobs_server: str, ava: Ava) -> None:
    add = make(ava, "python", PY_ADD, name="add", input_schema=ADD_SCHEMA)
    make(ava, "python", PY_RAISE, name="raiser")
    async with mcp_client(jobs_server, identity_of(ava)) as session:
        bad = await session.call_tool("add", {"a": "two"})
        raised = await session.call_tool("raiser", {"why": "on purpose"})
        with pytest.raises(MCPError, match="unknown tool"):
            await session.call_tool("no_such_worker", {})
    async with mcp_client(jobs_server, identity_of(ava, role="tenant-viewer")) as viewer:
        listed = {t.name for t in (await viewer.list_tools()).tools}
        refused = await viewer.call_tool("add", {"a": 1, "b": 2})

    assert bad.is_error and bad.structured_content is not None
    error = bad.structured_content["error"]
    assert error["type"] == "validation_error"
    assert {d["path"] for d in error["details"]} == {"", "a"}  # b missing; a not a number
    assert job_total(ava, add["id"]) == 0  # refused before anything was queued

    assert raised.is_error and raised.structured_content is not None
    assert raised.structured_content["status"] == "failed"
    assert "boom: on purpose" in raised.structured_content["error"]["message"]
    assert raised.structured_content["error"]["type"]

    assert listed == {"add", "raiser"}  # a viewer may list...
    assert refused.is_error and refused.structured_content is not None
    assert refused.structured_content["error"]["type"] == "forbidden"  # ...but not call
    assert job_total(ava, add["id"]) == 0


async def test_cancelling_the_request_cancels_the_job(jobs_server: str, ava: Ava) -> None:
    sleeper = make(ava, "python", PY_SLEEP, name="sleeper")
    seen = Seen()
    async with mcp_client(jobs_server, identity_of(ava), seen) as session:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.call_tool, "sleeper", {"s": 60})
                await seen.first_log.wait()  # the job runs, and its lines stream while it does
                tg.cancel_scope.cancel()
    job_id = seen.logs[0].data["job_id"]
    job = ava.wait_for(job_id, timeout_s=30)
    assert job["status"] == "cancelled", job
    assert job["worker_id"] == sleeper["id"] and seen.lines() == ["sleeping"]


async def test_a_paused_worker_leaves_the_list_and_the_change_is_announced(
    jobs_server: str, ava: Ava
) -> None:
    keep = make(ava, "python", PY_ADD, name="keep")
    pause = make(ava, "python", PY_ADD, name="pause me")
    seen = Seen()
    async with mcp_client(jobs_server, identity_of(ava), seen) as session:
        before = {t.name for t in (await session.list_tools()).tools}
        await anyio.sleep(0.5)  # the client opens its stream for announcements after initialize
        resp = ava.client.patch(f"/workers/{pause['id']}", json={"status": "paused"})
        assert resp.status_code == 200, resp.text
        with anyio.fail_after(10):
            await seen.list_changed.wait()
        after = {t.name for t in (await session.list_tools()).tools}
    assert before == {"keep", "pause_me"}
    assert after == {"keep"}
    assert keep["status"] == "active"


def test_the_endpoint_answers_bad_auth_like_the_api(jobs_server: str) -> None:
    url = f"{jobs_server}/v1/ava/mcp"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    missing = httpx.post(url, json=body, timeout=10)
    wrong_role = httpx.post(url, json=body, headers=headers(role="tenant-owner"), timeout=10)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert wrong_role.status_code == 403
    assert wrong_role.json()["error"]["code"] == "forbidden"


def test_a_session_answers_only_the_tenant_and_user_that_opened_it(jobs_server: str) -> None:
    url = f"{jobs_server}/v1/ava/mcp"
    accept = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    owner = headers()
    opened = httpx.post(url, json=init, headers={**owner, **accept}, timeout=10)
    assert opened.status_code == 200, opened.text
    session = {"mcp-session-id": opened.headers["mcp-session-id"]}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    for stranger in (headers(), headers(tenant=owner["x-tenant-id"], user="usr_other")):
        resp = httpx.post(url, json=listing, headers={**stranger, **accept, **session}, timeout=10)
        assert resp.status_code == 404, resp.text  # as if the session did not exist


async def test_a_2026_client_lists_calls_and_hears_of_changes_on_its_listen_stream(
    jobs_server: str, ava: Ava
) -> None:
    """The SDK's high-level client speaks the 2026-07-28 revision: no session, per-request
    log opt-in, and change notifications only on a `subscriptions/listen` stream."""
    make(ava, "nodejs", NODE_ECHO, name="echo")
    pause = make(ava, "nodejs", NODE_ECHO, name="pause me")
    with tenant_ava(jobs_server) as other:
        stranger = make(other, "nodejs", NODE_ECHO, name="theirs")
        async with (
            httpx2.AsyncClient(headers=identity_of(ava), timeout=60) as http,
            Client(
                streamable_http_client(f"{jobs_server}/v1/ava/mcp", http_client=http),
                log_level="info",
            ) as client,
        ):
            assert client.session.protocol_version == "2026-07-28"
            before = {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("echo", {"n": 1})
            async with client.listen(tools_list_changed=True) as changes:
                # another tenant's change is not announced here; this tenant's is
                other.client.patch(f"/workers/{stranger['id']}", json={"status": "paused"})
                ava.client.patch(f"/workers/{pause['id']}", json={"status": "paused"})
                with anyio.fail_after(10):
                    event = await changes.__anext__()
            after = {t.name for t in (await client.list_tools()).tools}

    assert before == {"echo", "pause_me"} and after == {"echo"}
    assert not result.is_error, result.structured_content
    assert result.structured_content is not None
    assert result.structured_content["result"] == {"echo": {"n": 1}}
    assert type(event).__name__ == "ToolsListChanged"
