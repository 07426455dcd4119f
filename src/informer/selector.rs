//! TEMPORARY: `LabelSelector::from_meta` is being added to `crate::api::selectors` by another
//! engineer. Until it lands in this branch, [`from_meta`] builds the selector string upstream's
//! `metav1.LabelSelectorAsSelector` would, and parses it with `LabelSelector::parse`. Replace
//! every call with `LabelSelector::from_meta` and delete this file once it exists.

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;

use crate::api::selectors::LabelSelector;

/// `metav1.LabelSelector` → a parsed [`LabelSelector`] (`matchLabels` as `k=v`,
/// `matchExpressions` as `k in (a,b)`, `k notin (a,b)`, `k`, `!k`). An empty selector
/// matches everything, as upstream's `LabelSelectorAsSelector`.
pub fn from_meta(sel: &metav1::LabelSelector) -> Result<LabelSelector, String> {
    let mut parts = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for req in sel.match_expressions.iter().flatten() {
        let values = req.values.clone().unwrap_or_default().join(",");
        parts.push(match req.operator.as_str() {
            "In" => format!("{} in ({values})", req.key),
            "NotIn" => format!("{} notin ({values})", req.key),
            "Exists" => req.key.clone(),
            "DoesNotExist" => format!("!{}", req.key),
            op => return Err(format!("{op:?} is not a valid label selector operator")),
        });
    }
    LabelSelector::parse(&parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_parsable_selector() {
        let sel = metav1::LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![metav1::LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert!(from_meta(&sel).is_ok());
        let bad = metav1::LabelSelector {
            match_expressions: Some(vec![metav1::LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert!(from_meta(&bad).is_err());
    }
}
