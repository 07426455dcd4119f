//! Configuration: typed structs loaded with the `config` crate.
//!
//! Layers, lowest first: the embedded `config/default.toml`, an optional `--config FILE`,
//! environment variables `KUBEACTOR__SECTION__KEY`, then command-line flags.
//! Every key of every struct here appears in `config/default.toml` with a comment.

use std::path::PathBuf;

use serde::Deserialize;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the durable store, the token and the kubeconfig live. Empty = per-user default.
    pub data_dir: PathBuf,
    pub store: StoreConfig,
    pub apiserver: ApiServerConfig,
    pub telemetry: TelemetryConfig,
    pub log: LogConfig,
}

/// `[store]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `redb` (durable, default) or `memory` (tests).
    pub engine: StoreEngine,
    /// Events kept for watch resume; older revisions answer 410 Gone.
    pub event_window: usize,
    /// Most writes in one group commit.
    pub max_batch: usize,
    /// Per-watcher buffer (in batches) before a slow watcher is closed.
    pub watch_buffer: usize,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreEngine {
    Redb,
    Memory,
}

/// `[apiserver]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiServerConfig {
    /// Events buffered per API watcher before it is closed with 410 Gone and must relist.
    pub watch_buffer: usize,
    /// Watch-cache events kept for resuming API watches from an older resourceVersion.
    pub watch_cache_window: usize,
}

/// `[telemetry]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Export spans over OTLP. Also turned on by OTEL_EXPORTER_OTLP_ENDPOINT.
    pub otlp_enabled: bool,
    /// OTLP endpoint (base URL; `/v1/traces` is appended for http/protobuf).
    pub otlp_endpoint: String,
    /// `http/protobuf` (default) or `grpc`.
    pub otlp_protocol: OtlpProtocol,
    /// Fraction of new traces sampled, 0.0..=1.0 (parent-based: children follow their root).
    pub sampler_ratio: f64,
    /// Spans kept in memory for `kubeactor trace`.
    pub span_store_capacity: usize,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "grpc")]
    Grpc,
}

/// `[log]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing-subscriber` EnvFilter directive; `RUST_LOG` wins when set.
    pub filter: String,
}
