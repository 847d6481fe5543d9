#!/usr/bin/env bash
# deploy/lab.sh: the whole hastack topology of DESIGN.md §2 on this machine,
# every host a network namespace on one switch, 10.99.0.0/24; the machine is
# 10.99.0.1 on hsbr0 and reaches the VIP 10.99.0.100:3306 from here.
#
#   lab.sh up                      build if needed, start everything, wait for the VIP
#   lab.sh status                  the whole stack on one screen, from the daemons' /status
#   lab.sh down                    stop every process it started, remove namespaces, bridge, state
#   lab.sh kill|stop|start HOST[:DAEMON]   SIGKILL / SIGTERM / start again (same config)
#   lab.sh partition HOST HOST     cut all traffic between two hosts (VRRP included)
#   lab.sh partition [--oneway] A,B C,D   cut every pair across two groups; --oneway
#                                  drops only what the first group sends the second
#   lab.sh heal [[--oneway] A,B C,D]   undo one partition (same arguments), or all of them
#   lab.sh switchover [NODE] [--via proxy-N]   a planned switchover to NODE (default:
#                                  the first readable replica), asked of proxy-1
#
# Hosts: lb-1 lb-2 (lbd, vrrpd), proxy-1 proxy-2 (sqlproxyd, checkd),
# db-1 db-2 db-3 (mariadbd). State, configs and logs: $HASTACK_LAB_DIR
# (default /tmp/hastack-lab). Binaries: $HASTACK_BIN_DIR if set, else
# target/release, built with cargo when missing or older than the sources.
# sqlproxyd's read balance: $HASTACK_LAB_BALANCE (default replicas; primary
# sends every read to the primary, as bench-stack's comparison run does).
# Needs root (namespaces, bridge, VRRP). See docs/lab.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${HASTACK_LAB_DIR:-/tmp/hastack-lab}
BALANCE=${HASTACK_LAB_BALANCE:-replicas}
BRIDGE=hsbr0
NET=10.99.0
VIP=$NET.100
SWITCH=hs-switch
NFT_TABLE=hastack_lab
# The bridge carries this alias, so a later run knows hsbr0 is the lab's own.
BRIDGE_ALIAS=hastack-lab
LOCK=/run/lock/hastack-lab.lock
# The state dir of the lab that is up: the namespaces and bridge have fixed
# names, so an up or down from another state dir must not take them for
# leftovers of its own and tear down a lab it did not start.
OWNER=/run/hastack-lab.owner

HOSTS=(db-1 db-2 db-3 proxy-1 proxy-2 lb-1 lb-2)
declare -A OCTET=([lb-1]=21 [lb-2]=22 [proxy-1]=11 [proxy-2]=12 [db-1]=31 [db-2]=32 [db-3]=33)
# Daemons of each host, in start order.
declare -A DAEMONS=([lb-1]="lbd vrrpd" [lb-2]="lbd vrrpd" [proxy-1]="sqlproxyd checkd"
  [proxy-2]="sqlproxyd checkd" [db-1]=mariadbd [db-2]=mariadbd [db-3]=mariadbd)
OURS=(vrrpd lbd sqlproxyd checkd)

say() { printf 'lab: %s\n' "$*"; }
die() {
  printf 'lab: %s\n' "$*" >&2
  exit 1
}

netns() { printf 'hs-%s' "$1"; }
# A host's port on the switch (an interface in the switch namespace).
port() { printf 'p-%s' "$1"; }
addr() { printf '%s.%s' "$NET" "${OCTET[$1]}"; }
hostdir() { printf '%s/%s' "$STATE" "$1"; }
pidfile() { printf '%s/pids/%s:%s' "$STATE" "$1" "$2"; }

# One line naming the Debian package when a tool is missing.
need() {
  local tool=$1 pkg=$2
  command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] ||
    die "$tool not found: install it with 'apt-get install $pkg'"
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, a bridge, VRRP): run it with sudo"
}

lock() {
  mkdir -p "$(dirname "$LOCK")"
  exec 9>"$LOCK"
  flock -n 9 || die "another lab.sh is running (lock $LOCK)"
  local owner
  owner=$(cat "$OWNER" 2>/dev/null) || true
  if [[ -n $owner && $owner != "$(realpath -m "$STATE")" && -e $owner/.hastack-lab ]]; then
    die "a lab started with state dir $owner is up; run: HASTACK_LAB_DIR=$owner $0 down"
  fi
}

bin_dir() {
  if [[ -n ${HASTACK_BIN_DIR:-} ]]; then
    printf '%s' "$HASTACK_BIN_DIR"
  else
    printf '%s/release' "${CARGO_TARGET_DIR:-$REPO/target}"
  fi
}

# Builds the release binaries when one is missing or older than the sources.
build() {
  local dir stale=""
  dir=$(bin_dir)
  for b in "${OURS[@]}"; do
    if [[ ! -x $dir/$b ]]; then
      stale="$b is missing"
    elif [[ -z ${HASTACK_BIN_DIR:-} ]] &&
      [[ -n $(find "$REPO/crates" "$REPO/Cargo.toml" "$REPO/Cargo.lock" -newer "$dir/$b" \
        \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -print -quit) ]]; then
      stale="$b is older than the sources"
    fi
    [[ -n $stale ]] && break
  done
  [[ -z $stale ]] && return 0
  [[ -z ${HASTACK_BIN_DIR:-} ]] || die "$stale in HASTACK_BIN_DIR=$HASTACK_BIN_DIR"
  need cargo cargo
  say "building release binaries ($stale): cargo build --release --workspace --bins"
  (cd "$REPO" && cargo build --release --workspace --bins) || die "cargo build failed"
}

