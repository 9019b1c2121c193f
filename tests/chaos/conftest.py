"""Fixtures of the chaos tier: the shell runtime image (the cheapest no-op job)."""

from __future__ import annotations

import pytest

from tests.support import build_test_images


@pytest.fixture(scope="session")
def shell_image() -> str:
    tags = build_test_images(["shell"])  # the base image comes with it
    return next(t for t in tags if "runtime-shell" in t)
