//! kubeactor's own endpoints under `/kubeactor/v1/`: what the `kubeactor` command line asks a
//! running daemon (no kube-apiserver has these; they sit beside the Kubernetes API and need
//! the same bearer token).
//!
//! Routes (each answered by the file named, JSON bodies, errors as `Status`):
//!
//! * `GET /kubeactor/v1/traces…` — the in-memory span store, for `kubeactor trace`.
//! * `POST /kubeactor/v1/nodes/{name}/stop|start` — fault injection, for `kubeactor node`.
//!
//! A path under `/kubeactor/` that names nothing is 404.

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};

use super::handlers::State;
use super::HttpError;

// --- traces (kubeactor trace) ---
use std::collections::HashMap;

use opentelemetry::trace::TraceId;

use crate::apiserver::ApiError;
use crate::telemetry::waterfall::{self, ObjectRef, TraceList, TraceListItem, TraceView};
// --- end traces ---

/// The path prefix of every admin endpoint.
pub const PREFIX: &str = "/kubeactor/";

/// Serve one request whose path starts with [`PREFIX`].
pub async fn serve(
    req: &HttpRequest,
    _payload: web::Payload,
    state: &State,
) -> Result<HttpResponse, HttpError> {
    let path = req.path().trim_end_matches('/');
    // --- traces (kubeactor trace) ---
    if let Some(rest) = path.strip_prefix(TRACES) {
        return traces(req, rest, state);
    }
    // --- end traces ---
    Err(HttpError::NotFound)
}

// --- traces (kubeactor trace) ---

/// The path of the span store's endpoints.
pub const TRACES: &str = "/kubeactor/v1/traces";

/// How many traces `GET /kubeactor/v1/traces` lists unless `?limit=` says otherwise.
pub const DEFAULT_TRACE_LIMIT: usize = 20;

/// `GET /kubeactor/v1/traces[?limit=N]` — recent traces, most recent first;
/// `GET /kubeactor/v1/traces?object=deployments/default/web` — every span of the most recent
/// trace touching that object ([`waterfall::touches`]);
/// `GET /kubeactor/v1/traces/{trace_id}` — every span of one trace.
/// 404 when nothing matches (or the HTTP API runs without the daemon's telemetry).
fn traces(req: &HttpRequest, rest: &str, state: &State) -> Result<HttpResponse, HttpError> {
    if req.method() != actix_web::http::Method::GET {
        return Err(HttpError::MethodNotAllowed);
    }
    let telemetry = state
        .opts
        .backends
        .telemetry
        .as_ref()
        .ok_or(HttpError::NotFound)?;
    let store = telemetry.span_store();
    let jaeger_ui = telemetry
        .export_target()
        .map(|t| waterfall::jaeger_ui(&t.endpoint));
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| bad_request(format!("invalid query: {e}")))?;
    let view = |id: TraceId| {
        let spans = store.trace(id);
        (!spans.is_empty())
            .then(|| TraceView::new(id.to_string(), &spans, jaeger_ui.as_deref()))
            .ok_or(HttpError::NotFound)
    };
    let body = match (rest.strip_prefix('/'), query.get("object")) {
        (Some(id), _) => {
            let id = TraceId::from_hex(id)
                .map_err(|_| bad_request(format!("{id:?} is not a trace id (32 hex digits)")))?;
            serde_json::to_vec(&view(id)?)
        }
        (None, Some(object)) if rest.is_empty() => {
            let obj = ObjectRef::from_query(object).ok_or_else(|| {
                bad_request(format!(
                    "object {object:?}: expected <resource>/<namespace>/<name> or <resource>/<name>"
                ))
            })?;
            let key = obj.store_key();
            let id = store
                .find_traces(|s| waterfall::touches(s, &key))
                .into_iter()
                .next()
                .ok_or(HttpError::NotFound)?;
            serde_json::to_vec(&view(id)?)
        }
        (None, None) if rest.is_empty() => {
            let limit = match query.get("limit") {
                Some(l) => l
                    .parse()
                    .map_err(|_| bad_request(format!("limit {l:?} is not a number")))?,
                None => DEFAULT_TRACE_LIMIT,
            };
            let list = TraceList {
                traces: store
                    .traces_recent(limit)
                    .iter()
                    .map(TraceListItem::from)
                    .collect(),
                jaeger_ui,
            };
            serde_json::to_vec(&list)
        }
        _ => return Err(HttpError::NotFound),
    };
    let body = body.map_err(|e| HttpError::Api(Box::new(ApiError::Internal(e.to_string()))))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

fn bad_request(message: String) -> HttpError {
    HttpError::Api(Box::new(ApiError::BadRequest(message)))
}

// --- end traces ---
