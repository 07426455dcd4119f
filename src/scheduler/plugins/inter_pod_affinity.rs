//! `InterPodAffinity`: required pod affinity / anti-affinity (and existing pods'
//! anti-affinity towards the incoming pod) by topology domain; preferred terms — the pod's
//! and, symmetrically, existing pods' — score the domains.
//!
//! Mirrors pkg/scheduler/framework/plugins/interpodaffinity/{filtering,scoring,plugin}.go.
//!
//! Discrepancy: namespace selectors other than `{}` (all namespaces) are not evaluated,
//! because namespace labels are not in the scheduler's snapshot; such a term only matches
//! the namespaces it lists.

use std::collections::HashMap;

use super::names;
use crate::scheduler::framework::{
    CycleState, FilterPlugin, NodeScore, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin,
    ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::scheduler::helpers::node_labels;
use crate::scheduler::profile::InterPodAffinityArgs;
use crate::scheduler::snapshot::{AffinityTerm, NodeInfo, PodInfo, Snapshot, WeightedAffinityTerm};

/// `ErrReasonExistingAntiAffinityRulesNotMatch`.
pub const ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// `ErrReasonAffinityRulesNotMatch`.
pub const ERR_REASON_AFFINITY_RULES_NOT_MATCH: &str = "node(s) didn't match pod affinity rules";
/// `ErrReasonAntiAffinityRulesNotMatch`.
pub const ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't match pod anti-affinity rules";

const PRE_FILTER_STATE_KEY: &str = "PreFilterInterPodAffinity";
const PRE_SCORE_STATE_KEY: &str = "PreScoreInterPodAffinity";

/// topology key → topology value → count (`topologyToMatchedTermCount`).
type TopologyCounts = HashMap<String, HashMap<String, i64>>;

fn update(counts: &mut TopologyCounts, node: &NodeInfo, key: &str, value: i64) {
    if let Some(v) = node_labels(node.node()).get(key) {
        *counts
            .entry(key.to_string())
            .or_default()
            .entry(v.clone())
            .or_default() += value;
    }
}

fn count_of(counts: &TopologyCounts, key: &str, value: &str) -> i64 {
    counts
        .get(key)
        .and_then(|m| m.get(value))
        .copied()
        .unwrap_or(0)
}

/// `podMatchesAllAffinityTerms`: false for no terms.
fn pod_matches_all_affinity_terms(terms: &[AffinityTerm], pod: &PodInfo) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod))
}

#[derive(Default)]
struct PreFilterState {
    /// Domains where an existing pod's required anti-affinity term matches the incoming pod.
    existing_anti_affinity_counts: TopologyCounts,
    /// Domains with existing pods matching all the incoming pod's required affinity terms.
    affinity_counts: TopologyCounts,
    /// Domains with existing pods matching one of its required anti-affinity terms.
    anti_affinity_counts: TopologyCounts,
}

struct PreScoreState {
    topology_score: TopologyCounts,
}

pub struct InterPodAffinity {
    hard_pod_affinity_weight: i64,
}

impl InterPodAffinity {
    pub fn new(args: &InterPodAffinityArgs) -> InterPodAffinity {
        InterPodAffinity {
            hard_pod_affinity_weight: args.hard_pod_affinity_weight,
        }
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        names::INTER_POD_AFFINITY
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

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let any_existing_anti = snapshot.has_pods_with_required_anti_affinity();
        if pod.required_affinity_terms.is_empty()
            && pod.required_anti_affinity_terms.is_empty()
            && !any_existing_anti
        {
            return (None, Status::skip());
        }
        let mut s = PreFilterState::default();
        for ni in snapshot.nodes() {
            for existing in &ni.pods_with_required_anti_affinity {
                for t in &existing.required_anti_affinity_terms {
                    if t.matches(pod) {
                        update(&mut s.existing_anti_affinity_counts, ni, &t.topology_key, 1);
                    }
                }
            }
            if pod.required_affinity_terms.is_empty() && pod.required_anti_affinity_terms.is_empty()
            {
                continue;
            }
            for existing in &ni.pods {
                if pod_matches_all_affinity_terms(&pod.required_affinity_terms, existing) {
                    for t in &pod.required_affinity_terms {
                        update(&mut s.affinity_counts, ni, &t.topology_key, 1);
                    }
                }
                for t in &pod.required_anti_affinity_terms {
                    if t.matches(existing) {
                        update(&mut s.anti_affinity_counts, ni, &t.topology_key, 1);
                    }
                }
            }
        }
        state.write(PRE_FILTER_STATE_KEY, s);
        (None, Status::success())
    }
}

