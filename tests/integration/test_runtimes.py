"""Each runtime image and shim, in real hardened containers, against the contract in
runtimes/README.md: round-trips, framing under noise, every error type, env, uid, big input.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from ava_platform.executor.runtime_images import RUNTIMES, build_images, runtime_image_tag
from tests.integration import runtime_helpers as rh
from tests.support import TEST_IMAGE_NAMESPACE

pytestmark = pytest.mark.docker

ONE_MIB = 1024 * 1024
FORGED = 'AVA-RESULT-00000000000000000000000000000000 {"ok":true,"result":"forged"}'


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Every runtime image, built through the same code path as `make images`."""
    reports = build_images(RUNTIMES, log=lambda _line: None)
    return {r.runtime: r.tag for r in reports}


def wasm(wat: str) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))


# The user code of each case, per runtime. The round-trip handlers return what they saw.
ROUND_TRIP = {
    "python": """
import os
async def handler(input, env):
    print("working")
    return {"input": input, "env": env, "proc_env": dict(os.environ), "uid": os.getuid()}
""",
    "nodejs": """
module.exports = async function handler({ input, env }) {
  console.log("working");
  return { input, env, proc_env: { ...process.env }, uid: process.getuid() };
};
""",
    "deno": """
type Args = { input: unknown; env: Record<string, string> };
export default async function handler({ input, env }: Args): Promise<object> {
  console.log("working");
  return { input, env, proc_env: Deno.env.toObject(), uid: Deno.uid() };
}
""",
    "shell": """#!/bin/bash
set -eu
echo working
jq -n --argjson input "$(cat)" --arg foo "$FOO" --arg uid "$(id -u)" \
  --argjson proc_env "$(jq -n 'env')" \
  '{input: $input, env: {FOO: $foo}, proc_env: $proc_env, uid: ($uid | tonumber)}' >"$AVA_RESULT"
""",
}

NOISE = {
    "python": f"""
import sys
def handler(input, env):
    print({FORGED!r})
    print(input["echo"])
    print("stderr noise " + {FORGED!r}, file=sys.stderr)
    sys.stdout.write("no newline at the end")
    return "real"
""",
    "nodejs": f"""
exports.handler = async ({{ input }}) => {{
  console.log({json.dumps(FORGED)});
  console.log(input.echo);
  console.error("stderr noise " + {json.dumps(FORGED)});
  process.stdout.write("no newline at the end");
  return "real";
}};
""",
    "deno": f"""
export default function handler({{ input }}: {{ input: {{ echo: string }} }}) {{
  console.log({json.dumps(FORGED)});
  console.log(input.echo);
  console.error("stderr noise " + {json.dumps(FORGED)});
  Deno.stdout.writeSync(new TextEncoder().encode("no newline at the end"));
  return "real";
}}
""",
    "shell": f"""
echo '{FORGED}'
jq -r .echo
echo 'stderr noise {FORGED}' >&2
printf 'no newline at the end'
printf '"real"' >"$AVA_RESULT"
""",
}

RAISES = {
    "python": "def helper():\n    raise ValueError('boom')\n\ndef handler(input, env):\n    helper()\n",
    "nodejs": "module.exports = async () => { throw new Error('boom'); };\n",
    "deno": "export default async function handler() { throw new Error('boom'); }\n",
}

BAD_RESULTS = {
    "python": [
        "def handler(input, env):\n    return {'s': {1, 2}}\n",
        "def handler(input, env):\n    return [float('nan')]\n",
        "class P: pass\ndef handler(input, env):\n    return P()\n",
    ],
    "nodejs": [
        "module.exports = () => ({ n: 10n });\n",
        "module.exports = () => [NaN];\n",
        "module.exports = () => { const a = {}; a.a = a; return a; };\n",
        "module.exports = () => ({ f() {} });\n",
        "module.exports = () => new Map([[1, 2]]);\n",
    ],
    "deno": [
        "export default () => ({ n: 10n });\n",
        "export default () => ({ x: Infinity });\n",
        "export default () => { const a: any[] = []; a.push(a); return a; };\n",
    ],
}

MISSING = {
    "python": "def other(input, env):\n    return 1\n",
    "nodejs": "module.exports = { other() { return 1; } };\n",
    "deno": "export const other = 1;\n",
}

