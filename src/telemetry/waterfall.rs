//! `kubeactor trace`: which object a span is about, the wire form of traces served by
//! `GET /kubeactor/v1/traces…`, and the terminal waterfall drawn from it.
//!
//! # How a span names its object
//!
//! Every traced write's API server request span carries `k8s.object.key` and its etcd span
//! `etcd.key`, both the object's storage key (`/registry/deployments/default/web`). A trace
//! *touches* an object when one of its spans carries that key in either attribute
//! ([`touches`]): the request that created it, a controller's status update of it, the
//! scheduler's bind of a pod (a write to the pod's `binding` subresource is a write of the pod).
//!
//! # Rendering
//!
//! [`render_trace`] and [`render_list`] are plain functions from the wire types to text, so
//! the client renders what the daemon sent and tests check the shape without a daemon.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::api::Kind;

use super::{StoredSpan, TraceSummary};

/// The attribute naming the object a request span wrote (its storage key).
pub const OBJECT_KEY_ATTRIBUTE: &str = "k8s.object.key";
/// The attribute naming the key an etcd span wrote.
pub const ETCD_KEY_ATTRIBUTE: &str = "etcd.key";

/// The port of Jaeger's UI (see `jaeger/docker-compose.yml`).
pub const JAEGER_UI_PORT: u16 = 16686;

/// An object named on the command line the way kubectl names one: `deployment/web`,
/// `deploy/web`, `po/web-abc`, `node/node-1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: Kind,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// Parse `<kind>/<name>`; `namespace` applies to namespaced kinds. The kind may be the
    /// singular (`deployment`), the plural (`deployments`), a short name (`deploy`) or the
    /// `kind` itself (`Deployment`), case-insensitively, optionally with its group
    /// (`deployments.apps`), as `kubectl get` accepts.
    pub fn parse(arg: &str, namespace: &str) -> Result<ObjectRef, String> {
        let Some((kind, name)) = arg.split_once('/') else {
            return Err(format!(
                "expected <kind>/<name> (e.g. deployment/web), got {arg:?}"
            ));
        };
        if name.is_empty() || name.contains('/') {
            return Err(format!("{arg:?}: the name must be one path segment"));
        }
        let kind = kind_from_arg(kind).ok_or_else(|| {
            format!("the server doesn't have a resource type {kind:?} (try deployment, replicaset, pod, node)")
        })?;
        Ok(ObjectRef {
            kind,
            namespace: kind.namespaced().then(|| namespace.to_string()),
            name: name.to_string(),
        })
    }

    /// The `object` query parameter of `GET /kubeactor/v1/traces`:
    /// `deployments/default/web`, `nodes/node-1`.
    pub fn to_query(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.kind.plural(), ns, self.name),
            None => format!("{}/{}", self.kind.plural(), self.name),
        }
    }

    /// Parse the `object` query parameter ([`ObjectRef::to_query`]).
    pub fn from_query(q: &str) -> Option<ObjectRef> {
        let mut parts = q.split('/');
        let kind = Kind::from_plural(parts.next()?)?;
        let (namespace, name) = match (kind.namespaced(), parts.next(), parts.next()) {
            (true, Some(ns), Some(name)) => (Some(ns.to_string()), name),
            (false, Some(name), None) => (None, name),
            _ => return None,
        };
        if parts.next().is_some() || name.is_empty() {
            return None;
        }
        Some(ObjectRef {
            kind,
            namespace,
            name: name.to_string(),
        })
    }

    /// The storage key spans name it by.
    pub fn store_key(&self) -> String {
        self.kind.key(self.namespace.as_deref(), &self.name)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.name().to_lowercase(), self.name)?;
        if let Some(ns) = &self.namespace {
            write!(f, " in namespace {ns}")?;
        }
        Ok(())
    }
}

