//! Wiring. (Being written.)
//!
//! TEMPORARY STUB from the `config` branch so that `main.rs` compiles: the merger keeps the
//! real `cluster::up` from the cluster branch and drops this file's contents.

use crate::config::Config;

/// Why the cluster could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The signal handlers or the runtime could not be set up.
    #[error("cannot start: {0}")]
    Start(String),
}

/// Starts the components from `config` and blocks until SIGINT or SIGTERM; `Ok(())` after a
/// clean stop. (Stub: starts nothing, only waits for the signal.)
pub fn up(config: Config) -> Result<(), Error> {
    let _ = config;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Start(e.to_string()))?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::Start(e.to_string()))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopped");
        Ok(())
    })
}
