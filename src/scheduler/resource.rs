//! Resource accounting: quantities, a pod's effective requests and a node's allocatable.
//!
//! Mirrors `framework.Resource` (pkg/scheduler/framework/types.go), `computePodResourceRequest`
//! (pkg/scheduler/framework/plugins/noderesources/fit.go) and `resourcehelper.PodRequests`
//! (k8s.io/component-helpers/resource).
//!
//! Quantities are read with [`crate::api::quantity`]. Requests are read as stored: the API
//! server's defaulting has already copied limits into missing requests (`SetDefaults_Pod`),
//! so, as upstream, the scheduler never looks at limits.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::api::quantity;

/// Request assumed for a container without a cpu request when *scoring* (not filtering):
/// upstream `DefaultMilliCPURequest` (pkg/scheduler/util/pod_resources.go).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Request assumed for a container without a memory request when scoring: 200 MB
/// (`DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Allocatable or requested resources, in the units the scheduler compares: millicores,
/// bytes, bytes, and a pod count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
}

impl Resource {
    /// Read a `ResourceList` (node allocatable, a container's requests, a pod's overhead).
    /// Unknown resource names are ignored (extended resources are not modelled yet).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resource {
        let mut r = Resource::default();
        for (name, q) in list {
            r.set(name, q);
        }
        r
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        match name {
            "cpu" => self.milli_cpu = quantity_milli_value(q),
            "memory" => self.memory = quantity_value(q),
            "ephemeral-storage" => self.ephemeral_storage = quantity_value(q),
            "pods" => self.allowed_pod_number = quantity_value(q),
            _ => {}
        }
    }

    /// Whether `name` is one of the resources this struct models.
    pub fn is_known(name: &str) -> bool {
        matches!(name, "cpu" | "memory" | "ephemeral-storage" | "pods")
    }

    /// The amount of a named resource (cpu in millicores).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pod_number,
            _ => 0,
        }
    }

    pub fn add(&mut self, o: &Resource) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.allowed_pod_number += o.allowed_pod_number;
    }

    pub fn sub(&mut self, o: &Resource) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.allowed_pod_number -= o.allowed_pod_number;
    }

    /// Element-wise maximum (init containers define a floor).
    pub fn max_with(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.max(o.allowed_pod_number);
    }

    /// Whether nothing is requested.
    pub fn is_zero(&self) -> bool {
        *self == Resource::default()
    }
}

/// A node's allocatable resources: `status.allocatable`, falling back to `status.capacity`
/// when the kubelet has not reported allocatable (upstream uses allocatable only).
pub fn node_allocatable(node: &Node) -> Resource {
    let Some(status) = node.status.as_ref() else {
        return Resource::default();
    };
    match status.allocatable.as_ref().or(status.capacity.as_ref()) {
        Some(list) => Resource::from_list(list),
        None => Resource::default(),
    }
}

/// A container's requests (`resources.requests`).
fn container_requests(c: &Container) -> Resource {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map(Resource::from_list)
        .unwrap_or_default()
}

/// Whether a container requests a resource.
fn container_has(c: &Container, name: &str) -> bool {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .is_some_and(|l| l.contains_key(name))
}

/// A container's requests with the scoring defaults (100m cpu, 200 MB memory) filled in for
/// resources it does not request (upstream `NonMissingContainerRequests`).
fn container_requests_non_zero(c: &Container) -> Resource {
    let mut r = container_requests(c);
    if !container_has(c, "cpu") {
        r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if !container_has(c, "memory") {
        r.memory = DEFAULT_MEMORY_REQUEST;
    }
    r
}

/// The effective requests of a pod, as `resourcehelper.PodRequests`: the sum of the regular
/// and restartable-init (sidecar) containers, at least the peak of any init container (plus
/// the sidecars started before it), plus `spec.overhead`. `non_zero` applies the scoring
/// defaults to containers that request no cpu / memory.
fn pod_requests(pod: &Pod, non_zero: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let per = |c: &Container| {
        if non_zero {
            container_requests_non_zero(c)
        } else {
            container_requests(c)
        }
    };
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&per(c));
    }
    let mut sidecars = Resource::default();
    let mut init_peak = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let mut r = per(c);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            r = sidecars;
        } else {
            r.add(&sidecars);
        }
        init_peak.max_with(&r);
    }
    reqs.max_with(&init_peak);
    if let Some(overhead) = spec.overhead.as_ref() {
        reqs.add(&Resource::from_list(overhead));
    }
    reqs
}