/// `satisfyPodAffinity`: every required affinity term's domain on this node holds a
/// matching pod — or no pod matches anywhere and the pod matches its own terms (the first
/// pod of a group with affinity to itself).
fn satisfy_pod_affinity(s: &PreFilterState, pod: &PodInfo, node: &NodeInfo) -> bool {
    let labels = node_labels(node.node());
    let mut pods_exist = true;
    for t in &pod.required_affinity_terms {
        match labels.get(&t.topology_key) {
            Some(v) => {
                if count_of(&s.affinity_counts, &t.topology_key, v) <= 0 {
                    pods_exist = false;
                }
            }
            None => return false,
        }
    }
    if !pods_exist {
        return s.affinity_counts.is_empty()
            && pod_matches_all_affinity_terms(&pod.required_affinity_terms, pod);
    }
    true
}

/// `satisfyPodAntiAffinity`.
fn satisfy_pod_anti_affinity(s: &PreFilterState, pod: &PodInfo, node: &NodeInfo) -> bool {
    if s.anti_affinity_counts.is_empty() {
        return true;
    }
    let labels = node_labels(node.node());
    pod.required_anti_affinity_terms.iter().all(|t| {
        labels
            .get(&t.topology_key)
            .is_none_or(|v| count_of(&s.anti_affinity_counts, &t.topology_key, v) <= 0)
    })
}

