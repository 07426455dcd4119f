//! The ApiServer actor on both store engines: the verbs, resourceVersion rules, generation,
//! generateName, namespaces, validation, watch replay/expiry/filtering, slow watchers,
//! graceful deletion and finalizers, binding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Binding, Container, ObjectReference, Pod, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions, LabelSelector as MetaSelector, ObjectMeta,
};
use kubeactor::api::selectors::{FieldSelector, LabelSelector};
use kubeactor::api::{Kind, Object};
use kubeactor::apiserver::*;
use kubeactor::config::StoreEngine;
use kubeactor::store::{self, Store, StoreOptions};
use kubeactor::telemetry::Telemetry;
use tokio::sync::mpsc;

struct Server {
    api: Addr<ApiServer>,
    _store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn server_with(engine: StoreEngine, opts: ApiServerOptions) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(engine, dir.path(), StoreOptions::default()).unwrap();
    let telemetry = Telemetry::in_memory(1000);
    let api = ApiServer::new(store.clone(), opts, &telemetry)
        .unwrap()
        .start()
        .await
        .unwrap();
    Server {
        api,
        _store: store,
        _dir: dir,
    }
}

async fn server(engine: StoreEngine) -> Server {
    server_with(engine, ApiServerOptions::default()).await
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..Default::default()
    }
}

