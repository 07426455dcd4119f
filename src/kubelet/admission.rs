//! Whether a pod bound to this node fits it: the kubelet's own check, run when it first sees
//! a pod, because a pod can be bound without the scheduler (`spec.nodeName` set by hand) or
//! by a scheduler with a stale view. Mirrors the resource part of `PredicateAdmitHandler`
//! (pkg/kubelet/lifecycle/predicate.go → `noderesources.Fits`): a pod that does not fit is
//! rejected with reason `OutOf<resource>` (`OutOfcpu`, `OutOfmemory`, `OutOfpods`,
//! `OutOfephemeral-storage`) and phase Failed.

use k8s_openapi::api::core::v1::Pod;

use crate::scheduler::resource::{compute_pod_resource_request, Resource};

/// Why a pod was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `OutOfcpu`, …: the pod's `status.reason` and the event's reason.
    pub reason: String,
    /// `Node didn't have enough resource: cpu, requested: 2000, used: 500, capacity: 4000`.
    pub message: String,
}

impl Rejection {
    /// The pod's `status.message`.
    pub fn status_message(&self) -> String {
        format!("Pod was rejected: {}", self.message)
    }
}

/// Admit `pod` onto a node with `allocatable`, where the pods in `admitted` already run.
pub fn admit<'a>(
    pod: &Pod,
    allocatable: &Resource,
    admitted: impl IntoIterator<Item = &'a Pod>,
) -> Result<(), Rejection> {
    let mut used = Resource::default();
    let mut count = 0i64;
    for p in admitted {
        used.add(&compute_pod_resource_request(p));
        count += 1;
    }
    let insufficient = |name: &str, requested: i64, used: i64, capacity: i64| {
        Rejection {
        reason: format!("OutOf{name}"),
        message: format!(
            "Node didn't have enough resource: {name}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    }
    };
    if count + 1 > allocatable.allowed_pod_number {
        return Err(insufficient(
            "pods",
            1,
            count,
            allocatable.allowed_pod_number,
        ));
    }
    let want = compute_pod_resource_request(pod);
    for name in ["cpu", "memory", "ephemeral-storage"] {
        let (req, u, cap) = (want.get(name), used.get(name), allocatable.get(name));
        if req > 0 && req + u > cap {
            return Err(insufficient(name, req, u, cap));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod(cpu: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some([("cpu".to_string(), Quantity(cpu.into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_that_does_not_fit_is_rejected_as_upstream() {
        let node = Resource {
            milli_cpu: 4000,
            memory: 8 << 30,
            ephemeral_storage: 100 << 30,
            allowed_pod_number: 110,
        };
        let running = [pod("3")];
        assert_eq!(admit(&pod("1"), &node, &running), Ok(()));
        let r = admit(&pod("1500m"), &node, &running).unwrap_err();
        assert_eq!(r.reason, "OutOfcpu");
        assert_eq!(
            r.status_message(),
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 1500, used: 3000, capacity: 4000"
        );
        let full = Resource {
            allowed_pod_number: 1,
            ..node
        };
        assert_eq!(
            admit(&pod("1"), &full, &running).unwrap_err().reason,
            "OutOfpods"
        );
    }
}
