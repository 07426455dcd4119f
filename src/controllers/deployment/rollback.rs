//! Rollbacks. In apps/v1 there is no `rollbackTo` (upstream's `rollback.go` serves the
//! deprecated extensions/v1beta1 field): `kubectl rollout undo` writes an old ReplicaSet's
//! template back into the deployment. The sync then finds that RS as the *new* one
//! (`FindNewReplicaSet` compares templates with [`equal_ignore_hash`]) and, instead of
//! creating one, gives it the next revision — keeping its earlier revisions in the
//! `deployment.kubernetes.io/revision-history` annotation. That is this file:
//! `SetNewReplicaSetAnnotations` of `util/deployment_util.go`.
//!
//! [`equal_ignore_hash`]: super::util::equal_ignore_hash

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::util::*;

/// `SetNewReplicaSetAnnotations`: copy the deployment's annotations, raise the RS's
/// revision to `new_revision` if it is lower (recording the old one in the history when
/// the RS had one: a rollback), and on creation set the replicas annotations. True if
/// anything changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
    rev_history_limit_in_chars: usize,
) -> bool {
    let mut changed = copy_deployment_annotations_to_replica_set(d, rs);
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_revision = a.get(REVISION_ANNOTATION).cloned();
    let old_int: i64 = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(r) => match r.parse() {
            Ok(v) => v,
            Err(_) => {
                tracing::warn!(revision = r, "updating replica set revision: not a number");
                return false;
            }
        },
    };
    let Ok(new_int) = new_revision.parse::<i64>() else {
        return false;
    };
    if old_int < new_int {
        a.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        changed = true;
    }
    if let Some(old) = old_revision.filter(|_| old_int < new_int) {
        let history = a
            .get(REVISION_HISTORY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        if history.is_empty() {
            a.insert(REVISION_HISTORY_ANNOTATION.into(), old);
        } else {
            let revs: Vec<&str> = history.split(',').collect();
            let mut total = history.len() + old.len() + 1;
            let mut start = 0;
            while total > rev_history_limit_in_chars && start < revs.len() {
                total -= revs[start].len() + 1;
                start += 1;
            }
            if total <= rev_history_limit_in_chars {
                let mut kept: Vec<&str> = revs[start..].to_vec();
                kept.push(&old);
                a.insert(REVISION_HISTORY_ANNOTATION.into(), kept.join(","));
            } else {
                tracing::warn!(
                    limit = rev_history_limit_in_chars,
                    "not appending revision to revision-history: over the limit"
                );
            }
        }
    }
    if !exists {
        let desired = replicas(d);
        changed |= set_replicas_annotations(rs, desired, desired + max_surge(d));
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs_with(rev: Option<&str>, history: Option<&str>) -> ReplicaSet {
        let mut a = BTreeMap::new();
        if let Some(r) = rev {
            a.insert(REVISION_ANNOTATION.to_string(), r.to_string());
        }
        if let Some(h) = history {
            a.insert(REVISION_HISTORY_ANNOTATION.to_string(), h.to_string());
        }
        let mut rs = ReplicaSet::default();
        rs.metadata.annotations = Some(a);
        rs
    }

    /// A deployment as the API server stores it: with apps/v1's defaults.
    fn defaulted() -> Deployment {
        let mut obj = crate::api::Object::Deployment(Deployment::default().into());
        crate::api::defaults::apply(&mut obj);
        match obj {
            crate::api::Object::Deployment(d) => std::sync::Arc::unwrap_or_clone(d),
            _ => unreachable!("defaulting keeps the kind"),
        }
    }

    fn ann(rs: &ReplicaSet, k: &str) -> Option<String> {
        rs.metadata.annotations.as_ref()?.get(k).cloned()
    }

    #[test]
    fn rolling_back_records_the_revision_history() {
        let d = defaulted();
        // (revision, history, new revision, limit) → (revision, history)
        let cases = [
            (Some("1"), None, "3", 2000, "3", Some("1")),
            (Some("3"), Some("1"), "5", 2000, "5", Some("1,3")),
            (Some("5"), Some("1,3"), "4", 2000, "5", Some("1,3")),
            (None, None, "1", 2000, "1", None),
            // Over the limit: the oldest entries go first.
            (Some("30"), Some("10,20"), "40", 5, "40", Some("20,30")),
        ];
        for (rev, hist, new, limit, want_rev, want_hist) in cases {
            let mut rs = rs_with(rev, hist);
            set_new_replica_set_annotations(&d, &mut rs, new, true, limit);
            assert_eq!(ann(&rs, REVISION_ANNOTATION).as_deref(), Some(want_rev));
            assert_eq!(ann(&rs, REVISION_HISTORY_ANNOTATION).as_deref(), want_hist);
        }
    }

    #[test]
    fn annotations_are_copied_except_the_deployment_machinery() {
        let mut d = defaulted();
        d.metadata.annotations = Some(
            [
                ("team", "web"),
                (REVISION_ANNOTATION, "9"),
                (LAST_APPLIED_ANNOTATION, "{}"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let mut rs = ReplicaSet::default();
        assert!(set_new_replica_set_annotations(
            &d, &mut rs, "2", false, 2000
        ));
        assert_eq!(ann(&rs, "team").as_deref(), Some("web"));
        assert_eq!(ann(&rs, REVISION_ANNOTATION).as_deref(), Some("2"));
        assert_eq!(ann(&rs, LAST_APPLIED_ANNOTATION), None);
        assert_eq!(ann(&rs, DESIRED_REPLICAS_ANNOTATION).as_deref(), Some("1"));
        assert_eq!(ann(&rs, MAX_REPLICAS_ANNOTATION).as_deref(), Some("2"));
        assert!(!set_new_replica_set_annotations(
            &d, &mut rs, "2", true, 2000
        ));
    }
}
