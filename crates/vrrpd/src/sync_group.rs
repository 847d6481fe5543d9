//! Sync groups (keepalived's `vrrp_sync_group`): when one member faults,
//! every member goes to FAULT, so a router never keeps the VIP of one
//! instance while it has given up another's that must live beside it.
//!
//! [`Groups`] is the pure part: member reports in, the faults to impose
//! and the group state changes out. [`run`] is the task around it.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::mpsc;

use crate::config::{Config, Notify};
use crate::instance::{Command, GroupReport};
use crate::machine::State;
use crate::notify;

#[derive(Clone, Debug, Default)]
struct Member {
    state: Option<State>,
    priority: u8,
    own_fault: Option<String>,
    /// The group fault this member was last told.
    imposed: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub notify: Notify,
    members: BTreeMap<String, Member>,
    state: Option<State>,
}

/// What the task must do after a report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// (member, the group fault it must now share or None to clear).
    pub impose: Vec<(String, Option<String>)>,
    /// The group's new state, for `notify`, with the highest member priority.
    pub group_state: Option<(State, u8)>,
}

#[derive(Clone, Debug, Default)]
pub struct Groups {
    groups: Vec<Group>,
    group_of: HashMap<String, usize>,
}

impl Groups {
    pub fn new(config: &Config) -> Groups {
        let mut g = Groups::default();
        for (name, sg) in &config.vrrp_sync_group {
            let index = g.groups.len();
            g.groups.push(Group {
                name: name.clone(),
                notify: sg.notify.clone(),
                members: sg
                    .group
                    .iter()
                    .map(|m| (m.clone(), Member::default()))
                    .collect(),
                state: None,
            });
            for m in &sg.group {
                g.group_of.insert(m.clone(), index);
            }
        }
        g
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn group_of(&self, instance: &str) -> Option<&Group> {
        self.group_of.get(instance).map(|&i| &self.groups[i])
    }

    pub fn report(&mut self, r: &GroupReport) -> Effects {
        let Some(&gi) = self.group_of.get(&r.instance) else {
            return Effects::default();
        };
        let group = &mut self.groups[gi];
        if let Some(m) = group.members.get_mut(&r.instance) {
            m.state = Some(r.state);
            m.priority = r.priority;
            m.own_fault = r.own_fault.clone();
        }
        let mut effects = Effects::default();
        // Each member shares the first fault of another member; its own
        // fault it already has, and sharing it back would keep it in FAULT
        // after its own cause cleared.
        let names: Vec<String> = group.members.keys().cloned().collect();
        for name in &names {
            let shared = group
                .members
                .iter()
                .filter(|(other, _)| *other != name)
                .find_map(|(other, m)| {
                    m.own_fault
                        .as_ref()
                        .map(|why| format!("sync group {}: {other} is FAULT ({why})", group.name))
                });
            let m = group.members.get_mut(name).expect("member listed above");
            if m.imposed != shared {
                m.imposed = shared.clone();
                effects.impose.push((name.clone(), shared));
            }
        }
        let states: Vec<Option<State>> = group.members.values().map(|m| m.state).collect();
        let new = if states.contains(&Some(State::Fault)) {
            Some(State::Fault)
        } else if states.iter().all(|s| *s == Some(State::Master)) {
            Some(State::Master)
        } else if states.iter().all(|s| *s == Some(State::Backup)) {
            Some(State::Backup)
        } else {
            None
        };
        if new.is_some() && new != group.state {
            group.state = new;
            let priority = group
                .members
                .values()
                .map(|m| m.priority)
                .max()
                .unwrap_or(0);
            effects.group_state = new.map(|s| (s, priority));
        }
        effects
    }
}

/// Applies reports as they come; `senders` maps members to their tasks.
pub async fn run(
    mut groups: Groups,
    mut reports: mpsc::UnboundedReceiver<GroupReport>,
    senders: std::sync::Arc<std::sync::Mutex<HashMap<String, mpsc::Sender<Command>>>>,
) {
    let mut queues: HashMap<String, notify::Queue> = HashMap::new();
    while let Some(r) = reports.recv().await {
        let effects = groups.report(&r);
        for (member, fault) in effects.impose {
            let tx = senders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&member)
                .cloned();
            if let Some(tx) = tx {
                let _ = tx.send(Command::GroupFault(fault)).await;
            }
        }
        if let Some((state, priority)) = effects.group_state {
            if let Some(g) = groups.group_of(&r.instance) {
                tracing::info!(group = %g.name, state = state.name(), "sync group is {state}");
                if let Some(s) = notify::NotifyState::of(state) {
                    queues
                        .entry(g.name.clone())
                        .or_default()
                        .push(notify::commands(
                            &g.notify,
                            notify::Kind::Group,
                            &g.name,
                            s,
                            priority,
                        ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Groups {
        let c: Config = hastack_rt::config::parse(
            std::path::Path::new("v.yaml"),
            "vrrp_sync_group:\n  G:\n    group: [a, b]\ninstances:\n  a:\n    interface: eth0\n    virtual_router_id: 1\n    virtual_ipaddress: [10.0.0.1/24]\n  b:\n    interface: eth0\n    virtual_router_id: 2\n    virtual_ipaddress: [10.0.0.2/24]\n  c:\n    interface: eth0\n    virtual_router_id: 3\n    virtual_ipaddress: [10.0.0.3/24]\n",
        )
        .unwrap();
        Groups::new(&c)
    }

    fn report(instance: &str, state: State, fault: Option<&str>) -> GroupReport {
        GroupReport {
            instance: instance.into(),
            state,
            priority: 100,
            own_fault: fault.map(str::to_string),
        }
    }

    #[test]
    fn a_members_fault_is_shared_and_cleared() {
        let mut g = groups();
        g.report(&report("a", State::Master, None));
        let e = g.report(&report("b", State::Master, None));
        assert_eq!(e.group_state, Some((State::Master, 100)));
        let e = g.report(&report("a", State::Fault, Some("eth0 down")));
        assert_eq!(
            e.impose,
            vec![(
                "b".to_string(),
                Some("sync group G: a is FAULT (eth0 down)".to_string())
            )]
        );
        assert_eq!(e.group_state, Some((State::Fault, 100)));
        // b follows into FAULT: nothing new to impose.
        let e = g.report(&report("b", State::Fault, None));
        assert!(e.impose.is_empty());
        // a's cause clears: b is released; a was never told its own fault.
        let e = g.report(&report("a", State::Backup, None));
        assert_eq!(e.impose, vec![("b".to_string(), None)]);
        let e = g.report(&report("b", State::Backup, None));
        assert_eq!(e.group_state, Some((State::Backup, 100)));
    }

    #[test]
    fn instances_outside_groups_change_nothing() {
        let mut g = groups();
        assert_eq!(
            g.report(&report("c", State::Fault, Some("x"))),
            Effects::default()
        );
        assert!(g.group_of("c").is_none());
    }

    #[test]
    fn two_faulty_members_each_see_the_other() {
        let mut g = groups();
        g.report(&report("a", State::Fault, Some("x")));
        let e = g.report(&report("b", State::Fault, Some("y")));
        assert!(e
            .impose
            .contains(&("a".to_string(), Some("sync group G: b is FAULT (y)".into()))));
        // b recovers; a no longer shares b's fault but keeps its own.
        let e = g.report(&report("b", State::Fault, None));
        assert!(e.impose.contains(&("a".to_string(), None)));
    }
}
