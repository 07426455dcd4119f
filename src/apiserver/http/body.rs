//! Content negotiation and request bodies.
//!
//! What a client accepts decides between a plain object or list and a Table
//! (`as=Table;v=v1;g=meta.k8s.io`), and between aggregated and legacy discovery. Request
//! bodies are JSON or YAML; they are checked the way kube-apiserver's create and update
//! handlers check them (`k8s.io/apiserver/pkg/endpoints/handlers/create.go`): the kind and
//! apiVersion must be the path's, and with `fieldValidation=Strict` an unknown field is a
//! 400, with `Warn` a `Warning` header.

use serde_json::Value;

use super::HttpError;
use crate::api::{Kind, Object};
use crate::apiserver::ApiError;

/// What the response body should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The object or list itself.
    Object,
    /// A `Table` of the given `meta.k8s.io` apiVersion.
    Table(&'static str),
}

/// One media range of an Accept header: the type and its parameters.
fn media_ranges(accept: &str) -> impl Iterator<Item = (String, Vec<(String, String)>)> + '_ {
    accept.split(',').map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        (media, params)
    })
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn is_json(media: &str) -> bool {
    matches!(media, "application/json" | "*/*" | "application/*" | "")
}

/// The first acceptable representation in the client's order of preference (as upstream's
/// `negotiation.NegotiateOutputMediaType`). Protobuf and YAML are skipped (clients that ask
/// for them also accept JSON); nothing acceptable falls back to JSON.
pub fn output_for(accept: Option<&str>) -> Output {
    for (media, params) in media_ranges(accept.unwrap_or("")) {
        if !is_json(&media) {
            continue;
        }
        match param(&params, "as") {
            None => return Output::Object,
            Some("Table") if param(&params, "g") == Some("meta.k8s.io") => {
                match param(&params, "v") {
                    Some("v1") => return Output::Table("meta.k8s.io/v1"),
                    Some("v1beta1") => return Output::Table("meta.k8s.io/v1beta1"),
                    _ => continue,
                }
            }
            Some(_) => continue,
        }
    }
    Output::Object
}

/// The `apidiscovery.k8s.io` version to answer with, if the client asked for aggregated
/// discovery before anything else it accepts.
pub fn aggregated_discovery_for(accept: Option<&str>) -> Option<&'static str> {
    for (media, params) in media_ranges(accept.unwrap_or("")) {
        if !is_json(&media) {
            continue;
        }
        match param(&params, "as") {
            None => return None,
            Some("APIGroupDiscoveryList") if param(&params, "g") == Some("apidiscovery.k8s.io") => {
                match param(&params, "v") {
                    Some("v2") => return Some("v2"),
                    Some("v2beta1") => return Some("v2beta1"),
                    _ => continue,
                }
            }
            Some(_) => continue,
        }
    }
    None
}

/// `fieldValidation`: what to do with unknown or duplicate fields in a body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    /// The server's default: accept, and say so in a `Warning` header.
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(value: Option<&str>) -> Result<FieldValidation, HttpError> {
        match value {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation parameter unsupported: {other}"
            ))
            .into()),
        }
    }
}

/// The encodings a request body may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Yaml,
    /// `application/vnd.kubernetes.protobuf` (objects only; see [`super::protobuf`]).
    Protobuf,
}

/// The body format named by a Content-Type (JSON when absent, as upstream).
pub fn body_format(content_type: Option<&str>) -> Result<BodyFormat, HttpError> {
    let media = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(BodyFormat::Yaml),
        "application/vnd.kubernetes.protobuf" => Ok(BodyFormat::Protobuf),
        _ => Err(HttpError::UnsupportedMediaType {
            media,
            accepted: "application/json, application/yaml, application/vnd.kubernetes.protobuf",
        }),
    }
}

/// Parse a body into a JSON value.
pub fn parse_value(bytes: &[u8], format: BodyFormat) -> Result<Value, String> {
    match format {
        BodyFormat::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        BodyFormat::Yaml => serde_yaml::from_slice(bytes).map_err(|e| e.to_string()),
        BodyFormat::Protobuf => {
            Err("protobuf is accepted for objects only; send JSON or YAML".to_string())
        }
    }
}

/// The first 30 characters of a body, for error messages (upstream's `summarizeData`).
fn summarize(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s: String = s.chars().take(30).collect();
    if bytes.len() > 30 {
        format!("{s} ...")
    } else {
        s
    }
}

/// A decoded body: the object and the warnings (`fieldValidation=Warn`).
#[derive(Debug)]
pub struct Decoded {
    pub object: Object,
    pub warnings: Vec<String>,
}

/// Parse a body that must hold a `kind` the server does not store (a self-review, an
/// Eviction): the parse error names the type, as [`decode_object`]'s does.
pub fn parse_unstored(bytes: &[u8], format: BodyFormat, kind: &str) -> Result<Value, ApiError> {
    parse_value(bytes, format).map_err(|e| {
        ApiError::BadRequest(format!(
            "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: {e}"
        ))
    })
}

/// A body whose `kind` is set and is not `expected` is 400, as upstream's decoder answers.
pub fn expect_kind(value: &Value, expected: &str) -> Result<(), ApiError> {
    match value.get("kind").and_then(Value::as_str) {
        Some(kind) if kind != expected => {
            let version = value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Err(ApiError::BadRequest(format!(
                "{kind} in version \"{version}\" cannot be handled as a {expected}"
            )))
        }
        _ => Ok(()),
    }
}

