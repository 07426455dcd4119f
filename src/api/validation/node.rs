//! Nodes. Mirrors `ValidateNode` and `ValidateNodeUpdate` in
//! `pkg/apis/core/validation/validation.go`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Taint};

use super::meta::{
    validate_label_name, validate_object_meta, validate_object_meta_update, IS_NEGATIVE_ERROR_MSG,
};
use super::names::{is_valid_label_value, name_is_dns_subdomain};
use super::pod::validate_taint_effect;
use super::{render, FieldError, Path};
use crate::api::quantity::parse_quantity;

/// Mirrors `ValidateNode`: metadata, taints, resource quantities, pod CIDRs.
pub(super) fn validate_node(node: &Node) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        &node.metadata,
        false,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    let spec = node.spec.clone().unwrap_or_default();
    // Upstream reports taints under `metadata.taints` (its path is built from `metadata`).
    errs.extend(validate_node_taints(
        spec.taints.as_deref().unwrap_or(&[]),
        &Path::new("metadata").child("taints"),
    ));
    errs.extend(validate_node_resources(node));
    let spec_path = Path::new("spec");
    let cidrs_path = spec_path.child("podCIDRs");
    let cidrs = spec.pod_cidrs.clone().unwrap_or_default();
    for (i, cidr) in cidrs.iter().enumerate() {
        if !is_valid_cidr(cidr) {
            errs.push(FieldError::invalid(
                &cidrs_path.index(i),
                render::q(cidr),
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    if cidrs.len() > 1 {
        let families: BTreeSet<bool> = cidrs
            .iter()
            .filter_map(|c| c.split('/').next()?.parse::<IpAddr>().ok())
            .map(|ip| ip.is_ipv4())
            .collect();
        if cidrs.len() > 2 || families.len() != 2 {
            errs.push(FieldError::invalid(
                &cidrs_path,
                render::string_list(&cidrs),
                "may specify no more than one CIDR for each IP family",
            ));
        }
    }
    errs
}

/// Mirrors `ValidateNodeUpdate`: the new node is valid, and `podCIDRs` and `providerID` can
/// only go from unset to set.
pub(super) fn validate_node_update(new: &Node, old: &Node) -> Vec<FieldError> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_node(new));
    let (ns, os) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    let old_cidrs = os.pod_cidrs.unwrap_or_default();
    if !old_cidrs.is_empty() && ns.pod_cidrs.unwrap_or_default() != old_cidrs {
        errs.push(FieldError::forbidden(
            &Path::new("spec").child("podCIDRs"),
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    let old_provider = os.provider_id.unwrap_or_default();
    if !old_provider.is_empty() && ns.provider_id.unwrap_or_default() != old_provider {
        errs.push(FieldError::forbidden(
            &Path::new("spec").child("providerID"),
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    errs
}

fn is_valid_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max) && !bits.starts_with('+')
}

fn render_taint(t: &Taint) -> String {
    format!(
        "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:<nil>}}",
        render::q(&t.key),
        render::q(t.value.as_deref().unwrap_or("")),
        render::q(&t.effect)
    )
}

/// Mirrors `validateNodeTaints`: qualified keys, label values, a known effect, and unique
/// by key and effect.
fn validate_node_taints(taints: &[Taint], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, t) in taints.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_label_name(&t.key, &p.child("key")));
        let value = t.value.as_deref().unwrap_or("");
        let msgs = is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                &p.child("value"),
                render::q(value),
                &msgs.join(";"),
            ));
        }
        errs.extend(validate_taint_effect(&t.effect, false, &p.child("effect")));
        if !seen.insert((t.effect.clone(), t.key.clone())) {
            let mut e = FieldError::duplicate(&p, render_taint(t));
            e.detail = "taints must be unique by key and effect pair".into();
            errs.push(e);
        }
    }
    errs
}

