//! `NodeResourcesFit`: the node must have room for the pod's requests (cpu, memory,
//! ephemeral-storage, and one more pod); score by a strategy: `LeastAllocated` (default),
//! `MostAllocated` or `RequestedToCapacityRatio`.
//!
//! Mirrors pkg/scheduler/framework/plugins/noderesources/fit.go, least_allocated.go,
//! most_allocated.go, requested_to_capacity_ratio.go and plugins/helper/shape_score.go.

use std::borrow::Cow;

use super::names;
use super::resource_allocation::{PodRequest, ResourceAllocationScorer, Usage, MAX_RESOURCES};
use crate::scheduler::framework::{
    Code, CycleState, FilterPlugin, NodeScore, Plugin, ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::scheduler::profile::{NodeResourcesFitArgs, ScoringStrategyType, UtilizationShapePoint};
use crate::scheduler::snapshot::{NodeInfo, PodInfo, Snapshot};

/// Scores in a RequestedToCapacityRatio shape go up to this (`MaxCustomPriorityScore`).
pub const MAX_CUSTOM_PRIORITY_SCORE: i64 = 10;
/// Utilization is a percentage (`maxUtilization`).
const MAX_UTILIZATION: i64 = 100;

/// Why a pod does not fit, per resource (`InsufficientResource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsufficientResource {
    pub resource: &'static str,
    pub reason: &'static str,
    pub requested: i64,
    pub used: i64,
    pub capacity: i64,
    /// The pod asks for more than the node's whole allocatable: evicting pods cannot help.
    pub unresolvable: bool,
}

/// Mirrors `fitsRequest`: every resource the node lacks for the pod.
pub fn fits_request(pod: &PodInfo, node: &NodeInfo) -> Vec<InsufficientResource> {
    let mut out = Vec::new();
    let req = &pod.request;
    let alloc = &node.allocatable;
    let used = &node.requested;
    if node.pods.len() as i64 + 1 > alloc.allowed_pod_number {
        out.push(InsufficientResource {
            resource: "pods",
            reason: "Too many pods",
            requested: 1,
            used: node.pods.len() as i64,
            capacity: alloc.allowed_pod_number,
            unresolvable: false,
        });
    }
    if req.milli_cpu == 0 && req.memory == 0 && req.ephemeral_storage == 0 {
        return out;
    }
    let mut check = |resource, reason, r: i64, a: i64, u: i64| {
        if r > 0 && r > a - u {
            out.push(InsufficientResource {
                resource,
                reason,
                requested: r,
                used: u,
                capacity: a,
                unresolvable: r > a,
            });
        }
    };
    check(
        "cpu",
        "Insufficient cpu",
        req.milli_cpu,
        alloc.milli_cpu,
        used.milli_cpu,
    );
    check(
        "memory",
        "Insufficient memory",
        req.memory,
        alloc.memory,
        used.memory,
    );
    check(
        "ephemeral-storage",
        "Insufficient ephemeral-storage",
        req.ephemeral_storage,
        alloc.ephemeral_storage,
        used.ephemeral_storage,
    );
    out
}

/// Whether [`fits_request`] would find nothing missing, without building its list.
fn fits(pod: &PodInfo, node: &NodeInfo) -> bool {
    let (req, alloc, used) = (&pod.request, &node.allocatable, &node.requested);
    let ok = |r: i64, a: i64, u: i64| r <= 0 || r <= a - u;
    (node.pods.len() as i64) < alloc.allowed_pod_number
        && ok(req.milli_cpu, alloc.milli_cpu, used.milli_cpu)
        && ok(req.memory, alloc.memory, used.memory)
        && ok(
            req.ephemeral_storage,
            alloc.ephemeral_storage,
            used.ephemeral_storage,
        )
}

/// The scoring function of the configured strategy.
enum Strategy {
    Least,
    Most,
    /// Shape with scores already scaled to `MAX_NODE_SCORE`.
    RequestedToCapacityRatio(Vec<UtilizationShapePoint>),
}

pub struct NodeResourcesFit {
    scorer: ResourceAllocationScorer,
    strategy: Strategy,
}

