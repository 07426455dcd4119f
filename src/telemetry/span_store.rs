//! The in-memory span store: the last N finished spans of every component, so `kubeactor
//! trace` can show a chain of events without Jaeger.
//!
//! Every tracer provider registers its own [`SpanStoreProcessor`]; the provider tells it its
//! resource once (`set_resource`), so each stored span carries its component's service name
//! without a lookup per span. All processors feed one shared [`SpanStore`].
//!
//! Hot path: `on_end` moves the span's data (the SDK hands it over by value) into a
//! [`StoredSpan`] and pushes it onto a mutex'd ring buffer — one lock, no copies of
//! attributes, events or links, and the ring's memory is allocated once.
//! Only sampled spans reach it: the sampler applies here exactly as it does for export.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Event, Link, SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use parking_lot::Mutex;

/// One finished span, as the span store keeps it.
#[derive(Clone, Debug)]
pub struct StoredSpan {
    /// The component's `service.name` (e.g. `kube-apiserver`).
    pub service_name: Arc<str>,
    /// `k8s.node.name` of the provider, for per-node components (kubelet, container-runtime).
    pub node: Option<Arc<str>>,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub start_time: SystemTime,
    pub end_time: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    pub status: Status,
}

impl StoredSpan {
    pub fn duration(&self) -> Duration {
        self.end_time
            .duration_since(self.start_time)
            .unwrap_or_default()
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_none()
    }

    /// The value of attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&opentelemetry::Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }
}

/// A one-line summary of a trace in the store, for listing recent traces.
#[derive(Clone, Debug)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    /// The root span's service and name, when the root is (still) in the store.
    pub root: Option<(Arc<str>, Cow<'static, str>)>,
    /// Services that took part, in order of first appearance.
    pub services: Vec<Arc<str>>,
    pub span_count: usize,
    /// Earliest start and latest end among the stored spans of the trace.
    pub start_time: SystemTime,
    pub end_time: SystemTime,
}

/// The bounded store of finished spans, shared by all providers. Cheap to clone.
///
/// When full, the oldest span is dropped for each new one; a trace may then be partial
/// (its early spans gone), which the query helpers tolerate.
#[derive(Clone, Debug)]
pub struct SpanStore {
    inner: Arc<Mutex<VecDeque<StoredSpan>>>,
    capacity: usize,
}

