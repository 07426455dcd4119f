//! kube-scheduler: place each pending pod on a node.
//!
//! Mirrors kubernetes `pkg/scheduler`. The pure parts, each testable without actors:
//!
//! * [`queue`] — the scheduling queue (activeQ by priority, backoffQ, unschedulable pods
//!   moved back by cluster events or after 5 minutes), on an injectable clock;
//! * [`snapshot`] — the scheduler's cache of nodes and their pods (`NodeInfo`), with
//!   assume / forget so back-to-back decisions never double-book a node;
//! * [`framework`] — extension points, `Status`, `CycleState`, and the `Framework` that runs
//!   one scheduling cycle (PreFilter → Filter over a sample of nodes → PostFilter on failure
//!   → PreScore → Score → NormalizeScore × weight → select host → Reserve → Bind), with the
//!   `FitError` message upstream prints;
//! * [`plugins`] — the in-tree plugins, one file each, upstream names and reasons;
//! * [`profile`] — profiles from configuration (plugins, weights, arguments);
//! * [`resource`] — pod requests and node allocatable (quantities);
//! * [`metrics`] — latency histograms for the scheduler's stats;
//! * [`reflector`] — the scheduler's pod list-watches (no typed cache: the snapshot and the
//!   queue are the caches);
//! * [`actor`] — the `Scheduler` actor: informers in, `Bind` / status / events out, a span
//!   per attempt.
//!
//! Start with [`framework::Framework::schedule`], then a plugin such as
//! [`plugins::node_resources_fit`].

pub mod actor;
pub mod framework;
pub mod helpers;
pub mod metrics;
pub mod plugins;
pub mod profile;
pub mod queue;
pub mod reflector;
pub mod resource;
pub mod snapshot;

pub use framework::{
    Code, CycleState, Diagnosis, FitError, Framework, ScheduleError, ScheduleResult, Status,
};
pub use profile::{default_profile, SchedulerConfig, SchedulerProfile};
pub use queue::{Clock, ClusterEvent, FakeClock, QueueOptions, RealClock, SchedulingQueue};
pub use snapshot::{NodeInfo, PodInfo, Snapshot};
