//! The `Scheduler` actor: kube-scheduler as a client of the API server.
//!
//! It keeps three kinds of list-watches (list, then watch from the list's revision, relist on
//! 410 Gone): a [`crate::informer`] for nodes and [`super::reflector`]s for pods, the pods
//! filtered by the API server:
//!
//! * **nodes** — all of them, into the [`Snapshot`];
//! * **assigned pods** — `spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed`, into
//!   the snapshot (their requests count on their node; an assumed pod is confirmed when it
//!   arrives here);
//! * **pending pods**, one list-watch per profile — `spec.nodeName=,spec.schedulerName=<profile>`
//!   — into the [`SchedulingQueue`]. A pod that gets bound *stops matching*, so this list-watch
//!   sees it DELETED while the assigned-pods one sees it ADDED.
//!
//! Nothing is scheduled before every list-watch has synced (upstream waits for its caches
//! too), so a decision never ignores a pod that is already bound.
//!
//! Pods are scheduled one at a time. A decision is assumed in the snapshot at once (so the
//! next decision, made before the Bind reply, already counts it), then bound with the
//! ApiServer's `Bind` message (the `pods/binding` subresource). On success a `Scheduled`
//! event says `Successfully assigned <ns>/<name> to <node>`; if the bind fails, the decision
//! is forgotten and the pod retried with backoff. A pod no node fits gets `PodScheduled=False`,
//! reason `Unschedulable`, with upstream's message (an `Update` of the status subresource), and
//! a `FailedScheduling` warning event with the same message.
//!
//! The logic lives in [`SchedulerCore`], a plain struct that turns informer events into cache
//! and queue updates and a popped pod into an [`Outcome`]; the actor only carries those to
//! the API server and back.
//!
//! # The trace
//!
//! Each attempt is a `kube-scheduler` span `schedule pod <ns>/<name>`, a child of the pod's
//! `traceparent` (the context of the write that created it), with three children:
//!
//! * `filter` — how many nodes were evaluated and found feasible, an event with the count of
//!   nodes per rejection reason, and one `node rejected` event (node, plugin, reasons) for up
//!   to [`TRACE_REJECTED_NODES`] nodes: bounded however many nodes there are;
//! * `score` — one `node scored` event per top node (rank, node, each plugin's weighted score,
//!   total), the winner first;
//! * `bind` — the `Bind` request; the API server's span is its child.
//!
//! The winner is the `k8s.node.name` attribute of the `schedule pod` span; a pod that does not
//! fit has an `unschedulable` event with the message instead.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use opentelemetry::trace::{Span, SpanBuilder, TraceContextExt, Tracer};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use tokio::sync::mpsc;

use super::framework::{CyclePhases, Framework, ScheduleError, ScheduleResult};
use super::helpers::pod_key;
use super::metrics::LatencyHistogram;
use super::profile::{ProfileError, SchedulerConfig};
use super::queue::{Clock, ClusterEvent, QueueOptions, QueuedPodInfo, RealClock, SchedulingQueue};
use super::reflector::{self, PodEvent};
use super::snapshot::Snapshot;
use crate::api::selectors::FieldSelector;
use crate::api::Object;
use crate::apiserver::{ApiServer, Bind, BindBatch, Subresource, Trace, Update, WriteOptions};
use crate::events::{EventRecord, EventRecorder, NORMAL, WARNING};
use crate::informer::{Informer, InformerEvent};
use crate::telemetry::{self, Component, Propagation, Telemetry};

/// The component name on the scheduler's events (`source.component`), as upstream.
pub const COMPONENT: &str = "default-scheduler";
/// Rejected nodes listed by name in a span event (the rest are only counted).
pub const TRACE_REJECTED_NODES: usize = 10;
/// Pods scheduled per actor turn before yielding to the mailbox (informer events, replies).
const BATCH: usize = 64;
/// Binds waiting for the API server before the scheduler stops taking pods from the queue.
/// Flow control, as client-go's rate limiter is upstream: without it a burst of 100,000
/// pending pods is decided long before the API server can store the bindings, and every
/// pod's queue-to-bound latency is the whole backlog.
const MAX_IN_FLIGHT_BINDS: usize = 1024;
/// How often pods whose backoff has expired move to the active queue (upstream: 1 s).
const BACKOFF_FLUSH: Duration = Duration::from_secs(1);
/// How often unschedulable pods that waited too long are retried (upstream: 30 s).
const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(30);

/// Assigned pods that still count on their node: bound, and not finished. Upstream's
/// scheduler informer excludes finished pods the same way.
pub const ASSIGNED_PODS: &str = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed";

/// The field selector of a profile's pending pods.
pub fn pending_pods_selector(scheduler_name: &str) -> String {
    format!("spec.nodeName=,spec.schedulerName={scheduler_name}")
}

/// What scheduling one popped pod produced, for the actor to carry out.
#[derive(Debug)]
pub enum Outcome {
    /// Send this binding (`Bind`); the decision is assumed and waits in `pending_binds`.
    Bind {
        key: String,
        pod: Arc<Pod>,
        binding: Box<Binding>,
    },
    /// No node fits: write this pod status (`PodScheduled=False`); the pod is back in the
    /// queue. `victims` are the pods preemption would evict (not evicted yet).
    Unschedulable {
        pod: Arc<Pod>,
        message: String,
        victims: Vec<String>,
    },
    /// An internal error: the pod is back in the queue (backoff).
    Error { pod: Arc<Pod>, message: String },
    /// The pod names no profile of this scheduler, or vanished: nothing to do.
    Skipped,
}

