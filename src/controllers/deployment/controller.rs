//! The `DeploymentController` actor: the controller shape around [`sync_deployment`].
//!
//! Informer events (Deployments, ReplicaSets, Pods from a [`SharedInformerFactory`]) only
//! enqueue deployment keys. Up to `workers` keys are synced at once (never the same key
//! twice: the [`WorkQueue`] guarantees it); a sync reads the caches, computes the actions,
//! performs them in order through the `ApiServer`, and on the first error requeues the key
//! with backoff (dropped after [`MAX_RETRIES`]). Each sync is a `kube-controller-manager`
//! span `sync deployment <ns>/<name>`, continuing the trace of the object whose event
//! triggered it (see [`sync_span`](crate::controllers::sync_span)), and every write it makes
//! — and every Event it records (`deployment-controller`) — carries that span's context.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use opentelemetry::KeyValue;

use super::{on_create_conflict, sync_deployment, Action, EventType, PodMap, Requeue, MAX_RETRIES};
use crate::api::selectors::LabelSelector;
use crate::api::{Kind, Object};
use crate::apiserver::{
    ApiError, ApiServer, Create, Delete, Get, Subresource, Trace, Update, WriteOptions,
};
use crate::controllers::ref_manager::{self, Claim};
use crate::controllers::sync_span::{context_of, SyncSpan, SyncTracer, Triggers};
use crate::controllers::workqueue::WorkQueue;
use crate::events::{EventRecorder, NORMAL, WARNING};
use crate::informer::{controller_uid, key_of, InformerEvent, SharedInformerFactory, Store};

/// The component name on the Events this controller records.
pub const COMPONENT: &str = "deployment-controller";

/// The deployment controller actor. See the module documentation.
pub struct DeploymentController {
    api: Addr<ApiServer>,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: WorkQueue<String>,
    /// Concurrent syncs (kube-controller-manager's `--concurrent-deployment-syncs`, 5).
    workers: usize,
    in_flight: usize,
    /// The pending wake-up for the earliest delayed key.
    timer: Option<SpawnHandle>,
    tracer: SyncTracer,
    recorder: EventRecorder,
    /// The trace context of the event that last enqueued each key.
    triggers: Triggers,
}

/// The outcome of one sync, sent back to the actor.
#[derive(Message)]
#[rtype(result = "()")]
struct SyncDone {
    key: String,
    result: Result<Option<Requeue>, ApiError>,
}

impl DeploymentController {
    /// Create the actor, register its handlers on the factory's informers. Start the
    /// factory afterwards.
    pub fn start(
        api: Addr<ApiServer>,
        factory: &SharedInformerFactory,
        tracer: SyncTracer,
        workers: usize,
    ) -> Addr<DeploymentController> {
        let d = factory.informer::<Deployment>();
        let rs = factory.informer::<ReplicaSet>();
        let pods = factory.informer::<Pod>();
        DeploymentController::create(|ctx| {
            d.add_recipient(ctx.address().recipient());
            rs.add_recipient(ctx.address().recipient());
            pods.add_recipient(ctx.address().recipient());
            DeploymentController {
                recorder: EventRecorder::new(api.clone(), COMPONENT, None),
                triggers: Triggers::default(),
                api,
                deployments: d.store(),
                replica_sets: rs.store(),
                pods: pods.store(),
                queue: WorkQueue::new("deployment"),
                workers: workers.max(1),
                in_flight: 0,
                timer: None,
                tracer,
            }
        })
    }

    fn synced(&self) -> bool {
        self.deployments.has_synced() && self.replica_sets.has_synced() && self.pods.has_synced()
    }

    /// The deployment key controlling a ReplicaSet (`resolveControllerRef`), or — for an
    /// orphan — every deployment in its namespace whose selector matches it.
    fn deployments_for_rs(&self, rs: &ReplicaSet) -> Vec<String> {
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        if let Some(r) = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
        {
            if r.kind != "Deployment" {
                return vec![];
            }
            let key = format!("{ns}/{}", r.name);
            return match self.deployments.get(&key) {
                Some(d) if d.metadata.uid.as_deref() == Some(r.uid.as_str()) => vec![key],
                _ => vec![],
            };
        }
        let empty = Default::default();
        let labels = rs.metadata.labels.as_ref().unwrap_or(&empty);
        self.deployments
            .list_namespace(&ns)
            .into_iter()
            .filter(|d| {
                d.spec
                    .as_ref()
                    .and_then(|s| crate::api::selectors::LabelSelector::from_api(&s.selector).ok())
                    .is_some_and(|sel| sel.matches(labels))
            })
            .map(|d| key_of(&d.metadata))
            .collect()
    }

