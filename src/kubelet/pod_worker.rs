//! The `PodWorker` actor: one per admitted pod, as the kubelet's pod workers
//! (pkg/kubelet/pod_workers.go) each run one goroutine per pod.
//!
//! A worker syncs its pod whenever something changes (the pod, a container exit, a probe
//! result, a back-off ending, the periodic resync): one sync at a time, a request during a
//! sync runs one more sync afterwards. A sync is level-triggered, like `SyncPod`:
//!
//! 1. read the pod's sandboxes and containers from the runtime;
//! 2. being deleted → terminate: preStop hooks, stop every container within the grace
//!    period, stop the sandbox, write the final status, delete the pod with grace 0;
//! 3. otherwise write the status as it is (Pending, `ContainerCreating`), stop containers
//!    that failed their liveness or startup probe, run the sandbox if there is none, then
//!    start what [`compute_pod_actions`] says (image per `imagePullPolicy` → create →
//!    start, with crash and pull back-offs), and write the status again (with the pod IP,
//!    Running). Two writes for a new pod, as upstream: `SyncPod` sets the status once at its
//!    start, and the sync that PLEG's container events trigger sets the next one.
//!
//! Tracing: the first syncs of a new pod continue the trace of its binding (the pod's
//! `traceparent`), as `sync pod <ns>/<name>` spans under service `kubelet`, with the
//! runtime's spans and the status writes as children. The trace ends with the status write
//! that makes the pod Running (or leaves it backing off, or terminal). Deletion continues the
//! delete request's trace. Later syncs (probes, restarts, resyncs) are untraced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::join_all;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta, Preconditions};
use opentelemetry::trace::{SpanBuilder, Status as SpanStatus, TraceContextExt};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use super::actions::{compute_pod_actions, field_path, Start, Which};
use super::backoff::{go_duration, Backoff};
use super::config::KubeletConfig;
use super::probes::{self, ProbeKind, ProbeState};
use super::status::{generate_pod_status, ContainerView, StatusInput};
use crate::api::Object;
use crate::apiserver::{ApiServer, Delete, Subresource, Trace, Update, WriteOptions};
use crate::clock::Clock;
use crate::events::{EventRecorder, NORMAL, WARNING};
use crate::runtime::{
    ContainerConfig, ContainerEvent, ContainerEventType, ContainerRuntime, ContainerState,
    ContainerStatus, CreateContainer, ExecSync, ImageStatus, ListContainers, ListPodSandbox,
    PodSandboxConfig, PullImage, RemovePodSandbox, RunPodSandbox, RuntimeError, SandboxState,
    SandboxStatus, StartContainer, StopContainer, StopPodSandbox,
};
use crate::telemetry;

/// What every worker of a node shares.
pub struct Env {
    pub node: String,
    pub host_ip: String,
    pub api: Addr<ApiServer>,
    pub runtime: Addr<ContainerRuntime>,
    pub recorder: EventRecorder,
    pub clock: Arc<dyn Clock>,
    pub tracer: SdkTracer,
    /// `[telemetry] propagation`: a pod sync is a child of its cause or a linked root.
    pub propagation: telemetry::Propagation,
    pub config: KubeletConfig,
}

/// The pod changed (from the kubelet's watch). Sent by the Kubelet.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdatePod(pub Arc<Pod>);

/// The pod is gone from the API server (deleted with grace 0 by someone else): kill what
/// runs and finish. Sent by the Kubelet.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PodRemoved;

/// The kubelet stopped (fault injection): stop at once, without touching the runtime or the
/// API server, as a crashed kubelet would. Sent by the Kubelet.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Halt;

/// Told to the Kubelet when a worker has finished (its pod was deleted): its resources are
/// released for admission.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerDone {
    pub uid: String,
}

/// One probe attempt's outcome (from the worker's own probe loops).
#[derive(Message)]
#[rtype(result = "()")]
struct ProbeResult {
    container_id: String,
    container: String,
    kind: ProbeKind,
    outcome: Result<(), String>,
}

/// The state a sync owns while it runs (taken out of the actor, put back after).
struct State {
    sandbox: Option<SandboxStatus>,
    containers: Vec<ContainerStatus>,
    /// Why containers wait, by name (`ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`).
    waiting: HashMap<String, (String, String)>,
    crash_backoff: Backoff,
    image_backoff: Backoff,
    last_pull_error: HashMap<String, String>,
    /// The context the current trace continues from (`None`: syncs are untraced).
    trace: Option<OtelContext>,
    /// The last status sent to the API server, to skip identical writes.
    last_written: Option<PodStatus>,
    /// Set by a status write that failed: the next sync sends its status again.
    write_failed: Arc<AtomicBool>,
    /// The deletion whose trace was picked up.
    deletion_seen: bool,
}

