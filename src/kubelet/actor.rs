//! The `Kubelet` actor: one per node. It registers its Node (`registerWithAPIServer`),
//! renews its Lease in `kube-node-lease` and posts node status (both untraced: background
//! work joins no user trace), watches only the pods bound to its node (a `spec.nodeName`
//! field selector, which the API server serves from its node index), admits each new pod,
//! and hands every admitted pod to its own [`PodWorker`]. Container events from the node's
//! runtime are routed to the pod's worker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Node, NodeStatus, ObjectReference, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::admission::admit;
use super::config::{KubeletConfig, NodeConfig};
use super::node_status::{initial_node, internal_ip, lease, node_status, node_status_changed};
use super::pod_worker::{Env, Halt, PodRemoved, PodWorker, UpdatePod, WorkerDone};
use crate::api::selectors::FieldSelector;
use crate::api::{Kind, Object};
use crate::apiserver::{
    ApiError, ApiServer, Create, Get, Subresource, Trace, Update, WriteOptions,
};
use crate::clock::Clock;
use crate::events::{EventRecorder, NORMAL};
use crate::informer::{ApiSource, Informer, InformerEvent};
use crate::runtime::{ContainerEvent, ContainerRuntime, ListImages, SubscribeEvents};
use crate::telemetry::{Component, Telemetry};

/// `timers` slot of the lease loop.
const LEASE_LOOP: usize = 0;
/// `timers` slot of the node status loop.
const STATUS_LOOP: usize = 1;
/// The jitter factor of both loops (upstream's `0.04`).
const JITTER_FACTOR: f64 = 0.04;

/// `wait.Jitter(period, JITTER_FACTOR)` for a uniform `draw` in `[0, 1)`: between `period` and
/// 4 % more.
fn jittered(period: Duration, draw: f64) -> Duration {
    period.mul_f64(1.0 + JITTER_FACTOR * draw)
}

/// What a kubelet is started with.
pub struct KubeletOptions {
    pub node: NodeConfig,
    /// The node's position in `[nodes]` (its InternalIP follows from it).
    pub index: usize,
    pub config: KubeletConfig,
}

/// See the module documentation.
pub struct Kubelet {
    opts: KubeletOptions,
    env: Arc<Env>,
    informer: Option<Arc<Informer<Pod>>>,
    workers: HashMap<String, Addr<PodWorker>>,
    /// Pods rejected at admission (by uid): never run.
    rejected: std::collections::HashSet<String>,
    node: Option<Arc<Node>>,
    /// The status last posted, and when. Shared: every status check (each node every
    /// `nodeStatusUpdateFrequency`) hands it to its task, which only reads it.
    posted_status: Option<(Arc<NodeStatus>, Instant)>,
    // --- fault injection (`kubeactor node stop|start`) ---
    /// Stopped: no lease, no status, no pod workers (as a crashed or partitioned node).
    stopped: bool,
    /// The next tick of the lease and the status loop ([`LEASE_LOOP`], [`STATUS_LOOP`]),
    /// cancelled on stop.
    timers: [Option<SpawnHandle>; 2],
    /// Whether this kubelet already receives its runtime's container events.
    subscribed: bool,
}

/// Whether a kubelet is running (`kubeactor node stop|start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, MessageResponse)]
#[serde(rename_all = "lowercase")]
pub enum KubeletState {
    Running,
    Stopped,
}

impl KubeletState {
    pub fn as_str(self) -> &'static str {
        match self {
            KubeletState::Running => "running",
            KubeletState::Stopped => "stopped",
        }
    }
}

/// Fault injection: stop the kubelet as if its node crashed or was cut off. It stops renewing
/// its Lease and posting node status, stops watching its pods and drops its pod workers
/// without touching the runtime (containers keep running, or keep their exit state). Sent by
/// the admin endpoint `POST /kubeactor/v1/nodes/{name}/stop`. Replies with the new state.
#[derive(Message)]
#[rtype(result = "KubeletState")]
pub struct StopKubelet;

/// Fault injection: start a stopped kubelet again, as after a node comes back: it registers
/// (posting a fresh status), renews its Lease, lists its pods and reconciles each with what
/// the runtime still has. Sent by `POST /kubeactor/v1/nodes/{name}/start`. Replies with the
/// new state (a running kubelet is left alone).
#[derive(Message)]
#[rtype(result = "KubeletState")]
pub struct StartKubelet;

/// The Node as an event's `involvedObject` (upstream uses the node name as its uid).
fn node_reference(node: &str) -> ObjectReference {
    ObjectReference {
        kind: Some("Node".into()),
        name: Some(node.into()),
        uid: Some(node.into()),
        ..Default::default()
    }
}

