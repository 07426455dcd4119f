//! What the HTTP API reaches besides the ApiServer actor.
//!
//! kube-apiserver reaches the kubelets (`pods/log` is proxied to the node's kubelet, which
//! asks its container runtime); kubeactor's admin endpoints ([`super::admin`]) reach the
//! daemon's telemetry and its nodes. `Cluster::start` fills these in; tests that run the HTTP
//! API over a bare ApiServer leave them empty, and those endpoints then answer 404 / 503.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::kubelet::actor::NodeHandle;
use crate::telemetry::Telemetry;

/// Handles to the rest of the daemon. Cheap to clone.
#[derive(Clone, Default)]
pub struct Backends {
    /// Every node's kubelet and container runtime, by node name.
    pub nodes: Arc<BTreeMap<String, NodeHandle>>,
    /// The daemon's telemetry (its span store), when the HTTP API runs inside the daemon.
    pub telemetry: Option<Telemetry>,
}

impl Backends {
    /// The node called `name`, if this daemon runs it.
    pub fn node(&self, name: &str) -> Option<&NodeHandle> {
        self.nodes.get(name)
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("nodes", &self.nodes.keys().collect::<Vec<_>>())
            .field("telemetry", &self.telemetry.is_some())
            .finish()
    }
}
