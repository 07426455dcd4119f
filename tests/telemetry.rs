//! Telemetry end to end: spans of two components reach an OTLP receiver (HTTP/protobuf and
//! gRPC) as one trace under two service names; context survives an object annotation and an
//! actor message; the span store is bounded; shutdown is bounded whatever the collector does;
//! the OTEL_* environment overrides the config.
//!
//! Timing: every wait polls with a deadline (see `support::otlp_receiver`). Spans are made
//! visible by `shutdown`, which exports what the batch processors hold before returning.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use actix::prelude::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubeactor::config::{OtlpProtocol, TelemetryConfig};
use kubeactor::telemetry::{extract, inject, Component, Telemetry, Traced, TRACEPARENT_ANNOTATION};
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use support::otlp_receiver::*;

/// Generous: the receiver normally has the spans within milliseconds of `shutdown`.
const WAIT: Duration = Duration::from_secs(10);
/// The bound the daemon promises for SIGINT/SIGTERM handling as a whole.
const EXIT_BOUND: Duration = Duration::from_secs(5);

fn config(endpoint: &str, protocol: OtlpProtocol) -> TelemetryConfig {
    TelemetryConfig {
        otlp_enabled: true,
        otlp_endpoint: endpoint.to_owned(),
        otlp_protocol: protocol,
        sampler_ratio: 1.0,
        span_store_capacity: 1000,
        propagation: kubeactor::telemetry::Propagation::Child,
    }
}

fn export_off() -> TelemetryConfig {
    TelemetryConfig {
        otlp_enabled: false,
        ..config("", OtlpProtocol::HttpProtobuf)
    }
}

/// An environment with exactly `vars` set (the real one is never consulted).
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// The apiserver handles a create and writes to etcd: two spans, two components.
fn create_deployment(t: &Telemetry) {
    let api = t.tracer(Component::ApiServer);
    let etcd = t.tracer(Component::Etcd);
    let request = api
        .span_builder("kubectl create deployments/web")
        .with_kind(SpanKind::Server)
        .start(&api);
    let cx = Context::new().with_span(request);
    let mut put = etcd.start_with_context("txn put /registry/deployments/default/web", &cx);
    put.set_attribute(KeyValue::new("etcd.revision", 7));
    put.end();
    cx.span().end();
}

fn assert_create_trace(spans: &[ReceivedSpan]) {
    assert_eq!(spans.len(), 2, "{}", describe(spans));
    assert_one_trace(spans);
    let root = assert_one_root(spans);
    assert_no_dangling_parents(spans);
    let put = span_named(spans, "txn put /registry/deployments/default/web");
    assert_eq!(root.name, "kubectl create deployments/web");
    assert_eq!(root.service_name, "kube-apiserver");
    assert_eq!(put.service_name, "etcd");
    assert_parent(spans, root, put);
    assert_eq!(put.attr("etcd.revision"), Some("7"));
}

#[test]
fn http_protobuf_export_shows_apiserver_and_etcd_as_one_trace() {
    let receiver = OtlpReceiver::http();
    let t = Telemetry::init_with_env(
        &config(&receiver.endpoint(), OtlpProtocol::HttpProtobuf),
        &no_env,
    )
    .unwrap();
    create_deployment(&t);
    t.shutdown();
    assert_create_trace(&receiver.wait_for_spans(2, WAIT));
}

#[test]
fn grpc_export_shows_apiserver_and_etcd_as_one_trace() {
    let receiver = OtlpReceiver::grpc();
    let t = Telemetry::init_with_env(&config(&receiver.endpoint(), OtlpProtocol::Grpc), &no_env)
        .unwrap();
    create_deployment(&t);
    t.shutdown();
    assert_create_trace(&receiver.wait_for_spans(2, WAIT));
}

#[test]
fn flush_exports_without_shutting_down() {
    let receiver = OtlpReceiver::http();
    let t = Telemetry::init_with_env(
        &config(&receiver.endpoint(), OtlpProtocol::HttpProtobuf),
        &no_env,
    )
    .unwrap();
    create_deployment(&t);
    assert!(t.flush(WAIT));
    receiver.wait_for_spans(2, WAIT);
    // Still alive: a second trace exports too.
    create_deployment(&t);
    t.shutdown();
    let spans = receiver.wait_for_spans(4, WAIT);
    let traces: std::collections::BTreeSet<_> = spans.iter().map(|s| &s.trace_id).collect();
    assert_eq!(traces.len(), 2);
}

