//! Fixture tests of the sync logic, in the style of upstream's `deployment_controller_test.go`
//! and `sync_test.go`: objects in the cache → expected actions. The rolling-update and
//! Recreate tests drive a small [`Cluster`] simulator: apply the actions, let a fake
//! ReplicaSet controller create pods and make some available, sync again, and check the
//! strategy's invariants at every step.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
    ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::util::{self, reason, *};
use super::*;

const T0: i64 = 1_700_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: labels(&[("app", "web")]),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn ios(s: &str) -> IntOrString {
    match s.parse() {
        Ok(i) => IntOrString::Int(i),
        Err(_) => IntOrString::String(s.into()),
    }
}

/// `web` in `default`: `replicas`, RollingUpdate with the given surge / unavailability.
fn deployment(replicas: i32, surge: &str, unavailable: &str, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: labels(&[("app", "web")]),
                ..Default::default()
            },
            template: template(image),
            strategy: Some(DeploymentStrategy {
                type_: Some(ROLLING_UPDATE.into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(ios(surge)),
                    max_unavailable: Some(ios(unavailable)),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: None,
    }
}

fn recreate(mut d: Deployment) -> Deployment {
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some(RECREATE.into()),
        rolling_update: None,
    });
    d
}

/// An RS of `d` for `image`, named as the controller names it, created `age` seconds
/// before T0, with `replicas` of which `available` are available, annotated as the
/// controller leaves it after scaling to `desired` (max `desired + surge`).
fn rs(
    d: &Deployment,
    image: &str,
    revision: i64,
    replicas: i32,
    available: i32,
    created: i64,
) -> ReplicaSet {
    let mut t = template(image);
    let hash = compute_hash(&t, None);
    t.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let desired = util::replicas(d);
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("web-{hash}")),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{hash}")),
            creation_timestamp: Some(Time(at(created))),
            resource_version: Some("1".into()),
            generation: Some(1),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
                uid: "d-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            annotations: Some(BTreeMap::from([(
                REVISION_ANNOTATION.to_string(),
                revision.to_string(),
            )])),
            labels: t.metadata.as_ref().unwrap().labels.clone(),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            template: Some(t),
            ..Default::default()
        }),
        status: Some(ReplicaSetStatus {
            replicas,
            available_replicas: Some(available),
            ready_replicas: Some(available),
            observed_generation: Some(1),
            ..Default::default()
        }),
    };
    set_replicas_annotations(&mut rs, desired, desired + max_surge(d));
    rs
}

fn sync(d: &Deployment, rss: &[ReplicaSet]) -> SyncResult {
    let rss: Vec<Arc<ReplicaSet>> = rss.iter().cloned().map(Arc::new).collect();
    sync_deployment(d, &rss, &PodMap::new(), at(0)).unwrap()
}

/// A one-line description of each action, for table comparisons.
fn describe(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::CreateReplicaSet(r) => {
                format!("create {} {}", name(&r.metadata.name), rs_replicas(r))
            }
            Action::UpdateReplicaSet(r) => {
                format!("update {} {}", name(&r.metadata.name), rs_replicas(r))
            }
            Action::DeleteReplicaSet { name, .. } => format!("delete {name}"),
            Action::UpdateDeploymentStatus(_) => "update status".into(),
        })
        .collect()
}

fn status_of(res: &SyncResult) -> DeploymentStatus {
    res.actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateDeploymentStatus(d) => d.status.clone(),
            _ => None,
        })
        .expect("a status update")
}

