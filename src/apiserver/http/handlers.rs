//! The request handlers: each verb unpacks the request, sends one typed message to the
//! ApiServer, and encodes the reply. Mirrors `k8s.io/apiserver/pkg/endpoints/handlers`
//! (`get.go`, `create.go`, `update.go`, `delete.go`, `watch.go`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Binding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use serde_json::{json, Value};

use super::body::{self, FieldValidation, Output};
use super::managedfields::{self, Writer};
use super::patch::{self, PatchType};
use super::path::{self, ResourcePath, Route};
use super::reviews::Review;
use super::table::{self, ListMeta};
use super::{admin, auth, discovery, logs, openapi, protobuf, watch, HttpError, HttpOptions};
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::{Kind, Object};
use crate::apiserver::{
    ApiError, ApiServer, Bind, Create, Delete, Deleted, Get, GuaranteedUpdate, List, ListVersion,
    ObjectList, Subresource, Trace, UpdateFn, Watch, WatchFrom, WriteOptions,
};
use crate::telemetry;

/// What every handler shares.
pub struct State {
    pub api: Addr<ApiServer>,
    pub opts: HttpOptions,
}

/// The one actix-web service: every request comes through here.
pub async fn serve(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    // --- metrics: apiserver_request_total / _duration_seconds (issue 7) ---
    let started = std::time::Instant::now();
    let info = request_info(&req);
    // --- end metrics ---
    let resp = match handle(&req, payload, &state).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    };
    // --- metrics ---
    info.record(
        crate::metrics::global(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    // --- end metrics ---
    resp
}

// --- metrics (issue 7) ---

/// The request's labels for `apiserver_request_*`. Mirrors `MonitorRequest` and
/// `CleanVerb` (staging/src/k8s.io/apiserver/pkg/endpoints/metrics/metrics.go).
fn request_info(req: &HttpRequest) -> crate::metrics::RequestInfo {
    use crate::metrics::RequestInfo;
    let method = req.method().as_str();
    let rp = match path::parse(req.path()) {
        Ok(Route::Resource(rp)) => rp,
        // A self-review is a cluster-scoped resource request (`CREATE selfsubjectaccessreviews`).
        Ok(Route::Review(review, version)) => {
            return RequestInfo {
                verb: RequestInfo::verb_of(method, false, false, false),
                group: review.group().to_string(),
                version: version.to_string(),
                resource: review.plural().to_string(),
                subresource: String::new(),
                scope: "cluster",
            }
        }
        _ => return RequestInfo::non_resource(method),
    };
    let watch = req
        .query_string()
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1" || kv == "watch");
    let apply = header(req, CONTENT_TYPE) == Some("application/apply-patch+yaml");
    RequestInfo {
        verb: RequestInfo::verb_of(method, rp.name.is_some(), watch, apply),
        group: rp.kind.group().to_string(),
        version: rp.kind.version().to_string(),
        resource: rp.kind.plural().to_string(),
        subresource: rp.subresource.unwrap_or_default(),
        scope: match (&rp.name, &rp.namespace) {
            (Some(_), _) => "resource",
            (None, Some(_)) => "namespace",
            (None, None) => "cluster",
        },
    }
}

/// `GET /metrics`: every metric of the process in Prometheus' text format. First sets
/// `kubelet_running_pods` from each node's runtime (pods with a ready sandbox), as the
/// kubelet computes it from its runtime cache.
async fn metrics_response(state: &State) -> HttpResponse {
    use crate::runtime::messages::{ListPodSandbox, SandboxState};
    for (name, node) in state.opts.backends.nodes.iter() {
        if let Ok(sandboxes) = node.runtime.send(ListPodSandbox { pod_uid: None }).await {
            let ready = sandboxes
                .iter()
                .filter(|s| s.state == SandboxState::Ready)
                .count();
            crate::metrics::global().set_running_pods(name, ready);
        }
    }
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(crate::metrics::global().encode())
}

// --- end metrics ---

/// A `Status` reply for an error.
pub fn error_response(e: &HttpError) -> HttpResponse {
    let status = e.to_status();
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code)
        .content_type("application/json")
        .body(serde_json::to_vec(&status).unwrap_or_default())
}