impl State {
    /// The pod's status as the kubelet knows it: the last one it sent, else the pod's own
    /// (upstream's status manager cache, falling back to `pod.Status`).
    fn status<'a>(&'a self, pod: &'a Pod) -> Option<&'a PodStatus> {
        self.last_written.as_ref().or(pod.status.as_ref())
    }
}

/// What a sync reports back to the actor.
#[derive(Default)]
struct SyncOutput {
    /// Sync again after this (real) delay: a back-off ends.
    resync_after: Option<Duration>,
    /// The pod is gone: stop the worker.
    finished: bool,
}

/// Inputs the actor hands to a sync.
struct SyncInput {
    pod: Arc<Pod>,
    removed: bool,
    views: HashMap<String, ContainerView>,
    kills: Vec<(String, String)>,
}

/// See the module documentation.
pub struct PodWorker {
    env: Arc<Env>,
    pod: Arc<Pod>,
    uid: String,
    state: Option<State>,
    syncing: bool,
    pending: bool,
    removed: bool,
    kubelet: Recipient<WorkerDone>,
    resync_timer: Option<SpawnHandle>,
    /// Probe loops by (container id, kind).
    probe_loops: HashMap<(String, ProbeKind), SpawnHandle>,
    probe_states: HashMap<(String, ProbeKind), ProbeState>,
    /// Containers to stop because a liveness/startup probe failed: id → event message.
    kills: HashMap<String, String>,
}

/// `web-1_default(uid)`: how upstream names a pod in messages (`format.Pod`).
pub fn format_pod(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or(""),
        m.namespace.as_deref().unwrap_or(""),
        m.uid.as_deref().unwrap_or("")
    )
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn trace_of(cx: &Option<OtelContext>) -> Trace {
    match cx {
        Some(cx) => Trace::Context(cx.clone()),
        None => Trace::Untraced,
    }
}

impl PodWorker {
    pub fn new(env: Arc<Env>, pod: Arc<Pod>, kubelet: Recipient<WorkerDone>) -> PodWorker {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        // A pod that is not running yet continues the trace of its binding.
        let trace =
            (phase.is_none_or(|p| p == "Pending")).then(|| telemetry::extract(&pod.metadata));
        let c = &env.config;
        let backoff = || {
            Backoff::new(
                c.backoff_initial(),
                c.backoff_max(),
                c.backoff_reset(),
                env.clock.clone(),
            )
        };
        let state = State {
            sandbox: None,
            containers: Vec::new(),
            waiting: HashMap::new(),
            crash_backoff: backoff(),
            image_backoff: backoff(),
            last_pull_error: HashMap::new(),
            trace,
            last_written: None,
            write_failed: Arc::new(AtomicBool::new(false)),
            deletion_seen: false,
        };
        PodWorker {
            env,
            pod,
            uid,
            state: Some(state),
            syncing: false,
            pending: false,
            removed: false,
            kubelet,
            resync_timer: None,
            probe_loops: HashMap::new(),
            probe_states: HashMap::new(),
            kills: HashMap::new(),
        }
    }

