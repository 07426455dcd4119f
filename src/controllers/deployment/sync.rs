//! Scaling, the new ReplicaSet, history cleanup and status. Mirrors
//! `pkg/controller/deployment/sync.go` and the top of `deployment_controller.go`
//! (`syncDeployment`).
//!
//! Upstream writes as it goes and continues with what the API server returned. Here the
//! [`Syncer`] keeps a working copy of the deployment and of every ReplicaSet, applies each
//! decision to it, and records the write as an [`Action`]; later steps see earlier ones
//! exactly as upstream's do. Writes to one ReplicaSet are folded into one action (so a
//! sync never conflicts with itself), and the deployment's status is written once, at the
//! end, if it changed.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use super::util::{self, reason, *};
use super::{Action, EventIntent, EventType, Requeue, SyncError, SyncResult};

/// Pods by the uid of the ReplicaSet that controls them (`getPodMapForDeployment`).
pub type PodMap = HashMap<String, Vec<Arc<Pod>>>;

/// The working state of one sync. See the module documentation.
pub struct Syncer<'a> {
    /// The deployment as read from the cache.
    pub(super) original: &'a Deployment,
    /// The working copy (the API server stored it with apps/v1's defaults).
    pub(super) d: Deployment,
    /// Working copies of the deployment's ReplicaSets, oldest first
    /// (`ReplicaSetsByCreationTimestamp`); one created in this sync is last.
    pub(super) rss: Vec<ReplicaSet>,
    pub(super) actions: Vec<Action>,
    pub(super) events: Vec<EventIntent>,
    pub(super) requeue: Option<Requeue>,
    pub(super) now: Timestamp,
}

/// `syncDeployment`: what to do for this deployment now.
///
/// `rss` are the ReplicaSets the deployment controls (its owner index: adoption and
/// orphaning are the caller's), `pods` the pods of those ReplicaSets by RS uid (only read
/// by Recreate, to wait for old pods to be gone).
pub fn sync_deployment(
    d: &Deployment,
    rss: &[Arc<ReplicaSet>],
    pods: &PodMap,
    now: Timestamp,
) -> Result<SyncResult, SyncError> {
    let mut s = Syncer::new(d, rss, now);
    s.run(pods)?;
    Ok(s.finish())
}

/// The answer to an AlreadyExists from [`Action::CreateReplicaSet`] (upstream's hash
/// collision handling in `getNewReplicaSet`): if the existing RS is this deployment's and
/// has its template, nothing is wrong (the cache was behind); otherwise it is a hash
/// collision, and the deployment's `status.collisionCount` is bumped so the next sync
/// computes another name. Returns the status update to send, if any.
pub fn on_create_conflict(d: &Deployment, existing: &ReplicaSet) -> Option<Deployment> {
    let ours = crate::informer::controller_uid(&existing.metadata)
        .is_some_and(|uid| Some(uid) == d.metadata.uid.as_deref());
    let same = existing
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .is_some_and(|t| equal_ignore_hash(&util::template(d), t));
    if ours && same {
        return None;
    }
    let mut d = d.clone();
    let status = d.status.get_or_insert_with(Default::default);
    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
    Some(d)
}

impl<'a> Syncer<'a> {
    pub fn new(d: &'a Deployment, rss: &[Arc<ReplicaSet>], now: Timestamp) -> Self {
        let mut rss: Vec<ReplicaSet> = rss.iter().map(|r| (**r).clone()).collect();
        rss.sort_by(by_creation_timestamp);
        Syncer {
            original: d,
            d: d.clone(),
            rss,
            actions: Vec::new(),
            events: Vec::new(),
            requeue: None,
            now,
        }
    }

