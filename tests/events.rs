//! The event recorder: Events carry upstream's fields, and repeats are aggregated into one
//! Event with a growing count.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubeactor::api::{Kind, Object};
use kubeactor::apiserver::{ApiServer, Create, Delete, Get, List, Trace, WriteOptions};
use kubeactor::config::StoreEngine;
use kubeactor::events::{object_reference, EventRecord, EventRecorder, NORMAL, WARNING};
use kubeactor::store::{self, StoreOptions};
use kubeactor::telemetry::Telemetry;

#[actix_rt::test]
async fn repeated_events_are_aggregated_with_a_count() {
    let (api, _dir) = start().await;
    let pod = create_pod(&api, "web-1").await;
    let recorder = EventRecorder::new(api.clone(), "kubelet", Some("node-1"));
    let msg = "Back-off restarting failed container nginx in pod web-1_default".to_string();
    for _ in 0..3 {
        recorder
            .write(
                object_reference(&pod),
                WARNING,
                "BackOff",
                msg.clone(),
                Trace::Untraced,
            )
            .await
            .unwrap();
    }
    recorder
        .write(
            object_reference(&pod),
            "Normal",
            "Pulled",
            "Container image \"nginx:1.27\" already present on machine".into(),
            Trace::Untraced,
        )
        .await
        .unwrap();

    let events = api.send(List::all(Kind::Event)).await.unwrap().unwrap();
    assert_eq!(events.items.len(), 2, "three BackOffs fold into one Event");
    let backoff = events
        .items
        .iter()
        .filter_map(|o| match &**o {
            Object::Event(e) => Some(e),
            _ => None,
        })
        .find(|e| e.reason.as_deref() == Some("BackOff"))
        .unwrap();
    assert_eq!(backoff.count, Some(3));
    assert_eq!(backoff.type_.as_deref(), Some("Warning"));
    assert_eq!(backoff.message.as_deref(), Some(msg.as_str()));
    assert_eq!(backoff.involved_object.name.as_deref(), Some("web-1"));
    assert_eq!(backoff.involved_object.uid, pod.meta().uid);
    assert_eq!(backoff.involved_object.kind.as_deref(), Some("Pod"));
    let source = backoff.source.as_ref().unwrap();
    assert_eq!(
        (source.component.as_deref(), source.host.as_deref()),
        (Some("kubelet"), Some("node-1"))
    );
    assert!(backoff
        .metadata
        .name
        .as_deref()
        .unwrap()
        .starts_with("web-1."));
    assert!(backoff.first_timestamp.is_some() && backoff.last_timestamp.is_some());
}

/// A repeat of an Event that is gone (expired and deleted) writes a new Event, as upstream's
/// recorder creates one when its PATCH finds nothing; the Event read back after the repeat is
/// the one the API server stores (count and lastTimestamp moved, name and creation kept).
#[actix_rt::test]
async fn a_repeat_updates_the_stored_event_or_writes_a_new_one_if_it_is_gone() {
    let (api, _dir) = start().await;
    let pod = create_pod(&api, "web-1").await;
    let recorder = EventRecorder::new(api.clone(), "kubelet", Some("node-1"));
    let write = || {
        recorder.write(
            object_reference(&pod),
            WARNING,
            "BackOff",
            "Back-off pulling image".into(),
            Trace::Untraced,
        )
    };
    let first = write().await.unwrap();
    let second = write().await.unwrap();
    assert_eq!(second.name(), first.name());
    assert_eq!(second.meta().uid, first.meta().uid);
    assert_eq!(
        second.meta().creation_timestamp,
        first.meta().creation_timestamp
    );
    let Object::Event(e) = &*second else { panic!() };
    assert_eq!(e.count, Some(2));
    let got = api
        .send(Get {
            kind: Kind::Event,
            namespace: Some("default".into()),
            name: first.name().to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, second, "read back as stored");

    api.send(Delete {
        kind: Kind::Event,
        namespace: Some("default".into()),
        name: first.name().to_string(),
        options: Default::default(),
        write: WriteOptions::default(),
        trace: Trace::Untraced,
    })
    .await
    .unwrap()
    .unwrap();
    let third = write().await.unwrap();
    assert_ne!(third.name(), first.name(), "a new Event");
    let Object::Event(e) = &*third else { panic!() };
    assert_eq!(e.count, Some(1));
    let events = api.send(List::all(Kind::Event)).await.unwrap().unwrap();
    assert_eq!(events.items, vec![third]);
}

/// A batch of events (the scheduler's `Scheduled` events of one batch of binds) is written
/// with one message, each as its own Event with upstream's fields; a repeat in a batch is
/// still aggregated into the Event already written.
#[actix_rt::test]
async fn a_batch_of_events_is_written_and_repeats_are_aggregated() {
    let (api, _dir) = start().await;
    let mut pods = Vec::new();
    for name in ["web-1", "web-2", "web-3"] {
        pods.push(create_pod(&api, name).await);
    }
    let recorder = EventRecorder::new(api.clone(), "default-scheduler", None);
    let scheduled = |pod: &Object| EventRecord {
        involved: object_reference(pod),
        type_: NORMAL,
        reason: "Scheduled",
        message: format!("Successfully assigned default/{} to node-1", pod.name()),
        trace: Trace::Untraced,
    };
    recorder.write_batch(vec![scheduled(&pods[0])]).await;
    recorder
        .write_batch(pods.iter().map(|p| scheduled(p)).collect())
        .await;

    let events = api.send(List::all(Kind::Event)).await.unwrap().unwrap();
    let mut seen: Vec<(String, i32)> = events
        .items
        .iter()
        .filter_map(|o| match &**o {
            Object::Event(e) => Some(e),
            _ => None,
        })
        .map(|e| {
            assert_eq!(e.reason.as_deref(), Some("Scheduled"));
            assert_eq!(e.type_.as_deref(), Some("Normal"));
            assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
            let name = e.involved_object.name.clone().unwrap_or_default();
            assert_eq!(
                e.message.as_deref(),
                Some(format!("Successfully assigned default/{name} to node-1").as_str())
            );
            (name, e.count.unwrap_or(0))
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("web-1".to_string(), 2),
            ("web-2".to_string(), 1),
            ("web-3".to_string(), 1)
        ],
        "one Event per pod; web-1's repeat raised its count"
    );
}

/// An ApiServer on the memory store; its directory and telemetry live as long as the
/// returned guard.
async fn start() -> (actix::Addr<ApiServer>, (tempfile::TempDir, Telemetry)) {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(StoreEngine::Memory, dir.path(), StoreOptions::default()).unwrap();
    let telemetry = Telemetry::in_memory(10);
    let api = ApiServer::new(store, Default::default(), &telemetry)
        .unwrap()
        .start()
        .await
        .unwrap();
    (api, (dir, telemetry))
}

/// Create the pod `default/<name>` (one nginx container).
async fn create_pod(api: &actix::Addr<ApiServer>, name: &str) -> std::sync::Arc<Object> {
    let pod = Object::from(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "nginx".into(),
                image: Some("nginx:1.27".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    api.send(Create {
        object: pod,
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    })
    .await
    .unwrap()
    .unwrap()
}
