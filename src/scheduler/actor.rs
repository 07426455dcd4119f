//! The `Scheduler` actor: kube-scheduler as a client of the API server.
//!
//! It lists-and-watches nodes and pods through the ApiServer's `Watch` message (the only
//! bus), keeps the [`Snapshot`] and the [`SchedulingQueue`] up to date, and schedules pods
//! one at a time: a decision is assumed in the snapshot at once, then bound with the
//! ApiServer `Bind` message; a pod no node fits gets `PodScheduled=False`, reason
//! `Unschedulable`, with upstream's message (an `Update` of the status subresource).
//!
//! The logic lives in [`SchedulerCore`], a plain struct that turns watch events into cache
//! and queue updates and a popped pod into an [`Outcome`]; the actor only carries those to
//! the API server and back. Each scheduling attempt is a `kube-scheduler` span named
//! `schedule pod <ns>/<name>`, a child of the pod's `traceparent`, with the filter verdicts
//! (counts per reason, a few rejected nodes) and the top nodes' scores as events.
//!
//! Not integration-tested yet: it needs the store (being written). [`SchedulerCore`] is
//! unit-tested below.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Binding, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use opentelemetry::trace::{Span, TraceContextExt, Tracer};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use super::framework::{Framework, ScheduleError, ScheduleResult};
use super::helpers::pod_key;
use super::profile::{ProfileError, SchedulerConfig};
use super::queue::{Clock, ClusterEvent, QueueOptions, QueuedPodInfo, RealClock, SchedulingQueue};
use super::snapshot::Snapshot;
use crate::api::{Kind, Object};
use crate::apiserver::{
    ApiServer, Bind, Subresource, Trace, Update, Watch, WatchEvent, WriteOptions,
};
use crate::telemetry::{self, Component, Telemetry};

/// Rejected nodes listed by name in a span event (the rest are only counted).
const TRACE_REJECTED_NODES: usize = 10;
/// Pods scheduled per actor turn before yielding to the mailbox (watch events, bind replies).
const BATCH: usize = 64;

/// What scheduling one popped pod produced, for the actor to carry out.
#[derive(Debug)]
pub enum Outcome {
    /// Send this binding (`Bind`); the decision is assumed and waits in `pending_binds`.
    Bind {
        key: String,
        namespace: String,
        binding: Box<Binding>,
    },
    /// No node fits: write this pod status (`PodScheduled=False`); the pod is back in the
    /// queue. `victims` are the pods preemption would evict (not evicted yet).
    Unschedulable {
        pod: Box<Pod>,
        message: String,
        victims: Vec<String>,
    },
    /// An internal error: the pod is back in the queue (backoff).
    Error { key: String, message: String },
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

    fn responsible_for(&self, pod: &Pod) -> bool {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler");
        self.frameworks.contains_key(name)
    }

