//! The `ApiServer` actor: kube-apiserver's registry, storage and watch cache in one actor.
//!
//! It is the only owner of the [`Store`]. A write request is validated, defaulted and given
//! its system fields ([`strategy`]), serialized once, and handed to the store, which checks
//! the resourceVersion precondition at once and group-commits it. The reply waits until the
//! write is durable: the store's commit stream delivers each durable batch, in revision order,
//! to this actor, which then (1) applies it to its cache of decoded objects, (2) fans it out
//! through the indexed [`registry`], (3) appends the store's event (bytes) to the watch
//! window, and only then (4) answers the writer — so a client that got its reply always
//! reads its own write, and a watcher never sees a write that could still be lost. The answer
//! goes straight into the requester's actix reply channel (`reply.rs`), with no task per write.
//!
//! Reads (`Get`, `List`, `Watch`) are served from the cache of `Arc<Object>`s: a live watcher
//! gets the same `Arc` as every other watcher, never a re-parsed copy. A watch that resumes
//! from an older resourceVersion is replayed from the window, decoding the writes that can
//! reach it (`window`).
//!
//! Tracing: a traced request gets a `kube-apiserver` span (child of the caller's context) and
//! an `etcd` child span for the store write (key, revision, bytes; it ends when the write is
//! durable). The request span's context is saved on the written object as the
//! `kubeactor.io/traceparent` annotation, so whoever reacts to the watch event continues the
//! trace. Untraced (background) writes carry no annotation.

pub mod error;
pub mod http;
pub mod messages;
mod objects;
pub mod registry;
mod reply;
pub mod strategy;
mod window;

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use opentelemetry::trace::{Span, TraceContextExt, Tracer};
use opentelemetry::{Context as OtelContext, KeyValue as Attr};
use opentelemetry_sdk::trace::SdkTracer;
use tokio::sync::mpsc;

pub use self::error::ApiError;
pub use self::messages::*;
use self::objects::{Entry, Objects};
use self::registry::{Change, Filter, Registry};
use self::reply::{Answer, ReplyTx};
use self::strategy::DeleteDecision;
use self::window::Window;
use crate::api::{defaults, validation, Kind, Object};
use crate::store::{Event, EventType, Op, Precondition, Revision, Store, StoreError};
use crate::telemetry::{self, Component, Telemetry, TRACEPARENT_ANNOTATION};

/// The namespaces that exist on first start (as kube-apiserver's system namespaces
/// controller creates them).
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Requests queued in the ApiServer's mailbox before senders wait. Large, because every
/// component funnels through this one actor and a burst is better absorbed than stalled (group
/// commit turns a deep queue into big batches).
const MAILBOX_CAPACITY: usize = 1 << 20;

/// Namespaces that may not be deleted (upstream's namespace lifecycle admission).
const UNDELETABLE_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Tunables of the API server (from `[apiserver]`).
#[derive(Clone, Debug)]
pub struct ApiServerOptions {
    /// Events buffered per watcher before it is closed with 410 Gone.
    pub watch_buffer: usize,
    /// Changes kept for resuming watches from an older resourceVersion.
    pub watch_cache_window: usize,
    /// `DefaultTolerationSeconds` admission: the `tolerationSeconds` of the
    /// `node.kubernetes.io/not-ready:NoExecute` toleration added to new pods.
    pub default_not_ready_toleration_seconds: i64,
    /// … and of the `node.kubernetes.io/unreachable:NoExecute` one.
    pub default_unreachable_toleration_seconds: i64,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        ApiServerOptions {
            watch_buffer: 1000,
            watch_cache_window: 100_000,
            default_not_ready_toleration_seconds: defaults::DEFAULT_TOLERATION_SECONDS,
            default_unreachable_toleration_seconds: defaults::DEFAULT_TOLERATION_SECONDS,
        }
    }
}

impl From<&crate::config::ApiServerConfig> for ApiServerOptions {
    fn from(c: &crate::config::ApiServerConfig) -> Self {
        ApiServerOptions {
            watch_buffer: c.watch_buffer,
            watch_cache_window: c.watch_cache_window,
            default_not_ready_toleration_seconds: c.default_not_ready_toleration_seconds,
            default_unreachable_toleration_seconds: c.default_unreachable_toleration_seconds,
        }
    }
}

/// A write the store refused, with the reply it was meant for (so a caller may retry).
struct Rejected {
    error: ApiError,
    reply: Reply,
    /// The object that was to be written, handed back.
    object: Option<Object>,
}

/// A reply waiting for its write to become durable.
enum Reply {
    Object(ReplyTx<Arc<Object>>),
    Deleted(ReplyTx<Deleted>),
}

struct PendingWrite {
    /// The object as it will be stored (resourceVersion set); `None` for a delete.
    object: Option<Arc<Object>>,
    reply: Reply,
    /// Others answered with `object` once it is durable: a no-op update or delete whose
    /// current state is this write (see [`ApiServer::when_durable`]).
    waiters: Vec<ReplyTx<Arc<Object>>>,
    /// The request span and the etcd span, ended when durable.
    spans: Option<(OtelContext, OtelContext)>,
    /// When the write went to the store (`etcd_request_duration_seconds`).
    submitted: std::time::Instant,
}

/// The API server actor. See the module documentation.
pub struct ApiServer {
    store: Arc<dyn Store>,
    opts: ApiServerOptions,
    /// Every stored object by store key: the latest durable state.
    objects: Objects,
    /// The revision `objects` reflects.
    revision: Revision,
    /// Recent writes for watch resume, as the store's events (bytes, not decoded objects).
    window: Window,
    registry: Registry,
    pending: HashMap<Revision, PendingWrite>,
    /// The latest accepted state of each key with a write not yet durable: that write's
    /// revision and the object as it will be (`None`: deleted). Writes without a user
    /// precondition start from this, not from `objects`, so they never conflict with a write
    /// still being committed. Removed once the revision is applied.
    accepted: HashMap<String, (Revision, Option<Arc<Object>>)>,
    tracer: SdkTracer,
    etcd_tracer: SdkTracer,
    /// The sampler is parent-based: a request whose parent is not sampled gets no spans of
    /// its own (see [`ApiServer::request_span`]).
    skip_unsampled: bool,
    /// Taken in `started`: the store's stream of durable batches.
    commits: Option<crate::store::CommitStream>,
    /// `apiserver_storage_objects` (issue 7).
    storage_objects: StorageObjects,
}

