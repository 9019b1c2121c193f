"""Authentication, identity headers, the role table and tenant isolation, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support import SECRET

Headers = Callable[..., dict[str, str]]
ROLES = [
    "tenant-system-admin",
    "tenant-admin",
    "tenant-developer",
    "tenant-operator",
    "tenant-viewer",
]
MANAGERS = {"tenant-system-admin", "tenant-admin", "tenant-developer"}
# (name, method, path, body, needs manage permission, success status)
ROUTES: list[tuple[str, str, str, Any, bool, int]] = [
    ("list", "GET", "/workers", None, False, 200),
    ("get", "GET", "/workers/{id}", None, False, 200),
    ("create", "POST", "/workers", {"name": "new", "runtime": "python"}, True, 201),
    ("patch", "PATCH", "/workers/{id}", {"name": "renamed"}, True, 200),
    ("delete", "DELETE", "/workers/{id}", None, True, 200),
]
ROUTE_IDS = [r[0] for r in ROUTES]


@pytest.fixture
def client(server_url: str) -> Iterator[httpx.Client]:
    """A client without any identity headers."""
    with httpx.Client(base_url=f"{server_url}/v1/ava", timeout=30) as c:
        yield c


def call(
    client: httpx.Client, route: tuple[str, str, str, Any, bool, int], worker_id: str, **kw: Any
) -> httpx.Response:
    _, method, path, body, _, _ = route
    return client.request(method, path.format(id=worker_id), json=body, **kw)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body


def make_worker(client: httpx.Client, headers: dict[str, str], name: str = "w") -> dict[str, Any]:
    response = client.post("/workers", json={"name": name, "runtime": "python"}, headers=headers)
    assert response.status_code == 201, response.text
    worker: dict[str, Any] = response.json()
    return worker


@pytest.fixture
def owner(client: httpx.Client, tenant_headers: Headers) -> tuple[dict[str, str], str]:
    headers = tenant_headers()
    return headers, make_worker(client, headers)["id"]


# --- 401 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [None, "", "wrong", SECRET[:-1], SECRET + "x", SECRET.upper(), "x" + SECRET],
    ids=["missing", "empty", "wrong", "prefix", "longer", "upper", "prefixed"],
)
@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_missing_or_wrong_secret_is_401_on_every_route(
    client: httpx.Client,
    owner: tuple[dict[str, str], str],
    route: tuple[str, str, str, Any, bool, int],
    secret: str | None,
) -> None:
    headers, worker_id = owner
    sent = {k: v for k, v in headers.items() if k != "x-internal-secret"}
    if secret is not None:
        sent["x-internal-secret"] = secret
    assert_error(call(client, route, worker_id, headers=sent), 401, "unauthorized")
    assert client.get(f"/workers/{worker_id}", headers=headers).json()["name"] == "w"


def test_non_ascii_secret_is_401(client: httpx.Client, tenant_headers: Headers) -> None:
    headers: dict[str, Any] = {**tenant_headers(), "x-internal-secret": "sécret".encode("latin-1")}
    assert_error(client.get("/workers", headers=headers), 401, "unauthorized")


# --- 400 ---------------------------------------------------------------------------------------

BAD_IDS: list[Any] = [
    "",
    "a" * 129,
    "ten.1",
    "ten 1",
    "ten/1",
    "ten:1",
    "ten%1",
    "тен".encode(),
    "ten\u00e9".encode("latin-1"),
]


@pytest.mark.parametrize("header", ["x-tenant-id", "x-user-id"])
@pytest.mark.parametrize("value", BAD_IDS, ids=repr)
def test_bad_tenant_or_user_id_is_400(
    client: httpx.Client, tenant_headers: Headers, header: str, value: Any
) -> None:
    headers: dict[str, Any] = {**tenant_headers(), header: value}
    body = assert_error(client.get("/workers", headers=headers), 400, "bad_header")
    assert header in body["error"]["message"]


@pytest.mark.parametrize("header", ["x-tenant-id", "x-user-id"])
def test_missing_tenant_or_user_id_is_400(
    client: httpx.Client, tenant_headers: Headers, header: str
) -> None:
    headers = {k: v for k, v in tenant_headers().items() if k != header}
    assert_error(client.get("/workers", headers=headers), 400, "bad_header")


@pytest.mark.parametrize("value", ["a", "A" * 128, "ten_01hxyz", "Z-9_z"])
def test_valid_ids_at_the_edges_are_accepted(
    client: httpx.Client, tenant_headers: Headers, value: str
) -> None:
    headers = tenant_headers(tenant=value, user=value)
    assert client.get("/workers", headers=headers).status_code == 200


# --- 403 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role", [None, "", "admin", "TENANT-ADMIN", "tenant admin", "tenant-owner", "root"]
)
@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_missing_or_unknown_role_is_403(
    client: httpx.Client,
    owner: tuple[dict[str, str], str],
    route: tuple[str, str, str, Any, bool, int],
    role: str | None,
) -> None:
    headers, worker_id = owner
    sent = {k: v for k, v in headers.items() if k != "x-platform-role"}
    if role is not None:
        sent["x-platform-role"] = role
    assert_error(call(client, route, worker_id, headers=sent), 403, "forbidden")


# --- ordering: 401 before 400 before 403 -----------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_secret_is_checked_before_ids_before_role(
    client: httpx.Client,
    owner: tuple[dict[str, str], str],
    route: tuple[str, str, str, Any, bool, int],
) -> None:
    _, worker_id = owner
    everything_wrong = {"x-tenant-id": "bad id!", "x-user-id": "", "x-platform-role": "nope"}
    assert_error(call(client, route, worker_id, headers=everything_wrong), 401, "unauthorized")
    secret_ok = {**everything_wrong, "x-internal-secret": SECRET}
    assert_error(call(client, route, worker_id, headers=secret_ok), 400, "bad_header")
    ids_ok = {**secret_ok, "x-tenant-id": "ten_x", "x-user-id": "usr_x"}
    assert_error(call(client, route, worker_id, headers=ids_ok), 403, "forbidden")


def test_auth_comes_before_body_checks(client: httpx.Client, tenant_headers: Headers) -> None:
    plain = {"content-type": "text/plain"}
    assert_error(client.post("/workers", content=b"x", headers=plain), 401, "unauthorized")
    big = b"x" * (3 * 1024 * 1024)
    assert_error(client.post("/workers", content=big, headers=plain), 401, "unauthorized")
    viewer = tenant_headers(role="tenant-viewer")
    body = {"name": "ok", "runtime": "python"}
    assert_error(client.post("/workers", json=body, headers=viewer), 403, "forbidden")


# --- the role table ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("role", ROLES)
def test_role_table_for_every_workers_route(
    client: httpx.Client,
    tenant_headers: Headers,
    role: str,
    route: tuple[str, str, str, Any, bool, int],
) -> None:
    admin = tenant_headers()
    as_role = {**admin, "x-platform-role": role}
    worker = make_worker(client, admin)
    name, _, _, _, needs_manage, success = route
    response = call(client, route, worker["id"], headers=as_role)
    after = client.get(f"/workers/{worker['id']}", headers=admin).json()
    listed = client.get("/workers", headers=admin).json()["meta"]["total"]
    if needs_manage and role not in MANAGERS:
        assert_error(response, 403, "forbidden")
        assert after == worker
        assert listed == 1
    else:
        assert response.status_code == success, response.text
        if name == "get":
            assert response.json() == worker
        elif name == "list":
            assert [w["id"] for w in response.json()["data"]] == [worker["id"]]


# --- health needs no headers -------------------------------------------------------------------


def test_health_endpoints_need_no_headers(server_url: str) -> None:
    assert httpx.get(f"{server_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server_url}/readyz")
    # 503 only when a dependency (e.g. the Docker engine) is down; never an auth error
    assert ready.status_code in (200, 503), ready.text
    assert ready.json()["checks"]["store"] is True


# --- tenancy -----------------------------------------------------------------------------------


def _without_id(response: httpx.Response, worker_id: str) -> str:
    return response.text.replace(worker_id, "<id>")


@pytest.mark.parametrize("route", [r for r in ROUTES if "{id}" in r[2]], ids=lambda r: r[0])
@pytest.mark.parametrize("role", ["tenant-system-admin", "tenant-admin", "tenant-developer"])
def test_other_tenants_worker_is_404_like_a_missing_one(
    client: httpx.Client,
    tenant_headers: Headers,
    owner: tuple[dict[str, str], str],
    route: tuple[str, str, str, Any, bool, int],
    role: str,
) -> None:
    headers, worker_id = owner
    before = client.get(f"/workers/{worker_id}", headers=headers).json()
    intruder = tenant_headers(role=role)
    foreign = call(client, route, worker_id, headers=intruder)
    missing_id = "wkr_" + "0" * 26
    missing = call(client, route, missing_id, headers=intruder)
    assert_error(foreign, 404, "worker_not_found")
    assert foreign.status_code == missing.status_code
    assert _without_id(foreign, worker_id) == _without_id(missing, missing_id)
    assert client.get(f"/workers/{worker_id}", headers=headers).json() == before


def test_same_user_id_in_another_tenant_sees_nothing(
    client: httpx.Client, tenant_headers: Headers
) -> None:
    mine = tenant_headers(user="usr_shared")
    theirs = tenant_headers(user="usr_shared")
    make_worker(client, mine, name="private report")
    for params in ({}, {"q": "private"}, {"q": "pr"}, {"filter[status]": "active"}):
        body = client.get("/workers", params=params, headers=theirs).json()
        assert body == {"data": [], "meta": {"page": 1, "per_page": 20, "total": 0}}
    assert client.get("/workers", headers=mine).json()["meta"]["total"] == 1


def test_deprecated_worker_of_another_tenant_stays_hidden(
    client: httpx.Client, tenant_headers: Headers, owner: tuple[dict[str, str], str]
) -> None:
    headers, worker_id = owner
    assert client.delete(f"/workers/{worker_id}", headers=headers).status_code == 200
    other = tenant_headers()
    listed = client.get("/workers", params={"filter[status]": "deprecated"}, headers=other)
    assert listed.json()["meta"]["total"] == 0
    assert_error(client.get(f"/workers/{worker_id}", headers=other), 404, "worker_not_found")


# --- authorization comes before body validation (403 whatever the body holds) -------------------

# (name, method, path, invalid body, roles that may not do it)
WRITES: list[tuple[str, str, str, Any, set[str]]] = [
    ("create", "POST", "/workers", {"name": ""}, {"tenant-operator", "tenant-viewer"}),
    ("patch", "PATCH", "/workers/{id}", {"memory_mb": 1}, {"tenant-operator", "tenant-viewer"}),
    ("delete", "DELETE", "/workers/{id}", None, {"tenant-operator", "tenant-viewer"}),
    (
        "deploy",
        "POST",
        "/workers/{id}/deploy",
        b"not an archive",
        {"tenant-operator", "tenant-viewer"},
    ),
    (
        "rollback",
        "POST",
        "/workers/{id}/rollback",
        {"version": 1e20},
        {"tenant-operator", "tenant-viewer"},
    ),
    (
        "schedule",
        "POST",
        "/workers/{id}/schedules",
        {"cron": "0 0 31 2 *"},
        {"tenant-operator", "tenant-viewer"},
    ),
    (
        "unschedule",
        "DELETE",
        "/workers/{id}/schedules/sch_x",
        None,
        {"tenant-operator", "tenant-viewer"},
    ),
    (
        "secret_put",
        "PUT",
        "/secrets/X",
        {"value": "a"},
        {"tenant-developer", "tenant-operator", "tenant-viewer"},
    ),
    (
        "secret_delete",
        "DELETE",
        "/secrets/X",
        None,
        {"tenant-developer", "tenant-operator", "tenant-viewer"},
    ),
    ("secret_list", "GET", "/secrets", None, {"tenant-operator", "tenant-viewer"}),
    ("trigger", "POST", "/workers/{id}/jobs", {"input": 1, "extra": True}, {"tenant-viewer"}),
    ("cancel", "POST", "/jobs/job_x/cancel", None, {"tenant-viewer"}),
]
DENIED = [(w, role) for w in WRITES for role in sorted(w[4])]


@pytest.fixture(scope="module")
def scripted_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.scripted import scripted_server

    with scripted_server(tmp_path_factory.mktemp("roles") / "ava.db", delay_s=5.0) as url:
        yield f"{url}/v1/ava"


@pytest.mark.parametrize(("write", "role"), DENIED, ids=[f"{w[0]}-{r}" for w, r in DENIED])
def test_a_role_that_may_not_write_gets_403_whatever_its_body(
    scripted_url: str,
    tenant_headers: Headers,
    write: tuple[str, str, str, Any, set[str]],
    role: str,
) -> None:
    name, method, path, body, _ = write
    admin = tenant_headers()
    with httpx.Client(base_url=scripted_url, timeout=30) as c:
        before = make_worker(c, admin)
        denied = {**admin, "x-platform-role": role}
        kw: dict[str, Any] = {"json": body} if isinstance(body, dict) else {}
        if isinstance(body, bytes):
            kw = {"content": body, "headers": {**denied, "content-type": "application/gzip"}}
        resp = c.request(
            method, path.format(id=before["id"]), headers=kw.pop("headers", denied), **kw
        )
        assert_error(resp, 403, "forbidden")
        # a body of the wrong media type is refused by role first too
        if method in ("POST", "PUT", "PATCH") and name != "deploy":
            resp = c.request(
                method,
                path.format(id=before["id"]),
                headers={**denied, "content-type": "text/plain"},
                content=b"x",
            )
            assert_error(resp, 403, "forbidden")
        assert c.get(f"/workers/{before['id']}", headers=admin).json() == before
        assert c.get(f"/workers/{before['id']}/jobs", headers=admin).json()["meta"]["total"] == 0


def test_a_viewer_may_neither_trigger_nor_cancel_a_real_job(
    scripted_url: str, tenant_headers: Headers
) -> None:
    admin = tenant_headers()
    viewer = {**admin, "x-platform-role": "tenant-viewer"}
    with httpx.Client(base_url=scripted_url, timeout=30) as c:
        worker = c.post(
            "/workers",
            json={"name": "w", "runtime": "python", "source_code": "x"},
            headers=admin,
        ).json()
        assert_error(
            c.post(f"/workers/{worker['id']}/jobs", json={}, headers=viewer), 403, "forbidden"
        )
        job = c.post(f"/workers/{worker['id']}/jobs", json={}, headers=admin)
        assert job.status_code == 202, job.text
        assert_error(c.post(f"/jobs/{job.json()['id']}/cancel", headers=viewer), 403, "forbidden")
        assert c.get(f"/jobs/{job.json()['id']}", headers=viewer).json()["status"] != "cancelled"
        assert c.get(f"/workers/{worker['id']}/jobs", headers=admin).json()["meta"]["total"] == 1