    /// A node watch event: update the cache, and tell the queue what changed.
    pub fn on_node_event(&mut self, event: &WatchEvent) {
        match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                let Object::Node(node) = o.as_ref() else {
                    return;
                };
                let name = node.metadata.name.clone().unwrap_or_default();
                let events = match self.snapshot.node(&name) {
                    Some(old) => ClusterEvent::for_node_update(old.node(), node),
                    None => vec![ClusterEvent::NodeAdd],
                };
                self.snapshot.add_node(Arc::new(node.clone()));
                for e in events {
                    self.queue.move_all_to_active_or_backoff(e);
                }
            }
            WatchEvent::Deleted(o) => {
                if self.snapshot.remove_node(o.name()).is_ok() {
                    self.queue
                        .move_all_to_active_or_backoff(ClusterEvent::NodeDelete);
                }
            }
            WatchEvent::Bookmark(_) | WatchEvent::Error(_) => {}
        }
    }

    /// A pod watch event: bound pods go to the cache, pending pods of our profiles to the
    /// queue.
    pub fn on_pod_event(&mut self, event: &WatchEvent) {
        let (obj, deleted) = match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => (o, false),
            WatchEvent::Deleted(o) => (o, true),
            WatchEvent::Bookmark(_) | WatchEvent::Error(_) => return,
        };
        let Object::Pod(pod) = obj.as_ref() else {
            return;
        };
        let key = pod_key(pod);
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if bound || deleted {
            self.queue.delete(&key);
        }
        if deleted {
            if self.snapshot.remove_pod(&key) {
                self.queue
                    .move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
            }
            return;
        }
        if bound {
            let known = self.snapshot.pod_node(&key).is_some() && !self.snapshot.is_assumed(&key);
            self.snapshot.add_pod(Arc::new(pod.clone()));
            self.queue.move_all_to_active_or_backoff(if known {
                ClusterEvent::AssignedPodUpdate
            } else {
                ClusterEvent::AssignedPodAdd
            });
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() || !self.responsible_for(pod) {
            return;
        }
        if self.pending_binds.contains_key(&key) || self.snapshot.is_assumed(&key) {
            return; // decided; the bound pod will arrive
        }
        self.queue.add(Arc::new(pod.clone()));
    }

    /// Pop and schedule one pod. `None` when no pod is ready.
    pub fn schedule_next(&mut self) -> Option<(Outcome, Option<ScheduleReport>)> {
        let info = self.queue.pop()?;
        Some(self.schedule(info))
    }

    /// Schedule a pod just popped from the queue (in the queue's current cycle).
    pub fn schedule(&mut self, info: QueuedPodInfo) -> (Outcome, Option<ScheduleReport>) {
        let cycle = self.queue.scheduling_cycle();
        let profile = info
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.clone())
            .unwrap_or_else(|| "default-scheduler".into());
        let Some(fw) = self.frameworks.get_mut(&profile) else {
            self.queue.done(&info.key);
            return (Outcome::Skipped, None);
        };
        match fw.schedule(&mut self.snapshot, info.pod.clone()) {
            Ok(result) => {
                let report = ScheduleReport::success(&result);
                match fw.bind(&result) {
                    Ok(binding) => {
                        let binding = Box::new(binding);
                        let key = info.key.clone();
                        let namespace = info
                            .pod
                            .metadata
                            .namespace
                            .clone()
                            .unwrap_or_else(|| "default".into());
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
                                namespace,
                                binding,
                            },
                            Some(report),
                        )
                    }
                    Err(status) => {
                        let mut result = result;
                        fw.unreserve_and_forget(&mut self.snapshot, &mut result);
                        let key = info.key.clone();
                        self.queue
                            .add_unschedulable_if_not_present(info, BTreeSet::new(), cycle);
                        (
                            Outcome::Error {
                                key,
                                message: status.to_string(),
                            },
                            Some(report),
                        )
                    }
                }
            }
            Err(ScheduleError::Unschedulable(u)) => {
                let message = u.error.to_string();
                let report = ScheduleReport::failure(&u.error);
                let plugins = u.error.diagnosis.unschedulable_plugins.clone();
                let victims = u.post_filter.map(|p| p.victims).unwrap_or_default();
                let pod = unschedulable_status(&info.pod, &message);
                self.queue
                    .add_unschedulable_if_not_present(info, plugins, cycle);
                (
                    Outcome::Unschedulable {
                        pod: Box::new(pod),
                        message,
                        victims,
                    },
                    Some(report),
                )
            }
            Err(e) => {
                let key = info.key.clone();
                self.queue
                    .add_unschedulable_if_not_present(info, BTreeSet::new(), cycle);
                (
                    Outcome::Error {
                        key,
                        message: e.to_string(),
                    },
                    None,
                )
            }
        }
    }

    /// The Bind reply came back. On success the pod leaves the queue (the watch confirms
    /// the assumption); on failure the decision is undone and the pod retried with backoff.
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
    pub rejected: Vec<(String, &'static str, String)>,
    pub reason_counts: Vec<(String, usize)>,
    /// (node, "Plugin=score …", total)
    pub top_nodes: Vec<(String, String, i64)>,
    pub message: Option<String>,
}

