//! kube-controller-manager on the memory store: Deployment → ReplicaSet → Pods with the right
//! owners and labels, scaling, a rolling update, adoption and release, deletion with each
//! propagation policy, the Events recorded, Event expiry, and one trace from the create
//! request to the pod creates.
//!
//! Timing: every wait polls the API server every 10 ms until a deadline (generous, as the
//! machine is shared); nothing sleeps and hopes. No scheduler or kubelet runs: pods stay
//! unscheduled (so a delete removes them at once), and the rolling-update test plays the
//! kubelet's part by marking new pods Ready.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{
    Container, Event, ObjectReference, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions, LabelSelector, ObjectMeta, Time,
};
use kubeactor::api::{Kind, Object};
use kubeactor::apiserver::*;
use kubeactor::config::{Config, ControllersConfig, StoreEngine};
use kubeactor::controllers::ControllerManager;
use kubeactor::store::{self, Store, StoreOptions};
use kubeactor::telemetry::{StoredSpan, Telemetry};

const DEADLINE: Duration = Duration::from_secs(20);
const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH: &str = "pod-template-hash";

struct Harness {
    api: Addr<ApiServer>,
    telemetry: Telemetry,
    _controllers: ControllerManager,
    _store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn harness_with(tweak: impl FnOnce(&mut ControllersConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(StoreEngine::Memory, dir.path(), StoreOptions::default()).unwrap();
    let telemetry = Telemetry::in_memory(20_000);
    let api = ApiServer::new(store.clone(), ApiServerOptions::default(), &telemetry)
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut config = Config::defaults().controllers;
    tweak(&mut config);
    let controllers = ControllerManager::start(api.clone(), &config, &telemetry);
    Harness {
        api,
        telemetry,
        _controllers: controllers,
        _store: store,
        _dir: dir,
    }
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

/// Poll `check` every 10 ms until it answers `Some`, or fail after [`DEADLINE`] with `what`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn template(app: &str, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&[("app", app)])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "nginx".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", name)])),
                ..Default::default()
            },
            template: template(name, image),
            ..Default::default()
        }),
        status: None,
    }
}

async fn create(api: &Addr<ApiServer>, object: Object, trace: Trace) -> Arc<Object> {
    api.send(Create {
        object,
        options: WriteOptions::default(),
        trace,
    })
    .await
    .unwrap()
    .unwrap()
}

async fn list<T: Clone>(
    api: &Addr<ApiServer>,
    kind: Kind,
    pick: fn(&Object) -> Option<&T>,
) -> Vec<T> {
    let l = api.send(List::all(kind)).await.unwrap().unwrap();
    l.items.iter().filter_map(|o| pick(o).cloned()).collect()
}

async fn pods(api: &Addr<ApiServer>) -> Vec<Pod> {
    list(api, Kind::Pod, |o| match o {
        Object::Pod(p) => Some(&**p),
        _ => None,
    })
    .await
}

async fn replica_sets(api: &Addr<ApiServer>) -> Vec<ReplicaSet> {
    list(api, Kind::ReplicaSet, |o| match o {
        Object::ReplicaSet(r) => Some(&**r),
        _ => None,
    })
    .await
}

async fn deployments(api: &Addr<ApiServer>) -> Vec<Deployment> {
    list(api, Kind::Deployment, |o| match o {
        Object::Deployment(d) => Some(&**d),
        _ => None,
    })
    .await
}

async fn events(api: &Addr<ApiServer>) -> Vec<Event> {
    list(api, Kind::Event, |o| match o {
        Object::Event(e) => Some(&**e),
        _ => None,
    })
    .await
}

async fn get(api: &Addr<ApiServer>, kind: Kind, name: &str) -> Option<Arc<Object>> {
    api.send(Get {
        kind,
        namespace: Some("default".into()),
        name: name.into(),
    })
    .await
    .unwrap()
    .ok()
}

