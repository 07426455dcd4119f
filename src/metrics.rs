//! Prometheus metrics under their upstream names, served at `GET /metrics` as OpenMetrics text (behind the token,
//! as kube-apiserver serves it).
//!
//! One registry for the process, as Kubernetes components register theirs in
//! `k8s.io/component-base/metrics/legacyregistry`: components take their handles from
//! [`global`] when they start. Handles are `Arc`'d atomics; components that update a metric
//! on a hot path (the work queues, the API server's object counts) keep the handle of their
//! label set instead of looking it up each time. In one process several API servers, queues or
//! kubelets add up (tests start many); per-node metrics carry a `node` label, since all
//! kubelets share the process (upstream each kubelet is its own scrape target).
//!
//! | metric | type | labels | where |
//! |---|---|---|---|
//! | `apiserver_request_total` | counter | verb, group, version, resource, subresource, scope, component, code | HTTP API |
//! | `apiserver_request_duration_seconds` | histogram | verb, group, version, resource, subresource, scope, component | HTTP API (not WATCH) |
//! | `apiserver_storage_objects` | gauge | resource | ApiServer |
//! | `etcd_request_duration_seconds` | histogram | operation, type | ApiServer: write submitted → durable |
//! | `etcd_disk_wal_fsync_duration_seconds` | histogram | | store: each group commit's `fdatasync` of the WAL |
//! | `etcd_disk_wal_write_bytes_total` | gauge | | store: bytes appended to the WAL |
//! | `etcd_disk_backend_commit_duration_seconds` | histogram | | store: each redb commit (a checkpoint) |
//! | `workqueue_depth` | gauge | name | controllers' work queues |
//! | `workqueue_adds_total` | counter | name | controllers' work queues |
//! | `scheduler_schedule_attempts_total` | counter | result, profile | kube-scheduler |
//! | `scheduler_scheduling_attempt_duration_seconds` | histogram | result, profile | kube-scheduler |
//! | `kubelet_pod_start_duration_seconds` | histogram | node | kubelet: pod created → Running |
//! | `kubelet_running_pods` | gauge | node | kubelet (runtime's ready sandboxes, at scrape) |

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::api::Kind;

/// A label set: (name, value) pairs in a fixed order.
pub type Labels = Vec<(&'static str, String)>;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The content type of what [`Metrics::encode`] writes: OpenMetrics text (Prometheus
/// scrapes it; counters are `# TYPE x counter` with samples `x_total`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    pub apiserver_request_total: Family<Labels, Counter>,
    pub apiserver_request_duration_seconds: HistogramFamily,
    pub apiserver_storage_objects: Family<Labels, Gauge>,
    pub etcd_request_duration_seconds: HistogramFamily,
    pub etcd_disk_wal_fsync_duration_seconds: Histogram,
    /// A gauge holding a running total, as etcd declares it.
    pub etcd_disk_wal_write_bytes_total: Gauge,
    pub etcd_disk_backend_commit_duration_seconds: Histogram,
    pub workqueue_depth: Family<Labels, Gauge>,
    pub workqueue_adds_total: Family<Labels, Counter>,
    pub scheduler_schedule_attempts_total: Family<Labels, Counter>,
    pub scheduler_scheduling_attempt_duration_seconds: HistogramFamily,
    pub kubelet_pod_start_duration_seconds: HistogramFamily,
    pub kubelet_running_pods: Family<Labels, Gauge>,
    /// `etcd_request_duration_seconds`' series per (operation, kind), looked up once: the
    /// ApiServer observes one per write, and finding it in the family built two label
    /// `String`s and hashed them each time.
    etcd_series: [[OnceLock<Histogram>; Kind::ALL.len()]; ETCD_OPERATIONS.len()],
}

/// The operations [`Metrics::observe_etcd`] keeps a series handle for.
const ETCD_OPERATIONS: [&str; 3] = ["create", "update", "delete"];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// apiserver_request_duration_seconds' buckets (staging/src/k8s.io/apiserver/pkg/endpoints/
/// metrics/metrics.go).
fn request_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
        10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    ])
}

/// etcd_request_duration_seconds' buckets (apiserver/pkg/storage/etcd3/metrics).
fn etcd_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
        10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    ])
}

