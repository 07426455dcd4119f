//! The whole chain in one process (issue 8): `Cluster::start` as `kubeactor up` runs it — the
//! durable redb store with fsync'd group commit, the API server, the controller manager, the
//! scheduler, and a kubelet plus container runtime per node — with simulated work instant
//! (`simulation.speed = 0`) but leases, node status and resyncs on their real periods
//! (`simulation.period_speed = 1`), and tracing on with head sampling.
//!
//! Deployments are created through the ApiServer actor (`Create`, a new trace per create, as
//! the HTTP layer does for a request without a `traceparent`), and a watch on Deployments
//! says when each is Available with all its replicas.
//!
//! * `latency` — a Deployment with 3 replicas, created one at a time, from the `Create` until
//!   the watch shows `availableReplicas = 3` and `Available=True` (i.e. 3 pods Running and
//!   ready). Prints p50/p99 over the runs. Target: p50 ≤ 3 ms, p99 ≤ 15 ms.
//! * `scale` — N nodes, then D Deployments × R replicas created at once; time until every
//!   Deployment is Available with all replicas; pods/s, CPU time per pod, peak RSS (VmHWM) and
//!   RSS per pod, the store's size on disk, and store writes per pod. Every second it prints
//!   pods created / bound / Running, CPU use and writes by kind. Before the Deployments it
//!   waits for the nodes' registration writes to settle. Target (10,000 nodes, 1,000 × 100): ≤ 15 s,
//!   ≤ 10 KiB RSS per pod.
//! * `tracing` — `scale` with tracing off, then on (head-sampled, exported over OTLP/HTTP to a
//!   local receiver); prints the throughput ratio (target ≥ 0.8).
//! * `floor` — the heap one Running pod of this chain takes decoded (as the API server and the
//!   informers share it), and its Events, against the 10 KiB per pod target.
//!
//! Run: `cargo bench --bench chain -- latency|scale|tracing|floor [--runs N] [--nodes N]
//! [--deployments N] [--replicas N] [--sample RATIO] [--tracing on|off] [--set KEY=VALUE]
//! [--idle SECONDS] [--no-settle]`;
//! with no mode, all
//! three at the sizes. `--quick`: small sizes (100 nodes, 100 × 10) for a smoke run.
//! `--help` prints the usage; a wrong argument prints why and the usage, and exits with 2.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use actix::Addr;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kubeactor::api::{Kind, Object};
use kubeactor::apiserver::{
    ApiServer, Create, CurrentRevision, List, Trace, Watch, WatchEvent, WatchStream, WriteOptions,
};
use kubeactor::cluster::Cluster;
use kubeactor::config::{Config, ConfigSources, Override};
use kubeactor::kubelet::config::NodeConfig;
use kubeactor::telemetry::Telemetry;

/// The tests' OTLP receiver: what Jaeger would receive (see `tracing_cost`).
#[allow(dead_code)]
#[path = "../tests/support/otlp_receiver.rs"]
mod otlp_receiver;

/// The bench's allocator — mimalloc, as the daemon, or the system's for heaptrack — counting
/// the bytes each thread asks for, so that `floor` can weigh one decoded object exactly (a
/// thread-local add per call: nothing shared, nothing the other modes would notice).
struct Counted<A>(A);

thread_local! {
    /// Bytes this thread has allocated and not freed (freed elsewhere: negative).
    static REQUESTED: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

fn count(delta: isize) {
    let _ = REQUESTED.try_with(|c| c.set(c.get() + delta));
}

// SAFETY: every call is forwarded unchanged to the wrapped allocator.
unsafe impl<A: std::alloc::GlobalAlloc> std::alloc::GlobalAlloc for Counted<A> {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size() as isize);
        self.0.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size() as isize);
        self.0.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        count(-(layout.size() as isize));
        self.0.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        count(new as isize - layout.size() as isize);
        self.0.realloc(ptr, layout, new)
    }
}

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: Counted<mimalloc::MiMalloc> = Counted(mimalloc::MiMalloc);

