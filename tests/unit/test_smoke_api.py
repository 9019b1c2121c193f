from __future__ import annotations

import httpx


def test_create_and_get_worker(api: httpx.Client) -> None:
    created = api.post("/workers", json={"name": "w", "runtime": "python"})
    assert created.status_code == 201, created.text
    got = api.get(f"/workers/{created.json()['id']}")
    assert got.json()["entrypoint"] == "main.py"