impl SpanStore {
    /// A store that keeps the last `capacity` spans (0 keeps nothing).
    pub fn new(capacity: usize) -> SpanStore {
        SpanStore {
            inner: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add a finished span, evicting the oldest when full.
    pub fn push(&self, span: StoredSpan) {
        if self.capacity == 0 {
            return;
        }
        let mut ring = self.inner.lock();
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(span);
    }

    /// All stored spans, oldest finished first.
    pub fn spans(&self) -> Vec<StoredSpan> {
        self.inner.lock().iter().cloned().collect()
    }

    /// Forget every stored span.
    pub fn clear(&self) {
        self.inner.lock().clear();
    }

    /// The spans of one trace, ordered by start time.
    pub fn trace(&self, trace_id: TraceId) -> Vec<StoredSpan> {
        let mut spans: Vec<StoredSpan> = self
            .inner
            .lock()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        spans.sort_by_key(|s| s.start_time);
        spans
    }

    /// The trace ids having at least one span that matches `pred`, most recently finished
    /// first.
    pub fn find_traces(&self, pred: impl Fn(&StoredSpan) -> bool) -> Vec<TraceId> {
        let ring = self.inner.lock();
        let mut seen = HashSet::new();
        // Newest first: walking the ring backwards yields traces by their latest span.
        ring.iter()
            .rev()
            .filter(|s| pred(s))
            .filter_map(|s| seen.insert(s.trace_id).then_some(s.trace_id))
            .collect()
    }

    /// Up to `limit` traces, most recently finished first.
    pub fn traces_recent(&self, limit: usize) -> Vec<TraceSummary> {
        let ring = self.inner.lock();
        let mut order: Vec<TraceId> = Vec::new();
        let mut summaries: HashMap<TraceId, TraceSummary> = HashMap::new();
        for s in ring.iter().rev() {
            if let Some(sum) = summaries.get_mut(&s.trace_id) {
                sum.span_count += 1;
                sum.start_time = sum.start_time.min(s.start_time);
                sum.end_time = sum.end_time.max(s.end_time);
                if !sum.services.contains(&s.service_name) {
                    sum.services.push(s.service_name.clone());
                }
                if s.is_root() {
                    sum.root = Some((s.service_name.clone(), s.name.clone()));
                }
            } else if order.len() < limit {
                order.push(s.trace_id);
                summaries.insert(
                    s.trace_id,
                    TraceSummary {
                        trace_id: s.trace_id,
                        root: s
                            .is_root()
                            .then(|| (s.service_name.clone(), s.name.clone())),
                        services: vec![s.service_name.clone()],
                        span_count: 1,
                        start_time: s.start_time,
                        end_time: s.end_time,
                    },
                );
            }
        }
        drop(ring);
        order
            .into_iter()
            .filter_map(|id| summaries.remove(&id))
            .map(|mut sum| {
                // Walking newest-first collected services backwards; show the chain's order.
                sum.services.reverse();
                sum
            })
            .collect()
    }

    /// A processor for one provider that records into this store.
    pub(crate) fn processor(&self) -> SpanStoreProcessor {
        SpanStoreProcessor {
            store: self.clone(),
            service_name: Arc::from("unknown_service"),
            node: None,
        }
    }
}

/// The `SpanProcessor` that feeds a [`SpanStore`]; one per provider, so it knows its
/// provider's service name.
#[derive(Debug)]
pub(crate) struct SpanStoreProcessor {
    store: SpanStore,
    service_name: Arc<str>,
    node: Option<Arc<str>>,
}

const SERVICE_NAME: &str = "service.name";
pub(crate) const K8S_NODE_NAME: &str = "k8s.node.name";

impl SpanProcessor for SpanStoreProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let parent = span.parent_span_id;
        self.store.push(StoredSpan {
            service_name: self.service_name.clone(),
            node: self.node.clone(),
            trace_id: span.span_context.trace_id(),
            span_id: span.span_context.span_id(),
            parent_span_id: (parent != SpanId::INVALID).then_some(parent),
            name: span.name,
            kind: span.span_kind,
            start_time: span.start_time,
            end_time: span.end_time,
            attributes: span.attributes,
            events: span.events.events,
            links: span.links.links,
            status: span.status,
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        let get = |key: &'static str| {
            resource
                .get(&Key::from_static_str(key))
                .map(|v| Arc::<str>::from(v.as_str().as_ref()))
        };
        if let Some(name) = get(SERVICE_NAME) {
            self.service_name = name;
        }
        self.node = get(K8S_NODE_NAME);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};

    use super::*;

    fn span(trace: u128, id: u64, parent: u64, service: &str, at: u64) -> StoredSpan {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(at);
        StoredSpan {
            service_name: Arc::from(service),
            node: None,
            trace_id: TraceId::from(trace),
            span_id: SpanId::from(id),
            parent_span_id: (parent != 0).then(|| SpanId::from(parent)),
            name: Cow::Owned(format!("span-{id}")),
            kind: SpanKind::Internal,
            start_time: t,
            end_time: t + Duration::from_millis(5),
            attributes: vec![KeyValue::new("k", id as i64)],
            events: vec![],
            links: vec![],
            status: Status::Unset,
        }
    }

    #[test]
    fn keeps_only_the_newest_spans() {
        let store = SpanStore::new(3);
        for i in 1..=5 {
            store.push(span(1, i, 0, "etcd", i));
        }
        let ids: Vec<SpanId> = store.spans().iter().map(|s| s.span_id).collect();
        assert_eq!(ids, [3, 4, 5].map(SpanId::from));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let store = SpanStore::new(0);
        store.push(span(1, 1, 0, "etcd", 1));
        assert!(store.is_empty());
    }

    #[test]
    fn recent_traces_are_newest_first_and_summarised() {
        let store = SpanStore::new(10);
        store.push(span(1, 2, 1, "etcd", 2)); // child ends first
        store.push(span(1, 1, 0, "kube-apiserver", 1));
        store.push(span(2, 3, 0, "kube-scheduler", 3));
        let recent = store.traces_recent(10);
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].trace_id, TraceId::from(2u128));
        let t1 = &recent[1];
        assert_eq!(t1.span_count, 2);
        assert_eq!(
            t1.root.as_ref().map(|(s, n)| (s.as_ref(), n.as_ref())),
            Some(("kube-apiserver", "span-1"))
        );
        let services: Vec<&str> = t1.services.iter().map(|s| s.as_ref()).collect();
        assert_eq!(services, ["etcd", "kube-apiserver"]);
        assert_eq!(store.traces_recent(1).len(), 1);
    }

    #[test]
    fn trace_and_find_traces_query_by_id_and_predicate() {
        let store = SpanStore::new(10);
        store.push(span(1, 2, 1, "etcd", 2));
        store.push(span(1, 1, 0, "kube-apiserver", 1));
        store.push(span(2, 3, 0, "etcd", 3));
        let t = store.trace(TraceId::from(1u128));
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].span_id, SpanId::from(1u64), "ordered by start");
        assert_eq!(
            store.find_traces(|s| &*s.service_name == "etcd"),
            [TraceId::from(2u128), TraceId::from(1u128)]
        );
        assert!(store.find_traces(|s| s.name == "nothing").is_empty());
    }

    #[test]
    fn processor_takes_service_and_node_from_the_resource() {
        let store = SpanStore::new(4);
        let mut p = store.processor();
        p.set_resource(
            &Resource::builder_empty()
                .with_service_name("kubelet")
                .with_attribute(KeyValue::new(K8S_NODE_NAME, "node-1"))
                .build(),
        );
        let sc = SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(8u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let data = SpanData {
            span_context: sc,
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "start pod".into(),
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH,
            attributes: vec![],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        };
        p.on_end(data);
        let s = &store.spans()[0];
        assert_eq!(&*s.service_name, "kubelet");
        assert_eq!(s.node.as_deref(), Some("node-1"));
        assert!(s.is_root());
    }
}
