"""What goes into a runtime image's build context (its Dockerfile from images/<name>/, its shim
from runtimes/), the content hash that says whether an image is up to date, and the staged
context directory: file work only, no engine (executor/runtime_images.py builds from it)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from ava_platform.errors import BuildFailed

# Shim files shared between runtimes, copied next to each runtime's own shim files.
SHARED_SHIM_DIRS = {"python": ("_py",), "wasm": ("_py",), "nodejs": ("_js",), "deno": ("_js",)}


def project_root() -> Path:
    """The tree holding images/ and runtimes/: $AVA_PROJECT_ROOT, else the package's parent."""
    override = os.environ.get("AVA_PROJECT_ROOT")
    root = Path(override) if override else Path(__file__).resolve().parents[2]
    if not (root / "images").is_dir() or not (root / "runtimes").is_dir():
        raise BuildFailed(f"no images/ and runtimes/ under {root}; set AVA_PROJECT_ROOT")
    return root


def context_files(name: str, root: Path) -> Iterator[tuple[Path, str]]:
    """(source file, path inside the build context) for every file of one image's context."""
    image_dir = root / "images" / name
    if not (image_dir / "Dockerfile").is_file():
        raise BuildFailed(f"missing {image_dir / 'Dockerfile'}")
    shim_dirs = [] if name == "base" else [name, *SHARED_SHIM_DIRS.get(name, ())]
    for src_dir, prefix in [
        (image_dir, ""),
        *((root / "runtimes" / d, "shim/") for d in shim_dirs),
    ]:
        for path in sorted(src_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                yield path, prefix + path.relative_to(src_dir).as_posix()


def context_hash(files: Sequence[tuple[Path, str]], build_args: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for path, arcname in sorted(files, key=lambda f: f[1]):
        digest.update(f"{arcname}\0{path.stat().st_mode & 0o111}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for key in sorted(build_args):
        digest.update(f"arg\0{key}={build_args[key]}\0".encode())
    return digest.hexdigest()


def stage_context(files: Sequence[tuple[Path, str]], ca_bundle: Path | None, dest: Path) -> None:
    for path, arcname in files:
        target = dest / arcname
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    if ca_bundle is not None:
        # Not part of the content hash: it only lets the build reach PyPI, the image is the same.
        shutil.copyfile(ca_bundle, dest / "build-ca.crt")
