//! The real kubectl against the HTTP API (https + bearer token, as `kubeactor up` serves it):
//! create, get (Table columns), get -w, delete, the 422 output of an invalid manifest, and
//! 401 without the token; then the same round trip with every installed kubectl 1.27–1.33.
//! `explain` (and with every installed kubectl) and strict validation from the OpenAPI v3
//! documents; `logs` (`-c`, `--tail`, `--previous`, `-f`, the errors) against a server with
//! one node; `describe pod` and `get events --field-selector` show a pod's Events.
//!
//! kubectl here is Google Cloud SDK's launcher: it GETs /version and runs the kubectl of the
//! server's minor. Without kubectl these tests are skipped, unless
//! `KUBEACTOR_REQUIRE_KUBECTL=1` (as in CI), which makes them fail instead.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kubeactor::apiserver::http::tls;
use kubeactor::apiserver::ApiServerOptions;
use support::http_server::TestServer;

/// The kubectl on PATH, or `None` (skip) when absent and not required.
fn kubectl_binary() -> Option<PathBuf> {
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

/// A server as `kubeactor up` runs it (TLS, token) reporting `minor`.
fn server(minor: u32) -> TestServer {
    TestServer::start_with(ApiServerOptions::default(), move |o| {
        o.tls = Some(tls::generate(None).unwrap());
        o.version_minor = minor;
    })
}

/// kubectl with this server's kubeconfig and a fresh discovery cache.
struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

struct Out {
    stdout: String,
    stderr: String,
    ok: bool,
}

impl Kubectl {
    fn new(binary: PathBuf, s: &TestServer) -> Kubectl {
        Kubectl {
            binary,
            kubeconfig: s.kubeconfig(),
            cache: s.dir.path().join("kubectl-cache"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = self.command(args).output().expect("run kubectl");
        Out {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            ok: out.status.success(),
        }
    }

    /// Run and expect success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
";

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: solo
spec:
  containers:
  - name: c
    image: busybox
";

const BAD: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
spec:
  replicas: -1
  selector:
    matchLabels: {app: bad}
  template:
    metadata:
      labels: {app: bad}
    spec:
      containers: []
";

/// The words of each line (kubectl pads columns with spaces), the AGE column dropped.
fn rows(table: &str, age_column: usize) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| {
            l.split_whitespace()
                .enumerate()
                .filter(|(i, _)| *i != age_column)
                .map(|(_, w)| w.to_string())
                .collect()
        })
        .collect()
}

#[test]
fn create_get_and_delete_a_deployment() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let manifest = write(s.dir.path(), "deployment.yaml", DEPLOYMENT);

    assert_eq!(
        k.ok(&["create", "-f", &manifest]),
        "deployment.apps/web created\n"
    );
    let again = k.run(&["create", "-f", &manifest]);
    assert!(!again.ok);
    assert_eq!(
        again.stderr,
        format!(
            "Error from server (AlreadyExists): error when creating \"{manifest}\": deployments.apps \"web\" already exists\n"
        )
    );

    let table = k.ok(&["get", "deployments"]);
    assert_eq!(
        table.lines().next().unwrap(),
        "NAME   READY   UP-TO-DATE   AVAILABLE   AGE"
    );
    assert_eq!(rows(&table, 4), [["web", "0/2", "0", "0"]]);
    let wide = k.ok(&["get", "deploy", "-o", "wide"]);
    assert_eq!(
        wide.lines().next().unwrap(),
        "NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES       SELECTOR"
    );
    assert_eq!(
        rows(&wide, 4),
        [["web", "0/2", "0", "0", "nginx", "nginx:1.25", "app=web"]]
    );
    let all = k.ok(&["get", "all"]);
    assert!(all.contains("deployment.apps/web"), "{all}");

    assert_eq!(
        k.ok(&["delete", "deployment", "web"]),
        "deployment.apps \"web\" deleted\n"
    );
    let gone = k.run(&["get", "deployment", "web"]);
    assert_eq!(
        gone.stderr,
        "Error from server (NotFound): deployments.apps \"web\" not found\n"
    );
}

#[test]
fn get_pods_and_namespaces_print_upstream_columns() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let manifest = write(s.dir.path(), "pod.yaml", POD);
    assert_eq!(k.ok(&["create", "-f", &manifest]), "pod/solo created\n");

    let pods = k.ok(&["get", "pods"]);
    assert_eq!(
        pods.lines().next().unwrap(),
        "NAME   READY   STATUS    RESTARTS   AGE"
    );
    assert_eq!(rows(&pods, 4), [["solo", "0/1", "Pending", "0"]]);
    let wide = k.ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        wide.lines().next().unwrap(),
        "NAME   READY   STATUS    RESTARTS   AGE   IP       NODE     NOMINATED NODE   READINESS GATES"
    );
    assert_eq!(
        rows(&wide, 4),
        [["solo", "0/1", "Pending", "0", "<none>", "<none>", "<none>", "<none>"]]
    );
    let labels = k.ok(&["get", "pods", "-A", "--show-labels"]);
    assert_eq!(
        labels.lines().next().unwrap(),
        "NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE   LABELS"
    );

    let ns = k.ok(&["get", "ns"]);
    assert_eq!(ns.lines().next().unwrap(), "NAME              STATUS   AGE");
    assert_eq!(
        rows(&ns, 2),
        [
            ["default", "Active"],
            ["kube-node-lease", "Active"],
            ["kube-public", "Active"],
            ["kube-system", "Active"]
        ]
    );
    assert_eq!(k.ok(&["get", "pods", "-o", "name"]), "pod/solo\n");
}

