#!/usr/bin/env bash
# Builds the Debian base image without a container registry: debootstrap a minimal bookworm
# from Debian's mirror (plain HTTP works where registries are unreachable), trim what no
# runtime image needs, and `docker import` the tree under the given tag.
# Usage: bootstrap-base.sh TAG [MIRROR]. Needs root (debootstrap chroots and mknods).
set -euo pipefail

tag="${1:?usage: bootstrap-base.sh TAG [MIRROR]}"
mirror="${2:-http://deb.debian.org/debian}"

[ "$(id -u)" = 0 ] || { echo "bootstrap-base: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "bootstrap-base: debootstrap is not installed" >&2; exit 1; }

root="$(mktemp -d /tmp/ava-debootstrap.XXXXXX)"
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase bookworm "$root" "$mirror" >&2

# Same trimming as debian:*-slim: docs, translations and downloaded .debs are dead weight
# (a third of the tree); images/base/Dockerfile keeps later installs from adding them back.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/locale/* "$root"/usr/share/lintian/* \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/*
# The chroot's resolv.conf is the build host's; Docker bind-mounts its own at run time.
: > "$root"/etc/resolv.conf

tar --numeric-owner -C "$root" -c . | docker import \
  --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$tag" >&2
echo "$tag"
