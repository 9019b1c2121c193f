"""The shims read the envelope from the file AVA_ENVELOPE_FILE names (a swarm task has no
stdin), and from stdin when it is unset. Run here on the host's interpreters, outside any
container: the python shim always, the shell and nodejs shims where bash+jq and node exist (the
swarm integration tests run every runtime's shim in its image)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ava_platform.executor.protocol import build_envelope, new_nonce

ROOT = Path(__file__).resolve().parents[2]
RUNTIMES = ROOT / "runtimes"
# handler sources that report whether the envelope's path leaked into the job's environment
SOURCES = {
    "python": (
        "main.py",
        "import os\n"
        "def handler(input, env):\n"
        "    return {'got': input, 'leak': 'AVA_ENVELOPE_FILE' in os.environ}\n",
    ),
    "shell": (
        "main.sh",
        'leak=false; [ -n "${AVA_ENVELOPE_FILE:-}" ] && leak=true\n'
        'echo "{\\"got\\": $(cat), \\"leak\\": $leak}" > "$AVA_RESULT"\n',
    ),
    "nodejs": (
        "index.js",
        "module.exports = async ({ input }) =>"
        " ({ got: input, leak: 'AVA_ENVELOPE_FILE' in process.env });\n",
    ),
}


def _shim(runtime: str, tmp: Path) -> list[str]:
    """The shim and its shared protocol file side by side, as the image builder places them."""
    if runtime == "python":
        shutil.copy(RUNTIMES / "_py" / "ava_protocol.py", tmp)
        shutil.copy(RUNTIMES / "python" / "ava_shim.py", tmp)
        return ["python3", str(tmp / "ava_shim.py")]
    if runtime == "shell":
        shutil.copy(RUNTIMES / "shell" / "ava-shim.sh", tmp)
        return ["bash", str(tmp / "ava-shim.sh")]
    shutil.copy(RUNTIMES / "_js" / "protocol.mjs", tmp)
    shutil.copy(RUNTIMES / "nodejs" / "shim.mjs", tmp)
    return ["node", str(tmp / "shim.mjs")]


def _available(runtime: str) -> bool:
    needs = {"python": ["python3"], "shell": ["bash", "jq"], "nodejs": ["node"]}[runtime]
    return all(shutil.which(tool) for tool in needs)


def _envelope(runtime: str, nonce: str) -> bytes:
    entrypoint, source = SOURCES[runtime]
    return build_envelope(
        nonce=nonce,
        job_id="job_1",
        worker_id="wkr_1",
        attempt=1,
        entrypoint=entrypoint,
        source=source,
        input_json=b'{"n": 7}',
        env={"AVA_JOB_ID": "job_1"},
    )


def _result(stdout: str, nonce: str) -> dict[str, object]:
    marker = f"AVA-RESULT-{nonce} "
    frames = [line[len(marker) :] for line in stdout.splitlines() if line.startswith(marker)]
    assert len(frames) == 1, stdout
    return dict(json.loads(frames[0]))


@pytest.mark.parametrize("runtime", ["python", "shell", "nodejs"])
@pytest.mark.parametrize("source", ["file", "split files", "stdin"])
def test_the_envelope_comes_from_the_file_or_from_stdin(
    runtime: str, source: str, tmp_path: Path
) -> None:
    if not _available(runtime):
        pytest.skip(f"no {runtime} interpreter on this host")
    nonce = new_nonce()
    envelope = _envelope(runtime, nonce)
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path)}
    stdin = envelope
    if source == "file":
        path = tmp_path / "envelope"
        path.write_bytes(envelope)
        env["AVA_ENVELOPE_FILE"] = str(path)
        stdin = b"not the envelope\n"  # never read when the file is named
    if source == "split files":
        # as the swarm executor splits a large envelope over secrets, read in the order named
        cuts = [0, 5, len(envelope) // 2, len(envelope)]
        paths = [tmp_path / f"envelope-{i}" for i in range(3)]
        for path, at, end in zip(paths, cuts, cuts[1:], strict=False):
            path.write_bytes(envelope[at:end])
        env["AVA_ENVELOPE_FILE"] = ":".join(str(p) for p in paths)
        stdin = b"not the envelope\n"
    proc = subprocess.run(
        _shim(runtime, tmp_path), input=stdin, env=env, capture_output=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr.decode()
    body = _result(proc.stdout.decode(), nonce)
    assert body == {"ok": True, "result": {"got": {"n": 7}, "leak": False}}


def test_an_unreadable_envelope_file_is_a_bad_envelope(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "AVA_ENVELOPE_FILE": str(tmp_path / "missing")}
    proc = subprocess.run(
        _shim("python", tmp_path), input=b"", env=env, capture_output=True, timeout=30
    )
    assert proc.returncode == 2
    assert b"cannot read the envelope file" in proc.stderr
    assert b"AVA-RESULT-" not in proc.stdout
