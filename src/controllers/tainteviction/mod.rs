//! Taint-based eviction: pods on a node with `NoExecute` taints they do not tolerate are
//! deleted at once; pods that tolerate every such taint for a while (`tolerationSeconds`) are
//! deleted when the shortest of those runs out; tolerating forever keeps them. Mirrors
//! pkg/controller/tainteviction (kube-controller-manager's `taint-eviction-controller`).
//!
//! * this file — the decision ([`decide`]), a plain function;
//! * [`controller`] — the actor: node and pod events, the timed evictions, the deletes.
//!
//! `tolerationSeconds` is simulated time: the controller's clock divides it by
//! `[simulation] speed`, like every other simulated duration.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::scheduler::helpers::toleration_tolerates_taint;

pub mod controller;

pub use controller::TaintEvictionController;

/// The events' source component, as upstream.
pub const COMPONENT: &str = "taint-eviction-controller";
/// The event reason of an eviction (and of a cancelled one).
pub const REASON_TAINT_MANAGER_EVICTION: &str = "TaintManagerEviction";
/// The `DisruptionTarget` condition's reason on an evicted pod.
pub const REASON_DELETION_BY_TAINT_MANAGER: &str = "DeletionByTaintManager";

/// What to do with one pod on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No NoExecute taint, or every one tolerated forever: nothing (cancel a planned eviction).
    Keep,
    /// A NoExecute taint is not tolerated: delete now.
    EvictNow,
    /// Every NoExecute taint is tolerated, the shortest for this long (simulated).
    EvictAfter(Duration),
}

/// The node's NoExecute taints (`getNoExecuteTaints`).
pub fn no_execute_taints(taints: &[Taint]) -> Vec<Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect()
}

/// Mirrors `processPodOnNode` with `GetMatchingTolerations` and `getMinTolerationTime`: a
/// taint no toleration matches evicts now; otherwise the smallest `tolerationSeconds` among
/// the tolerations used (a negative one counts as 0; none set means forever) is the delay.
pub fn decide(taints: &[Taint], tolerations: &[Toleration]) -> Decision {
    let taints = no_execute_taints(taints);
    if taints.is_empty() {
        return Decision::Keep;
    }
    let mut used = Vec::new();
    for taint in &taints {
        match tolerations
            .iter()
            .find(|t| toleration_tolerates_taint(t, taint))
        {
            Some(t) => used.push(t),
            None => return Decision::EvictNow,
        }
    }
    match used.iter().filter_map(|t| t.toleration_seconds).min() {
        None => Decision::Keep,
        Some(s) => Decision::EvictAfter(Duration::from_secs(s.max(0) as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            ..Default::default()
        }
    }

    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

    #[test]
    fn eviction_follows_the_tolerations() {
        let unreachable = [
            taint(UNREACHABLE, "NoSchedule"),
            taint(UNREACHABLE, "NoExecute"),
        ];
        let cases: &[(&str, &[Taint], Vec<Toleration>, Decision)] = &[
            ("no taints", &[], vec![], Decision::Keep),
            ("only NoSchedule", &unreachable[..1], vec![], Decision::Keep),
            ("not tolerated", &unreachable, vec![], Decision::EvictNow),
            (
                "tolerated for 300 s (the default toleration)",
                &unreachable,
                vec![toleration(UNREACHABLE, Some(300))],
                Decision::EvictAfter(Duration::from_secs(300)),
            ),
            (
                "tolerated forever",
                &unreachable,
                vec![toleration(UNREACHABLE, None)],
                Decision::Keep,
            ),
            (
                "the shortest toleration wins",
                &[taint(UNREACHABLE, "NoExecute"), taint("x", "NoExecute")],
                vec![toleration(UNREACHABLE, Some(300)), toleration("x", Some(5))],
                Decision::EvictAfter(Duration::from_secs(5)),
            ),
            (
                "a negative toleration is zero",
                &unreachable,
                vec![toleration(UNREACHABLE, Some(-1))],
                Decision::EvictAfter(Duration::ZERO),
            ),
            (
                "another taint not tolerated",
                &[taint(UNREACHABLE, "NoExecute"), taint("x", "NoExecute")],
                vec![toleration(UNREACHABLE, Some(300))],
                Decision::EvictNow,
            ),
        ];
        for (what, taints, tolerations, want) in cases {
            assert_eq!(decide(taints, tolerations), *want, "{what}");
        }
    }
}
