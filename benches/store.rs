//! Store benchmark: durable ~1.5 KB Pod creates through the ApiServer actor (redb, fsync
//! before acknowledgement) with 1 and 64 concurrent writers, side by side with a real etcd
//! 3.4 (Debian's `etcd-server`) driven two ways: plain puts, and the create transaction
//! kube-apiserver uses (`mod_revision(key) == 0` then put).
//!
//! Run: `cargo bench --bench store` (add `-- --quick` for a short run). etcd is started on
//! 127.0.0.1 with a temporary data directory and stopped at the end; without an `etcd`
//! binary the etcd columns are skipped and said so.
//!
//! Each figure is the median of `RUNS` runs (the machine is noisy). Under each writer count
//! a second line gives the CPU per write: for kubeactor the whole bench process (its writers
//! included) through `close`, the final checkpoint included; for etcd the server process and,
//! separately, the bench process driving it (the client). A last line runs the 64 writers on
//! the memory engine — no WAL, no `fdatasync`, no checkpoint — which is the ceiling of the
//! actor path itself, whatever the storage engine. `KUBEACTOR_BENCH_CPU=1` adds the CPU per
//! create of each thread of each kubeactor run. A third line per writer count reads etcd's
//! WAL metrics (`etcd_disk_wal_fsync_duration_seconds`) around the run: writes per
//! `fdatasync`, the mean `fdatasync`, and the share of the run the committer spent in it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Pod, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubeactor::api::Object;
use kubeactor::apiserver::{ApiServer, ApiServerOptions, Create, Trace, WriteOptions};
use kubeactor::config::StoreEngine;
use kubeactor::store::{self, StoreOptions};
use kubeactor::telemetry::Telemetry;

mod support;
use support::{cpu_between, pid_cpu, thread_cpu};

/// CPU seconds used by the whole process so far, every thread included (even ended ones).
fn process_cpu() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

const RUNS: usize = 5;

