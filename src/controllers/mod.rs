//! kube-controller-manager: the controllers, each an actor with the same shape — informer
//! event handlers only enqueue keys into a [`workqueue::WorkQueue`]; a worker takes a key,
//! runs `sync(key)`, and on error requeues it with backoff.

pub mod deployment;
pub mod workqueue;