#[cfg(feature = "system-alloc")]
#[global_allocator]
static GLOBAL: Counted<std::alloc::System> = Counted(std::alloc::System);

#[derive(Clone, Debug)]
struct Opts {
    mode: Option<String>,
    runs: usize,
    nodes: usize,
    deployments: usize,
    replicas: i32,
    sample: f64,
    tracing: Option<bool>,
    quick: bool,
    /// Wait for the nodes' registration writes (Events, status, leases) to die down before
    /// the Deployments are created (`--no-settle`: start as soon as every node is Ready).
    settle: bool,
    /// Seconds to measure the idle cluster's CPU and writes before a scale run.
    idle: f64,
    /// Extra `--set section.key=value` configuration overrides.
    sets: Vec<String>,
}

/// What `--help` and a bad argument print.
const USAGE: &str = "usage: cargo bench --bench chain -- [latency|scale|tracing|floor] [--runs N] \
[--nodes N] [--deployments N] [--replicas N] [--sample RATIO] [--tracing on|off] \
[--set SECTION.KEY=VALUE] [--idle SECONDS] [--no-settle] [--quick]
  no mode: latency, scale and tracing at the issue's sizes; --quick: 100 nodes, 100 x 10";

/// The options, or why the arguments are wrong (`Ok(None)`: `--help`).
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        mode: None,
        runs: 3,
        nodes: 10_000,
        deployments: 1_000,
        replicas: 100,
        sample: 0.01,
        tracing: None,
        quick: false,
        idle: 0.0,
        settle: true,
        sets: Vec::new(),
    };
    fn number<T: std::str::FromStr>(flag: &str, value: String) -> Result<T, String> {
        value
            .parse()
            .map_err(|_| format!("{flag}: not a valid number: {value:?}"))
    }
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut next = |what: &str| {
            args.next()
                .ok_or_else(|| format!("{a} needs a value ({what})"))
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--runs" => o.runs = number(&a, next("count")?)?,
            "--nodes" => o.nodes = number(&a, next("count")?)?,
            "--deployments" => o.deployments = number(&a, next("count")?)?,
            "--replicas" => o.replicas = number(&a, next("count")?)?,
            "--sample" => o.sample = number(&a, next("ratio")?)?,
            "--tracing" => {
                o.tracing = match next("on|off")?.as_str() {
                    "on" => Some(true),
                    "off" => Some(false),
                    other => return Err(format!("--tracing: expected on or off, got {other:?}")),
                }
            }
            "--quick" => o.quick = true,
            "--no-settle" => o.settle = false,
            "--idle" => o.idle = number(&a, next("seconds")?)?,
            "--set" => {
                let set = next("section.key=value")?;
                Override::parse_set(&set).map_err(|e| e.to_string())?;
                o.sets.push(set);
            }
            "--bench" => {}
            "latency" | "scale" | "tracing" | "floor" => o.mode = Some(a),
            m if !m.starts_with('-') => {
                return Err(format!(
                    "unknown mode {m:?}: latency, scale, tracing or floor"
                ))
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.quick {
        o.nodes = o.nodes.min(100);
        o.deployments = o.deployments.min(100);
        o.replicas = o.replicas.min(10);
        o.runs = o.runs.min(1);
    }
    Ok(Some(o))
}

fn main() -> std::process::ExitCode {
    let o = match parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chain: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match o.mode.as_deref() {
        Some("latency") => latency(&o),
        Some("scale") => {
            let on = o.tracing.unwrap_or(true);
            let runs: Vec<ScaleRun> = (0..o.runs).map(|_| scale(&o, on)).collect();
            summarize_scale(&runs);
        }
        Some("tracing") => tracing_cost(&o),
        Some("floor") => floor(&o),
        _ => {
            latency(&o);
            let runs: Vec<ScaleRun> = (0..o.runs).map(|_| scale(&o, true)).collect();
            summarize_scale(&runs);
            tracing_cost(&o);
        }
    }
    std::process::ExitCode::SUCCESS
}

/// The daemon's configuration for a run: durable store in `dir`, instant work, real periods.
fn config(o: &Opts, dir: &Path, nodes: usize, tracing: bool) -> Config {
    let set = |k: &str, v: &str| Override::set(k, v);
    let sample = o.sample;
    let mut overrides = vec![
        set("data_dir", &dir.to_string_lossy()),
        set("store.engine", "redb"),
        set("simulation.speed", "0"),
        set("simulation.period_speed", "1"),
        set("apiserver.listen", "127.0.0.1:0"),
        set(
            "telemetry.sampler_ratio",
            &if tracing { sample } else { 0.0 }.to_string(),
        ),
        set("log.filter", "warn"),
    ];
    for s in &o.sets {
        // Checked by `parse_args`.
        overrides.push(Override::parse_set(s).expect("--set section.key=value"));
    }
    let sources = ConfigSources {
        overrides,
        ..Default::default()
    };
    let mut c = Config::load(&sources).expect("bench config");
    c.nodes.workers = (0..nodes).map(node).collect();
    c
}

fn node(i: usize) -> NodeConfig {
    serde_json::from_value(serde_json::json!({
        "name": format!("node-{}", i + 1),
        "pod_cidr": format!("10.{}.{}.0/24", 64 + i / 256, i % 256),
        "zone": format!("zone-{}", (b'a' + (i % 3) as u8) as char),
    }))
    .expect("node config")
}

fn deployment(name: &str, replicas: i32) -> Object {
    let labels: BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
    Object::from(Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
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
        status: None,
    })
}

