//! `kubeactor demo`: the scenario loop runs a few scenarios back to back (tiny interval, fast
//! simulated time), each leaves nothing behind, every trace in the span store is rooted at a
//! demo step (no background work starts traces), and the memory bounds hold: the span store
//! stays within its capacity and the store's event log within its window.
//!
//! Timing: the test polls the loop's stats with a deadline; simulated time runs 100x.

use std::time::{Duration, Instant};

use kubeactor::api::Kind;
use kubeactor::apiserver::List;
use kubeactor::cluster::Cluster;
use kubeactor::config::{Config, StoreEngine};
use kubeactor::demo::DemoConfig;
use kubeactor::telemetry::Telemetry;

const SPAN_STORE_CAPACITY: usize = 500;
const EVENT_WINDOW: usize = 100;
const SCENARIOS: u64 = 3;

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::defaults();
    c.data_dir = dir.to_path_buf();
    c.store.engine = StoreEngine::Memory;
    c.store.event_window = EVENT_WINDOW;
    c.apiserver.listen = "127.0.0.1:0".into();
    c.telemetry.otlp_enabled = false;
    c.telemetry.span_store_capacity = SPAN_STORE_CAPACITY;
    c.simulation.speed = 100.0;
    c.demo = DemoConfig {
        enabled: true,
        interval_seconds: 0.01,
        iterations: SCENARIOS,
        replicas: 2,
        scaled_replicas: 3,
        step_timeout_seconds: 10.0,
        ..DemoConfig::default()
    };
    c
}

#[actix_rt::test]
async fn the_demo_loop_cleans_up_after_itself_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let telemetry = Telemetry::init_with_env(&config.telemetry, &|_| None).unwrap();
    let cluster = Cluster::start(&config, telemetry.clone()).await.unwrap();
    let demo = cluster
        .demo
        .clone()
        .expect("[demo] enabled starts the loop");

    let deadline = Instant::now() + Duration::from_secs(120);
    while !demo.stats().finished {
        assert!(
            Instant::now() < deadline,
            "the demo did not finish {SCENARIOS} scenarios: {:?}",
            demo.stats()
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = demo.stats();
    assert_eq!(
        (stats.completed, stats.failed),
        (SCENARIOS, 0),
        "{:?}",
        stats.last_error
    );

    // Nothing of the scenarios is left.
    for kind in [Kind::Deployment, Kind::ReplicaSet, Kind::Pod] {
        let left = cluster
            .apiserver
            .send(List::all(kind))
            .await
            .unwrap()
            .unwrap();
        let names: Vec<&str> = left.items.iter().map(|o| o.name()).collect();
        assert!(names.is_empty(), "{kind:?} left behind: {names:?}");
    }

    // The span store is full but not over: old spans were dropped, the newest kept.
    let spans = telemetry.span_store();
    assert_eq!(spans.len(), SPAN_STORE_CAPACITY);
    let roots: Vec<String> = spans
        .spans()
        .into_iter()
        .filter(|s| s.is_root())
        .map(|s| s.name.into_owned())
        .collect();
    assert!(
        roots.iter().all(|r| r.starts_with("demo ")),
        "only demo steps start traces: {roots:?}"
    );
    let last = format!("-{SCENARIOS}");
    assert!(
        roots
            .iter()
            .any(|r| r.starts_with("demo delete deployments/demo-") && r.ends_with(&last)),
        "the last scenario's delete is a trace: {roots:?}"
    );

    // Each step is a whole chain: the last delete reaches the kubelets through the GC. (A
    // delete that conflicted with a status write is retried: each attempt is a trace, the
    // successful one holds the chain.)
    let chain: Vec<String> = spans
        .spans()
        .into_iter()
        .filter(|s| s.is_root() && s.name.starts_with("demo delete") && s.name.ends_with(&last))
        .map(|root| spans.trace(root.trace_id))
        .max_by_key(Vec::len)
        .expect("the last delete's trace")
        .into_iter()
        .map(|s| s.name.into_owned())
        .collect();
    for step in ["garbage collect ", "delete pods ", "stop container nginx"] {
        assert!(
            chain.iter().any(|n| n.starts_with(step)),
            "{step:?} in the delete's trace: {chain:?}"
        );
    }

    // The store keeps a bounded window of events.
    let (revision, compacted) = (cluster.store.revision(), cluster.store.compacted_revision());
    assert!(revision - compacted <= EVENT_WINDOW as u64);
    assert!(
        revision <= EVENT_WINDOW as u64 || compacted > 0,
        "revision {revision}, compacted {compacted}"
    );
    eprintln!(
        "{SCENARIOS} demo scenarios: store revision {revision} (compacted up to {compacted}), \
         {} spans kept",
        spans.len()
    );

    cluster.http.stop().await;
    cluster.stop();
    telemetry.shutdown();
}