/// A decision waiting for its Bind reply.
struct PendingBind {
    profile: String,
    result: ScheduleResult,
    info: QueuedPodInfo,
    cycle: u64,
}

/// The scheduler's state and decisions, without actors (see the module documentation).
pub struct SchedulerCore {
    pub snapshot: Snapshot,
    pub queue: SchedulingQueue,
    /// One framework per profile, by `schedulerName`.
    frameworks: HashMap<String, Framework>,
    pending_binds: HashMap<String, PendingBind>,
}

impl SchedulerCore {
    pub fn new(
        config: &SchedulerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<SchedulerCore, ProfileError> {
        config.validate()?;
        let mut frameworks = HashMap::new();
        for p in &config.profiles {
            frameworks.insert(
                p.scheduler_name.clone(),
                Framework::new(p, config.percentage_of_nodes_to_score)?,
            );
        }
        Ok(SchedulerCore {
            snapshot: Snapshot::new(),
            queue: SchedulingQueue::new(clock, QueueOptions::from(config)),
            frameworks,
            pending_binds: HashMap::new(),
        })
    }

    /// The profiles' scheduler names.
    pub fn profiles(&self) -> Vec<String> {
        let mut names: Vec<String> = self.frameworks.keys().cloned().collect();
        names.sort();
        names
    }

    /// Decisions waiting for their Bind reply.
    pub fn pending_binds(&self) -> usize {
        self.pending_binds.len()
    }

    fn responsible_for(&self, pod: &Pod) -> bool {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(COMPONENT);
        self.frameworks.contains_key(name)
    }

    /// A node was added or changed: update the cache, and tell the queue what changed.
    /// Mirrors `addNodeToCache` / `updateNodeInCache` in eventhandlers.go.
    pub fn node_added_or_updated(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let events = match self.snapshot.node(&name) {
            Some(old) => ClusterEvent::for_node_update(old.node(), &node),
            None => vec![ClusterEvent::NodeAdd],
        };
        self.snapshot.add_node(node);
        for e in events {
            self.queue.move_all_to_active_or_backoff(e);
        }
    }

    /// A node was deleted. Mirrors `deleteNodeFromCache`.
    pub fn node_deleted(&mut self, name: &str) {
        if self.snapshot.remove_node(name).is_ok() {
            self.queue
                .move_all_to_active_or_backoff(ClusterEvent::NodeDelete);
        }
    }

    /// A bound pod was added or changed (assigned-pods informer): it counts on its node,
    /// and confirms our assumption if we placed it. Mirrors `addPodToCache` /
    /// `updatePodInCache`.
    pub fn assigned_pod_added_or_updated(&mut self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        self.queue.delete(&key);
        let known = self.snapshot.upsert_pod(key, pod);
        self.queue.move_all_to_active_or_backoff(if known {
            ClusterEvent::AssignedPodUpdate
        } else {
            ClusterEvent::AssignedPodAdd
        });
    }

    /// A bound pod was deleted or finished: its node has room again. Mirrors
    /// `deletePodFromCache`.
    pub fn assigned_pod_deleted(&mut self, key: &str) {
        self.queue.delete(key);
        if self.snapshot.remove_pod(key) {
            self.queue
                .move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
        }
    }

    /// A pending pod of one of our profiles was added or changed: into the queue, unless it
    /// is being deleted or already decided (its bound state will arrive). Mirrors
    /// `addPodToSchedulingQueue` / `updatePodInSchedulingQueue`.
    pub fn pending_pod_added_or_updated(&mut self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        if pod.metadata.deletion_timestamp.is_some() {
            self.queue.delete(&key);
            return;
        }
        if !self.responsible_for(&pod) {
            return;
        }
        if self.pending_binds.contains_key(&key) || self.snapshot.is_assumed(&key) {
            return;
        }
        self.queue.add(pod);
    }

    /// A pending pod left the pending set: deleted, or bound (then the assigned-pods
    /// informer has it). It leaves the queue; an assumed decision stays until its Bind
    /// reply. Mirrors `deletePodFromSchedulingQueue`.
    pub fn pending_pod_deleted(&mut self, key: &str) {
        self.queue.delete(key);
    }

    /// Pop and schedule one pod. `None` when no pod is ready.
    pub fn schedule_next(&mut self) -> Option<(Outcome, Option<ScheduleReport>)> {
        let info = self.queue.pop()?;
        Some(self.schedule(info, true))
    }

    /// Schedule a pod just popped from the queue (in the queue's current cycle). Mirrors
    /// `schedulingCycle` and the failure handler of schedule_one.go. The [`ScheduleReport`]
    /// (what the trace shows) is built only if `report` is set: when the attempt's span is
    /// recorded.
    pub fn schedule(
        &mut self,
        info: QueuedPodInfo,
        report: bool,
    ) -> (Outcome, Option<ScheduleReport>) {
        let cycle = self.queue.scheduling_cycle();
        let profile = info
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.clone())
            .unwrap_or_else(|| COMPONENT.into());
        let Some(fw) = self.frameworks.get_mut(&profile) else {
            self.queue.done(&info.key);
            return (Outcome::Skipped, None);
        };
        let scheduled = fw.schedule(&mut self.snapshot, info.pod.clone());
        let phases = fw.last_phases;
        match scheduled {
            Ok(result) => {
                let report = report.then(|| ScheduleReport::success(&result, phases));
                match fw.bind(&result) {
                    Ok(binding) => {
                        let key = info.key.clone();
                        let pod = info.pod.clone();
                        self.pending_binds.insert(
                            key.clone(),
                            PendingBind {
                                profile,
                                result,
                                info,
                                cycle,
                            },
                        );
                        (
                            Outcome::Bind {
                                key,
                                pod,
                                binding: Box::new(binding),
                            },
                            report,
                        )
                    }
                    Err(status) => {
                        let mut result = result;
                        fw.unreserve_and_forget(&mut self.snapshot, &mut result);
                        let pod = info.pod.clone();
                        self.queue
                            .add_unschedulable_if_not_present(info, BTreeSet::new(), cycle);
                        (
                            Outcome::Error {
                                pod,
                                message: status.to_string(),
                            },
                            report,
                        )
                    }
                }
            }
            Err(ScheduleError::Unschedulable(u)) => {
                let message = u.error.to_string();
                let report = report.then(|| ScheduleReport::failure(&u.error, phases));
                let plugins = u.error.diagnosis.unschedulable_plugins.clone();
                let victims = u.post_filter.map(|p| p.victims).unwrap_or_default();
                let pod = unschedulable_status(&info.pod, &message);
                self.queue
                    .add_unschedulable_if_not_present(info, plugins, cycle);
                (
                    Outcome::Unschedulable {
                        pod: Arc::new(pod),
                        message,
                        victims,
                    },
                    report,
                )
            }
            Err(e) => {
                let pod = info.pod.clone();
                self.queue
                    .add_unschedulable_if_not_present(info, BTreeSet::new(), cycle);
                (
                    Outcome::Error {
                        pod,
                        message: e.to_string(),
                    },
                    None,
                )
            }
        }
    }

