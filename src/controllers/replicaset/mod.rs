//! The ReplicaSet controller. Mirrors `pkg/controller/replicaset`.
//!
//! The decisions are plain functions: [`expectations`] (never create twice while the watch
//! lags), [`sync`] (`manageReplicas`, slow-start batches, pods from the template,
//! `calculateStatus`), [`ranking`] (which pods go first on scale-down), and adoption / release
//! by selector in [`crate::controllers::ref_manager`]. The actor ([`controller`]) gathers the
//! inputs from its informer caches and performs the writes through the `ApiServer`.

pub mod controller;
pub mod expectations;
pub mod ranking;
pub mod sync;

pub use self::controller::{ReplicaSetController, ReplicaSetOptions};
pub use self::expectations::Expectations;
pub use self::sync::{calculate_status, manage_replicas, slow_start_batches, Manage};

/// `maxRetries` of upstream's ReplicaSet controller.
pub const MAX_RETRIES: u32 = 15;
/// Upstream's `BurstReplicas`: at most this many creates or deletes per sync.
pub const BURST_REPLICAS: usize = 500;

/// Event reasons, as upstream's `pkg/controller/controller_utils.go`.
pub mod reason {
    pub const SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
    pub const FAILED_CREATE: &str = "FailedCreate";
    pub const SUCCESSFUL_DELETE: &str = "SuccessfulDelete";
    pub const FAILED_DELETE: &str = "FailedDelete";
}

/// The component name on the Events this controller records.
pub const COMPONENT: &str = "replicaset-controller";
