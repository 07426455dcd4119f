//! Server-side printing: `meta.k8s.io/v1` Tables with kube-apiserver's columns.
//!
//! Mirrors `pkg/printers/internalversion/printers.go` (`printPod`, `printDeployment`,
//! `printReplicaSet`, `printNode`, `printEvent`, `printNamespace`, `printLease`). kubectl asks
//! for a Table on `get`, prints the columns of priority 0 (all of them with `-o wide`), and
//! uses `rows[].object` (PartialObjectMetadata) for `-A` and `--show-labels`. The server always
//! fills every column, as kube-apiserver does.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, ContainerState, Event, Namespace, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as MetaSelector, Time};
use serde_json::{json, Value};

use crate::api::selectors::LabelSelector;
use crate::api::{Kind, Object};

/// A column of a Table (`TableColumnDefinition`).
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always printed; 1: only with `-o wide`.
    pub priority: u8,
}

const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name must be unique within a namespace.",
    priority: 0,
};
const AGE: Column = col(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

/// The column definitions of a kind, as upstream's `AddHandlers` declares them.
pub fn columns(kind: Kind) -> &'static [Column] {
    const POD: &[Column] = &[
        NAME,
        col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        col("Status", "string", "The aggregate status of the containers in this pod."),
        col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        AGE,
        wide("IP", "string", "IP address allocated to the pod. Routable at least within the cluster."),
        wide("Node", "string", "NodeName is a request to schedule this pod onto a specific node."),
        wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node."),
        wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
    ];
    const DEPLOYMENT: &[Column] = &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        col("Up-to-date", "integer", "Total number of non-terminating pods targeted by this deployment that have the desired template spec."),
        col("Available", "integer", "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment."),
        AGE,
        wide("Containers", "string", "Names of each container in the template."),
        wide("Images", "string", "Images referenced by each container in the template."),
        wide("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
    ];
    const REPLICASET: &[Column] = &[
        NAME,
        col("Desired", "integer", "Replicas is the number of desired pods."),
        col("Current", "integer", "Replicas is the most recently observed number of non-terminating pods."),
        col("Ready", "integer", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition."),
        AGE,
        wide("Containers", "string", "Names of each container in the template."),
        wide("Images", "string", "Images referenced by each container in the template."),
        wide("Selector", "string", "Selector is a label query over pods that should match the replica count."),
    ];
    const NODE: &[Column] = &[
        NAME,
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        AGE,
        col("Version", "string", "Kubelet Version reported by the node."),
        wide("Internal-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available."),
        wide("External-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available."),
        wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
        wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
        wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
    ];
    const EVENT: &[Column] = &[
        col("Last Seen", "string", "The last time this event occurred."),
        col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future."),
        col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        col("Object", "string", "The object that this event is about."),
        wide("Subobject", "string", "The field of the object this event is about."),
        wide("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
        col("Message", "string", "A human-readable description of the status of this operation."),
        wide("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
        wide("Count", "string", "The number of times this event has occurred."),
        wide("Name", "string", "Name must be unique within a namespace."),
    ];
    const NAMESPACE: &[Column] = &[
        NAME,
        col("Status", "string", "The status of the namespace"),
        AGE,
    ];
    const LEASE: &[Column] = &[
        NAME,
        col("Holder", "string", "The holder of the lease"),
        AGE,
    ];
    match kind {
        Kind::Pod => POD,
        Kind::Deployment => DEPLOYMENT,
        Kind::ReplicaSet => REPLICASET,
        Kind::Node => NODE,
        Kind::Event => EVENT,
        Kind::Namespace => NAMESPACE,
        Kind::Lease => LEASE,
    }
}

/// The list metadata of a Table.
#[derive(Clone, Debug, Default)]
pub struct ListMeta {
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// A Table of `objects` (all of one kind), with `rows[].object` as PartialObjectMetadata.
/// `api_version` is `meta.k8s.io/v1` (or `v1beta1` when only that was accepted).
pub fn table<'a>(
    kind: Kind,
    objects: impl IntoIterator<Item = &'a Object>,
    list: &ListMeta,
    api_version: &str,
    now: Timestamp,
) -> Value {
    serde_json::from_slice(&table_bytes(kind, objects, list, api_version, now))
        .unwrap_or(Value::Null)
}

/// [`table`], written straight to bytes: rows are serialized one by one, with no
/// intermediate JSON tree of the objects' metadata (a 10,000-pod Table is what
/// `kubectl get pods` asks for).
pub fn table_bytes<'a>(
    kind: Kind,
    objects: impl IntoIterator<Item = &'a Object>,
    list: &ListMeta,
    api_version: &str,
    now: Timestamp,
) -> Vec<u8> {
    let objects = objects.into_iter();
    let mut out = Vec::with_capacity(1024 + objects.size_hint().0 * 700);
    let column_definitions: Vec<Value> = columns(kind)
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let mut metadata = json!({ "resourceVersion": list.resource_version });
    if let Some(c) = &list.continue_token {
        metadata["continue"] = json!(c);
    }
    if let Some(r) = list.remaining {
        metadata["remainingItemCount"] = json!(r);
    }
    // Serializing plain JSON values and k8s-openapi types into a Vec cannot fail.
    out.extend_from_slice(b"{\"kind\":\"Table\",\"apiVersion\":");
    let _ = serde_json::to_writer(&mut out, api_version);
    out.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut out, &metadata);
    out.extend_from_slice(b",\"columnDefinitions\":");
    let _ = serde_json::to_writer(&mut out, &column_definitions);
    out.extend_from_slice(b",\"rows\":[");
    for (i, obj) in objects.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_row(&mut out, obj, now);
    }
    out.extend_from_slice(b"]}");
    out
}

