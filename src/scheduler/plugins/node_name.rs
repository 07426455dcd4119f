//! `NodeName`: a pod with `spec.nodeName` set only fits that node.
//!
//! Mirrors pkg/scheduler/framework/plugins/nodename/node_name.go.

use super::names;
use crate::scheduler::framework::{
    CycleState, FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult, Status,
};
use crate::scheduler::snapshot::{NodeInfo, PodInfo, Snapshot};

/// `ErrReason`.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

fn requested(pod: &PodInfo) -> Option<&str> {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        names::NODE_NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodeName {
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        match requested(pod) {
            None => (None, Status::skip()),
            Some(n) => (
                Some(PreFilterResult::nodes([n.to_string()])),
                Status::success(),
            ),
        }
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match requested(pod) {
            Some(n) if n != node.name() => Status::unresolvable(ERR_REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::snapshot::testing::*;

    /// Upstream TestNodeName cases.
    #[test]
    fn filter_verdicts() {
        let ni = NodeInfo::new(Arc::new(node("foo", 1000, 1 << 30)));
        let cases = [
            ("no host specified", pod("p", 0, 0), Code::Success),
            ("host matches", on(pod("p", 0, 0), "foo"), Code::Success),
            (
                "host doesn't match",
                on(pod("p", 0, 0), "bar"),
                Code::UnschedulableAndUnresolvable,
            ),
        ];
        for (name, p, want) in cases {
            let pi = PodInfo::new(Arc::new(p));
            let s = NodeName.filter(&CycleState::new(), &pi, &ni);
            assert_eq!(s.code(), want, "{name}");
        }
        let (r, s) = NodeName.pre_filter(
            &mut CycleState::new(),
            &PodInfo::new(Arc::new(on(pod("p", 0, 0), "foo"))),
            &Snapshot::new(),
        );
        assert!(s.is_success());
        assert_eq!(r, Some(PreFilterResult::nodes(["foo".to_string()])));
    }
}