// --- metrics (issue 7) ---

/// This server's share of `apiserver_storage_objects{resource}`: its object count per kind,
/// added to the process-wide gauges (and taken back out when the server is dropped, so
/// several servers in one process — tests — add up correctly).
struct StorageObjects {
    gauges: Vec<prometheus_client::metrics::gauge::Gauge>,
    counts: [i64; Kind::ALL.len()],
}

impl StorageObjects {
    fn new(objects: &Objects) -> StorageObjects {
        let m = crate::metrics::global();
        let mut s = StorageObjects {
            gauges: Kind::ALL.iter().map(|&k| m.storage_objects(k)).collect(),
            counts: [0; Kind::ALL.len()],
        };
        for kind in objects.keys().filter_map(|k| Object::kind_of_key(k)) {
            s.add(kind, 1);
        }
        s
    }

    fn add(&mut self, kind: Kind, n: i64) {
        self.counts[kind as usize] += n;
        self.gauges[kind as usize].inc_by(n);
    }
}

impl Drop for StorageObjects {
    fn drop(&mut self) {
        for (g, n) in self.gauges.iter().zip(self.counts) {
            g.dec_by(n);
        }
    }
}

// --- end metrics ---

impl ApiServer {
    /// Load the store's state into a new API server (not yet started).
    pub fn new(
        store: Arc<dyn Store>,
        opts: ApiServerOptions,
        telemetry: &Telemetry,
    ) -> Result<ApiServer, ApiError> {
        // Subscribe first, then read: a batch committed in between arrives on the stream and
        // is skipped by revision, so nothing is missed or applied twice.
        let commits = store.subscribe();
        let range = store
            .range("/registry/", None)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut objects = Objects::default();
        for kv in range.kvs {
            let Some(kind) = Object::kind_of_key(&kv.key) else {
                continue;
            };
            match Object::from_json(kind, &kv.value) {
                Ok(mut obj) => {
                    obj.meta_mut().resource_version = Some(kv.mod_revision.to_string());
                    let entry = Entry::new(Arc::new(obj), &kv.value);
                    objects.insert(kv.key, entry);
                }
                Err(e) => {
                    tracing::error!(key = %kv.key, error = %e, "skipping undecodable stored object")
                }
            }
        }
        let window_capacity = opts.watch_cache_window;
        Ok(ApiServer {
            store,
            opts,
            revision: range.revision,
            window: Window::new(range.revision, window_capacity),
            registry: Registry::default(),
            pending: HashMap::new(),
            accepted: HashMap::new(),
            tracer: telemetry.tracer(Component::ApiServer),
            etcd_tracer: telemetry.tracer(Component::Etcd),
            skip_unsampled: telemetry.drops_children_of_unsampled(),
            commits: Some(commits),
            storage_objects: StorageObjects::new(&objects),
            objects,
        })
    }

    /// Start the actor and create the system namespaces that are missing. Returns once they
    /// exist, so the first client request finds `default`.
    pub async fn start(self) -> Result<Addr<ApiServer>, ApiError> {
        let here = actix::Arbiter::current();
        self.start_on(&here).await
    }

