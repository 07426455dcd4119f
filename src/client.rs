//! A client for a running daemon, for the `kubeactor` commands that talk to one (`trace`,
//! `node`): it reads `<data-dir>/kubeconfig` — server URL, the daemon's CA and its token —
//! and calls the admin endpoints ([`crate::apiserver::http::admin`]) over https.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::apiserver::http::admin::TRACES;
use crate::apiserver::http::auth::KUBECONFIG_FILE;
use crate::telemetry::waterfall::{ObjectRef, TraceList, TraceView};

/// Why a request to the daemon failed. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {path}: {source} (is `kubeactor up` running with this data directory?)")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a kubeconfig kubeactor wrote: {reason}")]
    BadKubeconfig { path: PathBuf, reason: String },
    #[error("cannot reach the daemon at {url}: {source} (is `kubeactor up` running?)")]
    Unreachable { url: String, source: reqwest::Error },
    /// A 2xx answer whose body is not what the endpoint returns (a daemon of another version).
    #[error("unexpected answer to GET {path}: {reason}")]
    BadResponse { path: String, reason: String },
    /// The daemon answered with an error `Status`; `message` is its message.
    #[error("{message}")]
    Status { code: u16, message: String },
}

/// A connection to one daemon's API.
#[derive(Debug)]
pub struct Client {
    server: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    /// Read the kubeconfig that `kubeactor up` wrote into `data_dir`.
    pub fn from_data_dir(data_dir: &Path) -> Result<Client, ClientError> {
        let path = data_dir.join(KUBECONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ClientError::Kubeconfig {
            path: path.clone(),
            source,
        })?;
        Self::from_kubeconfig(&text).map_err(|reason| ClientError::BadKubeconfig { path, reason })
    }

    /// From kubeconfig text: the first cluster's server and CA, the first user's token.
    pub fn from_kubeconfig(text: &str) -> Result<Client, String> {
        use base64::Engine as _;
        let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let cluster = &doc["clusters"][0]["cluster"];
        let server = cluster["server"]
            .as_str()
            .ok_or("no clusters[0].cluster.server")?
            .trim_end_matches('/')
            .to_string();
        let ca = match cluster["certificate-authority-data"].as_str() {
            Some(b64) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| format!("certificate-authority-data: {e}"))?,
            ),
            None => None,
        };
        let token = doc["users"][0]["user"]["token"].as_str().map(str::to_owned);
        let mut builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = ca {
            builder = builder.tls_backend_preconfigured(tls_config(&ca)?);
        }
        let http = builder.build().map_err(|e| e.to_string())?;
        Ok(Client {
            server,
            token,
            http,
        })
    }

    /// The daemon's API URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `GET path` (path and query, e.g. `/kubeactor/v1/traces`); the body on 2xx.
    pub fn get(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        self.send(self.http.get(self.url(path)))
    }

    /// `POST path` with an empty body; the body on 2xx.
    pub fn post(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        self.send(self.http.post(self.url(path)))
    }

    // --- traces (kubeactor trace) ---

    /// The most recent traces in the daemon's span store.
    pub fn traces(&self) -> Result<TraceList, ClientError> {
        self.get_json(TRACES)
    }

    /// The most recent trace touching `object`. A daemon with no such trace answers
    /// [`ClientError::Status`] with code 404.
    pub fn trace_of(&self, object: &ObjectRef) -> Result<TraceView, ClientError> {
        self.get_json(&format!("{TRACES}?object={}", object.to_query()))
    }

    /// One trace by its id (32 hex digits).
    pub fn trace(&self, trace_id: &str) -> Result<TraceView, ClientError> {
        self.get_json(&format!("{TRACES}/{trace_id}"))
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.get(path)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    // --- end traces ---

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().map_err(|source| ClientError::Unreachable {
            url: self.server.clone(),
            source,
        })?;
        let code = resp.status().as_u16();
        let body = resp
            .bytes()
            .map_err(|source| ClientError::Unreachable {
                url: self.server.clone(),
                source,
            })?
            .to_vec();
        if (200..300).contains(&code) {
            return Ok(body);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(ClientError::Status { code, message })
    }
}

/// A rustls client config (ring) trusting only the daemon's CA.
fn tls_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("certificate-authority-data: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("certificate-authority-data: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}
