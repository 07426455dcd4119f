//! The Node object and Lease a kubelet writes: plain functions.
//!
//! Mirrors `initialNode` (pkg/kubelet/kubelet_node_status.go), the status setters of
//! pkg/kubelet/nodestatus (`MachineInfo`, `NodeAddress`, `Images`, `ReadyCondition`,
//! `MemoryPressureCondition`, `DiskPressureCondition`, `PIDPressureCondition`) and the lease
//! of pkg/kubelet/nodelease (`newLease`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};

use super::config::{parse_taint, NodeConfig};
use crate::api::quantity::parse_quantity;
use crate::runtime::ImageInfo;

/// The namespace node leases live in.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// `kubeletVersion` reported in `nodeInfo`.
pub const KUBELET_VERSION: &str = "v1.33.0";
/// At most this many images in `status.images` (upstream `nodeStatusMaxImages`).
pub const MAX_IMAGES: usize = 50;
/// The memory the kubelet keeps back for eviction (`memory.available<100Mi`): capacity minus
/// this is allocatable.
pub const EVICTION_HARD_MEMORY: i128 = 100 * 1024 * 1024;

/// The node's InternalIP: 172.18.0.2 for the first node, .3 for the second (as kind does).
pub fn internal_ip(index: usize) -> String {
    let host = 2 + index;
    format!("172.18.{}.{}", host / 250, host % 250)
}

fn q(s: &str) -> Quantity {
    Quantity(s.to_string())
}

/// `status.capacity` and `status.allocatable`.
pub fn capacity(cfg: &NodeConfig) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let capacity: BTreeMap<String, Quantity> = [
        ("cpu", q(&cfg.cpu)),
        ("memory", q(&cfg.memory)),
        ("pods", q(&cfg.pods.to_string())),
        ("ephemeral-storage", q(&cfg.ephemeral_storage)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut allocatable = capacity.clone();
    if let Ok(mem) = parse_quantity(&cfg.memory) {
        let left = (mem.value() - EVICTION_HARD_MEMORY).max(0);
        allocatable.insert("memory".into(), q(&format!("{}Ki", left / 1024)));
    }
    if let Ok(disk) = parse_quantity(&cfg.ephemeral_storage) {
        // nodefs.available<10%
        let left = disk.value() * 9 / 10;
        allocatable.insert("ephemeral-storage".into(), q(&left.to_string()));
    }
    (capacity, allocatable)
}

/// The labels the kubelet sets on its Node.
pub fn node_labels(cfg: &NodeConfig) -> BTreeMap<String, String> {
    let mut labels = cfg.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), cfg.name.clone());
    labels.insert("kubernetes.io/os".into(), cfg.os.clone());
    labels.insert("kubernetes.io/arch".into(), cfg.arch.clone());
    labels.insert("beta.kubernetes.io/os".into(), cfg.os.clone());
    labels.insert("beta.kubernetes.io/arch".into(), cfg.arch.clone());
    if !cfg.zone.is_empty() {
        labels.insert("topology.kubernetes.io/zone".into(), cfg.zone.clone());
    }
    labels
}

fn node_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// `status.images` from the runtime's images (largest first, at most [`MAX_IMAGES`]).
pub fn images(list: &[ImageInfo]) -> Vec<ContainerImage> {
    list.iter()
        .take(MAX_IMAGES)
        .map(|i| ContainerImage {
            names: Some(
                i.repo_digests
                    .iter()
                    .chain(i.repo_tags.iter())
                    .cloned()
                    .collect(),
            ),
            size_bytes: Some(i.size_bytes as i64),
        })
        .collect()
}

/// The node status the kubelet reports. `previous` keeps each condition's
/// `lastTransitionTime` while its status does not change.
pub fn node_status(
    cfg: &NodeConfig,
    index: usize,
    image_list: &[ImageInfo],
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let (capacity, allocatable) = capacity(cfg);
    let mut conditions = vec![
        node_condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            now,
        ),
        node_condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            now,
        ),
        node_condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            now,
        ),
        node_condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
            now,
        ),
    ];
    for c in &mut conditions {
        let old = previous
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|o| o.type_ == c.type_));
        if let Some(old) = old.filter(|o| o.status == c.status) {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    let machine = crate::runtime::images::hex_digest(&cfg.name);
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: internal_ip(index),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: machine[..32].to_string(),
            system_uuid: uuid_like(&machine[32..]),
            boot_id: uuid_like(&crate::runtime::images::hex_digest(&format!(
                "{}-boot",
                cfg.name
            ))),
            kernel_version: "6.8.0-kubeactor".into(),
            os_image: "kubeactor simulated node".into(),
            container_runtime_version: format!("kubeactor://{}", env!("CARGO_PKG_VERSION")),
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
            operating_system: cfg.os.clone(),
            architecture: cfg.arch.clone(),
            ..Default::default()
        }),
        images: Some(images(image_list)),
        ..Default::default()
    }
}