/// Is this Deployment Available with all `replicas`?
fn available(obj: &Object, replicas: i32) -> bool {
    let Object::Deployment(d) = obj else {
        return false;
    };
    let Some(status) = &d.status else {
        return false;
    };
    status.available_replicas == Some(replicas)
        && status.updated_replicas == Some(replicas)
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Available" && c.status == "True")
}

fn create_msg(name: &str, replicas: i32, tracing: bool) -> Create {
    Create {
        object: deployment(name, replicas),
        options: WriteOptions {
            dry_run: false,
            span_name: Some("bench create".into()),
            ..Default::default()
        },
        trace: if tracing {
            Trace::root()
        } else {
            Trace::Untraced
        },
    }
}

/// Start a cluster (the caller runs inside an actix System).
async fn start(o: &Opts, dir: &Path, nodes: usize, tracing: bool) -> Cluster {
    let cfg = config(o, dir, nodes, tracing);
    let telemetry = Telemetry::init(&cfg.telemetry).expect("telemetry");
    Cluster::start(&cfg, telemetry).await.expect("cluster")
}

/// Every change to objects of `kind`, from now on.
async fn watch_all(api: &Addr<ApiServer>, kind: Kind) -> WatchStream {
    api.send(Watch::all(kind))
        .await
        .expect("mailbox")
        .expect("watch")
}

