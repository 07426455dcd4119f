//! OpenAPI v3 — for now the minimal documents that make kubectl validate on the server.
//!
//! `kubectl create -f` / `apply -f` first download `/openapi/v3` and the document of the
//! object's group version. If the PATCH operation of the object's path declares the
//! `fieldValidation` query parameter (kubectl's `SupportsQueryParamV3`), kubectl skips
//! client-side schema validation and sends `fieldValidation=Strict`, so the API server does
//! the checking (unknown fields: 400; invalid values: 422). These documents declare exactly
//! that and carry no schemas yet: `kubectl explain` does not work until real schemas are
//! served (issue 6, point 3).

use serde_json::{json, Value};

use crate::api::Kind;

/// Changes when the documents change; clients cache by it.
const HASH: &str = "kubeactor-min-1";

fn group_version_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_string()
    } else {
        format!("apis/{group}/v1")
    }
}

/// `/openapi/v3`: where each group version's document is.
pub fn root() -> Value {
    let mut paths = serde_json::Map::new();
    for kind in Kind::ALL {
        let gv = group_version_path(kind.group());
        paths.entry(gv.clone()).or_insert_with(
            || json!({ "serverRelativeURL": format!("/openapi/v3/{gv}?hash={HASH}") }),
        );
    }
    json!({ "paths": paths })
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/v1`; `None` for anything else.
pub fn group_version(path: &str, minor: u32) -> Option<Value> {
    let gv = path
        .trim_start_matches("/openapi/v3/")
        .trim_end_matches('/');
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| group_version_path(k.group()) == gv)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    for kind in kinds {
        let item = if kind.namespaced() {
            format!("/{gv}/namespaces/{{namespace}}/{}/{{name}}", kind.plural())
        } else {
            format!("/{gv}/{}/{{name}}", kind.plural())
        };
        paths.insert(
            item,
            json!({
                "patch": {
                    "x-kubernetes-group-version-kind": {
                        "group": kind.group(), "version": "v1", "kind": kind.name()
                    },
                    "x-kubernetes-action": "patch",
                    "parameters": [
                        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
                    ],
                    "responses": {"200": {"description": "OK"}}
                }
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{minor}.0")},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_declares_field_validation_on_patch() {
        let root = root();
        let paths = root["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 3);
        let apps = group_version("/openapi/v3/apis/apps/v1", 32).unwrap();
        let op = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        assert!(group_version("/openapi/v3/api/v1", 32).unwrap()["paths"]
            .get("/api/v1/nodes/{name}")
            .is_some());
        assert!(group_version("/openapi/v3/apis/batch/v1", 32).is_none());
    }
}