#[test]
fn an_invalid_manifest_prints_its_field_causes() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let manifest = write(s.dir.path(), "bad.yaml", BAD);
    let out = k.run(&["create", "-f", &manifest]);
    assert!(!out.ok);
    assert_eq!(
        out.stderr,
        "The Deployment \"bad\" is invalid: \n\
         * spec.replicas: Invalid value: -1: must be greater than or equal to 0\n\
         * spec.template.spec.containers: Required value\n"
    );
    assert_eq!(
        k.ok(&["get", "deployments"]),
        "",
        "nothing was stored (kubectl prints 'No resources found' on stderr)"
    );
}

#[test]
fn get_watch_prints_an_object_when_it_appears() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let mut child = k
        .command(&["get", "deployments", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The initial (empty) list prints nothing; the watch is open once kubectl is waiting.
    // Create until the watch shows it: the first create may land before the watch starts,
    // which the watch (from the list's resourceVersion) still reports.
    let manifest = write(s.dir.path(), "deployment.yaml", DEPLOYMENT);
    assert_eq!(
        k.ok(&["create", "-f", &manifest]),
        "deployment.apps/web created\n"
    );
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.starts_with("web ")) {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("kubectl get -w printed no row for web: {lines:?}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(lines[0], "NAME   READY   UP-TO-DATE   AVAILABLE   AGE");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..4], ["web", "0/2", "0", "0"]);
}

#[test]
fn kubectl_without_the_token_is_unauthorized() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let mut k = Kubectl::new(bin, &s);
    let config = std::fs::read_to_string(&k.kubeconfig).unwrap();
    let token_line = format!("    token: {}\n", s.token.as_deref().unwrap());
    let anonymous = config.replace(&token_line, "    token: not-the-token\n");
    assert_ne!(anonymous, config);
    k.kubeconfig = PathBuf::from(write(s.dir.path(), "anonymous.kubeconfig", &anonymous));
    let out = k.run(&["get", "ns"]);
    assert!(!out.ok);
    assert!(
        out.stderr.ends_with(
            "error: You must be logged in to the server (the server has asked for the client to provide credentials)\n"
        ),
        "{}",
        out.stderr
    );
}

/// Every kubectl minor installed beside the launcher.
fn installed_minors(launcher: &Path) -> Vec<u32> {
    let real = std::fs::canonicalize(launcher).unwrap_or(launcher.to_path_buf());
    let dirs = [
        real.parent().map(Path::to_path_buf),
        Some(PathBuf::from("/usr/lib/google-cloud-sdk/bin")),
    ];
    let mut minors: Vec<u32> = dirs
        .iter()
        .flatten()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("kubectl.1.")?.parse().ok()
        })
        .collect();
    minors.sort_unstable();
    minors.dedup();
    minors
}

