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
//! 4. *(hook)* fail and restore a node — see [`node_fault_step`];
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
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
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

/// Start the loop on the current actix arbiter.
pub fn start(api: Addr<ApiServer>, config: DemoConfig) -> DemoHandle {
    let stats = Arc::new(Mutex::new(DemoStats::default()));
    let s = stats.clone();
    let task = actix::spawn(async move {
        run(api, config, s).await;
    });
    DemoHandle {
        stats,
        task: Arc::new(Mutex::new(Some(task))),
    }
}

async fn run(api: Addr<ApiServer>, config: DemoConfig, stats: Arc<Mutex<DemoStats>>) {
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
        node_fault_step(self.api, self.name).await
    }

    /// `demo create deployments/<name>`.
    async fn create(&self) -> Result<(), DemoError> {
        let object = Object::Deployment(deployment(self.config, self.name));
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
                    object: Object::Deployment(d),
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
            let status = d.status.unwrap_or_default();
            let pods = self.count(Kind::Pod).await?;
            let progress = (
                status.replicas.unwrap_or(0),
                status.updated_replicas.unwrap_or(0),
                status.available_replicas.unwrap_or(0),
            );
            let current_image = d
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|s| s.containers.first().and_then(|c| c.image.clone()));
            let done = progress == (replicas, replicas, replicas)
                && pods == replicas as usize
                && current_image.as_deref() == Some(image);
            let last = format!(
                "replicas/updated/available {progress:?}, {pods} pods, want {replicas} of {image}"
            );
            Ok((done, last))
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
            Object::Deployment(d) => Ok(d.clone()),
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

/// Step 4, a hook: fail a node and restore it (lease expiry → NotReady → eviction →
/// replacement pods running), each as a trace of its own.
///
/// TODO(issue 7, node lifecycle): call the node stop/start that `kubeactor node stop|start`
/// will use (branch `nodes`), then wait until the Deployment is available again. Until then
/// this step does nothing.
async fn node_fault_step(_api: &Addr<ApiServer>, _deployment: &str) -> Result<(), DemoError> {
    Ok(())
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
        let cases: [(&str, Break); 5] = [
            ("demo.interval_seconds", |c| c.interval_seconds = -1.0),
            ("demo.step_timeout_seconds", |c| {
                c.step_timeout_seconds = 0.0
            }),
            ("demo.replicas", |c| c.replicas = 0),
            ("demo.scaled_replicas", |c| c.scaled_replicas = -2),
            ("demo.updated_image", |c| c.updated_image = " ".into()),
        ];
        for (key, break_it) in cases {
            let mut c = DemoConfig::default();
            break_it(&mut c);
            assert_eq!(c.validate().map_err(|e| e.0), Err(key));
        }
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
