#!/usr/bin/env bash
# Makes sure a Docker engine answers. On a machine with none running, installs Debian's
# docker.io (and debootstrap, which the offline base-image bootstrap needs) and starts dockerd
# in the background. Idempotent: does nothing when `docker info` already works.
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

if engine_up; then
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap || true
  ensure_tools
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
  echo "ensure-docker: starting dockerd" >&2
  nohup dockerd >/tmp/dockerd.log 2>&1 &
  for _ in $(seq 1 120); do
    engine_up && break
    sleep 0.5
  done
fi

engine_up || { echo "ensure-docker: dockerd did not come up; see /tmp/dockerd.log" >&2; exit 1; }
ensure_tools