#[test]
fn every_installed_kubectl_creates_lists_and_deletes() {
    let Some(bin) = kubectl_binary() else { return };
    let minors = installed_minors(&bin);
    if minors.is_empty() {
        eprintln!("no versioned kubectl binaries beside the launcher: only the default tested");
        return;
    }
    for minor in minors {
        let s = server(minor);
        let k = Kubectl::new(bin.clone(), &s);
        let manifest = write(s.dir.path(), "deployment.yaml", DEPLOYMENT);
        let version = k.ok(&["version", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&version).unwrap();
        // The launcher ran the kubectl of the server's minor (Google's builds say "32+").
        let client_minor = v["clientVersion"]["minor"].as_str().unwrap_or("");
        assert_eq!(client_minor.trim_end_matches('+'), minor.to_string());
        assert_eq!(v["serverVersion"]["minor"], minor.to_string(), "1.{minor}");
        assert_eq!(
            k.ok(&["create", "-f", &manifest]),
            "deployment.apps/web created\n",
            "1.{minor}"
        );
        let table = k.ok(&["get", "deployments"]);
        assert_eq!(rows(&table, 4), [["web", "0/2", "0", "0"]], "1.{minor}");
        let deleted = k.ok(&["delete", "deployment", "web"]);
        assert!(
            deleted.starts_with("deployment.apps \"web\" deleted"),
            "1.{minor}: {deleted}"
        );
    }
}

/// `auth can-i` (a protobuf SelfSubjectAccessReview, or a SelfSubjectRulesReview with
/// `--list`) and `auth whoami` (a SelfSubjectReview, v1 from kubectl 1.28 on) with every
/// installed kubectl: the token's user may do everything, as `system:masters` upstream.
#[test]
fn every_installed_kubectl_asks_what_it_may_do_and_who_it_is() {
    let Some(bin) = kubectl_binary() else { return };
    let mut minors = installed_minors(&bin);
    if minors.is_empty() {
        minors.push(32); // only the launcher's default
    }
    for minor in minors {
        let s = server(minor);
        let k = Kubectl::new(bin.clone(), &s);
        assert_eq!(
            k.ok(&["auth", "can-i", "create", "pods"]),
            "yes\n",
            "1.{minor}"
        );
        assert_eq!(
            k.ok(&["auth", "can-i", "delete", "deployments.apps", "-A"]),
            "yes\n",
            "1.{minor}"
        );
        assert_eq!(
            k.ok(&["auth", "can-i", "get", "/healthz"]),
            "yes\n",
            "1.{minor}"
        );
        let list = k.ok(&["auth", "can-i", "--list"]);
        assert_eq!(
            rows(&list, 4)[0],
            ["*.*", "[]", "[]", "[*]"],
            "1.{minor}: {list}"
        );
        if minor >= 28 {
            let whoami = k.ok(&["auth", "whoami"]);
            assert_eq!(
                rows(&whoami, 2),
                [
                    ["Username", "kubeactor-admin"],
                    ["Groups", "[system:masters"]
                ],
                "1.{minor}: {whoami}"
            );
        }
    }
}

const NODE: &str = "apiVersion: v1
kind: Node
metadata:
  name: node-1
status:
  conditions:
  - type: Ready
    status: \"True\"
  nodeInfo: {kubeletVersion: v1.32.0}
";

/// `kubectl diff` (a server-side dry run of the apply) shows the user's change and what the
/// server derives from it, and no new trace context: a dry run is no hop of a trace.
#[test]
fn diff_shows_the_change_and_no_new_trace_context() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let manifest = write(s.dir.path(), "deployment.yaml", DEPLOYMENT);
    k.ok(&["apply", "-f", &manifest]);
    let scaled = DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    let scaled = write(s.dir.path(), "scaled.yaml", &scaled);
    let out = k.run(&["diff", "-f", &scaled]);
    assert!(!out.ok, "kubectl diff exits 1 on a difference");
    assert!(
        out.stdout.contains("\n-  replicas: 2\n") && out.stdout.contains("\n+  replicas: 3\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("traceparent"), "{}", out.stdout);
    let same = k.run(&["diff", "-f", &manifest]);
    assert!(
        same.ok && same.stdout.is_empty(),
        "{}{}",
        same.stdout,
        same.stderr
    );
}

/// A JSON patch whose operations do not apply is 422 Invalid with upstream's fixed message
/// (`applyJSPatch`), which kubectl prints as such; nothing is written.
#[test]
fn a_json_patch_that_does_not_apply_is_an_invalid_request() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let manifest = write(s.dir.path(), "deployment.yaml", DEPLOYMENT);
    k.ok(&["create", "-f", &manifest]);
    let before = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let out = k.run(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":9},{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    assert!(!out.ok);
    assert_eq!(
        out.stderr,
        "The request is invalid: the server rejected our request due to an error in our request\n"
    );
    let after = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(before, after, "nothing was written");
}

#[test]
fn scale_set_image_cordon_and_client_side_apply() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let manifest = write(s.dir.path(), "deployment.yaml", DEPLOYMENT);
    k.ok(&["create", "-f", &manifest]);
    assert_eq!(
        k.ok(&["scale", "deployment", "web", "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        k.ok(&[
            "scale",
            "deployment",
            "web",
            "--current-replicas=5",
            "--replicas=3"
        ]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        k.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]),
        "deployment.apps/web image updated\n"
    );
    let wide = k.ok(&["get", "deploy", "-o", "wide"]);
    assert_eq!(
        rows(&wide, 4),
        [["web", "0/3", "0", "0", "nginx", "nginx:1.27", "app=web"]]
    );
    assert_eq!(
        k.ok(&["label", "deploy", "web", "tier=front"]),
        "deployment.apps/web labeled\n"
    );

    let node = write(s.dir.path(), "node.yaml", NODE);
    k.ok(&["create", "-f", &node]);
    assert_eq!(k.ok(&["cordon", "node-1"]), "node/node-1 cordoned\n");
    let nodes = k.ok(&["get", "nodes"]);
    assert_eq!(
        nodes.lines().next().unwrap(),
        "NAME     STATUS                     ROLES    AGE   VERSION"
    );
    assert_eq!(
        rows(&nodes, 3),
        [["node-1", "Ready,SchedulingDisabled", "<none>", "v1.32.0"]]
    );

    let web2 = DEPLOYMENT.replace("name: web\n", "name: web2\n");
    let applied = write(s.dir.path(), "web2.yaml", &web2);
    assert_eq!(
        k.ok(&["apply", "-f", &applied]),
        "deployment.apps/web2 created\n"
    );
    assert_eq!(
        k.ok(&["apply", "-f", &applied]),
        "deployment.apps/web2 unchanged\n"
    );
    let changed = write(
        s.dir.path(),
        "web2-v2.yaml",
        &web2
            .replace("replicas: 2", "replicas: 4")
            .replace("nginx:1.25", "nginx:1.26"),
    );
    assert_eq!(
        k.ok(&["apply", "-f", &changed]),
        "deployment.apps/web2 configured\n"
    );
    let ssa = write(
        s.dir.path(),
        "web3.yaml",
        &DEPLOYMENT.replace("name: web\n", "name: web3\n"),
    );
    for _ in 0..2 {
        assert_eq!(
            k.ok(&["apply", "--server-side", "-f", &ssa]),
            "deployment.apps/web3 serverside-applied\n"
        );
    }
    let got = k.ok(&[
        "get",
        "deploy",
        "web2",
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(got, "4 nginx:1.26");
}

#[test]
fn typed_create_commands_send_protobuf() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    assert_eq!(
        k.ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=3"
        ]),
        "deployment.apps/web created\n"
    );
    assert_eq!(
        k.ok(&[
            "run",
            "solo",
            "--image=busybox",
            "--env=A=b",
            "--",
            "sleep",
            "100"
        ]),
        "pod/solo created\n"
    );
    assert_eq!(
        k.ok(&["create", "namespace", "team-a"]),
        "namespace/team-a created\n"
    );
    let web = k.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(web, "3 web nginx");
    let solo = k.ok(&[
        "get",
        "pod",
        "solo",
        "-o",
        "jsonpath={.spec.containers[0].args} {.spec.containers[0].env[0].value}",
    ]);
    assert_eq!(solo, "[\"sleep\",\"100\"] b");
}