/// Wait until every node's Node object exists and is Ready (the kubelets registered).
async fn wait_nodes_ready(api: &Addr<ApiServer>, nodes: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list = api
            .send(List::all(Kind::Node))
            .await
            .expect("mailbox")
            .expect("list nodes");
        let ready = list
            .items
            .iter()
            .filter(|o| match &***o {
                Object::Node(n) => n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
                _ => false,
            })
            .count();
        if ready >= nodes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {ready}/{nodes} nodes Ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the cluster writes fewer than `nodes / 2` objects a second for three seconds
/// in a row (the nodes' heartbeats average `nodes / 10` lease renewals a second): a node that
/// just registered still writes its Lease and half a dozen Events (`Starting`,
/// `NodeHasSufficientMemory`, …, `NodeReady`, `RegisteredNode`) after it is Ready — ~70,000
/// writes for 10,000 nodes — and a real cluster's nodes joined long before the workload came.
async fn settle(api: &Addr<ApiServer>, nodes: usize) {
    let started = Instant::now();
    let mut rev = api.send(CurrentRevision).await.expect("rev");
    let mut quiet = 0;
    while quiet < 3 && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = api.send(CurrentRevision).await.expect("rev");
        let writes = now.saturating_sub(rev);
        rev = now;
        quiet = if writes < (nodes as u64 / 2).max(50) {
            quiet + 1
        } else {
            0
        };
    }
    eprintln!("scale: settled in {:.0} s", started.elapsed().as_secs_f64());
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn latency(o: &Opts) {
    let runs = if o.quick { 20 } else { o.runs.max(100) };
    let tracing = o.tracing.unwrap_or(true);
    let nodes = if o.quick { 2 } else { 10 };
    let dir = tempfile::tempdir().expect("tempdir");
    let system = actix::System::new();
    system.block_on(async {
        let cluster = start(o, dir.path(), nodes, tracing).await;
        wait_nodes_ready(&cluster.apiserver, nodes).await;
        let mut watch = watch_all(&cluster.apiserver, Kind::Deployment).await;
        let mut took = Vec::with_capacity(runs);
        // Two warm-up deployments (first pulls of the image, informer caches) not counted.
        for i in 0..runs + 2 {
            let name = format!("lat-{i}");
            let started = Instant::now();
            create_until_available(&cluster.apiserver, &mut watch, &name, 3, tracing).await;
            if i >= 2 {
                took.push(started.elapsed());
            }
        }
        took.sort();
        println!(
            "latency: deployment 3 replicas -> Available, {runs} runs, {nodes} nodes, tracing {} (sample {}): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            if tracing { "on" } else { "off" },
            o.sample,
            ms(percentile(&took, 0.5)),
            ms(percentile(&took, 0.99)),
            ms(*took.last().expect("runs")),
        );
        cluster.http.stop().await;
        cluster.stop();
    });
}

/// Create Deployment `name` with `replicas` and wait (on `watch`, a watch of every
/// Deployment) until it is Available with all of them.
async fn create_until_available(
    api: &Addr<ApiServer>,
    watch: &mut WatchStream,
    name: &str,
    replicas: i32,
    tracing: bool,
) {
    api.send(create_msg(name, replicas, tracing))
        .await
        .expect("mailbox")
        .expect("create");
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), watch.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{name} not available within 30 s"))
            .expect("watch ended");
        if let WatchEvent::Added(obj) | WatchEvent::Modified(obj) = ev {
            if obj.name() == name && available(&obj, replicas) {
                return;
            }
        }
    }
}