#[test]
fn node_spans_carry_the_node_in_their_resource() {
    let receiver = OtlpReceiver::http();
    let t = Telemetry::init_with_env(
        &config(&receiver.endpoint(), OtlpProtocol::HttpProtobuf),
        &no_env,
    )
    .unwrap();
    let bind = t
        .tracer(Component::Scheduler)
        .start("bind pod default/web-1 to node-2");
    let cx = Context::new().with_span(bind);
    t.node_tracer(Component::Kubelet, "node-2")
        .start_with_context("sync pod default/web-1", &cx)
        .end();
    // Another node's spans go through the same shared export pipeline, under their own
    // node's resource.
    t.node_tracer(Component::Kubelet, "node-3")
        .start_with_context("sync pod default/web-2", &cx)
        .end();
    cx.span().end();
    t.shutdown();
    let spans = receiver.wait_for_spans(3, WAIT);
    let sync = span_named(&spans, "sync pod default/web-1");
    assert_eq!(sync.service_name, "kubelet");
    assert_eq!(sync.resource["k8s.node.name"], "node-2");
    assert_eq!(sync.resource["service.instance.id"], "node-2");
    let other = span_named(&spans, "sync pod default/web-2");
    assert_eq!(other.service_name, "kubelet");
    assert_eq!(other.resource["k8s.node.name"], "node-3");
    assert_eq!(other.resource["service.instance.id"], "node-3");
    assert_ancestor(
        &spans,
        "bind pod default/web-1 to node-2",
        "sync pod default/web-1",
    );
}

#[test]
fn traceparent_annotation_continues_the_trace_in_another_component() {
    let t = Telemetry::in_memory(100);
    // The apiserver stores the object with its span's context...
    let write = t
        .tracer(Component::ApiServer)
        .start("create deployments/web");
    let write_cx = Context::new().with_span(write);
    let mut meta = ObjectMeta::default();
    inject(&write_cx, &mut meta);
    write_cx.span().end();
    assert!(meta.annotations.as_ref().unwrap()[TRACEPARENT_ANNOTATION].starts_with("00-"));

    // ...and the controller manager, seeing the watch event, continues from it.
    let parent = extract(&meta);
    t.tracer(Component::ControllerManager)
        .start_with_context("sync deployment default/web", &parent)
        .end();

    let store = t.span_store();
    let trace_id = write_cx.span().span_context().trace_id();
    let spans = store.trace(trace_id);
    assert_eq!(spans.len(), 2);
    let sync = spans
        .iter()
        .find(|s| s.name == "sync deployment default/web")
        .unwrap();
    assert_eq!(&*sync.service_name, "kube-controller-manager");
    assert_eq!(
        sync.parent_span_id,
        Some(write_cx.span().span_context().span_id())
    );
}

#[test]
fn malformed_traceparent_annotation_starts_a_new_root() {
    let t = Telemetry::in_memory(100);
    let meta = ObjectMeta {
        annotations: Some(BTreeMap::from([(
            TRACEPARENT_ANNOTATION.to_owned(),
            "00-not-a-trace-01".to_owned(),
        )])),
        ..ObjectMeta::default()
    };
    let cx = extract(&meta);
    assert!(!cx.span().span_context().is_valid());
    t.tracer(Component::Scheduler)
        .start_with_context("schedule pod default/web-1", &cx)
        .end();
    let spans = t.span_store().spans();
    assert_eq!(spans.len(), 1);
    assert!(spans[0].is_root());
}

// ---- context through an actor message ------------------------------------------------------

/// A stand-in for the etcd actor: stores a value, answers the new revision.
struct Etcd {
    tracer: SdkTracer,
    revision: u64,
}

impl Actor for Etcd {
    type Context = actix::Context<Self>;
}

