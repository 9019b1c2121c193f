"""The MCP server on the official SDK: streamable HTTP, one session manager per app.

The API's auth guard has run before a request reaches `handle` (401/403 in the one error
shape), and left the principal in the ASGI scope. Each MCP request acts as the principal of
its own HTTP request; a session is bound to the tenant and user that opened it (the SDK
answers 404 to anyone else presenting its id).

A change to a tenant's workers is announced as `notifications/tools/list_changed` to that
tenant only: to its sessions (2025 protocol revisions; on the stream a client opened with GET,
a client without one simply misses it), and on its `subscriptions/listen` streams (the
2026-07-28 revision, where requests carry no session): one subscription bus per tenant."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

import mcp_types as types
import structlog
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.connection import Connection, allowed_log_levels
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.types import Receive, Scope, Send

from ava_platform import __version__
from ava_platform.mcp.tools import Outcome, UnknownTool, WorkerTools, tool_schema
from ava_platform.models import LogLine
from ava_platform.service.auth import Principal

log = structlog.get_logger(__name__)

PRINCIPAL_KEY = "principal"  # where the auth guard leaves it, in scope["state"]
LOGGER = "ava.job"
SESSION_IDLE_S = 30 * 60
INSTRUCTIONS = (
    "Each tool is an AVA worker. A call runs it as a job in a fresh container, with the "
    "worker's timeout, retries and secrets; its log lines arrive as log and progress "
    "notifications, its result as structured content."
)


def _who(ctx: ServerRequestContext[Any, Any]) -> Principal:
    if ctx.request is None:  # only streamable HTTP serves this server
        raise RuntimeError("an MCP request without its HTTP request")
    return principal_of(ctx.request.scope)


def principal_of(scope: Scope) -> Principal:
    state = scope.get("state") or {}
    principal = state.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):  # the guard always sets it: a wiring bug
        raise RuntimeError("the MCP endpoint was reached without the auth guard")
    return principal


class _Server(Server[Any]):
    """Advertises `tools.listChanged`: the tool list follows the tenant's workers."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )


class McpEndpoint:
    def __init__(self, tools: WorkerTools, *, max_body_bytes: int) -> None:
        self._tools = tools
        self._sessions: dict[str, weakref.WeakSet[Connection]] = {}
        self._buses: dict[str, tuple[InMemorySubscriptionBus, ListenHandler]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self.server = _Server(
            "ava",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=self._listen,
        )
        self.server.middleware.append(self._remember_session)
        self._manager = StreamableHTTPSessionManager(
            app=self.server,
            # the API's secret header already stops a page from another origin, DNS rebinding
            # included; the SDK's own Host check would refuse every non-loopback deployment
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=max_body_bytes,
            session_idle_timeout=SESSION_IDLE_S,
        )

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        return self._manager.run()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_of(scope)
        # the SDK binds a session to the credential that opened it: here, tenant and user
        token = AccessToken(
            token="", client_id=principal.tenant_id, subject=principal.user_id, scopes=[]
        )
        scope["user"] = AuthenticatedUser(token)
        await self._manager.handle_request(scope, receive, send)

    def workers_changed(self, tenant_id: str) -> None:
        """Announce the change to the tenant's clients, without holding up the caller."""
        connections = list(self._sessions.get(tenant_id, ()))
        bus = self._buses.get(tenant_id)
        if connections or bus:
            self._spawn(_announce(connections, bus[0] if bus else None))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a change made outside the server's loop: nobody here to tell
            work.close()
            return
        task = loop.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _remember_session(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        # the SDK's request context names the connection only privately (pinned version)
        connection = getattr(ctx.session, "_connection", None)
        if isinstance(connection, Connection) and connection.session_id and ctx.request:
            self._sessions.setdefault(_who(ctx).tenant_id, weakref.WeakSet()).add(connection)
        return await call_next(ctx)

    async def _listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        tenant = _who(ctx).tenant_id
        if tenant not in self._buses:
            bus = InMemorySubscriptionBus()
            self._buses[tenant] = (bus, ListenHandler(bus))
        return await self._buses[tenant][1](ctx, params)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], _: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        who = _who(ctx)
        tools = [
            types.Tool(
                name=name,
                title=worker.name,
                description=worker.description or None,
                input_schema=tool_schema(worker),
            )
            for name, worker in await self._tools.listed(who)
        ]
        return types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        who = _who(ctx)
        reporter = _Reporter(ctx)
        try:
            outcome = await self._tools.call(who, params.name, params.arguments or {}, reporter)
        except UnknownTool:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool: {params.name}") from None
        log.info("mcp_tool_called", tool=params.name, error=outcome.is_error)
        return _result(outcome)


class _Reporter:
    """A job's log lines as notifications on the call's own stream: a log message each, and
    a progress notification (the line as its message) when the client asked for progress."""

    def __init__(self, ctx: ServerRequestContext[Any, Any]) -> None:
        self._ctx = ctx
        self._count = 0
        # 2026-07-28 clients opt in to log messages per request; older ones always get them
        self._logs = "info" in allowed_log_levels(ctx.protocol_version, ctx.meta)

    async def __call__(self, job_id: str, line: LogLine) -> None:
        self._count += 1
        if self._logs:
            level: types.LoggingLevel = "warning" if line.stream == "stderr" else "info"
            data = {
                "job_id": job_id,
                "stream": line.stream,
                "attempt": line.attempt,
                "ts": line.ts,
                "line": line.line,
            }
            note = types.LoggingMessageNotification(
                params=types.LoggingMessageNotificationParams(level=level, data=data, logger=LOGGER)
            )
            await self._ctx.session.send_notification(note, related_request_id=self._ctx.request_id)
        await self._ctx.session.report_progress(self._count, message=line.line)


async def _announce(connections: list[Connection], bus: InMemorySubscriptionBus | None) -> None:
    for connection in connections:
        await connection.send_tool_list_changed()  # best effort: never raises
    if bus is not None:
        await bus.publish(ToolsListChanged())  # isolates its listeners: never raises


def _result(outcome: Outcome) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=outcome.text)],
        structured_content=outcome.body,
        is_error=outcome.is_error,
    )