    fn run(&mut self, pods: &PodMap) -> Result<(), SyncError> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let selector_empty = spec
            .selector
            .match_labels
            .as_ref()
            .is_none_or(|m| m.is_empty())
            && spec
                .selector
                .match_expressions
                .as_ref()
                .is_none_or(|m| m.is_empty());
        if selector_empty {
            self.event(
                EventType::Warning,
                reason::SELECTING_ALL,
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let status = self.d.status.get_or_insert_with(Default::default);
            if status.observed_generation.unwrap_or(0) < generation(self.original) {
                status.observed_generation = Some(generation(self.original));
            }
            return Ok(());
        }
        if self.d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only();
        }
        self.check_paused_conditions();
        if paused(&self.d) {
            return self.sync();
        }
        if self.is_scaling_event()? {
            return self.sync();
        }
        match strategy_type(&self.d) {
            RECREATE => self.rollout_recreate(pods),
            ROLLING_UPDATE => self.rollout_rolling(),
            other => Err(SyncError::UnsupportedStrategy(other.to_string())),
        }
    }

    /// The actions: ReplicaSet writes in order, then one status write of the deployment if
    /// its annotations or its status changed.
    pub fn finish(mut self) -> SyncResult {
        let original = self.original;
        if self.d.metadata.annotations != original.metadata.annotations
            || self.d.status != original.status
        {
            let mut upd = original.clone();
            upd.metadata.annotations = self.d.metadata.annotations.clone();
            upd.status = self.d.status.clone();
            self.actions.push(Action::UpdateDeploymentStatus(upd));
        }
        SyncResult {
            actions: self.actions,
            events: self.events,
            requeue: self.requeue,
        }
    }

    pub(super) fn event(&mut self, type_: EventType, reason: &str, message: String) {
        self.events.push(EventIntent {
            type_,
            reason: reason.to_string(),
            message,
        });
    }

    pub(super) fn replicas(&self) -> i32 {
        util::replicas(&self.d)
    }

    pub(super) fn rs_name(&self, i: usize) -> String {
        util::name(&self.rss[i].metadata.name).to_string()
    }

    /// Record a write of ReplicaSet `i` (folded into an earlier create or update of it).
    pub(super) fn write_rs(&mut self, i: usize, rs: ReplicaSet) {
        self.rss[i] = rs.clone();
        let name = rs.metadata.name.clone();
        for a in self.actions.iter_mut() {
            match a {
                Action::CreateReplicaSet(r) | Action::UpdateReplicaSet(r)
                    if r.metadata.name == name =>
                {
                    let created = matches!(a, Action::CreateReplicaSet(_));
                    let mut rs = rs;
                    if created {
                        // The create's own fields: the working copy's timestamp is ours.
                        rs.metadata.creation_timestamp = None;
                        *a = Action::CreateReplicaSet(rs);
                    } else {
                        *a = Action::UpdateReplicaSet(rs);
                    }
                    return;
                }
                _ => {}
            }
        }
        self.actions.push(Action::UpdateReplicaSet(rs));
    }

    /// Indices of the active (replicas > 0) ReplicaSets among `idx` (`FilterActiveReplicaSets`).
    pub(super) fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|&i| rs_replicas(&self.rss[i]) > 0)
            .collect()
    }

    pub(super) fn sort_idx(
        &self,
        idx: &mut [usize],
        by: fn(&ReplicaSet, &ReplicaSet) -> std::cmp::Ordering,
    ) {
        idx.sort_by(|&a, &b| by(&self.rss[a], &self.rss[b]));
    }

    /// `FindNewReplicaSet`: the oldest RS whose template equals the deployment's.
    pub(super) fn find_new(&self) -> Option<usize> {
        let t = util::template(&self.d);
        (0..self.rss.len()).find(|&i| {
            self.rss[i]
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|rt| equal_ignore_hash(rt, &t))
        })
    }

    /// `getAllReplicaSetsAndSyncRevision`: (new RS, all old RSs). With `create`, the new RS
    /// is created if missing.
    pub(super) fn get_all_replica_sets_and_sync_revision(
        &mut self,
        create: bool,
    ) -> (Option<usize>, Vec<usize>) {
        let existing = self.find_new();
        let old: Vec<usize> = (0..self.rss.len())
            .filter(|&i| Some(i) != existing)
            .collect();
        let new = self.get_new_replica_set(existing, &old, create);
        (new, old)
    }

    /// `getNewReplicaSet`: bring the existing new RS's revision and annotations up to date
    /// (a rollback bumps an old RS's revision here), or create it.
    fn get_new_replica_set(
        &mut self,
        existing: Option<usize>,
        old: &[usize],
        create: bool,
    ) -> Option<usize> {
        let max_old_revision = max_revision(old.iter().map(|&i| &self.rss[i]));
        let new_revision = (max_old_revision + 1).to_string();

        if let Some(i) = existing {
            let mut rs = self.rss[i].clone();
            let annotations_updated = super::rollback::set_new_replica_set_annotations(
                &self.d,
                &mut rs,
                &new_revision,
                true,
                MAX_REV_HISTORY_LENGTH_IN_CHARS,
            );
            let min_ready = min_ready_seconds(&self.d);
            let spec = rs.spec.get_or_insert_with(Default::default);
            let min_ready_needs_update = spec.min_ready_seconds != min_ready;
            if annotations_updated || min_ready_needs_update {
                spec.min_ready_seconds = min_ready;
                self.write_rs(i, rs);
                return Some(i);
            }
            // The RS's revision is the truth: the deployment's follows it.
            let rev = self.rss[i]
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            set_deployment_revision(&mut self.d, &rev);
            if progress_deadline(&self.d).is_some()
                && get_condition(self.d.status.as_ref(), PROGRESSING).is_none()
            {
                let msg = format!("Found new replica set {:?}", self.rs_name(i));
                let cond = new_condition(PROGRESSING, "True", reason::FOUND_NEW_RS, msg, self.now);
                set_condition(self.d.status.get_or_insert_with(Default::default), cond);
            }
            return Some(i);
        }
        if !create {
            return None;
        }

        // Create the new ReplicaSet.
        let mut template = util::template(&self.d);
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision_count);
        let tmeta = template.metadata.get_or_insert_with(ObjectMeta::default);
        tmeta
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let labels = tmeta.labels.clone();
        let mut selector = self.d.spec.clone().unwrap_or_default().selector;
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let d_name = util::name(&self.d.metadata.name).to_string();
        let rs_name = format!("{d_name}-{hash}");
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: d_name,
                    uid: self.d.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                labels,
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready_seconds(&self.d),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = old.iter().map(|&i| &self.rss[i]).chain([&rs]).collect();
        // The strategy was checked before: this cannot fail for a valid deployment, and
        // upstream returns the error (nothing created) if it does.
        let count = new_rs_new_replicas(&self.d, all, &rs).unwrap_or(0);
        set_rs_replicas(&mut rs, count);
        super::rollback::set_new_replica_set_annotations(
            &self.d,
            &mut rs,
            &new_revision,
            false,
            MAX_REV_HISTORY_LENGTH_IN_CHARS,
        );
        self.actions.push(Action::CreateReplicaSet(rs.clone()));
        // The working copy stands for what the API server will return.
        rs.metadata.creation_timestamp = Some(Time(self.now));
        self.rss.push(rs);
        let i = self.rss.len() - 1;
        if count > 0 {
            self.event(
                EventType::Normal,
                reason::SCALING_REPLICA_SET,
                format!("Scaled up replica set {rs_name} from 0 to {count}"),
            );
        }
        set_deployment_revision(&mut self.d, &new_revision);
        if progress_deadline(&self.d).is_some() {
            let msg = format!("Created new replica set {rs_name:?}");
            let cond = new_condition(PROGRESSING, "True", reason::NEW_RS_CREATED, msg, self.now);
            set_condition(self.d.status.get_or_insert_with(Default::default), cond);
        }
        Some(i)
    }

    /// `sync`: scaling (and cleanup when paused), then status. Used for paused deployments
    /// and scaling events — no rollout.
    pub(super) fn sync(&mut self) -> Result<(), SyncError> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false);
        self.scale(new, &old);
        if paused(&self.d) {
            self.cleanup_deployment(&old);
        }
        self.sync_deployment_status(new);
        Ok(())
    }

    fn sync_status_only(&mut self) -> Result<(), SyncError> {
        let (new, _) = self.get_all_replica_sets_and_sync_revision(false);
        self.sync_deployment_status(new);
        Ok(())
    }

    /// `checkPausedConditions`: Progressing Unknown "DeploymentPaused" / "DeploymentResumed".
    fn check_paused_conditions(&mut self) {
        if progress_deadline(&self.d).is_none() {
            return;
        }
        let cond = get_condition(self.d.status.as_ref(), PROGRESSING);
        if cond.is_some_and(|c| c.reason.as_deref() == Some(reason::TIMED_OUT)) {
            return;
        }
        let paused_cond = cond.is_some_and(|c| c.reason.as_deref() == Some(reason::PAUSED));
        let new = if paused(&self.d) && !paused_cond {
            new_condition(
                PROGRESSING,
                "Unknown",
                reason::PAUSED,
                "Deployment is paused",
                self.now,
            )
        } else if !paused(&self.d) && paused_cond {
            new_condition(
                PROGRESSING,
                "Unknown",
                reason::RESUMED,
                "Deployment is resumed",
                self.now,
            )
        } else {
            return;
        };
        set_condition(self.d.status.get_or_insert_with(Default::default), new);
    }

    /// `isScalingEvent`: an active RS's desired-replicas annotation differs from
    /// `spec.replicas`.
    fn is_scaling_event(&mut self) -> Result<bool, SyncError> {
        let (new, old) = self.get_all_replica_sets_and_sync_revision(false);
        let all: Vec<usize> = old.into_iter().chain(new).collect();
        let want = self.replicas();
        Ok(self
            .active(&all)
            .into_iter()
            .any(|i| desired_replicas_annotation(&self.rss[i]).is_some_and(|d| d != want)))
    }

    /// `scaleReplicaSetAndRecordEvent`: scale if the size differs.
    pub(super) fn scale_replica_set_and_record_event(&mut self, i: usize, new_scale: i32) -> bool {
        let cur = rs_replicas(&self.rss[i]);
        if cur == new_scale {
            return false;
        }
        let op = if cur < new_scale { "up" } else { "down" };
        self.scale_replica_set(i, new_scale, op)
    }

    /// `scaleReplicaSet`: write the size and the replicas annotations if either changed;
    /// true (and an event) if the size did.
    pub(super) fn scale_replica_set(&mut self, i: usize, new_scale: i32, op: &str) -> bool {
        let desired = self.replicas();
        let max = desired + max_surge(&self.d);
        let rs = &self.rss[i];
        let old_scale = rs_replicas(rs);
        let size_needs_update = old_scale != new_scale;
        if !size_needs_update && !replicas_annotations_need_update(rs, desired, max) {
            return false;
        }
        let mut rs = rs.clone();
        set_rs_replicas(&mut rs, new_scale);
        set_replicas_annotations(&mut rs, desired, max);
        self.write_rs(i, rs);
        if size_needs_update {
            let name = self.rs_name(i);
            self.event(
                EventType::Normal,
                reason::SCALING_REPLICA_SET,
                format!("Scaled {op} replica set {name} from {old_scale} to {new_scale}"),
            );
        }
        size_needs_update
    }

    /// `FindActiveOrLatest`: the only active RS; or, if none is active, the new RS or else
    /// the newest old one; `None` if several are active.
    fn find_active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
        if new.is_none() && old.is_empty() {
            return None;
        }
        let mut old = old.to_vec();
        self.sort_idx(&mut old, by_creation_timestamp);
        old.reverse();
        let all: Vec<usize> = old.iter().copied().chain(new).collect();
        let active = self.active(&all);
        match active.len() {
            0 => new.or_else(|| old.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// `scale`: bring the total to `spec.replicas` (+ surge while rolling out): all of it to
    /// the only active RS; old RSs to zero once the new one is saturated; otherwise
    /// proportionally to each active RS's size, the leftover to the largest.
    pub(super) fn scale(&mut self, new: Option<usize>, old: &[usize]) {
        if let Some(i) = self.find_active_or_latest(new, old) {
            if rs_replicas(&self.rss[i]) != self.replicas() {
                self.scale_replica_set_and_record_event(i, self.replicas());
            }
            return;
        }
        if is_saturated(&self.d, new.map(|i| &self.rss[i])) {
            for i in self.active(old) {
                self.scale_replica_set_and_record_event(i, 0);
            }
            return;
        }
        if !is_rolling_update(&self.d) {
            return;
        }
        let all_idx: Vec<usize> = old.iter().copied().chain(new).collect();
        let mut all = self.active(&all_idx);
        let total = replica_count(all.iter().map(|&i| &self.rss[i]));
        let allowed = if self.replicas() > 0 {
            self.replicas() + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - total;
        let op = match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => {
                self.sort_idx(&mut all, by_size_newer);
                "up"
            }
            std::cmp::Ordering::Less => {
                self.sort_idx(&mut all, by_size_older);
                "down"
            }
            std::cmp::Ordering::Equal => "",
        };
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
        for &i in &all {
            let rs = &self.rss[i];
            if to_add != 0 {
                let p = get_proportion(rs, &self.d, to_add, added);
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        for (k, &i) in all.iter().enumerate() {
            if k == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale_replica_set(i, sizes[k], op);
        }
    }

    /// `cleanupDeployment`: delete the oldest old ReplicaSets beyond `revisionHistoryLimit`
    /// that are fully scaled down, observed, and not already being deleted.
    pub(super) fn cleanup_deployment(&mut self, old: &[usize]) {
        let Some(limit) = revision_history_limit(&self.d) else {
            return;
        };
        let mut cleanable: Vec<usize> = old
            .iter()
            .copied()
            .filter(|&i| self.rss[i].metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - limit as i64;
        if diff <= 0 {
            return;
        }
        self.sort_idx(&mut cleanable, by_revision);
        for &i in cleanable.iter().take(diff as usize) {
            let rs = &self.rss[i];
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_actual(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
                || rs.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let name = self.rs_name(i);
            self.actions.retain(|a| {
                !matches!(a, Action::UpdateReplicaSet(r) if r.metadata.name.as_deref() == Some(&name))
            });
            self.actions.push(Action::DeleteReplicaSet {
                namespace: rs.metadata.namespace.clone().unwrap_or_default(),
                name,
            });
        }
    }

    /// The ReplicaSets of `new` + `old` as references, for the count helpers.
    pub(super) fn refs(&self, idx: &[usize]) -> Vec<&ReplicaSet> {
        idx.iter().map(|&i| &self.rss[i]).collect()
    }

    /// `calculateStatus`.
    pub(super) fn calculate_status(
        &self,
        new: Option<usize>,
    ) -> k8s_openapi::api::apps::v1::DeploymentStatus {
        let all: Vec<&ReplicaSet> = self.rss.iter().collect();
        let available = available_replica_count(all.iter().copied());
        let total = replica_count(all.iter().copied());
        let unavailable = (total - available).max(0);
        let cur = self.d.status.clone().unwrap_or_default();
        let mut status = k8s_openapi::api::apps::v1::DeploymentStatus {
            observed_generation: Some(generation(self.original)),
            replicas: Some(actual_replica_count(all.iter().copied())),
            updated_replicas: Some(actual_replica_count(new.map(|i| &self.rss[i]))),
            ready_replicas: Some(ready_replica_count(all.iter().copied())),
            available_replicas: Some(available),
            unavailable_replicas: Some(unavailable),
            collision_count: cur.collision_count,
            conditions: cur.conditions.clone(),
            terminating_replicas: cur.terminating_replicas,
        };
        let cond = if available >= self.replicas() - max_unavailable(&self.d) {
            new_condition(
                AVAILABLE,
                "True",
                reason::MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.",
                self.now,
            )
        } else {
            new_condition(
                AVAILABLE,
                "False",
                reason::MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.",
                self.now,
            )
        };
        set_condition(&mut status, cond);
        status
    }

    /// `syncDeploymentStatus`.
    pub(super) fn sync_deployment_status(&mut self, new: Option<usize>) {
        let status = self.calculate_status(new);
        self.d.status = Some(status);
    }
}
