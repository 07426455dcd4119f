//! The garbage collector. Mirrors `pkg/controller/garbagecollector`.
//!
//! [`graph`] is the ownerReferences graph and the `attemptToDeleteItem` decision as plain
//! code; [`controller`] is the actor: it feeds the graph from the Deployment, ReplicaSet and
//! Pod informers (the kinds that own or are owned here) and works the queue with live reads
//! and writes through the `ApiServer`.
//!
//! Propagation policies, as a `DELETE` request chooses them (the ApiServer adds the
//! finalizers, see `strategy::decide_delete`):
//! * **Background** (the default): the owner goes at once; its dependents are then deleted
//!   because every owner they name is gone.
//! * **Foreground**: the owner stays, with `deletionTimestamp` and the `foregroundDeletion`
//!   finalizer, until every dependent whose reference has `blockOwnerDeletion: true` is gone;
//!   then the collector removes the finalizer and the ApiServer deletes it.
//! * **Orphan**: the owner stays with the `orphan` finalizer until the collector has removed
//!   it from its dependents' ownerReferences; then the finalizer goes and so does the owner.

pub mod controller;
pub mod graph;

pub use self::controller::GarbageCollector;
pub use self::graph::{decide, Decision, Graph, OwnerState, Work};

/// The component name on the Events this controller records.
pub const COMPONENT: &str = "garbage-collector-controller";

/// Failures before a work item is dropped (upstream retries forever with backoff; a dropped
/// item is picked up again by the next event on the object).
pub const MAX_RETRIES: u32 = 15;
