//! API errors, one-to-one with Kubernetes `Status` reasons.
//!
//! Messages mirror `k8s.io/apimachinery/pkg/api/errors` (`NewNotFound`, `NewAlreadyExists`,
//! `NewConflict`, `NewInvalid`, …) so clients print exactly what they print against a real
//! cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use crate::api::validation::FieldError;
use crate::api::Kind;
use crate::store::StoreError;

/// An error answered by the API server. Each variant is one `Status.reason`.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ApiError {
    /// 404 `NotFound`: `pods "x" not found`.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        resource: String,
        name: String,
        group: String,
        kind: String,
    },
    /// 409 `AlreadyExists`: `deployments.apps "web" already exists`.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        resource: String,
        name: String,
        group: String,
        kind: String,
    },
    /// 409 `Conflict`: a stale resourceVersion or a failed precondition.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {detail}")]
    Conflict {
        resource: String,
        name: String,
        group: String,
        kind: String,
        detail: String,
    },
    /// 409 `Conflict` of a server-side apply: fields the configuration would change are owned
    /// by other field managers (`Apply failed with 1 conflict: conflict with "kubectl" …`).
    /// Mirrors `NewApplyConflict`: no name or kind in the details, one cause per field.
    #[error("{message}")]
    ApplyConflict {
        message: String,
        /// `(field, message)`: `(".spec.replicas", "conflict with \"kubectl\" …")`.
        causes: Vec<(String, String)>,
    },
    /// 422 `Invalid`: `Deployment.apps "bad" is invalid: spec.replicas: …`.
    #[error("{qualified_kind} \"{name}\" is invalid: {}", aggregate(.causes))]
    Invalid {
        qualified_kind: String,
        name: String,
        group: String,
        kind: String,
        causes: Vec<FieldError>,
    },
    /// 422 `Invalid` about the request rather than an object: a JSON patch whose operations do
    /// not apply (a missing path, a failed `test`). Upstream's `applyJSPatch`
    /// (apiserver/pkg/endpoints/handlers/patch.go) answers with
    /// `NewGenericServerResponse(422, …)`: a fixed message and empty details, so kubectl prints
    /// "The request is invalid: the server rejected our request due to an error in our
    /// request". The reason it did not apply is kept for logs and spans, not sent.
    #[error("the server rejected our request due to an error in our request")]
    RequestInvalid(String),
    /// 400 `BadRequest`.
    #[error("{0}")]
    BadRequest(String),
    /// 410 `Expired` (watch or list from a compacted resourceVersion): the client relists.
    #[error("{0}")]
    Gone(String),
    /// 403 `Forbidden`: `namespaces "default" is forbidden: this namespace may not be deleted`.
    #[error("{resource} \"{name}\" is forbidden: {detail}")]
    Forbidden {
        resource: String,
        name: String,
        group: String,
        kind: String,
        detail: String,
    },
    /// 429 `TooManyRequests`.
    #[error("{0}")]
    TooManyRequests(String),
    /// 504 `Timeout`.
    #[error("{0}")]
    Timeout(String),
    /// 500 `InternalError`.
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

/// `utilerrors.NewAggregate(errs).Error()`: one error plain, several in brackets.
fn aggregate(causes: &[FieldError]) -> String {
    let msgs: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
    if msgs.len() == 1 {
        msgs.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", msgs.join(", "))
    }
}

impl ApiError {
    pub fn not_found(kind: Kind, name: &str) -> ApiError {
        ApiError::NotFound {
            resource: kind.qualified_resource(),
            name: name.to_string(),
            group: kind.group().to_string(),
            kind: kind.plural().to_string(),
        }
    }

    /// `namespaces "x" not found`, answered when creating into a namespace that does not exist.
    /// The API server's mailbox is closed or full: a client component cannot reach it.
    pub fn unreachable(e: actix::MailboxError) -> ApiError {
        ApiError::Internal(format!("api server unreachable: {e}"))
    }

    pub fn namespace_not_found(namespace: &str) -> ApiError {
        ApiError::not_found(Kind::Namespace, namespace)
    }

    pub fn already_exists(kind: Kind, name: &str) -> ApiError {
        ApiError::AlreadyExists {
            resource: kind.qualified_resource(),
            name: name.to_string(),
            group: kind.group().to_string(),
            kind: kind.plural().to_string(),
        }
    }

