//! The deployment controller. Mirrors `pkg/controller/deployment`.
//!
//! The decision is a plain function: [`sync_deployment`] takes a Deployment, the
//! ReplicaSets it controls, the pods of those ReplicaSets (for Recreate) and the time, and
//! returns the [`Action`]s to perform through the API server, the events to record, and
//! when to look again. The actor (the next step) only gathers the inputs from its informer
//! caches and performs the actions in order, stopping at the first error and requeueing the
//! key with backoff — as upstream returns at the first failed write.
//!
//! Files follow upstream: [`sync`] (`sync.go`: scaling, new RS, cleanup, status),
//! [`rolling`] (`rolling.go`), [`recreate`] (`recreate.go`), [`rollback`] (rollbacks in
//! apps/v1: a template equal to an old RS's), [`progress`] (`progress.go`: the Progressing
//! condition), [`util`] (`util/deployment_util.go`).

pub mod controller;
pub mod progress;
pub mod recreate;
pub mod rollback;
pub mod rolling;
pub mod sync;
pub mod util;

#[cfg(test)]
mod tests;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

pub use self::controller::DeploymentController;
pub use self::sync::{on_create_conflict, sync_deployment, PodMap};

/// `maxRetries` of upstream's deployment controller: a key failing this many times in a row
/// is dropped from the queue.
pub const MAX_RETRIES: u32 = 15;

/// Errors of the sync logic.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// `spec.strategy.type` is neither RollingUpdate nor Recreate.
    #[error("unexpected strategy type: {0}")]
    UnsupportedStrategy(String),
    /// maxSurge / maxUnavailable is neither an int nor a percentage.
    #[error("{0}")]
    InvalidIntOrPercent(String),
}

/// One write the sync decided on, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the new ReplicaSet (`<deployment>-<pod-template-hash>`). AlreadyExists: see
    /// [`on_create_conflict`].
    CreateReplicaSet(ReplicaSet),
    /// Update a ReplicaSet (scale, annotations, minReadySeconds); carries the
    /// resourceVersion it was read at, so a stale cache gets a 409 and a requeue.
    UpdateReplicaSet(ReplicaSet),
    /// Delete an old ReplicaSet beyond `revisionHistoryLimit` (NotFound is success).
    DeleteReplicaSet { namespace: String, name: String },
    /// Update the deployment's `status` subresource, with its annotations: the
    /// `deployment.kubernetes.io/revision` annotation goes through UpdateStatus, as upstream's
    /// `getNewReplicaSet` writes it. The status strategy keeps the stored spec and labels, so
    /// the generation does not move (through the main resource, an annotation change bumps
    /// it).
    UpdateDeploymentStatus(Deployment),
}

/// The type of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// An event to record on the deployment (as upstream's `eventRecorder.Eventf`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventIntent {
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

/// When to sync the deployment again, besides informer events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// At once, rate-limited (`enqueueRateLimited`).
    RateLimited,
    /// After this delay (`enqueueAfter`: the progress deadline check).
    After(Duration),
}

/// What one sync decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncResult {
    pub actions: Vec<Action>,
    pub events: Vec<EventIntent>,
    pub requeue: Option<Requeue>,
}