    /// Sync now, or once more after the running sync.
    fn request_sync(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            self.pending = true;
            return;
        }
        // Probe views read the last known containers: compute them before the state is taken.
        let views = self.views();
        let Some(mut state) = self.state.take() else {
            return;
        };
        if self.pod.metadata.deletion_timestamp.is_some() && !state.deletion_seen {
            state.deletion_seen = true;
            state.trace = Some(telemetry::extract(&self.pod.metadata));
        }
        self.syncing = true;
        let input = SyncInput {
            pod: self.pod.clone(),
            removed: self.removed,
            views,
            kills: self.kills.drain().collect(),
        };
        let env = self.env.clone();
        ctx.spawn(
            sync_pod(env, input, state)
                .into_actor(self)
                .map(|(state, out), act, ctx| {
                    act.state = Some(state);
                    act.syncing = false;
                    if out.finished {
                        act.kubelet.do_send(WorkerDone {
                            uid: act.uid.clone(),
                        });
                        ctx.stop();
                        return;
                    }
                    act.reconcile_probes(ctx);
                    if let Some(after) = out.resync_after {
                        if let Some(t) = act.resync_timer.take() {
                            ctx.cancel_future(t);
                        }
                        act.resync_timer = Some(ctx.run_later(after, |act, ctx| {
                            act.resync_timer = None;
                            act.request_sync(ctx);
                        }));
                    }
                    if act.pending {
                        act.pending = false;
                        act.request_sync(ctx);
                    }
                }),
        );
    }

    /// Readiness and startup results per container name, for the running instances.
    fn views(&self) -> HashMap<String, ContainerView> {
        let mut views = HashMap::new();
        let Some(spec) = self.pod.spec.as_ref() else {
            return views;
        };
        let running = self.running_containers();
        for c in &spec.containers {
            let mut v = ContainerView::default();
            let id = running.iter().find(|(_, n)| *n == c.name).map(|(id, _)| id);
            // A probe with no result yet counts as failed (upstream's initial readiness).
            let get = |k| {
                id.and_then(|id| self.probe_states.get(&(id.clone(), k)))
                    .and_then(|s: &ProbeState| s.result)
                    .unwrap_or(false)
            };
            if c.startup_probe.is_some() {
                v.started = Some(get(ProbeKind::Startup));
            }
            if c.readiness_probe.is_some() {
                v.ready = Some(get(ProbeKind::Readiness));
            }
            views.insert(c.name.clone(), v);
        }
        views
    }

    fn running_containers(&self) -> Vec<(String, String)> {
        self.state
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .filter(|c| c.state == ContainerState::Running)
                    .map(|c| (c.id.clone(), c.name.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Start probe loops for running containers that have probes; stop those of containers
    /// that no longer run.
    fn reconcile_probes(&mut self, ctx: &mut Context<Self>) {
        let running = self.running_containers();
        let deleting = self.pod.metadata.deletion_timestamp.is_some();
        let stale: Vec<(String, ProbeKind)> = self
            .probe_loops
            .keys()
            .filter(|(id, _)| deleting || !running.iter().any(|(r, _)| r == id))
            .cloned()
            .collect();
        for key in stale {
            if let Some(h) = self.probe_loops.remove(&key) {
                ctx.cancel_future(h);
            }
            self.probe_states.remove(&key);
        }
        if deleting {
            return;
        }
        let Some(spec) = self.pod.spec.clone() else {
            return;
        };
        for (id, name) in running {
            let Some(container) = spec.containers.iter().find(|c| c.name == name) else {
                continue;
            };
            for kind in ProbeKind::ALL {
                let Some(probe) = kind.of(container) else {
                    continue;
                };
                let key = (id.clone(), kind);
                if self.probe_loops.contains_key(&key) {
                    continue;
                }
                let handle = ctx.spawn(
                    probe_loop(
                        self.env.clone(),
                        ctx.address(),
                        id.clone(),
                        name.clone(),
                        kind,
                        probe.clone(),
                    )
                    .into_actor(self),
                );
                self.probe_loops.insert(key, handle);
            }
        }
    }

    fn record(&self, field: Option<String>, type_: &str, reason: &str, message: String) {
        // Probe results come from the probe loop, not from a sync: untraced.
        record(&self.env, &self.pod, &None, field, type_, reason, message);
    }
}

/// Probe one container forever (the loop is cancelled when the container stops).
async fn probe_loop(
    env: Arc<Env>,
    worker: Addr<PodWorker>,
    container_id: String,
    container: String,
    kind: ProbeKind,
    probe: k8s_openapi::api::core::v1::Probe,
) {
    let t = probes::timing(&probe);
    env.clock.sleep(t.initial_delay).await;
    loop {
        let outcome = match probes::action(&probe) {
            probes::Action::Decided(r) => r,
            probes::Action::Exec(cmd) => {
                let r = env
                    .runtime
                    .send(ExecSync {
                        id: container_id.clone(),
                        cmd,
                        timeout: t.timeout,
                    })
                    .await;
                match r {
                    Ok(Ok(res)) if res.exit_code == 0 => Ok(()),
                    Ok(Ok(res)) if res.exit_code == -1 => Err(format!(
                        "command timed out after {}",
                        go_duration(t.timeout)
                    )),
                    Ok(Ok(res)) => Err(res.output),
                    // The container is gone: its loop is about to be cancelled.
                    Ok(Err(_)) | Err(_) => return,
                }
            }
        };
        worker.do_send(ProbeResult {
            container_id: container_id.clone(),
            container: container.clone(),
            kind,
            outcome,
        });
        env.clock.sleep_period(t.period).await;
    }
}

impl Actor for PodWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = self.env.clock.period(self.env.config.sync_frequency());
        ctx.run_interval(every, |act, ctx| act.request_sync(ctx));
        self.request_sync(ctx);
    }
}

impl Handler<Halt> for PodWorker {
    type Result = ();
    fn handle(&mut self, _: Halt, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<UpdatePod> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: UpdatePod, ctx: &mut Context<Self>) {
        let changed = self.pod.spec != msg.0.spec
            || self.pod.metadata.deletion_timestamp != msg.0.metadata.deletion_timestamp
            || self.pod.metadata.deletion_grace_period_seconds
                != msg.0.metadata.deletion_grace_period_seconds;
        self.pod = msg.0;
        if changed {
            self.request_sync(ctx);
        }
    }
}

