"""The per-worker image of a deployed bundle: its Dockerfile and build context. Pure.

`ava/worker-<id>:<version>` is built FROM the runtime image, so it keeps the runtime's CMD,
USER (10001) and shim; the bundle sits at /opt/ava/bundle (root-owned, world-readable, so the
read-only container can read it). Dependencies are installed in a throw-away `deps` stage that
runs as root with the build host's CA bundle (TLS may be intercepted on the way to PyPI or
npm), and only their result is copied into the final image, which never holds pip, npm or the
CA file of the build. Layers are ordered so that a code-only change reuses the cached
dependency layers:

- python: pip (a pinned wheel, run from the wheel itself: the runtime image holds no package
  manager) installs requirements.txt into /opt/ava/deps, which is on PYTHONPATH.
- nodejs: a pinned npm (fetched with node) runs `npm ci` when a lock file is present, else
  `npm install`, production dependencies only; node_modules lands in /opt/ava/bundle, where
  node's resolution finds it from the handler.
- deno: `deno cache` fetches the entrypoint's imports into DENO_DIR=/opt/ava/deno.
- shell, wasm: the bundle alone.
"""

from __future__ import annotations

import io
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ava_platform.models import Runtime
from ava_platform.service.bundles import check_link, refuse

BUNDLE_DIR = "/opt/ava/bundle"
PYTHON_DEPS_DIR = "/opt/ava/deps"
DENO_DIR = "/opt/ava/deno"
PIP_VERSION = "24.2"
NPM_VERSION = "10.8.2"
NPM_LOCKS = ("package-lock.json", "npm-shrinkwrap.json")

FETCH_PIP = f'''"""Fetches the pip wheel (build stage only): the runtime image has no pip."""
import re, ssl, urllib.request
ctx = ssl.create_default_context(cafile="/ava-build/ca.crt")
with urllib.request.urlopen("https://pypi.org/simple/pip/", context=ctx) as r:
    page = r.read().decode()
url = re.search(r\'href="([^"]*/pip-{PIP_VERSION}-py3-none-any\\.whl)[#"]\', page).group(1)
with urllib.request.urlopen(url, context=ctx) as r, open("/ava-build/pip.whl", "wb") as out:
    out.write(r.read())
'''

FETCH_NPM = f"""// Fetches the npm tarball (build stage only): the runtime image has no npm.
import {{ writeFileSync }} from "node:fs";
const res = await fetch("https://registry.npmjs.org/npm/-/npm-{NPM_VERSION}.tgz");
if (!res.ok) throw new Error(`npm download failed: HTTP ${{res.status}}`);
writeFileSync("/ava-build/npm.tgz", Buffer.from(await res.arrayBuffer()));
"""


@dataclass(frozen=True)
class BuildPlan:
    dockerfile: str
    helpers: dict[str, str]  # file name under ava-build/ -> content
    installs: str  # what the deps stage installs, for the build log ("" when nothing)


def _python(base: str, root: Path) -> BuildPlan:
    if not (root / "requirements.txt").is_file():
        return _plain(base)
    deps = f"""FROM {base} AS deps
USER root
COPY ava-build/ca.crt ava-build/fetch_pip.py /ava-build/
RUN ["python3", "/ava-build/fetch_pip.py"]
COPY bundle/requirements.txt /ava-build/requirements.txt
RUN python3 /ava-build/pip.whl/pip install --no-cache-dir --disable-pip-version-check \\
        --no-warn-script-location --root-user-action=ignore --cert /ava-build/ca.crt \\
        --target {PYTHON_DEPS_DIR} -r /ava-build/requirements.txt \\
    && chmod -R a+rX {PYTHON_DEPS_DIR}

FROM {base}
COPY --from=deps {PYTHON_DEPS_DIR} {PYTHON_DEPS_DIR}
COPY bundle/ {BUNDLE_DIR}/
ENV PYTHONPATH={PYTHON_DEPS_DIR}
"""
    return BuildPlan(deps, {"fetch_pip.py": FETCH_PIP}, "requirements.txt (pip)")


