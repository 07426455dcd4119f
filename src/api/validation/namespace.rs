//! Namespaces. Mirrors `ValidateNamespace` and `ValidateNamespaceUpdate` in
//! `pkg/apis/core/validation/validation.go`.

use k8s_openapi::api::core::v1::Namespace;

use super::meta::{validate_finalizer_name, validate_object_meta, validate_object_meta_update};
use super::names::name_is_dns_label;
use super::{FieldError, Path};

/// Mirrors `ValidateNamespace`: cluster-scoped, the name a DNS-1123 label, finalizers
/// qualified.
pub(super) fn validate_namespace(ns: &Namespace) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        &ns.metadata,
        false,
        name_is_dns_label,
        &Path::new("metadata"),
    );
    errs.extend(validate_spec_finalizers(ns));
    errs
}

/// Mirrors `ValidateNamespaceUpdate`.
pub(super) fn validate_namespace_update(new: &Namespace, old: &Namespace) -> Vec<FieldError> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_spec_finalizers(new));
    errs
}

fn validate_spec_finalizers(ns: &Namespace) -> Vec<FieldError> {
    let spec = Path::new("spec");
    let path = spec.child("finalizers");
    ns.spec
        .iter()
        .flat_map(|s| s.finalizers.iter().flatten())
        .flat_map(|f| validate_finalizer_name(f, &path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{validate, validate_update};
    use super::*;
    use crate::api::Object;
    use k8s_openapi::api::core::v1::NamespaceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ns(name: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// One case per Namespace rule.
    #[test]
    fn namespace_rules() {
        let fields = |n: Namespace| {
            validate(&Object::Namespace(n.into()))
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert!(fields(ns("team-a")).is_empty());
        assert_eq!(
            fields(ns("team.a")),
            vec!["metadata.name"],
            "a label, not a subdomain"
        );
        assert_eq!(fields(ns("")), vec!["metadata.name"]);
        let mut n = ns("a");
        n.metadata.namespace = Some("b".into());
        assert_eq!(fields(n), vec!["metadata.namespace"]);
        let mut n = ns("a");
        n.spec = Some(NamespaceSpec {
            finalizers: Some(vec!["a/b/c".into()]),
        });
        assert_eq!(fields(n), vec!["spec.finalizers"]);
        let errs = validate(&Object::Namespace(ns("team.a").into()));
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Invalid value: \"team.a\": must not contain dots"
        );
        let errs = validate_update(
            &Object::Namespace(ns("b").into()),
            &Object::Namespace(ns("a").into()),
        );
        assert_eq!(errs[0].field, "metadata.name");
    }
}
