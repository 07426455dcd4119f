//! Wiring: start the components from a [`Config`], and the `kubeactor up` daemon.
//!
//! What runs today: the durable store, the `ApiServer` actor over it (on its own thread), the
//! HTTP API in front of it (with the token and the kubeconfig in the data directory), the
//! controller manager (on its own thread), the scheduler (on its own thread), one kubelet and container runtime per node, and
//! telemetry.

use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, Addr};

use crate::apiserver::http::{self, HttpOptions, HttpServer};
use crate::apiserver::{ApiError, ApiServer, ApiServerOptions};
use crate::config::Config;
use crate::controllers::ControllerManager;
use crate::store::{self, Store, StoreError, StoreOptions};
use crate::telemetry::Telemetry;

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the store in {dir}: {source}")]
    Store { dir: PathBuf, source: StoreError },
    #[error("cannot start the API server: {0}")]
    ApiServer(Box<ApiError>),
    #[error("cannot start the HTTP API: {0}")]
    Http(#[from] http::StartError),
    #[error("cannot set up TLS for the HTTP API: {0}")]
    Tls(String),
    #[error("cannot start telemetry: {0}")]
    Telemetry(String),
    #[error("cannot start the nodes: {0}")]
    Nodes(String),
    #[error("cannot start the controller manager: {0}")]
    Controllers(String),
    #[error("cannot start the scheduler: {0}")]
    Scheduler(#[from] crate::scheduler::profile::ProfileError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The running components.
pub struct Cluster {
    pub apiserver: Addr<ApiServer>,
    pub store: Arc<dyn Store>,
    pub telemetry: Telemetry,
    pub data_dir: PathBuf,
    /// The API server's own thread.
    apiserver_arbiter: actix::Arbiter,
    /// kube-controller-manager.
    pub controllers: ControllerManager,
    /// The controller manager's own thread.
    controllers_arbiter: actix::Arbiter,
    /// One kubelet and one container runtime per configured node (issue 5).
    pub nodes: Vec<crate::kubelet::actor::NodeHandle>,
    /// The HTTP API (its address is the real one when port 0 was configured).
    pub http: HttpServer,
    /// `<data-dir>/kubeconfig`, pointing kubectl at [`Cluster::http`].
    pub kubeconfig: PathBuf,
    /// kube-scheduler: binds pending pods of its profiles (`[scheduler]`).
    pub scheduler: Addr<crate::scheduler::actor::Scheduler>,
    /// The demo scenario loop, when `[demo] enabled` (issue 7).
    pub demo: Option<crate::demo::DemoHandle>,
}

impl Cluster {
    /// Open the store and start every component on the current actix system.
    pub async fn start(config: &Config, telemetry: Telemetry) -> Result<Cluster, Error> {
        let data_dir = config.data_dir();
        let opts = StoreOptions {
            event_window: config.store.event_window,
            max_batch: config.store.max_batch,
            watch_buffer: config.store.watch_buffer,
            // -- store WAL --
            wal: store::WalOptions {
                segment_bytes: (config.store.wal_segment_mib as u64) << 20,
                checkpoint_interval: std::time::Duration::from_millis(
                    config.store.checkpoint_interval_ms as u64,
                ),
                checkpoint_events: config.store.checkpoint_events,
            },
            // -- end store WAL --
        };
        let store =
            store::open(config.store.engine, &data_dir, opts).map_err(|source| Error::Store {
                dir: data_dir.clone(),
                source,
            })?;
        let apiserver_arbiter = actix::Arbiter::new();
        let apiserver = ApiServer::new(
            store.clone(),
            ApiServerOptions::from(&config.apiserver),
            &telemetry,
        )
        .map_err(|e| Error::ApiServer(Box::new(e)))?
        .start_on(&apiserver_arbiter.handle())
        .await
        .map_err(|e| Error::ApiServer(Box::new(e)))?;
        // --- controllers ---
        // On a thread of their own, as kube-controller-manager is a process of its own: on
        // this thread their syncs queued behind the work of 10,000 kubelets
        // (docs/performance.md, "The whole chain").
        let controllers_arbiter = actix::Arbiter::new();
        let controllers = ControllerManager::start_on(
            &controllers_arbiter.handle(),
            apiserver.clone(),
            &config.controllers,
            config.simulation.clock(),
            &telemetry,
        )
        .await
        .ok_or_else(|| Error::Controllers("its thread did not start".into()))?;
        // --- end controllers ---
        // --- nodes (issue 5): a container runtime and a kubelet per node ---
        let nodes = crate::kubelet::actor::start_nodes(config, &apiserver, &telemetry)
            .map_err(|e| Error::Nodes(e.to_string()))?;
        // --- end nodes ---
        // --- the HTTP API, its token and the kubeconfig (issue 6) ---
        let token = match config.apiserver.token_auth {
            true => Some(http::auth::load_or_create_token(&data_dir)?),
            false => None,
        };
        let tls = match config.apiserver.tls {
            true => Some(
                http::tls::load_or_create(&data_dir, config.apiserver.listen.parse().ok())
                    .map_err(|e| Error::Tls(e.to_string()))?,
            ),
            false => None,
        };
        let ca = tls.as_ref().map(|t| t.cert_pem.clone());
        let mut http_opts = HttpOptions::from_config(&config.apiserver, token.clone(), tls);
        http_opts.backends = http::backends::Backends {
            nodes: std::sync::Arc::new(nodes.iter().map(|n| (n.name.clone(), n.clone())).collect()),
            telemetry: Some(telemetry.clone()),
        };
        let http = http::start(apiserver.clone(), http_opts)?;
        let kubeconfig =
            http::auth::write_kubeconfig(&data_dir, &http.url(), ca.as_deref(), token.as_deref())?;
        // --- end HTTP API ---
        // ---- kube-scheduler: on its own thread, so scheduling runs beside the API server ----
        use crate::scheduler::actor::Scheduler;
        let scheduler = Scheduler::new(apiserver.clone(), &config.scheduler, &telemetry)?;
        let scheduler =
            Scheduler::start_in_arbiter(&actix::Arbiter::new().handle(), move |_| scheduler);
        // ---- end kube-scheduler ----
        // ---- the demo loop (issue 7) ----
        let demo = config
            .demo
            .enabled
            .then(|| crate::demo::start(apiserver.clone(), nodes.clone(), config.demo.clone()));
        // ---- end demo ----
        Ok(Cluster {
            apiserver,
            store,
            telemetry,
            data_dir,
            apiserver_arbiter,
            controllers,
            controllers_arbiter,
            nodes,
            http,
            kubeconfig,
            scheduler,
            demo,
        })
    }

    /// Stop: finish in-flight writes (the store drains and commits what it accepted).
    pub fn stop(&self) {
        if let Some(demo) = &self.demo {
            demo.stop();
        }
        self.controllers.stop();
        self.controllers_arbiter.stop();
        self.store.close();
        self.apiserver_arbiter.stop();
    }
}

/// `kubeactor up`: run until SIGINT or SIGTERM, then stop cleanly (in-flight writes are
/// committed, spans flushed) and return.
pub fn up(config: Config) -> Result<(), Error> {
    // The config layer already folded OTEL_EXPORTER_OTLP_ENDPOINT/_PROTOCOL into
    // `[telemetry]` (with KUBEACTOR__TELEMETRY__* winning over them); hide those two here so
    // telemetry doesn't apply them a second time over the user's explicit setting. The other
    // OTEL_* variables (sampler, SDK disabled) are telemetry's alone.
    let env = |name: &str| match name {
        crate::config::OTEL_ENDPOINT_ENV | crate::config::OTEL_PROTOCOL_ENV => None,
        _ => std::env::var(name).ok(),
    };
    let telemetry = Telemetry::init_with_env(&config.telemetry, &env)
        .map_err(|e| Error::Telemetry(e.to_string()))?;
    let system = actix::System::new();
    let result = system.block_on(async {
        let cluster = Cluster::start(&config, telemetry.clone()).await?;
        // Listen for signals before the banner says we are up: a signal sent right after it
        // must stop us cleanly, not kill us.
        let signals = wait_for_signal()?;
        print_banner(&config, &cluster);
        signals.await;
        tracing::info!("shutting down");
        cluster.http.stop().await;
        cluster.stop();
        Ok::<(), Error>(())
    });
    drop(system);
    telemetry.shutdown();
    result
}

fn print_banner(config: &Config, cluster: &Cluster) {
    let engine = match config.store.engine {
        crate::config::StoreEngine::Redb => "redb (durable)",
        crate::config::StoreEngine::Memory => "memory (not durable)",
    };
    // --- banner: nodes and traces (issue 7) ---
    let traces = match cluster.telemetry.export_target() {
        Some(target) => format!(
            "OTLP to {}; Jaeger UI: {}",
            target.endpoint,
            crate::telemetry::waterfall::jaeger_ui(&target.endpoint)
        ),
        None => "in memory only (OTLP export off): kubeactor trace --list".to_string(),
    };
    let nodes = match cluster.nodes.len() {
        0 => "none".to_string(),
        _ => cluster
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    // --- end banner ---
    println!("kubeactor is up");
    println!("  data directory: {}", cluster.data_dir.display());
    println!("  store:          {engine}");
    println!("  nodes:          {nodes}");
    println!("  traces:         {traces}");
    println!("  API:            {}", cluster.http.url());
    println!("  kubeconfig:     {}", cluster.kubeconfig.display());
    println!("  export KUBECONFIG={}", cluster.kubeconfig.display());
    if config.demo.enabled {
        println!(
            "  demo:           a scenario every {}s (create, scale, set image, fail a node, delete)",
            config.demo.interval_seconds
        );
    }
    println!("  stop with Ctrl-C");
}

/// Start listening for SIGINT and SIGTERM; the future completes on the first.
fn wait_for_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}
