//! The `TaintEvictionController` actor. Mirrors `Controller` in
//! pkg/controller/tainteviction/taint_eviction.go.
//!
//! A node whose NoExecute taints change, or a pod whose node or tolerations change, is
//! looked at with [`decide`]: evict now, in a while (a timer per pod, kept if one is already
//! running, as upstream's `taintEvictionQueue`), or not at all (a planned eviction is
//! cancelled, with a `TaintManagerEviction` event `Cancelling deletion of Pod …`). An
//! eviction records `TaintManagerEviction` (`Marking for deletion Pod default/web-…`), adds
//! the `DisruptionTarget` condition and deletes the pod with its grace period.
//!
//! Tracing: each eviction is an `evict pod <ns>/<name>` span, a child of the context saved on
//! the Node by the taint write that caused it (the node lifecycle controller's trace), and
//! its writes carry that span's context — so the ReplicaSet controller's replacement joins
//! the same trace. A node tainted untraced evicts untraced.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Time};
use opentelemetry::{Context as OtelContext, KeyValue};

use super::REASON_TAINT_MANAGER_EVICTION;
use super::{decide, no_execute_taints, Decision, COMPONENT, REASON_DELETION_BY_TAINT_MANAGER};
use crate::api::{Kind, Object};
use crate::apiserver::{
    ApiError, ApiServer, Delete, Get, Subresource, Trace, Update, WriteOptions,
};
use crate::clock::Clock;
use crate::controllers::sync_span::{context_of, SyncSpan, SyncTracer};
use crate::events::{EventRecorder, NORMAL};
use crate::informer::{key_of, InformerEvent, SharedInformerFactory, Store};

/// A planned eviction (upstream's `TimedWorker`).
struct Planned {
    handle: SpawnHandle,
}