    /// Like [`ApiServer::start`], on the given arbiter (thread). The daemon gives the API
    /// server a thread of its own, so its clients' work never queues behind it.
    pub async fn start_on(
        self,
        arbiter: &actix::ArbiterHandle,
    ) -> Result<Addr<ApiServer>, ApiError> {
        let missing: Vec<&str> = SYSTEM_NAMESPACES
            .iter()
            .copied()
            .filter(|ns| !self.objects.contains_key(&Kind::Namespace.key(None, ns)))
            .collect();
        let addr = ApiServer::start_in_arbiter(arbiter, move |_| self);
        for ns in missing {
            let object = Object::from(Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            });
            let create = Create {
                object,
                options: WriteOptions::default(),
                trace: Trace::Untraced,
            };
            match addr.send(create).await {
                Ok(Ok(_)) | Ok(Err(ApiError::AlreadyExists { .. })) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(ApiError::Internal(e.to_string())),
            }
        }
        Ok(addr)
    }

    fn get_object(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<Arc<Object>> {
        self.objects.get(&kind.key(namespace, name))
    }

    /// The object's latest accepted state: the last write to it that the store accepted,
    /// durable or not (`None`: absent or deleted). What a write starts from — as upstream's
    /// `GuaranteedUpdate` re-reads the current state from etcd on a compare-and-swap failure
    /// (k8s.io/apiserver/pkg/storage/etcd3/store.go) — while reads stay on durable state.
    fn latest_object(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<Object>> {
        let key = kind.key(namespace, name);
        match self.accepted.get(&key) {
            Some((_, accepted)) => accepted.clone(),
            None => self.objects.get(&key),
        }
    }

    /// Answer with `obj` once it is durable: at once if it is, else when its pending write
    /// is applied (so a reply never names a state a following read could not see).
    fn when_durable(&mut self, obj: Arc<Object>) -> Answer<Arc<Object>> {
        match self.pending.get_mut(&obj.resource_version()) {
            Some(p) => {
                let (tx, rx) = reply::channel();
                p.waiters.push(tx);
                Answer::Later(rx)
            }
            None => Answer::Ready(Ok(obj)),
        }
    }

    /// Start the request span (if traced). Returns the context holding it.
    /// The name and key are computed only for traced requests: untraced writes are the bulk
    /// at scale and need neither.
    ///
    /// A request whose parent was not sampled, under a parent-based sampler, would get a
    /// span the SDK drops (and so would its `etcd` child): its context is the parent's own,
    /// which the object is still stamped with, so everything downstream of this write
    /// knows the trace is not sampled. With head sampling at 1 %, that is 99 % of the
    /// writes, and building the dropped spans was ~6 % of this thread at 100,000 pods.
    fn request_span(
        &self,
        trace: &Trace,
        name: impl FnOnce() -> String,
        obj: &Object,
        command: Option<&str>,
    ) -> Option<OtelContext> {
        let Trace::Context(parent) = trace else {
            return None;
        };
        if self.unrecorded(parent) {
            return Some(parent.clone());
        }
        let name = name();
        let obj_key = obj.key();
        let mut span = self.tracer.start_with_context(name, parent);
        span.set_attribute(Attr::new("k8s.object.key", obj_key.to_string()));
        if let Some(command) = command {
            span.set_attribute(Attr::new("kubectl.command", command.to_string()));
        }
        Some(parent.with_span(span))
    }

    /// Whether spans under `cx` would be dropped by the sampler: its span is a valid,
    /// unsampled one and the sampler follows the parent.
    fn unrecorded(&self, cx: &OtelContext) -> bool {
        let span = cx.span();
        let sc = span.span_context();
        self.skip_unsampled && sc.is_valid() && !sc.is_sampled()
    }

    /// Save the request's trace context on the object (or remove a stale one). Not for a dry
    /// run: it writes nothing, so no later hop continues its trace, and the object it returns
    /// differs from the stored one only by the request (`kubectl diff` shows no new
    /// `traceparent`).
    fn stamp_trace(obj: &mut Object, span: Option<&OtelContext>) {
        match span {
            Some(cx) => telemetry::inject(cx, obj.meta_mut()),
            None => {
                let meta = obj.meta_mut();
                if let Some(a) = meta.annotations.as_mut() {
                    a.remove(TRACEPARENT_ANNOTATION);
                    if a.is_empty() {
                        meta.annotations = None;
                    }
                }
            }
        }
    }

    /// Hand a write to the store. On success the reply is parked until the commit stream
    /// reports the revision durable.
    fn submit(
        &mut self,
        op: Op,
        mut object: Option<Object>,
        span: Option<OtelContext>,
        reply: Reply,
    ) -> Result<(), Box<Rejected>> {
        let key = op.key().to_string();
        let bytes = match &op {
            Op::Put { value, .. } => value.len(),
            Op::Delete { .. } => 0,
        };
        let verb = if matches!(op, Op::Put { .. }) {
            "put"
        } else {
            "delete"
        };
        let pending = match self.store.write(op) {
            Ok(p) => p,
            Err(e) => {
                // The kind and name only name the object in the error.
                let kind = Object::kind_of_key(&key).unwrap_or(Kind::Pod);
                let name = key.rsplit('/').next().unwrap_or("");
                if let Some(cx) = &span {
                    cx.span()
                        .set_status(opentelemetry::trace::Status::error(e.to_string()));
                    cx.span().end();
                }
                let err = match e {
                    StoreError::Conflict {
                        current: Some(_), ..
                    } if verb == "put" && bytes > 0 => {
                        // Caller decides between AlreadyExists and Conflict; see `create`.
                        ApiError::from_store(e, kind, name)
                    }
                    e => ApiError::from_store(e, kind, name),
                };
                return Err(Box::new(Rejected {
                    error: err,
                    reply,
                    object,
                }));
            }
        };
        let revision = pending.revision;
        if let Some(obj) = object.as_mut() {
            obj.meta_mut().resource_version = Some(revision.to_string());
        }
        let object = object.map(Arc::new);
        let spans = span.filter(|cx| !self.unrecorded(cx)).map(|cx| {
            let mut etcd = self
                .etcd_tracer
                .start_with_context(format!("{verb} {key}"), &cx);
            etcd.set_attribute(Attr::new("etcd.key", key.clone()));
            etcd.set_attribute(Attr::new("etcd.revision", revision as i64));
            etcd.set_attribute(Attr::new("etcd.bytes", bytes as i64));
            let etcd_cx = cx.with_span(etcd);
            (cx, etcd_cx)
        });
        self.accepted.insert(key, (revision, object.clone()));
        self.pending.insert(
            revision,
            PendingWrite {
                object,
                reply,
                waiters: Vec::new(),
                spans,
                submitted: std::time::Instant::now(),
            },
        );
        Ok(())
    }

    /// Apply one durable batch: cache, watch window, watchers, then replies.
    fn apply_batch(&mut self, batch: &[Arc<Event>]) {
        for event in batch {
            let rev = event.revision();
            if rev <= self.revision {
                continue;
            }
            self.revision = rev;
            let pending = self.pending.remove(&rev);
            // The key's accepted state is done with unless a later write to it is still in
            // flight: removed, and put back in that (rare) case — one lookup, not two.
            if let Some((key, (accepted, state))) = self.accepted.remove_entry(&event.kv.key) {
                if accepted > rev {
                    self.accepted.insert(key, (accepted, state));
                }
            }
            let Some(kind) = Object::kind_of_key(&event.kv.key) else {
                continue;
            };
            // The cached object this write replaces: what the one lookup that stores (or
            // removes) the new state hands back.
            let key = event.kv.key.as_str();
            let (object, deleted, prev) = match event.kind {
                EventType::Put => {
                    let obj = match pending.as_ref().and_then(|p| p.object.clone()) {
                        Some(o) => o,
                        None => match Object::from_json(kind, &event.kv.value) {
                            Ok(mut o) => {
                                o.meta_mut().resource_version = Some(rev.to_string());
                                Arc::new(o)
                            }
                            Err(e) => {
                                tracing::error!(key = %event.kv.key, error = %e, "undecodable write");
                                continue;
                            }
                        },
                    };
                    let entry = Entry::new(obj.clone(), &event.kv.value);
                    let prev = self.objects.put(key, entry).and_then(|e| e.object(key));
                    (obj, false, prev)
                }
                EventType::Delete => {
                    let prev = self.objects.remove(key).and_then(|e| e.object(key));
                    let last = match &prev {
                        Some(p) => (**p).clone(),
                        None => match Object::from_json(kind, &event.kv.value) {
                            Ok(o) => o,
                            Err(_) => continue,
                        },
                    };
                    let mut last = last;
                    last.meta_mut().resource_version = Some(rev.to_string());
                    // The DELETED event carries the delete request's context, so whoever
                    // reacts to it (the garbage collector) continues the delete's trace.
                    if let Some((cx, _)) = pending.as_ref().and_then(|p| p.spans.as_ref()) {
                        Self::stamp_trace(&mut last, Some(cx));
                    }
                    (Arc::new(last), true, prev)
                }
            };
            // --- metrics (issue 7) ---
            let operation = match (deleted, prev.is_some()) {
                (true, _) => "delete",
                (false, true) => "update",
                (false, false) => "create",
            };
            match operation {
                "create" => self.storage_objects.add(kind, 1),
                "delete" if prev.is_some() => self.storage_objects.add(kind, -1),
                _ => {}
            }
            if let Some(p) = &pending {
                crate::metrics::global().observe_etcd(operation, kind, p.submitted.elapsed());
            }
            // --- end metrics ---
            // Live dispatch uses the decoded object; the window keeps the store's event.
            self.registry.dispatch(&Change {
                kind,
                object: object.clone(),
                prev,
                deleted,
            });
            self.window.push(kind, event.clone());
            if let Some(p) = pending {
                if let Some((cx, etcd_cx)) = p.spans {
                    etcd_cx.span().end();
                    cx.span()
                        .set_attribute(Attr::new("k8s.resource_version", rev as i64));
                    cx.span().end();
                }
                for waiter in p.waiters {
                    let _ = waiter.send(Ok(object.clone()));
                }
                match p.reply {
                    Reply::Object(tx) => {
                        let _ = tx.send(Ok(object));
                    }
                    Reply::Deleted(tx) => {
                        let _ = tx.send(Ok(Deleted::Gone(object)));
                    }
                }
            }
        }
    }

    /// A write failed after it was accepted (the engine failed): answer its waiter.
    fn fail_pending(&mut self, revision: Revision, err: StoreError) {
        self.accepted
            .retain(|_, (accepted, _)| *accepted != revision);
        if let Some(p) = self.pending.remove(&revision) {
            if let Some((cx, etcd_cx)) = p.spans {
                etcd_cx
                    .span()
                    .set_status(opentelemetry::trace::Status::error(err.to_string()));
                etcd_cx.span().end();
                cx.span().end();
            }
            let e = ApiError::Internal(err.to_string());
            for waiter in p.waiters {
                let _ = waiter.send(Err(e.clone()));
            }
            match p.reply {
                Reply::Object(tx) => {
                    let _ = tx.send(Err(e));
                }
                Reply::Deleted(tx) => {
                    let _ = tx.send(Err(e));
                }
            }
        }
    }

    // ---- the verbs, as plain methods; the handlers below only unpack and wrap ----

    fn create(&mut self, msg: Create) -> Answer<Arc<Object>> {
        let Create {
            mut object,
            options,
            trace,
        } = msg;
        let kind = object.kind();
        if kind.namespaced() {
            let meta = object.meta_mut();
            if meta.namespace.as_deref().is_none_or(str::is_empty) {
                meta.namespace = Some("default".into());
            }
            let ns = object.meta().namespace.as_deref().unwrap_or_default();
            if !self.objects.contains_key(&Kind::Namespace.key(None, ns)) {
                return Answer::Ready(Err(ApiError::namespace_not_found(ns)));
            }
        } else {
            object.meta_mut().namespace = None;
        }
        if object
            .meta()
            .resource_version
            .as_deref()
            .is_some_and(|rv| !rv.is_empty())
        {
            return Answer::Ready(Err(ApiError::BadRequest(
                "resourceVersion should not be set on objects to be created".into(),
            )));
        }
        let generated = object.meta().name.as_deref().is_none_or(str::is_empty)
            && object
                .meta()
                .generate_name
                .as_deref()
                .is_some_and(|g| !g.is_empty());
        if generated {
            let prefix = object.meta().generate_name.clone().unwrap_or_default();
            object.meta_mut().name = Some(strategy::generate_name(&prefix));
        }
        // Admission on create: DefaultTolerationSeconds with the configured seconds.
        if let Object::Pod(pod) = &mut object {
            defaults::add_default_tolerations_with(
                Arc::make_mut(pod).spec.get_or_insert_with(Default::default),
                self.opts.default_not_ready_toleration_seconds,
                self.opts.default_unreachable_toleration_seconds,
            );
        }
        defaults::apply(&mut object);
        strategy::prepare_for_create(&mut object, strategy::now());
        let errors = validation::validate(&object);
        if !errors.is_empty() {
            let name = object.name().to_string();
            return Answer::Ready(Err(ApiError::invalid(kind, &name, errors)));
        }
        let span_name = || match &options.span_name {
            Some(n) => n.clone(),
            None => format!("create {} {}", kind.plural(), display_name(&object)),
        };
        let span = self.request_span(&trace, span_name, &object, options.command.as_deref());
        if options.dry_run {
            end_span(span);
            return Answer::Ready(Ok(Arc::new(object)));
        }
        Self::stamp_trace(&mut object, span.as_ref());
        let (tx, rx) = reply::channel();
        // A generated name may collide: try fresh suffixes, as upstream retries.
        let mut attempts = if generated { 3 } else { 1 };
        let mut reply = Reply::Object(tx);
        let mut span = span;
        loop {
            let op = Op::Put {
                key: object.key(),
                value: object_bytes(&mut object),
                precondition: Precondition::Absent,
            };
            match self.submit(op, Some(object), span.take(), reply) {
                Ok(()) => return Answer::Later(rx),
                Err(r)
                    if attempts > 1
                        && matches!(
                            r.error,
                            ApiError::Conflict { .. } | ApiError::NotFound { .. }
                        ) =>
                {
                    attempts -= 1;
                    let Rejected {
                        reply: back,
                        object: obj,
                        ..
                    } = *r;
                    reply = back;
                    let Some(obj) = obj else {
                        return Answer::Ready(Err(ApiError::Internal("lost the object".into())));
                    };
                    object = obj;
                    let prefix = object.meta().generate_name.clone().unwrap_or_default();
                    object.meta_mut().name = Some(strategy::generate_name(&prefix));
                }
                Err(r)
                    if matches!(
                        r.error,
                        ApiError::Conflict { .. } | ApiError::NotFound { .. }
                    ) =>
                {
                    // The rejected write hands the object back: its name names the error.
                    let name = r.object.as_ref().map_or("", |o| o.name());
                    return Answer::Ready(Err(ApiError::already_exists(kind, name)));
                }
                Err(r) => return Answer::Ready(Err(r.error)),
            }
        }
    }

    fn update(&mut self, msg: Update) -> Answer<Arc<Object>> {
        let Update {
            mut object,
            subresource,
            options,
            trace,
        } = msg;
        let kind = object.kind();
        if !kind.namespaced() {
            object.meta_mut().namespace = None;
        } else if object.meta().namespace.as_deref().is_none_or(str::is_empty) {
            object.meta_mut().namespace = Some("default".into());
        }
        let name = object.name().to_string();
        // A given resourceVersion is the caller's precondition, checked against the latest
        // accepted state; without one the update applies on top of that state.
        let Some(old) = self.latest_object(kind, object.namespace(), &name) else {
            return Answer::Ready(Err(ApiError::not_found(kind, &name)));
        };
        if let Some(rv) = object
            .meta()
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty())
        {
            if rv.parse::<u64>().ok() != Some(old.resource_version()) {
                return Answer::Ready(Err(ApiError::stale(kind, &name)));
            }
        }
        if let Some(uid) = object.meta().uid.as_deref().filter(|u| !u.is_empty()) {
            if Some(uid) != old.meta().uid.as_deref() {
                return Answer::Ready(Err(ApiError::conflict(
                    kind,
                    &name,
                    format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        old.meta().uid.as_deref().unwrap_or("")
                    ),
                )));
            }
        }
        if subresource == Subresource::Main {
            defaults::apply(&mut object);
        }
        strategy::prepare_for_update(&mut object, &old, subresource);
        let errors = match subresource {
            Subresource::Main => validation::validate_update(&object, &old),
            Subresource::Status => validation::validate_status_update(&object, &old),
        };
        if !errors.is_empty() {
            return Answer::Ready(Err(ApiError::invalid(kind, &name, errors)));
        }
        if strategy::is_noop(&object, &old) {
            return self.when_durable(old);
        }
        let verb = if subresource == Subresource::Status {
            "update status"
        } else {
            "update"
        };
        let span_name = || {
            options
                .span_name
                .clone()
                .unwrap_or_else(|| format!("{verb} {} {}", kind.plural(), display_name(&object)))
        };
        let span = self.request_span(&trace, span_name, &object, options.command.as_deref());
        if strategy::should_delete_during_update(&object) {
            // The last finalizer is gone: this update deletes.
            let (tx, rx) = reply::channel::<Deleted>();
            let (otx, orx) = reply::channel();
            if options.dry_run {
                end_span(span);
                return Answer::Ready(Ok(old));
            }
            let op = Op::Delete {
                key: object.key(),
                precondition: Precondition::ModRevision(old.resource_version()),
            };
            if let Err(r) = self.submit(op, None, span, Reply::Deleted(tx)) {
                return Answer::Ready(Err(r.error));
            }
            actix::spawn(async move {
                let r = rx.recv().await.map(|d| d.object().clone());
                let _ = otx.send(r);
            });
            return Answer::Later(orx);
        }
        if options.dry_run {
            end_span(span);
            object.meta_mut().resource_version = old.meta().resource_version.clone();
            return Answer::Ready(Ok(Arc::new(object)));
        }
        Self::stamp_trace(&mut object, span.as_ref());
        let (tx, rx) = reply::channel();
        let op = Op::Put {
            key: object.key(),
            value: object_bytes(&mut object),
            precondition: Precondition::ModRevision(old.resource_version()),
        };
        match self.submit(op, Some(object), span, Reply::Object(tx)) {
            Ok(()) => Answer::Later(rx),
            Err(r) => Answer::Ready(Err(r.error)),
        }
    }

    fn guaranteed_update(&mut self, msg: GuaranteedUpdate) -> Answer<Arc<Object>> {
        let GuaranteedUpdate {
            kind,
            namespace,
            name,
            subresource,
            change,
            options,
            trace,
        } = msg;
        let namespace = request_namespace(kind, namespace);
        let Some(current) = self.latest_object(kind, namespace.as_deref(), &name) else {
            return Answer::Ready(Err(ApiError::not_found(kind, &name)));
        };
        // `change` runs user input (a patch) on the ApiServer's thread: a bug in it must fail
        // this request with a 500, never stop the actor that owns the store.
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change(&current)));
        let object = match applied {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Answer::Ready(Err(e)),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                tracing::error!(%what, kind = kind.name(), %name, "update function panicked");
                return Answer::Ready(Err(ApiError::Internal(format!(
                    "the update of {} {name:?} failed: {what}",
                    kind.name()
                ))));
            }
        };
        self.update(Update {
            object,
            subresource,
            options,
            trace,
        })
    }

    fn delete(&mut self, msg: Delete) -> Answer<Deleted> {
        let Delete {
            kind,
            namespace,
            name,
            options,
            write,
            trace,
        } = msg;
        let namespace = request_namespace(kind, namespace);
        // Preconditions are checked against, and the delete applies to, the latest accepted
        // state (see `latest_object`).
        let Some(current) = self.latest_object(kind, namespace.as_deref(), &name) else {
            return Answer::Ready(Err(ApiError::not_found(kind, &name)));
        };
        if let Some(pre) = &options.preconditions {
            if let Some(uid) = pre.uid.as_deref() {
                if Some(uid) != current.meta().uid.as_deref() {
                    return Answer::Ready(Err(ApiError::conflict(
                        kind,
                        &name,
                        format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            current.meta().uid.as_deref().unwrap_or("")
                        ),
                    )));
                }
            }
            if let Some(rv) = pre.resource_version.as_deref() {
                if rv.parse::<u64>().ok() != Some(current.resource_version()) {
                    return Answer::Ready(Err(ApiError::conflict(
                        kind,
                        &name,
                        format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            current.resource_version()
                        ),
                    )));
                }
            }
        }
        if kind == Kind::Namespace && UNDELETABLE_NAMESPACES.contains(&name.as_str()) {
            return Answer::Ready(Err(ApiError::forbidden(
                kind,
                &name,
                "this namespace may not be deleted",
            )));
        }
        let decision = match strategy::decide_delete(&current, &options, strategy::now()) {
            Ok(d) => d,
            Err(msg) => return Answer::Ready(Err(ApiError::BadRequest(msg))),
        };
        let span_name = || {
            write
                .span_name
                .clone()
                .unwrap_or_else(|| format!("delete {} {}", kind.plural(), display_name(&current)))
        };
        let span = self.request_span(&trace, span_name, &current, write.command.as_deref());
        match decision {
            DeleteDecision::Unchanged => {
                end_span(span);
                match self.when_durable(current) {
                    Answer::Ready(r) => Answer::Ready(r.map(Deleted::Pending)),
                    Answer::Later(rx) => {
                        let (dtx, drx) = reply::channel();
                        actix::spawn(async move {
                            let _ = dtx.send(rx.recv().await.map(Deleted::Pending));
                        });
                        Answer::Later(drx)
                    }
                }
            }
            DeleteDecision::Update(new) => {
                let mut new = *new;
                if write.dry_run {
                    end_span(span);
                    return Answer::Ready(Ok(Deleted::Pending(Arc::new(new))));
                }
                Self::stamp_trace(&mut new, span.as_ref());
                let (tx, rx) = reply::channel();
                let op = Op::Put {
                    key: new.key(),
                    value: object_bytes(&mut new),
                    precondition: Precondition::ModRevision(current.resource_version()),
                };
                let (dtx, drx) = reply::channel();
                match self.submit(op, Some(new), span, Reply::Object(tx)) {
                    Ok(()) => {
                        actix::spawn(async move {
                            let _ = dtx.send(rx.recv().await.map(Deleted::Pending));
                        });
                        Answer::Later(drx)
                    }
                    Err(r) => Answer::Ready(Err(r.error)),
                }
            }
            DeleteDecision::Now => {
                if write.dry_run {
                    end_span(span);
                    return Answer::Ready(Ok(Deleted::Gone(current)));
                }
                let (tx, rx) = reply::channel();
                let op = Op::Delete {
                    key: current.key(),
                    precondition: Precondition::ModRevision(current.resource_version()),
                };
                match self.submit(op, None, span, Reply::Deleted(tx)) {
                    Ok(()) => Answer::Later(rx),
                    Err(r) => Answer::Ready(Err(r.error)),
                }
            }
        }
    }

    fn bind(&mut self, msg: Bind) -> Answer<Arc<Object>> {
        let Bind {
            namespace,
            binding,
            trace,
        } = msg;
        let name = binding.metadata.name.clone().unwrap_or_default();
        let Some(current) = self.latest_object(Kind::Pod, Some(&namespace), &name) else {
            return Answer::Ready(Err(ApiError::not_found(Kind::Pod, &name)));
        };
        let Some(pod) = current.as_pod() else {
            return Answer::Ready(Err(ApiError::Internal("stored object is not a pod".into())));
        };
        if let Some(uid) = binding.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
            if Some(uid) != pod.metadata.uid.as_deref() {
                return Answer::Ready(Err(ApiError::conflict(
                    Kind::Pod,
                    &name,
                    "the UID in the binding does not match the pod",
                )));
            }
        }
        let mut bound = match strategy::bind_pod(pod, &binding, strategy::now()) {
            Ok(p) => Object::Pod(p.into()),
            Err(msg) => return Answer::Ready(Err(ApiError::conflict(Kind::Pod, &name, msg))),
        };
        let node = binding.target.name.clone().unwrap_or_default();
        let span = self.request_span(
            &trace,
            || format!("bind pods {namespace}/{name} to {node}"),
            &current,
            None,
        );
        Self::stamp_trace(&mut bound, span.as_ref());
        let (tx, rx) = reply::channel();
        let op = Op::Put {
            key: bound.key(),
            value: object_bytes(&mut bound),
            precondition: Precondition::ModRevision(current.resource_version()),
        };
        match self.submit(op, Some(bound), span, Reply::Object(tx)) {
            Ok(()) => Answer::Later(rx),
            Err(r) => Answer::Ready(Err(r.error)),
        }
    }

    fn list(&self, msg: &List) -> Result<ObjectList, ApiError> {
        let kind = msg.kind;
        let prefix = match &msg.namespace {
            Some(ns) if kind.namespaced() => kind.namespace_prefix(ns),
            _ => kind.prefix(),
        };
        let filter = Filter {
            kind,
            namespace: msg.namespace.clone().filter(|_| kind.namespaced()),
            labels: msg.label_selector.clone(),
            fields: msg.field_selector.clone(),
        };
        let (start_after, mut list_rv, offset) = match &msg.continue_token {
            Some(token) => {
                let (rv, start, offset) = decode_continue(token)?;
                (Some(start), rv, offset)
            }
            None => (None, self.revision, 0),
        };
        // An exact, older revision is read from the store's history.
        if let ListVersion::Exact(rv) = msg.version {
            if rv != self.revision {
                let range = self
                    .store
                    .range(&prefix, Some(rv))
                    .map_err(|e| ApiError::from_store(e, kind, ""))?;
                let mut items = Vec::new();
                for kv in range.kvs {
                    if let Ok(mut o) = Object::from_json(kind, &kv.value) {
                        o.meta_mut().resource_version = Some(kv.mod_revision.to_string());
                        if filter.matches(&o) {
                            items.push(Arc::new(o));
                        }
                    }
                }
                return Ok(ObjectList {
                    items,
                    resource_version: rv,
                    continue_token: None,
                    remaining: None,
                });
            }
        }
        if let ListVersion::NotOlderThan(rv) = msg.version {
            if rv > self.revision {
                return Err(ApiError::Timeout(format!(
                    "Too large resource version: {rv}, current: {}",
                    self.revision
                )));
            }
        }
        if msg.continue_token.is_none() {
            list_rv = self.revision;
        }
        let lower = match &start_after {
            Some(k) => std::ops::Bound::Excluded(k.clone()),
            None => std::ops::Bound::Included(prefix.clone()),
        };
        let mut items = Vec::new();
        let mut last_key = None;
        let mut more = false;
        for (key, obj) in self.objects.matching(&prefix, lower, &filter) {
            if msg.limit > 0 && items.len() >= msg.limit {
                more = true;
                break;
            }
            last_key = Some(key.clone());
            items.push(obj);
        }
        let returned = offset + items.len() as u64;
        let continue_token = if more {
            last_key.map(|k| encode_continue(list_rv, &k, returned))
        } else {
            None
        };
        // As kube-apiserver: only without selectors (then it is the number of keys left under
        // the prefix, counted, not walked), and an estimate if objects came or went between
        // pages; at least 1 when there is a next page.
        let selectors = !filter.labels.is_empty() || !filter.fields.is_empty();
        let remaining = (more && !selectors)
            .then(|| self.objects.count(&prefix).saturating_sub(returned).max(1));
        Ok(ObjectList {
            items,
            resource_version: list_rv,
            continue_token,
            remaining,
        })
    }

    fn watch(&mut self, msg: Watch) -> Result<WatchStream, ApiError> {
        let filter = Filter {
            kind: msg.kind,
            namespace: msg.namespace.clone().filter(|_| msg.kind.namespaced()),
            labels: msg.label_selector,
            fields: msg.field_selector,
        };
        let mut initial = Vec::new();
        match msg.from {
            WatchFrom::Now => {
                let prefix = match &filter.namespace {
                    Some(ns) => msg.kind.namespace_prefix(ns),
                    None => msg.kind.prefix(),
                };
                let all = std::ops::Bound::Included(prefix.clone());
                for (_, obj) in self.objects.matching(&prefix, all, &filter) {
                    initial.push(WatchEvent::Added(obj));
                }
            }
            WatchFrom::Revision(rv) => {
                if rv < self.window.floor() {
                    return Err(ApiError::too_old(rv, self.window.floor() + 1));
                }
                if rv > self.revision {
                    return Err(ApiError::Timeout(format!(
                        "Too large resource version: {rv}, current: {}",
                        self.revision
                    )));
                }
                initial = self.window.replay(&filter, rv);
            }
        }
        let (tx, rx) = mpsc::channel(self.opts.watch_buffer + initial.len() + 1);
        for ev in initial {
            // Cannot fail: the channel was sized for the replay.
            let _ = tx.try_send(ev);
        }
        self.registry.add(filter, tx);
        Ok(WatchStream {
            rx,
            start_revision: self.revision,
        })
    }
}