fn kind_from_arg(arg: &str) -> Option<Kind> {
    let arg = arg.to_ascii_lowercase();
    let arg = arg.split('.').next().unwrap_or_default();
    Kind::ALL.into_iter().find(|k| {
        k.plural() == arg || k.name().to_ascii_lowercase() == arg || k.short_names().contains(&arg)
    })
}

/// Whether `span` is about the object stored at `key` (see the module docs).
pub fn touches(span: &StoredSpan, key: &str) -> bool {
    [OBJECT_KEY_ATTRIBUTE, ETCD_KEY_ATTRIBUTE]
        .iter()
        .any(|a| span.attribute(a).is_some_and(|v| v.as_str() == key))
}

/// Jaeger's UI next to an OTLP endpoint: same host, port [`JAEGER_UI_PORT`]
/// (`http://localhost:4318/v1/traces` → `http://localhost:16686`).
pub fn jaeger_ui(otlp_endpoint: &str) -> String {
    let rest = otlp_endpoint
        .split_once("://")
        .map_or(otlp_endpoint, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        // `[::1]:4318` or `host:4318`; a bare IPv6 literal has a `]` after the last `:`.
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    let host = match host {
        "" | "0.0.0.0" | "[::]" => "localhost",
        h => h,
    };
    format!("http://{host}:{JAEGER_UI_PORT}")
}

/// One line of `kubeactor trace --list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceListItem {
    pub trace_id: String,
    /// The root span's name, when the root is (still) in the store.
    pub root: Option<String>,
    pub root_service: Option<String>,
    pub services: Vec<String>,
    pub spans: usize,
    pub start_unix_nano: u64,
    pub duration_nano: u64,
}

impl From<&TraceSummary> for TraceListItem {
    fn from(s: &TraceSummary) -> Self {
        TraceListItem {
            trace_id: s.trace_id.to_string(),
            root: s.root.as_ref().map(|(_, n)| n.to_string()),
            root_service: s.root.as_ref().map(|(svc, _)| svc.to_string()),
            services: s.services.iter().map(|s| s.to_string()).collect(),
            spans: s.span_count,
            start_unix_nano: unix_nanos(s.start_time),
            duration_nano: nanos(s.end_time.duration_since(s.start_time).unwrap_or_default()),
        }
    }
}

/// The body of `GET /kubeactor/v1/traces`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceList {
    pub traces: Vec<TraceListItem>,
    /// Jaeger's UI, when spans are exported over OTLP.
    pub jaeger_ui: Option<String>,
}

/// One span on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireSpan {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub node: Option<String>,
    pub name: String,
    pub start_unix_nano: u64,
    pub duration_nano: u64,
    pub attributes: BTreeMap<String, String>,
    pub events: Vec<WireEvent>,
    /// The status message when the span ended in error.
    pub error: Option<String>,
}

/// A span event on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEvent {
    pub name: String,
    pub unix_nano: u64,
    /// In the order recorded.
    pub attributes: Vec<(String, String)>,
}

impl From<&StoredSpan> for WireSpan {
    fn from(s: &StoredSpan) -> Self {
        WireSpan {
            span_id: s.span_id.to_string(),
            parent_span_id: s.parent_span_id.map(|p| p.to_string()),
            service: s.service_name.to_string(),
            node: s.node.as_ref().map(|n| n.to_string()),
            name: s.name.to_string(),
            start_unix_nano: unix_nanos(s.start_time),
            duration_nano: nanos(s.duration()),
            attributes: s
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), kv.value.as_str().into_owned()))
                .collect(),
            events: s
                .events
                .iter()
                .map(|e| WireEvent {
                    name: e.name.to_string(),
                    unix_nano: unix_nanos(e.timestamp),
                    attributes: e
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.to_string(), kv.value.as_str().into_owned()))
                        .collect(),
                })
                .collect(),
            error: match &s.status {
                opentelemetry::trace::Status::Error { description } => {
                    Some(description.to_string())
                }
                _ => None,
            },
        }
    }
}

