//! `kubeactor demo` (or `kubeactor up --demo`): a scenario loop inside the daemon that keeps
//! Jaeger filling with real chains of events.
//!
//! Every `[demo] interval_seconds` it runs one scenario on a Deployment with a fresh name
//! (`demo-<n>`), each step a write to the ApiServer as a NEW trace whose root is the API
//! server's request span, named like the kubectl action (`demo create deployments/demo-7`,
//! service kube-apiserver), and waits until the cluster has converged before the next:
//!
//! 1. create the Deployment (`[demo] replicas` of `image`) → wait until Available;
//! 2. scale it to `scaled_replicas` → wait until all are available;
//! 3. roll out `updated_image` (`set image`) → wait until every replica is updated and the
//!    old pods are gone;
//! 4. fail and restore a node (`[demo] node_failure`): stop the kubelet of a node running
//!    some of its pods → wait until the node is NotReady and its pods are replaced on
//!    another node → start it → wait until it is Ready (see `Scenario::node_failure`);
//! 5. delete it (background propagation: the garbage collector deletes its ReplicaSets and
//!    pods, the kubelets stop their containers) → wait until nothing of it is left.
//!
//! A step that does not converge within `step_timeout_seconds` ends the scenario early; the
//! Deployment is deleted anyway, so a failed scenario leaves nothing behind.
//!
//! Memory stays flat however long it runs: every object a scenario creates is deleted by
//! it, the span store keeps the last `[telemetry] span_store_capacity` spans, Events expire
//! after `[controllers] event_ttl_seconds`, and the store's event log and the API server's
//! watch cache keep a bounded window (`[store] event_window`, `[apiserver]
//! watch_cache_window`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions, LabelSelector as ApiLabelSelector, ObjectMeta,
};
use parking_lot::Mutex;
use serde::Deserialize;

use crate::api::selectors::LabelSelector;
use crate::api::{Kind, Object};
use crate::apiserver::{
    ApiError, ApiServer, Create, Delete, Get, List, Trace, Update, WriteOptions,
};
use crate::kubelet::actor::{Kubelet, NodeHandle, StartKubelet, StopKubelet};

/// The client name in the demo's span names (`demo create deployments/demo-1`), where the
/// HTTP layer puts the User-Agent's (`kubectl create deployments/web`).
pub const CLIENT: &str = "demo";
/// The label every demo object carries (`app=<deployment name>` selects one scenario's).
const DEMO_LABEL: &str = "kubeactor.io/demo";
/// How often a step looks again whether the cluster has converged.
const POLL: Duration = Duration::from_millis(50);

/// `[demo]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Run the loop in `kubeactor up` (also `kubeactor demo`, `kubeactor up --demo`).
    pub enabled: bool,
    /// Seconds from the start of one scenario to the start of the next (at least the time a
    /// scenario takes).
    pub interval_seconds: f64,
    /// Scenarios to run; 0 = until the daemon stops.
    pub iterations: u64,
    /// Namespace of the demo Deployments.
    pub namespace: String,
    /// Replicas at creation.
    pub replicas: i32,
    /// Replicas after the scale step.
    pub scaled_replicas: i32,
    /// The image at creation.
    pub image: String,
    /// The image the rolling update moves to.
    pub updated_image: String,
    /// Longest a step waits for convergence before the scenario is cut short.
    pub step_timeout_seconds: f64,
    /// Run step 4: stop the kubelet of a node running some of the Deployment's pods, wait
    /// until the node is NotReady and its pods are replaced elsewhere, start it again.
    pub node_failure: bool,
    /// The demo pods' own `tolerationSeconds` for `node.kubernetes.io/unreachable` and
    /// `not-ready` (NoExecute), simulated seconds: how long they stay on a failed node
    /// before eviction (instead of the API server's default 300 s).
    pub node_failure_toleration_seconds: i64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            enabled: false,
            interval_seconds: 30.0,
            iterations: 0,
            namespace: "default".into(),
            replicas: 3,
            scaled_replicas: 5,
            image: "nginx:1.27".into(),
            updated_image: "nginx:1.28".into(),
            step_timeout_seconds: 120.0,
            node_failure: true,
            node_failure_toleration_seconds: 10,
        }
    }
}

