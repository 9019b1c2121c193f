#!/usr/bin/env bash
# Makes sure a Docker engine answers. On a machine with none running, installs Debian's
# docker.io (and debootstrap, which the offline base-image bootstrap needs) and starts dockerd
# in the background. Idempotent: does nothing when `docker info` already works.
set -euo pipefail

engine_up() { docker info >/dev/null 2>&1; }

# docker-compose (Debian's v1.29) for the compose deployment and its test; `docker compose` (v2)
# works as well where installed. Best effort: the engine itself does not need it.
ensure_compose() {
  command -v docker-compose >/dev/null 2>&1 && return 0
  docker compose version >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null 2>&1; } \
    || echo "ensure-docker: could not install docker-compose (only the compose test needs it)" >&2
}

if engine_up; then
  command -v debootstrap >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && apt-get install -y -q debootstrap >/dev/null 2>&1 || true; }
  ensure_compose
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
ensure_compose