/// `floor`: what one pod of the scale run weighs in memory, whatever holds it. Runs one
/// Deployment with one replica to Running on one node, then decodes that pod's stored JSON
/// and each of its Events 10,000 times, as the API server and the informers hold them
/// (`Arc<Object>`), counting the heap bytes this thread asked for. The target is
/// ≤ 10 KiB of RSS per pod for everything; the allocator's own overhead comes on top.
fn floor(o: &Opts) {
    const COPIES: usize = 10_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let system = actix::System::new();
    system.block_on(async {
        let cluster = start(o, dir.path(), 1, true).await;
        wait_nodes_ready(&cluster.apiserver, 1).await;
        let mut watch = watch_all(&cluster.apiserver, Kind::Deployment).await;
        create_until_available(&cluster.apiserver, &mut watch, "floor", 1, true).await;
        let list = |kind| cluster.apiserver.send(List::all(kind));
        let pods = list(Kind::Pod).await.expect("mailbox").expect("pods");
        let pod = pods.items.first().expect("the pod").clone();
        let events = list(Kind::Event).await.expect("mailbox").expect("events");
        let events: Vec<_> = events
            .items
            .into_iter()
            .filter(|e| match &**e {
                Object::Event(e) => e.involved_object.uid == pod.meta().uid,
                _ => false,
            })
            .collect();
        let weigh = |obj: &Object| {
            let json = obj.to_json();
            let before = REQUESTED.with(|c| c.get());
            let copies: Vec<std::sync::Arc<Object>> = (0..COPIES)
                .map(|_| std::sync::Arc::new(Object::from_json(obj.kind(), &json).expect("decode")))
                .collect();
            let heap = (REQUESTED.with(|c| c.get()) - before) as usize / COPIES;
            drop(copies);
            (heap, json.len())
        };
        let (pod_heap, pod_json) = weigh(&pod);
        let (mut ev_heap, mut ev_json) = (0, 0);
        for e in &events {
            let (h, j) = weigh(e);
            ev_heap += h;
            ev_json += j;
        }
        println!(
            "floor: one Running pod of this chain, decoded as k8s-openapi's Pod in an Arc: {pod_heap} bytes of heap ({:.1} KiB; stored JSON {pod_json} bytes); its {} Events: {ev_heap} bytes decoded, {ev_json} bytes as JSON; target: 10 KiB (10,240 bytes) of RSS per pod for everything",
            pod_heap as f64 / 1024.0,
            events.len(),
        );
        cluster.http.stop().await;
        cluster.stop();
    });
}

/// Pods seen created, bound and Running, by uid.
#[derive(Default)]
struct PodProgress {
    created: HashMap<String, u8>,
}

impl PodProgress {
    fn observe(&mut self, obj: &Object) {
        let Object::Pod(p) = obj else { return };
        let stage = if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            2
        } else if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
            1
        } else {
            0
        };
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let e = self.created.entry(uid).or_insert(0);
        *e = (*e).max(stage);
    }
}

impl std::fmt::Display for PodProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at_least = |n: u8| self.created.values().filter(|s| **s >= n).count();
        write!(
            f,
            "created {}, bound {}, running {}",
            self.created.len(),
            at_least(1),
            at_least(2)
        )
    }
}

struct ScaleRun {
    pods: usize,
    wall: Duration,
    rss_peak: u64,
    rss_before: u64,
    disk: u64,
    writes: u64,
}