impl DemoConfig {
    /// Range checks for `Config::validate`: (key, message) of the first problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let seconds = |key, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err((key, format!("must be a number of seconds >= 0, got {v}")))
            }
        };
        seconds("demo.interval_seconds", self.interval_seconds)?;
        seconds("demo.step_timeout_seconds", self.step_timeout_seconds)?;
        if self.step_timeout_seconds == 0.0 {
            return Err(("demo.step_timeout_seconds", "must be greater than 0".into()));
        }
        for (key, v) in [
            ("demo.replicas", self.replicas),
            ("demo.scaled_replicas", self.scaled_replicas),
        ] {
            if v < 1 {
                return Err((key, format!("must be at least 1, got {v}")));
            }
        }
        if self.node_failure_toleration_seconds < 0 {
            return Err((
                "demo.node_failure_toleration_seconds",
                format!(
                    "must be a number of seconds >= 0, got {}",
                    self.node_failure_toleration_seconds
                ),
            ));
        }
        for (key, v) in [
            ("demo.image", &self.image),
            ("demo.updated_image", &self.updated_image),
            ("demo.namespace", &self.namespace),
        ] {
            if v.trim().is_empty() {
                return Err((key, "must not be empty".into()));
            }
        }
        Ok(())
    }
}

/// Why a scenario step failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The API server refused a write or a read.
    #[error("{step}: {source}")]
    Api {
        step: &'static str,
        #[source]
        source: Box<ApiError>,
    },
    /// The API server's mailbox is gone (the daemon is stopping).
    #[error("{step}: the API server is gone")]
    Mailbox { step: &'static str },
    /// The cluster did not converge in time.
    #[error("{step}: not done after {timeout:?} ({last})")]
    Timeout {
        step: &'static str,
        timeout: Duration,
        last: String,
    },
}

impl DemoError {
    fn api(step: &'static str, source: ApiError) -> DemoError {
        DemoError::Api {
            step,
            source: Box::new(source),
        }
    }

    fn is_conflict(&self) -> bool {
        matches!(self, DemoError::Api { source, .. } if matches!(**source, ApiError::Conflict { .. }))
    }

    fn is_not_found(&self) -> bool {
        matches!(self, DemoError::Api { source, .. } if matches!(**source, ApiError::NotFound { .. }))
    }
}

/// What the loop has done so far.
#[derive(Clone, Debug, Default)]
pub struct DemoStats {
    /// Scenarios started.
    pub started: u64,
    /// Scenarios that ran every step.
    pub completed: u64,
    /// Scenarios cut short by an error (their Deployment is deleted anyway).
    pub failed: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Whether the loop has ended (`iterations` reached).
    pub finished: bool,
}