impl ScheduleReport {
    fn success(r: &ScheduleResult) -> ScheduleReport {
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
                    let scores = n
                        .scores
                        .iter()
                        .map(|(p, s)| format!("{p}={s}"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    (n.node.clone(), scores, n.total)
                })
                .collect(),
            message: None,
        }
    }

    fn failure(e: &super::framework::FitError) -> ScheduleReport {
        let s = e.diagnosis.summary(TRACE_REJECTED_NODES, e.num_all_nodes);
        ScheduleReport {
            node: None,
            evaluated_nodes: s.rejected_total,
            feasible_nodes: 0,
            rejected: s.rejected_nodes,
            reason_counts: s.reason_counts.into_iter().collect(),
            top_nodes: Vec::new(),
            message: Some(e.to_string()),
        }
    }

    /// Write the report on a span as attributes and events.
    fn record(&self, span: &opentelemetry::trace::SpanRef<'_>) {
        if let Some(n) = &self.node {
            span.set_attribute(KeyValue::new("k8s.node.name", n.clone()));
        }
        span.set_attribute(KeyValue::new(
            "scheduler.evaluated_nodes",
            self.evaluated_nodes as i64,
        ));
        span.set_attribute(KeyValue::new(
            "scheduler.feasible_nodes",
            self.feasible_nodes as i64,
        ));
        if !self.reason_counts.is_empty() {
            span.add_event(
                "filter",
                self.reason_counts
                    .iter()
                    .map(|(r, n)| KeyValue::new(r.clone(), *n as i64))
                    .collect(),
            );
        }
        for (node, plugin, reasons) in &self.rejected {
            span.add_event(
                "node rejected",
                vec![
                    KeyValue::new("node", node.clone()),
                    KeyValue::new("plugin", *plugin),
                    KeyValue::new("reasons", reasons.clone()),
                ],
            );
        }
        for (rank, (node, scores, total)) in self.top_nodes.iter().enumerate() {
            span.add_event(
                "score",
                vec![
                    KeyValue::new("rank", rank as i64 + 1),
                    KeyValue::new("node", node.clone()),
                    KeyValue::new("scores", scores.clone()),
                    KeyValue::new("total", *total),
                ],
            );
        }
        if let Some(m) = &self.message {
            span.add_event("unschedulable", vec![KeyValue::new("message", m.clone())]);
        }
    }
}

/// The scheduler actor. See the module documentation.
pub struct Scheduler {
    api: Addr<ApiServer>,
    core: SchedulerCore,
    tracer: SdkTracer,
    /// Open spans of pods waiting for their Bind reply.
    spans: HashMap<String, OtelContext>,
}

impl Scheduler {
    pub fn new(
        api: Addr<ApiServer>,
        config: &SchedulerConfig,
        telemetry: &Telemetry,
    ) -> Result<Scheduler, ProfileError> {
        Ok(Scheduler {
            api,
            core: SchedulerCore::new(config, Arc::new(RealClock))?,
            tracer: telemetry.tracer(Component::Scheduler),
            spans: HashMap::new(),
        })
    }

    fn watch(&self, ctx: &mut Context<Self>, kind: Kind) {
        let api = self.api.clone();
        async move { api.send(Watch::all(kind)).await }
            .into_actor(self)
            .map(move |res, _act, ctx| match res {
                Ok(Ok(mut stream)) => {
                    ctx.add_stream(futures::stream::poll_fn(move |cx| {
                        stream.rx.poll_recv(cx).map(|e| e.map(|e| Watched(kind, e)))
                    }));
                }
                Ok(Err(e)) => {
                    tracing::error!(kind = %kind, error = %e, "scheduler watch failed");
                    ctx.stop();
                }
                Err(e) => {
                    tracing::error!(kind = %kind, error = %e, "api server unreachable");
                    ctx.stop();
                }
            })
            .wait(ctx);
    }

