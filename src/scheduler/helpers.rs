//! Matching helpers the plugins share: label selectors, node selector terms, tolerations.
//!
//! Mirrors `k8s.io/component-helpers/scheduling/corev1` (nodeaffinity, `TolerationsTolerateTaint`),
//! `metav1.LabelSelectorAsSelector` and `v1.Toleration.ToleratesTaint`.
//! (`crate::api::selectors` parses the string form of selectors for the API; these work on
//! the structured `LabelSelector` / `NodeSelector` of a pod spec.)

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

pub(crate) static EMPTY_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// A pod's labels (empty if none).
pub fn pod_labels(pod: &Pod) -> &BTreeMap<String, String> {
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS)
}

/// A node's labels (empty if none).
/// The well-known node label of the node's hostname (`v1.LabelHostname`).
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// The well-known node label of the node's zone (`v1.LabelTopologyZone`).
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

pub fn node_labels(node: &Node) -> &BTreeMap<String, String> {
    node.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS)
}

/// `namespace/name` of a pod: its key in the queue and the cache.
pub fn pod_key(pod: &Pod) -> String {
    // Built in a string of the right size: `format!` cost several times as much, and the
    // scheduler keys every pod event it receives.
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let mut key = String::with_capacity(namespace.len() + 1 + name.len());
    key.push_str(namespace);
    key.push('/');
    key.push_str(name);
    key
}

/// `spec.priority` (0 when unset, as upstream `corev1helpers.PodPriority`).
pub fn pod_priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// A compiled `metav1.LabelSelector`. `None` selector matches nothing (as
/// `LabelSelectorAsSelector(nil)`); an empty one matches everything.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    Nothing,
    Requirements(Vec<LabelRequirement>),
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelRequirement {
    pub key: String,
    pub op: LabelOp,
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Selector {
    /// Compile a label selector. An unknown operator makes the selector match nothing
    /// (upstream returns an error, and callers treat the term as unmatched).
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Selector {
        let Some(sel) = sel else {
            return Selector::Nothing;
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(LabelRequirement {
                key: k.clone(),
                op: LabelOp::In,
                values: vec![v.clone()],
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            match Self::requirement(e) {
                Some(r) => reqs.push(r),
                None => return Selector::Nothing,
            }
        }
        Selector::Requirements(reqs)
    }

    fn requirement(e: &LabelSelectorRequirement) -> Option<LabelRequirement> {
        let op = match e.operator.as_str() {
            "In" => LabelOp::In,
            "NotIn" => LabelOp::NotIn,
            "Exists" => LabelOp::Exists,
            "DoesNotExist" => LabelOp::DoesNotExist,
            _ => return None,
        };
        Some(LabelRequirement {
            key: e.key.clone(),
            op,
            values: e.values.clone().unwrap_or_default(),
        })
    }

    /// A selector matching exactly these labels (`labels.SelectorFromSet`).
    pub fn from_set(labels: &BTreeMap<String, String>) -> Selector {
        Selector::Requirements(
            labels
                .iter()
                .map(|(k, v)| LabelRequirement {
                    key: k.clone(),
                    op: LabelOp::In,
                    values: vec![v.clone()],
                })
                .collect(),
        )
    }

    /// Add `key In (value)` (matchLabelKeys) or `key NotIn (value)` (mismatchLabelKeys).
    pub fn add(&mut self, key: &str, op: LabelOp, value: &str) {
        if let Selector::Requirements(reqs) = self {
            reqs.push(LabelRequirement {
                key: key.to_string(),
                op,
                values: vec![value.to_string()],
            });
        }
    }

    /// Whether the selector selects nothing at all or has no requirements.
    pub fn is_empty(&self) -> bool {
        matches!(self, Selector::Requirements(r) if r.is_empty())
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::Requirements(reqs) => reqs.iter().all(|r| {
                let v = labels.get(&r.key);
                match r.op {
                    LabelOp::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                    LabelOp::NotIn => v.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                    LabelOp::Exists => v.is_some(),
                    LabelOp::DoesNotExist => v.is_none(),
                }
            }),
        }
    }
}

/// Whether one node selector requirement matches a value (`None` = label absent).
/// Operators: In, NotIn, Exists, DoesNotExist, Gt, Lt (integers).
fn node_requirement_matches(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node selector term matches: all expressions on labels and all fields
/// (`metadata.name` only) match. A term with neither matches nothing.
pub fn node_selector_term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node_labels(node);
    let name = node.metadata.name.clone().unwrap_or_default();
    exprs
        .iter()
        .all(|r| node_requirement_matches(r, labels.get(&r.key)))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && node_requirement_matches(r, Some(&name))
        })
}

