//! The Recreate strategy. Mirrors `pkg/controller/deployment/recreate.go`.

use super::sync::{PodMap, Syncer};
use super::util::*;
use super::SyncError;

impl Syncer<'_> {
    /// `rolloutRecreate`: scale every old RS to zero; wait until no old pod is running; only
    /// then create (or find) the new RS and scale it to `spec.replicas`.
    pub(super) fn rollout_recreate(&mut self, pods: &PodMap) -> Result<(), SyncError> {
        // Do not create the new RS yet: never scale up before the old pods are gone.
        let (mut new, mut old) = self.get_all_replica_sets_and_sync_revision(false);
        let active_old = self.active(&old);
        if self.scale_down_old_replica_sets_for_recreate(&active_old) {
            self.sync_rollout_status(new);
            return Ok(());
        }
        if self.old_pods_running(new, &old, pods) {
            self.sync_rollout_status(new);
            return Ok(());
        }
        if new.is_none() {
            (new, old) = self.get_all_replica_sets_and_sync_revision(true);
        }
        if let Some(i) = new {
            let want = self.replicas();
            self.scale_replica_set_and_record_event(i, want);
        }
        // As upstream: the status as it was at the start of this sync.
        let status = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &status) {
            self.cleanup_deployment(&old);
        }
        self.sync_rollout_status(new);
        Ok(())
    }

    /// `scaleDownOldReplicaSetsForRecreate`: true if any was scaled.
    fn scale_down_old_replica_sets_for_recreate(&mut self, old: &[usize]) -> bool {
        let mut scaled = false;
        for &i in old {
            if rs_replicas(&self.rss[i]) == 0 {
                continue;
            }
            scaled |= self.scale_replica_set_and_record_event(i, 0);
        }
        scaled
    }

    /// `oldPodsRunning`: old RSs still report pods, or a pod of an old RS is not in a
    /// terminal phase (`Unknown` counts as running).
    fn old_pods_running(&self, new: Option<usize>, old: &[usize], pods: &PodMap) -> bool {
        if actual_replica_count(self.refs(old)) > 0 {
            return true;
        }
        let new_uid = new.and_then(|i| self.rss[i].metadata.uid.as_deref());
        pods.iter()
            .filter(|(uid, _)| Some(uid.as_str()) != new_uid)
            .flat_map(|(_, pods)| pods)
            .any(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Failed") | Some("Succeeded"))
            })
    }
}