/// The body of `GET /kubeactor/v1/traces/{id}` and `…/traces?object=…`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceView {
    pub trace_id: String,
    /// Spans ordered by start time.
    pub spans: Vec<WireSpan>,
    /// This trace in Jaeger's UI, when spans are exported over OTLP.
    pub jaeger_url: Option<String>,
}

impl TraceView {
    /// A view of stored spans (any order); `jaeger_ui` is Jaeger's base URL, if exporting.
    pub fn new(trace_id: String, spans: &[StoredSpan], jaeger_ui: Option<&str>) -> TraceView {
        let mut spans: Vec<WireSpan> = spans.iter().map(WireSpan::from).collect();
        spans.sort_by_key(|s| s.start_unix_nano);
        TraceView {
            jaeger_url: jaeger_ui.map(|ui| format!("{ui}/trace/{trace_id}")),
            trace_id,
            spans,
        }
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    nanos(t.duration_since(UNIX_EPOCH).unwrap_or_default())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// How to draw.
#[derive(Clone, Copy, Debug)]
pub struct RenderOptions {
    /// ANSI colours.
    pub color: bool,
    /// Width of the duration bar, in cells.
    pub bar_width: usize,
    /// The widest the indented span name may be before it is cut.
    pub name_width: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            bar_width: 32,
            name_width: 56,
        }
    }
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";

/// A stable colour per service, as Jaeger gives each service its own.
fn service_color(service: &str) -> &'static str {
    match service {
        "kube-apiserver" => "\x1b[34m",
        "etcd" => "\x1b[36m",
        "kube-controller-manager" => "\x1b[35m",
        "kube-scheduler" => "\x1b[33m",
        "kubelet" => "\x1b[32m",
        "container-runtime" => "\x1b[92m",
        _ => "\x1b[37m",
    }
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, style: &str, text: &str) -> String {
        if self.on {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

/// A duration the way the waterfall shows it: `850µs`, `12.3ms`, `1.20s`.
pub fn format_duration(nanos: u64) -> String {
    let d = nanos as f64;
    if d < 1e6 {
        format!("{:.0}µs", d / 1e3)
    } else if d < 1e8 {
        format!("{:.1}ms", d / 1e6)
    } else if d < 1e9 {
        format!("{:.0}ms", d / 1e6)
    } else {
        format!("{:.2}s", d / 1e9)
    }
}

/// The spans in tree order: each followed by its children (ordered by start), with depth.
/// A span whose parent is not in the view (partial trace) is drawn as a root.
pub fn tree_order(spans: &[WireSpan]) -> Vec<(usize, &WireSpan)> {
    let ids: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.parent_span_id.as_deref().and_then(|p| ids.get(p)) {
            Some(&parent) if parent != i => children.entry(parent).or_default().push(i),
            _ => roots.push(i),
        }
    }
    let by_start = |v: &mut Vec<usize>| v.sort_by_key(|&i| (spans[i].start_unix_nano, i));
    by_start(&mut roots);
    children.values_mut().for_each(by_start);
    let mut out = Vec::with_capacity(spans.len());
    let mut stack: Vec<(usize, usize)> = roots.into_iter().rev().map(|i| (0, i)).collect();
    let mut seen = vec![false; spans.len()];
    while let Some((depth, i)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue; // a cycle in malformed input
        }
        out.push((depth, &spans[i]));
        if let Some(kids) = children.get(&i) {
            stack.extend(kids.iter().rev().map(|&k| (depth + 1, k)));
        }
    }
    out
}

