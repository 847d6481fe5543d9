#!/bin/bash
# Captures keepalived adverts in a private namespace pair; prints hex of IP packets.
set -e
cleanup(){ if [[ -s ka.pid ]]; then kill "$(cat ka.pid)" 2>/dev/null || true; fi; ip netns del hsv1 2>/dev/null || true; ip netns del hsv2 2>/dev/null || true; }
cleanup; sleep 0.5
ip netns add hsv1; ip netns add hsv2
ip link add hsv1e type veth peer name hsv2e
ip link set hsv1e netns hsv1; ip link set hsv2e netns hsv2
ip -n hsv1 addr add 10.77.0.1/24 dev hsv1e; ip -n hsv1 link set hsv1e up; ip -n hsv1 link set lo up
ip -n hsv2 addr add 10.77.0.2/24 dev hsv2e; ip -n hsv2 link set hsv2e up
ip -n hsv1 -6 addr add fd77::1/64 dev hsv1e nodad || true
run(){ # name conf
  cat > "$1.conf"
  ip netns exec hsv2 timeout 12 tcpdump -i hsv2e -c 2 -w "$1.pcap" "ip proto 112 or ip6 proto 112" >/dev/null 2>&1 &
  TP=$!; sleep 1
  ip netns exec hsv1 keepalived -n -l -D -f "/tmp/vcap/$1.conf" -p "/tmp/vcap/$1.kpid" -r "/tmp/vcap/$1.vpid" > "$1.log" 2>&1 & echo $! > ka.pid
  wait $TP || true
  kill "$(cat ka.pid)" 2>/dev/null || true; sleep 1
}
run v2pass <<'C'
global_defs {
  router_id hsv1
}
vrrp_instance VI_1 {
  state MASTER
  interface hsv1e
  virtual_router_id 51
  priority 150
  advert_int 1
  authentication {
    auth_type PASS
    auth_pass hastack1
  }
  virtual_ipaddress {
    10.77.0.100/24
    10.77.0.101/24
  }
}
C
run v3ip4 <<'C'
global_defs {
  router_id hsv1
}
vrrp_instance VI_1 {
  state MASTER
  interface hsv1e
  virtual_router_id 52
  priority 200
  advert_int 0.1
  version 3
  virtual_ipaddress {
    10.77.0.100/24
  }
}
C
run v3ip6 <<'C'
global_defs {
  router_id hsv1
}
vrrp_instance VI_6 {
  state MASTER
  interface hsv1e
  virtual_router_id 54
  priority 120
  advert_int 1
  version 3
  virtual_ipaddress {
    fd77::100/64
  }
}
C
cleanup
