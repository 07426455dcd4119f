//! The ContainerRuntime's messages: the CRI verbs the kubelet uses (RuntimeService and
//! ImageService of `k8s.io/cri-api`), as typed actix messages.
//!
//! Every message is sent by the node's kubelet. Those that do work carry `trace`: `Some(cx)`
//! makes the runtime's span a child of `cx` (service `container-runtime`), `None` is
//! background work (probes, resyncs) and records no span.

use std::net::Ipv4Addr;
use std::time::Duration;

use actix::{Message, Recipient};
use jiff::Timestamp;
use opentelemetry::Context;

use super::script::ExecResult;

/// Why a runtime call failed. The kubelet maps these to upstream reasons.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The registry has no such image (the missing-image rule): the kubelet's `ErrImagePull`.
    #[error("rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found")]
    ImageNotFound { image: String },
    /// The reference cannot be parsed: the kubelet's `InvalidImageName`.
    #[error("{0}")]
    InvalidImage(String),
    /// `CreateContainer` for an image that has not been pulled.
    #[error("rpc error: code = NotFound desc = image \"{0}\" not found")]
    ImageNotPresent(String),
    /// No sandbox or container with this id.
    #[error("rpc error: code = NotFound desc = {kind} \"{id}\" not found")]
    NotFound { kind: &'static str, id: String },
    /// The pod CIDR has no free address left.
    #[error("failed to allocate an IP for sandbox {0}: the pod CIDR is exhausted")]
    NoAddress(String),
    /// The call does not fit the object's state (start a running container, …).
    #[error("rpc error: code = FailedPrecondition desc = {0}")]
    FailedPrecondition(String),
}

/// Which pod a sandbox is for (`PodSandboxConfig.metadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSandboxConfig {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// Incremented each time the sandbox is re-created.
    pub attempt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxState {
    Ready,
    NotReady,
}

/// `PodSandboxStatus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxStatus {
    pub id: String,
    pub config: PodSandboxConfig,
    pub state: SandboxState,
    pub ip: Ipv4Addr,
    pub created_at: Timestamp,
}

/// `Image` in the CRI: one stored image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:…`
    pub id: String,
    /// `docker.io/library/nginx:1.27`
    pub repo_tags: Vec<String>,
    /// `docker.io/library/nginx@sha256:…`
    pub repo_digests: Vec<String>,
    pub size_bytes: u64,
}

/// What a pull did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullResult {
    /// The image reference to create containers from (the repo digest): `imageID`.
    pub image_ref: String,
    pub size_bytes: u64,
    /// Whether the image was already stored (only the registry check ran), or was being
    /// pulled for another pod at the same time (this call waited for that pull).
    pub cache_hit: bool,
    /// Bytes downloaded by this call.
    pub downloaded_bytes: u64,
    /// Simulated time the pull took.
    pub duration: Duration,
}

/// `ContainerConfig`: what to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerConfig {
    pub name: String,
    /// The image as written in the pod spec.
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// Incremented for each restart of the same container: `restartCount`.
    pub attempt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
}

/// `ContainerStatus` in the CRI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStatus {
    /// 64 hex characters; the kubelet reports `containerd://<id>`.
    pub id: String,
    pub sandbox_id: String,
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
    pub state: ContainerState,
    /// The normalized image: `docker.io/library/nginx:1.27`.
    pub image: String,
    /// `docker.io/library/nginx@sha256:…`
    pub image_ref: String,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    /// `Completed`, `Error` when exited.
    pub reason: String,
    pub message: String,
}

/// What happened to a container (`ContainerEventResponse` of `GetContainerEvents`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerEventType {
    Created,
    Started,
    Stopped,
    Deleted,
}

/// Pushed to subscribers when a container changes state, so the kubelet need not poll
/// (the evented PLEG). Message to the subscriber; nothing is replied.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct ContainerEvent {
    pub container_id: String,
    pub sandbox_id: String,
    pub pod_uid: String,
    pub container_name: String,
    pub kind: ContainerEventType,
}

