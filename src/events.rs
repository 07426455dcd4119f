//! The event recorder every component uses (controllers, scheduler, kubelet): core/v1 Events
//! as client-go's `record` package writes them.
//!
//! Mirrors `k8s.io/client-go/tools/record`: the Event is named `<object>.<hex nanos>`, lives
//! in the involved object's namespace (`default` for cluster-scoped objects such as Nodes),
//! carries `involvedObject`, `reason`, `message`, `type`, `source.component`/`host`,
//! `reportingComponent`, `firstTimestamp`, `lastTimestamp` and `count`. Repeats of the same
//! (object, type, reason, message, source) within [`AGGREGATION_WINDOW`] are aggregated, as the
//! `EventCorrelator` does: the existing Event's `count` goes up and `lastTimestamp` moves.
//! Like the correlator's LRU cache, at most [`AGGREGATION_CACHE_SIZE`] keys are remembered.
//!
//! Recording never blocks the caller: the write runs as a spawned future on the caller's
//! arbiter. A failed write is logged and dropped, as upstream drops events under pressure.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use parking_lot::Mutex;

use crate::api::Object;
use crate::apiserver::{
    strategy, ApiError, ApiServer, Create, CreateBatch, Subresource, Trace, Update, WriteOptions,
};

/// How long repeats of an event are folded into one Event object (upstream: 10 minutes).
pub const AGGREGATION_WINDOW: Duration = Duration::from_secs(600);

/// `Normal` or `Warning`.
pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

type Key = (String, String, String, String);

/// How many aggregation keys are remembered (upstream's `maxLruCacheEntries`). Beyond it the
/// oldest are forgotten, so memory stays bounded when every event is distinct (one
/// `Scheduled` event per pod at 100,000 pods).
pub const AGGREGATION_CACHE_SIZE: usize = 4096;

/// The last Event written per aggregation key, with when it was first written. `order` lists
/// keys oldest first, so expiring and evicting cost O(1) per write instead of a scan.
#[derive(Default)]
struct Seen {
    latest: HashMap<Key, (Instant, Arc<Object>)>,
    /// (when written, key); an entry whose time no longer matches `latest` is stale and
    /// skipped.
    order: VecDeque<(Instant, Key)>,
}

impl Seen {
    /// Forget keys older than the window, and the oldest beyond the cache size.
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            let expired = now.saturating_duration_since(*at) >= AGGREGATION_WINDOW;
            if !expired && self.latest.len() <= AGGREGATION_CACHE_SIZE {
                break;
            }
            if let Some((at, key)) = self.order.pop_front() {
                if self.latest.get(&key).is_some_and(|(t, _)| *t == at) {
                    self.latest.remove(&key);
                }
            }
        }
    }

    fn get(&mut self, key: &Key) -> Option<Arc<Object>> {
        self.expire(Instant::now());
        self.latest.get(key).map(|(_, e)| e.clone())
    }

    fn insert(&mut self, key: Key, event: Arc<Object>) {
        let now = Instant::now();
        self.latest.insert(key.clone(), (now, event));
        self.order.push_back((now, key));
        self.expire(now);
    }
}

/// Records Events for one component. Cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    api: Addr<ApiServer>,
    component: Arc<str>,
    host: Option<Arc<str>>,
    seen: Arc<Mutex<Seen>>,
}

/// A reference to `obj` as `involvedObject`.
pub fn object_reference(obj: &Object) -> ObjectReference {
    let m = obj.meta();
    ObjectReference {
        api_version: Some(obj.kind().api_version().to_string()),
        kind: Some(obj.kind().name().to_string()),
        name: m.name.clone(),
        namespace: obj.namespace().map(str::to_string),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        ..Default::default()
    }
}

impl EventRecorder {
    /// A recorder for `component` (e.g. `deployment-controller`, `default-scheduler`,
    /// `kubelet`), on `host` (the node, for kubelets).
    pub fn new(api: Addr<ApiServer>, component: &str, host: Option<&str>) -> EventRecorder {
        EventRecorder {
            api,
            component: component.into(),
            host: host.map(Into::into),
            seen: Arc::default(),
        }
    }

    /// Record a `Normal` event about `obj`.
    pub fn normal(&self, obj: &Object, reason: &str, message: impl Into<String>) {
        self.record(obj, NORMAL, reason, message.into(), Trace::Untraced);
    }

    /// Record a `Warning` event about `obj`.
    pub fn warning(&self, obj: &Object, reason: &str, message: impl Into<String>) {
        self.record(obj, WARNING, reason, message.into(), Trace::Untraced);
    }

    /// Record an event; with `Trace::Context` the write is a span in that trace.
    pub fn record(&self, obj: &Object, type_: &str, reason: &str, message: String, trace: Trace) {
        self.record_reference(object_reference(obj), type_, reason, message, trace);
    }

    /// [`EventRecorder::record`] about an object the caller already has a reference to (no
    /// copy of the object is needed to build one).
    pub fn record_reference(
        &self,
        reference: ObjectReference,
        type_: &str,
        reason: &str,
        message: String,
        trace: Trace,
    ) {
        let this = self.clone();
        let type_ = type_.to_string();
        let reason = reason.to_string();
        actix::spawn(async move {
            if let Err(e) = this.write(reference, &type_, &reason, message, trace).await {
                tracing::warn!(error = %e, reason, "dropping event");
            }
        });
    }

