//! The `ContainerRuntime` actor: one per node, containerd as the kubelet sees it through the
//! CRI. It keeps the node's image store, its pod sandboxes (with IPs from the pod CIDR) and
//! its containers' state machines (`Created → Running → Exited`), and takes simulated time
//! for each verb (`[runtime]`, scaled by the [`Clock`]).
//!
//! Handlers are thin: the decisions (what a command does, how long a pull takes, which IP is
//! next) are plain functions in [`super::script`], [`super::config`] and [`super::ipam`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::{BoxFuture, FutureExt, Shared};
use opentelemetry::trace::{TraceContextExt, Tracer};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use super::config::RuntimeConfig;
use super::images::{random_id, ImageRef};
use super::ipam::{CidrError, Ipam};
use super::messages::*;
use super::script::{self, Ending, Script};
use crate::clock::Clock;
use crate::telemetry::{Component, Telemetry};

type PullFuture = Shared<BoxFuture<'static, Result<PullResult, RuntimeError>>>;

struct Sandbox {
    status: SandboxStatus,
    seq: u64,
}

struct Container {
    status: ContainerStatus,
    script: Script,
    /// When it started running (real), to place the script's timeline.
    started: Option<Instant>,
    /// The simulated time it ran for, once exited.
    ran_for: Option<Duration>,
    /// Lifecycle lines after the script's output (stop, exit).
    tail: Vec<String>,
    seq: u64,
}

impl Container {
    fn elapsed(&self, clock: &dyn Clock) -> Duration {
        match (self.ran_for, self.started) {
            (Some(d), _) => d,
            (None, Some(t)) => clock.simulated(clock.now().saturating_duration_since(t)),
            (None, None) => Duration::ZERO,
        }
    }
}

/// The container runtime of one node. See the module documentation.
pub struct ContainerRuntime {
    node: String,
    config: RuntimeConfig,
    clock: Arc<dyn Clock>,
    tracer: SdkTracer,
    ipam: Ipam,
    /// Stored images by normalized reference (`docker.io/library/nginx:1.27`).
    images: BTreeMap<String, ImageInfo>,
    /// Pulls in progress by normalized reference: a second pull of the same image waits for
    /// the first instead of downloading again.
    inflight: HashMap<String, PullFuture>,
    sandboxes: HashMap<String, Sandbox>,
    containers: HashMap<String, Container>,
    seq: u64,
    subscribers: Vec<Recipient<ContainerEvent>>,
}

fn image_info(image: &ImageRef, size_bytes: u64) -> ImageInfo {
    ImageInfo {
        id: image.content_digest(),
        repo_tags: vec![image.normalized()],
        repo_digests: vec![image.repo_digest()],
        size_bytes,
    }
}

