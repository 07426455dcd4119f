//! The ownerReferences graph. Mirrors `GraphBuilder.processGraphChanges` in
//! `pkg/controller/garbagecollector/graph_builder.go`, as a plain structure that answers each
//! observed change with the work it makes necessary.
//!
//! A node per object uid: its identity, its ownerReferences, the uids of its dependents,
//! whether it is being deleted, and which deletion finalizer it carries. An owner that a
//! dependent names but that has not been observed (yet, or ever) is a *virtual* node: it holds
//! the dependents until the owner is observed; whether it exists is checked with a live read
//! when a dependent is processed, never assumed from the cache.
//!
//! Worked example (`kubectl delete deployment web`, Background):
//! ```text
//! web (Deployment) ──owns──▶ web-7d9f (ReplicaSet) ──owns──▶ web-7d9f-x2kq9 (Pod) …
//! observe_deleted(web)       → AttemptToDelete(web-7d9f)          (its owner is gone)
//! GC deletes web-7d9f; observe_deleted(web-7d9f) → AttemptToDelete(each pod)
//! ```
//! Foreground: `web` is observed with `deletionTimestamp` + `foregroundDeletion` →
//! AttemptToDelete(web) and each dependent; when the last blocking dependent is observed
//! deleted → AttemptToDelete(web) again, which removes the finalizer. Orphan: `web` with the
//! `orphan` finalizer → AttemptToOrphan(web).

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::Kind;
use crate::apiserver::strategy::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// Who an object is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl Identity {
    pub fn of(kind: Kind, meta: &ObjectMeta) -> Identity {
        Identity {
            kind,
            namespace: meta.namespace.clone().filter(|n| !n.is_empty()),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
        }
    }

    /// `pod default/web-7d9f-x2kq9`, for span names and logs.
    pub fn describe(&self) -> String {
        let kind = self.kind.name().to_lowercase();
        match &self.namespace {
            Some(ns) => format!("{kind} {ns}/{}", self.name),
            None => format!("{kind} {}", self.name),
        }
    }
}

/// One object in the graph.
#[derive(Clone, Debug)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    /// Uids of the objects that name this one as an owner.
    pub dependents: BTreeSet<String>,
    /// `deletionTimestamp` is set.
    pub being_deleted: bool,
    /// Being deleted with the `foregroundDeletion` finalizer: waiting for its blocking
    /// dependents (`isDeletingDependents`).
    pub deleting_dependents: bool,
    /// Being deleted with the `orphan` finalizer.
    pub orphaning: bool,
    /// Known only from a dependent's ownerReference.
    pub virtual_: bool,
}

/// Work for the garbage collector's queue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum Work {
    /// `attemptToDeleteItem`: check this object's owners; delete it if none remains, or drop
    /// references to owners that are gone; for an owner in foreground deletion, remove the
    /// finalizer once its blocking dependents are gone.
    AttemptToDelete(String),
    /// `attemptToOrphan`: remove this owner from its dependents' ownerReferences, then its
    /// `orphan` finalizer.
    AttemptToOrphan(String),
}

impl Work {
    pub fn uid(&self) -> &str {
        match self {
            Work::AttemptToDelete(u) | Work::AttemptToOrphan(u) => u,
        }
    }
}

/// The ownerReferences graph. See the module documentation.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

