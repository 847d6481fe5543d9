#!/usr/bin/env bash
# CI test of the compose lab (issue 9 item 2, docs/compose-lab.md):
#   1. the base image from nothing if it is missing (build-base.sh), the role
#      images, `docker-compose up -d` (all through up.sh, which waits for a
#      first query through the VIP);
#   2. a write and a read through 10.98.0.100:3306 with the mariadb CLI as
#      app/app, the row reaching both replicas by GTID replication;
#   3. `docker-compose kill lb-1` → the VIP answers again, now from lb-2;
#   4. `docker-compose down -v --rmi local` on any exit (trap), success or
#      not: containers, network, volumes and the role images go; the base
#      image hastack-base:bookworm stays cached (a clean machine builds it once,
#      about a minute).
# Prints its runtime; with a warm base image it takes a few minutes.
# Environment: HASTACK_PROFILE (release|debug, see up.sh), KEEP=1 leaves the
# lab running after a failure for a look (then: deploy/compose/up.sh down).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export HASTACK_PROJECT=hastack-lab
project=$HASTACK_PROJECT
vip=10.98.0.100
start=$SECONDS

dc() { docker-compose -p "$project" -f "$here/docker-compose.yml" "$@"; }
say() { echo "compose-test [$((SECONDS - start)) s]: $*"; }
fail() { echo "compose-test: FAIL: $*" >&2; exit 1; }
q() { mariadb -h "$vip" -P 3306 -uapp -papp --connect-timeout=2 -N -B "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT
  if ((rc != 0)); then
    echo "compose-test: failed (status $rc); state and last logs:" >&2
    dc ps >&2 || true
    dc logs --no-color --tail=40 >&2 || true
    if [[ "${KEEP:-0}" == 1 ]]; then
      echo "compose-test: KEEP=1, lab left up" >&2
      exit "$rc"
    fi
  fi
  say "tearing down (docker-compose down -v --rmi local)"
  dc down -v --rmi local --remove-orphans >/dev/null 2>&1 || dc down -v --remove-orphans || true
  # The role images have fixed names, so --rmi local keeps them: remove them
  # here (the base image stays cached on purpose).
  docker image rm -f hastack-lab/db:latest hastack-lab/proxy:latest hastack-lab/lb:latest >/dev/null 2>&1 || true
  if docker network inspect "${project}_lab" >/dev/null 2>&1; then
    echo "compose-test: network ${project}_lab left behind" >&2
    rc=1
  fi
  if [[ -n $(dc ps -q 2>/dev/null) ]]; then
    echo "compose-test: containers left behind" >&2
    rc=1
  fi
  say "done, status $rc"
  exit "$rc"
}

# A lab from an earlier, interrupted run would make `up` ambiguous.
dc down -v --remove-orphans >/dev/null 2>&1 || true
trap cleanup EXIT
# A CI timeout or Ctrl-C tears down too: turn the signal into an exit.
trap 'exit 143' TERM
trap 'exit 130' INT

"$here/up.sh"
say "lab up; a query through $vip:3306 answered"

vip_holder() {
  local s
  for s in lb-1 lb-2; do
    if dc exec -T "$s" ip -4 -o addr show dev eth0 2>/dev/null | grep -q " $vip/"; then
      echo "$s"
    fi
  done
}
# Exactly lb-1: if VRRP multicast did not cross the compose network, lb-2
# would hear no advert and hold the VIP too.
holder=$(vip_holder)
[[ $holder == lb-1 ]] || fail "VIP held by '${holder//$'\n'/ and }', expected lb-1 alone (priority 150)"
say "VIP on lb-1"

# Write through the VIP (to the primary via sqlproxyd), then read it back
# through the VIP (from a replica: wait out replication lag).
token="compose-$$-$RANDOM"
q app -e "CREATE TABLE IF NOT EXISTS compose_test (id INT PRIMARY KEY, v VARCHAR(64)); REPLACE INTO compose_test VALUES (1, '$token')" ||
  fail "write through $vip"
say "wrote $token through $vip"
read_back() {
  local deadline=$((SECONDS + $1)) got=
  while ((SECONDS < deadline)); do
    got=$(q app -e "SELECT v FROM compose_test WHERE id = 1" 2>/dev/null || true)
    [[ $got == "$token" ]] && return 0
    sleep 0.5
  done
  echo "compose-test: read back '$got', expected '$token'" >&2
  return 1
}
read_back 30 || fail "read through $vip"
say "read $token back through $vip"
for db in 10.98.0.32 10.98.0.33; do
  got=$(mariadb -h "$db" -uapp -papp -N -B app -e "SELECT v FROM compose_test WHERE id = 1")
  [[ $got == "$token" ]] || fail "replica $db has '$got', expected '$token'"
  ro=$(mariadb -h "$db" -uapp -papp -N -B -e "SELECT @@read_only")
  [[ $ro == 1 ]] || fail "replica $db is not read_only"
done
say "both replicas have the row by GTID replication and are read_only"

# lb-1 dies: lb-2 must take the VIP (VRRP master-down ≈ 3 × 1 s + skew) and
# answer, with nothing restarting lb-1.
kill_at=$SECONDS
dc kill lb-1 >/dev/null 2>&1
say "killed lb-1"
deadline=$((SECONDS + 30))
until q -e 'SELECT 1' >/dev/null 2>&1; do
  ((SECONDS < deadline)) || fail "no answer through $vip within 30 s of killing lb-1"
  sleep 0.2
done
say "VIP answers again $((SECONDS - kill_at)) s after the kill"
holder=$(vip_holder)
[[ $holder == lb-2 ]] || fail "VIP held by '${holder}' after killing lb-1, expected lb-2"
token="compose-after-$$-$RANDOM"
q app -e "REPLACE INTO compose_test VALUES (1, '$token')" || fail "write through $vip after the failover"
read_back 30 || fail "read through $vip after the failover"
state=$(docker inspect -f '{{.State.Status}}' "$(dc ps -q lb-1)")
[[ $state == exited ]] || fail "lb-1 is '$state' after docker-compose kill, expected exited (not restarted)"
say "VIP on lb-2; a write and a read through it succeed; lb-1 stays down"

say "PASS in $((SECONDS - start)) s (teardown follows)"
