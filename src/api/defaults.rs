//! Defaulting, mirroring kube-apiserver's `pkg/apis/core/v1/defaults.go` and
//! `pkg/apis/apps/v1/defaults.go`, plus the two admission plugins that fill in pod fields on
//! create in a default cluster (`Priority`, `DefaultTolerationSeconds`).
//!
//! Defaulting only fills what is unset; it never overwrites a value the client gave (except
//! the namespace's `kubernetes.io/metadata.name` label, which upstream always sets). It is
//! idempotent, so the API server may run it on create and on update.
//!
//! Not done here, as upstream does not do it in defaulting either: the apps/v1 Deployment and
//! ReplicaSet selectors and template labels; the `ServiceAccount` admission plugin
//! (`serviceAccountName: default` and its token volume).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, Namespace, NamespaceStatus, Node, Pod, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Object;

/// `v1.DefaultTerminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// `v1.DefaultSchedulerName`.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// `v1.TerminationMessagePathDefault`.
pub const TERMINATION_MESSAGE_PATH_DEFAULT: &str = "/dev/termination-log";
/// `DefaultTolerationSeconds` admission's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;
/// The taint the node lifecycle controller puts on nodes that are not ready.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint the node lifecycle controller puts on nodes it cannot reach.
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// `v1.LabelMetadataName`, set on every namespace.
pub const LABEL_METADATA_NAME: &str = "kubernetes.io/metadata.name";
/// The default `defaultMode` of secret, config map, projected and downward API volumes.
const DEFAULT_VOLUME_MODE: i32 = 0o644;

/// Fill in the defaults of an object about to be created or updated.
pub fn apply(obj: &mut Object) {
    match obj {
        Object::Namespace(ns) => default_namespace(Arc::make_mut(ns)),
        Object::Node(n) => default_node(Arc::make_mut(n)),
        Object::Pod(p) => default_pod(Arc::make_mut(p)),
        Object::Event(_) | Object::Lease(_) => {}
        Object::Deployment(d) => default_deployment(Arc::make_mut(d)),
        Object::ReplicaSet(rs) => default_replica_set(Arc::make_mut(rs)),
    }
}

/// Mirrors `SetDefaults_Namespace` (the `kubernetes.io/metadata.name` label) and
/// `SetDefaults_NamespaceStatus` (phase `Active`).
fn default_namespace(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(LABEL_METADATA_NAME.to_string(), name);
    }
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    if status.phase.as_deref().unwrap_or("").is_empty() {
        status.phase = Some("Active".into());
    }
}

/// Mirrors `SetDefaults_NodeStatus`: allocatable defaults to capacity.
fn default_node(node: &mut Node) {
    if let Some(status) = node.status.as_mut() {
        if status.allocatable.is_none() && status.capacity.is_some() {
            status.allocatable = status.capacity.clone();
        }
    }
}

/// Mirrors `SetDefaults_Deployment` in `pkg/apis/apps/v1/defaults.go`: 1 replica, a
/// RollingUpdate strategy of 25%/25%, 10 old ReplicaSets kept, a 600 s progress deadline.
fn default_deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    if strategy.type_.as_deref().unwrap_or("").is_empty() {
        strategy.type_ = Some("RollingUpdate".into());
    }
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        ru.max_unavailable
            .get_or_insert_with(|| IntOrString::String("25%".into()));
        ru.max_surge
            .get_or_insert_with(|| IntOrString::String("25%".into()));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    default_pod_template(&mut spec.template);
}

/// Mirrors `SetDefaults_ReplicaSet`: 1 replica.
fn default_replica_set(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    if let Some(template) = spec.template.as_mut() {
        default_pod_template(template);
    }
}

/// A pod template gets the pod spec and container defaults, but not `SetDefaults_Pod`'s
/// (requests from limits, `enableServiceLinks`) nor admission's.
fn default_pod_template(template: &mut PodTemplateSpec) {
    if let Some(spec) = template.spec.as_mut() {
        default_pod_spec(spec);
    }
}

