//! Telemetry: one tracer provider per component, trace context through messages and objects,
//! OTLP export, and the in-memory span store.
//!
//! # Shape (see `TRACING.md` for why)
//!
//! * Each [`Component`] has its own `SdkTracerProvider` whose resource carries its
//!   `service.name`, so Jaeger shows every component in its own colour within one trace.
//!   Per-node components (kubelet, container-runtime) get a provider per node
//!   ([`Telemetry::node_tracer`]) with `service.instance.id` and `k8s.node.name` = the node.
//!   Nothing is installed globally: each component is handed its tracer.
//! * In-process, messages carry the context ([`Traced`]); through the store, objects carry a
//!   W3C `traceparent` annotation ([`inject`], [`extract`]). A span started by provider B with
//!   a parent `Context` from provider A joins A's trace and keeps B's service name.
//! * Every provider feeds the shared [`SpanStore`] and, when export is on, a
//!   `BatchSpanProcessor` with an OTLP exporter ([`export`]) — one per component: the
//!   per-node providers of a component share theirs, which exports each node's spans under
//!   that node's resource (a processor per node would be a thread and an HTTP client per
//!   node). The sampler (parent-based, root ratio from config or
//!   `OTEL_TRACES_SAMPLER(_ARG)`) applies to both.
//! * [`Telemetry::shutdown`] flushes and shuts every provider down in parallel on plain
//!   threads and returns within [`SHUTDOWN_TIMEOUT`], whatever the collector does.
//!
//! # Example
//!
//! ```
//! use opentelemetry::trace::{Span, TraceContextExt, Tracer};
//! use opentelemetry::Context;
//! use kubeactor::telemetry::{Component, Telemetry};
//!
//! let telemetry = Telemetry::in_memory(100);
//! let api = telemetry.tracer(Component::ApiServer);
//! let etcd = telemetry.tracer(Component::Etcd);
//!
//! let request = api.start("kubectl create deployments/web");
//! let cx = Context::new().with_span(request);
//! etcd.start_with_context("txn put /registry/deployments/default/web", &cx).end();
//! cx.span().end();
//!
//! let trace = telemetry.span_store().trace(cx.span().span_context().trace_id());
//! assert_eq!(trace.len(), 2);
//! ```

mod envelope;
pub mod export;
mod propagation;
mod reaction;
pub mod settings;
mod span_store;
pub mod waterfall;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use parking_lot::Mutex;

use crate::config::TelemetryConfig;

pub use envelope::Traced;
pub use propagation::{extract, from_traceparent, inject, traceparent, TRACEPARENT_ANNOTATION};
pub use reaction::{start_reaction, Propagation};
pub use settings::{ExportTarget, RootSampler, SamplerSpec, Settings};
pub use span_store::{SpanStore, StoredSpan, TraceSummary};

use export::ExporterFactory;

/// The most [`Telemetry::shutdown`] waits for all providers together.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(2500);

/// The instrumentation scope of every tracer.
const SCOPE_NAME: &str = "kubeactor";

/// A control-plane component, i.e. one `service.name` in a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    ApiServer,
    Etcd,
    ControllerManager,
    Scheduler,
    Kubelet,
    ContainerRuntime,
}

impl Component {
    pub const ALL: [Component; 6] = [
        Component::ApiServer,
        Component::Etcd,
        Component::ControllerManager,
        Component::Scheduler,
        Component::Kubelet,
        Component::ContainerRuntime,
    ];

    /// The OpenTelemetry `service.name`, as the real component would report it.
    pub fn service_name(self) -> &'static str {
        match self {
            Component::ApiServer => "kube-apiserver",
            Component::Etcd => "etcd",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Kubelet => "kubelet",
            Component::ContainerRuntime => "container-runtime",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.service_name())
    }
}

/// Errors from setting telemetry up. Export failures at run time are not errors: spans are
/// dropped (and the SDK logs why), the daemon carries on.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `[telemetry] sampler_ratio` is outside 0.0..=1.0.
    #[error("telemetry.sampler_ratio must be within 0.0..=1.0, got {0}")]
    InvalidSamplerRatio(f64),
    /// The OTLP exporter could not be built (typically an unparsable endpoint URL).
    #[error("cannot build the OTLP exporter for {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// The runtime for gRPC export could not be started.
    #[error("cannot start the OTLP gRPC runtime: {0}")]
    GrpcRuntime(#[source] std::io::Error),
}

