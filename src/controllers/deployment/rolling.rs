//! The RollingUpdate strategy. Mirrors `pkg/controller/deployment/rolling.go`.

use super::sync::Syncer;
use super::util::*;
use super::SyncError;

impl Syncer<'_> {
    /// `rolloutRolling`: scale the new RS up within maxSurge; if nothing was scaled up,
    /// scale old RSs down within maxUnavailable; clean up history once complete; then the
    /// rollout status.
    pub(super) fn rollout_rolling(&mut self) -> Result<(), SyncError> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(true);
        let Some(new) = new else {
            // Unreachable: creation was asked for.
            return Ok(());
        };
        if self.reconcile_new_replica_set(new)? {
            self.sync_rollout_status(Some(new));
            return Ok(());
        }
        let active_old = self.active(&old);
        if self.reconcile_old_replica_sets(&active_old, new) {
            self.sync_rollout_status(Some(new));
            return Ok(());
        }
        let status = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &status) {
            self.cleanup_deployment(&old);
        }
        self.sync_rollout_status(Some(new));
        Ok(())
    }

    /// `reconcileNewReplicaSet`: true if the new RS was scaled.
    pub(super) fn reconcile_new_replica_set(&mut self, new: usize) -> Result<bool, SyncError> {
        let want = self.replicas();
        let cur = rs_replicas(&self.rss[new]);
        if cur == want {
            return Ok(false);
        }
        if cur > want {
            return Ok(self.scale_replica_set_and_record_event(new, want));
        }
        let count = new_rs_new_replicas(&self.d, self.rss.iter(), &self.rss[new])?;
        Ok(self.scale_replica_set_and_record_event(new, count))
    }

    /// `reconcileOldReplicaSets`: scale old RSs down as far as availability allows — first
    /// their unhealthy replicas, then healthy ones. True if anything was scaled down.
    pub(super) fn reconcile_old_replica_sets(&mut self, old: &[usize], new: usize) -> bool {
        let old_pods = replica_count(self.refs(old));
        if old_pods == 0 {
            return false;
        }
        let all_pods = replica_count(self.rss.iter());
        let min_available = self.replicas() - max_unavailable(&self.d);
        let new_rs = &self.rss[new];
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy_replicas(old, max_scaled_down);
        let scaled = self.scale_down_old_replica_sets_for_rolling_update(old);
        cleaned + scaled > 0
    }

    /// `cleanupUnhealthyReplicas`: scale down, oldest first, the replicas of old RSs that are
    /// not available, at most `max_cleanup` in all. Returns how many.
    fn cleanup_unhealthy_replicas(&mut self, old: &[usize], max_cleanup: i32) -> i32 {
        let mut old = old.to_vec();
        self.sort_idx(&mut old, by_creation_timestamp);
        let mut total = 0;
        for i in old {
            if total >= max_cleanup {
                break;
            }
            let rs = &self.rss[i];
            let (replicas, available) = (rs_replicas(rs), rs_available(rs));
            if replicas == 0 || replicas == available {
                continue;
            }
            let down = (max_cleanup - total).min(replicas - available);
            self.scale_replica_set_and_record_event(i, replicas - down);
            total += down;
        }
        total
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`: scale old RSs down, oldest first, by as many
    /// available replicas as exceed `replicas - maxUnavailable`. Returns how many.
    fn scale_down_old_replica_sets_for_rolling_update(&mut self, old: &[usize]) -> i32 {
        let min_available = self.replicas() - max_unavailable(&self.d);
        let available = available_replica_count(self.rss.iter());
        if available <= min_available {
            return 0;
        }
        let mut old = old.to_vec();
        self.sort_idx(&mut old, by_creation_timestamp);
        let to_scale_down = available - min_available;
        let mut total = 0;
        for i in old {
            if total >= to_scale_down {
                break;
            }
            let replicas = rs_replicas(&self.rss[i]);
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(to_scale_down - total);
            self.scale_replica_set_and_record_event(i, replicas - down);
            total += down;
        }
        total
    }
}
