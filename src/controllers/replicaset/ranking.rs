//! Which pods go first when a ReplicaSet scales down. Mirrors `ActivePodsWithRanks.Less` in
//! `pkg/controller/controller_utils.go` (with `PodDeletionCost` and `LogarithmicScaleDown`,
//! both on by default) and `getPodsToDelete` / `getPodsRankedByRelatedPodsOnSameNode` in
//! `pkg/controller/replicaset/replica_set.go`.
//!
//! Earlier in the order = deleted first:
//! 1. unassigned before assigned (`spec.nodeName` empty);
//! 2. Pending before Unknown before Running;
//! 3. not ready before ready;
//! 4. lower `controller.kubernetes.io/pod-deletion-cost` first;
//! 5. doubled up first: more related pods on the same node;
//! 6. ready for less time first, compared in log2 buckets of the age in nanoseconds, as
//!    upstream (`logarithmicRankDiff`), ties broken by uid;
//! 7. more container restarts first;
//! 8. newer first (empty creation time first), in the same log2 buckets.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use super::sync::{is_pod_active, is_pod_ready};

/// `controller.kubernetes.io/pod-deletion-cost`.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn node(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn phase_ordinal(p: &Pod) -> u8 {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        // podPhaseToOrdinal has no entry: Go's zero value.
        _ => 0,
    }
}

