//! The daemon in-process, as `kubeactor up` runs it (https, token, kubeconfig), on the memory
//! store with fast simulated time and OTLP export to a test receiver; driven by the real
//! kubectl. Used by the one-trace tests.
//!
//! The cluster runs on its own thread with its own actix `System`, so the test thread can block
//! on kubectl. [`Daemon::stop`] stops it as `kubeactor up` does on SIGTERM and flushes spans.
//!
//! Included by path (`#[path = "support/in_process.rs"] mod daemon;`), not from `support/mod.rs`,
//! so the other test binaries do not compile it.
//!
//! Without kubectl on PATH the tests that need it are skipped, unless
//! `KUBEACTOR_REQUIRE_KUBECTL=1` (as in CI), which makes them fail instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubeactor::cluster::Cluster;
use kubeactor::config::{Config, OtlpProtocol, StoreEngine};
use kubeactor::telemetry::Telemetry;

/// How long a `wait_for` polls before failing.
pub const CONVERGE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// The kubectl on PATH, or `None` (skip) when absent and not required.
pub fn kubectl_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("KUBEACTOR_REQUIRE_KUBECTL").as_deref() != Ok("1"),
            "kubectl is not installed and KUBEACTOR_REQUIRE_KUBECTL=1"
        );
        eprintln!("kubectl not found on PATH: skipping");
    }
    found
}

/// A test configuration: memory store, port 0, OTLP/HTTP to `endpoint`, simulated time 100x
/// (pulls and starts take milliseconds; lease renewals still happen, every 100 ms, so the test
/// sees that they stay out of the traces).
pub fn config(dir: &Path, endpoint: &str) -> Config {
    let mut c = Config::defaults();
    c.data_dir = dir.to_path_buf();
    c.store.engine = StoreEngine::Memory;
    c.apiserver.listen = "127.0.0.1:0".into();
    c.telemetry.otlp_enabled = true;
    c.telemetry.otlp_endpoint = endpoint.to_owned();
    c.telemetry.otlp_protocol = OtlpProtocol::HttpProtobuf;
    c.telemetry.sampler_ratio = 1.0;
    c.simulation.speed = 100.0;
    c
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub telemetry: Telemetry,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Start the cluster described by `config` (its data dir must be `dir`).
    pub fn start(kubectl: PathBuf, dir: tempfile::TempDir, config: Config) -> Daemon {
        let telemetry = Telemetry::init_with_env(&config.telemetry, &|_| None).expect("telemetry");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let t = telemetry.clone();
        let thread = std::thread::Builder::new()
            .name("kubeactor-daemon".into())
            .spawn(move || {
                let system = actix::System::new();
                system.block_on(async move {
                    let cluster = Cluster::start(&config, t).await.expect("cluster starts");
                    let _ = ready_tx.send(cluster.kubeconfig.clone());
                    let _ = stop_rx.await;
                    cluster.http.stop().await;
                    cluster.stop();
                });
            })
            .expect("spawn the daemon thread");
        let kubeconfig = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the daemon starts within 30 s");
        Daemon {
            dir,
            telemetry,
            kubectl,
            kubeconfig,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Run kubectl; returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run kubectl and expect success; returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "kubectl {args:?} failed:\n{stdout}{stderr}");
        stdout
    }

    /// Poll `kubectl <args>` until its stdout satisfies `done`, or fail after [`CONVERGE`].
    pub fn wait_for(&self, what: &str, args: &[&str], done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let (ok, stdout, stderr) = self.run(args);
            if ok && done(&stdout) {
                return stdout;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last `kubectl {}`:\n{stdout}{stderr}",
                args.join(" ")
            );
            std::thread::sleep(POLL);
        }
    }

    /// Wait until Deployment `name` has `replicas` pods, all updated and available (Available
    /// condition True, no old pods left).
    pub fn wait_for_rollout(&self, name: &str, replicas: usize) {
        let want = format!("{replicas}/{replicas}/{replicas}/{replicas}/True");
        self.wait_for(
            &format!("deployment {name} to have {replicas} available replicas"),
            &[
                "get",
                "deployment",
                name,
                "-o",
                "jsonpath={.status.replicas}/{.status.updatedReplicas}/{.status.readyReplicas}/{.status.availableReplicas}/{.status.conditions[?(@.type==\"Available\")].status}",
            ],
            |out| out == want,
        );
    }

    /// Wait until exactly `n` pods with label `app=<app>` exist, all Running.
    pub fn wait_for_running_pods(&self, app: &str, n: usize) -> Vec<String> {
        let selector = format!("app={app}");
        let out = self.wait_for(
            &format!("{n} Running pods app={app}"),
            &[
                "get",
                "pods",
                "-l",
                &selector,
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
            ],
            |out| {
                let lines: Vec<&str> = out.lines().collect();
                lines.len() == n
                    && lines.iter().all(|l| {
                        let words: Vec<&str> = l.split_whitespace().collect();
                        words.len() == 2 && words[1] == "Running"
                    })
            },
        );
        out.lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }

    /// The trace id saved on an object by its last traced write, if any.
    pub fn trace_id_of(&self, resource: &str, name: &str) -> Option<String> {
        let out = self.kubectl(&[
            "get",
            resource,
            name,
            "-o",
            "jsonpath={.metadata.annotations.kubeactor\\.io/traceparent}",
        ]);
        out.split('-').nth(1).map(str::to_owned)
    }

    /// Stop as `kubeactor up` does on SIGTERM, then flush every span to the receiver.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the daemon thread");
        }
        self.telemetry.shutdown();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
