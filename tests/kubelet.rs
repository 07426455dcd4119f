//! The kubelet on the memory store: a Kubelet and a ContainerRuntime for one node, pods bound
//! to it through the ApiServer, and what they become. Simulated work is instant (speed 0)
//! unless a test is about back-off, where a speed makes the upstream periods short.
//!
//! Tests poll the API server with a deadline: nothing sleeps and hopes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use k8s_openapi::api::core::v1::{
    Binding, Container, ObjectReference, Pod, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubeactor::api::{Kind, Object};
use kubeactor::apiserver::*;
use kubeactor::clock::SimClock;
use kubeactor::config::StoreEngine;
use kubeactor::kubelet::config::{KubeletConfig, NodeConfig};
use kubeactor::kubelet::{Kubelet, KubeletOptions};
use kubeactor::runtime::{ContainerRuntime, ListContainers, RuntimeConfig};
use kubeactor::store::{self, Store, StoreOptions};
use kubeactor::telemetry::Telemetry;

struct Node1 {
    api: Addr<ApiServer>,
    runtime: Addr<ContainerRuntime>,
    _kubelet: Addr<Kubelet>,
    telemetry: Telemetry,
    _store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn node_1(speed: f64, config: KubeletConfig) -> Node1 {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(StoreEngine::Memory, dir.path(), StoreOptions::default()).unwrap();
    let telemetry = Telemetry::in_memory(10_000);
    let api = ApiServer::new(store.clone(), ApiServerOptions::default(), &telemetry)
        .unwrap()
        .start()
        .await
        .unwrap();
    let clock = SimClock::new(speed).shared();
    let node = NodeConfig::new("node-1", "10.244.1.0/24");
    let runtime = ContainerRuntime::new(
        "node-1",
        &node.pod_cidr,
        RuntimeConfig::default(),
        clock.clone(),
        &telemetry,
    )
    .unwrap()
    .start();
    let kubelet = Kubelet::new(
        KubeletOptions {
            node,
            index: 0,
            config,
        },
        api.clone(),
        runtime.clone(),
        clock,
        &telemetry,
    )
    .start();
    let n = Node1 {
        api,
        runtime,
        _kubelet: kubelet,
        telemetry,
        _store: store,
        _dir: dir,
    };
    n.wait_for_node_ready().await;
    n
}

fn container(name: &str, image: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(image.into()),
        ..Default::default()
    }
}

fn shell(name: &str, script: &str) -> Container {
    Container {
        command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        ..container(name, "busybox:1.36")
    }
}

