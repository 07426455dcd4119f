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
    // --- nodes: fault injection (issue 5) ---
    if let Some((name, action)) = node_action(req.path()) {
        return serve_node_action(req, name, action, state).await;
    }
    // --- end nodes ---
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

// ---- nodes: fault injection (`kubeactor node stop|start`) ----

/// What `POST /kubeactor/v1/nodes/{name}/{action}` does to the node's kubelet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeAction {
    Stop,
    Start,
}

/// `/kubeactor/v1/nodes/{name}/stop|start` → the node and the action.
pub fn node_action(path: &str) -> Option<(&str, NodeAction)> {
    let rest = path.strip_prefix("/kubeactor/v1/nodes/")?;
    let (name, action) = rest.trim_end_matches('/').split_once('/')?;
    if name.is_empty() {
        return None;
    }
    match action {
        "stop" => Some((name, NodeAction::Stop)),
        "start" => Some((name, NodeAction::Start)),
        _ => None,
    }
}

/// The answer of a node action: `{"node": "node-2", "state": "stopped"}`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct NodeActionReply {
    pub node: String,
    pub state: String,
}

/// Stop or start a node's kubelet (see `StopKubelet` / `StartKubelet`). POST only; a node
/// this daemon does not run is 404 `nodes "x" not found`.
async fn serve_node_action(
    req: &HttpRequest,
    name: &str,
    action: NodeAction,
    state: &State,
) -> Result<HttpResponse, HttpError> {
    use crate::kubelet::actor::{StartKubelet, StopKubelet};
    if req.method() != actix_web::http::Method::POST {
        return Err(HttpError::MethodNotAllowed);
    }
    let Some(node) = state.opts.backends.node(name) else {
        return Err(HttpError::Api(Box::new(
            crate::apiserver::ApiError::not_found(crate::api::Kind::Node, name),
        )));
    };
    let reply = match action {
        NodeAction::Stop => node.kubelet.send(StopKubelet).await,
        NodeAction::Start => node.kubelet.send(StartKubelet).await,
    }
    .map_err(|_| HttpError::Unavailable)?;
    Ok(HttpResponse::Ok().json(NodeActionReply {
        node: name.to_string(),
        state: reply.as_str().to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_actions_are_parsed_from_the_path() {
        assert_eq!(
            node_action("/kubeactor/v1/nodes/node-2/stop"),
            Some(("node-2", NodeAction::Stop))
        );
        assert_eq!(
            node_action("/kubeactor/v1/nodes/node-2/start/"),
            Some(("node-2", NodeAction::Start))
        );
        assert_eq!(node_action("/kubeactor/v1/nodes/node-2/reboot"), None);
        assert_eq!(node_action("/kubeactor/v1/nodes//stop"), None);
        assert_eq!(node_action("/kubeactor/v1/nodes/node-2"), None);
    }
}
