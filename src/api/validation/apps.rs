//! Deployments and ReplicaSets. Mirrors `pkg/apis/apps/validation/validation.go`
//! (`ValidateDeployment`, `ValidateDeploymentSpec`, `ValidateReplicaSet`, …) and the
//! selector immutability check of `pkg/registry/apps/{deployment,replicaset}/strategy.go`.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{
    immutable, validate_nonnegative, validate_object_meta, validate_object_meta_update,
};
use super::names::{is_valid_percent, name_is_dns_subdomain};
use super::pod::validate_pod_template_spec;
use super::{render, validate_label_selector, FieldError, Path};
use crate::api::selectors::LabelSelector as Selector;

/// Mirrors `ValidateDeployment`.
pub(super) fn validate_deployment(d: &Deployment) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        &d.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_deployment_spec(
        d.spec.as_ref().unwrap_or(&Default::default()),
        &Path::new("spec"),
    ));
    errs
}

/// Mirrors `ValidateDeploymentUpdate` plus the strategy's selector immutability.
pub(super) fn validate_deployment_update(new: &Deployment, old: &Deployment) -> Vec<FieldError> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let empty = DeploymentSpec::default();
    let (ns, os) = (
        new.spec.as_ref().unwrap_or(&empty),
        old.spec.as_ref().unwrap_or(&empty),
    );
    errs.extend(validate_deployment_spec(ns, &Path::new("spec")));
    if ns.selector != os.selector {
        errs.push(immutable(
            &Path::new("spec").child("selector"),
            render::label_selector(&ns.selector),
        ));
    }
    errs
}

/// Mirrors `ValidateReplicaSet`.
pub(super) fn validate_replica_set(rs: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        &rs.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    errs.extend(validate_replica_set_spec(
        rs.spec.as_ref().unwrap_or(&Default::default()),
        &Path::new("spec"),
    ));
    errs
}

/// Mirrors `ValidateReplicaSetUpdate` plus the strategy's selector immutability.
pub(super) fn validate_replica_set_update(new: &ReplicaSet, old: &ReplicaSet) -> Vec<FieldError> {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let empty = ReplicaSetSpec::default();
    let (ns, os) = (
        new.spec.as_ref().unwrap_or(&empty),
        old.spec.as_ref().unwrap_or(&empty),
    );
    errs.extend(validate_replica_set_spec(ns, &Path::new("spec")));
    if ns.selector != os.selector {
        errs.push(immutable(
            &Path::new("spec").child("selector"),
            render::label_selector(&ns.selector),
        ));
    }
    errs
}

/// A selector with neither labels nor expressions. `k8s-openapi` cannot tell a missing
/// selector from `{}`; an absent one deserializes to this, so it is reported as missing.
fn selector_is_unset(s: &LabelSelector) -> bool {
    s.match_labels.is_none() && s.match_expressions.is_none()
}

/// The selector checks shared by Deployments and ReplicaSets, then the template.
fn validate_selector_and_template(
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let sel_path = path.child("selector");
    if selector_is_unset(selector) {
        errs.push(FieldError::required(&sel_path, ""));
    } else {
        errs.extend(validate_label_selector(selector, &sel_path));
        let n = selector.match_labels.as_ref().map_or(0, |m| m.len())
            + selector.match_expressions.as_ref().map_or(0, |e| e.len());
        if n == 0 {
            // Upstream says "deployment" for ReplicaSets too.
            errs.push(FieldError::invalid(
                &sel_path,
                render::label_selector(selector),
                "empty selector is invalid for deployment",
            ));
        }
    }
    let parsed = if selector_is_unset(selector) {
        Ok(Selector::nothing())
    } else {
        Selector::from_api(selector)
    };
    match parsed {
        Err(_) => errs.push(FieldError::invalid(
            &sel_path,
            render::label_selector(selector),
            "invalid label selector",
        )),
        Ok(sel) => errs.extend(validate_pod_template_spec_for_replica_set(
            template,
            &sel,
            &path.child("template"),
        )),
    }
    errs
}