impl Kubelet {
    pub fn new(
        opts: KubeletOptions,
        api: Addr<ApiServer>,
        runtime: Addr<ContainerRuntime>,
        clock: Arc<dyn Clock>,
        telemetry: &Telemetry,
    ) -> Kubelet {
        let name = opts.node.name.clone();
        let env = Arc::new(Env {
            host_ip: internal_ip(opts.index),
            recorder: EventRecorder::new(api.clone(), "kubelet", Some(&name)),
            tracer: telemetry.node_tracer(Component::Kubelet, &name),
            propagation: telemetry.propagation(),
            node: name,
            api,
            runtime,
            clock,
            config: opts.config.clone(),
        });
        Kubelet {
            opts,
            env,
            informer: None,
            workers: HashMap::new(),
            rejected: Default::default(),
            node: None,
            posted_status: None,
            stopped: false,
            timers: [None, None],
            subscribed: false,
        }
    }

    fn node_event(&self, reason: &str, message: String) {
        let recorder = self.env.recorder.clone();
        let reference = node_reference(&self.env.node);
        let reason = reason.to_string();
        actix::spawn(async move {
            let _ = recorder
                .write(reference, NORMAL, &reason, message, Trace::Untraced)
                .await;
        });
    }

    /// Register the Node (create, or take over an existing one), then the Lease. Mirrors
    /// `registerWithAPIServer` / `tryRegisterWithAPIServer`.
    async fn register(env: Arc<Env>, cfg: NodeConfig, index: usize) -> Result<Arc<Node>, ApiError> {
        let images = env.runtime.send(ListImages).await.unwrap_or_default();
        let now = crate::apiserver::strategy::now();
        let node = initial_node(&cfg, index, &images, now);
        let created = env
            .api
            .send(Create {
                object: Object::Node(node.clone().into()),
                options: WriteOptions::default(),
                trace: Trace::Untraced,
            })
            .await
            .map_err(ApiError::unreachable)?;
        let stored = match created {
            Ok(o) => o,
            Err(ApiError::AlreadyExists { .. }) => {
                let existing = env
                    .api
                    .send(Get {
                        kind: Kind::Node,
                        namespace: None,
                        name: cfg.name.clone(),
                    })
                    .await
                    .map_err(ApiError::unreachable)??;
                let mut n = match &*existing {
                    Object::Node(n) => (**n).clone(),
                    _ => Node::default(),
                };
                n.status = node.status.clone();
                n.metadata.resource_version = None;
                env.api
                    .send(Update {
                        object: Object::Node(n.into()),
                        subresource: Subresource::Status,
                        options: WriteOptions::default(),
                        trace: Trace::Untraced,
                    })
                    .await
                    .map_err(ApiError::unreachable)??
            }
            Err(e) => return Err(e),
        };
        let node = match &*stored {
            Object::Node(n) => n.clone(),
            _ => Arc::new(node),
        };
        Self::renew_lease(&env, &node).await?;
        Ok(node)
    }

    /// Create or renew the node's Lease (untraced).
    async fn renew_lease(env: &Env, node: &Node) -> Result<(), ApiError> {
        let l = lease(
            node,
            env.config.node_lease_duration_seconds,
            env.clock.wall(),
        );
        let updated = env
            .api
            .send(Update {
                object: Object::Lease(l.clone().into()),
                subresource: Subresource::Main,
                options: WriteOptions::default(),
                trace: Trace::Untraced,
            })
            .await
            .map_err(ApiError::unreachable)?;
        match updated {
            Ok(_) => Ok(()),
            Err(ApiError::NotFound { .. }) => env
                .api
                .send(Create {
                    object: Object::Lease(l.into()),
                    options: WriteOptions::default(),
                    trace: Trace::Untraced,
                })
                .await
                .map_err(ApiError::unreachable)?
                .map(|_| ()),
            Err(e) => Err(e),
        }
    }

