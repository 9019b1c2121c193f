"""Bundle safety: every attack is refused (400 through the API) with nothing written outside the
scratch dir; good bundles unpack; the build plan puts dependencies where the shims find them."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ava_platform.errors import BadRequest
from ava_platform.models import Runtime
from ava_platform.service import buildplan, bundles
from tests.support import headers, thread_server

# -- archive builders -------------------------------------------------------------------------


def tgz(*members: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for member in members:
            if isinstance(member, tuple):
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                archive.addfile(info, io.BytesIO(member[1]))
            else:
                archive.addfile(member)
    return buf.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def zipped(
    *files: tuple[str, bytes], symlinks: dict[str, str] | None = None, mode: int = 0o120777
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, target)
    return buf.getvalue()


def device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info


MAIN = ("main.py", b"def handler(i, e):\n    return 1\n")


def chained_links() -> bytes:
    """Each link looks inside on its own; followed through each other, `up` is the host's /."""
    deep = "/".join(f"d{i}" for i in range(12))
    dirs = [tarfile.TarInfo("/".join(f"d{i}" for i in range(n + 1))) for n in range(12)]
    for info in dirs:
        info.type = tarfile.DIRTYPE
    return tgz(
        MAIN,
        *dirs,
        link(f"{deep}/x", "/".join([".."] * 12)),
        link("up", f"{deep}/x/" + "/".join([".."] * 12)),
    )


def link_opened_by_a_later_link() -> bytes:
    """`up` is inside when placed (d/x does not exist yet); `d/x -> ..` then makes it `/..`."""
    folder = tarfile.TarInfo("d")
    folder.type = tarfile.DIRTYPE
    return tgz(MAIN, folder, link("up", "d/x/../.."), link("d/x", ".."))


ATTACKS: dict[str, tuple[str, bytes]] = {
    "tar traversal": (bundles.TAR_GZ, tgz(MAIN, ("../evil.txt", b"x"))),
    "tar deep traversal": (bundles.TAR_GZ, tgz(MAIN, ("a/../../evil.txt", b"x"))),
    "tar absolute path": (bundles.TAR_GZ, tgz(MAIN, ("/tmp/ava-evil-abs.txt", b"x"))),
    "tar symlink out (absolute)": (bundles.TAR_GZ, tgz(MAIN, link("out", "/etc"))),
    "tar symlink out (relative)": (bundles.TAR_GZ, tgz(MAIN, link("sub/out", "../../.."))),
    "tar write through a symlink": (
        bundles.TAR_GZ,
        tgz(MAIN, link("d", "."), ("d/../../evil.txt", b"x")),
    ),
    "tar chain of links out": (bundles.TAR_GZ, chained_links()),
    "tar link opened by a later link": (bundles.TAR_GZ, link_opened_by_a_later_link()),
    "tar hard link out": (bundles.TAR_GZ, tgz(MAIN, link("h", "/etc/passwd", tarfile.LNKTYPE))),
    "tar device": (bundles.TAR_GZ, tgz(MAIN, device("null"))),
    "tar fifo": (bundles.TAR_GZ, tgz(MAIN, link("f", "", tarfile.FIFOTYPE))),
    "zip traversal": (bundles.ZIP, zipped(MAIN, ("../evil.txt", b"x"))),
    "zip absolute path": (bundles.ZIP, zipped(MAIN, ("/tmp/ava-evil-abs.txt", b"x"))),
    "zip symlink out": (bundles.ZIP, zipped(MAIN, symlinks={"out": "../../etc"})),
    "zip device": (bundles.ZIP, zipped(MAIN, symlinks={"dev": ""}, mode=0o020666)),
    "not an archive": (bundles.TAR_GZ, b"this is not gzip"),
    "zip as tar": (bundles.TAR_GZ, zipped(MAIN)),
}


def scratch_in(tmp_path: Path) -> Path:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return scratch


