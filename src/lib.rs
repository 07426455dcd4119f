//! # kubeactor
//!
//! The Kubernetes control plane's chain of events, made runnable: every component an actix
//! actor with typed messages, every hop an OpenTelemetry span.
//!
//! # Layout
//!
//! * [`config`] — typed configuration, loaded from `config/default.toml`, a file, env, flags.
//! * [`api`] — the object model: the real `k8s-openapi` types in one [`api::Object`] enum,
//!   storage keys, defaulting, validation, label and field selectors.
//! * [`store`] — the revisioned, durable store with etcd's semantics (redb behind a
//!   write-ahead log, or memory; group commit, watch from a revision, compaction).
//! * [`apiserver`] — the `ApiServer` actor: the only owner of the store; validates, stores,
//!   and fans watch events out to clients through an indexed watcher registry. Its
//!   [`apiserver::http`] module is the REST API kubectl talks to.
//! * [`informer`] — list-then-watch caches of `Arc` objects with indexes, shared per kind.
//! * [`controllers`] — kube-controller-manager: the rate-limited work queue and the
//!   controllers (Deployment, ReplicaSet, garbage collector, Event TTL, node lifecycle, taint
//!   eviction), each an actor over
//!   shared informers, started together by the `ControllerManager`.
//! * [`scheduler`] — kube-scheduler: scheduling queue, framework, the default plugins, and the
//!   Scheduler actor that binds pods.
//! * [`clock`] — simulated time: every simulated delay and period, scaled by one `speed`.
//! * [`kubelet`] — one Kubelet actor per node (registration, lease, node status, admission)
//!   and a PodWorker actor per pod (sandbox, images, containers, probes, restarts, status).
//! * [`runtime`] — the container runtime (CRI verbs), one actor per node: images, sandboxes,
//!   container state machines, simulated durations and logs.
//! * [`events`] — the Event recorder every component uses (reasons and messages as upstream).
//! * [`telemetry`] — tracer providers per component, trace context through messages and
//!   through objects (`traceparent` annotation), OTLP export, the in-memory span store.
//! * [`cluster`] — wiring: start the components from a [`config::Config`].
//! * [`metrics`] — Prometheus metrics under upstream names, one registry per process.
//! * [`client`] — the `kubeactor` commands' connection to a running daemon (its kubeconfig).
//! * [`demo`] — `kubeactor demo`: a scenario loop (create, scale, roll out, delete) that keeps
//!   producing one trace per step.
//!
//! # Where to start reading
//!
//! Follow the chain: [`apiserver`] (a request becomes a store write and a watch event), then
//! the [`store`] contracts, then [`controllers`] and [`scheduler`] (who react to the watch
//! events), then [`telemetry`] for how each hop becomes a span. `docs/architecture.md` has the
//! picture.

pub mod api;
pub mod apiserver;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod controllers;
pub mod demo;
pub mod events;
pub mod informer;
pub mod kubelet;
// --- metrics (issue 7) ---
pub mod metrics;
// --- end metrics ---
pub mod runtime;
pub mod scheduler;
pub mod store;
pub mod telemetry;
