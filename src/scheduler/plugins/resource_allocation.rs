//! The scorer NodeResourcesFit and NodeResourcesBalancedAllocation share: for each scored
//! resource, what the node would have requested with the pod on it, and its allocatable.
//!
//! Mirrors pkg/scheduler/framework/plugins/noderesources/resource_allocation.go.

use crate::scheduler::profile::ResourceSpec;
use crate::scheduler::snapshot::{NodeInfo, PodInfo};

/// Most resources a strategy scores (cpu, memory, ephemeral-storage, pods).
pub(crate) const MAX_RESOURCES: usize = 4;

/// Requested and allocatable per scored resource (fixed arrays: no allocation per node).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    pub requested: [i64; MAX_RESOURCES],
    pub allocatable: [i64; MAX_RESOURCES],
    pub len: usize,
}

pub(crate) struct ResourceAllocationScorer {
    /// Scored resources (unknown names are dropped: extended resources are not modelled).
    pub resources: Vec<ResourceSpec>,
    /// true: count requests as they are (BalancedAllocation); false: with the non-zero
    /// defaults for containers that request nothing (the Fit strategies).
    pub use_requested: bool,
}

impl ResourceAllocationScorer {
    pub fn new(resources: &[ResourceSpec], use_requested: bool) -> ResourceAllocationScorer {
        let mut rs: Vec<ResourceSpec> = resources
            .iter()
            .filter(|r| matches!(r.name.as_str(), "cpu" | "memory" | "ephemeral-storage"))
            .cloned()
            .collect();
        rs.truncate(MAX_RESOURCES);
        ResourceAllocationScorer {
            resources: rs,
            use_requested,
        }
    }

    /// Mirrors `calculateResourceAllocatableRequest` for every scored resource. A resource
    /// the node does not have (allocatable 0) is left at 0/0, and strategies skip it.
    pub fn usage(&self, pod: &PodInfo, node: &NodeInfo) -> Usage {
        let mut u = Usage {
            len: self.resources.len(),
            ..Default::default()
        };
        let (node_req, pod_req) = if self.use_requested {
            (&node.requested, &pod.request)
        } else {
            (&node.non_zero_requested, &pod.non_zero_request)
        };
        for (i, r) in self.resources.iter().enumerate() {
            let alloc = node.allocatable.get(&r.name);
            if alloc == 0 {
                continue;
            }
            let req = if r.name == "ephemeral-storage" {
                node.requested.ephemeral_storage + pod_req.ephemeral_storage
            } else {
                node_req.get(&r.name) + pod_req.get(&r.name)
            };
            u.allocatable[i] = alloc;
            u.requested[i] = req;
        }
        u
    }
}
