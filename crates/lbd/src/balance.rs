//! Which server a new client connection goes to, decided apart from the
//! sockets so that every HAProxy rule users rely on (weights, backups,
//! `maxconn`, stickiness of `source`) is pinned down by unit tests that run
//! in milliseconds instead of by load tests against real proxies.
//!
//! The shell builds one [`Server`] per configured server at each pick (its
//! weight now, after `set weight`, drain or a slowstart ramp; whether it is
//! up; how many connections it holds) and asks [`Balancer::pick`]. `None`
//! means no server may take the connection now: if [`available`] says some
//! server is usable, they are all at `maxconn` and the connection waits in
//! the backend's queue; otherwise no server is up and it is refused.
//!
//! Rules shared by every algorithm, as HAProxy has them:
//! - a server is *usable* when it is up and its weight is above 0; weight 0
//!   takes no new connection (HAProxy's drain);
//! - active (non-`backup`) servers are used while any of them is usable;
//!   only when none is, the first usable backup in configured order takes
//!   everything (HAProxy's default), or all usable backups share the load
//!   with `all_backups` (`option allbackups`);
//! - a usable server at its `maxconn` is skipped; it does not send traffic
//!   to the backups (HAProxy queues instead).

use std::fmt::Debug;
use std::net::IpAddr;

use crate::config::Balance;

/// One server as a pick sees it: what the configuration and the runtime API
/// say, and what is true at this moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Server {
    /// Identifies the server on the `source` hash ring: [`key`] of its name,
    /// so a client keeps its server across reloads, reorderings and LB hosts.
    pub key: u64,
    /// Effective weight now, 0 to 256.
    pub weight: u32,
    pub backup: bool,
    /// Connections the server takes at most; `None` or `Some(0)` is no limit
    /// (HAProxy's `maxconn 0`).
    pub maxconn: Option<u32>,
    /// Its health check (or the admin) says it may get traffic.
    pub up: bool,
    /// Connections it holds now.
    pub active: u32,
}

impl Server {
    /// An active server that is up and idle.
    pub fn new(name: &str, weight: u32) -> Server {
        Server {
            key: key(name),
            weight,
            backup: false,
            maxconn: None,
            up: true,
            active: 0,
        }
    }

    pub fn backup(self) -> Server {
        Server {
            backup: true,
            ..self
        }
    }

    pub fn maxconn(self, maxconn: u32) -> Server {
        Server {
            maxconn: Some(maxconn),
            ..self
        }
    }

    pub fn down(self) -> Server {
        Server { up: false, ..self }
    }

    pub fn active(self, active: u32) -> Server {
        Server { active, ..self }
    }

    /// Up with a weight above 0: it may get new connections.
    pub fn usable(&self) -> bool {
        self.up && self.weight > 0
    }

    /// At its `maxconn`: skipped until a connection ends.
    pub fn full(&self) -> bool {
        matches!(self.maxconn, Some(m) if m > 0 && self.active >= m)
    }
}

/// The stable identity of a server on the `source` ring. A function of the
/// name alone: two LB hosts with the same server names send a client to the
/// same server, so a VIP failover does not move clients between proxies.
pub fn key(name: &str) -> u64 {
    mix(fnv1a(name.as_bytes()))
}

/// Whether any server is usable: when [`Balancer::pick`] returns `None`,
/// true means "all full, queue the connection", false "refuse it".
pub fn available(servers: &[Server]) -> bool {
    servers.iter().any(Server::usable)
}

/// Chooses servers for one backend. Holds the little state the algorithms
/// need (round-robin positions, the hash ring); a reload builds a new one.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Balance,
    all_backups: bool,
    select: Box<dyn Select + Send + Sync>,
    /// Scratch space for the servers a pick may choose from.
    pool: Vec<usize>,
}

impl Balancer {
    pub fn new(algorithm: Balance, all_backups: bool) -> Balancer {
        let select: Box<dyn Select + Send + Sync> = match algorithm {
            Balance::Roundrobin => Box::<RoundRobin>::default(),
            Balance::StaticRr => Box::<StaticRoundRobin>::default(),
            Balance::Leastconn => Box::<LeastConn>::default(),
            Balance::Source => Box::<Source>::default(),
            Balance::First => Box::new(First),
        };
        Balancer {
            algorithm,
            all_backups,
            select,
            pool: Vec::new(),
        }
    }

    pub fn algorithm(&self) -> Balance {
        self.algorithm
    }

    pub fn all_backups(&self) -> bool {
        self.all_backups
    }

