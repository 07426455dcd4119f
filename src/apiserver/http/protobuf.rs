//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl's typed commands (`kubectl create deployment`, `kubectl create namespace`,
//! `kubectl run`) POST protobuf: the magic `k8s\0`, then a `runtime.Unknown` whose `raw` is
//! the object's message (k8s.io/apimachinery/pkg/runtime/serializer/protobuf). The message is
//! decoded with the `k8s-pb` types and converted to the object's JSON, which then goes
//! through the same checks as a JSON body. Go encodes empty strings and empty sub-messages
//! explicitly; they are treated as unset.
//!
//! Converted: Deployment, Pod and Namespace, with the fields those commands set and the
//! common ones around them (metadata; selector; strategy; pod template; containers with
//! image, command, args, ports, env values, resources, volume mounts, pull policy;
//! tolerations, node selector, restart policy, …). A protobuf body that sets a field this
//! converter does not know is refused (415, naming the field) rather than silently losing it;
//! JSON and YAML bodies have no such limit.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value};

use super::reviews::Review;
use crate::api::Kind;
use crate::apiserver::ApiError;

/// The bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// Not protobuf, or not the kind of the path (400).
    #[error("{0}")]
    Bad(String),
    /// A kind or field this converter does not handle (415: send JSON instead).
    #[error("protobuf bodies are not supported for {0}; send JSON or YAML")]
    Unsupported(String),
}

/// A body that cannot be taken is 400; one this converter does not handle is 415.
impl From<ProtobufError> for super::HttpError {
    fn from(e: ProtobufError) -> super::HttpError {
        match e {
            ProtobufError::Bad(m) => ApiError::BadRequest(m).into(),
            e @ ProtobufError::Unsupported(_) => {
                super::HttpError::UnsupportedProtobuf(e.to_string())
            }
        }
    }
}

impl From<ProtobufError> for ApiError {
    fn from(e: ProtobufError) -> ApiError {
        ApiError::BadRequest(e.to_string())
    }
}

/// A JSON object built field by field, skipping unset and empty values.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn str(&mut self, key: &str, v: &Option<String>) -> &mut Self {
        if let Some(s) = v.as_deref().filter(|s| !s.is_empty()) {
            self.0.insert(key.into(), Value::from(s));
        }
        self
    }
    fn num<T: Into<Value> + Copy>(&mut self, key: &str, v: Option<T>) -> &mut Self {
        if let Some(n) = v {
            self.0.insert(key.into(), n.into());
        }
        self
    }
    fn val(&mut self, key: &str, v: Option<Value>) -> &mut Self {
        match v {
            Some(Value::Object(m)) if m.is_empty() => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(v) => {
                self.0.insert(key.into(), v);
            }
            None => {}
        }
        self
    }
    fn strs(&mut self, key: &str, v: &[String]) -> &mut Self {
        self.val(key, Some(Value::from(v.to_vec())))
    }
    fn map(&mut self, key: &str, v: &BTreeMap<String, String>) -> &mut Self {
        let m: Map<String, Value> = v
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        self.val(key, Some(Value::Object(m)))
    }
    fn list<T>(
        &mut self,
        key: &str,
        v: &[T],
        f: impl Fn(&T) -> Result<Value, ProtobufError>,
    ) -> Result<&mut Self, ProtobufError> {
        let items = v.iter().map(f).collect::<Result<Vec<_>, _>>()?;
        Ok(self.val(key, Some(Value::Array(items))))
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// Refuse a set field the converter would drop.
fn refuse(field: &str, set: bool) -> Result<(), ProtobufError> {
    if set {
        return Err(ProtobufError::Unsupported(format!("the field {field}")));
    }
    Ok(())
}

fn object_meta(m: &Option<meta::ObjectMeta>) -> Result<Value, ProtobufError> {
    let Some(m) = m else {
        return Ok(Value::Object(Map::new()));
    };
    refuse("metadata.ownerReferences", !m.owner_references.is_empty())?;
    refuse("metadata.managedFields", !m.managed_fields.is_empty())?;
    let mut o = Obj::default();
    o.str("name", &m.name)
        .str("generateName", &m.generate_name)
        .str("namespace", &m.namespace)
        .str("uid", &m.uid)
        .str("resourceVersion", &m.resource_version)
        .map("labels", &m.labels.clone().into_iter().collect())
        .map("annotations", &m.annotations.clone().into_iter().collect())
        .strs("finalizers", &m.finalizers);
    Ok(o.done())
}

fn label_selector(s: &Option<meta::LabelSelector>) -> Result<Option<Value>, ProtobufError> {
    let Some(s) = s else { return Ok(None) };
    let mut o = Obj::default();
    o.map("matchLabels", &s.match_labels.clone().into_iter().collect());
    o.list("matchExpressions", &s.match_expressions, |r| {
        let mut e = Obj::default();
        e.str("key", &r.key)
            .str("operator", &r.operator)
            .strs("values", &r.values);
        Ok(e.done())
    })?;
    Ok(Some(o.done()))
}

fn int_or_string(v: &Option<IntOrString>) -> Option<Value> {
    let v = v.as_ref()?;
    match v.r#type {
        Some(1) => v.str_val.clone().map(Value::from),
        _ => v.int_val.map(Value::from),
    }
}