    /// The Bind reply came back. On success the pod leaves the queue (the assigned-pods
    /// informer confirms the assumption); on failure the decision is undone and the pod
    /// retried with backoff.
    pub fn bind_done(&mut self, key: &str, result: Result<(), String>) {
        let Some(mut p) = self.pending_binds.remove(key) else {
            return;
        };
        match result {
            Ok(()) => self.queue.done(key),
            Err(_) => {
                if let Some(fw) = self.frameworks.get(&p.profile) {
                    fw.unreserve_and_forget(&mut self.snapshot, &mut p.result);
                }
                self.queue
                    .add_unschedulable_if_not_present(p.info, BTreeSet::new(), p.cycle);
            }
        }
    }
}

/// The pod with `PodScheduled=False`, reason `Unschedulable` and the FitError message (as
/// upstream's `updatePod` in schedule_one.go's failure handler).
fn unschedulable_status(pod: &Pod, message: &str) -> Pod {
    let mut pod = pod.clone();
    let status = pod.status.get_or_insert_with(PodStatus::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let existing = conditions.iter().position(|c| c.type_ == "PodScheduled");
    // The transition time only moves when the status changes.
    let last_transition_time = existing
        .map(|i| &conditions[i])
        .filter(|c| c.status == "False")
        .and_then(|c| c.last_transition_time.clone())
        .or_else(|| Some(Time(jiff::Timestamp::now())));
    let cond = PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("Unschedulable".into()),
        message: Some(message.into()),
        last_transition_time,
        last_probe_time: None,
        observed_generation: None,
    };
    match existing {
        Some(i) => conditions[i] = cond,
        None => conditions.push(cond),
    }
    pod.metadata.resource_version = None; // unconditional status update
    pod
}

