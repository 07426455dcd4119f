//! One trace per user action, as Jaeger would receive it: the daemon runs in-process with OTLP
//! export to a receiver on 127.0.0.1:0, the real kubectl creates, applies, scales, rolls out
//! and deletes Deployments, and after a clean shutdown (which flushes every span) each action
//! is checked as ONE trace: one root (the API server's request span, named after kubectl's
//! verb), no dangling parent, all six services, the causal chain from the request down to
//! every container start as ancestor relations, and nothing from background work (lease
//! renewals, node heartbeats, resyncs) — in the traces or as traces of its own.
//!
//! Timing: every wait polls kubectl with a deadline (`support/daemon.rs`); simulated time runs
//! 100x faster than real time.

#[path = "support/in_process.rs"]
mod daemon;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use daemon::Daemon;
use support::otlp_receiver::*;

/// Two containers per pod: "one container start per container per replica" means something.
const API_MANIFEST: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: {app: api}
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox:1.36
        command: [sh, -c, 'while true; do sleep 3600; done']
";

const ALL_SERVICES: [&str; 6] = [
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "container-runtime",
];

/// The daemon in-process with OTLP export to a fresh receiver, its test configuration changed
/// by `tweak`; `None` (skip) when kubectl is absent and not required.
fn start_daemon(
    tweak: impl FnOnce(&mut kubeactor::config::Config),
) -> Option<(Daemon, OtlpReceiver)> {
    let kubectl = daemon::kubectl_binary()?;
    let receiver = OtlpReceiver::http();
    let dir = tempfile::tempdir().unwrap();
    let mut config = daemon::config(dir.path(), &receiver.endpoint());
    tweak(&mut config);
    Some((Daemon::start(kubectl, dir, config), receiver))
}

/// Every received span, grouped by trace id.
fn by_trace(spans: &[ReceivedSpan]) -> BTreeMap<String, Vec<ReceivedSpan>> {
    let mut traces: BTreeMap<String, Vec<ReceivedSpan>> = BTreeMap::new();
    for s in spans {
        traces
            .entry(s.trace_id.clone())
            .or_default()
            .push(s.clone());
    }
    traces
}

/// The one trace whose root is named `root`.
fn trace_rooted_at(spans: &[ReceivedSpan], root: &str) -> Vec<ReceivedSpan> {
    let roots: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none() && s.name == root)
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "expected one root named {root:?}; roots: {:?}",
        root_names(spans)
    );
    let id = &roots[0].trace_id;
    spans
        .iter()
        .filter(|s| &s.trace_id == id)
        .cloned()
        .collect()
}

fn root_names(spans: &[ReceivedSpan]) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for s in spans.iter().filter(|s| s.parent_span_id.is_none()) {
        *names.entry(s.name.clone()).or_insert(0) += 1;
    }
    names
}

fn starting<'a>(trace: &'a [ReceivedSpan], prefix: &str) -> Vec<&'a ReceivedSpan> {
    trace
        .iter()
        .filter(|s| s.name.starts_with(prefix))
        .collect()
}

/// The names of `span`'s ancestors, root first, then `span`'s own.
fn lineage(trace: &[ReceivedSpan], span: &ReceivedSpan) -> Vec<String> {
    let by_id: HashMap<&str, &ReceivedSpan> =
        trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut names = vec![span.name.clone()];
    let mut current = span;
    while let Some(parent) = current.parent_span_id.as_deref().and_then(|p| by_id.get(p)) {
        names.push(parent.name.clone());
        current = parent;
    }
    names.reverse();
    names
}

/// How many Events about `pod` the kubelet wrote in `trace` (Event writes under a `sync pod`).
fn kubelet_events_of(trace: &[ReceivedSpan], pod: &str) -> usize {
    starting(trace, &format!("create events default/{pod}."))
        .into_iter()
        .filter(|e| lineage(trace, e).iter().any(|n| n.starts_with("sync pod ")))
        .count()
}

/// `span`'s lineage contains spans starting with each of `chain`, in this order.
fn assert_lineage(trace: &[ReceivedSpan], span: &ReceivedSpan, chain: &[&str]) {
    let names = lineage(trace, span);
    let mut rest = names.iter();
    for step in chain {
        assert!(
            rest.any(|n| n.starts_with(step)),
            "{:?} should descend, in order, from {chain:?}; its lineage is {names:#?}",
            span.name
        );
    }
}