/// One row: the cells, the conditions (pods), and the object's metadata.
fn write_row(out: &mut Vec<u8>, obj: &Object, now: Timestamp) {
    let (cells, conditions) = match obj {
        Object::Pod(p) => print_pod(p, now),
        Object::Deployment(d) => (print_deployment(d, now), None),
        Object::ReplicaSet(rs) => (print_replicaset(rs, now), None),
        Object::Node(n) => (print_node(n, now), None),
        Object::Event(e) => (print_event(e, now), None),
        Object::Namespace(ns) => (print_namespace(ns, now), None),
        Object::Lease(l) => (print_lease(l, now), None),
    };
    out.extend_from_slice(b"{\"cells\":");
    let _ = serde_json::to_writer(&mut *out, &cells);
    if let Some(c) = conditions {
        out.extend_from_slice(b",\"conditions\":");
        let _ = serde_json::to_writer(&mut *out, &c);
    }
    out.extend_from_slice(
        b",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":",
    );
    let _ = serde_json::to_writer(&mut *out, obj.meta());
    out.extend_from_slice(b"}}");
}

/// Mirrors `duration.HumanDuration` (k8s.io/apimachinery/pkg/util/duration).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Mirrors `translateTimestampSince`: `<unknown>` for a missing time.
fn since(t: Option<&Time>, now: Timestamp) -> String {
    match t {
        Some(t) => human_duration(now.as_second() - t.0.as_second()),
        None => "<unknown>".into(),
    }
}

fn age(
    obj_meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    now: Timestamp,
) -> String {
    since(obj_meta.creation_timestamp.as_ref(), now)
}

fn is_restartable_init_container(c: Option<&Container>) -> bool {
    c.and_then(|c| c.restart_policy.as_deref()) == Some("Always")
}