    /// Schedule up to [`BATCH`] pods, then yield and continue if more are ready.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        for _ in 0..BATCH {
            let Some(info) = self.core.queue.pop() else {
                return;
            };
            // The attempt continues the trace of whoever created the pod.
            let parent = telemetry::extract(&info.pod.metadata);
            let mut span = self
                .tracer
                .start_with_context(format!("schedule pod {}", info.key), &parent);
            span.set_attribute(KeyValue::new("k8s.pod.key", info.key.clone()));
            span.set_attribute(KeyValue::new("scheduler.attempt", info.attempts as i64));
            let cx = parent.with_span(span);
            let (outcome, report) = self.core.schedule(info);
            if let Some(r) = &report {
                r.record(&cx.span());
            }
            self.carry_out(ctx, outcome, cx);
        }
        ctx.notify(Drain);
    }

    fn carry_out(&mut self, ctx: &mut Context<Self>, outcome: Outcome, cx: OtelContext) {
        match outcome {
            Outcome::Bind {
                key,
                namespace,
                binding,
            } => {
                let node = binding.target.name.clone().unwrap_or_default();
                let api = self.api.clone();
                let trace = Trace::child_of(cx.clone());
                self.spans.insert(key.clone(), cx);
                async move {
                    api.send(Bind {
                        namespace,
                        binding: *binding,
                        trace,
                    })
                    .await
                }
                .into_actor(self)
                .map(move |res, act, _ctx| {
                    let res: Result<(), String> = match res {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Some(cx) = act.spans.remove(&key) {
                        match &res {
                            Ok(()) => cx
                                .span()
                                .add_event("bound", vec![KeyValue::new("node", node.clone())]),
                            Err(e) => cx
                                .span()
                                .add_event("bind failed", vec![KeyValue::new("error", e.clone())]),
                        }
                        cx.span().end();
                    }
                    act.core.bind_done(&key, res);
                })
                .spawn(ctx);
            }
            Outcome::Unschedulable {
                pod,
                message,
                victims,
            } => {
                if !victims.is_empty() {
                    cx.span().add_event(
                        "preemption candidate (eviction not implemented)",
                        vec![KeyValue::new("victims", victims.join(","))],
                    );
                }
                tracing::info!(pod = %pod_key(&pod), %message, "FailedScheduling");
                let api = self.api.clone();
                let update = Update {
                    object: Object::Pod(*pod),
                    subresource: Subresource::Status,
                    options: WriteOptions::default(),
                    trace: Trace::child_of(cx.clone()),
                };
                cx.span().end();
                async move {
                    match api.send(update).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "writing PodScheduled=False failed")
                        }
                        Err(e) => tracing::warn!(error = %e, "api server unreachable"),
                    }
                }
                .into_actor(self)
                .spawn(ctx);
            }
            Outcome::Error { key, message } => {
                cx.span()
                    .add_event("error", vec![KeyValue::new("message", message.clone())]);
                cx.span().end();
                tracing::warn!(pod = %key, %message, "scheduling error; retrying with backoff");
            }
            Outcome::Skipped => cx.span().end(),
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Nodes first, so pods that arrive next find them.
        self.watch(ctx, Kind::Node);
        self.watch(ctx, Kind::Pod);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            act.core.queue.flush_backoff_completed();
            act.drain(ctx);
        });
        ctx.run_interval(Duration::from_secs(30), |act, ctx| {
            act.core.queue.flush_unschedulable_leftover();
            act.drain(ctx);
        });
    }
}

/// A watch event of a kind (from the Node or Pod watch stream).
struct Watched(Kind, WatchEvent);