fn pod(name: &str, containers: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Node1 {
    async fn wait_for_node_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let node = self
                .api
                .send(Get {
                    kind: Kind::Node,
                    namespace: None,
                    name: "node-1".into(),
                })
                .await
                .unwrap();
            if node.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "node-1 never registered");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Create the pod unbound, then bind it to node-1 as the scheduler would.
    async fn run(&self, pod: Pod) -> Pod {
        let name = pod.metadata.name.clone().unwrap();
        let created = self
            .api
            .send(Create {
                object: Object::Pod(pod.into()),
                options: WriteOptions::default(),
                trace: Trace::root(),
            })
            .await
            .unwrap()
            .unwrap();
        self.api
            .send(Bind {
                namespace: "default".into(),
                binding: Binding {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        uid: created.meta().uid.clone(),
                        ..Default::default()
                    },
                    target: ObjectReference {
                        kind: Some("Node".into()),
                        name: Some("node-1".into()),
                        ..Default::default()
                    },
                },
                trace: Trace::Context(kubeactor::telemetry::extract(created.meta())),
            })
            .await
            .unwrap()
            .unwrap();
        self.get(&name).await.unwrap()
    }

    async fn get(&self, name: &str) -> Option<Pod> {
        let o = self
            .api
            .send(Get {
                kind: Kind::Pod,
                namespace: Some("default".into()),
                name: name.into(),
            })
            .await
            .unwrap()
            .ok()?;
        o.as_pod().cloned()
    }

    /// Poll until `done(pod)`, for at most 10 s; returns the pod.
    async fn wait(&self, name: &str, what: &str, done: impl Fn(&Pod) -> bool) -> Pod {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = self.get(name).await {
                if done(&p) {
                    return p;
                }
                if Instant::now() > deadline {
                    panic!("{name}: not {what} within 10 s: {:#?}", p.status);
                }
            } else if Instant::now() > deadline {
                panic!("{name}: gone before {what}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// (reason, message) of every Event about `name`, oldest first.
    async fn events(&self, name: &str) -> Vec<(String, String)> {
        let list = self
            .api
            .send(List::all(Kind::Event))
            .await
            .unwrap()
            .unwrap();
        let mut events: Vec<_> = list
            .items
            .iter()
            .filter_map(|o| match &**o {
                Object::Event(e) if e.involved_object.name.as_deref() == Some(name) => {
                    Some((**e).clone())
                }
                _ => None,
            })
            .collect();
        events.sort_by_key(|e| e.metadata.name.clone());
        events
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    /// Poll until the events of `name` include `(reason, message)`.
    async fn wait_event(&self, name: &str, reason: &str, message: &str) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.events(name).await;
            if events.iter().any(|(r, m)| r == reason && m == message) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no event {reason} {message:?} in {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
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

fn waiting_reason(p: &Pod, container: &str) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
        .unwrap_or_default()
}

fn all_ready(p: &Pod) -> bool {
    phase(p) == "Running" && condition(p, "Ready") == "True"
}

#[actix_rt::test]
async fn the_node_registers_with_status_and_a_lease() {
    let n = node_1(0.0, KubeletConfig::default()).await;
    let node = n
        .api
        .send(Get {
            kind: Kind::Node,
            namespace: None,
            name: "node-1".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let Object::Node(node) = &*node else {
        panic!("not a node")
    };
    let status = node.status.clone().unwrap();
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    assert_eq!(status.capacity.unwrap()["cpu"].0, "4");
    assert_eq!(
        status.node_info.unwrap().kubelet_version,
        kubeactor::kubelet::node_status::KUBELET_VERSION
    );
    let lease = n
        .api
        .send(Get {
            kind: Kind::Lease,
            namespace: Some("kube-node-lease".into()),
            name: "node-1".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let Object::Lease(lease) = &*lease else {
        panic!("not a lease")
    };
    let spec = lease.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("node-1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    n.wait_event(
        "node-1",
        "NodeReady",
        "Node node-1 status is now: NodeReady",
    )
    .await;
    n.wait_event("node-1", "Starting", "Starting kubelet.")
        .await;
}

/// A bound pod with two containers: sandbox, pulls, creates, starts, and the status that
/// says so (phase, conditions, container statuses, IPs), with upstream's events.
#[actix_rt::test]
async fn a_bound_pod_with_two_containers_reaches_running() {
    let n = node_1(0.0, KubeletConfig::default()).await;
    n.run(pod(
        "web",
        vec![
            container("nginx", "nginx:1.27"),
            container("cache", "redis:7"),
        ],
    ))
    .await;
    let p = n.wait("web", "Running and Ready", all_ready).await;
    let status = p.status.clone().unwrap();
    assert_eq!(status.pod_ip.as_deref(), Some("10.244.1.2"));
    assert_eq!(status.host_ip.as_deref(), Some("172.18.0.2"));
    assert!(status.start_time.is_some());
    for c in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ] {
        assert_eq!(condition(&p, c), "True", "condition {c}");
    }
    let statuses = status.container_statuses.unwrap();
    assert_eq!(statuses.len(), 2);
    let nginx = &statuses[0];
    assert_eq!(nginx.name, "nginx");
    assert!(nginx.ready);
    assert_eq!(nginx.restart_count, 0);
    assert_eq!(nginx.started, Some(true));
    assert_eq!(nginx.image, "docker.io/library/nginx:1.27");
    assert!(nginx
        .image_id
        .starts_with("docker.io/library/nginx@sha256:"));
    assert!(nginx
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("containerd://"));
    assert!(nginx
        .state
        .as_ref()
        .unwrap()
        .running
        .as_ref()
        .unwrap()
        .started_at
        .is_some());

    let events = n
        .wait_event("web", "Started", "Started container cache")
        .await;
    let has = |reason: &str, message: &str| {
        events
            .iter()
            .any(|(r, m)| r == reason && m.starts_with(message))
    };
    assert!(has("Pulling", "Pulling image \"nginx:1.27\""));
    assert!(has(
        "Pulled",
        "Successfully pulled image \"nginx:1.27\" in 1.74s (1.74s including waiting). Image size: 72000000 bytes."
    ));
    assert!(has("Created", "Created container: nginx"));
    assert!(has("Started", "Started container nginx"));
    assert!(has("Pulling", "Pulling image \"redis:7\""));
}

/// A new pod's status is written twice, as upstream's kubelet does it (`SyncPod` sets it once
/// before the runtime creates the sandbox; the sync PLEG's container events trigger sets the
/// next): Pending with `ContainerCreating` and no IP, then Running with the pod IP. No
/// version shows the IP while the pod is still Pending.
#[actix_rt::test]
async fn a_new_pod_gets_two_statuses_and_its_ip_when_running() {
    let n = node_1(0.0, KubeletConfig::default()).await;
    let mut watch = n.api.send(Watch::all(Kind::Pod)).await.unwrap().unwrap();
    n.run(pod("web", vec![container("nginx", "nginx:1.27")]))
        .await;
    n.wait("web", "Running and Ready", all_ready).await;
    // The API server hands a write to its watchers before any later read sees it, so every
    // version up to Running is in the channel now.
    let mut written = Vec::new();
    while let Ok(ev) = watch.rx.try_recv() {
        let (WatchEvent::Added(o) | WatchEvent::Modified(o)) = ev else {
            continue;
        };
        // The kubelet's writes: the API server's create and the bind set no host IP.
        let Some(status) = o.as_pod().and_then(|p| p.status.clone()) else {
            continue;
        };
        if let (Some(phase), Some(_)) = (status.phase, status.host_ip) {
            let waiting = status
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                .collect::<Vec<_>>();
            written.push((phase, status.pod_ip, waiting));
        }
    }
    let running = written
        .iter()
        .position(|(phase, _, _)| phase == "Running")
        .expect("a Running version");
    assert_eq!(
        written[..=running],
        [
            (
                "Pending".to_string(),
                None,
                vec!["ContainerCreating".to_string()]
            ),
            (
                "Running".to_string(),
                Some("10.244.1.2".to_string()),
                vec![]
            ),
        ],
        "the statuses the kubelet wrote, in order"
    );
}

#[actix_rt::test]
async fn a_second_pod_with_the_same_image_pulls_nothing() {
    let n = node_1(0.0, KubeletConfig::default()).await;
    n.run(pod("first", vec![container("nginx", "nginx:1.27")]))
        .await;
    n.wait("first", "Running", all_ready).await;
    n.run(pod("second", vec![container("nginx", "nginx:1.27")]))
        .await;
    let p = n.wait("second", "Running", all_ready).await;
    assert_eq!(p.status.unwrap().pod_ip.as_deref(), Some("10.244.1.3"));
    let events = n
        .wait_event(
            "second",
            "Pulled",
            "Container image \"nginx:1.27\" already present on machine",
        )
        .await;
    assert!(
        !events.iter().any(|(r, _)| r == "Pulling"),
        "no pull for the second pod: {events:?}"
    );
}

#[actix_rt::test]
async fn init_containers_run_first_and_in_order() {
    let n = node_1(0.0, KubeletConfig::default()).await;
    let mut p = pod("with-init", vec![container("app", "nginx:1.27")]);
    p.spec.as_mut().unwrap().init_containers = Some(vec![
        shell("init-a", "echo a; sleep 1"),
        shell("init-b", "echo b"),
    ]);
    n.run(p).await;
    let p = n.wait("with-init", "Running", all_ready).await;
    let inits = p.status.clone().unwrap().init_container_statuses.unwrap();
    assert_eq!(inits.len(), 2);
    for s in &inits {
        let t = s.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(t.exit_code, 0, "{}", s.name);
        assert_eq!(t.reason.as_deref(), Some("Completed"));
    }
    let uid = p.metadata.uid.clone().unwrap();
    let order: Vec<String> = n
        .runtime
        .send(ListContainers { pod_uid: Some(uid) })
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(order, ["init-a", "init-b", "app"]);
}

/// An image that cannot exist: ErrImagePull, then ImagePullBackOff (speed 100: the 10 s
/// back-off is 100 ms).
#[actix_rt::test]
async fn a_bad_image_reaches_image_pull_back_off() {
    let n = node_1(100.0, KubeletConfig::default()).await;
    n.run(pod("bad", vec![container("app", "nginx:doesnotexist")]))
        .await;
    let p = n
        .wait("bad", "ImagePullBackOff", |p| {
            waiting_reason(p, "app") == "ImagePullBackOff"
        })
        .await;
    assert_eq!(phase(&p), "Pending");
    assert_eq!(condition(&p, "Ready"), "False");
    let events = n
        .wait_event(
            "bad",
            "BackOff",
            "Back-off pulling image \"nginx:doesnotexist\"",
        )
        .await;
    assert!(events
        .iter()
        .any(|(r, m)| r == "Failed" && m == "Error: ErrImagePull"));
    assert!(events.iter().any(|(r, m)| r == "Failed"
        && m.starts_with(
            "Failed to pull image \"nginx:doesnotexist\": rpc error: code = NotFound"
        )));
}

#[actix_rt::test]
async fn a_pod_that_does_not_fit_is_rejected() {
    let n = node_1(0.0, KubeletConfig::default()).await;
    let mut big = container("big", "nginx:1.27");
    big.resources = Some(ResourceRequirements {
        requests: Some([("cpu".to_string(), Quantity("5".into()))].into()),
        ..Default::default()
    });
    n.run(pod("too-big", vec![big])).await;
    let p = n.wait("too-big", "Failed", |p| phase(p) == "Failed").await;
    let status = p.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("OutOfcpu"));
    assert_eq!(
        status.message.as_deref(),
        Some("Pod was rejected: Node didn't have enough resource: cpu, requested: 5000, used: 0, capacity: 4000")
    );
    n.wait_event(
        "too-big",
        "OutOfcpu",
        "Node didn't have enough resource: cpu, requested: 5000, used: 0, capacity: 4000",
    )
    .await;
    drop(n.telemetry);
}

/// A pod created with `spec.nodeName` already set (no scheduler, no Bind) is the kubelet's
/// at once, as with a real kubelet.
#[actix_rt::test]
async fn a_pod_created_with_its_node_name_runs_without_a_scheduler() {
    let n = node_1(0.0, KubeletConfig::default()).await;
    let mut p = pod("pinned", vec![container("nginx", "nginx:1.27")]);
    p.spec.as_mut().unwrap().node_name = Some("node-1".into());
    n.api
        .send(Create {
            object: Object::Pod(p.into()),
            options: WriteOptions::default(),
            trace: Trace::Untraced,
        })
        .await
        .unwrap()
        .unwrap();
    let p = n.wait("pinned", "Running and Ready", all_ready).await;
    assert_eq!(
        p.status.unwrap().host_ip.as_deref(),
        Some("172.18.0.2"),
        "node-1's address"
    );
}

/// A stopped kubelet (fault injection) stops renewing its Lease and leaves its containers
/// running in the runtime; started again, it renews and picks its running pod up as it is.
#[actix_rt::test]
async fn a_stopped_kubelet_stops_renewing_its_lease_and_resumes_its_pods_when_started() {
    use kubeactor::kubelet::actor::{KubeletState, StartKubelet, StopKubelet};
    // At speed 0 every period is 1 ms: the lease is renewed every millisecond while running.
    let n = node_1(0.0, KubeletConfig::default()).await;
    n.run(pod("web", vec![container("nginx", "nginx:1.27")]))
        .await;
    let before = n.wait("web", "Running and Ready", all_ready).await;
    assert_eq!(
        n._kubelet.send(StopKubelet).await.unwrap(),
        KubeletState::Stopped
    );
    let renew_time = || async {
        let l = n
            .api
            .send(Get {
                kind: Kind::Lease,
                namespace: Some("kube-node-lease".into()),
                name: "node-1".into(),
            })
            .await
            .unwrap()
            .unwrap();
        match &*l {
            Object::Lease(l) => l.spec.as_ref().unwrap().renew_time.clone(),
            _ => None,
        }
    };
    // A renewal already in flight may still land; after it the lease stays put for hundreds
    // of periods.
    let stopped_at = renew_time().await;
    let watch_until = Instant::now() + Duration::from_millis(500);
    let mut last = stopped_at.clone();
    let mut changes = 0;
    while Instant::now() < watch_until {
        let now = renew_time().await;
        if now != last {
            changes += 1;
            last = now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        changes <= 1,
        "the lease kept being renewed ({changes} times)"
    );
    let containers = n
        .runtime
        .send(ListContainers { pod_uid: None })
        .await
        .unwrap();
    assert!(
        containers
            .iter()
            .any(|c| c.name == "nginx" && c.state == kubeactor::runtime::ContainerState::Running),
        "the runtime's container keeps running"
    );
    assert_eq!(
        n._kubelet.send(StartKubelet).await.unwrap(),
        KubeletState::Running
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while renew_time().await == last {
        assert!(Instant::now() < deadline, "the lease is renewed again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = n.wait("web", "Running and Ready", all_ready).await;
    let id = |p: &Pod| {
        p.status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .container_id
            .clone()
    };
    assert_eq!(id(&after), id(&before), "the same container, not a restart");
}

/// A pod deleted (grace 0) while its kubelet was stopped still runs in the runtime; the
/// kubelet that comes back finds it bound nowhere and removes its containers.
#[actix_rt::test]
async fn a_kubelet_that_comes_back_removes_the_containers_of_pods_deleted_meanwhile() {
    use kubeactor::kubelet::actor::{StartKubelet, StopKubelet};
    use kubeactor::runtime::ListPodSandbox;
    let n = node_1(0.0, KubeletConfig::default()).await;
    n.run(pod("gone", vec![container("nginx", "nginx:1.27")]))
        .await;
    let p = n.wait("gone", "Running and Ready", all_ready).await;
    let uid = p.metadata.uid.clone().unwrap();
    n._kubelet.send(StopKubelet).await.unwrap();
    n.api
        .send(Delete {
            kind: Kind::Pod,
            namespace: Some("default".into()),
            name: "gone".into(),
            options: k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
            write: WriteOptions::default(),
            trace: Trace::Untraced,
        })
        .await
        .unwrap()
        .unwrap();
    let sandboxes = || async {
        n.runtime
            .send(ListPodSandbox {
                pod_uid: Some(uid.clone()),
            })
            .await
            .unwrap()
    };
    assert_eq!(
        sandboxes().await.len(),
        1,
        "still there while the kubelet is away"
    );
    n._kubelet.send(StartKubelet).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sandboxes().await.is_empty() {
        assert!(Instant::now() < deadline, "the orphan's sandbox is removed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The kubelet continues the binding's trace: `sync pod` (kubelet, node-1) under the bind,
/// the runtime's spans under it, and the status update that makes the pod Running last.
/// The lease renewals and node status writes are in no trace of the pod.
#[actix_rt::test]
async fn the_kubelet_continues_the_binding_trace_until_the_pod_runs() {
    let n = node_1(0.0, KubeletConfig::default()).await;
    n.run(pod("traced", vec![container("nginx", "nginx:1.27")]))
        .await;
    n.wait("traced", "Running", all_ready).await;
    let store = n.telemetry.span_store();
    let deadline = Instant::now() + Duration::from_secs(10);
    let trace = loop {
        let ids = store.find_traces(|s| s.name == "sync pod default/traced");
        if let Some(id) = ids.first() {
            let spans = store.trace(*id);
            if spans.iter().any(|s| {
                s.name.starts_with("update status pods")
                    && spans
                        .iter()
                        .filter(|x| x.name == "start container nginx")
                        .count()
                        == 1
            }) {
                break spans;
            }
        }
        assert!(Instant::now() < deadline, "no complete kubelet trace");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let by_name = |name: &str| {
        trace.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no span {name:?} in {:#?}",
                trace.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let bind = trace
        .iter()
        .find(|s| s.name.starts_with("bind pods default/traced"))
        .expect("the bind span");
    let sync = by_name("sync pod default/traced");
    assert_eq!(sync.parent_span_id, Some(bind.span_id));
    assert_eq!(&*sync.service_name, "kubelet");
    assert_eq!(sync.node.as_deref(), Some("node-1"));
    for name in [
        "run pod sandbox",
        "pull image nginx:1.27",
        "create container nginx",
        "start container nginx",
    ] {
        let s = by_name(name);
        assert_eq!(&*s.service_name, "container-runtime", "{name}");
        assert_eq!(s.parent_span_id, Some(sync.span_id), "{name}");
    }
    let pull = by_name("pull image nginx:1.27");
    assert_eq!(
        pull.attribute("cache.hit"),
        Some(&opentelemetry::Value::Bool(false))
    );
    // The last hop (its etcd write aside) is the status update that says Running.
    let last = trace
        .iter()
        .filter(|s| &*s.service_name != "etcd")
        .max_by_key(|s| s.start_time)
        .unwrap();
    assert!(
        last.name.starts_with("update status pods default/traced"),
        "last span: {}",
        last.name
    );
    assert!(!trace.iter().any(|s| s.name.contains("lease")));
}

/// The status of container `name` (an empty one until the kubelet reports it).
fn container_status(p: &Pod, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == name))
        .cloned()
        .unwrap_or_default()
}

/// A command that exits 1 under `restartPolicy: Always`: restarted with a growing back-off
/// (speed 100: 10 s, 20 s, 40 s are 100, 200, 400 ms), shown as CrashLoopBackOff.
#[actix_rt::test]
async fn a_crashing_container_reaches_crash_loop_back_off_with_growing_restarts() {
    let n = node_1(100.0, KubeletConfig::default()).await;
    n.run(pod("crash", vec![shell("app", "echo dying; exit 1")]))
        .await;
    let p = n
        .wait("crash", "CrashLoopBackOff after 2 restarts", |p| {
            waiting_reason(p, "app") == "CrashLoopBackOff"
                && container_status(p, "app").restart_count >= 2
        })
        .await;
    let s = container_status(&p, "app");
    let last = s.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 1);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    let waiting = s.state.unwrap().waiting.unwrap();
    // 20 s after the second crash (40 s if polling missed that window on a loaded machine).
    let message = waiting.message.unwrap();
    assert!(
        message.starts_with("back-off 20s restarting failed container=app pod=crash_default(")
            || message.starts_with("back-off 40s restarting failed container=app"),
        "{message}"
    );
    assert_eq!(
        phase(&p),
        "Running",
        "restartPolicy Always keeps the pod Running"
    );
    assert_eq!(condition(&p, "Ready"), "False");
    let uid = p.metadata.uid.unwrap();
    n.wait_event(
        "crash",
        "BackOff",
        &format!("Back-off restarting failed container app in pod crash_default({uid})"),
    )
    .await;
}

#[actix_rt::test]
async fn a_failing_readiness_probe_keeps_the_pod_unready() {
    let n = node_1(0.0, KubeletConfig::default()).await;
    let probe = |path: &str| k8s_openapi::api::core::v1::Probe {
        http_get: Some(k8s_openapi::api::core::v1::HTTPGetAction {
            path: Some(path.into()),
            port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut failing = container("web", "nginx:1.27");
    failing.readiness_probe = Some(probe("/fail"));
    let mut healthy = container("api", "nginx:1.27");
    healthy.readiness_probe = Some(probe("/healthz"));
    n.run(pod("unready", vec![failing, healthy])).await;
    n.wait_event(
        "unready",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 500",
    )
    .await;
    let p = n
        .wait("unready", "Running with api ready", |p| {
            phase(p) == "Running" && container_status(p, "api").ready
        })
        .await;
    assert!(!container_status(&p, "web").ready);
    assert_eq!(condition(&p, "ContainersReady"), "False");
    assert_eq!(condition(&p, "Ready"), "False");
    let ready = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [web]")
    );
}

/// The liveness example of the Kubernetes docs: the file disappears after 30 s, the probe
/// fails, the container is killed and restarted (speed 100).
#[actix_rt::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let n = node_1(100.0, KubeletConfig::default()).await;
    let mut app = shell(
        "app",
        "touch /tmp/healthy; sleep 30; rm -f /tmp/healthy; sleep 600",
    );
    app.liveness_probe = Some(k8s_openapi::api::core::v1::Probe {
        exec: Some(k8s_openapi::api::core::v1::ExecAction {
            command: Some(vec!["cat".into(), "/tmp/healthy".into()]),
        }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(5),
        ..Default::default()
    });
    let mut p = pod("liveness", vec![app]);
    p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(1);
    n.run(p).await;
    let p = n
        .wait("liveness", "restarted", |p| {
            container_status(p, "app").restart_count >= 1
                && container_status(p, "app")
                    .state
                    .is_some_and(|s| s.running.is_some())
        })
        .await;
    assert_eq!(phase(&p), "Running");
    let events = n
        .wait_event(
            "liveness",
            "Killing",
            "Container app failed liveness probe, will be restarted",
        )
        .await;
    assert!(events.iter().any(|(r, m)| r == "Unhealthy"
        && m == "Liveness probe failed: cat: /tmp/healthy: No such file or directory"));
}

/// `kubectl delete pod`: a shell ignores SIGTERM, so the container runs to the end of its
/// grace period (2 s at speed 10: at least 200 ms), then the kubelet deletes the pod.
#[actix_rt::test]
async fn a_graceful_delete_honours_the_grace_period() {
    let n = node_1(10.0, KubeletConfig::default()).await;
    let mut p = pod("graceful", vec![shell("app", "sleep 3600")]);
    p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(2);
    n.run(p).await;
    n.wait("graceful", "Running", all_ready).await;
    let started = Instant::now();
    let deleted = n
        .api
        .send(Delete {
            kind: Kind::Pod,
            namespace: Some("default".into()),
            name: "graceful".into(),
            options: Default::default(),
            write: WriteOptions::default(),
            trace: Trace::root(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(deleted, Deleted::Pending(_)),
        "a bound pod waits for its kubelet"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while n.get("graceful").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the kubelet never removed the pod"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "deleted after {took:?}, before the 2 s (simulated) grace period"
    );
    n.wait_event("graceful", "Killing", "Stopping container app")
        .await;
    let left = n
        .runtime
        .send(ListContainers { pod_uid: None })
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "the sandbox and its containers are removed"
    );
}
