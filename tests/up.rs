//! `kubeactor up`: starts on embedded defaults with a data directory, prints its banner, and
//! stops cleanly (exit 0, well within 5 s) on SIGTERM and on SIGINT; a second start on the
//! same data directory opens the store that the first one left.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn start(data_dir: &std::path::Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeactor"))
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .env("OTEL_SDK_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kubeactor up");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Wait for the banner line that says the daemon is serving.
fn wait_until_up(rx: &mpsc::Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let up = line.contains("stop with Ctrl-C");
            lines.push(line);
            if up {
                return lines;
            }
        }
    }
    panic!("kubeactor up printed no banner within 30 s: {lines:?}");
}

fn stop_with(child: &mut Child, signal: i32) -> Duration {
    let sent = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let deadline = sent + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            return sent.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "kubeactor did not stop within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn up_runs_until_a_signal_and_restarts_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rx) = start(dir.path());
    let banner = wait_until_up(&rx).join("\n");
    assert!(
        banner.contains(&dir.path().display().to_string()),
        "banner names the data dir:\n{banner}"
    );
    assert!(banner.contains("redb"), "{banner}");
    let took = stop_with(&mut child, libc::SIGTERM);
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert!(dir.path().join("store.redb").exists());

    let (mut child, rx) = start(dir.path());
    wait_until_up(&rx);
    let took = stop_with(&mut child, libc::SIGINT);
    assert!(took < Duration::from_secs(5), "SIGINT took {took:?}");
}

#[test]
fn up_serves_https_and_writes_a_kubeconfig_that_kubeactor_kubeconfig_prints() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rx) = start(dir.path());
    let banner = wait_until_up(&rx).join("\n");
    let kubeconfig = dir.path().join("kubeconfig");
    assert!(
        banner.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{banner}"
    );
    let api_line = banner
        .lines()
        .find(|l| l.trim_start().starts_with("API:"))
        .expect("the banner prints the API address");
    let url = api_line.split_whitespace().last().unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(
        !url.ends_with(":0"),
        "port 0 is replaced by the port bound: {url}"
    );
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains(&format!("server: {url}")), "{text}");
    assert!(text.contains("certificate-authority-data: "), "{text}");
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap();
    assert!(text.contains(&format!("token: {}", token.trim())), "{text}");
    for file in ["kubeconfig", "token", "apiserver.key"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let printed = Command::new(env!("CARGO_BIN_EXE_kubeactor"))
        .args(["kubeconfig", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(String::from_utf8_lossy(&printed.stdout), text);
    stop_with(&mut child, libc::SIGTERM);
}

// --- graceful shutdown with a black-hole collector; the banner's nodes and traces (issue 7) ---

mod support;

use support::daemon::{kubeactor_command, kubectl_binary, Daemon};

/// A "collector" that accepts every connection and never answers (nor closes).
fn black_hole() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for conn in listener.incoming().map_while(Result::ok) {
            conns.push(conn); // held open, never read
        }
    });
    (addr, held)
}

#[test]
fn sigterm_exits_0_within_5s_with_a_collector_that_never_answers() {
    let (collector, _held) = black_hole();
    for protocol in ["http/protobuf", "grpc"] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = kubeactor_command();
        cmd.args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(["--set", "telemetry.otlp_enabled=true"])
            .args([
                "--set",
                &format!("telemetry.otlp_endpoint=http://{collector}"),
            ])
            .args(["--set", &format!("telemetry.otlp_protocol={protocol}")])
            .args(["--set", "simulation.speed=20"]);
        let mut daemon = Daemon::spawn(cmd, dir);
        let banner = daemon.banner.join("\n");
        assert!(
            banner.contains(&format!("OTLP to http://{collector}"))
                && banner.contains("Jaeger UI: http://127.0.0.1:16686"),
            "{banner}"
        );
        if kubectl_binary().is_some() {
            // Spans waiting for the collector when the signal comes.
            daemon.kubectl_ok(&[
                "create",
                "deployment",
                "web",
                "--image=nginx",
                "--replicas=3",
            ]);
        }
        // With export on, `kubeactor trace` links to Jaeger.
        let list = daemon.kubeactor(&["trace", "--list"]);
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(
            list.contains("Jaeger: http://127.0.0.1:16686/trace/<TRACE ID>"),
            "{list}"
        );
        let (status, took) = daemon.stop_with(libc::SIGTERM);
        assert!(status.success(), "{protocol}: exit status {status:?}");
        assert!(
            took < Duration::from_secs(5),
            "{protocol}: SIGTERM took {took:?}"
        );
    }
}

#[test]
fn the_banner_names_the_nodes_and_where_traces_go() {
    let daemon = Daemon::start(20.0, &[]);
    let banner = daemon.banner.join("\n");
    assert!(
        banner.contains("nodes:          node-1, node-2"),
        "{banner}"
    );
    assert!(
        banner.contains("traces:         in memory only (OTLP export off): kubeactor trace --list"),
        "{banner}"
    );
}
// --- end graceful shutdown ---