fn quantities(m: &BTreeMap<String, k8s_pb::apimachinery::pkg::api::resource::Quantity>) -> Value {
    Value::Object(
        m.iter()
            .filter_map(|(k, q)| Some((k.clone(), Value::from(q.string.clone()?))))
            .collect(),
    )
}

fn container(c: &core::Container) -> Result<Value, ProtobufError> {
    let empty = |p: &Option<core::Probe>| p.as_ref().is_none_or(|p| *p == core::Probe::default());
    refuse("containers[].envFrom", !c.env_from.is_empty())?;
    refuse("containers[].resizePolicy", !c.resize_policy.is_empty())?;
    refuse(
        "containers[].restartPolicyRules",
        !c.restart_policy_rules.is_empty(),
    )?;
    refuse("containers[].volumeDevices", !c.volume_devices.is_empty())?;
    refuse("containers[].livenessProbe", !empty(&c.liveness_probe))?;
    refuse("containers[].readinessProbe", !empty(&c.readiness_probe))?;
    refuse("containers[].startupProbe", !empty(&c.startup_probe))?;
    refuse(
        "containers[].lifecycle",
        c.lifecycle
            .as_ref()
            .is_some_and(|l| *l != core::Lifecycle::default()),
    )?;
    refuse(
        "containers[].securityContext",
        c.security_context
            .as_ref()
            .is_some_and(|s| *s != core::SecurityContext::default()),
    )?;
    let mut o = Obj::default();
    o.str("name", &c.name)
        .str("image", &c.image)
        .strs("command", &c.command)
        .strs("args", &c.args)
        .str("workingDir", &c.working_dir)
        .str("restartPolicy", &c.restart_policy)
        .str("terminationMessagePath", &c.termination_message_path)
        .str("terminationMessagePolicy", &c.termination_message_policy)
        .str("imagePullPolicy", &c.image_pull_policy);
    for (key, v) in [
        ("stdin", c.stdin),
        ("stdinOnce", c.stdin_once),
        ("tty", c.tty),
    ] {
        if v == Some(true) {
            o.num(key, Some(true));
        }
    }
    o.list("ports", &c.ports, |p| {
        let mut e = Obj::default();
        e.str("name", &p.name)
            .num("containerPort", p.container_port)
            .str("protocol", &p.protocol)
            .str("hostIP", &p.host_ip);
        if p.host_port.is_some_and(|h| h != 0) {
            e.num("hostPort", p.host_port);
        }
        Ok(e.done())
    })?;
    o.list("env", &c.env, |e| {
        refuse(
            "containers[].env[].valueFrom",
            e.value_from
                .as_ref()
                .is_some_and(|v| *v != core::EnvVarSource::default()),
        )?;
        let mut v = Obj::default();
        v.str("name", &e.name);
        v.0.insert(
            "value".into(),
            Value::from(e.value.clone().unwrap_or_default()),
        );
        if e.value.as_deref().is_none_or(str::is_empty) {
            v.0.remove("value");
        }
        Ok(v.done())
    })?;
    if let Some(r) = &c.resources {
        refuse("containers[].resources.claims", !r.claims.is_empty())?;
        let mut res = Obj::default();
        res.val("limits", Some(quantities(&r.limits)))
            .val("requests", Some(quantities(&r.requests)));
        o.val("resources", Some(res.done()));
    }
    o.list("volumeMounts", &c.volume_mounts, |m| {
        let mut v = Obj::default();
        v.str("name", &m.name)
            .str("mountPath", &m.mount_path)
            .str("subPath", &m.sub_path)
            .str("mountPropagation", &m.mount_propagation)
            .str("subPathExpr", &m.sub_path_expr)
            .str("recursiveReadOnly", &m.recursive_read_only);
        if m.read_only == Some(true) {
            v.num("readOnly", Some(true));
        }
        Ok(v.done())
    })?;
    Ok(o.done())
}