/// The running loop. Dropping it does not stop it; [`DemoHandle::stop`] does.
#[derive(Clone)]
pub struct DemoHandle {
    stats: Arc<Mutex<DemoStats>>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl DemoHandle {
    pub fn stats(&self) -> DemoStats {
        self.stats.lock().clone()
    }

    /// Stop the loop (a scenario in progress is abandoned where it is).
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

/// Start the loop on the current actix arbiter. `nodes` are the kubelets the node-failure
/// step may stop and start (`Cluster::nodes`).
pub fn start(api: Addr<ApiServer>, nodes: Vec<NodeHandle>, config: DemoConfig) -> DemoHandle {
    let stats = Arc::new(Mutex::new(DemoStats::default()));
    let s = stats.clone();
    let task = actix::spawn(async move {
        run(api, nodes, config, s).await;
    });
    DemoHandle {
        stats,
        task: Arc::new(Mutex::new(Some(task))),
    }
}

async fn run(
    api: Addr<ApiServer>,
    nodes: Vec<NodeHandle>,
    config: DemoConfig,
    stats: Arc<Mutex<DemoStats>>,
) {
    let interval = Duration::from_secs_f64(config.interval_seconds);
    // Names stay unique across restarts of the daemon on the same data directory.
    let epoch = jiff::Timestamp::now().as_second() % 100_000;
    let mut n = 0u64;
    loop {
        if config.iterations > 0 && n >= config.iterations {
            stats.lock().finished = true;
            tracing::info!(scenarios = n, "demo: done");
            return;
        }
        n += 1;
        let started = Instant::now();
        let name = format!("demo-{epoch}-{n}");
        stats.lock().started += 1;
        let scenario = Scenario {
            api: &api,
            nodes: &nodes,
            config: &config,
            name: &name,
        };
        match scenario.run().await {
            Ok(()) => {
                tracing::info!(deployment = %name, took = ?started.elapsed(), "demo: scenario done");
                stats.lock().completed += 1;
            }
            Err(e) => {
                tracing::warn!(deployment = %name, error = %e, "demo: scenario cut short");
                let mut s = stats.lock();
                s.failed += 1;
                s.last_error = Some(e.to_string());
            }
        }
        if let Some(rest) = interval.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}

/// One scenario on one Deployment.
struct Scenario<'a> {
    api: &'a Addr<ApiServer>,
    nodes: &'a [NodeHandle],
    config: &'a DemoConfig,
    name: &'a str,
}

impl Scenario<'_> {
    async fn run(&self) -> Result<(), DemoError> {
        let steps = self.steps().await;
        // Whatever happened, delete: a scenario never leaves objects behind.
        let deleted = self.delete().await;
        steps.and(deleted)
    }

    async fn steps(&self) -> Result<(), DemoError> {
        let c = self.config;
        self.create().await?;
        self.wait_rolled_out("create", c.replicas, &c.image).await?;
        self.scale(c.scaled_replicas).await?;
        self.wait_rolled_out("scale", c.scaled_replicas, &c.image)
            .await?;
        self.set_image(&c.updated_image).await?;
        self.wait_rolled_out("set image", c.scaled_replicas, &c.updated_image)
            .await?;
        if c.node_failure {
            self.node_failure().await?;
        }
        Ok(())
    }

    /// Step 4: fail a node and restore it. Stopping a kubelet is not an API write, so the
    /// step starts no trace itself: the node lifecycle controller's `node <name> NotReady`
    /// is the root of the failure's trace (taints → evictions → the ReplicaSet's
    /// replacement pods, scheduled, bound and started on another node).
    ///
    /// 1. pick the node running most of this Deployment's pods ([`node_to_fail`]); none
    ///    (e.g. a single node: the pods would have nowhere to go) skips the step;
    /// 2. stop its kubelet; wait until the node is not Ready and the Deployment is
    ///    available again with no live pod on it (the evicted ones stay Terminating: their
    ///    kubelet is gone);
    /// 3. start the kubelet; wait until the node is Ready and the kubelet has finished the
    ///    evicted pods, so the Deployment is exactly rolled out again.
    ///
    /// The kubelet is started again whatever happens, also when the loop is stopped midway.
    async fn node_failure(&self) -> Result<(), DemoError> {
        let c = self.config;
        let pods = self.list(Kind::Pod).await?;
        let placed: Vec<&str> = pods
            .iter()
            .filter_map(|o| match o.as_ref() {
                Object::Pod(p) if p.metadata.deletion_timestamp.is_none() => {
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref())
                }
                _ => None,
            })
            .collect();
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        let Some(node) = node_to_fail(&names, &placed) else {
            tracing::info!(deployment = %self.name, nodes = ?names, "demo: no node to fail, step skipped");
            return Ok(());
        };
        let Some(handle) = self.nodes.iter().find(|n| n.name == node) else {
            return Ok(());
        };
        tracing::info!(deployment = %self.name, node = %node, "demo: stopping the node's kubelet");
        let stopped = StoppedKubelet::stop(handle).await?;
        let failed = self
            .wait_until("node failure", || async {
                let ready = self.node_ready(node).await?;
                let (live_on_node, available) = self.live_on(node).await?;
                let done = ready != "True" && live_on_node == 0 && available == c.scaled_replicas;
                let last = format!(
                    "node {node} Ready={ready}, {live_on_node} live pods on it, \
                     {available}/{} available",
                    c.scaled_replicas
                );
                Ok((done, last))
            })
            .await;
        tracing::info!(deployment = %self.name, node = %node, "demo: starting the node's kubelet");
        let started = stopped.start().await;
        failed?;
        started?;
        self.wait_until("node restore", || async {
            let ready = self.node_ready(node).await?;
            Ok((ready == "True", format!("node {node} Ready={ready}")))
        })
        .await?;
        self.wait_rolled_out("node restore", c.scaled_replicas, &c.updated_image)
            .await
    }