fn object_bytes(obj: &mut Object) -> Arc<[u8]> {
    // The stored form carries no resourceVersion: it is the key's mod_revision, set on read
    // (as kube-apiserver's etcd3 store does). Cleared on the request's own object, which is
    // not shared (a copy of a shared one would be the whole object); `submit` sets the new
    // one. Encoded by `api::json` (serde_json's bytes, faster) into one exactly sized
    // shared slice; serializing the k8s-openapi types cannot fail (see `Object::to_json`).
    if obj.meta().resource_version.is_some() {
        obj.meta_mut().resource_version = None;
    }
    crate::api::json::to_shared_bytes(&crate::api::json::ObjectJson(obj))
        .unwrap_or_else(|_| Arc::from(&[][..]))
}

fn display_name(obj: &Object) -> String {
    match obj.namespace() {
        Some(ns) => format!("{ns}/{}", obj.name()),
        None => obj.name().to_string(),
    }
}

fn end_span(span: Option<OtelContext>) {
    if let Some(cx) = span {
        cx.span().end();
    }
}

/// The `continue` token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}`, as
/// kube-apiserver's storage encodes it.
/// A continue token: the list's revision, where the next page starts, and how many items the
/// pages so far returned (`n`, for `remainingItemCount`).
fn encode_continue(rv: Revision, last_key: &str, returned: u64) -> String {
    let json = serde_json::json!({
        "v": "meta.k8s.io/v1",
        "rv": rv,
        "start": format!("{last_key}\u{0}"),
        "n": returned,
    });
    base64::engine::general_purpose::URL_SAFE.encode(json.to_string())
}