/// The buckets of etcd's disk histograms, `etcd_disk_wal_fsync_duration_seconds` and
/// `etcd_disk_backend_commit_duration_seconds` (server/storage/wal/metrics.go,
/// server/storage/backend/metrics.go: exponential from 1 ms, factor 2, 14 buckets).
fn etcd_disk_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// scheduler_scheduling_attempt_duration_seconds' buckets (pkg/scheduler/metrics:
/// exponential from 1 ms, factor 2, 15 buckets).
fn scheduling_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// kubelet_pod_start_duration_seconds' buckets (pkg/kubelet/metrics).
fn pod_start_buckets() -> Histogram {
    Histogram::new([
        0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
        300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
    ])
}

impl Metrics {
    /// A fresh registry with every metric (the process uses [`global`]; tests may build
    /// their own).
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            apiserver_request_total: Family::default(),
            apiserver_request_duration_seconds: Family::new_with_constructor(request_buckets),
            apiserver_storage_objects: Family::default(),
            etcd_request_duration_seconds: Family::new_with_constructor(etcd_buckets),
            etcd_disk_wal_fsync_duration_seconds: etcd_disk_buckets(),
            etcd_disk_wal_write_bytes_total: Gauge::default(),
            etcd_disk_backend_commit_duration_seconds: etcd_disk_buckets(),
            workqueue_depth: Family::default(),
            workqueue_adds_total: Family::default(),
            scheduler_schedule_attempts_total: Family::default(),
            scheduler_scheduling_attempt_duration_seconds: Family::new_with_constructor(
                scheduling_buckets,
            ),
            kubelet_pod_start_duration_seconds: Family::new_with_constructor(pod_start_buckets),
            kubelet_running_pods: Family::default(),
            etcd_series: Default::default(),
            registry: Registry::default(),
        };
        // The text encoder appends `_total` to counters: register them without it.
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
            m.apiserver_request_total.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component",
            m.apiserver_request_duration_seconds.clone(),
        );
        registry.register(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind",
            m.apiserver_storage_objects.clone(),
        );
        registry.register(
            "etcd_request_duration_seconds",
            "Etcd request latency in seconds for each operation and object type",
            m.etcd_request_duration_seconds.clone(),
        );
        registry.register(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            m.etcd_disk_wal_fsync_duration_seconds.clone(),
        );
        registry.register(
            "etcd_disk_wal_write_bytes_total",
            "Total number of bytes written in WAL.",
            m.etcd_disk_wal_write_bytes_total.clone(),
        );
        registry.register(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            m.etcd_disk_backend_commit_duration_seconds.clone(),
        );
        registry.register(
            "workqueue_depth",
            "Current depth of workqueue",
            m.workqueue_depth.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            m.workqueue_adds_total.clone(),
        );
        registry.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem",
            m.scheduler_schedule_attempts_total.clone(),
        );
        registry.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            m.scheduler_scheduling_attempt_duration_seconds.clone(),
        );
        registry.register(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
            m.kubelet_pod_start_duration_seconds.clone(),
        );
        registry.register(
            "kubelet_running_pods",
            "Number of pods that have a running pod sandbox",
            m.kubelet_running_pods.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition format of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The value of the unlabeled sample `name` (e.g. a histogram's `…_count` or `…_sum`)
    /// as a scrape would read it; 0 when absent.
    pub fn sample(&self, name: &str) -> f64 {
        parse_text(&self.encode())
            .unwrap_or_default()
            .into_iter()
            .find(|(n, labels, _)| n == name && labels.is_empty())
            .map_or(0.0, |(_, _, v)| v)
    }

    /// `apiserver_storage_objects{resource}` of `kind`, to keep.
    pub fn storage_objects(&self, kind: Kind) -> Gauge {
        self.apiserver_storage_objects
            .get_or_create(&vec![("resource", kind.qualified_resource())])
            .clone()
    }

    /// `workqueue_depth{name}` and `workqueue_adds_total{name}`, to keep.
    pub fn workqueue(&self, name: &str) -> (Gauge, Counter) {
        let labels: Labels = vec![("name", name.to_string())];
        (
            self.workqueue_depth.get_or_create(&labels).clone(),
            self.workqueue_adds_total.get_or_create(&labels).clone(),
        )
    }

    /// One etcd write, from submission until durable.
    pub fn observe_etcd(&self, operation: &'static str, kind: Kind, took: Duration) {
        let family = || {
            self.etcd_request_duration_seconds
                .get_or_create(&vec![
                    ("operation", operation.to_string()),
                    ("type", kind.qualified_resource()),
                ])
                .clone()
        };
        let took = took.as_secs_f64();
        match ETCD_OPERATIONS.iter().position(|op| *op == operation) {
            Some(op) => self.etcd_series[op][kind as usize]
                .get_or_init(family)
                .observe(took),
            None => family().observe(took),
        }
    }

    /// One scheduling attempt: `result` is `scheduled`, `unschedulable` or `error`.
    pub fn observe_schedule_attempt(&self, result: &'static str, profile: &str, took: Duration) {
        let labels: Labels = vec![
            ("result", result.to_string()),
            ("profile", profile.to_string()),
        ];
        self.scheduler_schedule_attempts_total
            .get_or_create(&labels)
            .inc();
        self.scheduler_scheduling_attempt_duration_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// A pod on `node` reached Running `took` after it was created.
    pub fn observe_pod_start(&self, node: &str, took: Duration) {
        self.kubelet_pod_start_duration_seconds
            .get_or_create(&vec![("node", node.to_string())])
            .observe(took.as_secs_f64());
    }

    /// Set `kubelet_running_pods{node}`.
    pub fn set_running_pods(&self, node: &str, n: usize) {
        self.kubelet_running_pods
            .get_or_create(&vec![("node", node.to_string())])
            .set(n as i64);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// kube-apiserver's label values for one request (`MonitorRequest` in
/// staging/src/k8s.io/apiserver/pkg/endpoints/metrics/metrics.go): the verb as upstream
/// reports it (`GET`, `LIST`, `WATCH`, `CREATE`, `UPDATE`, `PATCH`, `APPLY`, `DELETE`,
/// `DELETECOLLECTION`), and the resource's group, version, resource, subresource and scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    pub verb: &'static str,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    /// `resource` (one object), `namespace` (a namespace's collection), `cluster`; empty for
    /// non-resource paths.
    pub scope: &'static str,
}

impl RequestInfo {
    /// For a non-resource path (`/api`, `/openapi/v2`, `/metrics`): the HTTP method as verb.
    pub fn non_resource(method: &str) -> RequestInfo {
        let verb = match method {
            "GET" | "HEAD" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            "PATCH" => "PATCH",
            _ => "OTHER",
        };
        RequestInfo {
            verb,
            group: String::new(),
            version: String::new(),
            resource: String::new(),
            subresource: String::new(),
            scope: "",
        }
    }

    /// The verb of a resource request, as upstream's `CleanVerb` reports it.
    pub fn verb_of(method: &str, named: bool, watch: bool, apply: bool) -> &'static str {
        match (method, named) {
            ("GET", _) if watch => "WATCH",
            ("GET", true) => "GET",
            ("GET", false) => "LIST",
            ("POST", _) => "CREATE",
            ("PUT", _) => "UPDATE",
            ("PATCH", _) if apply => "APPLY",
            ("PATCH", _) => "PATCH",
            ("DELETE", true) => "DELETE",
            ("DELETE", false) => "DELETECOLLECTION",
            _ => "OTHER",
        }
    }

    /// Count (and, except for WATCH, time) one finished request with HTTP status `code`.
    pub fn record(&self, metrics: &Metrics, code: u16, took: Duration) {
        let mut labels: Labels = vec![
            ("verb", self.verb.to_string()),
            ("group", self.group.clone()),
            ("version", self.version.clone()),
            ("resource", self.resource.clone()),
            ("subresource", self.subresource.clone()),
            ("scope", self.scope.to_string()),
            ("component", "apiserver".to_string()),
        ];
        if self.verb != "WATCH" {
            metrics
                .apiserver_request_duration_seconds
                .get_or_create(&labels)
                .observe(took.as_secs_f64());
        }
        labels.push(("code", code.to_string()));
        metrics.apiserver_request_total.get_or_create(&labels).inc();
    }
}

/// One parsed sample: metric name, labels in order, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// A minimal reader of the text exposition format, for tests and tools: every sample as
/// (metric name, labels, value). Comment lines (`# HELP`, `# TYPE`, `# EOF`) are skipped.
/// Fails on a line that is not `name{labels} value` or `name value`.
pub fn parse_text(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| bad("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| bad("value is not a number"))?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').ok_or_else(|| bad("unclosed {"))?;
                (name, parse_labels(body).map_err(|e| bad(&e))?)
            }
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
        if name.is_empty()
            || !name.chars().all(valid)
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(bad("invalid metric name"));
        }
        out.push((name.to_string(), labels, value));
    }
    Ok(out)
}

fn parse_labels(mut body: &str) -> Result<Vec<(String, String)>, String> {
    let mut labels = Vec::new();
    while !body.is_empty() {
        let (name, rest) = body.split_once("=\"").ok_or("label without =\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("dangling escape".into()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((name.trim().to_string(), value));
        body = rest[end + 1..].trim_start_matches(',');
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_under_its_upstream_name() {
        let m = Metrics::new();
        let info = RequestInfo {
            verb: "CREATE",
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            subresource: String::new(),
            scope: "namespace",
        };
        info.record(&m, 201, Duration::from_millis(3));
        m.storage_objects(Kind::Deployment).inc();
        m.observe_etcd("create", Kind::Deployment, Duration::from_millis(1));
        let (depth, adds) = m.workqueue("deployment");
        depth.set(2);
        adds.inc();
        m.observe_schedule_attempt("scheduled", "default-scheduler", Duration::from_millis(2));
        m.observe_pod_start("node-1", Duration::from_secs(2));
        m.set_running_pods("node-1", 3);
        m.etcd_disk_wal_fsync_duration_seconds.observe(0.0004);
        m.etcd_disk_wal_write_bytes_total.inc_by(1500);
        m.etcd_disk_backend_commit_duration_seconds.observe(0.02);
        let text = m.encode();
        let samples = parse_text(&text).unwrap();
        let names: std::collections::BTreeSet<&str> =
            samples.iter().map(|(n, _, _)| n.as_str()).collect();
        for name in [
            "apiserver_request_total",
            "apiserver_request_duration_seconds_bucket",
            "apiserver_request_duration_seconds_count",
            "apiserver_storage_objects",
            "etcd_request_duration_seconds_sum",
            "workqueue_depth",
            "workqueue_adds_total",
            "scheduler_schedule_attempts_total",
            "scheduler_scheduling_attempt_duration_seconds_count",
            "kubelet_pod_start_duration_seconds_count",
            "kubelet_running_pods",
            "etcd_disk_wal_fsync_duration_seconds_bucket",
            "etcd_disk_wal_write_bytes_total",
            "etcd_disk_backend_commit_duration_seconds_sum",
        ] {
            assert!(names.contains(name), "{name} missing from:\n{text}");
        }
        let total = samples
            .iter()
            .find(|(n, _, _)| n == "apiserver_request_total")
            .unwrap();
        assert!(total.1.contains(&("code".to_string(), "201".to_string())));
        assert!(total
            .1
            .contains(&("resource".to_string(), "deployments".to_string())));
        assert_eq!(total.2, 1.0);
        assert_eq!(m.sample("etcd_disk_wal_fsync_duration_seconds_count"), 1.0);
        assert_eq!(m.sample("etcd_disk_wal_write_bytes_total"), 1500.0);
        assert_eq!(
            m.sample("etcd_disk_backend_commit_duration_seconds_sum"),
            0.02
        );
    }

    #[test]
    fn verbs_are_named_as_upstream() {
        assert_eq!(RequestInfo::verb_of("GET", false, true, false), "WATCH");
        assert_eq!(RequestInfo::verb_of("GET", false, false, false), "LIST");
        assert_eq!(RequestInfo::verb_of("GET", true, false, false), "GET");
        assert_eq!(RequestInfo::verb_of("POST", false, false, false), "CREATE");
        assert_eq!(RequestInfo::verb_of("PATCH", true, false, true), "APPLY");
        assert_eq!(
            RequestInfo::verb_of("DELETE", false, false, false),
            "DELETECOLLECTION"
        );
    }

    #[test]
    fn the_parser_reads_samples_and_rejects_garbage() {
        let s = parse_text("# HELP x y\nx_total{a=\"1\",b=\"q\\\"\"} 2\ny 1.5\nz{le=\"+Inf\"} 3\n")
            .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[0].1,
            vec![("a".into(), "1".into()), ("b".into(), "q\"".into())]
        );
        assert!(parse_text("x{a=1} 2").is_err());
        assert!(parse_text("x 2 3 4").is_err());
        assert!(parse_text("9x 2").is_err());
    }
}