struct Put(&'static str);

impl Message for Put {
    type Result = u64;
}

impl Handler<Traced<Put>> for Etcd {
    type Result = u64;

    fn handle(&mut self, m: Traced<Put>, _: &mut Self::Context) -> u64 {
        let mut span = self
            .tracer
            .start_with_context(format!("txn put {}", m.msg.0), &m.cx);
        self.revision += 1;
        span.set_attribute(KeyValue::new("etcd.revision", self.revision as i64));
        span.end();
        self.revision
    }
}

#[actix_rt::test]
async fn traced_messages_carry_the_context_into_an_actor_and_export_from_actix() {
    let receiver = OtlpReceiver::http();
    let t = Telemetry::init_with_env(
        &config(&receiver.endpoint(), OtlpProtocol::HttpProtobuf),
        &no_env,
    )
    .unwrap();
    let etcd = Etcd {
        tracer: t.tracer(Component::Etcd),
        revision: 0,
    }
    .start();
    let request = t
        .tracer(Component::ApiServer)
        .start("kubectl create configmaps/a");
    let cx = Context::new().with_span(request);
    let rev: u64 = etcd
        .send(Traced::new(
            cx.clone(),
            Put("/registry/configmaps/default/a"),
        ))
        .await
        .unwrap();
    assert_eq!(rev, 1);
    cx.span().end();

    // Shut down from a plain thread, as the daemon does after its System stops.
    let t2 = t.clone();
    std::thread::spawn(move || t2.shutdown()).join().unwrap();
    let spans = receiver.wait_for_spans(2, WAIT);
    assert_one_trace(&spans);
    assert_no_dangling_parents(&spans);
    assert_ancestor(
        &spans,
        "kubectl create configmaps/a",
        "txn put /registry/configmaps/default/a",
    );
    assert_eq!(
        services(&spans),
        ["etcd", "kube-apiserver"].map(String::from).into()
    );
}

// ---- span store -------------------------------------------------------------------------------

#[test]
fn span_store_keeps_the_last_spans_and_answers_queries() {
    let t = Telemetry::in_memory(5);
    let api = t.tracer(Component::ApiServer);
    let etcd = t.tracer(Component::Etcd);
    let mut trace_ids = Vec::new();
    for i in 0..3 {
        let root = api.start(format!("request {i}"));
        let cx = Context::new().with_span(root);
        etcd.start_with_context(format!("put {i}"), &cx).end();
        etcd.start_with_context(format!("range {i}"), &cx).end();
        cx.span().end();
        trace_ids.push(cx.span().span_context().trace_id());
    }
    let store = t.span_store();
    assert_eq!(store.len(), 5, "bounded by span_store_capacity");

    // 9 spans ended, in the order put 0, range 0, request 0, put 1, ...; the oldest 4 are
    // gone, so trace 0 is gone entirely and trace 1 has lost its put.
    assert!(store.trace(trace_ids[0]).is_empty());
    let t1: Vec<String> = store
        .trace(trace_ids[1])
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(t1, ["request 1", "range 1"]);
    assert_eq!(store.trace(trace_ids[2]).len(), 3);

    let recent = store.traces_recent(10);
    assert_eq!(
        recent.iter().map(|s| s.trace_id).collect::<Vec<_>>(),
        [trace_ids[2], trace_ids[1]]
    );
    let newest = &recent[0];
    assert_eq!(newest.span_count, 3);
    assert_eq!(
        newest
            .root
            .as_ref()
            .map(|(svc, name)| (svc.to_string(), name.to_string())),
        Some(("kube-apiserver".into(), "request 2".into()))
    );
    assert_eq!(store.traces_recent(1).len(), 1);

    assert_eq!(store.find_traces(|s| s.name == "put 2"), [trace_ids[2]]);
    assert_eq!(
        store.find_traces(|s| &*s.service_name == "etcd"),
        [trace_ids[2], trace_ids[1]]
    );
}

#[test]
fn span_store_records_when_export_is_off_and_the_sampler_applies() {
    let t = Telemetry::init_with_env(&export_off(), &no_env).unwrap();
    assert!(t.export_target().is_none());
    create_deployment(&t);
    assert_eq!(t.span_store().len(), 2);

    let t = Telemetry::init_with_env(
        &TelemetryConfig {
            sampler_ratio: 0.0,
            ..export_off()
        },
        &no_env,
    )
    .unwrap();
    create_deployment(&t);
    assert!(t.span_store().is_empty(), "ratio 0 samples no new trace");
}

// ---- bounded shutdown -------------------------------------------------------------------------

fn assert_shutdown_is_bounded(endpoint: &str, protocol: OtlpProtocol) {
    let t = Telemetry::init_with_env(&config(endpoint, protocol), &no_env).unwrap();
    create_deployment(&t);
    t.node_tracer(Component::Kubelet, "node-1")
        .start("sync pod")
        .end();
    let started = Instant::now();
    t.shutdown();
    let took = started.elapsed();
    eprintln!("shutdown against {endpoint} ({protocol:?}) took {took:?}");
    assert!(
        took < EXIT_BOUND,
        "shutdown against {endpoint} ({protocol:?}) took {took:?}"
    );
    // Dropping the last handle afterwards must not wait again.
    let started = Instant::now();
    drop(t);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn shutdown_is_bounded_when_the_collector_never_answers() {
    let hole = BlackHole::new();
    assert_shutdown_is_bounded(&hole.endpoint(), OtlpProtocol::HttpProtobuf);
    assert_shutdown_is_bounded(&hole.endpoint(), OtlpProtocol::Grpc);
}

#[test]
fn shutdown_is_bounded_when_nothing_listens() {
    let closed = closed_port();
    assert_shutdown_is_bounded(&closed, OtlpProtocol::HttpProtobuf);
    assert_shutdown_is_bounded(&closed, OtlpProtocol::Grpc);
}

#[test]
fn dropping_telemetry_without_shutdown_is_bounded_too() {
    let hole = BlackHole::new();
    let t = Telemetry::init_with_env(
        &config(&hole.endpoint(), OtlpProtocol::HttpProtobuf),
        &no_env,
    )
    .unwrap();
    create_deployment(&t);
    let started = Instant::now();
    drop(t);
    assert!(started.elapsed() < EXIT_BOUND);
}

// ---- environment --------------------------------------------------------------------------

#[test]
fn endpoint_env_turns_export_on() {
    let receiver = OtlpReceiver::http();
    let t = Telemetry::init_with_env(
        &export_off(),
        &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())]),
    )
    .unwrap();
    assert_eq!(
        t.export_target().unwrap().endpoint,
        format!("{}/v1/traces", receiver.endpoint())
    );
    create_deployment(&t);
    t.shutdown();
    assert_create_trace(&receiver.wait_for_spans(2, WAIT));
}

