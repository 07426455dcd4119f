//! The decisions of node health monitoring, as plain functions over plain data: when a node
//! was last heard from, what its conditions become when it was not heard from for the grace
//! period, which taints follow from its Ready condition, and which pods lose Ready.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus, Pod, PodStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::defaults::{TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE};

/// The conditions the kubelet posts and the controller sets to Unknown when it stops.
pub const NODE_CONDITION_TYPES: [&str; 4] =
    ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
/// Reason of a condition set Unknown because the kubelet stopped posting.
pub const REASON_NODE_STATUS_UNKNOWN: &str = "NodeStatusUnknown";
pub const MESSAGE_NODE_STATUS_UNKNOWN: &str = "Kubelet stopped posting node status.";
/// Reason of a condition the kubelet never posted.
pub const REASON_NODE_STATUS_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
pub const MESSAGE_NODE_STATUS_NEVER_UPDATED: &str = "Kubelet never posted node status.";

/// What the controller remembers of a node (upstream's `nodeHealthData`): when it last saw
/// the node's status or Lease change, by its own monotonic clock (so the kubelet's clock
/// never matters, as upstream's `probeTimestamp`).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeHealth {
    /// When a new heartbeat (status or Lease renewal) was last observed.
    pub probe_timestamp: Instant,
    /// The Ready condition's `lastHeartbeatTime` last seen.
    pub heartbeat: Option<Timestamp>,
    /// The Lease's `renewTime` last seen.
    pub lease_renew: Option<Timestamp>,
}

/// The outcome of one health check of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    /// The Ready condition's status before the check (`None`: no Ready condition).
    pub observed_ready: Option<String>,
    /// … and after it.
    pub current_ready: Option<String>,
    /// The status to write, when the check changed it.
    pub new_status: Option<NodeStatus>,
    /// How long the node has not been heard from.
    pub silent_for: Duration,
}

impl HealthCheck {
    /// The node stopped being Ready in this check: upstream records `NodeNotReady` and marks
    /// its pods not ready.
    pub fn became_not_ready(&self) -> bool {
        self.observed_ready.as_deref() == Some("True")
            && self.current_ready.as_deref() != Some("True")
    }
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The status of the node's Ready condition (`True`, `False`, `Unknown`), if it has one.
pub fn ready_status(node: &Node) -> Option<&str> {
    ready_condition(node).map(|c| c.status.as_str())
}

fn renew_time(lease: Option<&Lease>) -> Option<Timestamp> {
    lease?.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)
}

/// Mirrors `tryUpdateNodeHealth` in pkg/controller/nodelifecycle/node_lifecycle_controller.go:
/// a new heartbeat (the Ready condition's `lastHeartbeatTime`, or the Lease's `renewTime`)
/// moves the probe timestamp to `now`; a node not heard from for longer than `grace` gets
/// every condition Unknown (`NodeStatusUnknown`, or `NodeStatusNeverUpdated` for one it never
/// posted). Returns the updated health data and the check's outcome.
pub fn try_update_node_health(
    node: &Node,
    lease: Option<&Lease>,
    saved: Option<&NodeHealth>,
    now: Instant,
    wall: Timestamp,
    grace: Duration,
) -> (NodeHealth, HealthCheck) {
    let heartbeat = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let lease_renew = renew_time(lease);
    let health = match saved {
        None => NodeHealth {
            probe_timestamp: now,
            heartbeat,
            lease_renew,
        },
        Some(s) => {
            let fresh_status = heartbeat.is_some() && heartbeat != s.heartbeat;
            // Upstream only counts a Lease whose renewTime moved forward.
            let fresh_lease = match (lease_renew, s.lease_renew) {
                (Some(new), Some(old)) => new > old,
                (Some(_), None) => true,
                _ => false,
            };
            NodeHealth {
                probe_timestamp: if fresh_status || fresh_lease {
                    now
                } else {
                    s.probe_timestamp
                },
                heartbeat,
                lease_renew: lease_renew.or(s.lease_renew),
            }
        }
    };
    let observed_ready = ready_status(node).map(str::to_string);
    let silent_for = now.saturating_duration_since(health.probe_timestamp);
    let mut check = HealthCheck {
        current_ready: observed_ready.clone(),
        observed_ready,
        new_status: None,
        silent_for,
    };
    if silent_for <= grace {
        return (health, check);
    }
    let mut status = node.status.clone().unwrap_or_default();
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let mut changed = false;
    for type_ in NODE_CONDITION_TYPES {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some(REASON_NODE_STATUS_NEVER_UPDATED.into()),
                    message: Some(MESSAGE_NODE_STATUS_NEVER_UPDATED.into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(wall)),
                });
                changed = true;
            }
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some(REASON_NODE_STATUS_UNKNOWN.into());
                c.message = Some(MESSAGE_NODE_STATUS_UNKNOWN.into());
                c.last_transition_time = Some(Time(wall));
                changed = true;
            }
            Some(_) => {}
        }
    }
    check.current_ready = Some("Unknown".into());
    if changed {
        check.new_status = Some(status);
    }
    (health, check)
}

