//! `pods/log`: `GET /api/v1/namespaces/{ns}/pods/{name}/log` (`kubectl logs`).
//!
//! kube-apiserver answers it by proxying to the kubelet of the pod's node, which reads the
//! container runtime's log. Here the handler does both halves: it reads the pod from the
//! ApiServer, picks the container as kube-apiserver does ([`choose_container`], mirrors
//! `LogLocation` in pkg/registry/core/pod/strategy.go), picks the container instance from
//! the pod's status as the kubelet does ([`container_id`], mirrors
//! `validateContainerLogStatus` in pkg/kubelet/kubelet_pods.go), then asks that node's
//! `ContainerRuntime` (through [`super::backends`]) for the log with `ContainerLogs`.
//!
//! Query parameters: `container`, `previous`, `tailLines`, `limitBytes` and `follow` as
//! upstream. `follow=true` answers a chunked `text/plain` stream: the runtime's log is polled
//! every [`FOLLOW_POLL`] and new lines are sent until the container has exited (or is gone),
//! or the client goes away. `timestamps`, `sinceSeconds` and `sinceTime` are accepted but have
//! no effect: the simulated runtime keeps no time per log line.
//!
//! A pod not yet bound to a node has an empty log (upstream: no location, empty body).

use std::time::Duration;

use actix::Addr;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use k8s_openapi::api::core::v1::Pod;

use super::HttpError;
use crate::api::Kind;
use crate::apiserver::{ApiError, ApiServer, Get};
use crate::runtime::{
    ContainerLogs, ContainerRuntime, ContainerState, GetContainerStatus, RuntimeError,
};

/// How often a followed log is polled for new lines.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The query of a log request (`PodLogOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
}

impl LogOptions {
    /// Parse and validate the query parameters (mirrors `ValidatePodLogOptions` in
    /// pkg/apis/core/validation/validation.go).
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<LogOptions, ApiError> {
        let flag = |key: &str| matches!(get(key).as_deref(), Some("true" | "1"));
        let number = |key: &str| -> Result<Option<i64>, ApiError> {
            match get(key) {
                None => Ok(None),
                Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                    ApiError::BadRequest(format!(
                        "invalid value {v:?} for {key}: strconv.ParseInt: parsing {v:?}: invalid syntax"
                    ))
                }),
            }
        };
        let tail_lines = match number("tailLines")? {
            Some(n) if n < 0 => {
                return Err(ApiError::BadRequest(format!(
                    "tailLines: Invalid value: {n}: must be greater than or equal to 0"
                )))
            }
            n => n.map(|n| n as usize),
        };
        let limit_bytes = match number("limitBytes")? {
            Some(n) if n < 1 => {
                return Err(ApiError::BadRequest(format!(
                    "limitBytes: Invalid value: {n}: must be greater than 0"
                )))
            }
            n => n.map(|n| n as usize),
        };
        Ok(LogOptions {
            container: get("container").filter(|c| !c.is_empty()),
            follow: flag("follow"),
            previous: flag("previous"),
            tail_lines,
            limit_bytes,
        })
    }
}

/// The container whose log is asked for: the one named, or the pod's only one.
///
/// Mirrors `LogLocation` in pkg/registry/core/pod/strategy.go.
pub fn choose_container(pod: &Pod, asked: Option<&str>) -> Result<String, ApiError> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let containers: Vec<&str> = spec
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let init: Vec<&str> = spec
        .and_then(|s| s.init_containers.as_ref())
        .map(|cs| cs.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    match asked {
        Some(c) if containers.contains(&c) || init.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::BadRequest(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => match containers.as_slice() {
            [only] => Ok(only.to_string()),
            [] => Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {name}"
            ))),
            several => {
                let mut msg = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    several.join(" ")
                );
                if !init.is_empty() {
                    msg.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(ApiError::BadRequest(msg))
            }
        },
    }
}

