//! Pod status from what the runtime reports: plain functions, tested without actors.
//!
//! Mirrors `generateAPIPodStatus`, `convertToAPIContainerStatuses` and `getPhase`
//! (pkg/kubelet/kubelet_pods.go) and the condition generators of pkg/kubelet/status
//! (`GeneratePodInitializedCondition`, `GenerateContainersReadyCondition`,
//! `GeneratePodReadyCondition`, `GeneratePodReadyToStartContainersCondition`).

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus as ApiStatus, HostIP, Pod, PodCondition, PodIP, PodSpec,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::runtime::{ContainerState, ContainerStatus, SandboxState, SandboxStatus};

/// The kubelet's view of one container beyond what the runtime knows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerView {
    /// Why it is waiting, when the kubelet decided so (`ErrImagePull`, `ImagePullBackOff`,
    /// `CrashLoopBackOff`, `CreateContainerError`…), with the message.
    pub waiting: Option<(String, String)>,
    /// Readiness probe result for the running instance (`None` = no readiness probe).
    pub ready: Option<bool>,
    /// Whether the startup probe has succeeded (`None` = no startup probe).
    pub started: Option<bool>,
}

/// Everything status generation reads.
pub struct StatusInput<'a> {
    pub pod: &'a Pod,
    /// The status to build on: the last one the kubelet sent, else the pod's own (upstream's
    /// `generateAPIPodStatus` starts from `statusManager.GetPodStatus`, falling back to
    /// `pod.Status`).
    pub status: Option<&'a PodStatus>,
    /// The pod's newest sandbox.
    pub sandbox: Option<&'a SandboxStatus>,
    /// The pod's containers, oldest first.
    pub containers: &'a [ContainerStatus],
    pub views: &'a HashMap<String, ContainerView>,
    pub host_ip: &'a str,
    pub now: Timestamp,
    /// The pod is being terminated (deletion or eviction) and its containers are stopped.
    pub terminal: bool,
}

/// The newest and the previous instance of container `name`.
pub fn instances<'a>(
    containers: &'a [ContainerStatus],
    name: &str,
) -> (Option<&'a ContainerStatus>, Option<&'a ContainerStatus>) {
    let mut found = containers
        .iter()
        .filter(|c| c.name == name)
        .collect::<Vec<_>>();
    found.sort_by_key(|c| c.attempt);
    let latest = found.pop();
    (latest, found.pop())
}

fn time(t: Option<Timestamp>) -> Option<Time> {
    t.map(Time)
}

fn terminated(c: &ContainerStatus) -> ContainerStateTerminated {
    ContainerStateTerminated {
        container_id: Some(format!("containerd://{}", c.id)),
        exit_code: c.exit_code.unwrap_or(0),
        reason: Some(c.reason.clone()).filter(|r| !r.is_empty()),
        message: Some(c.message.clone()).filter(|m| !m.is_empty()),
        started_at: time(c.started_at),
        finished_at: time(c.finished_at),
        signal: None,
    }
}

fn waiting(reason: &str, message: Option<&str>) -> ApiState {
    ApiState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: message.map(str::to_string),
        }),
        ..Default::default()
    }
}

/// One container's API status. `default_waiting` is the reason shown before it exists
/// (`ContainerCreating`, or `PodInitializing` while init containers run).
pub fn container_status(
    spec: &Container,
    containers: &[ContainerStatus],
    view: Option<&ContainerView>,
    default_waiting: &str,
) -> ApiStatus {
    let (latest, previous) = instances(containers, &spec.name);
    let image = spec.image.clone().unwrap_or_default();
    let mut status = ApiStatus {
        name: spec.name.clone(),
        image,
        ..Default::default()
    };
    let view_waiting = view.and_then(|v| v.waiting.as_ref());
    match latest {
        None => {
            let (reason, message) = match view_waiting {
                Some((r, m)) => (r.as_str(), Some(m.as_str())),
                None => (default_waiting, None),
            };
            status.state = Some(waiting(reason, message));
        }
        Some(c) => {
            status.container_id = Some(format!("containerd://{}", c.id));
            status.image = c.image.clone();
            status.image_id = c.image_ref.clone();
            status.restart_count = c.attempt as i32;
            match c.state {
                ContainerState::Running => {
                    status.state = Some(ApiState {
                        running: Some(ContainerStateRunning {
                            started_at: time(c.started_at),
                        }),
                        ..Default::default()
                    });
                    let started = view.and_then(|v| v.started).unwrap_or(true);
                    status.started = Some(started);
                    status.ready = started && view.and_then(|v| v.ready).unwrap_or(true);
                    if let Some(p) = previous {
                        status.last_state = Some(ApiState {
                            terminated: Some(terminated(p)),
                            ..Default::default()
                        });
                    }
                }
                ContainerState::Exited => {
                    status.started = Some(false);
                    match view_waiting {
                        Some((r, m)) => {
                            status.state = Some(waiting(r, Some(m)));
                            status.last_state = Some(ApiState {
                                terminated: Some(terminated(c)),
                                ..Default::default()
                            });
                        }
                        None => {
                            status.state = Some(ApiState {
                                terminated: Some(terminated(c)),
                                ..Default::default()
                            });
                            if let Some(p) = previous {
                                status.last_state = Some(ApiState {
                                    terminated: Some(terminated(p)),
                                    ..Default::default()
                                });
                            }
                        }
                    }
                }
                ContainerState::Created => {
                    status.started = Some(false);
                    status.state = Some(waiting(default_waiting, None));
                }
            }
        }
    }
    status
}