fn condition(status: &DeploymentStatus, ty: &str) -> (String, String, String) {
    let c = get_condition(Some(status), ty).expect("the condition");
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

fn hash(image: &str) -> String {
    compute_hash(&template(image), None)
}

fn messages(res: &SyncResult) -> Vec<String> {
    res.events.iter().map(|e| e.message.clone()).collect()
}

// ---------------------------------------------------------------------------------------

/// A new deployment gets its ReplicaSet: name, hash label on selector and template,
/// controller ref, annotations, revision, and the NewReplicaSetCreated condition.
#[test]
fn new_deployment_creates_its_replica_set() {
    let d = deployment(3, "25%", "25%", "nginx:1");
    let res = sync(&d, &[]);
    let h = hash("nginx:1");
    let rs_name = format!("web-{h}");
    assert_eq!(
        describe(&res.actions),
        [format!("create {rs_name} 3"), "update status".into()]
    );
    let Action::CreateReplicaSet(rs) = &res.actions[0] else {
        unreachable!()
    };
    let hash_label = Some(&h);
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()
            .get(POD_TEMPLATE_HASH_LABEL),
        hash_label
    );
    let tlabels = rs
        .spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(tlabels.get(POD_TEMPLATE_HASH_LABEL), hash_label);
    assert_eq!(tlabels.get("app").map(String::as_str), Some("web"));
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Deployment", "d-uid", Some(true))
    );
    let a = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("1"));
    assert_eq!(
        a.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str),
        Some("3")
    );
    assert_eq!(
        a.get(MAX_REPLICAS_ANNOTATION).map(String::as_str),
        Some("4")
    );

    let Action::UpdateDeploymentStatus(dd) = &res.actions[1] else {
        unreachable!()
    };
    assert_eq!(
        dd.metadata
            .annotations
            .as_ref()
            .unwrap()
            .get(REVISION_ANNOTATION)
            .map(String::as_str),
        Some("1")
    );
    let status = status_of(&res);
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        condition(&status, PROGRESSING),
        (
            "True".into(),
            reason::NEW_RS_CREATED.into(),
            format!("Created new replica set \"{rs_name}\"")
        )
    );
    assert_eq!(
        condition(&status, AVAILABLE),
        (
            "False".into(),
            reason::MINIMUM_REPLICAS_UNAVAILABLE.into(),
            "Deployment does not have minimum availability.".into()
        )
    );
    assert_eq!(
        messages(&res),
        [format!("Scaled up replica set {rs_name} from 0 to 3")]
    );
}

/// Changing `spec.replicas` with one active ReplicaSet scales it (a scaling event, no
/// rollout).
#[test]
fn scaling_resizes_the_only_active_replica_set() {
    // (replicas before, replicas after) → event
    let cases = [(3, 5, "up"), (5, 2, "down"), (3, 0, "down"), (0, 2, "up")];
    for (before, after, op) in cases {
        let old_d = deployment(before, "25%", "25%", "nginx:1");
        let current = rs(&old_d, "nginx:1", 1, before, before, -100);
        let d = deployment(after, "25%", "25%", "nginx:1");
        let res = sync(&d, std::slice::from_ref(&current));
        let rs_name = name(&current.metadata.name).to_string();
        assert_eq!(
            describe(&res.actions)[0],
            format!("update {rs_name} {after}"),
            "{before}→{after}"
        );
        assert_eq!(
            messages(&res),
            [format!(
                "Scaled {op} replica set {rs_name} from {before} to {after}"
            )]
        );
        let Action::UpdateReplicaSet(updated) = &res.actions[0] else {
            unreachable!()
        };
        assert_eq!(desired_replicas_annotation(updated), Some(after));
        // The update is conditional on what the cache read.
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("1"));
    }
}

/// A steady deployment writes nothing.
#[test]
fn a_settled_deployment_writes_nothing() {
    let d = deployment(3, "25%", "25%", "nginx:1");
    let current = rs(&d, "nginx:1", 1, 3, 3, -100);
    let mut cluster = Cluster::new(d, vec![current]);
    // The first sync records the revision and the status.
    let res = cluster.sync();
    assert_eq!(describe(&res.actions), ["update status"]);
    cluster.apply(&res);
    cluster.step();
    let res = cluster.sync();
    assert_eq!(describe(&res.actions), Vec::<String>::new());
    assert_eq!(
        res.requeue, None,
        "a complete rollout needs no deadline check"
    );
}