/// The process's telemetry: tracer providers, exporters and the span store. Cheap to clone.
///
/// Keep one clone alive for as long as spans are made: when the last clone is dropped,
/// everything is shut down (as by [`Telemetry::shutdown`]) and tracers already handed out
/// stop recording.
#[derive(Clone, Debug)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    store: SpanStore,
    exporters: Option<ExporterFactory>,
    /// One per [`Component`], indexed by `Component::index`.
    providers: Vec<SdkTracerProvider>,
    /// Per-node providers, created on first use.
    node_providers: Mutex<HashMap<(Component, String), SdkTracerProvider>>,
    /// With export on: per component, the batch processor its per-node providers share.
    node_export: Mutex<HashMap<Component, Arc<BatchSpanProcessor>>>,
    shut_down: AtomicBool,
}

impl Telemetry {
    /// Set up from `[telemetry]` and the process environment (`OTEL_*`, see [`settings`]).
    pub fn init(cfg: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        Self::init_with_env(cfg, &|name| std::env::var(name).ok())
    }

    /// [`Telemetry::init`] with an explicit environment lookup (tests pass a map).
    pub fn init_with_env(
        cfg: &TelemetryConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Telemetry, TelemetryError> {
        let settings = Settings::resolve(cfg, env)?;
        for warning in &settings.warnings {
            tracing::warn!("telemetry: {warning}");
        }
        Self::from_settings(settings)
    }

    /// Span store only, no export, every span sampled: for tests and tools.
    pub fn in_memory(capacity: usize) -> Telemetry {
        Self::from_settings(Settings {
            sdk_disabled: false,
            export: None,
            sampler: SamplerSpec {
                root: RootSampler::AlwaysOn,
                parent_based: true,
            },
            span_store_capacity: capacity,
            propagation: Propagation::Child,
            warnings: Vec::new(),
        })
        .expect("without export nothing can fail")
    }

    /// Build from already-resolved settings.
    pub fn from_settings(settings: Settings) -> Result<Telemetry, TelemetryError> {
        let exporters = settings
            .export
            .clone()
            .map(ExporterFactory::new)
            .transpose()?;
        if let Some(target) = &settings.export {
            tracing::info!(
                endpoint = %target.endpoint,
                protocol = settings::protocol_name(target.protocol),
                "exporting spans over OTLP"
            );
        }
        let store = SpanStore::new(settings.span_store_capacity);
        let mut inner = Inner {
            settings,
            store,
            exporters,
            providers: Vec::new(),
            node_providers: Mutex::new(HashMap::new()),
            node_export: Mutex::new(HashMap::new()),
            shut_down: AtomicBool::new(false),
        };
        inner.providers = Component::ALL
            .iter()
            .map(|&c| inner.build_provider(c, None))
            .collect::<Result<_, _>>()?;
        Ok(Telemetry {
            inner: Arc::new(inner),
        })
    }

    /// Whether a child of an unsampled span is never recorded: the sampler is parent-based
    /// (the default). A hot path may then hand such a parent on instead of starting a child
    /// the SDK would drop, and still propagate the "not sampled" decision downstream.
    pub fn drops_children_of_unsampled(&self) -> bool {
        self.inner.settings.sampler.parent_based
    }

    /// The tracer of component `c`. Spans it starts carry `c`'s service name.
    pub fn tracer(&self, c: Component) -> SdkTracer {
        self.inner.providers[c.index()].tracer_with_scope(scope())
    }

    /// The tracer of component `c` on node `node` (kubelet, container-runtime): its spans
    /// carry `c`'s service name plus `service.instance.id` and `k8s.node.name` = `node`.
    /// One provider per (component, node), created on first use.
    pub fn node_tracer(&self, c: Component, node: &str) -> SdkTracer {
        let mut nodes = self.inner.node_providers.lock();
        if let Some(p) = nodes.get(&(c, node.to_owned())) {
            return p.tracer_with_scope(scope());
        }
        if self.inner.shut_down.load(Ordering::SeqCst) {
            // Too late to create providers that nobody would shut down: a tracer of a
            // shut-down provider records nothing.
            return self.tracer(c);
        }
        let provider = match self.inner.build_provider(c, Some(node)) {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(%err, node, "telemetry: node provider without export");
                self.inner.build_provider_without_export(c, Some(node))
            }
        };
        let tracer = provider.tracer_with_scope(scope());
        nodes.insert((c, node.to_owned()), provider);
        tracer
    }

    /// The in-memory store of recently finished spans.
    pub fn span_store(&self) -> SpanStore {
        self.inner.store.clone()
    }

    /// The settings in effect (after environment overrides).
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// How reactions (controller syncs, scheduling attempts, kubelet pod syncs) relate to
    /// their causes; components pass it to [`start_reaction`].
    pub fn propagation(&self) -> Propagation {
        self.inner.settings.propagation
    }

    /// Where spans are exported, or `None` when export is off.
    pub fn export_target(&self) -> Option<&ExportTarget> {
        self.inner.exporters.as_ref().map(|f| f.target())
    }

