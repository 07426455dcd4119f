//! `NodeAffinity`: the node must match the pod's `nodeSelector` and required node affinity;
//! preferred terms add their weights to the score (normalized to 0–100).
//!
//! Mirrors pkg/scheduler/framework/plugins/nodeaffinity/node_affinity.go.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PreferredSchedulingTerm;

use super::names;
use crate::scheduler::framework::{
    default_normalize_score, CycleState, FilterPlugin, NodeScore, Plugin, PreFilterPlugin,
    PreFilterResult, PreScorePlugin, ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::scheduler::helpers::{
    node_selector_term_matches, required_node_affinity_matches, required_node_selector,
};
use crate::scheduler::snapshot::{NodeInfo, PodInfo, Snapshot};

/// `ErrReasonPod`.
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
/// `errReasonConflict`.
pub const ERR_REASON_CONFLICT: &str = "pod affinity terms conflict";

pub struct NodeAffinity;

fn preferred(pod: &PodInfo) -> &[PreferredSchedulingTerm] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        names::NODE_AFFINITY
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
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

impl PreFilterPlugin for NodeAffinity {
    /// Skip pods without node selector or required affinity; when every required term
    /// names nodes by `metadata.name`, restrict Filter to those nodes.
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let spec = pod.pod.spec.as_ref();
        let required = spec.and_then(required_node_selector);
        let has_selector = spec
            .and_then(|s| s.node_selector.as_ref())
            .is_some_and(|s| !s.is_empty());
        let Some(required) = required else {
            return (
                None,
                if has_selector {
                    Status::success()
                } else {
                    Status::skip()
                },
            );
        };
        let mut node_names: Option<BTreeSet<String>> = None;
        for term in &required.node_selector_terms {
            let mut term_names: Option<BTreeSet<String>> = None;
            for r in term.match_fields.iter().flatten() {
                if r.key == "metadata.name" && r.operator == "In" {
                    let s: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
                    term_names = Some(match term_names {
                        None => s,
                        Some(t) => t.intersection(&s).cloned().collect(),
                    });
                }
            }
            let Some(term_names) = term_names else {
                return (None, Status::success()); // this term may match any node
            };
            node_names
                .get_or_insert_with(BTreeSet::new)
                .extend(term_names);
        }
        match node_names {
            Some(n) if n.is_empty() => (None, Status::unresolvable(ERR_REASON_CONFLICT)),
            Some(n) => (
                Some(PreFilterResult {
                    node_names: Some(n),
                }),
                Status::success(),
            ),
            None => (None, Status::success()),
        }
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if required_node_affinity_matches(&pod.pod, node.node()) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
    ) -> Status {
        if preferred(pod).is_empty() {
            return Status::skip();
        }
        Status::success()
    }
}

