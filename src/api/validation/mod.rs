//! Validation, mirroring kube-apiserver's `pkg/apis/*/validation` and
//! `k8s.io/apimachinery/pkg/api/validation`.
//!
//! [`validate`] and [`validate_update`] expect **defaulted** objects (run
//! [`super::defaults::apply`] first), as kube-apiserver decodes with defaulting before it
//! validates: an unset `restartPolicy` is reported as `Required value`, exactly as upstream
//! would if defaulting had not run.
//!
//! Each error is a [`FieldError`] with upstream's field path, type, rendered value and detail,
//! so the API server can build the same `Status` (reason `Invalid`, one cause per error) and
//! the same message kubectl prints.
//!
//! # Layout
//!
//! * [`names`] — syntax checks (DNS labels and subdomains, qualified names, label values).
//! * `meta` — `ObjectMeta`, labels, annotations, label selectors, immutability.
//! * `pod` — pod specs and templates, pod create and update.
//! * `apps` — Deployments and ReplicaSets.
//! * `namespace`, `node`, `event`, `lease` — the other kinds.

mod apps;
mod event;
mod lease;
mod meta;
pub mod names;
mod namespace;
mod node;
mod pod;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{Kind, Object};

pub use meta::validate_label_selector;

/// The kind of a field error, as `k8s.io/apimachinery/pkg/util/validation/field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    NotSupported,
    Duplicate,
    Forbidden,
    TooLong,
    TooMany,
    /// A reference to something that does not exist (a volume mount naming no volume).
    NotFound,
}

impl ErrorType {
    /// The `StatusCause` type (`metav1.CauseType`).
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::NotFound => "FieldValueNotFound",
        }
    }

    /// The human text of the type (`ErrorType.String()`).
    pub fn text(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::NotFound => "Not found",
        }
    }
}