/// What a span records about one decision (bounded at scale).
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleReport {
    pub node: Option<String>,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
    /// (node, plugin, reasons) for up to [`TRACE_REJECTED_NODES`] rejected nodes.
    pub rejected: Vec<(String, &'static str, String)>,
    /// Rejection reason → number of nodes.
    pub reason_counts: Vec<(String, usize)>,
    /// (node, "Plugin=score …", total), the winner first.
    pub top_nodes: Vec<(String, String, i64)>,
    pub message: Option<String>,
    /// When filtering and scoring ran.
    pub phases: CyclePhases,
}

impl ScheduleReport {
    fn success(r: &ScheduleResult, phases: CyclePhases) -> ScheduleReport {
        // Only the nodes the filter actually rejected (not the unsampled ones).
        let s = r
            .diagnosis
            .summary(TRACE_REJECTED_NODES, r.diagnosis.node_to_status.len());
        ScheduleReport {
            node: Some(r.suggested_host.clone()),
            evaluated_nodes: r.evaluated_nodes,
            feasible_nodes: r.feasible_nodes,
            rejected: s.rejected_nodes,
            reason_counts: s.reason_counts.into_iter().collect(),
            top_nodes: r
                .top_nodes
                .iter()
                .map(|n| {
                    // "Plugin=score Plugin=score …", written into one string.
                    let mut scores = String::with_capacity(32 * n.scores.len());
                    for (i, (p, s)) in n.scores.iter().enumerate() {
                        if i > 0 {
                            scores.push(' ');
                        }
                        scores.push_str(p);
                        scores.push('=');
                        scores.push_str(itoa::Buffer::new().format(*s));
                    }
                    (n.node.clone(), scores, n.total)
                })
                .collect(),
            message: None,
            phases,
        }
    }

    fn failure(e: &super::framework::FitError, phases: CyclePhases) -> ScheduleReport {
        let s = e.diagnosis.summary(TRACE_REJECTED_NODES, e.num_all_nodes);
        ScheduleReport {
            node: None,
            evaluated_nodes: e.num_all_nodes,
            feasible_nodes: 0,
            rejected: s.rejected_nodes,
            reason_counts: s.reason_counts.into_iter().collect(),
            top_nodes: Vec::new(),
            message: Some(e.to_string()),
            phases,
        }
    }

    /// Draw the report in the trace: `filter` and `score` child spans of `cx`'s span (at the
    /// times they ran) with the verdicts and scores as events, and the outcome on `cx`'s span.
    fn record(&self, tracer: &SdkTracer, cx: &OtelContext) {
        let span = cx.span();
        span.set_attribute(KeyValue::new(
            "scheduler.evaluated_nodes",
            self.evaluated_nodes as i64,
        ));
        span.set_attribute(KeyValue::new(
            "scheduler.feasible_nodes",
            self.feasible_nodes as i64,
        ));
        if let Some(n) = &self.node {
            span.set_attribute(KeyValue::new("k8s.node.name", n.clone()));
        }
        if let Some(m) = &self.message {
            span.set_attribute(KeyValue::new("scheduler.result", "unschedulable"));
            span.add_event("unschedulable", vec![KeyValue::new("message", m.clone())]);
        }
        if let Some((start, end)) = self.phases.filter {
            let mut f = child_span(tracer, cx, "filter", start);
            f.set_attribute(KeyValue::new(
                "scheduler.evaluated_nodes",
                self.evaluated_nodes as i64,
            ));
            f.set_attribute(KeyValue::new(
                "scheduler.feasible_nodes",
                self.feasible_nodes as i64,
            ));
            f.set_attribute(KeyValue::new(
                "scheduler.rejected_nodes",
                self.reason_counts
                    .iter()
                    .map(|(_, n)| *n as i64)
                    .sum::<i64>(),
            ));
            if !self.reason_counts.is_empty() {
                f.add_event(
                    "nodes rejected per reason",
                    self.reason_counts
                        .iter()
                        .map(|(r, n)| KeyValue::new(r.clone(), *n as i64))
                        .collect(),
                );
            }
            for (node, plugin, reasons) in &self.rejected {
                f.add_event(
                    "node rejected",
                    vec![
                        KeyValue::new("node", node.clone()),
                        KeyValue::new("plugin", *plugin),
                        KeyValue::new("reason", reasons.clone()),
                    ],
                );
            }
            f.end_with_timestamp(end);
        }
        if let Some((start, end)) = self.phases.score {
            let mut sc = child_span(tracer, cx, "score", start);
            for (rank, (node, scores, total)) in self.top_nodes.iter().enumerate() {
                sc.add_event(
                    "node scored",
                    vec![
                        KeyValue::new("rank", rank as i64 + 1),
                        KeyValue::new("node", node.clone()),
                        KeyValue::new("scores", scores.clone()),
                        KeyValue::new("total", *total),
                    ],
                );
            }
            if let Some(n) = &self.node {
                sc.set_attribute(KeyValue::new("scheduler.selected_node", n.clone()));
            }
            sc.end_with_timestamp(end);
        }
    }
}

// --- metrics (issue 7) ---
/// `scheduler_schedule_attempts_total` and `scheduler_scheduling_attempt_duration_seconds`
/// for one attempt ending with `result` (scheduled, unschedulable, error), as
/// `PodScheduled`/`PodUnschedulable`/`PodScheduleError` in pkg/scheduler/metrics record them.
fn attempt_metric(result: &'static str, pod: &Pod, started: Instant) {
    let profile = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("default-scheduler");
    crate::metrics::global().observe_schedule_attempt(result, profile, started.elapsed());
}
// --- end metrics ---

/// A child span of `cx`'s span that started at `start`.
fn child_span(
    tracer: &SdkTracer,
    cx: &OtelContext,
    name: &'static str,
    start: SystemTime,
) -> opentelemetry_sdk::trace::Span {
    tracer
        .span_builder(name)
        .with_start_time(start)
        .start_with_context(tracer, cx)
}

/// Which list-watch an event came from.
enum Informed {
    Node(InformerEvent<Node>),
    AssignedPod(PodEvent),
    PendingPod(PodEvent),
}

impl Message for Informed {
    type Result = ();
}

/// What the scheduler has done so far. For tests (wait until the nodes are known) and
/// benchmarks (count decisions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Every list-watch has delivered its first list: scheduling has started.
    pub synced: bool,
    /// Nodes in the snapshot.
    pub nodes: usize,
    /// Pods placed on nodes in the snapshot (bound, or assumed and waiting for the bind).
    pub placed_pods: usize,
    /// Pods in the scheduling queue (active, backoff, unschedulable, in flight).
    pub queued: usize,
    /// Decisions waiting for their Bind reply.
    pub pending_binds: usize,
    /// Successful binds.
    pub bound: u64,
    /// Attempts that found no node.
    pub unschedulable: u64,
    /// Failed binds and internal errors.
    pub errors: u64,
    /// Pod relists after a watch was closed (410 Gone: the scheduler fell behind).
    pub relists: u64,
    /// Scheduling cycle: pop → decision (filter, score, assume), every attempt.
    pub attempt_latency: LatencyHistogram,
    /// Pop → Bind acknowledged (durable), for bound pods (upstream's e2e scheduling
    /// duration).
    pub e2e_latency: LatencyHistogram,
}