/// Change a deployment's spec, retrying when the controller's status writes race ours.
async fn edit_deployment(api: &Addr<ApiServer>, name: &str, change: impl Fn(&mut DeploymentSpec)) {
    eventually("an update without conflict", || async {
        let Some(obj) = get(api, Kind::Deployment, name).await else {
            panic!("deployment {name} is gone");
        };
        let Object::Deployment(d) = &*obj else {
            unreachable!()
        };
        let mut d = (**d).clone();
        change(d.spec.as_mut().unwrap());
        let res = api
            .send(Update {
                object: Object::Deployment(d.into()),
                subresource: Subresource::Main,
                options: WriteOptions::default(),
                trace: Trace::Untraced,
            })
            .await
            .unwrap();
        match res {
            Ok(_) => Some(()),
            Err(ApiError::Conflict { .. }) => None,
            Err(e) => panic!("update failed: {e}"),
        }
    })
    .await
}

fn controller_of(meta: &ObjectMeta) -> Option<(String, String, Option<bool>)> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.clone(), r.uid.clone(), r.block_owner_deletion))
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Wait until `name` has exactly one ReplicaSet of `want` replicas and that many pods, all
/// settled (the status says so too). Returns them.
async fn settled(api: &Addr<ApiServer>, name: &str, want: i32) -> (ReplicaSet, Vec<Pod>) {
    eventually(&format!("{name}: 1 ReplicaSet and {want} pods"), || async {
        let rss: Vec<ReplicaSet> = replica_sets(api)
            .await
            .into_iter()
            .filter(|r| {
                r.metadata
                    .name
                    .as_deref()
                    .unwrap_or("")
                    .starts_with(&format!("{name}-"))
            })
            .collect();
        let [rs] = &rss[..] else { return None };
        let uid = rs.metadata.uid.clone()?;
        let ps: Vec<Pod> = pods(api)
            .await
            .into_iter()
            .filter(|p| controller_of(&p.metadata).is_some_and(|(_, u, _)| u == uid))
            .collect();
        let status = rs.status.as_ref()?;
        (replicas(rs) == want && ps.len() == want as usize && status.replicas == want)
            .then(|| (rs.clone(), ps))
    })
    .await
}

#[actix_rt::test]
async fn a_deployment_of_3_gets_one_replicaset_and_3_pods_with_owners_and_labels() {
    let h = harness().await;
    let d = create(
        &h.api,
        deployment("web", 3, "nginx:1.27").into(),
        Trace::Untraced,
    )
    .await;
    let (rs, ps) = settled(&h.api, "web", 3).await;

    let hash = rs.metadata.labels.as_ref().unwrap()[HASH].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        controller_of(&rs.metadata),
        Some((
            "Deployment".into(),
            d.meta().uid.clone().unwrap(),
            Some(true)
        ))
    );
    assert_eq!(annotation(&rs.metadata, REVISION), Some("1"));
    for p in &ps {
        let name = p.metadata.name.as_deref().unwrap();
        assert!(
            name.starts_with(&format!("web-{hash}-")),
            "generateName <rs>-: {name}"
        );
        assert_eq!(
            p.metadata.labels,
            Some(labels(&[("app", "web"), (HASH, &hash)])),
            "template labels plus the hash"
        );
        assert_eq!(
            controller_of(&p.metadata),
            Some((
                "ReplicaSet".into(),
                rs.metadata.uid.clone().unwrap(),
                Some(true)
            ))
        );
    }
    let status = rs.status.as_ref().unwrap();
    assert_eq!(
        (
            status.replicas,
            status.fully_labeled_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (3, Some(3), Some(0), Some(0)),
        "no kubelet: nothing is ready"
    );
    assert_eq!(status.observed_generation, rs.metadata.generation);

    // The deployment's revision annotation came with a status write, as upstream's: no spec
    // or annotation change through the main resource, so it is still generation 1.
    let d = eventually("the deployment observes generation 1", || async {
        deployments(&h.api).await.into_iter().find(|d| {
            annotation(&d.metadata, REVISION) == Some("1")
                && d.status.as_ref().and_then(|s| s.observed_generation) == Some(1)
        })
    })
    .await;
    assert_eq!(d.metadata.generation, Some(1));
}

