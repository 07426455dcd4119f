//! Pods and pod templates. Mirrors `pkg/apis/core/validation/validation.go`
//! (`ValidatePodCreate`, `ValidatePodSpec`, `ValidatePodTemplateSpec`, `ValidatePodUpdate`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Pod, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::meta::{
    validate_annotations, validate_dns1123_label, validate_label_name, validate_labels,
    validate_nonnegative, validate_object_meta, validate_object_meta_update, IS_NEGATIVE_ERROR_MSG,
};
use super::names::{
    inclusive_range_error, is_env_var_name, is_valid_label_value, is_valid_port_name,
    is_valid_port_num, name_is_dns_subdomain,
};
use super::{render, FieldError, Path};
use crate::api::quantity::{parse_quantity, Quantity};

/// Restart policies, in the order the API reports them.
pub(super) const RESTART_POLICIES: [&str; 3] = ["Always", "Never", "OnFailure"];
const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];
const DNS_POLICIES: [&str; 4] = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PORT_PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: [&str; 2] = ["File", "FallbackToLogsOnError"];
const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
const TOLERATION_OPERATORS: [&str; 2] = ["Equal", "Exists"];

/// The message of a forbidden pod spec change (`updatablePodSpecFieldsNoResources`).
const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Mirrors `ValidatePodCreate`: metadata, spec, and no ephemeral containers on create.
pub(super) fn validate_pod_create(pod: &Pod) -> Vec<FieldError> {
    let mut errs = validate_pod_metadata_and_spec(pod);
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            &Path::new("spec").child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    errs
}

/// Mirrors `validatePodMetadataAndSpec`.
fn validate_pod_metadata_and_spec(pod: &Pod) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        &pod.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    // A default spec only when there is none (building and dropping one per create cost
    // more than the checks of a small spec's policies).
    let spec_path = Path::new("spec");
    errs.extend(match pod.spec.as_ref() {
        Some(spec) => validate_pod_spec(spec, &spec_path),
        None => validate_pod_spec(&PodSpec::default(), &spec_path),
    });
    errs
}

/// Mirrors `ValidatePodTemplateSpec`. Note upstream reports template labels at
/// `<path>.labels` (not `<path>.metadata.labels`).
pub(super) fn validate_pod_template_spec(
    template: &PodTemplateSpec,
    path: &Path,
) -> Vec<FieldError> {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut errs = validate_labels(meta.labels.as_ref(), &path.child("labels"));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    let default_spec = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&default_spec);
    errs.extend(validate_pod_spec(spec, &path.child("spec")));
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// Mirrors `ValidatePodSpec` (the parts kubeactor models: volumes, containers, init
/// containers, restart and DNS policies, node selector, names, tolerations, deadlines).
pub(super) fn validate_pod_spec(spec: &PodSpec, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let volumes = validate_volumes(
        spec.volumes.as_deref().unwrap_or(&[]),
        &path.child("volumes"),
        &mut errs,
    );
    let host_network = spec.host_network.unwrap_or(false);

    let containers = spec.containers.as_slice();
    let mut names = BTreeSet::new();
    if containers.is_empty() {
        errs.push(FieldError::required(&path.child("containers"), ""));
    }
    let containers_path = path.child("containers");
    for (i, c) in containers.iter().enumerate() {
        let p = containers_path.index(i);
        errs.extend(validate_container(c, &p, &volumes, host_network));
        if !c.name.is_empty() && !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), render::q(&c.name)));
        }
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    let init_containers_path = path.child("initContainers");
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let p = init_containers_path.index(i);
        errs.extend(validate_container(c, &p, &volumes, host_network));
        if !c.name.is_empty() && !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), render::q(&c.name)));
        }
        let sidecar = match c.restart_policy.as_deref() {
            None => false,
            Some("Always") => true,
            Some(other) => {
                errs.push(FieldError::not_supported(
                    &p.child("restartPolicy"),
                    render::q(other),
                    &["Always"],
                ));
                false
            }
        };
        if !sidecar {
            for (field, set) in [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ] {
                if set {
                    errs.push(FieldError::forbidden(
                        &p.child(field),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }

    match spec.restart_policy.as_deref() {
        None | Some("") => errs.push(FieldError::required(&path.child("restartPolicy"), "")),
        Some(p) if RESTART_POLICIES.contains(&p) => {}
        Some(p) => errs.push(FieldError::not_supported(
            &path.child("restartPolicy"),
            render::q(p),
            &RESTART_POLICIES,
        )),
    }
    match spec.dns_policy.as_deref() {
        None | Some("") => errs.push(FieldError::required(&path.child("dnsPolicy"), "")),
        Some(p) if DNS_POLICIES.contains(&p) => {
            if p == "None" && spec.dns_config.is_none() {
                errs.push(FieldError::required(
                    &path.child("dnsConfig"),
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
            }
        }
        Some(p) => errs.push(FieldError::not_supported(
            &path.child("dnsPolicy"),
            render::q(p),
            &DNS_POLICIES,
        )),
    }
    errs.extend(validate_labels(
        spec.node_selector.as_ref(),
        &path.child("nodeSelector"),
    ));
    for (field, value) in [
        ("serviceAccountName", &spec.service_account_name),
        ("nodeName", &spec.node_name),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            for msg in name_is_dns_subdomain(v, false) {
                errs.push(FieldError::invalid(&path.child(field), render::q(v), &msg));
            }
        }
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            errs.extend(validate_dns1123_label(v, &path.child(field)));
        }
    }
    if let Some(ads) = spec.active_deadline_seconds {
        if !(1..=i32::MAX as i64).contains(&ads) {
            errs.push(FieldError::invalid(
                &path.child("activeDeadlineSeconds"),
                ads.to_string(),
                &inclusive_range_error(1, i32::MAX as i64),
            ));
        }
    }
    if let Some(g) = spec.termination_grace_period_seconds {
        errs.extend(validate_nonnegative(
            g,
            &path.child("terminationGracePeriodSeconds"),
        ));
    }
    errs.extend(validate_tolerations(
        spec.tolerations.as_deref().unwrap_or(&[]),
        &path.child("tolerations"),
    ));
    errs
}

/// Mirrors `validateVolumes`: unique DNS-label names, exactly one source. Returns the names.
fn validate_volumes<'v>(
    volumes: &'v [Volume],
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> BTreeSet<&'v str> {
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        if v.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            errs.extend(validate_dns1123_label(&v.name, &p.child("name")));
        }
        if !v.name.is_empty() && !names.insert(v.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), render::q(&v.name)));
        }
        // The sources are the fields other than `name`.
        let sources: Vec<String> = match serde_json::to_value(v) {
            Ok(serde_json::Value::Object(m)) => {
                m.keys().filter(|k| *k != "name").cloned().collect()
            }
            _ => Vec::new(),
        };
        match sources.len() {
            0 => errs.push(FieldError::required(&p, "must specify a volume type")),
            1 => {}
            _ => errs.push(FieldError::forbidden(
                &p.child(sources[1].clone()),
                "may not specify more than 1 volume type",
            )),
        }
    }
    names
}

