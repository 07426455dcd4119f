//! Configuration: typed structs loaded with the `config` crate.
//!
//! Layers, lowest first: the embedded `config/default.toml`, an optional `--config FILE`,
//! environment variables `KUBEACTOR__SECTION__KEY`, then command-line flags.
//! Every key of every struct here appears in `config/default.toml` with a comment.
//!
//! # Loading
//!
//! [`Config::load`] takes a [`ConfigSources`] (file path, environment as a list, flag
//! overrides as a list), so tests inject each layer instead of touching the process.
//! Each layer is flattened to dotted keys (`store.max_batch`) and checked against the keys of
//! the embedded default file *before* merging: that is how an unknown key is reported with the
//! file, variable or flag it came from. The merged layers are deserialized by the `config`
//! crate, then [`Config::validate`] checks ranges and formats. Every failure is a
//! [`ConfigError`] whose `Display` is one line naming the key and its [`Origin`].
//!
//! # Adding a section
//!
//! Add a struct with `#[serde(deny_unknown_fields)]`, a field on [`Config`], the section with
//! a comment per key in `config/default.toml`, and its range checks in [`Config::validate`].
//! Nothing else: the set of known keys is read from the default file, and the
//! `defaults_load_and_validate` test fails if the file and the structs disagree.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default configuration, compiled in: the lowest layer, and the list of known keys.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variables whose name starts with this set a key: `KUBEACTOR__STORE__MAX_BATCH`
/// is `store.max_batch`, `KUBEACTOR__DATA_DIR` is `data_dir`.
pub const ENV_PREFIX: &str = "KUBEACTOR__";
/// Separates the section from the key (and the prefix from the section) in an env var name.
pub const ENV_SEPARATOR: &str = "__";
/// The standard OpenTelemetry variable: sets `telemetry.otlp_endpoint` and turns
/// `telemetry.otlp_enabled` on. `KUBEACTOR__TELEMETRY__*` variables win over it.
pub const OTEL_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard OpenTelemetry variable: sets `telemetry.otlp_protocol`.
pub const OTEL_PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";

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
    pub controllers: ControllersConfig,
    // --- nodes (issue 5): simulated time, nodes, kubelet, container runtime ---
    pub simulation: crate::clock::SimulationConfig,
    pub nodes: crate::kubelet::config::NodesConfig,
    pub kubelet: crate::kubelet::config::KubeletConfig,
    pub runtime: crate::runtime::RuntimeConfig,
    // --- end nodes ---
    /// `[scheduler]`: kube-scheduler's settings and profiles.
    pub scheduler: crate::scheduler::SchedulerConfig,
    /// `[demo]`: the scenario loop of `kubeactor demo` / `up --demo` (issue 7).
    pub demo: crate::demo::DemoConfig,
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
    // -- the redb engine's write-ahead log (store::wal) --
    /// Size of a WAL segment file, in MiB.
    pub wal_segment_mib: usize,
    /// Longest time a durable write waits in the WAL before it is checkpointed into redb.
    pub checkpoint_interval_ms: usize,
    /// Most writes checkpointed into redb in one transaction.
    pub checkpoint_events: usize,
    // -- end WAL --
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
    // --- the HTTP API (src/apiserver/http) ---
    /// Where the HTTP API listens, `host:port`; port 0 picks a free port.
    pub listen: String,
    /// Serve https with a self-signed certificate kept in the data dir.
    pub tls: bool,
    /// Require `Authorization: Bearer <token>` (the token lives in the data dir).
    pub token_auth: bool,
    /// The Kubernetes minor version `/version` reports (kubectl's launcher picks its binary
    /// by it).
    pub version_minor: u32,
    /// Largest request body accepted; larger bodies are answered 413.
    pub max_request_bytes: usize,
    /// How often a watch that asked for bookmarks gets a BOOKMARK event, in milliseconds.
    pub bookmark_interval_ms: u64,
    /// HTTP worker threads.
    pub http_workers: usize,
    // --- DefaultTolerationSeconds admission (issue 5) ---
    /// `--default-not-ready-toleration-seconds`: how long new pods tolerate a not-ready node.
    pub default_not_ready_toleration_seconds: i64,
    /// `--default-unreachable-toleration-seconds`: how long new pods tolerate an unreachable
    /// node.
    pub default_unreachable_toleration_seconds: i64,
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
    /// `child` (default) or `link`: how a reaction's span relates to its cause (issue 7).
    pub propagation: crate::telemetry::Propagation,
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