/// Whether an init container's newest instance exited 0.
fn succeeded(containers: &[ContainerStatus], name: &str) -> bool {
    matches!(instances(containers, name).0, Some(c)
        if c.state == ContainerState::Exited && c.exit_code == Some(0))
}

/// Mirrors `getPhase` (pkg/kubelet/kubelet_pods.go).
pub fn get_phase(pod: &Pod, init: &[ApiStatus], regular: &[ApiStatus], terminal: bool) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let mut pending_initialization = 0;
    let mut failed_initialization = 0;
    let no_state = ApiState::default();
    for s in init {
        let state = s.state.as_ref().unwrap_or(&no_state);
        if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_initialization += 1;
            }
            continue;
        }
        if state.waiting.is_some() {
            let crashed = s
                .last_state
                .as_ref()
                .is_some_and(|l| l.terminated.as_ref().is_some_and(|t| t.exit_code != 0));
            if crashed {
                failed_initialization += 1;
            }
        }
        pending_initialization += 1;
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut ok) = (0, 0, 0, 0, 0);
    for c in spec.iter().flat_map(|s| &s.containers) {
        let Some(s) = regular.iter().find(|s| s.name == c.name) else {
            unknown += 1;
            continue;
        };
        let state = s.state.as_ref().unwrap_or(&no_state);
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                ok += 1;
            }
        } else if state.waiting.is_some() {
            let last = s.last_state.as_ref().and_then(|l| l.terminated.as_ref());
            match last {
                Some(t) => {
                    stopped += 1;
                    if t.exit_code == 0 {
                        ok += 1;
                    }
                }
                None => waiting += 1,
            }
        } else {
            unknown += 1;
        }
    }
    if failed_initialization > 0 && policy == "Never" {
        return "Failed".into();
    }
    let phase = if (pending_initialization > 0 || waiting > 0) && !terminal {
        "Pending"
    } else if running > 0 && unknown == 0 && !terminal {
        "Running"
    } else if running == 0 && stopped > 0 && unknown == 0 {
        if terminal {
            if stopped == ok {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if policy == "Always" {
            "Running"
        } else if stopped == ok {
            "Succeeded"
        } else if policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else if terminal {
        "Failed"
    } else {
        "Pending"
    };
    phase.into()
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

/// The whole status. Conditions keep their `lastTransitionTime` while their status stays.
pub fn generate_pod_status(input: &StatusInput<'_>) -> PodStatus {
    let pod = input.pod;
    let no_spec;
    let no_status = PodStatus::default();
    let spec = match &pod.spec {
        Some(s) => s,
        None => {
            no_spec = PodSpec::default();
            &no_spec
        }
    };
    // What the kubelet last set, and what the API server holds: the kubelet's own fields
    // (its conditions' transition times, start time, IP) build on the first; what others
    // own (PodScheduled, DisruptionTarget, readiness-gate conditions, the QoS class) comes
    // from the second, as upstream's status manager merges them (`mergePodStatus`).
    let old = input.status.unwrap_or(&no_status);
    let stored = pod.status.as_ref().unwrap_or(&no_status);
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let sandbox_ready = input
        .sandbox
        .is_some_and(|s| s.state == SandboxState::Ready);
    let init_done = inits.iter().all(|c| succeeded(input.containers, &c.name));
    let init_statuses: Vec<ApiStatus> = inits
        .iter()
        .map(|c| {
            container_status(
                c,
                input.containers,
                input.views.get(&c.name),
                "PodInitializing",
            )
        })
        .collect();
    let regular_default = if init_done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ApiStatus> = spec
        .containers
        .iter()
        .map(|c| {
            container_status(
                c,
                input.containers,
                input.views.get(&c.name),
                regular_default,
            )
        })
        .collect();
    let mut phase = get_phase(pod, &init_statuses, &statuses, input.terminal);
    if matches!(old.phase.as_deref(), Some("Succeeded") | Some("Failed")) {
        phase = old.phase.clone().unwrap_or(phase);
    }
    let completed = phase == "Succeeded";

    let incomplete: Vec<&str> = inits
        .iter()
        .filter(|c| !succeeded(input.containers, &c.name))
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    // Conditions the kubelet does not own (PodScheduled, DisruptionTarget, readiness-gate
    // conditions) are kept as they are.
    let owned = [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ];
    let kept = || {
        stored
            .conditions
            .iter()
            .flatten()
            .filter(|c| !owned.contains(&c.type_.as_str()))
    };
    // Sized exactly: the Vec lives on in the stored pod, and grown one push at a time it
    // would have room for eight.
    let mut conditions = Vec::with_capacity(owned.len() + kept().count());
    conditions.push(condition(
        "PodReadyToStartContainers",
        sandbox_ready,
        None,
        None,
    ));
    conditions.push(if completed {
        condition("Initialized", true, Some("PodCompleted"), None)
    } else if incomplete.is_empty() {
        condition("Initialized", true, None, None)
    } else {
        condition(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    });
    let containers_ready = if completed {
        condition("ContainersReady", false, Some("PodCompleted"), None)
    } else if unready.is_empty() {
        condition("ContainersReady", true, None, None)
    } else {
        condition(
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    // Readiness gates: each named condition must be True (set by someone else).
    let gates_missing: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .filter(|g| {
            !stored
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == g.condition_type && c.status == "True")
        })
        .map(|g| g.condition_type.clone())
        .collect();
    let ready = if containers_ready.status != "True" {
        PodCondition {
            type_: "Ready".into(),
            ..containers_ready.clone()
        }
    } else if let Some(g) = gates_missing.first() {
        condition(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(format!(
                "corresponding condition of pod readiness gate \"{g}\" does not exist."
            )),
        )
    } else {
        condition("Ready", true, None, None)
    };
    conditions.push(containers_ready);
    conditions.push(ready);
    conditions.extend(kept().cloned());
    for c in &mut conditions {
        let previous = old.conditions.iter().flatten().find(|o| o.type_ == c.type_);
        c.last_transition_time = match previous {
            Some(p) if p.status == c.status => p.last_transition_time.clone(),
            _ => c.last_transition_time.clone().or(Some(Time(input.now))),
        };
        if c.last_probe_time.is_none() {
            c.last_probe_time = previous.and_then(|p| p.last_probe_time.clone());
        }
    }
    let pod_ip = input
        .sandbox
        .filter(|_| sandbox_ready || !input.terminal)
        .map(|s| s.ip.to_string())
        .or_else(|| old.pod_ip.clone());
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(input.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: input.host_ip.to_string(),
        }]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: old.start_time.clone().or(Some(Time(input.now))),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        qos_class: stored.qos_class.clone().or_else(|| old.qos_class.clone()),
        ..Default::default()
    }
}

/// Whether two statuses differ in anything but condition probe times.
pub fn status_changed(old: Option<&PodStatus>, new: &PodStatus) -> bool {
    old != Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodCondition};

    fn cond(type_: &str, status: &str, at: i64) -> PodCondition {
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: Some(Time(Timestamp::from_second(at).unwrap())),
            ..Default::default()
        }
    }

    /// The status builds on what the kubelet last sent (its own conditions keep their
    /// transition times from there) and keeps what others wrote to the stored pod since
    /// (`mergePodStatus`): a DisruptionTarget the kubelet never saw is not dropped.
    #[test]
    fn a_status_builds_on_the_last_sent_and_keeps_what_others_wrote() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                conditions: Some(vec![
                    cond("PodScheduled", "True", 100),
                    cond("DisruptionTarget", "True", 300),
                ]),
                qos_class: Some("BestEffort".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sent = PodStatus {
            conditions: Some(vec![
                cond("PodReadyToStartContainers", "False", 200),
                cond("PodScheduled", "True", 100),
            ]),
            ..Default::default()
        };
        let views = HashMap::new();
        let status = generate_pod_status(&StatusInput {
            pod: &pod,
            status: Some(&sent),
            sandbox: None,
            containers: &[],
            views: &views,
            host_ip: "10.0.0.1",
            now: Timestamp::from_second(1_000).unwrap(),
            terminal: false,
        });
        let conditions = status.conditions.unwrap();
        let get = |t: &str| conditions.iter().find(|c| c.type_ == t).cloned();
        assert_eq!(
            get("DisruptionTarget"),
            Some(cond("DisruptionTarget", "True", 300)),
            "written by another controller: kept"
        );
        assert_eq!(get("PodScheduled"), Some(cond("PodScheduled", "True", 100)));
        assert_eq!(
            get("PodReadyToStartContainers").and_then(|c| c.last_transition_time),
            Some(Time(Timestamp::from_second(200).unwrap())),
            "unchanged since it was sent: its transition time stays"
        );
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    }
}
