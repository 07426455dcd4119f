//! The in-tree plugins, one file each, with upstream's names and reason strings.
//! Mirrors pkg/scheduler/framework/plugins (and its `names` package and registry).

pub mod default_binder;
pub mod default_preemption;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_balanced_allocation;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
mod resource_allocation;
pub mod taint_toleration;

use std::sync::Arc;

use super::framework::Plugin;
use super::profile::PluginConfig;

/// Plugin names (pkg/scheduler/framework/plugins/names).
pub mod names {
    pub const NODE_UNSCHEDULABLE: &str = "NodeUnschedulable";
    pub const NODE_NAME: &str = "NodeName";
    pub const NODE_PORTS: &str = "NodePorts";
    pub const NODE_RESOURCES_FIT: &str = "NodeResourcesFit";
    pub const NODE_RESOURCES_BALANCED_ALLOCATION: &str = "NodeResourcesBalancedAllocation";
    pub const TAINT_TOLERATION: &str = "TaintToleration";
    pub const NODE_AFFINITY: &str = "NodeAffinity";
    pub const INTER_POD_AFFINITY: &str = "InterPodAffinity";
    pub const POD_TOPOLOGY_SPREAD: &str = "PodTopologySpread";
    pub const IMAGE_LOCALITY: &str = "ImageLocality";
    pub const DEFAULT_BINDER: &str = "DefaultBinder";
    pub const DEFAULT_PREEMPTION: &str = "DefaultPreemption";
}

/// Instantiate a plugin by name with the profile's arguments (the in-tree registry).
pub fn new_plugin(name: &str, cfg: &PluginConfig) -> Option<Arc<dyn Plugin>> {
    Some(match name {
        names::NODE_UNSCHEDULABLE => Arc::new(node_unschedulable::NodeUnschedulable),
        names::NODE_NAME => Arc::new(node_name::NodeName),
        names::NODE_PORTS => Arc::new(node_ports::NodePorts),
        names::NODE_RESOURCES_FIT => Arc::new(node_resources_fit::NodeResourcesFit::new(
            &cfg.node_resources_fit,
        )),
        names::NODE_RESOURCES_BALANCED_ALLOCATION => {
            Arc::new(node_resources_balanced_allocation::BalancedAllocation::new(
                &cfg.node_resources_balanced_allocation,
            ))
        }
        names::TAINT_TOLERATION => Arc::new(taint_toleration::TaintToleration),
        names::NODE_AFFINITY => Arc::new(node_affinity::NodeAffinity),
        names::INTER_POD_AFFINITY => Arc::new(inter_pod_affinity::InterPodAffinity::new(
            &cfg.inter_pod_affinity,
        )),
        names::POD_TOPOLOGY_SPREAD => Arc::new(pod_topology_spread::PodTopologySpread::new(
            &cfg.pod_topology_spread,
        )),
        names::IMAGE_LOCALITY => Arc::new(image_locality::ImageLocality),
        names::DEFAULT_BINDER => Arc::new(default_binder::DefaultBinder),
        names::DEFAULT_PREEMPTION => Arc::new(default_preemption::DefaultPreemption),
        _ => return None,
    })
}
