//! The Progressing condition and the progress deadline. Mirrors
//! `pkg/controller/deployment/progress.go`.

use std::time::Duration;

use jiff::SignedDuration;
use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::sync::Syncer;
use super::util::{self, reason, *};
use super::Requeue;

impl Syncer<'_> {
    /// `syncRolloutStatus`: the status, and the Progressing condition — NewReplicaSetAvailable
    /// once complete, ReplicaSetUpdated on any progress (refreshing lastUpdateTime),
    /// ProgressDeadlineExceeded when nothing moved for `progressDeadlineSeconds`; the
    /// ReplicaFailure condition from the RSs. If nothing changed, maybe requeue to check the
    /// deadline later.
    pub(super) fn sync_rollout_status(&mut self, new: Option<usize>) {
        let mut status = self.calculate_status(new);
        let deadline = progress_deadline(&self.d);
        if deadline.is_none() {
            remove_condition(&mut status, PROGRESSING);
        }
        let cur = get_condition(self.d.status.as_ref(), PROGRESSING).cloned();
        let complete_before = status.replicas == status.updated_replicas
            && cur
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE));
        let d_name = util::name(&self.d.metadata.name).to_string();
        let subject = |verb: &str| match new {
            Some(i) => format!("ReplicaSet {:?} {verb}", self.rs_name(i)),
            None => format!("Deployment {d_name:?} {verb}"),
        };
        if deadline.is_some() && !complete_before {
            if deployment_complete(&self.d, &status) {
                let msg = subject("has successfully progressed.");
                let c = new_condition(PROGRESSING, "True", reason::NEW_RS_AVAILABLE, msg, self.now);
                set_condition(&mut status, c);
            } else if deployment_progressing(&self.d, &status) {
                let msg = subject("is progressing.");
                let mut c = new_condition(PROGRESSING, "True", reason::RS_UPDATED, msg, self.now);
                if let Some(cur) = &cur {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(&mut status, PROGRESSING);
                }
                set_condition(&mut status, c);
            } else if deployment_timed_out(&self.d, &status, self.now) {
                let msg = subject("has timed out progressing.");
                let c = new_condition(PROGRESSING, "False", reason::TIMED_OUT, msg, self.now);
                set_condition(&mut status, c);
            }
        }
        match self.replica_failure(new) {
            Some(c) => set_condition(&mut status, c),
            None => remove_condition(&mut status, REPLICA_FAILURE),
        }
        if self.d.status.as_ref() == Some(&status) {
            self.requeue = self.requeue_stuck_deployment(&status);
            return;
        }
        self.d.status = Some(status);
    }

    /// `getReplicaFailures`: the new RS's ReplicaFailure condition, else an old RS's.
    fn replica_failure(&self, new: Option<usize>) -> Option<DeploymentCondition> {
        let order = new
            .into_iter()
            .chain((0..self.rss.len()).filter(move |&i| Some(i) != new));
        for i in order {
            let conds = self.rss[i]
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref());
            if let Some(c) = conds
                .into_iter()
                .flatten()
                .find(|c| c.type_ == REPLICA_FAILURE)
            {
                return Some(DeploymentCondition {
                    type_: REPLICA_FAILURE.into(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                });
            }
        }
        None
    }

    /// `requeueStuckDeployment`: when a rollout shows no progress, look again when its
    /// deadline passes (`lastUpdateTime + progressDeadlineSeconds - now`, plus a second);
    /// under a second: now, rate-limited.
    fn requeue_stuck_deployment(&self, new: &DeploymentStatus) -> Option<Requeue> {
        let deadline = progress_deadline(&self.d)?;
        let cur = get_condition(self.d.status.as_ref(), PROGRESSING)?;
        if deployment_complete(&self.d, new) || cur.reason.as_deref() == Some(reason::TIMED_OUT) {
            return None;
        }
        let Time(updated) = cur.last_update_time.clone()?;
        let due = updated
            .checked_add(SignedDuration::from_secs(deadline as i64))
            .ok()?;
        let after = due.duration_since(self.now);
        if after < SignedDuration::from_secs(1) {
            return Some(Requeue::RateLimited);
        }
        let after = Duration::try_from(after).ok()? + Duration::from_secs(1);
        Some(Requeue::After(after))
    }
}