    /// Enqueue `key` because of an event on the object with `because`.
    fn enqueue(&mut self, key: String, because: &ObjectMeta) {
        self.triggers.note(key.clone(), because);
        self.queue.add(key);
    }

    /// Hand ready keys to free workers; arm a timer for the earliest delayed key.
    fn process_next(&mut self, ctx: &mut Context<Self>) {
        if !self.synced() {
            return;
        }
        while self.in_flight < self.workers {
            let Some(key) = self.queue.get() else { break };
            self.in_flight += 1;
            let fut = self.sync_key(key.clone());
            ctx.spawn(
                fut.into_actor(self)
                    .map(move |result, act, ctx| act.handle_done(SyncDone { key, result }, ctx)),
            );
        }
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        if let Some(d) = self.queue.next_ready_in() {
            let d = d.max(Duration::from_millis(1));
            self.timer = Some(ctx.run_later(d, |act, ctx| {
                act.timer = None;
                act.process_next(ctx);
            }));
        }
    }

    fn handle_done(&mut self, done: SyncDone, ctx: &mut Context<Self>) {
        self.in_flight -= 1;
        match done.result {
            Ok(requeue) => {
                self.queue.forget(&done.key);
                match requeue {
                    Some(Requeue::RateLimited) => {
                        self.queue.add_rate_limited(done.key.clone());
                    }
                    Some(Requeue::After(d)) => self.queue.add_after(done.key.clone(), d),
                    None => {}
                }
            }
            Err(e) => {
                self.queue.requeue(done.key.clone(), MAX_RETRIES, &e);
            }
        }
        self.queue.done(&done.key);
        self.process_next(ctx);
    }

    /// `syncDeployment` for one key: read the caches, decide, write.
    fn sync_key(
        &mut self,
        key: String,
    ) -> impl std::future::Future<Output = Result<Option<Requeue>, ApiError>> + 'static {
        let trigger = self.triggers.take(&key);
        let recorder = self.recorder.clone();
        let api = self.api.clone();
        let deployment = self.deployments.get(&key);
        let mut claims = Claims::default();
        let mut pods = PodMap::new();
        if let Some(d) = &deployment {
            claims = self.claim_replica_sets(d);
            for rs in claims.owned.iter().chain(&claims.adopt) {
                if let Some(rs_uid) = rs.metadata.uid.as_deref() {
                    pods.insert(rs_uid.to_string(), self.pods.controlled_by(rs_uid));
                }
            }
        }
        let tracer = self.tracer.clone();
        async move {
            let Some(d) = deployment else {
                tracing::debug!(%key, "deployment has been deleted");
                return Ok(None);
            };
            let parent = trigger.or_else(|| context_of(&d.metadata));
            let span = SyncSpan::start(&tracer, format!("sync deployment {key}"), parent);
            span.attribute(KeyValue::new("k8s.deployment", key.clone()));
            let trace = span.trace();
            let rss = match claim(&api, &d, claims, &trace).await {
                Ok(rss) => rss,
                Err(e) => {
                    span.fail(&e);
                    return Err(e);
                }
            };
            let now = jiff::Timestamp::now();
            let result = match sync_deployment(&d, &rss, &pods, now) {
                Ok(r) => r,
                Err(e) => {
                    // A spec the API server should have refused: nothing to retry.
                    tracing::warn!(%key, error = %e, "cannot sync deployment");
                    span.fail(&e);
                    return Ok(None);
                }
            };
            if !result.events.is_empty() {
                let obj = Object::Deployment(d.clone());
                for ev in &result.events {
                    let type_ = match ev.type_ {
                        EventType::Normal => NORMAL,
                        EventType::Warning => WARNING,
                    };
                    span.event(
                        ev.reason.clone(),
                        vec![KeyValue::new("message", ev.message.clone())],
                    );
                    recorder.record(&obj, type_, &ev.reason, ev.message.clone(), trace.clone());
                }
            }
            let out = perform(&api, &d, result.actions, &trace).await;
            if let Err(e) = &out {
                span.fail(e);
            }
            out.map(|_| result.requeue)
        }
    }
}

