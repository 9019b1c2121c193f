"""Safe unpacking of a deployed source bundle (tar.gz or zip) into a scratch directory. Pure
apart from the scratch directory it is given: nothing is ever written outside it.

Refused (BadRequest, 400), before or while unpacking, with the scratch dir then discarded by
the caller: absolute paths, `..` components, links whose target leaves the root, devices,
FIFOs and other special files, more than MAX_ENTRIES entries, more than MAX_EXPANDED_BYTES
expanded (counted on the bytes actually written, so a lying header gains nothing), and
archives that are not what their media type says.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ava_platform.errors import BadRequest

MAX_BUNDLE_BYTES = 50 * 1024 * 1024
MAX_EXPANDED_BYTES = 500 * 1024 * 1024
MAX_ENTRIES = 10_000
MAX_PATH_CHARS = 1024
CHUNK = 1024 * 1024
TAR_GZ = "tar.gz"
ZIP = "zip"


@dataclass(frozen=True)
class Bundle:
    root: Path  # the unpacked files
    digest: str  # sha256 of the archive as uploaded
    files: int
    expanded_bytes: int


@dataclass(frozen=True)
class _Entry:
    name: str  # normalised relative path
    kind: str  # "file" | "dir" | "symlink" | "hardlink"
    size: int
    link: str = ""  # symlink target as written, or hard link source (normalised)
    mode: int = 0o644


def refuse(message: str) -> BadRequest:
    return BadRequest(f"bundle refused: {message}", code="invalid_bundle")


def clean_name(raw: str) -> str:
    """A member name as a safe relative POSIX path, or refuse."""
    name = raw.replace("\\", "/") if "\\" in raw and "/" not in raw else raw
    if "\0" in name or len(name) > MAX_PATH_CHARS:
        raise refuse(f"bad entry name {raw[:80]!r}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise refuse(f"absolute path {raw[:200]!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refuse(f"path escapes the bundle root: {raw[:200]!r}")
    return "/".join(parts)


def check_link(name: str, target: str) -> None:
    """A symlink at `name` pointing at `target` must stay inside the root."""
    if not target or target.startswith("/") or "\0" in target:
        raise refuse(f"link {name!r} points outside the bundle ({target[:200]!r})")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        raise refuse(f"link {name!r} points outside the bundle ({target[:200]!r})")


def inside(root: Path, path: Path) -> bool:
    """Whether `path`, with every link on its way resolved, stays under `root`."""
    real = Path(os.path.realpath(path))
    return real == root or root in real.parents


def check_tree(root: Path) -> None:
    """No link anywhere in the unpacked tree resolves outside it. Each link was checked when
    placed, but a link placed later can turn an earlier one's path into a way out."""
    root = root.resolve()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink() and not inside(root, path):
                rel = path.relative_to(root).as_posix()
                raise refuse(f"link {rel!r} points outside the bundle")


