//! Node failure and node reboot, end to end, on a whole cluster (`Cluster::start`: API server,
//! controllers, scheduler, two nodes).
//!
//! Timing: simulated time runs at `speed = 20`, so the kubelet renews its Lease every 0.5 s,
//! the node lifecycle controller looks every 0.25 s and gives up on a node after its 40 s grace
//! period = 2 s, and pods tolerate an unreachable node for 20 s (set in `[apiserver]`) = 1 s.
//! Every wait polls the API server with a deadline; nothing sleeps and hopes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use actix::Addr;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kubeactor::api::{Kind, Object};
use kubeactor::apiserver::{ApiServer, Create, Get, List, Trace, WriteOptions};
use kubeactor::cluster::Cluster;
use kubeactor::config::{Config, StoreEngine};
use kubeactor::kubelet::actor::{KubeletState, StartKubelet, StopKubelet};
use kubeactor::telemetry::{StoredSpan, Telemetry};

const DEADLINE: Duration = Duration::from_secs(30);

fn config(dir: &Path, engine: StoreEngine) -> Config {
    let mut c = Config::defaults();
    c.data_dir = dir.to_path_buf();
    c.store.engine = engine;
    c.apiserver.listen = "127.0.0.1:0".into();
    c.simulation.speed = 20.0;
    c.apiserver.default_not_ready_toleration_seconds = 20;
    c.apiserver.default_unreachable_toleration_seconds = 20;
    c
}