impl ContainerRuntime {
    /// A runtime for `node`, handing out pod IPs from `pod_cidr`.
    pub fn new(
        node: &str,
        pod_cidr: &str,
        config: RuntimeConfig,
        clock: Arc<dyn Clock>,
        telemetry: &Telemetry,
    ) -> Result<ContainerRuntime, CidrError> {
        let mut images = BTreeMap::new();
        for name in &config.preloaded_images {
            if let Ok(r) = ImageRef::parse(name) {
                let size = config.image_size_bytes(&r);
                images.insert(r.normalized(), image_info(&r, size));
            }
        }
        Ok(ContainerRuntime {
            node: node.to_string(),
            ipam: Ipam::new(pod_cidr)?,
            tracer: telemetry.node_tracer(Component::ContainerRuntime, node),
            config,
            clock,
            images,
            inflight: HashMap::new(),
            sandboxes: HashMap::new(),
            containers: HashMap::new(),
            seq: 0,
            subscribers: Vec::new(),
        })
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A span under `trace` (none when untraced), as a context to end later.
    fn span(&self, trace: &Option<OtelContext>, name: String, attrs: Vec<KeyValue>) -> OtelContext {
        match trace {
            Some(cx) => {
                let mut attrs = attrs;
                attrs.push(KeyValue::new("k8s.node.name", self.node.clone()));
                let span = self
                    .tracer
                    .span_builder(name)
                    .with_attributes(attrs)
                    .start_with_context(&self.tracer, cx);
                cx.with_span(span)
            }
            None => OtelContext::new(),
        }
    }

    fn emit(&mut self, c: &ContainerStatus, kind: ContainerEventType) {
        let ev = ContainerEvent {
            container_id: c.id.clone(),
            sandbox_id: c.sandbox_id.clone(),
            pod_uid: c.pod_uid.clone(),
            container_name: c.name.clone(),
            kind,
        };
        self.subscribers.retain(|s| s.connected());
        for s in &self.subscribers {
            s.do_send(ev.clone());
        }
    }

    fn container(&self, id: &str) -> Result<&Container, RuntimeError> {
        self.containers
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "container",
                id: id.to_string(),
            })
    }

    /// Mark a container exited with `code`, freezing its timeline; no-op unless running.
    fn exit(&mut self, id: &str, code: i32, line: Option<String>) {
        let now = self.clock.wall();
        let clock = self.clock.clone();
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        if c.status.state != ContainerState::Running {
            return;
        }
        let ran = c.elapsed(&*clock);
        let ran = match c.script.ending {
            Ending::Exits { after, .. } => ran.min(after),
            Ending::RunsForever => ran,
        };
        c.ran_for = Some(ran);
        c.status.state = ContainerState::Exited;
        c.status.finished_at = Some(now);
        c.status.exit_code = Some(code);
        c.status.reason = if code == 0 { "Completed" } else { "Error" }.to_string();
        if let Some(line) = line {
            c.tail.push(line);
        }
        c.tail
            .push(format!("[kubeactor] container exited with code {code}"));
        let status = c.status.clone();
        self.emit(&status, ContainerEventType::Stopped);
    }

    /// Schedule the container's own exit, if its command ends.
    fn schedule_exit(&mut self, id: &str, ctx: &mut Context<Self>) {
        let Some(c) = self.containers.get(id) else {
            return;
        };
        if let Ending::Exits { after, code } = c.script.ending {
            let id = id.to_string();
            let delay = self.clock.sleep(after);
            ctx.spawn(delay.into_actor(self).map(move |_, act, _| {
                act.exit(&id, code, None);
            }));
        }
    }

    /// The log of a container: lifecycle lines and its command's output so far.
    pub fn logs(&self, id: &str) -> Result<Vec<String>, RuntimeError> {
        let c = self.container(id)?;
        let mut lines = Vec::new();
        if c.started.is_some() {
            let what = if c.script.steps.is_empty() && c.script.ending == Ending::RunsForever {
                "simulated: a server that runs until stopped"
            } else {
                "simulated: its command runs as documented in docs/nodes.md"
            };
            lines.push(format!(
                "[kubeactor] started container {} from {} ({what})",
                c.status.name, c.status.image
            ));
            lines.extend(c.script.output_by(c.elapsed(&*self.clock)));
        }
        lines.extend(c.tail.iter().cloned());
        Ok(lines)
    }
}

impl Actor for ContainerRuntime {
    type Context = Context<Self>;
}

impl Handler<SubscribeEvents> for ContainerRuntime {
    type Result = ();
    fn handle(&mut self, msg: SubscribeEvents, _: &mut Context<Self>) {
        self.subscribers.push(msg.0);
    }
}

impl Handler<RunPodSandbox> for ContainerRuntime {
    type Result = ResponseActFuture<Self, Result<SandboxStatus, RuntimeError>>;

    fn handle(&mut self, msg: RunPodSandbox, _: &mut Context<Self>) -> Self::Result {
        let cx = self.span(
            &msg.trace,
            "run pod sandbox".to_string(),
            vec![
                KeyValue::new("k8s.pod.name", msg.config.name.clone()),
                KeyValue::new("k8s.namespace.name", msg.config.namespace.clone()),
                KeyValue::new("k8s.pod.uid", msg.config.uid.clone()),
            ],
        );
        let delay = self.clock.sleep(self.config.run_sandbox());
        Box::pin(delay.into_actor(self).map(move |_, act, _| {
            let id = random_id();
            let result = match act.ipam.allocate() {
                Some(ip) => {
                    let status = SandboxStatus {
                        id: id.clone(),
                        config: msg.config,
                        state: SandboxState::Ready,
                        ip,
                        created_at: act.clock.wall(),
                    };
                    let seq = act.next_seq();
                    act.sandboxes.insert(
                        id.clone(),
                        Sandbox {
                            status: status.clone(),
                            seq,
                        },
                    );
                    cx.span().set_attribute(KeyValue::new("sandbox.id", id));
                    cx.span()
                        .set_attribute(KeyValue::new("k8s.pod.ip", ip.to_string()));
                    Ok(status)
                }
                None => Err(RuntimeError::NoAddress(id)),
            };
            if let Err(e) = &result {
                cx.span()
                    .set_status(opentelemetry::trace::Status::error(e.to_string()));
            }
            cx.span().end();
            result
        }))
    }
}