impl NodeResourcesFit {
    pub fn new(args: &NodeResourcesFitArgs) -> NodeResourcesFit {
        let s = &args.scoring_strategy;
        let strategy = match s.kind {
            ScoringStrategyType::LeastAllocated => Strategy::Least,
            ScoringStrategyType::MostAllocated => Strategy::Most,
            ScoringStrategyType::RequestedToCapacityRatio => Strategy::RequestedToCapacityRatio(
                s.shape
                    .iter()
                    .map(|p| UtilizationShapePoint {
                        utilization: p.utilization,
                        score: p.score * (MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE),
                    })
                    .collect(),
            ),
        };
        NodeResourcesFit {
            scorer: ResourceAllocationScorer::new(&s.resources, false),
            strategy,
        }
    }

    fn score_usage(&self, weights: &[i64; MAX_RESOURCES], u: &Usage) -> i64 {
        match &self.strategy {
            Strategy::Least => weighted_average(weights, u, least_requested_score),
            Strategy::Most => weighted_average(weights, u, most_requested_score),
            Strategy::RequestedToCapacityRatio(shape) => {
                requested_to_capacity_ratio_score(weights, u, shape)
            }
        }
    }

    /// Score every node with the strategy chosen once (the loop per strategy inlines the
    /// per-resource function), from the pod's requests worked out once.
    fn score_all(&self, pr: &PodRequest, nodes: &[&NodeInfo], out: &mut Vec<NodeScore>) {
        let w = &pr.weights;
        match &self.strategy {
            Strategy::Least => score_each(pr, nodes, out, |u| {
                weighted_average(w, u, least_requested_score)
            }),
            Strategy::Most => score_each(pr, nodes, out, |u| {
                weighted_average(w, u, most_requested_score)
            }),
            Strategy::RequestedToCapacityRatio(shape) => score_each(pr, nodes, out, |u| {
                requested_to_capacity_ratio_score(w, u, shape)
            }),
        }
    }
}

/// `f` of each node's usage with the pod, in order. The number of scored resources is
/// dispatched on once, so the per-node loops over them are unrolled (the default profile
/// scores two: cpu and memory).
#[inline]
fn score_each(
    pr: &PodRequest,
    nodes: &[&NodeInfo],
    out: &mut Vec<NodeScore>,
    f: impl Fn(&Usage) -> i64,
) {
    match pr.len() {
        1 => score_each_n::<1>(pr, nodes, out, f),
        2 => score_each_n::<2>(pr, nodes, out, f),
        3 => score_each_n::<3>(pr, nodes, out, f),
        _ => out.extend(nodes.iter().enumerate().map(|(index, n)| NodeScore {
            index,
            score: f(&pr.usage(n)),
        })),
    }
}

#[inline(always)]
fn score_each_n<const N: usize>(
    pr: &PodRequest,
    nodes: &[&NodeInfo],
    out: &mut Vec<NodeScore>,
    f: impl Fn(&Usage) -> i64,
) {
    out.extend(nodes.iter().enumerate().map(|(index, n)| NodeScore {
        index,
        score: f(&pr.usage_n::<N>(n)),
    }));
}

/// `leastResourceScorer` / `mostResourceScorer`: per-resource scores averaged by weight
/// (integer division, as upstream).
// `i` indexes three parallel arrays (requested, allocatable, weights).
#[allow(clippy::needless_range_loop)]
#[inline]
fn weighted_average(weights: &[i64; MAX_RESOURCES], u: &Usage, f: impl Fn(i64, i64) -> i64) -> i64 {
    let (mut node_score, mut weight_sum) = (0i64, 0i64);
    for i in 0..u.len.min(MAX_RESOURCES) {
        if u.allocatable[i] == 0 {
            continue;
        }
        let w = weights[i];
        node_score += f(u.requested[i], u.allocatable[i]) * w;
        weight_sum += w;
    }
    if weight_sum == 0 {
        0
    } else {
        node_score / weight_sum
    }
}

/// `leastRequestedScore`: `(capacity - requested) * 100 / capacity`, 0 when over capacity.
pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// `mostRequestedScore`: `requested * 100 / capacity`, capped at capacity.
pub fn most_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

/// `helper.BuildBrokenLinearFunction`: piecewise-linear interpolation over the shape.
pub fn broken_linear(shape: &[UtilizationShapePoint], p: i64) -> i64 {
    for (i, pt) in shape.iter().enumerate() {
        if p <= pt.utilization {
            if i == 0 {
                return shape[0].score;
            }
            let prev = shape[i - 1];
            return prev.score
                + (pt.score - prev.score) * (p - prev.utilization)
                    / (pt.utilization - prev.utilization);
        }
    }
    shape.last().map(|p| p.score).unwrap_or(0)
}

