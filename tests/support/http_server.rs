//! An ApiServer (memory store) with the HTTP API in front of it, running on its own thread
//! and actix system, so that a test can block on HTTP calls or on a `kubectl` child process.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Actor;
use actix::Addr;
use kubeactor::apiserver::http::{self, HttpOptions};
use kubeactor::apiserver::{ApiServer, ApiServerOptions, CurrentRevision};
use kubeactor::clock::SimClock;
use kubeactor::config::StoreEngine;
use kubeactor::kubelet::actor::NodeHandle;
use kubeactor::kubelet::config::{KubeletConfig, NodeConfig};
use kubeactor::kubelet::{Kubelet, KubeletOptions};
use kubeactor::runtime::{ContainerRuntime, RuntimeConfig};
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
        TestServer::start_inner(api_opts, tweak, None)
    }

    /// With one node, `node-1` (a container runtime and a kubelet on a simulated clock of
    /// `speed`), reachable from the HTTP API (`pods/log`). No scheduler: pods name the node
    /// in `spec.nodeName`.
    pub fn start_with_node(
        speed: f64,
        tweak: impl FnOnce(&mut HttpOptions) + Send + 'static,
    ) -> TestServer {
        TestServer::start_inner(ApiServerOptions::default(), tweak, Some(speed))
    }

    fn start_inner(
        api_opts: ApiServerOptions,
        tweak: impl FnOnce(&mut HttpOptions) + Send + 'static,
        node_speed: Option<f64>,
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
                if let Some(speed) = node_speed {
                    opts.backends.nodes = std::sync::Arc::new(
                        [("node-1".to_string(), start_node(&api, speed, &telemetry))].into(),
                    );
                }
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
        install_crypto_provider();
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

/// A container runtime and a kubelet for `node-1` (pod CIDR 10.244.1.0/24).
fn start_node(api: &Addr<ApiServer>, speed: f64, telemetry: &Telemetry) -> NodeHandle {
    let clock = SimClock::new(speed).shared();
    let node = NodeConfig::new("node-1", "10.244.1.0/24");
    let runtime = ContainerRuntime::new(
        "node-1",
        &node.pod_cidr,
        RuntimeConfig::default(),
        clock.clone(),
        telemetry,
    )
    .unwrap()
    .start();
    let kubelet = Kubelet::new(
        KubeletOptions {
            node,
            index: 0,
            config: KubeletConfig::default(),
        },
        api.clone(),
        runtime.clone(),
        clock,
        telemetry,
    )
    .start();
    NodeHandle {
        name: "node-1".into(),
        kubelet,
        runtime,
    }
}

/// reqwest is built with `rustls-no-provider` (the CLI client's feature, unified into the
/// tests' reqwest): every client, even a plain-http one, needs a process-wide default
/// provider. ring, as everywhere in kubeactor.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
