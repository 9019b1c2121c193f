"""The real `ava` command against a real server running real containers: exit codes for each
way a job ends, JSON that parses, logs followed live, secrets never echoed, completion, the
profile file, and the worker/deploy/schedule commands. Without Docker: errors as JSON (`--json`
before or after the command, an unreachable server too), `secrets key-status`, and the
`listening on` line of `ava serve`."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import SECRET, SECRET_KEY, free_port, server_env, thread_server

# the tests that run real containers; the others need only a server
docker = pytest.mark.docker
slow = pytest.mark.slow

AVA = str(Path(sys.executable).with_name("ava"))
HANDLER = """
import time

def handler(input, env):
    print("first", flush=True)
    time.sleep(input.get("sleep", 0))
    print("second", flush=True)
    if input.get("fail"):
        raise ValueError("asked to fail")
    if input.get("show_secret"):
        print("token is", env["API_TOKEN"], flush=True)
    return {"echo": input}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ava_platform.executor.runtime_images import build_images

    build_images(["python"], log=lambda _line: None)
    db = tmp_path_factory.mktemp("cli") / "ava.db"
    with thread_server(db, AVA_RETRY_BASE_S="0.2", AVA_POLL_INTERVAL_S="0.1") as url:
        yield url


class Cli:
    """Runs `ava` as a process, as one tenant, with no profile file of the user's."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.tenant = f"ten_{uuid.uuid4().hex[:12]}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AVA_")}
        self.env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            AVA_URL=url,
            AVA_INTERNAL_SECRET=SECRET,
            AVA_TENANT_ID=self.tenant,
            AVA_USER_ID="usr_cli",
            AVA_ROLE="tenant-admin",
        )

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AVA, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            timeout=120,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [AVA, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )

    def json(self, *args: str) -> Any:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def api(self) -> httpx.Client:
        headers = {
            "x-internal-secret": SECRET,
            "x-tenant-id": self.tenant,
            "x-user-id": "usr_cli",
            "x-platform-role": "tenant-admin",
        }
        return httpx.Client(base_url=f"{self.url}/v1/ava", headers=headers, timeout=30)

    def worker(self, tmp_path: Path, name: str = "cli-echo", *extra: str) -> str:
        source = tmp_path / f"{name}.py"
        source.write_text(HANDLER)
        created = self.json(
            "workers",
            "create",
            "--name",
            name,
            "--runtime",
            "python",
            "--source",
            str(source),
            *extra,
        )
        return str(created["id"])

    def wait_running(self, job_id: str) -> None:
        with self.api() as api:
            for _ in range(300):
                if api.get(f"/jobs/{job_id}").json()["status"] == "running":
                    return
                time.sleep(0.1)
        raise AssertionError(f"{job_id} did not start running")


@pytest.fixture
def cli(server: str, tmp_path: Path) -> Cli:
    return Cli(server, tmp_path)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server for commands that run no job (no runtime image needed)."""
    with thread_server(tmp_path_factory.mktemp("cli-api") / "ava.db") as url:
        yield url


@pytest.fixture
def api_cli(api_server: str, tmp_path: Path) -> Cli:
    return Cli(api_server, tmp_path)


@docker
@slow
def test_run_wait_exit_codes_for_each_outcome(cli: Cli, tmp_path: Path) -> None:
    worker = cli.worker(tmp_path)
    ok = cli("jobs", "run", worker, "--input", '{"n": 1}', "--wait")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"echo": {"n": 1}}
    assert "succeeded" in ok.stderr

    failed = cli("jobs", "run", "cli-echo", "--input", '{"fail": true}', "--wait")
    assert failed.returncode == 1, failed.stderr
    assert "failed" in failed.stderr and "asked to fail" in failed.stderr

    short = cli.worker(tmp_path, "cli-short", "--timeout-seconds", "1")
    timed_out = cli("jobs", "run", short, "--input", '{"sleep": 20}', "--wait")
    assert timed_out.returncode == 3, timed_out.stderr
    assert "timed_out" in timed_out.stderr

    started = time.monotonic()
    cli_timeout = cli(
        "jobs", "run", worker, "-i", '{"sleep": 20}', "--timeout", "1", "--cancel-on-timeout"
    )
    assert cli_timeout.returncode == 3, cli_timeout.stderr
    assert time.monotonic() - started < 15
    assert "cancelled it" in cli_timeout.stderr

    waiting = cli.popen("jobs", "run", worker, "--input", '{"sleep": 30}', "--wait")
    assert waiting.stderr is not None
    job_id = waiting.stderr.readline().split()[0]  # "job_… queued"
    cli.wait_running(job_id)
    cancel = cli("jobs", "cancel", job_id)
    assert cancel.returncode == 0, cancel.stderr
    assert waiting.wait(timeout=60) == 4
    assert "cancelled" in (waiting.stderr.read() if waiting.stderr else "")