/// One field error: a path and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub error_type: ErrorType,
    /// The field path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// The offending value as upstream renders it (`-1`, `"Foo"`), if any.
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    fn new(error_type: ErrorType, field: &Path, value: Option<String>, detail: &str) -> FieldError {
        FieldError {
            error_type,
            field: field.to_string(),
            value,
            detail: detail.to_string(),
        }
    }

    /// `field.Required`.
    pub fn required(field: &Path, detail: &str) -> FieldError {
        FieldError::new(ErrorType::Required, field, None, detail)
    }

    /// `field.Invalid`, with the value already rendered (see [`render`]).
    pub fn invalid(field: &Path, value: impl Into<String>, detail: &str) -> FieldError {
        FieldError::new(ErrorType::Invalid, field, Some(value.into()), detail)
    }

    /// `field.NotSupported`: the detail lists the supported values, quoted, in the given order.
    pub fn not_supported(field: &Path, value: impl Into<String>, supported: &[&str]) -> FieldError {
        let quoted: Vec<String> = supported.iter().map(|s| render::q(s)).collect();
        let detail = if quoted.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError::new(ErrorType::NotSupported, field, Some(value.into()), &detail)
    }

    /// `field.Duplicate`.
    pub fn duplicate(field: &Path, value: impl Into<String>) -> FieldError {
        FieldError::new(ErrorType::Duplicate, field, Some(value.into()), "")
    }

    /// `field.Forbidden`.
    pub fn forbidden(field: &Path, detail: &str) -> FieldError {
        FieldError::new(ErrorType::Forbidden, field, None, detail)
    }

    /// `field.TooLong` (the value is never shown).
    pub fn too_long(field: &Path, max_bytes: usize) -> FieldError {
        let unit = if max_bytes == 1 { "byte" } else { "bytes" };
        let detail = format!("may not be more than {max_bytes} {unit}");
        FieldError::new(ErrorType::TooLong, field, None, &detail)
    }

    /// `field.TooMany`.
    pub fn too_many(field: &Path, actual: usize, max: usize) -> FieldError {
        let unit = if max == 1 { "item" } else { "items" };
        let detail = format!("must have at most {max} {unit}");
        FieldError::new(ErrorType::TooMany, field, Some(actual.to_string()), &detail)
    }

    /// `field.NotFound`.
    pub fn not_found(field: &Path, value: impl Into<String>) -> FieldError {
        FieldError::new(ErrorType::NotFound, field, Some(value.into()), "")
    }

    /// The `StatusCause` reason: `FieldValueRequired`, `FieldValueInvalid`, …
    pub fn reason(&self) -> &'static str {
        self.error_type.reason()
    }

    /// The message without the field, as upstream's `ErrorBody`:
    /// `Invalid value: -1: must be greater than or equal to 0`, `Required value`.
    pub fn message(&self) -> String {
        let mut s = self.error_type.text().to_string();
        let shows_value = !matches!(
            self.error_type,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong
        );
        if shows_value {
            if let Some(v) = &self.value {
                s.push_str(": ");
                s.push_str(v);
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    /// `field.Error.Error()`: `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

impl std::error::Error for FieldError {}

/// The message of an `Invalid` status, as `apierrors.NewInvalid`:
/// `Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: …`, with several errors
/// in `[…, …]` and duplicates dropped (`ErrorList.ToAggregate`).
pub fn invalid_message(kind: Kind, name: &str, errs: &[FieldError]) -> String {
    let mut seen = BTreeSet::new();
    let msgs: Vec<String> = errs
        .iter()
        .map(|e| e.to_string())
        .filter(|m| seen.insert(m.clone()))
        .collect();
    let qualified_kind = match kind.group() {
        "" => kind.name().to_string(),
        g => format!("{}.{}", kind.name(), g),
    };
    let body = if msgs.len() == 1 {
        msgs[0].clone()
    } else {
        format!("[{}]", msgs.join(", "))
    };
    format!("{qualified_kind} {} is invalid: {body}", render::q(name))
}

/// A field path under construction (`field.Path`): `spec.containers[0].ports[1].name`.
///
/// Built lazily: a path is a reference to its parent plus one segment, on the stack of the
/// check that made it, and becomes a string only when an error is reported. Validation walks
/// every field of every object written, so formatting each path eagerly was once the API
/// server's largest cost per create, and a reference-counted node per segment (an
/// allocation and a free each) was still ~4 K instructions per pod create (callgrind on the
/// store benchmark; docs/performance.md). A child borrows its parent, so a chain kept in a
/// `let` names each step: `let c = path.child("containers"); let p = c.index(i);`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment<'a> {
    /// A field name: nearly always a literal, so not copied.
    Field(Cow<'static, str>),
    Index(usize),
    /// A map key, borrowed from the object being validated.
    Key(&'a str),
}

impl<'a> Path<'a> {
    /// A root path (`metadata`, `spec`).
    pub fn new(root: impl Into<Cow<'static, str>>) -> Path<'a> {
        Path {
            parent: None,
            segment: Segment::Field(root.into()),
        }
    }

    /// `parent.name`.
    pub fn child(&'a self, name: impl Into<Cow<'static, str>>) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Field(name.into()),
        }
    }

    /// `parent[i]`.
    pub fn index(&'a self, i: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Index(i),
        }
    }

    /// `parent[key]`.
    pub fn key(&'a self, key: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Key(key),
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut nodes = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            nodes.push(&p.segment);
            at = p.parent;
        }
        let mut first = true;
        for segment in nodes.into_iter().rev() {
            match segment {
                Segment::Field(name) if name.is_empty() => {}
                Segment::Field(name) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                    first = false;
                }
                Segment::Index(i) => write!(f, "[{i}]")?,
                Segment::Key(k) => write!(f, "[{k}]")?,
            }
        }
        Ok(())
    }
}

/// Rendering values the way upstream's `ErrorBody` (1.33) does: integers plainly, strings
/// with Go's `%q`, other values with Go's `%#v`.
pub mod render {
    use super::BTreeMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    /// A string, `%q`.
    pub fn q(s: &str) -> String {
        crate::api::selectors::go_quote(s)
    }

