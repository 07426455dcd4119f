//! The `NodeLifecycleController` actor. Mirrors `Controller` in
//! pkg/controller/nodelifecycle/node_lifecycle_controller.go.
//!
//! Every `node_monitor_period` it runs `monitorNodeHealth` over its Node and Lease caches:
//! a node not heard from for `node_monitor_grace_period` gets every condition Unknown, then
//! the `unreachable` (or `not-ready`) taints; a node Ready again loses them. When a node
//! stops being Ready, a root span `node <name> NotReady` (kube-controller-manager) starts the
//! failure's trace: the status and taint writes, the `NodeNotReady` events and the pods'
//! Ready=False updates are its children, and the taint write's context, saved on the Node,
//! is what the taint-eviction controller continues.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use opentelemetry::{Context as OtelContext, KeyValue};

use super::health::{
    desired_taints, is_lifecycle_taint, mark_pod_not_ready, try_update_node_health, NodeHealth,
};
use super::{NodeLifecycleOptions, COMPONENT};
use crate::api::Object;
use crate::apiserver::{ApiError, ApiServer, Subresource, Update, WriteOptions};
use crate::clock::Clock;
use crate::controllers::sync_span::{SyncSpan, SyncTracer};
use crate::events::{EventRecorder, NORMAL, WARNING};
use crate::informer::{SharedInformerFactory, Store};
use crate::kubelet::node_status::NODE_LEASE_NAMESPACE;

/// The shortest real grace period, whatever the speed: at a high speed (or 0, where every
/// period is 1 ms) a busy machine could otherwise delay a live kubelet's renewal past it and
/// declare a healthy node dead.
pub const MIN_REAL_GRACE_PERIOD: Duration = Duration::from_secs(1);
/// The shortest real period between health checks (speed 0 would make it 1 ms).
pub const MIN_REAL_MONITOR_PERIOD: Duration = Duration::from_millis(10);

/// See the module documentation.
pub struct NodeLifecycleController {
    api: Addr<ApiServer>,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    clock: Arc<dyn Clock>,
    options: NodeLifecycleOptions,
    /// Upstream's `nodeHealthMap`.
    health: HashMap<String, NodeHealth>,
    /// Nodes whose writes are still in flight: not checked again until they finish.
    busy: HashSet<String>,
    tracer: SyncTracer,
    recorder: EventRecorder,
}

impl NodeLifecycleController {
    /// Create the actor over the factory's Node, Lease and Pod informers. Start the factory
    /// afterwards.
    pub fn start(
        api: Addr<ApiServer>,
        factory: &SharedInformerFactory,
        tracer: SyncTracer,
        clock: Arc<dyn Clock>,
        options: NodeLifecycleOptions,
    ) -> Addr<NodeLifecycleController> {
        NodeLifecycleController {
            recorder: EventRecorder::new(api.clone(), COMPONENT, None),
            api,
            nodes: factory.informer::<Node>().store(),
            leases: factory.informer::<Lease>().store(),
            pods: factory.informer::<Pod>().store(),
            clock,
            options,
            health: HashMap::new(),
            busy: HashSet::new(),
            tracer,
        }
        .start()
    }