// ---- OpenAPI v3: explain and validation; pods/log: kubectl logs ----

/// The default (strict) validation rejects an unknown field with upstream's message.
const UNKNOWN_FIELD: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: typo
spec:
  replica: 2
  selector:
    matchLabels: {app: typo}
  template:
    metadata:
      labels: {app: typo}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
";

#[test]
fn explain_prints_the_descriptions_of_the_served_schemas() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let replicas = k.ok(&["explain", "deployment.spec.replicas"]);
    assert!(replicas.contains("KIND:       Deployment"), "{replicas}");
    assert!(replicas.contains("FIELD: replicas <integer>"), "{replicas}");
    assert!(replicas.contains("Number of desired pods."), "{replicas}");
    let pods = k.ok(&["explain", "pods"]);
    assert!(pods.contains("KIND:       Pod"), "{pods}");
    assert!(
        pods.contains("Pod is a collection of containers that can run on a host."),
        "{pods}"
    );
    assert!(pods.contains("spec\t<PodSpec>"), "{pods}");
    let containers = k.ok(&["explain", "pods.spec.containers.image"]);
    assert!(containers.contains("Container image name."), "{containers}");
}

#[test]
fn every_installed_kubectl_explains_a_field() {
    let Some(bin) = kubectl_binary() else { return };
    for minor in installed_minors(&bin) {
        let s = server(minor);
        let k = Kubectl::new(bin.clone(), &s);
        let out = k.ok(&["explain", "deployment.spec.replicas"]);
        assert!(out.contains("Number of desired pods."), "1.{minor}: {out}");
    }
}

