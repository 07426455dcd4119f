//! The kube-scheduler actor against a real ApiServer on the memory store: nodes are created
//! as a kubelet registers them (capacity, allocatable, Ready), pods directly through the
//! ApiServer (no kubelets or controllers run). Every wait polls with a deadline.
//!
//! Covers: spreading, taints and tolerations, nodeSelector and required node affinity, pod
//! anti-affinity, the exact `Unschedulable` message and `FailedScheduling` event, pending pods
//! scheduled when a node is added, cordoned nodes, no over-commit under a burst of 500 pods,
//! relisting when the API server closes a watch that fell behind, profiles picked by
//! `schedulerName`, the `Scheduled` event, the `schedule pod` span in
//! the pod's creation trace, and the `BindBatch` the scheduler binds with.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use k8s_openapi::api::core::v1::{
    Affinity, Binding, Container, Event, Node, NodeAffinity, NodeCondition, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, NodeStatus, ObjectReference, Pod,
    PodAffinityTerm, PodAntiAffinity, PodSpec, ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as MetaSelector, ObjectMeta};
use kubeactor::api::selectors::FieldSelector;
use kubeactor::api::{Kind, Object};
use kubeactor::apiserver::*;
use kubeactor::config::StoreEngine;
use kubeactor::scheduler::actor::{GetStats, Scheduler};
use kubeactor::scheduler::profile::{PluginRef, ScoringStrategyType};
use kubeactor::scheduler::{default_profile, SchedulerConfig};
use kubeactor::store::{self, Store, StoreOptions};
use kubeactor::telemetry::{self, Telemetry};
use opentelemetry::trace::TraceContextExt;

/// How long any wait may take before the test fails (generous: CI machines are shared).
const DEADLINE: Duration = Duration::from_secs(20);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(10);

struct TestCluster {
    api: Addr<ApiServer>,
    scheduler: Addr<Scheduler>,
    telemetry: Telemetry,
    _store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn cluster_with(config: SchedulerConfig) -> TestCluster {
    cluster_with_api(config, ApiServerOptions::default()).await
}

async fn cluster_with_api(config: SchedulerConfig, opts: ApiServerOptions) -> TestCluster {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(StoreEngine::Memory, dir.path(), StoreOptions::default()).unwrap();
    let telemetry = Telemetry::in_memory(20_000);
    let api = ApiServer::new(store.clone(), opts, &telemetry)
        .unwrap()
        .start()
        .await
        .unwrap();
    let scheduler = Scheduler::new(api.clone(), &config, &telemetry)
        .unwrap()
        .start();
    TestCluster {
        api,
        scheduler,
        telemetry,
        _store: store,
        _dir: dir,
    }
}

async fn cluster() -> TestCluster {
    cluster_with(SchedulerConfig::default()).await
}

/// Poll `check` until it returns `Some`, or fail after [`DEADLINE`] saying what was awaited.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn q(s: &str) -> Quantity {
    Quantity(s.to_string())
}