    /// The status of the node's Ready condition (`True`, `False`, `Unknown`; `missing`).
    async fn node_ready(&self, node: &str) -> Result<String, DemoError> {
        let reply = self
            .api
            .send(Get {
                kind: Kind::Node,
                namespace: None,
                name: node.to_owned(),
            })
            .await;
        let object = flatten("node failure", reply)?;
        let ready = match object.as_ref() {
            Object::Node(n) => n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                .map(|c| c.status.clone()),
            _ => None,
        };
        Ok(ready.unwrap_or_else(|| "missing".into()))
    }

    /// (pods of this Deployment on `node` not being deleted, the Deployment's available
    /// replicas).
    async fn live_on(&self, node: &str) -> Result<(usize, i32), DemoError> {
        let live = self
            .list(Kind::Pod)
            .await?
            .iter()
            .filter(|o| match o.as_ref() {
                Object::Pod(p) => {
                    p.metadata.deletion_timestamp.is_none()
                        && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
                }
                _ => false,
            })
            .count();
        let available = self
            .deployment("node failure")
            .await?
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        Ok((live, available))
    }

    /// `demo create deployments/<name>`.
    async fn create(&self) -> Result<(), DemoError> {
        let object = Object::Deployment(deployment(self.config, self.name).into());
        let reply = self
            .api
            .send(Create {
                object,
                options: self.span("create"),
                trace: Trace::root(),
            })
            .await;
        flatten("create", reply).map(drop)
    }

    /// `demo scale deployments/<name>`: the Deployment with `spec.replicas` changed.
    async fn scale(&self, replicas: i32) -> Result<(), DemoError> {
        self.update("scale", |d| {
            if let Some(spec) = d.spec.as_mut() {
                spec.replicas = Some(replicas);
            }
        })
        .await
    }

    /// `demo set image deployments/<name>`: every container's image changed.
    async fn set_image(&self, image: &str) -> Result<(), DemoError> {
        self.update("set image", |d| {
            let containers = d
                .spec
                .as_mut()
                .and_then(|s| s.template.spec.as_mut())
                .map(|s| s.containers.iter_mut());
            for c in containers.into_iter().flatten() {
                c.image = Some(image.to_owned());
            }
        })
        .await
    }

    /// Read, change, write — retried on Conflict (the controller writes status meanwhile).
    async fn update(
        &self,
        step: &'static str,
        change: impl Fn(&mut Deployment),
    ) -> Result<(), DemoError> {
        loop {
            let mut d = self.deployment(step).await?;
            change(&mut d);
            let reply = self
                .api
                .send(Update {
                    object: Object::Deployment(d.into()),
                    subresource: Default::default(),
                    options: self.span(step),
                    trace: Trace::root(),
                })
                .await;
            match flatten(step, reply) {
                Err(e) if e.is_conflict() => tokio::time::sleep(POLL).await,
                other => return other.map(drop),
            }
        }
    }

