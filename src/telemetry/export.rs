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