impl Handler<StopPodSandbox> for ContainerRuntime {
    type Result = Result<(), RuntimeError>;

    fn handle(&mut self, msg: StopPodSandbox, _: &mut Context<Self>) -> Self::Result {
        let Some(sb) = self.sandboxes.get_mut(&msg.id) else {
            return Ok(());
        };
        let cx = if msg.trace.is_some() {
            let config = sb.status.config.clone();
            Some(self.span(
                &msg.trace,
                "stop pod sandbox".into(),
                vec![
                    KeyValue::new("k8s.pod.name", config.name),
                    KeyValue::new("k8s.namespace.name", config.namespace),
                ],
            ))
        } else {
            None
        };
        let Some(sb) = self.sandboxes.get_mut(&msg.id) else {
            return Ok(());
        };
        if sb.status.state == SandboxState::Ready {
            sb.status.state = SandboxState::NotReady;
            let ip = sb.status.ip;
            self.ipam.release(ip);
        }
        let running: Vec<String> = self
            .containers
            .values()
            .filter(|c| c.status.sandbox_id == msg.id && c.status.state == ContainerState::Running)
            .map(|c| c.status.id.clone())
            .collect();
        for id in running {
            self.exit(
                &id,
                137,
                Some("[kubeactor] killed: pod sandbox stopped".into()),
            );
        }
        if let Some(cx) = cx {
            cx.span().end();
        }
        Ok(())
    }
}

impl Handler<RemovePodSandbox> for ContainerRuntime {
    type Result = Result<(), RuntimeError>;

    fn handle(&mut self, msg: RemovePodSandbox, ctx: &mut Context<Self>) -> Self::Result {
        let Some(sb) = self.sandboxes.get(&msg.id) else {
            return Ok(());
        };
        if sb.status.state == SandboxState::Ready {
            <Self as Handler<StopPodSandbox>>::handle(
                self,
                StopPodSandbox {
                    id: msg.id.clone(),
                    trace: None,
                },
                ctx,
            )?;
        }
        let ids: Vec<String> = self
            .containers
            .values()
            .filter(|c| c.status.sandbox_id == msg.id)
            .map(|c| c.status.id.clone())
            .collect();
        for id in ids {
            if let Some(c) = self.containers.remove(&id) {
                self.emit(&c.status, ContainerEventType::Deleted);
            }
        }
        self.sandboxes.remove(&msg.id);
        Ok(())
    }
}

impl Handler<ListPodSandbox> for ContainerRuntime {
    type Result = MessageResult<ListPodSandbox>;

    fn handle(&mut self, msg: ListPodSandbox, _: &mut Context<Self>) -> Self::Result {
        let mut found: Vec<&Sandbox> = self
            .sandboxes
            .values()
            .filter(|s| {
                msg.pod_uid
                    .as_ref()
                    .is_none_or(|u| *u == s.status.config.uid)
            })
            .collect();
        found.sort_by_key(|s| s.seq);
        MessageResult(found.into_iter().map(|s| s.status.clone()).collect())
    }
}

impl Handler<ImageStatus> for ContainerRuntime {
    type Result = Result<Option<ImageInfo>, RuntimeError>;

    fn handle(&mut self, msg: ImageStatus, _: &mut Context<Self>) -> Self::Result {
        let r =
            ImageRef::parse(&msg.image).map_err(|e| RuntimeError::InvalidImage(e.to_string()))?;
        let found = self.images.get(&r.normalized()).cloned();
        if msg.trace.is_some() {
            let cx = self.span(
                &msg.trace,
                format!("image status {}", msg.image),
                vec![
                    KeyValue::new("container.image.name", r.normalized()),
                    KeyValue::new("cache.hit", found.is_some()),
                ],
            );
            cx.span().end();
        }
        Ok(found)
    }
}