/// The shape every action's trace has: one trace id, one root named `root` under
/// kube-apiserver, no dangling parents, and no background work inside.
fn assert_well_formed(trace: &[ReceivedSpan], root: &str) {
    assert_one_trace(trace);
    let r = assert_one_root(trace);
    assert_eq!(r.name, root);
    assert_eq!(r.service_name, "kube-apiserver");
    assert_no_dangling_parents(trace);
    for s in trace {
        // Events recorded by a traced sync belong to it; lease renewals and node status
        // heartbeats never do.
        for background in ["leases", "nodes "] {
            assert!(
                !s.name.contains(&format!(" {background}")),
                "background work {:?} in the trace of {root:?}",
                s.name
            );
        }
    }
}

/// Count of spans per service, for the report.
fn per_service(trace: &[ReceivedSpan]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in trace {
        *m.entry(s.service_name.clone()).or_insert(0) += 1;
    }
    m
}

/// The chain from a user's request down to a container start (ancestors, in order).
const CREATE_CHAIN: [&str; 10] = [
    "kubectl ",
    "sync deployment ",
    "create replicasets ",
    "sync replicaset ",
    "create pods ",
    "schedule pod ",
    "bind",
    "bind pods ",
    "sync pod ",
    "start container ",
];

#[test]
fn each_kubectl_action_on_a_deployment_is_one_trace() {
    let Some((d, receiver)) = start_daemon(|_| {}) else {
        return;
    };

    // 1. kubectl create deployment: 3 replicas of nginx.
    d.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);
    d.wait_for_rollout("web", 3);
    let web_pods = d.wait_for_running_pods("web", 3);
    let create_trace_of_deployment = d.trace_id_of("deployment", "web");
    let create_trace_of_pods: Vec<Option<String>> =
        web_pods.iter().map(|p| d.trace_id_of("pod", p)).collect();

    // 2. kubectl apply -f: 2 replicas of two containers each.
    let manifest = d.dir.path().join("api.yaml");
    std::fs::write(&manifest, API_MANIFEST).unwrap();
    d.kubectl(&["apply", "-f", &manifest.to_string_lossy()]);
    d.wait_for_rollout("api", 2);
    d.wait_for_running_pods("api", 2);

    // 3. kubectl scale: 3 -> 5.
    d.kubectl(&["scale", "deployment", "web", "--replicas=5"]);
    d.wait_for_rollout("web", 5);
    d.wait_for_running_pods("web", 5);

    // 4. kubectl set image: a rolling update to nginx:1.27.
    d.kubectl(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    d.wait_for_rollout("web", 5);
    d.wait_for(
        "only nginx:1.27 pods, all Running",
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.spec.containers[0].image} {.status.phase}{\"\\n\"}{end}",
        ],
        |out| out.lines().count() == 5 && out.lines().all(|l| l == "nginx:1.27 Running"),
    );

    // 5. kubectl delete deployment: the cascade.
    d.kubectl(&["delete", "deployment", "web"]);
    d.wait_for(
        "web's ReplicaSets and pods to be gone",
        &["get", "replicasets,pods", "-l", "app=web", "-o", "name"],
        |out| out.trim().is_empty(),
    );

    d.stop();
    let spans = receiver.spans();
    let traces = by_trace(&spans);

    // ---- no trace but the five actions' ----
    let roots = root_names(&spans);
    let expected: BTreeSet<&str> = [
        "kubectl create deployments/web",
        "kubectl apply deployments/api",
        "kubectl scale deployments/web",
        "kubectl set image deployments/web",
        "kubectl delete deployments/web",
    ]
    .into();
    let unexpected: Vec<&String> = roots
        .keys()
        .filter(|r| !expected.contains(r.as_str()) && !r.starts_with("kubectl get "))
        .collect();
    assert!(
        unexpected.is_empty(),
        "traces not started by a user action: {unexpected:?} (all roots: {roots:?})"
    );
    assert_eq!(traces.len(), roots.values().sum::<usize>());

    // ---- 1. create ----
    let create = trace_rooted_at(&spans, "kubectl create deployments/web");
    assert_well_formed(&create, "kubectl create deployments/web");
    assert_eq!(
        services(&create),
        ALL_SERVICES.iter().map(|s| s.to_string()).collect()
    );
    let starts = starting(&create, "start container nginx");
    assert_eq!(
        starts.len(),
        3,
        "one start per replica:\n{}",
        describe(&create)
    );
    for start in &starts {
        assert_lineage(&create, start, &CREATE_CHAIN);
    }
    for prefix in ["pull image ", "create container "] {
        for s in starting(&create, prefix) {
            assert_lineage(&create, s, &CREATE_CHAIN[..9]);
        }
    }
    assert_eq!(starting(&create, "create pods ").len(), 3);
    assert_eq!(starting(&create, "schedule pod ").len(), 3);
    assert_eq!(starting(&create, "bind pods ").len(), 3);
    // Status Running of each pod: a status update under its kubelet sync.
    let pod_status: Vec<_> = starting(&create, "update status pods ");
    assert!(pod_status.len() >= 3, "{}", describe(&create));
    for s in &pod_status {
        assert_lineage(&create, s, &["kubectl ", "sync replicaset ", "sync pod "]);
    }
    // ...up to the Deployment Available: the last writes to the Deployment and to each pod
    // (status Running, Ready, Available) belong to the same trace.
    let create_id = &create[0].trace_id;
    assert_eq!(create_trace_of_deployment.as_ref(), Some(create_id));
    for (pod, id) in web_pods.iter().zip(&create_trace_of_pods) {
        assert_eq!(id.as_ref(), Some(create_id), "pod {pod}");
    }
    assert!(!starting(&create, "update status deployments default/web").is_empty());
    // The kubelet's Events (Pulling, Pulled, Created, Started) are written in the pod's trace,
    // under the sync that started its containers.
    for pod in &web_pods {
        let kubelet_events = kubelet_events_of(&create, pod);
        assert!(
            kubelet_events >= 2,
            "{pod}: {kubelet_events} kubelet Events in the create trace:\n{}",
            describe(&create)
        );
    }
    eprintln!(
        "create deployment web (3 replicas): {} spans {:?}",
        create.len(),
        per_service(&create)
    );

    // ---- 2. apply -f ----
    let apply = trace_rooted_at(&spans, "kubectl apply deployments/api");
    assert_well_formed(&apply, "kubectl apply deployments/api");
    assert_eq!(services(&apply).len(), 6);
    for container in ["nginx", "sidecar"] {
        let starts = starting(&apply, &format!("start container {container}"));
        assert_eq!(starts.len(), 2, "{container}: one start per replica");
        for s in starts {
            assert_lineage(&apply, s, &CREATE_CHAIN);
        }
    }
    eprintln!(
        "apply deployment api (2 replicas x 2 containers): {} spans",
        apply.len()
    );

    // ---- 3. scale: a new trace holding only the new pods' chains ----
    let scale = trace_rooted_at(&spans, "kubectl scale deployments/web");
    assert_well_formed(&scale, "kubectl scale deployments/web");
    assert_ne!(&scale[0].trace_id, create_id);
    let starts = starting(&scale, "start container nginx");
    assert_eq!(
        starts.len(),
        2,
        "only the 2 new pods start:\n{}",
        describe(&scale)
    );
    for s in starts {
        assert_lineage(
            &scale,
            s,
            &[
                "kubectl scale",
                "sync deployment ",
                "update replicasets ",
                "sync replicaset ",
                "create pods ",
                "schedule pod ",
                "bind pods ",
                "sync pod ",
            ],
        );
    }
    eprintln!("scale web 3 -> 5: {} spans", scale.len());

    // ---- 4. set image: the rolling update as one trace ----
    let roll = trace_rooted_at(&spans, "kubectl set image deployments/web");
    assert_well_formed(&roll, "kubectl set image deployments/web");
    assert_eq!(starting(&roll, "create replicasets ").len(), 1);
    let starts = starting(&roll, "start container nginx");
    assert_eq!(starts.len(), 5, "5 new pods:\n{}", describe(&roll));
    for s in starts {
        assert_lineage(
            &roll,
            s,
            &[
                "kubectl set image",
                "sync deployment ",
                "create pods ",
                "sync pod ",
            ],
        );
    }
    let stops = starting(&roll, "stop container nginx");
    assert_eq!(
        stops.len(),
        5,
        "5 old pods terminated:\n{}",
        describe(&roll)
    );
    for s in stops {
        assert_lineage(
            &roll,
            s,
            &[
                "kubectl set image",
                "sync deployment ",
                "delete pods ",
                "sync pod ",
            ],
        );
    }
    // The old pods' Killing Events are in the rolling update's trace too.
    let killing = starting(&roll, "create events ")
        .into_iter()
        .filter(|e| {
            let names = lineage(&roll, e);
            let mut rest = names.iter();
            rest.any(|n| n.starts_with("delete pods ")) && rest.any(|n| n.starts_with("sync pod "))
        })
        .count();
    assert!(
        killing >= 5,
        "{killing} kubelet Events:\n{}",
        describe(&roll)
    );
    eprintln!("set image web (5 replicas): {} spans", roll.len());

    // ---- 5. delete: the cascade ----
    let delete = trace_rooted_at(&spans, "kubectl delete deployments/web");
    assert_well_formed(&delete, "kubectl delete deployments/web");
    assert!(!starting(&delete, "delete replicasets ").is_empty());
    let stops = starting(&delete, "stop container nginx");
    assert_eq!(stops.len(), 5, "{}", describe(&delete));
    for s in stops {
        assert_lineage(
            &delete,
            s,
            &[
                "kubectl delete",
                "delete replicasets ",
                "delete pods ",
                "sync pod ",
            ],
        );
    }
    eprintln!("delete deployment web (5 pods): {} spans", delete.len());
}