@docker
@slow
def test_usage_and_auth_errors_exit_2(cli: Cli, tmp_path: Path) -> None:
    worker = cli.worker(tmp_path)
    wrong_secret = cli("jobs", "run", worker, "--wait", env={"AVA_INTERNAL_SECRET": "x" * 20})
    assert wrong_secret.returncode == 2
    assert "unauthorized" in wrong_secret.stderr
    viewer = cli("jobs", "run", worker, "--wait", env={"AVA_ROLE": "tenant-viewer"})
    assert viewer.returncode == 2 and "forbidden" in viewer.stderr
    bad_header = cli("jobs", "run", worker, "--wait", env={"AVA_TENANT_ID": "bad tenant!"})
    assert bad_header.returncode == 2
    assert cli("jobs", "run", worker, "--input", "{not json", "--wait").returncode == 2
    assert cli("jobs", "run", worker, "--no-such-flag").returncode == 2
    assert cli("jobs", "run").returncode == 2
    invalid = cli("workers", "create", "--name", "x", "--runtime", "python", "--memory-mb", "1")
    assert invalid.returncode == 2
    missing = cli("jobs", "run", "wkr_missing", "--wait")
    assert missing.returncode == 1 and "worker_not_found" in missing.stderr


@docker
@slow
def test_json_output_parses(cli: Cli, tmp_path: Path) -> None:
    worker = cli.worker(tmp_path)
    listed = cli.json("workers", "list")
    assert [w["id"] for w in listed["data"]] == [worker] and listed["meta"]["total"] == 1
    assert cli.json("workers", "get", worker)["source_code"] == HANDLER
    job = cli.json("jobs", "run", worker, "--input", '{"k": "v"}', "--wait")
    assert job["status"] == "succeeded" and job["result"] == {"echo": {"k": "v"}}
    assert cli.json("jobs", "get", job["id"])["attempts"][0]["outcome"] == "succeeded"
    assert [j["id"] for j in cli.json("jobs", "list", "--worker", worker)["data"]] == [job["id"]]
    lines = cli("jobs", "logs", job["id"], "--json").stdout.splitlines()
    assert [json.loads(line)["line"] for line in lines] == ["first", "second"]
    queued = cli.json("jobs", "run", worker)
    assert queued["status"] in ("queued", "running")
    # global --json, before the command, works too
    done = cli("--json", "jobs", "wait", queued["id"])
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "succeeded"
    # errors in JSON mode: the envelope on stderr, nothing on stdout
    error = cli("jobs", "get", "job_missing", "--json")
    assert error.returncode == 1 and error.stdout == ""
    assert json.loads(error.stderr)["error"]["code"] == "job_not_found"


@docker
@slow
def test_plain_output_off_a_tty(cli: Cli, tmp_path: Path) -> None:
    worker = cli.worker(tmp_path)
    table = cli("workers", "list").stdout.splitlines()
    assert table[0].split("\t") == ["id", "name", "runtime", "status", "version", "updated_at"]
    assert table[1].split("\t")[:4] == [worker, "cli-echo", "python", "active"]
    record = dict(line.split("\t", 1) for line in cli("workers", "get", worker).stdout.splitlines())
    assert record["id"] == worker and record["timeout_seconds"] == "300"
    assert "\x1b[" not in cli("jobs", "list").stdout  # no colour codes into a pipe


@docker
@slow
def test_follow_prints_lines_before_the_job_ends(cli: Cli, tmp_path: Path) -> None:
    worker = cli.worker(tmp_path)
    proc = cli.popen("jobs", "run", worker, "--input", '{"sleep": 4}', "--follow")
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first == "first\n"
    with cli.api() as api:
        jobs = api.get("/jobs", params={"filter[worker_id]": worker}).json()["data"]
    assert [j["status"] for j in jobs] == ["running"]  # the line came while the job ran
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    assert rest.splitlines() == [
        "second",
        json.dumps({"echo": {"sleep": 4}}, separators=(",", ":")),
    ]
    job_id = jobs[0]["id"]
    assert cli("jobs", "logs", job_id, "-f").stdout == "first\nsecond\n"
    assert cli("jobs", "logs", job_id).stdout == "first\nsecond\n"


