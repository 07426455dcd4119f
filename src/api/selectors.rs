//! Label and field selectors. (Being written.)
use std::collections::BTreeMap;

use super::Object;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {}
impl LabelSelector {
    pub fn parse(_s: &str) -> Result<LabelSelector, String> {
        Ok(LabelSelector {})
    }
    pub fn matches(&self, _labels: &BTreeMap<String, String>) -> bool {
        true
    }
    pub fn is_empty(&self) -> bool {
        true
    }
}
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {}
impl FieldSelector {
    pub fn parse(_s: &str) -> Result<FieldSelector, String> {
        Ok(FieldSelector {})
    }
    pub fn matches(&self, _obj: &Object) -> bool {
        true
    }
    pub fn exact(&self, _field: &str) -> Option<&str> {
        None
    }
}
