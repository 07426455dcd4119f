//! `kubeactor trace` against a running `kubeactor up`: after `kubectl create deployment`, the
//! deployment's trace is drawn as a tree from the request down to the containers starting;
//! `--list` lists it; an object no trace touches is a one-line error and exit status 1; the
//! client reads the daemon's kubeconfig and reports a missing daemon clearly.

mod support;

use std::time::Duration;

use kubeactor::client::{Client, ClientError};
use kubeactor::telemetry::waterfall::ObjectRef;
use support::daemon::{kubectl_binary, wait_for, Daemon};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first line at or after `from` containing `needle`.
fn line_of(lines: &[&str], from: usize, needle: &str) -> Option<usize> {
    (from..lines.len()).find(|&i| lines[i].contains(needle))
}

#[test]
fn trace_draws_a_deployments_chain_and_lists_it() {
    if kubectl_binary().is_none() {
        return;
    }
    let daemon = Daemon::start(20.0, &[]);
    daemon.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);

    // In causal order: each of these appears after the one before it in the tree.
    let chain = [
        "kubectl create deployments/web",
        "put /registry/deployments/default/web",
        "sync deployment default/web",
        "sync replicaset default/web-",
        "schedule pod default/web-",
        "bind",
        "sync pod default/web-",
        "start container nginx",
    ];
    let text = wait_for(
        "the whole chain in `kubeactor trace`",
        Duration::from_secs(60),
        || {
            let out = daemon.kubeactor(&["trace", "deployment/web"]);
            let text = stdout(&out);
            let lines: Vec<&str> = text.lines().collect();
            let mut at = 0;
            for step in chain {
                at = line_of(&lines, at, step)
                    .ok_or(format!("no {step:?} after line {at}:\n{text}"))?;
            }
            let starts = lines
                .iter()
                .filter(|l| l.contains("start container nginx"))
                .count();
            if starts < 3 {
                return Err(format!("{starts} container starts:\n{text}"));
            }
            Ok(text)
        },
    );
    assert!(
        !text.contains('\x1b'),
        "no colours when stdout is not a terminal"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("trace ") && lines[0].ends_with("kubectl create deployments/web"));
    assert!(
        !text.contains("Jaeger:"),
        "no Jaeger link when export is off"
    );
    let root = line_of(&lines, 1, "kubectl create deployments/web").unwrap();
    assert!(lines[root].contains("kube-apiserver"), "{}", lines[root]);
    let sync = line_of(&lines, 0, "sync pod default/web-").unwrap();
    assert!(
        lines[sync].contains("kubelet node-"),
        "the node beside the service"
    );
    assert!(
        text.contains("→ selected node-"),
        "the scheduler's decision inline:\n{text}"
    );
    // Kinds as kubectl spells them, and -n.
    for arg in ["deploy/web", "deployments/web", "deployments.apps/web"] {
        let out = daemon.kubeactor(&["trace", arg, "-n", "default"]);
        assert!(out.status.success(), "{arg}");
        assert!(
            stdout(&out).contains("kubectl create deployments/web"),
            "{arg}"
        );
    }
    // The trace id in the header is the one `--list` prints, and `--id` shows it again.
    let trace_id = lines[0].split_whitespace().nth(1).unwrap().to_string();
    let list = daemon.kubeactor(&["trace", "--list"]);
    assert!(list.status.success());
    let list = stdout(&list);
    let row = list
        .lines()
        .find(|l| l.starts_with(&trace_id))
        .unwrap_or_else(|| panic!("{trace_id} in:\n{list}"));
    assert!(
        row.ends_with("kube-apiserver: kubectl create deployments/web"),
        "{row}"
    );
    let by_id = daemon.kubeactor(&["trace", "--id", &trace_id]);
    assert!(stdout(&by_id).starts_with(&format!("trace {trace_id}")));

    // The same story in /metrics: every component counted its part.
    let client = Client::from_data_dir(daemon.data_dir()).unwrap();
    let sum = |text: &str, name: &str, with: &[(&str, &str)]| -> f64 {
        kubeactor::metrics::parse_text(text)
            .unwrap()
            .into_iter()
            .filter(|(n, labels, _)| {
                n == name
                    && with
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    };
    let text = wait_for(
        "3 pods started in /metrics",
        Duration::from_secs(30),
        || {
            let text = String::from_utf8(client.get("/metrics").map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            match sum(&text, "kubelet_pod_start_duration_seconds_count", &[]) {
                3.0 => Ok(text),
                n => Err(format!("{n} pod starts")),
            }
        },
    );
    let sum = |name: &str, with: &[(&str, &str)]| sum(&text, name, with);
    let scheduled = [("result", "scheduled"), ("profile", "default-scheduler")];
    assert_eq!(
        sum("scheduler_schedule_attempts_total", &scheduled),
        3.0,
        "{text}"
    );
    assert_eq!(sum("kubelet_running_pods", &[]), 3.0, "{text}");
    assert_eq!(
        sum("kubelet_pod_start_duration_seconds_count", &[]),
        3.0,
        "{text}"
    );
    assert!(sum("workqueue_adds_total", &[("name", "deployment")]) >= 1.0);
    assert_eq!(
        sum("apiserver_storage_objects", &[("resource", "pods")]),
        3.0
    );
    assert!(
        sum(
            "apiserver_request_total",
            &[
                ("verb", "CREATE"),
                ("resource", "deployments"),
                ("code", "201")
            ]
        ) >= 1.0
    );
}

#[test]
fn an_object_no_trace_touches_is_an_error_with_exit_status_1() {
    let daemon = Daemon::start(20.0, &[]);
    let out = daemon.kubeactor(&["trace", "deployment/nothing", "-n", "elsewhere"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "error: no trace touches deployment/nothing in namespace elsewhere (the span store \
         keeps recent spans only; `kubeactor trace --list` shows what it has)"
    );
    let out = daemon.kubeactor(&["trace", "gizmo/web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resource type \"gizmo\""));
    let out = daemon.kubeactor(&["trace", "--id", "0af7651916cd43dd8448eb211c80319c"]);
    assert_eq!(out.status.code(), Some(1));

    // The library client, straight.
    let client = Client::from_data_dir(daemon.data_dir()).unwrap();
    assert!(client.server().starts_with("https://127.0.0.1:"));
    let list = client.traces().unwrap();
    assert_eq!(list.jaeger_ui, None);
    let missing = ObjectRef::parse("pod/none", "default").unwrap();
    assert!(matches!(
        client.trace_of(&missing),
        Err(ClientError::Status { code: 404, .. })
    ));
    assert!(matches!(
        client.trace("not-hex"),
        Err(ClientError::Status { code: 400, .. })
    ));
}

#[test]
fn without_a_daemon_the_client_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = Client::from_data_dir(dir.path()).unwrap_err();
    assert!(matches!(err, ClientError::Kubeconfig { .. }));
    assert!(
        err.to_string().contains("is `kubeactor up` running"),
        "{err}"
    );
    let out = support::daemon::kubeactor_command()
        .args(["trace", "--list", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: cannot read "));
    assert!(Client::from_kubeconfig("clusters: []").is_err());
}