/// Ask the scheduler for its [`SchedulerStats`]. Sent by tests and benchmarks.
#[derive(Message)]
#[rtype(result = "SchedulerStats")]
pub struct GetStats;

/// The scheduler actor. See the module documentation.
pub struct Scheduler {
    api: Addr<ApiServer>,
    core: SchedulerCore,
    tracer: SdkTracer,
    /// `[telemetry] propagation`: a scheduling attempt is a child of the pod's creation, or
    /// a new root linked to it.
    propagation: Propagation,
    recorder: EventRecorder,
    /// The node informer (kept alive here).
    nodes: Option<Informer<Node>>,
    /// The assigned-pods and per-profile pending-pods reflector tasks.
    pods: Vec<tokio::task::JoinHandle<()>>,
    /// List-watches that have not delivered `Synced` yet; nothing is scheduled until 0.
    unsynced: usize,
    /// Open `schedule pod` spans of pods waiting for their Bind reply, with when their
    /// attempt started.
    spans: HashMap<String, (OtelContext, Instant)>,
    /// Binds decided in this turn, sent together as one [`BindBatch`] at its end.
    outbox: Vec<(Bind, BindReply)>,
    stats: SchedulerStats,
}

impl Scheduler {
    /// A scheduler with `config`'s profiles, talking to `api`. Start it with `.start()`.
    pub fn new(
        api: Addr<ApiServer>,
        config: &SchedulerConfig,
        telemetry: &Telemetry,
    ) -> Result<Scheduler, ProfileError> {
        Ok(Scheduler {
            recorder: EventRecorder::new(api.clone(), COMPONENT, None),
            api,
            core: SchedulerCore::new(config, Arc::new(RealClock))?,
            tracer: telemetry.tracer(Component::Scheduler),
            propagation: telemetry.propagation(),
            nodes: None,
            pods: Vec::new(),
            unsynced: 0,
            spans: HashMap::new(),
            outbox: Vec::new(),
            stats: SchedulerStats::default(),
        })
    }