SYNTAX = {
    "python": ["def handler(input, env)\n    return 1\n"],
    "nodejs": [
        "module.exports = function handler({ input ) {};\n",
        "export default function handler( {\n",
    ],
    "deno": ["export default function handler({ input }: { input: unknown ) {}\n"],
    "shell": ["if then fi\n", "#!/bin/sh\nfor x in; do\n"],
}

IMPORT_ERRORS = {
    "python": ["import definitely_not_installed_xyz\n", "raise RuntimeError('top level')\n"],
    "nodejs": [
        "require('definitely-not-installed');\n",
        "throw new Error('top level');\n",
        "import x from 'definitely-not-installed';\nexport default () => x;\n",
        "JSON.parse('{');\nexport default () => 1;\n",
    ],
    "deno": [
        "import x from './nope.ts';\nexport default () => x;\n",
        "throw new Error('top level');\nexport default () => 1;\n",
    ],
}

SIGNATURE = {
    "python": ["def handler(input):\n    return 1\n", "handler = 42\n"],
    "nodejs": [
        "module.exports = function (input, env) { return 1; };\n",
        "module.exports = { handler: 42 };\n",
    ],
    "deno": [
        "export default 42;\n",
        "export default function (input: unknown, env: unknown) { return 1; }\n",
    ],
}

BIG_INPUT = {
    "python": "def handler(input, env):\n    return {'len': len(input['blob'])}\n",
    "nodejs": "module.exports = ({ input }) => ({ len: input.blob.length });\n",
    "deno": "export default ({ input }: { input: { blob: string } }) => ({ len: input.blob.length });\n",
    "shell": "jq '{len: (.blob | length)}' >\"$AVA_RESULT\"\n",
}

NOOP = {
    "python": "def handler(input, env):\n    return None\n",
    "nodejs": "module.exports = async () => null;\n",
    "deno": "export default () => null;\n",
    "shell": ":\n",
    "wasm": rh.NOOP_WAT,
}


def source_of(runtime: str, code: str) -> str | bytes:
    return wasm(code) if runtime == "wasm" else code


def by_runtime(table: dict[str, list[str]]) -> list[Any]:
    return [
        pytest.param(rt, code, id=f"{rt}-{i}")
        for rt, codes in table.items()
        for i, code in enumerate(codes)
    ]


def assert_error(run: rh.RunResult, kind: str, *needles: str) -> dict[str, str]:
    error = run.error()
    assert error["type"] == kind, run.describe()
    assert "\n" not in error["message"]
    for needle in needles:
        assert needle in error["message"], error
    assert run.exit_code == (2 if kind == "bad_envelope" else 1), run.describe()
    return error


# -- success, env, uid ----------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ROUND_TRIP)
def test_round_trip_of_input_and_env(images: dict[str, str], runtime: str) -> None:
    job = rh.envelope(ROUND_TRIP[runtime], input={"x": [1, "ü", None]}, env={"FOO": "bar baz"})
    run = rh.run_job(images[runtime], job)
    result = run.result
    assert result["input"] == {"x": [1, "ü", None]}
    assert result["env"]["FOO"] == "bar baz"  # the env mapping ...
    assert result["proc_env"]["FOO"] == "bar baz"  # ... and the process env
    assert result["proc_env"]["AVA_JOB_ID"] == "job_test"
    assert result["uid"] == 10001
    assert job["nonce"] not in json.dumps(result)  # never handed to user code
    assert "working" in run.logs
    assert run.stdout.endswith("\n") and run.stdout.rstrip("\n").split("\n")[-1].startswith(
        f"AVA-RESULT-{job['nonce']} "
    )


def test_wasm_round_trip_and_wasi_env(images: dict[str, str]) -> None:
    job = rh.envelope(wasm(rh.ECHO_WAT), input={"x": [1, 2]}, env={"FOO": "bar"})
    run = rh.run_job(images["wasm"], job)
    assert run.result["input"] == {"x": [1, 2]}
    assert "FOO=bar" in run.result["environ"].split(";")
    assert "a log line on stderr" in run.stderr


