//! `NodeUnschedulable`: pods don't go to cordoned nodes (`spec.unschedulable`) unless they
//! tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint.
//!
//! Mirrors pkg/scheduler/framework/plugins/nodeunschedulable/node_unschedulable.go.

use k8s_openapi::api::core::v1::Taint;

use super::names;
use crate::scheduler::framework::{CycleState, FilterPlugin, Plugin, Status};
use crate::scheduler::helpers::{pod_tolerations, tolerations_tolerate_taint};
use crate::scheduler::snapshot::{NodeInfo, PodInfo};

/// `ErrReasonUnschedulable`.
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// `v1.TaintNodeUnschedulable`.
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        names::NODE_UNSCHEDULABLE
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    /// A schedulable node passes whatever the pod tolerates.
    fn passes_fast(&self, _state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> bool {
        !node.unschedulable
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.unschedulable {
            return Status::success();
        }
        let taint = Taint {
            key: TAINT_NODE_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            value: None,
            time_added: None,
        };
        if tolerations_tolerate_taint(pod_tolerations(&pod.pod), &taint) {
            return Status::success();
        }
        Status::unresolvable(ERR_REASON_UNSCHEDULABLE)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Toleration;

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::snapshot::testing::*;

    /// Upstream TestNodeUnschedulable cases.
    #[test]
    fn filter_verdicts() {
        let cordoned = |on: bool| {
            let mut n = node("n1", 1000, 1 << 30);
            n.spec.get_or_insert_with(Default::default).unschedulable = Some(on);
            NodeInfo::new(Arc::new(n))
        };
        let tolerating = {
            let mut p = pod("p", 0, 0);
            p.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
                key: Some(TAINT_NODE_UNSCHEDULABLE.into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }]);
            p
        };
        let cases = [
            (
                "schedulable node",
                pod("p", 0, 0),
                cordoned(false),
                Code::Success,
            ),
            (
                "cordoned node",
                pod("p", 0, 0),
                cordoned(true),
                Code::UnschedulableAndUnresolvable,
            ),
            (
                "cordoned, tolerated",
                tolerating,
                cordoned(true),
                Code::Success,
            ),
        ];
        for (name, p, ni, want) in cases {
            let pi = PodInfo::new(Arc::new(p));
            let s = NodeUnschedulable.filter(&CycleState::new(), &pi, &ni);
            assert_eq!(s.code(), want, "{name}");
            // The fast path passes exactly the schedulable node, never a rejected one.
            let fast = NodeUnschedulable.passes_fast(&CycleState::new(), &pi, &ni);
            assert_eq!(fast, !ni.unschedulable, "{name}");
            assert!(
                !fast || s.is_success(),
                "{name}: fast path passed a rejection"
            );
            if want != Code::Success {
                assert_eq!(s.message(), ERR_REASON_UNSCHEDULABLE);
            }
        }
    }
}
