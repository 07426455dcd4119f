//! An in-process OTLP trace receiver for tests: what Jaeger would receive, on 127.0.0.1:0.
//!
//! * [`OtlpReceiver::http`] — OTLP/HTTP (`POST /v1/traces`, protobuf body) on a tiny
//!   `std::net` HTTP/1.1 server; no runtime, works from any test.
//! * [`OtlpReceiver::grpc`] — OTLP/gRPC (tonic `TraceServiceServer`) on its own small tokio
//!   runtime.
//!
//! Both collect every span with its resource's `service.name` into the same list. Point the
//! exporter at [`OtlpReceiver::endpoint`] (the base URL, as `[telemetry] otlp_endpoint` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` take it), then wait with [`OtlpReceiver::wait_for_spans`]
//! or [`OtlpReceiver::wait_for_span`] (polling with a deadline, never a bare sleep) and check
//! the trace's shape with the `assert_*` helpers.
//!
//! [`BlackHole`] and [`closed_port`] give endpoints that never answer / refuse, for
//! shutdown-time tests.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;

/// How often the `wait_*` helpers look again.
const POLL: Duration = Duration::from_millis(10);

/// One received span. Ids are lowercase hex, as `TraceId`/`SpanId` display them.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service_name: String,
    pub resource: HashMap<String, String>,
    pub trace_id: String,
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    /// Attribute values rendered as strings (`"42"`, `"true"`, `"text"`).
    pub attributes: HashMap<String, String>,
    pub event_names: Vec<String>,
    /// `(trace_id, span_id)` of each link.
    pub links: Vec<(String, String)>,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Collected {
    spans: Mutex<Vec<ReceivedSpan>>,
    requests: AtomicUsize,
}

impl Collected {
    fn add(&self, req: ExportTraceServiceRequest) {
        let mut received = Vec::new();
        for rs in req.resource_spans {
            let resource: HashMap<String, String> = rs
                .resource
                .map(|r| r.attributes.iter().map(kv_to_pair).collect())
                .unwrap_or_default();
            let service_name = resource.get("service.name").cloned().unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    received.push(ReceivedSpan {
                        service_name: service_name.clone(),
                        resource: resource.clone(),
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: (!s.parent_span_id.is_empty()
                            && s.parent_span_id.iter().any(|&b| b != 0))
                        .then(|| hex(&s.parent_span_id)),
                        name: s.name,
                        attributes: s.attributes.iter().map(kv_to_pair).collect(),
                        event_names: s.events.into_iter().map(|e| e.name).collect(),
                        links: s
                            .links
                            .iter()
                            .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                            .collect(),
                    });
                }
            }
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.spans.lock().unwrap().extend(received);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn kv_to_pair(kv: &KeyValue) -> (String, String) {
    (kv.key.clone(), any_to_string(kv.value.as_ref()))
}

fn any_to_string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// A running receiver; stops when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    collected: Arc<Collected>,
    stop: Stop,
}

enum Stop {
    Http(Arc<AtomicBool>),
    Grpc {
        _shutdown: tokio::sync::oneshot::Sender<()>,
        runtime: Option<tokio::runtime::Runtime>,
    },
}

impl OtlpReceiver {
    /// An OTLP/HTTP receiver (`POST /v1/traces`, `application/x-protobuf`).
    pub fn http() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let collected = Arc::new(Collected::default());
        let stopped = Arc::new(AtomicBool::new(false));
        let (c, s) = (collected.clone(), stopped.clone());
        std::thread::Builder::new()
            .name("otlp-http-receiver".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let c = c.clone();
                    std::thread::spawn(move || serve_http(conn, &c));
                }
            })
            .unwrap();
        OtlpReceiver {
            addr,
            collected,
            stop: Stop::Http(stopped),
        }
    }

    /// An OTLP/gRPC receiver (tonic), on its own runtime.
    pub fn grpc() -> OtlpReceiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let collected = Arc::new(Collected::default());
        let incoming = {
            let _entered = runtime.enter();
            tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
                .expect("bind 127.0.0.1:0")
        };
        let addr = incoming.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let service = TraceServiceServer::new(GrpcCollector(collected.clone()));
        runtime.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
        });
        OtlpReceiver {
            addr,
            collected,
            stop: Stop::Grpc {
                _shutdown: tx,
                runtime: Some(runtime),
            },
        }
    }

    /// The base URL to export to, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Export requests received so far.
    pub fn requests(&self) -> usize {
        self.collected.requests.load(Ordering::SeqCst)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.collected.spans.lock().unwrap().clone()
    }

    /// Wait until `done(spans)` holds, or panic after `timeout` showing what did arrive.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; received {} span(s):\n{}",
                    spans.len(),
                    describe(&spans)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait for at least `n` spans.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        self.wait_until(timeout, &format!("{n} span(s)"), |s| s.len() >= n)
    }

    /// Wait for a span named `name` and return it.
    pub fn wait_for_span(&self, name: &str, timeout: Duration) -> ReceivedSpan {
        let spans = self.wait_until(timeout, &format!("a span named {name:?}"), |s| {
            s.iter().any(|s| s.name == name)
        });
        spans.into_iter().find(|s| s.name == name).unwrap()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        match &mut self.stop {
            Stop::Http(stopped) => {
                stopped.store(true, Ordering::SeqCst);
                // Wake the accept loop so it sees the flag.
                let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
            }
            Stop::Grpc { runtime, .. } => {
                if let Some(rt) = runtime.take() {
                    rt.shutdown_background();
                }
            }
        }
    }
}

