//! `TaintToleration`: a pod may not go to a node with a `NoSchedule` / `NoExecute` taint it
//! does not tolerate; among feasible nodes, fewer untolerated `PreferNoSchedule` taints
//! score higher (normalized in reverse).
//!
//! Mirrors pkg/scheduler/framework/plugins/tainttoleration/taint_toleration.go.

use k8s_openapi::api::core::v1::Toleration;

use super::names;
use crate::scheduler::framework::{
    default_normalize_score, CycleState, FilterPlugin, NodeScore, Plugin, PreScorePlugin,
    ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::scheduler::helpers::{
    find_untolerated_taint, node_taints, pod_tolerations, tolerations_tolerate_taint,
};
use crate::scheduler::snapshot::{NodeInfo, PodInfo, Snapshot};

const PRE_SCORE_STATE_KEY: &str = "PreScoreTaintToleration";

/// `ErrReasonNotMatch` prefix; the full reason is
/// `node(s) had untolerated taint {<key>: <value>}`.
pub fn untolerated_taint_reason(key: &str, value: &str) -> String {
    format!("node(s) had untolerated taint {{{key}: {value}}}")
}

pub struct TaintToleration;

/// Tolerations that matter for scoring: effect `PreferNoSchedule` or empty.
struct PreScoreState {
    tolerations_prefer_no_schedule: Vec<Toleration>,
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        names::TAINT_TOLERATION
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for TaintToleration {
    /// A node without taints passes.
    fn passes_fast(&self, _state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> bool {
        !node.has_taints
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.has_taints {
            return Status::success(); // without reading the Node object
        }
        let taint =
            find_untolerated_taint(node_taints(node.node()), pod_tolerations(&pod.pod), |t| {
                t.effect == "NoSchedule" || t.effect == "NoExecute"
            });
        match taint {
            None => Status::success(),
            Some(t) => Status::unresolvable(untolerated_taint_reason(
                &t.key,
                t.value.as_deref().unwrap_or(""),
            )),
        }
    }
}

impl PreScorePlugin for TaintToleration {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
    ) -> Status {
        let tolerations_prefer_no_schedule = pod_tolerations(&pod.pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .cloned()
            .collect();
        state.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                tolerations_prefer_no_schedule,
            },
        );
        Status::success()
    }
}

/// Mirrors `countIntolerableTaintsPreferNoSchedule`.
fn count_intolerable_taints(s: &PreScoreState, node: &NodeInfo) -> i64 {
    if !node.has_taints {
        return 0;
    }
    node_taints(node.node())
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| !tolerations_tolerate_taint(&s.tolerations_prefer_no_schedule, t))
        .count() as i64
}

impl ScorePlugin for TaintToleration {
    /// The number of `PreferNoSchedule` taints the pod does not tolerate.
    fn score(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        node: &NodeInfo,
        _snapshot: &Snapshot,
    ) -> Result<i64, Status> {
        let s = state
            .read::<PreScoreState>(PRE_SCORE_STATE_KEY)
            .ok_or_else(|| Status::error("TaintToleration: pre-score state missing"))?;
        Ok(count_intolerable_taints(s, node))
    }

    /// The cycle state is read once for all nodes.
    fn score_nodes(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
        out: &mut Vec<NodeScore>,
    ) -> Result<(), Status> {
        let s = state
            .read::<PreScoreState>(PRE_SCORE_STATE_KEY)
            .ok_or_else(|| Status::error("TaintToleration: pre-score state missing"))?;
        out.extend(nodes.iter().enumerate().map(|(index, node)| NodeScore {
            index,
            score: count_intolerable_taints(s, node),
        }));
        Ok(())
    }

    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Pod;

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::snapshot::testing::*;

    fn tolerating(tols: &[(&str, &str, &str, &str)]) -> Pod {
        let mut p = pod("p", 0, 0);
        p.spec.as_mut().unwrap().tolerations = Some(
            tols.iter()
                .map(|(k, op, v, e)| Toleration {
                    key: Some(k.to_string()),
                    operator: Some(op.to_string()),
                    value: (!v.is_empty()).then(|| v.to_string()),
                    effect: (!e.is_empty()).then(|| e.to_string()),
                    toleration_seconds: None,
                })
                .collect(),
        );
        p
    }

