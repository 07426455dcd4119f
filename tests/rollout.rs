//! The real kubectl's `rollout` family against a running `kubeactor up`: the Deployment
//! controller, the ReplicaSet controller, the scheduler and the kubelets carry each step, and
//! kubectl reads its progress from the Deployment's generation, status and revisions.

mod support;

use support::daemon::{kubectl_binary, Daemon};

/// `kubectl get deployment web -o jsonpath=…`.
fn field(daemon: &Daemon, path: &str) -> String {
    daemon.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        &format!("jsonpath={{{path}}}"),
    ])
}

fn status(daemon: &Daemon) {
    let out = daemon.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
}

#[test]
fn rollout_status_history_undo_pause_resume_and_restart() {
    if kubectl_binary().is_none() {
        return;
    }
    let daemon = Daemon::start(20.0, &[]);
    daemon.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.26",
        "--replicas=2",
    ]);
    status(&daemon);
    // The revision annotation is a status write: a new Deployment stays at generation 1.
    assert_eq!(
        field(&daemon, ".metadata.generation} {.status.observedGeneration"),
        "1 1"
    );

    daemon.kubectl_ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    status(&daemon);
    let history = daemon.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    assert_eq!(
        daemon.kubectl_ok(&["rollout", "undo", "deployment/web"]),
        "deployment.apps/web rolled back\n"
    );
    status(&daemon);
    assert_eq!(
        field(&daemon, ".spec.template.spec.containers[0].image"),
        "nginx:1.26"
    );

    // Paused: a template change waits for resume.
    daemon.kubectl_ok(&["rollout", "pause", "deployment/web"]);
    daemon.kubectl_ok(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    let rs_images = || {
        daemon.kubectl_ok(&[
            "get",
            "rs",
            "-o",
            "jsonpath={range .items[*]}{.spec.template.spec.containers[0].image}{\" \"}{end}",
        ])
    };
    assert!(!rs_images().contains("nginx:1.28"), "{}", rs_images());
    daemon.kubectl_ok(&["rollout", "resume", "deployment/web"]);
    status(&daemon);
    assert!(rs_images().contains("nginx:1.28"), "{}", rs_images());

    // restart: a new template annotation, hence a new ReplicaSet.
    daemon.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    status(&daemon);
    assert!(!field(&daemon, ".spec.template.metadata.annotations").is_empty());
    assert_eq!(
        field(&daemon, ".metadata.generation"),
        field(&daemon, ".status.observedGeneration")
    );
}
