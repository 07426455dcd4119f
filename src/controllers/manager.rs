//! kube-controller-manager: one [`SharedInformerFactory`] (one list-watch per kind, however
//! many controllers read it) and every controller actor over it.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use super::deployment::DeploymentController;
use super::event_ttl::EventTtlController;
use super::garbagecollector::GarbageCollector;
use super::nodelifecycle::{NodeLifecycleController, NodeLifecycleOptions};
use super::replicaset::{ReplicaSetController, ReplicaSetOptions};
use super::sync_span::SyncTracer;
use super::tainteviction::TaintEvictionController;
use crate::apiserver::ApiServer;
use crate::clock::{Clock, SimClock};
use crate::config::ControllersConfig;
use crate::informer::SharedInformerFactory;
use crate::telemetry::{Component, Telemetry};

/// The running controllers.
pub struct ControllerManager {
    pub informers: Arc<SharedInformerFactory>,
    pub deployment: Addr<DeploymentController>,
    pub replicaset: Addr<ReplicaSetController>,
    pub garbage_collector: Addr<GarbageCollector>,
    pub event_ttl: Addr<EventTtlController>,
    // --- node lifecycle (issue 5) ---
    pub node_lifecycle: Addr<NodeLifecycleController>,
    pub taint_eviction: Addr<TaintEvictionController>,
    // --- end node lifecycle ---
}

impl ControllerManager {
    /// Start every controller on the current actix system, then the informers they share.
    /// Each controller waits for its caches to sync before its first sync. Node health and
    /// taint eviction run in real time; see [`ControllerManager::start_with_clock`].
    pub fn start(
        api: Addr<ApiServer>,
        config: &ControllersConfig,
        telemetry: &Telemetry,
    ) -> ControllerManager {
        Self::start_with_clock(api, config, SimClock::real().shared(), telemetry)
    }

    /// [`ControllerManager::start`] with the simulated clock (`[simulation]`) that scales the
    /// node lifecycle's periods and the evictions' `tolerationSeconds`.
    pub fn start_with_clock(
        api: Addr<ApiServer>,
        config: &ControllersConfig,
        clock: Arc<dyn Clock>,
        telemetry: &Telemetry,
    ) -> ControllerManager {
        let informers = Arc::new(SharedInformerFactory::new(api.clone()));
        let tracer = || {
            SyncTracer::new(
                telemetry.tracer(Component::ControllerManager),
                telemetry.propagation(),
            )
        };
        let deployment = DeploymentController::start(
            api.clone(),
            &informers,
            tracer(),
            config.deployment_workers,
        );
        let replicaset = ReplicaSetController::start(
            api.clone(),
            &informers,
            tracer(),
            ReplicaSetOptions {
                workers: config.replicaset_workers,
                burst_replicas: config.replicaset_burst_replicas,
            },
        );
        let garbage_collector =
            GarbageCollector::start(api.clone(), &informers, tracer(), config.gc_workers);
        let event_ttl = EventTtlController::start(
            api.clone(),
            Duration::from_secs(config.event_ttl_seconds),
            Duration::from_secs_f64(config.event_ttl_sweep_seconds),
        );
        // --- node lifecycle (issue 5) ---
        let node_lifecycle = NodeLifecycleController::start(
            api.clone(),
            &informers,
            tracer(),
            clock.clone(),
            NodeLifecycleOptions::from(config),
        );
        let taint_eviction =
            TaintEvictionController::start(api.clone(), &informers, tracer(), clock);
        // --- end node lifecycle ---
        informers.start();
        ControllerManager {
            informers,
            deployment,
            replicaset,
            garbage_collector,
            event_ttl,
            node_lifecycle,
            taint_eviction,
        }
    }

    /// [`ControllerManager::start_with_clock`] on `arbiter`'s thread: the controllers and
    /// their informers then run beside the kubelets instead of sharing their thread, as
    /// kube-controller-manager is a process of its own. `None` if the arbiter has stopped.
    pub async fn start_on(
        arbiter: &actix::ArbiterHandle,
        api: Addr<ApiServer>,
        config: &ControllersConfig,
        clock: Arc<dyn Clock>,
        telemetry: &Telemetry,
    ) -> Option<ControllerManager> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (config, telemetry) = (config.clone(), telemetry.clone());
        let started = arbiter.spawn_fn(move || {
            let _ = tx.send(Self::start_with_clock(api, &config, clock, &telemetry));
        });
        if !started {
            return None;
        }
        rx.await.ok()
    }

    /// Whether every informer has listed once.
    pub fn has_synced(&self) -> bool {
        self.informers.has_synced()
    }

    /// Stop the informers; the actors then have nothing left to do.
    pub fn stop(&self) {
        self.informers.stop();
    }
}
