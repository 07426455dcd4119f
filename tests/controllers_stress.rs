//! Stress: 200 Deployments created at once and, while their first pods are still being
//! created, scaled at once (3 → 1, 5 or 2). Every one must end with exactly the requested
//! pods and one ReplicaSet; no deployment may ever have had more pods created than it
//! needed at any point (3, or 5 for those scaled up) — the expectations at work — and
//! nothing may leak.
//!
//! Sizes: 200 deployments × 3 replicas, then ≈ 530 pods in total after scaling, so a debug
//! build finishes in a few seconds on a shared 2-core machine. Waits poll with a deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kubeactor::api::{Kind, Object};
use kubeactor::apiserver::*;
use kubeactor::config::{Config, StoreEngine};
use kubeactor::controllers::ControllerManager;
use kubeactor::store::{self, StoreOptions};
use kubeactor::telemetry::Telemetry;
use parking_lot::Mutex;

const DEPLOYMENTS: usize = 200;
const INITIAL: i32 = 3;
const DEADLINE: Duration = Duration::from_secs(60);

fn wanted(i: usize) -> i32 {
    [1, 5, 2][i % 3]
}

fn name(i: usize) -> String {
    format!("app-{i:03}")
}

fn deployment(name: &str, replicas: i32) -> Object {
    let labels: BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
    Object::from(Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
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
                        name: "app".into(),
                        image: Some("nginx:1.27".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    })
}

async fn scale(api: &Addr<ApiServer>, name: String, replicas: i32) {
    // The controller writes the deployment's status meanwhile: retry on conflict.
    loop {
        let obj = api
            .send(Get {
                kind: Kind::Deployment,
                namespace: Some("default".into()),
                name: name.clone(),
            })
            .await
            .unwrap()
            .unwrap();
        let Object::Deployment(mut d) = (*obj).clone() else {
            unreachable!()
        };
        std::sync::Arc::make_mut(&mut d)
            .spec
            .as_mut()
            .unwrap()
            .replicas = Some(replicas);
        let res = api
            .send(Update {
                object: Object::Deployment(d),
                subresource: Subresource::Main,
                options: WriteOptions::default(),
                trace: Trace::Untraced,
            })
            .await
            .unwrap();
        match res {
            Ok(_) => return,
            Err(ApiError::Conflict { .. }) => continue,
            Err(e) => panic!("scaling {name}: {e}"),
        }
    }
}

/// Pods per deployment (by the `app` label), and how many ADDED events each had.
#[derive(Default)]
struct Counts {
    created: HashMap<String, usize>,
}

#[actix_rt::test]
async fn two_hundred_deployments_created_and_scaled_at_once_end_with_exact_pod_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(StoreEngine::Memory, dir.path(), StoreOptions::default()).unwrap();
    let telemetry = Telemetry::in_memory(100);
    let api = ApiServer::new(store.clone(), ApiServerOptions::default(), &telemetry)
        .unwrap()
        .start()
        .await
        .unwrap();
    let _controllers =
        ControllerManager::start(api.clone(), &Config::defaults().controllers, &telemetry);

    // Count every pod creation as it happens.
    let counts = Arc::new(Mutex::new(Counts::default()));
    let mut watch = api.send(Watch::all(Kind::Pod)).await.unwrap().unwrap();
    let c = counts.clone();
    actix::spawn(async move {
        while let Some(ev) = watch.rx.recv().await {
            match ev {
                WatchEvent::Added(o) => {
                    let app = o
                        .meta()
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("app").cloned())
                        .unwrap_or_default();
                    *c.lock().created.entry(app).or_default() += 1;
                }
                WatchEvent::Error(e) => panic!("the counting watch fell behind: {e}"),
                _ => {}
            }
        }
    });

    let start = Instant::now();
    join_all((0..DEPLOYMENTS).map(|i| {
        let api = api.clone();
        async move {
            api.send(Create {
                object: deployment(&name(i), INITIAL),
                options: WriteOptions::default(),
                trace: Trace::Untraced,
            })
            .await
            .unwrap()
            .unwrap();
        }
    }))
    .await;
    join_all((0..DEPLOYMENTS).map(|i| scale(&api, name(i), wanted(i)))).await;

    let total: i32 = (0..DEPLOYMENTS).map(wanted).sum();
    loop {
        let pods = api.send(List::all(Kind::Pod)).await.unwrap().unwrap().items;
        let rss = api
            .send(List::all(Kind::ReplicaSet))
            .await
            .unwrap()
            .unwrap()
            .items;
        let mut per_app: HashMap<String, i32> = HashMap::new();
        for p in &pods {
            if let Some(app) = p.meta().labels.as_ref().and_then(|l| l.get("app")) {
                *per_app.entry(app.clone()).or_default() += 1;
            }
        }
        let exact = (0..DEPLOYMENTS).all(|i| per_app.get(&name(i)).copied() == Some(wanted(i)));
        if exact && pods.len() == total as usize && rss.len() == DEPLOYMENTS {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "not settled after {DEADLINE:?}: {} pods (want {total}), {} ReplicaSets",
            pods.len(),
            rss.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settled_in = start.elapsed();

    let counts = counts.lock();
    for i in 0..DEPLOYMENTS {
        let created = counts.created.get(&name(i)).copied().unwrap_or(0);
        let most = INITIAL.max(wanted(i)) as usize;
        assert!(
            created <= most,
            "{}: {created} pods created, never more than {most} were needed",
            name(i)
        );
    }
    let created: usize = counts.created.values().sum();
    println!(
        "{DEPLOYMENTS} deployments settled in {settled_in:?}: {total} pods, {created} pod creates"
    );
}