fn scale(o: &Opts, tracing: bool) -> ScaleRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = actix::System::new();
    let run = system.block_on(async {
        let t0 = Instant::now();
        let cluster = start(o, dir.path(), o.nodes, tracing).await;
        wait_nodes_ready(&cluster.apiserver, o.nodes).await;
        eprintln!(
            "scale: {} nodes Ready in {:.1} s",
            o.nodes,
            t0.elapsed().as_secs_f64()
        );
        if o.settle {
            settle(&cluster.apiserver, o.nodes).await;
        }
        if o.idle > 0.0 {
            // The idle cluster's own cost: leases, node status, resyncs.
            let mut idle = Timeline::new();
            tokio::time::sleep(Duration::from_secs_f64(o.idle)).await;
            eprintln!("scale: idle for {:.0} s: {}", o.idle, idle.tick());
        }
        let rss_before = rss_kib().0;
        let rev0 = cluster.apiserver.send(CurrentRevision).await.expect("rev");
        let mut watch = watch_all(&cluster.apiserver, Kind::Deployment).await;
        // Progress of the pods through the chain: created, bound, Running (printed every 5 s).
        let mut pods = watch_all(&cluster.apiserver, Kind::Pod).await;
        let progress = std::rc::Rc::new(std::cell::RefCell::new(PodProgress::default()));
        let p = progress.clone();
        let api = cluster.apiserver.clone();
        actix::spawn(async move {
            // A watch that falls behind is closed (410 Gone): list, then watch again.
            loop {
                while let Some(ev) = pods.rx.recv().await {
                    match ev {
                        WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                            p.borrow_mut().observe(&obj)
                        }
                        WatchEvent::Error(_) => break,
                        _ => {}
                    }
                }
                let Ok(Ok(list)) = api.send(List::all(Kind::Pod)).await else {
                    return;
                };
                pods = watch_all(&api, Kind::Pod).await;
                let mut p = p.borrow_mut();
                list.items.iter().for_each(|o| p.observe(o));
            }
        });
        let started = Instant::now();
        let cpu0 = cpu_time();
        let api = cluster.apiserver.clone();
        let (d, r) = (o.deployments, o.replicas);
        // Creates in flight together, as many clients would send them.
        let creates = futures::future::join_all((0..d).map(|i| {
            let api = api.clone();
            async move {
                api.send(create_msg(&format!("web-{i}"), r, tracing))
                    .await
                    .expect("mailbox")
                    .expect("create")
            }
        }));
        let mut done: HashMap<String, bool> = HashMap::new();
        let mut creates = Box::pin(creates);
        let mut created = false;
        let deadline = Instant::now() + Duration::from_secs(900);
        let mut last_report = Instant::now();
        let mut timeline = Timeline::new();
        while done.len() < d {
            tokio::select! {
                _ = &mut creates, if !created => { created = true; }
                ev = watch.rx.recv() => {
                    let ev = ev.expect("watch ended");
                    if let WatchEvent::Added(obj) | WatchEvent::Modified(obj) = ev {
                        if available(&obj, r) {
                            done.insert(obj.name().to_string(), true);
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            assert!(Instant::now() < deadline, "only {}/{d} available after 900 s", done.len());
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                eprintln!(
                    "scale: {:5.1} s: {:4}/{d} available; pods {}; {}",
                    started.elapsed().as_secs_f64(),
                    done.len(),
                    progress.borrow(),
                    timeline.tick(),
                );
            }
        }
        let wall = started.elapsed();
        let cpu = cpu_time() - cpu0;
        let rev1 = cluster.apiserver.send(CurrentRevision).await.expect("rev");
        let (_, rss_peak) = rss_kib();
        cluster.http.stop().await;
        cluster.stop();
        let run = ScaleRun {
            pods: d * r as usize,
            wall,
            rss_peak,
            rss_before,
            disk: dir_size(dir.path()),
            writes: rev1.saturating_sub(rev0),
        };
        let pods = run.pods as f64;
        println!(
            "scale: {} nodes, {d} deployments x {r} = {} pods, tracing {}: {:.2} s, {:.0} pods/s, CPU {:.1} s ({:.0} % of a core, {:.2} ms/pod), peak RSS {} MiB ({:.1} KiB/pod over the idle cluster's {} MiB), store {} MiB on disk, {:.1} writes/pod",
            o.nodes,
            run.pods,
            if tracing { "on" } else { "off" },
            wall.as_secs_f64(),
            pods / wall.as_secs_f64(),
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
            cpu.as_secs_f64() * 1e3 / pods,
            run.rss_peak / 1024,
            (run.rss_peak.saturating_sub(run.rss_before)) as f64 / pods,
            run.rss_before / 1024,
            run.disk >> 20,
            run.writes as f64 / pods,
        );
        run
    });
    drop(system);
    run
}

fn summarize_scale(runs: &[ScaleRun]) {
    if runs.len() < 2 {
        return;
    }
    let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    walls.sort();
    let median = walls[walls.len() / 2];
    println!(
        "scale: median of {} runs: {:.2} s, {:.0} pods/s",
        runs.len(),
        median.as_secs_f64(),
        runs[0].pods as f64 / median.as_secs_f64()
    );
}

/// `scale` with tracing off, then on — head-sampled and exported over OTLP/HTTP to a local
/// receiver that decodes and keeps every span, as a collector would (issue 8: "sampled,
/// exporting to a local receiver").
fn tracing_cost(o: &Opts) {
    let receiver = otlp_receiver::OtlpReceiver::http();
    let mut exporting = o.clone();
    exporting.sets.push("telemetry.otlp_enabled=true".into());
    exporting
        .sets
        .push(format!("telemetry.otlp_endpoint={}", receiver.endpoint()));
    let median = |o: &Opts, on: bool| {
        let mut walls: Vec<Duration> = (0..o.runs.max(1)).map(|_| scale(o, on).wall).collect();
        walls.sort();
        walls[walls.len() / 2]
    };
    let off = median(o, false);
    let on = median(&exporting, true);
    println!(
        "tracing: off {:.2} s, on {:.2} s (sample {}, {} spans exported in {} OTLP requests): throughput ratio on/off {:.2}",
        off.as_secs_f64(),
        on.as_secs_f64(),
        o.sample,
        receiver.spans().len(),
        receiver.requests(),
        off.as_secs_f64() / on.as_secs_f64()
    );
}

/// CPU time (user + system) this process has used, from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here; in clock ticks.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Writes per `(type, operation)` and their summed latency (submitted → durable and applied
/// by the ApiServer), from `etcd_request_duration_seconds`.
type WriteCounts = BTreeMap<(String, String), (f64, f64)>;

fn write_counts() -> WriteCounts {
    // Only this family: the whole registry has a histogram per node (10,000 of them).
    static REGISTRY: std::sync::LazyLock<prometheus_client::registry::Registry> =
        std::sync::LazyLock::new(|| {
            let mut r = prometheus_client::registry::Registry::default();
            r.register(
                "etcd_request_duration_seconds",
                "",
                kubeactor::metrics::global()
                    .etcd_request_duration_seconds
                    .clone(),
            );
            r
        });
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut text, &REGISTRY);
    let mut out = WriteCounts::new();
    for (name, labels, value) in kubeactor::metrics::parse_text(&text).unwrap_or_default() {
        let sum = match name.as_str() {
            "etcd_request_duration_seconds_count" => false,
            "etcd_request_duration_seconds_sum" => true,
            _ => continue,
        };
        let label = |k: &str| {
            labels
                .iter()
                .find(|(n, _)| n == k)
                .map_or(String::new(), |(_, v)| v.clone())
        };
        let e = out.entry((label("type"), label("operation"))).or_default();
        if sum {
            e.1 = value;
        } else {
            e.0 = value;
        }
    }
    out
}