/// `buildRequestedToCapacityRatioScorerFunction`: only resources scoring > 0 count, and the
/// average is rounded.
// `i` indexes three parallel arrays (requested, allocatable, weights).
#[allow(clippy::needless_range_loop)]
fn requested_to_capacity_ratio_score(
    weights: &[i64; MAX_RESOURCES],
    u: &Usage,
    shape: &[UtilizationShapePoint],
) -> i64 {
    let (mut node_score, mut weight_sum) = (0i64, 0i64);
    for i in 0..u.len {
        let (req, cap) = (u.requested[i], u.allocatable[i]);
        if cap == 0 {
            continue;
        }
        let s = if req > cap {
            broken_linear(shape, MAX_UTILIZATION)
        } else {
            broken_linear(shape, req * MAX_UTILIZATION / cap)
        };
        if s > 0 {
            let w = weights[i];
            node_score += s * w;
            weight_sum += w;
        }
    }
    if weight_sum == 0 {
        return 0;
    }
    (node_score as f64 / weight_sum as f64).round() as i64
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        names::NODE_RESOURCES_FIT
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeResourcesFit {
    /// The pod fits (the same check `filter` starts with).
    fn passes_fast(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> bool {
        fits(pod, node)
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if fits(pod, node) {
            return Status::success(); // the common case, without building the reasons
        }
        let insufficient = fits_request(pod, node);
        if insufficient.is_empty() {
            return Status::success();
        }
        let code = if insufficient.iter().any(|r| r.unresolvable) {
            Code::UnschedulableAndUnresolvable
        } else {
            Code::Unschedulable
        };
        Status::with_reasons(
            code,
            insufficient
                .iter()
                .map(|r| Cow::Borrowed(r.reason))
                .collect(),
        )
    }
}

impl ScorePlugin for NodeResourcesFit {
    fn score(
        &self,
        _state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        _snapshot: &Snapshot,
    ) -> Result<i64, Status> {
        let pr = self.scorer.pod_request(pod);
        Ok(self.score_usage(&pr.weights, &pr.usage(node)))
    }

    /// One pass over the nodes: the pod's requests and the strategy are resolved once, and
    /// each node costs a few loads and the strategy's arithmetic (same scores as `score`).
    fn score_nodes(
        &self,
        _state: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
        out: &mut Vec<NodeScore>,
    ) -> Result<(), Status> {
        self.score_all(&self.scorer.pod_request(pod), nodes, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;
    use crate::scheduler::profile::{ResourceSpec, ScoringStrategy};
    use crate::scheduler::snapshot::testing::*;

    fn args(kind: ScoringStrategyType, shape: &[(i64, i64)]) -> NodeResourcesFitArgs {
        NodeResourcesFitArgs {
            scoring_strategy: ScoringStrategy {
                kind,
                resources: vec![
                    ResourceSpec {
                        name: "cpu".into(),
                        weight: 1,
                    },
                    ResourceSpec {
                        name: "memory".into(),
                        weight: 1,
                    },
                ],
                shape: shape
                    .iter()
                    .map(|&(utilization, score)| UtilizationShapePoint { utilization, score })
                    .collect(),
            },
        }
    }

    /// The upstream test pod: two containers, cpu 1000m + 2000m, memory 2000 + 3000.
    fn cpu_and_memory_pod() -> Pod {
        let c = |cpu: &str, mem: &str| Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity(cpu.into())),
                    ("memory".to_string(), Quantity(mem.into())),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        Pod {
            spec: Some(PodSpec {
                containers: vec![c("1000m", "2000"), c("2000m", "3000")],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn score(plugin: &NodeResourcesFit, pod: &Pod, n: NodeInfo) -> i64 {
        let pi = PodInfo::new(Arc::new(pod.clone()));
        plugin
            .score(&CycleState::new(), &pi, &n, &Snapshot::new())
            .unwrap()
    }

    /// Upstream "nothing scheduled, resources requested, differently sized nodes" for each
    /// strategy: node1 (4000m, 10000) and node2 (6000m, 10000).
    #[test]
    fn strategy_scores_match_upstream_cases() {
        let p = cpu_and_memory_pod();
        let cases: &[(&str, NodeResourcesFitArgs, [i64; 2])] = &[
            (
                "LeastAllocated",
                args(ScoringStrategyType::LeastAllocated, &[]),
                [37, 50],
            ),
            (
                "MostAllocated",
                args(ScoringStrategyType::MostAllocated, &[]),
                [62, 50],
            ),
            (
                "RequestedToCapacityRatio (least-like shape)",
                args(
                    ScoringStrategyType::RequestedToCapacityRatio,
                    &[(0, 10), (100, 0)],
                ),
                [38, 50],
            ),
            (
                "RequestedToCapacityRatio (most-like shape)",
                args(
                    ScoringStrategyType::RequestedToCapacityRatio,
                    &[(0, 0), (100, 10)],
                ),
                [63, 50],
            ),
        ];
        for (name, a, want) in cases {
            let plugin = NodeResourcesFit::new(a);
            let got = [
                score(
                    &plugin,
                    &p,
                    NodeInfo::new(Arc::new(node("node1", 4000, 10000))),
                ),
                score(
                    &plugin,
                    &p,
                    NodeInfo::new(Arc::new(node("node2", 6000, 10000))),
                ),
            ];
            assert_eq!(got, *want, "{name}");
        }
    }

    /// `score_nodes` (one pass, the pod's requests resolved once) gives each node the score
    /// `score` gives it, for every strategy, on upstream's nodes (differently sized, one with
    /// pods already placed, one without ephemeral storage).
    #[test]
    fn score_nodes_matches_score_per_node() {
        let mut busy = NodeInfo::new(Arc::new(node("busy", 10000, 20000)));
        busy.add_pod(Arc::new(PodInfo::new(Arc::new(cpu_and_memory_pod()))));
        let nodes = [
            NodeInfo::new(Arc::new(node("node1", 4000, 10000))),
            NodeInfo::new(Arc::new(node("node2", 6000, 10000))),
            busy,
            NodeInfo::new(Arc::new(node("big", 10000, 1 << 30))),
            NodeInfo::new(Arc::new(node("empty", 0, 0))),
        ];
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let strategies = [
            args(ScoringStrategyType::LeastAllocated, &[]),
            args(ScoringStrategyType::MostAllocated, &[]),
            args(
                ScoringStrategyType::RequestedToCapacityRatio,
                &[(0, 10), (100, 0)],
            ),
            args(
                ScoringStrategyType::RequestedToCapacityRatio,
                &[(0, 0), (50, 7), (100, 10)],
            ),
        ];
        for a in &strategies {
            let plugin = NodeResourcesFit::new(a);
            for p in [cpu_and_memory_pod(), pod("p", 0, 0), pod("q", 500, 1 << 20)] {
                let pi = PodInfo::new(Arc::new(p));
                let (state, snap) = (CycleState::new(), Snapshot::new());
                let mut all = Vec::new();
                plugin
                    .score_nodes(&state, &pi, &refs, &snap, &mut all)
                    .unwrap();
                let one: Vec<NodeScore> = refs
                    .iter()
                    .enumerate()
                    .map(|(index, n)| NodeScore {
                        index,
                        score: plugin.score(&state, &pi, n, &snap).unwrap(),
                    })
                    .collect();
                assert_eq!(all, one, "{:?}", a.scoring_strategy.kind);
            }
        }
    }

    /// Upstream "no resources requested, pods scheduled with resources": the non-zero
    /// defaults (100m, 200 MB) count for pods without requests when scoring.
    #[test]
    fn least_allocated_counts_existing_pods_and_defaults() {
        let plugin = NodeResourcesFit::new(&args(ScoringStrategyType::LeastAllocated, &[]));
        // Existing 3000m / 5000 on node1 (10000m, 20000); empty pod → 100m + 200 MB defaults.
        let mut n1 = NodeInfo::new(Arc::new(node("node1", 10000, 20000)));
        n1.add_pod(Arc::new(PodInfo::new(Arc::new(cpu_and_memory_pod()))));
        // cpu (10000-3100)*100/10000 = 69; memory requested 5000+200Mi > 20000 → 0.
        assert_eq!(score(&plugin, &pod("p", 0, 0), n1), 34);
        // A big node where the memory default fits.
        let n2 = NodeInfo::new(Arc::new(node("node2", 10000, 1 << 30)));
        // cpu (10000-100)*100/10000 = 99; memory (1Gi-200Mi)*100/1Gi = 80 → 89.
        assert_eq!(score(&plugin, &pod("p", 0, 0), n2), 89);
    }

    /// `broken_linear` interpolates between shape points (upstream TestBrokenLinearFunction).
    #[test]
    fn broken_linear_function() {
        let shape = |pts: &[(i64, i64)]| -> Vec<UtilizationShapePoint> {
            pts.iter()
                .map(|&(utilization, score)| UtilizationShapePoint { utilization, score })
                .collect()
        };
        let s = shape(&[(10, 1), (90, 9)]);
        let cases = [
            (-10, 1),
            (0, 1),
            (9, 1),
            (10, 1),
            (15, 1),
            (19, 1),
            (20, 2),
            (89, 8),
            (90, 9),
            (99, 9),
            (100, 9),
            (110, 9),
        ];
        for (p, want) in cases {
            assert_eq!(broken_linear(&s, p), want, "p={p}");
        }
        let s = shape(&[(0, 2), (40, 10), (100, 0)]);
        let cases = [
            (-10, 2),
            (0, 2),
            (20, 6),
            (30, 8),
            (40, 10),
            (70, 5),
            (100, 0),
            (110, 0),
        ];
        for (p, want) in cases {
            assert_eq!(broken_linear(&s, p), want, "p={p}");
        }
    }

    /// Filter verdicts (upstream TestEnoughRequests subset), including the reasons, the
    /// pod-count limit, and Unresolvable when the pod exceeds the whole node.
    #[test]
    fn filter_verdicts() {
        let plugin = NodeResourcesFit::new(&NodeResourcesFitArgs::default());
        struct Case {
            name: &'static str,
            pod: Pod,
            existing: Vec<Pod>,
            node: (i64, i64, i64), // cpu, memory, pods
            code: Code,
            reasons: &'static [&'static str],
        }
        let cases = vec![
            Case { name: "no resources requested always fits", pod: pod("p", 0, 0), existing: vec![pod("e", 10, 20)], node: (10, 20, 32), code: Code::Success, reasons: &[] },
            Case { name: "too many resources fails", pod: pod("p", 1, 1), existing: vec![pod("e", 10, 20)], node: (10, 20, 32), code: Code::Unschedulable, reasons: &["Insufficient cpu", "Insufficient memory"] },
            Case { name: "equal edge case", pod: pod("p", 5, 19), existing: vec![pod("e", 5, 1)], node: (10, 20, 32), code: Code::Success, reasons: &[] },
            Case { name: "one resource memory fits", pod: pod("p", 2, 1), existing: vec![pod("e", 9, 5)], node: (10, 20, 32), code: Code::Unschedulable, reasons: &["Insufficient cpu"] },
            Case { name: "one resource cpu fits", pod: pod("p", 1, 2), existing: vec![pod("e", 5, 19)], node: (10, 20, 32), code: Code::Unschedulable, reasons: &["Insufficient memory"] },
            Case { name: "even without specified resources, predicate fails when there's no space for additional pod", pod: pod("p", 0, 0), existing: vec![pod("e", 10, 10)], node: (10, 20, 1), code: Code::Unschedulable, reasons: &["Too many pods"] },
            Case { name: "request larger than the whole node is unresolvable", pod: pod("p", 11, 1), existing: vec![], node: (10, 20, 32), code: Code::UnschedulableAndUnresolvable, reasons: &["Insufficient cpu"] },
        ];
        for c in cases {
            let n = with_pods_limit(node("n1", c.node.0, c.node.1), c.node.2);
            let mut ni = NodeInfo::new(Arc::new(n));
            for e in c.existing {
                ni.add_pod(Arc::new(PodInfo::new(Arc::new(e))));
            }
            let pi = PodInfo::new(Arc::new(c.pod));
            let s = plugin.filter(&CycleState::new(), &pi, &ni);
            assert_eq!(s.code(), c.code, "{}", c.name);
            // The fast path agrees with the verdict both ways here (fit is its only check).
            let fast = plugin.passes_fast(&CycleState::new(), &pi, &ni);
            assert_eq!(fast, s.is_success(), "{}: fast path", c.name);
            let reasons: Vec<&str> = s.reasons().iter().map(|r| r.as_ref()).collect();
            assert_eq!(reasons, c.reasons, "{}", c.name);
        }
    }
}