/// Proportional scaling during a rollout: the new replicas are shared by size (upstream's
/// `TestScale` cases), the leftover to the largest.
#[test]
fn scaling_mid_rollout_is_proportional() {
    // (old size, new size, replicas before → after) → (old size, new size)
    let cases = [
        (8, 5, 10, 15, 12, 7),
        (8, 5, 10, 5, 4, 3),
        (8, 5, 10, 0, 0, 0),
        // 10·14/13 rounds to 11 (+1), 2·14/13 to 2 (+0); the leftover 1 goes to the largest.
        (2, 10, 10, 11, 2, 12),
    ];
    for (old_n, new_n, before, after, want_old, want_new) in cases {
        let before_d = deployment(before, "25%", "25%", "nginx:2");
        let old = rs(&before_d, "nginx:1", 1, old_n, old_n, -200);
        let new = rs(&before_d, "nginx:2", 2, new_n, 0, -100);
        let d = deployment(after, "25%", "25%", "nginx:2");
        let res = sync(&d, &[old.clone(), new.clone()]);
        let sizes: BTreeMap<String, i32> = res
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::UpdateReplicaSet(r) => {
                    Some((name(&r.metadata.name).to_string(), rs_replicas(r)))
                }
                _ => None,
            })
            .collect();
        let size = |r: &ReplicaSet, default: i32| {
            sizes
                .get(name(&r.metadata.name))
                .copied()
                .unwrap_or(default)
        };
        assert_eq!(
            (size(&old, old_n), size(&new, new_n)),
            (want_old, want_new),
            "{old_n}+{new_n} at {before} → {after}: {:?}",
            describe(&res.actions)
        );
    }
}

/// Rolling updates, step by step through the simulator: at every step
/// `available ≥ replicas − maxUnavailable` and `total ≤ replicas + maxSurge`, until the
/// new ReplicaSet has every replica and the old one none.
#[test]
fn rolling_update_respects_surge_and_unavailability_at_every_step() {
    // (replicas, maxSurge, maxUnavailable, pods made available per step)
    let cases = [
        (10, "25%", "25%", 2),
        (3, "1", "0", 1),
        (3, "0", "1", 1),
        (5, "100%", "0", 5),
        (1, "25%", "25%", 1),
        (10, "0%", "30%", 3),
        (4, "50%", "50%", 1),
    ];
    for (replicas, surge, unavailable, rate) in cases {
        let old_d = deployment(replicas, surge, unavailable, "nginx:1");
        let old = rs(&old_d, "nginx:1", 1, replicas, replicas, -100);
        let mut d = deployment(replicas, surge, unavailable, "nginx:2");
        d.metadata.generation = Some(2);
        let mut cluster = Cluster::new(d.clone(), vec![old]);
        cluster.rate = rate;
        let dd = d.clone();
        let (max_total, min_available) =
            (replicas + max_surge(&dd), replicas - max_unavailable(&dd));
        let case = format!("{replicas} replicas, surge {surge}, unavailable {unavailable}");
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 100, "{case}: no convergence");
            let res = cluster.sync();
            cluster.apply(&res);
            let total = replica_count(cluster.rss.iter());
            let available = available_replica_count(cluster.rss.iter());
            assert!(
                total <= max_total,
                "{case}, step {steps}: {total} pods > {max_total}"
            );
            assert!(
                available >= min_available,
                "{case}, step {steps}: {available} available < {min_available}"
            );
            cluster.step();
            let status = cluster.d.status.clone().unwrap_or_default();
            if deployment_complete(&cluster.d, &status)
                && get_condition(Some(&status), PROGRESSING)
                    .is_some_and(|c| c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE))
            {
                break;
            }
        }
        let new_name = format!("web-{}", hash("nginx:2"));
        let old_name = format!("web-{}", hash("nginx:1"));
        assert_eq!(cluster.size(&new_name), replicas, "{case}");
        assert_eq!(cluster.size(&old_name), 0, "{case}");
        let status = cluster.d.status.clone().unwrap();
        assert_eq!(
            condition(&status, PROGRESSING),
            (
                "True".into(),
                reason::NEW_RS_AVAILABLE.into(),
                format!("ReplicaSet \"{new_name}\" has successfully progressed.")
            ),
            "{case}"
        );
        assert_eq!(
            condition(&status, AVAILABLE),
            (
                "True".into(),
                reason::MINIMUM_REPLICAS_AVAILABLE.into(),
                "Deployment has minimum availability.".into()
            )
        );
        assert_eq!(
            (
                status.replicas,
                status.updated_replicas,
                status.available_replicas,
                status.unavailable_replicas,
                status.observed_generation
            ),
            (
                Some(replicas),
                Some(replicas),
                Some(replicas),
                Some(0),
                Some(2)
            )
        );
        assert_eq!(
            cluster
                .d
                .metadata
                .annotations
                .as_ref()
                .unwrap()
                .get(REVISION_ANNOTATION)
                .map(String::as_str),
            Some("2")
        );
    }
}