fn header(req: &HttpRequest, name: actix_web::http::header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn json_response(code: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(code)
        .content_type("application/json")
        .body(body)
}

fn json_value(code: StatusCode, v: &Value) -> HttpResponse {
    json_response(code, serde_json::to_vec(v).unwrap_or_default())
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
) -> Result<HttpResponse, HttpError> {
    let path = req.path();
    if auth::is_public(path) {
        if path.trim_end_matches('/') == "/version" {
            return Ok(json_value(
                StatusCode::OK,
                &version(state.opts.version_minor),
            ));
        }
        return Ok(HttpResponse::Ok().content_type("text/plain").body("ok"));
    }
    if let Some(token) = &state.opts.token {
        if !auth::authorized(header(req, AUTHORIZATION), token) {
            return Err(HttpError::Unauthorized);
        }
    }
    let trimmed = path.trim_end_matches('/');
    // --- metrics ---
    if trimmed == "/metrics" {
        if req.method() != Method::GET {
            return Err(HttpError::MethodNotAllowed);
        }
        return Ok(metrics_response(state).await);
    }
    // --- end metrics ---
    if path.starts_with(admin::PREFIX) {
        return admin::serve(req, payload, state).await;
    }
    if trimmed.starts_with("/openapi/") {
        if req.method() != Method::GET {
            return Err(HttpError::MethodNotAllowed);
        }
        if trimmed == "/openapi/v2" {
            return Ok(HttpResponse::Ok()
                .insert_header((CONTENT_TYPE, "application/octet-stream"))
                .body(openapi::v2_protobuf(state.opts.version_minor)));
        }
        return openapi::respond(
            trimmed,
            req.query_string(),
            header(req, actix_web::http::header::IF_NONE_MATCH),
            state.opts.version_minor,
        )
        .ok_or(HttpError::NotFound);
    }
    let route = path::parse(path).map_err(|_| HttpError::NotFound)?;
    if let Route::Resource(rp) = route {
        return resource(req, payload, state, rp).await;
    }
    if let Route::Services { name, .. } = route {
        return services(req, name.as_deref()).await;
    }
    if let Route::Review(review, version) = route {
        return self_review(req, payload, state, review, version).await;
    }
    if req.method() != Method::GET {
        return Err(HttpError::MethodNotAllowed);
    }
    let accept = header(req, ACCEPT);
    let aggregated = body::aggregated_discovery_for(accept);
    let doc = match (route, aggregated) {
        (Route::Api, Some(v)) => return Ok(aggregated_response(discovery::aggregated(true, v), v)),
        (Route::Apis, Some(v)) => {
            return Ok(aggregated_response(discovery::aggregated(false, v), v))
        }
        (Route::Api, None) => {
            let host = req.connection_info().host().to_string();
            discovery::api_versions(&host)
        }
        (Route::Apis, None) => discovery::api_group_list(),
        (Route::Group(g), _) => discovery::group(&g).ok_or(HttpError::NotFound)?,
        (Route::GroupVersion { group, version }, _) => discovery::resource_list(&group, &version),
        (Route::Resource(_) | Route::Services { .. } | Route::Review(..), _) => {
            return Err(HttpError::NotFound)
        }
    };
    Ok(json_value(StatusCode::OK, &doc))
}

fn aggregated_response(doc: Value, version: &str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, discovery::aggregated_content_type(version)))
        .body(serde_json::to_vec(&doc).unwrap_or_default())
}

/// `/version`, as kube-apiserver's `version.Info`.
pub fn version(minor: u32) -> Value {
    json!({
        "major": "1",
        "minor": minor.to_string(),
        "gitVersion": format!("v1.{minor}.0-kubeactor"),
        "gitCommit": "kubeactor",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none (rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The query parameters (the last value of a repeated key wins, except `dryRun`).
struct Query(HashMap<String, String>);

impl Query {
    fn parse(query: &str) -> Result<Query, HttpError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
        Ok(Query(pairs.into_inner().into_iter().collect()))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// `dryRun`: `All` or nothing (upstream rejects any other value).
    fn dry_run(&self) -> Result<bool, HttpError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "Invalid dryRun value: {other}; only \"All\" is supported"
            ))
            .into()),
        }
    }
}

/// The trace a write belongs to: the client's `traceparent`, or a new root.
fn trace_for(req: &HttpRequest) -> Trace {
    match req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        Some(tp) => Trace::child_of(telemetry::from_traceparent(tp)),
        None => Trace::root(),
    }
}

/// The header kubectl (1.22+) sends with every request: the command being run, e.g.
/// `kubectl set image` (KEP-859, kubectl commands in headers).
const KUBECTL_COMMAND: &str = "Kubectl-Command";

/// The longest `Kubectl-Command` used in a span name; a longer value is ignored.
const MAX_COMMAND_LEN: usize = 128;

/// A write's options: `dryRun`, and the span name and client command from the request.
fn write_options(
    req: &HttpRequest,
    dry_run: bool,
    verb: &str,
    kind: Kind,
    name: &str,
) -> WriteOptions {
    let command = kubectl_command(req);
    WriteOptions {
        dry_run,
        span_name: span_name(req, command.as_deref(), verb, kind, name),
        command,
    }
}

/// The `Kubectl-Command` header, if present, printable and not absurdly long.
fn kubectl_command(req: &HttpRequest) -> Option<String> {
    let command = req.headers().get(KUBECTL_COMMAND)?.to_str().ok()?.trim();
    let usable = !command.is_empty()
        && command.len() <= MAX_COMMAND_LEN
        && command.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    usable.then(|| command.to_string())
}

/// The span name of a write, after the client's command: `kubectl set image deployments/web`
/// from `Kubectl-Command` (`kubectl create deployment` gives `kubectl create
/// deployments/web`), else the User-Agent's client and the verb (`kubectl patch
/// deployments/web`); the namespace is in the span's `k8s.object.key`. Without either the
/// ApiServer names the span itself.
fn span_name(
    req: &HttpRequest,
    command: Option<&str>,
    verb: &str,
    kind: Kind,
    name: &str,
) -> Option<String> {
    if let Some(command) = command {
        // `kubectl create deployment` names the kind the path names again: drop it.
        let command = match command.rsplit_once(' ') {
            Some((rest, last))
                if last.eq_ignore_ascii_case(kind.name()) || last == kind.plural() =>
            {
                rest
            }
            _ => command,
        };
        return Some(format!("{command} {}/{name}", kind.plural()));
    }
    let client = header(req, USER_AGENT)?.split('/').next()?.trim();
    if client.is_empty() {
        return None;
    }
    Some(format!("{client} {verb} {}/{name}", kind.plural()))
}

