//! The ApiServer's typed messages: its whole API.
//!
//! Every component talks to the API server only through these (the HTTP layer translates
//! REST calls into them). Writes carry a [`Trace`]: the caller's context, so the API server's
//! span — and the `traceparent` saved on the written object — continue the caller's trace.

use std::sync::Arc;

use actix::Message;
use k8s_openapi::api::core::v1::Binding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use opentelemetry::Context;
use tokio::sync::mpsc;

use super::error::ApiError;
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::{Kind, Object};
use crate::store::Revision;

/// How a request relates to tracing.
#[derive(Clone, Debug, Default)]
pub enum Trace {
    /// Background work (lease renewals, resyncs, heartbeats): no span, and the written object
    /// carries no `traceparent`, so nothing downstream joins a user's trace through it.
    #[default]
    Untraced,
    /// Part of a trace: the API server's span is a child of this context (a new root if the
    /// context has no span, e.g. an HTTP request without a `traceparent` header).
    Context(Context),
}

impl Trace {
    /// A traced request continuing `cx`.
    pub fn child_of(cx: Context) -> Trace {
        Trace::Context(cx)
    }
    /// A traced request that starts a new trace (its span is a root).
    pub fn root() -> Trace {
        Trace::Context(Context::new())
    }
}

/// Options common to writes.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run admission and validation, store nothing, reply as if stored.
    pub dry_run: bool,
    /// The span name prefix, e.g. `kubectl create` (from the HTTP layer); empty = the verb.
    pub span_name: Option<String>,
    /// The client's command (kubectl's `Kubectl-Command` header, e.g. `kubectl set image`),
    /// recorded on the request span as `kubectl.command`.
    pub command: Option<String>,
}

/// Create an object. Sent by the HTTP layer (POST) and by controllers (ReplicaSets, Pods,
/// Events). Replies with the stored object (its resourceVersion set) once durable, or
/// AlreadyExists / Invalid / NotFound (namespace) / BadRequest.
#[derive(Message)]
#[rtype(result = "Result<Arc<Object>, ApiError>")]
pub struct Create {
    pub object: Object,
    pub options: WriteOptions,
    pub trace: Trace,
}

/// Read one object from the API server's cache (always the latest durable state). Replies
/// NotFound when absent.
#[derive(Message)]
#[rtype(result = "Result<Arc<Object>, ApiError>")]
pub struct Get {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
}

/// Which state a list reads (`resourceVersion` + `resourceVersionMatch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListVersion {
    /// Unset: the most recent state.
    #[default]
    Latest,
    /// `resourceVersion=0`: any state (served from the cache).
    Any,
    /// `resourceVersion=N` (NotOlderThan): at least N.
    NotOlderThan(Revision),
    /// `resourceVersionMatch=Exact`: exactly N (read from the store's history).
    Exact(Revision),
}

/// List objects of a kind. Sent by the HTTP layer and by informers (before they watch).
#[derive(Message, Clone, Debug)]
#[rtype(result = "Result<ObjectList, ApiError>")]
pub struct List {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub version: ListVersion,
    /// Page size (`limit`); 0 = everything.
    pub limit: usize,
    /// The `continue` token of the previous page.
    pub continue_token: Option<String>,
}

impl List {
    /// Every object of a kind, latest state, one page.
    pub fn all(kind: Kind) -> List {
        List {
            kind,
            namespace: None,
            label_selector: LabelSelector::default(),
            field_selector: FieldSelector::default(),
            version: ListVersion::Latest,
            limit: 0,
            continue_token: None,
        }
    }
}

/// A list result.
#[derive(Clone, Debug)]
pub struct ObjectList {
    pub items: Vec<Arc<Object>>,
    /// The revision the list reflects (`metadata.resourceVersion`): watch from it.
    pub resource_version: Revision,
    /// Token for the next page, if any.
    pub continue_token: Option<String>,
    /// How many more items match after this page (`remainingItemCount`).
    pub remaining: Option<u64>,
}

/// Which part of an object an update may change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Subresource {
    /// The main resource: spec and metadata; `status` is kept as stored.
    #[default]
    Main,
    /// The `status` subresource: only `status` changes (UpdateStatus).
    Status,
}

/// The Events last seen more than `ttl` before `now`, as (namespace, name), for the sweep that
/// deletes them ([`crate::controllers::event_ttl`]). Answered from the times the API server
/// keeps beside each Event, without decoding them: the sweep runs every minute over what
/// may be hundreds of thousands of Events. Sent by the event-TTL controller.
#[derive(Message)]
#[rtype(result = "Vec<(String, String)>")]
pub struct ExpiredEvents {
    pub ttl: std::time::Duration,
    pub now: jiff::Timestamp,
}

/// Replace an object (PUT). If `metadata.resourceVersion` is set it must equal the stored one
/// (else 409 Conflict); if unset the update is unconditional: it applies to the latest
/// accepted state, including a write not yet durable (as upstream's `GuaranteedUpdate`
/// retries internally when the request carries no precondition). Replies with the stored object
/// (unchanged and not rewritten if the update changes nothing), NotFound, Conflict, Invalid.
/// Removing the last finalizer of an object being deleted deletes it.
#[derive(Message)]
#[rtype(result = "Result<Arc<Object>, ApiError>")]
pub struct Update {
    pub object: Object,
    pub subresource: Subresource,
    pub options: WriteOptions,
    pub trace: Trace,
}

/// The change a [`GuaranteedUpdate`] makes: given the object's latest state, the object to
/// store (or an error, sent back as the reply).
pub type UpdateFn = Box<dyn FnOnce(&Object) -> Result<Object, ApiError> + Send>;