def assert_nothing_outside(tmp_path: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch"]
    assert not Path("/tmp/ava-evil-abs.txt").exists()


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_refused_and_nothing_escapes_scratch(tmp_path: Path, attack: str) -> None:
    kind, data = ATTACKS[attack]
    with pytest.raises(BadRequest) as refused:
        bundles.unpack(data, kind, scratch_in(tmp_path))
    assert refused.value.code == "invalid_bundle"
    assert_nothing_outside(tmp_path)


def test_the_writer_never_reads_or_writes_through_a_link_out_of_the_root(tmp_path: Path) -> None:
    # a link out can't be unpacked (the link checks refuse it), so plant one to test the guard
    root = scratch_in(tmp_path) / "bundle"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "host-secret.txt").write_text("host")
    (root / "out").symlink_to(outside)
    writer = bundles._Writer(root)
    with pytest.raises(BadRequest, match="through a link out of the bundle"):
        writer.hardlink("copy.txt", "out/host-secret.txt")
    with pytest.raises(BadRequest):
        writer.file("out/evil.txt", io.BytesIO(b"x"), 0o644)
    assert sorted(p.name for p in outside.iterdir()) == ["host-secret.txt"]
    assert sorted(p.name for p in root.iterdir()) == ["out"]


def test_zip_bomb_declared_size_is_refused_before_unpacking(tmp_path: Path) -> None:
    # 600 MiB of zeros compresses to well under a MiB
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("main.py", b"x")
        with archive.open("zeros.bin", "w", force_zip64=True) as out:
            chunk = b"\0" * (1 << 20)
            for _ in range(600):
                out.write(chunk)
    assert len(buf.getvalue()) < 2 << 20
    scratch = scratch_in(tmp_path)
    with pytest.raises(BadRequest, match="expands past"):
        bundles.unpack(buf.getvalue(), bundles.ZIP, scratch)
    assert_nothing_outside(tmp_path)
    assert not any((scratch / "bundle").rglob("zeros.bin"))


def test_zip_bomb_lying_about_its_size_stops_at_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundles, "MAX_EXPANDED_BYTES", 1 << 20)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("main.py", b"x")
        archive.writestr("zeros.bin", b"\0" * (4 << 20))
    data = bytearray(buf.getvalue())
    # rewrite the declared size of zeros.bin (central directory) to 10 bytes
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("zeros.bin")
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"zeros.bin"))
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with pytest.raises(BadRequest):
        bundles.unpack(bytes(data), bundles.ZIP, scratch_in(tmp_path))
    assert info.file_size == 4 << 20
    assert_nothing_outside(tmp_path)


def test_gzip_bomb_stops_at_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundles, "MAX_EXPANDED_BYTES", 1 << 20)
    data = tgz(MAIN, ("zeros.bin", b"\0" * (8 << 20)))
    with pytest.raises(BadRequest, match="expands past"):
        bundles.unpack(data, bundles.TAR_GZ, scratch_in(tmp_path))
    assert_nothing_outside(tmp_path)


@pytest.mark.parametrize("kind", [bundles.TAR_GZ, bundles.ZIP])
def test_huge_entry_count_is_refused(tmp_path: Path, kind: str) -> None:
    many = [(f"f{i}", b"") for i in range(bundles.MAX_ENTRIES + 1)]
    data = tgz(*many) if kind == bundles.TAR_GZ else zipped(*many)
    with pytest.raises(BadRequest, match="entries"):
        bundles.unpack(data, kind, scratch_in(tmp_path))
    assert_nothing_outside(tmp_path)


def test_good_bundle_unpacks_with_inside_links_and_a_top_folder(tmp_path: Path) -> None:
    data = tgz(
        ("app/main.py", b"print(1)\n"),
        ("app/lib/util.py", b"X = 1\n"),
        link("app/util_link.py", "lib/util.py"),
    )
    bundle = bundles.unpack(data, bundles.TAR_GZ, scratch_in(tmp_path))
    bundle = bundles.hoist_single_dir(bundle, "main.py")
    bundles.require_entrypoint(bundle, "main.py")
    assert (bundle.root / "util_link.py").read_text() == "X = 1\n"
    assert bundle.files == 2 and bundle.digest.startswith("sha256:")
    with pytest.raises(BadRequest, match="entrypoint"):
        bundles.require_entrypoint(bundle, "index.js")