/// Read the body, refusing more than `limit` bytes.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, HttpError> {
    let declared = header(req, CONTENT_LENGTH).and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > limit) {
        return Err(HttpError::TooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("error reading the body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(HttpError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

async fn resource(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    rp: ResourcePath,
) -> Result<HttpResponse, HttpError> {
    let q = Query::parse(req.query_string())?;
    let kind = rp.kind;
    // A named namespaced object needs its namespace in the path.
    if kind.namespaced() && rp.name.is_some() && rp.namespace.is_none() {
        return Err(HttpError::NotFound);
    }
    let method = req.method().clone();
    match (rp.name.as_deref(), rp.subresource.as_deref()) {
        (None, None) => match method {
            Method::GET if q.flag("watch") => watch(req, state, &rp, &q).await,
            Method::GET => list(req, state, &rp, &q).await,
            Method::POST if kind.namespaced() && rp.namespace.is_none() => {
                Err(HttpError::MethodNotAllowed)
            }
            Method::POST => create(req, payload, state, &rp, &q).await,
            Method::DELETE => delete_collection(req, payload, state, &rp, &q).await,
            _ => Err(HttpError::MethodNotAllowed),
        },
        (Some(name), None) => match method {
            Method::GET => get(req, state, &rp, name).await,
            Method::PUT => update(req, payload, state, &rp, &q, name, Subresource::Main).await,
            Method::DELETE => delete(req, payload, state, &rp, &q, name).await,
            Method::PATCH => patch(req, payload, state, &rp, &q, name, Subresource::Main).await,
            _ => Err(HttpError::MethodNotAllowed),
        },
        (Some(name), Some("status")) => match method {
            Method::GET => get(req, state, &rp, name).await,
            Method::PUT => update(req, payload, state, &rp, &q, name, Subresource::Status).await,
            Method::PATCH => patch(req, payload, state, &rp, &q, name, Subresource::Status).await,
            _ => Err(HttpError::MethodNotAllowed),
        },
        (Some(name), Some("scale")) if patch::has_scale(kind) => match method {
            Method::GET => get_scale(state, &rp, name).await,
            Method::PUT | Method::PATCH => scale(req, payload, state, &rp, &q, name).await,
            _ => Err(HttpError::MethodNotAllowed),
        },
        (Some(name), Some("log")) if kind == Kind::Pod => match method {
            Method::GET => {
                let opts = logs::LogOptions::parse(|k| q.get(k).map(str::to_string))?;
                logs::serve(
                    &state.api,
                    &state.opts.backends,
                    rp.namespace.clone(),
                    name,
                    opts,
                )
                .await
            }
            _ => Err(HttpError::MethodNotAllowed),
        },
        (Some(name), Some("eviction")) if kind == Kind::Pod => match method {
            Method::POST => evict(req, payload, state, &rp, &q, name).await,
            _ => Err(HttpError::MethodNotAllowed),
        },
        (Some(name), Some("binding")) if kind == Kind::Pod => match method {
            Method::POST => bind(req, payload, state, &rp, name).await,
            _ => Err(HttpError::MethodNotAllowed),
        },
        _ => Err(HttpError::NotFound),
    }
}

// ---- reads ----

async fn get(
    req: &HttpRequest,
    state: &State,
    rp: &ResourcePath,
    name: &str,
) -> Result<HttpResponse, HttpError> {
    let obj = state
        .api
        .send(Get {
            kind: rp.kind,
            namespace: rp.namespace.clone(),
            name: name.to_string(),
        })
        .await??;
    Ok(match body::output_for(header(req, ACCEPT)) {
        Output::Object => json_response(StatusCode::OK, obj.to_json()),
        Output::Table(api_version) => {
            let meta = ListMeta {
                resource_version: obj.resource_version().to_string(),
                ..Default::default()
            };
            let t =
                table::table_bytes(rp.kind, [&*obj], &meta, api_version, jiff::Timestamp::now());
            json_response(StatusCode::OK, t)
        }
    })
}

fn bad_request(msg: impl Into<String>) -> HttpError {
    ApiError::BadRequest(msg.into()).into()
}

/// Selectors, paging and resourceVersion of a list (`metav1.ListOptions`).
fn list_options(rp: &ResourcePath, q: &Query) -> Result<List, HttpError> {
    let label_selector = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| bad_request(e.to_string()))?;
    let field_selector = FieldSelector::parse_for(rp.kind, q.get("fieldSelector").unwrap_or(""))
        .map_err(|e| bad_request(e.to_string()))?;
    let limit = match q.get("limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| bad_request(format!("invalid limit: {l:?}")))?
            .max(0) as usize,
    };
    let continue_token = q
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(String::from);
    let rv = q.get("resourceVersion").filter(|v| !v.is_empty());
    let parse_rv = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| bad_request(format!("invalid resource version: {v:?}")))
    };
    let version = match (rv, q.get("resourceVersionMatch").filter(|m| !m.is_empty())) {
        (None, None) => ListVersion::Latest,
        (None, Some(_)) => {
            return Err(bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ))
        }
        (Some(_), _) if continue_token.is_some() => {
            return Err(bad_request(
                "specifying resource version is not allowed when using continue",
            ))
        }
        (Some("0"), None | Some("NotOlderThan")) => ListVersion::Any,
        (Some(v), None | Some("NotOlderThan")) => ListVersion::NotOlderThan(parse_rv(v)?),
        (Some(v), Some("Exact")) => ListVersion::Exact(parse_rv(v)?),
        (Some(_), Some(m)) => {
            return Err(bad_request(format!(
                "resourceVersionMatch: Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\""
            )))
        }
    };
    Ok(List {
        kind: rp.kind,
        namespace: rp.namespace.clone(),
        label_selector,
        field_selector,
        version,
        limit,
        continue_token,
    })
}

