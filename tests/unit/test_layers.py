"""The layering of STYLE.md, kept by parsing imports: data flows one way. Every subpackage and
every top-level module of ava_platform has a rule; the checker is itself tested by planting a
bad import into a copy of the package tree."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ava_platform"
ROOT = "ava_platform"

# the top-level modules the rest stands on: pure, importing only each other
FOUNDATION = {"__init__", "clock", "config", "errors", "ids", "log", "models", "stopping"}
# the outermost layers: the composition root and the entry points may import any layer
OUTERMOST = {"__main__", "cli", "wiring"}
_ABOVE_FOUNDATION = {
    "api",
    "cli",
    "client",
    "executor",
    "images",
    "mcp",
    "metrics",
    "scheduler",
    "service",
    "store",
    "wiring",
}
# layer (a subpackage, or a top-level module by its name) -> the parts it must never import
FORBIDDEN: dict[str, set[str]] = {
    "api": {"cli", "executor", "images", "scheduler", "store", "wiring"},
    # the MCP endpoint: a face of the services, like the api
    "mcp": {"api", "cli", "client", "executor", "images", "scheduler", "store", "wiring"},
    "service": {"api", "cli", "executor", "images", "scheduler", "wiring"},
    "store": {"api", "cli", "client", "executor", "images", "scheduler", "service", "wiring"},
    "executor": {"api", "cli", "client", "images", "scheduler", "service", "store", "wiring"},
    "scheduler": {"api", "cli", "client", "images", "wiring"},
    "client": {"api", "cli", "executor", "images", "scheduler", "service", "store", "wiring"},
    # the runtime images' names for the CLI: a face of executor/runtime_images.py, no more
    "images": {"api", "cli", "client", "scheduler", "service", "store", "wiring"},
    "metrics": _ABOVE_FOUNDATION - {"metrics"},
    **{module: _ABOVE_FOUNDATION for module in FOUNDATION},
}
# the only package that talks to the Docker engine
DOCKER_LAYER = "executor"


def _module_parts(path: Path, package: Path) -> list[str]:
    relative = path.relative_to(package).with_suffix("")
    parts = [ROOT, *relative.parts]
    return parts[:-1] if parts[-1] == "__init__" else parts  # a package's __init__ is the package


def _resolve(node: ast.ImportFrom, parts: list[str], is_init: bool) -> str:
    if node.level == 0:
        return node.module or ""
    # `from .x import y` is relative to the module's package (an __init__ is its own package)
    base = parts if is_init else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _dynamic_import(node: ast.Call) -> str | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in ("import_module", "__import__") and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def imports(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every module `path` imports, at any depth (functions, TYPE_CHECKING blocks, relative
    imports resolved, `from ava_platform import x` as `ava_platform.x`, import_module("...")
    with a literal argument)."""
    parts = _module_parts(path, package)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node, parts, path.name == "__init__.py")
            if module == ROOT:  # `from ava_platform import api`: the layer is the name
                names.update(f"{module}.{alias.name}" for alias in node.names)
            else:
                names.add(module)
        elif isinstance(node, ast.Call) and (dynamic := _dynamic_import(node)):
            names.add(dynamic)
    return names


def layer_of(path: Path, package: Path = PACKAGE) -> str:
    relative = path.relative_to(package)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _modules(package: Path) -> Iterator[Path]:
    return (p for p in sorted(package.rglob("*.py")) if "__pycache__" not in p.parts)


def _offences(path: Path, package: Path) -> Iterator[str]:
    layer, where = layer_of(path, package), path.relative_to(package).as_posix()
    for name in sorted(imports(path, package)):
        parts = name.split(".")
        if parts[0] == "docker" and layer != DOCKER_LAYER:
            yield f"{where} imports {name}: only {DOCKER_LAYER}/ may import docker"
        elif parts[0] == ROOT and len(parts) > 1 and parts[1] in FORBIDDEN.get(layer, ()):
            yield f"{where} imports {name}: {layer} must not import {parts[1]}"


def violations(package: Path = PACKAGE) -> list[str]:
    """Every import in the tree at `package` that breaks a rule, one line each."""
    return [offence for path in _modules(package) for offence in _offences(path, package)]


# --- the package ---------------------------------------------------------------------------------