#[test]
fn create_and_apply_validate_without_turning_validation_off() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let typo = write(s.dir.path(), "typo.yaml", UNKNOWN_FIELD);
    for verb in ["create", "apply"] {
        let out = k.run(&[verb, "-f", &typo]);
        assert!(!out.ok, "{verb}");
        assert_eq!(
            out.stderr,
            format!(
                "Error from server (BadRequest): error when creating \"{typo}\": Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replica\"\n"
            ),
            "{verb}"
        );
    }
    let before = s.revision();
    let manifest = write(s.dir.path(), "deployment.yaml", DEPLOYMENT);
    assert_eq!(
        k.ok(&["apply", "-f", &manifest]),
        "deployment.apps/web created\n"
    );
    assert!(s.revision() > before);
    let pod = write(s.dir.path(), "pod.yaml", POD);
    assert_eq!(k.ok(&["create", "-f", &pod]), "pod/solo created\n");
}

/// A pod bound to node-1 (the test server's node) with these containers.
fn bound_pod(name: &str, containers: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: node-1\n  restartPolicy: Never\n  containers:\n"
    );
    for (c, script) in containers {
        yaml.push_str(&format!(
            "  - name: {c}\n    image: busybox:1.36\n    command: [sh, -c, {script:?}]\n"
        ));
    }
    yaml
}

