//! Probes: which probe a container has, how one attempt turns out (by the documented
//! simulation rules), and the consecutive-result thresholds. Mirrors pkg/kubelet/prober
//! (`worker.doProbe`, `prober.runProbe`) with the results of pkg/probe.
//!
//! Simulation rules (also in `docs/nodes.md`):
//! * `httpGet`: fails with status 500 when the path contains `fail` (e.g. `/fail`,
//!   `/healthz?fail=1`); otherwise succeeds;
//! * `exec`: runs in the container by the script rules (`runtime::script::exec`): fails on a
//!   non-zero exit code, e.g. `cat /tmp/healthy` after the container removed that file;
//! * `tcpSocket` and `grpc`: always succeed.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Liveness,
        ProbeKind::Readiness,
    ];

    /// As events name it: `Liveness probe failed: …`.
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Startup => c.startup_probe.as_ref(),
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
        }
    }
}

/// The timing of a probe, with upstream's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

pub fn timing(p: &Probe) -> Timing {
    let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
    Timing {
        initial_delay: secs(p.initial_delay_seconds, 0),
        period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
    }
}

/// What one attempt needs from the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Decided without the runtime: success, or failure with this output.
    Decided(Result<(), String>),
    /// Run this command in the container; exit code 0 is success.
    Exec(Vec<String>),
}

/// How one attempt of `p` is carried out (see the module documentation for the rules).
pub fn action(p: &Probe) -> Action {
    if let Some(http) = &p.http_get {
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        if path.contains("fail") {
            return Action::Decided(Err("HTTP probe failed with statuscode: 500".into()));
        }
        return Action::Decided(Ok(()));
    }
    if let Some(exec) = &p.exec {
        return Action::Exec(exec.command.clone().unwrap_or_default());
    }
    Action::Decided(Ok(()))
}

/// Consecutive results of one probe on one container instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeState {
    successes: u32,
    failures: u32,
    /// The current result once a threshold was crossed (`None` = not yet decided).
    pub result: Option<bool>,
}

impl ProbeState {
    /// Record one attempt; returns the new result when it changed.
    pub fn observe(&mut self, ok: bool, t: &Timing) -> Option<bool> {
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let decided = if ok && self.successes >= t.success_threshold {
            Some(true)
        } else if !ok && self.failures >= t.failure_threshold {
            Some(false)
        } else {
            None
        };
        match decided {
            Some(r) if self.result != Some(r) => {
                self.result = Some(r);
                Some(r)
            }
            _ => None,
        }
    }

    /// Start over (after a liveness kill the counters reset, as upstream's worker does).
    pub fn reset(&mut self) {
        *self = ProbeState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn http(path: &str) -> Probe {
        Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.into()),
                port: IntOrString::Int(80),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn http_paths_with_fail_fail() {
        assert_eq!(action(&http("/healthz")), Action::Decided(Ok(())));
        assert_eq!(
            action(&http("/fail")),
            Action::Decided(Err("HTTP probe failed with statuscode: 500".into()))
        );
        let exec = Probe {
            exec: Some(ExecAction {
                command: Some(vec!["cat".into(), "/tmp/healthy".into()]),
            }),
            ..Default::default()
        };
        assert!(matches!(action(&exec), Action::Exec(c) if c[0] == "cat"));
    }

    #[test]
    fn thresholds_decide_results() {
        let t = timing(&Probe {
            failure_threshold: Some(3),
            ..Default::default()
        });
        let mut s = ProbeState::default();
        assert_eq!(s.observe(true, &t), Some(true));
        assert_eq!(s.observe(false, &t), None);
        assert_eq!(s.observe(false, &t), None);
        assert_eq!(s.observe(false, &t), Some(false));
        assert_eq!(s.observe(false, &t), None, "only changes are reported");
        assert_eq!(t.period, Duration::from_secs(10));
    }
}