fn pod_spec(s: &Option<core::PodSpec>) -> Result<Option<Value>, ProtobufError> {
    let Some(s) = s else { return Ok(None) };
    refuse("spec.volumes", !s.volumes.is_empty())?;
    refuse(
        "spec.ephemeralContainers",
        !s.ephemeral_containers.is_empty(),
    )?;
    refuse(
        "spec.securityContext",
        s.security_context
            .as_ref()
            .is_some_and(|c| *c != core::PodSecurityContext::default()),
    )?;
    refuse(
        "spec.affinity",
        s.affinity
            .as_ref()
            .is_some_and(|a| *a != core::Affinity::default()),
    )?;
    refuse("spec.hostAliases", !s.host_aliases.is_empty())?;
    refuse(
        "spec.dnsConfig",
        s.dns_config
            .as_ref()
            .is_some_and(|d| *d != core::PodDnsConfig::default()),
    )?;
    refuse("spec.readinessGates", !s.readiness_gates.is_empty())?;
    refuse("spec.overhead", !s.overhead.is_empty())?;
    refuse(
        "spec.topologySpreadConstraints",
        !s.topology_spread_constraints.is_empty(),
    )?;
    refuse(
        "spec.os",
        s.os.as_ref().is_some_and(|o| *o != core::PodOs::default()),
    )?;
    refuse("spec.schedulingGates", !s.scheduling_gates.is_empty())?;
    refuse("spec.resourceClaims", !s.resource_claims.is_empty())?;
    refuse(
        "spec.resources",
        s.resources
            .as_ref()
            .is_some_and(|r| *r != core::ResourceRequirements::default()),
    )?;
    let mut o = Obj::default();
    o.list("initContainers", &s.init_containers, container)?;
    o.list("containers", &s.containers, container)?;
    o.str("restartPolicy", &s.restart_policy)
        .num(
            "terminationGracePeriodSeconds",
            s.termination_grace_period_seconds,
        )
        .num("activeDeadlineSeconds", s.active_deadline_seconds)
        .str("dnsPolicy", &s.dns_policy)
        .map(
            "nodeSelector",
            &s.node_selector.clone().into_iter().collect(),
        )
        .str("serviceAccountName", &s.service_account_name)
        .str("serviceAccount", &s.service_account)
        .num(
            "automountServiceAccountToken",
            s.automount_service_account_token,
        )
        .str("nodeName", &s.node_name)
        .str("hostname", &s.hostname)
        .str("subdomain", &s.subdomain)
        .str("schedulerName", &s.scheduler_name)
        .str("priorityClassName", &s.priority_class_name)
        .num("priority", s.priority)
        .str("runtimeClassName", &s.runtime_class_name)
        .num("enableServiceLinks", s.enable_service_links)
        .str("preemptionPolicy", &s.preemption_policy);
    for (key, v) in [
        ("hostNetwork", s.host_network),
        ("hostPID", s.host_pid),
        ("hostIPC", s.host_ipc),
        ("shareProcessNamespace", s.share_process_namespace),
        ("setHostnameAsFQDN", s.set_hostname_as_fqdn),
    ] {
        if v == Some(true) {
            o.num(key, Some(true));
        }
    }
    o.num("hostUsers", s.host_users);
    o.list("imagePullSecrets", &s.image_pull_secrets, |r| {
        let mut e = Obj::default();
        e.str("name", &r.name);
        Ok(e.done())
    })?;
    o.list("tolerations", &s.tolerations, |t| {
        let mut e = Obj::default();
        e.str("key", &t.key)
            .str("operator", &t.operator)
            .str("value", &t.value)
            .str("effect", &t.effect)
            .num("tolerationSeconds", t.toleration_seconds);
        Ok(e.done())
    })?;
    Ok(Some(o.done()))
}

fn template(t: &Option<core::PodTemplateSpec>) -> Result<Option<Value>, ProtobufError> {
    let Some(t) = t else { return Ok(None) };
    let mut o = Obj::default();
    o.val("metadata", Some(object_meta(&t.metadata)?))
        .val("spec", pod_spec(&t.spec)?);
    Ok(Some(o.done()))
}