/// Read-modify-write inside the API server: `change` is applied to the object's *latest
/// accepted* state (including writes not yet durable), and the result is written as an
/// [`Update`] against that state — so no concurrent write makes it fail with a spurious 409.
/// The HTTP layer's PATCH and `scale` use it. If `change` sets a `metadata.resourceVersion`
/// other than the current one (a patch that names one), that is the caller's precondition
/// and a mismatch is a Conflict, as for an Update.
///
/// Mirrors `GuaranteedUpdate` in k8s.io/apiserver/pkg/storage/etcd3/store.go (its
/// `tryUpdate` function), as upstream's patcher uses it.
#[derive(Message)]
#[rtype(result = "Result<Arc<Object>, ApiError>")]
pub struct GuaranteedUpdate {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
    pub subresource: Subresource,
    pub change: UpdateFn,
    pub options: WriteOptions,
    pub trace: Trace,
}

/// What a delete did.
#[derive(Clone, Debug)]
pub enum Deleted {
    /// The object is gone; this is its last state.
    Gone(Arc<Object>),
    /// Deletion started but the object stays: graceful pod termination, finalizers
    /// (`foregroundDeletion`, `orphan`, or the object's own). This is its new state, with
    /// `deletionTimestamp` set.
    Pending(Arc<Object>),
}

impl Deleted {
    pub fn object(&self) -> &Arc<Object> {
        match self {
            Deleted::Gone(o) | Deleted::Pending(o) => o,
        }
    }
}

/// Delete an object with DeleteOptions (propagationPolicy, gracePeriodSeconds,
/// preconditions). Sent by the HTTP layer, the garbage collector, the kubelet (grace 0 after
/// termination) and the node lifecycle controller (eviction). Without a
/// `preconditions.resourceVersion` it applies to the latest accepted state, including a write
/// not yet durable; with one, a mismatch is 409 Conflict.
#[derive(Message)]
#[rtype(result = "Result<Deleted, ApiError>")]
pub struct Delete {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
    pub options: DeleteOptions,
    pub write: WriteOptions,
    pub trace: Trace,
}

/// Bind a pod to a node (the `pods/binding` subresource). Sent by the scheduler. Sets
/// `spec.nodeName` and the `PodScheduled` condition; Conflict if already bound or being
/// deleted. Replies with the bound pod.
#[derive(Message)]
#[rtype(result = "Result<Arc<Object>, ApiError>")]
pub struct Bind {
    pub namespace: String,
    pub binding: Binding,
    pub trace: Trace,
}

/// Several [`Bind`]s in one message: the scheduler sends the decisions of one turn together.
/// Each is handled exactly as a `Bind` (its own span, precondition and reply) and handed to
/// the store back to back, so they share group commits; the reply lists each bind's result,
/// in order, once all are durable. Upstream's scheduler binds in parallel goroutines; this
/// saves a message, a reply and a task per pod.
#[derive(Message)]
#[rtype(result = "Vec<Result<Arc<Object>, ApiError>>")]
pub struct BindBatch {
    pub binds: Vec<Bind>,
}

/// Several [`Create`]s in one message: the event recorder sends the events a component
/// records in one turn together (the scheduler's `Scheduled` events of one batch of binds).
/// Each is handled exactly as a `Create` (its own admission, validation, span, `traceparent`
/// and durable write); the reply lists each create's result, in order, once all are durable.
/// Saves a message, a reply and a task per object on both sides, as [`BindBatch`] does.
#[derive(Message)]
#[rtype(result = "Vec<Result<Arc<Object>, ApiError>>")]
pub struct CreateBatch {
    pub creates: Vec<Create>,
}

/// One watch event.
#[derive(Clone, Debug)]
pub enum WatchEvent {
    Added(Arc<Object>),
    Modified(Arc<Object>),
    Deleted(Arc<Object>),
    /// Progress notification: everything up to this revision has been sent.
    Bookmark(Revision),
    /// The watch fell behind or started too far back: 410 Gone. The client must relist.
    /// Nothing follows.
    Error(ApiError),
}

impl WatchEvent {
    /// The object's revision (or the bookmark's).
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                o.resource_version()
            }
            WatchEvent::Bookmark(r) => *r,
            WatchEvent::Error(_) => 0,
        }
    }
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WatchFrom {
    /// Unset or `0`: synthetic ADDED events for every current match, then live.
    #[default]
    Now,
    /// After revision N: replay from the watch cache, then live; 410 Gone if N is too old.
    Revision(Revision),
}

/// Watch objects of a kind. Filters: namespace, label and field selector (`spec.nodeName`
/// and `metadata.name` are indexed, so a kubelet's watch sees only its node's pods).
/// Replies with a receiver of events; dropping it ends the watch. A watcher that does not keep
/// up is sent `WatchEvent::Error(Gone)` and closed.
#[derive(Message, Clone, Debug)]
#[rtype(result = "Result<WatchStream, ApiError>")]
pub struct Watch {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub from: WatchFrom,
}

impl Watch {
    /// Every object of a kind, starting now.
    pub fn all(kind: Kind) -> Watch {
        Watch {
            kind,
            namespace: None,
            label_selector: LabelSelector::default(),
            field_selector: FieldSelector::default(),
            from: WatchFrom::Now,
        }
    }
}

/// The receiving end of a watch.
pub struct WatchStream {
    pub rx: mpsc::Receiver<WatchEvent>,
    /// The revision the watch started at (after the synthetic ADDED events, if any).
    pub start_revision: Revision,
}

/// The API server's current revision (for tests and bookmarks).
#[derive(Message)]
#[rtype(result = "Revision")]
pub struct CurrentRevision;
