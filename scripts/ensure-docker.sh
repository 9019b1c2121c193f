#!/usr/bin/env bash
# Makes sure a Docker engine answers. On a machine with none running, installs Debian's
# docker.io (and debootstrap, which the offline base-image bootstrap needs) and starts dockerd
# in the background. Idempotent: does nothing when `docker info` already works.
#
# Registers gVisor's runsc (Debian's package) with the engine as the runtime `runsc`, for
# workers with `isolation: gvisor`: written into /etc/docker/daemon.json (merged, nothing else
# in it changed) before dockerd starts, or, on a running engine, reloaded with SIGHUP (the
# `runtimes` key is reloadable), never by restarting the engine and its containers. runsc runs
# with --network=host: the sandbox then uses the network namespace the engine made for the
# container, so the engine's network and the egress firewall rules apply to it as to runc.
#
# Also installs, where missing, `jq` (the README's examples use it) and docker-compose (the
# compose deployment). Best effort by default (`make up` needs neither); with --for-tests
# (`make test`) both are required: the script exits 1 if either is still missing, so the tests
# that need them never run without them.
set -euo pipefail

for_tests=0
[ "${1:-}" = --for-tests ] && for_tests=1

engine_up() { docker info >/dev/null 2>&1; }

apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1; }
}

# one tool: present, or installed now; else a warning (or, with --for-tests, a failure)
require_tool() {
  local what=$1 package=$2 probe=$3
  eval "$probe" >/dev/null 2>&1 && return 0
  echo "ensure-docker: installing $package" >&2
  apt_install "$package" && eval "$probe" >/dev/null 2>&1 && return 0
  if [ "$for_tests" = 1 ]; then
    echo "ensure-docker: $what is missing and could not be installed (as root: apt-get install $package); the tests need it" >&2
    exit 1
  fi
  echo "ensure-docker: $what is missing and could not be installed (apt-get install $package); only $4 need it" >&2
}

# docker-compose (Debian's v1.29) for the compose deployment and its test; `docker compose` (v2)
# works as well where installed.
ensure_tools() {
  require_tool "docker-compose" docker-compose \
    'command -v docker-compose || docker compose version' "the compose deployment and its tests"
  require_tool "jq" jq 'command -v jq' "the README's examples"
  # `ip` and `nsenter` make the swarm tests' second node (a dockerd in a network namespace);
  # without them those tests run on one node and say why
  if [ "$for_tests" = 1 ]; then
    command -v ip >/dev/null 2>&1 || apt_install iproute2 ||
      echo "ensure-docker: no ip (iproute2): the swarm tests run on one node" >&2
    command -v nsenter >/dev/null 2>&1 || apt_install util-linux ||
      echo "ensure-docker: no nsenter (util-linux): the swarm tests run on one node" >&2
  fi
}

DAEMON_JSON=${AVA_DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}

# daemon.json with the runsc runtime added (other keys kept); prints "changed" if it wrote
register_runsc() {
  python3 - "$DAEMON_JSON" <<'PY'
import json, os, sys
path = sys.argv[1]
try:
    with open(path) as f:
        conf = json.load(f)
except FileNotFoundError:
    conf = {}
want = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]}
if conf.get("runtimes", {}).get("runsc") != want:
    conf.setdefault("runtimes", {})["runsc"] = want
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(conf, f, indent=2)
    os.replace(path + ".tmp", path)
    print("changed")
PY
}

engine_has_runsc() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

# runsc installed and registered: best effort unless --for-tests (the gVisor tests need it)
ensure_gvisor() {
  local running=$1
  if ! command -v runsc >/dev/null 2>&1; then
    echo "ensure-docker: installing runsc (gVisor)" >&2
    apt_install runsc || true
  fi
  if command -v runsc >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    register_runsc >/dev/null
    if [ "$running" = 1 ] && ! engine_has_runsc; then
      echo "ensure-docker: registering runsc with the running engine (SIGHUP)" >&2
      kill -HUP "$(pidof dockerd)" 2>/dev/null || true
      for _ in $(seq 1 40); do engine_has_runsc && break; sleep 0.25; done
    fi
  fi
  [ "$running" = 0 ] && return 0
  engine_has_runsc && return 0
  if [ "$for_tests" = 1 ]; then
    echo "ensure-docker: the engine has no runsc runtime (as root: apt-get install runsc; add it to $DAEMON_JSON); the gVisor tests need it" >&2
    exit 1
  fi
  echo "ensure-docker: the engine has no runsc runtime; workers with isolation gvisor are refused" >&2
}

if engine_up; then
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap || true
  ensure_tools
  ensure_gvisor 1
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-docker: no Docker engine answers and I am not root to install one" >&2
    exit 1
  fi
  echo "ensure-docker: installing docker.io and debootstrap" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q docker.io debootstrap >/dev/null
fi

if ! engine_up; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-docker: dockerd is installed but not running; start it as root" >&2
    exit 1
  fi
  ensure_gvisor 0  # daemon.json first: the engine starts with runsc registered
  echo "ensure-docker: starting dockerd" >&2
  nohup dockerd >/tmp/dockerd.log 2>&1 &
  for _ in $(seq 1 120); do
    engine_up && break
    sleep 0.5
  done
fi

engine_up || { echo "ensure-docker: dockerd did not come up; see /tmp/dockerd.log" >&2; exit 1; }
ensure_tools
ensure_gvisor 1