impl Handler<ListImages> for ContainerRuntime {
    type Result = MessageResult<ListImages>;

    fn handle(&mut self, _: ListImages, _: &mut Context<Self>) -> Self::Result {
        let mut all: Vec<ImageInfo> = self.images.values().cloned().collect();
        all.sort_by(|a, b| b.size_bytes.cmp(&a.size_bytes).then(a.id.cmp(&b.id)));
        MessageResult(all)
    }
}

impl Handler<PullImage> for ContainerRuntime {
    type Result = ResponseActFuture<Self, Result<PullResult, RuntimeError>>;

    fn handle(&mut self, msg: PullImage, _: &mut Context<Self>) -> Self::Result {
        let r = match ImageRef::parse(&msg.image) {
            Ok(r) => r,
            Err(e) => return Box::pin(fut::ready(Err(RuntimeError::InvalidImage(e.to_string())))),
        };
        let key = r.normalized();
        let cx = self.span(
            &msg.trace,
            format!("pull image {}", msg.image),
            vec![KeyValue::new("container.image.name", key.clone())],
        );
        let check = self.config.registry_check();
        let started = self.clock.now();
        let clock = self.clock.clone();
        let (future, joined) = match self.inflight.get(&key) {
            Some(f) => (f.clone(), true),
            None => {
                let present = self.images.get(&key).map(|i| i.size_bytes);
                let size = present.unwrap_or_else(|| self.config.image_size_bytes(&r));
                let download = match present {
                    Some(_) => Duration::ZERO,
                    None => self.config.download_time(size),
                };
                let missing = r.is_missing();
                let image_ref = r.repo_digest();
                let normalized = key.clone();
                let clock = self.clock.clone();
                let f: BoxFuture<'static, Result<PullResult, RuntimeError>> = async move {
                    clock.sleep(check).await;
                    if missing {
                        return Err(RuntimeError::ImageNotFound { image: normalized });
                    }
                    clock.sleep(download).await;
                    Ok(PullResult {
                        image_ref,
                        size_bytes: size,
                        cache_hit: present.is_some(),
                        downloaded_bytes: if present.is_some() { 0 } else { size },
                        duration: check + download,
                    })
                }
                .boxed();
                let shared = f.shared();
                self.inflight.insert(key.clone(), shared.clone());
                (shared, false)
            }
        };
        Box::pin(future.into_actor(self).map(move |result, act, _| {
            act.inflight.remove(&key);
            let result = result.map(|mut p| {
                if !act.images.contains_key(&key) {
                    act.images.insert(key.clone(), image_info(&r, p.size_bytes));
                }
                if joined {
                    p.cache_hit = true;
                    p.downloaded_bytes = 0;
                    p.duration = clock.simulated(clock.now().saturating_duration_since(started));
                }
                p
            });
            let span = cx.span();
            match &result {
                Ok(p) => {
                    span.set_attribute(KeyValue::new("cache.hit", p.cache_hit));
                    span.set_attribute(KeyValue::new("image.size_bytes", p.size_bytes as i64));
                    span.set_attribute(KeyValue::new(
                        "pull.downloaded_bytes",
                        p.downloaded_bytes as i64,
                    ));
                    span.set_attribute(KeyValue::new(
                        "pull.simulated_duration_ms",
                        p.duration.as_millis().min(i64::MAX as u128) as i64,
                    ));
                }
                Err(e) => span.set_status(opentelemetry::trace::Status::error(e.to_string())),
            }
            span.end();
            result
        }))
    }
}

impl Handler<CreateContainer> for ContainerRuntime {
    type Result = ResponseActFuture<Self, Result<String, RuntimeError>>;

    fn handle(&mut self, msg: CreateContainer, _: &mut Context<Self>) -> Self::Result {
        let cx = self.span(
            &msg.trace,
            format!("create container {}", msg.config.name),
            vec![
                KeyValue::new("container.name", msg.config.name.clone()),
                KeyValue::new("container.image.name", msg.config.image.clone()),
            ],
        );
        let delay = self.clock.sleep(self.config.create_container());
        Box::pin(delay.into_actor(self).map(move |_, act, _| {
            let result = act.create_container(msg);
            match &result {
                Ok(id) => cx
                    .span()
                    .set_attribute(KeyValue::new("container.id", id.clone())),
                Err(e) => cx
                    .span()
                    .set_status(opentelemetry::trace::Status::error(e.to_string())),
            }
            cx.span().end();
            result
        }))
    }
}

