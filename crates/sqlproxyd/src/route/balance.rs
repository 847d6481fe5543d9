//! Choosing a read node: which nodes a `balance` policy allows, and smooth
//! weighted round-robin among them (the same spread as nginx's, without
//! bursts on the heaviest node).

use crate::config::{Balance, Role};

/// Nodes a read may go to under `balance`, as indexes into the data host's
/// nodes; `writer` is the node in use as primary (a `role: read` node
/// promoted by a failover is no longer a replica).
pub fn read_candidates(balance: Balance, roles: &[Role], writer: Option<usize>) -> Vec<usize> {
    let all = 0..roles.len();
    let not_writer = |i: &usize| Some(*i) != writer;
    match balance {
        Balance::Primary => writer.into_iter().collect(),
        Balance::Any => all.collect(),
        Balance::Replicas => all
            .filter(|&i| roles[i] == Role::Read)
            .filter(not_writer)
            .collect(),
        Balance::ReplicasAndStandby => all.filter(not_writer).collect(),
    }
}

/// Smooth weighted round-robin over a fixed set of weights.
#[derive(Clone, Debug)]
pub struct WeightedRoundRobin {
    current: Vec<i64>,
}

impl WeightedRoundRobin {
    pub fn new(n: usize) -> Self {
        WeightedRoundRobin {
            current: vec![0; n],
        }
    }

    /// Picks one of `candidates` (indexes into `weights`). Zero-weight nodes
    /// are chosen only when every candidate weighs zero.
    pub fn pick(&mut self, candidates: &[usize], weights: &[u32]) -> Option<usize> {
        if self.current.len() < weights.len() {
            self.current.resize(weights.len(), 0);
        }
        let weighted: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| weights[i] > 0)
            .collect();
        let pool = if weighted.is_empty() {
            candidates
        } else {
            &weighted[..]
        };
        let weight = |i: usize| i64::from(weights[i].max(1));
        let total: i64 = pool.iter().map(|&i| weight(i)).sum();
        for &i in pool {
            self.current[i] += weight(i);
        }
        let best = *pool
            .iter()
            .max_by_key(|&&i| (self.current[i], std::cmp::Reverse(i)))?;
        self.current[best] -= total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: [Role; 3] = [Role::Write, Role::Read, Role::Read];

    #[test]
    fn mycat_balance_values() {
        assert_eq!(read_candidates(Balance::Primary, &ROLES, Some(0)), [0]);
        assert_eq!(
            read_candidates(Balance::ReplicasAndStandby, &ROLES, Some(0)),
            [1, 2]
        );
        assert_eq!(read_candidates(Balance::Any, &ROLES, Some(0)), [0, 1, 2]);
        assert_eq!(read_candidates(Balance::Replicas, &ROLES, Some(0)), [1, 2]);
        // A standby write node takes reads under 1 but not under 3.
        let two_writers = [Role::Write, Role::Write, Role::Read];
        assert_eq!(
            read_candidates(Balance::ReplicasAndStandby, &two_writers, Some(0)),
            [1, 2]
        );
        assert_eq!(
            read_candidates(Balance::Replicas, &two_writers, Some(0)),
            [2]
        );
        // A promoted read node takes writes, not replica reads; no primary, no reads under 0.
        assert_eq!(read_candidates(Balance::Replicas, &ROLES, Some(2)), [1]);
        assert_eq!(
            read_candidates(Balance::Primary, &ROLES, None),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn weights_are_honoured_smoothly() {
        let mut rr = WeightedRoundRobin::new(3);
        let picks: Vec<usize> = (0..6)
            .map(|_| rr.pick(&[1, 2], &[1, 2, 1]).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 4);
        assert_eq!(picks.iter().filter(|&&i| i == 2).count(), 2);
        assert!(
            picks.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
            "bursty: {picks:?}"
        );
    }

    #[test]
    fn zero_weight_only_as_a_last_resort() {
        let mut rr = WeightedRoundRobin::new(3);
        for _ in 0..5 {
            assert_eq!(rr.pick(&[1, 2], &[1, 0, 3]), Some(2));
        }
        assert_eq!(rr.pick(&[1], &[1, 0, 3]), Some(1));
        assert_eq!(rr.pick(&[], &[1, 0, 3]), None);
    }
}