    /// `map[string]string{"a":"b", "c":"d"}` (`%#v`; Go sorts keys).
    pub fn string_map(m: Option<&BTreeMap<String, String>>) -> String {
        match m {
            None => "map[string]string(nil)".to_string(),
            Some(m) => {
                let entries: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{}:{}", q(k), q(v)))
                    .collect();
                format!("map[string]string{{{}}}", entries.join(", "))
            }
        }
    }

    /// `[]string{"a", "b"}`.
    pub fn string_list(items: &[String]) -> String {
        let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
        format!("[]string{{{}}}", quoted.join(", "))
    }

    /// `intstr.IntOrString{Type:1, IntVal:0, StrVal:"25%"}`; unset renders as the zero value.
    pub fn int_or_string(v: Option<&IntOrString>) -> String {
        let (ty, int, s) = match v {
            None => (0, 0, String::new()),
            Some(IntOrString::Int(i)) => (0, *i, String::new()),
            Some(IntOrString::String(s)) => (1, 0, s.clone()),
        };
        format!(
            "intstr.IntOrString{{Type:{ty}, IntVal:{int}, StrVal:{}}}",
            q(&s)
        )
    }

    /// `v1.LabelSelector{MatchLabels:…, MatchExpressions:…}`.
    pub fn label_selector(s: &LabelSelector) -> String {
        let exprs = match &s.match_expressions {
            None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
            Some(list) => {
                let items: Vec<String> = list
                    .iter()
                    .map(|r| {
                        format!(
                            "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                            q(&r.key),
                            q(&r.operator),
                            match &r.values {
                                None => "[]string(nil)".to_string(),
                                Some(v) => string_list(v),
                            }
                        )
                    })
                    .collect();
                format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
            }
        };
        format!(
            "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
            string_map(s.match_labels.as_ref()),
            exprs
        )
    }
}

/// Validate an object for create. Mirrors the kind's `Validate…` (see each module).
pub fn validate(obj: &Object) -> Vec<FieldError> {
    match obj {
        Object::Namespace(ns) => namespace::validate_namespace(ns),
        Object::Node(n) => node::validate_node(n),
        Object::Pod(p) => pod::validate_pod_create(p),
        Object::Event(e) => event::validate_event(e),
        Object::Lease(l) => lease::validate_lease(l),
        Object::Deployment(d) => apps::validate_deployment(d),
        Object::ReplicaSet(rs) => apps::validate_replica_set(rs),
    }
}

/// Validate an update of `old` to `new`: everything [`validate`] checks, plus what may not
/// change (names, namespaces, uids; Deployment/ReplicaSet selectors; most of a pod's spec).
///
/// Left to the API server, as upstream does it outside validation or before it: the
/// `resourceVersion` precondition, the `generation` bump, and copying `uid` and
/// `creationTimestamp` from the stored object (an empty `uid` or missing
/// `creationTimestamp` in `new` counts as unchanged here).
/// Validation of a write to the `status` subresource, whose metadata and spec are the stored
/// object's (`prepare_for_update` keeps them; they were validated when written). As
/// upstream's status strategies: `ValidatePodStatusUpdate`, `ValidateReplicaSetStatusUpdate`
/// and `ValidateDeploymentStatusUpdate` validate the metadata update and the status, not the
/// spec again; a Node's status update is validated as a whole (`nodeStatusStrategy` calls
/// `ValidateNodeUpdate`), as is any other kind here.
pub fn validate_status_update(new: &Object, old: &Object) -> Vec<FieldError> {
    match (new, old) {
        (Object::Pod(_), Object::Pod(_))
        | (Object::ReplicaSet(_), Object::ReplicaSet(_))
        | (Object::Deployment(_), Object::Deployment(_)) => {
            meta::validate_object_meta_update(new.meta(), old.meta(), &Path::new("metadata"))
        }
        _ => validate_update(new, old),
    }
}

