//! PATCH: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch,
//! applied to the JSON of the current object; and the `scale` subresource's `Scale` view.
//!
//! Mirrors `k8s.io/apiserver/pkg/endpoints/handlers/patch.go` (the patcher applies the patch
//! to the current object, decodes the result strictly as the path's kind, and updates with the
//! current resourceVersion as the precondition, retrying on conflict when the patch itself
//! did not ask for a resourceVersion) and `k8s.io/apimachinery/pkg/util/strategicpatch`.
//!
//! The strategic merge patch knows the merge keys of the fields of the kinds served here
//! ([`merge_key`]); it handles the directives kubectl sends (`$patch: replace|delete|merge`,
//! `$retainKeys`, `$setElementOrder/<field>`, `$deleteFromPrimitiveList/<field>`).
//!
//! Server-side apply (`application/apply-patch+yaml`) merges the configuration into the live
//! object with the same merge keys ([`merge_apply`]); who owns which field, what an applier
//! dropped from its configuration, and conflicts between managers are
//! [`managedfields`](super::managedfields)' business. Known difference from upstream's
//! structured merge: the merge itself is the strategic one (label selectors merge instead
//! of being replaced whole; `ports` merge by `containerPort` alone).

use serde_json::{Map, Value};
use std::sync::Arc;

use super::HttpError;
use crate::api::{Kind, Object};
use crate::apiserver::ApiError;

/// The PATCH encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    /// Server-side apply (see [`super::managedfields`]).
    Apply,
}

const ACCEPTED: &str = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml";

/// The patch type named by a Content-Type; anything else is 415 (upstream's wording).
pub fn patch_type(content_type: Option<&str>) -> Result<PatchType, HttpError> {
    let media = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(HttpError::UnsupportedMediaType {
            media,
            accepted: ACCEPTED,
        }),
    }
}

/// Apply `patch` (bytes of the given type) to `original`.
pub fn apply(original: &Value, patch: &[u8], ty: PatchType) -> Result<Value, ApiError> {
    let patch = parse(patch, ty)?;
    match ty {
        PatchType::Json => {
            // Upstream: a patch that does not decode as a list of operations is a bad request;
            // operations that do not apply are 422 (`applyJSPatch`).
            let Some(ops) = patch.as_array() else {
                return Err(ApiError::BadRequest(
                    "error decoding patch: a JSON patch must be a list of operations".into(),
                ));
            };
            let mut doc = original.clone();
            json_patch(&mut doc, ops).map_err(|reason| {
                tracing::debug!(%reason, "a JSON patch does not apply");
                ApiError::RequestInvalid(reason)
            })?;
            Ok(doc)
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "error decoding patch: a merge patch must be a JSON object".into(),
                ));
            }
            let mut doc = original.clone();
            merge_patch(&mut doc, &patch);
            Ok(doc)
        }
        PatchType::Strategic | PatchType::Apply => {
            let Value::Object(p) = &patch else {
                return Err(ApiError::BadRequest(
                    "error decoding patch: a strategic merge patch must be a JSON object".into(),
                ));
            };
            let Value::Object(o) = original else {
                return Err(ApiError::Internal("the object is not a JSON object".into()));
            };
            let merged = merge_map(o, p).map_err(ApiError::BadRequest)?;
            Ok(Value::Object(merged.unwrap_or_default()))
        }
    }
}

/// Merge an apply configuration (already parsed, directives stripped) into the live object:
/// maps merge, lists with merge keys merge by key, other lists are replaced.
pub fn merge_apply(original: &Value, config: &Value) -> Result<Value, ApiError> {
    let (Value::Object(o), Value::Object(c)) = (original, config) else {
        return Err(ApiError::BadRequest(
            "error decoding patch: an apply configuration must be an object".into(),
        ));
    };
    let merged = merge_map(o, c).map_err(ApiError::BadRequest)?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// Parse a patch body: JSON, or YAML for an apply configuration.
pub fn parse(patch: &[u8], ty: PatchType) -> Result<Value, ApiError> {
    let parsed = match ty {
        PatchType::Apply => serde_yaml::from_slice::<Value>(patch).map_err(|e| e.to_string()),
        _ => serde_json::from_slice::<Value>(patch).map_err(|e| e.to_string()),
    };
    let value = parsed.map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
    // An apply configuration is plain data: directives are not taken from it.
    Ok(match ty {
        PatchType::Apply => strip_directives(&value),
        _ => value,
    })
}

// ---- RFC 7386 ----

/// JSON merge patch: objects merge, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

// ---- RFC 6902 ----

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let i: usize = token
        .parse()
        .map_err(|_| format!("invalid array index {token:?}"))?;
    if i > len || (!allow_end && i == len) {
        return Err(format!("array index {i} out of bounds"));
    }
    Ok(i)
}