/// Recreate: old pods first scaled to zero and gone, only then the new ReplicaSet.
#[test]
fn recreate_scales_down_before_creating() {
    let old_d = recreate(deployment(3, "25%", "25%", "nginx:1"));
    let old = rs(&old_d, "nginx:1", 1, 3, 3, -100);
    let old_name = name(&old.metadata.name).to_string();
    let d = recreate(deployment(3, "25%", "25%", "nginx:2"));
    let new_name = format!("web-{}", hash("nginx:2"));

    // 1. Old RS scaled down; nothing created.
    let res = sync(&d, std::slice::from_ref(&old));
    assert_eq!(
        describe(&res.actions),
        [format!("update {old_name} 0"), "update status".into()]
    );

    // 2. Scaled down but its pods still exist: wait.
    let mut scaled = old.clone();
    set_rs_replicas(&mut scaled, 0);
    let res = sync(&d, std::slice::from_ref(&scaled));
    assert!(!describe(&res.actions)
        .iter()
        .any(|a| a.starts_with("create")));

    // 3. RS status at zero, but a pod of it still runs: wait.
    scaled.status = Some(ReplicaSetStatus::default());
    let running = Pod {
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut pods = PodMap::new();
    pods.insert(
        scaled.metadata.uid.clone().unwrap(),
        vec![Arc::new(running)],
    );
    let res = sync_deployment(&d, &[Arc::new(scaled.clone())], &pods, at(0)).unwrap();
    assert!(!describe(&res.actions)
        .iter()
        .any(|a| a.starts_with("create")));

    // 4. Only succeeded pods left: create the new RS at full size.
    let done = Pod {
        status: Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    pods.insert(scaled.metadata.uid.clone().unwrap(), vec![Arc::new(done)]);
    let res = sync_deployment(&d, &[Arc::new(scaled)], &pods, at(0)).unwrap();
    assert_eq!(describe(&res.actions)[0], format!("create {new_name} 3"));
    assert_eq!(
        messages(&res),
        [format!("Scaled up replica set {new_name} from 0 to 3")]
    );
}

/// Recreate through the simulator never runs old and new pods together.
#[test]
fn recreate_never_overlaps_old_and_new_pods() {
    let old_d = recreate(deployment(4, "25%", "25%", "nginx:1"));
    let old = rs(&old_d, "nginx:1", 1, 4, 4, -100);
    let mut cluster = Cluster::new(recreate(deployment(4, "25%", "25%", "nginx:2")), vec![old]);
    for _ in 0..20 {
        let res = cluster.sync();
        cluster.apply(&res);
        let with_pods = cluster
            .rss
            .iter()
            .filter(|r| rs_actual(r) > 0 || rs_replicas(r) > 0)
            .count();
        assert!(with_pods <= 1, "old and new pods at once");
        cluster.step();
    }
    assert_eq!(cluster.size(&format!("web-{}", hash("nginx:2"))), 4);
    assert_eq!(cluster.size(&format!("web-{}", hash("nginx:1"))), 0);
}

/// Rollback: the template equals an old RS's, so that RS is reused (no create) with the
/// next revision, its previous one in revision-history.
#[test]
fn rollback_reuses_the_old_replica_set_with_a_new_revision() {
    let d1 = deployment(3, "25%", "25%", "nginx:1");
    let v1 = rs(&d1, "nginx:1", 1, 0, 0, -200);
    let v2 = rs(&d1, "nginx:2", 2, 3, 3, -100);
    let d = deployment(3, "25%", "25%", "nginx:1");
    let res = sync(&d, &[v1.clone(), v2]);
    let acts = describe(&res.actions);
    assert!(!acts.iter().any(|a| a.starts_with("create")), "{acts:?}");
    let Action::UpdateReplicaSet(reused) = &res.actions[0] else {
        panic!("{acts:?}")
    };
    assert_eq!(reused.metadata.name, v1.metadata.name);
    let a = reused.metadata.annotations.as_ref().unwrap();
    assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("3"));
    assert_eq!(
        a.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
        Some("1")
    );
    // And it is scaled up within maxSurge (3 + 1 total): one replica.
    assert_eq!(rs_replicas(reused), 1);
    let dep = res.actions.iter().find_map(|a| match a {
        Action::UpdateDeploymentStatus(d) => d.metadata.annotations.clone(),
        _ => None,
    });
    assert_eq!(
        dep.unwrap().get(REVISION_ANNOTATION).map(String::as_str),
        Some("3")
    );
}

/// Paused: scaling still happens, a new template does not roll out, and Progressing says
/// DeploymentPaused; resuming says DeploymentResumed.
#[test]
fn paused_deployments_scale_but_do_not_roll_out() {
    let d1 = deployment(3, "25%", "25%", "nginx:1");
    let current = rs(&d1, "nginx:1", 1, 3, 3, -100);
    let mut d = deployment(5, "25%", "25%", "nginx:2");
    d.spec.as_mut().unwrap().paused = Some(true);
    let res = sync(&d, std::slice::from_ref(&current));
    let rs_name = name(&current.metadata.name).to_string();
    assert_eq!(
        describe(&res.actions),
        [format!("update {rs_name} 5"), "update status".into()]
    );
    let status = status_of(&res);
    assert_eq!(
        condition(&status, PROGRESSING),
        (
            "Unknown".into(),
            reason::PAUSED.into(),
            "Deployment is paused".into()
        )
    );

    let mut cluster = Cluster::new(d, vec![current]);
    let res = cluster.sync();
    cluster.apply(&res);
    cluster.d.spec.as_mut().unwrap().paused = Some(false);
    let res = cluster.sync();
    assert!(
        describe(&res.actions)[0].starts_with("create"),
        "{:?}",
        describe(&res.actions)
    );
    // The resume condition is replaced by NewReplicaSetCreated in the same sync, as upstream.
    let status = status_of(&res);
    assert_eq!(condition(&status, PROGRESSING).1, reason::NEW_RS_CREATED);
}

/// History cleanup: old, scaled-down ReplicaSets beyond revisionHistoryLimit are deleted,
/// lowest revision first; one whose scale-down its controller has not observed yet is kept.
#[test]
fn history_beyond_the_limit_is_cleaned_up() {
    // (limit, old revisions not yet observed?) → deleted revisions
    let cases: [(i32, &[bool], &[i64]); 4] = [
        (2, &[false, false, false, false], &[1, 2]),
        (2, &[true, false, false, false], &[2]),
        (10, &[false, false, false], &[]),
        (0, &[false, false], &[1, 2]),
    ];
    for (limit, olds, want) in cases {
        let mut d = deployment(3, "25%", "25%", "nginx:new");
        d.spec.as_mut().unwrap().revision_history_limit = Some(limit);
        let mut rss: Vec<ReplicaSet> = olds
            .iter()
            .enumerate()
            .map(|(i, &unobserved)| {
                let mut r = rs(
                    &d,
                    &format!("nginx:{i}"),
                    i as i64 + 1,
                    0,
                    0,
                    -1000 + i as i64,
                );
                if unobserved {
                    r.metadata.generation = Some(2);
                }
                r
            })
            .collect();
        rss.push(rs(&d, "nginx:new", olds.len() as i64 + 1, 3, 3, -10));
        let mut cluster = Cluster::new(d, rss);
        // The first sync records the status; cleanup waits for a complete rollout.
        let first = cluster.sync();
        cluster.apply(&first);
        let res = cluster.sync();
        let deleted: Vec<String> = first
            .actions
            .iter()
            .chain(&res.actions)
            .filter_map(|a| match a {
                Action::DeleteReplicaSet { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        let want: Vec<String> = want
            .iter()
            .map(|rev| format!("web-{}", hash(&format!("nginx:{}", rev - 1))))
            .collect();
        assert_eq!(deleted, want, "limit {limit}, {olds:?}");
    }
}

/// minReadySeconds is copied to the new ReplicaSet and kept in sync.
#[test]
fn min_ready_seconds_follows_the_deployment() {
    let mut d = deployment(3, "25%", "25%", "nginx:1");
    d.spec.as_mut().unwrap().min_ready_seconds = Some(10);
    let res = sync(&d, &[]);
    let Action::CreateReplicaSet(created) = &res.actions[0] else {
        unreachable!()
    };
    assert_eq!(created.spec.as_ref().unwrap().min_ready_seconds, Some(10));

    let current = rs(&d, "nginx:1", 1, 3, 3, -100);
    let res = sync(&d, &[current]);
    let Action::UpdateReplicaSet(updated) = &res.actions[0] else {
        panic!("{:?}", describe(&res.actions))
    };
    assert_eq!(updated.spec.as_ref().unwrap().min_ready_seconds, Some(10));
}

/// A rollout that makes no progress for progressDeadlineSeconds is marked
/// ProgressDeadlineExceeded; before that, the sync asks to be requeued at the deadline.
#[test]
fn a_stuck_rollout_times_out_at_its_deadline() {
    let old_d = deployment(3, "25%", "25%", "nginx:1");
    let old = rs(&old_d, "nginx:1", 1, 3, 3, -100);
    let mut cluster = Cluster::new(deployment(3, "25%", "25%", "nginx:2"), vec![old]);
    cluster.rate = 0; // New pods never become available.
    for _ in 0..5 {
        let res = cluster.sync();
        cluster.apply(&res);
        cluster.step();
    }
    // Nothing moves any more: a requeue for the deadline check.
    let res = cluster.sync();
    assert!(res.actions.is_empty(), "{:?}", describe(&res.actions));
    let Some(Requeue::After(after)) = res.requeue else {
        panic!("{:?}", res.requeue)
    };
    assert!(after.as_secs() > 500 && after.as_secs() <= 601, "{after:?}");

    cluster.now += SignedDuration::from_secs(601);
    let res = cluster.sync();
    let status = status_of(&res);
    let new_name = format!("web-{}", hash("nginx:2"));
    assert_eq!(
        condition(&status, PROGRESSING),
        (
            "False".into(),
            reason::TIMED_OUT.into(),
            format!("ReplicaSet \"{new_name}\" has timed out progressing.")
        )
    );
}

/// An AlreadyExists on create is harmless for our own RS, a hash collision otherwise.
#[test]
fn create_conflicts_bump_the_collision_count_only_for_foreign_replica_sets() {
    let d = deployment(3, "25%", "25%", "nginx:1");
    let ours = rs(&d, "nginx:1", 1, 3, 3, -1);
    assert!(on_create_conflict(&d, &ours).is_none());
    let mut foreign = ours.clone();
    foreign.metadata.owner_references = None;
    let bumped = on_create_conflict(&d, &foreign).unwrap();
    assert_eq!(bumped.status.unwrap().collision_count, Some(1));
}

/// An empty selector selects everything: refuse, with a warning event.
#[test]
fn an_empty_selector_is_refused() {
    let mut d = deployment(3, "25%", "25%", "nginx:1");
    d.spec.as_mut().unwrap().selector = LabelSelector::default();
    let res = sync(&d, &[]);
    assert_eq!(describe(&res.actions), ["update status"]);
    assert_eq!(res.events[0].reason, reason::SELECTING_ALL);
    assert_eq!(res.events[0].type_, EventType::Warning);
}

// ---------------------------------------------------------------------------------------
// The simulator

/// A deployment, its ReplicaSets, and a fake ReplicaSet controller.
struct Cluster {
    d: Deployment,
    rss: Vec<ReplicaSet>,
    now: Timestamp,
    /// Pods of each RS that become available per step.
    rate: i32,
    next_uid: u32,
}

impl Cluster {
    fn new(d: Deployment, rss: Vec<ReplicaSet>) -> Self {
        Cluster {
            d,
            rss,
            now: at(0),
            rate: 1,
            next_uid: 0,
        }
    }

    fn sync(&self) -> SyncResult {
        let rss: Vec<Arc<ReplicaSet>> = self.rss.iter().cloned().map(Arc::new).collect();
        sync_deployment(&self.d, &rss, &PodMap::new(), self.now).unwrap()
    }

    fn size(&self, name: &str) -> i32 {
        self.rss
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .map(rs_replicas)
            .unwrap_or(0)
    }

    /// What the API server would do with the actions.
    fn apply(&mut self, res: &SyncResult) {
        for a in &res.actions {
            match a {
                Action::CreateReplicaSet(r) => {
                    let mut r = r.clone();
                    self.next_uid += 1;
                    r.metadata.uid = Some(format!("created-{}", self.next_uid));
                    r.metadata.creation_timestamp = Some(Time(self.now));
                    r.status = Some(ReplicaSetStatus::default());
                    self.rss.push(r);
                }
                Action::UpdateReplicaSet(r) => {
                    let cur = self
                        .rss
                        .iter_mut()
                        .find(|c| c.metadata.name == r.metadata.name)
                        .expect("updated RS exists");
                    cur.metadata.annotations = r.metadata.annotations.clone();
                    cur.spec = r.spec.clone();
                }
                Action::DeleteReplicaSet { name, .. } => {
                    self.rss
                        .retain(|r| r.metadata.name.as_deref() != Some(name));
                }
                Action::UpdateDeploymentStatus(d) => {
                    self.d.metadata.annotations = d.metadata.annotations.clone();
                    self.d.status = d.status.clone();
                }
            }
        }
    }

    /// One second of the ReplicaSet controller and kubelets: pods created and deleted at
    /// once, `rate` more of each RS's pods become available.
    fn step(&mut self) {
        self.now += SignedDuration::from_secs(1);
        for r in &mut self.rss {
            let want = rs_replicas(r);
            let s = r.status.get_or_insert_with(Default::default);
            s.replicas = want;
            let avail = s.available_replicas.unwrap_or(0).min(want);
            let avail = (avail + self.rate).min(want);
            s.available_replicas = Some(avail);
            s.ready_replicas = Some(avail);
            s.observed_generation = r.metadata.generation;
        }
    }
}