/// Mirrors `printPod`: READY, STATUS (the reason logic), RESTARTS, and the wide columns.
fn print_pod(pod: &Pod, now: Timestamp) -> (Vec<Value>, Option<Value>) {
    let empty_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty_spec);
    let empty_status = k8s_openapi::api::core::v1::PodStatus::default();
    let status = pod.status.as_ref().unwrap_or(&empty_status);
    let init_specs = spec.init_containers.as_deref().unwrap_or(&[]);
    let total = spec.containers.len()
        + init_specs
            .iter()
            .filter(|c| is_restartable_init_container(Some(c)))
            .count();
    let mut ready = 0;
    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_init_restart: Option<Timestamp> = None;
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = match status.reason.as_deref() {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => phase.clone(),
    };
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated") {
            reason = "SchedulingGated".into();
        }
    }
    let conditions = match phase.as_str() {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    let later = |a: Option<Timestamp>, b: Option<&Time>| match (a, b) {
        (Some(a), Some(b)) if b.0 > a => Some(b.0),
        (None, Some(b)) => Some(b.0),
        (a, _) => a,
    };
    let mut initializing = false;
    let init_statuses = status.init_container_statuses.as_deref().unwrap_or(&[]);
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += i64::from(c.restart_count);
        let last_term = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        if let Some(t) = last_term {
            last_restart = later(last_restart, t.finished_at.as_ref());
        }
        let c_spec = init_specs.iter().find(|s| s.name == c.name);
        let restartable = is_restartable_init_container(c_spec);
        if restartable {
            restartable_init_restarts += i64::from(c.restart_count);
            if let Some(t) = last_term {
                last_restartable_init_restart =
                    later(last_restartable_init_restart, t.finished_at.as_ref());
            }
        }
        let empty_state = ContainerState::default();
        let state = c.state.as_ref().unwrap_or(&empty_state);
        match (&state.terminated, &state.waiting) {
            (Some(t), _) if t.exit_code == 0 => continue,
            _ if restartable && c.started == Some(true) => {
                if c.ready {
                    ready += 1;
                }
                continue;
            }
            (Some(t), _) => {
                reason = match t.reason.as_deref() {
                    Some(r) if !r.is_empty() => format!("Init:{r}"),
                    _ => match t.signal {
                        Some(s) if s != 0 => format!("Init:Signal:{s}"),
                        _ => format!("Init:ExitCode:{}", t.exit_code),
                    },
                };
            }
            (None, Some(w))
                if w.reason
                    .as_deref()
                    .is_some_and(|r| !r.is_empty() && r != "PodInitializing") =>
            {
                reason = format!("Init:{}", w.reason.as_deref().unwrap_or_default());
            }
            _ => reason = format!("Init:{i}/{}", init_specs.len()),
        }
        initializing = true;
        break;
    }
    let initialized = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            restarts += i64::from(c.restart_count);
            if let Some(t) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
                last_restart = later(last_restart, t.finished_at.as_ref());
            }
            let empty_state = ContainerState::default();
            let state = c.state.as_ref().unwrap_or(&empty_state);
            let waiting_reason = state.waiting.as_ref().and_then(|w| w.reason.clone());
            if let Some(r) = waiting_reason.filter(|r| !r.is_empty()) {
                reason = r;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.as_deref() {
                    Some(r) if !r.is_empty() => r.to_string(),
                    _ => match t.signal {
                        Some(s) if s != 0 => format!("Signal:{s}"),
                        _ => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if c.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.as_second() - t.as_second())
        ),
        _ => restarts.to_string(),
    };
    let ip = status
        .pod_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.clone())
        .or(status.pod_ip.clone())
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| "<none>".into());
    let node = spec
        .node_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "<none>".into());
    let nominated = status
        .nominated_node_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "<none>".into());
    let gates = match spec.readiness_gates.as_deref() {
        Some(gates) if !gates.is_empty() => {
            let true_conditions = gates
                .iter()
                .filter(|g| {
                    status
                        .conditions
                        .iter()
                        .flatten()
                        .find(|c| c.type_ == g.condition_type)
                        .is_some_and(|c| c.status == "True")
                })
                .count();
            format!("{true_conditions}/{}", gates.len())
        }
        _ => "<none>".into(),
    };
    let cells = vec![
        json!(pod.metadata.name.clone().unwrap_or_default()),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(age(&pod.metadata, now)),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(gates),
    ];
    (cells, conditions)
}

/// `CONTAINERS`, `IMAGES` of a pod template (`layoutContainerCells`).
fn containers_and_images(spec: Option<&PodSpec>) -> (String, String) {
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    (names.join(","), images.join(","))
}

/// `metav1.LabelSelectorAsSelector(sel).String()`, `<none>` when it selects everything.
fn selector_string(sel: &MetaSelector) -> String {
    match LabelSelector::from_api(sel) {
        Ok(s) if s.is_empty() => "<none>".into(),
        Ok(s) => s.to_string(),
        Err(e) => format!("<error: {e}>"),
    }
}

/// Mirrors `printDeployment`.
fn print_deployment(d: &Deployment, now: Timestamp) -> Vec<Value> {
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(0);
    let (containers, images) = containers_and_images(spec.template.spec.as_ref());
    vec![
        json!(d.metadata.name.clone().unwrap_or_default()),
        json!(format!("{}/{desired}", status.ready_replicas.unwrap_or(0))),
        json!(status.updated_replicas.unwrap_or(0)),
        json!(status.available_replicas.unwrap_or(0)),
        json!(age(&d.metadata, now)),
        json!(containers),
        json!(images),
        json!(selector_string(&spec.selector)),
    ]
}