# --- processes ----------------------------------------------------------------

# Whether PID is a live (not zombie) process.
alive() {
  local pid=$1 st
  [[ -n $pid && -r /proc/$pid/stat ]] || return 1
  st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}

# The recorded PID of HOST:DAEMON if that process still runs.
running_pid() {
  local f pid
  f=$(pidfile "$1" "$2")
  [[ -r $f ]] || return 1
  pid=$(<"$f")
  alive "$pid" || return 1
  printf '%s' "$pid"
}

# SIGTERM (or SIG) every PID given, then SIGKILL what is left after TIMEOUT seconds.
terminate() {
  local sig=$1 timeout=$2
  shift 2
  local pids=("$@") left p i
  ((${#pids[@]})) || return 0
  kill "-$sig" "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    left=0
    for p in "${pids[@]}"; do alive "$p" && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
  for p in "${pids[@]}"; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  for ((i = 0; i < 50; i++)); do
    left=0
    for p in "${pids[@]}"; do alive "$p" && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
}

mariadb_sock() { printf '%s/mysqld.sock' "$(hostdir "$1")"; }

# Small InnoDB files and buffers (as integration-tests/src/mariadb.rs): a lab
# node needs little and the machine runs three.
MDB_SMALL=(--innodb-log-file-size=8M --innodb-buffer-pool-size=32M --innodb-use-native-aio=0)
# Lossless semi-synchronous replication on every node, whichever is primary
# (a switchover or failover moves the role): a commit returns once a replica
# has the transaction, and AFTER_SYNC waits before the engine commits, so a
# killed primary holds no committed transaction the replicas lack. The slave
# side, on at startup, makes crash recovery roll back and cut from the binlog
# what was prepared but never acknowledged: a killed primary comes back with
# nothing the new primary lacks and sqlproxyd can readmit it (without this,
# it keeps those transactions and stays fenced: "diverged").
# A node with no replica connected does not wait (wait_no_slave=OFF): else
# a replica, which has the master side on too, would hold each transaction
# its SQL thread applies for the whole timeout.
MDB_SEMISYNC=(--rpl-semi-sync-master-enabled=ON --rpl-semi-sync-slave-enabled=ON
  --rpl-semi-sync-master-wait-point=AFTER_SYNC --rpl-semi-sync-master-timeout=10000
  --rpl-semi-sync-master-wait-no-slave=OFF)
# A replica says its primary is gone only when the IO thread's connection
# times out: after slave_net_timeout (MariaDB's default 60 s) of silence.
# sqlproxyd fails over only on that evidence (a replica still connected
# means just this proxy lost the primary), so a partition or a hung primary
# must be noticed in seconds: 4 s here, with the primary sending a heartbeat
# event every second when idle (MASTER_HEARTBEAT_PERIOD in setup_replication;
# its default would be half of slave_net_timeout) so that a quiet primary is
# not taken for a lost one.
MDB_REPL_TIMEOUTS=(--slave-net-timeout=4)
HEARTBEAT_PERIOD=1

daemon_cmd() {
  local host=$1 daemon=$2 dir
  dir=$(hostdir "$host")
  case $daemon in
    mariadbd)
      CMD=(/usr/sbin/mariadbd --no-defaults "--datadir=$dir/data" "--tmpdir=$dir/tmp"
        --port=3306 --bind-address=0.0.0.0 "--socket=$(mariadb_sock "$host")"
        "--pid-file=$dir/mariadbd.pid" "--log-error=$dir/mariadbd.log"
        "--server-id=${OCTET[$host]}" --log-bin=mysql-bin --binlog-format=ROW
        --log-slave-updates --gtid-strict-mode=ON --skip-name-resolve
        --performance-schema=OFF --max-connections=500 "--relay-log=$dir/relay-bin"
        --max-allowed-packet=64M
        "${MDB_SMALL[@]}" "${MDB_SEMISYNC[@]}" "${MDB_REPL_TIMEOUTS[@]}" --user=root)
      # max_allowed_packet as sqlproxyd's default (64M): a request the
      # proxy lets through is one the backend takes.
      # The replicas start read-only; a restarted old primary comes back
      # writable and is fenced by sqlproxyd (DESIGN.md §5).
      [[ $host == db-1 ]] || CMD+=(--read-only=ON)
      ;;
    *) CMD=("$(bin_dir)/$daemon" -f "$dir/$daemon.yaml") ;;
  esac
}

start_daemon() {
  local host=$1 daemon=$2 pid log
  if pid=$(running_pid "$host" "$daemon"); then
    say "$host:$daemon already runs (pid $pid)"
    return 0
  fi
  daemon_cmd "$host" "$daemon"
  log=$(hostdir "$host")/$daemon.log
  [[ $daemon == mariadbd ]] && log=$(hostdir "$host")/mariadbd.out
  # ip netns exec execs the daemon: $! is the daemon's own PID. The lock's
  # descriptor is not passed on (a daemon would hold it for ever).
  ip netns exec "$(netns "$host")" "${CMD[@]}" </dev/null >>"$log" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$(pidfile "$host" "$daemon")"
  if [[ $daemon == mariadbd ]]; then
    wait_mariadb "$host" "$pid"
  else
    wait_admin "$host" "$daemon" "$pid"
  fi
}

admin_addr() {
  local host=$1 daemon=$2
  case $daemon in
    sqlproxyd) printf '%s:9166' "$(addr "$host")" ;;
    checkd) printf '%s:9167' "$(addr "$host")" ;;
    vrrpd) printf '%s:9168' "$(addr "$host")" ;;
    lbd) printf '%s:48800' "$(addr "$host")" ;;
  esac
}