def test_the_package_keeps_its_layers() -> None:
    assert violations() == []


def test_every_layer_and_top_level_module_has_a_rule() -> None:
    layers = {layer_of(path) for path in _modules(PACKAGE)}
    assert layers - FORBIDDEN.keys() - OUTERMOST == set()
    assert {"scheduler", "models", "errors", "clock", "ids", "config"} <= FORBIDDEN.keys()


def test_the_engine_adapters_are_seen_importing_docker() -> None:
    # guards the guard: the modules known to use the engine are found importing it
    importers = {
        path.relative_to(PACKAGE).as_posix()
        for path in _modules(PACKAGE)
        if any(name.split(".")[0] == "docker" for name in imports(path))
    }
    assert {"executor/containers.py", "executor/builds.py", "executor/engine.py"} <= importers
    assert all(name.startswith(f"{DOCKER_LAYER}/") for name in importers)


# --- the checker, on a copy of the package with one bad import planted ---------------------------


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree") / ROOT
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


PLANTED = [
    # docker outside the executor
    ("images.py", "import docker\n", "only executor/ may import docker"),
    ("service/planted.py", "from docker.errors import APIError\n", "only executor/"),
    ("api/planted.py", "import docker.types\n", "only executor/ may import docker"),
    # the api never imports the executor
    (
        "api/planted.py",
        "from ava_platform.executor.docker import X\n",
        "api must not import executor",
    ),
    ("api/planted.py", "from ava_platform import executor\n", "api must not import executor"),
    ("api/planted.py", "from ..executor import base\n", "api must not import executor"),
    ("api/sub/__init__.py", "from ...executor import base\n", "api must not import executor"),
    # the store never imports the service or the scheduler
    (
        "store/planted.py",
        "from ava_platform.service.jobs import X\n",
        "store must not import service",
    ),
    (
        "store/planted.py",
        "def f() -> None:\n    import ava_platform.service\n",
        "store must not import service",
    ),
    ("store/planted.py", "from .. import scheduler\n", "store must not import scheduler"),
    # the scheduler never imports the api
    (
        "scheduler/planted.py",
        "from ava_platform.api.app import X\n",
        "scheduler must not import api",
    ),
    ("scheduler/planted.py", "import ava_platform.api.errors\n", "scheduler must not import api"),
    # the foundation imports nothing above it
    ("models.py", "from ava_platform.store.db import X\n", "models must not import store"),
    ("errors.py", "from ava_platform import service\n", "errors must not import service"),
    ("clock.py", "if False:\n    from ava_platform.scheduler import loop\n", "clock must not"),
    ("ids.py", "import importlib\nimportlib.import_module('ava_platform.api')\n", "ids must not"),
    ("config.py", "from ava_platform.wiring import X\n", "config must not import wiring"),
]


@pytest.mark.parametrize(("where", "source", "expected"), PLANTED)
def test_a_planted_bad_import_is_reported(
    package_copy: Path, where: str, source: str, expected: str
) -> None:
    planted = package_copy / where
    before = planted.read_text() if planted.exists() else None
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text((before or "") + "\n" + source)
    try:
        found = violations(package_copy)
    finally:
        if before is None:
            planted.unlink()
        else:
            planted.write_text(before)
    assert len(found) == 1, found
    assert found[0].startswith(f"{where} imports ")
    assert expected in found[0]


ALLOWED = [
    ("executor/planted.py", "import docker\nfrom ava_platform.errors import X\n"),
    ("api/planted.py", "from ava_platform.service.jobs import X\nfrom ..errors import Y\n"),
    ("store/planted.py", "from ava_platform.models import X\nfrom .db import Database\n"),
    ("scheduler/planted.py", "from ava_platform.executor.base import X\n"),
    ("models.py", "from ava_platform.errors import X\nfrom ava_platform import __version__\n"),
]


@pytest.mark.parametrize(("where", "source"), ALLOWED)
def test_an_allowed_import_is_not_reported(package_copy: Path, where: str, source: str) -> None:
    planted = package_copy / where
    before = planted.read_text() if planted.exists() else None
    planted.write_text((before or "") + "\n" + source)
    try:
        assert violations(package_copy) == []
    finally:
        if before is None:
            planted.unlink()
        else:
            planted.write_text(before)