fn has_finalizer(meta: &ObjectMeta, f: &str) -> bool {
    meta.finalizers.iter().flatten().any(|x| x == f)
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents of `uid` whose reference to it has `blockOwnerDeletion: true`
    /// (`blockingDependents`).
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        let Some(n) = self.nodes.get(uid) else {
            return vec![];
        };
        n.dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
            })
            .collect()
    }

    /// The dependents of `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.nodes
            .get(uid)
            .map(|n| {
                n.dependents
                    .iter()
                    .filter_map(|d| self.nodes.get(d))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn add_dependent(
        &mut self,
        owner: &OwnerReference,
        namespace: &Option<String>,
        dep: &str,
    ) -> bool {
        let mut created = false;
        let node = self.nodes.entry(owner.uid.clone()).or_insert_with(|| {
            created = true;
            // A virtual node is never processed itself (only its dependents are), so an
            // owner kind this cluster does not serve needs no identity of its own.
            let kind = Kind::from_name(&owner.kind).unwrap_or(Kind::Pod);
            Node {
                identity: Identity {
                    kind,
                    namespace: if kind.namespaced() {
                        namespace.clone()
                    } else {
                        None
                    },
                    name: owner.name.clone(),
                    uid: owner.uid.clone(),
                },
                owners: vec![],
                dependents: BTreeSet::new(),
                being_deleted: false,
                deleting_dependents: false,
                orphaning: false,
                virtual_: true,
            }
        });
        node.dependents.insert(dep.to_string());
        created
    }

    fn remove_dependent(&mut self, owner_uid: &str, dep: &str) {
        let drop_virtual = match self.nodes.get_mut(owner_uid) {
            Some(n) => {
                n.dependents.remove(dep);
                n.virtual_ && n.dependents.is_empty()
            }
            None => false,
        };
        if drop_virtual {
            self.nodes.remove(owner_uid);
        }
    }

    /// Whether `meta` changes nothing the graph keeps: the object is known (not virtual) with
    /// the same identity, owners and deletion state. Most updates are so (a pod's status
    /// writes), and for them [`Graph::observe`] would rebuild the node from copies and find
    /// no work; upstream's `processGraphChanges` likewise does nothing for an update without
    /// `referencesDiffs` or a deletion-state transition.
    fn unchanged(&self, kind: Kind, meta: &ObjectMeta) -> bool {
        let Some(uid) = meta.uid.as_deref().filter(|u| !u.is_empty()) else {
            return false;
        };
        let Some(n) = self.nodes.get(uid) else {
            return false;
        };
        let being_deleted = meta.deletion_timestamp.is_some();
        !n.virtual_
            && n.identity.kind == kind
            && n.identity.namespace.as_deref()
                == meta.namespace.as_deref().filter(|ns| !ns.is_empty())
            && n.identity.name == meta.name.as_deref().unwrap_or_default()
            && n.owners.as_slice() == meta.owner_references.as_deref().unwrap_or_default()
            && n.being_deleted == being_deleted
            && n.deleting_dependents == (being_deleted && has_finalizer(meta, FOREGROUND_FINALIZER))
            && n.orphaning == (being_deleted && has_finalizer(meta, ORPHAN_FINALIZER))
    }

    /// An object of `kind` was added or updated. Returns the work it makes necessary.
    pub fn observe(&mut self, kind: Kind, meta: &ObjectMeta) -> Vec<Work> {
        if self.unchanged(kind, meta) {
            return vec![];
        }
        let identity = Identity::of(kind, meta);
        let uid = identity.uid.clone();
        if uid.is_empty() {
            return vec![];
        }
        let owners: Vec<OwnerReference> = meta.owner_references.clone().unwrap_or_default();
        let being_deleted = meta.deletion_timestamp.is_some();
        let deleting_dependents = being_deleted && has_finalizer(meta, FOREGROUND_FINALIZER);
        let orphaning = being_deleted && has_finalizer(meta, ORPHAN_FINALIZER);
        let mut work = Vec::new();

        let (old_owners, was_deleting_dependents, was_orphaning, dependents) =
            match self.nodes.get(&uid) {
                Some(n) if !n.virtual_ => (
                    n.owners.clone(),
                    n.deleting_dependents,
                    n.orphaning,
                    n.dependents.clone(),
                ),
                Some(n) => (vec![], false, false, n.dependents.clone()),
                None => (vec![], false, false, BTreeSet::new()),
            };
        let was_virtual = self.nodes.get(&uid).is_some_and(|n| n.virtual_);
        self.nodes.insert(
            uid.clone(),
            Node {
                identity,
                owners: owners.clone(),
                dependents,
                being_deleted,
                deleting_dependents,
                orphaning,
                virtual_: false,
            },
        );
        if was_virtual {
            // Its dependents were waiting to learn whether it exists: now it does, but it
            // may already be on its way out; they are rechecked anyway (cheap, and upstream
            // does the same when a virtual node turns real).
            for d in self.nodes[&uid].dependents.clone() {
                work.push(Work::AttemptToDelete(d));
            }
        }

        // Owners added: link them. An owner the graph has never seen, or one already
        // deleted, makes this object a candidate for collection.
        for r in owners
            .iter()
            .filter(|r| !old_owners.iter().any(|o| o.uid == r.uid))
        {
            let ns = meta.namespace.clone();
            let unknown = self.add_dependent(r, &ns, &uid);
            let owner_gone_or_going = self
                .nodes
                .get(&r.uid)
                .is_some_and(|o| o.virtual_ || o.being_deleted);
            if unknown || owner_gone_or_going {
                work.push(Work::AttemptToDelete(uid.clone()));
            }
        }
        // Owners removed (or made non-blocking): an owner waiting for its dependents may be
        // done now.
        for r in &old_owners {
            let now = owners.iter().find(|o| o.uid == r.uid);
            if now.is_none() {
                self.remove_dependent(&r.uid, &uid);
            }
            let unblocked = r.block_owner_deletion == Some(true)
                && now.is_none_or(|o| o.block_owner_deletion != Some(true));
            if unblocked
                && self
                    .nodes
                    .get(&r.uid)
                    .is_some_and(|o| o.deleting_dependents)
            {
                work.push(Work::AttemptToDelete(r.uid.clone()));
            }
        }

        // processTransitions.
        if orphaning && !was_orphaning {
            work.push(Work::AttemptToOrphan(uid.clone()));
        }
        if deleting_dependents && !was_deleting_dependents {
            for d in self.nodes[&uid].dependents.clone() {
                work.push(Work::AttemptToDelete(d));
            }
            work.push(Work::AttemptToDelete(uid.clone()));
        }
        work.sort();
        work.dedup();
        work
    }

    /// An object was deleted. Its dependents lose an owner (collect them); owners waiting
    /// for it in foreground deletion may finish.
    pub fn observe_deleted(&mut self, meta: &ObjectMeta) -> Vec<Work> {
        let Some(uid) = meta.uid.clone() else {
            return vec![];
        };
        let Some(node) = self.nodes.remove(&uid) else {
            return vec![];
        };
        let mut work = Vec::new();
        for r in &node.owners {
            self.remove_dependent(&r.uid, &uid);
            if self
                .nodes
                .get(&r.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                work.push(Work::AttemptToDelete(r.uid.clone()));
            }
        }
        if !node.dependents.is_empty() {
            // Keep the dependents' link to the (now absent) owner as a virtual node, so a
            // recheck finds them; processing each dependent confirms the owner is gone.
            let mut v = node.clone();
            v.virtual_ = true;
            v.owners.clear();
            v.being_deleted = false;
            v.deleting_dependents = false;
            v.orphaning = false;
            for d in &node.dependents {
                work.push(Work::AttemptToDelete(d.clone()));
            }
            self.nodes.insert(uid, v);
        }
        work.sort();
        work.dedup();
        work
    }
}

/// The state of one owner, as a live read found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists with the referenced uid and is not waiting for dependents.
    Solid,
    /// Absent, or the name now belongs to another uid.
    Dangling,
    /// Being deleted in the foreground: waiting for its dependents to go.
    WaitingForDependentsDeletion,
    /// Its kind is not one this cluster serves: never collect on its account.
    Unresolvable,
}