impl Handler<PodRemoved> for PodWorker {
    type Result = ();
    fn handle(&mut self, _: PodRemoved, ctx: &mut Context<Self>) {
        self.removed = true;
        self.request_sync(ctx);
    }
}

impl Handler<ContainerEvent> for PodWorker {
    type Result = ();
    fn handle(&mut self, ev: ContainerEvent, ctx: &mut Context<Self>) {
        if ev.kind == ContainerEventType::Stopped {
            self.request_sync(ctx);
        }
    }
}

impl Handler<ProbeResult> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: ProbeResult, ctx: &mut Context<Self>) {
        let Some(probe) = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == msg.container))
            .and_then(|c| msg.kind.of(c).cloned())
        else {
            return;
        };
        // Liveness and readiness wait for the startup probe to succeed.
        let has_startup = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == msg.container))
            .is_some_and(|c| c.startup_probe.is_some());
        let startup_done = self
            .probe_states
            .get(&(msg.container_id.clone(), ProbeKind::Startup))
            .and_then(|s| s.result)
            == Some(true);
        if msg.kind != ProbeKind::Startup && has_startup && !startup_done {
            return;
        }
        if msg.kind == ProbeKind::Startup && startup_done {
            return;
        }
        let field = Some(field_path(Which::Regular, &msg.container));
        if let Err(output) = &msg.outcome {
            self.record(
                field.clone(),
                WARNING,
                "Unhealthy",
                format!("{} probe failed: {output}", msg.kind.title()),
            );
        }
        let t = probes::timing(&probe);
        let key = (msg.container_id.clone(), msg.kind);
        let changed = self
            .probe_states
            .entry(key.clone())
            .or_default()
            .observe(msg.outcome.is_ok(), &t);
        match (msg.kind, changed) {
            (ProbeKind::Readiness, Some(_)) | (ProbeKind::Startup, Some(true)) => {
                self.request_sync(ctx)
            }
            (ProbeKind::Liveness | ProbeKind::Startup, Some(false)) => {
                let which = if msg.kind == ProbeKind::Liveness {
                    "liveness"
                } else {
                    "startup"
                };
                self.kills.insert(
                    msg.container_id.clone(),
                    format!(
                        "Container {} failed {which} probe, will be restarted",
                        msg.container
                    ),
                );
                if let Some(h) = self.probe_loops.remove(&key) {
                    ctx.cancel_future(h);
                }
                self.request_sync(ctx);
            }
            _ => {}
        }
    }
}

/// Record an event about `pod` (or one of its containers, with `field`), in the trace of the
/// sync that caused it (`cx`): the user who created or deleted the pod sees its Pulling,
/// Created, Started or Killing events in the same trace. Upstream events carry no trace;
/// here they are part of the chain a user follows. `None` (probe results): untraced.
fn record(
    env: &Env,
    pod: &Pod,
    cx: &Option<OtelContext>,
    field: Option<String>,
    type_: &str,
    reason: &str,
    message: String,
) {
    let m = &pod.metadata;
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        field_path: field,
    };
    let recorder = env.recorder.clone();
    let type_ = type_.to_string();
    let reason = reason.to_string();
    let trace = trace_of(cx);
    actix::spawn(async move {
        if let Err(e) = recorder
            .write(reference, &type_, &reason, message, trace)
            .await
        {
            tracing::debug!(error = %e, reason, "dropping event");
        }
    });
}

/// Read the pod's sandboxes and containers from the runtime.
async fn refresh(env: &Env, uid: &str, st: &mut State) {
    let sandboxes = env
        .runtime
        .send(ListPodSandbox {
            pod_uid: Some(uid.to_string()),
        })
        .await
        .unwrap_or_default();
    st.sandbox = sandboxes.last().cloned();
    st.containers = env
        .runtime
        .send(ListContainers {
            pod_uid: Some(uid.to_string()),
        })
        .await
        .unwrap_or_default();
}

