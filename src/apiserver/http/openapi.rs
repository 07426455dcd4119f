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

    #[test]
    fn the_v2_protobuf_document_starts_with_its_swagger_version_and_names_each_kind() {
        let doc = v2_protobuf(27);
        assert_eq!(doc[..5], [0x0a, 3, b'2', b'.', b'0']);
        let text = String::from_utf8_lossy(&doc);
        assert!(text.contains("/apis/apps/v1/namespaces/{namespace}/deployments/{name}"));
        assert!(text.contains("kind: Deployment"));
        assert!(text.contains("fieldValidation"));
    }
}

/// Protobuf writing, just enough for [`v2_protobuf`].
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A length-delimited field (strings and sub-messages).
    pub fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
        varint(out, u64::from(field << 3 | 2));
        varint(out, data.len() as u64);
        out.extend_from_slice(data);
    }

    pub fn message(out: &mut Vec<u8>, field: u32, build: impl FnOnce(&mut Vec<u8>)) {
        let mut inner = Vec::new();
        build(&mut inner);
        bytes(out, field, &inner);
    }
}

/// `/openapi/v2` in protobuf (served as `application/octet-stream`: client-go cannot parse
/// the `…spec.v2@v1.0+protobuf` media type it asks for), for kubectl 1.27 and 1.28, which check server-side field
/// validation there (`SupportsQueryParam` in k8s.io/kubectl/pkg/util/openapi): the same
/// minimal content as [`group_version`] — each kind's PATCH operation with its
/// `x-kubernetes-group-version-kind` and the `fieldValidation` query parameter, no schemas.
///
/// Field numbers are gnostic's `openapiv2/OpenAPIv2.proto`: Document{swagger 1, info 2,
/// paths 8}, Info{title 1, version 2}, Paths{path 1}, NamedPathItem{name 1, value 2},
/// PathItem{patch 8}, Operation{parameters 8, vendor_extension 13},
/// ParametersItem{parameter 1}, Parameter{non_body_parameter 2},
/// NonBodyParameter{query_parameter_sub_schema 3}, QueryParameterSubSchema{in 2, name 4,
/// type 6}, NamedAny{name 1, value 2}, Any{yaml 2}.
pub fn v2_protobuf(minor: u32) -> Vec<u8> {
    let mut doc = Vec::new();
    pb::bytes(&mut doc, 1, b"2.0");
    pb::message(&mut doc, 2, |info| {
        pb::bytes(info, 1, b"Kubernetes");
        pb::bytes(info, 2, format!("v1.{minor}.0").as_bytes());
    });
    pb::message(&mut doc, 8, |paths| {
        for kind in Kind::ALL {
            let gv = group_version_path(kind.group());
            let item = if kind.namespaced() {
                format!("/{gv}/namespaces/{{namespace}}/{}/{{name}}", kind.plural())
            } else {
                format!("/{gv}/{}/{{name}}", kind.plural())
            };
            pb::message(paths, 1, |named| {
                pb::bytes(named, 1, item.as_bytes());
                pb::message(named, 2, |path_item| {
                    pb::message(path_item, 8, |op| {
                        for param in ["dryRun", "fieldManager", "fieldValidation", "force"] {
                            pb::message(op, 8, |item| {
                                pb::message(item, 1, |p| {
                                    pb::message(p, 2, |non_body| {
                                        pb::message(non_body, 3, |q| {
                                            pb::bytes(q, 2, b"query");
                                            pb::bytes(q, 4, param.as_bytes());
                                            pb::bytes(q, 6, b"string");
                                        })
                                    })
                                })
                            });
                        }
                        pb::message(op, 13, |ext| {
                            pb::bytes(ext, 1, b"x-kubernetes-group-version-kind");
                            pb::message(ext, 2, |any| {
                                let yaml = format!(
                                    "group: \"{}\"\nkind: {}\nversion: v1\n",
                                    kind.group(),
                                    kind.name()
                                );
                                pb::bytes(any, 2, yaml.as_bytes());
                            });
                        });
                    });
                });
            });
        }
    });
    doc
}