/// Poll `check` every 20 ms until it answers `Some`, or fail after [`DEADLINE`] with `what`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn web(replicas: i32) -> Deployment {
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "nginx".into(),
                        image: Some("nginx:1.27".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create(api: &Addr<ApiServer>, object: Object) {
    api.send(Create {
        object,
        options: WriteOptions::default(),
        trace: Trace::root(),
    })
    .await
    .expect("api server")
    .expect("created");
}

async fn pods(api: &Addr<ApiServer>) -> Vec<Pod> {
    let list = api
        .send(List::all(Kind::Pod))
        .await
        .expect("api server")
        .expect("list");
    list.items
        .iter()
        .filter_map(|o| o.as_pod().cloned())
        .collect()
}

async fn node(api: &Addr<ApiServer>, name: &str) -> Node {
    let o = api
        .send(Get {
            kind: Kind::Node,
            namespace: None,
            name: name.into(),
        })
        .await
        .expect("api server")
        .expect("node");
    match &*o {
        Object::Node(n) => (**n).clone(),
        other => panic!("not a node: {other:?}"),
    }
}

async fn deployment(api: &Addr<ApiServer>) -> Deployment {
    let o = api
        .send(Get {
            kind: Kind::Deployment,
            namespace: Some("default".into()),
            name: "web".into(),
        })
        .await
        .expect("api server")
        .expect("deployment");
    match &*o {
        Object::Deployment(d) => (**d).clone(),
        other => panic!("not a deployment: {other:?}"),
    }
}

/// `(reason, message)` of every Event.
async fn events(api: &Addr<ApiServer>) -> Vec<(String, String)> {
    let list = api.send(List::all(Kind::Event)).await.unwrap().unwrap();
    list.items
        .iter()
        .filter_map(|o| match &**o {
            Object::Event(e) => Some((
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn condition(p: &Pod, type_: &str) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

fn running_and_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && condition(p, "Ready") == "True"
}

fn node_ready(n: &Node) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

fn taints(n: &Node) -> Vec<String> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        })
        .unwrap_or_default()
}

async fn nodes_ready(api: &Addr<ApiServer>) {
    for n in ["node-1", "node-2"] {
        eventually(&format!("{n} Ready"), || async {
            let got = api
                .send(Get {
                    kind: Kind::Node,
                    namespace: None,
                    name: n.into(),
                })
                .await
                .unwrap();
            match got.as_deref() {
                Ok(Object::Node(node)) if node_ready(node) == "True" => Some(()),
                _ => None,
            }
        })
        .await;
    }
}

/// Three running, ready replicas of `web` (not being deleted).
async fn three_running(api: &Addr<ApiServer>) -> Vec<Pod> {
    eventually("3 pods Running and Ready", || async {
        let running: Vec<Pod> = pods(api)
            .await
            .into_iter()
            .filter(running_and_ready)
            .collect();
        (running.len() == 3).then_some(running)
    })
    .await
}

fn kubelet(cluster: &Cluster, name: &str) -> Addr<kubeactor::kubelet::Kubelet> {
    cluster
        .nodes
        .iter()
        .find(|n| n.name == name)
        .map(|n| n.kubelet.clone())
        .expect("the node runs")
}

/// The node failure: stopping node-2's kubelet makes node-2 Unknown and tainted, evicts its
/// pods, the ReplicaSet replaces them on node-1, all of it ONE trace rooted at the node
/// lifecycle controller's `node node-2 NotReady`; starting it again makes node-2 Ready and
/// untainted, and its kubelet finishes the evicted pods.
#[actix_rt::test]
async fn a_failed_node_is_tainted_its_pods_are_replaced_and_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(
        &config(dir.path(), StoreEngine::Memory),
        Telemetry::in_memory(100_000),
    )
    .await
    .expect("cluster starts");
    let api = cluster.apiserver.clone();
    nodes_ready(&api).await;
    create(&api, Object::Deployment(web(3).into())).await;
    let before = three_running(&api).await;
    let on_node_2: Vec<String> = before
        .iter()
        .filter(|p| node_of(p) == "node-2")
        .map(name)
        .collect();
    assert!(
        !on_node_2.is_empty(),
        "the scheduler spreads 3 replicas over both nodes: {:?}",
        before
            .iter()
            .map(|p| (name(p), node_of(p)))
            .collect::<Vec<_>>()
    );
    for p in &before {
        let tolerations = p.spec.as_ref().unwrap().tolerations.clone().unwrap();
        assert!(
            tolerations.iter().any(
                |t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")
                    && t.toleration_seconds == Some(20)
            ),
            "DefaultTolerationSeconds with the configured seconds: {tolerations:?}"
        );
    }

    // node-2's kubelet stops: no more lease renewals or status.
    let stopped = kubelet(&cluster, "node-2").send(StopKubelet).await.unwrap();
    assert_eq!(stopped, KubeletState::Stopped);

    let unhealthy = eventually("node-2 Unknown and tainted", || async {
        let n = node(&api, "node-2").await;
        (node_ready(&n) == "Unknown" && taints(&n).len() == 2).then_some(n)
    })
    .await;
    for c in unhealthy
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
    {
        assert_eq!(c.status, "Unknown", "{}", c.type_);
        assert_eq!(
            c.reason.as_deref(),
            Some("NodeStatusUnknown"),
            "{}",
            c.type_
        );
        assert_eq!(
            c.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
    }
    assert_eq!(
        taints(&unhealthy),
        [
            "node.kubernetes.io/unreachable:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute"
        ]
    );
    assert_eq!(node_ready(&node(&api, "node-1").await), "True");

    // Its pods are marked not ready, then evicted after their 20 s (1 s real) toleration.
    let evicted = eventually("node-2's pods evicted", || async {
        let all = pods(&api).await;
        let mine: Vec<Pod> = all
            .into_iter()
            .filter(|p| on_node_2.contains(&name(p)))
            .collect();
        (mine.len() == on_node_2.len()
            && mine.iter().all(|p| p.metadata.deletion_timestamp.is_some()))
        .then_some(mine)
    })
    .await;
    for p in &evicted {
        assert_eq!(condition(p, "Ready"), "False", "MarkPodsNotReady");
        assert_eq!(condition(p, "DisruptionTarget"), "True");
    }
    let after = eventually("3 replacements Running on node-1", || async {
        let running: Vec<Pod> = pods(&api)
            .await
            .into_iter()
            .filter(running_and_ready)
            .collect();
        (running.len() == 3 && running.iter().all(|p| node_of(p) == "node-1")).then_some(running)
    })
    .await;
    let replacements: Vec<String> = after
        .iter()
        .map(name)
        .filter(|n| !before.iter().any(|b| name(b) == *n))
        .collect();
    assert_eq!(replacements.len(), on_node_2.len());
    let evs = events(&api).await;
    assert!(evs.contains(&(
        "NodeNotReady".into(),
        "Node node-2 status is now: NodeNotReady".into()
    )));
    for p in &on_node_2 {
        assert!(
            evs.contains(&(
                "TaintManagerEviction".into(),
                format!("Marking for deletion Pod default/{p}")
            )),
            "eviction event for {p}: {evs:?}"
        );
        assert!(evs.contains(&("NodeNotReady".into(), "Node is not ready".into())));
    }

    // ONE trace: NotReady → taint → evictions → RS sync → creates → schedule, bind → kubelet.
    let spans = cluster.telemetry.span_store();
    let trace = eventually("the node failure's trace complete", || async {
        let ids = spans.find_traces(|s| s.name == "node node-2 NotReady");
        let id = *ids.first()?;
        let trace = spans.trace(id);
        let complete = on_node_2
            .iter()
            .all(|p| has(&trace, &format!("evict pod default/{p}")))
            && replacements.iter().all(|p| {
                let sync = trace
                    .iter()
                    .find(|s| s.name == format!("sync pod default/{p}"));
                has(&trace, &format!("create pods default/{p}"))
                    && trace
                        .iter()
                        .any(|s| s.name.starts_with(&format!("bind pods default/{p}")))
                    && sync.is_some_and(|sync| {
                        trace.iter().any(|s| {
                            s.name == "start container nginx"
                                && s.parent_span_id == Some(sync.span_id)
                        })
                    })
            });
        complete.then_some(trace)
    })
    .await;
    let root = trace
        .iter()
        .find(|s| s.name == "node node-2 NotReady")
        .unwrap();
    assert!(
        root.is_root(),
        "the node lifecycle controller starts the trace"
    );
    assert_eq!(&*root.service_name, "kube-controller-manager");
    assert_eq!(
        spans
            .find_traces(|s| s.name == "node node-2 NotReady")
            .len(),
        1,
        "one trace for one failure"
    );
    let services: std::collections::BTreeSet<&str> =
        trace.iter().map(|s| &*s.service_name).collect();
    for s in [
        "kube-controller-manager",
        "kube-apiserver",
        "etcd",
        "kube-scheduler",
        "kubelet",
        "container-runtime",
    ] {
        assert!(services.contains(s), "{s} in {services:?}");
    }
    assert!(
        !trace.iter().any(|s| s.name.contains("leases")),
        "lease renewals stay out of the trace"
    );

    // node-2 comes back: Ready, untainted; its kubelet finishes the evicted pods.
    let started = kubelet(&cluster, "node-2")
        .send(StartKubelet)
        .await
        .unwrap();
    assert_eq!(started, KubeletState::Running);
    eventually("node-2 Ready and untainted", || async {
        let n = node(&api, "node-2").await;
        (node_ready(&n) == "True" && taints(&n).is_empty()).then_some(())
    })
    .await;
    eventually("the evicted pods gone", || async {
        let all = pods(&api).await;
        (!all.iter().any(|p| on_node_2.contains(&name(p)))).then_some(())
    })
    .await;
    let d = deployment(&api).await;
    assert_eq!(d.status.unwrap().available_replicas, Some(3));
    cluster.http.stop().await;
    cluster.stop();
}

fn has(trace: &[StoredSpan], name: &str) -> bool {
    trace.iter().any(|s| s.name == name)
}

/// Pod uid → (name, node, restartCount of nginx).
type Seen = BTreeMap<String, (String, String, i32)>;

fn seen(pods: &[Pod]) -> Seen {
    pods.iter()
        .map(|p| {
            let restarts = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.first())
                .map(|c| c.restart_count)
                .unwrap_or(-1);
            (
                p.metadata.uid.clone().unwrap_or_default(),
                (name(p), node_of(p).to_string(), restarts),
            )
        })
        .collect()
}

/// Run one cluster on `dir` (redb) on its own thread and actix system, do `f` with its API
/// server, then stop it and wait until everything it held (the store) is released.
fn with_cluster<T: Send + 'static, F, Fut>(dir: &Path, f: F) -> T
where
    F: FnOnce(Addr<ApiServer>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let config = config(dir, StoreEngine::Redb);
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            // The previous run's store may still be closing on its own thread: retry opening.
            let deadline = Instant::now() + DEADLINE;
            let cluster = loop {
                match Cluster::start(&config, Telemetry::in_memory(10_000)).await {
                    Ok(c) => break c,
                    Err(e) => {
                        assert!(Instant::now() < deadline, "cluster does not start: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            };
            let out = f(cluster.apiserver.clone()).await;
            cluster.http.stop().await;
            cluster.stop();
            drop(cluster);
            actix::System::current().stop();
            out
        })
    })
    .join()
    .expect("cluster thread")
}

/// A daemon restart on the same data directory is a reboot of every node: the fresh
/// container runtimes have no containers, so each kubelet restarts its pods' containers with
/// `restartCount` + 1, and the same pods (same uids, same nodes) converge to Running.
#[test]
fn a_restart_on_the_same_data_dir_reboots_the_nodes_and_the_same_pods_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = with_cluster(dir.path(), |api| async move {
        nodes_ready(&api).await;
        create(&api, Object::Deployment(web(3).into())).await;
        seen(&three_running(&api).await)
    });
    assert!(first.values().all(|(_, _, restarts)| *restarts == 0));
    let second = with_cluster(dir.path(), |api| async move {
        let again = eventually("the same pods Running with restartCount 1", || {
            let api = api.clone();
            async move {
                let running: Vec<Pod> = pods(&api)
                    .await
                    .into_iter()
                    .filter(running_and_ready)
                    .collect();
                let s = seen(&running);
                (s.len() == 3 && s.values().all(|(_, _, r)| *r == 1)).then_some(s)
            }
        })
        .await;
        eventually("the deployment available", || {
            let api = api.clone();
            async move {
                let d = deployment(&api).await;
                let available = d.status.as_ref().and_then(|s| s.available_replicas);
                (available == Some(3)).then_some(())
            }
        })
        .await;
        again
    });
    let strip = |s: &Seen| -> Vec<(String, String, String)> {
        s.iter()
            .map(|(uid, (n, node, _))| (uid.clone(), n.clone(), node.clone()))
            .collect()
    };
    assert_eq!(
        strip(&first),
        strip(&second),
        "the same pods, on the same nodes"
    );
}