/// The ReplicaSets a deployment owns, and those it must adopt or release
/// (`getReplicaSetsForDeployment`).
#[derive(Default)]
struct Claims {
    owned: Vec<Arc<ReplicaSet>>,
    adopt: Vec<Arc<ReplicaSet>>,
    release: Vec<Arc<ReplicaSet>>,
}

impl DeploymentController {
    /// `ClaimReplicaSets` over the ReplicaSets of the deployment's namespace
    /// (`getReplicaSetsForDeployment`), visiting only those the claim can decide about: the
    /// deployment's own and the orphans ([`Store::claimable`]; the others have another
    /// controller and are ignored). Listing the whole namespace on every sync was a fifth
    /// of the controller manager's thread with 1,000 Deployments in one namespace.
    fn claim_replica_sets(&self, d: &Deployment) -> Claims {
        let uid = d.metadata.uid.as_deref().unwrap_or_default();
        let selector = d
            .spec
            .as_ref()
            .and_then(|s| LabelSelector::from_api(&s.selector).ok());
        let Some(selector) = selector.filter(|s| !s.is_empty()) else {
            // Validation refuses such a selector; keep what the deployment already controls.
            return Claims {
                owned: self.replica_sets.controlled_by(uid),
                ..Default::default()
            };
        };
        let ns = d.metadata.namespace.as_deref().unwrap_or("");
        let empty = Default::default();
        let mut claims = Claims::default();
        let (controlled, orphans) = self.replica_sets.claimable(ns, uid);
        for rs in controlled.into_iter().chain(orphans) {
            let labels = rs.metadata.labels.as_ref().unwrap_or(&empty);
            match ref_manager::claim(&d.metadata, &rs.metadata, selector.matches(labels)) {
                Claim::Owned => claims.owned.push(rs),
                Claim::Adopt => claims.adopt.push(rs),
                Claim::Release => claims.release.push(rs),
                Claim::Ignore => {}
            }
        }
        claims
    }
}