// The daemon's allocator (see src/main.rs).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Pod whose stored JSON is about 1.5 KB, like a small real Deployment's pod.
fn pod(name: &str) -> Pod {
    let labels = [
        ("app".to_string(), "web".to_string()),
        ("pod-template-hash".to_string(), "7d9fbb5c4b".to_string()),
        ("tier".to_string(), "frontend".to_string()),
    ];
    let q = |s: &str| Quantity(s.to_string());
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("default".to_string()),
            labels: Some(labels.into()),
            annotations: Some(
                [(
                    "kubectl.kubernetes.io/restartedAt".to_string(),
                    "2026-11-23T12:00:00Z".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![
                Container {
                    name: "nginx".into(),
                    image: Some("nginx:1.27".into()),
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        name: Some("http".into()),
                        ..Default::default()
                    }]),
                    env: Some(
                        (0..16)
                            .map(|i| EnvVar {
                                name: format!("SETTING_{i}"),
                                value: Some(format!("value-{i}-abcdefghij")),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    resources: Some(ResourceRequirements {
                        requests: Some(
                            [
                                ("cpu".to_string(), q("100m")),
                                ("memory".to_string(), q("128Mi")),
                            ]
                            .into(),
                        ),
                        limits: Some(
                            [
                                ("cpu".to_string(), q("500m")),
                                ("memory".to_string(), q("256Mi")),
                            ]
                            .into(),
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Container {
                    name: "log-shipper".into(),
                    image: Some("fluent/fluent-bit:3.1".into()),
                    args: Some(vec![
                        "--config".into(),
                        "/etc/fluent-bit/fluent-bit.conf".into(),
                    ]),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Each field's median over `runs` runs of `run`.
fn median_run(runs: usize, mut run: impl FnMut(usize) -> Run) -> Run {
    let all: Vec<Run> = (0..runs).map(&mut run).collect();
    let of = |f: fn(&Run) -> f64| median(all.iter().map(f).collect());
    Run {
        rate: of(|r| r.rate),
        cpu_us: of(|r| r.cpu_us),
        client_cpu_us: of(|r| r.client_cpu_us),
        wal: Wal {
            per_sync: of(|r| r.wal.per_sync),
            sync_us: of(|r| r.wal.sync_us),
            busy: of(|r| r.wal.busy),
            written: of(|r| r.wal.written),
            read: of(|r| r.wal.read),
            stored: all.iter().map(|r| r.wal.stored).max().unwrap_or(0),
        },
    }
}

/// The WAL's group commits in one kubeactor run, from etcd's metrics
/// (`etcd_disk_wal_fsync_duration_seconds`): what paces 64 writers with one write in flight
/// each is how many writes share an `fdatasync` and how long it takes.
#[derive(Clone, Copy, Default)]
struct Wal {
    /// Writes per `fdatasync` (the group commit's size).
    per_sync: f64,
    /// Mean `fdatasync` time, µs.
    sync_us: f64,
    /// Share of the timed run the committer spent in `fdatasync`.
    busy: f64,
    /// Bytes the process wrote and read with system calls per create, through `close`: the
    /// WAL's frames plus the checkpoints' redb pages (`/proc/self/io`).
    written: f64,
    read: f64,
    /// Bytes of one stored Pod (the defaulted JSON the API server wrote).
    stored: usize,
}

/// (bytes written, bytes read) by the process's system calls so far (`wchar`, `rchar`).
fn io_bytes() -> (f64, f64) {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field("wchar:"), field("rchar:"))
}

/// (fdatasyncs so far, seconds spent in them) of the process.
fn wal_syncs() -> (f64, f64) {
    let m = kubeactor::metrics::global();
    (
        m.sample("etcd_disk_wal_fsync_duration_seconds_count"),
        m.sample("etcd_disk_wal_fsync_duration_seconds_sum"),
    )
}

/// One timed run: writes per second, and CPU µs per write of the processes doing it.
#[derive(Clone, Copy)]
struct Run {
    rate: f64,
    /// For kubeactor: the whole bench process (writers included), through `close` (the final
    /// checkpoint included). For etcd: the etcd server process.
    cpu_us: f64,
    /// etcd only: the bench process, i.e. the etcd client driving it.
    client_cpu_us: f64,
    /// kubeactor on redb only.
    wal: Wal,
}

/// Creates per second through the ApiServer actor on `engine` (redb: durable, acknowledged
/// after `fdatasync`; memory: no disk, the ceiling of the actor path itself).
fn actor_creates(engine: StoreEngine, writers: usize, total: usize) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = actix::System::new();
    system.block_on(async move {
        let store = store::open(engine, dir.path(), StoreOptions::default()).expect("open store");
        let telemetry = Telemetry::in_memory(16);
        // The API server on a thread of its own, as in the daemon; the writers on this one.
        let arbiter = actix::Arbiter::new();
        let api = ApiServer::new(store.clone(), ApiServerOptions::default(), &telemetry)
            .expect("api server")
            .start_on(&arbiter.handle())
            .await
            .expect("start");
        let per = total / writers;
        let syncs_before = wal_syncs();
        let io_before = io_bytes();
        let cpu_before = thread_cpu();
        let process_before = process_cpu();
        let start = Instant::now();
        // Every writer clones one template, as etcd's writers below reuse one value: building
        // each Pod from scratch (32 `format!`s) cost more instructions than half the API
        // server's create path, and the writers share the two cores with what is measured.
        let template = Arc::new(pod("template"));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let api = api.clone();
            let template = template.clone();
            tasks.push(actix_rt::spawn(async move {
                for i in 0..per {
                    let mut pod = Pod::clone(&template);
                    pod.metadata.name = Some(format!("w{w}-{i}"));
                    let object = Object::Pod(pod.into());
                    let r = api
                        .send(Create {
                            object,
                            options: WriteOptions::default(),
                            trace: Trace::Untraced,
                        })
                        .await;
                    r.expect("mailbox").expect("create");
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
        let elapsed = start.elapsed().as_secs_f64();
        let rate = (per * writers) as f64 / elapsed;
        let (syncs, sync_secs) = {
            let after = wal_syncs();
            (after.0 - syncs_before.0, after.1 - syncs_before.1)
        };
        let mut wal = if syncs > 0.0 {
            Wal {
                per_sync: (per * writers) as f64 / syncs,
                sync_us: sync_secs * 1e6 / syncs,
                busy: sync_secs / elapsed,
                ..Wal::default()
            }
        } else {
            Wal::default()
        };
        let show_cpu = std::env::var_os("KUBEACTOR_BENCH_CPU").is_some();
        let us_per_create = |secs: f64| secs * 1e6 / (per * writers) as f64;
        if show_cpu {
            // Read before `close`: the store's threads end there. The checkpoint thread's
            // figure therefore leaves out its last checkpoint; the process total below,
            // read after `close`, includes it.
            for (thread, secs) in cpu_between(&cpu_before, &thread_cpu()) {
                println!(
                    "    cpu {thread:<28} {:>7.2} us/create",
                    us_per_create(secs)
                );
            }
        }
        let stored = store
            .get("/registry/pods/default/w0-0")
            .ok()
            .flatten()
            .map_or(0, |kv| kv.value.len());
        store.close();
        let cpu_us = us_per_create(process_cpu() - process_before);
        let io = io_bytes();
        wal.stored = stored;
        wal.written = (io.0 - io_before.0) / (per * writers) as f64;
        wal.read = (io.1 - io_before.1) / (per * writers) as f64;
        if show_cpu {
            println!(
                "    cpu {:<28} {cpu_us:>7.2} us/create",
                "process, through close"
            );
        }
        // Wait for the API server's thread to end: the next run's per-thread figures are
        // differences by thread name, which a lingering thread of the same name would skew.
        arbiter.stop();
        let _ = arbiter.join();
        Run {
            rate,
            cpu_us,
            client_cpu_us: 0.0,
            wal,
        }
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Etcd {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_etcd() -> Option<Etcd> {
    let dir = tempfile::tempdir().ok()?;
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.path())
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("bench={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(Etcd {
        child,
        endpoint: format!("127.0.0.1:{client}"),
        _dir: dir,
    })
}

#[derive(Clone, Copy)]
enum EtcdMode {
    Put,
    CreateTxn,
}

fn etcd_writes(
    etcd: &Etcd,
    mode: EtcdMode,
    writers: usize,
    total: usize,
    value: Arc<Vec<u8>>,
    run: usize,
) -> Run {
    use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        // Wait for etcd to answer.
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            if let Ok(mut c) = Client::connect([etcd.endpoint.as_str()], None).await {
                if c.status().await.is_ok() {
                    break c;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not start on {}",
                etcd.endpoint
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let per = total / writers;
        let server_before = pid_cpu(etcd.child.id());
        let client_before = process_cpu();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let mut c = client.clone();
            let value = value.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    let key = format!("/registry/pods/default/c{writers}-r{run}-{w}-{i}");
                    match mode {
                        EtcdMode::Put => {
                            c.put(key, value.as_slice(), None).await.expect("put");
                        }
                        EtcdMode::CreateTxn => {
                            let txn = Txn::new()
                                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, 0)])
                                .and_then([TxnOp::put(key, value.as_slice(), None)]);
                            let r = c.txn(txn).await.expect("txn");
                            assert!(r.succeeded(), "create txn failed");
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
        let rate = (per * writers) as f64 / start.elapsed().as_secs_f64();
        let us_per_write = |secs: f64| secs * 1e6 / (per * writers) as f64;
        Run {
            rate,
            cpu_us: us_per_write(pid_cpu(etcd.child.id()) - server_before),
            client_cpu_us: us_per_write(process_cpu() - client_before),
            wal: Wal::default(),
        }
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { RUNS };
    let value = Arc::new(Object::Pod(pod("etcd-value").into()).to_json());
    println!(
        "store benchmark: durable Pod creates, median of {runs} run(s); etcd's value is the \
         client's Pod JSON, {} B (kubeactor stores the Pod defaulted: see its I/O line)",
        value.len()
    );
    let actor_only = std::env::args().any(|a| a == "--actor-only");
    let etcd = if actor_only { None } else { start_etcd() };
    if etcd.is_none() && !actor_only {
        println!("(no `etcd` binary: install Debian's etcd-server for the comparison)");
    }
    // KUBEACTOR_BENCH_N overrides the 64-writer count (e.g. for a short run under callgrind).
    let n64 = std::env::var("KUBEACTOR_BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok());
    let n64 = n64.unwrap_or(if quick { 20_000 } else { 100_000 });
    for (writers, total) in [(1usize, if quick { 500 } else { 2_000 }), (64, n64)] {
        let actor = median_run(runs, |_| actor_creates(StoreEngine::Redb, writers, total));
        print!(
            "{writers:>3} writer(s): kubeactor ApiServer creates {:>9.0}/s",
            actor.rate
        );
        let mut cpu = format!(
            "kubeactor {:.1} us (the whole process, through close)",
            actor.cpu_us
        );
        if let Some(etcd) = &etcd {
            let etcd_total = if writers == 1 { total / 2 } else { total / 4 };
            let put = median_run(runs, |r| {
                etcd_writes(
                    etcd,
                    EtcdMode::Put,
                    writers,
                    etcd_total,
                    value.clone(),
                    r * 2,
                )
            });
            let txn = median_run(runs, |r| {
                let run = r * 2 + 1;
                etcd_writes(
                    etcd,
                    EtcdMode::CreateTxn,
                    writers,
                    etcd_total,
                    value.clone(),
                    run,
                )
            });
            print!(
                " | etcd puts {:>8.0}/s (ratio {:>5.1}x) | etcd create txns {:>8.0}/s (ratio {:>5.1}x)",
                put.rate,
                actor.rate / put.rate,
                txn.rate,
                actor.rate / txn.rate
            );
            for (what, r) in [("puts", put), ("create txns", txn)] {
                cpu += &format!(
                    " | etcd {what}: server {:.1} us + client {:.1} us",
                    r.cpu_us, r.client_cpu_us
                );
            }
        }
        println!();
        println!("      CPU per write: {cpu}");
        println!(
            "      kubeactor's WAL: {:.1} writes per fdatasync, {:.0} us per fdatasync, the committer in fdatasync {:.0} % of the run",
            actor.wal.per_sync,
            actor.wal.sync_us,
            actor.wal.busy * 100.0
        );
        println!(
            "      kubeactor's I/O per create, WAL and checkpoints, through close: {:.0} B written, {:.0} B read; the stored (defaulted) Pod: {} B",
            actor.wal.written, actor.wal.read, actor.wal.stored
        );
    }
    // The same 64 writers on the memory engine: no WAL, no fdatasync, no checkpoint. What the
    // API server's create path and the writers cost on their own — the ceiling of any engine.
    let memory = median_run(runs, |_| actor_creates(StoreEngine::Memory, 64, n64));
    println!(
        " 64 writer(s), memory engine (no disk: the actor path's ceiling): {:>9.0} creates/s, {:.1} us CPU per create",
        memory.rate, memory.cpu_us
    );
}