impl ScorePlugin for NodeAffinity {
    /// The sum of the weights of the preferred terms the node matches.
    fn score(
        &self,
        _state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        _snapshot: &Snapshot,
    ) -> Result<i64, Status> {
        Ok(preferred(pod)
            .iter()
            .filter(|t| t.weight != 0 && node_selector_term_matches(&t.preference, node.node()))
            .map(|t| t.weight as i64)
            .sum())
    }

    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity as NodeAffinitySpec, NodeSelector, NodeSelectorRequirement,
        NodeSelectorTerm, Pod,
    };

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::snapshot::testing::*;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn term(exprs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(exprs),
            match_fields: None,
        }
    }

    fn with_required(terms: Vec<NodeSelectorTerm>) -> Pod {
        let mut p = pod("p", 0, 0);
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            node_affinity: Some(NodeAffinitySpec {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
                preferred_during_scheduling_ignored_during_execution: None,
            }),
            ..Default::default()
        });
        p
    }

    fn with_selector(sel: &[(&str, &str)]) -> Pod {
        let mut p = pod("p", 0, 0);
        p.spec.as_mut().unwrap().node_selector = Some(
            sel.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        p
    }

    /// Upstream TestNodeAffinity filter cases (subset).
    #[test]
    #[allow(clippy::type_complexity)]
    fn filter_verdicts() {
        let foo_bar = [("foo", "bar")];
        let cases: Vec<(&str, Pod, &[(&str, &str)], bool)> = vec![
            ("no selector", pod("p", 0, 0), &foo_bar, true),
            (
                "missing labels",
                with_selector(&[("foo", "bar")]),
                &[],
                false,
            ),
            (
                "same labels",
                with_selector(&[("foo", "bar")]),
                &foo_bar,
                true,
            ),
            (
                "node labels are superset",
                with_selector(&[("foo", "bar")]),
                &[("foo", "bar"), ("baz", "blah")],
                true,
            ),
            (
                "node labels are subset",
                with_selector(&[("foo", "bar"), ("baz", "blah")]),
                &foo_bar,
                false,
            ),
            (
                "In matches",
                with_required(vec![term(vec![req("foo", "In", &["bar", "value2"])])]),
                &foo_bar,
                true,
            ),
            (
                "Gt matches",
                with_required(vec![term(vec![req("kernel-version", "Gt", &["0204"])])]),
                &[("kernel-version", "0206")],
                true,
            ),
            (
                "NotIn mismatch",
                with_required(vec![term(vec![req("mem-type", "NotIn", &["DDR", "DDR2"])])]),
                &[("mem-type", "DDR3")],
                true,
            ),
            (
                "Exists",
                with_required(vec![term(vec![req("GPU", "Exists", &[])])]),
                &[("GPU", "NVIDIA-GRID-K1")],
                true,
            ),
            (
                "In mismatch",
                with_required(vec![term(vec![req("foo", "In", &["value1", "value2"])])]),
                &foo_bar,
                false,
            ),
            (
                "empty term list matches nothing",
                with_required(vec![]),
                &foo_bar,
                false,
            ),
            (
                "empty term matches nothing",
                with_required(vec![term(vec![])]),
                &foo_bar,
                false,
            ),
            (
                "terms are ORed",
                with_required(vec![
                    term(vec![req("foo", "In", &["x"])]),
                    term(vec![req("foo", "In", &["bar"])]),
                ]),
                &foo_bar,
                true,
            ),
            (
                "expressions are ANDed",
                with_required(vec![term(vec![
                    req("foo", "In", &["bar"]),
                    req("GPU", "Exists", &[]),
                ])]),
                &foo_bar,
                false,
            ),
            (
                "DoesNotExist",
                with_required(vec![term(vec![req("foo", "DoesNotExist", &[])])]),
                &foo_bar,
                false,
            ),
        ];
        for (name, p, labels, fits) in cases {
            let ni = NodeInfo::new(Arc::new(with_labels(node("node1", 1000, 1 << 30), labels)));
            let s = NodeAffinity.filter(&CycleState::new(), &PodInfo::new(Arc::new(p)), &ni);
            if fits {
                assert!(s.is_success(), "{name}: {s}");
            } else {
                assert_eq!(s.code(), Code::UnschedulableAndUnresolvable, "{name}");
                assert_eq!(s.message(), ERR_REASON_POD, "{name}");
            }
        }
    }

    /// matchFields on metadata.name restricts Filter to the named nodes; conflicting terms
    /// reject the pod.
    #[test]
    fn pre_filter_restricts_to_named_nodes() {
        let by_name = |names: &[&[&str]]| {
            with_required(
                names
                    .iter()
                    .map(|ns| NodeSelectorTerm {
                        match_expressions: None,
                        match_fields: Some(vec![req("metadata.name", "In", ns)]),
                    })
                    .collect(),
            )
        };
        let run = |p: Pod| {
            NodeAffinity.pre_filter(
                &mut CycleState::new(),
                &PodInfo::new(Arc::new(p)),
                &Snapshot::new(),
            )
        };
        let (r, s) = run(by_name(&[&["node1"], &["node2"]]));
        assert!(s.is_success());
        assert_eq!(
            r,
            Some(PreFilterResult::nodes([
                "node1".to_string(),
                "node2".to_string()
            ]))
        );
        let (_, s) = run(pod("p", 0, 0));
        assert!(s.is_skip());
        let mut conflicting = by_name(&[&["node1"]]);
        if let Some(t) = conflicting
            .spec
            .as_mut()
            .unwrap()
            .affinity
            .as_mut()
            .unwrap()
            .node_affinity
            .as_mut()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_mut()
        {
            t.node_selector_terms[0]
                .match_fields
                .as_mut()
                .unwrap()
                .push(req("metadata.name", "In", &["node2"]));
        }
        let (_, s) = run(conflicting);
        assert_eq!(s.code(), Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), ERR_REASON_CONFLICT);
    }

    /// Upstream TestNodeAffinityPriority "all nodes matches the preferred scheduling
    /// requirements of pod": weights summed, normalized to the best node.
    #[test]
    fn preferred_terms_score_by_weight() {
        let mut p = pod("p", 0, 0);
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            node_affinity: Some(NodeAffinitySpec {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    PreferredSchedulingTerm {
                        weight: 2,
                        preference: term(vec![req("foo", "In", &["bar"])]),
                    },
                    PreferredSchedulingTerm {
                        weight: 4,
                        preference: term(vec![req("key", "In", &["value"])]),
                    },
                    PreferredSchedulingTerm {
                        weight: 5,
                        preference: term(vec![
                            req("foo", "In", &["bar"]),
                            req("key", "In", &["value"]),
                            req("az", "In", &["az1"]),
                        ]),
                    },
                ]),
                required_during_scheduling_ignored_during_execution: None,
            }),
            ..Default::default()
        });
        let pi = PodInfo::new(Arc::new(p));
        let nodes = [
            with_labels(node("node1", 1, 1), &[("foo", "bar")]),
            with_labels(
                node("node2", 1, 1),
                &[("foo", "bar"), ("key", "value"), ("az", "az1")],
            ),
            with_labels(node("node3", 1, 1), &[("foo", "bar"), ("key", "value")]),
        ];
        let infos: Vec<NodeInfo> = nodes
            .into_iter()
            .map(|n| NodeInfo::new(Arc::new(n)))
            .collect();
        let snap = Snapshot::new();
        let state = CycleState::new();
        let mut scores: Vec<NodeScore> = infos
            .iter()
            .enumerate()
            .map(|(index, ni)| NodeScore {
                index,
                score: NodeAffinity.score(&state, &pi, ni, &snap).unwrap(),
            })
            .collect();
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            vec![2, 11, 6]
        );
        NodeAffinity.normalize_score(&state, &pi, &mut scores);
        // Upstream expects node1 18, node2 100, node3 54.
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            vec![18, 100, 54]
        );
    }
}
