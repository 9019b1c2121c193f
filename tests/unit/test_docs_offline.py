from __future__ import annotations

import re

import httpx


def test_docs_page_and_its_assets_are_served_by_the_app(server_url: str) -> None:
    page = httpx.get(f"{server_url}/docs")
    assert page.status_code == 200
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert refs, page.text
    assert all(ref.startswith("/") for ref in refs), refs  # nothing from a CDN: works offline
    for ref in refs:
        asset = httpx.get(f"{server_url}{ref}")
        assert asset.status_code == 200, ref
        assert len(asset.content) > 500