/// What `attemptToDeleteItem` decided for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Leave it.
    Nothing,
    /// Remove the ownerReferences to these uids (dangling owners, or owners waiting in the
    /// foreground while a solid owner remains).
    RemoveOwnerReferences(Vec<String>),
    /// Delete it with this propagation policy.
    Delete(&'static str),
}

/// `attemptToDeleteItem`'s decision for an object (not itself deleting its dependents) given
/// the states of its owners, whether it has dependents, and its own finalizers. Mirrors the
/// `switch` in `pkg/controller/garbagecollector/garbagecollector.go`.
pub fn decide(
    meta: &ObjectMeta,
    owners: &[(String, OwnerState)],
    has_dependents: bool,
) -> Decision {
    if meta.deletion_timestamp.is_some() || owners.is_empty() {
        return Decision::Nothing;
    }
    let of = |s: OwnerState| -> Vec<String> {
        owners
            .iter()
            .filter(|(_, st)| *st == s)
            .map(|(u, _)| u.clone())
            .collect()
    };
    let solid = of(OwnerState::Solid);
    let unresolvable = of(OwnerState::Unresolvable);
    let dangling = of(OwnerState::Dangling);
    let waiting = of(OwnerState::WaitingForDependentsDeletion);
    if !solid.is_empty() || !unresolvable.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return Decision::Nothing;
        }
        let mut gone = dangling;
        gone.extend(waiting);
        return Decision::RemoveOwnerReferences(gone);
    }
    if !waiting.is_empty() && has_dependents {
        // Its own dependents must go first: delete it in the foreground too.
        return Decision::Delete("Foreground");
    }
    let policy = if has_finalizer(meta, ORPHAN_FINALIZER) {
        "Orphan"
    } else if has_finalizer(meta, FOREGROUND_FINALIZER) {
        "Foreground"
    } else {
        "Background"
    };
    Decision::Delete(policy)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn meta(name: &str, owners: &[(&str, bool)]) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("default".into()),
            name: Some(name.into()),
            uid: Some(name.into()),
            owner_references: (!owners.is_empty()).then(|| {
                owners
                    .iter()
                    .map(|(o, block)| OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: o.to_string(),
                        uid: o.to_string(),
                        controller: Some(true),
                        block_owner_deletion: Some(*block),
                    })
                    .collect()
            }),
            ..Default::default()
        }
    }

    fn deleting(mut m: ObjectMeta, finalizer: Option<&str>) -> ObjectMeta {
        m.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        m.finalizers = finalizer.map(|f| vec![f.to_string()]);
        m
    }

    #[test]
    fn deleting_an_owner_collects_its_dependents() {
        let mut g = Graph::new();
        assert_eq!(g.observe(Kind::ReplicaSet, &meta("rs", &[])), vec![]);
        assert_eq!(g.observe(Kind::Pod, &meta("p1", &[("rs", true)])), vec![]);
        assert_eq!(g.observe(Kind::Pod, &meta("p2", &[("rs", true)])), vec![]);
        assert_eq!(g.dependents("rs").len(), 2);
        assert_eq!(
            g.observe_deleted(&meta("rs", &[])),
            vec![
                Work::AttemptToDelete("p1".into()),
                Work::AttemptToDelete("p2".into())
            ]
        );
        g.observe_deleted(&meta("p1", &[("rs", true)]));
        g.observe_deleted(&meta("p2", &[("rs", true)]));
        assert!(
            g.is_empty(),
            "the virtual owner goes with its last dependent"
        );
    }

    /// An update that changes nothing the graph keeps (labels, status) is skipped; one that
    /// changes owners or the deletion state still goes through.
    #[test]
    fn updates_that_change_nothing_the_graph_keeps_do_nothing() {
        let mut g = Graph::new();
        g.observe(Kind::ReplicaSet, &meta("rs", &[]));
        g.observe(Kind::ReplicaSet, &meta("rs2", &[]));
        g.observe(Kind::Pod, &meta("p", &[("rs", true)]));
        let mut relabelled = meta("p", &[("rs", true)]);
        relabelled.labels = Some([("app".to_string(), "web".to_string())].into());
        relabelled.resource_version = Some("7".into());
        assert!(g.unchanged(Kind::Pod, &relabelled));
        assert_eq!(g.observe(Kind::Pod, &relabelled), vec![]);
        assert_eq!(g.dependents("rs").len(), 1);
        // A second owner is linked.
        let two = meta("p", &[("rs", true), ("rs2", false)]);
        assert!(!g.unchanged(Kind::Pod, &two));
        g.observe(Kind::Pod, &two);
        assert_eq!(g.dependents("rs2").len(), 1);
        // Being deleted is a change; the same kind under another name is too.
        assert!(!g.unchanged(Kind::Pod, &deleting(two.clone(), None)));
        let mut renamed = two.clone();
        renamed.name = Some("q".into());
        assert!(!g.unchanged(Kind::Pod, &renamed));
        assert!(!g.unchanged(Kind::ReplicaSet, &two));
        // A virtual node (known only as an owner) is never skipped.
        g.observe(Kind::Pod, &meta("orphan", &[("gone", true)]));
        assert!(!g.unchanged(Kind::ReplicaSet, &meta("gone", &[])));
    }

    #[test]
    fn a_dependent_of_an_unseen_owner_is_checked() {
        let mut g = Graph::new();
        assert_eq!(
            g.observe(Kind::Pod, &meta("p", &[("rs", true)])),
            vec![Work::AttemptToDelete("p".into())]
        );
        assert!(g.get("rs").is_some_and(|n| n.virtual_));
        // The owner shows up: the dependent is rechecked, the owner becomes real.
        assert_eq!(
            g.observe(Kind::ReplicaSet, &meta("rs", &[])),
            vec![Work::AttemptToDelete("p".into())]
        );
        assert!(g.get("rs").is_some_and(|n| !n.virtual_));
    }

    #[test]
    fn foreground_deletion_waits_for_blocking_dependents() {
        let mut g = Graph::new();
        g.observe(Kind::ReplicaSet, &meta("rs", &[]));
        g.observe(Kind::Pod, &meta("p1", &[("rs", true)]));
        g.observe(Kind::Pod, &meta("p2", &[("rs", false)]));
        let work = g.observe(
            Kind::ReplicaSet,
            &deleting(meta("rs", &[]), Some(FOREGROUND_FINALIZER)),
        );
        assert_eq!(
            work,
            vec![
                Work::AttemptToDelete("p1".into()),
                Work::AttemptToDelete("p2".into()),
                Work::AttemptToDelete("rs".into())
            ]
        );
        let blocking: Vec<&str> = g
            .blocking_dependents("rs")
            .iter()
            .map(|n| n.identity.name.as_str())
            .collect();
        assert_eq!(blocking, ["p1"], "only blockOwnerDeletion dependents block");
        // The blocking dependent goes: the owner is looked at again.
        assert_eq!(
            g.observe_deleted(&meta("p1", &[("rs", true)])),
            vec![Work::AttemptToDelete("rs".into())]
        );
        assert!(g.blocking_dependents("rs").is_empty());
    }

    #[test]
    fn orphan_finalizer_starts_orphaning_once() {
        let mut g = Graph::new();
        g.observe(Kind::Deployment, &meta("d", &[]));
        let d = deleting(meta("d", &[]), Some(ORPHAN_FINALIZER));
        assert_eq!(
            g.observe(Kind::Deployment, &d),
            vec![Work::AttemptToOrphan("d".into())]
        );
        assert_eq!(g.observe(Kind::Deployment, &d), vec![]);
    }

    /// The `attemptToDeleteItem` switch.
    #[test]
    fn decisions_follow_the_owners_states() {
        use OwnerState::*;
        let m = meta("rs", &[("a", true)]);
        let o = |s: &[(&str, OwnerState)]| -> Vec<(String, OwnerState)> {
            s.iter()
                .map(|(u, st)| (u.to_string(), st.clone()))
                .collect()
        };
        let cases = [
            (
                "a solid owner keeps it",
                o(&[("a", Solid)]),
                false,
                Decision::Nothing,
            ),
            (
                "a solid owner and a dangling one: drop the dangling reference",
                o(&[("a", Solid), ("b", Dangling)]),
                false,
                Decision::RemoveOwnerReferences(vec!["b".into()]),
            ),
            (
                "every owner gone: background delete",
                o(&[("a", Dangling)]),
                false,
                Decision::Delete("Background"),
            ),
            (
                "owner in foreground, no dependents",
                o(&[("a", WaitingForDependentsDeletion)]),
                false,
                Decision::Delete("Background"),
            ),
            (
                "owner in foreground, with dependents: foreground too",
                o(&[("a", WaitingForDependentsDeletion)]),
                true,
                Decision::Delete("Foreground"),
            ),
            (
                "an unknown owner kind is never collected",
                o(&[("a", Unresolvable)]),
                false,
                Decision::Nothing,
            ),
        ];
        for (case, owners, has_deps, want) in cases {
            assert_eq!(decide(&m, &owners, has_deps), want, "{case}");
        }
        assert_eq!(
            decide(&deleting(m.clone(), None), &o(&[("a", Dangling)]), false),
            Decision::Nothing,
            "already being deleted"
        );
    }
}