/// Wait until `kubectl get pod` shows `phase` for `pod`.
fn wait_for_phase(k: &Kubectl, pod: &str, phase: &str) {
    support::http_server::eventually(20, &format!("pod {pod} {phase}"), || {
        let out = k.run(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"]);
        (out.stdout == phase).then_some(())
    });
}

/// `kubectl drain` cordons the node, finds `pods/eviction` in discovery and evicts its pods
/// (a protobuf `policy/v1` Eviction each), then waits until they are gone.
#[test]
fn drain_cordons_a_node_and_evicts_its_pods() {
    let Some(bin) = kubectl_binary() else { return };
    let s = TestServer::start_with_node(0.0, |o| {
        o.tls = Some(tls::generate(None).unwrap());
    });
    let k = Kubectl::new(bin, &s);
    let pod = bound_pod("solo", &[("main", "sleep infinity")]);
    let manifest = write(s.dir.path(), "solo.yaml", &pod);
    k.ok(&["create", "-f", &manifest]);
    wait_for_phase(&k, "solo", "Running");
    let out = k.ok(&[
        "drain",
        "node-1",
        "--force",
        "--ignore-daemonsets",
        "--timeout=60s",
    ]);
    assert!(out.contains("node/node-1 drained"), "{out}");
    assert!(out.contains("pod/solo evicted"), "{out}");
    assert_eq!(
        k.ok(&[
            "get",
            "node",
            "node-1",
            "-o",
            "jsonpath={.spec.unschedulable}"
        ]),
        "true"
    );
    let gone = k.run(&["get", "pod", "solo"]);
    assert!(
        !gone.ok && gone.stderr.contains("NotFound"),
        "{}",
        gone.stderr
    );
}

#[test]
fn logs_prints_a_containers_log_from_its_node() {
    let Some(bin) = kubectl_binary() else { return };
    let s = TestServer::start_with_node(0.0, |o| {
        o.tls = Some(tls::generate(None).unwrap());
    });
    let k = Kubectl::new(bin, &s);
    let two = bound_pod(
        "web-x",
        &[
            ("a", "echo one; echo two; sleep infinity"),
            ("b", "echo from b; sleep infinity"),
        ],
    );
    let manifest = write(s.dir.path(), "two.yaml", &two);
    assert_eq!(k.ok(&["create", "-f", &manifest]), "pod/web-x created\n");
    wait_for_phase(&k, "web-x", "Running");

    assert_eq!(
        k.ok(&["logs", "web-x", "-c", "a"]),
        "[kubeactor] started container a from docker.io/library/busybox:1.36 (simulated: its command runs as documented in docs/nodes.md)\none\ntwo\n"
    );
    assert_eq!(k.ok(&["logs", "web-x", "-c", "a", "--tail=1"]), "two\n");
    assert_eq!(k.ok(&["logs", "web-x", "-c", "b", "--tail=1"]), "from b\n");
    // Without -c kubectl picks the first container itself (and says so on stderr).
    let first = k.run(&["logs", "web-x", "--tail=1"]);
    assert_eq!(first.stdout, "two\n");
    assert!(
        first
            .stderr
            .contains("Defaulted container \"a\" out of: a, b"),
        "{}",
        first.stderr
    );

    // kubectl checks the container name itself; the API server answers the same.
    let unknown = k.run(&["logs", "web-x", "-c", "x"]);
    assert_eq!(
        unknown.stderr,
        "error: container x is not valid for pod web-x\n"
    );
    let previous = k.run(&["logs", "web-x", "-c", "a", "--previous"]);
    assert_eq!(
        previous.stderr,
        "Error from server (BadRequest): previous terminated container \"a\" in pod \"web-x\" not found\n"
    );
    // The raw API: upstream's 400s.
    for (query, message) in [
        (
            "",
            "a container name must be specified for pod web-x, choose one of: [a b]",
        ),
        ("?container=x", "container x is not valid for pod web-x"),
    ] {
        let raw = k.run(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/web-x/log{query}"),
        ]);
        assert_eq!(
            raw.stderr,
            format!("Error from server (BadRequest): {message}\n"),
            "{query}"
        );
    }
    assert_eq!(
        k.ok(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web-x/log?container=a&tailLines=2&limitBytes=6"
        ]),
        "one\ntw"
    );

    // A crash-looping container: --previous reads the instance that exited.
    let crash = bound_pod("crash", &[("c", "echo boom; exit 1")])
        .replace("restartPolicy: Never", "restartPolicy: Always");
    k.ok(&["create", "-f", &write(s.dir.path(), "crash.yaml", &crash)]);
    support::http_server::eventually(20, "a restart", || {
        let out = k.run(&[
            "get",
            "pod",
            "crash",
            "-o",
            "jsonpath={.status.containerStatuses[0].lastState.terminated.containerID}",
        ]);
        (!out.stdout.is_empty()).then_some(())
    });
    let previous = k.ok(&["logs", "crash", "--previous"]);
    assert!(
        previous.ends_with("boom\n[kubeactor] container exited with code 1\n"),
        "{previous}"
    );

    // An image that cannot be pulled: the container waits, and says why.
    let missing = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nope\nspec:\n  nodeName: node-1\n  containers:\n  - name: c\n    image: doesnotexist:1\n";
    k.ok(&["create", "-f", &write(s.dir.path(), "nope.yaml", missing)]);
    let waiting = support::http_server::eventually(20, "ErrImagePull", || {
        let out = k.run(&["logs", "nope"]);
        out.stderr.contains("image").then_some(out.stderr)
    });
    assert!(
        waiting == "Error from server (BadRequest): container \"c\" in pod \"nope\" is waiting to start: image can't be pulled\n"
            || waiting == "Error from server (BadRequest): container \"c\" in pod \"nope\" is waiting to start: trying and failing to pull image\n",
        "{waiting}"
    );
}

