//! The API server's spans, as Jaeger would receive them: a traced create produces a
//! `kube-apiserver` request span and, under service `etcd`, a child span for the store write
//! (key, revision, bytes), and the stored object carries the request span's context as its
//! `traceparent` annotation. An untraced (background) write produces no span at all.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubeactor::api::Object;
use kubeactor::apiserver::{ApiServer, Create, Trace, WriteOptions};
use kubeactor::config::{OtlpProtocol, StoreEngine, TelemetryConfig};
use kubeactor::store::{self, StoreOptions};
use kubeactor::telemetry::{self, Telemetry, TRACEPARENT_ANNOTATION};
use opentelemetry::trace::TraceContextExt;
use support::otlp_receiver::*;

fn pod(name: &str) -> Object {
    Object::from(Pod {
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
    })
}

/// An API server on the memory store, started; keep the directory alive with it.
async fn memory_api(telemetry: &Telemetry) -> (actix::Addr<ApiServer>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(StoreEngine::Memory, dir.path(), StoreOptions::default()).unwrap();
    let api = ApiServer::new(store, Default::default(), telemetry)
        .unwrap()
        .start()
        .await
        .unwrap();
    (api, dir)
}

#[test]
fn a_traced_create_exports_apiserver_and_etcd_spans_with_parent_links() {
    let receiver = OtlpReceiver::http();
    let cfg = TelemetryConfig {
        otlp_enabled: true,
        otlp_endpoint: receiver.endpoint(),
        otlp_protocol: OtlpProtocol::HttpProtobuf,
        sampler_ratio: 1.0,
        span_store_capacity: 100,
        propagation: kubeactor::telemetry::Propagation::Child,
    };
    let telemetry = Telemetry::init_with_env(&cfg, &|_| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let system = actix::System::new();
    let created = system.block_on(async {
        let store = store::open(StoreEngine::Redb, dir.path(), StoreOptions::default()).unwrap();
        let api = ApiServer::new(store.clone(), Default::default(), &telemetry)
            .unwrap()
            .start()
            .await
            .unwrap();
        // A background write: no span.
        let untraced = Create {
            object: pod("quiet"),
            options: WriteOptions::default(),
            trace: Trace::Untraced,
        };
        let quiet = api.send(untraced).await.unwrap().unwrap();
        assert!(quiet
            .meta()
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(TRACEPARENT_ANNOTATION)));
        // A user's request: a new trace.
        let options = WriteOptions {
            span_name: Some("kubectl create pods/web".into()),
            ..Default::default()
        };
        let created = api
            .send(Create {
                object: pod("web"),
                options,
                trace: Trace::root(),
            })
            .await
            .unwrap()
            .unwrap();
        store.close();
        created
    });
    telemetry.shutdown();

    let spans = receiver.wait_for_spans(2, Duration::from_secs(10));
    assert_eq!(
        spans.len(),
        2,
        "exactly the request and its store write:\n{}",
        describe(&spans)
    );
    assert_one_trace(&spans);
    let root = assert_one_root(&spans);
    assert_no_dangling_parents(&spans);
    assert_eq!(root.name, "kubectl create pods/web");
    assert_eq!(root.service_name, "kube-apiserver");
    let etcd = span_named(&spans, "put /registry/pods/default/web");
    assert_eq!(etcd.service_name, "etcd");
    assert_parent(&spans, root, etcd);
    assert_eq!(etcd.attr("etcd.key"), Some("/registry/pods/default/web"));
    assert_eq!(
        etcd.attr("etcd.revision"),
        Some(created.resource_version().to_string().as_str())
    );
    let bytes: usize = etcd.attr("etcd.bytes").unwrap().parse().unwrap();
    assert!(bytes > 100, "the write's size is recorded");

    // The stored object carries the request span's context, so watchers continue this trace.
    let cx = telemetry::extract(created.meta());
    let sc = cx.span().span_context().clone();
    assert_eq!(sc.trace_id().to_string(), root.trace_id);
    assert_eq!(sc.span_id().to_string(), root.span_id);
}

#[actix_rt::test]
async fn a_deleted_event_carries_the_delete_requests_trace() {
    use kubeactor::api::Kind;
    use kubeactor::apiserver::{Delete, Watch, WatchEvent};
    let telemetry = Telemetry::in_memory(100);
    let (api, _dir) = memory_api(&telemetry).await;
    let create = Create {
        object: pod("web"),
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    };
    api.send(create).await.unwrap().unwrap();
    let mut watch = api.send(Watch::all(Kind::Pod)).await.unwrap().unwrap();
    let _added = watch.rx.recv().await.unwrap();
    let delete = Delete {
        kind: Kind::Pod,
        namespace: Some("default".into()),
        name: "web".into(),
        options: Default::default(),
        write: WriteOptions {
            span_name: Some("kubectl delete pods/web".into()),
            ..Default::default()
        },
        trace: Trace::root(),
    };
    api.send(delete).await.unwrap().unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), watch.rx.recv())
        .await
        .unwrap()
        .unwrap();
    let WatchEvent::Deleted(obj) = event else {
        panic!("expected DELETED, got {event:?}")
    };
    let cx = telemetry::extract(obj.meta());
    let sc = cx.span().span_context().clone();
    assert!(sc.is_valid(), "the DELETED object carries a trace context");
    let stored = telemetry.span_store().trace(sc.trace_id());
    assert!(
        stored.iter().any(|s| s.name == "kubectl delete pods/web"),
        "{stored:?}"
    );
}

/// Under the (default) parent-based sampler, a request continuing an unsampled trace gets no
/// spans, yet its object still carries that trace, unsampled, so nothing downstream starts
/// recording it; a sampled parent gets the request and `etcd` spans under it.
#[actix_rt::test]
async fn an_unsampled_parent_gets_no_spans_but_its_trace_is_stamped() {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let telemetry = Telemetry::in_memory(100);
    assert!(telemetry.drops_children_of_unsampled());
    let (api, _dir) = memory_api(&telemetry).await;
    let parent = |trace: u128, flags: TraceFlags| {
        let sc = SpanContext::new(
            TraceId::from(trace),
            SpanId::from(7u64),
            flags,
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(sc)
    };
    let create = |name: &str, cx: opentelemetry::Context| Create {
        object: pod(name),
        options: WriteOptions {
            span_name: Some(format!("create pods/{name}")),
            ..Default::default()
        },
        trace: Trace::child_of(cx),
    };

    let quiet = api
        .send(create("quiet", parent(1, TraceFlags::default())))
        .await
        .unwrap()
        .unwrap();
    let cx = telemetry::extract(quiet.meta());
    let sc = cx.span().span_context().clone();
    assert_eq!(sc.trace_id(), TraceId::from(1u128), "the trace goes on");
    assert!(!sc.is_sampled(), "and stays unsampled downstream");
    assert!(telemetry
        .span_store()
        .trace(TraceId::from(1u128))
        .is_empty());

    let loud = api
        .send(create("loud", parent(2, TraceFlags::SAMPLED)))
        .await
        .unwrap()
        .unwrap();
    let cx = telemetry::extract(loud.meta());
    let sc = cx.span().span_context().clone();
    assert!(sc.is_sampled());
    assert_ne!(
        sc.span_id(),
        SpanId::from(7u64),
        "the object carries the request's span"
    );
    let spans = telemetry.span_store().trace(TraceId::from(2u128));
    let names: Vec<&str> = spans.iter().map(|s| &*s.name).collect();
    assert!(names.contains(&"create pods/loud"), "{names:?}");
    assert!(
        names.contains(&"put /registry/pods/default/loud"),
        "{names:?}"
    );
}
