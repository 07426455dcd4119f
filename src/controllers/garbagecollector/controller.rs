//! The `GarbageCollector` actor. Mirrors `GarbageCollector` (`attemptToDeleteItem`,
//! `processDeletingDependentsItem`, `attemptToOrphanWorker`) in
//! `pkg/controller/garbagecollector/garbagecollector.go`.
//!
//! Informer events update the [`Graph`], which answers with [`Work`]; workers take work
//! items from a [`WorkQueue`] (never the same item twice at once). A work item reads the
//! object and its owners *live* from the ApiServer — the informer caches may lag, and
//! deleting something because a cache had not yet seen its owner would be unrecoverable —
//! decides with [`decide`], and writes. Each item is a `kube-controller-manager` span
//! (`garbage collect <kind> <ns>/<name>`, `orphan dependents of <kind> <ns>/<name>`) when the
//! triggering object carried a trace context; its writes carry the span's context.

use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta, Preconditions};
use opentelemetry::KeyValue;

use super::graph::{decide, Decision, Graph, Identity, OwnerState, Work};
use super::MAX_RETRIES;
use crate::api::{Kind, KindOf, Object};
use crate::apiserver::strategy::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::apiserver::{
    ApiError, ApiServer, Delete, Get, Subresource, Trace, Update, WriteOptions,
};
use crate::controllers::ref_manager::without_owners;
use crate::controllers::sync_span::{context_of, SyncSpan, SyncTracer, Triggers};
use crate::controllers::workqueue::WorkQueue;
use crate::informer::{Cached, InformerEvent, SharedInformerFactory, Store};

/// The garbage collector actor. See the module documentation.
pub struct GarbageCollector {
    api: Addr<ApiServer>,
    graph: Graph,
    queue: WorkQueue<Work>,
    triggers: Triggers<Work>,
    /// Whether each informer has synced (nothing is collected before the graph is whole).
    synced: (Store<Deployment>, Store<ReplicaSet>, Store<Pod>),
    /// Concurrent work items (`--concurrent-gc-syncs`, 20).
    workers: usize,
    in_flight: usize,
    timer: Option<SpawnHandle>,
    tracer: SyncTracer,
}

/// What a work item needs from the graph, copied out before its future runs.
struct Snapshot {
    work: Work,
    identity: Identity,
    has_dependents: bool,
    /// Blocking dependents (identity, being deleted) for foreground deletion.
    blocking: Vec<(Identity, bool)>,
    /// Every dependent, for orphaning.
    dependents: Vec<Identity>,
}

impl GarbageCollector {
    /// Create the actor and register its handlers on the factory's informers. Start the
    /// factory afterwards.
    pub fn start(
        api: Addr<ApiServer>,
        factory: &SharedInformerFactory,
        tracer: SyncTracer,
        workers: usize,
    ) -> Addr<GarbageCollector> {
        let d = factory.informer::<Deployment>();
        let rs = factory.informer::<ReplicaSet>();
        let pods = factory.informer::<Pod>();
        GarbageCollector::create(|ctx| {
            d.add_recipient(ctx.address().recipient());
            rs.add_recipient(ctx.address().recipient());
            pods.add_recipient(ctx.address().recipient());
            GarbageCollector {
                api,
                graph: Graph::new(),
                queue: WorkQueue::new("garbagecollector"),
                triggers: Triggers::default(),
                synced: (d.store(), rs.store(), pods.store()),
                workers: workers.max(1),
                in_flight: 0,
                timer: None,
                tracer,
            }
        })
    }

    fn synced(&self) -> bool {
        self.synced.0.has_synced() && self.synced.1.has_synced() && self.synced.2.has_synced()
    }

    fn enqueue_all(&mut self, work: Vec<Work>, because: &ObjectMeta) {
        for w in work {
            self.triggers.note(w.clone(), because);
            self.queue.add(w);
        }
    }

    fn observe<K: Cached>(&mut self, ev: InformerEvent<K>, ctx: &mut Context<Self>) {
        match ev {
            InformerEvent::Added(o) | InformerEvent::Updated { new: o, .. } => {
                let work = self.graph.observe(<K as KindOf>::KIND, o.metadata());
                self.enqueue_all(work, o.metadata());
            }
            InformerEvent::Deleted(o) => {
                let work = self.graph.observe_deleted(o.metadata());
                self.enqueue_all(work, o.metadata());
            }
            InformerEvent::Synced => {}
        }
        self.process_next(ctx);
    }

    fn snapshot(&self, work: Work) -> Option<Snapshot> {
        let node = self.graph.get(work.uid()).filter(|n| !n.virtual_)?;
        let uid = work.uid();
        Some(Snapshot {
            identity: node.identity.clone(),
            has_dependents: !node.dependents.is_empty(),
            blocking: self
                .graph
                .blocking_dependents(uid)
                .into_iter()
                .map(|n| (n.identity.clone(), n.being_deleted))
                .collect(),
            dependents: self
                .graph
                .dependents(uid)
                .into_iter()
                .filter(|n| !n.virtual_)
                .map(|n| n.identity.clone())
                .collect(),
            work,
        })
    }