/// The reactions: in `link` mode each is the root of a trace of its own.
const REACTIONS: [&str; 4] = [
    "sync deployment ",
    "sync replicaset ",
    "schedule pod ",
    "sync pod ",
];

#[test]
fn in_link_mode_each_reconcile_is_a_trace_linked_to_its_cause() {
    let Some((d, receiver)) = start_daemon(|c| {
        c.telemetry.propagation = kubeactor::telemetry::Propagation::Link;
    }) else {
        return;
    };
    d.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);
    d.wait_for_rollout("web", 3);
    d.wait_for_running_pods("web", 3);
    d.stop();

    let spans = receiver.spans();
    let traces = by_trace(&spans);
    let by_id: HashMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    assert!(traces.len() > 1, "link mode makes several traces");
    for trace in traces.values() {
        assert_one_root(trace);
        assert_no_dangling_parents(trace);
    }
    // Every reconcile is a root whose one link names a span we received, in another trace.
    for s in spans
        .iter()
        .filter(|s| REACTIONS.iter().any(|r| s.name.starts_with(r)))
    {
        assert_eq!(s.parent_span_id, None, "{:?} is a root", s.name);
        assert_eq!(s.links.len(), 1, "{:?} links to its cause", s.name);
        let (trace_id, span_id) = &s.links[0];
        let cause = by_id
            .get(span_id.as_str())
            .unwrap_or_else(|| panic!("{:?} links to a span never received", s.name));
        assert_eq!(&cause.trace_id, trace_id);
        assert_ne!(&s.trace_id, trace_id);
    }
    // From each container start, root -> link -> cause's root -> ... reaches the request.
    let root_of = |s: &ReceivedSpan| -> ReceivedSpan {
        traces[&s.trace_id]
            .iter()
            .find(|r| r.parent_span_id.is_none())
            .cloned()
            .unwrap()
    };
    let starts = starting(&spans, "start container nginx");
    assert_eq!(starts.len(), 3);
    for start in starts {
        let mut hops = vec![];
        let mut root = root_of(start);
        while let Some((_, cause)) = root.links.first() {
            hops.push(root.name.clone());
            root = root_of(by_id[cause.as_str()]);
            assert!(hops.len() < 20, "a cycle of links: {hops:?}");
        }
        assert_eq!(root.name, "kubectl create deployments/web", "via {hops:?}");
        assert_eq!(root.service_name, "kube-apiserver");
        for reaction in [
            "sync pod ",
            "schedule pod ",
            "sync replicaset ",
            "sync deployment ",
        ] {
            assert!(
                hops.iter().any(|h| h.starts_with(reaction)),
                "{reaction:?} on the way back from a container start: {hops:?}"
            );
        }
    }
    eprintln!(
        "link mode, create deployment web (3 replicas): {} traces, {} spans",
        traces.len(),
        spans.len()
    );
}