struct GrpcCollector(Arc<Collected>);

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serve one keep-alive HTTP/1.1 connection: each `POST …/v1/traces` is decoded and answered
/// with an empty `ExportTraceServiceResponse`.
fn serve_http(conn: TcpStream, collected: &Collected) {
    let mut writer = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut content_length = 0usize;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    content_length = v.parse().unwrap_or(0);
                } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        let body = if chunked {
            match read_chunked(&mut reader) {
                Some(b) => b,
                None => return,
            }
        } else {
            let mut body = vec![0; content_length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            body
        };
        let is_traces = request_line.starts_with("POST ")
            && request_line
                .split_whitespace()
                .nth(1)
                .is_some_and(|path| path.ends_with("/v1/traces"));
        let (status, payload) = if !is_traces {
            ("404 Not Found", Vec::new())
        } else {
            match ExportTraceServiceRequest::decode(body.as_slice()) {
                Ok(req) => {
                    collected.add(req);
                    (
                        "200 OK",
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
                Err(_) => ("400 Bad Request", Vec::new()),
            }
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
            payload.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&payload).is_err() {
            return;
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0; size + 2]; // data + CRLF
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// A TCP endpoint that completes connections (the kernel's backlog does) but never reads or
/// answers: the collector that hangs.
pub struct BlackHole {
    _listener: TcpListener,
    addr: SocketAddr,
}

impl BlackHole {
    pub fn new() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        BlackHole {
            _listener: listener,
            addr,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The base URL of a local port nothing listens on (bound, then released).
pub fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

// ---- assertions over a received trace -------------------------------------------------------

/// One line per span, for failure messages.
pub fn describe(spans: &[ReceivedSpan]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "  [{}] {:?} trace={} span={} parent={}",
                s.service_name,
                s.name,
                s.trace_id,
                s.span_id,
                s.parent_span_id.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The span named `name`; panics if there is none or more than one.
pub fn span_named<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one span named {name:?}:\n{}",
        describe(spans)
    );
    found[0]
}

/// The distinct service names.
pub fn services(spans: &[ReceivedSpan]) -> BTreeSet<String> {
    spans.iter().map(|s| s.service_name.clone()).collect()
}

/// All spans share one trace id; returns it.
pub fn assert_one_trace(spans: &[ReceivedSpan]) -> String {
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        1,
        "expected one trace id, got {ids:?}:\n{}",
        describe(spans)
    );
    ids.into_iter().next().unwrap().to_owned()
}

/// Exactly one span has no parent; returns it.
pub fn assert_one_root(spans: &[ReceivedSpan]) -> &ReceivedSpan {
    let roots: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "expected exactly one root span:\n{}",
        describe(spans)
    );
    roots[0]
}

/// Every parent id names a span in `spans`.
pub fn assert_no_dangling_parents(spans: &[ReceivedSpan]) {
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let dangling: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| {
            s.parent_span_id
                .as_deref()
                .is_some_and(|p| !ids.contains(p))
        })
        .collect();
    assert!(
        dangling.is_empty(),
        "spans whose parent was not received: {:?}\nall spans:\n{}",
        dangling.iter().map(|s| &s.name).collect::<Vec<_>>(),
        describe(spans)
    );
}

/// `child`'s parent is `parent`.
pub fn assert_parent(spans: &[ReceivedSpan], parent: &ReceivedSpan, child: &ReceivedSpan) {
    assert_eq!(
        child.parent_span_id.as_deref(),
        Some(parent.span_id.as_str()),
        "{:?} should be the parent of {:?}:\n{}",
        parent.name,
        child.name,
        describe(spans)
    );
}

/// Whether `ancestor` is on `descendant`'s parent chain (a span is not its own ancestor).
pub fn is_ancestor(
    spans: &[ReceivedSpan],
    ancestor: &ReceivedSpan,
    descendant: &ReceivedSpan,
) -> bool {
    let by_id: HashMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut current = descendant;
    // Bounded by the span count, in case of a (broken) cycle.
    for _ in 0..spans.len() {
        let Some(parent_id) = current.parent_span_id.as_deref() else {
            return false;
        };
        if parent_id == ancestor.span_id {
            return true;
        }
        match by_id.get(parent_id) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

/// The span named `ancestor` is on the parent chain of the span named `descendant`.
pub fn assert_ancestor(spans: &[ReceivedSpan], ancestor: &str, descendant: &str) {
    let (a, d) = (span_named(spans, ancestor), span_named(spans, descendant));
    assert!(
        is_ancestor(spans, a, d),
        "{ancestor:?} should be an ancestor of {descendant:?}:\n{}",
        describe(spans)
    );
}