/// Mirrors `SetDefaults_Pod` and `SetDefaults_PodSpec`, then the `Priority` and
/// `DefaultTolerationSeconds` admission plugins.
fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    default_pod_spec(spec);
    // SetDefaults_Pod: requests default to limits, per resource.
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if let Some(res) = c.resources.as_mut() {
            if let Some(limits) = &res.limits {
                // Only what is missing is copied: most pods set both, or neither.
                let requests = res.requests.get_or_insert_with(BTreeMap::new);
                for (k, v) in limits {
                    if !requests.contains_key(k) {
                        requests.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    spec.enable_service_links.get_or_insert(true);
    if spec.host_network == Some(true) {
        // defaultHostNetworkPorts: with the host's network, the host port is the container port.
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            for port in c.ports.iter_mut().flatten() {
                if port.host_port.unwrap_or(0) == 0 {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
    // Priority admission: no priority class and no global default class means priority 0.
    if spec.priority_class_name.as_deref().unwrap_or("").is_empty() {
        spec.priority.get_or_insert(0);
    }
    add_default_tolerations(spec);
}

/// Mirrors the `DefaultTolerationSeconds` admission plugin: tolerate `not-ready` and
/// `unreachable` nodes for 300 s unless the pod already tolerates them.
fn add_default_tolerations(spec: &mut PodSpec) {
    add_default_tolerations_with(spec, DEFAULT_TOLERATION_SECONDS, DEFAULT_TOLERATION_SECONDS);
}

/// The `DefaultTolerationSeconds` admission plugin with its two flags
/// (`--default-not-ready-toleration-seconds`, `--default-unreachable-toleration-seconds`):
/// the API server runs it on pod creation with `[apiserver]`'s values before defaulting,
/// which then finds both tolerations present and adds nothing.
pub fn add_default_tolerations_with(spec: &mut PodSpec, not_ready: i64, unreachable: i64) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let tolerates = |key: &str| {
        tolerations.iter().any(|t| {
            let k = t.key.as_deref().unwrap_or("");
            let e = t.effect.as_deref().unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        })
    };
    let missing: Vec<&str> = [TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE]
        .into_iter()
        .filter(|k| !tolerates(k))
        .collect();
    for key in missing {
        let seconds = if key == TAINT_NODE_NOT_READY {
            not_ready
        } else {
            unreachable
        };
        tolerations.push(Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(seconds),
            value: None,
        });
    }
}

/// Mirrors `SetDefaults_PodSpec` and, through the generated defaulters, the defaults of
/// containers, ports, probes and volumes.
fn default_pod_spec(spec: &mut PodSpec) {
    if spec.dns_policy.as_deref().unwrap_or("").is_empty() {
        spec.dns_policy = Some("ClusterFirst".into());
    }
    if spec.restart_policy.as_deref().unwrap_or("").is_empty() {
        spec.restart_policy = Some("Always".into());
    }
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    if spec.scheduler_name.as_deref().unwrap_or("").is_empty() {
        spec.scheduler_name = Some(DEFAULT_SCHEDULER_NAME.into());
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

/// Mirrors `SetDefaults_Container`, `SetDefaults_ContainerPort`, `SetDefaults_Probe`,
/// `SetDefaults_HTTPGetAction` and `SetDefaults_ObjectFieldSelector`.
fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        let tag = image_tag(c.image.as_deref().unwrap_or(""));
        c.image_pull_policy = Some(
            if tag == Some("latest") {
                "Always"
            } else {
                "IfNotPresent"
            }
            .into(),
        );
    }
    if c.termination_message_path
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        c.termination_message_path = Some(TERMINATION_MESSAGE_PATH_DEFAULT.into());
    }
    if c.termination_message_policy
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        c.termination_message_policy = Some("File".into());
    }
    for port in c.ports.iter_mut().flatten() {
        if port.protocol.as_deref().unwrap_or("").is_empty() {
            port.protocol = Some("TCP".into());
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    for env in c.env.iter_mut().flatten() {
        if let Some(field_ref) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            if field_ref.api_version.as_deref().unwrap_or("").is_empty() {
                field_ref.api_version = Some("v1".into());
            }
        }
    }
}

fn default_probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(http) = p.http_get.as_mut() {
        if http.path.as_deref().unwrap_or("").is_empty() {
            http.path = Some("/".into());
        }
        if http.scheme.as_deref().unwrap_or("").is_empty() {
            http.scheme = Some("HTTP".into());
        }
    }
}

/// Mirrors `SetDefaults_Volume` (no source means an `emptyDir`) and the `defaultMode`
/// defaults of secret, config map, projected and downward API volumes.
fn default_volume(v: &mut Volume) {
    let has_source = match serde_json::to_value(&*v) {
        Ok(serde_json::Value::Object(m)) => m.keys().any(|k| k != "name"),
        _ => true,
    };
    if !has_source {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(s) = v.secret.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(s) = v.config_map.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(s) = v.projected.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(s) = v.downward_api.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
}

/// The tag of an image reference as `parsers.ParseImageName` sees it: `latest` when there
/// is neither tag nor digest, `None` for a digest-only reference.
fn image_tag(image: &str) -> Option<&str> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => Some(tag),
        None if digest.is_some() => None,
        None => Some("latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetSpec};
    use k8s_openapi::api::core::v1::{
        ContainerPort, HTTPGetAction, NodeStatus, ResourceRequirements, SecretVolumeSource,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn container(image: &str) -> Container {
        Container {
            name: "app".into(),
            image: Some(image.into()),
            ..Default::default()
        }
    }

    fn defaulted_pod(spec: PodSpec) -> PodSpec {
        let mut obj = Object::from(Pod {
            spec: Some(spec),
            ..Default::default()
        });
        apply(&mut obj);
        match obj {
            Object::Pod(p) => Arc::unwrap_or_clone(p).spec.unwrap(),
            _ => unreachable!(),
        }
    }

    /// Pull policy follows the image tag.
    #[test]
    fn image_pull_policy_by_tag() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("registry:5000/team/app", "Always"),
            ("registry:5000/team/app:v2", "IfNotPresent"),
            ("nginx@sha256:abc", "IfNotPresent"),
            ("nginx:latest@sha256:abc", "Always"),
        ];
        for (image, want) in cases {
            let spec = defaulted_pod(PodSpec {
                containers: vec![container(image)],
                ..Default::default()
            });
            assert_eq!(
                spec.containers[0].image_pull_policy.as_deref(),
                Some(want),
                "{image}"
            );
        }
        let mut c = container("nginx");
        c.image_pull_policy = Some("Never".into());
        let spec = defaulted_pod(PodSpec {
            containers: vec![c],
            ..Default::default()
        });
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("Never"),
            "kept when set"
        );
    }

    /// Pod spec, container, port and probe defaults, and the pod-only ones.
    #[test]
    fn pod_defaults() {
        let mut c = container("nginx:1.27");
        c.ports = Some(vec![ContainerPort {
            container_port: 80,
            ..Default::default()
        }]);
        c.readiness_probe = Some(Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(80),
                ..Default::default()
            }),
            ..Default::default()
        });
        c.resources = Some(ResourceRequirements {
            limits: Some([("cpu".to_string(), Quantity("500m".into()))].into()),
            ..Default::default()
        });
        let spec = defaulted_pod(PodSpec {
            containers: vec![c],
            volumes: Some(vec![
                Volume {
                    name: "scratch".into(),
                    ..Default::default()
                },
                Volume {
                    name: "creds".into(),
                    secret: Some(SecretVolumeSource::default()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.security_context, Some(PodSecurityContext::default()));
        assert_eq!(spec.enable_service_links, Some(true));
        assert_eq!(spec.priority, Some(0));
        let c = &spec.containers[0];
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        assert_eq!(
            c.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let probe = c.readiness_probe.as_ref().unwrap();
        assert_eq!(
            (
                probe.timeout_seconds,
                probe.period_seconds,
                probe.success_threshold,
                probe.failure_threshold
            ),
            (Some(1), Some(10), Some(1), Some(3))
        );
        assert_eq!(probe.http_get.as_ref().unwrap().path.as_deref(), Some("/"));
        assert_eq!(
            probe.http_get.as_ref().unwrap().scheme.as_deref(),
            Some("HTTP")
        );
        assert_eq!(
            c.resources.as_ref().unwrap().requests,
            Some([("cpu".to_string(), Quantity("500m".into()))].into()),
            "requests default to limits"
        );
        let volumes = spec.volumes.unwrap();
        assert_eq!(volumes[0].empty_dir, Some(EmptyDirVolumeSource::default()));
        assert_eq!(
            volumes[1].secret.as_ref().unwrap().default_mode,
            Some(0o644)
        );

        let tolerations = spec.tolerations.unwrap();
        assert_eq!(tolerations.len(), 2);
        for (t, key) in tolerations
            .iter()
            .zip([TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE])
        {
            assert_eq!(t.key.as_deref(), Some(key));
            assert_eq!(t.operator.as_deref(), Some("Exists"));
            assert_eq!(t.effect.as_deref(), Some("NoExecute"));
            assert_eq!(t.toleration_seconds, Some(300));
        }
    }

    /// Defaulting twice changes nothing, and existing tolerations of the taints are kept.
    #[test]
    fn pod_defaults_are_idempotent() {
        let once = defaulted_pod(PodSpec {
            containers: vec![container("nginx")],
            ..Default::default()
        });
        assert_eq!(defaulted_pod(once.clone()), once);
        let tolerate_all = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        let spec = defaulted_pod(PodSpec {
            containers: vec![container("nginx")],
            tolerations: Some(vec![tolerate_all.clone()]),
            ..Default::default()
        });
        assert_eq!(spec.tolerations, Some(vec![tolerate_all]));
    }

    /// A limit fills only the requests that are missing; a given request stays.
    #[test]
    fn requests_default_to_limits_only_where_missing() {
        let q = |s: &str| Quantity(s.into());
        let mut c = container("nginx");
        c.resources = Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), q("100m"))].into()),
            limits: Some(
                [
                    ("cpu".to_string(), q("500m")),
                    ("memory".to_string(), q("256Mi")),
                ]
                .into(),
            ),
            ..Default::default()
        });
        let spec = defaulted_pod(PodSpec {
            containers: vec![c],
            ..Default::default()
        });
        assert_eq!(
            spec.containers[0].resources.as_ref().unwrap().requests,
            Some(
                [
                    ("cpu".to_string(), q("100m")),
                    ("memory".to_string(), q("256Mi"))
                ]
                .into()
            )
        );
    }

    /// Deployment defaults, and template defaults without the pod-only ones.
    #[test]
    fn deployment_defaults() {
        let mut obj = Object::from(Deployment {
            spec: Some(DeploymentSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![container("nginx")],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        });
        apply(&mut obj);
        let Object::Deployment(d) = obj else {
            unreachable!()
        };
        let d = Arc::unwrap_or_clone(d);
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
        let strategy = spec.strategy.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        let ru = strategy.rolling_update.unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
        assert_eq!(ru.max_unavailable, Some(IntOrString::String("25%".into())));
        assert_eq!(
            spec.selector,
            Default::default(),
            "selector is not defaulted in apps/v1"
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            pod.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
        assert_eq!(pod.tolerations, None, "templates get no admission defaults");
        assert_eq!(pod.enable_service_links, None);

        let mut recreate = Object::from(Deployment {
            spec: Some(DeploymentSpec {
                strategy: Some(DeploymentStrategy {
                    type_: Some("Recreate".into()),
                    rolling_update: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        apply(&mut recreate);
        let Object::Deployment(d) = recreate else {
            unreachable!()
        };
        let d = Arc::unwrap_or_clone(d);
        assert_eq!(
            d.spec.unwrap().strategy.unwrap().rolling_update,
            None,
            "Recreate gets no rollingUpdate"
        );
    }

    /// ReplicaSet, Namespace and Node defaults.
    #[test]
    fn other_kind_defaults() {
        let mut rs = Object::from(ReplicaSet {
            spec: Some(ReplicaSetSpec::default()),
            ..Default::default()
        });
        apply(&mut rs);
        let Object::ReplicaSet(rs) = rs else {
            unreachable!()
        };
        let rs = Arc::unwrap_or_clone(rs);
        assert_eq!(rs.spec.unwrap().replicas, Some(1));

        let mut ns = Object::from(Namespace {
            metadata: ObjectMeta {
                name: Some("team-a".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        apply(&mut ns);
        let Object::Namespace(ns) = ns else {
            unreachable!()
        };
        let ns = Arc::unwrap_or_clone(ns);
        assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
        assert_eq!(
            ns.metadata
                .labels
                .unwrap()
                .get(LABEL_METADATA_NAME)
                .map(String::as_str),
            Some("team-a")
        );

        let capacity: BTreeMap<String, Quantity> =
            [("cpu".to_string(), Quantity("4".into()))].into();
        let mut node = Object::from(Node {
            status: Some(NodeStatus {
                capacity: Some(capacity.clone()),
                ..Default::default()
            }),
            ..Default::default()
        });
        apply(&mut node);
        let Object::Node(node) = node else {
            unreachable!()
        };
        let node = Arc::unwrap_or_clone(node);
        assert_eq!(node.status.unwrap().allocatable, Some(capacity));
    }
}