    /// The index into `servers` of the server that takes a new connection
    /// from `client` (used by `source` only; without one, as for a unix
    /// socket client, `source` falls back to round-robin like HAProxy), or
    /// `None` when no server may take it now (see [`available`]).
    ///
    /// To redispatch after a failed connect, pick again with the failed
    /// server marked down.
    pub fn pick(&mut self, servers: &[Server], client: Option<IpAddr>) -> Option<usize> {
        pool(servers, self.all_backups, &mut self.pool);
        if self.pool.is_empty() {
            return None;
        }
        let chosen = self.select.select(servers, &self.pool, client)?;
        debug_assert!(self.pool.contains(&chosen) && !servers[chosen].full());
        Some(chosen)
    }
}

/// The servers a pick may choose from, in configured order: the usable
/// active servers; if there is none, the first usable backup, or every
/// usable backup with `all_backups`. Full servers are included (and then
/// skipped by the algorithm) so that a full active farm queues rather than
/// spilling to the backups.
fn pool(servers: &[Server], all_backups: bool, out: &mut Vec<usize>) {
    out.clear();
    let usable = |backup: bool| {
        servers
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.backup == backup && s.usable())
            .map(|(i, _)| i)
    };
    out.extend(usable(false));
    if out.is_empty() {
        let backups = usable(true);
        if all_backups {
            out.extend(backups);
        } else {
            out.extend(backups.take(1));
        }
    }
}

/// One balancing algorithm: chooses among `pool` (indexes into `servers`,
/// ascending, never empty, every one usable); must not return a full server.
trait Select: Debug {
    fn select(
        &mut self,
        servers: &[Server],
        pool: &[usize],
        client: Option<IpAddr>,
    ) -> Option<usize>;
}

/// `roundrobin`: smooth weighted round-robin (nginx's), dynamic: weights
/// apply from the next pick. Weights 5, 1, 1 give a a b a c a a — the
/// heavy server's turns spread out, not in a burst.
#[derive(Debug, Default)]
struct RoundRobin {
    current: Vec<i64>,
}