class _Writer:
    """Writes entries under `root`, never following a link out of it, within the budgets."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.entries = 0
        self.files = 0
        self.written = 0

    def count(self) -> None:
        self.entries += 1
        if self.entries > MAX_ENTRIES:
            raise refuse(f"more than {MAX_ENTRIES} entries")

    def _path(self, name: str) -> Path:
        path = self.root / name
        parent = path.parent.resolve()
        if parent != self.root and self.root not in parent.parents:
            raise refuse(f"entry {name!r} would be written through a link out of the bundle")
        return parent / path.name

    def mkdir(self, name: str) -> None:
        if name:
            path = self._path(name)
            if path.is_symlink():
                raise refuse(f"entry {name!r} replaces a link")
            path.mkdir(parents=True, exist_ok=True)

    def _parent(self, name: str) -> Path:
        for i, _ in enumerate(parts := name.split("/")[:-1]):
            self.mkdir("/".join(parts[: i + 1]))
        return self._path(name)

    def file(self, name: str, data: IO[bytes], mode: int) -> None:
        path = self._parent(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        if path.is_symlink() or path.is_dir():
            raise refuse(f"entry {name!r} replaces a link or a directory")
        fd = os.open(path, flags, 0o755 if mode & 0o111 else 0o644)
        with os.fdopen(fd, "wb") as out:
            while chunk := data.read(CHUNK):
                self.written += len(chunk)
                if self.written > MAX_EXPANDED_BYTES:
                    raise refuse(f"expands past {MAX_EXPANDED_BYTES} bytes")
                out.write(chunk)
        self.files += 1

    def symlink(self, name: str, target: str) -> None:
        check_link(name, target)
        path = self._parent(name)
        if path.exists() or path.is_symlink():
            raise refuse(f"link {name!r} replaces an existing entry")
        os.symlink(target, path)
        # the target may pass through links placed before: resolve it against them
        if not inside(self.root, path):
            raise refuse(f"link {name!r} points outside the bundle through other links")

    def hardlink(self, name: str, source: str) -> None:
        src = self._path(source)
        if not src.is_file() or src.is_symlink():
            raise refuse(f"hard link {name!r} to {source!r}, which is not a file of the bundle")
        with src.open("rb") as data:
            self.file(name, data, src.stat().st_mode)


def _tar_entries(archive: tarfile.TarFile) -> Iterator[tuple[_Entry, IO[bytes] | None]]:
    for member in archive:
        name = clean_name(member.name)
        if member.isdir():
            yield _Entry(name, "dir", 0), None
        elif member.isreg():
            yield _Entry(name, "file", member.size, mode=member.mode), archive.extractfile(member)
        elif member.issym():
            yield _Entry(name, "symlink", 0, link=member.linkname), None
        elif member.islnk():
            yield _Entry(name, "hardlink", 0, link=clean_name(member.linkname)), None
        else:
            raise refuse(f"entry {name!r} is a device, FIFO or other special file")


class _Capped(io.RawIOBase):
    """A read cap on the decompressed tar stream: a gzip bomb stops at the budget."""

    def __init__(self, inner: IO[bytes], cap: int) -> None:
        self._inner = inner
        self._left = cap

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(min(len(buffer), self._left + 1))
        self._left -= len(data)
        if self._left < 0:
            raise refuse(f"expands past {MAX_EXPANDED_BYTES} bytes")
        buffer[: len(data)] = data
        return len(data)


def _unpack_tar(data: bytes, writer: _Writer) -> None:
    import gzip

    try:
        raw: IO[bytes] = gzip.GzipFile(fileobj=io.BytesIO(data))  # type: ignore[assignment]
        # the tar stream itself (headers + padding) may be a little larger than its contents
        capped = io.BufferedReader(_Capped(raw, MAX_EXPANDED_BYTES + MAX_ENTRIES * 1024 + 10240))
        with tarfile.open(fileobj=capped, mode="r|") as archive:
            for entry, stream in _tar_entries(archive):
                _apply(writer, entry, stream)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise refuse(f"not a readable tar.gz archive ({type(exc).__name__}: {exc})") from None


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type recorded (e.g. writestr)
        return "special"
    return "file"


def _unpack_zip(data: bytes, writer: _Writer) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise refuse(f"not a readable zip archive ({exc})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise refuse(f"more than {MAX_ENTRIES} entries")
        if sum(i.file_size for i in infos) > MAX_EXPANDED_BYTES:
            raise refuse(f"expands past {MAX_EXPANDED_BYTES} bytes")
        try:
            for info in infos:
                _zip_entry(archive, info, writer)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
            raise refuse(f"corrupt zip archive ({type(exc).__name__}: {exc})") from None


def _zip_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, writer: _Writer) -> None:
    name = clean_name(info.filename)
    kind = _zip_kind(info)
    if kind == "special":
        raise refuse(f"entry {name!r} is a device, FIFO or other special file")
    if kind == "symlink":
        if info.file_size > MAX_PATH_CHARS:
            raise refuse(f"link {name!r} has an overlong target")
        target = archive.read(info).decode("utf-8", errors="replace")
        _apply(writer, _Entry(name, "symlink", 0, link=target), None)
        return
    if kind == "dir":
        _apply(writer, _Entry(name, "dir", 0), None)
        return
    with archive.open(info) as stream:
        _apply(writer, _Entry(name, "file", info.file_size, mode=info.external_attr >> 16), stream)


def _apply(writer: _Writer, entry: _Entry, stream: IO[bytes] | None) -> None:
    writer.count()
    if not entry.name:
        if entry.kind == "dir":
            return
        raise refuse("an entry has an empty name")
    if entry.kind == "dir":
        writer.mkdir(entry.name)
    elif entry.kind == "file" and stream is not None:
        writer.file(entry.name, stream, entry.mode)
    elif entry.kind == "symlink":
        writer.symlink(entry.name, entry.link)
    elif entry.kind == "hardlink":
        writer.hardlink(entry.name, entry.link)


def unpack(data: bytes, kind: str, scratch: Path) -> Bundle:
    """Unpacks `data` (TAR_GZ or ZIP) into `scratch`/bundle; BadRequest if it is unsafe."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise refuse(f"archive is larger than {MAX_BUNDLE_BYTES} bytes")
    root = scratch / "bundle"
    root.mkdir(parents=True, exist_ok=False)
    writer = _Writer(root)
    if kind == TAR_GZ:
        _unpack_tar(data, writer)
    elif kind == ZIP:
        _unpack_zip(data, writer)
    else:
        raise refuse(f"unknown archive kind {kind!r}")
    if writer.files == 0:
        raise refuse("the archive holds no files")
    check_tree(root)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return Bundle(root=root, digest=digest, files=writer.files, expanded_bytes=writer.written)


def hoist_single_dir(bundle: Bundle, entrypoint: str) -> Bundle:
    """`tar czf b.tgz mydir/` packs everything under one folder: when the entrypoint is not at
    the root but is inside that only folder, that folder becomes the root."""
    if (bundle.root / entrypoint).exists():
        return bundle
    children = list(bundle.root.iterdir())
    if len(children) != 1 or not children[0].is_dir() or children[0].is_symlink():
        return bundle
    inner = children[0]
    if not (inner / entrypoint).exists():
        return bundle
    hoisted = bundle.root.parent / "hoisted"
    shutil.move(str(inner), hoisted)
    bundle.root.rmdir()
    hoisted.rename(bundle.root)
    check_tree(bundle.root)  # a link that climbed into the old root now climbs out
    return bundle


def require_entrypoint(bundle: Bundle, entrypoint: str) -> None:
    path = bundle.root / entrypoint
    real = path.resolve()
    root = bundle.root.resolve()
    if not real.is_file() or root not in real.parents:
        raise refuse(f"the worker's entrypoint {entrypoint!r} is not a file in the bundle")
