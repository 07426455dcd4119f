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
        self.pod_request(pod).usage(node)
    }

    /// The pod's side of [`ResourceAllocationScorer::usage`], worked out once per scoring
    /// cycle: a plugin's `score_nodes` then reads only the node's numbers per node (no
    /// strategy or resource-name lookups, no `Vec` reads).
    pub fn pod_request(&self, pod: &PodInfo) -> PodRequest {
        let pod_req = if self.use_requested {
            &pod.request
        } else {
            &pod.non_zero_request
        };
        let mut r = PodRequest {
            kinds: [Scored::Cpu; MAX_RESOURCES],
            request: [0; MAX_RESOURCES],
            weights: [0; MAX_RESOURCES],
            len: self.kinds.len(),
            use_requested: self.use_requested,
        };
        for (i, &k) in self.kinds.iter().enumerate() {
            r.kinds[i] = k;
            r.request[i] = k.get(pod_req);
            r.weights[i] = self.resources[i].weight;
        }
        r
    }
}

/// One pod's requests per scored resource, with the resources' weights
/// ([`ResourceAllocationScorer::pod_request`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PodRequest {
    kinds: [Scored; MAX_RESOURCES],
    request: [i64; MAX_RESOURCES],
    /// The configured weight of each scored resource.
    pub weights: [i64; MAX_RESOURCES],
    len: usize,
    use_requested: bool,
}

impl PodRequest {
    /// [`ResourceAllocationScorer::usage`] on `node` for this pod. Inlined into each
    /// plugin's per-node loop, so the `Usage` lives in registers instead of being returned
    /// through memory per node.
    #[inline(always)]
    pub fn usage(&self, node: &NodeInfo) -> Usage {
        self.usage_of::<MAX_RESOURCES>(node, self.len)
    }

    /// How many resources are scored (at most [`MAX_RESOURCES`]).
    pub fn len(&self) -> usize {
        self.len.min(MAX_RESOURCES)
    }

    /// [`PodRequest::usage`] when [`PodRequest::len`] is `N`: a per-node loop dispatched on
    /// the count once per pod (`score_each`) has its resource loops unrolled.
    #[inline(always)]
    pub fn usage_n<const N: usize>(&self, node: &NodeInfo) -> Usage {
        debug_assert_eq!(self.len(), N);
        self.usage_of::<N>(node, N)
    }

    #[inline(always)]
    fn usage_of<const N: usize>(&self, node: &NodeInfo, len: usize) -> Usage {
        let len = len.min(N).min(MAX_RESOURCES);
        let mut u = Usage {
            len,
            ..Default::default()
        };
        let node_req = if self.use_requested {
            &node.requested
        } else {
            &node.non_zero_requested
        };
        for i in 0..len {
            let k = self.kinds[i];
            let alloc = k.get(&node.allocatable);
            if alloc == 0 {
                continue;
            }
            // Ephemeral storage has no scoring default: its requests count as they are.
            let used = if k == Scored::EphemeralStorage {
                node.requested.ephemeral_storage
            } else {
                k.get(node_req)
            };
            u.allocatable[i] = alloc;
            u.requested[i] = used + self.request[i];
        }
        u
    }
}