fn decode_continue(token: &str) -> Result<(Revision, String, u64), ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid continue token: {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(|r| r.as_u64()).ok_or_else(bad)?;
    let start = v.get("start").and_then(|s| s.as_str()).ok_or_else(bad)?;
    let returned = v.get("n").and_then(|n| n.as_u64()).unwrap_or(0);
    Ok((rv, start.trim_end_matches('\u{0}').to_string(), returned))
}

impl Actor for ApiServer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Durable batches arrive in order on one stream; apply them as they come.
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if let Some(mut rx) = self.commits.take() {
            ctx.add_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        }
    }
}

impl StreamHandler<Arc<Vec<Arc<Event>>>> for ApiServer {
    fn handle(&mut self, batch: Arc<Vec<Arc<Event>>>, _ctx: &mut Self::Context) {
        self.apply_batch(&batch);
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The store closed: fail whatever still waits.
        let revs: Vec<Revision> = self.pending.keys().copied().collect();
        for rev in revs {
            self.fail_pending(rev, StoreError::Closed);
        }
    }
}

impl Handler<Create> for ApiServer {
    type Result = Answer<Arc<Object>>;
    fn handle(&mut self, msg: Create, _ctx: &mut Self::Context) -> Self::Result {
        self.create(msg)
    }
}

