//! `[nodes]` (which simulated nodes exist) and `[kubelet]` (the kubelet's periods and
//! back-offs). Durations are simulated: `[simulation] speed` scales them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::api::quantity::parse_quantity;
use crate::api::validation::names::is_dns1123_subdomain;
use crate::runtime::ipam::parse_cidr;

/// The control-plane node's name and taint (kubeadm's).
pub const CONTROL_PLANE_NODE: &str = "control-plane";
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane:NoSchedule";

/// `[nodes]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesConfig {
    /// Also run a `control-plane` node, tainted `node-role.kubernetes.io/control-plane:NoSchedule`.
    pub control_plane: bool,
    /// The worker nodes.
    pub workers: Vec<NodeConfig>,
}

/// One node of `[nodes] workers`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    #[serde(default = "default_cpu")]
    pub cpu: String,
    #[serde(default = "default_memory")]
    pub memory: String,
    #[serde(default = "default_pods")]
    pub pods: u32,
    #[serde(default = "default_storage")]
    pub ephemeral_storage: String,
    /// `topology.kubernetes.io/zone`; empty = no zone label.
    #[serde(default)]
    pub zone: String,
    /// The pod CIDR pod IPs come from (IPv4, e.g. `10.244.1.0/24`).
    pub pod_cidr: String,
    /// Extra labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints as `key[=value]:Effect`.
    #[serde(default)]
    pub taints: Vec<String>,
    #[serde(default = "default_arch")]
    pub arch: String,
    #[serde(default = "default_os")]
    pub os: String,
}

fn default_cpu() -> String {
    "4".into()
}
fn default_memory() -> String {
    "8Gi".into()
}
fn default_pods() -> u32 {
    110
}
fn default_storage() -> String {
    "100Gi".into()
}
fn default_arch() -> String {
    "amd64".into()
}
fn default_os() -> String {
    "linux".into()
}

impl NodeConfig {
    /// A node with the default capacity.
    pub fn new(name: &str, pod_cidr: &str) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            cpu: default_cpu(),
            memory: default_memory(),
            pods: default_pods(),
            ephemeral_storage: default_storage(),
            zone: String::new(),
            pod_cidr: pod_cidr.into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            arch: default_arch(),
            os: default_os(),
        }
    }
}

/// A taint parsed from `key[=value]:Effect`.
pub fn parse_taint(s: &str) -> Option<k8s_openapi::api::core::v1::Taint> {
    let (kv, effect) = s.rsplit_once(':')?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return None;
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return None;
    }
    Some(k8s_openapi::api::core::v1::Taint {
        key: key.into(),
        value,
        effect: effect.into(),
        time_added: None,
    })
}

impl NodesConfig {
    /// Every node to run: the control plane first (if any), then the workers.
    pub fn all(&self) -> Vec<NodeConfig> {
        let mut out = Vec::new();
        if self.control_plane {
            let mut cp = NodeConfig::new(CONTROL_PLANE_NODE, "10.244.0.0/24");
            cp.cpu = "2".into();
            cp.memory = "4Gi".into();
            cp.labels.insert(
                "node-role.kubernetes.io/control-plane".into(),
                String::new(),
            );
            cp.taints.push(CONTROL_PLANE_TAINT.into());
            out.push(cp);
        }
        out.extend(self.workers.iter().cloned());
        out
    }