    fn subscribe<K, F>(ctx: &mut Context<Self>, mut rx: mpsc::UnboundedReceiver<K>, wrap: F)
    where
        K: 'static,
        F: Fn(K) -> Informed + 'static,
    {
        ctx.add_stream(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx).map(|e| e.map(&wrap))
        }));
    }

    /// Start a pod list-watch filtered by `fields`, its events wrapped by `wrap`.
    fn watch_pods(
        &mut self,
        ctx: &mut Context<Self>,
        fields: &str,
        wrap: fn(PodEvent) -> Informed,
    ) {
        let selector = match FieldSelector::parse(fields) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%fields, error = %e, "scheduler: bad field selector");
                return;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        Self::subscribe(ctx, rx, wrap);
        self.pods.push(actix_rt::spawn(reflector::run(
            self.api.clone(),
            selector,
            tx,
        )));
        self.unsynced += 1;
    }

    /// Schedule up to [`BATCH`] pods, send their binds, then yield and continue if more are
    /// ready.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.unsynced > 0 {
            return;
        }
        let more = self.schedule_turn(ctx);
        self.send_binds(ctx);
        if more {
            ctx.notify(Drain);
        }
    }

    /// Schedule up to [`BATCH`] pods; `true` if the batch was full (more may be ready).
    fn schedule_turn(&mut self, ctx: &mut Context<Self>) -> bool {
        for _ in 0..BATCH {
            if self.spans.len() >= MAX_IN_FLIGHT_BINDS {
                return false; // resumed by the next BindReplies
            }
            let Some(info) = self.core.queue.pop() else {
                return false;
            };
            // The attempt continues the trace of whoever created the pod.
            let parent = telemetry::extract(&info.pod.metadata);
            let mut attributes = vec![
                KeyValue::new("k8s.pod.key", info.key.clone()),
                KeyValue::new("scheduler.attempt", info.attempts as i64),
            ];
            if let Some(profile) = info
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.scheduler_name.clone())
            {
                attributes.push(KeyValue::new("scheduler.profile", profile));
            }
            let cx = telemetry::start_reaction(
                &self.tracer,
                self.propagation,
                SpanBuilder::from_name(format!("schedule pod {}", info.key))
                    .with_attributes(attributes),
                &parent,
            );
            let started = Instant::now();
            // The report (verdicts, per-plugin scores) is built only for a recorded span.
            let recording = cx.span().is_recording();
            let (outcome, report) = self.core.schedule(info, recording);
            self.stats.attempt_latency.record(started.elapsed());
            if let Some(r) = &report {
                r.record(&self.tracer, &cx);
            }
            self.carry_out(ctx, outcome, cx, started);
        }
        true
    }

    /// Send this turn's binds as one [`BindBatch`]; the replies come back as one
    /// [`BindReplies`] message. A plain task, not an actor future: actix polls every future
    /// spawned on a context at each wake-up, which is quadratic with many binds in flight.
    fn send_binds(&mut self, ctx: &mut Context<Self>) {
        if self.outbox.is_empty() {
            return;
        }
        let (binds, mut replies): (Vec<Bind>, Vec<BindReply>) =
            std::mem::take(&mut self.outbox).into_iter().unzip();
        let api = self.api.clone();
        let me = ctx.address();
        actix_rt::spawn(async move {
            match api.send(BindBatch { binds }).await {
                Ok(results) => {
                    for (reply, r) in replies.iter_mut().zip(results) {
                        reply.result = r.map(|_| ()).map_err(|e| e.to_string());
                    }
                }
                Err(e) => {
                    for reply in &mut replies {
                        reply.result = Err(e.to_string());
                    }
                }
            }
            me.do_send(BindReplies(replies));
        });
    }

    fn carry_out(
        &mut self,
        _ctx: &mut Context<Self>,
        outcome: Outcome,
        cx: OtelContext,
        started: Instant,
    ) {
        match outcome {
            Outcome::Bind { key, pod, binding } => {
                let node = binding.target.name.clone().unwrap_or_default();
                let namespace = pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                let mut bind_span = self.tracer.start_with_context("bind", &cx);
                bind_span.set_attribute(KeyValue::new("k8s.node.name", node.clone()));
                let bind_cx = cx.with_span(bind_span);
                let trace = Trace::child_of(bind_cx.clone());
                self.spans.insert(key.clone(), (cx, started));
                // Sent with the rest of this turn's binds (`send_binds`).
                self.outbox.push((
                    Bind {
                        namespace,
                        binding: *binding,
                        trace,
                    },
                    BindReply {
                        key,
                        node,
                        pod,
                        bind_cx,
                        result: Ok(()),
                    },
                ));
            }
            Outcome::Unschedulable {
                pod,
                message,
                victims,
            } => {
                self.stats.unschedulable += 1;
                attempt_metric("unschedulable", &pod, started);
                if !victims.is_empty() {
                    cx.span().add_event(
                        "preemption candidates (eviction not implemented)",
                        vec![KeyValue::new("victims", victims.join(","))],
                    );
                }
                tracing::debug!(pod = %pod_key(&pod), %message, "FailedScheduling");
                self.recorder.record(
                    &event_object(&pod),
                    WARNING,
                    "FailedScheduling",
                    message,
                    Trace::child_of(cx.clone()),
                );
                let api = self.api.clone();
                let update = Update {
                    object: Object::Pod(pod),
                    subresource: Subresource::Status,
                    options: WriteOptions::default(),
                    trace: Trace::child_of(cx.clone()),
                };
                cx.span().end();
                actix_rt::spawn(async move {
                    match api.send(update).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "writing PodScheduled=False failed")
                        }
                        Err(e) => tracing::warn!(error = %e, "api server unreachable"),
                    }
                });
            }
            Outcome::Error { pod, message } => {
                self.stats.errors += 1;
                attempt_metric("error", &pod, started);
                cx.span()
                    .add_event("error", vec![KeyValue::new("message", message.clone())]);
                cx.span()
                    .set_status(opentelemetry::trace::Status::error(message.clone()));
                tracing::warn!(pod = %pod_key(&pod), %message, "scheduling error; retrying with backoff");
                self.recorder.record(
                    &event_object(&pod),
                    WARNING,
                    "FailedScheduling",
                    message,
                    Trace::child_of(cx.clone()),
                );
                cx.span().end();
            }
            Outcome::Skipped => cx.span().end(),
        }
    }
}

/// The pod as an event's involved object (only its metadata is read): the same `Arc`.
fn event_object(pod: &Arc<Pod>) -> Object {
    Object::Pod(pod.clone())
}