    fn registered(&mut self, node: Arc<Node>, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        let name = self.env.node.clone();
        self.posted_status = node
            .status
            .clone()
            .map(|s| (Arc::new(s), self.env.clock.now()));
        self.node = Some(node);
        for reason in [
            "NodeHasSufficientMemory",
            "NodeHasNoDiskPressure",
            "NodeHasSufficientPID",
            "NodeReady",
        ] {
            self.node_event(reason, format!("Node {name} status is now: {reason}"));
        }
        // Lease renewals and status heartbeats: background work, untraced.
        self.cancel_timers(ctx);
        let renew = self.env.clock.period(self.env.config.lease_renew());
        self.jitter_until(ctx, LEASE_LOOP, renew, |act, ctx| {
            let Some(node) = act.node.clone() else { return };
            let env = act.env.clone();
            ctx.spawn(
                async move {
                    if let Err(e) = Self::renew_lease(&env, &node).await {
                        tracing::warn!(node = %env.node, error = %e, "lease renewal failed");
                    }
                }
                .into_actor(act),
            );
        });
        let every = self.env.clock.period(self.env.config.status_update());
        self.jitter_until(ctx, STATUS_LOOP, every, |act, ctx| {
            act.update_node_status(ctx)
        });

        if !self.subscribed {
            self.subscribed = true;
            self.env
                .runtime
                .do_send(SubscribeEvents(ctx.address().recipient()));
        }
        let selector = match FieldSelector::parse(&format!("spec.nodeName={name}")) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(node = %name, error = %e, "cannot select this node's pods");
                return;
            }
        };
        let informer = Arc::new(Informer::<Pod>::with_source(Arc::new(ApiSource {
            api: self.env.api.clone(),
            kind: Kind::Pod,
            namespace: None,
            field_selector: selector,
        })));
        informer.add_recipient(ctx.address().recipient());
        informer.start();
        self.informer = Some(informer);
    }

    /// Mirrors `wait.JitterUntil(f, period, 0.04, …)`, which drives the kubelet's lease
    /// controller (`component-helpers/apimachinery/lease.controller.Run`) and its
    /// `syncNodeStatus` loop: each wait is `period` plus up to 4 % more, drawn anew every time,
    /// so nodes that started together drift apart instead of renewing in the same instant.
    fn jitter_until(
        &mut self,
        ctx: &mut Context<Self>,
        slot: usize,
        period: Duration,
        tick: fn(&mut Self, &mut Context<Self>),
    ) {
        let wait = jittered(period, rand::random::<f64>());
        self.timers[slot] = Some(ctx.run_later(wait, move |act, ctx| {
            tick(act, ctx);
            act.jitter_until(ctx, slot, period, tick);
        }));
    }

    fn cancel_timers(&mut self, ctx: &mut Context<Self>) {
        for t in self.timers.iter_mut().filter_map(Option::take) {
            ctx.cancel_future(t);
        }
    }

    /// Mirrors `syncNodeStatus`: post when something changed, or when the report frequency
    /// elapsed.
    fn update_node_status(&mut self, ctx: &mut Context<Self>) {
        let Some(node) = self.node.clone() else {
            return;
        };
        let env = self.env.clone();
        let cfg = self.opts.node.clone();
        let index = self.opts.index;
        let previous = self.posted_status.clone();
        let report = env.clock.period(env.config.status_report());
        ctx.spawn(
            async move {
                let images = env.runtime.send(ListImages).await.unwrap_or_default();
                let now = crate::apiserver::strategy::now();
                let status =
                    node_status(&cfg, index, &images, previous.as_ref().map(|p| &*p.0), now);
                let due = match &previous {
                    Some((old, at)) => node_status_changed(old, &status) || at.elapsed() >= report,
                    None => true,
                };
                if !due {
                    return None;
                }
                let object = Object::from(Node {
                    metadata: ObjectMeta {
                        name: node.metadata.name.clone(),
                        ..Default::default()
                    },
                    spec: None,
                    status: Some(status.clone()),
                });
                let reply = env
                    .api
                    .send(Update {
                        object,
                        subresource: Subresource::Status,
                        options: WriteOptions::default(),
                        trace: Trace::Untraced,
                    })
                    .await;
                match reply {
                    Ok(Ok(_)) => Some(status),
                    _ => None,
                }
            }
            .into_actor(self)
            .map(|posted, act, _| {
                if let Some(s) = posted {
                    act.posted_status = Some((Arc::new(s), act.env.clock.now()));
                }
            }),
        );
    }

    /// The pods this node already runs (for admission): admitted and not finished.
    fn active_pods(&self) -> Vec<Arc<Pod>> {
        let Some(informer) = &self.informer else {
            return Vec::new();
        };
        informer
            .store()
            .list()
            .into_iter()
            .filter(|p| {
                let uid = p.metadata.uid.as_deref().unwrap_or("");
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                self.workers.contains_key(uid)
                    && !matches!(phase, Some("Succeeded") | Some("Failed"))
            })
            .collect()
    }

    fn pod_seen(&mut self, pod: Arc<Pod>, ctx: &mut Context<Self>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(w) = self.workers.get(&uid) {
            w.do_send(UpdatePod(pod));
            return;
        }
        if self.rejected.contains(&uid) {
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        if matches!(phase.as_deref(), Some("Succeeded") | Some("Failed"))
            && pod.metadata.deletion_timestamp.is_none()
        {
            return;
        }
        // New pods are admitted; pods already running (a kubelet restart) were admitted before.
        if phase.as_deref().is_none_or(|p| p == "Pending")
            && pod.metadata.deletion_timestamp.is_none()
        {
            let allocatable = self
                .node
                .as_ref()
                .map(|n| crate::scheduler::resource::node_allocatable(n))
                .unwrap_or_default();
            let active = self.active_pods();
            if let Err(r) = admit(&pod, &allocatable, active.iter().map(|p| p.as_ref())) {
                self.rejected.insert(uid);
                self.reject(&pod, r, ctx);
                return;
            }
        }
        let worker = PodWorker::new(self.env.clone(), pod, ctx.address().recipient()).start();
        self.workers.insert(uid, worker);
    }

    /// Mirrors `rejectPod`: a Warning event, and phase Failed with the reason.
    fn reject(&self, pod: &Pod, r: super::admission::Rejection, ctx: &mut Context<Self>) {
        let env = self.env.clone();
        let mut status = pod.status.clone().unwrap_or_default();
        status = PodStatus {
            phase: Some("Failed".into()),
            reason: Some(r.reason.clone()),
            message: Some(r.status_message()),
            qos_class: status.qos_class.take(),
            conditions: status.conditions.take(),
            ..Default::default()
        };
        let object = Object::from(Pod {
            metadata: ObjectMeta {
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            spec: None,
            status: Some(status),
        });
        let reference = crate::events::object_reference(&Object::Pod(pod.clone().into()));
        let cx = crate::telemetry::extract(&pod.metadata);
        ctx.spawn(
            async move {
                let _ = env
                    .recorder
                    .write(
                        reference,
                        crate::events::WARNING,
                        &r.reason,
                        r.message,
                        Trace::Untraced,
                    )
                    .await;
                let _ = env
                    .api
                    .send(Update {
                        object,
                        subresource: Subresource::Status,
                        options: WriteOptions::default(),
                        trace: Trace::Context(cx),
                    })
                    .await;
            }
            .into_actor(self),
        );
    }
}

impl Actor for Kubelet {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_kubelet(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(i) = self.informer.take() {
            i.stop();
        }
    }
}

impl Kubelet {
    /// Start (or restart) the kubelet: the `Starting` event, then registration; on success
    /// the lease and status loops and the pod watch ([`Kubelet::registered`]).
    fn start_kubelet(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        self.node_event("Starting", "Starting kubelet.".into());
        let env = self.env.clone();
        let cfg = self.opts.node.clone();
        let index = self.opts.index;
        ctx.wait(
            async move { Self::register(env, cfg, index).await }
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(node) => act.registered(node, ctx),
                    Err(e) => {
                        tracing::error!(node = %act.env.node, error = %e, "node registration failed; retrying");
                        let retry = act.env.clock.period(act.env.config.lease_renew());
                        ctx.run_later(retry, |act, ctx| act.start_kubelet(ctx));
                    }
                }),
        );
    }

    /// See [`StopKubelet`].
    fn stop_kubelet(&mut self, ctx: &mut Context<Self>) {
        self.stopped = true;
        self.cancel_timers(ctx);
        if let Some(i) = self.informer.take() {
            i.stop();
        }
        for (_, w) in self.workers.drain() {
            w.do_send(Halt);
        }
        self.rejected.clear();
        self.node = None;
        self.posted_status = None;
        tracing::info!(node = %self.env.node, "kubelet stopped (fault injection)");
    }
}