    /// Export everything finished so far, waiting at most `timeout` in all. Returns whether
    /// every provider finished in time (a slow collector makes this `false`, nothing worse).
    pub fn flush(&self, timeout: Duration) -> bool {
        let providers = self.inner.all_providers();
        on_threads(providers, timeout, |p| {
            let _ = p.force_flush();
        })
    }

    /// Flush and shut down every provider, in parallel on plain threads, returning within
    /// [`SHUTDOWN_TIMEOUT`] even when the collector is absent or never answers. Call it after
    /// the actix `System` has stopped. Idempotent.
    pub fn shutdown(&self) {
        self.shutdown_within(SHUTDOWN_TIMEOUT);
    }

    /// [`Telemetry::shutdown`] with an explicit overall budget. Returns whether every provider
    /// finished within it; providers still exporting are left to finish (or time out) on
    /// their own threads.
    pub fn shutdown_within(&self, budget: Duration) -> bool {
        self.inner.shutdown_within(budget)
    }
}

impl Inner {
    fn build_provider(
        &self,
        c: Component,
        node: Option<&str>,
    ) -> Result<SdkTracerProvider, TelemetryError> {
        let builder = self.provider_builder(c, node);
        let builder = match (&self.exporters, node) {
            // A batch processor: its own thread exports; ending a span only enqueues it.
            (Some(f), None) => {
                builder.with_span_processor(BatchSpanProcessor::builder(f.build()?).build())
            }
            // Per-node providers share their component's (see `export::NodesExporter`).
            (Some(f), Some(node)) => builder.with_span_processor(export::ToSharedExport {
                shared: self.node_export(f, c)?,
                node: node.to_owned(),
            }),
            (None, _) => builder,
        };
        Ok(builder.build())
    }

    /// The batch processor every per-node provider of `c` exports through, made on first use.
    fn node_export(
        &self,
        f: &ExporterFactory,
        c: Component,
    ) -> Result<Arc<BatchSpanProcessor>, TelemetryError> {
        let mut shared = self.node_export.lock();
        if let Some(p) = shared.get(&c) {
            return Ok(p.clone());
        }
        let exporter = export::NodesExporter::new(f.build()?, c);
        let p = Arc::new(BatchSpanProcessor::builder(exporter).build());
        shared.insert(c, p.clone());
        Ok(p)
    }

    fn build_provider_without_export(&self, c: Component, node: Option<&str>) -> SdkTracerProvider {
        self.provider_builder(c, node).build()
    }

    fn provider_builder(
        &self,
        c: Component,
        node: Option<&str>,
    ) -> opentelemetry_sdk::trace::TracerProviderBuilder {
        SdkTracerProvider::builder()
            .with_resource(resource(c, node))
            .with_sampler(self.settings.sampler.to_sampler())
            .with_span_processor(self.store.processor())
    }

    fn all_providers(&self) -> Vec<SdkTracerProvider> {
        let mut all = self.providers.clone();
        all.extend(self.node_providers.lock().values().cloned());
        all
    }

    fn shutdown_within(&self, budget: Duration) -> bool {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return true;
        }
        let deadline = Instant::now() + budget;
        let providers = self.all_providers();
        // A provider's shutdown exports what its batch processor still holds, then stops the
        // exporter: flush and shutdown in one step, bounded by `budget`.
        let providers_done = on_threads(providers, budget, move |p| {
            let _ = p.shutdown_with_timeout(budget);
        });
        // Then the per-node providers' shared processors, which hold what those handed over.
        let shared: Vec<_> = self.node_export.lock().drain().map(|(_, p)| p).collect();
        let left = deadline.saturating_duration_since(Instant::now());
        let shared_done = on_threads(shared, left, move |p| {
            let _ = opentelemetry_sdk::trace::SpanProcessor::shutdown_with_timeout(&**p, left);
        });
        providers_done && shared_done
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Without this, each provider's own drop would shut down serially with the SDK's
        // 5 s timeout — up to half a minute against a black-hole collector.
        self.shutdown_within(SHUTDOWN_TIMEOUT);
    }
}