pub fn validate_update(new: &Object, old: &Object) -> Vec<FieldError> {
    match (new, old) {
        (Object::Namespace(n), Object::Namespace(o)) => namespace::validate_namespace_update(n, o),
        (Object::Node(n), Object::Node(o)) => node::validate_node_update(n, o),
        (Object::Pod(n), Object::Pod(o)) => pod::validate_pod_update(n, o),
        (Object::Event(n), Object::Event(o)) => event::validate_event_update(n, o),
        (Object::Lease(n), Object::Lease(o)) => lease::validate_lease_update(n, o),
        (Object::Deployment(n), Object::Deployment(o)) => apps::validate_deployment_update(n, o),
        (Object::ReplicaSet(n), Object::ReplicaSet(o)) => apps::validate_replica_set_update(n, o),
        _ => vec![FieldError::invalid(
            &Path::new("kind"),
            render::q(new.kind().name()),
            "field is immutable",
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rendering of each error type, as `field.Error.Error()`.
    #[test]
    fn field_errors_render_like_apimachinery() {
        let spec = Path::new("spec");
        let p = spec.child("replicas");
        let cases = [
            (
                FieldError::invalid(&p, "-1", "must be greater than or equal to 0"),
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "FieldValueInvalid",
            ),
            (FieldError::required(&p, ""), "spec.replicas: Required value", "FieldValueRequired"),
            (
                FieldError::required(&p, "name or generateName is required"),
                "spec.replicas: Required value: name or generateName is required",
                "FieldValueRequired",
            ),
            (
                FieldError::not_supported(&p, render::q("Sometimes"), &["Always", "Never", "OnFailure"]),
                "spec.replicas: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\"",
                "FieldValueNotSupported",
            ),
            (FieldError::duplicate(&p, render::q("web")), "spec.replicas: Duplicate value: \"web\"", "FieldValueDuplicate"),
            (FieldError::forbidden(&p, "not allowed"), "spec.replicas: Forbidden: not allowed", "FieldValueForbidden"),
            (
                FieldError::too_long(&p, 262144),
                "spec.replicas: Too long: may not be more than 262144 bytes",
                "FieldValueTooLong",
            ),
            (FieldError::too_many(&p, 5, 3), "spec.replicas: Too many: 5: must have at most 3 items", "FieldValueTooMany"),
            (FieldError::not_found(&p, render::q("v")), "spec.replicas: Not found: \"v\"", "FieldValueNotFound"),
        ];
        for (err, text, reason) in cases {
            assert_eq!(err.to_string(), text);
            assert_eq!(err.reason(), reason);
        }
    }

    /// Paths and Go-style value rendering.
    #[test]
    fn paths_and_values_render() {
        // A child borrows its parent: the chain renders within one expression.
        assert_eq!(
            Path::new("spec")
                .child("containers")
                .index(0)
                .child("resources")
                .child("limits")
                .key("cpu")
                .to_string(),
            "spec.containers[0].resources.limits[cpu]"
        );
        let m: BTreeMap<String, String> = [
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "x".to_string()),
        ]
        .into();
        assert_eq!(
            render::string_map(Some(&m)),
            r#"map[string]string{"a":"x", "b":"2"}"#
        );
        assert_eq!(render::string_map(None), "map[string]string(nil)");
        assert_eq!(render::q("a\"b"), r#""a\"b""#);
        assert_eq!(
            render::int_or_string(None),
            r#"intstr.IntOrString{Type:0, IntVal:0, StrVal:""}"#
        );
    }

    /// Status messages, as `apierrors.NewInvalid`.
    #[test]
    fn invalid_message_aggregates() {
        let spec = Path::new("spec");
        let p = spec.child("replicas");
        let e = FieldError::invalid(&p, "-1", "must be greater than or equal to 0");
        assert_eq!(
            invalid_message(Kind::Deployment, "web", std::slice::from_ref(&e)),
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let r = FieldError::required(&Path::new("spec").child("containers"), "");
        assert_eq!(
            invalid_message(Kind::Pod, "p", &[r.clone(), r.clone(), e]),
            "Pod \"p\" is invalid: [spec.containers: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"
        );
    }
}
