//! The kubelet: one [`Kubelet`] actor per simulated node, with one [`PodWorker`] actor per
//! pod bound to it. Mirrors kubernetes `pkg/kubelet`.
//!
//! * [`config`] — `[nodes]` and `[kubelet]`;
//! * [`node_status`] — the Node it registers, its status and its Lease (plain functions);
//! * [`admission`] — whether a bound pod fits the node (`OutOfcpu`, …);
//! * [`actions`] — which containers a sync starts (`computePodActions`);
//! * [`status`] — the pod status from the runtime's view (`generateAPIPodStatus`);
//! * [`backoff`] — crash and pull back-off; [`probes`] — probe rules and thresholds;
//! * [`pod_worker`] — the per-pod actor: sync, probes, termination;
//! * [`actor`] — the Kubelet actor: registration, lease, node status, pod watch, admission.

pub mod actions;
pub mod actor;
pub mod admission;
pub mod backoff;
pub mod config;
pub mod node_status;
pub mod pod_worker;
pub mod probes;
pub mod status;

pub use actor::{Kubelet, KubeletOptions};
pub use pod_worker::PodWorker;
