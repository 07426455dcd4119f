//! The scorer NodeResourcesFit and NodeResourcesBalancedAllocation share: for each scored
//! resource, what the node would have requested with the pod on it, and its allocatable.
//!
//! Mirrors pkg/scheduler/framework/plugins/noderesources/resource_allocation.go.

use crate::scheduler::profile::ResourceSpec;
use crate::scheduler::resource::Resource;
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

/// A scored resource, resolved from its name once (not per node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scored {
    Cpu,
    Memory,
    EphemeralStorage,
}

impl Scored {
    fn of(name: &str) -> Option<Scored> {
        match name {
            "cpu" => Some(Scored::Cpu),
            "memory" => Some(Scored::Memory),
            "ephemeral-storage" => Some(Scored::EphemeralStorage),
            _ => None,
        }
    }

    fn get(self, r: &Resource) -> i64 {
        match self {
            Scored::Cpu => r.milli_cpu,
            Scored::Memory => r.memory,
            Scored::EphemeralStorage => r.ephemeral_storage,
        }
    }
}

pub(crate) struct ResourceAllocationScorer {
    /// Scored resources (unknown names are dropped: extended resources are not modelled).
    pub resources: Vec<ResourceSpec>,
    /// `resources`, resolved: scoring a node compares no strings.
    kinds: Vec<Scored>,
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
            kinds: rs.iter().filter_map(|r| Scored::of(&r.name)).collect(),
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
        for (i, &k) in self.kinds.iter().enumerate() {
            let alloc = k.get(&node.allocatable);
            if alloc == 0 {
                continue;
            }
            let req = if k == Scored::EphemeralStorage {
                node.requested.ephemeral_storage + pod_req.ephemeral_storage
            } else {
                k.get(node_req) + k.get(pod_req)
            };
            u.allocatable[i] = alloc;
            u.requested[i] = req;
        }
        u
    }
}