fn pointer_get<'a>(doc: &'a Value, tokens: &[String]) -> Result<&'a Value, String> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t).ok_or_else(|| format!("missing key {t:?}"))?,
            Value::Array(a) => &a[index(t, a.len(), false)?],
            _ => return Err(format!("cannot descend into {t:?}")),
        };
    }
    Ok(cur)
}

fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in &tokens[..tokens.len().saturating_sub(1)] {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| format!("missing key {t:?}"))?,
            Value::Array(a) => {
                let i = index(t, a.len(), false)?;
                &mut a[i]
            }
            _ => return Err(format!("cannot descend into {t:?}")),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some(last) = tokens.last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, tokens)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = index(last, a.len(), true)?;
            a.insert(i, value);
        }
        _ => return Err(format!("cannot add to {last:?}")),
    }
    Ok(())
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let last = tokens.last().ok_or("cannot remove the whole document")?;
    match parent_mut(doc, tokens)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("missing key {last:?}")),
        Value::Array(a) => {
            let i = index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(format!("cannot remove {last:?}")),
    }
}

/// Apply an RFC 6902 patch (its list of operations) in place.
pub fn json_patch(doc: &mut Value, ops: &[Value]) -> Result<(), String> {
    for op in ops {
        let field = |name: &str| -> Result<&str, String> {
            op.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("operation has no {name:?}"))
        };
        let path = split_pointer(field("path")?)?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| "operation has no \"value\"".to_string())
        };
        match field("op")? {
            "add" => add(doc, &path, value()?)?,
            "remove" => {
                remove(doc, &path)?;
            }
            "replace" => {
                remove(doc, &path)?;
                add(doc, &path, value()?)?;
            }
            "move" => {
                let from = split_pointer(field("from")?)?;
                let v = remove(doc, &from)?;
                add(doc, &path, v)?;
            }
            "copy" => {
                let from = split_pointer(field("from")?)?;
                let v = pointer_get(doc, &from)?.clone();
                add(doc, &path, v)?;
            }
            "test" => {
                if pointer_get(doc, &path)? != &value()? {
                    return Err(format!("test failed at {:?}", field("path")?));
                }
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(())
}

// ---- strategic merge patch ----

/// The merge key of a list field (`patchMergeKey` in the Go types), for the kinds served.
pub fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        "hostAliases" | "podIPs" | "hostIPs" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists of scalars merged as sets (`patchStrategy:"merge"` on a primitive list).
fn is_primitive_merge_list(field: &str) -> bool {
    field == "finalizers"
}

/// Remove every `$`-directive from a patch value (what is left is plain data).
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|e| e.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Merge a patch map into an original map. `Ok(None)`: the map is deleted (`$patch: delete`).
/// Mirrors `mergeMap` in strategicpatch/patch.go.
fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            return match strip_directives(&Value::Object(patch.clone())) {
                Value::Object(m) => Ok(Some(m)),
                _ => Ok(Some(Map::new())),
            }
        }
        Some("delete") => return Ok(None),
        Some("merge") | None => {}
        Some(other) => return Err(format!("Unknown patch type: {other}")),
    }
    let mut out = original.clone();
    for (k, pv) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (out.get_mut(field), pv) {
                list.retain(|v| !del.contains(v));
            }
            continue;
        }
        if pv.is_null() {
            out.remove(k);
            continue;
        }
        let merged = match (out.get(k), pv) {
            (Some(Value::Object(o)), Value::Object(p)) => match merge_map(o, p)? {
                Some(m) => Value::Object(m),
                None => {
                    out.remove(k);
                    continue;
                }
            },
            (Some(Value::Array(o)), Value::Array(p)) => {
                let order = patch
                    .get(&format!("$setElementOrder/{k}"))
                    .and_then(Value::as_array);
                Value::Array(merge_list(k, o, p, order)?)
            }
            (_, Value::Array(p)) => {
                let order = patch
                    .get(&format!("$setElementOrder/{k}"))
                    .and_then(Value::as_array);
                Value::Array(merge_list(k, &[], p, order)?)
            }
            (_, p) => strip_directives(p),
        };
        out.insert(k.clone(), merged);
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        out.retain(|k, _| keep.iter().any(|r| r.as_str() == Some(k)) || patch.contains_key(k));
    }
    Ok(Some(out))
}

