#!/usr/bin/env bash
# Health check of a db container: the server answers, and if it is a replica
# its replication threads both run (a replica that stopped replicating is
# unhealthy, not silently stale).
set -euo pipefail
sock=/run/mysqld/mysqld.sock
mariadb-admin --socket="$sock" ping >/dev/null
status=$(mariadb --socket="$sock" -uroot -e 'SHOW SLAVE STATUS\G')
[[ -z $status ]] && exit 0
grep -q 'Slave_IO_Running: Yes' <<<"$status" && grep -q 'Slave_SQL_Running: Yes' <<<"$status"
