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

use crate::api::{Kind, Object};
use crate::apiserver::{
    strategy, ApiError, ApiServer, Create, CreateBatch, GuaranteedUpdate, Subresource, Trace,
    UpdateFn, WriteOptions,
};

/// How long repeats of an event are folded into one Event object (upstream: 10 minutes).
pub const AGGREGATION_WINDOW: Duration = Duration::from_secs(600);

/// `Normal` or `Warning`.
pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// An aggregation key: a 128-bit digest of (involved object, type, reason, message). Upstream
/// keys its cache by those strings joined; a kubelet remembers every Event of the last ten
/// minutes, and the strings (twice: map and queue) cost several hundred bytes per Event where
/// the digest costs sixteen. Two different events would be folded into one only on a
/// collision, of probability about n²/2¹²⁹ for n keys.
type Key = u128;

/// How many aggregation keys are remembered (upstream's `maxLruCacheEntries`). Beyond it the
/// oldest are forgotten, so memory stays bounded when every event is distinct (one
/// `Scheduled` event per pod at 100,000 pods).
pub const AGGREGATION_CACHE_SIZE: usize = 4096;

/// The name of the Event written per aggregation key, with when it was first written. `order`
/// lists keys oldest first, so expiring and evicting cost O(1) per write instead of a scan.
///
/// Upstream's `eventLogger` remembers an `eventLog` (count, first timestamp, name,
/// resourceVersion) per key, not the Event; here the repeat is applied to the stored Event
/// itself (a [`GuaranteedUpdate`], as upstream PATCHes it), so the name is all it needs.
/// Keeping the Event would keep every recent Event decoded in each recorder.
#[derive(Default)]
struct Seen {
    latest: HashMap<Key, (Instant, String)>,
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

    fn get(&mut self, key: &Key) -> Option<String> {
        self.expire(Instant::now());
        self.latest.get(key).map(|(_, name)| name.clone())
    }

    fn insert(&mut self, key: Key, name: String) {
        let now = Instant::now();
        self.latest.insert(key, (now, name));
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
        let mut reasons = Vec::with_capacity(records.len());
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
            reasons.push(r.reason);
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
        for ((key, reason), result) in keys.into_iter().zip(reasons).zip(results) {
            match result {
                Ok(stored) => seen.insert(key, stored.name().to_string()),
                Err(e) => tracing::warn!(error = %e, reason, "dropping event"),
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
        if let Some(name) = previous {
            // A repeat: count and lastTimestamp move on the stored Event, read and written in
            // the API server (`recordToSink` PATCHes them upstream). If it is gone (expired),
            // a new one is written below, as upstream creates one on NotFound.
            let change: UpdateFn = Box::new(move |old| match old {
                Object::Event(ev) => {
                    let mut ev = (**ev).clone();
                    ev.count = Some(ev.count.unwrap_or(1) + 1);
                    ev.last_timestamp = Some(Time(now));
                    Ok(Object::Event(ev.into()))
                }
                other => Err(ApiError::BadRequest(format!(
                    "{} is not an Event",
                    other.kind().name()
                ))),
            });
            let update = GuaranteedUpdate {
                kind: Kind::Event,
                namespace: Some(event_namespace(&involved)),
                name,
                subresource: Subresource::Main,
                change,
                options: WriteOptions::default(),
                trace: trace.clone(),
            };
            match self.api.send(update).await {
                Ok(Ok(stored)) => return Ok(stored),
                Ok(Err(_)) => {}
                Err(e) => return Err(ApiError::Internal(e.to_string())),
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
        self.seen.lock().insert(key, stored.name().to_string());
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
        let namespace = event_namespace(&involved);
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

/// The namespace an Event about `involved` lives in: the object's, or `default` for
/// cluster-scoped objects (client-go's `makeEvent`).
fn event_namespace(involved: &ObjectReference) -> String {
    involved
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string())
}

/// The aggregation key: (involved object, type, reason, message), as the correlator's.
fn aggregation_key(involved: &ObjectReference, type_: &str, reason: &str, message: &str) -> Key {
    use std::hash::{Hash, Hasher};
    let object = involved
        .uid
        .as_deref()
        .or(involved.name.as_deref())
        .unwrap_or_default();
    // Two SipHash digests (fixed keys, so the same in every run), told apart by a seed.
    let half = |seed: u8| {
        let mut h = std::hash::DefaultHasher::new();
        (seed, object, type_, reason, message).hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Key {
        let involved = ObjectReference {
            uid: Some(format!("uid-{i}")),
            ..Default::default()
        };
        aggregation_key(&involved, NORMAL, "Scheduled", "m")
    }

    /// The key tells apart what upstream's joined-string key does, and only that.
    #[test]
    fn aggregation_keys_differ_exactly_when_the_event_does() {
        let pod = |uid: &str| ObjectReference {
            name: Some("web-1".into()),
            uid: Some(uid.into()),
            ..Default::default()
        };
        let k = aggregation_key(&pod("u1"), WARNING, "BackOff", "m");
        assert_eq!(k, aggregation_key(&pod("u1"), WARNING, "BackOff", "m"));
        for other in [
            aggregation_key(&pod("u2"), WARNING, "BackOff", "m"),
            aggregation_key(&pod("u1"), NORMAL, "BackOff", "m"),
            aggregation_key(&pod("u1"), WARNING, "Pulled", "m"),
            aggregation_key(&pod("u1"), WARNING, "BackOff", "m2"),
            // Field boundaries count: ("ab", "c") is not ("a", "bc").
            aggregation_key(&pod("u1"), WARNING, "BackOf", "fm"),
        ] {
            assert_ne!(k, other);
        }
    }

    /// Distinct events beyond the cache size evict the oldest keys; the newest stay.
    #[test]
    fn aggregation_cache_is_bounded() {
        let mut seen = Seen::default();
        for i in 0..AGGREGATION_CACHE_SIZE + 10 {
            seen.insert(key(i), format!("event-{i}"));
        }
        assert_eq!(seen.latest.len(), AGGREGATION_CACHE_SIZE);
        assert!(seen.get(&key(0)).is_none(), "the oldest is forgotten");
        assert!(seen.get(&key(AGGREGATION_CACHE_SIZE + 9)).is_some());
    }
}