fn key_of<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(key))
}

/// Merge a patch list into an original list (`mergeSlice`).
fn merge_list(
    field: &str,
    original: &[Value],
    patch: &[Value],
    order: Option<&Vec<Value>>,
) -> Result<Vec<Value>, String> {
    if patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|e| e.get("$patch").is_none())
            .map(strip_directives)
            .collect());
    }
    let mut out: Vec<Value> = original.to_vec();
    if is_primitive_merge_list(field) {
        for v in patch {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
    } else if let Some(key) = merge_key(field) {
        for pe in patch {
            let Some(k) = key_of(pe, key) else {
                return Err(format!(
                    "map: {pe} does not contain declared merge key: {key}"
                ));
            };
            let pos = out.iter().position(|o| key_of(o, key) == Some(k));
            let delete = pe.get("$patch").and_then(Value::as_str) == Some("delete");
            match (pos, delete) {
                (Some(i), true) => {
                    out.remove(i);
                }
                (None, true) => {}
                (Some(i), false) => {
                    if let (Value::Object(o), Value::Object(p)) = (&out[i], pe) {
                        match merge_map(o, p)? {
                            Some(m) => out[i] = Value::Object(m),
                            None => {
                                out.remove(i);
                            }
                        }
                    }
                }
                (None, false) => out.push(strip_directives(pe)),
            }
        }
    } else {
        // No merge strategy: the patch's list replaces the original.
        return Ok(patch.iter().map(strip_directives).collect());
    }
    if let Some(order) = order {
        let rank = |v: &Value| -> usize {
            let pos = match merge_key(field) {
                Some(key) => order
                    .iter()
                    .position(|o| key_of(o, key).is_some() && key_of(o, key) == key_of(v, key)),
                None => order.iter().position(|o| o == v),
            };
            pos.unwrap_or(usize::MAX)
        };
        // Stable: elements the order does not name keep their relative order, at the end.
        out.sort_by_key(rank);
    }
    Ok(out)
}

// ---- the scale subresource ----

/// The `autoscaling/v1` Scale of a Deployment or ReplicaSet (upstream's `scaleFromDeployment`).
pub fn scale_of(obj: &Object) -> Result<Value, ApiError> {
    let (replicas, status_replicas, selector) = match obj {
        Object::Deployment(d) => {
            let spec = d.spec.clone().unwrap_or_default();
            (
                spec.replicas.unwrap_or(1),
                d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                spec.selector,
            )
        }
        Object::ReplicaSet(rs) => {
            let spec = rs.spec.clone().unwrap_or_default();
            (
                spec.replicas.unwrap_or(1),
                rs.status.as_ref().map(|s| s.replicas).unwrap_or(0),
                spec.selector,
            )
        }
        other => return Err(ApiError::not_found(other.kind(), other.name())),
    };
    let selector = crate::api::selectors::LabelSelector::from_api(&selector)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let meta = obj.meta();
    let mut scale = serde_json::json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "resourceVersion": meta.resource_version,
            "creationTimestamp": meta.creation_timestamp,
        },
        "spec": {"replicas": replicas},
        "status": {"replicas": status_replicas},
    });
    if !selector.is_empty() {
        scale["status"]["selector"] = Value::from(selector);
    }
    Ok(scale)
}