/// Generate the status and send it if it differs from the last one sent (else the pod's
/// own). The write completes in the background; the status sent is kept in
/// `st.last_written`, which the next status builds on, as upstream's status manager keeps
/// the status it was last given.
fn write_status(
    env: &Env,
    pod: &Pod,
    st: &mut State,
    views: &HashMap<String, ContainerView>,
    terminal: bool,
    cx: &Option<OtelContext>,
) {
    // The waiting reasons go into the views; most syncs have none, and need no copy.
    let views = if st.waiting.is_empty() {
        std::borrow::Cow::Borrowed(views)
    } else {
        let mut views = views.clone();
        for (name, w) in &st.waiting {
            views.entry(name.clone()).or_default().waiting = Some(w.clone());
        }
        std::borrow::Cow::Owned(views)
    };
    if st.write_failed.swap(false, Ordering::Relaxed) {
        st.last_written = None;
    }
    let base = st.status(pod);
    let status = generate_pod_status(&StatusInput {
        pod,
        status: base,
        sandbox: st.sandbox.as_ref(),
        containers: &st.containers,
        views: &views,
        host_ip: &env.host_ip,
        now: crate::apiserver::strategy::now(),
        terminal,
    });
    if base == Some(&status) {
        return;
    }
    let object = Object::from(Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        spec: None,
        status: Some(status.clone()),
    });
    // As upstream's pod worker hands the status to the status manager (`SetPodStatus`), which
    // writes it asynchronously: the write is queued now (the API server applies a pod's
    // writes in the order they were sent) and the sync goes on without waiting for it to be
    // durable. A failed write is sent again by the next sync.
    let request = env.api.send(Update {
        object,
        subresource: Subresource::Status,
        options: WriteOptions::default(),
        trace: trace_of(cx),
    });
    let failed = st.write_failed.clone();
    let key = pod_key(pod);
    actix::spawn(async move {
        let error = match request.await {
            Ok(Ok(_)) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("api server unreachable: {e}"),
        };
        tracing::debug!(pod = %key, %error, "status update failed");
        failed.store(true, Ordering::Relaxed);
    });
    st.last_written = Some(status);
}

/// Ensure the container's image is present. Mirrors `EnsureImageExists`
/// (pkg/kubelet/images/image_manager.go). `Err` carries the waiting reason and message, and
/// when to retry (real time).
async fn ensure_image(
    env: &Env,
    pod: &Pod,
    start: &Start,
    st: &mut State,
    cx: &Option<OtelContext>,
) -> Result<String, (String, String, Option<Duration>)> {
    let c = &start.container;
    let image = c.image.clone().unwrap_or_default();
    let field = Some(start.field_path());
    let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
        if image.contains('@')
            || !image.rsplit('/').next().unwrap_or("").contains(':')
            || image.ends_with(":latest")
        {
            "Always".into()
        } else {
            "IfNotPresent".into()
        }
    });
    let present = match env
        .runtime
        .send(ImageStatus {
            image: image.clone(),
            trace: cx.clone(),
        })
        .await
    {
        Ok(Ok(p)) => p,
        Ok(Err(RuntimeError::InvalidImage(e))) => {
            let msg = format!("Failed to apply default image tag {image:?}: {e}");
            record(env, pod, cx, field, WARNING, "InspectFailed", msg.clone());
            return Err(("InvalidImageName".into(), msg, None));
        }
        Ok(Err(e)) => return Err(("ErrImagePull".into(), e.to_string(), None)),
        Err(e) => return Err(("ErrImagePull".into(), e.to_string(), None)),
    };
    if let Some(info) = &present {
        if policy != "Always" {
            record(
                env,
                pod,
                cx,
                field,
                NORMAL,
                "Pulled",
                format!("Container image {image:?} already present on machine"),
            );
            return Ok(info.repo_digests.first().cloned().unwrap_or_default());
        }
    } else if policy == "Never" {
        let msg = format!("Container image {image:?} is not present with pull policy of Never");
        record(
            env,
            pod,
            cx,
            field,
            WARNING,
            "ErrImageNeverPull",
            msg.clone(),
        );
        return Err(("ErrImageNeverPull".into(), msg, None));
    }
    let key = format!("{}_{image}", pod.metadata.uid.as_deref().unwrap_or(""));
    if let Some(last) = st.image_backoff.last_update(&key) {
        if let Some(rem) = st.image_backoff.remaining_since(&key, last) {
            record(
                env,
                pod,
                cx,
                field.clone(),
                NORMAL,
                "BackOff",
                format!("Back-off pulling image {image:?}"),
            );
            record(
                env,
                pod,
                cx,
                field,
                WARNING,
                "Failed",
                "Error: ImagePullBackOff".into(),
            );
            let last_err = st.last_pull_error.get(&key).cloned().unwrap_or_default();
            return Err((
                "ImagePullBackOff".into(),
                format!("Back-off pulling image {image:?}: ErrImagePull: {last_err}"),
                Some(rem),
            ));
        }
    }
    record(
        env,
        pod,
        cx,
        field.clone(),
        NORMAL,
        "Pulling",
        format!("Pulling image {image:?}"),
    );
    let pulled = env
        .runtime
        .send(PullImage {
            image: image.clone(),
            trace: cx.clone(),
        })
        .await
        .unwrap_or_else(|e| Err(RuntimeError::FailedPrecondition(e.to_string())));
    match pulled {
        Ok(p) => {
            st.image_backoff.reset(&key);
            st.last_pull_error.remove(&key);
            let took = go_duration(p.duration);
            record(
                env,
                pod,
                cx,
                field,
                NORMAL,
                "Pulled",
                format!(
                    "Successfully pulled image {image:?} in {took} ({took} including waiting). Image size: {} bytes.",
                    p.size_bytes
                ),
            );
            Ok(p.image_ref)
        }
        Err(e) => {
            let now = env.clock.wall();
            st.image_backoff.next(&key, now);
            st.last_pull_error.insert(key.clone(), e.to_string());
            record(
                env,
                pod,
                cx,
                field.clone(),
                WARNING,
                "Failed",
                format!("Failed to pull image {image:?}: {e}"),
            );
            record(
                env,
                pod,
                cx,
                field,
                WARNING,
                "Failed",
                "Error: ErrImagePull".into(),
            );
            let retry = st.image_backoff.remaining_since(&key, now);
            Err(("ErrImagePull".into(), e.to_string(), retry))
        }
    }
}