impl Handler<Update> for ApiServer {
    type Result = Answer<Arc<Object>>;
    fn handle(&mut self, msg: Update, _ctx: &mut Self::Context) -> Self::Result {
        self.update(msg)
    }
}

impl Handler<GuaranteedUpdate> for ApiServer {
    type Result = Answer<Arc<Object>>;
    fn handle(&mut self, msg: GuaranteedUpdate, _ctx: &mut Self::Context) -> Self::Result {
        self.guaranteed_update(msg)
    }
}

impl Handler<Delete> for ApiServer {
    type Result = Answer<Deleted>;
    fn handle(&mut self, msg: Delete, _ctx: &mut Self::Context) -> Self::Result {
        self.delete(msg)
    }
}

impl Handler<Bind> for ApiServer {
    type Result = Answer<Arc<Object>>;
    fn handle(&mut self, msg: Bind, _ctx: &mut Self::Context) -> Self::Result {
        self.bind(msg)
    }
}

// ---- BindBatch (the scheduler's binds of one turn), CreateBatch (events of one turn) ----
impl Handler<BindBatch> for ApiServer {
    type Result = ResponseFuture<Vec<Result<Arc<Object>, ApiError>>>;
    fn handle(&mut self, msg: BindBatch, _ctx: &mut Self::Context) -> Self::Result {
        let answers: Vec<Answer<Arc<Object>>> =
            msg.binds.into_iter().map(|b| self.bind(b)).collect();
        Box::pin(answer_all(answers))
    }
}