impl ContainerRuntime {
    fn create_container(&mut self, msg: CreateContainer) -> Result<String, RuntimeError> {
        let sandbox =
            self.sandboxes
                .get(&msg.sandbox_id)
                .ok_or_else(|| RuntimeError::NotFound {
                    kind: "sandbox",
                    id: msg.sandbox_id.clone(),
                })?;
        if sandbox.status.state != SandboxState::Ready {
            return Err(RuntimeError::FailedPrecondition(format!(
                "sandbox {} is not ready",
                msg.sandbox_id
            )));
        }
        let pod_uid = sandbox.status.config.uid.clone();
        let r = ImageRef::parse(&msg.config.image)
            .map_err(|e| RuntimeError::InvalidImage(e.to_string()))?;
        if !self.images.contains_key(&r.normalized()) {
            return Err(RuntimeError::ImageNotPresent(r.normalized()));
        }
        let id = random_id();
        let status = ContainerStatus {
            id: id.clone(),
            sandbox_id: msg.sandbox_id,
            pod_uid,
            name: msg.config.name.clone(),
            attempt: msg.config.attempt,
            state: ContainerState::Created,
            image: r.normalized(),
            image_ref: r.repo_digest(),
            created_at: self.clock.wall(),
            started_at: None,
            finished_at: None,
            exit_code: None,
            reason: String::new(),
            message: String::new(),
        };
        let seq = self.next_seq();
        self.containers.insert(
            id.clone(),
            Container {
                status: status.clone(),
                script: Script::parse(&msg.config.command, &msg.config.args),
                started: None,
                ran_for: None,
                tail: Vec::new(),
                seq,
            },
        );
        self.emit(&status, ContainerEventType::Created);
        Ok(id)
    }
}

impl Handler<StartContainer> for ContainerRuntime {
    type Result = ResponseActFuture<Self, Result<(), RuntimeError>>;

    fn handle(&mut self, msg: StartContainer, _: &mut Context<Self>) -> Self::Result {
        let name = self
            .containers
            .get(&msg.id)
            .map(|c| c.status.name.clone())
            .unwrap_or_default();
        let cx = self.span(
            &msg.trace,
            format!("start container {name}"),
            vec![
                KeyValue::new("container.name", name),
                KeyValue::new("container.id", msg.id.clone()),
            ],
        );
        let delay = self.clock.sleep(self.config.start_container());
        Box::pin(delay.into_actor(self).map(move |_, act, ctx| {
            let now = act.clock.wall();
            let started = act.clock.now();
            let result = match act.containers.get_mut(&msg.id) {
                None => Err(RuntimeError::NotFound {
                    kind: "container",
                    id: msg.id.clone(),
                }),
                Some(c) if c.status.state != ContainerState::Created => {
                    Err(RuntimeError::FailedPrecondition(format!(
                        "container {} is not in created state",
                        msg.id
                    )))
                }
                Some(c) => {
                    c.status.state = ContainerState::Running;
                    c.status.started_at = Some(now);
                    c.started = Some(started);
                    let status = c.status.clone();
                    act.emit(&status, ContainerEventType::Started);
                    act.schedule_exit(&msg.id, ctx);
                    Ok(())
                }
            };
            if let Err(e) = &result {
                cx.span()
                    .set_status(opentelemetry::trace::Status::error(e.to_string()));
            }
            cx.span().end();
            result
        }))
    }
}

impl Handler<StopContainer> for ContainerRuntime {
    type Result = ResponseActFuture<Self, Result<(), RuntimeError>>;

