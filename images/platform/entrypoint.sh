#!/bin/sh
# The platform container's start: build any missing (or outdated) runtime image, then serve.
# `ava images build` is incremental: with every image up to date it takes a few seconds.
set -eu
if [ "${1:-serve}" = serve ]; then
  if [ "${AVA_BUILD_IMAGES_ON_START:-1}" = 1 ]; then
    echo '{"event": "runtime_images_check", "level": "info"}' >&2
    ava images build >&2
  fi
  exec ava serve --host 0.0.0.0 --port 8080 --db "${AVA_DB_PATH:-/data/ava.db}"
fi
exec ava "$@"