fn deployment(d: &apps::Deployment) -> Result<Value, ProtobufError> {
    let mut o = Obj::default();
    o.val("metadata", Some(object_meta(&d.metadata)?));
    if let Some(s) = &d.spec {
        let mut spec = Obj::default();
        spec.num("replicas", s.replicas)
            .val("selector", label_selector(&s.selector)?)
            .val("template", template(&s.template)?)
            .num("minReadySeconds", s.min_ready_seconds)
            .num("revisionHistoryLimit", s.revision_history_limit)
            .num("paused", s.paused)
            .num("progressDeadlineSeconds", s.progress_deadline_seconds);
        if let Some(st) = &s.strategy {
            let mut strategy = Obj::default();
            strategy.str("type", &st.r#type);
            if let Some(ru) = &st.rolling_update {
                let mut r = Obj::default();
                r.val("maxUnavailable", int_or_string(&ru.max_unavailable))
                    .val("maxSurge", int_or_string(&ru.max_surge));
                strategy.val("rollingUpdate", Some(r.done()));
            }
            spec.val("strategy", Some(strategy.done()));
        }
        o.val("spec", Some(spec.done()));
    }
    Ok(o.done())
}

fn pod(p: &core::Pod) -> Result<Value, ProtobufError> {
    let mut o = Obj::default();
    o.val("metadata", Some(object_meta(&p.metadata)?))
        .val("spec", pod_spec(&p.spec)?);
    Ok(o.done())
}

fn namespace(n: &core::Namespace) -> Result<Value, ProtobufError> {
    let mut o = Obj::default();
    o.val("metadata", Some(object_meta(&n.metadata)?));
    if let Some(s) = &n.spec {
        let mut spec = Obj::default();
        spec.strs("finalizers", &s.finalizers);
        o.val("spec", Some(spec.done()));
    }
    Ok(o.done())
}

/// The envelope of a protobuf body: the magic, then a `runtime.Unknown` holding the type's
/// `kind` and `apiVersion` (empty when unset) and the message itself. `what` names the
/// expected type in errors; a body naming another kind is refused.
fn envelope(body: &[u8], what: &str) -> Result<(String, Vec<u8>), ProtobufError> {
    let bad = |detail: String| {
        ProtobufError::Bad(format!(
            "the object provided is unrecognized (must be of type {what}): {detail}"
        ))
    };
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]".into()))?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(rest)
        .map_err(|e| bad(format!("invalid protobuf envelope: {e}")))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let body_kind = type_meta.kind.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    if !body_kind.is_empty() && body_kind != what {
        return Err(ProtobufError::Bad(format!(
            "{body_kind} in version \"{api_version}\" cannot be handled as a {what}"
        )));
    }
    Ok((api_version, unknown.raw.unwrap_or_default()))
}

/// Decode a protobuf `DeleteOptions` body (client-go's typed clients send one with every
/// DELETE, e.g. `kubectl drain` deleting the pods of a node), as JSON.
pub fn decode_delete_options(body: &[u8]) -> Result<Value, ProtobufError> {
    let (_, raw) = envelope(body, "DeleteOptions")?;
    let d = meta::DeleteOptions::decode(raw.as_slice())
        .map_err(|e| ProtobufError::Bad(format!("invalid DeleteOptions message: {e}")))?;
    Ok(delete_options(&d))
}

fn delete_options(d: &meta::DeleteOptions) -> Value {
    let mut o = Obj::default();
    o.num("gracePeriodSeconds", d.grace_period_seconds);
    if let Some(p) = &d.preconditions {
        let mut pre = Obj::default();
        pre.str("uid", &p.uid)
            .str("resourceVersion", &p.resource_version);
        o.val("preconditions", Some(pre.done()));
    }
    o.num("orphanDependents", d.orphan_dependents)
        .str("propagationPolicy", &d.propagation_policy)
        .strs("dryRun", &d.dry_run)
        .num(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            d.ignore_store_read_error_with_cluster_breaking_potential,
        );
    o.done()
}