fn pod(ns: &str, name: &str, node: Option<&str>) -> Object {
    Object::from(Pod {
        metadata: ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..meta(ns, name)
        },
        spec: Some(PodSpec {
            node_name: node.map(Into::into),
            containers: vec![Container {
                name: "nginx".into(),
                image: Some("nginx:1.27".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn deployment(name: &str, replicas: i32) -> Object {
    let labels: std::collections::BTreeMap<String, String> =
        [("app".to_string(), name.to_string())].into();
    Object::from(Deployment {
        metadata: meta("default", name),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: MetaSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "nginx".into(),
                        image: Some("nginx:1.27".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A Binding of pod `name` (namespace `default`) to `node`.
fn binding(name: &str, node: &str) -> Binding {
    Binding {
        metadata: meta("default", name),
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        },
    }
}

async fn create(api: &Addr<ApiServer>, object: Object) -> Result<Arc<Object>, ApiError> {
    api.send(Create {
        object,
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    })
    .await
    .unwrap()
}

async fn update(api: &Addr<ApiServer>, object: Object) -> Result<Arc<Object>, ApiError> {
    api.send(Update {
        object,
        subresource: Subresource::Main,
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    })
    .await
    .unwrap()
}

async fn get(
    api: &Addr<ApiServer>,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Result<Arc<Object>, ApiError> {
    api.send(Get {
        kind,
        namespace: Some(ns.into()),
        name: name.into(),
    })
    .await
    .unwrap()
}

async fn delete(
    api: &Addr<ApiServer>,
    kind: Kind,
    name: &str,
    options: DeleteOptions,
) -> Result<Deleted, ApiError> {
    api.send(Delete {
        kind,
        namespace: Some("default".into()),
        name: name.into(),
        options,
        write: WriteOptions::default(),
        trace: Trace::Untraced,
    })
    .await
    .unwrap()
}

/// Receive the next event within a deadline.
async fn next(rx: &mut mpsc::Receiver<WatchEvent>) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no watch event within 5 s")
        .expect("watch closed")
}

fn describe(ev: &WatchEvent) -> String {
    match ev {
        WatchEvent::Added(o) => format!("ADDED {}", o.name()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.name()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.name()),
        WatchEvent::Bookmark(r) => format!("BOOKMARK {r}"),
        WatchEvent::Error(e) => format!("ERROR {}", e.reason()),
    }
}

macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[actix_rt::test] async fn $name() { super::$name(kubeactor::config::StoreEngine::Memory).await })*
        }
        mod redb {
            $(#[actix_rt::test] async fn $name() { super::$name(kubeactor::config::StoreEngine::Redb).await })*
        }
    };
}

both_engines!(
    system_namespaces_exist_on_first_start,
    create_get_list_update_delete,
    create_twice_is_already_exists,
    stale_resource_version_is_a_conflict,
    generation_bumps_on_spec_changes_only,
    generate_name_adds_five_characters,
    creating_in_a_missing_namespace_is_not_found,
    invalid_objects_are_rejected_with_field_causes,
    noop_update_writes_nothing,
    watch_from_a_revision_replays_exactly_what_followed,
    a_resumed_watch_sees_what_live_watchers_saw,
    watch_from_the_window_floor_replays_and_from_below_is_gone,
    filtered_watches_see_only_their_objects,
    a_stuck_watcher_is_closed_without_blocking_writers,
    graceful_pod_deletion_waits_for_grace_zero,
    finalizers_hold_an_object_until_removed,
    bind_sets_the_node_once,
    list_pages_with_limit_and_continue,
    restart_keeps_objects,
);

async fn system_namespaces_exist_on_first_start(engine: StoreEngine) {
    let s = server(engine).await;
    let list = s
        .api
        .send(List::all(Kind::Namespace))
        .await
        .unwrap()
        .unwrap();
    let names: Vec<&str> = list.items.iter().map(|o| o.name()).collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let forbidden = delete(&s.api, Kind::Namespace, "default", DeleteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(forbidden.code(), 403);
}

async fn create_get_list_update_delete(engine: StoreEngine) {
    let s = server(engine).await;
    let created = create(&s.api, pod("default", "web-1", None)).await.unwrap();
    let m = created.meta();
    assert!(m.uid.is_some() && m.creation_timestamp.is_some());
    let rv = created.resource_version();
    assert!(rv > 1);
    let got = get(&s.api, Kind::Pod, "default", "web-1").await.unwrap();
    assert_eq!(got, created);
    let list = s
        .api
        .send(List {
            namespace: Some("default".into()),
            ..List::all(Kind::Pod)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.resource_version, rv);

    let mut changed = (*got).clone();
    changed.meta_mut().labels = Some([("tier".to_string(), "front".to_string())].into());
    let updated = update(&s.api, changed).await.unwrap();
    assert!(updated.resource_version() > rv);
    assert_eq!(updated.meta().uid, created.meta().uid, "uid is immutable");

    // An unscheduled pod is deleted at once.
    let gone = delete(&s.api, Kind::Pod, "web-1", DeleteOptions::default())
        .await
        .unwrap();
    assert!(matches!(gone, Deleted::Gone(_)));
    let err = get(&s.api, Kind::Pod, "default", "web-1")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "pods \"web-1\" not found");
    assert_eq!(err.code(), 404);
}

async fn create_twice_is_already_exists(engine: StoreEngine) {
    let s = server(engine).await;
    create(&s.api, deployment("web", 3)).await.unwrap();
    let err = create(&s.api, deployment("web", 3)).await.unwrap_err();
    assert_eq!(err.to_string(), "deployments.apps \"web\" already exists");
    assert_eq!((err.code(), err.reason()), (409, "AlreadyExists"));
}

async fn stale_resource_version_is_a_conflict(engine: StoreEngine) {
    let s = server(engine).await;
    let v1 = create(&s.api, deployment("web", 1)).await.unwrap();
    let mut a = (*v1).clone();
    if let Object::Deployment(d) = &mut a {
        let d = std::sync::Arc::make_mut(d);
        d.spec.as_mut().unwrap().replicas = Some(2);
    }
    update(&s.api, a.clone()).await.unwrap();
    // `a` still carries v1's resourceVersion: a second writer with it must lose.
    if let Object::Deployment(d) = &mut a {
        let d = std::sync::Arc::make_mut(d);
        d.spec.as_mut().unwrap().replicas = Some(5);
    }
    let err = update(&s.api, a).await.unwrap_err();
    assert_eq!((err.code(), err.reason()), (409, "Conflict"));
    assert!(err
        .to_string()
        .starts_with("Operation cannot be fulfilled on deployments.apps \"web\""));
    let stored = get(&s.api, Kind::Deployment, "default", "web")
        .await
        .unwrap();
    let Object::Deployment(d) = &*stored else {
        unreachable!()
    };
    assert_eq!(
        d.spec.as_ref().unwrap().replicas,
        Some(2),
        "the stale write was not applied"
    );
}

async fn generation_bumps_on_spec_changes_only(engine: StoreEngine) {
    let s = server(engine).await;
    let v1 = create(&s.api, deployment("web", 1)).await.unwrap();
    assert_eq!(v1.meta().generation, Some(1));
    let mut scaled = (*v1).clone();
    if let Object::Deployment(d) = &mut scaled {
        let d = std::sync::Arc::make_mut(d);
        d.spec.as_mut().unwrap().replicas = Some(3);
    }
    let v2 = update(&s.api, scaled).await.unwrap();
    assert_eq!(v2.meta().generation, Some(2));
    // A status update does not bump the generation.
    let mut status = (*v2).clone();
    if let Object::Deployment(d) = &mut status {
        let d = std::sync::Arc::make_mut(d);
        d.status = Some(k8s_openapi::api::apps::v1::DeploymentStatus {
            observed_generation: Some(2),
            ..Default::default()
        });
    }
    let v3 = s
        .api
        .send(Update {
            object: status,
            subresource: Subresource::Status,
            options: WriteOptions::default(),
            trace: Trace::Untraced,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v3.meta().generation, Some(2));
    let Object::Deployment(d) = &*v3 else {
        unreachable!()
    };
    assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(2));
    // A main-resource update cannot change status.
    let mut sneaky = (*v3).clone();
    if let Object::Deployment(d) = &mut sneaky {
        let d = std::sync::Arc::make_mut(d);
        d.status.as_mut().unwrap().observed_generation = Some(99);
        d.spec.as_mut().unwrap().replicas = Some(4);
    }
    let v4 = update(&s.api, sneaky).await.unwrap();
    let Object::Deployment(d) = &*v4 else {
        unreachable!()
    };
    assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(2));
    assert_eq!(v4.meta().generation, Some(3));
}

async fn generate_name_adds_five_characters(engine: StoreEngine) {
    let s = server(engine).await;
    let mut p = pod("default", "", None);
    p.meta_mut().name = None;
    p.meta_mut().generate_name = Some("web-7d9fbb5c4b-".into());
    let a = create(&s.api, p.clone()).await.unwrap();
    let b = create(&s.api, p).await.unwrap();
    for o in [&a, &b] {
        assert!(o.name().starts_with("web-7d9fbb5c4b-"));
        assert_eq!(o.name().len(), "web-7d9fbb5c4b-".len() + 5);
    }
    assert_ne!(a.name(), b.name());
}

async fn creating_in_a_missing_namespace_is_not_found(engine: StoreEngine) {
    let s = server(engine).await;
    let err = create(&s.api, pod("nowhere", "p", None)).await.unwrap_err();
    assert_eq!(err.to_string(), "namespaces \"nowhere\" not found");
    assert_eq!(err.code(), 404);
}

async fn invalid_objects_are_rejected_with_field_causes(engine: StoreEngine) {
    let s = server(engine).await;
    let rev_before = s.api.send(CurrentRevision).await.unwrap();
    let cases: Vec<(Object, &str)> = vec![
        (deployment("bad", -1), "spec.replicas"),
        (
            {
                let mut p = pod("default", "noimage", None);
                if let Object::Pod(p) = &mut p {
                    let p = std::sync::Arc::make_mut(p);
                    p.spec.as_mut().unwrap().containers[0].image = None;
                }
                p
            },
            "spec.containers[0].image",
        ),
        (pod("default", "Not_A_Name", None), "metadata.name"),
    ];
    for (object, field) in cases {
        let err = create(&s.api, object).await.unwrap_err();
        assert_eq!((err.code(), err.reason()), (422, "Invalid"), "{err}");
        let status = err.to_status();
        let causes = status.details.unwrap().causes.unwrap();
        assert!(
            causes.iter().any(|c| c.field.as_deref() == Some(field)),
            "{field} not in {causes:?}"
        );
    }
    assert_eq!(
        s.api.send(CurrentRevision).await.unwrap(),
        rev_before,
        "nothing was stored"
    );
}

async fn noop_update_writes_nothing(engine: StoreEngine) {
    let s = server(engine).await;
    let v1 = create(&s.api, deployment("web", 1)).await.unwrap();
    let same = update(&s.api, (*v1).clone()).await.unwrap();
    assert_eq!(same.resource_version(), v1.resource_version());
}

async fn watch_from_a_revision_replays_exactly_what_followed(engine: StoreEngine) {
    let s = server(engine).await;
    let a = create(&s.api, pod("default", "a", None)).await.unwrap();
    let b = create(&s.api, pod("default", "b", None)).await.unwrap();
    let mut b2 = (*b).clone();
    b2.meta_mut().labels = Some(
        [
            ("app".to_string(), "web".to_string()),
            ("v".to_string(), "2".to_string()),
        ]
        .into(),
    );
    update(&s.api, b2).await.unwrap();
    let mut w = s
        .api
        .send(Watch {
            from: WatchFrom::Revision(a.resource_version()),
            ..Watch::all(Kind::Pod)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(describe(&next(&mut w.rx).await), "ADDED b");
    assert_eq!(describe(&next(&mut w.rx).await), "MODIFIED b");
    // ...then live.
    delete(&s.api, Kind::Pod, "a", DeleteOptions::default())
        .await
        .unwrap();
    let ev = next(&mut w.rx).await;
    assert_eq!(describe(&ev), "DELETED a");
    assert!(ev.revision() > b.resource_version());
    assert!(w.rx.try_recv().is_err(), "nothing else");
}

/// Everything a watch has been sent so far, as (type, object). Complete once the last write
/// was answered: the API server dispatches a write before it replies.
fn sent(rx: &mut mpsc::Receiver<WatchEvent>) -> Vec<(&'static str, Object)> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        out.push(match ev {
            WatchEvent::Added(o) => ("ADDED", (*o).clone()),
            WatchEvent::Modified(o) => ("MODIFIED", (*o).clone()),
            WatchEvent::Deleted(o) => ("DELETED", (*o).clone()),
            other => panic!("unexpected {other:?}"),
        });
    }
    out
}

fn names(events: &[(&'static str, Object)]) -> Vec<String> {
    events
        .iter()
        .map(|(t, o)| format!("{t} {}", o.name()))
        .collect()
}

fn labelled(mut obj: Object, app: &str) -> Object {
    obj.meta_mut().labels = Some([("app".to_string(), app.to_string())].into());
    obj
}

fn event_about(name: &str, involved: &str) -> Object {
    Object::from(k8s_openapi::api::core::v1::Event {
        metadata: meta("default", name),
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some("default".into()),
            name: Some(involved.into()),
            uid: Some(format!("uid-{involved}")),
            ..Default::default()
        },
        reason: Some("Scheduled".into()),
        message: Some(format!("assigned default/{involved} to node-1")),
        type_: Some("Normal".into()),
        ..Default::default()
    })
}

/// A watch that resumes from a resourceVersion is replayed from the window, which keeps the
/// store's events as bytes: the replay must be what watchers that were live at the time were
/// sent — the same events, the same objects, the same resourceVersions — for every kind of
/// filter, including an object leaving and re-entering a label selector, a pod bound to a
/// node, a delete, and Events (cached as bytes).
async fn a_resumed_watch_sees_what_live_watchers_saw(engine: StoreEngine) {
    let s = server(engine).await;
    let start = s.api.send(CurrentRevision).await.unwrap();
    let watches = [
        Watch::all(Kind::Pod),
        Watch {
            label_selector: LabelSelector::parse("app=web").unwrap(),
            ..Watch::all(Kind::Pod)
        },
        Watch {
            field_selector: FieldSelector::parse("spec.nodeName=node-1").unwrap(),
            ..Watch::all(Kind::Pod)
        },
        Watch {
            namespace: Some("kube-system".into()),
            ..Watch::all(Kind::Pod)
        },
        Watch::all(Kind::Event),
        Watch {
            field_selector: FieldSelector::parse_for(Kind::Event, "involvedObject.name=a").unwrap(),
            ..Watch::all(Kind::Event)
        },
    ];
    let watch = |w: &Watch| {
        s.api.send(Watch {
            from: WatchFrom::Revision(start),
            ..w.clone()
        })
    };
    let mut live = Vec::new();
    for w in &watches {
        live.push(watch(w).await.unwrap().unwrap());
    }

    create(&s.api, pod("default", "a", None)).await.unwrap();
    create(&s.api, pod("default", "b", Some("node-1")))
        .await
        .unwrap();
    create(&s.api, pod("kube-system", "c", Some("node-2")))
        .await
        .unwrap();
    let bound = s
        .api
        .send(Bind {
            namespace: "default".into(),
            binding: binding("a", "node-1"),
            trace: Trace::Untraced,
        })
        .await
        .unwrap()
        .unwrap();
    // Out of `app=web` and back in.
    let db = update(&s.api, labelled((*bound).clone(), "db"))
        .await
        .unwrap();
    let web = update(&s.api, labelled((*db).clone(), "web"))
        .await
        .unwrap();
    create(&s.api, event_about("a.1", "a")).await.unwrap();
    create(&s.api, event_about("b.1", "b")).await.unwrap();
    let zero = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let Deleted::Gone(b_gone) = delete(&s.api, Kind::Pod, "b", zero).await.unwrap() else {
        panic!("a zero grace period deletes at once")
    };

    let mut replayed = Vec::new();
    for (w, live) in watches.iter().zip(&mut live) {
        let seen_live = sent(&mut live.rx);
        let mut resumed = watch(w).await.unwrap().unwrap();
        let seen_replayed = sent(&mut resumed.rx);
        assert!(!seen_live.is_empty(), "{w:?} saw nothing");
        assert_eq!(seen_replayed, seen_live, "{w:?}");
        replayed.push(seen_replayed);
    }

    // What those are, spelled out.
    let [all, web_only, on_node_1, system, events, about_a] = &replayed[..] else {
        unreachable!()
    };
    assert_eq!(
        names(all),
        [
            "ADDED a",
            "ADDED b",
            "ADDED c",
            "MODIFIED a",
            "MODIFIED a",
            "MODIFIED a",
            "DELETED b"
        ]
    );
    // The delete: the final object, at the delete's revision.
    let (_, last) = all.last().unwrap();
    assert_eq!(last, &*b_gone);
    assert!(last.resource_version() > web.resource_version());
    assert_eq!(
        last.meta().labels,
        Some([("app".to_string(), "web".to_string())].into())
    );

    assert_eq!(
        names(web_only),
        [
            "ADDED a",
            "ADDED b",
            "ADDED c",
            "MODIFIED a",
            "DELETED a",
            "ADDED a",
            "DELETED b"
        ]
    );
    // Leaving the selector: a DELETED with the last state that matched (still `app=web`,
    // bound) at the revision of the write that made it stop matching.
    let (_, left) = &web_only[4];
    assert_eq!(left.resource_version(), db.resource_version());
    assert_eq!(
        left.meta().labels,
        Some([("app".to_string(), "web".to_string())].into())
    );
    let mut expected = (*bound).clone();
    expected.meta_mut().resource_version = Some(db.resource_version().to_string());
    assert_eq!(left, &expected);
    assert_eq!(web_only[5].1, *web);

    assert_eq!(
        names(on_node_1),
        [
            "ADDED b",
            "ADDED a",
            "MODIFIED a",
            "MODIFIED a",
            "DELETED b"
        ],
        "the bind is an ADDED for the node's watch"
    );
    assert_eq!(on_node_1[1].1, *bound);
    assert_eq!(names(system), ["ADDED c"]);

    assert_eq!(names(events), ["ADDED a.1", "ADDED b.1"]);
    assert_eq!(names(about_a), ["ADDED a.1"]);
    let stored = get(&s.api, Kind::Event, "default", "a.1").await.unwrap();
    assert_eq!(about_a[0].1, *stored, "with its resourceVersion");
    assert!(stored.resource_version() > web.resource_version());
}

/// The window covers the revisions above its floor (the last revision it dropped): a watch
/// from the floor replays what followed; from below it (just below, or a long-compacted
/// revision) it is 410 Gone; from the future, 504.
async fn watch_from_the_window_floor_replays_and_from_below_is_gone(engine: StoreEngine) {
    let s = server_with(
        engine,
        ApiServerOptions {
            watch_cache_window: 3,
            ..Default::default()
        },
    )
    .await;
    let mut revs = Vec::new();
    for i in 0..6 {
        let p = create(&s.api, pod("default", &format!("p{i}"), None))
            .await
            .unwrap();
        revs.push(p.resource_version());
    }
    let from = |rv| {
        s.api.send(Watch {
            from: WatchFrom::Revision(rv),
            ..Watch::all(Kind::Pod)
        })
    };
    let mut w = from(revs[2]).await.unwrap().unwrap();
    assert_eq!(
        names(&sent(&mut w.rx)),
        ["ADDED p3", "ADDED p4", "ADDED p5"]
    );
    for below in [revs[2] - 1, revs[0]] {
        let err = from(below).await.unwrap().err().expect("below the window");
        assert_eq!((err.code(), err.reason()), (410, "Expired"));
    }
    let mut w = from(revs[5]).await.unwrap().unwrap();
    assert!(sent(&mut w.rx).is_empty(), "nothing after the last write");
    let err = from(revs[5] + 1)
        .await
        .unwrap()
        .err()
        .expect("a future revision");
    assert_eq!(err.code(), 504);
    assert!(
        err.to_string().contains("Too large resource version"),
        "{err}"
    );
}

async fn filtered_watches_see_only_their_objects(engine: StoreEngine) {
    let s = server(engine).await;
    let nodes = ["node-1", "node-2"];
    let mut by_node = Vec::new();
    for n in nodes {
        let w = s
            .api
            .send(Watch {
                field_selector: FieldSelector::parse(&format!("spec.nodeName={n}")).unwrap(),
                ..Watch::all(Kind::Pod)
            })
            .await
            .unwrap()
            .unwrap();
        by_node.push(w);
    }
    let mut labelled = s
        .api
        .send(Watch {
            label_selector: LabelSelector::parse("tier=db").unwrap(),
            ..Watch::all(Kind::Pod)
        })
        .await
        .unwrap()
        .unwrap();
    let mut other_ns = s
        .api
        .send(Watch {
            namespace: Some("kube-system".into()),
            ..Watch::all(Kind::Pod)
        })
        .await
        .unwrap()
        .unwrap();
    create(&s.api, pod("default", "on-1", Some("node-1")))
        .await
        .unwrap();
    create(&s.api, pod("default", "on-2", Some("node-2")))
        .await
        .unwrap();
    let mut db = pod("default", "db", Some("node-2"));
    db.meta_mut().labels = Some([("tier".to_string(), "db".to_string())].into());
    create(&s.api, db).await.unwrap();
    assert_eq!(describe(&next(&mut by_node[0].rx).await), "ADDED on-1");
    assert_eq!(describe(&next(&mut by_node[1].rx).await), "ADDED on-2");
    assert_eq!(describe(&next(&mut by_node[1].rx).await), "ADDED db");
    assert_eq!(describe(&next(&mut labelled.rx).await), "ADDED db");
    assert!(by_node[0].rx.try_recv().is_err());
    assert!(labelled.rx.try_recv().is_err());
    assert!(other_ns.rx.try_recv().is_err());
}

async fn a_stuck_watcher_is_closed_without_blocking_writers(engine: StoreEngine) {
    let s = server_with(
        engine,
        ApiServerOptions {
            watch_buffer: 5,
            ..Default::default()
        },
    )
    .await;
    let mut stuck = s.api.send(Watch::all(Kind::Pod)).await.unwrap().unwrap();
    let started = Instant::now();
    for i in 0..50 {
        create(&s.api, pod("default", &format!("p{i}"), None))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "writers were not blocked"
    );
    let mut events = Vec::new();
    while let Ok(ev) = stuck.rx.try_recv() {
        events.push(describe(&ev));
    }
    assert!(events.len() <= 6, "buffer bounded: {events:?}");
    assert_eq!(events.last().map(String::as_str), Some("ERROR Expired"));
    // The channel is closed: the watcher was dropped.
    assert!(stuck.rx.recv().await.is_none());
}

async fn graceful_pod_deletion_waits_for_grace_zero(engine: StoreEngine) {
    let s = server(engine).await;
    create(&s.api, pod("default", "p", Some("node-1")))
        .await
        .unwrap();
    let first = delete(&s.api, Kind::Pod, "p", DeleteOptions::default())
        .await
        .unwrap();
    let Deleted::Pending(obj) = first else {
        panic!("a scheduled pod terminates gracefully")
    };
    assert_eq!(obj.meta().deletion_grace_period_seconds, Some(30));
    assert!(obj.meta().deletion_timestamp.is_some());
    assert!(get(&s.api, Kind::Pod, "default", "p").await.is_ok());
    // The kubelet's final delete.
    let last = delete(
        &s.api,
        Kind::Pod,
        "p",
        DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(last, Deleted::Gone(_)));
    assert!(get(&s.api, Kind::Pod, "default", "p").await.is_err());
}

async fn finalizers_hold_an_object_until_removed(engine: StoreEngine) {
    let s = server(engine).await;
    create(&s.api, deployment("web", 1)).await.unwrap();
    let opts = DeleteOptions {
        propagation_policy: Some("Foreground".into()),
        ..Default::default()
    };
    let Deleted::Pending(obj) = delete(&s.api, Kind::Deployment, "web", opts).await.unwrap() else {
        panic!("foreground deletion keeps the owner")
    };
    assert_eq!(
        obj.meta().finalizers.as_deref(),
        Some(&["foregroundDeletion".to_string()][..])
    );
    let mut cleared = (*obj).clone();
    cleared.meta_mut().finalizers = None;
    update(&s.api, cleared).await.unwrap();
    let err = get(&s.api, Kind::Deployment, "default", "web")
        .await
        .unwrap_err();
    assert_eq!(err.code(), 404);
}

async fn bind_sets_the_node_once(engine: StoreEngine) {
    let s = server(engine).await;
    create(&s.api, pod("default", "p", None)).await.unwrap();
    let binding = binding("p", "node-1");
    let bound = s
        .api
        .send(Bind {
            namespace: "default".into(),
            binding: binding.clone(),
            trace: Trace::Untraced,
        })
        .await
        .unwrap()
        .unwrap();
    let spec = bound.as_pod().unwrap().spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-1"));
    let err = s
        .api
        .send(Bind {
            namespace: "default".into(),
            binding,
            trace: Trace::Untraced,
        })
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), 409);
    assert!(
        err.to_string()
            .contains("already assigned to node \"node-1\""),
        "{err}"
    );
}

async fn list_pages_with_limit_and_continue(engine: StoreEngine) {
    let s = server(engine).await;
    for i in 0..7 {
        create(&s.api, pod("default", &format!("p{i}"), None))
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = s
            .api
            .send(List {
                limit: 3,
                continue_token: token.clone(),
                ..List::all(Kind::Pod)
            })
            .await
            .unwrap()
            .unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|o| o.name().to_string()));
        match page.continue_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
}

async fn restart_keeps_objects(engine: StoreEngine) {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::in_memory(10);
    let created = {
        let store = store::open(engine, dir.path(), StoreOptions::default()).unwrap();
        let api = ApiServer::new(store.clone(), Default::default(), &telemetry)
            .unwrap()
            .start()
            .await
            .unwrap();
        let c = create(&api, deployment("web", 2)).await.unwrap();
        store.close();
        c
    };
    if engine == StoreEngine::Memory {
        return; // nothing to keep
    }
    let store = store::open(engine, dir.path(), StoreOptions::default()).unwrap();
    let api = ApiServer::new(store.clone(), Default::default(), &telemetry)
        .unwrap()
        .start()
        .await
        .unwrap();
    let got = get(&api, Kind::Deployment, "default", "web").await.unwrap();
    assert_eq!(got, created);
    let list = api.send(List::all(Kind::Namespace)).await.unwrap().unwrap();
    assert_eq!(
        list.items.len(),
        4,
        "system namespaces are not created twice"
    );
}

// ---- writes racing a write that is accepted but not yet durable ----

/// A commit gate: while closed, the store accepts writes but makes none durable, so a write
/// stays "accepted, not committed" for as long as a test needs.
#[derive(Clone, Default)]
struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    /// Hold every commit until the returned guard is dropped (also on a failed assertion,
    /// so a failing test never leaves the committer blocked).
    fn close(&self) -> GateClosed {
        *self.0 .0.lock().unwrap() = true;
        GateClosed(self.clone())
    }

    fn wait_open(&self) {
        let (closed, cv) = &*self.0;
        let mut c = closed.lock().unwrap();
        while *c {
            c = cv.wait(c).unwrap();
        }
    }
}

struct GateClosed(Gate);

impl Drop for GateClosed {
    fn drop(&mut self) {
        *self.0 .0 .0.lock().unwrap() = false;
        self.0 .0 .1.notify_all();
    }
}

/// The memory engine, committing only while the gate is open.
struct GatedEngine(Gate);

impl store::Engine for GatedEngine {
    fn load(&mut self) -> Result<(Vec<store::KeyValue>, store::Revision), store::StoreError> {
        Ok((Vec::new(), 1))
    }

    fn commit(
        &mut self,
        _batch: &[Arc<store::Event>],
        _new_revision: store::Revision,
    ) -> Result<(), store::StoreError> {
        self.0.wait_open();
        Ok(())
    }
}

async fn gated_server() -> (Addr<ApiServer>, Gate) {
    let gate = Gate::default();
    let store = store::CoreStore::new(GatedEngine(gate.clone()), StoreOptions::default()).unwrap();
    let api = ApiServer::new(store, Default::default(), &Telemetry::in_memory(10))
        .unwrap()
        .start()
        .await
        .unwrap();
    (api, gate)
}

/// Wait until the API server has handled every message sent before this one (its mailbox is
/// first in, first out).
async fn handled(api: &Addr<ApiServer>) {
    api.send(CurrentRevision).await.unwrap();
}

fn running(pod: &Object) -> Object {
    let mut p = pod.clone();
    p.meta_mut().resource_version = None;
    if let Object::Pod(p) = &mut p {
        let p = std::sync::Arc::make_mut(p);
        p.status.get_or_insert_with(Default::default).phase = Some("Running".into());
    }
    p
}

fn phase(obj: &Object) -> Option<&str> {
    obj.as_pod()?.status.as_ref()?.phase.as_deref()
}

#[actix_rt::test]
async fn unconditional_writes_apply_on_top_of_a_write_not_yet_durable() {
    let (api, gate) = gated_server().await;
    let created = create(&api, pod("default", "p", Some("node-1")))
        .await
        .unwrap();
    let closed = gate.close();
    // The kubelet's status update is accepted but not committed…
    let status = api.send(Update {
        object: running(&created),
        subresource: Subresource::Status,
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    });
    // …when a PUT without resourceVersion and a delete without preconditions arrive.
    let mut labelled = (*created).clone();
    labelled.meta_mut().resource_version = None;
    labelled
        .meta_mut()
        .labels
        .get_or_insert_with(Default::default)
        .insert("tier".into(), "front".into());
    let put = api.send(Update {
        object: labelled,
        subresource: Subresource::Main,
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    });
    let del = api.send(Delete {
        kind: Kind::Pod,
        namespace: Some("default".into()),
        name: "p".into(),
        options: DeleteOptions::default(),
        write: WriteOptions::default(),
        trace: Trace::Untraced,
    });
    handled(&api).await;
    drop(closed);
    let status = status.await.unwrap().expect("the status update succeeds");
    let put = put
        .await
        .unwrap()
        .expect("the PUT without resourceVersion succeeds");
    let del = del
        .await
        .unwrap()
        .expect("the delete without preconditions succeeds");
    assert_eq!(phase(&status), Some("Running"));
    assert_eq!(
        phase(&put),
        Some("Running"),
        "the PUT kept the pending status"
    );
    let Deleted::Pending(last) = del else {
        panic!("a scheduled pod terminates gracefully")
    };
    let stored = get(&api, Kind::Pod, "default", "p").await.unwrap();
    assert_eq!(stored, last, "the delete's reply is the stored state");
    assert_eq!(phase(&stored), Some("Running"));
    assert_eq!(
        stored.meta().labels.as_ref().and_then(|l| l.get("tier")),
        Some(&"front".to_string())
    );
    assert!(stored.meta().deletion_timestamp.is_some());
}

#[actix_rt::test]
#[allow(clippy::result_large_err)] // ApiError is what the change returns
async fn a_guaranteed_update_applies_its_change_to_the_latest_accepted_state() {
    let (api, gate) = gated_server().await;
    let created = create(&api, pod("default", "p", Some("node-1")))
        .await
        .unwrap();
    let closed = gate.close();
    let status = api.send(Update {
        object: running(&created),
        subresource: Subresource::Status,
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    });
    let label = api.send(GuaranteedUpdate {
        kind: Kind::Pod,
        namespace: Some("default".into()),
        name: "p".into(),
        subresource: Subresource::Main,
        change: Box::new(|current: &Object| {
            let mut next = current.clone();
            next.meta_mut()
                .labels
                .get_or_insert_with(Default::default)
                .insert("tier".into(), "front".into());
            Ok(next)
        }),
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    });
    handled(&api).await;
    drop(closed);
    status.await.unwrap().unwrap();
    let labelled = label
        .await
        .unwrap()
        .expect("the guaranteed update succeeds");
    assert_eq!(phase(&labelled), Some("Running"));
    assert_eq!(
        labelled.meta().labels.as_ref().and_then(|l| l.get("tier")),
        Some(&"front".to_string())
    );
}

#[actix_rt::test]
async fn a_stale_precondition_is_a_conflict_while_a_write_is_pending() {
    let (api, gate) = gated_server().await;
    let created = create(&api, pod("default", "p", Some("node-1")))
        .await
        .unwrap();
    let closed = gate.close();
    let status = api.send(Update {
        object: running(&created),
        subresource: Subresource::Status,
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    });
    // Both name the resourceVersion the client read, which the pending write replaces.
    let mut pinned = (*created).clone();
    pinned
        .meta_mut()
        .labels
        .get_or_insert_with(Default::default)
        .insert("tier".into(), "front".into());
    let put = api.send(Update {
        object: pinned,
        subresource: Subresource::Main,
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    });
    let del = api.send(Delete {
        kind: Kind::Pod,
        namespace: Some("default".into()),
        name: "p".into(),
        options: DeleteOptions {
            preconditions: Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Preconditions {
                    resource_version: created.meta().resource_version.clone(),
                    uid: None,
                },
            ),
            ..Default::default()
        },
        write: WriteOptions::default(),
        trace: Trace::Untraced,
    });
    handled(&api).await;
    drop(closed);
    status.await.unwrap().unwrap();
    let err = put.await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "Operation cannot be fulfilled on pods \"p\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let err = del.await.unwrap().unwrap_err();
    assert_eq!((err.code(), err.reason()), (409, "Conflict"));
    let stored = get(&api, Kind::Pod, "default", "p").await.unwrap();
    assert!(stored.meta().labels.as_ref().unwrap().get("tier").is_none());
    assert!(stored.meta().deletion_timestamp.is_none());
}

#[actix_rt::test]
async fn a_panicking_update_function_is_a_500_and_the_api_server_carries_on() {
    let (api, _gate) = gated_server().await;
    create(&api, pod("default", "p", Some("node-1")))
        .await
        .unwrap();
    #[allow(clippy::result_large_err)] // the signature of UpdateFn
    fn buggy_patch(_: &Object) -> Result<Object, ApiError> {
        panic!("a bug in a patch")
    }
    let reply = api
        .send(GuaranteedUpdate {
            kind: Kind::Pod,
            namespace: Some("default".into()),
            name: "p".into(),
            subresource: Subresource::Main,
            change: Box::new(buggy_patch),
            options: WriteOptions::default(),
            trace: Trace::Untraced,
        })
        .await
        .expect("the actor is alive");
    let err = reply.expect_err("a panic is an error");
    assert_eq!(err.to_status().code, Some(500));
    assert!(err.to_string().contains("a bug in a patch"), "{err}");
    create(&api, pod("default", "q", Some("node-1")))
        .await
        .expect("the API server still serves writes");
}
