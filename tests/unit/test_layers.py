"""The layering of STYLE.md, kept by parsing imports: data flows one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ava_platform"

# layer -> packages of ava_platform it must never import
FORBIDDEN = {
    "api": {"executor", "scheduler", "store", "wiring"},
    "service": {"api", "executor", "scheduler", "wiring"},
    "store": {"api", "service", "scheduler", "executor", "wiring"},
    "executor": {"api", "service", "store", "scheduler", "wiring"},
    "client": {"api", "service", "store", "scheduler", "executor", "wiring"},
}
# the only modules that talk to the Docker engine
DOCKER_MODULES = {"executor/docker.py", "executor/builds.py", "images.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_does_not_reach_into_forbidden_layers(layer: str) -> None:
    offenders = []
    for path in (PACKAGE / layer).rglob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "ava_platform" and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_only_the_engine_adapters_import_docker() -> None:
    importers = {
        str(p.relative_to(PACKAGE))
        for p in _modules()
        if any(n == "docker" or n.startswith("docker.") for n in _imports(p))
    }
    assert importers == DOCKER_MODULES


def test_the_checker_sees_imports() -> None:
    # guards the guard: a module known to import docker is found by the parser
    assert "docker" in _imports(PACKAGE / "executor" / "docker.py")