#[actix_rt::test]
async fn scaling_to_5_and_back_to_2_keeps_one_replicaset() {
    let h = harness().await;
    create(
        &h.api,
        deployment("web", 3, "nginx:1.27").into(),
        Trace::Untraced,
    )
    .await;
    let (rs, _) = settled(&h.api, "web", 3).await;
    edit_deployment(&h.api, "web", |s| s.replicas = Some(5)).await;
    let (rs5, _) = settled(&h.api, "web", 5).await;
    assert_eq!(
        rs5.metadata.uid, rs.metadata.uid,
        "scaling does not roll out"
    );
    edit_deployment(&h.api, "web", |s| s.replicas = Some(2)).await;
    let (rs2, _) = settled(&h.api, "web", 2).await;
    assert_eq!(rs2.metadata.uid, rs.metadata.uid);
    assert_eq!(pods(&h.api).await.len(), 2, "no leftover pods");
}

/// Plays the kubelet's part for the rolling update: every pod is marked Running and Ready.
async fn mark_pods_ready(api: &Addr<ApiServer>) {
    for mut p in pods(api).await {
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(jiff::Timestamp::now())),
                ..Default::default()
            }]),
            ..p.status.clone().unwrap_or_default()
        });
        // A conflict means the pod changed meanwhile: the next round retries.
        let _ = api
            .send(Update {
                object: Object::Pod(p.into()),
                subresource: Subresource::Status,
                options: WriteOptions::default(),
                trace: Trace::Untraced,
            })
            .await
            .unwrap();
    }
}

#[actix_rt::test]
async fn changing_the_image_rolls_out_a_new_replicaset_and_scales_the_old_one_to_0() {
    let h = harness().await;
    create(
        &h.api,
        deployment("web", 3, "nginx:1.27").into(),
        Trace::Untraced,
    )
    .await;
    let (old, _) = settled(&h.api, "web", 3).await;
    edit_deployment(&h.api, "web", |s| {
        s.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.28".into())
    })
    .await;
    let api = &h.api;
    let (new, old) = eventually("the rollout to finish", || async {
        mark_pods_ready(api).await;
        let rss = replica_sets(api).await;
        let old_now = rss
            .iter()
            .find(|r| r.metadata.uid == old.metadata.uid)?
            .clone();
        let new = rss
            .iter()
            .find(|r| r.metadata.uid != old.metadata.uid)?
            .clone();
        let ps = pods(api).await;
        let new_uid = new.metadata.uid.clone()?;
        let all_new = ps.len() == 3
            && ps
                .iter()
                .all(|p| controller_of(&p.metadata).is_some_and(|(_, u, _)| u == new_uid));
        let done = replicas(&new) == 3 && replicas(&old_now) == 0 && all_new;
        done.then_some((new, old_now))
    })
    .await;
    assert_eq!(annotation(&old.metadata, REVISION), Some("1"));
    assert_eq!(annotation(&new.metadata, REVISION), Some("2"));
    let image = |rs: &ReplicaSet| {
        rs.spec
            .as_ref()
            .unwrap()
            .template
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
    };
    assert_eq!(image(&new).as_deref(), Some("nginx:1.28"));
    let d = eventually("the deployment status to catch up", || async {
        let d = deployments(api).await.pop()?;
        let s = d.status.clone()?;
        (s.updated_replicas == Some(3) && s.available_replicas == Some(3)).then_some(d)
    })
    .await;
    assert_eq!(annotation(&d.metadata, REVISION), Some("2"));
}