def _nodejs(base: str, root: Path) -> BuildPlan:
    if not (root / "package.json").is_file():
        return _plain(base)
    locks = [name for name in NPM_LOCKS if (root / name).is_file()]
    copies = " ".join(f"bundle/{name}" for name in ["package.json", *locks])
    npm = "node /ava-build/npm/bin/npm-cli.js"
    flags = "--omit=dev --no-audit --no-fund --cafile=/ava-build/ca.crt"
    install = f"{npm} ci {flags}" if locks else f"{npm} install {flags} --no-package-lock"
    deps = f"""FROM {base} AS deps
USER root
COPY ava-build/ca.crt ava-build/fetch_npm.mjs /ava-build/
ENV NODE_EXTRA_CA_CERTS=/ava-build/ca.crt
RUN node /ava-build/fetch_npm.mjs && mkdir -p /ava-build/npm \\
    && tar -xzf /ava-build/npm.tgz -C /ava-build/npm --strip-components=1 && rm /ava-build/npm.tgz
WORKDIR /ava-deps
COPY {copies} ./
RUN {install} && mkdir -p node_modules && chmod -R a+rX node_modules

FROM {base}
COPY bundle/ {BUNDLE_DIR}/
COPY --from=deps /ava-deps/node_modules {BUNDLE_DIR}/node_modules
"""
    what = "package.json (npm ci)" if locks else "package.json (npm install)"
    return BuildPlan(deps, {"fetch_npm.mjs": FETCH_NPM}, what)


def _deno(base: str, entrypoint: str) -> BuildPlan:
    deps = f"""FROM {base} AS deps
USER root
COPY ava-build/ca.crt /ava-build/ca.crt
COPY bundle/ {BUNDLE_DIR}/
RUN DENO_DIR={DENO_DIR} DENO_CERT=/ava-build/ca.crt deno cache {BUNDLE_DIR}/{entrypoint} \\
    && mkdir -p {DENO_DIR} && chmod -R a+rX {DENO_DIR}

FROM {base}
COPY bundle/ {BUNDLE_DIR}/
COPY --from=deps {DENO_DIR} {DENO_DIR}
ENV DENO_DIR={DENO_DIR}
"""
    return BuildPlan(deps, {}, "the entrypoint's imports (deno cache)")


def _plain(base: str) -> BuildPlan:
    return BuildPlan(f"FROM {base}\nCOPY bundle/ {BUNDLE_DIR}/\n", {}, "")


def plan(runtime: Runtime, base: str, root: Path, entrypoint: str) -> BuildPlan:
    if runtime is Runtime.PYTHON:
        return _python(base, root)
    if runtime is Runtime.NODEJS:
        return _nodejs(base, root)
    if runtime is Runtime.DENO:
        return _deno(base, entrypoint)
    return _plain(base)


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # the unpacked bundle was checked, but the context is read from disk again: a link out
    # of the bundle or a special file planted there since is refused, never packed
    if info.issym():
        check_link(info.name, info.linkname)
    elif not (info.isreg() or info.isdir()):
        raise refuse(f"entry {info.name!r} is not a file, directory or link")
    # root-owned and world-readable: the job runs as uid 10001 on a read-only root
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if info.isdir():
        info.mode = 0o755
    elif info.isreg():
        info.mode = 0o755 if info.mode & stat.S_IXUSR else 0o644
    info.mtime = 0  # the same bundle gives the same layers
    return info


def _add_text(archive: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def write_context(
    out: Path, build: BuildPlan, bundle_root: Path, ca_bundle: bytes, labels: dict[str, str]
) -> None:
    """The build context tar: Dockerfile, ava-build/ (CA bundle, helpers), bundle/."""
    pairs = " ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    dockerfile = build.dockerfile + (f"LABEL {pairs}\n" if pairs else "")
    with tarfile.open(out, "w") as archive:
        _add_text(archive, "Dockerfile", dockerfile)
        _add_text(archive, "ava-build/ca.crt", ca_bundle.decode("utf-8", errors="replace"))
        for name, text in build.helpers.items():
            _add_text(archive, f"ava-build/{name}", text)
        archive.add(bundle_root, arcname="bundle", recursive=True, filter=_normalise)
