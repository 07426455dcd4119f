//! Wiring: start the components from a [`Config`], and the `kubeactor up` daemon.
//!
//! What runs today: the durable store, the `ApiServer` actor over it, telemetry, and the
//! kube-scheduler. Later issues add the HTTP API, controllers and kubelets here.

use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, Addr};

use crate::apiserver::{ApiError, ApiServer, ApiServerOptions};
use crate::config::Config;
use crate::store::{self, Store, StoreError, StoreOptions};
use crate::telemetry::Telemetry;

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the store in {dir}: {source}")]
    Store { dir: PathBuf, source: StoreError },
    #[error("cannot start the API server: {0}")]
    ApiServer(Box<ApiError>),
    #[error("cannot start telemetry: {0}")]
    Telemetry(String),
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
    /// kube-scheduler: binds pending pods of its profiles (`[scheduler]`).
    pub scheduler: Addr<crate::scheduler::actor::Scheduler>,
}

impl Cluster {
    /// Open the store and start every component on the current actix system.
    pub async fn start(config: &Config, telemetry: Telemetry) -> Result<Cluster, Error> {
        let data_dir = config.data_dir();
        let opts = StoreOptions {
            event_window: config.store.event_window,
            max_batch: config.store.max_batch,
            watch_buffer: config.store.watch_buffer,
        };
        let store =
            store::open(config.store.engine, &data_dir, opts).map_err(|source| Error::Store {
                dir: data_dir.clone(),
                source,
            })?;
        let apiserver = ApiServer::new(
            store.clone(),
            ApiServerOptions::from(&config.apiserver),
            &telemetry,
        )
        .map_err(|e| Error::ApiServer(Box::new(e)))?
        .start()
        .await
        .map_err(|e| Error::ApiServer(Box::new(e)))?;
        // ---- kube-scheduler: on its own thread, so scheduling runs beside the API server ----
        use crate::scheduler::actor::Scheduler;
        let scheduler = Scheduler::new(apiserver.clone(), &config.scheduler, &telemetry)?;
        let scheduler =
            Scheduler::start_in_arbiter(&actix::Arbiter::new().handle(), move |_| scheduler);
        // ---- end kube-scheduler ----
        Ok(Cluster {
            apiserver,
            store,
            telemetry,
            data_dir,
            scheduler,
        })
    }

    /// Stop: finish in-flight writes (the store drains and commits what it accepted).
    pub fn stop(&self) {
        self.store.close();
    }
}

/// `kubeactor up`: run until SIGINT or SIGTERM, then stop cleanly (in-flight writes are
/// committed, spans flushed) and return.
pub fn up(config: Config) -> Result<(), Error> {
    let telemetry =
        Telemetry::init(&config.telemetry).map_err(|e| Error::Telemetry(e.to_string()))?;
    let system = actix::System::new();
    let result = system.block_on(async {
        let cluster = Cluster::start(&config, telemetry.clone()).await?;
        print_banner(&config, &cluster);
        wait_for_signal().await?;
        tracing::info!("shutting down");
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
    let traces = if config.telemetry.otlp_enabled {
        format!(
            "OTLP to {} (Jaeger UI: http://localhost:16686)",
            config.telemetry.otlp_endpoint
        )
    } else {
        "kept in memory (OTLP export off)".to_string()
    };
    println!("kubeactor is up");
    println!("  data directory: {}", cluster.data_dir.display());
    println!("  store:          {engine}");
    println!("  traces:         {traces}");
    println!("  stop with Ctrl-C");
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}