    /// Record several events at once (e.g. the scheduler's `Scheduled` events of one batch of
    /// binds): each is aggregated exactly as [`EventRecorder::record_reference`] would, and
    /// the new ones are written with one [`CreateBatch`] instead of a message, a reply and a
    /// spawned task each. Never blocks the caller.
    pub fn record_batch(&self, records: Vec<EventRecord>) {
        if records.is_empty() {
            return;
        }
        let this = self.clone();
        actix::spawn(async move { this.write_batch(records).await });
    }

    /// [`EventRecorder::record_batch`], awaited: returns once every event is written (or
    /// dropped, logged).
    pub async fn write_batch(&self, records: Vec<EventRecord>) {
        let now = strategy::now();
        let mut keys = Vec::with_capacity(records.len());
        let mut creates = Vec::with_capacity(records.len());
        for r in records {
            let key = aggregation_key(&r.involved, r.type_, r.reason, &r.message);
            let seen_before = self.seen.lock().get(&key).is_some();
            if seen_before {
                // A repeat: the count goes up on the existing Event (rare; one at a time).
                if let Err(e) = self
                    .write(r.involved, r.type_, r.reason, r.message, r.trace)
                    .await
                {
                    tracing::warn!(error = %e, reason = r.reason, "dropping event");
                }
                continue;
            }
            let event = self.new_event(r.involved, r.type_, r.reason, r.message, now);
            keys.push(key);
            creates.push(Create {
                object: Object::Event(event.into()),
                options: WriteOptions::default(),
                trace: r.trace,
            });
        }
        if creates.is_empty() {
            return;
        }
        let results = match self.api.send(CreateBatch { creates }).await {
            Ok(results) => results,
            Err(e) => {
                tracing::warn!(error = %e, events = keys.len(), "dropping events");
                return;
            }
        };
        let mut seen = self.seen.lock();
        for (key, result) in keys.into_iter().zip(results) {
            match result {
                Ok(stored) => seen.insert(key, stored),
                Err(e) => tracing::warn!(error = %e, reason = %key.2, "dropping event"),
            }
        }
    }

    /// Write (or aggregate) one event and return the stored Event.
    pub async fn write(
        &self,
        involved: ObjectReference,
        type_: &str,
        reason: &str,
        message: String,
        trace: Trace,
    ) -> Result<Arc<Object>, ApiError> {
        let key = aggregation_key(&involved, type_, reason, &message);
        let now = strategy::now();
        let previous = self.seen.lock().get(&key);
        if let Some(prev) = previous {
            if let Object::Event(ev) = &*prev {
                let mut ev = (**ev).clone();
                ev.count = Some(ev.count.unwrap_or(1) + 1);
                ev.last_timestamp = Some(Time(now));
                let update = Update {
                    object: Object::Event(ev.into()),
                    subresource: Subresource::Main,
                    options: WriteOptions::default(),
                    trace: trace.clone(),
                };
                match self.api.send(update).await {
                    Ok(Ok(stored)) => {
                        if let Some(entry) = self.seen.lock().latest.get_mut(&key) {
                            entry.1 = stored.clone();
                        }
                        return Ok(stored);
                    }
                    // Expired or raced: write a fresh one below.
                    Ok(Err(_)) => {}
                    Err(e) => return Err(ApiError::Internal(e.to_string())),
                }
            }
        }
        let event = self.new_event(involved, type_, reason, message, now);
        let create = Create {
            object: Object::Event(event.into()),
            options: WriteOptions::default(),
            trace,
        };
        let stored = self
            .api
            .send(create)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        self.seen.lock().insert(key, stored.clone());
        Ok(stored)
    }

    /// A new Event (count 1) about `involved`, as `makeEvent` in client-go's recorder.
    fn new_event(
        &self,
        involved: ObjectReference,
        type_: &str,
        reason: &str,
        message: String,
        now: jiff::Timestamp,
    ) -> Event {
        let namespace = involved
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let name = format!(
            "{}.{:x}",
            involved.name.as_deref().unwrap_or("unknown"),
            jiff::Timestamp::now().as_nanosecond()
        );
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: involved,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(type_.to_string()),
            source: Some(EventSource {
                component: Some(self.component.to_string()),
                host: self.host.as_deref().map(str::to_string),
            }),
            reporting_component: Some(self.component.to_string()),
            reporting_instance: Some(
                self.host
                    .as_deref()
                    .map(str::to_string)
                    .unwrap_or_else(|| self.component.to_string()),
            ),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Default::default()
        }
    }
}

/// One event for [`EventRecorder::record_batch`].
pub struct EventRecord {
    pub involved: ObjectReference,
    /// [`NORMAL`] or [`WARNING`].
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub trace: Trace,
}

/// The aggregation key: (involved object, type, reason, message), as the correlator's.
fn aggregation_key(involved: &ObjectReference, type_: &str, reason: &str, message: &str) -> Key {
    (
        involved
            .uid
            .clone()
            .unwrap_or_else(|| involved.name.clone().unwrap_or_default()),
        type_.to_string(),
        reason.to_string(),
        message.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Key {
        (
            format!("uid-{i}"),
            NORMAL.into(),
            "Scheduled".into(),
            "m".into(),
        )
    }

    /// Distinct events beyond the cache size evict the oldest keys; the newest stay.
    #[test]
    fn aggregation_cache_is_bounded() {
        let mut seen = Seen::default();
        let event = Arc::new(Object::Event(Event::default().into()));
        for i in 0..AGGREGATION_CACHE_SIZE + 10 {
            seen.insert(key(i), event.clone());
        }
        assert_eq!(seen.latest.len(), AGGREGATION_CACHE_SIZE);
        assert!(seen.get(&key(0)).is_none(), "the oldest is forgotten");
        assert!(seen.get(&key(AGGREGATION_CACHE_SIZE + 9)).is_some());
    }
}