impl Handler<CreateBatch> for ApiServer {
    type Result = ResponseFuture<Vec<Result<Arc<Object>, ApiError>>>;
    fn handle(&mut self, msg: CreateBatch, _ctx: &mut Self::Context) -> Self::Result {
        let answers: Vec<Answer<Arc<Object>>> =
            msg.creates.into_iter().map(|c| self.create(c)).collect();
        Box::pin(answer_all(answers))
    }
}

/// Each answer's result, in order, once all are ready (durable).
async fn answer_all(answers: Vec<Answer<Arc<Object>>>) -> Vec<Result<Arc<Object>, ApiError>> {
    let mut out = Vec::with_capacity(answers.len());
    for a in answers {
        out.push(a.recv().await);
    }
    out
}
// ---- end BindBatch, CreateBatch ----

impl Handler<Get> for ApiServer {
    type Result = Result<Arc<Object>, ApiError>;
    fn handle(&mut self, msg: Get, _ctx: &mut Self::Context) -> Self::Result {
        let ns = if msg.kind.namespaced() {
            msg.namespace.as_deref().or(Some("default"))
        } else {
            None
        };
        self.get_object(msg.kind, ns, &msg.name)
            .ok_or_else(|| ApiError::not_found(msg.kind, &msg.name))
    }
}

