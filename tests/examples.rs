//! Every manifest in `examples/` applies with the real kubectl to a running `kubeactor up`
//! (with the control-plane node, as examples/taints.yaml asks) and its pods reach the state
//! its comments promise.

mod support;

use std::time::Duration;

use kubeactor::client::Client;
use serde_json::Value;
use support::daemon::{kubectl_binary, wait_for, Daemon};

const WITHIN: Duration = Duration::from_secs(60);

fn example(name: &str) -> String {
    format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The pods labelled `app=<app>` in `default`.
fn pods(client: &Client, app: &str) -> Result<Vec<Value>, String> {
    let body = client
        .get(&format!(
            "/api/v1/namespaces/default/pods?labelSelector=app%3D{app}"
        ))
        .map_err(|e| e.to_string())?;
    let list: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

fn all_ready(pod: &Value) -> bool {
    let statuses = pod["status"]["containerStatuses"].as_array();
    statuses.is_some_and(|s| !s.is_empty() && s.iter().all(|c| c["ready"] == true))
}

/// Wait for exactly `n` Running pods of `app` with every container ready.
fn running(client: &Client, app: &str, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} ready pods app={app}"), WITHIN, || {
        let pods = pods(client, app)?;
        let ready = pods
            .iter()
            .filter(|p| phase(p) == "Running" && all_ready(p))
            .count();
        match ready == n && pods.len() == n {
            true => Ok(pods),
            false => Err(format!("{ready} of {} ready", pods.len())),
        }
    })
}

fn node(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or("")
}

#[test]
fn every_example_applies_and_reaches_its_documented_state() {
    if kubectl_binary().is_none() {
        return;
    }
    let daemon = Daemon::start(20.0, &["nodes.control_plane=true"]);
    for file in [
        "deployment.yaml",
        "taints.yaml",
        "affinity.yaml",
        "probes.yaml",
        "crashloop.yaml",
    ] {
        daemon.kubectl_ok(&["apply", "-f", &example(file)]);
    }
    let client = Client::from_data_dir(daemon.data_dir()).unwrap();

    // deployment.yaml: 3 pods, 2/2 containers each.
    let web = running(&client, "web", 3);
    for pod in &web {
        assert_eq!(
            pod["status"]["containerStatuses"].as_array().map(Vec::len),
            Some(2)
        );
        assert_ne!(
            node(pod),
            "control-plane",
            "the taint keeps ordinary pods off it"
        );
    }

    // taints.yaml: both replicas on the tainted control-plane node.
    for pod in running(&client, "on-control-plane", 2) {
        assert_eq!(node(&pod), "control-plane");
    }

    // affinity.yaml: one replica per worker.
    let spread = running(&client, "spread", 2);
    let mut nodes: Vec<&str> = spread.iter().map(node).collect();
    nodes.sort();
    assert_eq!(nodes, ["node-1", "node-2"]);

    // probes.yaml: Running and Ready (the readiness probe passes).
    let probed = running(&client, "probed", 1);
    let conditions = probed[0]["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True"),
        "{conditions:?}"
    );

    // crashloop.yaml: CrashLoopBackOff after a restart.
    wait_for("crashloop in CrashLoopBackOff", WITHIN, || {
        let pods = pods(&client, "crashloop")?;
        let status = pods
            .first()
            .map(|p| p["status"]["containerStatuses"][0].clone())
            .unwrap_or_default();
        let waiting = status["state"]["waiting"]["reason"].as_str().unwrap_or("");
        let restarts = status["restartCount"].as_i64().unwrap_or(0);
        match (waiting, restarts) {
            ("CrashLoopBackOff", 1..) => Ok(()),
            _ => Err(format!("{status}")),
        }
    });
}