    /// Upstream TestTaintTolerationFilter cases.
    #[test]
    fn filter_verdicts() {
        let tainted = |taints: &[(&str, &str, &str)]| {
            let mut n = node("nodeA", 1000, 1 << 30);
            for (k, v, e) in taints {
                n = with_taint(n, k, v, e);
            }
            NodeInfo::new(Arc::new(n))
        };
        let cases = [
            ("a pod having no tolerations can't be scheduled onto a node with nonempty taints",
             pod("p", 0, 0), tainted(&[("dedicated", "user1", "NoSchedule")]),
             Some("node(s) had untolerated taint {dedicated: user1}")),
            ("a pod which can be scheduled on a dedicated node assigned to user1 with effect NoSchedule",
             tolerating(&[("dedicated", "Equal", "user1", "NoSchedule")]), tainted(&[("dedicated", "user1", "NoSchedule")]), None),
            ("a pod which can't be scheduled on a dedicated node assigned to user2 with effect NoSchedule",
             tolerating(&[("dedicated", "Equal", "user2", "NoSchedule")]), tainted(&[("dedicated", "user1", "NoSchedule")]),
             Some("node(s) had untolerated taint {dedicated: user1}")),
            ("a pod can be scheduled onto the node, with a toleration uses operator Exists that tolerates the taints on the node",
             tolerating(&[("foo", "Exists", "", "NoSchedule")]), tainted(&[("foo", "bar", "NoSchedule")]), None),
            ("a pod has multiple tolerations, node has multiple taints, all the taints are tolerated",
             tolerating(&[("dedicated", "Equal", "user2", "NoSchedule"), ("foo", "Exists", "", "NoSchedule")]),
             tainted(&[("dedicated", "user2", "NoSchedule"), ("foo", "bar", "NoSchedule")]), None),
            ("a pod has a toleration that keys and values match the taint on the node, but (non-empty) effect doesn't match, can't be scheduled onto the node",
             tolerating(&[("foo", "Equal", "bar", "PreferNoSchedule")]), tainted(&[("foo", "bar", "NoSchedule")]),
             Some("node(s) had untolerated taint {foo: bar}")),
            ("The pod has a toleration that keys and values match the taint on the node, the effect of toleration is empty, and the effect of taint is NoSchedule. Pod can be scheduled onto the node",
             tolerating(&[("foo", "Equal", "bar", "")]), tainted(&[("foo", "bar", "NoSchedule")]), None),
            ("The pod has a toleration that key and value don't match the taint on the node, but the effect of taint on node is PreferNoSchedule. Pod can be scheduled onto the node",
             tolerating(&[("dedicated", "Equal", "user2", "NoSchedule")]), tainted(&[("dedicated", "user1", "PreferNoSchedule")]), None),
            ("The pod has no toleration, but the effect of taint on node is PreferNoSchedule. Pod can be scheduled onto the node",
             pod("p", 0, 0), tainted(&[("dedicated", "user1", "PreferNoSchedule")]), None),
            ("a node without taints takes any pod (the fast path)",
             pod("p", 0, 0), tainted(&[]), None),
            ("control-plane taint without value",
             pod("p", 0, 0), tainted(&[("node-role.kubernetes.io/control-plane", "", "NoSchedule")]),
             Some("node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }")),
        ];
        for (name, p, ni, want) in cases {
            let pi = PodInfo::new(Arc::new(p));
            let s = TaintToleration.filter(&CycleState::new(), &pi, &ni);
            // The fast path passes exactly the untainted node, never a rejected one.
            let fast = TaintToleration.passes_fast(&CycleState::new(), &pi, &ni);
            assert_eq!(fast, !ni.has_taints, "{name}");
            assert!(
                !fast || s.is_success(),
                "{name}: fast path passed a rejection"
            );
            match want {
                None => assert!(s.is_success(), "{name}: {s}"),
                Some(reason) => {
                    assert_eq!(s.code(), Code::UnschedulableAndUnresolvable, "{name}");
                    assert_eq!(s.message(), reason, "{name}");
                }
            }
        }
    }

    /// Upstream TestTaintTolerationScore cases: fewer intolerable PreferNoSchedule taints
    /// score higher; only PreferNoSchedule counts.
    #[test]
    fn scores_are_normalized_in_reverse() {
        let run = |p: Pod, nodes: Vec<Vec<(&str, &str, &str)>>| -> Vec<i64> {
            let infos: Vec<NodeInfo> = nodes
                .into_iter()
                .enumerate()
                .map(|(i, taints)| {
                    let mut n = node(&format!("node{i}"), 1000, 1 << 30);
                    for (k, v, e) in taints {
                        n = with_taint(n, k, v, e);
                    }
                    NodeInfo::new(Arc::new(n))
                })
                .collect();
            let refs: Vec<&NodeInfo> = infos.iter().collect();
            let pi = PodInfo::new(Arc::new(p));
            let mut state = CycleState::new();
            let snap = Snapshot::new();
            assert!(TaintToleration
                .pre_score(&mut state, &pi, &refs, &snap)
                .is_success());
            let mut scores: Vec<NodeScore> = refs
                .iter()
                .enumerate()
                .map(|(index, ni)| NodeScore {
                    index,
                    score: TaintToleration.score(&state, &pi, ni, &snap).unwrap(),
                })
                .collect();
            TaintToleration.normalize_score(&state, &pi, &mut scores);
            scores.iter().map(|s| s.score).collect()
        };
        // Nodes with taints that pod doesn't tolerate get lower score.
        assert_eq!(
            run(
                tolerating(&[("foo", "Equal", "bar", "PreferNoSchedule")]),
                vec![
                    vec![("foo", "bar", "PreferNoSchedule")],
                    vec![("foo", "blah", "PreferNoSchedule")]
                ]
            ),
            vec![100, 0]
        );
        // The more intolerable taints a node has, the lower score it gets.
        assert_eq!(
            run(
                tolerating(&[("foo", "Equal", "bar", "PreferNoSchedule")]),
                vec![
                    vec![],
                    vec![("cpu-type", "arm64", "PreferNoSchedule")],
                    vec![
                        ("cpu-type", "arm64", "PreferNoSchedule"),
                        ("disk-type", "ssd", "PreferNoSchedule")
                    ],
                ]
            ),
            vec![100, 50, 0]
        );
        // Only taints and tolerations that have effect PreferNoSchedule are checked.
        assert_eq!(
            run(
                tolerating(&[
                    ("cpu-type", "Equal", "arm64", "NoSchedule"),
                    ("disk-type", "Equal", "ssd", "")
                ]),
                vec![
                    vec![],
                    vec![("cpu-type", "arm64", "NoSchedule")],
                    vec![("cpu-type", "arm64", "PreferNoSchedule")],
                ]
            ),
            vec![100, 100, 0]
        );
        // Default behaviour: no taints and tolerations → all nodes 100.
        assert_eq!(run(pod("p", 0, 0), vec![vec![], vec![]]), vec![100, 100]);
    }
}