/// The lines drawn under a span: the scheduler's decision (winner, filter verdicts, scores)
/// and errors.
fn details(span: &WireSpan) -> Vec<String> {
    let mut out = Vec::new();
    let attr = |k: &str| span.attributes.get(k).map(String::as_str);
    if span.service == "kube-scheduler" && span.name.starts_with("schedule pod") {
        let counts = match (
            attr("scheduler.evaluated_nodes"),
            attr("scheduler.feasible_nodes"),
        ) {
            (Some(e), Some(f)) => format!(" ({e} nodes evaluated, {f} feasible)"),
            _ => String::new(),
        };
        if let Some(node) = attr("k8s.node.name") {
            out.push(format!("→ selected {node}{counts}"));
        } else if attr("scheduler.result") == Some("unschedulable") {
            out.push(format!("→ unschedulable{counts}"));
        }
    }
    for e in &span.events {
        let get = |k: &str| {
            e.attributes
                .iter()
                .find(|(key, _)| key == k)
                .map_or("", |(_, v)| v.as_str())
        };
        match e.name.as_str() {
            "node rejected" => out.push(format!(
                "✗ {} rejected by {}: {}",
                get("node"),
                get("plugin"),
                get("reason")
            )),
            "node scored" => out.push(format!(
                "#{} {} score {} ({})",
                get("rank"),
                get("node"),
                get("total"),
                get("scores")
            )),
            "unschedulable" => out.push(format!("✗ {}", get("message"))),
            _ => {}
        }
    }
    if let Some(err) = &span.error {
        out.push(format!("error: {err}"));
    }
    out
}

/// Cut `s` to `width` characters, marking the cut with `…`.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The waterfall of one trace: a header (trace id, span count, duration, root, Jaeger link),
/// then one line per span in tree order — offset from the trace's start, duration, service
/// (and node), the indented name, and a bar placed and scaled within the trace's duration —
/// with the scheduler's decisions and errors on lines of their own under their span.
pub fn render_trace(view: &TraceView, opts: &RenderOptions) -> String {
    let paint = Paint { on: opts.color };
    let mut out = String::new();
    let start = view
        .spans
        .iter()
        .map(|s| s.start_unix_nano)
        .min()
        .unwrap_or(0);
    let end = view
        .spans
        .iter()
        .map(|s| s.start_unix_nano.saturating_add(s.duration_nano))
        .max()
        .unwrap_or(start);
    let total = end.saturating_sub(start).max(1);
    let ordered = tree_order(&view.spans);
    let services: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for (_, s) in &ordered {
            if !v.contains(&s.service.as_str()) {
                v.push(&s.service);
            }
        }
        v
    };
    let root = ordered.first().map_or("", |(_, s)| s.name.as_str());
    let _ = writeln!(
        out,
        "{} {}",
        paint.wrap(BOLD, &format!("trace {}", view.trace_id)),
        root
    );
    let _ = writeln!(
        out,
        "{} spans, {} services, {}",
        view.spans.len(),
        services.len(),
        format_duration(end - start)
    );
    if let Some(url) = &view.jaeger_url {
        let _ = writeln!(out, "Jaeger: {url}");
    }
    out.push('\n');
    let service_label = |s: &WireSpan| match &s.node {
        Some(node) => format!("{} {node}", s.service),
        None => s.service.clone(),
    };
    let service_width = ordered
        .iter()
        .map(|(_, s)| service_label(s).chars().count())
        .max()
        .unwrap_or(0)
        .max("SERVICE".len());
    let name_width = ordered
        .iter()
        .map(|(d, s)| 2 * d + s.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp("SPAN".len(), opts.name_width);
    let _ = writeln!(
        out,
        "{}",
        paint.wrap(
            DIM,
            &format!(
                "{:>9} {:>9}  {:<service_width$}  {:<name_width$}  {}",
                "OFFSET", "DURATION", "SERVICE", "SPAN", "TIMELINE"
            )
        )
    );
    for (depth, span) in &ordered {
        let offset = span.start_unix_nano.saturating_sub(start);
        let cells = opts.bar_width as u64;
        let from = (offset * cells / total).min(cells.saturating_sub(1));
        let len = (span.duration_nano * cells)
            .div_ceil(total)
            .clamp(1, cells - from);
        let bar: String = (0..cells)
            .map(|c| {
                if c >= from && c < from + len {
                    '█'
                } else {
                    '·'
                }
            })
            .collect();
        let color = service_color(&span.service);
        let name = fit(&format!("{}{}", "  ".repeat(*depth), span.name), name_width);
        let _ = writeln!(
            out,
            "{:>9} {:>9}  {}  {:<name_width$}  {}",
            format_duration(offset),
            format_duration(span.duration_nano),
            paint.wrap(color, &format!("{:<service_width$}", service_label(span))),
            name,
            paint.wrap(if span.error.is_some() { RED } else { color }, &bar),
        );
        for line in details(span) {
            let indent = "  ".repeat(depth + 1);
            let _ = writeln!(
                out,
                "{:>9} {:>9}  {:<service_width$}  {}",
                "",
                "",
                "",
                paint.wrap(DIM, &format!("{indent}{line}"))
            );
        }
    }
    out
}

