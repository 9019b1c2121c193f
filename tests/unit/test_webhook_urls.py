"""Which webhook URLs are refused: loopback, private, link-local (metadata), unless allowed;
and what a private URL gets from the API on a platform with the default settings."""

from __future__ import annotations

import httpx
import pytest

from ava_platform.errors import Invalid
from ava_platform.service.webhook_urls import resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8080/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://100.64.0.1/x",
    ],
)
async def test_private_targets_are_refused(url: str) -> None:
    with pytest.raises(Invalid, match="non-public"):
        await resolve(url, allow_private=False)
    assert (await resolve(url, allow_private=True)).address


@pytest.mark.parametrize("url", ["ftp://example.com/", "http://user:pw@8.8.8.8/", "http:///x"])
async def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(Invalid):
        await resolve(url, allow_private=True)


async def test_a_public_address_is_pinned_with_its_host() -> None:
    target = await resolve("https://8.8.8.8:8443/hook?a=1", allow_private=False)
    assert target.pinned_url() == "https://8.8.8.8:8443/hook?a=1"
    assert target.host == "8.8.8.8"


def test_the_api_refuses_a_private_webhook_url(api: httpx.Client) -> None:
    body = {"name": "w", "runtime": "python", "source_code": "x"}
    refused = api.post("/workers", json={**body, "webhook_url": "http://169.254.169.254/"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"][0]["field"] == "webhook_url"
    worker = api.post("/workers", json=body).json()
    patch = api.patch(f"/workers/{worker['id']}", json={"webhook_url": "http://127.0.0.1:9/"})
    assert patch.status_code == 422
    trig = api.post(
        f"/workers/{worker['id']}/jobs", json={"input": {}, "webhook_url": "http://10.0.0.1/"}
    )
    assert trig.status_code == 422
    assert api.get("/jobs").json()["meta"]["total"] == 0  # nothing queued