fn taint(key: &str, effect: &str, time_added: Option<Timestamp>) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        value: None,
        time_added: time_added.map(Time),
    }
}

/// A taint this controller owns (`not-ready` / `unreachable`, NoSchedule or NoExecute).
pub fn is_lifecycle_taint(t: &Taint) -> bool {
    (t.key == TAINT_NODE_NOT_READY || t.key == TAINT_NODE_UNREACHABLE)
        && (t.effect == "NoSchedule" || t.effect == "NoExecute")
}

/// The node's taints as its Ready condition wants them, or `None` when they are right.
/// Mirrors `doNoScheduleTaintingPass` and `processTaintBaseEviction`: Ready=False gives
/// `node.kubernetes.io/not-ready` with NoSchedule and NoExecute, Ready=Unknown
/// `node.kubernetes.io/unreachable`, Ready=True neither. A node without a Ready condition is
/// left alone (upstream too): the grace period gives it an Unknown one first. A taint that stays keeps
/// its `timeAdded`; a new NoExecute taint gets `now` (the eviction clock starts there).
/// Other taints are never touched.
pub fn desired_taints(node: &Node, now: Timestamp) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let want_key = match ready_status(node)? {
        "True" => None,
        "False" => Some(TAINT_NODE_NOT_READY),
        _ => Some(TAINT_NODE_UNREACHABLE),
    };
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !is_lifecycle_taint(t) || Some(t.key.as_str()) == want_key)
        .cloned()
        .collect();
    if let Some(key) = want_key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t.key == key && t.effect == effect) {
                let added = (effect == "NoExecute").then_some(now);
                out.push(taint(key, effect, added));
            }
        }
    }
    (out != current).then_some(out)
}

