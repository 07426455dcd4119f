//! kube-controller-manager: the controllers, each an actor with the same shape — informer
//! event handlers only enqueue keys into a [`workqueue::WorkQueue`]; a worker takes a key,
//! runs `sync(key)`, and on error requeues it with backoff.
//!
//! * [`manager`] — the `ControllerManager`: one shared informer factory, every controller.
//! * [`deployment`] — Deployments → ReplicaSets (rollouts, scaling, rollback, history).
//! * [`replicaset`] — ReplicaSets → Pods (expectations, slow start, adoption, ranking).
//! * [`garbagecollector`] — the ownerReferences graph; Background, Foreground, Orphan.
//! * [`event_ttl`] — Events expire after a TTL.
//! * [`nodelifecycle`] — nodes not heard from become Unknown and tainted `unreachable`;
//!   [`tainteviction`] — pods on NoExecute-tainted nodes are evicted after their toleration.
//! * [`ref_manager`] — adoption and release by selector; [`sync_span`] — a span per sync.

pub mod deployment;
pub mod event_ttl;
pub mod garbagecollector;
pub mod manager;
pub mod nodelifecycle;
pub mod ref_manager;
pub mod replicaset;
pub mod sync_span;
pub mod tainteviction;
pub mod workqueue;

pub use self::manager::ControllerManager;
