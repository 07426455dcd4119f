//! The `ReplicaSetController` actor. Mirrors `ReplicaSetController` in
//! `pkg/controller/replicaset/replica_set.go`.
//!
//! Informer events (ReplicaSets and Pods) only enqueue ReplicaSet keys, and observe
//! expectations (a pod ADDED lowers its owner's expected creations, a pod deleted or being
//! deleted its expected deletions). A worker runs `syncReplicaSet` for a key: read the
//! caches, claim pods (adopt orphans that match, release ours that no longer match),
//! then — only when the expectations are satisfied — create or delete pods, and write the
//! status. Each sync is a `sync replicaset <ns>/<name>` span (see
//! [`sync_span`](crate::controllers::sync_span)); pod writes and events carry its context.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use opentelemetry::KeyValue;
use parking_lot::Mutex;

use super::expectations::Expectations;
use super::sync::{
    calculate_status, filter_active_pods, is_pod_ready, manage_replicas, min_ready_seconds,
    pod_from_template, selector, slow_start_batches, status_update, Manage,
    SLOW_START_INITIAL_BATCH_SIZE,
};
use super::{reason, BURST_REPLICAS, MAX_RETRIES};
use crate::api::{Kind, Object};
use crate::apiserver::{
    ApiError, ApiServer, Create, Delete, Get, Subresource, Trace, Update, WriteOptions,
};
use crate::controllers::ref_manager::{self, adopted, claim, new_controller_ref, Claim};
use crate::controllers::sync_span::{context_of, SyncSpan, SyncTracer, Triggers};
use crate::controllers::workqueue::WorkQueue;
use crate::events::{EventRecorder, NORMAL, WARNING};
use crate::informer::{key_of, InformerEvent, SharedInformerFactory, Store};

/// Tunables of the ReplicaSet controller.
#[derive(Clone, Debug)]
pub struct ReplicaSetOptions {
    /// Concurrent syncs (`--concurrent-replicaset-syncs`, 5).
    pub workers: usize,
    /// Most creates or deletes in one sync (`BurstReplicas`, 500).
    pub burst_replicas: usize,
}

impl Default for ReplicaSetOptions {
    fn default() -> Self {
        ReplicaSetOptions {
            workers: 5,
            burst_replicas: BURST_REPLICAS,
        }
    }
}

/// The ReplicaSet controller actor. See the module documentation.
pub struct ReplicaSetController {
    api: Addr<ApiServer>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: WorkQueue<String>,
    /// Shared with the running syncs, which set expectations before they write.
    expectations: Arc<Mutex<Expectations>>,
    triggers: Triggers,
    options: ReplicaSetOptions,
    in_flight: usize,
    timer: Option<SpawnHandle>,
    tracer: SyncTracer,
    recorder: EventRecorder,
}

type SyncOutcome = Result<Option<Duration>, ApiError>;