/// The pod's status with Ready set False, or `None` when it is not Ready=True (or has no Ready
/// condition). Mirrors the per-pod step of `MarkPodsNotReady` (pkg/controller/util/node).
pub fn mark_pod_not_ready(pod: &Pod, now: Timestamp) -> Option<PodStatus> {
    let mut status = pod.status.clone()?;
    let cond = status
        .conditions
        .as_mut()?
        .iter_mut()
        .find(|c| c.type_ == "Ready")?;
    if cond.status == "False" {
        return None;
    }
    cond.status = "False".into();
    cond.last_transition_time = Some(Time(now));
    Some(status)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::{NodeSpec, PodCondition};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::*;

    const GRACE: Duration = Duration::from_secs(40);

    fn wall(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn ready_node(heartbeat: i64) -> Node {
        let cond = |type_: &str, status: &str| NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some("KubeletReady".into()),
            last_heartbeat_time: Some(Time(wall(heartbeat))),
            ..Default::default()
        };
        Node {
            status: Some(NodeStatus {
                conditions: Some(vec![
                    cond("MemoryPressure", "False"),
                    cond("DiskPressure", "False"),
                    cond("PIDPressure", "False"),
                    cond("Ready", "True"),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn lease(renew: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(wall(renew))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_renewed_lease_keeps_a_node_healthy_past_the_grace_period() {
        let t0 = Instant::now();
        let node = ready_node(0);
        let (h, _) = try_update_node_health(&node, Some(&lease(0)), None, t0, wall(0), GRACE);
        let t1 = t0 + Duration::from_secs(30);
        let (h, c) = try_update_node_health(&node, Some(&lease(30)), Some(&h), t1, wall(30), GRACE);
        assert_eq!(h.probe_timestamp, t1, "the renewal is a heartbeat");
        let t2 = t0 + Duration::from_secs(60);
        let (_, c2) =
            try_update_node_health(&node, Some(&lease(30)), Some(&h), t2, wall(60), GRACE);
        assert!(c.new_status.is_none() && c2.new_status.is_none());
        assert_eq!(c2.current_ready.as_deref(), Some("True"));
    }

    #[test]
    fn a_silent_node_becomes_unknown_after_the_grace_period() {
        let t0 = Instant::now();
        let node = ready_node(0);
        let (h, _) = try_update_node_health(&node, Some(&lease(0)), None, t0, wall(0), GRACE);
        let (_, early) = try_update_node_health(
            &node,
            Some(&lease(0)),
            Some(&h),
            t0 + Duration::from_secs(40),
            wall(40),
            GRACE,
        );
        assert!(
            early.new_status.is_none(),
            "not before the grace period has passed"
        );
        let (_, late) = try_update_node_health(
            &node,
            Some(&lease(0)),
            Some(&h),
            t0 + Duration::from_secs(41),
            wall(41),
            GRACE,
        );
        assert!(late.became_not_ready());
        let status = late.new_status.expect("a status to write");
        let conditions = status.conditions.unwrap();
        assert_eq!(conditions.len(), 4);
        for c in conditions {
            assert_eq!(c.status, "Unknown", "{}", c.type_);
            assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
            assert_eq!(
                c.message.as_deref(),
                Some("Kubelet stopped posting node status.")
            );
            assert_eq!(c.last_transition_time, Some(Time(wall(41))));
            assert_eq!(c.last_heartbeat_time, Some(Time(wall(0))), "heartbeat kept");
        }
    }

    #[test]
    fn taints_follow_the_ready_condition() {
        let now = wall(5);
        assert_eq!(
            desired_taints(&Node::default(), now),
            None,
            "no Ready condition yet"
        );
        let mut node = ready_node(0);
        assert_eq!(
            desired_taints(&node, now),
            None,
            "ready: no taints to change"
        );
        let set_ready = |node: &mut Node, s: &str| {
            for c in node.status.as_mut().unwrap().conditions.as_mut().unwrap() {
                if c.type_ == "Ready" {
                    c.status = s.into();
                }
            }
        };
        set_ready(&mut node, "Unknown");
        let taints = desired_taints(&node, now).unwrap();
        let shown: Vec<_> = taints
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str(), t.time_added.is_some()))
            .collect();
        assert_eq!(
            shown,
            [
                ("node.kubernetes.io/unreachable", "NoSchedule", false),
                ("node.kubernetes.io/unreachable", "NoExecute", true)
            ]
        );
        node.spec = Some(NodeSpec {
            taints: Some(taints.clone()),
            ..Default::default()
        });
        assert_eq!(desired_taints(&node, wall(9)), None, "kept as they are");
        set_ready(&mut node, "False");
        let swapped = desired_taints(&node, now).unwrap();
        assert!(swapped
            .iter()
            .all(|t| t.key == "node.kubernetes.io/not-ready"));
        set_ready(&mut node, "True");
        let mut user = taints.clone();
        user.push(taint("dedicated", "NoSchedule", None));
        node.spec.as_mut().unwrap().taints = Some(user);
        assert_eq!(
            desired_taints(&node, now).unwrap(),
            vec![taint("dedicated", "NoSchedule", None)],
            "back to ready: only the lifecycle taints go"
        );
    }

    #[test]
    fn only_ready_pods_are_marked_not_ready() {
        let pod = |status: &str| Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let marked = mark_pod_not_ready(&pod("True"), wall(1)).unwrap();
        assert_eq!(marked.conditions.unwrap()[0].status, "False");
        assert_eq!(mark_pod_not_ready(&pod("False"), wall(1)), None);
        assert_eq!(mark_pod_not_ready(&Pod::default(), wall(1)), None);
    }
}
