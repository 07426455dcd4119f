//! Per-kind write strategies: what kube-apiserver's registry does to an object before it is
//! stored (`PrepareForCreate`, `PrepareForUpdate`, graceful deletion, binding). Plain functions
//! over plain data, so they are tested without actors.

use k8s_openapi::api::core::v1::{Binding, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rand::Rng;
use std::sync::Arc;

use super::messages::Subresource;
use crate::api::Object;
use crate::telemetry::TRACEPARENT_ANNOTATION;

/// The alphabet of generated name suffixes (upstream's `utilrand.String`: no vowels, no
/// confusable characters).
pub const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Finalizer added by `propagationPolicy=Foreground`.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Finalizer added by `propagationPolicy=Orphan`.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// `generateName` + 5 random characters. Mirrors `SimpleNameGenerator.GenerateName`
/// (the prefix is cut so the result stays within 63 characters).
pub fn generate_name(prefix: &str) -> String {
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// A random (version 4) UID, as `uuid.NewUUID()` gives every new object
/// (`rest.FillObjectMetaSystemFields`).
///
/// The 16 bytes come from the thread's CSPRNG (`rand::rng()`, ChaCha seeded and reseeded
/// from the OS) rather than from `Uuid::new_v4`, which asks the kernel (`getrandom`) for
/// every UID: at 100,000 pods and their Events that system call was ~1.5 % of the API
/// server thread.
pub fn new_uid() -> String {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    // `to_string`'s text (lower-case, hyphenated) through uuid's encoder, without the
    // `Display` machinery (~400 instructions per object created).
    let mut buf = uuid::Uuid::encode_buffer();
    uuid.hyphenated().encode_lower(&mut buf).to_owned()
}

/// Now, truncated to whole seconds as `metav1.Time` serializes.
pub fn now() -> Timestamp {
    let t = Timestamp::now();
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Fill the system fields of a new object and reset what a client may not set on create.
/// Mirrors `rest.BeforeCreate` and each kind's `PrepareForCreate`.
pub fn prepare_for_create(obj: &mut Object, at: Timestamp) {
    {
        let meta = obj.meta_mut();
        meta.uid = Some(new_uid());
        meta.creation_timestamp = Some(Time(at));
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        meta.resource_version = None;
        meta.generation = None;
    }
    match obj {
        Object::Deployment(d) => {
            let d = Arc::make_mut(d);
            d.metadata.generation = Some(1);
            d.status = None;
        }
        Object::ReplicaSet(rs) => {
            let rs = Arc::make_mut(rs);
            rs.metadata.generation = Some(1);
            rs.status = None;
        }
        Object::Pod(p) => {
            let p = Arc::make_mut(p);
            p.metadata.generation = Some(1);
            let qos = qos_class(p).to_string();
            p.status = Some(PodStatus {
                phase: Some("Pending".into()),
                qos_class: Some(qos),
                ..Default::default()
            });
        }
        Object::Namespace(ns) => {
            let status = Arc::make_mut(ns)
                .status
                .get_or_insert_with(Default::default);
            status.phase = Some("Active".into());
        }
        Object::Node(_) | Object::Event(_) | Object::Lease(_) => {}
    }
}

/// The pod's QoS class. Mirrors `GetPodQOS` in pkg/apis/core/helper/qos (requests equal to
/// limits are compared as written).
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let res = c.resources.as_ref();
        let limits = res.and_then(|r| r.limits.as_ref());
        let requests = res.and_then(|r| r.requests.as_ref());
        let has = |m: Option<&std::collections::BTreeMap<String, _>>| {
            m.is_some_and(|m| m.contains_key("cpu") || m.contains_key("memory"))
        };
        if has(limits) || has(requests) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(r));
            let request = requests.and_then(|q| q.get(r)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn without_trace(meta: &ObjectMeta) -> Option<std::collections::BTreeMap<String, String>> {
    meta.annotations
        .as_ref()
        .map(|a| {
            let mut a = a.clone();
            a.remove(TRACEPARENT_ANNOTATION);
            a
        })
        .filter(|a| !a.is_empty())
}

/// Carry over what an update may not change and apply the subresource's rules. Mirrors
/// `rest.BeforeUpdate` and each kind's `PrepareForUpdate` (main resource: status is kept;
/// `status` subresource: only status changes, as `ResetObjectMetaForStatus`). Keeps the live
/// `metadata.managedFields` unless the writer sent its own (see `http::managedfields`); a
/// Deployment's status write also takes its annotations, as upstream's. Bumps
/// `metadata.generation` when the spec changes (for Deployments also when annotations other
/// than kubeactor's own `traceparent` change, as upstream).
pub fn prepare_for_update(new: &mut Object, old: &Object, sub: Subresource) {
    if sub == Subresource::Status {
        // A Deployment's status write also takes its annotations: upstream's
        // `deploymentStatusStrategy.PrepareForUpdate` resets only the spec and labels, and the
        // deployment controller writes its revision annotation with UpdateStatus.
        let annotations = match new {
            Object::Deployment(d) => Some(Arc::make_mut(d).metadata.annotations.take()),
            _ => None,
        };
        // Otherwise start from the stored object; take only the new status and the trace
        // annotation.
        let trace = new
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(TRACEPARENT_ANNOTATION))
            .cloned();
        let mut merged = with_status_of(old, new);
        // A status writer that read the live object (its resourceVersion was checked) may
        // record its managedFields entry (the HTTP layer does); others keep the live ones.
        if new
            .meta()
            .resource_version
            .as_deref()
            .is_some_and(|rv| !rv.is_empty())
            && new.meta().managed_fields.is_some()
        {
            merged.meta_mut().managed_fields = new.meta().managed_fields.clone();
        }
        if let Some(annotations) = annotations {
            merged.meta_mut().annotations = annotations;
            *new = merged;
            return;
        }
        let ann = merged
            .meta_mut()
            .annotations
            .get_or_insert_with(Default::default);
        match trace {
            Some(t) => {
                ann.insert(TRACEPARENT_ANNOTATION.into(), t);
            }
            None => {
                ann.remove(TRACEPARENT_ANNOTATION);
            }
        }
        if merged
            .meta()
            .annotations
            .as_ref()
            .is_some_and(|a| a.is_empty())
            && old.meta().annotations.is_none()
        {
            merged.meta_mut().annotations = None;
        }
        *new = merged;
        return;
    }
    {
        let o = old.meta();
        let n = new.meta_mut();
        n.uid = o.uid.clone();
        n.creation_timestamp = o.creation_timestamp.clone();
        n.deletion_timestamp = o.deletion_timestamp.clone();
        n.deletion_grace_period_seconds = o.deletion_grace_period_seconds;
        n.name = o.name.clone();
        n.namespace = o.namespace.clone();
        n.generation = o.generation;
        n.generate_name = o.generate_name.clone();
        // A writer that sends no managedFields (in-process components, clients that drop
        // them) keeps the live ones, as upstream's field manager does.
        if n.managed_fields.is_none() {
            n.managed_fields = o.managed_fields.clone();
        }
    }
    copy_status(old, new);
    let spec_changed = match (&*new, old) {
        (Object::Deployment(n), Object::Deployment(o)) => {
            n.spec != o.spec || without_trace(&n.metadata) != without_trace(&o.metadata)
        }
        (Object::ReplicaSet(n), Object::ReplicaSet(o)) => n.spec != o.spec,
        (Object::Pod(n), Object::Pod(o)) => n.spec != o.spec,
        _ => false,
    };
    if spec_changed {
        let g = old.meta().generation.unwrap_or(0) + 1;
        new.meta_mut().generation = Some(g);
    }
}

/// `old` with `new`'s status, which is moved out of `new` (same kind; kinds without status
/// give `old`). Builds the object from `old`'s other fields instead of copying all of `old`
/// and then replacing its status, which copied the old status only to drop it.
fn with_status_of(old: &Object, new: &mut Object) -> Object {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::core::v1::{Namespace, Node};
    macro_rules! with_status {
        ($ty:ident, $old:expr, $new:expr) => {
            Object::from($ty {
                metadata: $old.metadata.clone(),
                spec: $old.spec.clone(),
                status: Arc::make_mut($new).status.take(),
            })
        };
    }
    match (old, new) {
        (Object::Pod(o), Object::Pod(n)) => with_status!(Pod, o, n),
        (Object::Node(o), Object::Node(n)) => with_status!(Node, o, n),
        (Object::Deployment(o), Object::Deployment(n)) => with_status!(Deployment, o, n),
        (Object::ReplicaSet(o), Object::ReplicaSet(n)) => with_status!(ReplicaSet, o, n),
        (Object::Namespace(o), Object::Namespace(n)) => with_status!(Namespace, o, n),
        _ => old.clone(),
    }
}

/// Copy `status` from `from` to `to` (same kind; kinds without status are left alone).
fn copy_status(from: &Object, to: &mut Object) {
    match (from, to) {
        (Object::Pod(f), Object::Pod(t)) => Arc::make_mut(t).status = f.status.clone(),
        (Object::Deployment(f), Object::Deployment(t)) => {
            Arc::make_mut(t).status = f.status.clone()
        }
        (Object::ReplicaSet(f), Object::ReplicaSet(t)) => {
            Arc::make_mut(t).status = f.status.clone()
        }
        (Object::Node(f), Object::Node(t)) => Arc::make_mut(t).status = f.status.clone(),
        (Object::Namespace(f), Object::Namespace(t)) => Arc::make_mut(t).status = f.status.clone(),
        _ => {}
    }
}

/// Would storing `new` over `old` change nothing but the resourceVersion and the trace
/// annotation? Then the update is not written (as etcd3's GuaranteedUpdate skips identical
/// bytes), and no watch event fires. Compares field by field, copying nothing: this runs for
/// every update (each pod's status writes, every lease renewal).
pub fn is_noop(new: &Object, old: &Object) -> bool {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Event, Namespace, Node};
    // Destructured in full, so that a field added to a type (a k8s-openapi upgrade) fails to
    // compile here instead of being ignored.
    macro_rules! same_but_trace {
        ($ty:ident, $a:expr, $b:expr) => {{
            let $ty {
                metadata,
                spec,
                status,
            } = &**$a;
            meta_eq_but_trace(metadata, &$b.metadata) && *spec == $b.spec && *status == $b.status
        }};
    }
    match (new, old) {
        (Object::Pod(a), Object::Pod(b)) => same_but_trace!(Pod, a, b),
        (Object::Node(a), Object::Node(b)) => same_but_trace!(Node, a, b),
        (Object::Lease(a), Object::Lease(b)) => {
            let Lease { metadata, spec } = &**a;
            meta_eq_but_trace(metadata, &b.metadata) && *spec == b.spec
        }
        (Object::Namespace(a), Object::Namespace(b)) => same_but_trace!(Namespace, a, b),
        (Object::Deployment(a), Object::Deployment(b)) => same_but_trace!(Deployment, a, b),
        (Object::ReplicaSet(a), Object::ReplicaSet(b)) => same_but_trace!(ReplicaSet, a, b),
        (Object::Event(a), Object::Event(b)) => {
            let Event {
                metadata,
                action,
                count,
                event_time,
                first_timestamp,
                involved_object,
                last_timestamp,
                message,
                reason,
                related,
                reporting_component,
                reporting_instance,
                series,
                source,
                type_,
            } = &**a;
            meta_eq_but_trace(metadata, &b.metadata)
                && *action == b.action
                && *count == b.count
                && *event_time == b.event_time
                && *first_timestamp == b.first_timestamp
                && *involved_object == b.involved_object
                && *last_timestamp == b.last_timestamp
                && *message == b.message
                && *reason == b.reason
                && *related == b.related
                && *reporting_component == b.reporting_component
                && *reporting_instance == b.reporting_instance
                && *series == b.series
                && *source == b.source
                && *type_ == b.type_
        }
        _ => false,
    }
}

/// `a == b` for everything but `resourceVersion` and kubeactor's `traceparent` annotation
/// (an annotation map holding only that counts as no annotations).
fn meta_eq_but_trace(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    fn other_annotations(
        m: &Option<std::collections::BTreeMap<String, String>>,
    ) -> impl Iterator<Item = (&String, &String)> {
        m.iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != TRACEPARENT_ANNOTATION)
    }
    let ObjectMeta {
        annotations,
        creation_timestamp,
        deletion_grace_period_seconds,
        deletion_timestamp,
        finalizers,
        generate_name,
        generation,
        labels,
        managed_fields,
        name,
        namespace,
        owner_references,
        resource_version: _,
        self_link,
        uid,
    } = a;
    *name == b.name
        && *namespace == b.namespace
        && *uid == b.uid
        && *generation == b.generation
        && *labels == b.labels
        && other_annotations(annotations).eq(other_annotations(&b.annotations))
        && *creation_timestamp == b.creation_timestamp
        && *deletion_grace_period_seconds == b.deletion_grace_period_seconds
        && *deletion_timestamp == b.deletion_timestamp
        && *finalizers == b.finalizers
        && *generate_name == b.generate_name
        && *owner_references == b.owner_references
        && *self_link == b.self_link
        && *managed_fields == b.managed_fields
}