/// `{"kind":"PodList",…,"items":[…]}`, written item by item.
pub fn list_json(kind: Kind, list: &ObjectList) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + list.items.len() * 1024);
    out.extend_from_slice(
        format!(
            "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{}\"",
            kind.name(),
            kind.api_version(),
            list.resource_version
        )
        .as_bytes(),
    );
    if let Some(c) = &list.continue_token {
        out.extend_from_slice(b",\"continue\":");
        out.extend_from_slice(&serde_json::to_vec(c).unwrap_or_default());
    }
    if let Some(r) = list.remaining {
        out.extend_from_slice(format!(",\"remainingItemCount\":{r}").as_bytes());
    }
    out.extend_from_slice(b"},\"items\":[");
    for (i, item) in list.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Serializing the k8s-openapi types cannot fail (plain data with string keys).
        let _ = serde_json::to_writer(&mut out, &**item);
    }
    out.extend_from_slice(b"]}");
    out
}

async fn list(
    req: &HttpRequest,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
) -> Result<HttpResponse, HttpError> {
    let msg = list_options(rp, q)?;
    let list = state.api.send(msg).await??;
    Ok(match body::output_for(header(req, ACCEPT)) {
        Output::Object => json_response(StatusCode::OK, list_json(rp.kind, &list)),
        Output::Table(api_version) => {
            let meta = ListMeta {
                resource_version: list.resource_version.to_string(),
                continue_token: list.continue_token.clone(),
                remaining: list.remaining,
            };
            let t = table::table_bytes(
                rp.kind,
                list.items.iter().map(|o| &**o),
                &meta,
                api_version,
                jiff::Timestamp::now(),
            );
            json_response(StatusCode::OK, t)
        }
    })
}

async fn watch(
    req: &HttpRequest,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
) -> Result<HttpResponse, HttpError> {
    let opts = list_options(rp, q)?;
    let from = match opts.version {
        ListVersion::Latest | ListVersion::Any => WatchFrom::Now,
        ListVersion::NotOlderThan(rv) | ListVersion::Exact(rv) => WatchFrom::Revision(rv),
    };
    let timeout = match q.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| bad_request(format!("invalid timeoutSeconds: {t:?}")))?,
        ),
        None => watch::DEFAULT_TIMEOUT,
    };
    let params = watch::Params {
        kind: rp.kind,
        table: match body::output_for(header(req, ACCEPT)) {
            Output::Object => None,
            Output::Table(v) => Some(v),
        },
        bookmarks: q.flag("allowWatchBookmarks"),
        bookmark_interval: state.opts.bookmark_interval,
        timeout,
    };
    let msg = Watch {
        kind: rp.kind,
        namespace: opts.namespace,
        label_selector: opts.label_selector,
        field_selector: opts.field_selector,
        from,
    };
    let body = match state.api.send(msg).await? {
        Ok(stream) => watch::events(state.api.clone(), stream, params).boxed_local(),
        // Too old a resourceVersion is an ERROR event in a 200 stream, as upstream.
        Err(e @ ApiError::Gone(_)) => watch::error_only(&e).boxed_local(),
        Err(e) => return Err(e.into()),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(body))
}

// ---- writes ----

/// The object's name must be the one on the URL (upstream's update/patch handlers' check).
fn ensure_name(obj: &Object, name: &str) -> Result<(), HttpError> {
    if obj.name() == name {
        return Ok(());
    }
    Err(bad_request(format!(
        "the name of the object ({}) does not match the name on the URL ({name})",
        obj.name()
    )))
}

/// Upstream's `EnsureObjectNamespaceMatchesRequestNamespace`.
fn ensure_namespace(obj: &mut Object, request_ns: Option<&str>) -> Result<(), HttpError> {
    let obj_ns = obj.meta().namespace.clone().unwrap_or_default();
    let request_ns = request_ns.unwrap_or("");
    if obj_ns == request_ns {
        return Ok(());
    }
    if obj_ns.is_empty() {
        obj.meta_mut().namespace = Some(request_ns.to_string());
        return Ok(());
    }
    if request_ns.is_empty() {
        obj.meta_mut().namespace = None;
        return Ok(());
    }
    Err(bad_request(
        "the namespace of the provided object does not match the namespace sent on the request",
    ))
}

/// Decode a write's body as an object of the path's kind.
async fn decode_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
) -> Result<body::Decoded, HttpError> {
    let validation = FieldValidation::parse(q.get("fieldValidation"))?;
    let bytes = read_body(req, payload, state.opts.max_request_bytes).await?;
    let format = body::body_format(header(req, CONTENT_TYPE))?;
    let mut decoded = match format {
        body::BodyFormat::Protobuf => {
            let value = protobuf::decode(rp.kind, &bytes)?;
            body::decode_value(rp.kind, value, validation)?
        }
        _ => body::decode_object(rp.kind, &bytes, format, validation)?,
    };
    ensure_namespace(&mut decoded.object, rp.namespace.as_deref())?;
    Ok(decoded)
}

fn object_response(code: StatusCode, obj: &Object, warnings: &[String]) -> HttpResponse {
    let mut b = HttpResponse::build(code);
    b.content_type("application/json");
    for w in warnings {
        b.append_header(("Warning", format!("299 - {}", json!(w))));
    }
    b.body(obj.to_json())
}

async fn create(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
) -> Result<HttpResponse, HttpError> {
    let dry_run = q.dry_run()?;
    let decoded = decode_body(req, payload, state, rp, q).await?;
    let mut object = decoded.object;
    let manager = field_manager(req, q)?;
    record_update(None, &mut object, &manager, Subresource::Main, "")?;
    let name = match object.name() {
        "" => object.meta().generate_name.clone().unwrap_or_default(),
        n => n.to_string(),
    };
    let options = write_options(req, dry_run, "create", rp.kind, &name);
    let created = state
        .api
        .send(Create {
            object,
            options,
            trace: trace_for(req),
        })
        .await??;
    Ok(object_response(
        StatusCode::CREATED,
        &created,
        &decoded.warnings,
    ))
}

