//! The ReplicaSet controller's decisions as plain functions: which pods count, how many to
//! create or which to delete, in what batches, what the pods look like, and the status.
//! Mirrors `pkg/controller/replicaset/replica_set.go` (`manageReplicas`, `slowStartBatch`),
//! `replica_set_utils.go` (`calculateStatus`) and `pkg/controller/controller_utils.go`
//! (`FilterActivePods`, `GetPodFromTemplate`).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use super::ranking::pods_to_delete;
use crate::api::selectors::LabelSelector;

/// `SlowStartInitialBatchSize`: the first batch of creates.
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;
/// `ReplicaSetReplicaFailure`.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// `IsPodActive`: not Succeeded, not Failed, not being deleted.
pub fn is_pod_active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed")) && p.metadata.deletion_timestamp.is_none()
}

/// `FilterActivePods`.
pub fn filter_active_pods(pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    pods.iter().filter(|p| is_pod_active(p)).cloned().collect()
}

fn ready_condition(p: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// `IsPodReady`: the Ready condition is True.
pub fn is_pod_ready(p: &Pod) -> bool {
    ready_condition(p).is_some_and(|c| c.status == "True")
}

/// `IsPodAvailable`: ready for at least `min_ready_seconds` at `now`.
pub fn is_pod_available(p: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(c) = ready_condition(p).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    c.last_transition_time
        .as_ref()
        .is_some_and(|t| t.0 + SignedDuration::from_secs(min_ready_seconds as i64) < now)
}

/// `spec.replicas` (1 if unset, as defaulting leaves it).
pub fn desired_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// The selector of `rs`, parsed.
pub fn selector(rs: &ReplicaSet) -> Result<LabelSelector, String> {
    let spec = rs.spec.as_ref().ok_or("spec is missing")?;
    LabelSelector::from_api(&spec.selector).map_err(|e| e.to_string())
}

/// What `manageReplicas` decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Manage {
    /// The pod count is right.
    Nothing,
    /// Create this many pods (already capped at `burstReplicas`).
    Create(usize),
    /// Delete these pods, in this order (already capped at `burstReplicas`).
    Delete(Vec<Arc<Pod>>),
}

/// `manageReplicas`' decision: compare the active pods the RS owns with `spec.replicas`;
/// create or delete at most `burst` at a time; pick the pods to delete by
/// [`pods_to_delete`] with the `related` pods (those of every
/// RS with the same owner) counting who is doubled up on a node.
pub fn manage_replicas(
    rs: &ReplicaSet,
    owned: &[Arc<Pod>],
    related: &[Arc<Pod>],
    burst: usize,
    now: Timestamp,
) -> Manage {
    let desired = desired_replicas(rs).max(0) as usize;
    let have = owned.len();
    if have < desired {
        Manage::Create((desired - have).min(burst))
    } else if have > desired {
        let diff = (have - desired).min(burst);
        Manage::Delete(pods_to_delete(owned, related, diff, now))
    } else {
        Manage::Nothing
    }
}

/// `slowStartBatch`'s batch sizes for `count` creates: 1, 2, 4, … until `count` is reached.
/// The caller runs each batch's creates in parallel and stops at the first batch with an
/// error, so a failing create (quota, bad template) costs one call, not `count`.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut remaining = count;
    let mut size = remaining.min(initial.max(1));
    while size > 0 {
        out.push(size);
        remaining -= size;
        size = (2 * size).min(remaining);
    }
    out
}

/// `getPodsPrefix`: `<rs>-`, the pods' `generateName`.
pub fn pods_prefix(rs_name: &str) -> String {
    format!("{rs_name}-")
}

