//! `kubeactor demo`: the scenario loop runs a few scenarios back to back (tiny interval, fast
//! simulated time), each with its node failure (a kubelet stopped and started again), each
//! leaves nothing behind (no objects, every node Ready), every trace in the span store is
//! rooted at a demo step or at the node lifecycle controller's `node <name> NotReady` (no
//! background work starts traces), the node failure is ONE trace from NotReady through the
//! evictions to the replacement pods' container starts, and the memory bounds hold: the span
//! store stays within its capacity and the store's event log within its window.
//!
//! Timing: the test polls the loop's stats with a deadline; simulated time runs 100x.

use std::time::{Duration, Instant};

use kubeactor::api::{Kind, Object};
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
        node_failure: true,
        // 0.1 s real at speed 100; the grace period (40 s) is floored at 1 s real.
        node_failure_toleration_seconds: 10,
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
    // Every node the node-failure steps stopped is back.
    let nodes = cluster
        .apiserver
        .send(List::all(Kind::Node))
        .await
        .unwrap()
        .unwrap();
    for n in &nodes.items {
        let Object::Node(node) = n.as_ref() else {
            panic!("a Node key holds another kind")
        };
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        assert_eq!(ready, Some("True"), "node {} is Ready again", n.name());
        let taints = node.spec.as_ref().and_then(|s| s.taints.clone());
        assert!(
            taints.unwrap_or_default().is_empty(),
            "node {} untainted",
            n.name()
        );
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
    let node_failure = |r: &str| r.starts_with("node ") && r.ends_with(" NotReady");
    assert!(
        roots
            .iter()
            .all(|r| r.starts_with("demo ") || node_failure(r)),
        "only demo steps and node failures start traces: {roots:?}"
    );

    // The last node failure is ONE trace: NotReady → evictions → the replacement pods'
    // container starts, each start a descendant of an eviction.
    let failure = spans
        .find_traces(|s| s.is_root() && node_failure(&s.name))
        .first()
        .map(|id| spans.trace(*id))
        .expect("a node failure's trace in the span store");
    let root = failure.iter().find(|s| s.is_root()).expect("its root");
    assert_eq!(&*root.service_name, "kube-controller-manager");
    let ancestors = |span: &kubeactor::telemetry::StoredSpan| {
        let mut names = Vec::new();
        let mut parent = span.parent_span_id;
        while let Some(id) = parent {
            let Some(p) = failure.iter().find(|s| s.span_id == id) else {
                break;
            };
            names.push(p.name.to_string());
            parent = p.parent_span_id;
        }
        names
    };
    let evictions = failure
        .iter()
        .filter(|s| s.name.starts_with("evict pod "))
        .count();
    let starts: Vec<Vec<String>> = failure
        .iter()
        .filter(|s| s.name == "start container nginx")
        .map(ancestors)
        .collect();
    let names: Vec<&str> = failure.iter().map(|s| &*s.name).collect();
    assert!(evictions >= 1, "evictions in {names:?}");
    assert!(
        starts.len() >= evictions,
        "one replacement container start per eviction: {names:?}"
    );
    for chain in &starts {
        assert!(
            chain.iter().any(|n| n.starts_with("evict pod "))
                && chain.iter().any(|n| n.starts_with("sync pod "))
                && chain.last() == Some(&root.name.to_string()),
            "start container nginx ← sync pod ← … ← evict pod ← {}: {chain:?}",
            root.name
        );
    }
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