#[test]
fn logs_follow_streams_new_lines_until_the_container_exits() {
    let Some(bin) = kubectl_binary() else { return };
    // 20 simulated seconds per real second: `sleep 10` takes half a second, the 30 s grace
    // period of the deletion a second and a half.
    let s = TestServer::start_with_node(20.0, |o| {
        o.tls = Some(tls::generate(None).unwrap());
    });
    let k = Kubectl::new(bin, &s);
    let pod = bound_pod(
        "ticker",
        &[("c", "echo first; sleep 10; echo second; sleep infinity")],
    );
    k.ok(&["create", "-f", &write(s.dir.path(), "ticker.yaml", &pod)]);
    wait_for_phase(&k, "ticker", "Running");

    let mut child = k
        .command(&["logs", "-f", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // Both lines arrive while the container runs (it never exits by itself)...
    while !lines.iter().any(|l: &String| l == "second") {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => lines.push(line),
            Err(e) => panic!("kubectl logs -f: {e:?} before 'second': {lines:?}"),
        }
    }
    assert_eq!(lines[1..], ["first", "second"]);
    assert!(child.try_wait().unwrap().is_none(), "still following");
    // ...and the stream ends once the container is stopped (the pod deleted).
    k.ok(&["delete", "pod", "ticker", "--wait=false"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("kubectl logs -f did not end with the container: {lines:?}");
                }
            }
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {lines:?}");
}

/// Server-side apply with field management, as kubectl prints it: apply creates and
/// re-applies; `kubectl scale` takes `.spec.replicas` (an `Update` by manager `kubectl` on
/// the `scale` subresource); applying another replicas value is then a conflict naming that
/// manager, until `--force-conflicts`; `--show-managed-fields` shows the managers.
#[test]
fn server_side_apply_conflicts_with_kubectl_scale_until_forced() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let manifest = write(s.dir.path(), "deployment.yaml", DEPLOYMENT);
    for _ in 0..2 {
        assert_eq!(
            k.ok(&["apply", "--server-side", "-f", &manifest]),
            "deployment.apps/web serverside-applied\n"
        );
    }
    assert_eq!(
        k.ok(&["scale", "deployment", "web", "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    let yaml = k.ok(&["get", "deploy", "web", "-o", "yaml"]);
    assert!(
        !yaml.contains("managedFields"),
        "hidden by default:\n{yaml}"
    );
    let shown = k.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager} {.operation} {.subresource};{end}",
        "--show-managed-fields",
    ]);
    assert_eq!(shown, "kubectl Apply ;kubectl Update scale;");

    let out = k.run(&["apply", "--server-side", "-f", &manifest]);
    assert!(!out.ok, "the conflicting apply must fail:\n{}", out.stdout);
    assert_eq!(
        out.stderr.lines().collect::<Vec<_>>(),
        [
            "error: Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas",
            "Please review the fields above--they currently have other managers. Here",
            "are the ways you can resolve this warning:",
            "* If you intend to manage all of these fields, please re-run the apply",
            "  command with the `--force-conflicts` flag.",
            "* If you do not intend to manage all of the fields, please edit your",
            "  manifest to remove references to the fields that should keep their",
            "  current managers.",
            "* You may co-own fields by updating your manifest to match the existing",
            "  value; in this case, you'll become the manager if the other manager(s)",
            "  stop managing the field (remove it from their configuration).",
            "See https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts",
        ],
        "stderr:\n{}",
        out.stderr
    );
    assert_eq!(
        k.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );

    assert_eq!(
        k.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &manifest
        ]),
        "deployment.apps/web serverside-applied\n"
    );
    assert_eq!(
        k.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );
    let yaml = k.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    assert!(yaml.contains("manager: kubectl\n"), "{yaml}");
    assert!(yaml.contains("operation: Apply\n"), "{yaml}");
    assert!(yaml.contains("fieldsType: FieldsV1\n"), "{yaml}");
    assert!(
        !yaml.contains("subresource: scale"),
        "the scaler lost its only field:\n{yaml}"
    );
}