/// `GetPodFromTemplate`: a pod of `template`, named `<rs>-<random>` by the API server, owned
/// by `controller_ref`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    rs: &ReplicaSet,
    controller_ref: OwnerReference,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(pods_prefix(rs.metadata.name.as_deref().unwrap_or(""))),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations.map(|mut a| {
                // The template's trace context is the deployment's, not this pod's.
                a.remove(crate::telemetry::TRACEPARENT_ANNOTATION);
                a
            }),
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// `calculateStatus`: the status `rs` should have given its active owned pods and the error
/// of `manageReplicas`, if any (which sets, or clears, the `ReplicaFailure` condition).
/// `observedGeneration` is the caller's (`updateReplicaSetStatus`).
pub fn calculate_status(
    rs: &ReplicaSet,
    owned: &[Arc<Pod>],
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let template_labels: BTreeMap<String, String> = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = min_ready_seconds(rs);
    let (mut fully, mut ready, mut available) = (0, 0, 0);
    for p in owned {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            fully += 1;
        }
        if is_pod_ready(p) {
            ready += 1;
            if is_pod_available(p, min_ready, now) {
                available += 1;
            }
        }
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let has_failure = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match manage_error {
        Some(msg) if !has_failure => {
            let diff = owned.len() as i64 - desired_replicas(rs) as i64;
            let reason = if diff < 0 {
                "FailedCreate"
            } else if diff > 0 {
                "FailedDelete"
            } else {
                ""
            };
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(msg.to_string()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    if status.conditions.as_ref().is_some_and(Vec::is_empty) {
        status.conditions = None;
    }
    status.replicas = owned.len() as i32;
    status.fully_labeled_replicas = Some(fully);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status
}

/// `updateReplicaSetStatus`' check: the status with `observedGeneration` set, or `None` when
/// the stored status already says all that (no write).
pub fn status_update(rs: &ReplicaSet, new: ReplicaSetStatus) -> Option<ReplicaSetStatus> {
    let mut new = new;
    new.observed_generation = rs.metadata.generation;
    let current = rs.status.clone().unwrap_or_default();
    let zero = |v: Option<i32>| v.unwrap_or(0);
    let same = current.replicas == new.replicas
        && zero(current.fully_labeled_replicas) == zero(new.fully_labeled_replicas)
        && zero(current.ready_replicas) == zero(new.ready_replicas)
        && zero(current.available_replicas) == zero(new.available_replicas)
        && current.observed_generation == new.observed_generation
        && current.conditions.clone().unwrap_or_default()
            == new.conditions.clone().unwrap_or_default();
    (!same).then_some(new)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaSelector;

    use super::*;
    use crate::controllers::ref_manager::new_controller_ref;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web-7d9fbb5c4b".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: MetaSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&[("app", "web"), ("tier", "front")])),
                        ..Default::default()
                    }),
                    spec: Some(Default::default()),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, labels_: &[(&str, &str)], ready_secs_ago: Option<i64>) -> Arc<Pod> {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels(labels_)),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: ready_secs_ago.map(|s| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(now - SignedDuration::from_secs(s))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn creates_come_in_slow_start_batches() {
        assert_eq!(slow_start_batches(0, 1), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1, 1), [1]);
        assert_eq!(slow_start_batches(3, 1), [1, 2]);
        assert_eq!(slow_start_batches(10, 1), [1, 2, 4, 3]);
        assert_eq!(slow_start_batches(500, 1).iter().sum::<usize>(), 500);
    }

    #[test]
    fn manage_replicas_creates_the_missing_and_deletes_the_surplus_within_the_burst() {
        let p = |n: &str| pod(n, &[("app", "web")], None);
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        assert_eq!(
            manage_replicas(&rs(3), &[], &[], 500, now),
            Manage::Create(3)
        );
        assert_eq!(
            manage_replicas(&rs(1000), &[], &[], 500, now),
            Manage::Create(500)
        );
        assert_eq!(
            manage_replicas(&rs(2), &[p("a"), p("b")], &[], 500, now),
            Manage::Nothing
        );
        let Manage::Delete(gone) =
            manage_replicas(&rs(1), &[p("a"), p("b"), p("c")], &[], 500, now)
        else {
            panic!("expected deletes");
        };
        assert_eq!(gone.len(), 2);
    }

    #[test]
    fn pods_are_made_from_the_template_with_a_blocking_controller_ref() {
        let rs = rs(1);
        let template = rs.spec.as_ref().unwrap().template.clone().unwrap();
        let owner = new_controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
        let p = pod_from_template(&template, &rs, owner);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-7d9fbb5c4b-"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            p.metadata.labels,
            Some(labels(&[("app", "web"), ("tier", "front")]))
        );
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.uid.as_str()),
            ("ReplicaSet", "web-7d9fbb5c4b", "rs-uid")
        );
        assert_eq!(
            (r.controller, r.block_owner_deletion),
            (Some(true), Some(true))
        );
    }

    #[test]
    fn status_counts_labeled_ready_and_available_pods() {
        let mut rs = rs(3);
        rs.spec.as_mut().unwrap().min_ready_seconds = Some(30);
        let pods = [
            pod("a", &[("app", "web"), ("tier", "front")], Some(60)),
            pod("b", &[("app", "web"), ("tier", "front")], Some(5)),
            pod("c", &[("app", "web")], None),
        ];
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let s = calculate_status(&rs, &pods, None, now);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(
            s.available_replicas,
            Some(1),
            "b is ready for 5 s of the 30 required"
        );
        let update = status_update(&rs, s.clone()).expect("a change");
        assert_eq!(update.observed_generation, Some(3));
        rs.status = Some(update);
        assert!(status_update(&rs, s).is_none(), "nothing new: no write");
    }

    #[test]
    fn a_failed_create_sets_replica_failure_and_a_good_sync_clears_it() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let mut rs = rs(2);
        let s = calculate_status(&rs, &[], Some("pods \"x\" is forbidden: quota"), now);
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.reason.as_deref()),
            (REPLICA_FAILURE, Some("FailedCreate"))
        );
        rs.status = Some(s);
        let s = calculate_status(&rs, &[], None, now);
        assert_eq!(s.conditions, None);
    }
}
