//! The HTTP API: kube-apiserver's REST surface over the [`ApiServer`] actor.
//!
//! An actix-web server translates each request into one of the ApiServer's typed messages
//! (`Get`, `List`, `Watch`, `Create`, `Update`, `Delete`, `Bind`) and the reply into JSON —
//! an object, a list, a `Table`, a stream of watch events, or a `Status` for an error. It
//! holds no state of its own beyond its options: the ApiServer stays the only owner of the
//! objects. Encoding (JSON, Tables) happens on the HTTP worker threads, not in the actor.
//!
//! # Layout
//!
//! * [`path`] — which document or resource a URL names.
//! * [`handlers`] — the request handlers: one thin function per verb.
//! * [`body`] — content negotiation (Table or not, aggregated discovery or not) and request
//!   body decoding (JSON, YAML; kind, apiVersion and unknown-field checks).
//! * [`protobuf`] — protobuf object bodies (Deployment, Pod, Namespace).
//! * [`discovery`], [`openapi`] — the documents kubectl reads before it does anything.
//! * [`patch`] — JSON, merge and strategic merge patches; the `scale` subresource.
//! * [`managedfields`] — `metadata.managedFields` on every HTTP write, and server-side
//!   apply's ownership, pruning and 409 conflicts between field managers.
//! * [`table`] — server-side printing with kube-apiserver's columns.
//! * [`watch`] — the chunked watch stream, bookmarks, 410 Gone.
//! * [`auth`] — the bearer token and the kubeconfig that carries it.
//! * [`tls`] — the self-signed serving certificate (kubectl sends tokens only over https).
//! * [`admin`] — kubeactor's own endpoints under `/kubeactor/v1/` (traces, node faults).
//! * [`backends`] — handles to the nodes and telemetry, for `pods/log` and [`admin`].
//! * [`logs`] — `pods/log`: the container's log from its node's runtime (`kubectl logs`).
//!
//! # What is not served yet
//!
//! Field management covers HTTP writers only: in-process components write through the
//! ApiServer's messages without a manager, so their changes are nobody's (see
//! [`managedfields`]). Protobuf bodies of other kinds than Deployment, Pod and Namespace answer
//! 415. `pods/log` ignores `timestamps`, `sinceSeconds` and `sinceTime` (the simulated
//! runtime keeps no time per line; see [`logs`]). `/openapi/v2` is still the minimal
//! protobuf document kubectl 1.27 and 1.28 check `fieldValidation` in, without schemas
//! (`kubectl explain --output=plaintext-openapiv2` finds nothing); OpenAPI v3 is complete
//! for the served kinds ([`openapi`]). `exec`, `attach`, `portforward` and `proxy` are 404.

pub mod admin;
pub mod auth;
pub mod backends;
pub mod body;
pub mod discovery;
pub mod handlers;
pub mod logs;
pub mod managedfields;
pub mod openapi;
pub mod patch;
pub mod path;
pub mod protobuf;
pub mod reviews;
pub mod table;
pub mod tls;
pub mod watch;

use std::net::SocketAddr;
use std::time::Duration;

use actix::Addr;
use actix_web::dev::ServerHandle;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

use super::{ApiError, ApiServer};

/// Options of the HTTP server (from `[apiserver]`).
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// `host:port`; port 0 picks a free port.
    pub listen: String,
    /// The bearer token every request must carry (except health and `/version`); `None`
    /// turns authentication off.
    pub token: Option<String>,
    /// The minor version `/version` reports.
    pub version_minor: u32,
    /// Largest request body; larger is 413.
    pub max_request_bytes: usize,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Worker threads.
    pub workers: usize,
    /// Serve https with this certificate; `None`: plain http.
    pub tls: Option<tls::TlsIdentity>,
    /// The rest of the daemon (nodes, telemetry), for `pods/log` and the admin endpoints.
    pub backends: backends::Backends,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            listen: "127.0.0.1:6443".into(),
            token: None,
            version_minor: 32,
            max_request_bytes: 3 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(60),
            workers: 2,
            tls: None,
            backends: backends::Backends::default(),
        }
    }
}

impl HttpOptions {
    /// The options of `[apiserver]`, with the token (if authentication is on) and the TLS
    /// identity (if TLS is on) loaded by the caller.
    pub fn from_config(
        c: &crate::config::ApiServerConfig,
        token: Option<String>,
        tls: Option<tls::TlsIdentity>,
    ) -> HttpOptions {
        HttpOptions {
            listen: c.listen.clone(),
            token,
            version_minor: c.version_minor,
            max_request_bytes: c.max_request_bytes,
            bookmark_interval: Duration::from_millis(c.bookmark_interval_ms),
            workers: c.http_workers,
            tls,
            backends: backends::Backends::default(),
        }
    }
}