wait_admin() {
  local host=$1 daemon=$2 pid=$3 i
  for ((i = 0; i < 200; i++)); do
    alive "$pid" || die "$host:$daemon exited at start; its log, $(hostdir "$host")/$daemon.log:
$(tail -n 20 "$(hostdir "$host")/$daemon.log")"
    curl -fsS -m 1 -o /dev/null "http://$(admin_addr "$host" "$daemon")/status" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$host:$daemon: no answer on http://$(admin_addr "$host" "$daemon")/status within 20s; log: $(hostdir "$host")/$daemon.log"
}

root_sql() {
  local host=$1
  shift
  mariadb --no-defaults --socket="$(mariadb_sock "$host")" -uroot --connect-timeout=2 -N -B "$@"
}

# SHOW SLAVE STATUS of HOST, one "Field: value" a line.
slave_status() {
  mariadb --no-defaults --socket="$(mariadb_sock "$1")" -uroot --connect-timeout=2 \
    -e 'SHOW SLAVE STATUS\G'
}

wait_mariadb() {
  local host=$1 pid=$2 i
  for ((i = 0; i < 600; i++)); do
    alive "$pid" || die "$host:mariadbd exited at start; its log, $(hostdir "$host")/mariadbd.log:
$(tail -n 20 "$(hostdir "$host")/mariadbd.log")"
    root_sql "$host" -e 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$host:mariadbd not ready within 60s; log: $(hostdir "$host")/mariadbd.log"
}

# --- network ------------------------------------------------------------------

bridge_is_ours() {
  [[ $(ip -o link show dev "$BRIDGE" 2>/dev/null) == *"alias $BRIDGE_ALIAS"* ]]
}

# Refuses (before creating anything) when the interface name or the subnet
# is taken by something that is not this lab.
check_free() {
  if ip link show dev "$BRIDGE" >/dev/null 2>&1; then
    die "$BRIDGE already exists and is not this lab's (ip -d link show $BRIDGE); remove it or free the name"
  fi
  local used
  used=$(ip -o -4 addr show | awk -v net="$NET." 'index($4, net) == 1 {print $4 " on " $2; exit}')
  [[ -z $used ]] || die "$NET.0/24 is already in use on this machine: $used"
  used=$(ip -4 route show table all | awk -v net="$NET." 'index($1, net) == 1 {print; exit}')
  [[ -z $used ]] || die "$NET.0/24 is already routed on this machine: $used"
}

# The switch: a bridge in a namespace of its own (hs-switch), every host's
# eth0 plugged into it, and the machine plugged in too through the veth
# hsbr0 (10.99.0.1/24 in the root namespace).
#
# Why not the bridge itself in the root namespace: Docker loads br_netfilter
# and sets iptables' FORWARD policy to DROP there, and with the global
# net.bridge.bridge-nf-call-iptables=1 a bridge's own nf_call_iptables 0
# does not switch it off (the kernel ORs the two), so frames between the
# hosts would be dropped. The switch namespace has its own br_netfilter
# settings and an empty firewall, and the machine's firewall stays as it is.
net_up() {
  local sw=$SWITCH h ns
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge mcast_snooping 0
  ip -n "$sw" link set br0 up
  ip link add "$BRIDGE" type veth peer name uplink netns "$sw"
  ip link set dev "$BRIDGE" alias "$BRIDGE_ALIAS"
  ip -n "$sw" link set uplink master br0 up
  ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for h in "${HOSTS[@]}"; do
    ns=$(netns "$h")
    ip netns add "$ns"
    ip -n "$sw" link add "$(port "$h")" type veth peer name eth0 netns "$ns"
    ip -n "$sw" link set "$(port "$h")" master br0 up
    ip -n "$ns" link set lo up
    # A host forwards nothing: traffic for the VIP reaches only its holder.
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0
    ip -n "$ns" addr add "$(addr "$h")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$NET.1"
  done
  # The machine sees every host, and the hosts see each other.
  local i
  for h in "${HOSTS[@]}"; do
    for ((i = 0; i < 30; i++)); do
      ping -c 1 -W 1 -q "$(addr "$h")" >/dev/null 2>&1 && break
      sleep 0.1
    done
    ((i < 30)) || die "$h ($(addr "$h")) does not answer ping from $NET.1"
  done
  ip netns exec "$(netns db-2)" ping -c 1 -W 2 -q "$(addr db-1)" >/dev/null 2>&1 ||
    die "db-2 cannot reach db-1 ($(addr db-1)) over the switch"
}