/// The runtime's id of the container instance whose log is asked for, from the pod's status.
///
/// Mirrors `validateContainerLogStatus` in pkg/kubelet/kubelet_pods.go.
pub fn container_id(pod: &Pod, container: &str, previous: bool) -> Result<String, ApiError> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref().and_then(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .find(|c| c.name == container)
    });
    let bad = |what: String| {
        ApiError::BadRequest(format!(
            "container {container:?} in pod {pod_name:?} {what}"
        ))
    };
    let Some(status) = status else {
        return Err(bad("is waiting to start: ContainerCreating".into()));
    };
    let state = status.state.clone().unwrap_or_default();
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.container_id.clone())
        .filter(|id| !id.is_empty());
    let id = if previous {
        last.ok_or_else(|| {
            ApiError::BadRequest(format!(
                "previous terminated container {container:?} in pod {pod_name:?} not found"
            ))
        })?
    } else if state.running.is_some() {
        status.container_id.clone().unwrap_or_default()
    } else if let Some(t) = &state.terminated {
        match t.container_id.clone().filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => last.ok_or_else(|| bad("is terminated".into()))?,
        }
    } else if let Some(id) = last {
        id
    } else if let Some(w) = &state.waiting {
        let reason = w.reason.as_deref().unwrap_or_default();
        return Err(bad(match reason {
            "ErrImagePull" => "is waiting to start: image can't be pulled".into(),
            "ImagePullBackOff" => "is waiting to start: trying and failing to pull image".into(),
            other => format!("is waiting to start: {other}"),
        }));
    } else {
        return Err(bad("is waiting to start - no logs yet".into()));
    };
    // `containerd://<id>` → the runtime's id.
    Ok(id
        .split_once("://")
        .map_or(id.as_str(), |(_, id)| id)
        .to_string())
}