/// Mirrors `ValidateNodeResources`: capacity and allocatable quantities are valid and
/// non-negative.
fn validate_node_resources(node: &Node) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(status) = &node.status else {
        return errs;
    };
    for (field, list) in [
        ("capacity", &status.capacity),
        ("allocatable", &status.allocatable),
    ] {
        let status_path = Path::new("status");
        let list_path = status_path.child(field);
        for (name, q) in list.iter().flatten() {
            let p = list_path.child(name.clone());
            match parse_quantity(&q.0) {
                Err(e) => errs.push(FieldError::invalid(&p, render::q(&q.0), &e.to_string())),
                Ok(v) if v.is_negative() => errs.push(FieldError::invalid(
                    &p,
                    render::q(&v.to_string()),
                    IS_NEGATIVE_ERROR_MSG,
                )),
                Ok(_) => {}
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::super::{validate, validate_update};
    use super::*;
    use crate::api::Object;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(spec: NodeSpec) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("node-1".into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn fields(n: Node) -> Vec<String> {
        validate(&Object::Node(n.into()))
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    /// One case per Node rule.
    #[test]
    fn node_rules() {
        assert!(fields(node(NodeSpec::default())).is_empty());
        let cases: Vec<(NodeSpec, Vec<&str>)> = vec![
            (
                NodeSpec {
                    taints: Some(vec![taint("-k", "NoSchedule")]),
                    ..Default::default()
                },
                vec!["metadata.taints[0].key"],
            ),
            (
                NodeSpec {
                    taints: Some(vec![taint("k", "")]),
                    ..Default::default()
                },
                vec!["metadata.taints[0].effect"],
            ),
            (
                NodeSpec {
                    taints: Some(vec![taint("k", "Sometimes")]),
                    ..Default::default()
                },
                vec!["metadata.taints[0].effect"],
            ),
            (
                NodeSpec {
                    taints: Some(vec![taint("k", "NoSchedule"), taint("k", "NoSchedule")]),
                    ..Default::default()
                },
                vec!["metadata.taints[1]"],
            ),
            (
                NodeSpec {
                    taints: Some(vec![Taint {
                        value: Some("a b".into()),
                        ..taint("k", "NoSchedule")
                    }]),
                    ..Default::default()
                },
                vec!["metadata.taints[0].value"],
            ),
            (
                NodeSpec {
                    pod_cidrs: Some(vec!["10.0.0.0/33".into()]),
                    ..Default::default()
                },
                vec!["spec.podCIDRs[0]"],
            ),
            (
                NodeSpec {
                    pod_cidrs: Some(vec!["10.0.0.0/24".into(), "10.1.0.0/24".into()]),
                    ..Default::default()
                },
                vec!["spec.podCIDRs"],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(fields(node(spec.clone())), want, "{spec:?}");
        }
        let mut n = node(NodeSpec::default());
        n.status = Some(NodeStatus {
            capacity: Some([("cpu".to_string(), Quantity("-1".into()))].into()),
            ..Default::default()
        });
        assert_eq!(fields(n), vec!["status.capacity.cpu"]);
        let mut n = node(NodeSpec::default());
        n.metadata.namespace = Some("default".into());
        assert_eq!(fields(n), vec!["metadata.namespace"]);
        let dup = validate(&Object::Node(
            (node(NodeSpec {
                taints: Some(vec![taint("k", "NoSchedule"), taint("k", "NoSchedule")]),
                ..Default::default()
            }))
            .into(),
        ));
        assert!(
            dup[0]
                .to_string()
                .ends_with("taints must be unique by key and effect pair"),
            "{}",
            dup[0]
        );
    }

    /// podCIDRs may be set once; cordoning is an ordinary update.
    #[test]
    fn node_update_rules() {
        let old = node(NodeSpec {
            pod_cidrs: Some(vec!["10.0.0.0/24".into()]),
            ..Default::default()
        });
        let cordoned = node(NodeSpec {
            unschedulable: Some(true),
            ..old.spec.clone().unwrap()
        });
        assert!(validate_update(
            &Object::Node(cordoned.into()),
            &Object::Node(old.clone().into())
        )
        .is_empty());
        let moved = node(NodeSpec {
            pod_cidrs: Some(vec!["10.9.0.0/24".into()]),
            ..Default::default()
        });
        let errs = validate_update(&Object::Node(moved.into()), &Object::Node(old.into()));
        assert_eq!(
            errs.into_iter().map(|e| e.field).collect::<Vec<_>>(),
            vec!["spec.podCIDRs"]
        );
    }
}
