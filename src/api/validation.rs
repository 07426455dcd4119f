//! Validation, mirroring kube-apiserver's `pkg/apis/*/validation`. (Being written.)

use super::Object;

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

/// Validate an object for create.
pub fn validate(_obj: &Object) -> Vec<FieldError> {
    Vec::new()
}

/// Validate an update of `old` to `new`.
pub fn validate_update(_new: &Object, _old: &Object) -> Vec<FieldError> {
    Vec::new()
}

impl FieldError {
    /// The `StatusCause.reason`.
    pub fn reason(&self) -> &'static str {
        "FieldValueInvalid"
    }
    /// The message without the field path.
    pub fn message(&self) -> String {
        self.detail.clone()
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}
