"""What a job cannot do to its host (README: Security model): each forbidden operation is
tried for real inside one job and asserted on its own; and a gVisor worker's job runs on
gVisor's kernel, not the host's, still behind the egress rules."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import Ava

PY_FORBIDDEN = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
def outcome(rc):
    return 'ok' if rc == 0 else errno.errorcode.get(ctypes.get_errno(), '?')
def write(path):
    try:
        with open(path, 'w') as f:
            f.write('x')
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, '?')
def handler(input, env):
    fd = os.open('/dev/null', os.O_RDONLY)
    out = {
        'uid': os.getuid(),
        'mount': outcome(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),
        'unshare_user': outcome(libc.unshare(0x10000000)),  # CLONE_NEWUSER
        'finit_module': outcome(libc.syscall(313, fd, b'', 0)),
        'init_module': outcome(libc.syscall(175, None, 0, b'')),
        'ptrace_host_process': outcome(libc.ptrace(16, input['host_pid'], None, None)),
        'setuid_root': outcome(libc.setuid(0)),
        'setresuid_other': outcome(libc.setresuid(4242, 4242, 4242)),
        'setgid_root': outcome(libc.setgid(0)),
    }
    for path in ('/etc/planted', '/usr/planted', '/planted', '/home/planted', '/var/planted'):
        out['write ' + path] = write(path)
    out['write /tmp/ok'] = write('/tmp/ok')
    return out
"""
# ptrace and the cross-process memory calls against the job's own child (same uid, same PID
# namespace: the engine's default profile alone allows ptrace there), and PTRACE_TRACEME in it.
PY_PTRACE = """
import ctypes, errno, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
class IOVec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
def outcome(rc):
    return 'ok' if rc != -1 else errno.errorcode.get(ctypes.get_errno(), '?')
def vm(call, pid):
    buf = ctypes.create_string_buffer(8)
    mine = IOVec(ctypes.cast(buf, ctypes.c_void_p), 8)
    theirs = IOVec(ctypes.cast(buf, ctypes.c_void_p), 8)  # a fork maps the same address
    return outcome(call(pid, ctypes.byref(mine), 1, ctypes.byref(theirs), 1, 0))
def traceme():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, outcome(libc.ptrace(0, 0, None, None)).encode())  # PTRACE_TRACEME
        os._exit(0)
    os.close(w)
    seen = os.read(r, 64).decode()
    os.waitpid(pid, 0)
    return seen
def on_a_fresh_child(call):
    # one untraced child per call: a traced child would refuse a second tracer anyway
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    try:
        return call(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
def handler(input, env):
    out = {
        'traceme_in_child': traceme(),
        'attach_child': on_a_fresh_child(lambda pid: outcome(libc.ptrace(16, pid, None, None))),
        'seize_child': on_a_fresh_child(lambda pid: outcome(libc.ptrace(0x4206, pid, None, None))),
        'process_vm_readv': on_a_fresh_child(lambda pid: vm(libc.process_vm_readv, pid)),
        'process_vm_writev': on_a_fresh_child(lambda pid: vm(libc.process_vm_writev, pid)),
    }
    with open('/proc/self/status') as f:
        status = dict(line.split(':', 1) for line in f.read().splitlines() if ':' in line)
    out['seccomp'] = status['Seccomp'].strip()
    out['seccomp_filters'] = status.get('Seccomp_filters', '').strip() or None
    return out
"""
PTRACE_CALLS = (
    "traceme_in_child",
    "attach_child",
    "seize_child",
    "process_vm_readv",
    "process_vm_writev",
)
PY_KERNEL = """
import os, socket
def handler(input, env):
    try:
        socket.create_connection((input['gateway'], input['port']), timeout=3).close()
        gateway = 'reached'
    except OSError as e:
        gateway = type(e).__name__
    return {'release': os.uname().release, 'version': open('/proc/version').read(),
            'gateway': gateway}
"""


