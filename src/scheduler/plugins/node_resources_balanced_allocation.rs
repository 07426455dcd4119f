//! `NodeResourcesBalancedAllocation`: prefer nodes whose resource fractions (requested /
//! allocatable, with the pod) are close to each other: `(1 - std-dev) * 100`.
//!
//! Mirrors pkg/scheduler/framework/plugins/noderesources/balanced_allocation.go.

use super::names;
use super::resource_allocation::{ResourceAllocationScorer, Usage};
use crate::scheduler::framework::{
    CycleState, NodeScore, Plugin, PreScorePlugin, ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::scheduler::profile::BalancedAllocationArgs;
use crate::scheduler::snapshot::{NodeInfo, PodInfo, Snapshot};

pub struct BalancedAllocation {
    scorer: ResourceAllocationScorer,
}

impl BalancedAllocation {
    pub fn new(args: &BalancedAllocationArgs) -> BalancedAllocation {
        BalancedAllocation {
            scorer: ResourceAllocationScorer::new(&args.resources, true),
        }
    }
}

/// `balancedResourceScorer`. Inlined into `score_nodes`' loop with the usage it reads (it
/// was a call per node, its `Usage` passed through memory).
#[inline(always)]
pub(crate) fn balanced_resource_score(u: &Usage) -> i64 {
    let mut fractions = [0f64; super::resource_allocation::MAX_RESOURCES];
    let mut n = 0;
    let mut total = 0f64;
    for i in 0..u.len.min(super::resource_allocation::MAX_RESOURCES) {
        if u.allocatable[i] == 0 {
            continue;
        }
        let f = (u.requested[i] as f64 / u.allocatable[i] as f64).min(1.0);
        total += f;
        fractions[n] = f;
        n += 1;
    }
    let std = match n {
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n if n > 2 => {
            let mean = total / n as f64;
            let sum: f64 = fractions[..n].iter().map(|f| (f - mean) * (f - mean)).sum();
            (sum / n as f64).sqrt()
        }
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        names::NODE_RESOURCES_BALANCED_ALLOCATION
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for BalancedAllocation {
    /// Best-effort pods (no requests) are not scored, so they don't all pile onto one node
    /// (upstream kubernetes#129138).
    fn pre_score(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
    ) -> Status {
        let best_effort = self
            .scorer
            .resources
            .iter()
            .all(|r| pod.request.get(&r.name) == 0);
        if best_effort {
            return Status::skip();
        }
        Status::success()
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(
        &self,
        _state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        _snapshot: &Snapshot,
    ) -> Result<i64, Status> {
        Ok(balanced_resource_score(&self.scorer.usage(pod, node)))
    }

    /// One pass over the nodes with the pod's requests resolved once (same scores as
    /// `score`).
    fn score_nodes(
        &self,
        _state: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
        out: &mut Vec<NodeScore>,
    ) -> Result<(), Status> {
        let pr = self.scorer.pod_request(pod);
        out.extend(nodes.iter().enumerate().map(|(index, n)| NodeScore {
            index,
            score: balanced_resource_score(&pr.usage(n)),
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::scheduler::snapshot::testing::*;

    fn score(p: &k8s_openapi::api::core::v1::Pod, ni: &NodeInfo) -> i64 {
        BalancedAllocation::new(&BalancedAllocationArgs::default())
            .score(
                &CycleState::new(),
                &PodInfo::new(Arc::new(p.clone())),
                ni,
                &Snapshot::new(),
            )
            .unwrap()
    }

    /// Upstream TestNodeResourcesBalancedAllocation cases (cpu + memory).
    #[test]
    fn scores_match_upstream_cases() {
        // "nothing scheduled, resources requested, differently sized nodes":
        // pod 3000m / 5000; node1 4000m / 10000 → fractions 0.75, 0.5 → std 0.125 → 87.
        let p = pod("p", 3000, 5000);
        assert_eq!(
            score(&p, &NodeInfo::new(Arc::new(node("node1", 4000, 10000)))),
            87
        );
        assert_eq!(
            score(&p, &NodeInfo::new(Arc::new(node("node2", 6000, 10000)))),
            100
        );
        // "resources requested, pods scheduled with resources": node 10000m / 20000 with
        // 3000m / 0 and 3000m / 5000 scheduled, pod 3000m / 5000 → 0.9 vs 0.5 → 80.
        let mut ni = NodeInfo::new(Arc::new(node("node1", 10000, 20000)));
        ni.add_pod(Arc::new(PodInfo::new(Arc::new(pod("a", 3000, 0)))));
        ni.add_pod(Arc::new(PodInfo::new(Arc::new(pod("b", 3000, 5000)))));
        assert_eq!(score(&p, &ni), 80);
        // Requested beyond capacity is capped at fraction 1: 1.0 vs 0.5 → 75.
        let mut ni = NodeInfo::new(Arc::new(node("node1", 4000, 10000)));
        ni.add_pod(Arc::new(PodInfo::new(Arc::new(pod("a", 3000, 0)))));
        assert_eq!(score(&p, &ni), 75);
    }

    /// Three resources use the population standard deviation.
    #[test]
    fn three_resources_use_std_dev() {
        let u = Usage {
            requested: [1, 2, 3, 0],
            allocatable: [4, 4, 4, 0],
            len: 3,
        };
        // fractions .25 .5 .75, mean .5, var = (0.0625*2)/3, std ≈ 0.2041 → 79.
        assert_eq!(balanced_resource_score(&u), 79);
    }

    /// Best-effort pods skip the plugin.
    #[test]
    fn best_effort_pods_are_skipped() {
        let pl = BalancedAllocation::new(&BalancedAllocationArgs::default());
        let pi = PodInfo::new(Arc::new(pod("p", 0, 0)));
        assert!(pl
            .pre_score(&mut CycleState::new(), &pi, &[], &Snapshot::new())
            .is_skip());
        let pi = PodInfo::new(Arc::new(pod("p", 100, 0)));
        assert!(pl
            .pre_score(&mut CycleState::new(), &pi, &[], &Snapshot::new())
            .is_success());
    }

    /// `score_nodes` gives each node the score `score` gives it (upstream's nodes: differently
    /// sized, one with pods already placed).
    #[test]
    fn score_nodes_matches_score_per_node() {
        use crate::scheduler::framework::NodeScore;
        let plugin = BalancedAllocation::new(&BalancedAllocationArgs::default());
        let mut busy = NodeInfo::new(Arc::new(node("busy", 10000, 20000)));
        busy.add_pod(Arc::new(PodInfo::new(Arc::new(pod("e", 3000, 5000)))));
        let nodes = [
            NodeInfo::new(Arc::new(node("node1", 4000, 10000))),
            NodeInfo::new(Arc::new(node("node2", 6000, 10000))),
            busy,
            NodeInfo::new(Arc::new(node("empty", 0, 0))),
        ];
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        for p in [pod("p", 3000, 5000), pod("q", 100, 1 << 20), pod("r", 0, 0)] {
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
            assert_eq!(all, one);
        }
    }
}