impl StreamHandler<Watched> for Scheduler {
    fn handle(&mut self, Watched(kind, event): Watched, ctx: &mut Context<Self>) {
        if let WatchEvent::Error(e) = &event {
            // 410 Gone: relist by watching again from now (synthetic ADDED for everything).
            tracing::warn!(kind = %kind, error = %e, "scheduler watch closed; rewatching");
            self.watch(ctx, kind);
            return;
        }
        match kind {
            Kind::Node => self.core.on_node_event(&event),
            Kind::Pod => self.core.on_pod_event(&event),
            _ => {}
        }
        self.drain(ctx);
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
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

    fn added<T: Into<Object>>(o: T) -> WatchEvent {
        WatchEvent::Added(Arc::new(o.into()))
    }

    /// Watch events feed the cache and the queue; a decision binds and is assumed; the
    /// bound pod's event confirms it.
    #[test]
    fn pending_pod_is_bound_and_confirmed() {
        let mut c = core();
        c.on_node_event(&added(node("n1", 1000, 1 << 30)));
        c.on_pod_event(&added(pod("web", 500, 0)));
        let (outcome, report) = c.schedule_next().unwrap();
        let Outcome::Bind {
            key,
            namespace,
            binding,
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            (key.as_str(), namespace.as_str()),
            ("default/web", "default")
        );
        assert_eq!(binding.target.name.as_deref(), Some("n1"));
        assert_eq!(report.unwrap().node.as_deref(), Some("n1"));
        assert!(c.snapshot.is_assumed("default/web"));
        // The pod's own MODIFIED (still unbound, e.g. a status write) does not requeue it.
        c.on_pod_event(&WatchEvent::Modified(Arc::new(pod("web", 500, 0).into())));
        assert!(c.schedule_next().is_none());
        c.bind_done("default/web", Ok(()));
        c.on_pod_event(&WatchEvent::Modified(Arc::new(
            on(pod("web", 500, 0), "n1").into(),
        )));
        assert!(!c.snapshot.is_assumed("default/web"));
        assert!(c.queue.is_empty());
    }

    /// A pod no node fits gets PodScheduled=False/Unschedulable with the FitError message,
    /// and comes back when a node is added.
    #[test]
    fn unschedulable_pod_gets_condition_and_retries_on_node_add() {
        let mut c = core();
        c.on_node_event(&added(node("n1", 100, 1 << 30)));
        c.on_pod_event(&added(pod("big", 500, 0)));
        let (outcome, _) = c.schedule_next().unwrap();
        let Outcome::Unschedulable { pod, message, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            message,
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
        let cond = &pod.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(
            (cond.type_.as_str(), cond.status.as_str()),
            ("PodScheduled", "False")
        );
        assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
        assert_eq!(cond.message.as_deref(), Some(message.as_str()));
        assert_eq!(c.queue.unschedulable_len(), 1);
        c.on_node_event(&added(node("n2", 1000, 1 << 30)));
        // Back in backoff (1 s after its first attempt): nothing ready until it expires.
        assert_eq!(c.queue.backoff_len(), 1);
    }

    /// A failed bind undoes the assumption and retries the pod.
    #[test]
    fn failed_bind_forgets_and_retries() {
        let mut c = core();
        c.on_node_event(&added(node("n1", 1000, 1 << 30)));
        c.on_pod_event(&added(pod("web", 500, 0)));
        let _ = c.schedule_next().unwrap();
        c.bind_done("default/web", Err("conflict".into()));
        assert!(!c.snapshot.is_assumed("default/web"));
        assert_eq!(c.snapshot.node("n1").unwrap().requested.milli_cpu, 0);
        assert_eq!(c.queue.backoff_len(), 1);
    }

    /// Pods for another scheduler are ignored.
    #[test]
    fn other_schedulers_pods_are_ignored() {
        let mut c = core();
        let mut p = pod("x", 0, 0);
        p.spec.as_mut().unwrap().scheduler_name = Some("my-scheduler".into());
        c.on_pod_event(&added(p));
        assert!(c.queue.is_empty());
    }
}