/// Decode a protobuf `policy/v1` `Eviction` (`kubectl drain` posts one per pod) as JSON:
/// its name, namespace and DeleteOptions.
pub fn decode_eviction(body: &[u8]) -> Result<Value, ProtobufError> {
    let (api_version, raw) = envelope(body, "Eviction")?;
    let e = k8s_pb::api::policy::v1::Eviction::decode(raw.as_slice())
        .map_err(|e| ProtobufError::Bad(format!("invalid Eviction message: {e}")))?;
    let m = e.metadata.unwrap_or_default();
    let mut metadata = Obj::default();
    metadata.str("name", &m.name).str("namespace", &m.namespace);
    let mut o = Obj::default();
    o.val("metadata", Some(metadata.done())).val(
        "deleteOptions",
        e.delete_options.as_ref().map(delete_options),
    );
    let mut value = o.done();
    value["kind"] = Value::from("Eviction");
    value["apiVersion"] = Value::from(if api_version.is_empty() {
        "policy/v1".to_string()
    } else {
        api_version
    });
    Ok(value)
}

/// Decode a protobuf self-review body (`kubectl auth can-i` and `auth whoami` send them as
/// protobuf) as the JSON of the review: its `kind`, `apiVersion` and `spec`. The review
/// objects' metadata and status are inputs nobody reads, as upstream.
pub fn decode_review(review: Review, version: &str, body: &[u8]) -> Result<Value, ProtobufError> {
    use k8s_pb::api::authentication::v1 as authn;
    use k8s_pb::api::authorization::v1 as authz;
    let (api_version, raw) = envelope(body, review.kind())?;
    let invalid = |e: prost::DecodeError| {
        ProtobufError::Bad(format!("invalid {} message: {e}", review.kind()))
    };
    let mut spec = Obj::default();
    match review {
        Review::SelfSubjectAccess => {
            let r = authz::SelfSubjectAccessReview::decode(raw.as_slice()).map_err(invalid)?;
            let s = r.spec.unwrap_or_default();
            if let Some(a) = &s.resource_attributes {
                if a.field_selector.is_some() || a.label_selector.is_some() {
                    return Err(ProtobufError::Unsupported(
                        "selfsubjectaccessreviews with field or label selectors".into(),
                    ));
                }
                let mut o = Obj::default();
                o.str("namespace", &a.namespace)
                    .str("verb", &a.verb)
                    .str("group", &a.group)
                    .str("version", &a.version)
                    .str("resource", &a.resource)
                    .str("subresource", &a.subresource)
                    .str("name", &a.name);
                spec.0.insert("resourceAttributes".into(), o.done());
            }
            if let Some(a) = &s.non_resource_attributes {
                let mut o = Obj::default();
                o.str("path", &a.path).str("verb", &a.verb);
                spec.0.insert("nonResourceAttributes".into(), o.done());
            }
        }
        Review::SelfSubjectRules => {
            let r = authz::SelfSubjectRulesReview::decode(raw.as_slice()).map_err(invalid)?;
            spec.str("namespace", &r.spec.unwrap_or_default().namespace);
        }
        Review::SelfSubject => {
            authn::SelfSubjectReview::decode(raw.as_slice()).map_err(invalid)?;
        }
    }
    let api_version = if api_version.is_empty() {
        format!("{}/{version}", review.group())
    } else {
        api_version
    };
    Ok(serde_json::json!({
        "kind": review.kind(),
        "apiVersion": api_version,
        "spec": spec.done(),
    }))
}

