//! The event recorder: Events carry upstream's fields, and repeats are aggregated into one
//! Event with a growing count.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubeactor::api::{Kind, Object};
use kubeactor::apiserver::{ApiServer, Create, List, Trace, WriteOptions};
use kubeactor::config::StoreEngine;
use kubeactor::events::{object_reference, EventRecorder, WARNING};
use kubeactor::store::{self, StoreOptions};
use kubeactor::telemetry::Telemetry;

#[actix_rt::test]
async fn repeated_events_are_aggregated_with_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(StoreEngine::Memory, dir.path(), StoreOptions::default()).unwrap();
    let telemetry = Telemetry::in_memory(10);
    let api = ApiServer::new(store, Default::default(), &telemetry)
        .unwrap()
        .start()
        .await
        .unwrap();
    let pod = Object::from(Pod {
        metadata: ObjectMeta {
            name: Some("web-1".into()),
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
    let pod = api
        .send(Create {
            object: pod,
            options: WriteOptions::default(),
            trace: Trace::Untraced,
        })
        .await
        .unwrap()
        .unwrap();
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
