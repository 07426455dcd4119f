//! A real client library, kube-rs, against the HTTP API: typed create/get/list/patch/
//! replace/delete, its error type carrying our Status, and kube-runtime's watcher (paged
//! list, then watch with bookmarks) seeing objects appear and go.
//!
//! Plain http without a token: the TLS and auth path is covered by tests/kubectl.rs.

mod support;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Config};
use kubeactor::apiserver::ApiServerOptions;
use serde_json::json;
use support::http_server::TestServer;

fn open_server() -> TestServer {
    TestServer::start_with(ApiServerOptions::default(), |o| {
        o.token = None;
        o.bookmark_interval = Duration::from_millis(100);
    })
}

fn client(s: &TestServer) -> Client {
    let config = Config::new(s.url.parse().unwrap());
    Client::try_from(config).unwrap()
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_typed_verbs_round_trip() {
    let s = open_server();
    let client = client(&s);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");

    let created = deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert!(created.metadata.uid.is_some());

    let err = deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "AlreadyExists");
        }
        other => panic!("expected an API error, got {other:?}"),
    }

    deployments
        .create(&PostParams::default(), &deployment("other"))
        .await
        .unwrap();
    let web_only = deployments
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web_only.items.len(), 1);
    assert!(web_only.metadata.resource_version.is_some());

    let patched = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.as_ref().unwrap().replicas, Some(5));
    let scale = deployments.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(5));

    let mut replaced = patched.clone();
    replaced.spec.as_mut().unwrap().replicas = Some(1);
    let replaced = deployments
        .replace("web", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(replaced.spec.unwrap().replicas, Some(1));

    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    let err = deployments.get("web").await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"));

    let namespaces: Api<Namespace> = Api::all(client);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_runtime_watcher_sees_objects_appear_and_go() {
    let s = open_server();
    let client = client(&s);
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "watched"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();

    let mut events = watcher(pods.clone(), watcher::Config::default()).boxed();
    let deadline = Duration::from_secs(20);
    // The initial list (empty) ends with InitDone; then the watch is open.
    loop {
        match tokio::time::timeout(deadline, events.next()).await {
            Ok(Some(Ok(watcher::Event::InitDone))) => break,
            Ok(Some(Ok(_))) => continue,
            other => panic!("watcher did not finish its initial list: {other:?}"),
        }
    }
    pods.create(&PostParams::default(), &pod).await.unwrap();
    loop {
        match tokio::time::timeout(deadline, events.next()).await {
            Ok(Some(Ok(watcher::Event::Apply(p)))) => {
                assert_eq!(p.metadata.name.as_deref(), Some("watched"));
                break;
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no Apply event for the created pod: {other:?}"),
        }
    }
    pods.delete("watched", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(deadline, events.next()).await {
            Ok(Some(Ok(watcher::Event::Delete(p)))) => {
                assert_eq!(p.metadata.name.as_deref(), Some("watched"));
                break;
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no Delete event for the deleted pod: {other:?}"),
        }
    }
}

/// Server-side apply through kube-rs: `Patch::Apply` creates, records the applier as an
/// `Apply` manager, and a second manager changing its field is refused with a 409 Conflict
/// naming the field, unless it forces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_server_side_apply_tracks_managers_and_conflicts() {
    let s = open_server();
    let deployments: Api<Deployment> = Api::namespaced(client(&s), "default");
    let mut config = deployment("ssa");
    config.metadata.namespace = Some("default".into());

    let created = deployments
        .patch("ssa", &PatchParams::apply("mgr"), &Patch::Apply(&config))
        .await
        .unwrap();
    let managers = created.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managers.len(), 1, "{managers:?}");
    assert_eq!(managers[0].manager.as_deref(), Some("mgr"));
    assert_eq!(managers[0].operation.as_deref(), Some("Apply"));
    assert_eq!(managers[0].fields_type.as_deref(), Some("FieldsV1"));
    let fields = &managers[0].fields_v1.as_ref().unwrap().0;
    assert_eq!(fields["f:spec"]["f:replicas"], json!({}));

    let mut other = config.clone();
    other.spec.as_mut().unwrap().replicas = Some(7);
    let err = deployments
        .patch("ssa", &PatchParams::apply("other"), &Patch::Apply(&other))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
            assert_eq!(
                status.message,
                "Apply failed with 1 conflict: conflict with \"mgr\": .spec.replicas"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let forced = deployments
        .patch(
            "ssa",
            &PatchParams::apply("other").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.unwrap().replicas, Some(7));
    let owners: Vec<(String, String)> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        owners.contains(&("mgr".into(), "Apply".into())),
        "{owners:?}"
    );
    assert!(
        owners.contains(&("other".into(), "Apply".into())),
        "{owners:?}"
    );
}