/// Pull (if needed), create and start one container. Mirrors `startContainer`
/// (kuberuntime_container.go). `Err(Some(d))`: retry after `d`.
async fn start_container(
    env: &Env,
    pod: &Pod,
    sandbox_id: &str,
    start: &Start,
    st: &mut State,
    cx: &Option<OtelContext>,
) -> Result<(), Option<Duration>> {
    let name = start.container.name.clone();
    let field = Some(start.field_path());
    if let Err((reason, message, retry)) = ensure_image(env, pod, start, st, cx).await {
        st.waiting.insert(name, (reason, message));
        return Err(retry);
    }
    let c = &start.container;
    let created = env
        .runtime
        .send(CreateContainer {
            sandbox_id: sandbox_id.to_string(),
            config: ContainerConfig {
                name: name.clone(),
                image: c.image.clone().unwrap_or_default(),
                command: c.command.clone().unwrap_or_default(),
                args: c.args.clone().unwrap_or_default(),
                attempt: start.attempt,
            },
            trace: cx.clone(),
        })
        .await;
    let id = match created {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => {
            record(
                env,
                pod,
                cx,
                field,
                WARNING,
                "Failed",
                format!("Error: {e}"),
            );
            st.waiting
                .insert(name, ("CreateContainerError".into(), e.to_string()));
            return Err(Some(env.clock.period(env.config.backoff_initial())));
        }
        Err(e) => {
            st.waiting
                .insert(name, ("CreateContainerError".into(), e.to_string()));
            return Err(Some(env.clock.period(env.config.backoff_initial())));
        }
    };
    record(
        env,
        pod,
        cx,
        field.clone(),
        NORMAL,
        "Created",
        format!("Created container: {name}"),
    );
    let started = env
        .runtime
        .send(StartContainer {
            id,
            trace: cx.clone(),
        })
        .await;
    match started {
        Ok(Ok(())) => {
            record(
                env,
                pod,
                cx,
                field,
                NORMAL,
                "Started",
                format!("Started container {name}"),
            );
            st.waiting.remove(&name);
            Ok(())
        }
        Ok(Err(e)) => {
            record(
                env,
                pod,
                cx,
                field,
                WARNING,
                "Failed",
                format!("Error: {e}"),
            );
            st.waiting
                .insert(name, ("RunContainerError".into(), e.to_string()));
            Err(Some(env.clock.period(env.config.backoff_initial())))
        }
        Err(_) => Err(None),
    }
}