/// See the module documentation.
pub struct TaintEvictionController {
    api: Addr<ApiServer>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    clock: Arc<dyn Clock>,
    planned: HashMap<String, Planned>,
    tracer: SyncTracer,
    recorder: EventRecorder,
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn taints_of(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

impl TaintEvictionController {
    /// Create the actor and register it on the factory's Node and Pod informers. Start the
    /// factory afterwards.
    pub fn start(
        api: Addr<ApiServer>,
        factory: &SharedInformerFactory,
        tracer: SyncTracer,
        clock: Arc<dyn Clock>,
    ) -> Addr<TaintEvictionController> {
        let nodes = factory.informer::<Node>();
        let pods = factory.informer::<Pod>();
        TaintEvictionController::create(|ctx| {
            nodes.add_recipient(ctx.address().recipient());
            pods.add_recipient(ctx.address().recipient());
            TaintEvictionController {
                recorder: EventRecorder::new(api.clone(), COMPONENT, None),
                api,
                nodes: nodes.store(),
                pods: pods.store(),
                clock,
                planned: HashMap::new(),
                tracer,
            }
        })
    }

    fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods
            .list()
            .into_iter()
            .filter(|p| node_name(p) == Some(node))
            .collect()
    }

    /// Cancel a planned eviction; with `event`, say so on the pod (`cancelWorkWithEvent`).
    fn cancel(&mut self, pod: &Arc<Pod>, event: bool, ctx: &mut Context<Self>) {
        let key = key_of(&pod.metadata);
        if let Some(p) = self.planned.remove(&key) {
            ctx.cancel_future(p.handle);
            if event {
                self.recorder.normal(
                    &Object::Pod(pod.clone()),
                    REASON_TAINT_MANAGER_EVICTION,
                    format!("Cancelling deletion of Pod {key}"),
                );
            }
        }
    }

    /// Mirrors `processPodOnNode`. `cx` is the context saved on the node by its last write.
    fn process_pod_on_node(
        &mut self,
        pod: Arc<Pod>,
        taints: &[Taint],
        cx: Option<OtelContext>,
        ctx: &mut Context<Self>,
    ) {
        if pod.metadata.deletion_timestamp.is_some() {
            // Already being deleted: nothing left to evict.
            self.cancel(&pod, false, ctx);
            return;
        }
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        let key = key_of(&pod.metadata);
        match decide(taints, &tolerations) {
            Decision::Keep => self.cancel(&pod, true, ctx),
            Decision::EvictNow => {
                self.cancel(&pod, true, ctx);
                self.evict(pod, cx, ctx);
            }
            Decision::EvictAfter(sim) => {
                let now = self.clock.now();
                let delay = self.clock.scale(sim);
                // Upstream keeps a running timer: it started earlier, so it fires no later.
                if self.planned.contains_key(&key) {
                    return;
                }
                let fire_at = now + delay;
                let wait = fire_at.saturating_duration_since(now);
                let planned_key = key.clone();
                let handle = ctx.run_later(wait, move |act, ctx| {
                    act.planned.remove(&planned_key);
                    // Evict the pod as the cache has it now, if it is still the same pod.
                    let pod_key = key_of(&pod.metadata);
                    match act.pods.get(&pod_key) {
                        Some(p) if p.metadata.uid == pod.metadata.uid => act.evict(p, cx, ctx),
                        _ => {}
                    }
                });
                self.planned.insert(key, Planned { handle });
            }
        }
    }

    /// Mirrors `deletePodHandler` + `addConditionAndDeletePod`.
    fn evict(&mut self, pod: Arc<Pod>, cx: Option<OtelContext>, ctx: &mut Context<Self>) {
        let key = key_of(&pod.metadata);
        let span = SyncSpan::start(&self.tracer, format!("evict pod {key}"), cx);
        span.attribute(KeyValue::new("k8s.pod", key.clone()));
        span.attribute(KeyValue::new(
            "k8s.node.name",
            node_name(&pod).unwrap_or_default().to_string(),
        ));
        let api = self.api.clone();
        let recorder = self.recorder.clone();
        let wall = self.clock.wall();
        ctx.spawn(
            async move {
                let trace = span.trace();
                recorder.record(
                    &Object::Pod(pod.clone()),
                    NORMAL,
                    REASON_TAINT_MANAGER_EVICTION,
                    format!("Marking for deletion Pod {key}"),
                    trace.clone(),
                );
                let out = delete_pod(&api, &pod, wall, trace).await;
                if let Err(e) = &out {
                    span.fail(e);
                    tracing::warn!(pod = %key, error = %e, "taint eviction failed");
                }
            }
            .into_actor(self),
        );
    }
}

/// Add the `DisruptionTarget` condition (best effort), then delete with the pod's grace.
async fn delete_pod(
    api: &Addr<ApiServer>,
    pod: &Pod,
    wall: jiff::Timestamp,
    trace: Trace,
) -> Result<(), ApiError> {
    let fresh = api
        .send(Get {
            kind: Kind::Pod,
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone().unwrap_or_default(),
        })
        .await
        .map_err(ApiError::unreachable)?;
    let fresh = match fresh {
        Ok(o) => o,
        Err(ApiError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let Object::Pod(mut current) = (*fresh).clone() else {
        return Ok(());
    };
    if current.metadata.uid != pod.metadata.uid {
        return Ok(());
    }
    let status = Arc::make_mut(&mut current)
        .status
        .get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "DisruptionTarget");
    conditions.push(PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some(REASON_DELETION_BY_TAINT_MANAGER.into()),
        message: Some("Taint manager: deleting due to NoExecute taint".into()),
        last_transition_time: Some(Time(wall)),
        ..Default::default()
    });
    let res = api
        .send(Update {
            object: Object::Pod(current),
            subresource: Subresource::Status,
            options: WriteOptions::default(),
            trace: trace.clone(),
        })
        .await
        .map_err(ApiError::unreachable)?;
    match res {
        Ok(_) | Err(ApiError::Conflict { .. }) => {}
        Err(ApiError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    }
    let res = api
        .send(Delete {
            kind: Kind::Pod,
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            options: DeleteOptions::default(),
            write: WriteOptions::default(),
            trace,
        })
        .await
        .map_err(ApiError::unreachable)?;
    match res {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Actor for TaintEvictionController {
    type Context = Context<Self>;
}

impl Handler<InformerEvent<Node>> for TaintEvictionController {
    type Result = ();
    /// Mirrors `NodeUpdated`: only a change of NoExecute taints matters.
    fn handle(&mut self, ev: InformerEvent<Node>, ctx: &mut Self::Context) {
        let (node, taints) = match ev {
            InformerEvent::Added(n) => {
                let t = no_execute_taints(&taints_of(&n));
                (n, t)
            }
            InformerEvent::Updated { old, new } => {
                let before = no_execute_taints(&taints_of(&old));
                let after = no_execute_taints(&taints_of(&new));
                if before == after {
                    return;
                }
                (new, after)
            }
            InformerEvent::Deleted(n) => (n, Vec::new()),
            InformerEvent::Synced => return,
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        let cx = context_of(&node.metadata);
        for pod in self.pods_on(&name) {
            self.process_pod_on_node(pod, &taints, cx.clone(), ctx);
        }
    }
}

impl Handler<InformerEvent<Pod>> for TaintEvictionController {
    type Result = ();
    /// Mirrors `PodUpdated`: only a pod's node or tolerations matter.
    fn handle(&mut self, ev: InformerEvent<Pod>, ctx: &mut Self::Context) {
        let pod = match ev {
            InformerEvent::Added(p) => p,
            InformerEvent::Updated { old, new } => {
                let same_node = node_name(&old) == node_name(&new);
                let tol = |p: &Pod| p.spec.as_ref().and_then(|s| s.tolerations.clone());
                if same_node && tol(&old) == tol(&new) && new.metadata.deletion_timestamp.is_none()
                {
                    return;
                }
                new
            }
            InformerEvent::Deleted(p) => {
                self.cancel(&p, false, ctx);
                return;
            }
            InformerEvent::Synced => return,
        };
        let Some(node) = node_name(&pod).and_then(|n| self.nodes.get(n)) else {
            return;
        };
        let taints = taints_of(&node);
        if no_execute_taints(&taints).is_empty()
            && !self.planned.contains_key(&key_of(&pod.metadata))
        {
            return;
        }
        let cx = context_of(&node.metadata);
        self.process_pod_on_node(pod, &taints, cx, ctx);
    }
}