/// Mirrors `printReplicaSet`.
fn print_replicaset(rs: &ReplicaSet, now: Timestamp) -> Vec<Value> {
    let spec = rs.spec.clone().unwrap_or_default();
    let status = rs.status.clone().unwrap_or_default();
    let (containers, images) =
        containers_and_images(spec.template.as_ref().and_then(|t| t.spec.as_ref()));
    vec![
        json!(rs.metadata.name.clone().unwrap_or_default()),
        json!(spec.replicas.unwrap_or(0)),
        json!(status.replicas),
        json!(status.ready_replicas.unwrap_or(0)),
        json!(age(&rs.metadata, now)),
        json!(containers),
        json!(images),
        json!(selector_string(&spec.selector)),
    ]
}

/// Mirrors `findNodeRoles`: `node-role.kubernetes.io/<role>` labels and `kubernetes.io/role`.
fn node_roles(node: &Node) -> Vec<String> {
    let mut roles = BTreeSet::new();
    for (k, v) in node.metadata.labels.iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.insert(v.clone());
        }
    }
    roles.into_iter().collect()
}

/// Mirrors `printNode`.
fn print_node(node: &Node, now: Timestamp) -> Vec<Value> {
    let status = node.status.clone().unwrap_or_default();
    let mut states: Vec<String> = Vec::new();
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .rev()
        .find(|c| c.type_ == "Ready")
    {
        states.push(if c.status == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if states.is_empty() {
        states.push("Unknown".into());
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        states.push("SchedulingDisabled".into());
    }
    let roles = node_roles(node);
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let info = status.node_info.clone().unwrap_or_default();
    let address = |t: &str| {
        status
            .addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == t)
            .map(|a| a.address.clone())
            .unwrap_or_else(|| "<none>".into())
    };
    let or_unknown = |s: &str| {
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        json!(node.metadata.name.clone().unwrap_or_default()),
        json!(states.join(",")),
        json!(roles),
        json!(age(&node.metadata, now)),
        json!(info.kubelet_version),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(or_unknown(&info.os_image)),
        json!(or_unknown(&info.kernel_version)),
        json!(or_unknown(&info.container_runtime_version)),
    ]
}

/// Mirrors `printEvent`.
fn print_event(e: &Event, now: Timestamp) -> Vec<Value> {
    let micro = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>| match t {
        Some(t) => human_duration(now.as_second() - t.0.as_second()),
        None => "<unknown>".to_string(),
    };
    let first = match &e.first_timestamp {
        Some(t) => since(Some(t), now),
        None => micro(e.event_time.as_ref()),
    };
    let mut last = match &e.last_timestamp {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = e.count.unwrap_or(0);
    if let Some(series) = &e.series {
        last = micro(series.last_observed_time.as_ref());
        count = series.count.unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let involved = &e.involved_object;
    let kind = involved.kind.clone().unwrap_or_default().to_lowercase();
    let target = match involved.name.as_deref() {
        Some(n) if !n.is_empty() => format!("{kind}/{n}"),
        _ => kind,
    };
    let first_non_empty = |a: Option<&String>, b: Option<&String>| {
        a.filter(|s| !s.is_empty())
            .or(b)
            .cloned()
            .unwrap_or_default()
    };
    let source = e.source.clone().unwrap_or_default();
    let component = first_non_empty(source.component.as_ref(), e.reporting_component.as_ref());
    let instance = first_non_empty(source.host.as_ref(), e.reporting_instance.as_ref());
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(e.type_.clone().unwrap_or_default()),
        json!(e.reason.clone().unwrap_or_default()),
        json!(target),
        json!(involved.field_path.clone().unwrap_or_default()),
        json!(source),
        json!(e.message.clone().unwrap_or_default().trim()),
        json!(first),
        json!(count),
        json!(e.metadata.name.clone().unwrap_or_default()),
    ]
}

/// Mirrors `printNamespace`.
fn print_namespace(ns: &Namespace, now: Timestamp) -> Vec<Value> {
    let phase = ns
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    vec![
        json!(ns.metadata.name.clone().unwrap_or_default()),
        json!(phase),
        json!(age(&ns.metadata, now)),
    ]
}

/// Mirrors `printLease`.
fn print_lease(l: &Lease, now: Timestamp) -> Vec<Value> {
    let holder = l
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    vec![
        json!(l.metadata.name.clone().unwrap_or_default()),
        json!(holder),
        json!(age(&l.metadata, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        ContainerStatus, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, PodCondition,
        PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn meta(name: &str, created: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            creation_timestamp: Some(Time(ts(created))),
            ..Default::default()
        }
    }

    #[test]
    fn human_duration_matches_upstream_table() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 300, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    fn container(name: &str, ready: bool, state: ContainerState, restarts: i32) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready,
            restart_count: restarts,
            state: Some(state),
            ..Default::default()
        }
    }

    fn pod_with(statuses: Vec<ContainerStatus>, phase: &str) -> Pod {
        Pod {
            metadata: meta("web-1", "2025-01-01T00:00:00Z"),
            spec: Some(PodSpec {
                containers: statuses
                    .iter()
                    .map(|s| Container {
                        name: s.name.clone(),
                        ..Default::default()
                    })
                    .collect(),
                node_name: Some("node-1".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: Some(statuses),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn pod_rows_follow_print_pod() {
        let now = ts("2025-01-01T00:00:10Z");
        let running = ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        };
        let waiting = |r: &str| ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(r.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let cases: Vec<(Pod, [&str; 4])> = vec![
            (
                pod_with(vec![container("a", true, running.clone(), 0)], "Running"),
                ["web-1", "1/1", "Running", "0"],
            ),
            (
                pod_with(vec![], "Pending"),
                ["web-1", "0/0", "Pending", "0"],
            ),
            (
                pod_with(
                    vec![
                        container("a", true, running.clone(), 2),
                        container("b", false, waiting("CrashLoopBackOff"), 3),
                    ],
                    "Running",
                ),
                ["web-1", "1/2", "CrashLoopBackOff", "5"],
            ),
            (
                pod_with(
                    vec![container(
                        "a",
                        false,
                        ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: 137,
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        0,
                    )],
                    "Failed",
                ),
                ["web-1", "0/1", "ExitCode:137", "0"],
            ),
        ];
        for (pod, want) in cases {
            let (cells, _) = print_pod(&pod, now);
            let got: Vec<&str> = cells[..4].iter().map(|c| c.as_str().unwrap()).collect();
            assert_eq!(got, want);
            assert_eq!(cells[4], "10s");
            assert_eq!(cells[6], "node-1");
            assert_eq!(cells[5], "<none>");
        }
        let mut terminating = pod_with(vec![container("a", true, running, 0)], "Running");
        terminating.metadata.deletion_timestamp = Some(Time(now));
        terminating.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        assert_eq!(print_pod(&terminating, now).0[2], "Terminating");
    }

    #[test]
    fn node_rows_show_readiness_cordoning_and_roles() {
        let mut node = Node {
            metadata: ObjectMeta {
                name: Some("node-1".into()),
                creation_timestamp: Some(Time(ts("2025-01-01T00:00:00Z"))),
                labels: Some(
                    [(
                        "node-role.kubernetes.io/control-plane".to_string(),
                        String::new(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                unschedulable: Some(true),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                node_info: Some(NodeSystemInfo {
                    kubelet_version: "v1.32.0".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let cells = print_node(&node, ts("2025-01-03T00:00:00Z"));
        assert_eq!(
            cells[..5],
            [
                json!("node-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane"),
                json!("2d"),
                json!("v1.32.0")
            ]
        );
        node.status = None;
        assert_eq!(
            print_node(&node, ts("2025-01-03T00:00:00Z"))[1],
            "Unknown,SchedulingDisabled"
        );
    }

    #[test]
    fn a_table_carries_columns_rows_and_partial_object_metadata() {
        let d = Object::from(Deployment {
            metadata: meta("web", "2025-01-01T00:00:00Z"),
            ..Default::default()
        });
        let t = table(
            Kind::Deployment,
            [&d],
            &ListMeta {
                resource_version: "7".into(),
                ..Default::default()
            },
            "meta.k8s.io/v1",
            ts("2025-01-01T00:01:00Z"),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(t["columnDefinitions"][2]["name"], "Up-to-date");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(t["rows"][0]["cells"][0], "web");
        assert_eq!(t["rows"][0]["cells"][1], "0/0");
        assert_eq!(t["rows"][0]["cells"][4], "60s");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");
    }
}