@docker
@slow
def test_secrets_are_never_echoed(cli: Cli, tmp_path: Path) -> None:
    value = f"s3cret-{uuid.uuid4().hex}"
    done = cli("secrets", "set", "API_TOKEN", stdin=value + "\n")
    assert done.returncode == 0, done.stderr
    assert value not in done.stdout + done.stderr
    listed = cli("secrets", "list")
    assert "API_TOKEN" in listed.stdout and value not in listed.stdout + listed.stderr
    as_json = cli("secrets", "list", "--json")
    assert [s["name"] for s in json.loads(as_json.stdout)["data"]] == ["API_TOKEN"]
    assert value not in as_json.stdout
    on_argv = cli("secrets", "set", "OTHER", "value-on-argv")
    assert on_argv.returncode == 2  # a value is never taken from argv
    worker = cli.worker(tmp_path, "cli-secret", "--secret", "API_TOKEN")
    run = cli("jobs", "run", worker, "--input", '{"show_secret": true}', "--follow")
    assert run.returncode == 0, run.stderr
    assert "token is ***" in run.stdout
    assert value not in run.stdout + run.stderr
    assert cli("secrets", "delete", "API_TOKEN").returncode == 0
    assert cli("secrets", "list", "--json").stdout.count("API_TOKEN") == 0


@docker
@slow
def test_shell_completion(cli: Cli) -> None:
    env = {"_AVA_COMPLETE": "complete_bash", "COMP_WORDS": "ava jo", "COMP_CWORD": "1"}
    assert "jobs" in cli(env=env).stdout.split()
    env = {"_AVA_COMPLETE": "complete_bash", "COMP_WORDS": "ava jobs ", "COMP_CWORD": "2"}
    assert {"run", "get", "list", "logs", "cancel"} <= set(cli(env=env).stdout.split())
    env = {
        "_AVA_COMPLETE": "complete_bash",
        "COMP_WORDS": "ava workers list --runtime p",
        "COMP_CWORD": "4",
    }
    assert "python" in cli(env=env).stdout.split()
    # typer detects the shell from the parent process (here `make`'s sh); its test switch
    # lets the shell be named instead, as `--show-completion bash`
    script = cli(
        "--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    )
    assert script.returncode == 0 and "_AVA_COMPLETE" in script.stdout
    assert "complete " in script.stdout  # a bash `complete` registration


@docker
@slow
def test_profile_file_and_missing_settings(cli: Cli, tmp_path: Path) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_text(
        f'url = "{cli.url}"\ninternal_secret = "{SECRET}"\n'
        f'tenant_id = "{cli.tenant}"\nuser_id = "usr_profile"\nrole = "tenant-admin"\n'
    )
    bare = {k: v for k, v in cli.env.items() if not k.startswith("AVA_")}
    run = subprocess.run(
        [AVA, "workers", "list", "--json"],
        capture_output=True,
        text=True,
        env={**bare, "AVA_PROFILE": str(profile)},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    default_home = tmp_path / ".config" / "ava"
    default_home.mkdir(parents=True)
    (default_home / "profile.toml").write_text(profile.read_text())
    run = subprocess.run(
        [AVA, "jobs", "list"], capture_output=True, text=True, env=bare, timeout=60
    )
    assert run.returncode == 0, run.stderr
    (default_home / "profile.toml").unlink()
    missing = subprocess.run(
        [AVA, "workers", "list"], capture_output=True, text=True, env=bare, timeout=60
    )
    assert missing.returncode == 2
    assert "AVA_INTERNAL_SECRET" in missing.stderr


@docker
@slow
def test_worker_commands_deploy_and_schedules(cli: Cli, tmp_path: Path) -> None:
    worker = cli.worker(tmp_path)
    paused = cli.json("workers", "update", worker, "--status", "paused", "--config", "A=1")
    assert paused["status"] == "paused" and paused["config"] == {"A": "1"}
    refused = cli("jobs", "run", worker, "--wait")
    assert refused.returncode == 1 and "worker_paused" in refused.stderr
    cli.json("workers", "update", worker, "--status", "active", "--unset-config", "A")

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "main.py").write_text("def handler(input, env):\n    return {'v': env['GREETING']}\n")
    (bundle / "ava.toml").write_text(
        '[worker]\nname = "cli-bundle"\nruntime = "python"\n[worker.config]\nGREETING = "hi"\n'
    )
    deployed = cli("workers", "deploy", str(bundle))
    assert deployed.returncode == 0, deployed.stderr
    assert "created worker" in deployed.stderr and "ready" in deployed.stdout
    run = cli("jobs", "run", "cli-bundle", "--wait")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"v": "hi"}
    again = cli.json("workers", "deploy", str(bundle))
    assert again["status"] == "ready" and again["version"] == 3
    versions = cli.json("workers", "versions", "cli-bundle")
    assert [v["version"] for v in versions["data"]] == [3, 2, 1]

    schedule = cli.json("schedules", "create", worker, "--cron", "0 3 * * *", "-i", '{"s": 1}')
    assert schedule["cron"] == "0 3 * * *" and schedule["input"] == {"s": 1}
    listed = cli("schedules", "list", worker)
    assert schedule["id"] in listed.stdout
    assert cli.json("schedules", "get", worker, schedule["id"])["id"] == schedule["id"]
    assert cli.json("schedules", "runs", worker, schedule["id"])["meta"]["total"] == 0
    assert cli("schedules", "delete", worker, schedule["id"]).returncode == 0
    assert cli("schedules", "get", worker, schedule["id"]).returncode == 1

    deleted = cli.json("workers", "delete", worker)
    assert deleted["status"] == "deprecated"
    assert cli.json("workers", "list", "--status", "deprecated")["meta"]["total"] == 1


