//! Core/v1 Events. Mirrors `legacyValidateEvent` in `pkg/apis/core/validation/events.go`:
//! for requests through `/api/v1`, `ValidateEventCreate` and `ValidateEventUpdate` run only
//! the legacy checks (the strict ones apply to `events.k8s.io/v1`, which kubeactor does not
//! serve).

use k8s_openapi::api::core::v1::Event;

use super::meta::{validate_annotations, validate_labels};
use super::names::{is_dns1123_subdomain, is_qualified_name};
use super::{render, FieldError, Path};

const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
const ACTION_LENGTH_LIMIT: usize = 128;
const REASON_LENGTH_LIMIT: usize = 128;
const NOTE_LENGTH_LIMIT: usize = 1024;

/// Validate an Event for create.
///
/// Beyond `legacyValidateEvent`, the name is required (upstream's store rejects a nameless
/// create before validation) and labels and annotations are checked.
pub(super) fn validate_event(e: &Event) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = Path::new("metadata");
    if e.metadata.name.as_deref().unwrap_or("").is_empty()
        && e.metadata.generate_name.as_deref().unwrap_or("").is_empty()
    {
        errs.push(FieldError::required(
            &meta.child("name"),
            "name or generateName is required",
        ));
    }
    errs.extend(validate_labels(
        e.metadata.labels.as_ref(),
        &meta.child("labels"),
    ));
    errs.extend(validate_annotations(
        e.metadata.annotations.as_ref(),
        &meta.child("annotations"),
    ));
    errs.extend(legacy_validate_event(e));
    errs
}

/// Validate an Event update (the legacy checks on the new event).
pub(super) fn validate_event_update(new: &Event, old: &Event) -> Vec<FieldError> {
    let mut errs = super::meta::validate_object_meta_update(
        &new.metadata,
        &old.metadata,
        &Path::new("metadata"),
    );
    errs.extend(legacy_validate_event(new));
    errs
}

/// Mirrors `legacyValidateEvent`: the namespaces agree; "new" events (with `eventTime`)
/// carry `reportingComponent`, `reportingInstance`, `action` and `reason` within limits.
fn legacy_validate_event(e: &Event) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = e.metadata.namespace.as_deref().unwrap_or("");
    let involved_ns = e.involved_object.namespace.as_deref().unwrap_or("");
    let ns_mismatch = || {
        FieldError::invalid(
            &Path::new("involvedObject").child("namespace"),
            render::q(involved_ns),
            "does not match event.namespace",
        )
    };
    let len = |v: &Option<String>| v.as_deref().map_or(0, str::len);
    if e.event_time.is_none() {
        if involved_ns.is_empty() {
            // Cluster-scoped objects: the event lives in "" or "default".
            if !ns.is_empty() && ns != "default" {
                errs.push(ns_mismatch());
            }
        } else if ns != involved_ns {
            errs.push(ns_mismatch());
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(ns_mismatch());
        }
        // Upstream names this field by its internal name, `reportingController`.
        let rc_path = Path::new("reportingController");
        let rc = e.reporting_component.as_deref().unwrap_or("");
        if rc.is_empty() {
            errs.push(FieldError::required(&rc_path, ""));
        }
        for msg in is_qualified_name(rc) {
            errs.push(FieldError::invalid(&rc_path, render::q(rc), &msg));
        }
        for (field, value, limit) in [
            (
                "reportingInstance",
                &e.reporting_instance,
                REPORTING_INSTANCE_LENGTH_LIMIT,
            ),
            ("action", &e.action, ACTION_LENGTH_LIMIT),
            ("reason", &e.reason, REASON_LENGTH_LIMIT),
        ] {
            if len(value) == 0 {
                errs.push(FieldError::required(&Path::new(field), ""));
            }
            if len(value) > limit {
                errs.push(FieldError::invalid(
                    &Path::new(field),
                    "\"\"",
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
        if len(&e.message) > NOTE_LENGTH_LIMIT {
            errs.push(FieldError::invalid(
                &Path::new("message"),
                "\"\"",
                &format!("can have at most {NOTE_LENGTH_LIMIT} characters"),
            ));
        }
    }
    for msg in is_dns1123_subdomain(ns) {
        errs.push(FieldError::invalid(
            &Path::new("namespace"),
            render::q(ns),
            &msg,
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::super::validate;
    use super::*;
    use crate::api::Object;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    fn event(ns: &str, involved_ns: Option<&str>) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some("web.1".into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                namespace: involved_ns.map(Into::into),
                ..Default::default()
            },
            reason: Some("Scheduled".into()),
            ..Default::default()
        }
    }

    fn fields(e: Event) -> Vec<String> {
        validate(&Object::Event(e.into()))
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    /// One case per legacy Event rule.
    #[test]
    fn event_rules() {
        assert!(fields(event("default", Some("default"))).is_empty());
        assert!(
            fields(event("default", None)).is_empty(),
            "node events may live in default"
        );
        assert!(
            fields(event("", None)).len() == 1,
            "but the namespace must still be a subdomain"
        );
        assert_eq!(
            fields(event("a", Some("b"))),
            vec!["involvedObject.namespace"]
        );
        assert_eq!(fields(event("a", None)), vec!["involvedObject.namespace"]);
        let mut e = event("default", Some("default"));
        e.metadata.name = None;
        assert_eq!(fields(e), vec!["metadata.name"]);

        // "New" events, with eventTime, need the reporting fields.
        let mut e = event("default", Some("default"));
        e.event_time = Some(MicroTime("2025-01-01T00:00:00Z".parse().unwrap()));
        // An empty reportingController is also not a qualified name (two messages), as upstream.
        assert_eq!(
            fields(e.clone()),
            vec![
                "reportingController",
                "reportingController",
                "reportingController",
                "reportingInstance",
                "action"
            ]
        );
        e.reporting_component = Some("kubelet".into());
        e.reporting_instance = Some("node-1".into());
        e.action = Some("Pulling".into());
        assert!(fields(e.clone()).is_empty());
        e.reason = Some("x".repeat(129));
        assert_eq!(fields(e.clone()), vec!["reason"]);
        let errs = validate(&Object::Event(event("a", Some("b")).into()));
        assert_eq!(
            errs[0].to_string(),
            "involvedObject.namespace: Invalid value: \"b\": does not match event.namespace"
        );
    }
}