    /// `demo delete deployments/<name>` (background propagation), then wait until its
    /// ReplicaSets and pods are gone.
    async fn delete(&self) -> Result<(), DemoError> {
        // No retry on Conflict: a delete without preconditions applies to the API server's
        // latest state, even while the controller's status write is being committed.
        let reply = self
            .api
            .send(Delete {
                kind: Kind::Deployment,
                namespace: Some(self.config.namespace.clone()),
                name: self.name.to_owned(),
                options: DeleteOptions {
                    propagation_policy: Some("Background".into()),
                    ..Default::default()
                },
                write: self.span("delete"),
                trace: Trace::root(),
            })
            .await;
        match flatten("delete", reply) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.wait_until("delete", || async {
            let mut left = self.names(Kind::ReplicaSet).await?;
            left.extend(self.names(Kind::Pod).await?);
            Ok((left.is_empty(), format!("left: {}", left.join(", "))))
        })
        .await
    }

    /// Wait until the Deployment has `replicas` replicas, all updated to `image` and
    /// available, and no other pods of it exist.
    async fn wait_rolled_out(
        &self,
        step: &'static str,
        replicas: i32,
        image: &str,
    ) -> Result<(), DemoError> {
        self.wait_until(step, || async {
            let d = self.deployment(step).await?;
            let pods = self.count(Kind::Pod).await?;
            Ok(rolled_out(&d, pods, replicas, image))
        })
        .await
    }