/// The object with the replicas (and resourceVersion precondition) of a Scale applied.
pub fn apply_scale(obj: &Object, scale: &Value) -> Result<Object, ApiError> {
    if let Some(k) = scale.get("kind").and_then(Value::as_str) {
        if k != "Scale" {
            return Err(ApiError::BadRequest(format!(
                "{k} in version \"v1\" cannot be handled as a Scale: no kind \"{k}\" is registered for version \"autoscaling/v1\""
            )));
        }
    }
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .and_then(|r| i32::try_from(r).ok())
            .ok_or_else(|| ApiError::BadRequest(format!("spec.replicas: invalid value {v}")))?,
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            obj.kind(),
            obj.name(),
            vec![crate::api::validation::FieldError::invalid(
                &crate::api::validation::Path::new("spec").child("replicas"),
                replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut out = obj.clone();
    match &mut out {
        Object::Deployment(d) => {
            Arc::make_mut(d)
                .spec
                .get_or_insert_with(Default::default)
                .replicas = Some(replicas)
        }
        Object::ReplicaSet(rs) => {
            Arc::make_mut(rs)
                .spec
                .get_or_insert_with(Default::default)
                .replicas = Some(replicas)
        }
        other => return Err(ApiError::not_found(other.kind(), other.name())),
    }
    let rv = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty());
    out.meta_mut().resource_version = rv.map(String::from);
    Ok(out)
}

/// Whether the `scale` subresource exists for a kind.
pub fn has_scale(kind: Kind) -> bool {
    matches!(kind, Kind::Deployment | Kind::ReplicaSet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_objects_and_deletes_nulls() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": null, "b": {"c": 5}, "l": [3]}));
        assert_eq!(doc, json!({"b": {"c": 5, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_follows_rfc_6902() {
        let mut doc = json!({"spec": {"template": {"a": 1}}, "list": [1, 2, 3], "x~y": 0});
        let ops = json!([
                {"op": "replace", "path": "/spec/template", "value": {"b": 2}},
                {"op": "add", "path": "/list/1", "value": 9},
                {"op": "add", "path": "/list/-", "value": 4},
                {"op": "remove", "path": "/list/0"},
                {"op": "test", "path": "/x~0y", "value": 0},
                {"op": "copy", "from": "/spec", "path": "/copy"},
                {"op": "move", "from": "/copy", "path": "/moved"}
        ]);
        json_patch(&mut doc, ops.as_array().unwrap()).unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"template": {"b": 2}}, "list": [9, 2, 3, 4], "x~y": 0, "moved": {"template": {"b": 2}}})
        );
        let mut doc = json!({"a": 1});
        assert!(json_patch(&mut doc, &[json!({"op": "test", "path": "/a", "value": 2})]).is_err());
        assert!(json_patch(&mut doc, &[json!({"op": "remove", "path": "/missing"})]).is_err());
    }

    fn smp(original: Value, patch: Value) -> Value {
        apply(
            &original,
            &serde_json::to_vec(&patch).unwrap(),
            PatchType::Strategic,
        )
        .unwrap()
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        // What `kubectl set image deployment/web nginx=nginx:1.27` sends.
        let original = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "busybox"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.27", "name": "nginx"}]
        }}}});
        let got = smp(original, patch);
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "busybox"}
            ])
        );
    }

    #[test]
    fn strategic_merge_directives() {
        let original = json!({
            "metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "tolerations": [{"key": "k"}],
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}
        });
        let patch = json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"], "labels": {"y": null}},
            "spec": {"containers": [{"name": "a", "$patch": "delete"}, {"name": "c", "image": "i"}],
                     "tolerations": [{"key": "z"}],
                     "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}
        });
        let got = smp(original, patch);
        assert_eq!(got["metadata"]["finalizers"], json!(["b", "c"]));
        assert_eq!(got["metadata"]["labels"], json!({"x": "1"}));
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "b"}, {"name": "c", "image": "i"}])
        );
        assert_eq!(
            got["spec"]["tolerations"],
            json!([{"key": "z"}]),
            "no merge key: replaced"
        );
        assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
        let replaced = smp(
            json!({"spec": {"a": 1, "b": 2}}),
            json!({"spec": {"$patch": "replace", "c": 3}}),
        );
        assert_eq!(replaced, json!({"spec": {"c": 3}}));
    }

    #[test]
    fn patch_types_follow_the_content_type() {
        assert_eq!(
            patch_type(Some("application/merge-patch+json")).unwrap(),
            PatchType::Merge
        );
        assert_eq!(
            patch_type(Some(
                "application/strategic-merge-patch+json; charset=utf-8"
            ))
            .unwrap(),
            PatchType::Strategic
        );
        assert_eq!(
            patch_type(Some("application/json-patch+json")).unwrap(),
            PatchType::Json
        );
        assert_eq!(
            patch_type(Some("application/apply-patch+yaml")).unwrap(),
            PatchType::Apply
        );
        let err = patch_type(Some("application/apply-patch+cbor")).unwrap_err();
        assert_eq!(err.code(), 415);
    }
}