/// Mirrors `computePodResourceRequest` (noderesources/fit.go): what a pod needs from a node
/// to pass the NodeResourcesFit filter.
pub fn compute_pod_resource_request(pod: &Pod) -> Resource {
    pod_requests(pod, false)
}

/// The pod's requests with the non-zero scoring defaults (upstream `NonZeroRequested`
/// accounting, used by LeastAllocated / MostAllocated / RequestedToCapacityRatio).
pub fn compute_pod_non_zero_request(pod: &Pod) -> Resource {
    pod_requests(pod, true)
}

/// `Quantity.Value()`: the value rounded up to an integer (0 if unparseable: validation
/// rejects such quantities, so only objects that bypassed it can have one).
pub fn quantity_value(q: &Quantity) -> i64 {
    quantity::bytes(q).unwrap_or(0)
}

/// `Quantity.MilliValue()`: the value in thousandths, rounded up (0 if unparseable).
pub fn quantity_milli_value(q: &Quantity) -> i64 {
    quantity::cpu_millis(q).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn q(s: &str) -> Quantity {
        Quantity(s.to_string())
    }

    /// Quantities go through `api::quantity`: millicores and bytes, rounded up.
    #[test]
    fn quantities_read_as_upstream() {
        assert_eq!(quantity_milli_value(&q("100m")), 100);
        assert_eq!(quantity_milli_value(&q("2")), 2000);
        assert_eq!(quantity_milli_value(&q("0.1m")), 1);
        assert_eq!(quantity_value(&q("100m")), 1);
        assert_eq!(quantity_value(&q("1Gi")), 1 << 30);
        assert_eq!(quantity_value(&q("abc")), 0);
    }

    fn container(requests: &[(&str, &str)], sidecar: bool) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(
                    requests
                        .iter()
                        .map(|(k, v)| (k.to_string(), q(v)))
                        .collect(),
                ),
                ..Default::default()
            }),
            restart_policy: sidecar.then(|| "Always".to_string()),
            ..Default::default()
        }
    }

    /// computePodResourceRequest: max(sum of containers, each init container) + overhead,
    /// with sidecars (restartable init containers) added to both.
    #[test]
    fn pod_request_is_max_of_containers_and_init_plus_overhead() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![
                    container(&[("cpu", "100m"), ("memory", "100Mi")], false),
                    container(&[("cpu", "200m")], false),
                ],
                init_containers: Some(vec![container(
                    &[("cpu", "500m"), ("memory", "50Mi")],
                    false,
                )]),
                overhead: Some([("cpu".to_string(), q("10m"))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = compute_pod_resource_request(&pod);
        assert_eq!(r.milli_cpu, 510);
        assert_eq!(r.memory, 100 * 1024 * 1024);
        // Non-zero: the second container has no memory request → 200 MB default.
        let nz = compute_pod_non_zero_request(&pod);
        assert_eq!(nz.memory, 100 * 1024 * 1024 + DEFAULT_MEMORY_REQUEST);
        assert_eq!(nz.milli_cpu, 510);

        // Sidecar: 100m sidecar runs alongside; a later 300m init container peaks at 400m.
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![container(&[("cpu", "200m")], false)],
                init_containers: Some(vec![
                    container(&[("cpu", "100m")], true),
                    container(&[("cpu", "300m")], false),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(compute_pod_resource_request(&pod).milli_cpu, 400);
    }

    /// Limits are not requests: the scheduler reads only requests (defaulting copies
    /// limits into missing requests before a pod is stored).
    #[test]
    fn limits_alone_request_nothing() {
        let c = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some([("cpu".to_string(), q("1"))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![c],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(compute_pod_resource_request(&pod).milli_cpu, 0);
        assert_eq!(
            compute_pod_non_zero_request(&pod).milli_cpu,
            DEFAULT_MILLI_CPU_REQUEST
        );
    }
}