/// `GetDeletionCostFromPodAnnotations`: an int32, 0 when absent or malformed.
fn deletion_cost(p: &Pod) -> i32 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `podReadyTime`: the Ready condition's lastTransitionTime.
fn ready_time(p: &Pod) -> Option<Timestamp> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// `maxContainerRestarts` over containers and (restartable) init containers.
fn max_restarts(p: &Pod) -> i32 {
    let Some(s) = p.status.as_ref() else { return 0 };
    s.container_statuses
        .iter()
        .flatten()
        .chain(s.init_container_statuses.iter().flatten())
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// `afterOrZero`: t1 is zero, or after t2 (zero = the "empty time" that sorts first).
fn after_or_zero(t1: Option<Timestamp>, t2: Option<Timestamp>) -> bool {
    match (t1, t2) {
        (None, _) | (_, None) => t1.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// `logarithmicRankDiff`: floor(log2(now - t)) of each, in nanoseconds; -1 if not positive.
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.as_nanosecond() - t.as_nanosecond();
    if d > 0 {
        (d as f64).log2() as i64
    } else {
        -1
    }
}

/// Compare two timestamps for deletion: `Less` = `i` goes first (newer or empty).
fn by_age(
    i: Option<Timestamp>,
    j: Option<Timestamp>,
    now: Timestamp,
    uids: (&str, &str),
) -> Ordering {
    match (i, j) {
        (Some(a), Some(b)) => {
            let diff = log_rank(a, now) - log_rank(b, now);
            if diff == 0 {
                uids.0.cmp(uids.1)
            } else if diff < 0 {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        _ => {
            if after_or_zero(i, j) {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
    }
}

/// `ActivePodsWithRanks.Less` as an ordering: `Less` = `a` is deleted before `b`.
/// `rank_*` are the counts of related pods on each pod's node.
pub fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> Ordering {
    let (na, nb) = (node(a), node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let (pa, pb) = (phase_ordinal(a), phase_ordinal(b));
    if pa != pb {
        return pa.cmp(&pb);
    }
    let (ra, rb) = (is_pod_ready(a), is_pod_ready(b));
    if ra != rb {
        return if ra {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    let (ca, cb) = (deletion_cost(a), deletion_cost(b));
    if ca != cb {
        return ca.cmp(&cb);
    }
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    let uids = (
        a.metadata.uid.as_deref().unwrap_or(""),
        b.metadata.uid.as_deref().unwrap_or(""),
    );
    if ra && rb {
        let (ta, tb) = (ready_time(a), ready_time(b));
        if ta != tb {
            return by_age(ta, tb, now, uids);
        }
    }
    let (xa, xb) = (max_restarts(a), max_restarts(b));
    if xa != xb {
        return xb.cmp(&xa);
    }
    let (ta, tb) = (
        a.metadata.creation_timestamp.as_ref().map(|t| t.0),
        b.metadata.creation_timestamp.as_ref().map(|t| t.0),
    );
    if ta != tb {
        return by_age(ta, tb, now, uids);
    }
    Ordering::Equal
}

/// `getPodsToDelete`: the `diff` pods of `filtered` to delete first. `related` are the active
/// pods of every ReplicaSet with the same owner (`getIndirectlyRelatedPods`): a node running
/// several of them is "doubled up" and loses pods first.
pub fn pods_to_delete(
    filtered: &[Arc<Pod>],
    related: &[Arc<Pod>],
    diff: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_pod_active(p)) {
        *on_node.entry(node(p)).or_default() += 1;
    }
    let mut ranked: Vec<(usize, &Arc<Pod>)> = filtered
        .iter()
        .map(|p| (on_node.get(node(p)).copied().unwrap_or(0), p))
        .collect();
    if diff < ranked.len() {
        ranked.sort_by(|(ra, a), (rb, b)| deletion_order(a, *ra, b, *rb, now));
    }
    ranked
        .into_iter()
        .take(diff)
        .map(|(_, p)| p.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn at(secs_ago: i64) -> Time {
        Time(Timestamp::from_second(NOW - secs_ago).unwrap())
    }

    struct P(Pod);

    impl P {
        fn new(name: &str) -> P {
            P(Pod {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("default".into()),
                    uid: Some(format!("uid-{name}")),
                    creation_timestamp: Some(at(3600)),
                    ..Default::default()
                },
                spec: Some(PodSpec::default()),
                status: Some(PodStatus {
                    phase: Some("Running".into()),
                    ..Default::default()
                }),
            })
        }
        fn on(mut self, node: &str) -> P {
            self.0.spec.as_mut().unwrap().node_name = Some(node.into());
            self
        }
        fn phase(mut self, phase: &str) -> P {
            self.0.status.as_mut().unwrap().phase = Some(phase.into());
            self
        }
        fn ready_since(mut self, secs_ago: i64) -> P {
            self.0.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(at(secs_ago)),
                ..Default::default()
            }]);
            self
        }
        fn cost(mut self, cost: i32) -> P {
            self.0.metadata.annotations = Some(BTreeMap::from([(
                POD_DELETION_COST.into(),
                cost.to_string(),
            )]));
            self
        }
        fn restarts(mut self, n: i32) -> P {
            self.0.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
                name: "c".into(),
                restart_count: n,
                ..Default::default()
            }]);
            self
        }
        fn created(mut self, secs_ago: i64) -> P {
            self.0.metadata.creation_timestamp = Some(at(secs_ago));
            self
        }
        fn pod(self) -> Arc<Pod> {
            Arc::new(self.0)
        }
    }

    fn first_to_go(a: Arc<Pod>, b: Arc<Pod>) -> String {
        let got = pods_to_delete(
            &[b.clone(), a.clone()],
            &[],
            1,
            Timestamp::from_second(NOW).unwrap(),
        );
        got[0].metadata.name.clone().unwrap()
    }

    /// Each rule of `ActivePodsWithRanks.Less`, with everything else equal: the pod named
    /// `first` is deleted before the pod named `second`.
    #[test]
    fn deletion_ranking_follows_upstream_order() {
        let cases: Vec<(&str, Arc<Pod>, Arc<Pod>)> = vec![
            (
                "unassigned before assigned",
                P::new("first").pod(),
                P::new("second").on("node-1").pod(),
            ),
            (
                "pending before running",
                P::new("first").on("n").phase("Pending").pod(),
                P::new("second").on("n").pod(),
            ),
            (
                "unknown before running",
                P::new("first").on("n").phase("Unknown").pod(),
                P::new("second").on("n").pod(),
            ),
            (
                "not ready before ready",
                P::new("first").on("n").pod(),
                P::new("second").on("n").ready_since(60).pod(),
            ),
            (
                "lower deletion cost first",
                P::new("first").on("n").ready_since(60).cost(-5).pod(),
                P::new("second").on("n").ready_since(60).cost(10).pod(),
            ),
            (
                "ready for less time first",
                P::new("first").on("n").ready_since(10).pod(),
                P::new("second").on("n").ready_since(10_000).pod(),
            ),
            (
                "more restarts first",
                P::new("first").on("n").ready_since(60).restarts(4).pod(),
                P::new("second").on("n").ready_since(60).restarts(1).pod(),
            ),
            (
                "newer first",
                P::new("first").on("n").created(5).pod(),
                P::new("second").on("n").created(50_000).pod(),
            ),
        ];
        for (case, first, second) in cases {
            assert_eq!(first_to_go(first, second), "first", "{case}");
        }
    }

    #[test]
    fn doubled_up_nodes_lose_pods_first() {
        let a = P::new("a").on("crowded").pod();
        let b = P::new("b").on("quiet").pod();
        let sibling = P::new("sibling").on("crowded").pod();
        let related = vec![a.clone(), b.clone(), sibling];
        let now = Timestamp::from_second(NOW).unwrap();
        let got = pods_to_delete(&[b.clone(), a.clone()], &related, 1, now);
        assert_eq!(got[0].metadata.name.as_deref(), Some("a"));
    }

    #[test]
    fn ages_in_the_same_log2_bucket_tie_break_by_uid() {
        // 1000 s and 1001 s ago are in the same power-of-two bucket of nanoseconds.
        let a = P::new("b-pod").on("n").created(1000).pod();
        let b = P::new("a-pod").on("n").created(1001).pod();
        assert_eq!(first_to_go(a, b), "a-pod");
    }

    #[test]
    fn deleting_everything_keeps_the_order_given() {
        let pods = vec![P::new("x").pod(), P::new("y").pod()];
        let now = Timestamp::from_second(NOW).unwrap();
        assert_eq!(pods_to_delete(&pods, &[], 2, now).len(), 2);
        assert_eq!(pods_to_delete(&pods, &[], 0, now).len(), 0);
    }
}