/// Mirrors `ValidatePodTemplateSpecForReplicaSet`: the selector matches the template's
/// labels, the template is a valid pod template, restarts are `Always`, no deadline.
fn validate_pod_template_spec_for_replica_set(
    template: &PodTemplateSpec,
    selector: &Selector,
    path: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if !selector.is_empty() && !selector.matches_opt(labels) {
        errs.push(FieldError::invalid(
            &path.child("metadata").child("labels"),
            render::string_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(validate_pod_template_spec(template, path));
    let spec = template.spec.as_ref();
    let restart = spec.and_then(|s| s.restart_policy.as_deref()).unwrap_or("");
    if restart != "Always" {
        errs.push(FieldError::not_supported(
            &path.child("spec").child("restartPolicy"),
            render::q(restart),
            &["Always"],
        ));
    }
    if spec.is_some_and(|s| s.active_deadline_seconds.is_some()) {
        errs.push(FieldError::forbidden(
            &path.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    errs
}

/// Mirrors `ValidateDeploymentSpec`.
fn validate_deployment_spec(spec: &DeploymentSpec, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_nonnegative(spec.replicas.unwrap_or(0) as i64, &path.child("replicas"));
    errs.extend(validate_selector_and_template(
        &spec.selector,
        &spec.template,
        path,
    ));
    errs.extend(validate_deployment_strategy(
        &spec.strategy.clone().unwrap_or_default(),
        &path.child("strategy"),
    ));
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(validate_nonnegative(
        min_ready as i64,
        &path.child("minReadySeconds"),
    ));
    if let Some(limit) = spec.revision_history_limit {
        errs.extend(validate_nonnegative(
            limit as i64,
            &path.child("revisionHistoryLimit"),
        ));
    }
    if let Some(pds) = spec.progress_deadline_seconds {
        let p = path.child("progressDeadlineSeconds");
        errs.extend(validate_nonnegative(pds as i64, &p));
        if pds <= min_ready {
            errs.push(FieldError::invalid(
                &p,
                pds.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// Mirrors `ValidateReplicaSetSpec`.
fn validate_replica_set_spec(spec: &ReplicaSetSpec, path: &Path) -> Vec<FieldError> {
    let mut errs = validate_nonnegative(spec.replicas.unwrap_or(0) as i64, &path.child("replicas"));
    errs.extend(validate_nonnegative(
        spec.min_ready_seconds.unwrap_or(0) as i64,
        &path.child("minReadySeconds"),
    ));
    let template = spec.template.clone().unwrap_or_default();
    errs.extend(validate_selector_and_template(
        &spec.selector,
        &template,
        path,
    ));
    errs
}

fn render_strategy(s: &DeploymentStrategy) -> String {
    let ru = match &s.rolling_update {
        None => "(*apps.RollingUpdateDeployment)(nil)".to_string(),
        Some(r) => format!(
            "&apps.RollingUpdateDeployment{{MaxUnavailable:{}, MaxSurge:{}}}",
            render::int_or_string(r.max_unavailable.as_ref()),
            render::int_or_string(r.max_surge.as_ref())
        ),
    };
    format!(
        "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{ru}}}",
        render::q(s.type_.as_deref().unwrap_or(""))
    )
}

/// Mirrors `ValidateDeploymentStrategy`.
fn validate_deployment_strategy(s: &DeploymentStrategy, path: &Path) -> Vec<FieldError> {
    match s.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if s.rolling_update.is_some() {
                return vec![FieldError::forbidden(
                    &path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                )];
            }
            Vec::new()
        }
        "RollingUpdate" => match &s.rolling_update {
            None => vec![FieldError::required(
                &path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )],
            Some(ru) => validate_rolling_update_deployment(ru, &path.child("rollingUpdate")),
        },
        _ => vec![FieldError::not_supported(
            path,
            render_strategy(s),
            &["Recreate", "RollingUpdate"],
        )],
    }
}

/// `getPercentValue`: the number of a valid percent string.
fn percent_value(v: Option<&IntOrString>) -> Option<i64> {
    match v {
        Some(IntOrString::String(s)) if is_valid_percent(s).is_empty() => {
            s.trim_end_matches('%').parse().ok()
        }
        _ => None,
    }
}

/// `getIntOrPercentValue`.
fn int_or_percent_value(v: Option<&IntOrString>) -> i64 {
    if let Some(p) = percent_value(v) {
        return p;
    }
    match v {
        Some(IntOrString::Int(i)) => *i as i64,
        Some(IntOrString::String(s)) => s.parse().unwrap_or(0),
        None => 0,
    }
}

/// Mirrors `ValidatePositiveIntOrPercent`.
fn validate_positive_int_or_percent(v: Option<&IntOrString>, path: &Path) -> Vec<FieldError> {
    match v {
        Some(IntOrString::String(s)) => is_valid_percent(s)
            .into_iter()
            .map(|msg| FieldError::invalid(path, render::int_or_string(v), &msg))
            .collect(),
        Some(IntOrString::Int(i)) => validate_nonnegative(*i as i64, path),
        None => Vec::new(),
    }
}

/// Mirrors `ValidateRollingUpdateDeployment`.
fn validate_rolling_update_deployment(
    ru: &RollingUpdateDeployment,
    path: &Path,
) -> Vec<FieldError> {
    let (mu, ms) = (ru.max_unavailable.as_ref(), ru.max_surge.as_ref());
    let mu_path = path.child("maxUnavailable");
    let mut errs = validate_positive_int_or_percent(mu, &mu_path);
    errs.extend(validate_positive_int_or_percent(
        ms,
        &path.child("maxSurge"),
    ));
    if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
        errs.push(FieldError::invalid(
            &mu_path,
            render::int_or_string(mu),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    if percent_value(mu).is_some_and(|p| p > 100) {
        errs.push(FieldError::invalid(
            &mu_path,
            render::int_or_string(mu),
            "must not be greater than 100%",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::super::{validate, validate_update};
    use super::*;
    use crate::api::{defaults, Object};
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn labels(k: &str, v: &str) -> Option<std::collections::BTreeMap<String, String>> {
        Some([(k.to_string(), v.to_string())].into())
    }

    fn template() -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: labels("app", "web"),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    /// A valid, defaulted Deployment selecting `app=web`.
    fn deployment() -> Deployment {
        let mut obj = Object::from(Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                selector: LabelSelector {
                    match_labels: labels("app", "web"),
                    ..Default::default()
                },
                template: template(),
                ..Default::default()
            }),
            status: None,
        });
        defaults::apply(&mut obj);
        match obj {
            Object::Deployment(d) => std::sync::Arc::unwrap_or_clone(d),
            _ => unreachable!(),
        }
    }

    fn replica_set() -> ReplicaSet {
        let mut obj = Object::from(ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                selector: LabelSelector {
                    match_labels: labels("app", "web"),
                    ..Default::default()
                },
                template: Some(template()),
                ..Default::default()
            }),
            status: None,
        });
        defaults::apply(&mut obj);
        match obj {
            Object::ReplicaSet(rs) => std::sync::Arc::unwrap_or_clone(rs),
            _ => unreachable!(),
        }
    }

    fn spec(d: &mut Deployment) -> &mut DeploymentSpec {
        d.spec.as_mut().unwrap()
    }

    fn ru(d: &mut Deployment) -> &mut RollingUpdateDeployment {
        spec(d)
            .strategy
            .as_mut()
            .unwrap()
            .rolling_update
            .as_mut()
            .unwrap()
    }

    fn pct(s: &str) -> Option<IntOrString> {
        Some(IntOrString::String(s.into()))
    }

    /// One case per Deployment rule: the mutation and the field paths of the errors.
    #[test]
    fn deployment_rules() {
        assert_eq!(
            validate(&Object::Deployment(deployment().into())),
            vec![],
            "the base deployment is valid"
        );
        type Mutation = fn(&mut Deployment);
        let cases: Vec<(&str, Mutation, Vec<&str>)> = vec![
            (
                "replicas",
                |d| spec(d).replicas = Some(-1),
                vec!["spec.replicas"],
            ),
            (
                "selector required",
                |d| spec(d).selector = LabelSelector::default(),
                // A missing selector matches nothing, so upstream also reports the labels.
                vec!["spec.selector", "spec.template.metadata.labels"],
            ),
            (
                "selector non-empty",
                |d| {
                    spec(d).selector = LabelSelector {
                        match_labels: Some(Default::default()),
                        ..Default::default()
                    }
                },
                vec!["spec.selector"],
            ),
            (
                "selector matches template",
                |d| spec(d).selector.match_labels = labels("app", "db"),
                vec!["spec.template.metadata.labels"],
            ),
            (
                "restart policy Always",
                |d| spec(d).template.spec.as_mut().unwrap().restart_policy = Some("Never".into()),
                vec!["spec.template.spec.restartPolicy"],
            ),
            (
                "no activeDeadlineSeconds",
                |d| {
                    spec(d)
                        .template
                        .spec
                        .as_mut()
                        .unwrap()
                        .active_deadline_seconds = Some(10)
                },
                vec!["spec.template.spec.activeDeadlineSeconds"],
            ),
            (
                "template pod spec",
                |d| spec(d).template.spec.as_mut().unwrap().containers[0].image = None,
                vec!["spec.template.spec.containers[0].image"],
            ),
            (
                "template labels",
                |d| {
                    spec(d).template.metadata.as_mut().unwrap().labels = Some(
                        [
                            ("app".to_string(), "web".to_string()),
                            ("-x".to_string(), "y".to_string()),
                        ]
                        .into(),
                    )
                },
                vec!["spec.template.labels"],
            ),
            (
                "both zero",
                |d| {
                    ru(d).max_surge = Some(IntOrString::Int(0));
                    ru(d).max_unavailable = pct("0%");
                },
                vec!["spec.strategy.rollingUpdate.maxUnavailable"],
            ),
            (
                "percent over 100",
                |d| ru(d).max_unavailable = pct("101%"),
                vec!["spec.strategy.rollingUpdate.maxUnavailable"],
            ),
            (
                "bad percent",
                |d| ru(d).max_surge = pct("x"),
                vec!["spec.strategy.rollingUpdate.maxSurge"],
            ),
            (
                "negative int",
                |d| ru(d).max_surge = Some(IntOrString::Int(-1)),
                vec!["spec.strategy.rollingUpdate.maxSurge"],
            ),
            (
                "Recreate without rollingUpdate",
                |d| spec(d).strategy.as_mut().unwrap().type_ = Some("Recreate".into()),
                vec!["spec.strategy.rollingUpdate"],
            ),
            (
                "strategy type",
                |d| spec(d).strategy.as_mut().unwrap().type_ = Some("Canary".into()),
                vec!["spec.strategy"],
            ),
            (
                "revisionHistoryLimit",
                |d| spec(d).revision_history_limit = Some(-1),
                vec!["spec.revisionHistoryLimit"],
            ),
            (
                "minReadySeconds",
                |d| spec(d).min_ready_seconds = Some(-1),
                vec!["spec.minReadySeconds"],
            ),
            (
                "progressDeadlineSeconds above minReadySeconds",
                |d| spec(d).min_ready_seconds = Some(600),
                vec!["spec.progressDeadlineSeconds"],
            ),
            (
                "name",
                |d| d.metadata.name = Some("Web".into()),
                vec!["metadata.name"],
            ),
        ];
        for (name, mutate, want) in cases {
            let mut d = deployment();
            mutate(&mut d);
            let errs = validate(&Object::Deployment(d.into()));
            let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, want, "{name}: {errs:#?}");
        }
    }

    /// The messages kubectl users see for the headline Deployment rules.
    #[test]
    fn deployment_messages() {
        let msgs = |f: fn(&mut Deployment)| {
            let mut d = deployment();
            f(&mut d);
            validate(&Object::Deployment(d.into()))
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            msgs(|d| spec(d).replicas = Some(-1)),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
        );
        assert_eq!(
            msgs(|d| spec(d).template.metadata.as_mut().unwrap().labels = labels("app", "x")),
            vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"]
        );
        assert_eq!(
            msgs(|d| spec(d).template.spec.as_mut().unwrap().restart_policy = Some("Never".into())),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );
        assert_eq!(
            msgs(|d| {
                ru(d).max_surge = Some(IntOrString::Int(0));
                ru(d).max_unavailable = Some(IntOrString::Int(0));
            }),
            vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0"]
        );
        assert_eq!(
            msgs(|d| spec(d).min_ready_seconds = Some(600)),
            vec!["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"]
        );
    }

    /// The selector is immutable; replicas and the template may change.
    #[test]
    fn deployment_update_rules() {
        let old = deployment();
        let mut new = old.clone();
        spec(&mut new).replicas = Some(5);
        spec(&mut new).template.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert_eq!(
            validate_update(
                &Object::Deployment(new.into()),
                &Object::Deployment(old.clone().into())
            ),
            vec![]
        );

        let mut new = old.clone();
        spec(&mut new).selector.match_labels = labels("app", "db");
        spec(&mut new).template.metadata.as_mut().unwrap().labels = labels("app", "db");
        let errs = validate_update(
            &Object::Deployment(new.into()),
            &Object::Deployment(old.into()),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.selector");
        assert!(errs[0].to_string().ends_with(": field is immutable"));
    }

    /// ReplicaSets share the selector and template rules.
    #[test]
    fn replica_set_rules() {
        assert_eq!(validate(&Object::ReplicaSet(replica_set().into())), vec![]);
        type Mutation = fn(&mut ReplicaSet);
        let cases: Vec<(&str, Mutation, Vec<&str>)> = vec![
            (
                "replicas",
                |r| r.spec.as_mut().unwrap().replicas = Some(-1),
                vec!["spec.replicas"],
            ),
            (
                "minReadySeconds",
                |r| r.spec.as_mut().unwrap().min_ready_seconds = Some(-1),
                vec!["spec.minReadySeconds"],
            ),
            (
                "selector",
                |r| r.spec.as_mut().unwrap().selector = LabelSelector::default(),
                vec!["spec.selector", "spec.template.metadata.labels"],
            ),
            (
                "selector matches template",
                |r| r.spec.as_mut().unwrap().selector.match_labels = labels("app", "db"),
                vec!["spec.template.metadata.labels"],
            ),
        ];
        for (name, mutate, want) in cases {
            let mut rs = replica_set();
            mutate(&mut rs);
            let errs = validate(&Object::ReplicaSet(rs.into()));
            let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, want, "{name}: {errs:#?}");
        }
        let old = replica_set();
        let mut new = old.clone();
        new.spec.as_mut().unwrap().selector.match_labels = Some(
            [
                ("app".to_string(), "web".to_string()),
                ("pod-template-hash".to_string(), "x".to_string()),
            ]
            .into(),
        );
        let errs = validate_update(
            &Object::ReplicaSet(new.into()),
            &Object::ReplicaSet(old.into()),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"spec.selector"), "{errs:?}");
    }
}
