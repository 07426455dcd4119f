//! Sync spans: every sync is a `kube-controller-manager` span (`sync deployment default/web`),
//! a child of the context saved on the object whose watch event triggered it, and every write
//! the sync makes carries the span's context — so the chain of one user action stays one trace.
//!
//! Which context is the parent:
//! (In `[telemetry] propagation = "link"` mode the sync span is instead a new root with a span
//! link to that context; see `telemetry::start_reaction`.)
//!
//! 1. the context of the object whose informer event last enqueued the key ([`Triggers`]):
//!    a pod deleted by `kubectl delete pod` makes its ReplicaSet's sync part of that trace;
//! 2. otherwise the synced object's own context (a requeue after backoff or a delay);
//! 3. otherwise nothing: an object written by background work (`Trace::Untraced`) carries no
//!    context, and its sync starts **no** span and writes untraced — resyncs and periodic
//!    work never start a user trace.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use opentelemetry::trace::{SpanBuilder, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::apiserver::Trace;
use crate::telemetry::{self, Propagation};

/// The context saved on `meta`, if it holds a valid span context.
pub fn context_of(meta: &ObjectMeta) -> Option<Context> {
    let cx = telemetry::extract(meta);
    cx.span().span_context().is_valid().then_some(cx)
}

/// The context of the latest triggering event per queue key.
pub struct Triggers<K: std::hash::Hash + Eq = String> {
    by_key: HashMap<K, Context>,
}

impl<K: std::hash::Hash + Eq> Default for Triggers<K> {
    fn default() -> Self {
        Triggers {
            by_key: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq> Triggers<K> {
    /// `key` was enqueued because of an event on the object with `meta`: remember its context
    /// (if it has one; the latest wins).
    pub fn note(&mut self, key: K, meta: &ObjectMeta) {
        if let Some(cx) = context_of(meta) {
            self.by_key.insert(key, cx);
        }
    }

    /// The context to continue for `key`'s sync (consumed).
    pub fn take(&mut self, key: &K) -> Option<Context> {
        self.by_key.remove(key)
    }

    pub fn forget(&mut self, key: &K) {
        self.by_key.remove(key);
    }
}

/// The controller manager's tracer and the `[telemetry] propagation` mode its syncs follow.
#[derive(Clone, Debug)]
pub struct SyncTracer {
    tracer: SdkTracer,
    propagation: Propagation,
}

impl SyncTracer {
    pub fn new(tracer: SdkTracer, propagation: Propagation) -> SyncTracer {
        SyncTracer {
            tracer,
            propagation,
        }
    }
}

/// One sync's span, or none for untraced work. Ends when dropped.
pub struct SyncSpan {
    cx: Option<Context>,
}

impl SyncSpan {
    /// Start `name` caused by `parent` — its child, or in `link` mode a new root linked to it
    /// ([`telemetry::start_reaction`]); no span when `parent` is `None`.
    pub fn start(tracer: &SyncTracer, name: String, parent: Option<Context>) -> SyncSpan {
        let cx = parent.map(|parent| {
            telemetry::start_reaction(
                &tracer.tracer,
                tracer.propagation,
                SpanBuilder::from_name(name),
                &parent,
            )
        });
        SyncSpan { cx }
    }

    /// How this sync's writes relate to tracing: children of the span, or untraced.
    pub fn trace(&self) -> Trace {
        match &self.cx {
            Some(cx) => Trace::Context(cx.clone()),
            None => Trace::Untraced,
        }
    }

    pub fn is_recording(&self) -> bool {
        self.cx.is_some()
    }

    pub fn attribute(&self, kv: KeyValue) {
        if let Some(cx) = &self.cx {
            cx.span().set_attribute(kv);
        }
    }

    /// A span event (a decision, e.g. `expectations not satisfied`).
    pub fn event(&self, name: impl Into<String>, attrs: Vec<KeyValue>) {
        if let Some(cx) = &self.cx {
            cx.span().add_event(name.into(), attrs);
        }
    }

    /// Mark the span failed.
    pub fn fail(&self, err: &dyn std::fmt::Display) {
        if let Some(cx) = &self.cx {
            cx.span().set_status(Status::error(err.to_string()));
        }
    }
}

impl Drop for SyncSpan {
    fn drop(&mut self) {
        if let Some(cx) = &self.cx {
            cx.span().end();
        }
    }
}