/// The per-second timeline of a scale run: CPU use, writes by kind and their latency since
/// the last tick.
struct Timeline {
    at: Instant,
    cpu: Duration,
    writes: WriteCounts,
}

impl Timeline {
    fn new() -> Timeline {
        Timeline {
            at: Instant::now(),
            cpu: cpu_time(),
            writes: write_counts(),
        }
    }

    /// "CPU x %, y writes/s (z ms): Pod.create=…" since the last tick.
    fn tick(&mut self) -> String {
        let (now, cpu, writes) = (Instant::now(), cpu_time(), write_counts());
        let secs = now.duration_since(self.at).as_secs_f64().max(1e-9);
        let (mut n, mut lat, mut kinds) = (0.0, 0.0, Vec::new());
        for (k, (count, sum)) in &writes {
            let (c0, s0) = self.writes.get(k).copied().unwrap_or_default();
            let dn = count - c0;
            if dn > 0.0 {
                n += dn;
                lat += sum - s0;
                let kind = k.0.split('.').next().unwrap_or("");
                kinds.push(format!("{kind}.{}={dn:.0}", k.1));
            }
        }
        let out = format!(
            "CPU {:3.0} %, {:5.0} writes/s ({:.1} ms each): {}",
            (cpu - self.cpu).as_secs_f64() / secs * 100.0,
            n / secs,
            if n > 0.0 { lat / n * 1e3 } else { 0.0 },
            kinds.join(" "),
        );
        (self.at, self.cpu, self.writes) = (now, cpu, writes);
        out
    }
}

/// (VmRSS, VmHWM) of this process in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