/// An object being deleted whose finalizers are all gone is removed by the update that
/// removed the last one. Mirrors `ShouldDeleteDuringUpdate` (pods additionally wait for a
/// zero grace period: the kubelet's final delete).
pub fn should_delete_during_update(obj: &Object) -> bool {
    let m = obj.meta();
    if m.deletion_timestamp.is_none() || m.finalizers.as_ref().is_some_and(|f| !f.is_empty()) {
        return false;
    }
    match obj {
        Object::Pod(_) => m.deletion_grace_period_seconds == Some(0),
        _ => true,
    }
}

/// What a delete request does to an object.
#[derive(Debug, PartialEq)]
pub enum DeleteDecision {
    /// Remove it from the store now.
    Now,
    /// Store this new state (deletionTimestamp set, finalizers added) and keep the object.
    Update(Box<Object>),
    /// The object is already being deleted and this request changes nothing.
    Unchanged,
}

/// The propagation policy's finalizer, or an error message for an unknown policy.
pub fn policy_finalizer(opts: &DeleteOptions) -> Result<Option<&'static str>, String> {
    match opts.propagation_policy.as_deref() {
        None | Some("") => Ok(if opts.orphan_dependents == Some(true) { Some(ORPHAN_FINALIZER) } else { None }),
        Some("Background") => Ok(None),
        Some("Foreground") => Ok(Some(FOREGROUND_FINALIZER)),
        Some("Orphan") => Ok(Some(ORPHAN_FINALIZER)),
        Some(other) => Err(format!(
            "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        )),
    }
}

/// Decide how to delete. Mirrors `BeforeDelete` in pkg/registry/rest/delete.go with the pod
/// strategy's `CheckGracefulDelete` (unscheduled or finished pods go at once; otherwise the
/// grace period is the request's, else `terminationGracePeriodSeconds`) and the generic
/// store's finalizer handling (`deletionTimestamp` set, object kept until finalizers clear).
pub fn decide_delete(
    obj: &Object,
    opts: &DeleteOptions,
    at: Timestamp,
) -> Result<DeleteDecision, String> {
    let policy = policy_finalizer(opts)?;
    let mut grace = 0i64;
    if let Object::Pod(p) = obj {
        let spec = p.spec.as_ref();
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        let scheduled = spec
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        grace = opts
            .grace_period_seconds
            .or_else(|| spec.and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0);
        if !scheduled || matches!(phase, Some("Succeeded") | Some("Failed")) {
            grace = 0;
        }
    }
    let meta = obj.meta();
    let mut finalizers = meta.finalizers.clone().unwrap_or_default();
    let mut added = false;
    if let Some(f) = policy {
        if !finalizers.iter().any(|x| x == f) {
            finalizers.push(f.to_string());
            added = true;
        }
    }
    if let Some(existing) = &meta.deletion_timestamp {
        // Already being deleted: a shorter grace period may bring the deadline forward.
        let current = meta.deletion_grace_period_seconds.unwrap_or(0);
        if grace < current || added {
            let mut new = obj.clone();
            let m = new.meta_mut();
            if grace < current {
                m.deletion_grace_period_seconds = Some(grace);
                m.deletion_timestamp = Some(Time(at + SignedDuration::from_secs(grace)));
            } else {
                m.deletion_timestamp = Some(existing.clone());
            }
            m.finalizers = Some(finalizers);
            if grace == 0 && m.finalizers.as_ref().is_some_and(|f| f.is_empty()) {
                return Ok(DeleteDecision::Now);
            }
            return Ok(DeleteDecision::Update(Box::new(new)));
        }
        return Ok(DeleteDecision::Unchanged);
    }
    if grace == 0 && finalizers.is_empty() {
        return Ok(DeleteDecision::Now);
    }
    let mut new = obj.clone();
    let m = new.meta_mut();
    m.deletion_timestamp = Some(Time(at + SignedDuration::from_secs(grace)));
    m.deletion_grace_period_seconds = Some(grace);
    if !finalizers.is_empty() {
        m.finalizers = Some(finalizers);
    }
    Ok(DeleteDecision::Update(Box::new(new)))
}

/// Assign a pod to a node. Mirrors `assignPod`/`setPodHostAndAnnotations` in
/// pkg/registry/core/pod/storage: Conflict messages as upstream.
pub fn bind_pod(pod: &Pod, binding: &Binding, at: Timestamp) -> Result<Pod, String> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    if pod.metadata.deletion_timestamp.is_some() {
        return Err(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        ));
    }
    let current = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("");
    if !current.is_empty() {
        return Err(format!(
            "pod {name} is already assigned to node \"{current}\""
        ));
    }
    let node = binding.target.name.as_deref().unwrap_or("");
    let mut pod = pod.clone();
    pod.spec.get_or_insert_with(Default::default).node_name = Some(node.to_string());
    if let Some(extra) = &binding.metadata.annotations {
        let ann = pod
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        for (k, v) in extra {
            ann.insert(k.clone(), v.clone());
        }
    }
    let status = pod.status.get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "PodScheduled");
    conditions.push(PodCondition {
        type_: "PodScheduled".into(),
        status: "True".into(),
        last_transition_time: Some(Time(at)),
        ..Default::default()
    });
    Ok(pod)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{Container, ObjectReference, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    #[test]
    fn uids_are_random_version_4_uuids() {
        let uids: std::collections::HashSet<String> = (0..1000).map(|_| new_uid()).collect();
        assert_eq!(uids.len(), 1000);
        for uid in &uids {
            let parsed = uuid::Uuid::parse_str(uid).expect(uid);
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random), "{uid}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{uid}");
            assert_eq!(parsed.hyphenated().to_string(), *uid);
        }
    }

    fn pod(node: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("nginx".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_update_is_a_noop_only_if_nothing_but_the_version_and_trace_changed() {
        let annotated = |p: &mut Pod, k: &str, v: &str| {
            p.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(k.into(), v.into());
        };
        let mut old = pod(Some("n1"));
        old.metadata.resource_version = Some("7".into());
        let old = Object::from(old);
        let noop = |change: &dyn Fn(&mut Pod)| {
            let Object::Pod(p) = &old else { unreachable!() };
            let mut new = (**p).clone();
            change(&mut new);
            is_noop(&Object::from(new), &old)
        };
        assert!(noop(&|_| {}));
        assert!(noop(&|p| p.metadata.resource_version = None));
        assert!(noop(&|p| annotated(
            p,
            TRACEPARENT_ANNOTATION,
            "00-ab-cd-01"
        )));
        assert!(!noop(&|p| annotated(p, "team", "a")));
        assert!(!noop(&|p| {
            p.metadata.labels = Some([("app".to_string(), "web".to_string())].into())
        }));
        assert!(!noop(&|p| p.status = Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        })));
        assert!(!noop(&|p| p.spec.as_mut().unwrap().node_name = None));
        assert!(!noop(&|p| p.metadata.finalizers = Some(vec!["x".into()])));
        // Another kind is never the same object.
        assert!(!is_noop(&Object::from(Deployment::default()), &old));
    }

    #[test]
    fn generated_names_have_five_safe_characters() {
        let n = generate_name("web-7d9fbb5c4b-");
        assert_eq!(n.len(), "web-7d9fbb5c4b-".len() + 5);
        assert!(n[15..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
    }

    #[test]
    fn create_sets_system_fields_and_resets_status() {
        let mut obj = Object::Pod(pod(None).into());
        prepare_for_create(&mut obj, now());
        let m = obj.meta();
        assert!(m.uid.is_some() && m.creation_timestamp.is_some());
        assert_eq!(m.generation, Some(1));
        let p = obj.as_pod().unwrap();
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
        assert_eq!(
            p.status.as_ref().unwrap().qos_class.as_deref(),
            Some("BestEffort")
        );
    }

    /// A uid is a random version-4 UUID in its usual text form.
    #[test]
    fn uids_are_hyphenated_lower_case_v4_uuids() {
        let uid = new_uid();
        let parsed = uuid::Uuid::parse_str(&uid).expect("a uuid");
        assert_eq!(parsed.to_string(), uid);
        assert_eq!(parsed.get_version_num(), 4);
        assert_ne!(new_uid(), uid);
    }

    #[test]
    fn qos_classes() {
        let mut p = pod(None);
        let q = |s: &str| Quantity(s.into());
        let c = &mut p.spec.as_mut().unwrap().containers[0];
        c.resources = Some(ResourceRequirements {
            limits: Some(
                [
                    ("cpu".to_string(), q("1")),
                    ("memory".to_string(), q("1Gi")),
                ]
                .into(),
            ),
            ..Default::default()
        });
        assert_eq!(qos_class(&p), "Guaranteed");
        let c = &mut p.spec.as_mut().unwrap().containers[0];
        c.resources.as_mut().unwrap().requests = Some([("cpu".to_string(), q("500m"))].into());
        assert_eq!(qos_class(&p), "Burstable");
    }

    /// Deployment `web` (1 replica, labelled `app=web`) as created: generation 1.
    fn created_web() -> Object {
        let mut web = Object::from(Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        });
        prepare_for_create(&mut web, now());
        web
    }

    #[test]
    fn generation_bumps_on_spec_change_only() {
        let old = created_web();
        let mut same = old.clone();
        same.meta_mut().annotations =
            Some([(TRACEPARENT_ANNOTATION.to_string(), "x".to_string())].into());
        prepare_for_update(&mut same, &old, Subresource::Main);
        assert_eq!(
            same.meta().generation,
            Some(1),
            "a trace annotation is not a spec change"
        );
        let mut scaled = old.clone();
        if let Object::Deployment(d) = &mut scaled {
            Arc::make_mut(d).spec.as_mut().unwrap().replicas = Some(3);
        }
        prepare_for_update(&mut scaled, &old, Subresource::Main);
        assert_eq!(scaled.meta().generation, Some(2));
    }

    /// Upstream's `deploymentStatusStrategy`: a status write takes the annotations (the
    /// controller's revision annotation) but not the spec or the labels, and the generation
    /// stays; the same annotation through the main resource bumps it.
    #[test]
    fn a_deployments_status_write_takes_its_annotations_not_its_spec() {
        let old = created_web();
        let revision = || {
            Some(
                [(
                    "deployment.kubernetes.io/revision".to_string(),
                    "1".to_string(),
                )]
                .into(),
            )
        };
        let mut new = old.clone();
        if let Object::Deployment(d) = &mut new {
            let d = Arc::make_mut(d);
            d.metadata.annotations = revision();
            d.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
            d.spec.as_mut().unwrap().replicas = Some(5);
            d.status = Some(DeploymentStatus {
                observed_generation: Some(1),
                ..Default::default()
            });
        }
        let mut main = new.clone();
        prepare_for_update(&mut new, &old, Subresource::Status);
        let Object::Deployment(d) = &new else {
            unreachable!()
        };
        assert_eq!(d.metadata.annotations, revision());
        assert_eq!(d.metadata.labels, old.meta().labels);
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(1));
        assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(1));
        assert_eq!(d.metadata.generation, Some(1));
        prepare_for_update(&mut main, &old, Subresource::Main);
        assert_eq!(main.meta().generation, Some(2));
    }

    #[test]
    fn status_update_changes_only_status() {
        let old = Object::Pod(pod(Some("node-1")).into());
        let mut new = old.clone();
        if let Object::Pod(p) = &mut new {
            let p = Arc::make_mut(p);
            p.spec.as_mut().unwrap().node_name = Some("node-2".into());
            p.status = Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            });
        }
        prepare_for_update(&mut new, &old, Subresource::Status);
        let p = new.as_pod().unwrap();
        assert_eq!(
            p.spec.as_ref().unwrap().node_name.as_deref(),
            Some("node-1")
        );
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    }

    #[test]
    fn graceful_pod_delete_waits_for_the_kubelet() {
        let obj = Object::Pod(pod(Some("node-1")).into());
        let d = decide_delete(&obj, &DeleteOptions::default(), now()).unwrap();
        let DeleteDecision::Update(new) = d else {
            panic!("expected graceful update, got {d:?}")
        };
        assert_eq!(new.meta().deletion_grace_period_seconds, Some(30));
        // An unscheduled pod goes at once.
        let obj = Object::Pod(pod(None).into());
        assert_eq!(
            decide_delete(&obj, &DeleteOptions::default(), now()).unwrap(),
            DeleteDecision::Now
        );
        // grace 0 goes at once.
        let obj = Object::Pod(pod(Some("n")).into());
        let opts = DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        assert_eq!(
            decide_delete(&obj, &opts, now()).unwrap(),
            DeleteDecision::Now
        );
    }

    #[test]
    fn foreground_and_orphan_add_finalizers() {
        let obj = Object::Deployment(Deployment::default().into());
        for (policy, finalizer) in [
            ("Foreground", FOREGROUND_FINALIZER),
            ("Orphan", ORPHAN_FINALIZER),
        ] {
            let opts = DeleteOptions {
                propagation_policy: Some(policy.into()),
                ..Default::default()
            };
            let DeleteDecision::Update(new) = decide_delete(&obj, &opts, now()).unwrap() else {
                panic!()
            };
            assert_eq!(
                new.meta().finalizers.as_deref(),
                Some(&[finalizer.to_string()][..])
            );
            assert!(new.meta().deletion_timestamp.is_some());
        }
        let opts = DeleteOptions {
            propagation_policy: Some("Sometimes".into()),
            ..Default::default()
        };
        assert!(decide_delete(&obj, &opts, now())
            .unwrap_err()
            .contains("Unsupported value"));
        let opts = DeleteOptions {
            propagation_policy: Some("Background".into()),
            ..Default::default()
        };
        assert_eq!(
            decide_delete(&obj, &opts, now()).unwrap(),
            DeleteDecision::Now
        );
    }

    #[test]
    fn removing_the_last_finalizer_deletes() {
        let mut obj = Object::Deployment(Deployment::default().into());
        obj.meta_mut().deletion_timestamp = Some(Time(now()));
        assert!(should_delete_during_update(&obj));
        obj.meta_mut().finalizers = Some(vec!["x".into()]);
        assert!(!should_delete_during_update(&obj));
    }

    #[test]
    fn binding_sets_node_and_condition_once() {
        let p = pod(None);
        let b = Binding {
            metadata: ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some("node-1".into()),
                ..Default::default()
            },
        };
        let bound = bind_pod(&p, &b, now()).unwrap();
        assert_eq!(
            bound.spec.as_ref().unwrap().node_name.as_deref(),
            Some("node-1")
        );
        let cond = &bound.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(
            (cond.type_.as_str(), cond.status.as_str()),
            ("PodScheduled", "True")
        );
        assert_eq!(
            bind_pod(&bound, &b, now()).unwrap_err(),
            "pod p is already assigned to node \"node-1\""
        );
    }
}
