//! The container runtime: one [`ContainerRuntime`] actor per node, speaking the CRI verbs
//! the kubelet uses (`RunPodSandbox`, `PullImage`, `CreateContainer`, `StartContainer`, …).
//!
//! Nothing runs for real. What a container does is read from its command line
//! ([`script`]); which images exist, how big they are and how long pulls take is decided by
//! [`images`] and [`config::RuntimeConfig`]; pod IPs come from the node's pod CIDR
//! ([`ipam`]). Every simulated duration goes through the [`crate::clock::Clock`]. The rules
//! are written down for users in `docs/nodes.md`.
//!
//! * [`messages`] — the CRI messages and their replies (start here);
//! * [`actor`] — the actor: image store, sandboxes, container state machines, logs, spans
//!   (`run pod sandbox`, `pull image nginx:1.27`, `create container nginx`,
//!   `start container nginx`, under service `container-runtime`).

pub mod actor;
pub mod config;
pub mod images;
pub mod ipam;
pub mod messages;
pub mod script;

pub use actor::ContainerRuntime;
pub use config::RuntimeConfig;
pub use messages::*;