/// Mirrors `validateContainerCommon` and the per-container parts of `validateContainers`.
fn validate_container(
    c: &Container,
    p: &Path,
    volumes: &BTreeSet<&str>,
    host_network: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if c.name.is_empty() {
        errs.push(FieldError::required(&p.child("name"), ""));
    } else {
        errs.extend(validate_dns1123_label(&c.name, &p.child("name")));
    }
    let image = c.image.as_deref().unwrap_or("");
    if image.is_empty() {
        errs.push(FieldError::required(&p.child("image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            &p.child("image"),
            render::q(image),
            "must not have leading or trailing whitespace",
        ));
    }
    match c.image_pull_policy.as_deref() {
        None | Some("") => errs.push(FieldError::required(&p.child("imagePullPolicy"), "")),
        Some(v) if PULL_POLICIES.contains(&v) => {}
        Some(v) => errs.push(FieldError::not_supported(
            &p.child("imagePullPolicy"),
            render::q(v),
            &PULL_POLICIES,
        )),
    }
    match c.termination_message_policy.as_deref() {
        None | Some("") => errs.push(FieldError::required(
            &p.child("terminationMessagePolicy"),
            "",
        )),
        Some(v) if TERMINATION_MESSAGE_POLICIES.contains(&v) => {}
        Some(v) => errs.push(FieldError::not_supported(
            &p.child("terminationMessagePolicy"),
            render::q(v),
            &TERMINATION_MESSAGE_POLICIES,
        )),
    }
    errs.extend(validate_container_ports(
        c.ports.as_deref().unwrap_or(&[]),
        &p.child("ports"),
        host_network,
    ));
    errs.extend(validate_env(
        c.env.as_deref().unwrap_or(&[]),
        &p.child("env"),
    ));
    errs.extend(validate_volume_mounts(
        c.volume_mounts.as_deref().unwrap_or(&[]),
        volumes,
        &p.child("volumeMounts"),
    ));
    if let Some(r) = &c.resources {
        errs.extend(validate_resource_requirements(r, &p.child("resources")));
    }
    for (field, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(probe) = probe {
            errs.extend(validate_probe(
                probe,
                field != "readinessProbe",
                &p.child(field),
            ));
        }
    }
    errs
}

/// Mirrors `validateContainerPorts`.
fn validate_container_ports(
    ports: &[ContainerPort],
    path: &Path,
    host_network: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(&p.child("name"), render::q(name), &msg));
                }
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(&p.child("name"), render::q(name)));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(&p.child("containerPort"), ""));
        } else {
            for msg in is_valid_port_num(port.container_port) {
                errs.push(FieldError::invalid(
                    &p.child("containerPort"),
                    port.container_port.to_string(),
                    &msg,
                ));
            }
        }
        if let Some(hp) = port.host_port.filter(|hp| *hp != 0) {
            for msg in is_valid_port_num(hp) {
                errs.push(FieldError::invalid(
                    &p.child("hostPort"),
                    hp.to_string(),
                    &msg,
                ));
            }
            if host_network && hp != port.container_port {
                errs.push(FieldError::invalid(
                    &p.child("hostPort"),
                    hp.to_string(),
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
        match port.protocol.as_deref() {
            None | Some("") => errs.push(FieldError::required(&p.child("protocol"), "")),
            Some(v) if PORT_PROTOCOLS.contains(&v) => {}
            Some(v) => errs.push(FieldError::not_supported(
                &p.child("protocol"),
                render::q(v),
                &PORT_PROTOCOLS,
            )),
        }
    }
    errs
}

/// Mirrors `ValidateEnv` (names, and `value` with `valueFrom`).
fn validate_env(env: &[EnvVar], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, e) in env.iter().enumerate() {
        let p = path.index(i);
        if e.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            for msg in is_env_var_name(&e.name) {
                errs.push(FieldError::invalid(
                    &p.child("name"),
                    render::q(&e.name),
                    &msg,
                ));
            }
        }
        if e.value_from.is_some() && e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errs.push(FieldError::invalid(
                &p.child("valueFrom"),
                "",
                "may not be specified when `value` is not empty",
            ));
        }
    }
    errs
}

