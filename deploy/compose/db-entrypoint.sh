#!/usr/bin/env bash
# Entrypoint of the compose lab's db image: one MariaDB server of the GTID
# replication group of DESIGN.md §2 (db-1 initial primary, db-2/db-3 replicas).
#
# Environment (set per service in docker-compose.yml):
#   DB_SERVER_ID   server_id, unique per node (31, 32, 33)
#   DB_ROLE        primary | replica: the node's role at its FIRST start only
#   DB_PRIMARY     address of the initial primary the replicas follow
#
# First start (empty datadir): mariadb-install-db, then
#   - primary: creates the lab users and schemas with the binary log on, so
#     the replicas receive them through replication, and serves read_only=OFF;
#   - replica: waits for the primary to accept the repl login, then
#     CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos and START SLAVE.
# Any later start of the same datadir (the container restarted, or was
# started again by hand) comes up read_only=ON, whatever DB_ROLE says: after a
# failover another node may be the primary, and a node that comes back must not
# take writes because its container restarted. Making it a writer again (or a
# replica of the new primary) is a decision for sqlproxyd or an operator.
set -euo pipefail

: "${DB_SERVER_ID:?}" "${DB_ROLE:?}" "${DB_PRIMARY:=10.98.0.31}"
datadir=/var/lib/mysql
marker=$datadir/.hastack-initialised
sock=/run/mysqld/mysqld.sock

log() { echo "db-entrypoint[$DB_SERVER_ID]: $*" >&2; }

mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld "$datadir"

common=(
  --user=mysql --datadir="$datadir" --socket="$sock"
  --server-id="$DB_SERVER_ID" --log-bin=mariadb-bin --log-slave-updates=ON
  --binlog-format=ROW --gtid-strict-mode=ON --relay-log=relay-bin
  --skip-name-resolve --log-error=/dev/stderr
  # As sqlproxyd's default max_allowed_packet: what the proxy lets through,
  # the backend takes (MariaDB's own default is 16M).
  --max-allowed-packet=64M
  # Lossless semi-sync on every node, as deploy/lab.sh (MDB_SEMISYNC): no
  # acknowledged write lost with the primary, and a killed primary's crash
  # recovery drops what no replica acknowledged, so it can rejoin.
  --rpl-semi-sync-master-enabled=ON --rpl-semi-sync-slave-enabled=ON
  --rpl-semi-sync-master-wait-point=AFTER_SYNC --rpl-semi-sync-master-timeout=10000
  --rpl-semi-sync-master-wait-no-slave=OFF
  # A replica notices a lost primary after slave_net_timeout (default 60 s)
  # and sqlproxyd fails over only on that evidence: seconds, as deploy/lab.sh
  # (with MASTER_HEARTBEAT_PERIOD=1 below, an idle primary is not taken for
  # a lost one).
  --slave-net-timeout=4
)

read_only=ON
if [[ ! -e $marker ]]; then
  log "first start: initialising $datadir as $DB_ROLE"
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=socket >/dev/null

  # A private server (no TCP) for the setup statements.
  mariadbd "${common[@]}" --skip-networking --skip-slave-start &
  pid=$!
  for _ in $(seq 60); do
    mariadb-admin --socket="$sock" ping >/dev/null 2>&1 && break
    sleep 0.5
  done
  sql() { mariadb --socket="$sock" -uroot; }  # statements on stdin

  if [[ $DB_ROLE == primary ]]; then
    # The users of DESIGN.md §2; monitor gets exactly what sqlproxyd's
    # heartbeat and promotion need on 10.11, no more.
    sql <<'SQL'
CREATE DATABASE app;
CREATE DATABASE sbtest;
CREATE USER 'app'@'%' IDENTIFIED BY 'app';
GRANT ALL ON app.* TO 'app'@'%';
GRANT ALL ON sbtest.* TO 'app'@'%';
CREATE USER 'app_ro'@'%' IDENTIFIED BY 'app_ro';
GRANT SELECT, SHOW VIEW ON app.* TO 'app_ro'@'%';
GRANT SELECT, SHOW VIEW ON sbtest.* TO 'app_ro'@'%';
CREATE USER 'monitor'@'%' IDENTIFIED BY 'monitor';
GRANT SUPER, SLAVE MONITOR, REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, BINLOG ADMIN, PROCESS, RELOAD ON *.* TO 'monitor'@'%';
CREATE USER 'repl'@'%' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
SQL
    read_only=OFF
  else
    log "waiting for the primary $DB_PRIMARY to accept the repl login"
    ok=0
    for _ in $(seq 120); do
      if mariadb -h "$DB_PRIMARY" -urepl -prepl -e 'SELECT 1' >/dev/null 2>&1; then ok=1; break; fi
      sleep 1
    done
    ((ok)) || { log "primary $DB_PRIMARY not reachable in 120 s"; kill "$pid"; wait "$pid" || true; exit 1; }
    # Fresh replica: empty gtid_slave_pos, so it replays the primary's whole
    # binary log (users and schemas included).
    sql <<SQL
SET GLOBAL gtid_slave_pos = '';
CHANGE MASTER TO MASTER_HOST='$DB_PRIMARY', MASTER_PORT=3306,
  MASTER_USER='repl', MASTER_PASSWORD='repl',
  MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1;
SQL
  fi
  mariadb-admin --socket="$sock" shutdown
  wait "$pid" || true
  touch "$marker"
else
  log "datadir already initialised: starting read_only=ON (no automatic writer after a restart)"
fi

log "starting mariadbd (read_only=$read_only)"
# Replicas start their slave threads from the saved master info (no
# --skip-slave-start), so a restarted replica catches up on its own.
exec mariadbd "${common[@]}" --bind-address=0.0.0.0 --port=3306 --read-only="$read_only"