def test_python_plain_def_and_esm_variants(images: dict[str, str]) -> None:
    cases = [
        ("python", "def handler(input, env):\n    return input['n'] + 1\n"),
        ("nodejs", "export default async function handler({ input }) { return input.n + 1; }\n"),
        ("nodejs", "export function handler({ input }) { return input.n + 1; }\n"),
        ("nodejs", "exports.handler = ({ input }) => input.n + 1;\n"),
        (
            "deno",
            "export async function handler({ input }: { input: { n: number } }) {\n"
            "  return input.n + 1;\n}\n",
        ),
        ("shell", "jq '.n + 1' >\"$AVA_RESULT\"\n"),
    ]
    for runtime, code in cases:
        assert rh.run_job(images[runtime], rh.envelope(code, input={"n": 41})).result == 42, code


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_image_runs_as_non_root(images: dict[str, str], runtime: str) -> None:
    tag = images[runtime]
    assert rh.docker_output("image", "inspect", "-f", "{{.Config.User}}", tag) == "10001:10001"
    labels = json.loads(rh.docker_output("image", "inspect", "-f", "{{json .Config.Labels}}", tag))
    assert labels["ava.runtime"] == runtime and labels["ava.content-hash"]
    # Without --user, the image's own USER applies.
    if runtime == "wasm":
        assert rh.docker_output("run", "--rm", tag, "id", "-u") == "10001"
    else:
        job = rh.envelope(ROUND_TRIP[runtime], input=None, env={"FOO": "x"})
        assert rh.run_job(tag, job, user=False).result["uid"] == 10001


# Each handler returns its process's /proc/self/status: the job's own view of its seccomp filters.
PROC_STATUS = {
    "python": "def handler(input, env):\n    return open('/proc/self/status').read()\n",
    "nodejs": "module.exports = async () => require('fs').readFileSync('/proc/self/status', 'utf8');\n",
    "deno": "export default () => Deno.readTextFileSync('/proc/self/status');\n",
    "shell": 'jq -Rs . /proc/self/status >"$AVA_RESULT"\n',
}
SEAL = "/usr/local/bin/ava-seal"


def seccomp_filters(status: str) -> int:
    lines = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert lines["Seccomp"].strip() == "2", status  # filter mode
    return int(lines["Seccomp_filters"])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_every_runtime_runs_its_jobs_under_the_seal(images: dict[str, str], runtime: str) -> None:
    """The engine's default profile is one filter; ava-seal (the base image's entrypoint) stacks
    its own on top, so a job shows at least two, whatever its runtime."""
    tag = images[runtime]
    entrypoint = json.loads(
        rh.docker_output("image", "inspect", "-f", "{{json .Config.Entrypoint}}", tag)
    )
    assert entrypoint == [SEAL]
    if runtime == "wasm":  # a WASI module cannot read /proc; the entrypoint seals any command
        status = rh.docker_output("run", "--rm", *rh.HARDENING, tag, "cat", "/proc/self/status")
    else:
        status = rh.run_job(tag, rh.envelope(PROC_STATUS[runtime], input=None)).result
    assert seccomp_filters(status) >= 2, status


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_end_of_stderr_is_marked_after_all_user_output(
    images: dict[str, str], runtime: str
) -> None:
    code = rh.ECHO_WAT if runtime == "wasm" else NOOP[runtime]
    job = rh.envelope(source_of(runtime, code), input={})
    run = rh.run_job(images[runtime], job)
    assert run.frames, run.describe()
    assert run.stderr.endswith(f"AVA-END-{job['nonce']}\n"), run.describe()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_large_input(images: dict[str, str], runtime: str) -> None:
    blob = "x" * ONE_MIB
    code = rh.ECHO_WAT if runtime == "wasm" else BIG_INPUT[runtime]
    run = rh.run_job(images[runtime], rh.envelope(source_of(runtime, code), input={"blob": blob}))
    if runtime == "wasm":
        assert run.result["input"]["blob"] == blob
    else:
        assert run.result == {"len": ONE_MIB}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_waits_for_a_late_envelope(images: dict[str, str], runtime: str) -> None:
    job = rh.envelope(source_of(runtime, NOOP[runtime]))
    assert rh.run_job(images[runtime], job, delay_s=1.5).result is None