/// PUT: the object replaces the latest state ([`GuaranteedUpdate`], so the `Update`
/// managedFields entry is computed against exactly what it replaces); only an object that
/// names a `metadata.resourceVersion` can get 409 Conflict (upstream's `UpdateResource` with
/// `GuaranteedUpdate` underneath).
async fn update(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
    name: &str,
    subresource: Subresource,
) -> Result<HttpResponse, HttpError> {
    let dry_run = q.dry_run()?;
    let decoded = decode_body(req, payload, state, rp, q).await?;
    ensure_name(&decoded.object, name)?;
    let manager = field_manager(req, q)?;
    let verb = match subresource {
        Subresource::Main => "update",
        Subresource::Status => "update status",
    };
    let options = write_options(req, dry_run, verb, rp.kind, name);
    let pinned = decoded
        .object
        .meta()
        .resource_version
        .as_deref()
        .is_some_and(|rv| !rv.is_empty());
    let mut object = decoded.object;
    let change: UpdateFn = Box::new(move |live: &Object| {
        record_update(Some(live), &mut object, &manager, subresource, "")
            .map_err(into_api_error)?;
        if !pinned {
            object.meta_mut().resource_version = live.meta().resource_version.clone();
        }
        Ok(object)
    });
    let updated = state
        .api
        .send(GuaranteedUpdate {
            kind: rp.kind,
            namespace: rp.namespace.clone(),
            name: name.to_string(),
            subresource,
            change,
            options,
            trace: trace_for(req),
        })
        .await??;
    Ok(object_response(StatusCode::OK, &updated, &decoded.warnings))
}

// ---- field management ----

/// The field manager of a write: `fieldManager`, or the User-Agent's program name.
fn field_manager(req: &HttpRequest, q: &Query) -> Result<String, HttpError> {
    let manager =
        managedfields::manager_or_user_agent(q.get("fieldManager"), header(req, USER_AGENT));
    managedfields::validate_manager(&manager).map_err(|m| {
        HttpError::from(ApiError::Invalid {
            qualified_kind: "PatchOptions.meta.k8s.io".into(),
            name: String::new(),
            group: "meta.k8s.io".into(),
            kind: "PatchOptions".into(),
            causes: vec![crate::api::validation::FieldError::invalid(
                &crate::api::validation::Path::new("fieldManager"),
                manager.clone(),
                &m,
            )],
        })
    })?;
    Ok(manager)
}

fn to_value(obj: &Object) -> Result<Value, HttpError> {
    serde_json::to_value(obj).map_err(|e| ApiError::Internal(e.to_string()).into())
}

fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(crate::apiserver::strategy::now())
}

fn subresource_name(sub: Subresource, scale: &str) -> &str {
    match sub {
        Subresource::Status => "status",
        Subresource::Main => scale,
    }
}

/// Record `manager`'s `Update` entry on `new`, a write over `live` (`None`: a create). The
/// managers are the ones `new` carries, or the live ones when it carries none (upstream's
/// field manager does the same: a client may reset them, not drop them by omission). A write
/// to the main resource is defaulted first (idempotent), so fields the defaults fill in are
/// not recorded as the writer's changes.
fn record_update(
    live: Option<&Object>,
    new: &mut Object,
    manager: &str,
    subresource: Subresource,
    other_subresource: &str,
) -> Result<(), HttpError> {
    if subresource == Subresource::Main {
        crate::api::defaults::apply(new);
    }
    let scope = match subresource {
        Subresource::Main => managedfields::Scope::Main,
        Subresource::Status => managedfields::Scope::Status,
    };
    let live_value = match live {
        Some(l) => to_value(l)?,
        None => json!({}),
    };
    let cmp = managedfields::compare(&live_value, &to_value(new)?, scope);
    let live_entries = live.and_then(|l| l.meta().managed_fields.as_deref());
    let base = match new.meta().managed_fields.as_deref() {
        Some(m) if !m.is_empty() => m,
        _ => live_entries.unwrap_or(&[]),
    };
    // Entries that do not parse are dropped, as upstream resets undecodable managedFields.
    let mut managers = managedfields::decode(base).unwrap_or_default();
    let writer = Writer {
        manager,
        subresource: subresource_name(subresource, other_subresource),
        api_version: new.kind().api_version(),
    };
    managedfields::update(&mut managers, &cmp, &writer, &now());
    set_managers(new, &managers, live_entries.is_some_and(|e| !e.is_empty()));
    Ok(())
}

/// Put the managers on the object; an empty list is written only to clear live entries.
fn set_managers(obj: &mut Object, managers: &[managedfields::Managed], live_had_some: bool) {
    obj.meta_mut().managed_fields = if managers.is_empty() && !live_had_some {
        None
    } else {
        Some(managedfields::encode(managers))
    };
}

/// Server-side apply of `config` onto `live` (`None`: the object is new): the object to
/// store, with its managedFields, or the 409 of conflicting fields.
fn server_side_apply(
    live: Option<&Object>,
    config: &Value,
    kind: Kind,
    manager: &str,
    subresource: Subresource,
    force: bool,
) -> Result<Value, HttpError> {
    if config.pointer("/metadata/managedFields").is_some() {
        return Err(bad_request("metadata.managedFields must be nil"));
    }
    let live_value = match live {
        Some(l) => to_value(l)?,
        None => json!({}),
    };
    let merged = patch::merge_apply(&live_value, config)?;
    let managers = live
        .and_then(|l| l.meta().managed_fields.as_deref())
        .map(|m| managedfields::decode(m).unwrap_or_default())
        .unwrap_or_default();
    let writer = Writer {
        manager,
        subresource: subresource_name(subresource, ""),
        api_version: kind.api_version(),
    };
    let applied = managedfields::apply(
        &live_value,
        config,
        merged,
        managers,
        &writer,
        force,
        &now(),
    )?;
    let mut object = applied.object;
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let entries = managedfields::encode(&applied.managers);
        meta.insert(
            "managedFields".into(),
            serde_json::to_value(entries).map_err(|e| ApiError::Internal(e.to_string()))?,
        );
    }
    Ok(object)
}