fn start_span(env: &Env, pod: &Pod, st: &State) -> Option<OtelContext> {
    let parent = st.trace.as_ref()?;
    let span = SpanBuilder::from_name(format!("sync pod {}", pod_key(pod))).with_attributes([
        KeyValue::new(
            "k8s.pod.name",
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        KeyValue::new(
            "k8s.namespace.name",
            pod.metadata.namespace.clone().unwrap_or_default(),
        ),
        KeyValue::new("k8s.pod.uid", pod.metadata.uid.clone().unwrap_or_default()),
        KeyValue::new("k8s.node.name", env.node.clone()),
    ]);
    Some(telemetry::start_reaction(
        &env.tracer,
        env.propagation,
        span,
        parent,
    ))
}

/// One sync of one pod. See the module documentation.
async fn sync_pod(env: Arc<Env>, input: SyncInput, mut st: State) -> (State, SyncOutput) {
    let pod = input.pod.clone();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut out = SyncOutput::default();
    // The watched pod has caught up with the last status sent: that copy is no longer needed
    // to skip a repeat (the pod's own status does it), and a pod that stays Running would
    // otherwise keep a second copy of its status for its whole life.
    if st.last_written.is_some() && pod.status == st.last_written {
        st.last_written = None;
    }
    let cx = start_span(&env, &pod, &st);
    refresh(&env, &uid, &mut st).await;

    if pod.metadata.deletion_timestamp.is_some() || input.removed {
        terminate(&env, &pod, &mut st, &input, &cx).await;
        out.finished = true;
        if let Some(cx) = &cx {
            cx.span().end();
        }
        st.trace = None;
        return (st, out);
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    if matches!(phase.as_deref(), Some("Succeeded") | Some("Failed")) {
        // A finished pod keeps its status; its sandbox is stopped (syncTerminatedPod).
        if let Some(sb) = st
            .sandbox
            .as_ref()
            .filter(|s| s.state == SandboxState::Ready)
        {
            let _ = env
                .runtime
                .send(StopPodSandbox {
                    id: sb.id.clone(),
                    trace: cx.clone(),
                })
                .await;
        }
        if let Some(cx) = &cx {
            cx.span().end();
        }
        st.trace = None;
        return (st, out);
    }

    write_status(&env, &pod, &mut st, &input.views, false, &cx);

    // Containers that failed their liveness or startup probe are killed, then restarted by
    // the actions below (as any exited container).
    for (id, message) in &input.kills {
        let name = st
            .containers
            .iter()
            .find(|c| &c.id == id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        record(
            &env,
            &pod,
            &cx,
            Some(field_path(Which::Regular, &name)),
            NORMAL,
            "Killing",
            message.clone(),
        );
        let grace = grace_period(&pod);
        let _ = env
            .runtime
            .send(StopContainer {
                id: id.clone(),
                timeout: grace,
                trace: cx.clone(),
            })
            .await;
    }
    if !input.kills.is_empty() {
        refresh(&env, &uid, &mut st).await;
    }

    let sandbox = match st
        .sandbox
        .clone()
        .filter(|s| s.state == SandboxState::Ready)
    {
        Some(s) => s,
        None => {
            let attempt = env
                .runtime
                .send(ListPodSandbox {
                    pod_uid: Some(uid.clone()),
                })
                .await
                .map(|v| v.len() as u32)
                .unwrap_or(0);
            let reply = env
                .runtime
                .send(RunPodSandbox {
                    config: PodSandboxConfig {
                        name: pod.metadata.name.clone().unwrap_or_default(),
                        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                        uid: uid.clone(),
                        attempt,
                    },
                    trace: cx.clone(),
                })
                .await;
            match reply {
                // No status write here: upstream's `SyncPod` sets the pod's status once, before
                // the runtime's `SyncPod` creates the sandbox, and the pod IP first appears in
                // the status of the next sync (the one PLEG's container events trigger), which
                // is the write at the end of this one. A pod pulling its image shows no IP.
                Ok(Ok(s)) => {
                    st.sandbox = Some(s.clone());
                    s
                }
                Ok(Err(e)) => {
                    record(
                        &env,
                        &pod,
                        &cx,
                        None,
                        WARNING,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                    );
                    out.resync_after = Some(env.clock.period(env.config.backoff_initial()));
                    if let Some(cx) = &cx {
                        cx.span().set_status(SpanStatus::error(e.to_string()));
                        cx.span().end();
                    }
                    st.trace = None;
                    return (st, out);
                }
                Err(_) => return (st, out),
            }
        }
    };

    let mut backing_off = false;
    for start in compute_pod_actions(&pod, &st.containers) {
        let name = start.container.name.clone();
        if start.attempt > 0 {
            let key = format!("{uid}_{name}");
            let exit = start.previous_exit.unwrap_or_else(|| env.clock.wall());
            if let Some(remaining) = st.crash_backoff.remaining_since(&key, exit) {
                let wait = go_duration(st.crash_backoff.get(&key));
                st.waiting.insert(
                    name.clone(),
                    (
                        "CrashLoopBackOff".into(),
                        format!(
                            "back-off {wait} restarting failed container={name} pod={}",
                            format_pod(&pod)
                        ),
                    ),
                );
                record(
                    &env,
                    &pod,
                    &cx,
                    Some(start.field_path()),
                    WARNING,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {name} in pod {}",
                        format_pod(&pod)
                    ),
                );
                out.resync_after = Some(out.resync_after.map_or(remaining, |r| r.min(remaining)));
                backing_off = true;
                continue;
            }
            st.crash_backoff.next(&key, exit);
        }
        if let Err(retry) = start_container(&env, &pod, &sandbox.id, &start, &mut st, &cx).await {
            backing_off = true;
            if let Some(r) = retry {
                out.resync_after = Some(out.resync_after.map_or(r, |x| x.min(r)));
            }
        }
    }
    refresh(&env, &uid, &mut st).await;
    write_status(&env, &pod, &mut st, &input.views, false, &cx);
    let new_phase = st.status(&pod).and_then(|s| s.phase.clone());
    let terminal = matches!(new_phase.as_deref(), Some("Succeeded") | Some("Failed"));
    if terminal {
        let _ = env
            .runtime
            .send(StopPodSandbox {
                id: sandbox.id.clone(),
                trace: cx.clone(),
            })
            .await;
    }
    if let Some(cx) = &cx {
        cx.span().set_attribute(KeyValue::new(
            "k8s.pod.phase",
            new_phase.clone().unwrap_or_default(),
        ));
        cx.span().end();
    }
    // --- metrics: kubelet_pod_start_duration_seconds (issue 7) ---
    if new_phase.as_deref() == Some("Running") && phase.as_deref() != Some("Running") {
        if let Some(created) = &pod.metadata.creation_timestamp {
            let nanos = jiff::Timestamp::now().as_nanosecond() - created.0.as_nanosecond();
            let took = Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
            crate::metrics::global().observe_pod_start(&env.node, took);
        }
    }
    // --- end metrics ---
    // The chain of a new pod ends once it runs, backs off, or finishes.
    if new_phase.as_deref() == Some("Running") || backing_off || terminal {
        st.trace = None;
    }
    (st, out)
}

/// The grace period to stop containers with: the deletion's, else the spec's, else 30 s.
fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0);
    Duration::from_secs(secs as u64)
}