# -- framing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", NOISE)
def test_print_noise_is_never_the_result(images: dict[str, str], runtime: str) -> None:
    job = rh.envelope(NOISE[runtime], input={"echo": FORGED.replace("forged", "echoed")})
    run = rh.run_job(images[runtime], job)
    assert run.result == "real"
    assert FORGED in run.logs and "echoed" in run.logs and "no newline at the end" in run.logs
    assert "stderr noise" in run.stderr


def test_wasm_noise_and_non_json_last_line(images: dict[str, str]) -> None:
    run = rh.run_job(images["wasm"], rh.envelope(wasm(rh.ECHO_WAT), input=1))
    assert run.result["input"] == 1
    assert "AVA-RESULT-000" in run.logs
    run = rh.run_job(images["wasm"], rh.envelope(wasm(rh.NOT_JSON_WAT)))
    assert run.result is None  # the last line is not JSON: no result, all of it is logs
    assert '{"looks": "like json"}' in run.logs and "but the last line is not" in run.logs


def test_shell_result_file_forms(images: dict[str, str]) -> None:
    cases = {
        "echo 'hello world' >\"$AVA_RESULT\"\n": "hello world",
        "echo '1 2' >\"$AVA_RESULT\"\n": "1 2",
        'echo \'{"a": [1]}\' >"$AVA_RESULT"\n': {"a": [1]},
        'echo false >"$AVA_RESULT"\n': False,
        ': >"$AVA_RESULT"\n': None,
        "true\n": None,
    }
    for code, expected in cases.items():
        assert rh.run_job(images["shell"], rh.envelope(code)).result == expected, code


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", RAISES)
def test_raised_error(images: dict[str, str], runtime: str) -> None:
    run = rh.run_job(images[runtime], rh.envelope(RAISES[runtime]))
    assert_error(run, "handler_error", "Error: boom")
    assert "boom" in run.stderr  # the traceback goes to the logs
    entry = {"python": "main.py", "nodejs": "index.js", "deno": "main.ts"}[runtime]
    assert entry in run.stderr
    if runtime == "python":
        assert "Traceback" in run.stderr and "ava_shim" not in run.stderr


def test_shell_and_wasm_failures(images: dict[str, str]) -> None:
    run = rh.run_job(images["shell"], rh.envelope("echo failing >&2\nexit 3\n"))
    assert_error(run, "nonzero_exit", "3")
    assert "failing" in run.stderr
    run = rh.run_job(images["wasm"], rh.envelope(wasm(rh.TRAP_WAT)))
    assert_error(run, "wasm_trap")
    assert "about to trap" in run.stderr
    assert_error(rh.run_job(images["wasm"], rh.envelope(wasm(rh.EXIT_3_WAT))), "wasm_trap", "3")


@pytest.mark.parametrize(("runtime", "code"), by_runtime(BAD_RESULTS))
def test_bad_result(images: dict[str, str], runtime: str, code: str) -> None:
    assert_error(rh.run_job(images[runtime], rh.envelope(code)), "result_not_serializable")


@pytest.mark.parametrize("runtime", MISSING)
def test_missing_handler(images: dict[str, str], runtime: str) -> None:
    assert_error(rh.run_job(images[runtime], rh.envelope(MISSING[runtime])), "handler_missing")


def test_wasm_without_start_is_missing_handler(images: dict[str, str]) -> None:
    run = rh.run_job(images["wasm"], rh.envelope(wasm(rh.NO_START_WAT)))
    assert_error(run, "handler_missing", "_start")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_missing_entrypoint_in_bundle(images: dict[str, str], runtime: str) -> None:
    job = rh.envelope(None, bundle_dir="/opt/ava", entrypoint="nope/absent")
    assert_error(rh.run_job(images[runtime], job), "handler_missing", "/opt/ava/nope/absent")


@pytest.mark.parametrize(("runtime", "code"), by_runtime(SYNTAX))
def test_syntax_error(images: dict[str, str], runtime: str, code: str) -> None:
    run = rh.run_job(images[runtime], rh.envelope(code))
    assert_error(run, "syntax_error")
    assert run.stderr.strip()