/// Perform the adoptions and releases; returns the ReplicaSets the deployment owns now.
/// Adoption first rechecks with a live read that the deployment still exists and is not
/// being deleted (`RecheckDeletionTimestamp`).
async fn claim(
    api: &Addr<ApiServer>,
    d: &Deployment,
    claims: Claims,
    trace: &Trace,
) -> Result<Vec<Arc<ReplicaSet>>, ApiError> {
    let Claims {
        mut owned,
        adopt,
        release,
    } = claims;
    if !adopt.is_empty() {
        let fresh = api
            .send(Get {
                kind: Kind::Deployment,
                namespace: d.metadata.namespace.clone(),
                name: d.metadata.name.clone().unwrap_or_default(),
            })
            .await
            .map_err(ApiError::unreachable)??;
        if fresh.meta().uid != d.metadata.uid || fresh.meta().deletion_timestamp.is_some() {
            return Err(ApiError::Internal(format!(
                "deployment {} is gone or being deleted: cannot adopt",
                key_of(&d.metadata)
            )));
        }
        let reference = ref_manager::new_controller_ref("apps/v1", "Deployment", &d.metadata);
        for rs in adopt {
            let mut rs = (*rs).clone();
            rs.metadata = ref_manager::adopted(&rs.metadata, reference.clone());
            match update(api, rs.into(), Subresource::Main, trace).await {
                Ok(stored) => {
                    if let Object::ReplicaSet(rs) = &*stored {
                        owned.push(rs.clone());
                    }
                }
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let uid = d.metadata.uid.as_deref().unwrap_or_default();
    for rs in release {
        if let Some(meta) = ref_manager::without_owners(&rs.metadata, &[uid]) {
            let mut rs = (*rs).clone();
            rs.metadata = meta;
            match update(api, rs.into(), Subresource::Main, trace).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(owned)
}

/// Perform the actions in order; stop at the first error.
async fn perform(
    api: &Addr<ApiServer>,
    d: &Deployment,
    actions: Vec<Action>,
    trace: &Trace,
) -> Result<(), ApiError> {
    for action in actions {
        match action {
            Action::CreateReplicaSet(rs) => {
                let (ns, name) = (rs.metadata.namespace.clone(), rs.metadata.name.clone());
                let res = api
                    .send(Create {
                        object: rs.into(),
                        options: WriteOptions::default(),
                        trace: trace.clone(),
                    })
                    .await
                    .map_err(ApiError::unreachable)?;
                if let Err(e @ ApiError::AlreadyExists { .. }) = res {
                    let existing = api
                        .send(Get {
                            kind: Kind::ReplicaSet,
                            namespace: ns,
                            name: name.unwrap_or_default(),
                        })
                        .await
                        .map_err(ApiError::unreachable)??;
                    if let Object::ReplicaSet(existing) = &*existing {
                        if let Some(bumped) = on_create_conflict(d, existing) {
                            update(api, bumped.into(), Subresource::Status, trace).await?;
                        }
                    }
                    return Err(e);
                }
                res?;
            }
            Action::UpdateReplicaSet(rs) => {
                update(api, rs.into(), Subresource::Main, trace).await?;
            }
            Action::DeleteReplicaSet { namespace, name } => {
                let res = api
                    .send(Delete {
                        kind: Kind::ReplicaSet,
                        namespace: Some(namespace),
                        name,
                        options: DeleteOptions::default(),
                        write: WriteOptions::default(),
                        trace: trace.clone(),
                    })
                    .await
                    .map_err(ApiError::unreachable)?;
                match res {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Action::UpdateDeploymentStatus(d) => {
                update(api, d.into(), Subresource::Status, trace).await?;
            }
        }
    }
    Ok(())
}

async fn update(
    api: &Addr<ApiServer>,
    object: Object,
    subresource: Subresource,
    trace: &Trace,
) -> Result<Arc<Object>, ApiError> {
    api.send(Update {
        object,
        subresource,
        options: WriteOptions::default(),
        trace: trace.clone(),
    })
    .await
    .map_err(ApiError::unreachable)?
}

impl Actor for DeploymentController {
    type Context = Context<Self>;

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.queue.shut_down();
        Running::Stop
    }
}

impl Handler<InformerEvent<Deployment>> for DeploymentController {
    type Result = ();
    /// addDeployment / updateDeployment / deleteDeployment: enqueue its key.
    fn handle(&mut self, ev: InformerEvent<Deployment>, ctx: &mut Self::Context) {
        match ev {
            InformerEvent::Added(d) | InformerEvent::Updated { new: d, .. } => {
                self.enqueue(key_of(&d.metadata), &d.metadata)
            }
            InformerEvent::Deleted(d) => {
                let key = key_of(&d.metadata);
                self.triggers.forget(&key);
                self.queue.add(key);
            }
            InformerEvent::Synced => {}
        }
        self.process_next(ctx);
    }
}

impl Handler<InformerEvent<ReplicaSet>> for DeploymentController {
    type Result = ();
    /// addReplicaSet / updateReplicaSet / deleteReplicaSet: enqueue its deployment (or,
    /// for an orphan, every deployment that could adopt it). An update that moves the
    /// controller ref enqueues the old owner too.
    fn handle(&mut self, ev: InformerEvent<ReplicaSet>, ctx: &mut Self::Context) {
        let mut keys = Vec::new();
        let because = match ev {
            InformerEvent::Added(rs) | InformerEvent::Deleted(rs) => {
                keys.extend(self.deployments_for_rs(&rs));
                rs
            }
            InformerEvent::Updated { old, new } => {
                if controller_uid(&old.metadata) != controller_uid(&new.metadata) {
                    keys.extend(self.deployments_for_rs(&old));
                }
                keys.extend(self.deployments_for_rs(&new));
                new
            }
            InformerEvent::Synced => {
                self.process_next(ctx);
                return;
            }
        };
        for k in keys {
            self.enqueue(k, &because.metadata);
        }
        self.process_next(ctx);
    }
}

impl Handler<InformerEvent<Pod>> for DeploymentController {
    type Result = ();
    /// deletePod: a Recreate rollout waits for old pods to be gone, so a pod deletion
    /// enqueues its ReplicaSet's deployment.
    fn handle(&mut self, ev: InformerEvent<Pod>, ctx: &mut Self::Context) {
        match ev {
            InformerEvent::Deleted(pod) => {
                let Some(rs_name) = pod
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .find(|r| r.controller == Some(true) && r.kind == "ReplicaSet")
                    .map(|r| r.name.clone())
                else {
                    return;
                };
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                if let Some(rs) = self.replica_sets.get(&format!("{ns}/{rs_name}")) {
                    for k in self.deployments_for_rs(&rs) {
                        self.enqueue(k, &pod.metadata);
                    }
                }
                self.process_next(ctx);
            }
            InformerEvent::Synced => self.process_next(ctx),
            _ => {}
        }
    }
}