/// Decode a body that must be an object of `kind`. Mirrors the checks of upstream's create
/// and update handlers and `transformDecodeError`.
pub fn decode_object(
    kind: Kind,
    bytes: &[u8],
    format: BodyFormat,
    validation: FieldValidation,
) -> Result<Decoded, ApiError> {
    let value = parse_value(bytes, format).map_err(|e| {
        ApiError::BadRequest(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e} ({})",
            kind.name(),
            summarize(bytes)
        ))
    })?;
    decode_value(kind, value, validation)
}

/// Decode a parsed body of `kind` (see [`decode_object`]).
pub fn decode_value(
    kind: Kind,
    mut value: Value,
    validation: FieldValidation,
) -> Result<Decoded, ApiError> {
    let Some(map) = value.as_object_mut() else {
        return Err(ApiError::BadRequest(format!(
            "the object provided is unrecognized (must be of type {}): the body is not a JSON object",
            kind.name()
        )));
    };
    let body_kind = map
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .map(String::from);
    let body_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(String::from);
    let version_only = |api_version: &str| {
        api_version
            .rsplit('/')
            .next()
            .unwrap_or(api_version)
            .to_string()
    };
    if let Some(k) = &body_kind {
        if k != kind.name() {
            let v = version_only(body_version.as_deref().unwrap_or(kind.api_version()));
            return Err(ApiError::BadRequest(format!(
                "{k} in version \"{v}\" cannot be handled as a {}: no kind \"{k}\" is registered for version \"{}\"",
                kind.name(),
                kind.api_version()
            )));
        }
    }
    if let Some(v) = &body_version {
        if v != kind.api_version() {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                kind.api_version()
            )));
        }
    }
    map.insert("kind".into(), Value::from(kind.name()));
    map.insert("apiVersion".into(), Value::from(kind.api_version()));
    let cannot_handle = |detail: String| {
        ApiError::BadRequest(format!(
            "{} in version \"v1\" cannot be handled as a {}: {detail}",
            kind.name(),
            kind.name()
        ))
    };
    let object =
        Object::from_value(kind, value.clone()).map_err(|e| cannot_handle(e.to_string()))?;
    let mut warnings = Vec::new();
    if validation != FieldValidation::Ignore {
        let typed = serde_json::to_value(&object).unwrap_or(Value::Null);
        let mut unknown = Vec::new();
        unknown_fields(&value, &typed, "", &mut unknown);
        if !unknown.is_empty() {
            let msgs: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            match validation {
                FieldValidation::Strict => {
                    return Err(cannot_handle(format!(
                        "strict decoding error: {}",
                        msgs.join(", ")
                    )))
                }
                _ => warnings = msgs,
            }
        }
    }
    Ok(Decoded { object, warnings })
}

/// The paths of `input` that the typed object dropped: unknown fields, as upstream's strict
/// decoder names them (`spec.template.spec.containers[0].imagePullPolic`).
pub fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    Some(tv) => unknown_fields(v, tv, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t).enumerate() {
                unknown_fields(iv, tv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_get_asks_for_a_table_first() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(output_for(Some(accept)), Output::Table("meta.k8s.io/v1"));
        assert_eq!(output_for(Some("application/json")), Output::Object);
        assert_eq!(
            output_for(Some("application/vnd.kubernetes.protobuf,application/json")),
            Output::Object
        );
        assert_eq!(output_for(None), Output::Object);
    }

    #[test]
    fn aggregated_discovery_only_when_asked_first() {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_discovery_for(Some(accept)), Some("v2"));
        assert_eq!(
            aggregated_discovery_for(Some(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            )),
            Some("v2beta1")
        );
        assert_eq!(
            aggregated_discovery_for(Some("application/json, */*")),
            None
        );
    }

    fn deployment(extra: Value) -> Value {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "creationTimestamp": null},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}}}
        });
        if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                d.insert(k.clone(), v.clone());
            }
        }
        d
    }

    #[test]
    fn a_known_body_decodes_without_warnings() {
        let d = decode_value(
            Kind::Deployment,
            deployment(json!({})),
            FieldValidation::Strict,
        )
        .unwrap();
        assert_eq!(d.object.name(), "web");
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn unknown_fields_are_rejected_when_strict_and_warned_otherwise() {
        let mut body = deployment(json!({}));
        body["spec"]["template"]["spec"]["containers"][0]["imagePullPolic"] = json!("Always");
        body["spec"]["bogus"] = json!(1);
        let err =
            decode_value(Kind::Deployment, body.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.bogus\", unknown field \"spec.template.spec.containers[0].imagePullPolic\""
        );
        let warned = decode_value(Kind::Deployment, body.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(warned.warnings.len(), 2);
        let ignored = decode_value(Kind::Deployment, body, FieldValidation::Ignore).unwrap();
        assert!(ignored.warnings.is_empty());
    }

    #[test]
    fn wrong_kind_or_api_version_is_a_bad_request() {
        let err = decode_value(
            Kind::Deployment,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}),
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err
            .to_string()
            .starts_with("Pod in version \"v1\" cannot be handled as a Deployment"));
        let err = decode_value(
            Kind::Deployment,
            json!({"apiVersion": "apps/v2", "kind": "Deployment"}),
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the API version in the data (apps/v2) does not match the expected API version (apps/v1)"
        );
    }

    #[test]
    fn yaml_bodies_decode_like_json() {
        let yaml = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n";
        let d = decode_object(
            Kind::Namespace,
            yaml,
            BodyFormat::Yaml,
            FieldValidation::Strict,
        )
        .unwrap();
        assert_eq!(d.object.name(), "team-a");
        let err = decode_object(
            Kind::Namespace,
            b"{not json",
            BodyFormat::Json,
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(err.code(), 400);
    }
}