#[actix_rt::test]
async fn a_replicaset_adopts_matching_orphans_and_releases_pods_that_stop_matching() {
    let h = harness().await;
    let orphan = Pod {
        metadata: ObjectMeta {
            name: Some("stray".into()),
            namespace: Some("default".into()),
            labels: Some(labels(&[("app", "cache")])),
            ..Default::default()
        },
        spec: template("cache", "redis:7").spec,
        status: None,
    };
    create(&h.api, orphan.into(), Trace::Untraced).await;
    let rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some("cache".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(3),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "cache")])),
                ..Default::default()
            },
            template: Some(template("cache", "redis:7")),
            ..Default::default()
        }),
        status: None,
    };
    let rs = create(&h.api, rs.into(), Trace::Untraced).await;
    let rs_uid = rs.meta().uid.clone().unwrap();
    let owned_by_rs = |ps: &[Pod]| {
        ps.iter()
            .filter(|p| controller_of(&p.metadata).is_some_and(|(_, u, _)| u == rs_uid))
            .count()
    };
    let api = &h.api;
    eventually("the stray pod adopted and 2 more created", || async {
        let ps = pods(api).await;
        let stray = ps
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("stray"))?;
        let adopted = controller_of(&stray.metadata).is_some_and(|(_, u, _)| u == rs_uid);
        (adopted && ps.len() == 3 && owned_by_rs(&ps) == 3).then_some(())
    })
    .await;

    // Relabel the stray pod: the ReplicaSet releases it and makes a replacement.
    let Object::Pod(mut stray) = (*get(api, Kind::Pod, "stray").await.unwrap()).clone() else {
        unreachable!()
    };
    std::sync::Arc::make_mut(&mut stray).metadata.labels = Some(labels(&[("app", "debug")]));
    api.send(Update {
        object: Object::Pod(stray),
        subresource: Subresource::Main,
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    })
    .await
    .unwrap()
    .unwrap();
    eventually("the stray pod released and replaced", || async {
        let ps = pods(api).await;
        let stray = ps
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("stray"))?;
        (controller_of(&stray.metadata).is_none() && ps.len() == 4 && owned_by_rs(&ps) == 3)
            .then_some(())
    })
    .await;
}

async fn delete_web(api: &Addr<ApiServer>, policy: &str) -> Deleted {
    api.send(Delete {
        kind: Kind::Deployment,
        namespace: Some("default".into()),
        name: "web".into(),
        options: DeleteOptions {
            propagation_policy: Some(policy.into()),
            ..Default::default()
        },
        write: WriteOptions::default(),
        trace: Trace::Untraced,
    })
    .await
    .unwrap()
    .unwrap()
}