// ---- the command line: `kubeactor node stop|start` against a running daemon ----

mod cli {
    use std::io::{BufRead, BufReader};
    use std::path::Path;
    use std::process::{Child, Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use kubeactor::client::Client;

    /// `kubeactor up` on `dir` (memory store, speed 20), once its banner says it serves.
    fn up(dir: &Path) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubeactor"))
            .args(["up", "--listen", "127.0.0.1:0", "--store-engine", "memory"])
            .args(["--set", "simulation.speed=20", "--data-dir"])
            .arg(dir)
            .env_remove("RUST_LOG")
            .env("OTEL_SDK_DISABLED", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubeactor up");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + super::DEADLINE;
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                if line.contains("stop with Ctrl-C") {
                    return child;
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "kubeactor up printed no banner within {:?}",
            super::DEADLINE
        );
    }

    fn node_cmd(dir: &Path, action: &str, name: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kubeactor"))
            .args(["node", action, name, "--data-dir"])
            .arg(dir)
            .output()
            .expect("run kubeactor node")
    }

    /// node-2's Ready condition status, read over the daemon's HTTP API.
    fn ready(client: &Client) -> String {
        let body = match client.get("/api/v1/nodes/node-2") {
            Ok(b) => b,
            Err(_) => return String::new(),
        };
        let node: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .and_then(|c| c["status"].as_str())
            .unwrap_or("")
            .to_string()
    }

    fn wait_ready(client: &Client, want: &str) {
        let deadline = Instant::now() + super::DEADLINE;
        while ready(client) != want {
            assert!(
                Instant::now() < deadline,
                "node-2 never became Ready={want}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kubeactor node stop node-2` stops its kubelet through the admin endpoint, and the node
    /// goes Unknown; `start` brings it back Ready; an unknown node is a clean error.
    #[test]
    fn kubeactor_node_stop_and_start_a_running_daemons_node() {
        let dir = tempfile::tempdir().unwrap();
        let mut daemon = up(dir.path());
        let client = Client::from_data_dir(dir.path()).expect("the daemon's kubeconfig");
        wait_ready(&client, "True");

        let out = node_cmd(dir.path(), "stop", "node-2");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "node/node-2 stopped\n"
        );
        wait_ready(&client, "Unknown");

        let out = node_cmd(dir.path(), "start", "node-2");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "node/node-2 running\n"
        );
        wait_ready(&client, "True");

        let out = node_cmd(dir.path(), "stop", "node-9");
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: nodes \"node-9\" not found\n"
        );

        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(daemon.id() as i32, libc::SIGTERM);
        }
        assert!(daemon.wait().unwrap().success());
    }
}