/// Client-side apply's fields belong to `kubectl-client-side-apply`; an `Update` by another
/// client (`kubectl set image`) takes the image from it.
#[test]
fn client_side_apply_and_set_image_record_update_managers() {
    let Some(bin) = kubectl_binary() else { return };
    let s = server(32);
    let k = Kubectl::new(bin, &s);
    let manifest = write(s.dir.path(), "deployment.yaml", DEPLOYMENT);
    k.ok(&["apply", "-f", &manifest]);
    k.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    let shown = k.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager} {.operation};{end}",
        "--show-managed-fields",
    ]);
    assert_eq!(
        shown,
        "kubectl-client-side-apply Update;kubectl-set Update;"
    );
}

/// `kubectl describe pod` shows the pod's Events — a list of Events by field selector, which
/// the API server answers from Events it keeps as bytes — and `kubectl get events
/// --field-selector` finds exactly that pod's.
#[test]
fn describe_and_get_events_show_only_the_pods_events() {
    let Some(bin) = kubectl_binary() else { return };
    let s = TestServer::start_with_node(0.0, |o| {
        o.tls = Some(tls::generate(None).unwrap());
    });
    let k = Kubectl::new(bin, &s);
    for pod in ["ev-1", "ev-2"] {
        let manifest = write(
            s.dir.path(),
            &format!("{pod}.yaml"),
            &bound_pod(pod, &[("app", "sleep infinity")]),
        );
        k.ok(&["create", "-f", &manifest]);
        wait_for_phase(&k, pod, "Running");
    }
    let described = support::http_server::eventually(20, "ev-1's Started event", || {
        let out = k.ok(&["describe", "pod", "ev-1"]);
        out.contains("Started container app").then_some(out)
    });
    let events = described
        .split_once("\nEvents:\n")
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("no Events section:\n{described}"));
    for line in ["Pulled", "Created container: app", "Started container app"] {
        assert!(events.contains(line), "{line:?} in:\n{events}");
    }
    assert!(!events.contains("ev-2"), "another pod's event:\n{events}");

    let listed = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=ev-1",
        "-o",
        "jsonpath={range .items[*]}{.involvedObject.name} {.reason}{\"\\n\"}{end}",
    ]);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines.contains(&"ev-1 Started"), "{listed}");
    assert!(lines.iter().all(|l| l.starts_with("ev-1 ")), "{listed}");
    let all = k.ok(&["get", "events", "-o", "name"]);
    assert!(
        all.lines().count() > lines.len(),
        "ev-2 has Events too:\n{all}"
    );
}