/// DeleteOptions from the body (JSON, YAML or protobuf) or, when there is none, the query.
async fn delete_options(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    q: &Query,
) -> Result<DeleteOptions, HttpError> {
    let bytes = read_body(req, payload, state.opts.max_request_bytes).await?;
    let mut opts = if bytes.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        let value = match body::body_format(header(req, CONTENT_TYPE))? {
            body::BodyFormat::Protobuf => protobuf::decode_delete_options(&bytes)?,
            format => body::parse_value(&bytes, format).map_err(bad_request)?,
        };
        serde_json::from_value(value).map_err(|e| bad_request(e.to_string()))?
    };
    if let Some(g) = q.get("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| bad_request(format!("invalid gracePeriodSeconds: {g:?}")))?,
        );
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation_policy = Some(p.to_string());
    }
    Ok(opts)
}

/// Read the body of a `kind` the server does not store (an Eviction, a self-review):
/// protobuf through `from_protobuf`, JSON or YAML parsed as it is.
async fn read_unstored(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    kind: &str,
    from_protobuf: impl FnOnce(&[u8]) -> Result<Value, protobuf::ProtobufError>,
) -> Result<Value, HttpError> {
    let bytes = read_body(req, payload, state.opts.max_request_bytes).await?;
    Ok(match body::body_format(header(req, CONTENT_TYPE))? {
        body::BodyFormat::Protobuf => from_protobuf(&bytes)?,
        format => body::parse_unstored(&bytes, format, kind)?,
    })
}

/// Delete one object with `options`; `dryRun` may come in the query or in the options.
async fn send_delete(
    req: &HttpRequest,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
    name: &str,
    options: DeleteOptions,
    verb: &str,
) -> Result<Deleted, HttpError> {
    let dry_run = q.dry_run()?
        || options
            .dry_run
            .as_ref()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok(state
        .api
        .send(Delete {
            kind: rp.kind,
            namespace: rp.namespace.clone(),
            name: name.to_string(),
            options,
            write: write_options(req, dry_run, verb, rp.kind, name),
            trace: trace_for(req),
        })
        .await??)
}

