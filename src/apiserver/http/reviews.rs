//! The self-review APIs: what the caller may do, and who the caller is.
//!
//! * `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (`kubectl auth can-i VERB
//!   RESOURCE`) and `…/selfsubjectrulesreviews` (`kubectl auth can-i --list`);
//! * `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`).
//!
//! They store nothing: the server answers 201 with the review and its `status` filled in, as
//! kube-apiserver's REST handlers do (pkg/registry/authorization/selfsubjectaccessreview,
//! …/selfsubjectrulesreview, pkg/registry/authentication/selfsubjectreview).
//!
//! The answers are the truth of this server: the one token of [`super::auth`] belongs to one
//! user, [`USER`], in the group `system:masters`, and every request carrying it is allowed —
//! what kube-apiserver's privileged-group authorizer answers for `system:masters`
//! (`authorizerfactory.NewPrivilegedGroups`): allowed with no reason, and the rules `*` on
//! every resource and every non-resource URL.

use serde_json::{json, Value};

use crate::api::validation::{render, ErrorType, FieldError};
use crate::apiserver::ApiError;

/// The user the token authenticates (kube-apiserver: the user of a `--token-auth-file` line).
pub const USER: &str = "kubeactor-admin";
/// Its groups: `system:masters` is what makes every request allowed upstream too.
pub const GROUPS: [&str; 2] = ["system:masters", "system:authenticated"];

/// A served review resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    /// `selfsubjectaccessreviews.authorization.k8s.io`.
    SelfSubjectAccess,
    /// `selfsubjectrulesreviews.authorization.k8s.io`.
    SelfSubjectRules,
    /// `selfsubjectreviews.authentication.k8s.io`.
    SelfSubject,
}

