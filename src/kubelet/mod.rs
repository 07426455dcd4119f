//! The kubelet: one [`Kubelet`] actor per simulated node.
pub mod config;