    /// Poll `check` until it says done, or time out.
    async fn wait_until<F, Fut>(&self, step: &'static str, check: F) -> Result<(), DemoError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(bool, String), DemoError>>,
    {
        let timeout = Duration::from_secs_f64(self.config.step_timeout_seconds);
        let deadline = Instant::now() + timeout;
        loop {
            let (done, last) = check().await?;
            if done {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DemoError::Timeout {
                    step,
                    timeout,
                    last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn deployment(&self, step: &'static str) -> Result<Deployment, DemoError> {
        let reply = self
            .api
            .send(Get {
                kind: Kind::Deployment,
                namespace: Some(self.config.namespace.clone()),
                name: self.name.to_owned(),
            })
            .await;
        match flatten(step, reply)?.as_ref() {
            Object::Deployment(d) => Ok((**d).clone()),
            _ => Err(DemoError::api(
                step,
                ApiError::Internal("a Deployment key holds another kind".into()),
            )),
        }
    }

    /// How many objects of `kind` this scenario's label selects.
    async fn count(&self, kind: Kind) -> Result<usize, DemoError> {
        self.list(kind).await.map(|l| l.len())
    }

    /// `kind/name` of the objects of `kind` this scenario's label selects.
    async fn names(&self, kind: Kind) -> Result<Vec<String>, DemoError> {
        let items = self.list(kind).await?;
        Ok(items
            .iter()
            .map(|o| format!("{}/{}", kind.plural(), o.name()))
            .collect())
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Arc<Object>>, DemoError> {
        let selector = LabelSelector::parse(&format!("app={}", self.name))
            .map_err(|e| DemoError::api("list", ApiError::BadRequest(e.to_string())))?;
        let reply = self
            .api
            .send(List {
                namespace: Some(self.config.namespace.clone()),
                label_selector: selector,
                ..List::all(kind)
            })
            .await;
        flatten("list", reply).map(|l| l.items)
    }

    /// The root span's name, as the HTTP layer names kubectl's: `demo scale deployments/x`.
    fn span(&self, verb: &str) -> WriteOptions {
        WriteOptions {
            dry_run: false,
            span_name: Some(format!("{CLIENT} {verb} deployments/{}", self.name)),
            ..Default::default()
        }
    }
}

/// Whether the Deployment is rolled out to `replicas` of `image` with no other pod left
/// (`pods`: how many of its pods exist, terminating ones included), and what it looks like.
/// As `kubectl rollout status` (DeploymentStatusViewer in kubectl's polymorphichelpers), the
/// status only counts once the controller has observed the latest spec: right after a
/// `set image` the old status still says "5 updated, 5 available".
fn rolled_out(d: &Deployment, pods: usize, replicas: i32, image: &str) -> (bool, String) {
    let status = d.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let progress = (
        status.replicas.unwrap_or(0),
        status.updated_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
    );
    let current_image = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first().and_then(|c| c.image.as_deref()));
    let done = observed
        && progress == (replicas, replicas, replicas)
        && pods == replicas as usize
        && current_image == Some(image);
    let last = format!(
        "replicas/updated/available {progress:?}{}, {pods} pods, want {replicas} of {image}",
        if observed { "" } else { " (not yet observed)" }
    );
    (done, last)
}

/// The node the node-failure step stops: the one running most of `placed` (the node names
/// of the Deployment's live pods; ties go to the first name in `nodes`), provided another
/// node is left for the replacements. `None`: no such node.
fn node_to_fail<'a>(nodes: &[&'a str], placed: &[&str]) -> Option<&'a str> {
    if nodes.len() < 2 {
        return None;
    }
    let count = |n: &str| placed.iter().filter(|p| **p == n).count();
    let mut best: Option<(&'a str, usize)> = None;
    for n in nodes {
        let c = count(n);
        if c > 0 && best.is_none_or(|(_, b)| c > b) {
            best = Some((n, c));
        }
    }
    best.map(|(n, _)| n)
}

/// A stopped kubelet that is started again when this is dropped (the demo loop stopped or
/// aborted midway must not leave a node down), or by [`StoppedKubelet::start`].
struct StoppedKubelet {
    kubelet: Option<Addr<Kubelet>>,
}

impl StoppedKubelet {
    async fn stop(node: &NodeHandle) -> Result<StoppedKubelet, DemoError> {
        node.kubelet
            .send(StopKubelet)
            .await
            .map_err(|_| DemoError::Mailbox {
                step: "node failure",
            })?;
        Ok(StoppedKubelet {
            kubelet: Some(node.kubelet.clone()),
        })
    }

    async fn start(mut self) -> Result<(), DemoError> {
        match self.kubelet.take() {
            Some(k) => k
                .send(StartKubelet)
                .await
                .map(drop)
                .map_err(|_| DemoError::Mailbox {
                    step: "node restore",
                }),
            None => Ok(()),
        }
    }
}

impl Drop for StoppedKubelet {
    fn drop(&mut self) {
        if let Some(k) = self.kubelet.take() {
            k.do_send(StartKubelet);
        }
    }
}

fn flatten<T>(
    step: &'static str,
    reply: Result<Result<T, ApiError>, actix::MailboxError>,
) -> Result<T, DemoError> {
    match reply {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(DemoError::api(step, source)),
        Err(_) => Err(DemoError::Mailbox { step }),
    }
}

/// The demo pods tolerate a failed node (`unreachable` / `not-ready`, NoExecute) for
/// `node_failure_toleration_seconds`, so the DefaultTolerationSeconds admission does not add
/// its 300 s ones and the node-failure step's evictions come soon (the same thing a workload
/// does in a real cluster to move off a dead node sooner).
fn node_failure_tolerations(c: &DemoConfig) -> Vec<Toleration> {
    [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    .into_iter()
    .map(|key| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: Some(c.node_failure_toleration_seconds),
        ..Default::default()
    })
    .collect()
}

/// The demo Deployment: `replicas` of one `nginx` container.
fn deployment(c: &DemoConfig, name: &str) -> Deployment {
    let labels = BTreeMap::from([
        ("app".to_owned(), name.to_owned()),
        (DEMO_LABEL.to_owned(), "true".to_owned()),
    ]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(c.namespace.clone()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(c.replicas),
            selector: ApiLabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_owned(), name.to_owned())])),
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
                        image: Some(c.image.clone()),
                        ..Default::default()
                    }],
                    tolerations: Some(node_failure_tolerations(c)),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid_and_off() {
        let c = DemoConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn invalid_values_name_their_key() {
        type Break = fn(&mut DemoConfig);
        let cases: [(&str, Break); 6] = [
            ("demo.interval_seconds", |c| c.interval_seconds = -1.0),
            ("demo.step_timeout_seconds", |c| {
                c.step_timeout_seconds = 0.0
            }),
            ("demo.replicas", |c| c.replicas = 0),
            ("demo.scaled_replicas", |c| c.scaled_replicas = -2),
            ("demo.updated_image", |c| c.updated_image = " ".into()),
            ("demo.node_failure_toleration_seconds", |c| {
                c.node_failure_toleration_seconds = -1
            }),
        ];
        for (key, break_it) in cases {
            let mut c = DemoConfig::default();
            break_it(&mut c);
            assert_eq!(c.validate().map_err(|e| e.0), Err(key));
        }
    }

    #[test]
    fn a_status_the_controller_wrote_for_an_older_spec_is_not_rolled_out() {
        use k8s_openapi::api::apps::v1::DeploymentStatus;
        let mut d = deployment(&DemoConfig::default(), "demo-1-1");
        d.metadata.generation = Some(3);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(3),
            updated_replicas: Some(3),
            available_replicas: Some(3),
            ..Default::default()
        });
        assert!(!rolled_out(&d, 3, 3, "nginx:1.27").0);
        d.status.as_mut().unwrap().observed_generation = Some(3);
        assert!(rolled_out(&d, 3, 3, "nginx:1.27").0);
        // An old pod still terminating: not yet.
        assert!(!rolled_out(&d, 4, 3, "nginx:1.27").0);
    }

    #[test]
    fn the_node_running_most_pods_fails_if_another_is_left() {
        let nodes = ["node-1", "node-2", "node-3"];
        let placed = ["node-2", "node-1", "node-2"];
        assert_eq!(node_to_fail(&nodes, &placed), Some("node-2"));
        // A tie goes to the first node.
        assert_eq!(node_to_fail(&nodes, &["node-3", "node-2"]), Some("node-2"));
        // No pods placed: nothing to show.
        assert_eq!(node_to_fail(&nodes, &[]), None);
        // A single node: the pods would have nowhere to go.
        assert_eq!(node_to_fail(&["node-1"], &["node-1"]), None);
    }

    #[test]
    fn the_demo_pods_tolerate_a_failed_node_for_the_configured_seconds() {
        let c = DemoConfig {
            node_failure_toleration_seconds: 7,
            ..DemoConfig::default()
        };
        let d = deployment(&c, "demo-1-1");
        let tolerations = d.spec.unwrap().template.spec.unwrap().tolerations.unwrap();
        let keys: Vec<(&str, i64)> = tolerations
            .iter()
            .map(|t| {
                (
                    t.key.as_deref().unwrap_or(""),
                    t.toleration_seconds.unwrap_or(-1),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("node.kubernetes.io/not-ready", 7),
                ("node.kubernetes.io/unreachable", 7)
            ]
        );
    }

    #[test]
    fn the_demo_deployment_selects_its_own_pods() {
        let d = deployment(&DemoConfig::default(), "demo-1-1");
        let spec = d.spec.unwrap();
        let template_labels = spec.template.metadata.unwrap().labels.unwrap();
        for (k, v) in spec.selector.match_labels.unwrap() {
            assert_eq!(template_labels.get(&k), Some(&v));
        }
        assert_eq!(spec.replicas, Some(3));
    }
}