#[test]
fn protocol_env_selects_grpc() {
    let receiver = OtlpReceiver::grpc();
    let t = Telemetry::init_with_env(
        &export_off(),
        &env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]),
    )
    .unwrap();
    assert_eq!(t.export_target().unwrap().protocol, OtlpProtocol::Grpc);
    create_deployment(&t);
    t.shutdown();
    assert_create_trace(&receiver.wait_for_spans(2, WAIT));
}

#[test]
fn sdk_disabled_records_and_exports_nothing() {
    let receiver = OtlpReceiver::http();
    let t = Telemetry::init_with_env(
        &config(&receiver.endpoint(), OtlpProtocol::HttpProtobuf),
        &env(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
        ]),
    )
    .unwrap();
    assert!(t.export_target().is_none());
    create_deployment(&t);
    t.shutdown();
    assert!(t.span_store().is_empty());
    // Nothing was exported: with export off there is no exporter that could still send.
    assert_eq!(receiver.requests(), 0);
}

#[test]
fn sampler_env_overrides_the_config_ratio() {
    // always_off: nothing, even with ratio 1.0 in the config.
    let t = Telemetry::init_with_env(
        &export_off(),
        &env(&[("OTEL_TRACES_SAMPLER", "always_off")]),
    )
    .unwrap();
    create_deployment(&t);
    assert!(t.span_store().is_empty());

    // parentbased_traceidratio with ratio 0: no new roots, but a sampled remote parent
    // (a traceparent from a sampled caller) is followed.
    let t = Telemetry::init_with_env(
        &export_off(),
        &env(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ]),
    )
    .unwrap();
    create_deployment(&t);
    assert!(t.span_store().is_empty());
    let caller = kubeactor::telemetry::from_traceparent(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    t.tracer(Component::ApiServer)
        .start_with_context("get pods", &caller)
        .end();
    assert_eq!(t.span_store().len(), 1);

    // traceidratio (not parent-based) with ratio 0 ignores the caller's decision.
    let t = Telemetry::init_with_env(
        &export_off(),
        &env(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ]),
    )
    .unwrap();
    t.tracer(Component::ApiServer)
        .start_with_context("get pods", &caller)
        .end();
    assert!(t.span_store().is_empty());
}

#[test]
fn a_bad_endpoint_fails_init() {
    let err = Telemetry::init_with_env(
        &config("not a url at all", OtlpProtocol::HttpProtobuf),
        &no_env,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a url at all"), "{err}");
}
