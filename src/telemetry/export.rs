//! OTLP exporters: HTTP/protobuf (reqwest, blocking) or gRPC (tonic on a dedicated runtime).
//!
//! Both go behind a `BatchSpanProcessor`, whose own thread does the network I/O; a span's end
//! only enqueues it (and drops it when the queue is full), so an absent or slow collector never
//! slows a component. `SimpleSpanProcessor` would export on the ending thread — inside actix
//! that hangs or panics — so it is never used.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use crate::config::OtlpProtocol;

use super::settings::ExportTarget;
use super::TelemetryError;

/// Longest a single export (including the exporter's retries) may take. Short, so a black-hole
/// collector costs at most this much at shutdown and the batch thread soon moves on.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds one exporter per provider for one [`ExportTarget`].
#[derive(Debug)]
pub(crate) struct ExporterFactory {
    target: ExportTarget,
    /// For gRPC: the runtime every tonic channel lives on (see [`GrpcRuntime`]).
    grpc: Option<Arc<GrpcRuntime>>,
}

impl ExporterFactory {
    pub(crate) fn new(target: ExportTarget) -> Result<ExporterFactory, TelemetryError> {
        // reqwest is built with `rustls-no-provider` (the CLI's client brings its own config),
        // so the OTLP/HTTP exporter's client needs a process-wide provider, or building it
        // panics. Installing fails harmlessly when one is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let grpc = match target.protocol {
            OtlpProtocol::Grpc => Some(Arc::new(GrpcRuntime::start()?)),
            OtlpProtocol::HttpProtobuf => {
                // reqwest is built with `rustls-no-provider` (ring is the only crypto
                // provider in the build): without a process default its client panics on
                // creation. Installing fails harmlessly when one is already installed.
                let _ = rustls::crypto::ring::default_provider().install_default();
                None
            }
        };
        let factory = ExporterFactory { target, grpc };
        // Build (and drop) one exporter now, so a bad endpoint fails `init` rather than the
        // first provider built later for a node.
        factory.build()?;
        Ok(factory)
    }

    pub(crate) fn target(&self) -> &ExportTarget {
        &self.target
    }

    pub(crate) fn build(&self) -> Result<Exporter, TelemetryError> {
        let err = |source| TelemetryError::Exporter {
            endpoint: self.target.endpoint.clone(),
            source,
        };
        match &self.grpc {
            None => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(self.target.endpoint.clone())
                    .with_timeout(EXPORT_TIMEOUT)
                    .build()
                    .map_err(err)?;
                Ok(Exporter {
                    inner: exporter,
                    _runtime: None,
                })
            }
            Some(rt) => {
                // tonic's lazy channel spawns its connection worker on the current runtime:
                // entering ours (allowed even on an actix thread, unlike `block_on`) makes it
                // live there rather than on actix's runtime, where flushes time out.
                let _entered = rt.runtime.as_ref().map(|r| r.enter());
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(self.target.endpoint.clone())
                    .with_timeout(EXPORT_TIMEOUT)
                    .build()
                    .map_err(err)?;
                Ok(Exporter {
                    inner: exporter,
                    _runtime: Some(rt.clone()),
                })
            }
        }
    }
}

/// The OTLP exporter, holding the gRPC runtime (if any) so the runtime outlives it: the batch
/// processor's thread owns the exporter and drops it last, after its final export.
#[derive(Debug)]
pub(crate) struct Exporter {
    inner: opentelemetry_otlp::SpanExporter,
    _runtime: Option<Arc<GrpcRuntime>>,
}

impl SpanExporter for Exporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.inner.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A small multi-threaded tokio runtime of its own for tonic's gRPC channels. It must not be
/// actix's runtime (exports would need that runtime's thread while it waits on them) and must
/// outlive every exporter (see [`Exporter`]).
#[derive(Debug)]
pub(crate) struct GrpcRuntime {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl GrpcRuntime {
    fn start() -> Result<GrpcRuntime, TelemetryError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-grpc")
            .enable_all()
            .build()
            .map_err(TelemetryError::GrpcRuntime)?;
        Ok(GrpcRuntime {
            runtime: Some(runtime),
        })
    }
}

