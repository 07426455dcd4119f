//! An ApiServer (memory store) with the HTTP API in front of it, running on its own thread
//! and actix system, so that a test can block on HTTP calls or on a `kubectl` child process.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Addr;
use kubeactor::apiserver::http::{self, HttpOptions};
use kubeactor::apiserver::{ApiServer, ApiServerOptions, CurrentRevision};
use kubeactor::config::StoreEngine;
use kubeactor::store::{self, StoreOptions};
use kubeactor::telemetry::Telemetry;

pub const TOKEN: &str = "test-token-0123456789";

pub struct TestServer {
    pub url: String,
    pub token: Option<String>,
    /// The serving certificate, when the server speaks https.
    pub ca_pem: Option<String>,
    pub api: Addr<ApiServer>,
    /// In-memory telemetry: the spans the server recorded.
    pub telemetry: Telemetry,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Token auth on, everything else default.
    pub fn start() -> TestServer {
        TestServer::start_with(ApiServerOptions::default(), |_| {})
    }

    pub fn start_with(
        api_opts: ApiServerOptions,
        tweak: impl FnOnce(&mut HttpOptions) + Send + 'static,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().to_path_buf();
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let system = actix::System::new();
            system.block_on(async move {
                let store =
                    store::open(StoreEngine::Memory, &store_dir, StoreOptions::default()).unwrap();
                let telemetry = Telemetry::in_memory(1000);
                let api = ApiServer::new(store.clone(), api_opts, &telemetry)
                    .unwrap()
                    .start()
                    .await
                    .unwrap();
                let mut opts = HttpOptions {
                    listen: "127.0.0.1:0".into(),
                    token: Some(TOKEN.into()),
                    workers: 1,
                    ..Default::default()
                };
                tweak(&mut opts);
                let token = opts.token.clone();
                let ca = opts.tls.as_ref().map(|t| t.cert_pem.clone());
                let server = http::start(api.clone(), opts).unwrap();
                tx.send((server.url(), token, ca, api, telemetry)).unwrap();
                let _ = stop_rx.await;
                server.stop().await;
                store.close();
            });
        });
        let (url, token, ca_pem, api, telemetry) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("test server started");
        TestServer {
            url,
            token,
            ca_pem,
            api,
            telemetry,
            dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// A client that sends the token.
    pub fn client(&self) -> reqwest::blocking::Client {
        // reqwest is built with `rustls-no-provider` (Cargo.toml): name ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = &self.token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {t}").parse().unwrap(),
            );
        }
        reqwest::blocking::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The API server's current revision: unchanged means nothing was stored.
    pub fn revision(&self) -> u64 {
        futures::executor::block_on(self.api.send(CurrentRevision)).unwrap()
    }

    /// A kubeconfig for this server, in its temp dir.
    pub fn kubeconfig(&self) -> PathBuf {
        http::auth::write_kubeconfig(
            self.dir.path(),
            &self.url,
            self.ca_pem.as_deref(),
            self.token.as_deref(),
        )
        .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Poll `f` until it returns `Some`, or panic after `secs` seconds.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