def test_a_job_cannot_mount_unshare_load_modules_ptrace_setuid_or_write_outside_tmp(
    ava: Ava,
) -> None:
    host = subprocess.Popen(["sleep", "60"])  # a process of the host's: not the job's to trace
    try:
        worker = ava.worker("python", PY_FORBIDDEN, network="none")
        job = ava.run(worker["id"], {"host_pid": host.pid})
    finally:
        host.kill()
        host.wait(timeout=10)
    assert job["status"] == "succeeded", job
    seen = job["result"]
    assert seen["uid"] == 10001
    assert seen["mount"] == "EPERM"
    assert seen["unshare_user"] == "EPERM"
    assert seen["finit_module"] == "EPERM"
    assert seen["init_module"] == "EPERM"
    assert seen["ptrace_host_process"] in ("ESRCH", "EPERM")  # not in its PID namespace
    assert seen["setuid_root"] == "EPERM"
    assert seen["setresuid_other"] == "EPERM"
    assert seen["setgid_root"] == "EPERM"
    for path in ("/etc", "/usr", "", "/home", "/var"):
        assert seen[f"write {path}/planted"] in ("EROFS", "EACCES"), (path, seen)
    assert seen["write /tmp/ok"] == "ok"


def test_a_job_cannot_ptrace_or_read_the_memory_of_its_own_child(ava: Ava) -> None:
    worker = ava.worker("python", PY_PTRACE, network="none")
    job = ava.run(worker["id"], None)
    assert job["status"] == "succeeded", job
    seen = job["result"]
    for call in PTRACE_CALLS:
        assert seen[call] == "EPERM", (call, seen)
    assert seen["seccomp"] == "2"  # filter mode
    # the engine's default profile and ava-seal's filter, stacked (the line is Linux >= 5.9's)
    assert seen["seccomp_filters"] in (None, "2"), seen


def test_a_gvisor_job_cannot_ptrace_its_own_child_either(ava: Ava) -> None:
    # runsc applies no engine profile inside its sandbox and its kernel implements ptrace:
    # there ava-seal's filter, which gVisor enforces, is the only one the job sees
    worker = ava.worker("python", PY_PTRACE, network="none", isolation="gvisor")
    job = ava.run(worker["id"], None, wait=120)
    assert job["status"] == "succeeded", job
    seen = job["result"]
    for call in PTRACE_CALLS:
        assert seen[call] == "EPERM", (call, seen)
    assert seen["seccomp"] == "2"


def _gateway() -> str:
    out = subprocess.run(
        ["docker", "network", "inspect", "ava-egress"], capture_output=True, text=True, check=True
    )
    return str(json.loads(out.stdout)[0]["IPAM"]["Config"][0]["Gateway"])


def test_a_gvisor_job_runs_on_gvisors_kernel_behind_the_egress_rules(ava: Ava) -> None:
    listener = socket.create_server(("0.0.0.0", 0))
    try:
        worker = ava.worker("python", PY_KERNEL, isolation="gvisor")
        assert worker["isolation"] == "gvisor"
        port = listener.getsockname()[1]
        job = ava.run(worker["id"], {"gateway": _gateway(), "port": port}, wait=120)
    finally:
        listener.close()
    assert job["status"] == "succeeded", job
    assert job["result"]["release"] != os.uname().release
    assert job["result"]["version"] != Path("/proc/version").read_text()
    assert job["result"]["gateway"] != "reached"
    # and back: the same worker on runc sees the host's kernel
    patched = ava.client.patch(f"/workers/{worker['id']}", json={"isolation": "container"})
    assert patched.status_code == 200, patched.text
    runc = ava.run(worker["id"], {"gateway": _gateway(), "port": 9}, wait=60)
    assert runc["result"]["release"] == os.uname().release


@pytest.mark.skipif(os.geteuid() != 0, reason="reads the engine's daemon.json")
def test_the_set_up_script_registered_runsc_with_host_networking() -> None:
    conf = json.loads(Path("/etc/docker/daemon.json").read_text())
    assert conf["runtimes"]["runsc"]["runtimeArgs"] == ["--network=host"]
