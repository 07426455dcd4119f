//! kube-controller-manager: one [`SharedInformerFactory`] (one list-watch per kind, however
//! many controllers read it) and every controller actor over it.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use super::deployment::DeploymentController;
use super::event_ttl::EventTtlController;
use super::garbagecollector::GarbageCollector;
use super::replicaset::{ReplicaSetController, ReplicaSetOptions};
use super::sync_span::SyncTracer;
use crate::apiserver::ApiServer;
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
}

impl ControllerManager {
    /// Start every controller on the current actix system, then the informers they share.
    /// Each controller waits for its caches to sync before its first sync.
    pub fn start(
        api: Addr<ApiServer>,
        config: &ControllersConfig,
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
            api,
            Duration::from_secs(config.event_ttl_seconds),
            Duration::from_secs_f64(config.event_ttl_sweep_seconds),
        );
        informers.start();
        ControllerManager {
            informers,
            deployment,
            replicaset,
            garbage_collector,
            event_ttl,
        }
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
