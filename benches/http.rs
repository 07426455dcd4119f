//! HTTP API benchmark (issue 6 targets):
//!
//! 1. With 10,000 pods stored, `GET /api/v1/namespaces/default/pods` as a Table (what
//!    `kubectl get pods` asks for; target ≤ 50 ms) and as JSON.
//! 2. Watch fan-out: 1,000 HTTP watchers of pods; for each of a series of pod creates, the
//!    time from sending the create to each watcher reading its ADDED line (target p99 ≤ 20 ms).
//!
//! Run: `cargo bench --bench http` (`-- --quick`: 2,000 pods, 200 watchers). Plain http
//! without a token (TLS is not what is measured), memory store, one HTTP worker per core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubeactor::api::Object;
use kubeactor::apiserver::http::{self, HttpOptions};
use kubeactor::apiserver::{ApiServer, ApiServerOptions, Create, Trace, WriteOptions};
use kubeactor::config::StoreEngine;
use kubeactor::store::{self, StoreOptions};
use kubeactor::telemetry::Telemetry;

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

fn pod(name: &str) -> Object {
    Object::from(Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("default".into()),
            labels: Some(
                [
                    ("app".to_string(), "web".to_string()),
                    ("pod-template-hash".to_string(), "7d9fbb5c4b".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "nginx".into(),
                image: Some("nginx:1.27".into()),
                ..Default::default()
            }],
            node_name: Some("node-1".into()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn create(name: &str) -> Create {
    Create {
        object: pod(name),
        options: WriteOptions::default(),
        trace: Trace::Untraced,
    }
}

/// Start the ApiServer and HTTP API on their own thread; returns the URL and the actor.
fn start() -> (String, actix::Addr<ApiServer>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = actix::System::new();
        system.block_on(async move {
            let dir = tempfile::tempdir().unwrap();
            let store =
                store::open(StoreEngine::Memory, dir.path(), StoreOptions::default()).unwrap();
            let telemetry = Telemetry::in_memory(1000);
            let opts = ApiServerOptions {
                watch_buffer: 100_000,
                ..Default::default()
            };
            let api = ApiServer::new(store, opts, &telemetry)
                .unwrap()
                .start()
                .await
                .unwrap();
            let server = http::start(
                api.clone(),
                HttpOptions {
                    listen: "127.0.0.1:0".into(),
                    workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
                    ..Default::default()
                },
            )
            .unwrap();
            tx.send((server.url(), api)).unwrap();
            futures::future::pending::<()>().await;
            drop(dir);
        });
    });
    rx.recv().unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (pods, watchers, creates) = if quick {
        (2_000, 200, 10)
    } else {
        (10_000, 1_000, 20)
    };
    let (url, api) = start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // Fill: concurrent creates so the store group-commits them.
    let t = Instant::now();
    rt.block_on(async {
        let names: Vec<String> = (0..pods).map(|i| format!("pod-{i:05}")).collect();
        futures::stream::iter(names)
            .map(|n| api.send(create(&n)))
            .buffer_unordered(256)
            .for_each(|r| async move {
                r.unwrap().unwrap();
            })
            .await;
    });
    println!("stored {pods} pods in {:.1} s", t.elapsed().as_secs_f64());

    // 1. GET pods as a Table and as JSON.
    // reqwest is built with `rustls-no-provider` (Cargo.toml): it panics without a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let list_url = format!("{url}/api/v1/namespaces/default/pods");
    for (label, accept) in [("Table", TABLE), ("JSON ", "application/json")] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..15 {
            let t = Instant::now();
            let body = rt.block_on(async {
                client
                    .get(&list_url)
                    .header("Accept", accept)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
            });
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            bytes = body.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "GET {pods} pods as {label}: median {:.1} ms, p90 {:.1} ms, min {:.1} ms ({:.1} MB)",
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            times[0],
            bytes as f64 / 1e6
        );
    }

    // 2. Watch fan-out.
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sent: Arc<parking_lot::Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let rv = rt.block_on(async {
        let list: serde_json::Value = client
            .get(format!("{list_url}?limit=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    });
    let ready = Arc::new(tokio::sync::Barrier::new(watchers + 1));
    let done = Arc::new(tokio::sync::Semaphore::new(0));
    for _ in 0..watchers {
        let (client, latencies, sent, ready, done) = (
            client.clone(),
            latencies.clone(),
            sent.clone(),
            ready.clone(),
            done.clone(),
        );
        let url = format!("{list_url}?watch=true&resourceVersion={rv}&timeoutSeconds=120");
        rt.spawn(async move {
            let resp = client.get(url).send().await.unwrap();
            ready.wait().await;
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            let mut seen = 0;
            while let Some(chunk) = stream.next().await {
                let now = Instant::now();
                buf.extend_from_slice(&chunk.unwrap());
                while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    // Find the name without parsing the whole event: the client's own
                    // parsing is not what is measured.
                    let text = String::from_utf8_lossy(&line);
                    let name = text
                        .split_once("\"name\":\"")
                        .and_then(|(_, rest)| rest.split_once('"'))
                        .map(|(name, _)| name)
                        .unwrap_or("");
                    if let Some(t0) = sent.lock().get(name) {
                        latencies.lock().push((now - *t0).as_secs_f64() * 1000.0);
                        seen += 1;
                    }
                }
                if seen == creates {
                    break;
                }
            }
            done.add_permits(1);
        });
    }
    let mut acks = Vec::new();
    rt.block_on(async {
        ready.wait().await;
        for i in 0..creates {
            let name = format!("fanout-{i:03}");
            let t0 = Instant::now();
            sent.lock().insert(name.clone(), t0);
            api.send(create(&name)).await.unwrap().unwrap();
            acks.push(t0.elapsed().as_secs_f64() * 1000.0);
            // Spread the writes out, so each is measured on its own.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all = done.acquire_many(watchers as u32);
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("every watcher saw every create")
            .unwrap()
            .forget();
    });
    let mut l = latencies.lock().clone();
    l.sort_by(f64::total_cmp);
    acks.sort_by(f64::total_cmp);
    println!(
        "watch fan-out, {watchers} HTTP watchers x {creates} creates ({} events): min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (create acknowledged: median {:.1} ms)",
        l.len(),
        l.first().copied().unwrap_or(f64::NAN),
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        l.last().copied().unwrap_or(f64::NAN),
        percentile(&acks, 0.5),
    );
}