/// `satisfyExistingPodsAntiAffinity`.
fn satisfy_existing_pods_anti_affinity(s: &PreFilterState, node: &NodeInfo) -> bool {
    if s.existing_anti_affinity_counts.is_empty() {
        return true;
    }
    node_labels(node.node())
        .iter()
        .all(|(k, v)| count_of(&s.existing_anti_affinity_counts, k, v) <= 0)
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error("InterPodAffinity: pre-filter state missing");
        };
        if !satisfy_pod_affinity(s, pod, node) {
            return Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH);
        }
        if !satisfy_pod_anti_affinity(s, pod, node) {
            return Status::unschedulable(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        if !satisfy_existing_pods_anti_affinity(s, node) {
            return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        Status::success()
    }
}

fn process_term(
    scores: &mut TopologyCounts,
    term: &AffinityTerm,
    weight: i64,
    pod_to_check: &PodInfo,
    node: &NodeInfo,
    multiplier: i64,
) {
    if term.matches(pod_to_check) {
        update(scores, node, &term.topology_key, weight * multiplier);
    }
}

fn process_terms(
    scores: &mut TopologyCounts,
    terms: &[WeightedAffinityTerm],
    pod_to_check: &PodInfo,
    node: &NodeInfo,
    multiplier: i64,
) {
    for t in terms {
        process_term(
            scores,
            &t.term,
            t.weight as i64,
            pod_to_check,
            node,
            multiplier,
        );
    }
}

impl InterPodAffinity {
    /// `processExistingPod`: the incoming pod's preferred terms against the existing pod,
    /// and the existing pod's required (hard weight) and preferred terms against the
    /// incoming pod, all credited to the existing pod's domains.
    fn process_existing_pod(
        &self,
        scores: &mut TopologyCounts,
        pod: &PodInfo,
        existing: &PodInfo,
        node: &NodeInfo,
    ) {
        if node_labels(node.node()).is_empty() {
            return;
        }
        process_terms(scores, &pod.preferred_affinity_terms, existing, node, 1);
        process_terms(
            scores,
            &pod.preferred_anti_affinity_terms,
            existing,
            node,
            -1,
        );
        if self.hard_pod_affinity_weight > 0 {
            for t in &existing.required_affinity_terms {
                process_term(scores, t, self.hard_pod_affinity_weight, pod, node, 1);
            }
        }
        process_terms(scores, &existing.preferred_affinity_terms, pod, node, 1);
        process_terms(
            scores,
            &existing.preferred_anti_affinity_terms,
            pod,
            node,
            -1,
        );
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        let has_constraints = !pod.preferred_affinity_terms.is_empty()
            || !pod.preferred_anti_affinity_terms.is_empty();
        if !has_constraints && !snapshot.has_pods_with_affinity() {
            return Status::skip(); // nothing could score: no scan of every node
        }
        let mut scores = TopologyCounts::new();
        for ni in snapshot.nodes() {
            // Without preferred terms of its own, only existing pods with affinity matter.
            let pods = if has_constraints {
                &ni.pods
            } else {
                &ni.pods_with_affinity
            };
            for existing in pods {
                self.process_existing_pod(&mut scores, pod, existing, ni);
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                topology_score: scores,
            },
        );
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    /// The sum of the scores of the domains the node belongs to.
    fn score(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        node: &NodeInfo,
        _snapshot: &Snapshot,
    ) -> Result<i64, Status> {
        let s = state
            .read::<PreScoreState>(PRE_SCORE_STATE_KEY)
            .ok_or_else(|| Status::error("InterPodAffinity: pre-score state missing"))?;
        let labels = node_labels(node.node());
        Ok(s.topology_score
            .iter()
            .filter_map(|(k, values)| labels.get(k).and_then(|v| values.get(v)))
            .sum())
    }

    /// Min-max normalization to 0–100 (scores may be negative).
    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        let (Some(min), Some(max)) = (
            scores.iter().map(|s| s.score).min(),
            scores.iter().map(|s| s.score).max(),
        ) else {
            return Status::success();
        };
        let diff = max - min;
        for s in scores.iter_mut() {
            s.score = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((s.score - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{
        Affinity, Pod, PodAffinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::snapshot::testing::*;

    fn term(key: &str, op: &str, values: &[&str], topology: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: key.into(),
                    operator: op.into(),
                    values: Some(values.iter().map(|s| s.to_string()).collect()),
                }]),
                match_labels: None,
            }),
            topology_key: topology.into(),
            ..Default::default()
        }
    }

    #[derive(Default)]
    struct Terms {
        affinity: Vec<PodAffinityTerm>,
        anti: Vec<PodAffinityTerm>,
        pref_affinity: Vec<(i32, PodAffinityTerm)>,
        pref_anti: Vec<(i32, PodAffinityTerm)>,
    }

    fn with_terms(mut p: Pod, t: Terms) -> Pod {
        let weighted = |v: Vec<(i32, PodAffinityTerm)>| {
            (!v.is_empty()).then(|| {
                v.into_iter()
                    .map(|(weight, pod_affinity_term)| WeightedPodAffinityTerm {
                        weight,
                        pod_affinity_term,
                    })
                    .collect()
            })
        };
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: (!t.affinity.is_empty())
                    .then_some(t.affinity),
                preferred_during_scheduling_ignored_during_execution: weighted(t.pref_affinity),
            }),
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: (!t.anti.is_empty())
                    .then_some(t.anti),
                preferred_during_scheduling_ignored_during_execution: weighted(t.pref_anti),
            }),
            node_affinity: None,
        });
        p
    }

    /// Run PreFilter + Filter for `p` on every node of the snapshot.
    fn filter_all(p: Pod, snap: &Snapshot) -> Vec<(Code, String)> {
        let pl = InterPodAffinity::new(&InterPodAffinityArgs::default());
        let pi = PodInfo::new(Arc::new(p));
        let mut state = CycleState::new();
        let (_, s) = pl.pre_filter(&mut state, &pi, snap);
        snap.nodes()
            .iter()
            .map(|ni| {
                if s.is_skip() {
                    return (Code::Success, String::new());
                }
                let st = pl.filter(&state, &pi, ni);
                (st.code(), st.message())
            })
            .collect()
    }

    fn snapshot(nodes: &[(&str, &[(&str, &str)])], pods: Vec<Pod>) -> Snapshot {
        let mut s = Snapshot::new();
        for (name, labels) in nodes {
            s.add_node(Arc::new(with_labels(node(name, 1000, 1 << 30), labels)));
        }
        for p in pods {
            s.add_pod(Arc::new(p));
        }
        s
    }

    const OK: (Code, &str) = (Code::Success, "");

    fn verdicts(v: &[(Code, &str)]) -> Vec<(Code, String)> {
        v.iter().map(|(c, m)| (*c, m.to_string())).collect()
    }

    /// Upstream TestRequiredAffinitySingleNode cases (subset), one node `node1`
    /// labelled region=r1, zone=z11.
    #[test]
    #[allow(clippy::type_complexity)]
    fn required_affinity_single_node() {
        let node1: &[(&str, &[(&str, &str)])] = &[("node1", &[("region", "r1"), ("zone", "z11")])];
        let existing = |labels: &[(&str, &str)], ns: &str| {
            let mut p = on(with_pod_labels(pod("existing", 0, 0), labels), "node1");
            p.metadata.namespace = Some(ns.into());
            p
        };
        let affinity = |t: PodAffinityTerm| {
            with_terms(
                pod("p", 0, 0),
                Terms {
                    affinity: vec![t],
                    ..Default::default()
                },
            )
        };
        let anti = |t: PodAffinityTerm| {
            with_terms(
                pod("p", 0, 0),
                Terms {
                    anti: vec![t],
                    ..Default::default()
                },
            )
        };
        let cases: Vec<(&str, Pod, Vec<Pod>, (Code, &str))> = vec![
            ("A pod that has no required pod affinity scheduling rules can schedule onto a node with no existing pods",
             pod("p", 0, 0), vec![], OK),
            ("satisfies with requiredDuringSchedulingIgnoredDuringExecution in PodAffinity using In operator that matches the existing pod",
             affinity(term("service", "In", &["securityscan", "value2"], "region")),
             vec![existing(&[("service", "securityscan")], "default")], OK),
            ("satisfies the pod with requiredDuringSchedulingIgnoredDuringExecution in PodAffinity using not in operator in labelSelector that matches the existing pod",
             affinity(term("service", "NotIn", &["securityscan3", "value3"], "region")),
             vec![existing(&[("service", "securityscan")], "default")], OK),
            ("Does not satisfy the PodAffinity with labelSelector because of diff Namespace",
             affinity(term("service", "In", &["securityscan", "value2"], "region")),
             vec![existing(&[("service", "securityscan")], "ns2")],
             (Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY_RULES_NOT_MATCH)),
            ("Doesn't satisfy the PodAffinity because of unmatching labelSelector with the existing pod",
             affinity(term("service", "In", &["antivirusscan", "value2"], "region")),
             vec![existing(&[("service", "securityscan")], "default")],
             (Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY_RULES_NOT_MATCH)),
            ("satisfies the PodAntiAffinity with existing pod but doesn't match the topology key",
             anti(term("service", "In", &["securityscan"], "zone-other")),
             vec![existing(&[("service", "securityscan")], "default")], OK),
            ("Doesn't satisfy the PodAntiAffinity because of matching existing pod",
             anti(term("service", "In", &["securityscan"], "zone")),
             vec![existing(&[("service", "securityscan")], "default")],
             (Code::Unschedulable, ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH)),
            ("satisfies the PodAntiAffinity because of no matching existing pod",
             anti(term("service", "In", &["antivirusscan"], "zone")),
             vec![existing(&[("service", "securityscan")], "default")], OK),
            ("Doesn't satisfy the existing pod's PodAntiAffinity",
             with_pod_labels(pod("p", 0, 0), &[("service", "securityscan")]),
             vec![with_terms(existing(&[], "default"), Terms { anti: vec![term("service", "In", &["securityscan"], "zone")], ..Default::default() })],
             (Code::Unschedulable, ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH)),
            ("verify that PodAffinity is satisfied when the pod is the first of its kind (self-affinity)",
             with_pod_labels(affinity(term("service", "In", &["securityscan"], "region")), &[("service", "securityscan")]),
             vec![], OK),
            ("first pod of its kind, but it does not match its own affinity",
             affinity(term("service", "In", &["securityscan"], "region")),
             vec![], (Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY_RULES_NOT_MATCH)),
            ("node lacks the affinity topology key",
             with_pod_labels(affinity(term("service", "In", &["securityscan"], "rack")), &[("service", "securityscan")]),
             vec![], (Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY_RULES_NOT_MATCH)),
        ];
        for (name, p, pods, want) in cases {
            let snap = snapshot(node1, pods);
            assert_eq!(filter_all(p, &snap), verdicts(&[want]), "{name}");
        }
    }

    /// Upstream TestRequiredAffinityMultipleNodes: "A pod can be scheduled onto all the nodes
    /// that have the same topology key & label value with one of them has an existing pod
    /// that matches the affinity rules", and anti-affinity over zones.
    #[test]
    fn required_affinity_multiple_nodes() {
        let nodes: &[(&str, &[(&str, &str)])] = &[
            ("machine1", &[("region", "r1"), ("zone", "z11")]),
            ("machine2", &[("region", "r1"), ("zone", "z12")]),
            ("machine3", &[("region", "r2"), ("zone", "z21")]),
        ];
        let existing = on(
            with_pod_labels(pod("e", 0, 0), &[("foo", "bar")]),
            "machine1",
        );
        let snap = snapshot(nodes, vec![existing]);
        let p = with_terms(
            pod("p", 0, 0),
            Terms {
                affinity: vec![term("foo", "In", &["bar"], "region")],
                ..Default::default()
            },
        );
        assert_eq!(
            filter_all(p, &snap),
            verdicts(&[
                OK,
                OK,
                (
                    Code::UnschedulableAndUnresolvable,
                    ERR_REASON_AFFINITY_RULES_NOT_MATCH
                )
            ])
        );
        let p = with_terms(
            pod("p", 0, 0),
            Terms {
                anti: vec![term("foo", "In", &["bar"], "region")],
                ..Default::default()
            },
        );
        assert_eq!(
            filter_all(p, &snap),
            verdicts(&[
                (
                    Code::Unschedulable,
                    ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH
                ),
                (
                    Code::Unschedulable,
                    ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH
                ),
                OK
            ])
        );
    }

    fn scores(p: Pod, snap: &Snapshot) -> Option<Vec<i64>> {
        let pl = InterPodAffinity::new(&InterPodAffinityArgs::default());
        let pi = PodInfo::new(Arc::new(p));
        let mut state = CycleState::new();
        let refs: Vec<&NodeInfo> = snap.nodes().iter().collect();
        if pl.pre_score(&mut state, &pi, &refs, snap).is_skip() {
            return None;
        }
        let mut s: Vec<NodeScore> = refs
            .iter()
            .enumerate()
            .map(|(index, ni)| NodeScore {
                index,
                score: pl.score(&state, &pi, ni, snap).unwrap(),
            })
            .collect();
        pl.normalize_score(&state, &pi, &mut s);
        Some(s.iter().map(|s| s.score).collect())
    }

    /// Upstream TestPreferredAffinity cases (subset): affinity, anti-affinity, symmetry.
    #[test]
    fn preferred_affinity_scores() {
        let nodes: &[(&str, &[(&str, &str)])] = &[
            ("machine1", &[("region", "China")]),
            ("machine2", &[("region", "India")]),
            ("machine3", &[("az", "az1")]),
        ];
        let s1 = on(
            with_pod_labels(pod("s1", 0, 0), &[("security", "S1")]),
            "machine1",
        );
        let s2 = on(
            with_pod_labels(pod("s2", 0, 0), &[("security", "S2")]),
            "machine2",
        );
        let snap = snapshot(nodes, vec![s1.clone(), s2.clone()]);
        // Affinity: pod that matches topology key & pods in nodes will get high score.
        let p = with_terms(
            pod("p", 0, 0),
            Terms {
                pref_affinity: vec![(5, term("security", "In", &["S1"], "region"))],
                ..Default::default()
            },
        );
        assert_eq!(scores(p, &snap), Some(vec![100, 0, 0]));
        // Anti-affinity: pod that does not match existing pods in node will get high score.
        let p = with_terms(
            pod("p", 0, 0),
            Terms {
                pref_anti: vec![(5, term("security", "In", &["S1"], "region"))],
                ..Default::default()
            },
        );
        assert_eq!(scores(p, &snap), Some(vec![0, 100, 100]));
        // Symmetry: an existing pod's preferred affinity towards the incoming pod counts.
        let friendly = on(
            with_terms(
                pod("f", 0, 0),
                Terms {
                    pref_affinity: vec![(5, term("security", "In", &["S9"], "region"))],
                    ..Default::default()
                },
            ),
            "machine2",
        );
        let snap = snapshot(nodes, vec![s1, s2, friendly]);
        let p = with_pod_labels(pod("p", 0, 0), &[("security", "S9")]);
        assert_eq!(scores(p, &snap), Some(vec![0, 100, 0]));
        // No affinity anywhere: skipped.
        assert_eq!(scores(pod("p", 0, 0), &snapshot(nodes, vec![])), None);
    }
}