/// Create and start a pod sandbox: allocate the pod IP from the node's pod CIDR and run the
/// pause container. Replies with the sandbox id and IP.
#[derive(Message)]
#[rtype(result = "Result<SandboxStatus, RuntimeError>")]
pub struct RunPodSandbox {
    pub config: PodSandboxConfig,
    pub trace: Option<Context>,
}

/// Stop a sandbox: its containers are killed (no grace: the kubelet stops them first) and
/// its IP is released. Idempotent.
#[derive(Message)]
#[rtype(result = "Result<(), RuntimeError>")]
pub struct StopPodSandbox {
    pub id: String,
    pub trace: Option<Context>,
}

/// Remove a stopped sandbox and its containers. Idempotent.
#[derive(Message)]
#[rtype(result = "Result<(), RuntimeError>")]
pub struct RemovePodSandbox {
    pub id: String,
}

/// The sandboxes of one pod (`pod_uid`), or all; oldest first.
#[derive(Message)]
#[rtype(result = "Vec<SandboxStatus>")]
pub struct ListPodSandbox {
    pub pod_uid: Option<String>,
}

/// Pull an image (the registry check, then the download unless stored). Replies with what
/// it did, or ImageNotFound / InvalidImage.
#[derive(Message)]
#[rtype(result = "Result<PullResult, RuntimeError>")]
pub struct PullImage {
    pub image: String,
    pub trace: Option<Context>,
}

/// Whether an image is stored (`None` if not). InvalidImage if unparsable.
#[derive(Message)]
#[rtype(result = "Result<Option<ImageInfo>, RuntimeError>")]
pub struct ImageStatus {
    pub image: String,
    pub trace: Option<Context>,
}

/// Every stored image, largest first (what `status.images` reports).
#[derive(Message)]
#[rtype(result = "Vec<ImageInfo>")]
pub struct ListImages;

/// Create a container in a sandbox (the image must be stored). Replies with its id.
#[derive(Message)]
#[rtype(result = "Result<String, RuntimeError>")]
pub struct CreateContainer {
    pub sandbox_id: String,
    pub config: ContainerConfig,
    pub trace: Option<Context>,
}

/// Start a created container. Its command decides when it exits (see `script`).
#[derive(Message)]
#[rtype(result = "Result<(), RuntimeError>")]
pub struct StartContainer {
    pub id: String,
    pub trace: Option<Context>,
}

/// Stop a container: SIGTERM, then SIGKILL after `timeout` (the grace period, simulated).
/// Replies once it has exited. Idempotent on an exited container.
#[derive(Message)]
#[rtype(result = "Result<(), RuntimeError>")]
pub struct StopContainer {
    pub id: String,
    pub timeout: Duration,
    pub trace: Option<Context>,
}

/// Remove an exited container. Idempotent.
#[derive(Message)]
#[rtype(result = "Result<(), RuntimeError>")]
pub struct RemoveContainer {
    pub id: String,
}

/// One container's status.
#[derive(Message)]
#[rtype(result = "Result<ContainerStatus, RuntimeError>")]
pub struct GetContainerStatus {
    pub id: String,
}

/// The containers of one pod (`pod_uid`), or all; oldest first.
#[derive(Message)]
#[rtype(result = "Vec<ContainerStatus>")]
pub struct ListContainers {
    pub pod_uid: Option<String>,
}

/// Run a command in a running container (exec probes, preStop hooks). Waits for the
/// command's simulated duration, at most `timeout`; a timed-out command has exit code -1.
#[derive(Message)]
#[rtype(result = "Result<ExecResult, RuntimeError>")]
pub struct ExecSync {
    pub id: String,
    pub cmd: Vec<String>,
    pub timeout: Duration,
}

/// The container's log lines so far (`kubectl logs`).
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, RuntimeError>")]
pub struct ContainerLogs {
    pub id: String,
}

/// Receive every [`ContainerEvent`] from now on (`GetContainerEvents`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeEvents(pub Recipient<ContainerEvent>);