/// Stop everything within the grace period, report the final status, delete the pod.
/// Mirrors `killPodWithSyncResult` / `SyncTerminatingPod` and the status manager's final
/// delete (`canBeDeleted` → Delete with grace 0).
async fn terminate(
    env: &Env,
    pod: &Arc<Pod>,
    st: &mut State,
    input: &SyncInput,
    cx: &Option<OtelContext>,
) {
    let grace = if input.removed {
        Duration::ZERO
    } else {
        grace_period(pod)
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let running: Vec<ContainerStatus> = st
        .containers
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .cloned()
        .collect();
    let stops = running.into_iter().map(|c| {
        let spec = spec.clone();
        async move {
            let which = if spec.containers.iter().any(|s| s.name == c.name) {
                Which::Regular
            } else {
                Which::Init
            };
            record(
                env,
                pod,
                cx,
                Some(field_path(which, &c.name)),
                NORMAL,
                "Killing",
                format!("Stopping container {}", c.name),
            );
            let mut remaining = grace;
            let pre_stop = spec
                .containers
                .iter()
                .find(|s| s.name == c.name)
                .and_then(|s| s.lifecycle.as_ref())
                .and_then(|l| l.pre_stop.as_ref())
                .and_then(|h| h.exec.as_ref())
                .and_then(|e| e.command.clone());
            if let (Some(cmd), false) = (pre_stop, grace.is_zero()) {
                if let Ok(Ok(r)) = env
                    .runtime
                    .send(ExecSync {
                        id: c.id.clone(),
                        cmd,
                        timeout: grace,
                    })
                    .await
                {
                    remaining = remaining.saturating_sub(r.duration);
                }
            }
            let _ = env
                .runtime
                .send(StopContainer {
                    id: c.id.clone(),
                    timeout: remaining,
                    trace: cx.clone(),
                })
                .await;
        }
    });
    join_all(stops).await;
    if let Some(sb) = &st.sandbox {
        let _ = env
            .runtime
            .send(StopPodSandbox {
                id: sb.id.clone(),
                trace: cx.clone(),
            })
            .await;
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    refresh(env, &uid, st).await;
    if !input.removed {
        write_status(env, pod, st, &input.views, true, cx);
        let reply = env
            .api
            .send(Delete {
                kind: crate::api::Kind::Pod,
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                options: DeleteOptions {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                },
                write: WriteOptions::default(),
                trace: trace_of(cx),
            })
            .await;
        if let Ok(Err(e)) = reply {
            tracing::debug!(pod = %pod_key(pod), error = %e, "final delete failed");
        }
    }
    let sandboxes = env
        .runtime
        .send(ListPodSandbox { pod_uid: Some(uid) })
        .await
        .unwrap_or_default();
    for sb in sandboxes {
        let _ = env.runtime.send(RemovePodSandbox { id: sb.id }).await;
    }
}