async fn nothing_left(api: &Addr<ApiServer>) {
    eventually("no deployment, ReplicaSet or pod left", || async {
        let n =
            deployments(api).await.len() + replica_sets(api).await.len() + pods(api).await.len();
        (n == 0).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn background_deletion_collects_the_replicaset_and_its_pods() {
    let h = harness().await;
    create(
        &h.api,
        deployment("web", 3, "nginx:1.27").into(),
        Trace::Untraced,
    )
    .await;
    settled(&h.api, "web", 3).await;
    let deleted = delete_web(&h.api, "Background").await;
    assert!(
        matches!(deleted, Deleted::Gone(_)),
        "the owner goes at once"
    );
    nothing_left(&h.api).await;
}

#[actix_rt::test]
async fn foreground_deletion_keeps_the_owner_until_its_dependents_are_gone() {
    let h = harness().await;
    create(
        &h.api,
        deployment("web", 3, "nginx:1.27").into(),
        Trace::Untraced,
    )
    .await;
    settled(&h.api, "web", 3).await;
    let Deleted::Pending(d) = delete_web(&h.api, "Foreground").await else {
        panic!("a foreground delete keeps the owner for now");
    };
    assert!(d.meta().deletion_timestamp.is_some());
    assert_eq!(
        d.meta().finalizers.as_deref(),
        Some(&["foregroundDeletion".to_string()][..])
    );
    nothing_left(&h.api).await;
}

#[actix_rt::test]
async fn orphan_deletion_leaves_the_replicaset_and_pods_without_the_owner() {
    let h = harness().await;
    create(
        &h.api,
        deployment("web", 3, "nginx:1.27").into(),
        Trace::Untraced,
    )
    .await;
    let (rs, _) = settled(&h.api, "web", 3).await;
    delete_web(&h.api, "Orphan").await;
    let api = &h.api;
    let rs_now = eventually(
        "the deployment gone and the ReplicaSet orphaned",
        || async {
            let gone = deployments(api).await.is_empty();
            let rss = replica_sets(api).await;
            let [r] = &rss[..] else { return None };
            (gone && r.metadata.owner_references.is_none()).then(|| r.clone())
        },
    )
    .await;
    assert_eq!(rs_now.metadata.uid, rs.metadata.uid);
    let ps = pods(api).await;
    assert_eq!(ps.len(), 3, "the orphaned ReplicaSet keeps its pods");
    assert!(ps
        .iter()
        .all(|p| controller_of(&p.metadata).is_some_and(|(_, u, _)| Some(u) == rs.metadata.uid)));

    // A new deployment with the same selector adopts the orphan instead of starting over.
    let d = create(
        api,
        deployment("web", 3, "nginx:1.27").into(),
        Trace::Untraced,
    )
    .await;
    settled(api, "web", 3).await;
    // Adoption is its own write after the ReplicaSet is found: wait for it rather than race it.
    let want = Some((
        "Deployment".to_string(),
        d.meta().uid.clone().unwrap(),
        Some(true),
    ));
    let adopted = eventually(
        "the new Deployment adopts the orphaned ReplicaSet",
        || async {
            let rss = replica_sets(api).await;
            let [r] = &rss[..] else { return None };
            (controller_of(&r.metadata) == want).then(|| r.clone())
        },
    )
    .await;
    assert_eq!(adopted.metadata.uid, rs.metadata.uid);
}

fn reasons_of(evs: &[Event], kind: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = evs
        .iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some(kind))
        .map(|e| {
            (
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
                e.source
                    .as_ref()
                    .and_then(|s| s.component.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

#[actix_rt::test]
async fn events_are_recorded_with_upstream_reasons_and_messages() {
    let h = harness().await;
    create(
        &h.api,
        deployment("web", 3, "nginx:1.27").into(),
        Trace::Untraced,
    )
    .await;
    let (rs, ps) = settled(&h.api, "web", 3).await;
    let rs_name = rs.metadata.name.clone().unwrap();
    let api = &h.api;
    let evs = eventually("4 events", || async {
        let evs = events(api).await;
        (evs.len() >= 4).then_some(evs)
    })
    .await;
    assert_eq!(
        reasons_of(&evs, "Deployment"),
        [(
            "ScalingReplicaSet".to_string(),
            format!("Scaled up replica set {rs_name} from 0 to 3"),
            "deployment-controller".to_string()
        )]
    );
    let mut want: Vec<(String, String, String)> = ps
        .iter()
        .map(|p| {
            (
                "SuccessfulCreate".to_string(),
                format!("Created pod: {}", p.metadata.name.as_deref().unwrap()),
                "replicaset-controller".to_string(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(reasons_of(&evs, "ReplicaSet"), want);

    edit_deployment(api, "web", |s| s.replicas = Some(1)).await;
    settled(api, "web", 1).await;
    let evs = eventually("the scale-down events", || async {
        let evs = events(api).await;
        let deletes = evs
            .iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulDelete"))
            .count();
        (deletes == 2).then_some(evs)
    })
    .await;
    assert!(reasons_of(&evs, "Deployment").contains(&(
        "ScalingReplicaSet".to_string(),
        format!("Scaled down replica set {rs_name} from 3 to 1"),
        "deployment-controller".to_string()
    )));
    assert!(evs
        .iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulDelete"))
        .all(|e| e
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with(&format!("Deleted pod: {rs_name}-")))));
}

#[actix_rt::test]
async fn events_older_than_the_ttl_are_deleted() {
    let h = harness_with(|c| c.event_ttl_sweep_seconds = 0.02).await;
    let event = |name: &str, secs_ago: i64| Event {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some("web-1".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        reason: Some("Pulled".into()),
        message: Some("pulled".into()),
        type_: Some("Normal".into()),
        last_timestamp: Some(Time(
            jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs_ago),
        )),
        ..Default::default()
    };
    create(&h.api, event("old.1", 7200).into(), Trace::Untraced).await;
    create(&h.api, event("fresh.1", 60).into(), Trace::Untraced).await;
    let api = &h.api;
    eventually("the 2-hour-old event to expire", || async {
        let names: Vec<String> = events(api)
            .await
            .into_iter()
            .filter_map(|e| e.metadata.name)
            .collect();
        (names == ["fresh.1"]).then_some(())
    })
    .await;
}

fn span_named(spans: &[StoredSpan], pred: impl Fn(&str) -> bool) -> Option<&StoredSpan> {
    spans.iter().find(|s| pred(&s.name))
}

/// Whether `ancestor` is `span` or one of its ancestors in `spans`.
fn descends_from(spans: &[StoredSpan], span: &StoredSpan, ancestor: &StoredSpan) -> bool {
    let mut cur = Some(span);
    while let Some(s) = cur {
        if s.span_id == ancestor.span_id {
            return true;
        }
        cur = s
            .parent_span_id
            .and_then(|p| spans.iter().find(|x| x.span_id == p));
    }
    false
}

#[actix_rt::test]
async fn one_trace_from_the_create_request_to_the_pod_creates() {
    let h = harness().await;
    let created = h
        .api
        .send(Create {
            object: deployment("web", 3, "nginx:1.27").into(),
            options: WriteOptions {
                span_name: Some("kubectl create deployments/web".into()),
                ..Default::default()
            },
            trace: Trace::root(),
        })
        .await
        .unwrap()
        .unwrap();
    let (rs, _) = settled(&h.api, "web", 3).await;
    let rs_key = format!("default/{}", rs.metadata.name.as_deref().unwrap());
    let trace_id = {
        use opentelemetry::trace::TraceContextExt;
        kubeactor::telemetry::extract(created.meta())
            .span()
            .span_context()
            .trace_id()
    };
    let store = h.telemetry.span_store();
    let spans = eventually("the chain's spans", || async {
        let spans = store.trace(trace_id);
        let pod_creates = spans
            .iter()
            .filter(|s| s.name.starts_with(&format!("create pods {rs_key}-")))
            .count();
        (pod_creates == 3
            && spans
                .iter()
                .any(|s| s.name == format!("sync replicaset {rs_key}")))
        .then_some(spans)
    })
    .await;
    let root = span_named(&spans, |n| n == "kubectl create deployments/web").unwrap();
    assert!(root.is_root());
    let sync_d = span_named(&spans, |n| n == "sync deployment default/web").unwrap();
    assert_eq!(&*sync_d.service_name, "kube-controller-manager");
    assert!(descends_from(&spans, sync_d, root));
    let create_rs = span_named(&spans, |n| n == format!("create replicasets {rs_key}")).unwrap();
    assert!(descends_from(&spans, create_rs, sync_d));
    let sync_rs = span_named(&spans, |n| n == format!("sync replicaset {rs_key}")).unwrap();
    assert_eq!(&*sync_rs.service_name, "kube-controller-manager");
    assert!(descends_from(&spans, sync_rs, create_rs));
    for pod_create in spans
        .iter()
        .filter(|s| s.name.starts_with(&format!("create pods {rs_key}-")))
    {
        assert!(
            descends_from(&spans, pod_create, sync_rs),
            "{} descends from {}",
            pod_create.name,
            sync_rs.name
        );
    }
    // Background work started no trace of its own: every controller span is in a user's.
    let orphans = store
        .spans()
        .into_iter()
        .filter(|s| &*s.service_name == "kube-controller-manager" && s.trace_id != trace_id)
        .count();
    assert_eq!(orphans, 0);
}
