//! A `kubeactor up` daemon (the real binary, default nodes, a fast simulated clock, export
//! off, its own data directory) plus `kubectl` and `kubeactor` commands pointed at it.
//! Stopped with SIGTERM when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Daemon {
    pub dir: tempfile::TempDir,
    /// The banner `kubeactor up` printed.
    pub banner: Vec<String>,
    child: Child,
}

/// The kubectl on PATH, or `None` (skip) when absent and not required
/// (`KUBEACTOR_REQUIRE_KUBECTL=1`, as in CI, makes its absence a failure).
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

/// `kubeactor` with the developer's KUBEACTOR__* and OTEL_* variables removed.
pub fn kubeactor_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubeactor"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("KUBEACTOR__") || name.starts_with("OTEL_") || name == "RUST_LOG" {
            cmd.env_remove(&*name);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

impl Daemon {
    /// Start with `speed` simulated seconds per real second and extra `--set` overrides;
    /// returns once the banner is printed.
    pub fn start(speed: f64, sets: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = kubeactor_command();
        cmd.args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(["--set", &format!("simulation.speed={speed}")]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        Self::spawn(cmd, dir)
    }

    /// Run `cmd` (a `kubeactor up` command line using `dir`) until its banner.
    pub fn spawn(mut cmd: Command, dir: tempfile::TempDir) -> Daemon {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubeactor up");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut banner = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "kubeactor up printed no banner within 60 s: {banner:?}"
            );
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                let up = line.contains("stop with Ctrl-C");
                banner.push(line);
                if up {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("kubeactor up exited with {status}: {banner:?}");
            }
        }
        Daemon { dir, banner, child }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// `kubectl ARGS` against this daemon (skipping is the caller's: see [`kubectl_binary`]).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// `kubectl ARGS`, which must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubeactor ARGS --data-dir <this daemon's>`.
    pub fn kubeactor(&self, args: &[&str]) -> Output {
        kubeactor_command()
            .args(args)
            .arg("--data-dir")
            .arg(self.dir.path())
            .env_remove("NO_COLOR")
            .output()
            .expect("run kubeactor")
    }

    /// Send `signal` and wait (at most 10 s) for the exit; how long it took.
    pub fn stop_with(&mut self, signal: i32) -> (std::process::ExitStatus, Duration) {
        let sent = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        let deadline = sent + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for kubeactor") {
                return (status, sent.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "kubeactor did not stop within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Poll `check` every 100 ms until it returns `Some`, or fail after `within`, saying `what`
/// was awaited and what `last` saw.
pub fn wait_for<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
