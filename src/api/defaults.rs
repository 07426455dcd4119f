//! Defaulting, mirroring kube-apiserver's `pkg/apis/*/v1/defaults.go`. (Being written.)

use super::Object;

/// Fill in the defaults of an object about to be created or updated.
pub fn apply(_obj: &mut Object) {}