fn owner_ref_kind_is_rs(
    r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> bool {
    r.kind == "ReplicaSet" && r.api_version.starts_with("apps/")
}

impl ReplicaSetController {
    /// Create the actor and register its handlers on the factory's informers. Start the
    /// factory afterwards.
    pub fn start(
        api: Addr<ApiServer>,
        factory: &SharedInformerFactory,
        tracer: SyncTracer,
        options: ReplicaSetOptions,
    ) -> Addr<ReplicaSetController> {
        let rs = factory.informer::<ReplicaSet>();
        let pods = factory.informer::<Pod>();
        ReplicaSetController::create(|ctx| {
            rs.add_recipient(ctx.address().recipient());
            pods.add_recipient(ctx.address().recipient());
            ReplicaSetController {
                recorder: EventRecorder::new(api.clone(), super::COMPONENT, None),
                api,
                replica_sets: rs.store(),
                pods: pods.store(),
                queue: WorkQueue::new("replicaset"),
                expectations: Arc::new(Mutex::new(Expectations::new())),
                triggers: Triggers::default(),
                options: ReplicaSetOptions {
                    workers: options.workers.max(1),
                    burst_replicas: options.burst_replicas.max(1),
                },
                in_flight: 0,
                timer: None,
                tracer,
            }
        })
    }

    fn synced(&self) -> bool {
        self.replica_sets.has_synced() && self.pods.has_synced()
    }

    /// `resolveControllerRef`: the ReplicaSet a pod's controller reference names, if it is
    /// in the cache with the same uid.
    fn resolve(&self, pod: &Pod) -> Option<Arc<ReplicaSet>> {
        let r = ref_manager::controller_ref(&pod.metadata)?;
        if !owner_ref_kind_is_rs(r) {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let rs = self.replica_sets.get(&format!("{ns}/{}", r.name))?;
        (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(rs)
    }

    /// `getPodReplicaSets`: the ReplicaSets whose selector matches an orphan pod.
    fn matching_replica_sets(&self, pod: &Pod) -> Vec<String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let empty = Default::default();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        self.replica_sets
            .list_namespace(ns)
            .into_iter()
            .filter(|rs| selector(rs).is_ok_and(|s| !s.is_empty() && s.matches(labels)))
            .map(|rs| key_of(&rs.metadata))
            .collect()
    }

    fn enqueue(
        &mut self,
        key: String,
        because: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) {
        self.triggers.note(key.clone(), because);
        self.queue.add(key);
    }

    /// Hand ready keys to free workers; arm a timer for the earliest delayed key.
    fn process_next(&mut self, ctx: &mut Context<Self>) {
        if !self.synced() {
            return;
        }
        while self.in_flight < self.options.workers {
            let Some(key) = self.queue.get() else { break };
            self.in_flight += 1;
            let fut = self.sync_key(key.clone());
            ctx.spawn(
                fut.into_actor(self)
                    .map(move |result, act, ctx| act.handle_done(key, result, ctx)),
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

    /// `processNextWorkItem`'s error handling: forget on success (requeue after a delay if
    /// asked), requeue with backoff on error.
    fn handle_done(&mut self, key: String, result: SyncOutcome, ctx: &mut Context<Self>) {
        self.in_flight -= 1;
        match result {
            Ok(after) => {
                self.queue.forget(&key);
                if let Some(d) = after {
                    self.queue.add_after(key.clone(), d);
                }
            }
            Err(e) => {
                self.queue.requeue(key.clone(), MAX_RETRIES, &e);
            }
        }
        self.queue.done(&key);
        self.process_next(ctx);
    }

    /// `syncReplicaSet` for one key: read the caches now (a consistent snapshot with the
    /// expectations check), then claim, manage and update the status through the ApiServer.
    fn sync_key(
        &mut self,
        key: String,
    ) -> impl std::future::Future<Output = SyncOutcome> + 'static {
        let trigger = self.triggers.take(&key);
        let api = self.api.clone();
        let tracer = self.tracer.clone();
        let recorder = self.recorder.clone();
        let expectations = self.expectations.clone();
        let burst = self.options.burst_replicas;
        let rs = self.replica_sets.get(&key);
        let mut plan = None;
        if let Some(rs) = &rs {
            let needs_sync = self.expectations.lock().satisfied(&key, Instant::now())
                && rs.metadata.deletion_timestamp.is_none();
            match selector(rs) {
                Err(e) => {
                    tracing::warn!(%key, error = %e, "invalid selector, not syncing");
                }
                Ok(sel) => {
                    let active = filter_active_pods(&self.claimable_pods(rs));
                    let empty = Default::default();
                    let (mut owned, mut adopt, mut release) = (vec![], vec![], vec![]);
                    for p in active {
                        let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
                        match claim(
                            &rs.metadata,
                            &p.metadata,
                            !sel.is_empty() && sel.matches(labels),
                        ) {
                            Claim::Owned => owned.push(p),
                            Claim::Adopt => adopt.push(p),
                            Claim::Release => release.push(p),
                            Claim::Ignore => {}
                        }
                    }
                    let desired = super::sync::desired_replicas(rs).max(0) as usize;
                    let related = if needs_sync && owned.len() + adopt.len() > desired {
                        self.related_pods(rs)
                    } else {
                        vec![]
                    };
                    plan = Some(Plan {
                        needs_sync,
                        owned,
                        adopt,
                        release,
                        related,
                    });
                }
            }
        } else {
            self.expectations.lock().delete(&key);
        }
        async move {
            let (Some(rs), Some(plan)) = (rs, plan) else {
                return Ok(None);
            };
            let parent = trigger.or_else(|| context_of(&rs.metadata));
            let span = SyncSpan::start(&tracer, format!("sync replicaset {key}"), parent);
            span.attribute(KeyValue::new("k8s.replicaset", key.clone()));
            let cx = Sync {
                api,
                recorder,
                expectations,
                key,
                rs,
                trace: span.trace(),
                span: &span,
            };
            let out = cx.run(plan, burst).await;
            if let Err(e) = &out {
                span.fail(e);
            }
            out
        }
    }

    /// The pods `claim` can say anything but `Ignore` about: those `rs` controls and the
    /// namespace's orphans ([`Store::claimable`]) — the others are controlled by someone
    /// else. Mirrors the `List(labels.Everything())` of syncReplicaSet followed by
    /// `ClaimPods`, whose `ClaimObject` ignores a pod with another controller before it looks
    /// at labels, without visiting every pod of the namespace (100,000 of them at the
    /// issue-8 size).
    fn claimable_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let Some(uid) = rs.metadata.uid.as_deref() else {
            return self.pods.list_namespace(ns);
        };
        let (mut pods, orphans) = self.pods.claimable(ns, uid);
        pods.extend(orphans);
        pods
    }

    /// `getIndirectlyRelatedPods`: the active pods of every ReplicaSet with the same
    /// controller as `rs` (just `rs` when it has none).
    fn related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let siblings = match ref_manager::controller_ref(&rs.metadata) {
            Some(r) => self.replica_sets.controlled_by(&r.uid),
            None => vec![Arc::new(rs.clone())],
        };
        siblings
            .iter()
            .filter_map(|s| s.metadata.uid.as_deref())
            .flat_map(|uid| self.pods.controlled_by(uid))
            .collect()
    }
}

/// What the snapshot of the caches says for one sync.
struct Plan {
    /// Expectations satisfied and the RS not being deleted: pods may be created or deleted.
    needs_sync: bool,
    owned: Vec<Arc<Pod>>,
    adopt: Vec<Arc<Pod>>,
    release: Vec<Arc<Pod>>,
    related: Vec<Arc<Pod>>,
}

/// The writes of one sync.
struct Sync<'a> {
    api: Addr<ApiServer>,
    recorder: EventRecorder,
    expectations: Arc<Mutex<Expectations>>,
    key: String,
    rs: Arc<ReplicaSet>,
    trace: Trace,
    span: &'a SyncSpan,
}

impl Sync<'_> {
    async fn run(&self, mut plan: Plan, burst: usize) -> SyncOutcome {
        if !plan.adopt.is_empty() {
            let adopted = self.adopt(&plan.adopt).await?;
            plan.owned.extend(adopted);
        }
        for p in &plan.release {
            self.release(p).await?;
        }
        let now = jiff::Timestamp::now();
        let manage_err = if plan.needs_sync {
            let decision = manage_replicas(&self.rs, &plan.owned, &plan.related, burst, now);
            self.manage(decision).await.err()
        } else {
            self.span.event("expectations not satisfied", vec![]);
            None
        };
        let msg = manage_err.as_ref().map(ToString::to_string);
        let status = calculate_status(&self.rs, &plan.owned, msg.as_deref(), now);
        let new_status = status_update(&self.rs, status);
        let (ready, available) = new_status
            .as_ref()
            .or(self.rs.status.as_ref())
            .map(|s| {
                (
                    s.ready_replicas.unwrap_or(0),
                    s.available_replicas.unwrap_or(0),
                )
            })
            .unwrap_or((0, 0));
        if let Some(status) = new_status {
            let mut rs = (*self.rs).clone();
            rs.status = Some(status);
            let res = self
                .api
                .send(Update {
                    object: Object::ReplicaSet(rs.into()),
                    subresource: Subresource::Status,
                    options: WriteOptions::default(),
                    trace: self.trace.clone(),
                })
                .await
                .map_err(ApiError::unreachable)?;
            match res {
                // A newer version exists; its watch event syncs this key again.
                Ok(_) | Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = manage_err {
            return Err(e);
        }
        let min_ready = min_ready_seconds(&self.rs);
        if min_ready > 0 && ready != available {
            return Ok(Some(Duration::from_secs(min_ready as u64)));
        }
        Ok(None)
    }

    fn object(&self) -> Object {
        Object::ReplicaSet(self.rs.clone())
    }

    fn event(&self, type_: &str, reason: &str, message: String) {
        self.recorder
            .record(&self.object(), type_, reason, message, self.trace.clone());
    }

    /// `ClaimPods`' adoption: recheck with a live read that the RS still exists and is not
    /// being deleted (`RecheckDeletionTimestamp`), then add our controller reference.
    async fn adopt(&self, pods: &[Arc<Pod>]) -> Result<Vec<Arc<Pod>>, ApiError> {
        let fresh = self
            .api
            .send(Get {
                kind: Kind::ReplicaSet,
                namespace: self.rs.metadata.namespace.clone(),
                name: self.rs.metadata.name.clone().unwrap_or_default(),
            })
            .await
            .map_err(ApiError::unreachable)??;
        let m = fresh.meta();
        if m.uid != self.rs.metadata.uid || m.deletion_timestamp.is_some() {
            return Err(ApiError::Internal(format!(
                "original ReplicaSet {} is gone or being deleted: cannot adopt",
                self.key
            )));
        }
        let reference = new_controller_ref("apps/v1", "ReplicaSet", &self.rs.metadata);
        let mut out = Vec::new();
        for p in pods {
            let mut pod = (**p).clone();
            pod.metadata = adopted(&pod.metadata, reference.clone());
            match self.update_pod(pod).await {
                Ok(Object::Pod(stored)) => out.push(stored),
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// `ClaimPods`' release: remove our reference from a pod the selector no longer matches.
    async fn release(&self, p: &Pod) -> Result<(), ApiError> {
        let uid = self.rs.metadata.uid.as_deref().unwrap_or("");
        let Some(meta) = ref_manager::without_owners(&p.metadata, &[uid]) else {
            return Ok(());
        };
        let mut pod = p.clone();
        pod.metadata = meta;
        match self.update_pod(pod).await {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn update_pod(&self, pod: Pod) -> Result<Object, ApiError> {
        let stored = self
            .api
            .send(Update {
                object: Object::Pod(pod.into()),
                subresource: Subresource::Main,
                options: WriteOptions::default(),
                trace: self.trace.clone(),
            })
            .await
            .map_err(ApiError::unreachable)??;
        Ok((*stored).clone())
    }

    /// `manageReplicas`' writes: expectations first, then creates in slow-start batches or
    /// deletes in parallel; every create or delete that will never be observed lowers the
    /// expectations again.
    async fn manage(&self, decision: Manage) -> Result<(), ApiError> {
        match decision {
            Manage::Nothing => Ok(()),
            Manage::Create(n) => {
                self.span
                    .event("create pods", vec![KeyValue::new("count", n as i64)]);
                self.expectations
                    .lock()
                    .expect_creations(&self.key, n, Instant::now());
                let template = self
                    .rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.clone())
                    .unwrap_or_default();
                let reference = new_controller_ref("apps/v1", "ReplicaSet", &self.rs.metadata);
                let mut successes = 0;
                let mut error = None;
                for batch in slow_start_batches(n, SLOW_START_INITIAL_BATCH_SIZE) {
                    let creates = (0..batch).map(|_| {
                        let pod = pod_from_template(&template, &self.rs, reference.clone());
                        self.api.send(Create {
                            object: Object::Pod(pod.into()),
                            options: WriteOptions::default(),
                            trace: self.trace.clone(),
                        })
                    });
                    for res in join_all(creates).await {
                        match res.map_err(ApiError::unreachable).and_then(|r| r) {
                            Ok(pod) => {
                                successes += 1;
                                self.event(
                                    NORMAL,
                                    reason::SUCCESSFUL_CREATE,
                                    format!("Created pod: {}", pod.name()),
                                );
                            }
                            Err(e) => {
                                self.event(
                                    WARNING,
                                    reason::FAILED_CREATE,
                                    format!("Error creating: {e}"),
                                );
                                error.get_or_insert(e);
                            }
                        }
                    }
                    if error.is_some() {
                        break;
                    }
                }
                let mut exp = self.expectations.lock();
                for _ in successes..n {
                    exp.creation_observed(&self.key);
                }
                error.map_or(Ok(()), Err)
            }
            Manage::Delete(pods) => {
                self.span.event(
                    "delete pods",
                    vec![KeyValue::new("count", pods.len() as i64)],
                );
                let keys: Vec<String> = pods.iter().map(|p| key_of(&p.metadata)).collect();
                self.expectations
                    .lock()
                    .expect_deletions(&self.key, keys.clone(), Instant::now());
                let deletes = pods.iter().map(|p| {
                    self.api.send(Delete {
                        kind: Kind::Pod,
                        namespace: p.metadata.namespace.clone(),
                        name: p.metadata.name.clone().unwrap_or_default(),
                        options: DeleteOptions::default(),
                        write: WriteOptions::default(),
                        trace: self.trace.clone(),
                    })
                });
                let mut error = None;
                for (res, (p, pod_key)) in join_all(deletes)
                    .await
                    .into_iter()
                    .zip(pods.iter().zip(&keys))
                {
                    let name = p.metadata.name.as_deref().unwrap_or("");
                    match res.map_err(ApiError::unreachable).and_then(|r| r) {
                        Ok(_) => self.event(
                            NORMAL,
                            reason::SUCCESSFUL_DELETE,
                            format!("Deleted pod: {name}"),
                        ),
                        Err(e) => {
                            self.expectations
                                .lock()
                                .deletion_observed(&self.key, pod_key);
                            if !matches!(e, ApiError::NotFound { .. }) {
                                self.event(
                                    WARNING,
                                    reason::FAILED_DELETE,
                                    format!("Error deleting: {e}"),
                                );
                                error.get_or_insert(e);
                            }
                        }
                    }
                }
                error.map_or(Ok(()), Err)
            }
        }
    }
}

impl Actor for ReplicaSetController {
    type Context = Context<Self>;

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.queue.shut_down();
        Running::Stop
    }
}

impl Handler<InformerEvent<ReplicaSet>> for ReplicaSetController {
    type Result = ();
    /// addRS / updateRS / deleteRS: enqueue; a deleted (or replaced) RS's expectations go.
    fn handle(&mut self, ev: InformerEvent<ReplicaSet>, ctx: &mut Self::Context) {
        match ev {
            InformerEvent::Added(rs) => self.enqueue(key_of(&rs.metadata), &rs.metadata),
            InformerEvent::Updated { old, new } => {
                let key = key_of(&new.metadata);
                if old.metadata.uid != new.metadata.uid {
                    self.expectations.lock().delete(&key);
                }
                self.enqueue(key, &new.metadata);
            }
            InformerEvent::Deleted(rs) => {
                let key = key_of(&rs.metadata);
                self.expectations.lock().delete(&key);
                self.triggers.forget(&key);
                self.queue.add(key);
            }
            InformerEvent::Synced => {}
        }
        self.process_next(ctx);
    }
}

impl ReplicaSetController {
    /// `deletePod`: the pod is gone or being deleted.
    fn pod_deleted(&mut self, pod: &Pod) {
        let Some(rs) = self.resolve(pod) else { return };
        let key = key_of(&rs.metadata);
        self.expectations
            .lock()
            .deletion_observed(&key, &key_of(&pod.metadata));
        self.enqueue(key, &pod.metadata);
    }

    /// `addPod`.
    fn pod_added(&mut self, pod: &Pod) {
        if pod.metadata.deletion_timestamp.is_some() {
            // A restarted controller may see a pod already being deleted.
            self.pod_deleted(pod);
            return;
        }
        if ref_manager::controller_ref(&pod.metadata).is_some() {
            let Some(rs) = self.resolve(pod) else { return };
            let key = key_of(&rs.metadata);
            self.expectations.lock().creation_observed(&key);
            self.enqueue(key, &pod.metadata);
            return;
        }
        for key in self.matching_replica_sets(pod) {
            self.enqueue(key, &pod.metadata);
        }
    }

    /// `updatePod`.
    fn pod_updated(&mut self, old: &Pod, cur: &Pod) {
        if old.metadata.resource_version == cur.metadata.resource_version {
            return;
        }
        let labels_changed = old.metadata.labels != cur.metadata.labels;
        if cur.metadata.deletion_timestamp.is_some() {
            self.pod_deleted(cur);
            if labels_changed {
                self.pod_deleted(old);
            }
            return;
        }
        let cur_ref = ref_manager::controller_ref(&cur.metadata);
        let old_ref = ref_manager::controller_ref(&old.metadata);
        if old_ref.map(|r| &r.uid) != cur_ref.map(|r| &r.uid) {
            if let Some(rs) = old_ref.and_then(|_| self.resolve(old)) {
                self.enqueue(key_of(&rs.metadata), &cur.metadata);
            }
        }
        if cur_ref.is_some() {
            let Some(rs) = self.resolve(cur) else { return };
            let key = key_of(&rs.metadata);
            let min_ready = min_ready_seconds(&rs);
            if min_ready > 0 && !is_pod_ready(old) && is_pod_ready(cur) {
                // Available only after minReadySeconds: look again then.
                self.queue
                    .add_after(key.clone(), Duration::from_secs(min_ready as u64 + 1));
            }
            self.enqueue(key, &cur.metadata);
            return;
        }
        if labels_changed || old_ref.is_some() {
            for key in self.matching_replica_sets(cur) {
                self.enqueue(key, &cur.metadata);
            }
        }
    }
}

impl Handler<InformerEvent<Pod>> for ReplicaSetController {
    type Result = ();
    fn handle(&mut self, ev: InformerEvent<Pod>, ctx: &mut Self::Context) {
        match ev {
            InformerEvent::Added(p) => self.pod_added(&p),
            InformerEvent::Updated { old, new } => self.pod_updated(&old, &new),
            InformerEvent::Deleted(p) => self.pod_deleted(&p),
            InformerEvent::Synced => {}
        }
        self.process_next(ctx);
    }
}