/// Whether any term of a node selector matches (terms are ORed).
pub fn node_selector_matches(sel: &NodeSelector, node: &Node) -> bool {
    sel.node_selector_terms
        .iter()
        .any(|t| node_selector_term_matches(t, node))
}

/// The pod's required node placement: `spec.nodeSelector` AND
/// `requiredDuringSchedulingIgnoredDuringExecution`. Mirrors
/// `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`.
pub fn required_node_affinity_matches(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    if let Some(sel) = spec.node_selector.as_ref() {
        let labels = node_labels(node);
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    if let Some(required) = required_node_selector(spec) {
        return node_selector_matches(required, node);
    }
    true
}

/// The pod's `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`.
pub fn required_node_selector(spec: &PodSpec) -> Option<&NodeSelector> {
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
}

/// Mirrors `v1.Toleration.ToleratesTaint`.
pub fn toleration_tolerates_taint(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Mirrors `TolerationsTolerateTaint`.
pub fn tolerations_tolerate_taint(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations
        .iter()
        .any(|t| toleration_tolerates_taint(t, taint))
}

/// The pod's tolerations (empty if none).
pub fn pod_tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// The node's taints (empty if none).
pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// Mirrors `FindMatchingUntoleratedTaint`: the first taint accepted by `filter` that no
/// toleration tolerates.
pub fn find_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|t| !tolerations_tolerate_taint(tolerations, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Label selectors: nil matches nothing, empty matches everything, operators.
    #[test]
    fn label_selector_semantics() {
        let l = labels(&[("app", "web"), ("tier", "fe")]);
        assert!(!Selector::from_label_selector(None).matches(&l));
        assert!(Selector::from_label_selector(Some(&LabelSelector::default())).matches(&l));
        let sel = |op: &str, vals: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: op.into(),
                values: Some(vals.iter().map(|s| s.to_string()).collect()),
            }]),
            ..Default::default()
        };
        let cases = [
            ("In", vec!["web"], true),
            ("In", vec!["db"], false),
            ("NotIn", vec!["db"], true),
            ("NotIn", vec!["web"], false),
            ("Exists", vec![], true),
            ("DoesNotExist", vec![], false),
            ("Bogus", vec![], false),
        ];
        for (op, vals, want) in cases {
            assert_eq!(
                Selector::from_label_selector(Some(&sel(op, &vals))).matches(&l),
                want,
                "{op} {vals:?}"
            );
        }
    }

    /// Tolerations: upstream ToleratesTaint cases.
    #[test]
    fn toleration_matching() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let tol =
            |key: Option<&str>, op: Option<&str>, value: Option<&str>, effect: Option<&str>| {
                Toleration {
                    key: key.map(Into::into),
                    operator: op.map(Into::into),
                    value: value.map(Into::into),
                    effect: effect.map(Into::into),
                    toleration_seconds: None,
                }
            };
        let cases = [
            (
                tol(Some("k"), Some("Equal"), Some("v"), Some("NoSchedule")),
                true,
            ),
            (tol(Some("k"), None, Some("v"), None), true),
            (tol(Some("k"), Some("Equal"), Some("w"), None), false),
            (tol(Some("k"), Some("Exists"), None, None), true),
            (tol(None, Some("Exists"), None, None), true),
            (
                tol(Some("k"), Some("Exists"), None, Some("NoExecute")),
                false,
            ),
            (tol(Some("other"), Some("Exists"), None, None), false),
        ];
        for (i, (t, want)) in cases.iter().enumerate() {
            assert_eq!(toleration_tolerates_taint(t, &taint), *want, "case {i}");
        }
    }
}
