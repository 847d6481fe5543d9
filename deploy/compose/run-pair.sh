#!/usr/bin/env bash
# Entrypoint of the proxy and lb images: runs the two daemons of one host
# (sqlproxyd + checkd, or lbd + vrrpd) side by side, logs of both on the
# container's output. When either exits, the other is stopped (SIGTERM, so
# vrrpd gives up the VIP cleanly) and the container exits with the first one's
# status: a dead daemon is a dead container in `docker-compose ps`, never a
# half-working host that still looks "Up".
#
# Usage: run-pair.sh DAEMON1 DAEMON2   (each runs as DAEMON -f /etc/hastack/DAEMON.yaml)
set -euo pipefail

(($# == 2)) || { echo "usage: $0 DAEMON1 DAEMON2" >&2; exit 2; }
pids=()
names=()
for d in "$@"; do
  "/usr/local/bin/$d" -f "/etc/hastack/$d.yaml" &
  pids+=($!)
  names+=("$d")
done

stop_all() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap 'stop_all; exit 143' TERM INT

rc=0
wait -n "${pids[@]}" || rc=$?
for i in "${!pids[@]}"; do
  kill -0 "${pids[$i]}" 2>/dev/null || echo "run-pair: ${names[$i]} exited (status $rc); stopping the other" >&2
done
stop_all
exit $((rc == 0 ? 1 : rc))