impl Handler<StopKubelet> for Kubelet {
    type Result = KubeletState;
    fn handle(&mut self, _: StopKubelet, ctx: &mut Context<Self>) -> KubeletState {
        if !self.stopped {
            self.stop_kubelet(ctx);
        }
        KubeletState::Stopped
    }
}

impl Handler<StartKubelet> for Kubelet {
    type Result = KubeletState;
    fn handle(&mut self, _: StartKubelet, ctx: &mut Context<Self>) -> KubeletState {
        if self.stopped {
            self.stopped = false;
            tracing::info!(node = %self.env.node, "kubelet started again (fault injection)");
            self.start_kubelet(ctx);
        }
        KubeletState::Running
    }
}

impl Handler<InformerEvent<Pod>> for Kubelet {
    type Result = ();
    fn handle(&mut self, ev: InformerEvent<Pod>, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        match ev {
            InformerEvent::Added(p) | InformerEvent::Updated { new: p, .. } => {
                self.pod_seen(p, ctx)
            }
            InformerEvent::Deleted(p) => {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                self.rejected.remove(&uid);
                if let Some(w) = self.workers.get(&uid) {
                    w.do_send(PodRemoved);
                }
            }
            InformerEvent::Synced => self.cleanup_orphaned_pods(ctx),
        }
    }
}