/// A node as a kubelet registers it: hostname and os labels, capacity = allocatable, Ready.
fn node(name: &str, cpu: &str) -> Node {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), q(cpu)),
        ("memory".to_string(), q("8Gi")),
        ("pods".to_string(), q("110")),
        ("ephemeral-storage".to_string(), q("100Gi")),
    ]
    .into();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                [
                    ("kubernetes.io/hostname".to_string(), name.to_string()),
                    ("kubernetes.io/os".to_string(), "linux".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(resources.clone()),
            allocatable: Some(resources),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("kubelet is posting ready status".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn labelled(mut n: Node, labels: &[(&str, &str)]) -> Node {
    let l = n.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in labels {
        l.insert(k.to_string(), v.to_string());
    }
    n
}

fn tainted(mut n: Node, key: &str, value: &str) -> Node {
    let spec = n.spec.get_or_insert_with(Default::default);
    spec.taints.get_or_insert_with(Vec::new).push(Taint {
        key: key.into(),
        value: (!value.is_empty()).then(|| value.to_string()),
        effect: "NoSchedule".into(),
        time_added: None,
    });
    n
}

fn cordoned(mut n: Node) -> Node {
    n.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
    n
}

/// A pod in `default` labelled `app=<app>` with one container requesting `cpu`.
fn pod(name: &str, app: &str, cpu: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some([("app".to_string(), app.to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("nginx:1.27".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(
                        [
                            ("cpu".to_string(), q(cpu)),
                            ("memory".to_string(), q("64Mi")),
                        ]
                        .into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

fn spec(p: &mut Pod) -> &mut PodSpec {
    p.spec.get_or_insert_with(Default::default)
}

async fn create(api: &Addr<ApiServer>, object: impl Into<Object>, trace: Trace) -> Arc<Object> {
    api.send(Create {
        object: object.into(),
        options: WriteOptions::default(),
        trace,
    })
    .await
    .unwrap()
    .unwrap()
}

impl TestCluster {
    /// Create nodes and wait until the scheduler's snapshot has them all, so no pod is
    /// scheduled against a partial view (node and pod watch events are separate streams).
    async fn nodes(&self, nodes: Vec<Node>) {
        let want = self.stats().await.nodes + nodes.len();
        for n in nodes {
            create(&self.api, n, Trace::Untraced).await;
        }
        eventually("the scheduler to see the nodes", || async {
            let s = self.stats().await;
            (s.synced && s.nodes == want).then_some(())
        })
        .await;
    }

    async fn stats(&self) -> kubeactor::scheduler::actor::SchedulerStats {
        self.scheduler.send(GetStats).await.unwrap()
    }

    async fn create_pod(&self, p: Pod) {
        create(&self.api, p, Trace::Untraced).await;
    }

    async fn pods(&self) -> Vec<Pod> {
        self.api
            .send(List::all(Kind::Pod))
            .await
            .unwrap()
            .unwrap()
            .items
            .iter()
            .filter_map(|o| o.as_pod().cloned())
            .collect()
    }

    async fn pod(&self, name: &str) -> Pod {
        let o = self
            .api
            .send(Get {
                kind: Kind::Pod,
                namespace: Some("default".into()),
                name: name.into(),
            })
            .await
            .unwrap()
            .unwrap();
        o.as_pod().cloned().unwrap()
    }

    /// Wait until pod `name` is bound; returns its node.
    async fn bound(&self, name: &str) -> String {
        eventually(&format!("pod {name} to be bound"), || async {
            node_of(&self.pod(name).await)
        })
        .await
    }

    /// Wait until pod `name` has `PodScheduled=False`; returns (reason, message).
    async fn unschedulable(&self, name: &str) -> (String, String) {
        eventually(
            &format!("pod {name} to be marked unschedulable"),
            || async {
                let p = self.pod(name).await;
                let c = scheduled_condition(&p)?;
                (c.status == "False").then(|| {
                    (
                        c.reason.clone().unwrap_or_default(),
                        c.message.clone().unwrap_or_default(),
                    )
                })
            },
        )
        .await
    }

    /// Wait for an event about pod `name` with `reason`.
    async fn event(&self, name: &str, reason: &str) -> Event {
        eventually(&format!("a {reason} event for {name}"), || async {
            let list = self
                .api
                .send(List {
                    namespace: Some("default".into()),
                    ..List::all(Kind::Event)
                })
                .await
                .unwrap()
                .unwrap();
            list.items.iter().find_map(|o| match o.as_ref() {
                Object::Event(e)
                    if e.involved_object.name.as_deref() == Some(name)
                        && e.reason.as_deref() == Some(reason) =>
                {
                    Some((**e).clone())
                }
                _ => None,
            })
        })
        .await
    }
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

fn scheduled_condition(p: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")
}

/// Pods per node, for the bound pods.
fn placement(pods: &[Pod]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for p in pods {
        if let Some(n) = node_of(p) {
            *m.entry(n).or_default() += 1;
        }
    }
    m
}

/// Three replicas over two equal nodes end up two on one node and one on the other.
#[actix_rt::test]
async fn three_replicas_over_two_equal_nodes_end_up_two_and_one() {
    let c = cluster().await;
    c.nodes(vec![node("node-1", "4"), node("node-2", "4")])
        .await;
    for i in 0..3 {
        c.create_pod(pod(&format!("web-{i}"), "web", "500m")).await;
    }
    for i in 0..3 {
        c.bound(&format!("web-{i}")).await;
    }
    let mut counts: Vec<usize> = placement(&c.pods().await).into_values().collect();
    counts.sort();
    assert_eq!(counts, vec![1, 2]);
}

/// A successful bind records a `Scheduled` event with upstream's message.
#[actix_rt::test]
async fn binding_records_a_scheduled_event() {
    let c = cluster().await;
    c.nodes(vec![node("node-1", "4")]).await;
    c.create_pod(pod("web-abc12", "web", "100m")).await;
    assert_eq!(c.bound("web-abc12").await, "node-1");
    let e = c.event("web-abc12", "Scheduled").await;
    assert_eq!(
        e.message.as_deref(),
        Some("Successfully assigned default/web-abc12 to node-1")
    );
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(
        e.source.and_then(|s| s.component).as_deref(),
        Some("default-scheduler")
    );
    let p = c.pod("web-abc12").await;
    assert_eq!(
        scheduled_condition(&p).map(|c| c.status.as_str()),
        Some("True")
    );
}

/// A tainted node is avoided by pods that do not tolerate the taint, and used by those that do.
#[actix_rt::test]
async fn tainted_node_is_avoided_unless_tolerated() {
    let c = cluster().await;
    c.nodes(vec![tainted(node("gpu-1", "4"), "dedicated", "gpu")])
        .await;
    c.create_pod(pod("plain", "web", "100m")).await;
    let (reason, message) = c.unschedulable("plain").await;
    assert_eq!(reason, "Unschedulable");
    assert_eq!(
        message,
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );

    let mut tolerant = pod("tolerant", "web", "100m");
    spec(&mut tolerant).tolerations = Some(vec![Toleration {
        key: Some("dedicated".into()),
        operator: Some("Equal".into()),
        value: Some("gpu".into()),
        effect: Some("NoSchedule".into()),
        ..Default::default()
    }]);
    c.create_pod(tolerant).await;
    assert_eq!(c.bound("tolerant").await, "gpu-1");
    assert_eq!(node_of(&c.pod("plain").await), None);
}

/// nodeSelector and required node affinity pick the matching node among several.
#[actix_rt::test]
async fn node_selector_and_required_affinity_are_obeyed() {
    let c = cluster().await;
    c.nodes(vec![
        labelled(
            node("ssd-a", "4"),
            &[("disktype", "ssd"), ("topology.kubernetes.io/zone", "a")],
        ),
        labelled(
            node("hdd-b", "4"),
            &[("disktype", "hdd"), ("topology.kubernetes.io/zone", "b")],
        ),
        labelled(
            node("hdd-c", "4"),
            &[("disktype", "hdd"), ("topology.kubernetes.io/zone", "c")],
        ),
    ])
    .await;
    for i in 0..3 {
        let mut p = pod(&format!("ssd-{i}"), "db", "100m");
        spec(&mut p).node_selector = Some([("disktype".to_string(), "ssd".to_string())].into());
        c.create_pod(p).await;
    }
    for i in 0..3 {
        let mut p = pod(&format!("zone-b-{i}"), "web", "100m");
        spec(&mut p).affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "topology.kubernetes.io/zone".into(),
                            operator: "In".into(),
                            values: Some(vec!["b".into()]),
                        }]),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        c.create_pod(p).await;
    }
    for i in 0..3 {
        assert_eq!(c.bound(&format!("ssd-{i}")).await, "ssd-a");
        assert_eq!(c.bound(&format!("zone-b-{i}")).await, "hdd-b");
    }
}

/// Required pod anti-affinity on the hostname puts each replica on its own node; one more
/// replica than nodes stays Pending.
#[actix_rt::test]
async fn anti_affinity_spreads_replicas() {
    let c = cluster().await;
    c.nodes(vec![node("n1", "4"), node("n2", "4"), node("n3", "4")])
        .await;
    for i in 0..4 {
        let mut p = pod(&format!("db-{i}"), "db", "100m");
        spec(&mut p).affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(MetaSelector {
                        match_labels: Some([("app".to_string(), "db".to_string())].into()),
                        ..Default::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        c.create_pod(p).await;
    }
    let (bound, pending) = eventually("three pods bound and one marked unschedulable", || async {
        let pods = c.pods().await;
        let bound: Vec<String> = pods.iter().filter_map(node_of).collect();
        let pending: Vec<String> = pods
            .iter()
            .filter(|p| scheduled_condition(p).is_some_and(|c| c.status == "False"))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        (bound.len() == 3 && pending.len() == 1).then_some((bound, pending))
    })
    .await;
    let mut nodes = bound.clone();
    nodes.sort();
    assert_eq!(nodes, vec!["n1", "n2", "n3"], "one replica per node");
    let (_, message) = c.unschedulable(&pending[0]).await;
    assert!(
        message.starts_with(
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
        ),
        "{message}"
    );
}

/// The example: a control-plane node and two full workers leave the pod Pending with
/// upstream's exact message, as a condition and as a `FailedScheduling` event.
#[actix_rt::test]
async fn insufficient_cpu_leaves_pods_pending_with_the_exact_message() {
    let c = cluster().await;
    c.nodes(vec![
        tainted(
            node("control-plane", "8"),
            "node-role.kubernetes.io/control-plane",
            "",
        ),
        node("node-1", "1"),
        node("node-2", "1"),
    ])
    .await;
    c.create_pod(pod("web-big", "web", "2")).await;
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint \
                {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. \
                preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    let (reason, message) = c.unschedulable("web-big").await;
    assert_eq!(reason, "Unschedulable");
    assert_eq!(message, want);
    let e = c.event("web-big", "FailedScheduling").await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.message.as_deref(), Some(want));
    assert_eq!(node_of(&c.pod("web-big").await), None);
}

/// Pods that fit nowhere are scheduled once a node that fits them is added.
#[actix_rt::test]
async fn adding_a_node_schedules_the_pending_pods() {
    let c = cluster().await;
    c.nodes(vec![node("small", "500m")]).await;
    for i in 0..3 {
        c.create_pod(pod(&format!("big-{i}"), "web", "1")).await;
    }
    for i in 0..3 {
        c.unschedulable(&format!("big-{i}")).await;
    }
    c.nodes(vec![node("large", "8")]).await;
    for i in 0..3 {
        assert_eq!(c.bound(&format!("big-{i}")).await, "large");
    }
}

/// A cordoned node (`spec.unschedulable`) gets no pods.
#[actix_rt::test]
async fn cordoned_node_gets_nothing() {
    let c = cluster().await;
    c.nodes(vec![cordoned(node("cordoned", "8")), node("open", "4")])
        .await;
    for i in 0..5 {
        c.create_pod(pod(&format!("web-{i}"), "web", "100m")).await;
    }
    for i in 0..5 {
        assert_eq!(c.bound(&format!("web-{i}")).await, "open");
    }
}

/// 500 pods created at once over 20 nodes of 2 cpu: exactly the 400 that fit are bound, no
/// node is over-committed, and the other 100 are marked unschedulable.
#[actix_rt::test]
async fn no_node_is_over_committed_when_500_pods_arrive_at_once() {
    let c = cluster().await;
    c.nodes((0..20).map(|i| node(&format!("n{i:02}"), "2")).collect())
        .await;
    let creates = (0..500).map(|i| c.create_pod(pod(&format!("p{i:03}"), "web", "100m")));
    futures::future::join_all(creates).await;
    let pods = eventually("400 pods bound and 100 unschedulable", || async {
        let pods = c.pods().await;
        let bound = pods.iter().filter(|p| node_of(p).is_some()).count();
        let pending = pods
            .iter()
            .filter(|p| scheduled_condition(p).is_some_and(|c| c.status == "False"))
            .count();
        (bound == 400 && pending == 100).then_some(pods)
    })
    .await;
    let per_node = placement(&pods);
    assert_eq!(per_node.len(), 20);
    for (n, count) in per_node {
        assert!(
            count * 100 <= 2000,
            "{n} has {count} pods of 100m: over-committed"
        );
    }
}

/// Watches that fall behind are closed by the API server (410 Gone): the scheduler relists
/// and carries on. With a watch buffer of one event every burst closes them, and all pods are
/// still bound, none twice over capacity.
#[actix_rt::test]
async fn scheduler_relists_when_its_watches_are_closed() {
    let c = cluster_with_api(
        SchedulerConfig::default(),
        ApiServerOptions {
            watch_buffer: 1,
            ..ApiServerOptions::default()
        },
    )
    .await;
    c.nodes((0..4).map(|i| node(&format!("n{i}"), "2")).collect())
        .await;
    let creates = (0..60).map(|i| c.create_pod(pod(&format!("p{i:02}"), "web", "100m")));
    futures::future::join_all(creates).await;
    let pods = eventually("all 60 pods bound", || async {
        let pods = c.pods().await;
        (pods.iter().filter(|p| node_of(p).is_some()).count() == 60).then_some(pods)
    })
    .await;
    for (n, count) in placement(&pods) {
        assert!(count <= 20, "{n} has {count} pods of 100m on 2 cpu");
    }
    assert!(c.stats().await.relists > 0, "the watches were closed");
}

/// Each pod picks its profile by `schedulerName`: a bin-packing profile from config puts its
/// pod on the fuller node; a pod for a scheduler that does not exist here is left alone.
#[actix_rt::test]
async fn pods_pick_their_profile_by_scheduler_name() {
    let mut bin_packing = default_profile();
    bin_packing.scheduler_name = "bin-packing".into();
    bin_packing.plugins.disabled = vec![
        "NodeResourcesBalancedAllocation".into(),
        "PodTopologySpread".into(),
        "ImageLocality".into(),
    ];
    bin_packing.plugins.enabled = vec![PluginRef {
        name: "NodeResourcesFit".into(),
        weight: Some(10),
    }];
    bin_packing
        .plugin_config
        .node_resources_fit
        .scoring_strategy
        .kind = ScoringStrategyType::MostAllocated;
    let c = cluster_with(SchedulerConfig {
        profiles: vec![default_profile(), bin_packing],
        ..Default::default()
    })
    .await;
    c.nodes(vec![node("empty", "4"), node("busy", "4")]).await;
    let mut existing = pod("existing", "other", "2");
    spec(&mut existing).node_name = Some("busy".into());
    c.create_pod(existing).await;
    eventually("the scheduler to count the bound pod", || async {
        (c.stats().await.placed_pods == 1).then_some(())
    })
    .await;

    let mut elsewhere = pod("for-another-scheduler", "web", "100m");
    spec(&mut elsewhere).scheduler_name = Some("my-scheduler".into());
    c.create_pod(elsewhere).await;
    let mut packed = pod("packed", "web", "100m");
    spec(&mut packed).scheduler_name = Some("bin-packing".into());
    c.create_pod(packed).await;
    assert_eq!(c.bound("packed").await, "busy");

    let untouched = c.pod("for-another-scheduler").await;
    assert_eq!(node_of(&untouched), None);
    assert!(scheduled_condition(&untouched).is_none());
}

/// A pod created with a new trace gets a `schedule pod default/<name>` span that is a child
/// of the create request's span, with `filter`, `score` and `bind` children, the winner as an
/// attribute and first in the score events, and the API server's bind span under `bind`.
#[actix_rt::test]
async fn schedule_span_continues_the_pods_creation_trace() {
    let c = cluster().await;
    c.nodes(vec![
        node("node-1", "4"),
        node("node-2", "4"),
        tainted(node("node-3", "4"), "dedicated", "gpu"),
    ])
    .await;
    let created = create(&c.api, pod("traced", "web", "100m"), Trace::root()).await;
    let create_cx = telemetry::extract(created.meta());
    let create_span = create_cx.span().span_context().clone();
    assert!(create_span.is_valid(), "the create stamped its traceparent");
    let winner = c.bound("traced").await;

    let store = c.telemetry.span_store();
    let spans = eventually("the schedule span and its children", || async {
        let spans = store.trace(create_span.trace_id());
        let schedule = spans
            .iter()
            .find(|s| s.name == "schedule pod default/traced")?;
        let children = spans
            .iter()
            .filter(|s| s.parent_span_id == Some(schedule.span_id))
            .count();
        (children >= 3).then_some(spans)
    })
    .await;
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name:?} in {:?}", names(&spans)))
    };
    let schedule = find("schedule pod default/traced");
    assert_eq!(&*schedule.service_name, "kube-scheduler");
    assert_eq!(
        schedule.parent_span_id,
        Some(create_span.span_id()),
        "child of the pod's creation context"
    );
    assert_eq!(
        schedule.attribute("k8s.node.name").map(|v| v.to_string()),
        Some(winner.clone())
    );
    for child in ["filter", "score", "bind"] {
        assert_eq!(
            find(child).parent_span_id,
            Some(schedule.span_id),
            "{child}"
        );
    }
    let filter = find("filter");
    let rejected: Vec<_> = filter
        .events
        .iter()
        .filter(|e| e.name == "node rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "node-3's taint");
    let attr = |e: &opentelemetry::trace::Event, k: &str| {
        e.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr(rejected[0], "node").as_deref(), Some("node-3"));
    assert_eq!(
        attr(rejected[0], "plugin").as_deref(),
        Some("TaintToleration")
    );
    let scored: Vec<_> = find("score")
        .events
        .iter()
        .filter(|e| e.name == "node scored")
        .collect();
    assert_eq!(scored.len(), 2);
    assert_eq!(attr(scored[0], "node"), Some(winner.clone()));
    assert!(attr(scored[0], "scores")
        .unwrap()
        .contains("NodeResourcesFit="));
    let bind = find("bind");
    let api_bind = find(&format!("bind pods default/traced to {winner}"));
    assert_eq!(api_bind.parent_span_id, Some(bind.span_id));
    assert_eq!(&*api_bind.service_name, "kube-apiserver");
}

async fn next_event(w: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(DEADLINE, w.rx.recv())
        .await
        .expect("a watch event")
        .expect("the watch is open")
}

fn names(spans: &[kubeactor::telemetry::StoredSpan]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

/// The API server routes unassigned pods to a `spec.nodeName=` watch (the scheduler's): it
/// sees a pending pod ADDED, and DELETED once the pod is bound (it stops matching).
#[actix_rt::test]
async fn unassigned_pod_watch_sees_pending_pods_until_bound() {
    let c = cluster_with(SchedulerConfig {
        profiles: Vec::new(), // no scheduler profile: nothing binds but this test
        ..Default::default()
    })
    .await;
    let mut w = c
        .api
        .send(Watch {
            field_selector: FieldSelector::parse("spec.nodeName=").unwrap(),
            ..Watch::all(Kind::Pod)
        })
        .await
        .unwrap()
        .unwrap();
    create(&c.api, node("node-1", "4"), Trace::Untraced).await;
    let created = create(&c.api, pod("web", "web", "100m"), Trace::Untraced).await;
    assert!(matches!(next_event(&mut w).await, WatchEvent::Added(o) if o.name() == "web"));
    c.api
        .send(Bind {
            namespace: "default".into(),
            binding: Binding {
                metadata: ObjectMeta {
                    name: Some("web".into()),
                    uid: created.meta().uid.clone(),
                    ..Default::default()
                },
                target: ObjectReference {
                    kind: Some("Node".into()),
                    name: Some("node-1".into()),
                    ..Default::default()
                },
            },
            trace: Trace::Untraced,
        })
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(next_event(&mut w).await, WatchEvent::Deleted(o) if o.name() == "web"));
}

fn bind_to(pod: &str, node: &str) -> Bind {
    Bind {
        namespace: "default".into(),
        binding: Binding {
            metadata: ObjectMeta {
                name: Some(pod.into()),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some(node.into()),
                ..Default::default()
            },
        },
        trace: Trace::Untraced,
    }
}

/// The scheduler sends the binds of one turn as a `BindBatch`: each is handled as its own
/// `Bind`, and the answers come back in order, a failed one alone.
#[actix_rt::test]
async fn a_bind_batch_answers_each_bind_in_order() {
    let c = cluster().await;
    create(&c.api, node("node-1", "4"), Trace::Untraced).await;
    // Pods of another scheduler, so the running one leaves them alone.
    for name in ["a", "b"] {
        let mut p = pod(name, "web", "100m");
        spec(&mut p).scheduler_name = Some("someone-else".into());
        create(&c.api, p, Trace::Untraced).await;
    }
    let answers = c
        .api
        .send(BindBatch {
            binds: vec![
                bind_to("a", "node-1"),
                bind_to("missing", "node-1"),
                bind_to("b", "node-1"),
            ],
        })
        .await
        .unwrap();
    assert_eq!(answers.len(), 3);
    let bound = |i: usize| {
        answers[i]
            .as_ref()
            .ok()
            .and_then(|o| o.as_pod())
            .and_then(node_of)
    };
    assert_eq!(bound(0).as_deref(), Some("node-1"));
    assert!(matches!(answers[1], Err(ApiError::NotFound { .. })));
    assert_eq!(bound(2).as_deref(), Some("node-1"));
}