/// The lines to send of `lines`: the last `tail` of them; each ends with a new line.
pub fn render(lines: &[String], tail: Option<usize>) -> String {
    let from = tail.map_or(0, |t| lines.len().saturating_sub(t));
    let mut out = String::new();
    for line in &lines[from..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Cut `text` to what `limit_bytes` still allows; the bytes left afterwards.
pub fn limit(text: &mut String, left: Option<usize>) -> Option<usize> {
    let left = left?;
    if text.len() > left {
        let mut cut = left;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Some(left - text.len())
}

fn runtime_error(e: RuntimeError) -> HttpError {
    ApiError::Internal(e.to_string()).into()
}

/// `GET …/pods/{name}/log`.
pub async fn serve(
    api: &Addr<ApiServer>,
    backends: &super::backends::Backends,
    namespace: Option<String>,
    name: &str,
    opts: LogOptions,
) -> Result<HttpResponse, HttpError> {
    let obj = api
        .send(Get {
            kind: Kind::Pod,
            namespace,
            name: name.to_string(),
        })
        .await??;
    let Some(pod) = obj.as_pod() else {
        return Err(HttpError::NotFound);
    };
    let container = choose_container(pod, opts.container.as_deref())?;
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    if node.is_empty() {
        return Ok(text(HttpResponse::Ok()).body(""));
    }
    let Some(handle) = backends.node(&node) else {
        return Err(ApiError::NotFound {
            resource: "nodes".into(),
            name: node,
            group: String::new(),
            kind: "nodes".into(),
        }
        .into());
    };
    let id = container_id(pod, &container, opts.previous)?;
    let runtime = handle.runtime.clone();
    let lines = runtime
        .send(ContainerLogs { id: id.clone() })
        .await?
        .map_err(runtime_error)?;
    let mut first = render(&lines, opts.tail_lines);
    let left = limit(&mut first, opts.limit_bytes);
    if !opts.follow || left == Some(0) {
        return Ok(text(HttpResponse::Ok()).body(first));
    }
    let follow = Follow {
        runtime,
        id,
        sent: lines.len(),
        left,
        first: Some(first),
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        let chunk = f.next().await?;
        Some((Ok::<_, actix_web::Error>(Bytes::from(chunk)), f))
    });
    Ok(text(HttpResponse::Ok()).streaming(stream))
}

fn text(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.content_type("text/plain");
    b
}

/// A followed log: what has been sent, and how many bytes may still be.
struct Follow {
    runtime: Addr<ContainerRuntime>,
    id: String,
    /// Log lines already sent (or skipped by `tailLines`).
    sent: usize,
    left: Option<usize>,
    /// The first chunk, not yet sent.
    first: Option<String>,
    done: bool,
}

impl Follow {
    /// The next chunk to send; `None` when the stream ends. Polls until there is something.
    async fn next(&mut self) -> Option<String> {
        if let Some(first) = self.first.take().filter(|f| !f.is_empty()) {
            return Some(first);
        }
        loop {
            if self.done || self.left == Some(0) {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            // The state first: lines read after it saw the container exited are all of them.
            let exited = match self
                .runtime
                .send(GetContainerStatus {
                    id: self.id.clone(),
                })
                .await
            {
                Ok(Ok(s)) => s.state == ContainerState::Exited,
                _ => true,
            };
            let lines = match self
                .runtime
                .send(ContainerLogs {
                    id: self.id.clone(),
                })
                .await
            {
                Ok(Ok(lines)) => lines,
                _ => return None,
            };
            self.done = exited;
            if lines.len() > self.sent {
                let mut chunk = render(&lines[self.sent..], None);
                self.sent = lines.len();
                self.left = limit(&mut chunk, self.left);
                if !chunk.is_empty() {
                    return Some(chunk);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState as State, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting, ContainerStatus, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(containers: &[&str]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-x".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: containers
                    .iter()
                    .map(|c| Container {
                        name: c.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn with_status(mut p: Pod, status: ContainerStatus) -> Pod {
        p.status = Some(PodStatus {
            container_statuses: Some(vec![status]),
            ..Default::default()
        });
        p
    }

    fn message(e: ApiError) -> String {
        match e {
            ApiError::BadRequest(m) => m,
            other => panic!("not a BadRequest: {other:?}"),
        }
    }

    #[test]
    fn the_only_container_is_chosen_and_several_need_a_name() {
        assert_eq!(choose_container(&pod(&["a"]), None).unwrap(), "a");
        assert_eq!(
            message(choose_container(&pod(&["a", "b"]), None).unwrap_err()),
            "a container name must be specified for pod web-x, choose one of: [a b]"
        );
        assert_eq!(choose_container(&pod(&["a", "b"]), Some("b")).unwrap(), "b");
        assert_eq!(
            message(choose_container(&pod(&["a", "b"]), Some("x")).unwrap_err()),
            "container x is not valid for pod web-x"
        );
    }

    #[test]
    fn the_running_instance_is_read_and_a_waiting_one_says_why() {
        let running = with_status(
            pod(&["a"]),
            ContainerStatus {
                name: "a".into(),
                container_id: Some("containerd://abc".into()),
                state: Some(State {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        assert_eq!(container_id(&running, "a", false).unwrap(), "abc");
        assert_eq!(
            message(container_id(&running, "a", true).unwrap_err()),
            "previous terminated container \"a\" in pod \"web-x\" not found"
        );
        let restarted = with_status(
            pod(&["a"]),
            ContainerStatus {
                name: "a".into(),
                last_state: Some(State {
                    terminated: Some(ContainerStateTerminated {
                        container_id: Some("containerd://old".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                state: Some(State {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        assert_eq!(container_id(&restarted, "a", true).unwrap(), "old");
        assert_eq!(container_id(&restarted, "a", false).unwrap(), "old");
        let creating = with_status(
            pod(&["a"]),
            ContainerStatus {
                name: "a".into(),
                state: Some(State {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("ContainerCreating".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        assert_eq!(
            message(container_id(&creating, "a", false).unwrap_err()),
            "container \"a\" in pod \"web-x\" is waiting to start: ContainerCreating"
        );
        assert_eq!(
            message(container_id(&pod(&["a"]), "a", false).unwrap_err()),
            "container \"a\" in pod \"web-x\" is waiting to start: ContainerCreating"
        );
    }

    #[test]
    fn tail_lines_and_limit_bytes_cut_the_log() {
        let lines: Vec<String> = ["one", "two", "three"].map(String::from).to_vec();
        assert_eq!(render(&lines, None), "one\ntwo\nthree\n");
        assert_eq!(render(&lines, Some(1)), "three\n");
        assert_eq!(render(&lines, Some(0)), "");
        assert_eq!(render(&lines, Some(10)), "one\ntwo\nthree\n");
        let mut text = render(&lines, None);
        assert_eq!(limit(&mut text, Some(5)), Some(0));
        assert_eq!(text, "one\nt");
        let mut text = "ab".to_string();
        assert_eq!(limit(&mut text, Some(5)), Some(3));
        assert_eq!(limit(&mut text, None), None);
    }

    #[test]
    fn negative_tail_lines_and_a_zero_byte_limit_are_bad_requests() {
        let q = |k: &str, v: &str| {
            let (k, v) = (k.to_string(), v.to_string());
            move |key: &str| (key == k).then(|| v.clone())
        };
        assert!(LogOptions::parse(q("tailLines", "-1")).is_err());
        assert!(LogOptions::parse(q("limitBytes", "0")).is_err());
        assert!(LogOptions::parse(q("tailLines", "x")).is_err());
        assert_eq!(
            LogOptions::parse(q("tailLines", "2")).unwrap().tail_lines,
            Some(2)
        );
        assert!(LogOptions::parse(q("follow", "true")).unwrap().follow);
    }
}