/// Decode a protobuf body that must hold an object of `kind`, as JSON (with `apiVersion`
/// and `kind` from the envelope).
pub fn decode(kind: Kind, body: &[u8]) -> Result<Value, ProtobufError> {
    let bad = |detail: String| {
        ProtobufError::Bad(format!(
            "the object provided is unrecognized (must be of type {}): {detail}",
            kind.name()
        ))
    };
    let (api_version, raw) = envelope(body, kind.name())?;
    let invalid = |e: prost::DecodeError| bad(format!("invalid {} message: {e}", kind.name()));
    let mut value = match kind {
        Kind::Deployment => {
            deployment(&apps::Deployment::decode(raw.as_slice()).map_err(invalid)?)?
        }
        Kind::Pod => pod(&core::Pod::decode(raw.as_slice()).map_err(invalid)?)?,
        Kind::Namespace => namespace(&core::Namespace::decode(raw.as_slice()).map_err(invalid)?)?,
        other => return Err(ProtobufError::Unsupported(other.plural().to_string())),
    };
    if let Value::Object(m) = &mut value {
        m.insert("kind".into(), Value::from(kind.name()));
        let v = if api_version.is_empty() {
            kind.api_version().to_string()
        } else {
            api_version
        };
        m.insert("apiVersion".into(), Value::from(v));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A body shaped like the one `kubectl create deployment web --image=nginx --replicas=3`
    /// sends: Go sets every string and sub-message explicitly, empty ones included.
    fn kubectl_create_deployment() -> Vec<u8> {
        let empty_meta = |labels: bool| meta::ObjectMeta {
            name: Some(if labels { "web" } else { "" }.into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(Default::default()),
            labels: [("app".to_string(), "web".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let d = apps::Deployment {
            metadata: Some(empty_meta(true)),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(3),
                selector: Some(meta::LabelSelector {
                    match_labels: [("app".to_string(), "web".to_string())]
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(empty_meta(false)),
                    spec: Some(core::PodSpec {
                        containers: vec![core::Container {
                            name: Some("nginx".into()),
                            image: Some("nginx".into()),
                            working_dir: Some(String::new()),
                            resources: Some(Default::default()),
                            termination_message_path: Some(String::new()),
                            image_pull_policy: Some(String::new()),
                            stdin: Some(false),
                            tty: Some(false),
                            ..Default::default()
                        }],
                        restart_policy: Some(String::new()),
                        dns_policy: Some(String::new()),
                        service_account_name: Some(String::new()),
                        node_name: Some(String::new()),
                        host_network: Some(false),
                        security_context: Some(Default::default()),
                        scheduler_name: Some(String::new()),
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: Some(String::new()),
                    rolling_update: None,
                }),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: Some(Default::default()),
        };
        wrap("apps/v1", "Deployment", d.encode_to_vec())
    }

    /// A protobuf body as client-go sends it: the magic, then the envelope around `raw`.
    fn wrap(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let envelope = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(envelope.encode_to_vec());
        body
    }

    /// What `kubectl drain` sends with each DELETE of a pod (no eviction API here): Go's
    /// explicit empties are unset, an explicit zero grace period is kept.
    #[test]
    fn delete_options_decode_to_their_json() {
        let opts = |grace: Option<i64>, policy: &str| meta::DeleteOptions {
            grace_period_seconds: grace,
            preconditions: Some(meta::Preconditions {
                uid: Some("u-1".into()),
                resource_version: Some(String::new()),
            }),
            orphan_dependents: None,
            propagation_policy: Some(policy.into()),
            dry_run: vec![],
            ignore_store_read_error_with_cluster_breaking_potential: None,
        };
        let body = wrap(
            "v1",
            "DeleteOptions",
            opts(Some(0), "Background").encode_to_vec(),
        );
        assert_eq!(
            decode_delete_options(&body).unwrap(),
            json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "u-1"},
                   "propagationPolicy": "Background"})
        );
        let body = wrap("", "", opts(None, "").encode_to_vec());
        assert_eq!(
            decode_delete_options(&body).unwrap(),
            json!({"preconditions": {"uid": "u-1"}})
        );
        let pod = wrap("v1", "Pod", core::Pod::default().encode_to_vec());
        assert_eq!(
            decode_delete_options(&pod).unwrap_err().to_string(),
            "Pod in version \"v1\" cannot be handled as a DeleteOptions"
        );
        assert!(matches!(
            decode_delete_options(b"{}"),
            Err(ProtobufError::Bad(_))
        ));
    }

    /// `kubectl drain` (1.32) posts each pod's Eviction as protobuf.
    #[test]
    fn an_eviction_decodes_from_protobuf() {
        let eviction = k8s_pb::api::policy::v1::Eviction {
            metadata: Some(meta::ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                generate_name: Some(String::new()),
                ..Default::default()
            }),
            delete_options: Some(meta::DeleteOptions {
                grace_period_seconds: Some(5),
                ..Default::default()
            }),
        };
        let body = wrap("policy/v1", "Eviction", eviction.encode_to_vec());
        assert_eq!(
            decode_eviction(&body).unwrap(),
            json!({"kind": "Eviction", "apiVersion": "policy/v1",
                   "metadata": {"name": "web-1", "namespace": "default"},
                   "deleteOptions": {"gracePeriodSeconds": 5}})
        );
        let pod = wrap("v1", "Pod", core::Pod::default().encode_to_vec());
        assert_eq!(
            decode_eviction(&pod).unwrap_err().to_string(),
            "Pod in version \"v1\" cannot be handled as a Eviction"
        );
    }

    /// `kubectl auth can-i create pods` (1.32) posts a protobuf SelfSubjectAccessReview whose
    /// unset strings are present and empty; `auth whoami` posts an empty SelfSubjectReview.
    #[test]
    fn self_reviews_decode_from_protobuf() {
        use k8s_pb::api::authentication::v1 as authn;
        use k8s_pb::api::authorization::v1 as authz;
        let attrs = authz::ResourceAttributes {
            namespace: Some("default".into()),
            verb: Some("create".into()),
            group: Some(String::new()),
            version: Some(String::new()),
            resource: Some("pods".into()),
            subresource: Some(String::new()),
            name: Some(String::new()),
            ..Default::default()
        };
        let ssar = authz::SelfSubjectAccessReview {
            spec: Some(authz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(attrs.clone()),
                non_resource_attributes: None,
            }),
            ..Default::default()
        };
        let body = wrap(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            ssar.encode_to_vec(),
        );
        assert_eq!(
            decode_review(Review::SelfSubjectAccess, "v1", &body).unwrap(),
            json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                   "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}})
        );
        let selected = authz::SelfSubjectAccessReview {
            spec: Some(authz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(authz::ResourceAttributes {
                    label_selector: Some(Default::default()),
                    ..attrs
                }),
                non_resource_attributes: None,
            }),
            ..Default::default()
        };
        let body = wrap("", "", selected.encode_to_vec());
        assert!(matches!(
            decode_review(Review::SelfSubjectAccess, "v1", &body),
            Err(ProtobufError::Unsupported(_))
        ));
        let rules = authz::SelfSubjectRulesReview {
            spec: Some(authz::SelfSubjectRulesReviewSpec {
                namespace: Some("kube-system".into()),
            }),
            ..Default::default()
        };
        let body = wrap("", "SelfSubjectRulesReview", rules.encode_to_vec());
        assert_eq!(
            decode_review(Review::SelfSubjectRules, "v1", &body).unwrap()["spec"],
            json!({"namespace": "kube-system"})
        );
        let whoami = wrap(
            "authentication.k8s.io/v1",
            "SelfSubjectReview",
            authn::SelfSubjectReview::default().encode_to_vec(),
        );
        assert_eq!(
            decode_review(Review::SelfSubject, "v1", &whoami).unwrap()["kind"],
            "SelfSubjectReview"
        );
        assert_eq!(
            decode_review(Review::SelfSubject, "v1", &body)
                .unwrap_err()
                .to_string(),
            "SelfSubjectRulesReview in version \"\" cannot be handled as a SelfSubjectReview"
        );
    }

    #[test]
    fn kubectl_create_deployment_decodes_to_its_json() {
        let v = decode(Kind::Deployment, &kubectl_create_deployment()).unwrap();
        assert_eq!(v["apiVersion"], "apps/v1");
        assert_eq!(v["kind"], "Deployment");
        assert_eq!(
            v["metadata"],
            json!({"name": "web", "labels": {"app": "web"}})
        );
        assert_eq!(v["spec"]["replicas"], 3);
        assert_eq!(v["spec"]["minReadySeconds"], 0);
        assert_eq!(v["spec"]["paused"], false);
        assert!(
            v["spec"].get("strategy").is_none(),
            "an empty strategy is unset"
        );
        assert_eq!(
            v["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        assert_eq!(
            v["spec"]["template"],
            json!({"metadata": {"labels": {"app": "web"}},
                   "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}})
        );
        let obj = crate::apiserver::http::body::decode_value(
            Kind::Deployment,
            v,
            crate::apiserver::http::body::FieldValidation::Strict,
        )
        .unwrap();
        assert_eq!(obj.object.name(), "web");
    }

    #[test]
    fn wrong_kind_missing_magic_and_unconverted_fields_are_refused() {
        assert!(matches!(
            decode(Kind::Pod, &kubectl_create_deployment()),
            Err(ProtobufError::Bad(_))
        ));
        assert!(matches!(
            decode(Kind::Deployment, b"{}"),
            Err(ProtobufError::Bad(_))
        ));
        let pod = core::Pod {
            spec: Some(core::PodSpec {
                volumes: vec![core::Volume::default()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = wrap("v1", "Pod", pod.encode_to_vec());
        let err = decode(Kind::Pod, &body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "protobuf bodies are not supported for the field spec.volumes; send JSON or YAML"
        );
        assert!(matches!(
            decode(Kind::Lease, &body),
            Err(ProtobufError::Bad(_))
        ));
    }
}
