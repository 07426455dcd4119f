//! The node lifecycle controller: notices nodes whose kubelet stopped renewing its Lease and
//! posting status, marks them Unknown and taints them. Mirrors
//! pkg/controller/nodelifecycle (kube-controller-manager's `node-lifecycle-controller`).
//!
//! * [`health`] — the decisions, as plain functions: `tryUpdateNodeHealth`, the taints a
//!   Ready condition calls for, `MarkPodsNotReady`'s per-pod step;
//! * [`controller`] — the actor: `monitorNodeHealth` every `node_monitor_period`.
//!
//! Evicting the pods of a tainted node is the taint-eviction controller's job
//! ([`crate::controllers::tainteviction`]), as upstream since 1.29.

use std::time::Duration;

pub mod controller;
pub mod health;

pub use controller::NodeLifecycleController;

/// The events' source component, as upstream (`node-controller`).
pub const COMPONENT: &str = "node-controller";

/// Tunables, in simulated time (the controller's clock scales them).
#[derive(Clone, Debug)]
pub struct NodeLifecycleOptions {
    /// `--node-monitor-period` (5 s): how often node health is checked.
    pub monitor_period: Duration,
    /// `--node-monitor-grace-period` (40 s): how long a node may be silent before it is
    /// marked Unknown.
    pub grace_period: Duration,
}

impl Default for NodeLifecycleOptions {
    fn default() -> Self {
        NodeLifecycleOptions {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(40),
        }
    }
}

impl From<&crate::config::ControllersConfig> for NodeLifecycleOptions {
    fn from(c: &crate::config::ControllersConfig) -> Self {
        let secs = |v: f64| Duration::try_from_secs_f64(v).unwrap_or(Duration::from_secs(1));
        NodeLifecycleOptions {
            monitor_period: secs(c.node_monitor_period_seconds),
            grace_period: secs(c.node_monitor_grace_period_seconds),
        }
    }
}