/// `POST pods/<name>/eviction` (`policy/v1` Eviction, what `kubectl drain` sends): delete
/// the pod with the eviction's DeleteOptions, answered 201 with a Success `Status`. Mirrors
/// `EvictionREST.Create` (pkg/registry/core/pod/storage/eviction.go) with no
/// PodDisruptionBudget: none can exist here (the resource is not served), and upstream
/// deletes the pod when no budget covers it.
async fn evict(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
    name: &str,
) -> Result<HttpResponse, HttpError> {
    let value = read_unstored(req, payload, state, "Eviction", protobuf::decode_eviction).await?;
    body::expect_kind(&value, "Eviction")?;
    let meta = |field: &str| value["metadata"].get(field).and_then(Value::as_str);
    if meta("name") != Some(name) {
        return Err(bad_request(
            "name in URL does not match name in Eviction object".to_string(),
        ));
    }
    if meta("namespace").is_some_and(|ns| !ns.is_empty() && Some(ns) != rp.namespace.as_deref()) {
        return Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
                .to_string(),
        ));
    }
    let options: DeleteOptions = match value.get("deleteOptions") {
        Some(o) if !o.is_null() => {
            serde_json::from_value(o.clone()).map_err(|e| bad_request(e.to_string()))?
        }
        _ => DeleteOptions::default(),
    };
    send_delete(req, state, rp, q, name, options, "evict").await?;
    Ok(json_value(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

async fn delete(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
    name: &str,
) -> Result<HttpResponse, HttpError> {
    let options = delete_options(req, payload, state, q).await?;
    let deleted = send_delete(req, state, rp, q, name, options, "delete").await?;
    Ok(match deleted {
        Deleted::Gone(o) => object_response(StatusCode::OK, &o, &[]),
        Deleted::Pending(o) => object_response(StatusCode::ACCEPTED, &o, &[]),
    })
}

/// `deletecollection`: delete every object the selectors match; replies with the list of
/// what was deleted (upstream's `DeleteCollection`).
async fn delete_collection(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
) -> Result<HttpResponse, HttpError> {
    if rp.kind == Kind::Namespace {
        return Err(HttpError::MethodNotAllowed);
    }
    let dry_run = q.dry_run()?;
    let mut list_msg = list_options(rp, q)?;
    list_msg.limit = 0;
    list_msg.continue_token = None;
    let options = delete_options(req, payload, state, q).await?;
    let listed = state.api.send(list_msg).await??;
    let mut items: Vec<Arc<Object>> = Vec::with_capacity(listed.items.len());
    for obj in &listed.items {
        let r = state
            .api
            .send(Delete {
                kind: rp.kind,
                namespace: obj.namespace().map(String::from),
                name: obj.name().to_string(),
                options: options.clone(),
                write: write_options(req, dry_run, "delete", rp.kind, obj.name()),
                trace: trace_for(req),
            })
            .await?;
        match r {
            Ok(d) => items.push(d.object().clone()),
            // Deleted by someone else meanwhile: nothing to do.
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let out = ObjectList {
        items,
        resource_version: listed.resource_version,
        continue_token: None,
        remaining: None,
    };
    Ok(json_response(StatusCode::OK, list_json(rp.kind, &out)))
}

/// `POST pods/<name>/binding`: bind a pod to a node.
async fn bind(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    rp: &ResourcePath,
    name: &str,
) -> Result<HttpResponse, HttpError> {
    let bytes = read_body(req, payload, state.opts.max_request_bytes).await?;
    let format = body::body_format(header(req, CONTENT_TYPE))?;
    let value = body::parse_value(&bytes, format).map_err(bad_request)?;
    let mut binding: Binding = serde_json::from_value(value).map_err(|e| {
        bad_request(format!(
            "Binding in version \"v1\" cannot be handled as a Binding: {e}"
        ))
    })?;
    match binding.metadata.name.as_deref() {
        None | Some("") => binding.metadata.name = Some(name.to_string()),
        Some(n) if n != name => {
            return Err(bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        Some(_) => {}
    }
    let namespace = rp.namespace.clone().unwrap_or_else(|| "default".into());
    state
        .api
        .send(Bind {
            namespace,
            binding,
            trace: trace_for(req),
        })
        .await??;
    Ok(json_value(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

// ---- patch and scale ----

async fn current(state: &State, rp: &ResourcePath, name: &str) -> Result<Arc<Object>, HttpError> {
    Ok(state
        .api
        .send(Get {
            kind: rp.kind,
            namespace: rp.namespace.clone(),
            name: name.to_string(),
        })
        .await??)
}

/// The ApiError inside an HttpError (what a [`GuaranteedUpdate`]'s change may return).
fn into_api_error(e: HttpError) -> ApiError {
    match e {
        HttpError::Api(e) => *e,
        other => ApiError::BadRequest(other.to_string()),
    }
}

/// PATCH: the patch is applied by the ApiServer to the object's latest state and written
/// against it ([`GuaranteedUpdate`]), so a concurrent write never makes it fail; only a patch
/// that names a `metadata.resourceVersion` can get 409 Conflict. Mirrors upstream's patcher
/// (`patchResource` in k8s.io/apiserver/pkg/endpoints/handlers/patch.go), whose
/// `applyPatch` is the update function of `GuaranteedUpdate`.
async fn patch(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
    name: &str,
    subresource: Subresource,
) -> Result<HttpResponse, HttpError> {
    let ty = patch::patch_type(header(req, CONTENT_TYPE))?;
    let dry_run = q.dry_run()?;
    let validation = FieldValidation::parse(q.get("fieldValidation"))?;
    let bytes = read_body(req, payload, state.opts.max_request_bytes).await?;
    let verb = match (subresource, ty) {
        (Subresource::Main, PatchType::Apply) => "apply",
        (Subresource::Main, _) => "patch",
        (Subresource::Status, _) => "patch status",
    };
    if ty == PatchType::Apply && q.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::Invalid {
            qualified_kind: "PatchOptions.meta.k8s.io".into(),
            name: String::new(),
            group: "meta.k8s.io".into(),
            kind: "PatchOptions".into(),
            causes: vec![crate::api::validation::FieldError::required(
                &crate::api::validation::Path::new("fieldManager"),
                "is required for apply patch",
            )],
        }
        .into());
    }
    let manager = field_manager(req, q)?;
    let force = q.flag("force");
    let config = match ty {
        PatchType::Apply => Some(patch::parse(&bytes, PatchType::Apply)?),
        _ => None,
    };
    let (warnings_tx, mut warnings_rx) = tokio::sync::oneshot::channel();
    let change: UpdateFn = {
        let (kind, namespace, name, bytes, manager, config) = (
            rp.kind,
            rp.namespace.clone(),
            name.to_string(),
            bytes.clone(),
            manager.clone(),
            config.clone(),
        );
        Box::new(move |current: &Object| {
            let patched = match &config {
                Some(config) => {
                    server_side_apply(Some(current), config, kind, &manager, subresource, force)
                        .map_err(into_api_error)?
                }
                None => {
                    let original = serde_json::to_value(current)
                        .map_err(|e| ApiError::Internal(e.to_string()))?;
                    patch::apply(&original, &bytes, ty)?
                }
            };
            let decoded = body::decode_value(kind, patched, validation)?;
            let mut object = decoded.object;
            ensure_name(&object, &name).map_err(into_api_error)?;
            ensure_namespace(&mut object, namespace.as_deref()).map_err(into_api_error)?;
            if config.is_none() {
                record_update(Some(current), &mut object, &manager, subresource, "")
                    .map_err(into_api_error)?;
            }
            let _ = warnings_tx.send(decoded.warnings);
            Ok(object)
        })
    };
    let result = state
        .api
        .send(GuaranteedUpdate {
            kind: rp.kind,
            namespace: rp.namespace.clone(),
            name: name.to_string(),
            subresource,
            change,
            options: write_options(req, dry_run, verb, rp.kind, name),
            trace: trace_for(req),
        })
        .await?;
    match result {
        Ok(updated) => {
            let warnings = warnings_rx.try_recv().unwrap_or_default();
            Ok(object_response(StatusCode::OK, &updated, &warnings))
        }
        // Apply creates what does not exist yet.
        Err(ApiError::NotFound { .. })
            if ty == PatchType::Apply && subresource == Subresource::Main =>
        {
            let config = config.unwrap_or(Value::Null);
            apply_create(
                req, state, rp, name, &config, &manager, force, validation, dry_run,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn get_scale(
    state: &State,
    rp: &ResourcePath,
    name: &str,
) -> Result<HttpResponse, HttpError> {
    let obj = current(state, rp, name).await?;
    Ok(json_value(StatusCode::OK, &patch::scale_of(&obj)?))
}

/// PUT or PATCH of `…/scale`: the replicas of an autoscaling/v1 Scale onto the object's latest
/// state ([`GuaranteedUpdate`]); a Scale naming a `metadata.resourceVersion` is a
/// precondition (upstream's `scaleUpdatedObjectInfo`).
async fn scale(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    rp: &ResourcePath,
    q: &Query,
    name: &str,
) -> Result<HttpResponse, HttpError> {
    let dry_run = q.dry_run()?;
    let ty = if req.method() == Method::PATCH {
        Some(patch::patch_type(header(req, CONTENT_TYPE))?)
    } else {
        None
    };
    let bytes = read_body(req, payload, state.opts.max_request_bytes).await?;
    let put = match ty {
        Some(_) => None,
        None => {
            let format = body::body_format(header(req, CONTENT_TYPE))?;
            Some(body::parse_value(&bytes, format).map_err(bad_request)?)
        }
    };
    let manager = field_manager(req, q)?;
    let change: UpdateFn = Box::new(move |current: &Object| {
        let scale = match (ty, put) {
            (Some(ty), _) => patch::apply(&patch::scale_of(current)?, &bytes, ty)?,
            (None, Some(put)) => put,
            (None, None) => return Err(ApiError::Internal("a scale without a body".into())),
        };
        let mut object = patch::apply_scale(current, &scale)?;
        // Recorded on the Deployment as `.spec.replicas`, with subresource `scale` (upstream's
        // ScaleHandler maps the Scale's fields onto the parent's).
        record_update(
            Some(current),
            &mut object,
            &manager,
            Subresource::Main,
            "scale",
        )
        .map_err(into_api_error)?;
        Ok(object)
    });
    let updated = state
        .api
        .send(GuaranteedUpdate {
            kind: rp.kind,
            namespace: rp.namespace.clone(),
            name: name.to_string(),
            subresource: Subresource::Main,
            change,
            options: write_options(req, dry_run, "scale", rp.kind, name),
            trace: trace_for(req),
        })
        .await??;
    Ok(json_value(StatusCode::OK, &patch::scale_of(&updated)?))
}

/// `POST` a self-review (`kubectl auth can-i`, `auth whoami`): 201 with its status. See
/// [`super::reviews`].
async fn self_review(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    review: Review,
    version: &str,
) -> Result<HttpResponse, HttpError> {
    if req.method() != Method::POST {
        return Err(HttpError::MethodNotAllowed);
    }
    let value = read_unstored(req, payload, state, review.kind(), |bytes| {
        protobuf::decode_review(review, version, bytes)
    })
    .await?;
    Ok(json_value(
        StatusCode::CREATED,
        &review.answer(version, &value)?,
    ))
}

// ---- services (not stored yet) ----

/// `services`: an empty, read-only resource until Services are stored: lists are empty (a
/// Table with kube-apiserver's service columns when asked), a watch sends nothing until its
/// timeout, a named service is not found, writes are refused.
async fn services(req: &HttpRequest, name: Option<&str>) -> Result<HttpResponse, HttpError> {
    if req.method() != Method::GET {
        return Err(HttpError::MethodNotAllowed);
    }
    if let Some(name) = name {
        return Err(ApiError::NotFound {
            resource: "services".into(),
            name: name.to_string(),
            group: String::new(),
            kind: "services".into(),
        }
        .into());
    }
    let q = Query::parse(req.query_string())?;
    if q.flag("watch") {
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(watch::DEFAULT_TIMEOUT);
        let idle = futures::stream::once(async move {
            tokio::time::sleep(timeout).await;
            Ok::<_, actix_web::Error>(Bytes::new())
        });
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .streaming(idle));
    }
    Ok(match body::output_for(header(req, ACCEPT)) {
        Output::Object => json_value(
            StatusCode::OK,
            &json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "0"}, "items": []}),
        ),
        Output::Table(api_version) => {
            let column = |name: &str, priority: u8| json!({"name": name, "type": "string", "format": if name == "Name" { "name" } else { "" }, "description": "", "priority": priority});
            json_value(
                StatusCode::OK,
                &json!({
                    "kind": "Table", "apiVersion": api_version,
                    "metadata": {"resourceVersion": "0"},
                    "columnDefinitions": [column("Name", 0), column("Type", 0), column("Cluster-IP", 0),
                        column("External-IP", 0), column("Port(s)", 0), column("Age", 0), column("Selector", 1)],
                    "rows": [],
                }),
            )
        }
    })
}

/// Server-side apply of an absent object: create it from the configuration (201).
#[allow(clippy::too_many_arguments)]
async fn apply_create(
    req: &HttpRequest,
    state: &State,
    rp: &ResourcePath,
    name: &str,
    config: &Value,
    manager: &str,
    force: bool,
    validation: FieldValidation,
    dry_run: bool,
) -> Result<HttpResponse, HttpError> {
    let object = server_side_apply(None, config, rp.kind, manager, Subresource::Main, force)?;
    let decoded = body::decode_value(rp.kind, object, validation)?;
    let mut object = decoded.object;
    ensure_name(&object, name)?;
    ensure_namespace(&mut object, rp.namespace.as_deref())?;
    let created = state
        .api
        .send(Create {
            object,
            options: write_options(req, dry_run, "apply", rp.kind, name),
            trace: trace_for(req),
        })
        .await??;
    Ok(object_response(
        StatusCode::CREATED,
        &created,
        &decoded.warnings,
    ))
}
