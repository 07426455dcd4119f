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

/// The path prefix of every admin endpoint.
pub const PREFIX: &str = "/kubeactor/";

/// Serve one request whose path starts with [`PREFIX`].
pub async fn serve(
    req: &HttpRequest,
    _payload: web::Payload,
    state: &State,
) -> Result<HttpResponse, HttpError> {
    // --- nodes: fault injection (issue 5) ---
    if let Some((name, action)) = node_action(req.path()) {
        return serve_node_action(req, name, action, state).await;
    }
    // --- end nodes ---
    Err(HttpError::NotFound)
}

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