/// The resource of a component's spans; a per-node component's (kubelet, container-runtime)
/// also carry `service.instance.id` and `k8s.node.name` = the node.
pub(crate) fn resource(c: Component, node: Option<&str>) -> Resource {
    // `Resource::builder` also reads OTEL_RESOURCE_ATTRIBUTES; the service name set here
    // wins over OTEL_SERVICE_NAME, since one process reports as six services.
    let mut resource = Resource::builder().with_service_name(c.service_name());
    if let Some(node) = node {
        resource = resource.with_attributes([
            KeyValue::new("service.instance.id", node.to_owned()),
            KeyValue::new(span_store::K8S_NODE_NAME, node.to_owned()),
        ]);
    }
    resource.build()
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// Run `f` on every provider, each on its own plain thread, and wait until all are done or
/// `budget` has passed. Threads still running at the deadline are left behind (detached).
/// Returns whether all finished in time.
fn on_threads<T: Send + 'static>(
    providers: Vec<T>,
    budget: Duration,
    f: impl Fn(&T) + Send + Sync + Clone + 'static,
) -> bool {
    let deadline = Instant::now() + budget;
    let (done_tx, done_rx) = mpsc::channel();
    let mut pending = 0usize;
    for p in providers {
        let (tx, f) = (done_tx.clone(), f.clone());
        let spawned = std::thread::Builder::new()
            .name("otel-shutdown".into())
            .spawn(move || {
                f(&p);
                let _ = tx.send(());
            });
        match spawned {
            Ok(_) => pending += 1,
            Err(err) => tracing::warn!(%err, "telemetry: cannot spawn a shutdown thread"),
        }
    }
    drop(done_tx);
    while pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => pending -= 1,
            Err(_) => break,
        }
    }
    if pending > 0 {
        tracing::warn!(
            pending,
            "telemetry: gave up waiting for span export after {budget:?}; unsent spans are lost"
        );
    }
    pending == 0
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{Span, TraceContextExt, Tracer};
    use opentelemetry::Context;

    use super::*;

    #[test]
    fn exporting_node_providers_share_one_batch_processor_per_component() {
        let settings = Settings {
            sdk_disabled: false,
            // Nothing listens there; nothing is exported before the test ends.
            export: Some(settings::ExportTarget {
                endpoint: "http://127.0.0.1:9/v1/traces".into(),
                protocol: crate::config::OtlpProtocol::HttpProtobuf,
            }),
            sampler: SamplerSpec {
                root: RootSampler::AlwaysOn,
                parent_based: true,
            },
            span_store_capacity: 10,
            propagation: Propagation::Child,
            warnings: Vec::new(),
        };
        let t = Telemetry::from_settings(settings).unwrap();
        for i in 0..50 {
            let node = format!("node-{i}");
            t.node_tracer(Component::Kubelet, &node);
            t.node_tracer(Component::ContainerRuntime, &node);
        }
        assert_eq!(t.inner.node_providers.lock().len(), 100);
        // Not a batch processor (a thread and an HTTP client) per node.
        assert_eq!(t.inner.node_export.lock().len(), 2);
        assert!(t.shutdown_within(Duration::from_secs(5)));
    }

    #[test]
    fn service_names_match_the_real_components() {
        let names: Vec<&str> = Component::ALL.iter().map(|c| c.service_name()).collect();
        assert_eq!(
            names,
            [
                "kube-apiserver",
                "etcd",
                "kube-controller-manager",
                "kube-scheduler",
                "kubelet",
                "container-runtime"
            ]
        );
        for (i, c) in Component::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn a_child_from_another_component_joins_the_trace_under_its_own_name() {
        let t = Telemetry::in_memory(10);
        let parent = t.tracer(Component::ApiServer).start("create pod");
        let cx = Context::new().with_span(parent);
        t.node_tracer(Component::Kubelet, "node-1")
            .start_with_context("sync pod", &cx)
            .end();
        cx.span().end();
        let spans = t.span_store().spans();
        assert_eq!(spans.len(), 2);
        let (child, parent) = (&spans[0], &spans[1]);
        assert_eq!(&*child.service_name, "kubelet");
        assert_eq!(child.node.as_deref(), Some("node-1"));
        assert_eq!(&*parent.service_name, "kube-apiserver");
        assert_eq!(child.trace_id, parent.trace_id);
        assert_eq!(child.parent_span_id, Some(parent.span_id));
    }

    #[test]
    fn node_providers_are_cached_per_component_and_node() {
        let t = Telemetry::in_memory(10);
        t.node_tracer(Component::Kubelet, "node-1");
        t.node_tracer(Component::Kubelet, "node-1");
        t.node_tracer(Component::Kubelet, "node-2");
        t.node_tracer(Component::ContainerRuntime, "node-1");
        assert_eq!(t.inner.node_providers.lock().len(), 3);
    }

    #[test]
    fn nothing_is_recorded_after_shutdown() {
        let t = Telemetry::in_memory(10);
        let tracer = t.tracer(Component::Etcd);
        assert!(t.shutdown_within(Duration::from_secs(1)));
        tracer.start("late").end();
        t.node_tracer(Component::Kubelet, "node-9")
            .start("late")
            .end();
        assert!(t.span_store().is_empty());
        assert!(t.inner.node_providers.lock().is_empty());
    }
}