/// Mirrors `ValidateVolumeMounts`: names must be volumes, mount paths set and unique.
fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeSet<&str>,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut paths = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else if !volumes.contains(m.name.as_str()) {
            errs.push(FieldError::not_found(&p.child("name"), render::q(&m.name)));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&p.child("mountPath"), ""));
        } else if !paths.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                &p.child("mountPath"),
                render::q(&m.mount_path),
                "must be unique",
            ));
        }
    }
    errs
}

/// Mirrors `validateProbe`: one handler, non-negative numbers, `successThreshold` 1 for
/// liveness and startup probes.
fn validate_probe(probe: &Probe, success_must_be_one: bool, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let handlers = [
        probe.exec.is_some(),
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.grpc.is_some(),
    ];
    match handlers.iter().filter(|h| **h).count() {
        0 => errs.push(FieldError::required(path, "must specify a handler type")),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            path,
            "may not specify more than 1 handler type",
        )),
    }
    for (field, v) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative(v as i64, &path.child(field)));
        }
    }
    if success_must_be_one {
        if let Some(s) = probe.success_threshold.filter(|s| *s != 1) {
            errs.push(FieldError::invalid(
                &path.child("successThreshold"),
                s.to_string(),
                "must be 1",
            ));
        }
    }
    errs
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Whether a resource name has a domain (a `/`), found by byte: `contains('/')`'s searcher
/// costs more than these few bytes.
fn has_slash(name: &str) -> bool {
    name.bytes().any(|c| c == b'/')
}

/// `IsNativeResource`: no domain, or a `kubernetes.io/` one.
fn is_native_resource(name: &str) -> bool {
    !has_slash(name) || name.contains("kubernetes.io/")
}

/// `IsOvercommitAllowed`.
fn is_overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_hugepages(name)
}

/// Mirrors `ValidateContainerResourceName` and `ValidateResourceQuantityValue` for one entry.
fn validate_resource_entry(
    name: &str,
    quantity: &ApiQuantity,
    path: &Path,
) -> (Vec<FieldError>, Option<Quantity>) {
    let mut errs: Vec<FieldError> = Vec::new();
    for msg in super::names::is_qualified_name(name) {
        errs.push(FieldError::invalid(path, name, &msg));
    }
    if errs.is_empty() {
        if !has_slash(name) {
            if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_hugepages(name) {
                errs.push(FieldError::invalid(
                    path,
                    name,
                    "must be a standard resource for containers",
                ));
            }
        } else if !is_native_resource(name) {
            let extended = !name.starts_with("requests.")
                && super::names::is_qualified_name(&format!("requests.{name}")).is_empty();
            if !extended {
                errs.push(FieldError::invalid(
                    path,
                    name,
                    "doesn't follow extended resource name standard",
                ));
            }
        }
    }
    let parsed = match parse_quantity(&quantity.0) {
        Ok(q) => q,
        Err(e) => {
            errs.push(FieldError::invalid(
                path,
                render::q(&quantity.0),
                &e.to_string(),
            ));
            return (errs, None);
        }
    };
    if parsed.is_negative() {
        errs.push(FieldError::invalid(
            path,
            render::q(&parsed.to_string()),
            IS_NEGATIVE_ERROR_MSG,
        ));
    }
    if !is_native_resource(name) && parsed.milli_value() % 1000 != 0 {
        errs.push(FieldError::invalid(
            path,
            render::q(&parsed.to_string()),
            "must be an integer",
        ));
    }
    (errs, Some(parsed))
}