/// An error answered over HTTP. Each becomes a `Status` with upstream's reason and wording.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Anything the ApiServer answered (NotFound, Conflict, Invalid, BadRequest, …).
    #[error(transparent)]
    Api(Box<ApiError>),
    /// 404: a path that names nothing served.
    #[error("the server could not find the requested resource")]
    NotFound,
    /// 401: no token or a wrong one.
    #[error("Unauthorized")]
    Unauthorized,
    /// 413: the body is larger than `max_request_bytes`.
    #[error("Request entity too large: limit is {limit}")]
    TooLarge { limit: usize },
    /// 415: a body in an encoding the verb does not take.
    #[error("the body of the request was in an unknown format - accepted media types include: {accepted}")]
    UnsupportedMediaType {
        media: String,
        accepted: &'static str,
    },
    /// 415: a protobuf body of a kind or with a field the converter does not handle.
    #[error("{0}")]
    UnsupportedProtobuf(String),
    /// 405: a verb the resource does not support.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 503: the ApiServer actor is gone (shutting down).
    #[error("the API server is shutting down")]
    Unavailable,
}

impl HttpError {
    /// The `Status` object for this error.
    pub fn to_status(&self) -> Status {
        let (code, reason) = match self {
            HttpError::Api(e) => return e.to_status(),
            HttpError::NotFound => (404, "NotFound"),
            HttpError::Unauthorized => (401, "Unauthorized"),
            HttpError::TooLarge { .. } => (413, "RequestEntityTooLarge"),
            HttpError::UnsupportedMediaType { .. } | HttpError::UnsupportedProtobuf(_) => {
                (415, "UnsupportedMediaType")
            }
            HttpError::MethodNotAllowed => (405, "MethodNotAllowed"),
            HttpError::Unavailable => (503, "ServiceUnavailable"),
        };
        Status {
            code: Some(code),
            message: Some(self.to_string()),
            reason: Some(reason.to_string()),
            status: Some("Failure".to_string()),
            ..Default::default()
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.to_status()
            .code
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(500)
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError::Api(Box::new(e))
    }
}

impl From<actix::MailboxError> for HttpError {
    fn from(_: actix::MailboxError) -> Self {
        HttpError::Unavailable
    }
}

/// Why the HTTP server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen}: {source}")]
pub struct StartError {
    pub listen: String,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// A running HTTP server.
#[derive(Clone)]
pub struct HttpServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// Whether it serves https.
    pub tls: bool,
    handle: ServerHandle,
}

impl HttpServer {
    /// The URL clients use (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        auth::server_url(self.addr, self.tls)
    }

    /// Stop accepting requests and close open connections (watches end).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// Bind and start the HTTP server on the current actix system, in front of `api`.
pub fn start(api: Addr<ApiServer>, opts: HttpOptions) -> Result<HttpServer, StartError> {
    let listen = opts.listen.clone();
    let err = |source: Box<dyn std::error::Error + Send + Sync>| StartError {
        listen: listen.clone(),
        source,
    };
    let workers = opts.workers.max(1);
    let tls = match &opts.tls {
        Some(id) => Some(tls::server_config(id).map_err(|e| err(Box::new(e)))?),
        None => None,
    };
    let serves_tls = tls.is_some();
    let state = actix_web::web::Data::new(handlers::State { api, opts });
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .default_service(actix_web::web::to(handlers::serve))
    })
    .workers(workers)
    // TCP_NODELAY, as Go's net package (so kube-apiserver) sets on every connection: a watch
    // event written behind a not-yet-acknowledged one must not wait for the client's delayed
    // ACK (Nagle). actix keeps the OS default (Nagle on) unless told.
    .tcp_nodelay(true)
    // `kubeactor up` handles SIGINT/SIGTERM itself and stops the server.
    .disable_signals()
    .shutdown_timeout(1);
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(&listen, config),
        None => server.bind(&listen),
    }
    .map_err(|e| err(Box::new(e)))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| err("no address bound".into()))?;
    let server = server.run();
    let handle = server.handle();
    actix::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    tracing::info!(%addr, tls = serves_tls, "HTTP API listening");
    Ok(HttpServer {
        addr,
        tls: serves_tls,
        handle,
    })
}