    fn handle(&mut self, msg: StopContainer, _: &mut Context<Self>) -> Self::Result {
        let c = match self.container(&msg.id) {
            Ok(c) => c,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        if c.status.state != ContainerState::Running {
            if c.status.state == ContainerState::Created {
                let status = c.status.clone();
                if let Some(c) = self.containers.get_mut(&msg.id) {
                    c.status.state = ContainerState::Exited;
                    c.status.exit_code = Some(0);
                    c.status.finished_at = Some(self.clock.wall());
                }
                self.emit(&status, ContainerEventType::Stopped);
            }
            return Box::pin(fut::ready(Ok(())));
        }
        // A shell as PID 1 ignores SIGTERM: it is killed when the grace period ends.
        let ignores_term = c.script.is_shell;
        let name = c.status.name.clone();
        let cx = self.span(
            &msg.trace,
            format!("stop container {name}"),
            vec![
                KeyValue::new("container.name", name),
                KeyValue::new("container.id", msg.id.clone()),
                KeyValue::new("stop.timeout_s", msg.timeout.as_secs_f64()),
            ],
        );
        if let Some(c) = self.containers.get_mut(&msg.id) {
            c.tail.push("[kubeactor] received SIGTERM".into());
        }
        let (wait, killed) = if ignores_term {
            (msg.timeout, true)
        } else {
            let stop = self.config.stop_container();
            (stop.min(msg.timeout), stop > msg.timeout)
        };
        let delay = self.clock.sleep(wait);
        Box::pin(delay.into_actor(self).map(move |_, act, _| {
            if killed {
                act.exit(
                    &msg.id,
                    137,
                    Some(format!(
                        "[kubeactor] killed with SIGKILL after the {}s grace period",
                        msg.timeout.as_secs_f64()
                    )),
                );
            } else {
                act.exit(&msg.id, 0, None);
            }
            cx.span().end();
            Ok(())
        }))
    }
}

impl Handler<RemoveContainer> for ContainerRuntime {
    type Result = Result<(), RuntimeError>;

    fn handle(&mut self, msg: RemoveContainer, _: &mut Context<Self>) -> Self::Result {
        match self.containers.get(&msg.id) {
            None => Ok(()),
            Some(c) if c.status.state == ContainerState::Running => {
                Err(RuntimeError::FailedPrecondition(format!(
                    "container {} is running, stop it first",
                    msg.id
                )))
            }
            Some(_) => {
                if let Some(c) = self.containers.remove(&msg.id) {
                    self.emit(&c.status, ContainerEventType::Deleted);
                }
                Ok(())
            }
        }
    }
}

impl Handler<GetContainerStatus> for ContainerRuntime {
    type Result = Result<ContainerStatus, RuntimeError>;

    fn handle(&mut self, msg: GetContainerStatus, _: &mut Context<Self>) -> Self::Result {
        self.container(&msg.id).map(|c| c.status.clone())
    }
}

impl Handler<ListContainers> for ContainerRuntime {
    type Result = MessageResult<ListContainers>;

    fn handle(&mut self, msg: ListContainers, _: &mut Context<Self>) -> Self::Result {
        let mut found: Vec<&Container> = self
            .containers
            .values()
            .filter(|c| msg.pod_uid.as_ref().is_none_or(|u| *u == c.status.pod_uid))
            .collect();
        found.sort_by_key(|c| c.seq);
        MessageResult(found.into_iter().map(|c| c.status.clone()).collect())
    }
}

impl Handler<ExecSync> for ContainerRuntime {
    type Result = ResponseActFuture<Self, Result<script::ExecResult, RuntimeError>>;

    fn handle(&mut self, msg: ExecSync, _: &mut Context<Self>) -> Self::Result {
        let c = match self.container(&msg.id) {
            Ok(c) => c,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        if c.status.state != ContainerState::Running {
            return Box::pin(fut::ready(Err(RuntimeError::FailedPrecondition(format!(
                "container {} is not running",
                msg.id
            )))));
        }
        let files = c.script.files_at(c.elapsed(&*self.clock));
        let mut result = script::exec(&msg.cmd, &files);
        if result.duration > msg.timeout {
            result = script::ExecResult {
                exit_code: -1,
                output: format!(
                    "command {:?} timed out after {}s",
                    msg.cmd,
                    msg.timeout.as_secs_f64()
                ),
                duration: msg.timeout,
            };
        }
        let delay = self.clock.sleep(result.duration);
        Box::pin(delay.into_actor(self).map(move |_, _, _| Ok(result)))
    }
}

impl Handler<ContainerLogs> for ContainerRuntime {
    type Result = Result<Vec<String>, RuntimeError>;

    fn handle(&mut self, msg: ContainerLogs, _: &mut Context<Self>) -> Self::Result {
        self.logs(&msg.id)
    }
}
