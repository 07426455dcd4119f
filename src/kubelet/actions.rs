//! What a sync must do to a pod's containers: a plain function over the pod spec and the
//! runtime's containers. Mirrors `computePodActions` (pkg/kubelet/kuberuntime/
//! kuberuntime_manager.go): init containers one at a time, in order; then every regular
//! container that does not run and should (by `restartPolicy`).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::status::instances;
use crate::runtime::{ContainerState, ContainerStatus};

/// Which spec list a container comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Init,
    Regular,
}

/// One container to (re)start.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    pub which: Which,
    pub container: Container,
    /// The CRI attempt: 0 for the first start, previous + 1 for a restart (`restartCount`).
    pub attempt: u32,
    /// When the previous instance exited (restarts back off from it).
    pub previous_exit: Option<Timestamp>,
}

impl Start {
    /// `spec.containers{nginx}` / `spec.initContainers{init}`: the event's `fieldPath`.
    pub fn field_path(&self) -> String {
        field_path(self.which, &self.container.name)
    }
}

pub fn field_path(which: Which, name: &str) -> String {
    match which {
        Which::Init => format!("spec.initContainers{{{name}}}"),
        Which::Regular => format!("spec.containers{{{name}}}"),
    }
}

/// Whether a container that exited with `code` is restarted under `policy`. Mirrors
/// `ShouldContainerBeRestarted`.
pub fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

fn restart_of(which: Which, c: &Container, latest: &ContainerStatus) -> Start {
    Start {
        which,
        container: c.clone(),
        attempt: latest.attempt + 1,
        previous_exit: latest.finished_at,
    }
}

/// The attempt of a container the runtime has no instance of. A container that never ran
/// starts at 0. After a node reboot the runtime has lost every container while the pod's
/// status still shows the one that ran (it has a `containerID`): the new one is a restart,
/// `restartCount` + 1. Mirrors the fallback of `startContainer` in
/// pkg/kubelet/kuberuntime/kuberuntime_container.go, which reads the count from the log
/// directory that survived the reboot (`calcRestartCountByLogDir`).
pub fn first_attempt(pod: &Pod, which: Which, name: &str) -> u32 {
    let status = pod.status.as_ref();
    let statuses = match which {
        Which::Init => status.and_then(|s| s.init_container_statuses.as_ref()),
        Which::Regular => status.and_then(|s| s.container_statuses.as_ref()),
    };
    statuses
        .into_iter()
        .flatten()
        .find(|c| c.name == name)
        .filter(|c| c.container_id.as_deref().is_some_and(|id| !id.is_empty()))
        .map(|c| c.restart_count.max(0) as u32 + 1)
        .unwrap_or(0)
}