    fn process_next(&mut self, ctx: &mut Context<Self>) {
        if !self.synced() {
            return;
        }
        while self.in_flight < self.workers {
            let Some(work) = self.queue.get() else { break };
            let trigger = self.triggers.take(&work);
            let Some(snapshot) = self.snapshot(work.clone()) else {
                self.queue.forget(&work);
                self.queue.done(&work);
                continue;
            };
            self.in_flight += 1;
            let item = Item {
                api: self.api.clone(),
                tracer: self.tracer.clone(),
                s: snapshot,
            };
            ctx.spawn(
                item.run(trigger)
                    .into_actor(self)
                    .map(move |result, act, ctx| act.handle_done(work, result, ctx)),
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

    fn handle_done(
        &mut self,
        work: Work,
        result: Result<Vec<Work>, ApiError>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight -= 1;
        match result {
            Ok(more) => {
                self.queue.forget(&work);
                for w in more {
                    self.queue.add(w);
                }
            }
            Err(e) => {
                self.queue.requeue(work.clone(), MAX_RETRIES, &e);
            }
        }
        self.queue.done(&work);
        self.process_next(ctx);
    }
}

/// One work item being processed.
struct Item {
    api: Addr<ApiServer>,
    tracer: SyncTracer,
    s: Snapshot,
}

impl Item {
    async fn get(&self, id: &Identity) -> Result<Option<Object>, ApiError> {
        let res = self
            .api
            .send(Get {
                kind: id.kind,
                namespace: id.namespace.clone(),
                name: id.name.clone(),
            })
            .await
            .map_err(ApiError::unreachable)?;
        match res {
            Ok(o) if o.meta().uid.as_deref() == Some(id.uid.as_str()) => Ok(Some((*o).clone())),
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn update(&self, object: Object, trace: &Trace) -> Result<(), ApiError> {
        let res = self
            .api
            .send(Update {
                object,
                subresource: Subresource::Main,
                options: WriteOptions::default(),
                trace: trace.clone(),
            })
            .await
            .map_err(ApiError::unreachable)?;
        match res {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn run(self, trigger: Option<opentelemetry::Context>) -> Result<Vec<Work>, ApiError> {
        // The live state decides; a vanished object needs nothing.
        let Some(obj) = self.get(&self.s.identity).await? else {
            return Ok(vec![]);
        };
        let parent = trigger.or_else(|| context_of(obj.meta()));
        let name = match self.s.work {
            Work::AttemptToDelete(_) => format!("garbage collect {}", self.s.identity.describe()),
            Work::AttemptToOrphan(_) => {
                format!("orphan dependents of {}", self.s.identity.describe())
            }
        };
        let span = SyncSpan::start(&self.tracer, name, parent);
        let trace = span.trace();
        let out = match self.s.work {
            Work::AttemptToDelete(_) => self.attempt_to_delete(obj, &trace, &span).await,
            Work::AttemptToOrphan(_) => self.attempt_to_orphan(obj, &trace, &span).await,
        };
        if let Err(e) = &out {
            span.fail(e);
        }
        out
    }

    /// `attemptToDeleteItem`.
    async fn attempt_to_delete(
        &self,
        obj: Object,
        trace: &Trace,
        span: &SyncSpan,
    ) -> Result<Vec<Work>, ApiError> {
        let meta = obj.meta();
        let deleting_dependents = meta.deletion_timestamp.is_some()
            && meta
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == FOREGROUND_FINALIZER);
        if deleting_dependents {
            return self.process_deleting_dependents(obj, trace, span).await;
        }
        let Some(refs) = meta.owner_references.clone().filter(|r| !r.is_empty()) else {
            return Ok(vec![]);
        };
        if meta.deletion_timestamp.is_some() {
            return Ok(vec![]);
        }
        let mut owners = Vec::new();
        for r in &refs {
            let state = match Kind::from_name(&r.kind).filter(|k| k.api_version() == r.api_version)
            {
                None => OwnerState::Unresolvable,
                Some(kind) => {
                    let id = Identity {
                        kind,
                        namespace: if kind.namespaced() {
                            self.s.identity.namespace.clone()
                        } else {
                            None
                        },
                        name: r.name.clone(),
                        uid: r.uid.clone(),
                    };
                    match self.get(&id).await? {
                        None => OwnerState::Dangling,
                        Some(o)
                            if o.meta().deletion_timestamp.is_some()
                                && o.meta()
                                    .finalizers
                                    .iter()
                                    .flatten()
                                    .any(|f| f == FOREGROUND_FINALIZER) =>
                        {
                            OwnerState::WaitingForDependentsDeletion
                        }
                        Some(_) => OwnerState::Solid,
                    }
                }
            };
            owners.push((r.uid.clone(), state));
        }
        let decision = decide(meta, &owners, self.s.has_dependents);
        span.attribute(KeyValue::new("gc.decision", format!("{decision:?}")));
        match decision {
            Decision::Nothing => Ok(vec![]),
            Decision::RemoveOwnerReferences(uids) => {
                let uids: Vec<&str> = uids.iter().map(String::as_str).collect();
                if let Some(m) = without_owners(meta, &uids) {
                    let mut obj = obj.clone();
                    *obj.meta_mut() = m;
                    self.update(obj, trace).await?;
                }
                Ok(vec![])
            }
            Decision::Delete(policy) => {
                let res = self
                    .api
                    .send(Delete {
                        kind: self.s.identity.kind,
                        namespace: self.s.identity.namespace.clone(),
                        name: self.s.identity.name.clone(),
                        options: DeleteOptions {
                            propagation_policy: Some(policy.to_string()),
                            preconditions: Some(Preconditions {
                                uid: Some(self.s.identity.uid.clone()),
                                resource_version: None,
                            }),
                            ..Default::default()
                        },
                        write: WriteOptions::default(),
                        trace: trace.clone(),
                    })
                    .await
                    .map_err(ApiError::unreachable)?;
                match res {
                    // Gone already.
                    Ok(_) | Err(ApiError::NotFound { .. }) => Ok(vec![]),
                    // The name belongs to a new object (uid precondition): look again. (A
                    // concurrent write no longer conflicts: a delete without a resourceVersion
                    // precondition applies to the API server's latest accepted state.) The next attempt reads it live and
                    // does nothing if the uid has changed. Treating this as done left
                    // running pods of deleted ReplicaSets behind (seen in tests/demo.rs).
                    Err(ApiError::Conflict { .. }) => {
                        span.event("conflict: trying again", vec![]);
                        Ok(vec![self.s.work.clone()])
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// `processDeletingDependentsItem`: an owner in foreground deletion loses its finalizer
    /// once no blocking dependent remains; until then its blocking dependents are collected.
    async fn process_deleting_dependents(
        &self,
        obj: Object,
        trace: &Trace,
        span: &SyncSpan,
    ) -> Result<Vec<Work>, ApiError> {
        if self.s.blocking.is_empty() {
            span.event(
                "no blocking dependents left: removing foregroundDeletion",
                vec![],
            );
            return self
                .remove_finalizer(obj, FOREGROUND_FINALIZER, trace)
                .await
                .map(|_| vec![]);
        }
        span.attribute(KeyValue::new(
            "gc.blocking_dependents",
            self.s.blocking.len() as i64,
        ));
        Ok(self
            .s
            .blocking
            .iter()
            .filter(|(_, being_deleted)| !being_deleted)
            .map(|(id, _)| Work::AttemptToDelete(id.uid.clone()))
            .collect())
    }

    async fn remove_finalizer(
        &self,
        mut obj: Object,
        f: &str,
        trace: &Trace,
    ) -> Result<(), ApiError> {
        let m = obj.meta_mut();
        let Some(fs) = m.finalizers.as_mut() else {
            return Ok(());
        };
        let before = fs.len();
        fs.retain(|x| x != f);
        if fs.len() == before {
            return Ok(());
        }
        self.update(obj, trace).await
    }

    /// `attemptToOrphanWorker`: drop the owner from every dependent's ownerReferences, then
    /// its `orphan` finalizer.
    async fn attempt_to_orphan(
        &self,
        obj: Object,
        trace: &Trace,
        span: &SyncSpan,
    ) -> Result<Vec<Work>, ApiError> {
        let uid = self.s.identity.uid.as_str();
        span.attribute(KeyValue::new(
            "gc.dependents",
            self.s.dependents.len() as i64,
        ));
        for dep in &self.s.dependents {
            let Some(d) = self.get(dep).await? else {
                continue;
            };
            if let Some(m) = without_owners(d.meta(), &[uid]) {
                let mut d = d;
                *d.meta_mut() = m;
                self.update(d, trace).await?;
            }
        }
        self.remove_finalizer(obj, ORPHAN_FINALIZER, trace).await?;
        Ok(vec![])
    }
}

impl Actor for GarbageCollector {
    type Context = Context<Self>;

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.queue.shut_down();
        Running::Stop
    }
}

impl Handler<InformerEvent<Deployment>> for GarbageCollector {
    type Result = ();
    fn handle(&mut self, ev: InformerEvent<Deployment>, ctx: &mut Self::Context) {
        self.observe(ev, ctx);
    }
}

impl Handler<InformerEvent<ReplicaSet>> for GarbageCollector {
    type Result = ();
    fn handle(&mut self, ev: InformerEvent<ReplicaSet>, ctx: &mut Self::Context) {
        self.observe(ev, ctx);
    }
}

impl Handler<InformerEvent<Pod>> for GarbageCollector {
    type Result = ();
    fn handle(&mut self, ev: InformerEvent<Pod>, ctx: &mut Self::Context) {
        self.observe(ev, ctx);
    }
}