/// `kubeactor trace --list`: one line per trace, most recent first.
pub fn render_list(list: &TraceList, opts: &RenderOptions) -> String {
    let paint = Paint { on: opts.color };
    let mut out = String::new();
    if list.traces.is_empty() {
        out.push_str("no traces in the span store yet\n");
    } else {
        let _ = writeln!(
            out,
            "{}",
            paint.wrap(
                DIM,
                &format!(
                    "{:<32}  {:<12}  {:>5}  {:>9}  ROOT",
                    "TRACE ID", "STARTED", "SPANS", "DURATION"
                )
            )
        );
    }
    for t in &list.traces {
        let started = jiff::Timestamp::from_nanosecond(t.start_unix_nano as i128)
            .map(|ts| {
                let ms = (t.start_unix_nano / 1_000_000) % 1000;
                format!("{}.{ms:03}", ts.strftime("%H:%M:%S"))
            })
            .unwrap_or_default();
        let root = match (&t.root_service, &t.root) {
            (Some(svc), Some(name)) => format!("{}: {name}", paint.wrap(service_color(svc), svc)),
            _ => format!("(root not in store; services: {})", t.services.join(", ")),
        };
        let _ = writeln!(
            out,
            "{:<32}  {:<12}  {:>5}  {:>9}  {root}",
            t.trace_id,
            started,
            t.spans,
            format_duration(t.duration_nano)
        );
    }
    match &list.jaeger_ui {
        Some(ui) => {
            let _ = writeln!(out, "\nJaeger: {ui}/trace/<TRACE ID>");
        }
        None => {
            let _ = writeln!(
                out,
                "\nshow one: kubeactor trace <kind>/<name> [-n NAMESPACE]"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        id: &str,
        parent: Option<&str>,
        service: &str,
        name: &str,
        at: u64,
        dur: u64,
    ) -> WireSpan {
        WireSpan {
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            service: service.into(),
            node: None,
            name: name.into(),
            start_unix_nano: at * 1_000_000,
            duration_nano: dur * 1_000_000,
            attributes: BTreeMap::new(),
            events: vec![],
            error: None,
        }
    }

    fn ev(name: &str, attrs: &[(&str, &str)]) -> WireEvent {
        WireEvent {
            name: name.into(),
            unix_nano: 0,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A small deployment chain, spans deliberately out of order.
    fn chain() -> TraceView {
        let mut schedule = span(
            "s",
            Some("p"),
            "kube-scheduler",
            "schedule pod default/web-1",
            40,
            10,
        );
        schedule
            .attributes
            .insert("k8s.node.name".into(), "node-2".into());
        schedule
            .attributes
            .insert("scheduler.evaluated_nodes".into(), "2".into());
        schedule
            .attributes
            .insert("scheduler.feasible_nodes".into(), "1".into());
        let mut filter = span("f", Some("s"), "kube-scheduler", "filter", 41, 2);
        filter.events.push(ev(
            "node rejected",
            &[
                ("node", "node-1"),
                ("plugin", "TaintToleration"),
                ("reason", "untolerated taint"),
            ],
        ));
        let mut score = span("sc", Some("s"), "kube-scheduler", "score", 44, 2);
        score.events.push(ev(
            "node scored",
            &[
                ("rank", "1"),
                ("node", "node-2"),
                ("scores", "NodeResourcesFit=90"),
                ("total", "90"),
            ],
        ));
        let mut start = span(
            "c",
            Some("k"),
            "container-runtime",
            "StartContainer nginx",
            80,
            20,
        );
        start.node = Some("node-2".into());
        let mut sync = span("k", Some("s"), "kubelet", "sync pod default/web-1", 60, 40);
        sync.node = Some("node-2".into());
        TraceView {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            jaeger_url: Some(
                "http://localhost:16686/trace/0af7651916cd43dd8448eb211c80319c".into(),
            ),
            spans: vec![
                start,
                sync,
                score,
                filter,
                schedule,
                span(
                    "e",
                    Some("r"),
                    "etcd",
                    "put /registry/deployments/default/web",
                    1,
                    2,
                ),
                span("p", Some("r"), "kube-apiserver", "create pods/web-1", 30, 5),
                span(
                    "r",
                    None,
                    "kube-apiserver",
                    "kubectl create deployments/web",
                    0,
                    100,
                ),
            ],
        }
    }

    #[test]
    fn kubectl_style_kinds_are_accepted() {
        for arg in [
            "deployment/web",
            "deploy/web",
            "deployments/web",
            "Deployment/web",
            "deployments.apps/web",
        ] {
            let o = ObjectRef::parse(arg, "default").unwrap();
            assert_eq!(o.store_key(), "/registry/deployments/default/web", "{arg}");
            assert_eq!(o.to_query(), "deployments/default/web");
            assert_eq!(ObjectRef::from_query(&o.to_query()), Some(o));
        }
        assert_eq!(
            ObjectRef::parse("po/a", "x").unwrap().store_key(),
            "/registry/pods/x/a"
        );
        assert_eq!(
            ObjectRef::parse("rs/a", "x").unwrap().kind,
            Kind::ReplicaSet
        );
        let node = ObjectRef::parse("node/node-1", "default").unwrap();
        assert_eq!(node.store_key(), "/registry/nodes/node-1");
        assert_eq!(ObjectRef::from_query("nodes/node-1"), Some(node));
        assert!(ObjectRef::parse("web", "default").is_err());
        assert!(ObjectRef::parse("gizmo/web", "default")
            .unwrap_err()
            .contains("gizmo"));
        assert!(ObjectRef::from_query("deployments/web").is_none());
    }

    #[test]
    fn jaeger_ui_is_beside_the_collector() {
        assert_eq!(
            jaeger_ui("http://localhost:4318/v1/traces"),
            "http://localhost:16686"
        );
        assert_eq!(jaeger_ui("http://10.0.0.5:4317"), "http://10.0.0.5:16686");
        assert_eq!(jaeger_ui("http://[::1]:4318"), "http://[::1]:16686");
        assert_eq!(jaeger_ui("jaeger"), "http://jaeger:16686");
    }

    #[test]
    fn spans_are_drawn_as_a_tree_in_causal_order() {
        let view = chain();
        let order: Vec<(usize, &str)> = tree_order(&view.spans)
            .into_iter()
            .map(|(d, s)| (d, s.name.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (0, "kubectl create deployments/web"),
                (1, "put /registry/deployments/default/web"),
                (1, "create pods/web-1"),
                (2, "schedule pod default/web-1"),
                (3, "filter"),
                (3, "score"),
                (3, "sync pod default/web-1"),
                (4, "StartContainer nginx"),
            ]
        );
    }

    #[test]
    fn the_waterfall_has_its_shape_without_colour() {
        let text = render_trace(&chain(), &RenderOptions::default());
        assert!(!text.contains('\x1b'), "no ANSI codes when colour is off");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0]
            .starts_with("trace 0af7651916cd43dd8448eb211c80319c kubectl create deployments/web"));
        assert_eq!(lines[1], "8 spans, 5 services, 100ms");
        assert_eq!(
            lines[2],
            "Jaeger: http://localhost:16686/trace/0af7651916cd43dd8448eb211c80319c"
        );
        assert!(lines[4].contains("OFFSET") && lines[4].contains("TIMELINE"));
        let root = lines[5];
        assert!(
            root.contains("kube-apiserver") && root.contains(" kubectl create"),
            "{root}"
        );
        assert!(
            root.ends_with(&"█".repeat(32)),
            "the root spans the whole bar: {root}"
        );
        let etcd = lines[6];
        assert!(
            etcd.contains("etcd") && etcd.contains("   put /registry"),
            "indented: {etcd}"
        );
        let sync = lines.iter().find(|l| l.contains("sync pod")).unwrap();
        assert!(
            sync.contains("kubelet node-2"),
            "node beside the service: {sync}"
        );
        assert!(
            sync.contains("60.0ms") && sync.contains("40.0ms"),
            "offset, duration: {sync}"
        );
        let bar: String = sync
            .chars()
            .rev()
            .take(32)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        assert_eq!(
            bar,
            format!("{}{}", "·".repeat(19), "█".repeat(13)),
            "placed and scaled"
        );
        // The scheduler's decision, under the spans that made it.
        let after = |name: &str| {
            let i = lines.iter().position(|l| l.contains(name)).unwrap();
            lines[i + 1].trim()
        };
        assert_eq!(
            after("schedule pod"),
            "→ selected node-2 (2 nodes evaluated, 1 feasible)"
        );
        assert_eq!(
            after("filter"),
            "✗ node-1 rejected by TaintToleration: untolerated taint"
        );
        assert_eq!(after("score"), "#1 node-2 score 90 (NodeResourcesFit=90)");
    }

    #[test]
    fn colour_is_ansi_and_only_when_asked() {
        let opts = RenderOptions {
            color: true,
            ..Default::default()
        };
        let text = render_trace(&chain(), &opts);
        assert!(
            text.contains("\x1b[34mkube-apiserver"),
            "services in colour"
        );
        assert!(text.contains(RESET));
    }

    #[test]
    fn a_partial_trace_draws_orphans_as_roots() {
        let view = TraceView {
            trace_id: "1".into(),
            spans: vec![span("b", Some("gone"), "etcd", "put x", 5, 1)],
            jaeger_url: None,
        };
        let text = render_trace(&view, &RenderOptions::default());
        assert!(text.contains("put x") && !text.contains("Jaeger"), "{text}");
    }

    #[test]
    fn the_list_has_one_line_per_trace() {
        let list = TraceList {
            traces: vec![
                TraceListItem {
                    trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
                    root: Some("kubectl create deployments/web".into()),
                    root_service: Some("kube-apiserver".into()),
                    services: vec!["kube-apiserver".into(), "etcd".into()],
                    spans: 42,
                    start_unix_nano: 1_700_000_000_000_000_000,
                    duration_nano: 1_500_000_000,
                },
                TraceListItem {
                    trace_id: "1".into(),
                    root: None,
                    root_service: None,
                    services: vec!["etcd".into()],
                    spans: 1,
                    start_unix_nano: 0,
                    duration_nano: 1_000,
                },
            ],
            jaeger_ui: None,
        };
        let text = render_list(&list, &RenderOptions::default());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TRACE ID"));
        assert!(lines[1].contains("0af7651916cd43dd8448eb211c80319c"));
        assert!(lines[1].contains("42") && lines[1].contains("1.50s"));
        assert!(lines[1].ends_with("kube-apiserver: kubectl create deployments/web"));
        assert!(lines[2].contains("root not in store"));
        assert!(text.contains("kubeactor trace <kind>/<name>"));
    }
}