/// `[controllers]`: kube-controller-manager.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllersConfig {
    /// Deployments synced at once (`--concurrent-deployment-syncs`).
    pub deployment_workers: usize,
    /// ReplicaSets synced at once (`--concurrent-replicaset-syncs`).
    pub replicaset_workers: usize,
    /// Garbage collector work items processed at once (`--concurrent-gc-syncs`).
    pub gc_workers: usize,
    /// Most pods one ReplicaSet sync creates or deletes (upstream's `BurstReplicas`).
    pub replicaset_burst_replicas: usize,
    /// Events last seen longer ago than this are deleted (`--event-ttl`).
    pub event_ttl_seconds: u64,
    /// How often expired Events are looked for.
    pub event_ttl_sweep_seconds: f64,
    // --- node lifecycle (issue 5): simulated seconds, through `[simulation] speed` ---
    /// How often node health is checked (`--node-monitor-period`, 5 s).
    pub node_monitor_period_seconds: f64,
    /// A node whose Lease and status were not renewed for this long is marked Unknown
    /// (`--node-monitor-grace-period`, 40 s).
    pub node_monitor_grace_period_seconds: f64,
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Where a value came from; named in every [`ConfigError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The embedded `config/default.toml`.
    Defaults,
    /// A file given with `--config`.
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag, as the user typed it (`--set store.max_batch=0`, `--data-dir /x`).
    Flag(String),
}

impl fmt::Display for Origin {
    /// A phrase that follows the key: "in /tmp/x.toml", "from environment variable X".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Defaults => write!(f, "in the built-in config/default.toml"),
            Origin::File(path) => write!(f, "in {}", path.display()),
            Origin::Env(name) => write!(f, "from environment variable {name}"),
            Origin::Flag(flag) => write!(f, "from command-line flag {flag}"),
        }
    }
}

/// A configuration problem. `Display` is always one line starting with `config error:` and
/// naming the key and where its value came from; `kubeactor` prints it and exits with status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key that `config/default.toml` does not define: a typo, or a key of another version.
    #[error("config error: unknown key \"{key}\" {origin}")]
    UnknownKey { key: String, origin: Origin },
    /// A value of the wrong type, or out of range, or not one of the allowed words.
    #[error("config error: {key}: {message} ({origin})")]
    InvalidValue {
        key: String,
        message: String,
        origin: Origin,
    },
    /// The `--config` file could not be read.
    #[error("config error: cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// A file is not valid TOML. `location` is `path:line:column`.
    #[error("config error: {location}: invalid TOML: {message}")]
    Syntax { location: String, message: String },
    /// A `--set` argument that is not `section.key=value`.
    #[error("config error: --set {arg:?}: expected section.key=value")]
    BadOverride { arg: String },
    /// Anything the `config` crate reports without a key (not expected in practice).
    #[error("config error: {message}")]
    Other { message: String },
}

/// One command-line override of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// Dotted key, e.g. `store.max_batch` or `data_dir`.
    pub key: String,
    /// The value as typed; converted to the key's type like an environment variable.
    pub value: String,
    /// The flag as the user typed it, for error messages.
    pub flag: String,
}

impl Override {
    /// An override from `--set key=value`.
    pub fn set(key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        let flag = format!("--set {key}={value}");
        Override { key, value, flag }
    }

    /// An override from a dedicated flag such as `--data-dir` (`flag` without the value).
    pub fn flag(flag: &str, key: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        Override {
            flag: format!("{flag} {value}"),
            key: key.into(),
            value,
        }
    }

    /// Parses the argument of `--set`: `section.key=value` (the value may contain `=`).
    pub fn parse_set(arg: &str) -> Result<Self, ConfigError> {
        match arg.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Override::set(key.trim(), value)),
            _ => Err(ConfigError::BadOverride { arg: arg.into() }),
        }
    }
}

/// The layers above the embedded defaults. Build it by hand in tests; in the binary, use
/// [`ConfigSources::with_process_env`] to capture the real environment.
#[derive(Clone, Debug, Default)]
pub struct ConfigSources {
    /// `--config FILE`: TOML with any subset of the default file's keys.
    pub file: Option<PathBuf>,
    /// Environment variables as (name, value). Names other than `KUBEACTOR__*` and the two
    /// `OTEL_EXPORTER_OTLP_*` variables are ignored.
    pub env: Vec<(String, String)>,
    /// Command-line overrides, applied in order (a later one wins).
    pub overrides: Vec<Override>,
}

impl ConfigSources {
    /// Replaces `env` with the process environment's relevant variables.
    pub fn with_process_env(mut self) -> Self {
        self.env = std::env::vars_os()
            .filter_map(|(name, value)| {
                let name = name.into_string().ok()?;
                let relevant = name.starts_with(ENV_PREFIX)
                    || name == OTEL_ENDPOINT_ENV
                    || name == OTEL_PROTOCOL_ENV;
                relevant.then(|| (name, value.to_string_lossy().into_owned()))
            })
            .collect();
        self
    }
}

/// One value of one layer, before merging.
struct Entry {
    key: String,
    value: config::ValueKind,
    origin: Origin,
}

/// The keys the default file defines: leaves (`store.max_batch`) and sections (`store`).
struct Schema {
    leaves: BTreeMap<String, toml::Value>,
    sections: Vec<String>,
}

impl Schema {
    fn from_defaults() -> Result<Schema, ConfigError> {
        let table = parse_toml(DEFAULT_TOML, "config/default.toml (built-in)")?;
        let mut leaves = BTreeMap::new();
        let mut sections = Vec::new();
        flatten("", &table, &mut |key, value| match value {
            toml::Value::Table(_) => sections.push(key),
            leaf => {
                leaves.insert(key, leaf.clone());
            }
        });
        Ok(Schema { leaves, sections })
    }

    /// Accepts `key` if the default file defines it as a value (or, for an empty table from a
    /// file, as a section); otherwise names the key and where it came from.
    fn check(
        &self,
        key: &str,
        value: &config::ValueKind,
        origin: &Origin,
    ) -> Result<(), ConfigError> {
        let is_table = matches!(value, config::ValueKind::Table(_));
        if self.leaves.contains_key(key) {
            return Ok(());
        }
        if self.sections.iter().any(|s| s == key) {
            if is_table {
                return Ok(());
            }
            return Err(ConfigError::InvalidValue {
                key: key.into(),
                message: format!("is a section; set its keys instead (e.g. {key}.KEY)"),
                origin: origin.clone(),
            });
        }
        Err(ConfigError::UnknownKey {
            key: key.into(),
            origin: origin.clone(),
        })
    }
}

/// Calls `f(dotted_key, value)` for every leaf, and for every table (sections and empty
/// tables), in the table's key order.
fn flatten(prefix: &str, table: &toml::Table, f: &mut dyn FnMut(String, &toml::Value)) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let toml::Value::Table(inner) = value {
            f(key.clone(), value);
            flatten(&key, inner, f);
        } else {
            f(key, value);
        }
    }
}

fn parse_toml(text: &str, name: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("{name}:{line}:{column}")
            }
            None => name.to_string(),
        };
        ConfigError::Syntax {
            location,
            message: one_line(e.message()),
        }
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn toml_to_kind(value: &toml::Value) -> config::ValueKind {
    use config::ValueKind as K;
    match value {
        toml::Value::String(s) => K::String(s.clone()),
        toml::Value::Integer(i) => K::I64(*i),
        toml::Value::Float(f) => K::Float(*f),
        toml::Value::Boolean(b) => K::Boolean(*b),
        toml::Value::Datetime(d) => K::String(d.to_string()),
        toml::Value::Array(items) => K::Array(
            items
                .iter()
                .map(|v| config::Value::new(None, toml_to_kind(v)))
                .collect(),
        ),
        toml::Value::Table(t) => K::Table(
            t.iter()
                .map(|(k, v)| (k.clone(), config::Value::new(None, toml_to_kind(v))))
                .collect(),
        ),
    }
}

/// The leaves of a parsed TOML table as entries (tables only when empty, so that `[stor]`
/// alone is still reported as unknown).
fn toml_entries(table: &toml::Table, origin: &Origin) -> Vec<Entry> {
    let mut entries = Vec::new();
    flatten("", table, &mut |key, value| {
        let keep = match value {
            toml::Value::Table(t) => t.is_empty(),
            _ => true,
        };
        if keep {
            entries.push(Entry {
                key,
                value: toml_to_kind(value),
                origin: origin.clone(),
            });
        }
    });
    entries
}

/// `KUBEACTOR__STORE__MAX_BATCH` → `store.max_batch`; `None` if not a kubeactor variable.
fn env_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    Some(
        rest.split(ENV_SEPARATOR)
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The environment layer: the OTEL variables first, then `KUBEACTOR__*` (which win), each in
/// name order so the result does not depend on the environment's order.
fn env_entries(env: &[(String, String)]) -> Vec<Entry> {
    let mut vars: Vec<&(String, String)> = env.iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let string = |s: &str| config::ValueKind::String(s.to_string());
    let mut entries = Vec::new();
    for (name, value) in &vars {
        let origin = Origin::Env(name.clone());
        if name == OTEL_ENDPOINT_ENV && !value.is_empty() {
            entries.push(Entry {
                key: "telemetry.otlp_endpoint".into(),
                value: string(value),
                origin: origin.clone(),
            });
            entries.push(Entry {
                key: "telemetry.otlp_enabled".into(),
                value: config::ValueKind::Boolean(true),
                origin,
            });
        } else if name == OTEL_PROTOCOL_ENV && !value.is_empty() {
            entries.push(Entry {
                key: "telemetry.otlp_protocol".into(),
                value: string(value),
                origin,
            });
        }
    }
    for (name, value) in &vars {
        if let Some(key) = env_key(name) {
            entries.push(Entry {
                key,
                value: string(value),
                origin: Origin::Env(name.clone()),
            });
        }
    }
    entries
}

/// One merged layer, handed to the `config` crate. Within a layer a later entry wins.
#[derive(Clone, Debug)]
struct Layer(config::Map<String, config::Value>);

impl config::Source for Layer {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

impl Config {
    /// Loads the configuration: embedded defaults, then `sources.file`, `sources.env`,
    /// `sources.overrides`, each layer overriding the one before; then validates it.
    ///
    /// Errors name the key and the layer it came from: an unknown key is reported for the
    /// layer that introduced it, a bad value for the highest layer that set it.
    pub fn load(sources: &ConfigSources) -> Result<Config, ConfigError> {
        let schema = Schema::from_defaults()?;
        let defaults = parse_toml(DEFAULT_TOML, "config/default.toml (built-in)")?;
        let mut layers = vec![toml_entries(&defaults, &Origin::Defaults)];
        if let Some(path) = &sources.file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let table = parse_toml(&text, &path.display().to_string())?;
            layers.push(toml_entries(&table, &Origin::File(path.clone())));
        }
        layers.push(env_entries(&sources.env));
        layers.push(
            sources
                .overrides
                .iter()
                .map(|o| Entry {
                    key: o.key.clone(),
                    value: config::ValueKind::String(o.value.clone()),
                    origin: Origin::Flag(o.flag.clone()),
                })
                .collect(),
        );

        // Which layer set each key last: that is the origin named when its value is bad.
        let mut provenance: HashMap<String, Origin> = HashMap::new();
        let mut builder = config::Config::builder();
        for layer in layers {
            let mut map = config::Map::new();
            for entry in layer {
                schema.check(&entry.key, &entry.value, &entry.origin)?;
                let origin_text = entry.origin.to_string();
                provenance.insert(entry.key.clone(), entry.origin);
                map.insert(
                    entry.key,
                    config::Value::new(Some(&origin_text), entry.value),
                );
            }
            builder = builder.add_source(Layer(map));
        }

        let config: Config = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| from_config_crate(e, &provenance))?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::InvalidValue {
                origin: origin_of(key, &provenance),
                key: key.into(),
                message,
            })?;
        Ok(config)
    }

    /// The embedded defaults alone (no file, no environment, no flags). For tests and tools
    /// that need a valid `Config` to start from.
    pub fn defaults() -> Config {
        // The default file is part of the binary; `defaults_load_and_validate` proves it
        // loads, so this cannot fail at run time.
        Config::load(&ConfigSources::default()).expect("embedded config/default.toml is valid")
    }

    /// Range and format checks that types alone do not express. Returns the first problem as
    /// (dotted key, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        fn positive(key: &'static str, value: usize) -> Result<(), (&'static str, String)> {
            if value == 0 {
                return Err((key, "must be greater than 0, got 0".into()));
            }
            Ok(())
        }
        positive("store.event_window", self.store.event_window)?;
        positive("store.max_batch", self.store.max_batch)?;
        positive("store.watch_buffer", self.store.watch_buffer)?;
        // -- store WAL --
        positive("store.wal_segment_mib", self.store.wal_segment_mib)?;
        positive(
            "store.checkpoint_interval_ms",
            self.store.checkpoint_interval_ms,
        )?;
        positive("store.checkpoint_events", self.store.checkpoint_events)?;
        // -- end store WAL --
        positive("apiserver.watch_buffer", self.apiserver.watch_buffer)?;
        positive(
            "apiserver.watch_cache_window",
            self.apiserver.watch_cache_window,
        )?;
        // --- the HTTP API ---
        if self
            .apiserver
            .listen
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return Err((
                "apiserver.listen",
                format!(
                    "must be an address and port such as 127.0.0.1:6443, got {:?}",
                    self.apiserver.listen
                ),
            ));
        }
        if !(20..=99).contains(&self.apiserver.version_minor) {
            return Err((
                "apiserver.version_minor",
                format!(
                    "must be a Kubernetes minor version such as 32, got {}",
                    self.apiserver.version_minor
                ),
            ));
        }
        if self.apiserver.token_auth && !self.apiserver.tls {
            return Err((
                "apiserver.token_auth",
                "requires apiserver.tls = true: kubectl sends its token only over https \
                 (turn both off for an open, plain-http API)"
                    .into(),
            ));
        }
        positive(
            "apiserver.max_request_bytes",
            self.apiserver.max_request_bytes,
        )?;
        positive(
            "apiserver.bookmark_interval_ms",
            self.apiserver.bookmark_interval_ms as usize,
        )?;
        positive("apiserver.http_workers", self.apiserver.http_workers)?;
        positive(
            "telemetry.span_store_capacity",
            self.telemetry.span_store_capacity,
        )?;

        positive(
            "controllers.deployment_workers",
            self.controllers.deployment_workers,
        )?;
        positive(
            "controllers.replicaset_workers",
            self.controllers.replicaset_workers,
        )?;
        positive("controllers.gc_workers", self.controllers.gc_workers)?;
        positive(
            "controllers.replicaset_burst_replicas",
            self.controllers.replicaset_burst_replicas,
        )?;
        if self.controllers.event_ttl_seconds == 0 {
            return Err((
                "controllers.event_ttl_seconds",
                "must be greater than 0, got 0".into(),
            ));
        }
        let sweep = self.controllers.event_ttl_sweep_seconds;
        if !(sweep.is_finite() && sweep >= 0.001) {
            return Err((
                "controllers.event_ttl_sweep_seconds",
                format!("must be at least 0.001, got {sweep}"),
            ));
        }

        let ratio = self.telemetry.sampler_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err((
                "telemetry.sampler_ratio",
                format!("must be between 0 and 1, got {ratio}"),
            ));
        }
        let endpoint = &self.telemetry.otlp_endpoint;
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        if rest.is_none_or(str::is_empty) {
            return Err((
                "telemetry.otlp_endpoint",
                format!("must be an http:// or https:// URL, got {endpoint:?}"),
            ));
        }
        // --- nodes (issue 5) ---
        for (key, v) in [
            (
                "controllers.node_monitor_period_seconds",
                self.controllers.node_monitor_period_seconds,
            ),
            (
                "controllers.node_monitor_grace_period_seconds",
                self.controllers.node_monitor_grace_period_seconds,
            ),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err((key, format!("must be a positive number, got {v}")));
            }
        }
        for (key, v) in [
            (
                "apiserver.default_not_ready_toleration_seconds",
                self.apiserver.default_not_ready_toleration_seconds,
            ),
            (
                "apiserver.default_unreachable_toleration_seconds",
                self.apiserver.default_unreachable_toleration_seconds,
            ),
        ] {
            if v < 0 {
                return Err((key, format!("must be 0 or more, got {v}")));
            }
        }
        self.simulation.validate()?;
        self.nodes.validate()?;
        self.kubelet.validate()?;
        self.runtime.validate()?;
        // --- end nodes ---
        // ---- [scheduler] ----
        let sched = &self.scheduler;
        if sched.percentage_of_nodes_to_score > 100 {
            return Err((
                "scheduler.percentage_of_nodes_to_score",
                format!(
                    "must be between 0 and 100, got {}",
                    sched.percentage_of_nodes_to_score
                ),
            ));
        }
        positive(
            "scheduler.pod_initial_backoff_seconds",
            sched.pod_initial_backoff_seconds as usize,
        )?;
        if sched.pod_max_backoff_seconds < sched.pod_initial_backoff_seconds {
            return Err((
                "scheduler.pod_max_backoff_seconds",
                format!(
                    "must be at least pod_initial_backoff_seconds ({}), got {}",
                    sched.pod_initial_backoff_seconds, sched.pod_max_backoff_seconds
                ),
            ));
        }
        if let Err(e) = sched.validate() {
            return Err(("scheduler.profiles", e.to_string()));
        }
        // ---- end [scheduler] ----
        // ---- [demo] ----
        self.demo.validate()?;
        // ---- end [demo] ----
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log.filter) {
            return Err((
                "log.filter",
                format!(
                    "not a valid log filter {:?}: {}",
                    self.log.filter,
                    one_line(&e.to_string())
                ),
            ));
        }
        Ok(())
    }

    /// The effective data directory: `data_dir` if set (a leading `~/` is the home
    /// directory), else `$XDG_DATA_HOME/kubeactor`, else `~/.local/share/kubeactor`.
    pub fn data_dir(&self) -> PathBuf {
        resolve_data_dir(
            &self.data_dir,
            std::env::var_os("XDG_DATA_HOME"),
            std::env::var_os("HOME"),
        )
    }
}

/// [`Config::data_dir`] with the environment passed in. A relative `XDG_DATA_HOME` is ignored
/// (the XDG spec says so); with no home at all, `./kubeactor-data`.
pub fn resolve_data_dir(
    configured: &Path,
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> PathBuf {
    let home = home.filter(|h| !h.is_empty()).map(PathBuf::from);
    if !configured.as_os_str().is_empty() {
        if let (Ok(rest), Some(home)) = (configured.strip_prefix("~"), &home) {
            return home.join(rest);
        }
        return configured.to_path_buf();
    }
    if let Some(xdg) = xdg_data_home.map(PathBuf::from).filter(|p| p.is_absolute()) {
        return xdg.join("kubeactor");
    }
    match home {
        Some(home) => home.join(".local/share/kubeactor"),
        None => PathBuf::from("kubeactor-data"),
    }
}

fn origin_of(key: &str, provenance: &HashMap<String, Origin>) -> Origin {
    provenance.get(key).cloned().unwrap_or(Origin::Defaults)
}

/// Turns an error of the `config` crate (which knows the key but not our layers) into ours.
fn from_config_crate(e: config::ConfigError, provenance: &HashMap<String, Origin>) -> ConfigError {
    let (key, message) = match e {
        config::ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => (
            key,
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
        config::ConfigError::At {
            key: Some(key),
            error,
            ..
        } => {
            let message = inner_message(*error);
            let message = enum_message(&key, &message).unwrap_or(message);
            (key, message)
        }
        config::ConfigError::NotFound(key) => (key, "missing".to_string()),
        other => {
            return ConfigError::Other {
                message: one_line(&other.to_string()),
            }
        }
    };
    ConfigError::InvalidValue {
        origin: origin_of(&key, provenance),
        key,
        message: one_line(&message),
    }
}

/// The `config` crate says "enum StoreEngine does not have variant constructor rocks"; serde
/// itself says "unknown variant `rocks`, expected `redb` or `memory`". For keys whose type is
/// an enum, ask serde. (A new enum-typed key needs a line here, or keeps the crate's wording.)
fn enum_message(key: &str, message: &str) -> Option<String> {
    use serde::de::IntoDeserializer;
    fn serde_says<T: serde::de::DeserializeOwned>(word: &str) -> Option<String> {
        let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            word.into_deserializer();
        T::deserialize(de).err().map(|e| e.to_string())
    }
    let word = message
        .split(" does not have variant constructor ")
        .nth(1)?;
    match key {
        "store.engine" => serde_says::<StoreEngine>(word),
        "telemetry.otlp_protocol" => serde_says::<OtlpProtocol>(word),
        "telemetry.propagation" => serde_says::<crate::telemetry::Propagation>(word),
        _ => None,
    }
}

/// The message of an error nested in `At`, without the crate's own " for key … in …" suffix.
fn inner_message(e: config::ConfigError) -> String {
    match e {
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        config::ConfigError::At { error, .. } => inner_message(*error),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut f, contents.as_bytes()).expect("write temp file");
        f
    }

    fn load_err(sources: &ConfigSources) -> String {
        let err = Config::load(sources).expect_err("this configuration must be rejected");
        let text = err.to_string();
        assert_eq!(text.lines().count(), 1, "error must be one line: {text}");
        assert!(text.starts_with("config error: "), "{text}");
        text
    }

    /// The embedded file loads, passes validation, and holds the documented defaults. This is
    /// also the check that `config/default.toml` and the structs agree (missing keys fail to
    /// deserialize, extra keys fail `deny_unknown_fields`).
    #[test]
    fn defaults_load_and_validate() {
        let c = Config::defaults();
        assert_eq!(c.data_dir, PathBuf::new());
        assert_eq!(c.store.engine, StoreEngine::Redb);
        assert_eq!(c.store.event_window, 100_000);
        assert_eq!(c.store.max_batch, 4096);
        assert_eq!(c.store.watch_buffer, 1024);
        assert_eq!(c.apiserver.watch_buffer, 1000);
        assert_eq!(c.apiserver.watch_cache_window, 100_000);
        assert!(!c.telemetry.otlp_enabled);
        assert_eq!(c.telemetry.otlp_endpoint, "http://localhost:4318");
        assert_eq!(c.telemetry.otlp_protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(c.telemetry.sampler_ratio, 1.0);
        assert_eq!(c.telemetry.span_store_capacity, 20_000);
        assert_eq!(c.log.filter, "info");
        assert_eq!(c.controllers.deployment_workers, 5);
        assert_eq!(c.controllers.replicaset_workers, 5);
        assert_eq!(c.controllers.gc_workers, 20);
        assert_eq!(c.controllers.replicaset_burst_replicas, 500);
        assert_eq!(c.controllers.event_ttl_seconds, 3600);
        assert_eq!(c.controllers.event_ttl_sweep_seconds, 60.0);
        assert_eq!(c.scheduler, crate::scheduler::SchedulerConfig::default());
    }

    /// Every key in the default file has a comment line right above it (or above its group).
    #[test]
    fn every_default_key_is_commented() {
        let mut previous = "";
        for line in DEFAULT_TOML.lines() {
            let line = line.trim();
            if line.contains('=') && !line.starts_with('#') {
                assert!(
                    previous.starts_with('#'),
                    "key without a comment in config/default.toml: {line}"
                );
            }
            previous = line;
        }
    }

    #[test]
    fn file_overrides_defaults() {
        let f = file("data_dir = \"/srv/k\"\n[store]\nengine = \"memory\"\nmax_batch = 8\n");
        let c = Config::load(&ConfigSources {
            file: Some(f.path().into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/k"));
        assert_eq!(c.store.engine, StoreEngine::Memory);
        assert_eq!(c.store.max_batch, 8);
        assert_eq!(
            c.store.event_window, 100_000,
            "keys not in the file keep their default"
        );
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let f = file("[store]\nmax_batch = 8\nwatch_buffer = 8\nevent_window = 8\n");
        let sources = ConfigSources {
            file: Some(f.path().into()),
            env: env(&[
                ("KUBEACTOR__STORE__MAX_BATCH", "16"),
                ("KUBEACTOR__STORE__WATCH_BUFFER", "16"),
                ("KUBEACTOR__DATA_DIR", "/from/env"),
                ("KUBEACTOR__TELEMETRY__SAMPLER_RATIO", "0.25"),
                ("KUBEACTOR__TELEMETRY__OTLP_ENABLED", "true"),
                ("PATH", "/usr/bin"),
            ]),
            overrides: vec![Override::set("store.max_batch", "32")],
        };
        let c = Config::load(&sources).unwrap();
        assert_eq!(c.store.event_window, 8, "file only");
        assert_eq!(c.store.watch_buffer, 16, "env beats file");
        assert_eq!(c.store.max_batch, 32, "flag beats env and file");
        assert_eq!(
            c.data_dir,
            PathBuf::from("/from/env"),
            "top-level key from env"
        );
        assert_eq!(c.telemetry.sampler_ratio, 0.25, "strings convert to floats");
        assert!(c.telemetry.otlp_enabled, "strings convert to booleans");
    }

    /// `[[scheduler.profiles]]` in a file replaces the default profile list; keys it leaves
    /// out take their defaults; a profile that does not build is reported on its key.
    #[test]
    fn scheduler_profiles_from_a_file() {
        let f = file(
            "[scheduler]\npercentage_of_nodes_to_score = 50\n\
             [[scheduler.profiles]]\nscheduler_name = \"bin-packing\"\n\
             plugins.disabled = [\"ImageLocality\"]\n\
             plugins.enabled = [{ name = \"NodeResourcesFit\", weight = 5 }]\n\
             [scheduler.profiles.plugin_config.node_resources_fit.scoring_strategy]\n\
             type = \"MostAllocated\"\n",
        );
        let c = Config::load(&ConfigSources {
            file: Some(f.path().into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.scheduler.percentage_of_nodes_to_score, 50);
        assert_eq!(c.scheduler.pod_max_backoff_seconds, 10);
        assert_eq!(c.scheduler.profiles.len(), 1);
        let p = &c.scheduler.profiles[0];
        assert_eq!(p.scheduler_name, "bin-packing");
        assert_eq!(p.plugins.disabled, vec!["ImageLocality".to_string()]);
        assert_eq!(p.plugins.enabled[0].weight, Some(5));
        assert_eq!(
            p.plugin_config.node_resources_fit.scoring_strategy.kind,
            crate::scheduler::profile::ScoringStrategyType::MostAllocated
        );

        let f = file("[[scheduler.profiles]]\nplugins.disabled = [\"NoSuchPlugin\"]\nplugins.enabled = [{ name = \"NoSuchPlugin\" }]\n");
        let text = load_err(&ConfigSources {
            file: Some(f.path().into()),
            ..Default::default()
        });
        assert!(
            text.starts_with("config error: scheduler.profiles: unknown plugin \"NoSuchPlugin\""),
            "{text}"
        );
    }

    #[test]
    fn later_flag_wins_over_earlier_flag() {
        let c = Config::load(&ConfigSources {
            overrides: vec![
                Override::set("store.engine", "memory"),
                Override::flag("--store-engine", "store.engine", "redb"),
            ],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.store.engine, StoreEngine::Redb);
    }

    #[test]
    fn otel_endpoint_enables_export_but_kubeactor_vars_win() {
        let c = Config::load(&ConfigSources {
            env: env(&[
                (OTEL_ENDPOINT_ENV, "http://collector:4318"),
                (OTEL_PROTOCOL_ENV, "grpc"),
            ]),
            ..Default::default()
        })
        .unwrap();
        assert!(c.telemetry.otlp_enabled);
        assert_eq!(c.telemetry.otlp_endpoint, "http://collector:4318");
        assert_eq!(c.telemetry.otlp_protocol, OtlpProtocol::Grpc);

        let c = Config::load(&ConfigSources {
            env: env(&[
                ("KUBEACTOR__TELEMETRY__OTLP_ENDPOINT", "http://mine:4318"),
                (OTEL_ENDPOINT_ENV, "http://collector:4318"),
            ]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.telemetry.otlp_endpoint, "http://mine:4318");
    }

    #[test]
    fn unknown_key_in_file_names_key_and_file() {
        let f = file("[store]\nengin = \"redb\"\n");
        let text = load_err(&ConfigSources {
            file: Some(f.path().into()),
            ..Default::default()
        });
        assert_eq!(
            text,
            format!(
                "config error: unknown key \"store.engin\" in {}",
                f.path().display()
            )
        );
    }

    #[test]
    fn unknown_empty_section_in_file_is_reported() {
        let f = file("[stor]\n");
        let text = load_err(&ConfigSources {
            file: Some(f.path().into()),
            ..Default::default()
        });
        assert!(text.contains("unknown key \"stor\""), "{text}");
    }

    #[test]
    fn section_given_a_value_is_reported() {
        let f = file("store = 5\n");
        let text = load_err(&ConfigSources {
            file: Some(f.path().into()),
            ..Default::default()
        });
        assert!(text.contains("store: is a section"), "{text}");
    }

    #[test]
    fn wrong_type_in_file_names_key_and_file() {
        let f = file("[store]\nmax_batch = \"abc\"\n");
        let text = load_err(&ConfigSources {
            file: Some(f.path().into()),
            ..Default::default()
        });
        assert!(
            text.starts_with("config error: store.max_batch: invalid type: string \"abc\""),
            "{text}"
        );
        assert!(
            text.ends_with(&format!("(in {})", f.path().display())),
            "{text}"
        );
    }

    #[test]
    fn invalid_value_in_file_names_key_and_file() {
        let f = file("[telemetry]\nsampler_ratio = 1.5\n");
        let text = load_err(&ConfigSources {
            file: Some(f.path().into()),
            ..Default::default()
        });
        assert_eq!(
            text,
            format!(
                "config error: telemetry.sampler_ratio: must be between 0 and 1, got 1.5 (in {})",
                f.path().display()
            )
        );
    }

    #[test]
    fn unknown_enum_word_is_reported() {
        let text = load_err(&ConfigSources {
            overrides: vec![Override::flag("--store-engine", "store.engine", "rocksdb")],
            ..Default::default()
        });
        assert!(text.starts_with("config error: store.engine: "), "{text}");
        assert!(text.contains("rocksdb"), "{text}");
        assert!(
            text.ends_with("(from command-line flag --store-engine rocksdb)"),
            "{text}"
        );
    }

    #[test]
    fn validation_failures_name_their_key() {
        // (key, bad value, expected message fragment)
        let cases = [
            ("store.event_window", "0", "must be greater than 0"),
            ("store.max_batch", "0", "must be greater than 0"),
            ("store.watch_buffer", "0", "must be greater than 0"),
            ("apiserver.watch_buffer", "0", "must be greater than 0"),
            (
                "apiserver.watch_cache_window",
                "0",
                "must be greater than 0",
            ),
            (
                "telemetry.span_store_capacity",
                "0",
                "must be greater than 0",
            ),
            ("telemetry.sampler_ratio", "-0.1", "must be between 0 and 1"),
            ("telemetry.sampler_ratio", "NaN", "must be between 0 and 1"),
            (
                "telemetry.otlp_endpoint",
                "localhost:4318",
                "http:// or https://",
            ),
            ("telemetry.otlp_protocol", "http/json", "http/json"),
            ("telemetry.otlp_enabled", "maybe", "maybe"),
            ("log.filter", "info,foo=loud", "not a valid log filter"),
            ("store.max_batch", "-1", "store.max_batch"),
            (
                "scheduler.percentage_of_nodes_to_score",
                "101",
                "must be between 0 and 100",
            ),
            (
                "scheduler.pod_initial_backoff_seconds",
                "0",
                "must be greater than 0",
            ),
            ("scheduler.pod_max_backoff_seconds", "0", "must be at least"),
        ];
        for (key, value, fragment) in cases {
            let text = load_err(&ConfigSources {
                overrides: vec![Override::set(key, value)],
                ..Default::default()
            });
            assert!(
                text.starts_with(&format!("config error: {key}: ")),
                "{key}={value}: {text}"
            );
            assert!(text.contains(fragment), "{key}={value}: {text}");
            assert!(
                text.ends_with(&format!("(from command-line flag --set {key}={value})")),
                "{text}"
            );
        }
    }

    #[test]
    fn wrong_type_in_env_names_key_and_variable() {
        let text = load_err(&ConfigSources {
            env: env(&[("KUBEACTOR__STORE__MAX_BATCH", "abc")]),
            ..Default::default()
        });
        assert!(
            text.starts_with("config error: store.max_batch: invalid type: string \"abc\""),
            "{text}"
        );
        assert!(
            text.ends_with("(from environment variable KUBEACTOR__STORE__MAX_BATCH)"),
            "{text}"
        );
    }

    #[test]
    fn unknown_key_in_env_names_variable() {
        let text = load_err(&ConfigSources {
            env: env(&[("KUBEACTOR__STORE__ENGIN", "redb")]),
            ..Default::default()
        });
        assert_eq!(
            text,
            "config error: unknown key \"store.engin\" from environment variable KUBEACTOR__STORE__ENGIN"
        );
    }

    #[test]
    fn bad_otel_protocol_names_the_otel_variable() {
        let text = load_err(&ConfigSources {
            env: env(&[(OTEL_PROTOCOL_ENV, "http/json")]),
            ..Default::default()
        });
        assert!(
            text.starts_with("config error: telemetry.otlp_protocol: "),
            "{text}"
        );
        assert!(
            text.ends_with(&format!("(from environment variable {OTEL_PROTOCOL_ENV})")),
            "{text}"
        );
    }

    #[test]
    fn unknown_key_in_flag_names_flag() {
        let text = load_err(&ConfigSources {
            overrides: vec![Override::set("store.engin", "redb")],
            ..Default::default()
        });
        assert_eq!(
            text,
            "config error: unknown key \"store.engin\" from command-line flag --set store.engin=redb"
        );
    }

    #[test]
    fn bad_value_is_blamed_on_the_layer_that_set_it_last() {
        let f = file("[store]\nmax_batch = 0\n");
        let ok = Config::load(&ConfigSources {
            file: Some(f.path().into()),
            env: env(&[("KUBEACTOR__STORE__MAX_BATCH", "5")]),
            ..Default::default()
        });
        assert_eq!(
            ok.unwrap().store.max_batch,
            5,
            "a higher layer repairs a bad lower value"
        );

        let f = file("[store]\nmax_batch = 5\n");
        let text = load_err(&ConfigSources {
            file: Some(f.path().into()),
            env: env(&[("KUBEACTOR__STORE__MAX_BATCH", "0")]),
            ..Default::default()
        });
        assert!(
            text.ends_with("(from environment variable KUBEACTOR__STORE__MAX_BATCH)"),
            "{text}"
        );
    }

    #[test]
    fn missing_file_is_one_line() {
        let text = load_err(&ConfigSources {
            file: Some("/nonexistent/kubeactor.toml".into()),
            ..Default::default()
        });
        assert!(
            text.starts_with("config error: cannot read /nonexistent/kubeactor.toml: "),
            "{text}"
        );
    }

    #[test]
    fn toml_syntax_error_is_one_line_with_location() {
        let f = file("[store]\nmax_batch = = 3\n");
        let text = load_err(&ConfigSources {
            file: Some(f.path().into()),
            ..Default::default()
        });
        assert!(
            text.starts_with(&format!("config error: {}:2:", f.path().display())),
            "{text}"
        );
    }

    #[test]
    fn set_flag_parsing() {
        assert_eq!(
            Override::parse_set("log.filter=info,kubeactor=debug").unwrap(),
            Override::set("log.filter", "info,kubeactor=debug")
        );
        assert_eq!(Override::parse_set("data_dir=").unwrap().value, "");
        for bad in ["store.max_batch", "=5", ""] {
            let err = Override::parse_set(bad).unwrap_err().to_string();
            assert!(err.starts_with("config error: --set "), "{err}");
        }
    }

    #[test]
    fn env_names_map_to_dotted_keys() {
        assert_eq!(
            env_key("KUBEACTOR__STORE__MAX_BATCH").as_deref(),
            Some("store.max_batch")
        );
        assert_eq!(env_key("KUBEACTOR__DATA_DIR").as_deref(), Some("data_dir"));
        assert_eq!(env_key("KUBEACTOR_STORE"), None);
        assert_eq!(env_key("OTHER__STORE__MAX_BATCH"), None);
    }

    #[test]
    fn data_dir_resolution() {
        let some = |s: &str| Some(OsString::from(s));
        let empty = Path::new("");
        assert_eq!(
            resolve_data_dir(Path::new("/srv/k"), some("/xdg"), some("/home/u")),
            PathBuf::from("/srv/k")
        );
        assert_eq!(
            resolve_data_dir(Path::new("~/k"), None, some("/home/u")),
            PathBuf::from("/home/u/k")
        );
        assert_eq!(
            resolve_data_dir(empty, some("/xdg"), some("/home/u")),
            PathBuf::from("/xdg/kubeactor")
        );
        assert_eq!(
            resolve_data_dir(empty, some("relative"), some("/home/u")),
            PathBuf::from("/home/u/.local/share/kubeactor"),
            "a relative XDG_DATA_HOME is ignored"
        );
        assert_eq!(
            resolve_data_dir(empty, None, None),
            PathBuf::from("kubeactor-data")
        );
    }
}
