#!/usr/bin/env bash
# Builds the compose lab's base image, hastack-base:bookworm, if it is missing.
#
# No image registry is reachable (DESIGN.md §7), so the image is made from
# Debian's packages: `debootstrap --variant=minbase bookworm DIR` into a
# temporary directory (≈45 s), then `tar -C DIR -c . | docker import -`.
# The role images (db.Dockerfile, proxy.Dockerfile, lb.Dockerfile) start
# FROM it and apt-get install what their role needs.
#
# Idempotent: an existing hastack-base:bookworm is kept (FORCE=1 rebuilds it).
# Environment: HASTACK_BASE_IMAGE (default hastack-base:bookworm),
# DEBIAN_MIRROR (default: debootstrap's own), FORCE=1.
# Needs root, debootstrap and docker.
set -euo pipefail

IMAGE=${HASTACK_BASE_IMAGE:-hastack-base:bookworm}
SUITE=bookworm
# Small on purpose: everything role-specific is installed by the Dockerfiles.
INCLUDE=ca-certificates,procps,iproute2,netbase

die() { echo "build-base: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is missing (install docker.io)"
if docker image inspect "$IMAGE" >/dev/null 2>&1 && [[ "${FORCE:-0}" != 1 ]]; then
  echo "build-base: $IMAGE already present, kept (FORCE=1 rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing (apt-get install debootstrap)"
((EUID == 0)) || die "debootstrap needs root"

dir=$(mktemp -d /var/tmp/hastack-base.XXXXXX)
cleanup() {
  # debootstrap mounts proc/sys inside the target; never remove through a mount.
  local m
  while read -r m; do
    umount -l "$m" || true
  done < <(awk -v d="$dir/" 'index($2 "/", d) == 1 {print $2}' /proc/mounts | sort -r)
  rm -rf --one-file-system "$dir"
}
trap cleanup EXIT

old_id=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
start=$SECONDS
echo "build-base: debootstrap --variant=minbase --include=$INCLUDE $SUITE $dir"
# shellcheck disable=SC2086 # DEBIAN_MIRROR is optional: empty means debootstrap's default
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$dir" ${DEBIAN_MIRROR:-} \
  >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; rm -f "$dir.log"; die "debootstrap failed"; }
rm -f "$dir.log"

# What Debian's official images do for apt in a container: services are not
# started by package scripts (there is no init), and no cached .debs or lists.
printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
chmod 755 "$dir/usr/sbin/policy-rc.d"
cat >"$dir/etc/apt/apt.conf.d/90hastack-container" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Dpkg::Options { "--force-confdef"; "--force-confold"; };
EOF
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*

echo "build-base: docker import -> $IMAGE"
tar -C "$dir" --numeric-owner -c . |
  docker import --change 'ENV DEBIAN_FRONTEND=noninteractive' \
    --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
# With FORCE=1 the image it replaces goes too (kept while role images use it).
if [[ -n $old_id && $old_id != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]]; then
  docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "build-base: $IMAGE built in $((SECONDS - start)) s"