impl Kubelet {
    /// Mirrors the orphan part of `HandlePodCleanups` (pkg/kubelet/kubelet_pods.go): once the
    /// pod list is complete, kill and remove whatever the runtime still runs for pods that are
    /// no longer bound to this node — pods deleted while the kubelet was stopped.
    fn cleanup_orphaned_pods(&mut self, ctx: &mut Context<Self>) {
        use crate::runtime::{
            ListContainers, ListPodSandbox, RemovePodSandbox, StopContainer, StopPodSandbox,
        };
        let Some(informer) = &self.informer else {
            return;
        };
        let known: std::collections::HashSet<String> = informer
            .store()
            .list()
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let runtime = self.env.runtime.clone();
        let node = self.env.node.clone();
        // Only what existed before this list was complete: a pod admitted since is not an orphan.
        let listed_at = self.env.clock.wall();
        ctx.spawn(
            async move {
                let sandboxes = runtime
                    .send(ListPodSandbox { pod_uid: None })
                    .await
                    .unwrap_or_default();
                let orphans = sandboxes
                    .iter()
                    .filter(|sb| !known.contains(&sb.config.uid) && sb.created_at < listed_at);
                for sb in orphans {
                    tracing::info!(%node, pod = %format!("{}/{}", sb.config.namespace, sb.config.name), "removing an orphaned pod's containers");
                    let containers = runtime
                        .send(ListContainers {
                            pod_uid: Some(sb.config.uid.clone()),
                        })
                        .await
                        .unwrap_or_default();
                    for c in containers {
                        let _ = runtime
                            .send(StopContainer {
                                id: c.id,
                                timeout: std::time::Duration::ZERO,
                                trace: None,
                            })
                            .await;
                    }
                    let _ = runtime
                        .send(StopPodSandbox {
                            id: sb.id.clone(),
                            trace: None,
                        })
                        .await;
                    let _ = runtime.send(RemovePodSandbox { id: sb.id.clone() }).await;
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<ContainerEvent> for Kubelet {
    type Result = ();
    fn handle(&mut self, ev: ContainerEvent, _: &mut Context<Self>) {
        if let Some(w) = self.workers.get(&ev.pod_uid) {
            w.do_send(ev);
        }
    }
}

impl Handler<WorkerDone> for Kubelet {
    type Result = ();
    fn handle(&mut self, msg: WorkerDone, _: &mut Context<Self>) {
        self.workers.remove(&msg.uid);
    }
}

/// A running node: its kubelet and its container runtime.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    pub name: String,
    pub kubelet: Addr<Kubelet>,
    pub runtime: Addr<ContainerRuntime>,
}

/// Start a container runtime and a kubelet for every node of `[nodes]`, on the current
/// arbiter, with the clock of `[simulation]`.
pub fn start_nodes(
    config: &crate::config::Config,
    api: &Addr<ApiServer>,
    telemetry: &Telemetry,
) -> Result<Vec<NodeHandle>, crate::runtime::ipam::CidrError> {
    let clock = config.simulation.clock();
    let mut handles = Vec::new();
    for (index, node) in config.nodes.all().into_iter().enumerate() {
        let runtime = ContainerRuntime::new(
            &node.name,
            &node.pod_cidr,
            config.runtime.clone(),
            clock.clone(),
            telemetry,
        )?
        .start();
        let name = node.name.clone();
        let kubelet = Kubelet::new(
            KubeletOptions {
                node,
                index,
                config: config.kubelet.clone(),
            },
            api.clone(),
            runtime.clone(),
            clock.clone(),
            telemetry,
        )
        .start();
        handles.push(NodeHandle {
            name,
            kubelet,
            runtime,
        });
    }
    Ok(handles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_wait_their_period_plus_up_to_four_percent() {
        let ten = Duration::from_secs(10);
        assert_eq!(jittered(ten, 0.0), ten);
        assert_eq!(jittered(ten, 0.5), Duration::from_millis(10_200));
        assert!(jittered(ten, 0.999_999) < Duration::from_millis(10_400));
    }
}