    /// Mirrors `monitorNodeHealth`.
    fn monitor_node_health(&mut self, ctx: &mut Context<Self>) {
        if !(self.nodes.has_synced() && self.leases.has_synced() && self.pods.has_synced()) {
            return;
        }
        let now = self.clock.now();
        let wall = self.clock.wall();
        let grace = self
            .clock
            .period(self.options.grace_period)
            .max(MIN_REAL_GRACE_PERIOD);
        let nodes = self.nodes.list();
        let names: HashSet<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        self.health.retain(|name, _| names.contains(name));
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            if self.busy.contains(&name) {
                continue;
            }
            let lease = self.leases.get(&format!("{NODE_LEASE_NAMESPACE}/{name}"));
            let (health, check) = try_update_node_health(
                &node,
                lease.as_deref(),
                self.health.get(&name),
                now,
                wall,
                grace,
            );
            self.health.insert(name.clone(), health);
            // The taints as they will be once the status (if any) is written.
            let mut after = (*node).clone();
            if let Some(s) = &check.new_status {
                after.status = Some(s.clone());
            }
            let taints = desired_taints(&after, wall);
            if check.new_status.is_none() && taints.is_none() {
                continue;
            }
            let span = if check.became_not_ready() {
                let span = SyncSpan::start(
                    &self.tracer,
                    format!("node {name} NotReady"),
                    Some(OtelContext::new()),
                );
                span.attribute(KeyValue::new("k8s.node.name", name.clone()));
                span.attribute(KeyValue::new(
                    "node.ready",
                    check.current_ready.clone().unwrap_or_default(),
                ));
                span.attribute(KeyValue::new(
                    "node.silent_for_ms",
                    check.silent_for.as_millis() as i64,
                ));
                span.attribute(KeyValue::new(
                    "node_monitor_grace_period_s",
                    self.options.grace_period.as_secs_f64(),
                ));
                span
            } else {
                // Background: a taint removed from a node that came back, a status fixed up.
                SyncSpan::start(&self.tracer, String::new(), None)
            };
            let pods = if check.became_not_ready() {
                self.pods
                    .list()
                    .into_iter()
                    .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
                    .collect()
            } else {
                Vec::new()
            };
            let writes = Writes {
                api: self.api.clone(),
                recorder: self.recorder.clone(),
                node,
                became_not_ready: check.became_not_ready(),
                new_status: check.new_status,
                pods,
            };
            self.busy.insert(name.clone());
            ctx.spawn(
                async move {
                    let out = writes.run(&span, wall).await;
                    if let Err(e) = &out {
                        span.fail(e);
                    }
                    drop(span);
                    out
                }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.busy.remove(&name);
                    if let Err(e) = res {
                        tracing::warn!(node = %name, error = %e, "node health update failed; retrying next period");
                    }
                }),
            );
        }
    }
}

/// The writes one health check needs for one node.
struct Writes {
    api: Addr<ApiServer>,
    recorder: EventRecorder,
    node: Arc<Node>,
    became_not_ready: bool,
    new_status: Option<k8s_openapi::api::core::v1::NodeStatus>,
    pods: Vec<Arc<Pod>>,
}

impl Writes {
    async fn run(self, span: &SyncSpan, wall: jiff::Timestamp) -> Result<(), ApiError> {
        let trace = span.trace();
        let mut node = self.node.clone();
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(status) = self.new_status {
            Arc::make_mut(&mut node).status = Some(status);
            let stored = self
                .api
                .send(Update {
                    object: Object::Node(node),
                    subresource: Subresource::Status,
                    options: WriteOptions::default(),
                    trace: trace.clone(),
                })
                .await
                .map_err(ApiError::unreachable)??;
            node = match &*stored {
                Object::Node(n) => n.clone(),
                _ => return Ok(()),
            };
        }
        if let Some(taints) = desired_taints(&node, wall) {
            let added: Vec<String> = taints
                .iter()
                .filter(|t| is_lifecycle_taint(t))
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect();
            span.event(
                "taints",
                vec![KeyValue::new("node.lifecycle_taints", added.join(","))],
            );
            Arc::make_mut(&mut node)
                .spec
                .get_or_insert_with(Default::default)
                .taints = (!taints.is_empty()).then_some(taints);
            self.api
                .send(Update {
                    object: Object::Node(node.clone()),
                    subresource: Subresource::Main,
                    options: WriteOptions::default(),
                    trace: trace.clone(),
                })
                .await
                .map_err(ApiError::unreachable)??;
        }
        if !self.became_not_ready {
            return Ok(());
        }
        // RecordNodeStatusChange(node, "NodeNotReady"), then MarkPodsNotReady.
        self.recorder.record(
            &Object::Node(node),
            NORMAL,
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
            trace.clone(),
        );
        for pod in self.pods {
            let Some(status) = mark_pod_not_ready(&pod, wall) else {
                continue;
            };
            let mut p = (*pod).clone();
            p.status = Some(status);
            let res = self
                .api
                .send(Update {
                    object: Object::Pod(p.into()),
                    subresource: Subresource::Status,
                    options: WriteOptions::default(),
                    trace: trace.clone(),
                })
                .await
                .map_err(ApiError::unreachable)?;
            match res {
                Ok(stored) => self.recorder.record(
                    &stored,
                    WARNING,
                    "NodeNotReady",
                    "Node is not ready".into(),
                    trace.clone(),
                ),
                Err(ApiError::NotFound { .. }) | Err(ApiError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Actor for NodeLifecycleController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = self.clock.period(self.options.monitor_period);
        ctx.run_interval(every.max(MIN_REAL_MONITOR_PERIOD), |act, ctx| {
            act.monitor_node_health(ctx)
        });
    }
}
