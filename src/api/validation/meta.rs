//! `ObjectMeta`, labels, annotations and label selectors. Mirrors
//! `k8s.io/apimachinery/pkg/api/validation/objectmeta.go` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use super::names::{is_dns1123_label, is_qualified_name, is_valid_label_value, name_is_dns_label};
use super::{render, FieldError, Path};

/// A name validator (`ValidateNameFunc`): `(name, is_prefix) -> problems`.
pub(super) type NameFn = fn(&str, bool) -> Vec<String>;

/// `TotalAnnotationSizeLimitB`.
pub(super) const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `IsNegativeErrorMsg`.
pub(super) const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";

/// `FieldImmutableErrorMsg`.
pub(super) const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";

/// Mirrors `ValidateObjectMeta` in `apimachinery/pkg/api/validation/objectmeta.go`.
///
/// Unlike upstream (which generates the name before validating), a `generateName` without a
/// `name` is accepted: the API server may generate the name after validation.
pub(super) fn validate_object_meta(
    meta: &ObjectMeta,
    requires_namespace: bool,
    name_fn: NameFn,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    let name = meta.name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        for msg in name_fn(generate_name, true) {
            errs.push(FieldError::invalid(
                &path.child("generateName"),
                render::q(generate_name),
                &msg,
            ));
        }
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                &path.child("name"),
                "name or generateName is required",
            ));
        }
    } else {
        for msg in name_fn(name, false) {
            errs.push(FieldError::invalid(
                &path.child("name"),
                render::q(name),
                &msg,
            ));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if requires_namespace {
        if namespace.is_empty() {
            errs.push(FieldError::required(&path.child("namespace"), ""));
        } else {
            for msg in name_is_dns_label(namespace, false) {
                errs.push(FieldError::invalid(
                    &path.child("namespace"),
                    render::q(namespace),
                    &msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(g) = meta.generation {
        errs.extend(validate_nonnegative(g, &path.child("generation")));
    }
    errs.extend(validate_labels(meta.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        meta.owner_references.as_deref().unwrap_or(&[]),
        &path.child("ownerReferences"),
    ));
    for (i, f) in meta.finalizers.iter().flatten().enumerate() {
        errs.extend(validate_finalizer_name(
            f,
            &path.child("finalizers").index(i),
        ));
    }
    errs
}

/// Mirrors `ValidateObjectMetaUpdate` (see [`super::validate_update`] for what is left to
/// the API server).
pub(super) fn validate_object_meta_update(
    new: &ObjectMeta,
    old: &ObjectMeta,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    if s(&new.name) != s(&old.name) {
        errs.push(immutable(&path.child("name"), render::q(&s(&new.name))));
    }
    if s(&new.namespace) != s(&old.namespace) {
        errs.push(immutable(
            &path.child("namespace"),
            render::q(&s(&new.namespace)),
        ));
    }
    if !s(&new.uid).is_empty() && new.uid != old.uid {
        errs.push(immutable(&path.child("uid"), render::q(&s(&new.uid))));
    }
    if new.creation_timestamp.is_some() && new.creation_timestamp != old.creation_timestamp {
        let ts = new
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        errs.push(immutable(&path.child("creationTimestamp"), ts));
    }
    if old.deletion_timestamp.is_some() {
        // Finalizers cannot be added once the object is being deleted.
        let old_f = old.finalizers.clone().unwrap_or_default();
        for f in new.finalizers.iter().flatten() {
            if !old_f.contains(f) {
                errs.push(FieldError::forbidden(
                    &path.child("finalizers"),
                    &format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}", render::q(f)),
                ));
            }
        }
    }
    errs.extend(validate_labels(new.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        new.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        new.owner_references.as_deref().unwrap_or(&[]),
        &path.child("ownerReferences"),
    ));
    errs
}

/// `ValidateImmutableField`'s error.
pub(super) fn immutable(path: &Path, rendered_new: String) -> FieldError {
    FieldError::invalid(path, rendered_new, FIELD_IMMUTABLE_ERROR_MSG)
}

/// `ValidateNonnegativeField`.
pub(super) fn validate_nonnegative(value: i64, path: &Path) -> Vec<FieldError> {
    if value < 0 {
        vec![FieldError::invalid(
            path,
            value.to_string(),
            IS_NEGATIVE_ERROR_MSG,
        )]
    } else {
        Vec::new()
    }
}

/// `ValidateLabelName`: a qualified name.
pub(super) fn validate_label_name(name: &str, path: &Path) -> Vec<FieldError> {
    is_qualified_name(name)
        .into_iter()
        .map(|msg| FieldError::invalid(path, render::q(name), &msg))
        .collect()
}

/// `ValidateLabels`: every key a qualified name, every value a label value. Errors point at
/// the map itself (`metadata.labels`), as upstream.
pub(super) fn validate_labels(
    labels: Option<&BTreeMap<String, String>>,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(validate_label_name(k, path));
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid(path, render::q(v), &msg));
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitively), total size ≤ 256 KiB.
pub(super) fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0;
    // `strings.ToLower` of each key: an ASCII key (any valid one) is lower-cased into this
    // buffer, without `to_lowercase`'s allocation and per-char Unicode mapping.
    let mut buf = [0u8; 320];
    for (k, v) in annotations.into_iter().flatten() {
        let lower: std::borrow::Cow<'_, str> = if k.len() <= buf.len() && k.is_ascii() {
            let b = &mut buf[..k.len()];
            for (d, c) in b.iter_mut().zip(k.bytes()) {
                *d = c.to_ascii_lowercase();
            }
            match std::str::from_utf8(b) {
                Ok(s) => s.into(),
                Err(_) => k.to_lowercase().into(),
            }
        } else {
            k.to_lowercase().into()
        };
        for msg in is_qualified_name(&lower) {
            errs.push(FieldError::invalid(path, render::q(k), &msg));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// `ValidateOwnerReferences`: each reference complete, at most one controller.
fn validate_owner_references(refs: &[OwnerReference], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        let version = r.api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("apiVersion"),
                render::q(&r.api_version),
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("kind"),
                render::q(&r.kind),
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("name"),
                render::q(&r.name),
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("uid"),
                render::q(&r.uid),
                "uid must not be empty",
            ));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    "[]v1.OwnerReference{...}",
                    &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// `ValidateFinalizerName`: a qualified name; unqualified names must be standard ones.
pub(super) fn validate_finalizer_name(name: &str, path: &Path) -> Vec<FieldError> {
    let mut errs: Vec<FieldError> = is_qualified_name(name)
        .into_iter()
        .map(|msg| FieldError::invalid(path, render::q(name), &msg))
        .collect();
    let standard = ["kubernetes", "orphan", "foregroundDeletion"];
    if errs.is_empty() && !name.contains('/') && !standard.contains(&name) {
        errs.push(FieldError::invalid(
            path,
            render::q(name),
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
    errs
}

/// `ValidateDNS1123Label` as a field error.
pub(super) fn validate_dns1123_label(value: &str, path: &Path) -> Vec<FieldError> {
    is_dns1123_label(value)
        .into_iter()
        .map(|msg| FieldError::invalid(path, render::q(value), &msg))
        .collect()
}

/// Validate a `metav1.LabelSelector` as part of an object. Mirrors `ValidateLabelSelector`
/// in `apimachinery/pkg/apis/meta/v1/validation` (with invalid label values rejected).
pub fn validate_label_selector(selector: &LabelSelector, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_labels(selector.match_labels.as_ref(), &path.child("matchLabels"));
    let exprs = path.child("matchExpressions");
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let p = exprs.index(i);
        let values = expr.values.as_deref().unwrap_or(&[]);
        match expr.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(FieldError::invalid(
                &p.child("operator"),
                render::q(op),
                "not a valid selector operator",
            )),
        }
        errs.extend(validate_label_name(&expr.key, &p.child("key")));
        for (j, v) in values.iter().enumerate() {
            for msg in is_valid_label_value(v) {
                errs.push(FieldError::invalid(
                    &p.child("values").index(j),
                    render::q(v),
                    &msg,
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::super::names::name_is_dns_subdomain;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(Into::into),
            ..Default::default()
        }
    }

    fn fields(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.field.clone()).collect()
    }

    /// One case per ObjectMeta rule: the field path of the error (or none).
    #[test]
    fn object_meta_rules() {
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        type Case = (&'static str, ObjectMeta, bool, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            ("valid", meta("web", Some("default")), true, vec![]),
            (
                "name required",
                meta("", Some("default")),
                true,
                vec!["metadata.name"],
            ),
            (
                "generateName alone is enough",
                ObjectMeta {
                    generate_name: Some("web-".into()),
                    namespace: Some("d".into()),
                    ..Default::default()
                },
                true,
                vec![],
            ),
            (
                "bad generateName",
                ObjectMeta {
                    generate_name: Some("Web-".into()),
                    namespace: Some("d".into()),
                    ..Default::default()
                },
                true,
                vec!["metadata.generateName"],
            ),
            (
                "bad name",
                meta("Web_1", Some("default")),
                true,
                vec!["metadata.name"],
            ),
            (
                "namespace required",
                meta("web", None),
                true,
                vec!["metadata.namespace"],
            ),
            (
                "namespace is a label",
                meta("web", Some("a.b")),
                true,
                vec!["metadata.namespace"],
            ),
            (
                "namespace forbidden",
                meta("n1", Some("default")),
                false,
                vec!["metadata.namespace"],
            ),
            (
                "label key",
                ObjectMeta {
                    labels: Some([("-a".to_string(), "b".to_string())].into()),
                    ..meta("w", Some("d"))
                },
                true,
                vec!["metadata.labels"],
            ),
            (
                "label value",
                ObjectMeta {
                    labels: Some([("a".to_string(), "b c".to_string())].into()),
                    ..meta("w", Some("d"))
                },
                true,
                vec!["metadata.labels"],
            ),
            (
                "label key prefix",
                ObjectMeta {
                    labels: Some([("Ex.com/a".to_string(), "b".to_string())].into()),
                    ..meta("w", Some("d"))
                },
                true,
                vec!["metadata.labels"],
            ),
            (
                "annotation key",
                ObjectMeta {
                    annotations: Some([("a b".to_string(), "".to_string())].into()),
                    ..meta("w", Some("d"))
                },
                true,
                vec!["metadata.annotations"],
            ),
            (
                "annotation size",
                ObjectMeta {
                    annotations: Some([("a".to_string(), big)].into()),
                    ..meta("w", Some("d"))
                },
                true,
                vec!["metadata.annotations"],
            ),
            (
                "generation",
                ObjectMeta {
                    generation: Some(-1),
                    ..meta("w", Some("d"))
                },
                true,
                vec!["metadata.generation"],
            ),
            (
                "owner reference incomplete",
                ObjectMeta {
                    owner_references: Some(vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        ..Default::default()
                    }]),
                    ..meta("w", Some("d"))
                },
                true,
                vec![
                    "metadata.ownerReferences.name",
                    "metadata.ownerReferences.uid",
                ],
            ),
            (
                "finalizer",
                ObjectMeta {
                    finalizers: Some(vec!["custom".into()]),
                    ..meta("w", Some("d"))
                },
                true,
                vec!["metadata.finalizers[0]"],
            ),
        ];
        for (name, m, ns, want) in cases {
            let errs = validate_object_meta(&m, ns, name_is_dns_subdomain, &Path::new("metadata"));
            assert_eq!(fields(&errs), want, "{name}: {errs:?}");
        }
        let errs = validate_object_meta(
            &meta("", Some("d")),
            true,
            name_is_dns_subdomain,
            &Path::new("metadata"),
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        let errs = validate_object_meta(
            &meta("Web", Some("d")),
            true,
            name_is_dns_subdomain,
            &Path::new("metadata"),
        );
        assert_eq!(errs[0].to_string(), "metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
        let errs = validate_object_meta(
            &meta("n", Some("d")),
            false,
            name_is_dns_subdomain,
            &Path::new("metadata"),
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
    }

    /// Names and namespaces may not change; uid/creationTimestamp left empty count as unchanged.
    /// Annotation keys are checked lower-cased (`strings.ToLower`), and the error shows the
    /// key as written: upper-case ASCII keys pass, a non-ASCII key that lower-cases to
    /// something else still fails, a key longer than the lower-casing buffer still works.
    #[test]
    fn annotation_keys_are_checked_lower_cased() {
        let check = |key: &str| {
            let annotations: BTreeMap<String, String> = [(key.to_string(), "v".to_string())].into();
            validate_annotations(
                Some(&annotations),
                &Path::new("metadata").child("annotations"),
            )
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
        };
        assert!(check("kubectl.kubernetes.io/restartedAt").is_empty());
        assert!(check("Example.COM/My-Key").is_empty());
        let errs = check("Bad_Prefix/key");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("metadata.annotations: Invalid value: \"Bad_Prefix/key\": prefix part a lowercase RFC 1123 subdomain"), "{errs:?}");
        assert_eq!(check("Äb").len(), 1);
        let long_prefix = format!("{}.com/k", "A".repeat(330));
        assert_eq!(
            check(&long_prefix),
            vec![
                "metadata.annotations: Invalid value: \"".to_string()
                    + &long_prefix
                    + "\": prefix part must be no more than 253 characters"
            ]
        );
    }

    #[test]
    fn object_meta_update_rules() {
        let old = ObjectMeta {
            uid: Some("u1".into()),
            ..meta("web", Some("default"))
        };
        assert!(validate_object_meta_update(
            &meta("web", Some("default")),
            &old,
            &Path::new("metadata")
        )
        .is_empty());
        let errs = validate_object_meta_update(
            &meta("web2", Some("default")),
            &old,
            &Path::new("metadata"),
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Invalid value: \"web2\": field is immutable"
        );
        let errs =
            validate_object_meta_update(&meta("web", Some("other")), &old, &Path::new("metadata"));
        assert_eq!(fields(&errs), vec!["metadata.namespace"]);
        let changed_uid = ObjectMeta {
            uid: Some("u2".into()),
            ..meta("web", Some("default"))
        };
        assert_eq!(
            fields(&validate_object_meta_update(
                &changed_uid,
                &old,
                &Path::new("metadata")
            )),
            vec!["metadata.uid"]
        );
    }

    /// Selector rules: operators, values per operator, keys, values.
    #[test]
    fn label_selector_rules() {
        let expr = |key: &str, op: &str, values: Option<Vec<&str>>| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: values.map(|v| v.into_iter().map(Into::into).collect()),
            }]),
            ..Default::default()
        };
        let spec = Path::new("spec");
        let p = spec.child("selector");
        let cases = [
            (expr("a", "In", Some(vec!["x"])), vec![]),
            (
                expr("a", "In", None),
                vec!["spec.selector.matchExpressions[0].values"],
            ),
            (
                expr("a", "Exists", Some(vec!["x"])),
                vec!["spec.selector.matchExpressions[0].values"],
            ),
            (
                expr("a", "Equals", None),
                vec!["spec.selector.matchExpressions[0].operator"],
            ),
            (
                expr("-a", "Exists", None),
                vec!["spec.selector.matchExpressions[0].key"],
            ),
            (
                expr("a", "In", Some(vec!["-x"])),
                vec!["spec.selector.matchExpressions[0].values[0]"],
            ),
            (
                LabelSelector {
                    match_labels: Some([("a".to_string(), "-".to_string())].into()),
                    ..Default::default()
                },
                vec!["spec.selector.matchLabels"],
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(fields(&validate_label_selector(&sel, &p)), want, "{sel:?}");
        }
    }
}
