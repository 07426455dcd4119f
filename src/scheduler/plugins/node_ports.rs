//! `NodePorts`: a pod's host ports must be free on the node.
//!
//! Mirrors pkg/scheduler/framework/plugins/nodeports/node_ports.go.

use super::names;
use crate::scheduler::framework::{
    CycleState, FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult, Status,
};
use crate::scheduler::snapshot::{NodeInfo, PodInfo, Snapshot};

/// `ErrReason`.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        names::NODE_PORTS
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodePorts {
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        if pod.host_ports.is_empty() {
            return (None, Status::skip());
        }
        (None, Status::success())
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod.host_ports.iter().any(|hp| node.host_port_conflicts(hp)) {
            return Status::unschedulable(ERR_REASON);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{ContainerPort, Pod};

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::snapshot::testing::*;

    fn with_ports(name: &str, ports: &[(&str, &str, i32)]) -> Pod {
        let mut p = pod(name, 0, 0);
        p.spec.as_mut().unwrap().containers[0].ports = Some(
            ports
                .iter()
                .map(|(proto, ip, port)| ContainerPort {
                    container_port: 80,
                    host_port: Some(*port),
                    host_ip: (!ip.is_empty()).then(|| ip.to_string()),
                    protocol: Some(proto.to_string()),
                    ..Default::default()
                })
                .collect(),
        );
        p
    }

    /// Upstream TestNodePorts cases.
    #[test]
    fn filter_verdicts() {
        let cases: Vec<(&str, Pod, Pod, Code)> = vec![
            (
                "same udp port",
                with_ports("p", &[("UDP", "127.0.0.1", 8080)]),
                with_ports("e", &[("UDP", "127.0.0.1", 8080)]),
                Code::Unschedulable,
            ),
            (
                "different udp port",
                with_ports("p", &[("UDP", "127.0.0.1", 8080)]),
                with_ports("e", &[("UDP", "127.0.0.1", 8081)]),
                Code::Success,
            ),
            (
                "same tcp port",
                with_ports("p", &[("TCP", "127.0.0.1", 8080)]),
                with_ports("e", &[("TCP", "127.0.0.1", 8080)]),
                Code::Unschedulable,
            ),
            (
                "different host ip",
                with_ports("p", &[("TCP", "127.0.0.1", 8080)]),
                with_ports("e", &[("TCP", "127.0.0.2", 8080)]),
                Code::Success,
            ),
            (
                "different protocol",
                with_ports("p", &[("UDP", "127.0.0.1", 8080)]),
                with_ports("e", &[("TCP", "127.0.0.1", 8080)]),
                Code::Success,
            ),
            (
                "second udp port conflict",
                with_ports(
                    "p",
                    &[("UDP", "127.0.0.1", 8000), ("UDP", "127.0.0.1", 8080)],
                ),
                with_ports("e", &[("UDP", "127.0.0.1", 8080)]),
                Code::Unschedulable,
            ),
            (
                "0.0.0.0 vs specific ip",
                with_ports("p", &[("TCP", "0.0.0.0", 8001)]),
                with_ports("e", &[("TCP", "127.0.0.1", 8001)]),
                Code::Unschedulable,
            ),
            (
                "specific ip vs 0.0.0.0",
                with_ports(
                    "p",
                    &[("TCP", "10.0.10.10", 8001), ("TCP", "0.0.0.0", 8001)],
                ),
                with_ports("e", &[("TCP", "127.0.0.1", 8001)]),
                Code::Unschedulable,
            ),
            (
                "unset ip means 0.0.0.0",
                with_ports("p", &[("TCP", "", 8001)]),
                with_ports("e", &[("TCP", "127.0.0.1", 8001)]),
                Code::Unschedulable,
            ),
            (
                "0.0.0.0 different protocol",
                with_ports("p", &[("UDP", "0.0.0.0", 8001)]),
                with_ports("e", &[("TCP", "0.0.0.0", 8001)]),
                Code::Success,
            ),
        ];
        for (name, p, existing, want) in cases {
            let mut ni = NodeInfo::new(Arc::new(node("n1", 1000, 1 << 30)));
            ni.add_pod(Arc::new(PodInfo::new(Arc::new(existing))));
            let pi = PodInfo::new(Arc::new(p));
            let s = NodePorts.filter(&CycleState::new(), &pi, &ni);
            assert_eq!(s.code(), want, "{name}");
            if want != Code::Success {
                assert_eq!(s.message(), ERR_REASON);
            }
        }
    }
}