def test_wasm_invalid_module(images: dict[str, str]) -> None:
    run = rh.run_job(images["wasm"], rh.envelope(b"\0asm-but-not-really"))
    assert_error(run, "invalid_module")
    job = rh.envelope(None)
    job["source"] = "%%% not base64 %%%"
    assert_error(rh.run_job(images["wasm"], job), "invalid_module", "base64")
    foreign = '(module (import "env" "nope" (func)) (func (export "_start")))'
    assert_error(rh.run_job(images["wasm"], rh.envelope(wasm(foreign))), "invalid_module")


@pytest.mark.parametrize(("runtime", "code"), by_runtime(IMPORT_ERRORS))
def test_import_error(images: dict[str, str], runtime: str, code: str) -> None:
    run = rh.run_job(images[runtime], rh.envelope(code))
    assert_error(run, "import_error")
    assert run.stderr.strip()


@pytest.mark.parametrize(("runtime", "code"), by_runtime(SIGNATURE))
def test_handler_signature(images: dict[str, str], runtime: str, code: str) -> None:
    assert_error(rh.run_job(images[runtime], rh.envelope(code)), "handler_signature")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_bad_envelopes(images: dict[str, str], runtime: str) -> None:
    run = rh.run_job(images[runtime], b"this is not json")
    assert run.exit_code == 2 and run.frames == [] and "bad envelope" in run.stderr
    run = rh.run_job(images[runtime], b"")
    assert run.exit_code == 2 and run.frames == []
    job = rh.envelope(source_of(runtime, NOOP[runtime]), env={"BAD NAME": "x"})
    assert_error(rh.run_job(images[runtime], job), "bad_envelope", "BAD NAME")
    job = rh.envelope(source_of(runtime, NOOP[runtime]), entrypoint="../etc/passwd")
    assert_error(rh.run_job(images[runtime], job), "bad_envelope", "entrypoint")


def test_tags_follow_the_platform_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert runtime_image_tag("python") == f"{TEST_IMAGE_NAMESPACE}/runtime-python:0.1.0"
    monkeypatch.delenv("AVA_IMAGE_NAMESPACE")
    assert runtime_image_tag("python") == "ava/runtime-python:0.1.0"  # what `make up` runs
    with pytest.raises(ValueError, match="unknown runtime"):
        runtime_image_tag("cobol")


STRAY = {
    "nodejs": [
        ("module.exports = () => new Promise(() => {});\n", "never settled"),
        (
            "module.exports = () => new Promise(() => setTimeout(() => {\n"
            "  throw new Error('late boom'); }, 10));\n",
            "late boom",
        ),
    ],
    "deno": [
        ("export default () => new Promise(() => {});\n", "never settled"),
        (
            "export default () => new Promise(() => setTimeout(() => {\n"
            "  throw new Error('late boom'); }, 10));\n",
            "late boom",
        ),
    ],
}


@pytest.mark.parametrize(
    ("runtime", "code", "needle"),
    [
        pytest.param(rt, code, needle, id=f"{rt}-{i}")
        for rt, cases in STRAY.items()
        for i, (code, needle) in enumerate(cases)
    ],
)
def test_js_stray_failures_still_frame(
    images: dict[str, str], runtime: str, code: str, needle: str
) -> None:
    assert_error(rh.run_job(images[runtime], rh.envelope(code)), "handler_error", needle)


def test_python_leftover_thread_does_not_hold_the_container(images: dict[str, str]) -> None:
    code = (
        "import threading, time\n"
        "def handler(input, env):\n"
        "    threading.Thread(target=time.sleep, args=(600,)).start()\n"
        "    return 'done'\n"
    )
    assert rh.run_job(images["python"], rh.envelope(code)).result == "done"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_examples_run(images: dict[str, str], runtime: str) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "run.py"), runtime, '{"name": "Ada"}'],
        capture_output=True,
        text=True,
        check=False,
        timeout=rh.RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '{"ok":true,"result":{' in done.stdout and "Ada" in done.stdout


def test_relative_paths_resolve_against_the_code_dir(images: dict[str, str]) -> None:
    cases = {
        "python": "import os\ndef handler(input, env):\n    return os.getcwd()\n",
        "nodejs": "module.exports = () => process.cwd();\n",
        "deno": "export default () => Deno.cwd();\n",
        "shell": 'pwd >"$AVA_RESULT"\n',
    }
    for runtime, code in cases.items():
        assert rh.run_job(images[runtime], rh.envelope(code)).result == "/tmp/ava/code", runtime