impl Select for RoundRobin {
    fn select(&mut self, servers: &[Server], pool: &[usize], _: Option<IpAddr>) -> Option<usize> {
        if self.current.len() != servers.len() {
            self.current.resize(servers.len(), 0);
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for &i in pool {
            let s = &servers[i];
            if s.full() {
                continue;
            }
            let weight = i64::from(s.weight);
            self.current[i] += weight;
            total += weight;
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        self.current[best] -= total;
        Some(best)
    }
}

/// `static-rr`: the same spread from a map built with the weights of the
/// moment the set of usable servers last changed; a weight change alone has
/// no effect until then (HAProxy's static map; its runtime API accepts only
/// weights 0 and 100% for static algorithms).
#[derive(Debug, Default)]
struct StaticRoundRobin {
    /// The pool the map was built for.
    members: Vec<usize>,
    map: Vec<usize>,
    next: usize,
}

impl StaticRoundRobin {
    /// Lays out one round of turns, `weight` each, spread as `roundrobin`
    /// spreads them.
    fn rebuild(&mut self, servers: &[Server], pool: &[usize]) {
        self.members = pool.to_vec();
        // Full servers are skipped when picking, not left out of the map.
        let unlimited: Vec<Server> = servers
            .iter()
            .map(|s| Server {
                maxconn: None,
                ..*s
            })
            .collect();
        let turns: u32 = pool.iter().map(|&i| servers[i].weight).sum();
        let mut rr = RoundRobin::default();
        self.map = (0..turns)
            .filter_map(|_| rr.select(&unlimited, pool, None))
            .collect();
        self.next = match self.map.len() {
            0 => 0,
            len => self.next % len,
        };
    }
}

impl Select for StaticRoundRobin {
    fn select(&mut self, servers: &[Server], pool: &[usize], _: Option<IpAddr>) -> Option<usize> {
        if self.members != pool {
            self.rebuild(servers, pool);
        }
        let len = self.map.len();
        for step in 0..len {
            let at = (self.next + step) % len;
            let i = self.map[at];
            if !servers[i].full() {
                self.next = (at + 1) % len;
                return Some(i);
            }
        }
        None
    }
}

/// `leastconn`: the server with the fewest connections for its weight
/// (HAProxy's key, (active + 1) / weight), turn by turn among equals so
/// that short connections still reach every server.
#[derive(Debug, Default)]
struct LeastConn {
    /// The server after the last one chosen: ties go to the first from here.
    next: usize,
}

impl Select for LeastConn {
    fn select(&mut self, servers: &[Server], pool: &[usize], _: Option<IpAddr>) -> Option<usize> {
        let start = pool.partition_point(|&i| i < self.next);
        let mut best: Option<usize> = None;
        for k in 0..pool.len() {
            let i = pool[(start + k) % pool.len()];
            let s = &servers[i];
            if s.full() {
                continue;
            }
            // (a + 1) / wa < (b + 1) / wb, without division.
            let lighter = |b: &Server| {
                (u64::from(s.active) + 1) * u64::from(b.weight)
                    < (u64::from(b.active) + 1) * u64::from(s.weight)
            };
            if best.is_none_or(|b| lighter(&servers[b])) {
                best = Some(i);
            }
        }
        let best = best?;
        self.next = best + 1;
        Some(best)
    }
}

/// Points on the ring per unit of weight: enough for an even spread
/// (about ±10 % per server), few enough that weight 256 stays small.
const POINTS_PER_WEIGHT: u32 = 100;

/// `source`: consistent hashing of the client address. Each server owns
/// `weight × 100` points on a ring, placed by its [`key`] alone; a client
/// goes to the owner of the first point at or after its hash whose server is
/// in the pool and not full. While the set is unchanged a client keeps its
/// server; when one of N servers goes down only its clients (about 1/N)
/// move, and they come back when it returns. A client without an address
/// is balanced round-robin.
#[derive(Debug, Default)]
struct Source {
    /// (point, key, server index), sorted by point then key, so the ring
    /// does not depend on the order of the servers.
    ring: Vec<(u64, u64, usize)>,
    /// (key, weight) of each server the ring was built for.
    built_for: Vec<(u64, u32)>,
    fallback: RoundRobin,
}

impl Source {
    fn rebuild(&mut self, servers: &[Server]) {
        self.built_for = servers.iter().map(|s| (s.key, s.weight)).collect();
        self.ring.clear();
        for (i, s) in servers.iter().enumerate() {
            for point in 0..u64::from(s.weight) * u64::from(POINTS_PER_WEIGHT) {
                self.ring.push((mix(s.key ^ mix(point)), s.key, i));
            }
        }
        self.ring.sort_unstable();
    }

    fn stale(&self, servers: &[Server]) -> bool {
        self.built_for.len() != servers.len()
            || self
                .built_for
                .iter()
                .zip(servers)
                .any(|(&(key, weight), s)| key != s.key || weight != s.weight)
    }
}

impl Select for Source {
    fn select(
        &mut self,
        servers: &[Server],
        pool: &[usize],
        client: Option<IpAddr>,
    ) -> Option<usize> {
        let Some(ip) = client else {
            return self.fallback.select(servers, pool, None);
        };
        if self.stale(servers) {
            self.rebuild(servers);
        }
        let hash = hash_ip(ip);
        let start = self.ring.partition_point(|&(point, _, _)| point < hash);
        let len = self.ring.len();
        (0..len)
            .map(|k| self.ring[(start + k) % len].2)
            .find(|&i| pool.binary_search(&i).is_ok() && !servers[i].full())
    }
}

/// `first`: the first server in configured order with a free slot, so that
/// the others can be switched off when the load is low (HAProxy's use).
#[derive(Debug)]
struct First;

impl Select for First {
    fn select(&mut self, servers: &[Server], pool: &[usize], _: Option<IpAddr>) -> Option<usize> {
        pool.iter().copied().find(|&i| !servers[i].full())
    }
}

/// A client's place on the ring; an IPv4 client seen as `::ffff:a.b.c.d`
/// (a dual-stack listener) is the same client as `a.b.c.d`.
fn hash_ip(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => mix(fnv1a(&v4.octets())),
        IpAddr::V6(v6) => mix(fnv1a(&v6.octets())),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finalizer: spreads every input bit over the output. Part of
/// the `source` mapping: changing it moves every client, and two LB hosts
/// running different versions would disagree.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const ALL: [Balance; 5] = [
        Balance::Roundrobin,
        Balance::StaticRr,
        Balance::Leastconn,
        Balance::Source,
        Balance::First,
    ];

    fn servers(weights: &[u32]) -> Vec<Server> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Server::new(&format!("s{i}"), w))
            .collect()
    }

    /// `n` picks with connections that end at once.
    fn picks(b: &mut Balancer, servers: &[Server], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| b.pick(servers, None)).collect()
    }

    fn counts(picks: &[Option<usize>]) -> HashMap<Option<usize>, usize> {
        let mut out = HashMap::new();
        for p in picks {
            *out.entry(*p).or_default() += 1;
        }
        out
    }

    fn client(n: u32) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)))
    }

    /// Which server each of `n` clients lands on.
    fn placement(b: &mut Balancer, servers: &[Server], n: u32) -> Vec<Option<usize>> {
        (0..n).map(|c| b.pick(servers, client(c))).collect()
    }

    // --- rules every algorithm shares ---

    #[test]
    fn a_dead_proxy_gets_no_new_connections() {
        for algorithm in ALL {
            let mut b = Balancer::new(algorithm, false);
            let mut s = servers(&[1, 1, 1]);
            s[1].up = false;
            for (c, p) in placement(&mut b, &s, 300).into_iter().enumerate() {
                assert!(matches!(p, Some(0 | 2)), "{algorithm:?} client {c}: {p:?}");
            }
            for p in picks(&mut b, &s, 30) {
                assert!(matches!(p, Some(0 | 2)), "{algorithm:?}: {p:?}");
            }
        }
    }

    #[test]
    fn no_server_up_means_none_and_refuse() {
        for algorithm in ALL {
            let mut b = Balancer::new(algorithm, true);
            let s: Vec<Server> = servers(&[1, 2]).into_iter().map(Server::down).collect();
            assert_eq!(b.pick(&s, client(1)), None, "{algorithm:?}");
            assert_eq!(b.pick(&s, None), None, "{algorithm:?}");
            assert!(!available(&s));
            assert_eq!(b.pick(&[], client(1)), None, "{algorithm:?}");
        }
    }

    #[test]
    fn weight_zero_gets_no_new_connections() {
        for algorithm in ALL {
            let mut b = Balancer::new(algorithm, false);
            let s = servers(&[0, 3, 0]);
            assert!(placement(&mut b, &s, 200).iter().all(|&p| p == Some(1)));
            assert!(picks(&mut b, &s, 20).iter().all(|&p| p == Some(1)));
            // Only weight-0 servers: none usable, like HAProxy.
            let drained = servers(&[0, 0]);
            assert_eq!(b.pick(&drained, client(7)), None, "{algorithm:?}");
            assert!(!available(&drained));
        }
    }

    #[test]
    fn a_server_at_maxconn_is_skipped_and_a_full_farm_queues() {
        for algorithm in ALL {
            let mut b = Balancer::new(algorithm, false);
            let mut s = servers(&[1, 1]);
            s[0] = s[0].maxconn(2).active(2);
            assert!(
                placement(&mut b, &s, 100).iter().all(|&p| p == Some(1)),
                "{algorithm:?}"
            );
            s[1] = s[1].maxconn(5).active(5);
            assert_eq!(b.pick(&s, client(3)), None, "{algorithm:?}");
            assert_eq!(b.pick(&s, None), None, "{algorithm:?}");
            // All full but up: the caller queues rather than refuses.
            assert!(available(&s));
            // A slot frees: it is used again.
            s[0].active = 1;
            assert_eq!(b.pick(&s, client(3)), Some(0), "{algorithm:?}");
        }
    }

    #[test]
    fn maxconn_zero_is_no_limit() {
        let s = [Server::new("a", 1).maxconn(0).active(10_000)];
        for algorithm in ALL {
            assert_eq!(Balancer::new(algorithm, false).pick(&s, client(1)), Some(0));
        }
    }

    #[test]
    fn backup_takes_over_only_when_every_active_is_down() {
        for algorithm in ALL {
            let mut b = Balancer::new(algorithm, false);
            let mut s = vec![
                Server::new("a", 1),
                Server::new("bk1", 1).backup(),
                Server::new("b", 1),
                Server::new("bk2", 1).backup(),
            ];
            let used = |b: &mut Balancer, s: &[Server]| {
                let mut seen: Vec<usize> = placement(b, s, 200)
                    .into_iter()
                    .chain(picks(b, s, 20))
                    .flatten()
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                seen
            };
            // `first` fills the first server first (it has no maxconn).
            let actives: &[usize] = if algorithm == Balance::First {
                &[0]
            } else {
                &[0, 2]
            };
            assert_eq!(used(&mut b, &s), actives, "{algorithm:?}");
            s[0].up = false;
            assert_eq!(used(&mut b, &s), [2], "{algorithm:?}");
            s[2].up = false;
            // HAProxy's default: the first backup only.
            assert_eq!(used(&mut b, &s), [1], "{algorithm:?}");
            s[1].up = false;
            assert_eq!(used(&mut b, &s), [3], "{algorithm:?}");
            // An active server back: the backups are left at once.
            s[1].up = true;
            s[2].up = true;
            assert_eq!(used(&mut b, &s), [2], "{algorithm:?}");
        }
    }

    #[test]
    fn all_backups_share_the_load() {
        for algorithm in ALL {
            let mut b = Balancer::new(algorithm, true);
            let s = vec![
                Server::new("a", 1).down(),
                Server::new("bk1", 1).backup(),
                Server::new("bk2", 1).backup(),
            ];
            let mut seen: Vec<usize> = placement(&mut b, &s, 200)
                .into_iter()
                .chain(picks(&mut b, &s, 20))
                .flatten()
                .collect();
            seen.sort_unstable();
            seen.dedup();
            let want: &[usize] = if algorithm == Balance::First {
                &[1]
            } else {
                &[1, 2]
            };
            assert_eq!(seen, want, "{algorithm:?}");
        }
    }

    #[test]
    fn full_actives_queue_rather_than_spill_to_backups() {
        for algorithm in ALL {
            let mut b = Balancer::new(algorithm, true);
            let s = vec![
                Server::new("a", 1).maxconn(1).active(1),
                Server::new("bk", 1).backup(),
            ];
            assert_eq!(b.pick(&s, client(1)), None, "{algorithm:?}");
            assert!(available(&s));
        }
    }

    #[test]
    fn active_servers_all_at_weight_zero_hand_over_to_the_backup() {
        // HAProxy counts a weight-0 server as unusable, backups included.
        let s = vec![
            Server::new("a", 0),
            Server::new("bk", 1).backup(),
            Server::new("bk0", 0).backup(),
        ];
        for algorithm in ALL {
            let mut b = Balancer::new(algorithm, false);
            assert_eq!(b.pick(&s, client(9)), Some(1), "{algorithm:?}");
        }
    }

    /// Seeded random farms: a pick is always a usable, non-full server of
    /// the right pool, and `None` only when that pool is empty or full.
    #[test]
    fn random_farms_obey_the_shared_rules() {
        let mut rng = Rng(7);
        // Kept across rounds: their state must not go wrong as farms change.
        let mut balancers: Vec<(Balancer, Balancer)> = ALL
            .iter()
            .map(|&a| (Balancer::new(a, false), Balancer::new(a, true)))
            .collect();
        for round in 0..1000 {
            let n = 1 + rng.below(6) as usize;
            let s: Vec<Server> = (0..n)
                .map(|i| Server {
                    key: key(&format!("s{i}")),
                    weight: [0, 1, 1, 2, 5, 16][rng.below(6) as usize],
                    backup: rng.below(3) == 0,
                    maxconn: [None, Some(0), Some(1), Some(3)][rng.below(4) as usize],
                    up: rng.below(4) != 0,
                    active: rng.below(4) as u32,
                })
                .collect();
            let all_backups = rng.below(2) == 0;
            let active: Vec<usize> = (0..n).filter(|&i| !s[i].backup && s[i].usable()).collect();
            let backups: Vec<usize> = (0..n).filter(|&i| s[i].backup && s[i].usable()).collect();
            let pool = match (active.is_empty(), all_backups) {
                (false, _) => active,
                (true, true) => backups,
                (true, false) => backups.into_iter().take(1).collect(),
            };
            for (plain, all) in &mut balancers {
                let b = if all_backups { all } else { plain };
                let algorithm = b.algorithm();
                for k in 0..4 {
                    let c = if k == 3 {
                        None
                    } else {
                        client(rng.below(1000) as u32)
                    };
                    let got = b.pick(&s, c);
                    match got {
                        Some(i) => assert!(
                            pool.contains(&i) && !s[i].full(),
                            "round {round} {algorithm:?}: {i} from {s:?}"
                        ),
                        None => assert!(
                            pool.iter().all(|&i| s[i].full()),
                            "round {round} {algorithm:?}: None from {s:?}"
                        ),
                    }
                }
            }
        }
    }

    // --- roundrobin ---

    #[test]
    fn roundrobin_is_smooth_like_nginx() {
        let mut b = Balancer::new(Balance::Roundrobin, false);
        let s = servers(&[5, 1, 1]);
        let got: Vec<usize> = picks(&mut b, &s, 14).into_iter().flatten().collect();
        assert_eq!(got, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn roundrobin_equal_weights_alternate() {
        let mut b = Balancer::new(Balance::Roundrobin, false);
        let s = servers(&[1, 1, 1]);
        let got: Vec<usize> = picks(&mut b, &s, 7).into_iter().flatten().collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn roundrobin_honours_weights_without_bursts() {
        let mut b = Balancer::new(Balance::Roundrobin, false);
        let s = servers(&[3, 2, 1]);
        let got: Vec<usize> = picks(&mut b, &s, 600).into_iter().flatten().collect();
        let c = counts(&got.iter().map(|&i| Some(i)).collect::<Vec<_>>());
        assert_eq!(
            (c[&Some(0)], c[&Some(1)], c[&Some(2)]),
            (300, 200, 100),
            "exact shares every cycle"
        );
        // The heaviest never runs more than twice in a row.
        assert!(
            got.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
            "{got:?}"
        );
    }

    #[test]
    fn roundrobin_weights_change_on_the_fly() {
        let mut b = Balancer::new(Balance::Roundrobin, false);
        let mut s = servers(&[1, 1]);
        picks(&mut b, &s, 10);
        s[1].weight = 3;
        let got = picks(&mut b, &s, 400);
        let c = counts(&got);
        assert!((95..=105).contains(&c[&Some(0)]), "{c:?}");
        assert!((295..=305).contains(&c[&Some(1)]), "{c:?}");
    }

    #[test]
    fn roundrobin_skips_a_full_server_and_resumes() {
        let mut b = Balancer::new(Balance::Roundrobin, false);
        let mut s = servers(&[1, 1, 1]);
        s[1] = s[1].maxconn(1).active(1);
        let got: Vec<usize> = picks(&mut b, &s, 4).into_iter().flatten().collect();
        assert_eq!(got, [0, 2, 0, 2]);
        s[1].active = 0;
        let got = counts(&picks(&mut b, &s, 300));
        assert!(got.values().all(|&n| (95..=105).contains(&n)), "{got:?}");
    }

    // --- static-rr ---

    #[test]
    fn static_rr_spreads_like_roundrobin() {
        let mut b = Balancer::new(Balance::StaticRr, false);
        let s = servers(&[5, 1, 1]);
        let got: Vec<usize> = picks(&mut b, &s, 14).into_iter().flatten().collect();
        assert_eq!(got, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn static_rr_ignores_a_weight_change_until_the_farm_changes() {
        let mut b = Balancer::new(Balance::StaticRr, false);
        let mut s = servers(&[1, 1]);
        s[1].weight = 3;
        // The first pick builds the map from these weights: 1 and 3.
        let c = counts(&picks(&mut b, &s, 400));
        assert_eq!((c[&Some(0)], c[&Some(1)]), (100, 300));
        // On the fly: no effect.
        s[1].weight = 1;
        let c = counts(&picks(&mut b, &s, 400));
        assert_eq!((c[&Some(0)], c[&Some(1)]), (100, 300));
        // A server goes down and back: the map is rebuilt with weight 1.
        s[0].up = false;
        assert_eq!(b.pick(&s, None), Some(1));
        s[0].up = true;
        let c = counts(&picks(&mut b, &s, 400));
        assert_eq!((c[&Some(0)], c[&Some(1)]), (200, 200));
    }

    #[test]
    fn static_rr_reintroduces_a_returning_server_at_once() {
        let mut b = Balancer::new(Balance::StaticRr, false);
        let mut s = servers(&[1, 1, 1]);
        s[2].up = false;
        let got: Vec<usize> = picks(&mut b, &s, 4).into_iter().flatten().collect();
        assert_eq!(got, [0, 1, 0, 1]);
        s[2].up = true;
        let got: Vec<usize> = picks(&mut b, &s, 3).into_iter().flatten().collect();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2], "{got:?}");
    }

    #[test]
    fn static_rr_skips_a_full_server() {
        let mut b = Balancer::new(Balance::StaticRr, false);
        let mut s = servers(&[2, 1]);
        s[0] = s[0].maxconn(4).active(4);
        assert!(picks(&mut b, &s, 5).iter().all(|&p| p == Some(1)));
        s[0].active = 0;
        let c = counts(&picks(&mut b, &s, 300));
        assert_eq!((c[&Some(0)], c[&Some(1)]), (200, 100));
    }

    // --- leastconn ---

    /// Long-lived connections (MySQL sessions): each pick adds one.
    fn hold(b: &mut Balancer, s: &mut [Server], n: usize) {
        for _ in 0..n {
            let i = b.pick(s, None).expect("a server");
            s[i].active += 1;
        }
    }

    #[test]
    fn leastconn_evens_out_long_sessions() {
        let mut b = Balancer::new(Balance::Leastconn, false);
        let mut s = servers(&[1, 1, 1]);
        s[0].active = 10;
        hold(&mut b, &mut s, 20);
        // The two idle servers catch up first, then all grow together.
        assert_eq!((s[0].active, s[1].active, s[2].active), (10, 10, 10));
        hold(&mut b, &mut s, 30);
        assert_eq!((s[0].active, s[1].active, s[2].active), (20, 20, 20));
    }

    #[test]
    fn leastconn_counts_relative_to_weight() {
        let mut b = Balancer::new(Balance::Leastconn, false);
        let mut s = servers(&[1, 2, 3]);
        hold(&mut b, &mut s, 600);
        assert_eq!((s[0].active, s[1].active, s[2].active), (100, 200, 300));
    }

    #[test]
    fn leastconn_takes_turns_among_equals() {
        // Connections that end at once: every server stays at 0.
        let mut b = Balancer::new(Balance::Leastconn, false);
        let s = servers(&[1, 1, 1]);
        let got: Vec<usize> = picks(&mut b, &s, 7).into_iter().flatten().collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
        // A server down does not break the turns of the others.
        let mut s = s;
        s[1].up = false;
        let got: Vec<usize> = picks(&mut b, &s, 4).into_iter().flatten().collect();
        assert_eq!(got, [2, 0, 2, 0]);
    }

    #[test]
    fn leastconn_prefers_the_lighter_server_after_sessions_end() {
        let mut b = Balancer::new(Balance::Leastconn, false);
        let mut s = servers(&[1, 1]);
        hold(&mut b, &mut s, 10);
        s[1].active -= 4;
        hold(&mut b, &mut s, 4);
        assert_eq!((s[0].active, s[1].active), (5, 5));
    }

    // --- source ---

    #[test]
    fn source_keeps_a_client_on_its_server() {
        let mut b = Balancer::new(Balance::Source, false);
        let s = servers(&[1, 1, 1]);
        let first = placement(&mut b, &s, 1000);
        for _ in 0..3 {
            assert_eq!(placement(&mut b, &s, 1000), first);
        }
        // Another balancer (the other LB host, or after a reload) agrees,
        // even with the servers listed in another order.
        let mut other = Balancer::new(Balance::Source, false);
        assert_eq!(placement(&mut other, &s, 1000), first);
        let reversed: Vec<Server> = s.iter().rev().copied().collect();
        let mapped: Vec<Option<usize>> = placement(&mut other, &reversed, 1000)
            .into_iter()
            .map(|p| p.map(|i| 2 - i))
            .collect();
        assert_eq!(mapped, first);
    }

    #[test]
    fn source_spreads_clients_evenly_and_by_weight() {
        let mut b = Balancer::new(Balance::Source, false);
        let c = counts(&placement(&mut b, &servers(&[1, 1, 1, 1]), 40_000));
        for i in 0..4 {
            assert!((8_000..=12_000).contains(&c[&Some(i)]), "{c:?}");
        }
        let c = counts(&placement(&mut b, &servers(&[1, 2, 1]), 40_000));
        assert!((16_000..=24_000).contains(&c[&Some(1)]), "{c:?}");
        assert!((7_000..=13_000).contains(&c[&Some(0)]), "{c:?}");
    }

    #[test]
    fn source_moves_only_the_clients_of_a_failed_server() {
        const N: usize = 5;
        const CLIENTS: u32 = 20_000;
        let mut b = Balancer::new(Balance::Source, false);
        let mut s = servers(&[1; N]);
        let before = placement(&mut b, &s, CLIENTS);
        s[2].up = false;
        let during = placement(&mut b, &s, CLIENTS);
        let mut moved = 0;
        for (was, now) in before.iter().zip(&during) {
            if *was == Some(2) {
                assert_ne!(*now, Some(2));
                assert!(now.is_some());
                moved += 1;
            } else {
                assert_eq!(was, now, "a client of a live server moved");
            }
        }
        // About 1/N of the clients, and no more.
        let share = f64::from(moved) / f64::from(CLIENTS);
        assert!((0.7 / N as f64..1.3 / N as f64).contains(&share), "{share}");
        // The moved clients spread over the survivors, not onto one.
        let c = counts(
            &during
                .iter()
                .zip(&before)
                .filter(|(_, was)| **was == Some(2))
                .map(|(now, _)| *now)
                .collect::<Vec<_>>(),
        );
        assert!(c.len() >= 3, "{c:?}");
        // Back up: every client is where it was.
        s[2].up = true;
        assert_eq!(placement(&mut b, &s, CLIENTS), before);
    }

    #[test]
    fn source_adding_a_server_moves_about_one_in_n_plus_one() {
        let mut b = Balancer::new(Balance::Source, false);
        let four = servers(&[1; 4]);
        let before = placement(&mut b, &four, 20_000);
        let five = servers(&[1; 5]);
        let after = placement(&mut b, &five, 20_000);
        let moved: Vec<_> = before
            .iter()
            .zip(&after)
            .filter(|(was, now)| was != now)
            .collect();
        assert!(
            moved.iter().all(|(_, now)| **now == Some(4)),
            "moved elsewhere than to the new server"
        );
        let share = moved.len() as f64 / 20_000.0;
        assert!((0.14..0.26).contains(&share), "{share}");
    }

    #[test]
    fn source_changing_one_weight_moves_clients_only_to_or_from_it() {
        let mut b = Balancer::new(Balance::Source, false);
        let mut s = servers(&[1, 1, 1]);
        let before = placement(&mut b, &s, 10_000);
        s[0].weight = 2;
        let after = placement(&mut b, &s, 10_000);
        for (was, now) in before.iter().zip(&after) {
            assert!(was == now || *now == Some(0), "{was:?} -> {now:?}");
        }
        // Drain (weight 0): its clients leave, the others stay.
        s[0].weight = 0;
        let drained = placement(&mut b, &s, 10_000);
        for (was, now) in before.iter().zip(&drained) {
            assert!(was == now || *was == Some(0), "{was:?} -> {now:?}");
            assert_ne!(*now, Some(0));
        }
    }

    #[test]
    fn source_a_full_server_lends_its_clients_and_gets_them_back() {
        let mut b = Balancer::new(Balance::Source, false);
        let mut s = servers(&[1, 1, 1]);
        let before = placement(&mut b, &s, 3000);
        s[1] = s[1].maxconn(10).active(10);
        let during = placement(&mut b, &s, 3000);
        for (was, now) in before.iter().zip(&during) {
            if *was == Some(1) {
                assert!(matches!(now, Some(0 | 2)));
            } else {
                assert_eq!(was, now);
            }
        }
        s[1].active = 9;
        assert_eq!(placement(&mut b, &s, 3000), before);
    }

    #[test]
    fn source_sees_ipv4_mapped_ipv6_as_the_same_client() {
        let mut b = Balancer::new(Balance::Source, false);
        let s = servers(&[1, 1, 1, 1]);
        for n in 0..500u32 {
            let v4 = Ipv4Addr::from(0xc0a8_0000 + n);
            assert_eq!(
                b.pick(&s, Some(IpAddr::V4(v4))),
                b.pick(&s, Some(IpAddr::V6(v4.to_ipv6_mapped())))
            );
        }
        // Plain IPv6 clients spread too.
        let c = counts(
            &(0..4000u128)
                .map(|n| {
                    b.pick(
                        &s,
                        Some(IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) + n))),
                    )
                })
                .collect::<Vec<_>>(),
        );
        assert_eq!(c.len(), 4, "{c:?}");
    }

    #[test]
    fn source_weights_hold_at_the_extremes() {
        let mut b = Balancer::new(Balance::Source, false);
        let c = counts(&placement(&mut b, &servers(&[256, 1]), 25_700));
        assert!((50..=150).contains(&c[&Some(1)]), "{c:?}");
    }

    #[test]
    fn source_without_a_client_address_takes_turns() {
        let mut b = Balancer::new(Balance::Source, false);
        let s = servers(&[1, 1]);
        let got: Vec<usize> = picks(&mut b, &s, 4).into_iter().flatten().collect();
        assert_eq!(got, [0, 1, 0, 1]);
    }

    #[test]
    fn source_key_is_the_name() {
        assert_eq!(key("proxy-1"), key("proxy-1"));
        assert_ne!(key("proxy-1"), key("proxy-2"));
        assert_eq!(Server::new("proxy-1", 3).key, key("proxy-1"));
    }

    // --- first ---

    #[test]
    fn first_fills_servers_in_configured_order() {
        let mut b = Balancer::new(Balance::First, false);
        let mut s = vec![
            Server::new("a", 1).maxconn(2),
            Server::new("b", 7).maxconn(3),
            Server::new("c", 1),
        ];
        hold(&mut b, &mut s, 10);
        assert_eq!((s[0].active, s[1].active, s[2].active), (2, 3, 5));
        // A slot frees on the first: it is used before the others.
        s[0].active = 1;
        assert_eq!(b.pick(&s, client(1)), Some(0));
        // The first one down: the next in order.
        s[0].up = false;
        s[1].active = 0;
        assert_eq!(b.pick(&s, client(1)), Some(1));
    }

    #[test]
    fn first_without_maxconn_sends_everything_to_the_first() {
        let mut b = Balancer::new(Balance::First, false);
        let mut s = servers(&[1, 1]);
        hold(&mut b, &mut s, 50);
        assert_eq!((s[0].active, s[1].active), (50, 0));
    }

    #[test]
    fn balancer_reports_its_settings() {
        let b = Balancer::new(Balance::StaticRr, true);
        assert_eq!(b.algorithm(), Balance::StaticRr);
        assert!(b.all_backups());
    }

    /// splitmix64: seeded, so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix(self.0) % n
        }
    }
}