/// Mirrors `ValidateResourceRequirements`: valid names and quantities, requests ≤ limits
/// (equal for resources that cannot be overcommitted).
fn validate_resource_requirements(r: &ResourceRequirements, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let empty = BTreeMap::new();
    // The parsed limits by name, borrowed from the object (no copy of each name).
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    for (name, q) in r.limits.as_ref().unwrap_or(&empty) {
        let (e, parsed) = validate_resource_entry(name, q, &lim_path.key(name));
        errs.extend(e);
        if let Some(p) = parsed {
            limits.insert(name, p);
        }
    }
    for (name, q) in r.requests.as_ref().unwrap_or(&empty) {
        let (e, parsed) = validate_resource_entry(name, q, &req_path.key(name));
        errs.extend(e);
        let Some(request) = parsed else { continue };
        match limits.get(name.as_str()) {
            Some(limit) if request != *limit && !is_overcommit_allowed(name) => {
                errs.push(FieldError::invalid(
                    &req_path,
                    render::q(&request.to_string()),
                    &format!("must be equal to {name} limit of {limit}"),
                ))
            }
            Some(limit) if request > *limit => errs.push(FieldError::invalid(
                &req_path,
                render::q(&request.to_string()),
                &format!("must be less than or equal to {name} limit of {limit}"),
            )),
            Some(_) => {}
            None if !is_overcommit_allowed(name)
                && !r.limits.as_ref().is_some_and(|l| l.contains_key(name)) =>
            {
                errs.push(FieldError::required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ))
            }
            None => {}
        }
    }
    errs
}

fn render_toleration(t: &Toleration) -> String {
    format!(
        "core.Toleration{{Key:{}, Operator:{}, Value:{}, Effect:{}, TolerationSeconds:{}}}",
        render::q(t.key.as_deref().unwrap_or("")),
        render::q(t.operator.as_deref().unwrap_or("")),
        render::q(t.value.as_deref().unwrap_or("")),
        render::q(t.effect.as_deref().unwrap_or("")),
        match t.toleration_seconds {
            None => "(*int64)(nil)".to_string(),
            Some(s) => format!("&{s}"),
        }
    )
}

/// Mirrors `validateTaintEffect`.
pub(super) fn validate_taint_effect(
    effect: &str,
    allow_empty: bool,
    path: &Path,
) -> Vec<FieldError> {
    if effect.is_empty() {
        if allow_empty {
            return Vec::new();
        }
        return vec![FieldError::required(path, "")];
    }
    if TAINT_EFFECTS.contains(&effect) {
        Vec::new()
    } else {
        vec![FieldError::not_supported(
            path,
            render::q(effect),
            &TAINT_EFFECTS,
        )]
    }
}

/// Mirrors `ValidateTolerations`.
pub(super) fn validate_tolerations(tolerations: &[Toleration], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let key = t.key.as_deref().unwrap_or("");
        let op = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        if !key.is_empty() {
            errs.extend(validate_label_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                &p.child("operator"),
                render::q(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &p.child("effect"),
                render::q(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        render::q(value),
                        &msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        render_toleration(t),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                &p.child("operator"),
                render::q(other),
                &TOLERATION_OPERATORS,
            )),
        }
        errs.extend(validate_taint_effect(effect, true, &p.child("effect")));
    }
    errs
}

/// Mirrors `validateOnlyAddedTolerations`: every old toleration is still there (its
/// `tolerationSeconds` may change), then the new list is validated.
fn validate_only_added_tolerations(
    new: &[Toleration],
    old: &[Toleration],
    path: &Path,
) -> Vec<FieldError> {
    for o in old {
        let found = new.iter().any(|n| {
            Toleration {
                toleration_seconds: n.toleration_seconds,
                ..o.clone()
            } == *n
        });
        if !found {
            return vec![FieldError::forbidden(
                path,
                "existing toleration can not be modified except its tolerationSeconds",
            )];
        }
    }
    validate_tolerations(new, path)
}