/// The pod's `involvedObject` reference, as [`crate::events::object_reference`] builds it,
/// without copying the pod's metadata first.
fn pod_reference(pod: &Pod) -> ObjectReference {
    let m = &pod.metadata;
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        ..Default::default()
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Informers run on this actor's arbiter; their events arrive as `Informed`.
        let nodes = Informer::<Node>::new(self.api.clone());
        Self::subscribe(ctx, nodes.subscribe(), Informed::Node);
        nodes.start();
        self.nodes = Some(nodes);
        self.unsynced = 1;
        self.watch_pods(ctx, ASSIGNED_PODS, Informed::AssignedPod);
        for profile in self.core.profiles() {
            self.watch_pods(ctx, &pending_pods_selector(&profile), Informed::PendingPod);
        }
        ctx.run_interval(BACKOFF_FLUSH, |act, ctx| {
            act.core.queue.flush_backoff_completed();
            act.drain(ctx);
        });
        ctx.run_interval(UNSCHEDULABLE_FLUSH, |act, ctx| {
            act.core.queue.flush_unschedulable_leftover();
            act.drain(ctx);
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(n) = &self.nodes {
            n.stop();
        }
        for p in &self.pods {
            p.abort();
        }
    }
}

impl StreamHandler<Informed> for Scheduler {
    fn handle(&mut self, event: Informed, ctx: &mut Context<Self>) {
        match event {
            Informed::Node(ev) => match ev {
                InformerEvent::Added(n) | InformerEvent::Updated { new: n, .. } => {
                    self.core.node_added_or_updated(n)
                }
                InformerEvent::Deleted(n) => self
                    .core
                    .node_deleted(n.metadata.name.as_deref().unwrap_or_default()),
                InformerEvent::Synced => self.unsynced = self.unsynced.saturating_sub(1),
            },
            Informed::AssignedPod(ev) => match ev {
                PodEvent::Upsert(p) => self.core.assigned_pod_added_or_updated(p),
                PodEvent::Deleted(key) => self.core.assigned_pod_deleted(&key),
                PodEvent::Synced => self.unsynced = self.unsynced.saturating_sub(1),
                PodEvent::Relisted => self.stats.relists += 1,
            },
            Informed::PendingPod(ev) => match ev {
                PodEvent::Upsert(p) => self.core.pending_pod_added_or_updated(p),
                PodEvent::Deleted(key) => self.core.pending_pod_deleted(&key),
                PodEvent::Synced => self.unsynced = self.unsynced.saturating_sub(1),
                PodEvent::Relisted => self.stats.relists += 1,
            },
        }
        self.drain(ctx);
    }

    // The channels close only when their list-watches stop (this actor stopping).
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<GetStats> for Scheduler {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(SchedulerStats {
            synced: self.unsynced == 0,
            nodes: self.core.snapshot.len(),
            placed_pods: self.core.snapshot.num_pods(),
            queued: self.core.queue.len(),
            pending_binds: self.core.pending_binds(),
            ..self.stats.clone()
        })
    }
}

/// The API server answered a [`BindBatch`] (sent by the scheduler's own bind task): one
/// [`BindReply`] per bind, in order.
#[derive(Message)]
#[rtype(result = "()")]
struct BindReplies(Vec<BindReply>);

/// What the scheduler needs when one bind's answer comes back.
struct BindReply {
    key: String,
    node: String,
    pod: Arc<Pod>,
    /// The open `bind` span.
    bind_cx: OtelContext,
    result: Result<(), String>,
}

impl Handler<BindReplies> for Scheduler {
    type Result = ();
    fn handle(&mut self, replies: BindReplies, ctx: &mut Context<Self>) {
        // The batch's events go to the API server together (one `CreateBatch`), as its binds
        // did.
        let events: Vec<EventRecord> = replies.0.into_iter().map(|r| self.bind_done(r)).collect();
        self.recorder.record_batch(events);
        self.drain(ctx);
    }
}

impl Scheduler {
    /// End the bind and `schedule pod` spans, tell the core, and return the event to record.
    fn bind_done(&mut self, reply: BindReply) -> EventRecord {
        let BindReply {
            key,
            node,
            pod,
            bind_cx,
            result,
        } = reply;
        if let Err(e) = &result {
            bind_cx
                .span()
                .set_status(opentelemetry::trace::Status::error(e.clone()));
        }
        bind_cx.span().end();
        let (cx, started) = self
            .spans
            .remove(&key)
            .unwrap_or_else(|| (OtelContext::new(), Instant::now()));
        let trace = Trace::child_of(cx.clone());
        let involved = pod_reference(&pod);
        let event = match &result {
            Ok(()) => {
                self.stats.bound += 1;
                attempt_metric("scheduled", &pod, started);
                self.stats.e2e_latency.record(started.elapsed());
                cx.span()
                    .add_event("bound", vec![KeyValue::new("node", node.clone())]);
                // Mirrors the event in `finishBinding` (schedule_one.go).
                EventRecord {
                    involved,
                    type_: NORMAL,
                    reason: "Scheduled",
                    message: format!("Successfully assigned {key} to {node}"),
                    trace,
                }
            }
            Err(e) => {
                self.stats.errors += 1;
                attempt_metric("error", &pod, started);
                cx.span()
                    .add_event("bind failed", vec![KeyValue::new("error", e.clone())]);
                EventRecord {
                    involved,
                    type_: WARNING,
                    reason: "FailedScheduling",
                    message: format!("binding rejected: {e}"),
                    trace,
                }
            }
        };
        cx.span().end();
        self.core.bind_done(&key, result);
        event
    }
}

/// Continue scheduling after yielding to the mailbox.
#[derive(Message)]
#[rtype(result = "()")]
struct Drain;

impl Handler<Drain> for Scheduler {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.drain(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::queue::FakeClock;
    use crate::scheduler::snapshot::testing::*;

    fn core() -> SchedulerCore {
        SchedulerCore::new(&SchedulerConfig::default(), Arc::new(FakeClock::new())).unwrap()
    }

    /// Informer events feed the cache and the queue; a decision binds and is assumed; the
    /// bound pod's arrival confirms it, and its leaving the pending set changes nothing.
    #[test]
    fn pending_pod_is_bound_and_confirmed() {
        let mut c = core();
        c.node_added_or_updated(arc(node("n1", 1000, 1 << 30)));
        c.pending_pod_added_or_updated(arc(pod("web", 500, 0)));
        let (outcome, report) = c.schedule_next().unwrap();
        let Outcome::Bind {
            key,
            pod: bound,
            binding,
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(key, "default/web");
        assert_eq!(bound.metadata.name.as_deref(), Some("web"));
        assert_eq!(binding.target.name.as_deref(), Some("n1"));
        let report = report.unwrap();
        assert_eq!(report.node.as_deref(), Some("n1"));
        assert!(report.phases.filter.is_some());
        assert!(c.snapshot.is_assumed("default/web"));
        // The pod's own MODIFIED (still unbound, e.g. a status write) does not requeue it.
        c.pending_pod_added_or_updated(arc(pod("web", 500, 0)));
        assert!(c.schedule_next().is_none());
        c.bind_done("default/web", Ok(()));
        c.assigned_pod_added_or_updated(arc(on(pod("web", 500, 0), "n1")));
        c.pending_pod_deleted("default/web");
        assert!(!c.snapshot.is_assumed("default/web"));
        assert_eq!(c.snapshot.node("n1").unwrap().requested.milli_cpu, 500);
        assert!(c.queue.is_empty());
    }

    /// Leaving the pending set before the bind reply (the watch raced the reply) keeps
    /// the assumption: the node stays booked.
    #[test]
    fn pending_delete_before_bind_reply_keeps_the_node_booked() {
        let mut c = core();
        c.node_added_or_updated(arc(node("n1", 1000, 1 << 30)));
        c.pending_pod_added_or_updated(arc(pod("web", 500, 0)));
        let _ = c.schedule_next().unwrap();
        c.pending_pod_deleted("default/web");
        assert_eq!(c.snapshot.node("n1").unwrap().requested.milli_cpu, 500);
        c.bind_done("default/web", Ok(()));
        assert_eq!(c.snapshot.node("n1").unwrap().requested.milli_cpu, 500);
    }

    /// A pod no node fits gets PodScheduled=False/Unschedulable with the FitError message,
    /// and comes back when a node is added.
    #[test]
    fn unschedulable_pod_gets_condition_and_retries_on_node_add() {
        let mut c = core();
        c.node_added_or_updated(arc(node("n1", 100, 1 << 30)));
        c.pending_pod_added_or_updated(arc(pod("big", 500, 0)));
        let (outcome, report) = c.schedule_next().unwrap();
        let Outcome::Unschedulable { pod, message, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            message,
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
        assert_eq!(
            report.unwrap().reason_counts,
            vec![("Insufficient cpu".to_string(), 1)]
        );
        let cond = &pod.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(
            (cond.type_.as_str(), cond.status.as_str()),
            ("PodScheduled", "False")
        );
        assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
        assert_eq!(cond.message.as_deref(), Some(message.as_str()));
        assert_eq!(c.queue.unschedulable_len(), 1);
        c.node_added_or_updated(arc(node("n2", 1000, 1 << 30)));
        // Back in backoff (1 s after its first attempt): nothing ready until it expires.
        assert_eq!(c.queue.backoff_len(), 1);
    }

    /// A failed bind undoes the assumption and retries the pod.
    #[test]
    fn failed_bind_forgets_and_retries() {
        let mut c = core();
        c.node_added_or_updated(arc(node("n1", 1000, 1 << 30)));
        c.pending_pod_added_or_updated(arc(pod("web", 500, 0)));
        let _ = c.schedule_next().unwrap();
        c.bind_done("default/web", Err("conflict".into()));
        assert!(!c.snapshot.is_assumed("default/web"));
        assert_eq!(c.snapshot.node("n1").unwrap().requested.milli_cpu, 0);
        assert_eq!(c.queue.backoff_len(), 1);
    }

    /// A deleted bound pod frees its node and wakes the unschedulable pods.
    #[test]
    fn deleted_assigned_pod_frees_its_node() {
        let mut c = core();
        c.node_added_or_updated(arc(node("n1", 1000, 1 << 30)));
        c.assigned_pod_added_or_updated(arc(on(pod("old", 800, 0), "n1")));
        c.pending_pod_added_or_updated(arc(pod("new", 500, 0)));
        let (outcome, _) = c.schedule_next().unwrap();
        assert!(matches!(outcome, Outcome::Unschedulable { .. }));
        c.assigned_pod_deleted("default/old");
        assert_eq!(c.snapshot.node("n1").unwrap().requested.milli_cpu, 0);
        assert_eq!(c.queue.backoff_len(), 1);
    }

    /// Pods for another scheduler are ignored.
    #[test]
    fn other_schedulers_pods_are_ignored() {
        let mut c = core();
        let mut p = pod("x", 0, 0);
        p.spec.as_mut().unwrap().scheduler_name = Some("my-scheduler".into());
        c.pending_pod_added_or_updated(arc(p));
        assert!(c.queue.is_empty());
    }
}
