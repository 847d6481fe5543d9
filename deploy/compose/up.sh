#!/usr/bin/env bash
# Brings up the compose lab (docs/compose-lab.md) and waits until a query
# through the VIP 10.98.0.100:3306 succeeds; `up.sh down` removes it again.
#
#   deploy/compose/up.sh          build-base.sh (if the base image is missing),
#                                 stage our binaries into build/bin, build the
#                                 role images, `docker-compose up -d`, wait
#   deploy/compose/up.sh down     `docker-compose down -v` (containers, network,
#                                 volumes; images are kept)
#
# Environment:
#   HASTACK_PROFILE  release | debug: which target/ binaries go into the images.
#                    Default: release if all four are built there, else debug
#                    if they are, else `cargo build --release` first.
#   HASTACK_PROJECT  the compose project name (default hastack-lab)
#   WAIT_SECS        how long to wait for the VIP (default 180)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
project=${HASTACK_PROJECT:-hastack-lab}
vip=10.98.0.100
bins=(vrrpd lbd sqlproxyd checkd)

die() { echo "up.sh: $*" >&2; exit 1; }
dc() { docker-compose -p "$project" -f "$here/docker-compose.yml" "$@"; }

command -v docker >/dev/null 2>&1 || die "docker is missing (install docker.io)"
command -v docker-compose >/dev/null 2>&1 || die "docker-compose is missing (install docker-compose)"

if [[ "${1:-up}" == down ]]; then
  dc down -v --remove-orphans
  exit 0
fi
[[ "${1:-up}" == up ]] || die "usage: $0 [up|down]"
command -v mariadb >/dev/null 2>&1 || die "the mariadb client is missing (install mariadb-client)"

have_all() { local b; for b in "${bins[@]}"; do [[ -x "$root/target/$1/$b" ]] || return 1; done; }
profile=${HASTACK_PROFILE:-}
if [[ -z $profile ]]; then
  if have_all release; then profile=release
  elif have_all debug; then profile=debug
  else profile=release
  fi
fi
case $profile in release | debug) ;; *) die "HASTACK_PROFILE must be release or debug" ;; esac
if ! have_all "$profile"; then
  flag=(); [[ $profile == release ]] && flag=(--release)
  echo "up.sh: building the $profile binaries"
  (cd "$root" && cargo build "${flag[@]}" --locked --bins -p vrrpd -p lbd -p sqlproxyd -p checkd)
fi

# The subnet must be ours: another network on 10.98.0.0/24 (not this
# project's) would make `up` fail half-way.
while read -r net; do
  [[ $net == "${project}_lab" ]] && continue
  if docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' "$net" 2>/dev/null | grep -qw 10.98.0.0/24; then
    die "docker network $net already uses 10.98.0.0/24; remove it first"
  fi
done < <(docker network ls --format '{{.Name}}')

"$here/build-base.sh"

echo "up.sh: staging target/$profile binaries into deploy/compose/build/bin"
mkdir -p "$here/build/bin"
# The bearer token of every daemon's POST /actions/* (admin_http.auth),
# made once, mounted as /etc/hastack/admin.token; never committed.
if [[ ! -s $here/build/admin.token ]]; then
  (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$here/build/admin.token" && echo >>"$here/build/admin.token")
fi
for b in "${bins[@]}"; do
  cp -f "$root/target/$profile/$b" "$here/build/bin/$b"
done

# Images replaced by this build are removed once the containers use the new
# ones, so repeated `up` runs leave no untagged images behind.
images=(hastack-lab/db:latest hastack-lab/proxy:latest hastack-lab/lb:latest)
old_ids=$(docker image inspect -f '{{.Id}}' "${images[@]}" 2>/dev/null || true)

# One service per image (db-2/db-3 and proxy-2/lb-2 share their image), the
# three images side by side: most of the time is apt-get downloading.
dc build --parallel db-1 proxy-1 lb-1
dc up -d
new_ids=$(docker image inspect -f '{{.Id}}' "${images[@]}" 2>/dev/null || true)
for id in $old_ids; do
  grep -qx "$id" <<<"$new_ids" || docker image rm "$id" >/dev/null 2>&1 || true
done

wait_secs=${WAIT_SECS:-180}
echo "up.sh: waiting up to ${wait_secs} s for a query through $vip:3306"
deadline=$((SECONDS + wait_secs))
until mariadb -h "$vip" -P 3306 -uapp -papp --connect-timeout=2 -N -e 'SELECT 1' >/dev/null 2>&1; do
  if ((SECONDS >= deadline)); then
    dc ps >&2
    die "no answer through $vip:3306 after ${wait_secs} s (see: docker-compose -p $project logs)"
  fi
  sleep 1
done

cat <<EOF
up.sh: the compose lab is up (project $project, images built from target/$profile).
  connect:   mariadb -h $vip -P 3306 -uapp -papp app      (read-only user: reader/reader)
  ps/logs:   docker-compose -p $project -f $here/docker-compose.yml ps | logs -f SERVICE
  lbd stats: http://10.98.0.21:48800/status  http://10.98.0.22:48800/status
  vrrpd:     http://10.98.0.21:9168/status   http://10.98.0.22:9168/status
  sqlproxyd: mariadb -h 10.98.0.11 -P 9066 -udba -pdba -e 'show @@datasource'   (and 10.98.0.12; watcher/watcher: show only)
  actions:   curl -XPOST -H "Authorization: Bearer \$(cat $here/build/admin.token)" 'http://10.98.0.11:9166/actions/switchover?node=db-2'
  databases: 10.98.0.31 (primary), .32, .33 :3306 (app/app)
  down:      $0 down
EOF