impl Review {
    /// Every served review.
    pub const ALL: [Review; 3] = [
        Review::SelfSubjectAccess,
        Review::SelfSubjectRules,
        Review::SelfSubject,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            Review::SelfSubjectAccess => "SelfSubjectAccessReview",
            Review::SelfSubjectRules => "SelfSubjectRulesReview",
            Review::SelfSubject => "SelfSubjectReview",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            Review::SelfSubjectAccess | Review::SelfSubjectRules => "authorization.k8s.io",
            Review::SelfSubject => "authentication.k8s.io",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Review::SelfSubjectAccess => "selfsubjectaccessreviews",
            Review::SelfSubjectRules => "selfsubjectrulesreviews",
            Review::SelfSubject => "selfsubjectreviews",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Review::SelfSubjectAccess => "selfsubjectaccessreview",
            Review::SelfSubjectRules => "selfsubjectrulesreview",
            Review::SelfSubject => "selfsubjectreview",
        }
    }

    /// The versions the review is served at, preferred first. `selfsubjectreviews` is also
    /// served at `v1beta1`: kubectl 1.27's `auth whoami` asks there (then at `v1alpha1`), as
    /// kube-apiserver 1.27 serves it by default; from 1.28 upstream serves it at `v1` and
    /// still at `v1beta1`.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Review::SelfSubject => &["v1", "v1beta1"],
            Review::SelfSubjectAccess | Review::SelfSubjectRules => &["v1"],
        }
    }

    /// The review served at `/apis/<group>/<version>/<plural>`, if any, with its version.
    pub fn at(group: &str, version: &str, plural: &str) -> Option<(Review, &'static str)> {
        Review::ALL.into_iter().find_map(|r| {
            let served = r.versions().iter().find(|v| **v == version)?;
            (r.group() == group && r.plural() == plural).then_some((r, *served))
        })
    }

    /// Is `group` one of the review groups?
    pub fn serves_group(group: &str) -> bool {
        Review::ALL.iter().any(|r| r.group() == group)
    }

    /// The versions of `group` that serve reviews, `v1` first.
    pub fn group_versions(group: &str) -> Vec<&'static str> {
        let mut versions: Vec<&'static str> = Vec::new();
        for r in Review::ALL.into_iter().filter(|r| r.group() == group) {
            for v in r.versions() {
                if !versions.contains(v) {
                    versions.push(v);
                }
            }
        }
        versions
    }

    /// Answer a review posted as `body` (JSON, already parsed) at `version`: the review with
    /// its status.
    pub fn answer(self, version: &str, body: &Value) -> Result<Value, ApiError> {
        // What Go's decoder refuses before any validation: a body or spec that is no object.
        let shape_error = |what: &str| {
            ApiError::BadRequest(format!(
                "the object provided is unrecognized (must be of type {}): {what} is not an object",
                self.kind()
            ))
        };
        if !body.is_object() {
            return Err(shape_error("the body"));
        }
        if body
            .get("spec")
            .is_some_and(|s| !s.is_object() && !s.is_null())
        {
            return Err(shape_error("spec"));
        }
        super::body::expect_kind(body, self.kind())?;
        let spec = match body.get("spec") {
            Some(spec) if spec.is_object() => spec.clone(),
            _ => json!({}),
        };
        let status = match self {
            Review::SelfSubjectAccess => {
                self.validate_access(&spec)?;
                json!({"allowed": true})
            }
            Review::SelfSubjectRules => {
                // pkg/registry/authorization/selfsubjectrulesreview/rest.go
                if spec
                    .get("namespace")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(ApiError::BadRequest("no namespace on request".into()));
                }
                json!({
                    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                    "incomplete": false,
                })
            }
            Review::SelfSubject => json!({"userInfo": {"username": USER, "groups": GROUPS}}),
        };
        let mut out = json!({
            "kind": self.kind(),
            "apiVersion": format!("{}/{version}", self.group()),
            "metadata": {"creationTimestamp": null},
        });
        if self != Review::SelfSubject {
            out["spec"] = spec;
        }
        out["status"] = status;
        Ok(out)
    }

    /// `ValidateSelfSubjectAccessReviewSpec` (pkg/apis/authorization/validation): exactly one
    /// of `resourceAttributes` and `nonResourceAttributes`.
    fn validate_access(self, spec: &Value) -> Result<(), ApiError> {
        let set = |field: &str| spec.get(field).is_some_and(|v| !v.is_null());
        let invalid = |field: &str, detail: &str| FieldError {
            error_type: ErrorType::Invalid,
            field: format!("spec.{field}"),
            // Upstream renders the nil attributes it was given as "null" (`field.Invalid`).
            value: Some(render::q("null")),
            detail: detail.to_string(),
        };
        let cause = match (set("resourceAttributes"), set("nonResourceAttributes")) {
            (true, true) => invalid(
                "nonResourceAttributes",
                "cannot be specified in combination with resourceAttributes",
            ),
            (false, false) => invalid(
                "resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ),
            _ => return Ok(()),
        };
        Err(ApiError::Invalid {
            qualified_kind: format!("{}.{}", self.kind(), self.group()),
            name: String::new(),
            group: self.group().to_string(),
            kind: self.kind().to_string(),
            causes: vec![cause],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_reviews_are_allowed_and_echo_their_spec() {
        let body = json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
            "status": {"allowed": false},
        });
        let out = Review::SelfSubjectAccess.answer("v1", &body).unwrap();
        assert_eq!(out["status"], json!({"allowed": true}));
        assert_eq!(out["spec"], body["spec"]);
        assert_eq!(out["apiVersion"], "authorization.k8s.io/v1");
    }

    #[test]
    fn an_access_review_needs_exactly_one_kind_of_attributes() {
        let none = Review::SelfSubjectAccess
            .answer("v1", &json!({"spec": {}}))
            .unwrap_err();
        assert_eq!(
            none.to_string(),
            "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
        );
        let both = Review::SelfSubjectAccess
            .answer("v1", &json!({"spec": {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}))
            .unwrap_err();
        assert!(
            both.to_string().contains(
                "spec.nonResourceAttributes: Invalid value: \"null\": cannot be specified in combination with resourceAttributes"
            ),
            "{both}"
        );
        let status = both.to_status();
        assert_eq!(status.code, Some(422));
        assert_eq!(status.reason.as_deref(), Some("Invalid"));
    }

    #[test]
    fn a_body_or_spec_that_is_no_object_is_a_bad_request() {
        for body in [json!([1, 2]), json!({"spec": "x"}), json!("review")] {
            let err = Review::SelfSubjectAccess.answer("v1", &body).unwrap_err();
            assert!(
                matches!(&err, ApiError::BadRequest(m) if m.starts_with("the object provided is unrecognized (must be of type SelfSubjectAccessReview)")),
                "{body}: {err:?}"
            );
        }
    }

    #[test]
    fn rules_reviews_need_a_namespace_and_list_wildcards() {
        let err = Review::SelfSubjectRules
            .answer("v1", &json!({"spec": {}}))
            .unwrap_err();
        assert_eq!(err, ApiError::BadRequest("no namespace on request".into()));
        let out = Review::SelfSubjectRules
            .answer("v1", &json!({"spec": {"namespace": "default"}}))
            .unwrap();
        assert_eq!(out["status"]["resourceRules"][0]["verbs"], json!(["*"]));
        assert_eq!(
            out["status"]["nonResourceRules"][0]["nonResourceURLs"],
            json!(["*"])
        );
    }

    #[test]
    fn whoami_names_the_token_user_and_a_wrong_kind_is_refused() {
        let out = Review::SelfSubject
            .answer(
                "v1",
                &json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1"}),
            )
            .unwrap();
        assert_eq!(out["status"]["userInfo"]["username"], USER);
        assert_eq!(out["status"]["userInfo"]["groups"], json!(GROUPS));
        let wrong = Review::SelfSubject
            .answer("v1", &json!({"kind": "Pod", "apiVersion": "v1"}))
            .unwrap_err();
        assert!(
            matches!(wrong, ApiError::BadRequest(m) if m.contains("cannot be handled as a SelfSubjectReview"))
        );
    }

    #[test]
    fn whoami_answers_in_the_version_it_was_asked_at() {
        let out = Review::SelfSubject
            .answer(
                "v1beta1",
                &json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1beta1"}),
            )
            .unwrap();
        assert_eq!(out["apiVersion"], "authentication.k8s.io/v1beta1");
        assert_eq!(out["status"]["userInfo"]["username"], USER);
    }

    #[test]
    fn reviews_are_found_by_group_version_and_plural() {
        assert_eq!(
            Review::at("authorization.k8s.io", "v1", "selfsubjectaccessreviews"),
            Some((Review::SelfSubjectAccess, "v1"))
        );
        assert_eq!(
            Review::at("authentication.k8s.io", "v1", "selfsubjectreviews"),
            Some((Review::SelfSubject, "v1"))
        );
        assert_eq!(
            Review::at("authentication.k8s.io", "v1beta1", "selfsubjectreviews"),
            Some((Review::SelfSubject, "v1beta1"))
        );
        // Only whoami has a beta; v1alpha1 is off by default upstream and not served.
        assert_eq!(
            Review::at(
                "authorization.k8s.io",
                "v1beta1",
                "selfsubjectaccessreviews"
            ),
            None
        );
        assert_eq!(
            Review::at("authentication.k8s.io", "v1alpha1", "selfsubjectreviews"),
            None
        );
        assert_eq!(
            Review::at("authorization.k8s.io", "v1", "subjectaccessreviews"),
            None
        );
        assert_eq!(
            Review::group_versions("authentication.k8s.io"),
            ["v1", "v1beta1"]
        );
        assert_eq!(Review::group_versions("authorization.k8s.io"), ["v1"]);
        assert!(Review::serves_group("authentication.k8s.io"));
        assert!(!Review::serves_group("apps"));
    }
}
