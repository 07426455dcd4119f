//! `DefaultPreemption`: when no node fits, find a node where evicting lower-priority pods
//! would make room, and say which pods (the victims). When there is none, produce upstream's
//! message, e.g. `preemption: 0/3 nodes are available: 3 Preemption is not helpful for
//! scheduling.`
//!
//! Mirrors pkg/scheduler/framework/plugins/defaultpreemption/default_preemption.go and
//! pkg/scheduler/framework/preemption/preemption.go (`Preempt`, `findCandidates`,
//! `nodesWherePreemptionMightHelp`, `SelectVictimsOnNode`, `pickOneNodeForPreemption`).
//!
//! Simplifications (real preemption "may wait"): PodDisruptionBudgets are not consulted;
//! the dry run reuses the cycle's PreFilter state instead of updating it with
//! AddPod/RemovePod (so InterPodAffinity / PodTopologySpread see the victims as present);
//! the candidate is chosen by the first three of upstream's criteria; the caller evicts.

use std::sync::Arc;

use super::names;
use crate::scheduler::framework::{
    Code, Diagnosis, FitError, NodeToStatus, Plugin, PostFilterContext, PostFilterPlugin,
    PostFilterResult, Status,
};
use crate::scheduler::snapshot::{NodeInfo, PodInfo};

/// Reason for nodes where evicting pods cannot help.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Reason for nodes without lower-priority pods.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

pub struct DefaultPreemption;

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        names::DEFAULT_PREEMPTION
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

/// A node where preemption works, and what it costs.
struct Candidate {
    node: String,
    victims: Vec<Arc<PodInfo>>,
}

/// `SelectVictimsOnNode`: remove every lower-priority pod; if the pod then fits, add them
/// back most important first, keeping as victims only those that must go.
fn select_victims_on_node(
    cx: &PostFilterContext<'_>,
    node: &NodeInfo,
) -> Result<Vec<Arc<PodInfo>>, Status> {
    let pod = cx.pod;
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(NO_VICTIMS));
    }
    let mut ni = node.clone();
    for p in &potential {
        ni.remove_pod(&p.key);
    }
    let s = cx.framework.run_filter_plugins(cx.state, pod, &ni);
    if !s.is_success() {
        return Err(s);
    }
    // Most important first: higher priority, then (as a stand-in for start time) key order.
    potential.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.key.cmp(&b.key)));
    let mut victims = Vec::new();
    for p in potential {
        ni.add_pod(p.clone());
        if !cx
            .framework
            .run_filter_plugins(cx.state, pod, &ni)
            .is_success()
        {
            ni.remove_pod(&p.key);
            victims.push(p);
        }
    }
    Ok(victims)
}

/// `pickOneNodeForPreemption` (first criteria): the lowest highest-victim priority, then the
/// smallest sum of victim priorities, then the fewest victims, then the first found.
fn pick_one(candidates: Vec<Candidate>) -> Option<Candidate> {
    candidates.into_iter().min_by_key(|c| {
        let highest = c
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = c.victims.iter().map(|v| v.priority as i64).sum();
        (highest, sum, c.victims.len())
    })
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(&self, cx: &PostFilterContext<'_>) -> (Option<PostFilterResult>, Status) {
        let policy = cx
            .pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.preemption_policy.as_deref());
        if policy == Some("Never") {
            return (
                None,
                Status::unschedulable("preemption: not eligible due to preemptionPolicy=Never."),
            );
        }
        let mut statuses = NodeToStatus::default();
        statuses.set_absent_nodes_status(Status::unresolvable(PREEMPTION_NOT_HELPFUL));
        let mut candidates = Vec::new();
        // nodesWherePreemptionMightHelp: skip nodes rejected as unresolvable.
        for ni in cx.snapshot.nodes() {
            if cx.statuses.get(ni.name()).code() == Code::UnschedulableAndUnresolvable {
                continue;
            }
            match select_victims_on_node(cx, ni) {
                Ok(victims) => candidates.push(Candidate {
                    node: ni.name().to_string(),
                    victims,
                }),
                Err(s) => statuses.set(ni.name().to_string(), s),
            }
        }
        match pick_one(candidates) {
            Some(c) => (
                Some(PostFilterResult {
                    nominated_node_name: Some(c.node),
                    victims: c.victims.iter().map(|v| v.key.clone()).collect(),
                }),
                Status::success(),
            ),
            None => {
                let fit = FitError {
                    pod: cx.pod.key.clone(),
                    num_all_nodes: cx.snapshot.len(),
                    diagnosis: Diagnosis {
                        node_to_status: statuses,
                        ..Default::default()
                    },
                };
                (None, Status::unschedulable(format!("preemption: {fit}")))
            }
        }
    }
}