# -- without Docker -----------------------------------------------------------------------------


def test_global_json_prints_api_errors_as_json(api_cli: Cli) -> None:
    before = api_cli("--json", "workers", "get", "wkr_missing")
    after = api_cli("workers", "get", "wkr_missing", "--json")
    assert before.returncode == after.returncode == 1
    assert before.stdout == after.stdout == ""
    assert before.stderr == after.stderr  # the same envelope, wherever --json stands
    assert json.loads(before.stderr) == {
        "error": {
            "code": "worker_not_found",
            "message": "worker wkr_missing not found",
            "details": None,
        }
    }
    by_name = api_cli("--json", "jobs", "run", "no-such-worker")
    assert by_name.returncode == 1
    assert json.loads(by_name.stderr)["error"]["code"] == "worker_not_found"
    # a command with no --json of its own follows the global flag too
    log = api_cli("--json", "workers", "build-log", "wkr_missing", "1")
    assert log.returncode == 1 and json.loads(log.stderr)["error"]["code"] == "worker_not_found"
    plain = api_cli("workers", "get", "wkr_missing")
    assert plain.returncode == 1 and plain.stderr.startswith("ava: worker_not_found")


def test_an_unreachable_server_is_a_json_error(tmp_path: Path) -> None:
    closed = Cli(f"http://127.0.0.1:{free_port()}", tmp_path)  # nothing listens there
    for args in (("--json", "workers", "list"), ("workers", "list", "--json")):
        done = closed(*args)
        assert done.returncode == 1 and done.stdout == ""
        error = json.loads(done.stderr)["error"]
        assert error["code"] == "connection_error" and error["details"] is None
        assert error["message"].startswith(f"cannot reach the AVA server at {closed.url}")
    waiting = closed("--json", "jobs", "wait", "job_x")  # the async client's path
    assert waiting.returncode == 1
    last = waiting.stderr.splitlines()[-1]
    assert json.loads(last)["error"]["code"] == "connection_error"
    plain = closed("workers", "list")
    assert plain.returncode == 1 and plain.stderr.startswith("ava: cannot reach")


def test_key_status_fails_on_an_unknown_key(tmp_path: Path) -> None:
    db = tmp_path / "ava.db"
    with thread_server(db) as url, Cli(url, tmp_path).api() as api:
        assert api.put("/secrets/API_TOKEN", json={"value": "s3cret"}).status_code in (200, 201)
    other = base64.urlsafe_b64encode(b"o" * 32).decode()
    env = {k: v for k, v in server_env(db).items() if k != "AVA_SECRET_KEY"}

    def key_status(keys: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AVA, "secrets", "key-status", "--db", str(db)],
            capture_output=True,
            text=True,
            env={**env, "AVA_SECRET_KEY": keys},
            timeout=60,
        )

    known = key_status(SECRET_KEY)
    assert known.returncode == 0, known.stderr
    [(version, count, name)] = [line.split("\t") for line in known.stdout.splitlines()]
    assert (count, name) == ("1", "current")
    rotated = key_status(f"{other},{SECRET_KEY}")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.splitlines() == [f"{version}\t1\tprevious #1"]
    unknown = key_status(other)
    assert unknown.returncode == 1
    assert unknown.stdout.splitlines() == [f"{version}\t1\tunknown key"]
    assert "1 secret(s) are under a key AVA_SECRET_KEY does not hold" in unknown.stderr


def test_serve_prints_where_it_listens_once_it_accepts_connections(tmp_path: Path) -> None:
    db = tmp_path / "ava.db"
    out = tmp_path / "serve.out"
    argv = [AVA, "serve", "--host", "127.0.0.1", "--port", "0", "--db", str(db)]
    with out.open("wb") as sink:
        proc = subprocess.Popen(argv, env=server_env(db), stdout=sink, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        found = None
        while found is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"^listening on (http://127\.0\.0\.1:(\d+))$", out.read_text(), re.M)
            time.sleep(0.02)
        assert found is not None, out.read_text()
        assert int(found.group(2)) != 0  # the port the system picked, not the 0 asked for
        # printed once the server accepts connections: the first request, not retried, works
        assert httpx.get(f"{found.group(1)}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert out.read_text().count("listening on") == 1
