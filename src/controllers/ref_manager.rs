//! Adoption and release by selector: which objects a controller owns. Mirrors `ClaimObject`
//! in `pkg/controller/controller_ref_manager.go`, as plain decisions; the controller performs
//! them (an update adding or removing the ownerReference).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// What a controller does with one candidate object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours already, and the selector matches.
    Owned,
    /// An orphan that matches: adopt it (add our controller ownerReference).
    Adopt,
    /// Ours, but the selector no longer matches: release it (remove our ownerReference).
    Release,
    /// Someone else's, or not a candidate.
    Ignore,
}

/// Decide what `controller` does with `obj`, whose labels do (`matches`) or do not match the
/// controller's selector. Mirrors `BaseControllerRefManager.ClaimObject`: a controller being
/// deleted neither adopts nor releases; an object being deleted is not adopted; adoption stays
/// within the controller's namespace.
pub fn claim(controller: &ObjectMeta, obj: &ObjectMeta, matches: bool) -> Claim {
    let ours = controller.uid.as_deref().unwrap_or_default();
    let deleting = controller.deletion_timestamp.is_some();
    if let Some(r) = controller_ref(obj) {
        if r.uid != ours {
            return Claim::Ignore;
        }
        if matches {
            return Claim::Owned;
        }
        return if deleting {
            Claim::Ignore
        } else {
            Claim::Release
        };
    }
    if deleting || !matches || obj.deletion_timestamp.is_some() {
        return Claim::Ignore;
    }
    if controller
        .namespace
        .as_deref()
        .is_some_and(|ns| !ns.is_empty())
        && controller.namespace != obj.namespace
    {
        return Claim::Ignore;
    }
    Claim::Adopt
}

/// The controller ownerReference of `meta` (`GetControllerOf`).
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// `metav1.NewControllerRef`: a controller reference to `owner` that blocks its foreground
/// deletion until the dependent is gone.
pub fn new_controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `obj` adopted: `reference` appended to its ownerReferences.
pub fn adopted(obj: &ObjectMeta, reference: OwnerReference) -> ObjectMeta {
    let mut m = obj.clone();
    m.owner_references
        .get_or_insert_with(Vec::new)
        .push(reference);
    m
}

/// `obj` without the ownerReferences to `uids` (release, orphaning, dangling references).
/// `None` when there is nothing to remove.
pub fn without_owners(obj: &ObjectMeta, uids: &[&str]) -> Option<ObjectMeta> {
    let refs = obj.owner_references.as_ref()?;
    if !refs.iter().any(|r| uids.contains(&r.uid.as_str())) {
        return None;
    }
    let mut m = obj.clone();
    let kept: Vec<OwnerReference> = refs
        .iter()
        .filter(|r| !uids.contains(&r.uid.as_str()))
        .cloned()
        .collect();
    m.owner_references = (!kept.is_empty()).then_some(kept);
    Some(m)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn meta(ns: &str, uid: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(uid.into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    fn owned_by(mut m: ObjectMeta, owner: &ObjectMeta) -> ObjectMeta {
        m.owner_references = Some(vec![new_controller_ref("apps/v1", "ReplicaSet", owner)]);
        m
    }

    fn deleting(mut m: ObjectMeta) -> ObjectMeta {
        m.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        m
    }

    /// The adoption table of `ClaimObject`: owned, adopted, released, ignored.
    #[test]
    fn adoption_and_release_follow_the_selector_and_the_owner() {
        let rs = meta("default", "rs");
        let other = meta("default", "other");
        let cases = [
            (
                "ours and matching",
                &rs,
                owned_by(meta("default", "p"), &rs),
                true,
                Claim::Owned,
            ),
            (
                "ours, no longer matching",
                &rs,
                owned_by(meta("default", "p"), &rs),
                false,
                Claim::Release,
            ),
            (
                "someone else's",
                &rs,
                owned_by(meta("default", "p"), &other),
                true,
                Claim::Ignore,
            ),
            (
                "orphan matching",
                &rs,
                meta("default", "p"),
                true,
                Claim::Adopt,
            ),
            (
                "orphan not matching",
                &rs,
                meta("default", "p"),
                false,
                Claim::Ignore,
            ),
            (
                "orphan being deleted",
                &rs,
                deleting(meta("default", "p")),
                true,
                Claim::Ignore,
            ),
            (
                "orphan in another namespace",
                &rs,
                meta("kube-system", "p"),
                true,
                Claim::Ignore,
            ),
        ];
        for (case, controller, obj, matches, want) in cases {
            assert_eq!(claim(controller, &obj, matches), want, "{case}");
        }
        let dying = deleting(rs.clone());
        assert_eq!(
            claim(&dying, &meta("default", "p"), true),
            Claim::Ignore,
            "a deleting controller adopts nothing"
        );
        assert_eq!(
            claim(&dying, &owned_by(meta("default", "p"), &rs), false),
            Claim::Ignore,
            "a deleting controller releases nothing"
        );
    }

    #[test]
    fn release_removes_only_the_given_owner() {
        let rs = meta("default", "rs");
        let p = owned_by(meta("default", "p"), &rs);
        let released = without_owners(&p, &["rs"]).expect("a change");
        assert_eq!(released.owner_references, None);
        assert!(without_owners(&p, &["other"]).is_none());
        let adopted = adopted(
            &meta("default", "q"),
            new_controller_ref("apps/v1", "ReplicaSet", &rs),
        );
        let r = controller_ref(&adopted).expect("a controller ref");
        assert_eq!((r.uid.as_str(), r.block_owner_deletion), ("rs", Some(true)));
    }
}