/// A node failure as Jaeger receives it: `kubeactor`'s fault injection stops node-2's kubelet
/// (`POST /kubeactor/v1/nodes/node-2/stop`, as `kubeactor node stop` sends it); the lease
/// expires, the node lifecycle controller marks it NotReady and taints it, the taint eviction
/// controller evicts its pods and the ReplicaSet replaces them on node-1 — ONE trace rooted
/// at `node node-2 NotReady` (kube-controller-manager), with every replacement's chain down to
/// its container start, and no span whose parent is missing.
#[test]
fn a_node_failure_is_one_trace_from_notready_to_the_replacements_running() {
    // At 100x: the 40 s grace period is its 1 s floor, the pods tolerate the taint 1 s.
    let Some((d, receiver)) = start_daemon(|c| {
        c.apiserver.default_unreachable_toleration_seconds = 100;
    }) else {
        return;
    };
    d.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=4",
    ]);
    d.wait_for_rollout("web", 4);
    d.wait_for_running_pods("web", 4);
    let placed = d.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}",
    ]);
    let on_node_2: Vec<String> = placed
        .lines()
        .filter(|l| l.ends_with(" node-2"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(!on_node_2.is_empty(), "4 replicas over 2 nodes: {placed}");

    let client = kubeactor::client::Client::from_data_dir(d.dir.path()).expect("kubeconfig");
    client
        .post("/kubeactor/v1/nodes/node-2/stop")
        .expect("node-2 stops");
    d.wait_for(
        "4 Running replicas, none of them on node-2",
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ],
        |out| {
            let live: Vec<&str> = out
                .lines()
                .map(str::trim)
                .filter(|l| l.split_whitespace().count() == 2)
                .collect();
            live.len() == 4 && live.iter().all(|l| *l == "node-1 Running")
        },
    );
    client
        .post("/kubeactor/v1/nodes/node-2/start")
        .expect("node-2 starts");
    d.wait_for(
        "node-2 Ready again",
        &[
            "get",
            "node",
            "node-2",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        |out| out == "True",
    );
    d.stop();

    let spans = receiver.spans();
    let trace = trace_rooted_at(&spans, "node node-2 NotReady");
    assert_one_trace(&trace);
    let root = assert_one_root(&trace);
    assert_eq!(root.service_name, "kube-controller-manager");
    assert_no_dangling_parents(&trace);
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.name == "node node-2 NotReady")
            .count(),
        1,
        "one trace for one failure"
    );
    for pod in &on_node_2 {
        assert!(
            trace
                .iter()
                .any(|s| s.name == format!("evict pod default/{pod}")),
            "the eviction of {pod} is in the trace"
        );
    }
    let services: BTreeSet<&str> = trace.iter().map(|s| s.service_name.as_str()).collect();
    for s in ALL_SERVICES {
        assert!(services.contains(s), "{s} in the node failure's trace");
    }
    // Each replacement: evicted → RS sync → create → schedule → bind → kubelet → start.
    let starts = starting(&trace, "start container nginx");
    assert_eq!(
        starts.len(),
        on_node_2.len(),
        "one container start per replacement"
    );
    for start in starts {
        assert_lineage(
            &trace,
            start,
            &[
                "node node-2 NotReady",
                "evict pod ",
                "sync replicaset ",
                "create pods ",
                "schedule pod ",
                "bind pods ",
                "sync pod ",
                "start container ",
            ],
        );
        assert_eq!(
            start.resource.get("k8s.node.name").map(String::as_str),
            Some("node-1")
        );
    }
}

/// The seed's example, as a user applies it: `kubectl apply -f examples/deployment.yaml`
/// (3 replicas, two containers each) is ONE trace with all six services and the whole chain
/// down to one start per container per replica.
#[test]
fn applying_the_seed_example_is_one_trace() {
    let Some((d, receiver)) = start_daemon(|_| {}) else {
        return;
    };
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/deployment.yaml");
    assert_eq!(
        d.kubectl(&["apply", "-f", example]),
        "deployment.apps/web created\n"
    );
    d.wait_for_rollout("web", 3);
    d.wait_for_running_pods("web", 3);
    d.stop();

    let spans = receiver.spans();
    let trace = trace_rooted_at(&spans, "kubectl apply deployments/web");
    assert_well_formed(&trace, "kubectl apply deployments/web");
    let services: BTreeSet<&str> = trace.iter().map(|s| s.service_name.as_str()).collect();
    assert_eq!(services, ALL_SERVICES.into_iter().collect());
    for container in ["nginx", "log-shipper"] {
        let starts = starting(&trace, &format!("start container {container}"));
        assert_eq!(starts.len(), 3, "{container}: one start per replica");
        for s in starts {
            assert_lineage(&trace, s, &CREATE_CHAIN);
        }
    }
}