/// Mirrors `ValidateContainerUpdates`: same number of containers, images not emptied.
/// Returns `true` to stop (containers added or removed).
fn validate_container_updates(
    new: &[Container],
    old: &[Container],
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> bool {
    if new.len() != old.len() {
        errs.push(FieldError::forbidden(
            path,
            "pod updates may not add or remove containers",
        ));
        return true;
    }
    for (i, c) in new.iter().enumerate() {
        let image = c.image.as_deref().unwrap_or("");
        if image.is_empty() {
            errs.push(FieldError::required(&path.index(i).child("image"), ""));
        }
        if image.trim() != image {
            errs.push(FieldError::invalid(
                &path.index(i).child("image"),
                render::q(image),
                "must not have leading or trailing whitespace",
            ));
        }
    }
    false
}

/// Mirrors `ValidatePodUpdate`: the new pod must be valid, and its spec may differ from the
/// old one only in container images, `activeDeadlineSeconds` (set, or lowered), added
/// tolerations (or changed `tolerationSeconds`), and `terminationGracePeriodSeconds` from a
/// negative value to 1.
///
/// Binding (`spec.nodeName`) and status writes are not updates of the pod spec: the API
/// server must not route them through this function.
pub(super) fn validate_pod_update(new: &Pod, old: &Pod) -> Vec<FieldError> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_pod_metadata_and_spec(new));
    let spec_path = Path::new("spec");
    let default_spec = PodSpec::default();
    let ns = new.spec.as_ref().unwrap_or(&default_spec);
    let os = old.spec.as_ref().unwrap_or(&default_spec);

    if validate_container_updates(
        &ns.containers,
        &os.containers,
        &spec_path.child("containers"),
        &mut errs,
    ) {
        return errs;
    }
    let (ni, oi) = (
        ns.init_containers.clone().unwrap_or_default(),
        os.init_containers.clone().unwrap_or_default(),
    );
    if validate_container_updates(&ni, &oi, &spec_path.child("initContainers"), &mut errs) {
        return errs;
    }

    let ads_path = spec_path.child("activeDeadlineSeconds");
    match (ns.active_deadline_seconds, os.active_deadline_seconds) {
        (Some(n), _) if !(0..=i32::MAX as i64).contains(&n) => {
            errs.push(FieldError::invalid(
                &ads_path,
                n.to_string(),
                &inclusive_range_error(0, i32::MAX as i64),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                &ads_path,
                n.to_string(),
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => errs.push(FieldError::invalid(
            &ads_path,
            "null",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }

    errs.extend(validate_only_added_tolerations(
        ns.tolerations.as_deref().unwrap_or(&[]),
        os.tolerations.as_deref().unwrap_or(&[]),
        &spec_path.child("tolerations"),
    ));

    if ns == os {
        return errs;
    }
    // Take the updatable fields from the old spec; anything else that differs is forbidden.
    let mut munged = ns.clone();
    for (c, o) in munged.containers.iter_mut().zip(&os.containers) {
        c.image = o.image.clone();
    }
    if let Some(inits) = munged.init_containers.as_mut() {
        for (c, o) in inits.iter_mut().zip(&oi) {
            c.image = o.image.clone();
        }
    }
    munged.active_deadline_seconds = os.active_deadline_seconds;
    munged.tolerations = os.tolerations.clone();
    munged.scheduling_gates = os.scheduling_gates.clone();
    if os.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = os.termination_grace_period_seconds;
    }
    if munged != *os {
        errs.push(FieldError::forbidden(
            &spec_path,
            &format!("{POD_UPDATE_FORBIDDEN}\n{}", spec_diff(os, &munged)),
        ));
    }
    errs
}

/// A short diff of two pod specs by top-level field, in the spirit of upstream's `cmp.Diff`.
fn spec_diff(old: &PodSpec, new: &PodSpec) -> String {
    let to_map = |s: &PodSpec| match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (o, n) = (to_map(old), to_map(new));
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        let (ov, nv) = (o.get(k), n.get(k));
        if ov != nv {
            if let Some(v) = ov {
                out.push_str(&format!("- \t{k}: {v},\n"));
            }
            if let Some(v) = nv {
                out.push_str(&format!("+ \t{k}: {v},\n"));
            }
        }
    }
    out.push_str("  }\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::{validate, validate_update};
    use super::*;
    use crate::api::{defaults, Object};
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, ExecAction, HTTPGetAction};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    /// A valid, defaulted pod with one container.
    fn pod() -> Pod {
        let mut obj = Object::from(Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx:1.27".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        });
        defaults::apply(&mut obj);
        match obj {
            Object::Pod(p) => std::sync::Arc::unwrap_or_clone(p),
            _ => unreachable!(),
        }
    }

    fn spec(p: &mut Pod) -> &mut PodSpec {
        p.spec.as_mut().unwrap()
    }

    fn ctr(p: &mut Pod) -> &mut Container {
        &mut spec(p).containers[0]
    }

    fn errors(p: Pod) -> Vec<FieldError> {
        validate(&Object::Pod(p.into()))
    }

    fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, ApiQuantity>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ApiQuantity(v.to_string())))
                .collect(),
        )
    }

    /// One case per pod spec rule: the mutation and the field path of the (only) error.
    #[test]
    fn pod_spec_rules() {
        assert_eq!(errors(pod()), vec![], "the base pod is valid");
        type Mutation = fn(&mut Pod);
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "no containers",
                |p| spec(p).containers.clear(),
                "spec.containers",
            ),
            (
                "container name required",
                |p| ctr(p).name.clear(),
                "spec.containers[0].name",
            ),
            (
                "container name is a DNS label",
                |p| ctr(p).name = "App".into(),
                "spec.containers[0].name",
            ),
            (
                "duplicate container names",
                |p| {
                    let c = ctr(p).clone();
                    spec(p).containers.push(c)
                },
                "spec.containers[1].name",
            ),
            (
                "image required",
                |p| ctr(p).image = None,
                "spec.containers[0].image",
            ),
            (
                "image whitespace",
                |p| ctr(p).image = Some(" nginx".into()),
                "spec.containers[0].image",
            ),
            (
                "pull policy",
                |p| ctr(p).image_pull_policy = Some("Sometimes".into()),
                "spec.containers[0].imagePullPolicy",
            ),
            (
                "termination message policy",
                |p| ctr(p).termination_message_policy = Some("X".into()),
                "spec.containers[0].terminationMessagePolicy",
            ),
            (
                "container port range",
                |p| {
                    ctr(p).ports = Some(vec![ContainerPort {
                        container_port: 70000,
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }])
                },
                "spec.containers[0].ports[0].containerPort",
            ),
            (
                "container port required",
                |p| {
                    ctr(p).ports = Some(vec![ContainerPort {
                        container_port: 0,
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }])
                },
                "spec.containers[0].ports[0].containerPort",
            ),
            (
                "host port range",
                |p| {
                    ctr(p).ports = Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(-1),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }])
                },
                "spec.containers[0].ports[0].hostPort",
            ),
            (
                "port protocol",
                |p| {
                    ctr(p).ports = Some(vec![ContainerPort {
                        container_port: 80,
                        protocol: Some("HTTP".into()),
                        ..Default::default()
                    }])
                },
                "spec.containers[0].ports[0].protocol",
            ),
            (
                "port name",
                |p| {
                    ctr(p).ports = Some(vec![ContainerPort {
                        container_port: 80,
                        name: Some("http_1".into()),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }])
                },
                "spec.containers[0].ports[0].name",
            ),
            (
                "duplicate port name",
                |p| {
                    let port = ContainerPort {
                        container_port: 80,
                        name: Some("http".into()),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    };
                    ctr(p).ports = Some(vec![
                        port.clone(),
                        ContainerPort {
                            container_port: 81,
                            ..port
                        },
                    ])
                },
                "spec.containers[0].ports[1].name",
            ),
            (
                "env name",
                |p| {
                    ctr(p).env = Some(vec![EnvVar {
                        name: "".into(),
                        ..Default::default()
                    }])
                },
                "spec.containers[0].env[0].name",
            ),
            (
                "requests above limits",
                |p| {
                    ctr(p).resources = Some(ResourceRequirements {
                        limits: quantities(&[("cpu", "1")]),
                        requests: quantities(&[("cpu", "2")]),
                        ..Default::default()
                    })
                },
                "spec.containers[0].resources.requests",
            ),
            (
                "negative quantity",
                |p| {
                    ctr(p).resources = Some(ResourceRequirements {
                        requests: quantities(&[("memory", "-1Mi")]),
                        ..Default::default()
                    })
                },
                "spec.containers[0].resources.requests[memory]",
            ),
            (
                "malformed quantity",
                |p| {
                    ctr(p).resources = Some(ResourceRequirements {
                        limits: quantities(&[("memory", "1GB")]),
                        ..Default::default()
                    })
                },
                "spec.containers[0].resources.limits[memory]",
            ),
            (
                "non-standard resource",
                |p| {
                    ctr(p).resources = Some(ResourceRequirements {
                        limits: quantities(&[("gpu", "1")]),
                        ..Default::default()
                    })
                },
                "spec.containers[0].resources.limits[gpu]",
            ),
            (
                "extended resources are not overcommitted",
                |p| {
                    ctr(p).resources = Some(ResourceRequirements {
                        limits: quantities(&[("example.com/gpu", "2")]),
                        requests: quantities(&[("example.com/gpu", "1")]),
                        ..Default::default()
                    })
                },
                "spec.containers[0].resources.requests",
            ),
            (
                "volume mount names a volume",
                |p| {
                    ctr(p).volume_mounts = Some(vec![VolumeMount {
                        name: "data".into(),
                        mount_path: "/data".into(),
                        ..Default::default()
                    }])
                },
                "spec.containers[0].volumeMounts[0].name",
            ),
            (
                "volume needs a source",
                |p| {
                    spec(p).volumes = Some(vec![Volume {
                        name: "data".into(),
                        ..Default::default()
                    }])
                },
                "spec.volumes[0]",
            ),
            (
                "volume name",
                |p| {
                    spec(p).volumes = Some(vec![Volume {
                        name: "Data".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Default::default()
                    }])
                },
                "spec.volumes[0].name",
            ),
            (
                "probe handler",
                |p| ctr(p).liveness_probe = Some(Probe::default()),
                "spec.containers[0].livenessProbe",
            ),
            (
                "liveness success threshold",
                |p| {
                    ctr(p).liveness_probe = Some(Probe {
                        exec: Some(ExecAction {
                            command: Some(vec!["true".into()]),
                        }),
                        success_threshold: Some(2),
                        ..Default::default()
                    })
                },
                "spec.containers[0].livenessProbe.successThreshold",
            ),
            (
                "probe period",
                |p| {
                    ctr(p).readiness_probe = Some(Probe {
                        http_get: Some(HTTPGetAction {
                            port: IntOrString::Int(80),
                            ..Default::default()
                        }),
                        period_seconds: Some(-1),
                        ..Default::default()
                    })
                },
                "spec.containers[0].readinessProbe.periodSeconds",
            ),
            (
                "container restartPolicy",
                |p| ctr(p).restart_policy = Some("Always".into()),
                "spec.containers[0].restartPolicy",
            ),
            (
                "init container image",
                |p| {
                    spec(p).init_containers = Some(vec![Container {
                        name: "init".into(),
                        ..ctr(p).clone()
                    }
                    .tap(|c| c.image = None)])
                },
                "spec.initContainers[0].image",
            ),
            (
                "init container name unique across containers",
                |p| {
                    let c = ctr(p).clone();
                    spec(p).init_containers = Some(vec![c])
                },
                "spec.initContainers[0].name",
            ),
            (
                "init container probes",
                |p| {
                    let probe = Probe {
                        exec: Some(ExecAction {
                            command: Some(vec!["true".into()]),
                        }),
                        ..Default::default()
                    };
                    spec(p).init_containers = Some(vec![Container {
                        name: "init".into(),
                        liveness_probe: Some(probe),
                        ..ctr(p).clone()
                    }])
                },
                "spec.initContainers[0].livenessProbe",
            ),
            (
                "restart policy required",
                |p| spec(p).restart_policy = None,
                "spec.restartPolicy",
            ),
            (
                "restart policy enum",
                |p| spec(p).restart_policy = Some("Sometimes".into()),
                "spec.restartPolicy",
            ),
            (
                "dns policy enum",
                |p| spec(p).dns_policy = Some("Google".into()),
                "spec.dnsPolicy",
            ),
            (
                "dns policy None needs dnsConfig",
                |p| spec(p).dns_policy = Some("None".into()),
                "spec.dnsConfig",
            ),
            (
                "node selector",
                |p| spec(p).node_selector = Some([("a b".to_string(), "x".to_string())].into()),
                "spec.nodeSelector",
            ),
            (
                "node name",
                |p| spec(p).node_name = Some("Node_1".into()),
                "spec.nodeName",
            ),
            (
                "service account name",
                |p| spec(p).service_account_name = Some("SA".into()),
                "spec.serviceAccountName",
            ),
            (
                "hostname",
                |p| spec(p).hostname = Some("a.b".into()),
                "spec.hostname",
            ),
            (
                "active deadline",
                |p| spec(p).active_deadline_seconds = Some(0),
                "spec.activeDeadlineSeconds",
            ),
            (
                "termination grace period",
                |p| spec(p).termination_grace_period_seconds = Some(-1),
                "spec.terminationGracePeriodSeconds",
            ),
            (
                "toleration operator",
                |p| {
                    spec(p).tolerations = Some(vec![Toleration {
                        key: Some("k".into()),
                        operator: Some("In".into()),
                        ..Default::default()
                    }])
                },
                "spec.tolerations[0].operator",
            ),
            (
                "toleration empty key needs Exists",
                |p| {
                    spec(p).tolerations = Some(vec![Toleration {
                        operator: Some("Equal".into()),
                        ..Default::default()
                    }])
                },
                "spec.tolerations[0].operator",
            ),
            (
                "toleration effect",
                |p| {
                    spec(p).tolerations = Some(vec![Toleration {
                        key: Some("k".into()),
                        operator: Some("Exists".into()),
                        effect: Some("Never".into()),
                        ..Default::default()
                    }])
                },
                "spec.tolerations[0].effect",
            ),
            (
                "toleration seconds need NoExecute",
                |p| {
                    spec(p).tolerations = Some(vec![Toleration {
                        key: Some("k".into()),
                        operator: Some("Exists".into()),
                        effect: Some("NoSchedule".into()),
                        toleration_seconds: Some(5),
                        ..Default::default()
                    }])
                },
                "spec.tolerations[0].effect",
            ),
            (
                "toleration key",
                |p| {
                    spec(p).tolerations = Some(vec![Toleration {
                        key: Some("-k".into()),
                        operator: Some("Exists".into()),
                        ..Default::default()
                    }])
                },
                "spec.tolerations[0].key",
            ),
            (
                "pod name",
                |p| p.metadata.name = Some("Web".into()),
                "metadata.name",
            ),
        ];
        for (name, mutate, field) in cases {
            let mut p = pod();
            mutate(&mut p);
            let errs = errors(p);
            let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, vec![field], "{name}: {errs:#?}");
        }
    }

    trait Tap: Sized {
        fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
            f(&mut self);
            self
        }
    }
    impl Tap for Container {}

    /// The messages kubectl users see for the headline pod rules.
    #[test]
    fn pod_spec_messages() {
        let msg = |f: fn(&mut Pod)| {
            let mut p = pod();
            f(&mut p);
            errors(p).iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(
            msg(|p| spec(p).containers.clear()),
            vec!["spec.containers: Required value"]
        );
        assert_eq!(
            msg(|p| ctr(p).image = None),
            vec!["spec.containers[0].image: Required value"]
        );
        assert_eq!(
            msg(|p| ctr(p).ports = Some(vec![ContainerPort { container_port: 70000, protocol: Some("TCP".into()), ..Default::default() }])),
            vec!["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
        );
        assert_eq!(
            msg(|p| ctr(p).resources = Some(ResourceRequirements {
                limits: quantities(&[("cpu", "1")]),
                requests: quantities(&[("cpu", "2")]),
                ..Default::default()
            })),
            vec!["spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"]
        );
        assert_eq!(
            msg(|p| spec(p).restart_policy = Some("Sometimes".into())),
            vec!["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\""]
        );
        assert_eq!(
            msg(|p| {
                let c = ctr(p).clone();
                spec(p).containers.push(c)
            }),
            vec!["spec.containers[1].name: Duplicate value: \"app\""]
        );
        assert_eq!(
            msg(|p| ctr(p).image_pull_policy = Some("Sometimes".into())),
            vec!["spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""]
        );
    }

    fn update(new: &Pod, old: &Pod) -> Vec<FieldError> {
        validate_update(
            &Object::Pod(new.clone().into()),
            &Object::Pod(old.clone().into()),
        )
    }

    /// What a pod update may and may not change.
    #[test]
    fn pod_update_rules() {
        let old = pod();
        assert_eq!(update(&old, &old), vec![]);

        let mut new = old.clone();
        ctr(&mut new).image = Some("nginx:1.28".into());
        assert_eq!(update(&new, &old), vec![], "images may change");

        let mut new = old.clone();
        spec(&mut new).active_deadline_seconds = Some(30);
        assert_eq!(
            update(&new, &old),
            vec![],
            "activeDeadlineSeconds may be set"
        );
        let mut newer = new.clone();
        spec(&mut newer).active_deadline_seconds = Some(60);
        assert_eq!(
            update(&newer, &new)[0].field,
            "spec.activeDeadlineSeconds",
            "but not raised"
        );
        assert_eq!(
            update(&old, &new)[0].field,
            "spec.activeDeadlineSeconds",
            "nor unset"
        );

        let mut new = old.clone();
        let extra = Toleration {
            key: Some("k".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        };
        spec(&mut new)
            .tolerations
            .get_or_insert_with(Vec::new)
            .push(extra);
        assert_eq!(update(&new, &old), vec![], "tolerations may be added");
        let errs = update(&old, &new);
        assert_eq!(errs[0].to_string(), "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds");

        let mut new = old.clone();
        let second = Container {
            name: "b".into(),
            ..ctr(&mut new).clone()
        };
        spec(&mut new).containers.push(second);
        assert_eq!(
            update(&new, &old)[0].to_string(),
            "spec.containers: Forbidden: pod updates may not add or remove containers"
        );

        let mut new = old.clone();
        spec(&mut new).node_name = Some("n1".into());
        let errs = update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
        assert!(
            errs[0].detail.starts_with(POD_UPDATE_FORBIDDEN),
            "{}",
            errs[0].detail
        );
        assert!(errs[0].detail.contains("nodeName"), "{}", errs[0].detail);

        let mut new = old.clone();
        ctr(&mut new).image = None;
        let fields: Vec<String> = update(&new, &old).into_iter().map(|e| e.field).collect();
        assert!(
            fields.contains(&"spec.containers[0].image".to_string()),
            "{fields:?}"
        );

        let mut new = old.clone();
        new.metadata.name = Some("other".into());
        assert_eq!(
            update(&new, &old)[0].to_string(),
            "metadata.name: Invalid value: \"other\": field is immutable"
        );

        let mut new = old.clone();
        new.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        assert_eq!(update(&new, &old), vec![], "labels may change");
    }
}