nft_partitions() {
  local rules a b
  rules="table bridge $NFT_TABLE
delete table bridge $NFT_TABLE
table bridge $NFT_TABLE {
 chain forward {
  type filter hook forward priority 0; policy accept;
"
  if [[ -s $STATE/partitions ]]; then
    # "A B": both directions cut; "A > B": only what A sends B.
    while read -r a dir b; do
      [[ -n $b ]] || { b=$dir dir=""; }
      rules+="  iifname \"$(port "$a")\" oifname \"$(port "$b")\" drop
"
      [[ $dir == ">" ]] || rules+="  iifname \"$(port "$b")\" oifname \"$(port "$a")\" drop
"
    done <"$STATE/partitions"
  fi
  rules+=" }
}
"
  ip netns exec "$SWITCH" nft -f - <<<"$rules"
}

# --- configs ------------------------------------------------------------------

# The bearer token every daemon's POST /actions/* takes (admin_http.auth):
# made once per lab, readable by root only.
TOKEN_FILE=$STATE/admin.token
write_token() {
  [[ -s $TOKEN_FILE ]] && return 0
  (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE" && echo >>"$TOKEN_FILE")
}

write_configs() {
  local n h a dir
  write_token
  for n in 1 2; do
    h=proxy-$n a=$(addr "proxy-$n") dir=$(hostdir "proxy-$n")
    mkdir -p "$dir/state"
    cat >"$dir/sqlproxyd.yaml" <<EOF
# sqlproxyd on $h of the namespace lab (from configs/lab/sqlproxyd-$n.yaml).
admin_http:
  listen: $a:9166
  auth: {token_file: $TOKEN_FILE}
shutdown_grace: 5s
listen: $a:8066
admin_listen: $a:9066
state_dir: $dir/state
users:
  - {name: app, password: app, schemas: [app, sbtest]}
  - {name: reader, password: reader, schemas: [app, sbtest], read_only: true}
admin_users:
  - {name: dba, password: dba, level: admin}
  - {name: watcher, password: watcher, level: monitor}
data_hosts:
  - name: dh1
    balance: $BALANCE
    switch_type: replication
    user: app
    password: app
    read_only_user: app_ro     # what the read_only users run as (SELECT, SHOW VIEW)
    read_only_password: app_ro
    max_replica_lag: 5s
    heartbeat: {interval: 1s, fail_count: 3, user: monitor, password: monitor}
    failover: {replication_user: repl, replication_password: repl, min_switch_interval: 30s}
    nodes:
      - {name: db-1, address: $(addr db-1):3306, role: write}
      - {name: db-2, address: $(addr db-2):3306, role: read}
      - {name: db-3, address: $(addr db-3):3306, role: read}
schemas:
  - {name: app, data_host: dh1}
  - {name: sbtest, data_host: dh1}
EOF
    cat >"$dir/checkd.yaml" <<EOF
# checkd on $h of the namespace lab (from configs/lab/checkd-$n.yaml): answers
# lbd's checks on $a:48700 by logging in to the sqlproxyd beside it and
# asking its /health (503 while cut off from a live primary).
admin_http:
  listen: $a:9167
  auth: {token_file: $TOKEN_FILE}
services:
  sqlproxyd_status:
    type: http_check
    bind: $a:48700
    only_from: [$NET.0/24, 127.0.0.0/8]
    # lbd's hosts: a flood from any other peer cannot pause their checks.
    checkers: [$(addr lb-1), $(addr lb-2)]
    probe:
      mysql:
        address: $a:8066
        user: app
        password: app
        query: SELECT 1
        timeout: 2s
      http:
        url: http://$a:9166/health
        timeout: 2s
EOF
  done
  for n in 1 2; do
    h=lb-$n a=$(addr "lb-$n") dir=$(hostdir "lb-$n")
    mkdir -p "$dir"
    cat >"$dir/lbd.yaml" <<EOF
# lbd on $h of the namespace lab (from configs/lab/lbd-$n.yaml): listens on the
# VIP (IP_FREEBIND: it need not be here yet) and balances over both sqlproxyd.
admin_http:
  listen: $a:48800
  auth: {token_file: $TOKEN_FILE}
shutdown_grace: 5s
runtime_socket:
  path: $dir/lbd.sock
defaults:
  check: {type: http, uri: /}
  inter: 1s
  fastinter: 500ms
  rise: 2
  fall: 3
  send_proxy: none
frontends:
  mysql:
    bind: [$VIP:3306]
    backend: sqlproxies
backends:
  sqlproxies:
    balance: leastconn
    servers:
      - {name: proxy-1, address: $(addr proxy-1):8066, port: 48700}
      - {name: proxy-2, address: $(addr proxy-2):8066, port: 48700}
EOF
    local prio=150 state=MASTER
    [[ $n == 2 ]] && prio=100 state=BACKUP
    cat >"$dir/vrrpd.yaml" <<EOF
# vrrpd on $h of the namespace lab (from configs/lab/vrrpd-$n.yaml): floats
# $VIP with the other lb host and tracks the lbd beside it (lbd down:
# priority $prio - 60, the peer takes the VIP).
admin_http:
  listen: $a:9168
  auth: {token_file: $TOKEN_FILE}
shutdown_grace: 2s
instances:
  VI_MYSQL:
    interface: eth0
    virtual_router_id: 51
    priority: $prio
    advert_int: 1s
    version: 2
    state: $state
    authentication:
      auth_type: PASS
      auth_pass: hslab
    virtual_ipaddress: [$VIP/24 label eth0:vip]
    track_lbd:
      admin: $a:48800
      interval: 500ms
      timeout: 400ms
      weight: -60
      fall: 2
      rise: 2
EOF
  done
}

# --- MariaDB ------------------------------------------------------------------

# The lab's users (DESIGN.md §2), as integration-tests/src/mariadb.rs makes them.
USERS_SQL="CREATE DATABASE IF NOT EXISTS app;
CREATE DATABASE IF NOT EXISTS sbtest;
CREATE USER 'app'@'%' IDENTIFIED BY 'app';
GRANT ALL ON app.* TO 'app'@'%';
GRANT ALL ON sbtest.* TO 'app'@'%';
CREATE USER 'app_ro'@'%' IDENTIFIED BY 'app_ro';
GRANT SELECT, SHOW VIEW ON app.* TO 'app_ro'@'%';
GRANT SELECT, SHOW VIEW ON sbtest.* TO 'app_ro'@'%';
CREATE USER 'monitor'@'%' IDENTIFIED BY 'monitor';
GRANT SUPER, SLAVE MONITOR, REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, BINLOG ADMIN, PROCESS, RELOAD ON *.* TO 'monitor'@'%';
CREATE USER 'repl'@'%' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';"

install_datadirs() {
  local h dir pids=() p
  for h in db-1 db-2 db-3; do
    dir=$(hostdir "$h")
    mkdir -p "$dir/tmp"
    # In the host's namespace, so a teardown after an interrupted up finds it.
    ip netns exec "$(netns "$h")" mariadb-install-db --no-defaults "--datadir=$dir/data" "--tmpdir=$dir/tmp" \
      --auth-root-authentication-method=normal --skip-test-db "${MDB_SMALL[@]}" --user=root \
      </dev/null >"$dir/install-db.log" 2>&1 9>&- &
    pids+=($!)
  done
  for p in "${pids[@]}"; do
    wait "$p" || die "mariadb-install-db failed; see $STATE/db-*/install-db.log"
  done
}

setup_replication() {
  # Semi-synchronous on every node from its start (MDB_SEMISYNC): killing
  # the primary loses no acknowledged write (the chaos suite checks it).
  # Not for the setup, though: with no replica connected yet each commit
  # would wait out rpl_semi_sync_master_timeout.
  root_sql db-1 -e "SET GLOBAL rpl_semi_sync_master_enabled=OFF"
  root_sql db-1 -e "$USERS_SQL"
  local h pos
  for h in db-2 db-3; do
    root_sql "$h" -e "CHANGE MASTER TO MASTER_HOST='$(addr db-1)', MASTER_PORT=3306,
      MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos,
      MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=$HEARTBEAT_PERIOD; START SLAVE;"
  done
  pos=$(root_sql db-1 -e 'SELECT @@gtid_binlog_pos')
  for h in db-2 db-3; do
    [[ $(root_sql "$h" -e "SELECT MASTER_GTID_WAIT('$pos', 30)") == 0 ]] ||
      die "$h did not catch up with db-1 (GTID $pos) within 30s: $(slave_status "$h" | grep -E 'Running|Error' | tr -s ' ' | tr '\n' ' ')"
  done
  root_sql db-1 -e "SET GLOBAL rpl_semi_sync_master_enabled=ON"
}

# --- commands -----------------------------------------------------------------

vip_query() {
  mariadb --no-defaults -h "$VIP" -P 3306 -u app -papp --connect-timeout=2 -N -B -e 'select 1' \
    2>/dev/null
}

cmd_up() {
  need_root
  need ip iproute2
  need ping iputils-ping
  need curl curl
  need flock util-linux
  need mariadbd mariadb-server
  need mariadb-install-db mariadb-server
  need mariadb mariadb-client
  lock
  if [[ -e $STATE/up.done ]] && bridge_is_ours; then
    say "already up (state in $STATE); 'lab.sh status' shows it, 'lab.sh down' stops it"
    return 0
  fi
  # Leftovers of a failed or interrupted up: clean them first.
  if [[ -e $STATE/.hastack-lab ]] || bridge_is_ours || leftover_netns; then
    say "cleaning up what an earlier up left behind"
    teardown
  fi
  check_free
  build
  [[ ! -e $STATE ]] || [[ -e $STATE/.hastack-lab ]] || [[ -z $(ls -A "$STATE") ]] ||
    die "$STATE exists and is not a lab state dir; set HASTACK_LAB_DIR or remove it"
  mkdir -p "$STATE/pids"
  : >"$STATE/.hastack-lab"
  realpath -m "$STATE" >"$OWNER"
  local h d
  for h in "${HOSTS[@]}"; do mkdir -p "$(hostdir "$h")"; done

  # Any failure or interruption from here on stops what this up started.
  trap 'up_exit $?' EXIT
  trap 'exit 130' INT TERM HUP
  say "network: a namespace per host on the switch $SWITCH; this machine $NET.1/24 on $BRIDGE"
  net_up
  say "MariaDB: db-1 primary, db-2 and db-3 replicas (GTID)"
  install_datadirs
  for h in db-1 db-2 db-3; do start_daemon "$h" mariadbd; done
  setup_replication
  write_configs
  for h in proxy-1 proxy-2 lb-1 lb-2; do
    say "$h: ${DAEMONS[$h]}"
    for d in ${DAEMONS[$h]}; do start_daemon "$h" "$d"; done
  done
  say "waiting for a query through the VIP $VIP:3306"
  local i
  for ((i = 0; i < 120; i++)); do
    [[ $(vip_query) == 1 ]] && break
    sleep 0.5
  done
  [[ $(vip_query) == 1 ]] || die "no answer through $VIP:3306 within 60s; logs under $STATE"
  : >"$STATE/up.done"
  trap - EXIT INT TERM HUP
  cat <<EOF
lab: up.
Connect:      mariadb -h $VIP -P 3306 -u app -papp        (reader/reader: read-only)
              python3 -c "import pymysql; print(pymysql.connect(host='$VIP', user='app', password='app').cursor().execute('select 1'))"
Whole stack:  $0 status
Break things: $0 kill lb-1:vrrpd | kill db-1 | stop proxy-1:sqlproxyd | partition lb-1 lb-2 | heal
              $0 start HOST[:DAEMON] brings one back with the same config
Hosts:        lb-1 $NET.21, lb-2 $NET.22 (lbd :3306 on the VIP, stats :48800; vrrpd admin :9168)
              proxy-1 $NET.11, proxy-2 $NET.12 (sqlproxyd :8066, admin :9066, HTTP :9166; checkd :48700, HTTP :9167)
              db-1 $NET.31 (primary), db-2 $NET.32, db-3 $NET.33 (mariadbd :3306)
Admin HTTP:   curl http://$NET.21:48800/status (lbd) | http://$NET.21:9168/status (vrrpd)
              curl http://$NET.11:9166/status (sqlproxyd) | http://$NET.11:9167/status (checkd)
Actions:      curl -XPOST -H "Authorization: Bearer \$(cat $TOKEN_FILE)" 'http://$NET.11:9166/actions/switchover?node=db-2'
Admin port:   mariadb -h $NET.11 -P 9066 -u dba -pdba -e 'show @@datasource'   (watcher/watcher: show only)
A shell:      ip netns exec hs-proxy-1 bash   (namespaces hs-lb-1 … hs-db-3, switch hs-switch)
Configs:      $STATE/HOST/DAEMON.yaml
Logs:         $STATE/HOST/DAEMON.log (MariaDB: $STATE/db-N/mariadbd.log)
PIDs:         $STATE/pids/HOST:DAEMON
Stop it all:  $0 down
EOF
}

up_exit() {
  trap - EXIT INT TERM HUP
  [[ $1 -ne 0 ]] || return 0
  printf 'lab: up failed; stopping what it started (logs stay in %s; lab.sh down removes them)\n' \
    "$STATE" >&2
  teardown keep-logs
}

leftover_netns() {
  local h
  [[ -e /run/netns/$SWITCH ]] && return 0
  for h in "${HOSTS[@]}"; do
    [[ -e /run/netns/$(netns "$h") ]] && return 0
  done
  return 1
}

# Stops every process the lab started and removes what it created; with
# "keep-logs" the state dir (logs, configs) stays for a look.
teardown() {
  local keep=${1:-} h d pid pids=()
  # Front to back: the VIP and balancers first, the databases last.
  if [[ -d $STATE/pids ]]; then
    for h in lb-1 lb-2 proxy-1 proxy-2; do
      for d in ${DAEMONS[$h]}; do
        pid=$(running_pid "$h" "$d") && pids+=("$pid")
      done
    done
    terminate TERM 10 "${pids[@]}"
    pids=()
    for h in db-1 db-2 db-3; do
      pid=$(running_pid "$h" mariadbd) && pids+=("$pid")
    done
    terminate TERM 30 "${pids[@]}"
  fi
  # Whatever else still runs in a lab namespace was started by the lab too
  # (e.g. its PID file was not written yet when an up was interrupted).
  pids=()
  for h in "${HOSTS[@]}"; do
    if [[ -e /run/netns/$(netns "$h") ]]; then
      for pid in $(ip netns pids "$(netns "$h")" 2>/dev/null); do pids+=("$pid"); done
    fi
  done
  terminate TERM 5 "${pids[@]}"
  # The partitions' nftables table goes with the switch namespace.
  if bridge_is_ours; then ip link del "$BRIDGE"; fi
  for h in "${HOSTS[@]}"; do
    ip netns del "$(netns "$h")" 2>/dev/null || true
  done
  ip netns del "$SWITCH" 2>/dev/null || true
  if [[ $keep == keep-logs ]]; then
    rm -f "$STATE/up.done" "$STATE/partitions"
    rm -rf "$STATE/pids"
  elif [[ -e $STATE/.hastack-lab ]]; then
    rm -rf "$STATE"
  fi
  if [[ $(cat "$OWNER" 2>/dev/null) == "$(realpath -m "$STATE")" ]]; then rm -f "$OWNER"; fi
}

cmd_down() {
  need_root
  need ip iproute2
  lock
  if [[ ! -e $STATE/.hastack-lab ]] && ! bridge_is_ours && ! leftover_netns; then
    say "nothing is up"
    return 0
  fi
  teardown
  say "down: processes stopped; namespaces, $BRIDGE and $STATE removed"
}

# HOST or HOST:DAEMON → the pairs "HOST DAEMON", one a line.
targets() {
  local spec=$1 host daemon
  host=${spec%%:*}
  [[ -n ${OCTET[$host]:-} ]] || die "unknown host '$host' (hosts: ${HOSTS[*]})"
  if [[ $spec == *:* ]]; then
    daemon=${spec#*:}
    [[ " ${DAEMONS[$host]} " == *" $daemon "* ]] ||
      die "no daemon '$daemon' on $host (it runs: ${DAEMONS[$host]})"
    printf '%s %s\n' "$host" "$daemon"
  else
    for daemon in ${DAEMONS[$host]}; do printf '%s %s\n' "$host" "$daemon"; done
  fi
}

require_up() {
  [[ -e $STATE/up.done ]] || die "the lab is not up (lab.sh up)"
}

cmd_signal() {
  local action=$1 spec=${2:-}
  [[ -n $spec ]] || die "usage: lab.sh $action HOST[:DAEMON]"
  need_root
  require_up
  local lines host daemon pid
  lines=$(targets "$spec")
  lock
  while read -r host daemon; do
    case $action in
      kill | stop)
        if pid=$(running_pid "$host" "$daemon"); then
          if [[ $action == kill ]]; then
            terminate KILL 5 "$pid"
          else
            terminate TERM 30 "$pid"
          fi
          say "$action $host:$daemon (pid $pid): gone"
        else
          say "$host:$daemon is not running"
        fi
        ;;
      start)
        start_daemon "$host" "$daemon"
        say "started $host:$daemon (pid $(running_pid "$host" "$daemon"))"
        ;;
    esac
  done <<<"$lines"
}

# The lines of $STATE/partitions for "[--oneway] A,B C,D": one per pair
# across the groups, "A B" (both directions) or "A > B" (A's traffic to B).
# Sets PAIRS (one line each) and DESC; dies on an unknown or shared host.
# VERB names the command for the usage line.
partition_pairs() {
  local oneway="" a b
  if [[ ${1:-} == --oneway ]]; then
    oneway=1
    shift
  fi
  [[ $# -eq 2 && -n $1 && -n $2 ]] || die "usage: lab.sh $VERB [--oneway] HOST[,HOST...] HOST[,HOST...]"
  local -a left right
  IFS=, read -r -a left <<<"$1"
  IFS=, read -r -a right <<<"$2"
  for a in "${left[@]}" "${right[@]}"; do
    [[ -n ${OCTET[$a]:-} ]] || die "unknown host '$a' (hosts: ${HOSTS[*]})"
  done
  PAIRS=""
  for a in "${left[@]}"; do
    for b in "${right[@]}"; do
      [[ $a != "$b" ]] || die "$a is on both sides: cannot partition a host from itself"
      if [[ -n $oneway ]]; then PAIRS+="$a > $b"$'\n'; else PAIRS+="$a $b"$'\n'; fi
    done
  done
  if [[ -n $oneway ]]; then DESC="$1 -> $2 (one way: what $1 sends $2)"; else DESC="$1 | $2"; fi
}

cmd_partition() {
  VERB=partition
  partition_pairs "$@"
  need_root
  need nft nftables
  require_up
  lock
  printf '%s' "$PAIRS" >>"$STATE/partitions"
  nft_partitions
  say "partitioned $DESC (dropped on the switch; 'lab.sh heal' undoes it)"
}

cmd_heal() {
  need_root
  need nft nftables
  require_up
  if [[ $# -eq 0 ]]; then
    lock
    rm -f "$STATE/partitions"
    say "healed every partition"
  else
    VERB=heal
    partition_pairs "$@"
    lock
    if [[ -e $STATE/partitions ]]; then
      # One line removed per pair (another partition may cut the same pair);
      # a plain "A B" is undone by "heal B A" too.
      local -a lines
      local p i w alt
      mapfile -t lines <"$STATE/partitions"
      while read -r p; do
        [[ -n $p ]] || continue
        read -r -a w <<<"$p"
        alt=$p
        ((${#w[@]} == 2)) && alt="${w[1]} ${w[0]}"
        for i in "${!lines[@]}"; do
          if [[ ${lines[i]} == "$p" || ${lines[i]} == "$alt" ]]; then
            unset 'lines[i]'
            break
          fi
        done
      done <<<"$PAIRS"
      printf '%s\n' "${lines[@]}" | grep -v '^$' >"$STATE/partitions.new" || true
      mv "$STATE/partitions.new" "$STATE/partitions"
    fi
    say "healed $DESC"
  fi
  nft_partitions
}

cmd_status() {
  need curl curl
  need python3 python3
  require_up
  local h d pid json vip_at=()
  for h in lb-1 lb-2; do
    if [[ $(ip -n "$(netns "$h")" -4 -o addr show dev eth0 2>/dev/null) == *" $VIP/"* ]]; then
      vip_at+=("$h")
    fi
  done
  # With the VIP on both (a vrrpd killed with SIGKILL leaves its addresses
  # behind, as keepalived does), the one this machine's ARP entry points at
  # answers: the last gratuitous ARP wins.
  local mac answering=""
  mac=$(ip neigh show "$VIP" dev "$BRIDGE" 2>/dev/null | awk '/lladdr/ {print $3}')
  for h in lb-1 lb-2; do
    [[ -n $mac && $(ip -n "$(netns "$h")" -o link show dev eth0 2>/dev/null) == *"link/ether $mac "* ]] &&
      answering=$h
  done
  printf 'VIP %s:3306 held by: %s%s\n' "$VIP" "${vip_at[*]:-nobody}" \
    "${answering:+, answering: $answering}"
  if [[ -s $STATE/partitions ]]; then
    printf 'partitions: %s\n' "$(sed 's/ > / -> /; t; s/ / | /' "$STATE/partitions" | tr '\n' ',' | sed 's/,$//; s/,/, /g')"
  fi
  for h in lb-1 lb-2 proxy-1 proxy-2 db-1 db-2 db-3; do
    for d in ${DAEMONS[$h]}; do
      if ! pid=$(running_pid "$h" "$d"); then
        printf '%-8s %-9s NOT RUNNING\n' "$h" "$d"
        continue
      fi
      if [[ $d == mariadbd ]]; then
        printf '%-8s %-9s pid %-7s %s\n' "$h" "$d" "$pid" "$(mariadb_line "$h")"
        continue
      fi
      json=$(curl -fsS -m 2 "http://$(admin_addr "$h" "$d")/status" 2>&1) ||
        json="{\"error\": $(printf '%s' "$json" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')}"
      printf '%s' "$json" | python3 -c "$STATUS_PY" "$h" "$d" "$pid"
    done
  done
}

mariadb_line() {
  local h=$1 ro slave
  ro=$(root_sql "$h" -e 'SELECT @@read_only' 2>/dev/null) || {
    printf 'no answer on its socket'
    return
  }
  slave=$(slave_status "$h" 2>/dev/null |
    awk -F': ' '{k = $1; sub(/^ +/, "", k)}
      k == "Master_Host" {m = $2} k == "Slave_IO_Running" {io = $2}
      k == "Slave_SQL_Running" {sq = $2} k == "Seconds_Behind_Master" {lag = $2}
      END {if (m != "") printf "replica of %s, IO %s, SQL %s, lag %ss", m, io, sq, lag}')
  printf 'read_only=%s %s' "$ro" "${slave:-replicates from nobody}"
}

# Prints one daemon's /status (JSON on stdin) in a few lines.
STATUS_PY=$(
  cat <<'PY'
import json, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
host, daemon, pid = sys.argv[1:4]
raw = sys.stdin.read()
try:
    s = json.loads(raw)
except ValueError:
    s = {"error": raw.strip()[:200]}
if "error" in s:
    print(f"{host:8} {daemon:9} pid {pid:7} /status: {s['error']}")
    sys.exit(0)
up = s.get("uptime_seconds")
print(f"{host:8} {daemon:9} pid {pid:7} up {up:.0f}s, config generation {s.get('config_generation')}"
      if isinstance(up, (int, float)) else f"{host:8} {daemon:9} pid {pid:7}")
st = s.get("state") or {}

def short(v, n=120):
    v = json.dumps(v) if not isinstance(v, str) else v
    return v if len(v) <= n else v[: n - 1] + "…"

if daemon == "vrrpd":
    for name, i in (st.get("instances") or {}).items():
        vips = "holds the VIP" if i.get("vips_held") else "no VIP"
        print(f"{'':19}{name}: {i.get('state')}, {vips}, priority {i.get('effective_priority')}"
              f" (base {i.get('base_priority')}), master {i.get('master')}; {short(i.get('reason') or '', 70)}")
elif daemon == "lbd":
    for b in st.get("backends") or []:
        for x in b.get("servers") or []:
            c = x.get("check") or {}
            why = f"{c.get('status') or ''} {c.get('detail') or c.get('last_failure') or ''}".strip()
            print(f"{'':19}{b.get('name')}/{x.get('name')} {x.get('address')}: {x.get('status')},"
                  f" {x.get('current_sessions', 0)} sessions; {short(why, 90)}")
elif daemon == "sqlproxyd":
    for dh in st.get("data_hosts") or []:
        extra = f" ({short(dh.get('no_primary'), 80)})" if dh.get("no_primary") else ""
        print(f"{'':19}{dh.get('name')}: primary {dh.get('primary') or 'none'}{extra}")
        for n in dh.get("nodes") or []:
            lag = n.get("lag_seconds")
            lag = "" if lag is None else f", lag {lag}s"
            print(f"{'':21}{n.get('name')}: {n.get('state')}{lag}; {short(n.get('reason') or '', 80)}")
elif daemon == "checkd":
    for sname, x in (st.get("services") or {}).items():
        listening = "listening" if x.get("listening") else "NOT listening"
        paused = ", paused by cps" if x.get("paused_by_cps") else ""
        print(f"{'':19}{sname}: {listening} on {x.get('bind')}, {x.get('active', 0)} checks in flight{paused}")
PY
)

usage() {
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
}

# A planned switchover through a proxy's admin HTTP action (its bearer
# token: the lab's admin token), then the new primary as every proxy sees it.
cmd_switchover() {
  need curl curl
  need python3 python3
  require_up
  local node="" via=proxy-1
  while [[ $# -gt 0 ]]; do
    case $1 in
      --via)
        via=${2:-}
        shift 2 || die "--via needs a proxy (proxy-1 or proxy-2)"
        ;;
      db-[123]) node=$1 && shift ;;
      *) die "switchover [db-1|db-2|db-3] [--via proxy-1|proxy-2]: unknown argument $1" ;;
    esac
  done
  [[ $via == proxy-1 || $via == proxy-2 ]] || die "--via takes proxy-1 or proxy-2, not $via"
  local admin status
  admin=$(admin_addr "$via" sqlproxyd)
  if [[ -z $node ]]; then
    status=$(curl -sf --max-time 5 "http://$admin/status") || die "$via's sqlproxyd does not answer on $admin"
    node=$(python3 -c '
import json, sys
dh = (json.load(sys.stdin).get("state") or {}).get("data_hosts") or [{}]
ready = [n["name"] for n in dh[0].get("nodes") or [] if n.get("readable") and n["name"] != dh[0].get("primary")]
print(ready[0] if ready else "")' <<<"$status")
    [[ -n $node ]] || die "no readable replica to switch over to (lab.sh status says why)"
  fi
  say "switchover to $node, asked of $via"
  local out code
  out=$(curl -s --max-time 60 -o - -w '\n%{http_code}' -XPOST \
    -H "Authorization: Bearer $(cat "$TOKEN_FILE")" \
    "http://$admin/actions/switchover?node=$node") || die "$via's sqlproxyd does not answer on $admin"
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  [[ $code == 2* ]] || die "switchover refused ($code): $out"
  say "done: $out"
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    kill | stop | start) cmd_signal "$cmd" "$@" ;;
    partition) cmd_partition "$@" ;;
    heal) cmd_heal "$@" ;;
    switchover) cmd_switchover "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
