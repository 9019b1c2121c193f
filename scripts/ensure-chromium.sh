#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/browser): Playwright drives this binary, it
# never downloads a browser of its own. Idempotent; waits for another apt to finish.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
APT=(-o DPkg::Lock::Timeout=600)
$SUDO apt-get "${APT[@]}" update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${APT[@]}" install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