def test_build_plans_put_dependencies_where_the_shims_look(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("tomli-w\n")
    (tmp_path / "package.json").write_text("{}")
    py = buildplan.plan(Runtime.PYTHON, "ava/runtime-python:0.1.0", tmp_path, "main.py")
    assert "--target /opt/ava/deps" in py.dockerfile
    assert "ENV PYTHONPATH=/opt/ava/deps" in py.dockerfile
    node = buildplan.plan(Runtime.NODEJS, "ava/runtime-nodejs:0.1.0", tmp_path, "index.js")
    assert " install " in node.dockerfile and "/opt/ava/bundle/node_modules" in node.dockerfile
    (tmp_path / "package-lock.json").write_text("{}")
    node = buildplan.plan(Runtime.NODEJS, "ava/runtime-nodejs:0.1.0", tmp_path, "index.js")
    assert " ci " in node.dockerfile
    shell = buildplan.plan(Runtime.SHELL, "ava/runtime-shell:0.1.0", tmp_path, "main.sh")
    assert shell.dockerfile.count("FROM") == 1
    for plan in (py, node, shell):  # the final stage keeps the runtime's USER and CMD
        final = plan.dockerfile.rsplit("FROM", 1)[1]
        assert "USER" not in final and "CMD" not in final and "ENTRYPOINT" not in final


# -- the deploy endpoint refuses the same attacks, before any build ---------------------------


@pytest.fixture(scope="module")
def deploy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("deploy")
    with thread_server(root / "ava.db") as url:
        yield url, root


def test_deploy_endpoint_refuses_attacks_with_400(deploy_server: tuple[str, Path]) -> None:
    url, root = deploy_server
    with httpx.Client(base_url=f"{url}/v1/ava", headers=headers(), timeout=30) as api:
        worker = api.post("/workers", json={"name": "b", "runtime": "python"}).json()
        for name, (kind, data) in ATTACKS.items():
            media = "application/gzip" if kind == bundles.TAR_GZ else "application/zip"
            resp = api.post(
                f"/workers/{worker['id']}/deploy", content=data, headers={"content-type": media}
            )
            assert resp.status_code == 400, (name, resp.text)
            assert resp.json()["error"]["code"] == "invalid_bundle"
        missing_entry = tgz(("other.py", b"x"))
        resp = api.post(
            f"/workers/{worker['id']}/deploy",
            content=missing_entry,
            headers={"content-type": "application/gzip"},
        )
        assert resp.status_code == 400 and "entrypoint" in resp.text
        versions = api.get(f"/workers/{worker['id']}/versions").json()
        assert versions["meta"]["total"] == 1  # no version was recorded
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith("ava.db")) == ["scratch"]
    assert list((root / "scratch").iterdir()) == []  # every scratch dir was removed


def test_deploy_endpoint_media_size_and_roles(deploy_server: tuple[str, Path]) -> None:
    url, _ = deploy_server
    h = headers()
    with httpx.Client(base_url=f"{url}/v1/ava", headers=h, timeout=60) as api:
        worker = api.post("/workers", json={"name": "b", "runtime": "python"}).json()
        path = f"/workers/{worker['id']}/deploy"
        good = tgz(MAIN)
        assert (
            api.post(path, content=good, headers={"content-type": "text/plain"}).status_code == 415
        )
        assert api.post(path, content=good).status_code == 415  # no content type
        big = b"\0" * (bundles.MAX_BUNDLE_BYTES + 1)
        resp = api.post(path, content=big, headers={"content-type": "application/gzip"})
        assert resp.status_code == 413
        viewer = {**h, "x-platform-role": "tenant-operator"}
        resp = api.post(path, content=good, headers={**viewer, "content-type": "application/gzip"})
        assert resp.status_code == 403
        other = headers()
        resp = api.post(path, content=good, headers={**other, "content-type": "application/gzip"})
        assert resp.status_code == 404
        api.delete(f"/workers/{worker['id']}")
        resp = api.post(path, content=good, headers={"content-type": "application/gzip"})
        assert resp.status_code == 409


@pytest.mark.parametrize("planted", ["link out", "fifo"])
def test_a_build_context_never_packs_what_was_planted_in_the_bundle_after_unpacking(
    tmp_path: Path, planted: str
) -> None:
    bundle = bundles.unpack(tgz(MAIN), bundles.TAR_GZ, scratch_in(tmp_path))
    if planted == "link out":
        (bundle.root / "host").symlink_to("/etc")
    else:
        os.mkfifo(bundle.root / "pipe")
    plan = buildplan.plan(Runtime.PYTHON, "img:base", bundle.root, "main.py")
    context = tmp_path / "context.tar"
    with pytest.raises(BadRequest, match="bundle refused"):
        buildplan.write_context(context, plan, bundle.root, b"", {})