    /// Range checks, as `(dotted key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let key = "nodes.workers";
        let mut names = std::collections::BTreeSet::new();
        let mut cidrs = Vec::new();
        for n in self.all() {
            if let Some(e) = is_dns1123_subdomain(&n.name).first() {
                return Err((key, format!("node name {:?}: {e}", n.name)));
            }
            if !names.insert(n.name.clone()) {
                return Err((key, format!("node {:?} is listed twice", n.name)));
            }
            for (what, q) in [
                ("cpu", &n.cpu),
                ("memory", &n.memory),
                ("ephemeral_storage", &n.ephemeral_storage),
            ] {
                match parse_quantity(q) {
                    Ok(v) if !v.is_negative() && !v.is_zero() => {}
                    _ => {
                        return Err((
                            key,
                            format!("node {:?}: {what} {q:?} is not a positive quantity", n.name),
                        ))
                    }
                }
            }
            if n.pods == 0 {
                return Err((key, format!("node {:?}: pods must be at least 1", n.name)));
            }
            let (net, len) = parse_cidr(&n.pod_cidr).map_err(|e| (key, e.to_string()))?;
            if len > 30 {
                return Err((
                    key,
                    format!("node {:?}: pod_cidr {} is too small", n.name, n.pod_cidr),
                ));
            }
            let range = |net: std::net::Ipv4Addr, len: u8| {
                let start = u32::from(net) as u64;
                (start, start + (1u64 << (32 - len)) - 1)
            };
            let (a0, a1) = range(net, len);
            for (other, onet, olen) in &cidrs {
                let (b0, b1) = range(*onet, *olen);
                if a0 <= b1 && b0 <= a1 {
                    return Err((
                        key,
                        format!(
                            "node {:?}: pod_cidr {} overlaps node {other:?}'s",
                            n.name, n.pod_cidr
                        ),
                    ));
                }
            }
            cidrs.push((n.name.clone(), net, len));
            for t in &n.taints {
                if parse_taint(t).is_none() {
                    return Err((
                        key,
                        format!(
                            "node {:?}: taint {t:?} is not key[=value]:NoSchedule|PreferNoSchedule|NoExecute",
                            n.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `[kubelet]`. Defaults are upstream's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeletConfig {
    /// `spec.leaseDurationSeconds` of the node's Lease (upstream `nodeLeaseDurationSeconds`).
    pub node_lease_duration_seconds: u32,
    /// How often the Lease is renewed (upstream: a quarter of the lease duration).
    pub node_lease_renew_seconds: f64,
    /// How often node status is computed (`nodeStatusUpdateFrequency`).
    pub node_status_update_frequency_seconds: f64,
    /// Node status is posted at least this often even when unchanged
    /// (`nodeStatusReportFrequency`).
    pub node_status_report_frequency_seconds: f64,
    /// First back-off after a crash or a failed pull (upstream 10 s), doubling...
    pub backoff_initial_seconds: f64,
    /// ...up to this (upstream 300 s).
    pub backoff_max_seconds: f64,
    /// A container that ran this long has its crash back-off reset (upstream: 2 × the max).
    pub backoff_reset_seconds: f64,
    /// Periodic resync of every pod worker (upstream `syncFrequency`, 1 min).
    pub sync_frequency_seconds: f64,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        KubeletConfig {
            node_lease_duration_seconds: 40,
            node_lease_renew_seconds: 10.0,
            node_status_update_frequency_seconds: 10.0,
            node_status_report_frequency_seconds: 300.0,
            backoff_initial_seconds: 10.0,
            backoff_max_seconds: 300.0,
            backoff_reset_seconds: 600.0,
            sync_frequency_seconds: 60.0,
        }
    }
}

pub(crate) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

impl KubeletConfig {
    pub fn lease_renew(&self) -> Duration {
        secs(self.node_lease_renew_seconds)
    }
    pub fn status_update(&self) -> Duration {
        secs(self.node_status_update_frequency_seconds)
    }
    pub fn status_report(&self) -> Duration {
        secs(self.node_status_report_frequency_seconds)
    }
    pub fn backoff_initial(&self) -> Duration {
        secs(self.backoff_initial_seconds)
    }
    pub fn backoff_max(&self) -> Duration {
        secs(self.backoff_max_seconds)
    }
    pub fn backoff_reset(&self) -> Duration {
        secs(self.backoff_reset_seconds)
    }
    pub fn sync_frequency(&self) -> Duration {
        secs(self.sync_frequency_seconds)
    }

    /// Range checks, as `(dotted key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.node_lease_duration_seconds == 0 {
            return Err((
                "kubelet.node_lease_duration_seconds",
                "must be greater than 0".into(),
            ));
        }
        let positive = [
            (
                "kubelet.node_lease_renew_seconds",
                self.node_lease_renew_seconds,
            ),
            (
                "kubelet.node_status_update_frequency_seconds",
                self.node_status_update_frequency_seconds,
            ),
            (
                "kubelet.node_status_report_frequency_seconds",
                self.node_status_report_frequency_seconds,
            ),
            (
                "kubelet.backoff_initial_seconds",
                self.backoff_initial_seconds,
            ),
            ("kubelet.backoff_max_seconds", self.backoff_max_seconds),
            ("kubelet.backoff_reset_seconds", self.backoff_reset_seconds),
            (
                "kubelet.sync_frequency_seconds",
                self.sync_frequency_seconds,
            ),
        ];
        for (key, v) in positive {
            if !v.is_finite() || v <= 0.0 {
                return Err((key, format!("must be greater than 0, got {v}")));
            }
        }
        if self.backoff_max_seconds < self.backoff_initial_seconds {
            return Err((
                "kubelet.backoff_max_seconds",
                "must not be below kubelet.backoff_initial_seconds".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_with_and_without_values() {
        let t = parse_taint("node-role.kubernetes.io/control-plane:NoSchedule").unwrap();
        assert_eq!(t.key, "node-role.kubernetes.io/control-plane");
        assert_eq!(t.value, None);
        let t = parse_taint("dedicated=gpu:NoExecute").unwrap();
        assert_eq!(t.value.as_deref(), Some("gpu"));
        assert!(parse_taint("dedicated=gpu").is_none());
        assert!(parse_taint("x:Sometimes").is_none());
    }

    #[test]
    fn overlapping_cidrs_and_duplicate_names_are_rejected() {
        let mut nodes = NodesConfig {
            control_plane: true,
            workers: vec![
                NodeConfig::new("node-1", "10.244.1.0/24"),
                NodeConfig::new("node-2", "10.244.2.0/24"),
            ],
        };
        assert_eq!(nodes.validate(), Ok(()));
        assert_eq!(nodes.all()[0].name, CONTROL_PLANE_NODE);
        nodes.workers[1].pod_cidr = "10.244.0.0/16".into();
        assert!(nodes.validate().unwrap_err().1.contains("overlaps"));
        nodes.workers[1] = NodeConfig::new("node-1", "10.244.3.0/24");
        assert!(nodes.validate().unwrap_err().1.contains("twice"));
    }
}

#[cfg(test)]
mod load_tests {
    use crate::config::{Config, ConfigSources, Override};

    /// The default cluster has two workers; a file replaces the list; `speed` is overridable.
    #[test]
    fn default_nodes_and_a_file_that_replaces_them() {
        let c = Config::defaults();
        let names: Vec<String> = c.nodes.all().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["node-1", "node-2"]);
        assert_eq!(c.nodes.workers[0].cpu, "4");
        assert_eq!(c.simulation.speed, 1.0);
        assert_eq!(c.kubelet.node_lease_duration_seconds, 40);

        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(
            &mut f,
            br#"
[simulation]
speed = 0
[nodes]
control_plane = true
workers = [{ name = "big", cpu = "64", memory = "256Gi", pod_cidr = "10.9.0.0/16", labels = { gpu = "a100" }, taints = ["gpu=true:NoSchedule"] }]
"#,
        )
        .unwrap();
        let c = Config::load(&ConfigSources {
            file: Some(f.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap();
        let all = c.nodes.all();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].name, "big");
        assert_eq!(all[1].labels["gpu"], "a100");
        assert_eq!(all[1].pods, 110, "unset keys keep their defaults");
        assert_eq!(c.simulation.speed, 0.0);

        let err = Config::load(&ConfigSources {
            overrides: vec![Override::set("simulation.speed", "-1")],
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("simulation.speed"), "{err}");
    }
}