    pub fn conflict(kind: Kind, name: &str, detail: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            resource: kind.qualified_resource(),
            name: name.to_string(),
            group: kind.group().to_string(),
            kind: kind.plural().to_string(),
            detail: detail.into(),
        }
    }

    /// The conflict of an update whose resourceVersion is stale (upstream's
    /// `OptimisticLockErrorMsg`).
    pub fn stale(kind: Kind, name: &str) -> ApiError {
        ApiError::conflict(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn invalid(kind: Kind, name: &str, causes: Vec<FieldError>) -> ApiError {
        let qualified_kind = match kind.group() {
            "" => kind.name().to_string(),
            g => format!("{}.{}", kind.name(), g),
        };
        ApiError::Invalid {
            qualified_kind,
            name: name.to_string(),
            group: kind.group().to_string(),
            kind: kind.name().to_string(),
            causes,
        }
    }

    pub fn forbidden(kind: Kind, name: &str, detail: impl Into<String>) -> ApiError {
        ApiError::Forbidden {
            resource: kind.qualified_resource(),
            name: name.to_string(),
            group: kind.group().to_string(),
            kind: kind.plural().to_string(),
            detail: detail.into(),
        }
    }

    /// 410 for a resourceVersion older than the retained window, worded as the watch cache.
    pub fn too_old(requested: u64, oldest: u64) -> ApiError {
        ApiError::Gone(format!("too old resource version: {requested} ({oldest})"))
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. }
            | ApiError::Conflict { .. }
            | ApiError::ApplyConflict { .. } => 409,
            ApiError::Invalid { .. } | ApiError::RequestInvalid(_) => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::Gone(_) => 410,
            ApiError::Forbidden { .. } => 403,
            ApiError::TooManyRequests(_) => 429,
            ApiError::Timeout(_) => 504,
            ApiError::Internal(_) => 500,
        }
    }

    /// The `Status.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Invalid { .. } | ApiError::RequestInvalid(_) => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Gone(_) => "Expired",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::TooManyRequests(_) => "TooManyRequests",
            ApiError::Timeout(_) => "Timeout",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The Kubernetes `Status` object for this error.
    pub fn to_status(&self) -> Status {
        let details = match self {
            ApiError::NotFound {
                name, group, kind, ..
            }
            | ApiError::AlreadyExists {
                name, group, kind, ..
            }
            | ApiError::Conflict {
                name, group, kind, ..
            }
            | ApiError::Forbidden {
                name, group, kind, ..
            } => Some(StatusDetails {
                name: Some(name.clone()),
                group: (!group.is_empty()).then(|| group.clone()),
                kind: Some(kind.clone()),
                ..Default::default()
            }),
            ApiError::Invalid {
                name,
                group,
                kind,
                causes,
                ..
            } => Some(StatusDetails {
                name: Some(name.clone()),
                group: (!group.is_empty()).then(|| group.clone()),
                kind: Some(kind.clone()),
                causes: Some(
                    causes
                        .iter()
                        .map(|c| StatusCause {
                            field: Some(c.field.clone()),
                            message: Some(c.message()),
                            reason: Some(c.reason().to_string()),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ApiError::ApplyConflict { causes, .. } => Some(StatusDetails {
                causes: Some(
                    causes
                        .iter()
                        .map(|(field, message)| StatusCause {
                            field: Some(field.clone()),
                            message: Some(message.clone()),
                            reason: Some("FieldManagerConflict".to_string()),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ApiError::RequestInvalid(_) => Some(StatusDetails::default()),
            ApiError::Internal(msg) => Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    message: Some(msg.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            _ => None,
        };
        Status {
            code: Some(i32::from(self.code())),
            details,
            message: Some(self.to_string()),
            reason: Some(self.reason().to_string()),
            status: Some("Failure".to_string()),
            ..Default::default()
        }
    }

    /// Translate a store error about `kind`/`name`.
    pub fn from_store(err: StoreError, kind: Kind, name: &str) -> ApiError {
        match err {
            StoreError::Conflict { current: None, .. } => ApiError::not_found(kind, name),
            StoreError::Conflict { .. } => ApiError::stale(kind, name),
            StoreError::Expired {
                requested,
                compacted,
            } => ApiError::too_old(requested, compacted),
            StoreError::FutureRevision { requested, current } => ApiError::Timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            StoreError::Engine(e) => ApiError::Internal(e),
            StoreError::Closed => ApiError::Internal("storage is shutting down".to_string()),
        }
    }
}
