//! Leases. Mirrors `pkg/apis/coordination/validation/validation.go` (`ValidateLease`,
//! `ValidateLeaseSpec`, `ValidateLeaseUpdate`).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};

use super::meta::{validate_object_meta, validate_object_meta_update, IS_NEGATIVE_ERROR_MSG};
use super::names::name_is_dns_subdomain;
use super::{render, FieldError, Path};

/// Mirrors `ValidateLease`.
pub(super) fn validate_lease(lease: &Lease) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        &lease.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_lease_spec(
        &lease.spec.clone().unwrap_or_default(),
        &Path::new("spec"),
    ));
    errs
}

/// Mirrors `ValidateLeaseUpdate`.
pub(super) fn validate_lease_update(new: &Lease, old: &Lease) -> Vec<FieldError> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_lease_spec(
        &new.spec.clone().unwrap_or_default(),
        &Path::new("spec"),
    ));
    errs
}

/// Mirrors `ValidateLeaseSpec`: a positive duration, non-negative transitions, and the
/// coordinated-leader-election fields.
fn validate_lease_spec(spec: &LeaseSpec, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
        errs.push(FieldError::invalid(
            &path.child("leaseDurationSeconds"),
            d.to_string(),
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
        errs.push(FieldError::invalid(
            &path.child("leaseTransitions"),
            t.to_string(),
            IS_NEGATIVE_ERROR_MSG,
        ));
    }
    let strategy = spec.strategy.as_deref().unwrap_or("");
    if !strategy.is_empty() && strategy != "OldestEmulationVersion" {
        errs.push(FieldError::not_supported(
            &path.child("strategy"),
            render::q(strategy),
            &["OldestEmulationVersion"],
        ));
    }
    if spec
        .preferred_holder
        .as_deref()
        .is_some_and(|h| !h.is_empty())
        && strategy.is_empty()
    {
        errs.push(FieldError::forbidden(
            &path.child("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::super::validate;
    use super::*;
    use crate::api::Object;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// One case per Lease rule.
    #[test]
    fn lease_rules() {
        let lease = |spec: LeaseSpec| Lease {
            metadata: ObjectMeta {
                name: Some("node-1".into()),
                namespace: Some("kube-node-lease".into()),
                ..Default::default()
            },
            spec: Some(spec),
        };
        let fields = |l: Lease| {
            validate(&Object::Lease(l.into()))
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        let ok = LeaseSpec {
            holder_identity: Some("node-1".into()),
            lease_duration_seconds: Some(40),
            ..Default::default()
        };
        assert!(fields(lease(ok.clone())).is_empty());
        let cases = [
            (
                LeaseSpec {
                    lease_duration_seconds: Some(0),
                    ..ok.clone()
                },
                "spec.leaseDurationSeconds",
            ),
            (
                LeaseSpec {
                    lease_transitions: Some(-1),
                    ..ok.clone()
                },
                "spec.leaseTransitions",
            ),
            (
                LeaseSpec {
                    strategy: Some("Newest".into()),
                    ..ok.clone()
                },
                "spec.strategy",
            ),
            (
                LeaseSpec {
                    preferred_holder: Some("x".into()),
                    ..ok.clone()
                },
                "spec.preferredHolder",
            ),
        ];
        for (spec, field) in cases {
            assert_eq!(fields(lease(spec.clone())), vec![field], "{spec:?}");
        }
        let errs = validate(&Object::Lease(
            lease(LeaseSpec {
                lease_transitions: Some(-1),
                ..ok
            })
            .into(),
        ));
        assert_eq!(
            errs[0].to_string(),
            "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"
        );
    }
}
