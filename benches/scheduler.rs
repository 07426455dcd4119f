//! Scheduler benchmark: 10,000 nodes and 100,000 pending pods in an ApiServer on the
//! **memory** store (to isolate the scheduler from fsync), then the Scheduler actor is
//! started and binds them all. No kubelets, no controllers.
//!
//! Nodes and pods are shaped like upstream's scheduler_perf `SchedulingBasic` templates
//! (node: 4 cpu, 32Gi, 110 pods; pod: one container requesting 100m cpu and 500Mi, no owner).
//! The scheduler runs with the default profile and upstream's adaptive
//! `percentageOfNodesToScore` (10,000 nodes → 500 feasible nodes are scored per pod), and does
//! everything it does in `kubeactor up`: a span per attempt with filter/score/bind children
//! (in-memory span store, every trace sampled), a `Bind` per pod, a `Scheduled` event per pod.
//!
//! Printed per run: pods/s from the scheduler's start (its informers list the 100,000
//! pods first) until the last Bind is acknowledged, and the median per-pod latency: from the
//! pod leaving the queue to its Bind being acknowledged (durable), and the scheduling cycle
//! alone (filter, score, assume). The summary line is the median of the runs.
//!
//! Run: `cargo bench --bench scheduler` (3 runs), or `-- --quick` (1,000 nodes, 10,000 pods,
//! 1 run); `-- --runs N` sets the number of runs. `-- --same-arbiter` runs the scheduler on
//! the API server's thread instead of its own. `-- --nodes N --pods M` set the sizes (e.g. a
//! small run under callgrind). `-- --sample-ratio R` samples new traces by trace id
//! (`ParentBased(TraceIdRatio(R))`, as a deployment with `[telemetry] sampler_ratio = R`)
//! instead of recording every trace.
//!
//! Runs on mimalloc, as the daemon does; `--features system-alloc` builds it on the system
//! allocator (for heaptrack, or to compare).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter};
use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubeactor::api::Object;
use kubeactor::apiserver::{ApiServer, ApiServerOptions, Create, Trace, WriteOptions};
use kubeactor::config::StoreEngine;
use kubeactor::scheduler::actor::{GetStats, Scheduler, SchedulerStats};
use kubeactor::scheduler::SchedulerConfig;
use kubeactor::store::{self, StoreOptions};
use kubeactor::telemetry::{Propagation, RootSampler, SamplerSpec, Settings, Telemetry};

mod support;

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 3;
/// Creates in flight while loading the cluster.
const LOAD_CONCURRENCY: usize = 2_000;

fn q(s: &str) -> Quantity {
    Quantity(s.to_string())
}

/// scheduler_perf's node-default.yaml, registered as a kubelet would (capacity, allocatable,
/// Ready).
fn node(name: &str) -> Node {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), q("4")),
        ("memory".to_string(), q("32Gi")),
        ("pods".to_string(), q("110")),
    ]
    .into();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(resources.clone()),
            allocatable: Some(resources),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// scheduler_perf's pod-default.yaml.
fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some([("app".to_string(), "bench".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "pause".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(
                        [
                            ("cpu".to_string(), q("100m")),
                            ("memory".to_string(), q("500Mi")),
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

/// Create objects through the ApiServer with bounded concurrency.
async fn load(api: &Addr<ApiServer>, objects: impl Iterator<Item = Object>) {
    let mut objects = objects.peekable();
    while objects.peek().is_some() {
        let batch = objects.by_ref().take(LOAD_CONCURRENCY).map(|object| {
            api.send(Create {
                object,
                options: WriteOptions::default(),
                trace: Trace::Untraced,
            })
        });
        for r in futures::future::join_all(batch).await {
            r.expect("api server reachable").expect("create");
        }
    }
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// What runs on a thread, from its (15-character) name: the API server runs on the main
/// thread (named after the binary), the scheduler on the arbiter it is started in
/// (`actix-rt|system:0|arbiter:N`, shown as `actix-rt|system`).
fn thread_role(comm: &str) -> String {
    let main = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
    if comm == main.trim() {
        format!("main/API server ({comm})")
    } else if comm.starts_with("actix-rt") {
        format!("scheduler arbiter ({comm})")
    } else {
        comm.to_string()
    }
}

/// CPU time per thread of this process, by role (from /proc; 10 ms resolution).
fn thread_cpu() -> BTreeMap<String, Duration> {
    let mut out = BTreeMap::new();
    for (name, secs) in support::thread_cpu() {
        *out.entry(thread_role(&name)).or_insert(Duration::ZERO) += Duration::from_secs_f64(secs);
    }
    out
}

struct Run {
    /// CPU per pod per thread while scheduling: (thread, µs).
    threads: Vec<(String, f64)>,
    pods_per_second: f64,
    /// Process CPU time per pod while scheduling (scheduler + API server + store, all
    /// threads): a figure that other load on the machine does not change much.
    cpu_per_pod: Duration,
    synced_after: Duration,
    e2e_median: Duration,
    attempt_median: Duration,
    stats: SchedulerStats,
}

/// The benchmark's telemetry: an in-memory span store, every trace recorded unless a
/// sampling ratio is given.
fn telemetry(sample_ratio: Option<f64>) -> Telemetry {
    match sample_ratio {
        None => Telemetry::in_memory(20_000),
        Some(r) => Telemetry::from_settings(Settings {
            sdk_disabled: false,
            export: None,
            sampler: SamplerSpec {
                root: RootSampler::TraceIdRatio(r),
                parent_based: true,
            },
            span_store_capacity: 20_000,
            propagation: Propagation::Child,
            warnings: Vec::new(),
        })
        .expect("telemetry without export"),
    }
}

fn run_once(nodes: usize, pods: usize, own_arbiter: bool, sample_ratio: Option<f64>) -> Run {
    let system = actix::System::new();
    let run = system.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store::open(StoreEngine::Memory, dir.path(), StoreOptions::default())
            .expect("memory store");
        let telemetry = telemetry(sample_ratio);
        let api = ApiServer::new(
            store.clone(),
            ApiServerOptions {
                // The scheduler's pending-pods watch receives a DELETED per bound pod, up to
                // a whole group commit at once: room for a burst, so it is never closed.
                watch_buffer: pods + 10_000,
                ..ApiServerOptions::default()
            },
            &telemetry,
        )
        .expect("api server")
        .start()
        .await
        .expect("api server start");
        load(
            &api,
            (0..nodes).map(|i| node(&format!("node-{i:05}")).into()),
        )
        .await;
        load(&api, (0..pods).map(|i| pod(&format!("pod-{i:06}")).into())).await;

        let config = SchedulerConfig::default();
        let cpu_start = cpu_time();
        let threads_start = thread_cpu();
        let start = Instant::now();
        let arbiter = own_arbiter.then(Arbiter::new);
        let scheduler = Scheduler::new(api.clone(), &config, &telemetry).expect("profiles");
        let scheduler = match &arbiter {
            Some(a) => Scheduler::start_in_arbiter(&a.handle(), move |_| scheduler),
            None => scheduler.start(),
        };
        let mut synced_after = None;
        let stats = loop {
            let s = scheduler.send(GetStats).await.expect("scheduler alive");
            if s.synced && synced_after.is_none() {
                synced_after = Some(start.elapsed());
            }
            if s.bound as usize >= pods {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let elapsed = start.elapsed();
        let cpu = cpu_time().saturating_sub(cpu_start);
        let threads = thread_cpu()
            .into_iter()
            .map(|(name, t)| {
                let before = threads_start.get(&name).copied().unwrap_or_default();
                (
                    name,
                    t.saturating_sub(before).as_secs_f64() * 1e6 / pods as f64,
                )
            })
            .filter(|(_, us)| *us >= 1.0)
            .collect();
        if let Some(a) = arbiter {
            a.stop();
        }
        store.close();
        Run {
            pods_per_second: pods as f64 / elapsed.as_secs_f64(),
            cpu_per_pod: cpu / pods as u32,
            threads,
            synced_after: synced_after.unwrap_or(elapsed),
            e2e_median: stats.e2e_latency.quantile(0.5).unwrap_or_default(),
            attempt_median: stats.attempt_latency.quantile(0.5).unwrap_or_default(),
            stats,
        }
    });
    drop(system);
    run
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn median_d(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let own_arbiter = !args.iter().any(|a| a == "--same-arbiter");
    let (nodes, pods, mut runs) = if quick {
        (1_000, 10_000, 1)
    } else {
        (10_000, 100_000, RUNS)
    };
    let flag = |name: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    if let Some(n) = flag("--runs").and_then(|n| n.parse().ok()) {
        runs = n;
    }
    let nodes = flag("--nodes")
        .and_then(|n| n.parse().ok())
        .unwrap_or(nodes);
    let pods = flag("--pods").and_then(|n| n.parse().ok()).unwrap_or(pods);
    let sample_ratio: Option<f64> = flag("--sample-ratio").and_then(|r| r.parse().ok());
    println!(
        "scheduler benchmark: {nodes} nodes, {pods} pending pods, memory store, scheduler on {}, traces: {}, median of {runs} run(s)",
        if own_arbiter { "its own arbiter" } else { "the API server's arbiter" },
        match sample_ratio {
            Some(r) => format!("head-sampled at ratio {r}"),
            None => "every trace recorded".to_string(),
        }
    );
    let mut results = Vec::new();
    for i in 0..runs {
        let r = run_once(nodes, pods, own_arbiter, sample_ratio);
        println!(
            "  run {}: {:>8.0} pods/s, {:>5.1} µs CPU/pod  (informers synced after {:>6.0} ms)  median latency: queue→bind acknowledged {:>8.1} µs, scheduling cycle {:>6.1} µs  [bound {}, unschedulable {}, errors {}]",
            i + 1,
            r.pods_per_second,
            r.cpu_per_pod.as_secs_f64() * 1e6,
            r.synced_after.as_secs_f64() * 1e3,
            r.e2e_median.as_secs_f64() * 1e6,
            r.attempt_median.as_secs_f64() * 1e6,
            r.stats.bound,
            r.stats.unschedulable,
            r.stats.errors,
        );
        let per_thread: Vec<String> = r
            .threads
            .iter()
            .map(|(n, us)| format!("{n} {us:.1} µs"))
            .collect();
        println!("         CPU per pod by thread: {}", per_thread.join(", "));
        results.push(r);
    }
    println!(
        "median: {:.0} pods/s ({:.1} µs CPU per pod, all threads); per-pod latency median: {:.1} µs queue→bind acknowledged, {:.1} µs scheduling cycle",
        median_f(results.iter().map(|r| r.pods_per_second).collect()),
        median_d(results.iter().map(|r| r.cpu_per_pod).collect()).as_secs_f64() * 1e6,
        median_d(results.iter().map(|r| r.e2e_median).collect()).as_secs_f64() * 1e6,
        median_d(results.iter().map(|r| r.attempt_median).collect()).as_secs_f64() * 1e6,
    );
}