/// The containers to start now. Init containers run one at a time and must exit 0 before
/// the next (a failed one is retried unless `restartPolicy: Never`); regular containers
/// start once every init container succeeded.
pub fn compute_pod_actions(pod: &Pod, containers: &[ContainerStatus]) -> Vec<Start> {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    for c in spec.init_containers.iter().flatten() {
        match instances(containers, &c.name).0 {
            None => {
                return vec![Start {
                    which: Which::Init,
                    container: c.clone(),
                    attempt: first_attempt(pod, Which::Init, &c.name),
                    previous_exit: None,
                }]
            }
            Some(l) if l.state != ContainerState::Exited => return Vec::new(),
            Some(l) if l.exit_code == Some(0) => continue,
            Some(l) => {
                // An init container that failed is retried unless the pod never restarts.
                return if policy == "Never" {
                    Vec::new()
                } else {
                    vec![restart_of(Which::Init, c, l)]
                };
            }
        }
    }
    let mut out = Vec::new();
    for c in &spec.containers {
        match instances(containers, &c.name).0 {
            None => out.push(Start {
                which: Which::Regular,
                container: c.clone(),
                attempt: first_attempt(pod, Which::Regular, &c.name),
                previous_exit: None,
            }),
            Some(l) if l.state == ContainerState::Exited => {
                if should_restart(policy, l.exit_code.unwrap_or(0)) {
                    out.push(restart_of(Which::Regular, c, l));
                }
            }
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            image: Some("busybox".into()),
            ..Default::default()
        }
    }

    fn pod(init: &[&str], regular: &[&str], policy: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                init_containers: Some(init.iter().map(|n| container(n)).collect()),
                containers: regular.iter().map(|n| container(n)).collect(),
                restart_policy: Some(policy.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn instance(
        name: &str,
        attempt: u32,
        state: ContainerState,
        code: Option<i32>,
    ) -> ContainerStatus {
        ContainerStatus {
            id: format!("{name}-{attempt}"),
            sandbox_id: "sb".into(),
            pod_uid: "uid".into(),
            name: name.into(),
            attempt,
            state,
            image: String::new(),
            image_ref: String::new(),
            created_at: Timestamp::UNIX_EPOCH,
            started_at: None,
            finished_at: Some(Timestamp::UNIX_EPOCH),
            exit_code: code,
            reason: String::new(),
            message: String::new(),
        }
    }

    fn names(starts: &[Start]) -> Vec<(String, u32)> {
        starts
            .iter()
            .map(|s| (s.container.name.clone(), s.attempt))
            .collect()
    }

    #[test]
    fn init_containers_run_one_at_a_time_in_order() {
        let p = pod(&["a", "b"], &["app"], "Always");
        assert_eq!(names(&compute_pod_actions(&p, &[])), [("a".into(), 0)]);
        let a_running = [instance("a", 0, ContainerState::Running, None)];
        assert!(compute_pod_actions(&p, &a_running).is_empty());
        let a_done = [instance("a", 0, ContainerState::Exited, Some(0))];
        assert_eq!(names(&compute_pod_actions(&p, &a_done)), [("b".into(), 0)]);
        let both = [
            instance("a", 0, ContainerState::Exited, Some(0)),
            instance("b", 0, ContainerState::Exited, Some(0)),
        ];
        assert_eq!(names(&compute_pod_actions(&p, &both)), [("app".into(), 0)]);
    }

    #[test]
    fn restart_policy_decides_which_exited_containers_restart() {
        let crashed = [instance("app", 2, ContainerState::Exited, Some(1))];
        let completed = [instance("app", 0, ContainerState::Exited, Some(0))];
        let always = pod(&[], &["app"], "Always");
        let on_failure = pod(&[], &["app"], "OnFailure");
        let never = pod(&[], &["app"], "Never");
        assert_eq!(
            names(&compute_pod_actions(&always, &crashed)),
            [("app".into(), 3)]
        );
        assert_eq!(
            names(&compute_pod_actions(&always, &completed)),
            [("app".into(), 1)]
        );
        assert_eq!(
            names(&compute_pod_actions(&on_failure, &crashed)),
            [("app".into(), 3)]
        );
        assert!(compute_pod_actions(&on_failure, &completed).is_empty());
        assert!(compute_pod_actions(&never, &crashed).is_empty());
        let failed_init = [instance("a", 0, ContainerState::Exited, Some(1))];
        assert!(compute_pod_actions(&pod(&["a"], &["app"], "Never"), &failed_init).is_empty());
    }

    #[test]
    fn after_a_reboot_a_container_that_ran_restarts_with_the_next_count() {
        use k8s_openapi::api::core::v1::{ContainerStatus as ApiStatus, PodStatus};
        let mut p = pod(&[], &["app", "side"], "Always");
        let api = |name: &str, id: Option<&str>, restarts: i32| ApiStatus {
            name: name.into(),
            container_id: id.map(str::to_string),
            restart_count: restarts,
            ..Default::default()
        };
        p.status = Some(PodStatus {
            container_statuses: Some(vec![
                api("app", Some("containerd://app-2"), 2),
                api("side", None, 0),
            ]),
            ..Default::default()
        });
        assert_eq!(
            names(&compute_pod_actions(&p, &[])),
            [("app".into(), 3), ("side".into(), 0)],
            "the runtime lost both; only app had run"
        );
    }
}