impl Drop for GrpcRuntime {
    fn drop(&mut self) {
        // Dropping a runtime normally waits for its tasks and panics inside another runtime;
        // this drop may run anywhere, so let its threads go instead.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

// --- one export pipeline for all of a component's per-node providers ---

/// The exporter behind the one batch processor that every per-node provider of a component
/// (kubelet, container-runtime) shares. A provider per node keeps each node's spans under its
/// own resource (`service.instance.id`, `k8s.node.name`), but a batch processor per provider
/// is a thread and an HTTP client per node: at 10,000 nodes, 20,000 threads. Instead each
/// node's spans go (through [`ToSharedExport`], which marks them with the node) into one
/// queue, and this exporter sends each batch as one export per node present, with that
/// node's resource.
#[derive(Debug)]
pub(crate) struct NodesExporter {
    inner: futures::lock::Mutex<Exporter>,
    component: super::Component,
    /// Each node's resource, built once.
    resources: parking_lot::Mutex<std::collections::HashMap<String, Resource>>,
}

impl NodesExporter {
    pub(crate) fn new(inner: Exporter, component: super::Component) -> NodesExporter {
        NodesExporter {
            inner: futures::lock::Mutex::new(inner),
            component,
            resources: Default::default(),
        }
    }

    fn resource_of(&self, node: &str) -> Resource {
        self.resources
            .lock()
            .entry(node.to_string())
            .or_insert_with(|| super::resource(self.component, Some(node)))
            .clone()
    }
}

/// The node a span was marked with by [`ToSharedExport`].
fn node_of(span: &SpanData) -> &str {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == super::span_store::K8S_NODE_NAME)
        .map_or("", |kv| match &kv.value {
            opentelemetry::Value::String(s) => s.as_str(),
            _ => "",
        })
}

/// Split a batch by node, keeping each node's spans in order.
fn by_node(batch: Vec<SpanData>) -> Vec<(String, Vec<SpanData>)> {
    let mut groups: Vec<(String, Vec<SpanData>)> = Vec::new();
    for span in batch {
        let node = node_of(&span);
        match groups.iter_mut().find(|(n, _)| n == node) {
            Some((_, spans)) => spans.push(span),
            None => groups.push((node.to_string(), vec![span])),
        }
    }
    groups
}

impl SpanExporter for NodesExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut result = Ok(());
        let mut inner = self.inner.lock().await;
        for (node, spans) in by_node(batch) {
            inner.set_resource(&self.resource_of(&node));
            if let Err(e) = inner.export(spans).await {
                result = Err(e);
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self.inner.try_lock() {
            Some(inner) => inner.shutdown_with_timeout(timeout),
            None => Ok(()),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    /// Each export sets its node's resource; the shared processor's own is not used.
    fn set_resource(&mut self, _resource: &Resource) {}
}

/// The span processor of one per-node provider when spans are exported: marks each ended span
/// with its node (`k8s.node.name`, which the kubelet's and runtime's spans carry anyway) and
/// hands it to the component's shared batch processor (see [`NodesExporter`]).
#[derive(Debug)]
pub(crate) struct ToSharedExport {
    pub(crate) shared: Arc<opentelemetry_sdk::trace::BatchSpanProcessor>,
    pub(crate) node: String,
}

impl opentelemetry_sdk::trace::SpanProcessor for ToSharedExport {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, mut span: SpanData) {
        if node_of(&span) != self.node {
            span.attributes
                .retain(|kv| kv.key.as_str() != super::span_store::K8S_NODE_NAME);
            span.attributes.push(opentelemetry::KeyValue::new(
                super::span_store::K8S_NODE_NAME,
                self.node.clone(),
            ));
        }
        self.shared.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.shared.force_flush()
    }

    /// The shared processor outlives the node's provider; the telemetry shuts it down last.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[cfg(test)]
mod nodes_tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanKind, Status};
    use opentelemetry::KeyValue;

    fn span(name: &str, node: Option<&str>) -> SpanData {
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: name.to_string().into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: node
                .map(|n| {
                    vec![KeyValue::new(
                        super::super::span_store::K8S_NODE_NAME,
                        n.to_string(),
                    )]
                })
                .unwrap_or_default(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn a_batch_is_split_by_node_in_order() {
        let batch = vec![
            span("a1", Some("node-a")),
            span("b1", Some("node-b")),
            span("a2", Some("node-a")),
            span("x", None),
        ];
        let groups: Vec<(String, Vec<String>)> = by_node(batch)
            .into_iter()
            .map(|(n, s)| (n, s.into_iter().map(|s| s.name.to_string()).collect()))
            .collect();
        assert_eq!(
            groups,
            [
                (
                    "node-a".to_string(),
                    vec!["a1".to_string(), "a2".to_string()]
                ),
                ("node-b".to_string(), vec!["b1".to_string()]),
                (String::new(), vec!["x".to_string()]),
            ]
        );
    }
}