impl Handler<ExpiredEvents> for ApiServer {
    type Result = Vec<(String, String)>;
    fn handle(&mut self, msg: ExpiredEvents, _ctx: &mut Self::Context) -> Self::Result {
        let prefix = Kind::Event.prefix();
        let mut out = Vec::new();
        let all = std::ops::Bound::Included(prefix.clone());
        for (key, entry) in self.objects.under(&prefix, all) {
            // Events are always kept encoded (`Entry::new`), with their last-seen time.
            let Entry::Encoded { last_seen, .. } = entry else {
                continue;
            };
            if crate::controllers::event_ttl::expired_at(*last_seen, msg.ttl, msg.now) {
                if let (Some(ns), name) = crate::informer::store::split_key(&key[prefix.len()..]) {
                    out.push((ns.to_string(), name.to_string()));
                }
            }
        }
        out
    }
}

impl Handler<List> for ApiServer {
    type Result = Result<ObjectList, ApiError>;
    fn handle(&mut self, msg: List, _ctx: &mut Self::Context) -> Self::Result {
        self.list(&msg)
    }
}

impl Handler<Watch> for ApiServer {
    type Result = Result<WatchStream, ApiError>;
    fn handle(&mut self, msg: Watch, _ctx: &mut Self::Context) -> Self::Result {
        self.watch(msg)
    }
}

impl Handler<CurrentRevision> for ApiServer {
    type Result = Revision;
    fn handle(&mut self, _msg: CurrentRevision, _ctx: &mut Self::Context) -> Revision {
        self.revision
    }
}

/// The namespace a request by name addresses: `default` when a namespaced kind's request
/// names none, nothing for a cluster-scoped kind.
fn request_namespace(kind: Kind, namespace: Option<String>) -> Option<String> {
    kind.namespaced()
        .then(|| namespace.unwrap_or_else(|| "default".into()))
}