fn uuid_like(hex: &str) -> String {
    let h: String = hex.chars().chain(std::iter::repeat('0')).take(32).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The Node a kubelet registers. Mirrors `initialNode`.
pub fn initial_node(cfg: &NodeConfig, index: usize, images: &[ImageInfo], now: Timestamp) -> Node {
    let taints: Vec<_> = cfg.taints.iter().filter_map(|t| parse_taint(t)).collect();
    Node {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            labels: Some(node_labels(cfg)),
            annotations: Some(
                [("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())].into(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(cfg.pod_cidr.clone()),
            pod_cidrs: Some(vec![cfg.pod_cidr.clone()]),
            taints: (!taints.is_empty()).then_some(taints),
            ..Default::default()
        }),
        status: Some(node_status(cfg, index, images, None, now)),
    }
}

/// Whether a new status differs from the posted one in anything but heartbeat times.
///
/// Compared field by field rather than on copies with the heartbeats cleared: each node runs
/// this every status check (1,000 a second at 10,000 nodes), and the two copies were most of
/// its cost. Every field is named, so one added by a k8s-openapi upgrade fails to compile here.
pub fn node_status_changed(old: &NodeStatus, new: &NodeStatus) -> bool {
    let NodeStatus {
        addresses,
        allocatable,
        capacity,
        conditions,
        config,
        daemon_endpoints,
        features,
        images,
        node_info,
        phase,
        runtime_handlers,
        volumes_attached,
        volumes_in_use,
    } = new;
    let same_conditions = match (&old.conditions, conditions) {
        (Some(a), Some(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_but_heartbeat(a, b))
        }
        (None, None) => true,
        _ => false,
    };
    !(same_conditions
        && old.addresses == *addresses
        && old.allocatable == *allocatable
        && old.capacity == *capacity
        && old.config == *config
        && old.daemon_endpoints == *daemon_endpoints
        && old.features == *features
        && old.images == *images
        && old.node_info == *node_info
        && old.phase == *phase
        && old.runtime_handlers == *runtime_handlers
        && old.volumes_attached == *volumes_attached
        && old.volumes_in_use == *volumes_in_use)
}

/// Two conditions equal in everything but `lastHeartbeatTime`.
fn same_but_heartbeat(old: &NodeCondition, new: &NodeCondition) -> bool {
    let NodeCondition {
        last_heartbeat_time: _,
        last_transition_time,
        message,
        reason,
        status,
        type_,
    } = new;
    old.last_transition_time == *last_transition_time
        && old.message == *message
        && old.reason == *reason
        && old.status == *status
        && old.type_ == *type_
}

/// The node's Lease, owned by its Node. Mirrors `newLease` (pkg/kubelet/nodelease).
pub fn lease(node: &Node, duration_seconds: u32, now: Timestamp) -> Lease {
    let name = node.metadata.name.clone().unwrap_or_default();
    Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(NODE_LEASE_NAMESPACE.into()),
            owner_references: node.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.clone(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name),
            lease_duration_seconds: Some(duration_seconds as i32),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_node_has_upstream_labels_conditions_and_allocatable() {
        let mut cfg = NodeConfig::new("node-1", "10.244.1.0/24");
        cfg.zone = "zone-a".into();
        cfg.taints.push("dedicated=infra:NoSchedule".into());
        let node = initial_node(&cfg, 0, &[], Timestamp::UNIX_EPOCH);
        let labels = node.metadata.labels.clone().unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "node-1");
        assert_eq!(labels["topology.kubernetes.io/zone"], "zone-a");
        let spec = node.spec.clone().unwrap();
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.1.0/24"));
        assert_eq!(spec.taints.unwrap()[0].key, "dedicated");
        let status = node.status.unwrap();
        let types: Vec<&str> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(
            types,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        assert_eq!(status.allocatable.unwrap()["memory"].0, "8286208Ki");
        assert_eq!(status.addresses.unwrap()[0].address, "172.18.0.2");
    }

    #[test]
    fn heartbeats_alone_are_not_a_change() {
        let cfg = NodeConfig::new("node-1", "10.244.1.0/24");
        let a = node_status(&cfg, 0, &[], None, Timestamp::UNIX_EPOCH);
        let later = Timestamp::from_second(100).unwrap();
        let b = node_status(&cfg, 0, &[], Some(&a), later);
        assert!(!node_status_changed(&a, &b));
        // Anything else is a change: a condition's status, a field outside the conditions,
        // a condition more or less.
        let mut c = b.clone();
        c.conditions.as_mut().unwrap()[3].status = "False".into();
        assert!(node_status_changed(&a, &c));
        let mut c = b.clone();
        c.conditions.as_mut().unwrap()[0].message = Some("low".into());
        assert!(node_status_changed(&a, &c));
        let mut c = b.clone();
        c.conditions.as_mut().unwrap().pop();
        assert!(node_status_changed(&a, &c));
        let mut c = b.clone();
        c.conditions = None;
        assert!(node_status_changed(&a, &c));
        let mut c = b.clone();
        c.images = Some(vec![ContainerImage::default()]);
        assert!(node_status_changed(&a, &c));
        let mut c = b.clone();
        c.phase = Some("Running".into());
        assert!(node_status_changed(&a, &c));
        assert_eq!(
            b.conditions.unwrap()[3].last_transition_time,
            a.conditions.unwrap()[3].last_transition_time
        );
    }
}
