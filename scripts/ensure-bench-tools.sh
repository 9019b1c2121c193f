#!/usr/bin/env bash
# The load generator `make bench` drives the API with (bench/api.py): Debian's wrk.
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q wrk >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q wrk >/dev/null 2>&1; }
fi
command -v wrk >/dev/null 2>&1 || { echo "ensure-bench-tools: wrk is missing (as root: apt-get install wrk)" >&2; exit 1; }
