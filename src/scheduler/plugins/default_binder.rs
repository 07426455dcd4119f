//! `DefaultBinder`: bind the pod through the API server's `pods/binding` subresource.
//!
//! Mirrors pkg/scheduler/framework/plugins/defaultbinder/default_binder.go. Here the plugin
//! only builds the `Binding`; the scheduler actor sends it as the ApiServer `Bind` message.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names;
use crate::scheduler::framework::{BindPlugin, CycleState, Plugin, Status};

pub struct DefaultBinder;

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        names::DEFAULT_BINDER
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

impl BindPlugin for DefaultBinder {
    fn bind(&self, _state: &CycleState, pod: &Pod, node: &str) -> Result<Binding, Status> {
        Ok(binding_for(pod, node))
    }
}

/// The Binding that assigns `pod` to `node` (namespace, name and UID of the pod).
pub fn binding_for(pod: &Pod, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::snapshot::testing::pod;

    /// The binding names the pod and targets the node.
    #[test]
    fn binding_targets_the_node() {
        let mut p = pod("web-1", 0, 0);
        p.metadata.uid = Some("uid-1".into());
        let b = DefaultBinder
            .bind(&CycleState::new(), &p, "node-1")
            .unwrap();
        assert_eq!(b.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(b.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(b.metadata.uid.as_deref(), Some("uid-1"));
        assert_eq!(b.target.kind.as_deref(), Some("Node"));
        assert_eq!(b.target.name.as_deref(), Some("node-1"));
    }
}
