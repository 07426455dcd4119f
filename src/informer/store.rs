//! The informer's cache: client-go's `cache.Indexer` over `Arc<K>`, keyed `namespace/name`
//! (`name` for cluster-scoped kinds, as `MetaNamespaceKeyFunc`), with indexes by namespace,
//! by controller owner uid, and of the orphans (no controller) per namespace, plus label
//! lookup within a namespace.
//!
//! The store is shared: the informer task writes it, consumers (controllers) read it from
//! their handlers like client-go listers. Reads take a short read lock and return `Arc`s;
//! nobody holds the lock across an await.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use parking_lot::RwLock;

use crate::api::selectors::LabelSelector;
use crate::api::KindOf;

/// The bound on what an informer can cache: a stored kind with `metadata`.
pub trait Cached: KindOf + k8s_openapi::Metadata<Ty = ObjectMeta> {}
impl<T: KindOf + k8s_openapi::Metadata<Ty = ObjectMeta>> Cached for T {}

/// One change to the cache, as delivered to handlers.
#[derive(Debug)]
pub enum InformerEvent<K> {
    Added(Arc<K>),
    Updated {
        old: Arc<K>,
        new: Arc<K>,
    },
    Deleted(Arc<K>),
    /// The first list has been applied: the cache is complete (`HasSynced`). Sent once.
    Synced,
}

impl<K> Clone for InformerEvent<K> {
    fn clone(&self) -> Self {
        match self {
            InformerEvent::Added(o) => InformerEvent::Added(o.clone()),
            InformerEvent::Updated { old, new } => InformerEvent::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            InformerEvent::Deleted(o) => InformerEvent::Deleted(o.clone()),
            InformerEvent::Synced => InformerEvent::Synced,
        }
    }
}

impl<K: 'static> actix::Message for InformerEvent<K> {
    type Result = ();
}

/// The cache key of an object: `namespace/name`, or `name` without a namespace.
pub fn key_of(meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("");
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => {
            // Not `format!`: one allocation of the right size (a key per informed event).
            let mut key = String::with_capacity(ns.len() + 1 + name.len());
            key.push_str(ns);
            key.push('/');
            key.push_str(name);
            key
        }
        _ => name.to_string(),
    }
}

/// Split a cache key into (namespace, name). Mirrors `SplitMetaNamespaceKey`.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

/// The uid of the object's controller (the ownerReference with `controller: true`).
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

struct Inner<K> {
    objects: HashMap<String, Arc<K>>,
    by_namespace: HashMap<String, BTreeSet<String>>,
    by_owner: HashMap<String, BTreeSet<String>>,
    /// Per namespace, the objects without a controller ownerReference.
    orphans: HashMap<String, BTreeSet<String>>,
    /// The revision the cache reflects (the last list's or watch event's).
    resource_version: u64,
    synced: bool,
}

impl<K> Default for Inner<K> {
    fn default() -> Self {
        Inner {
            objects: HashMap::new(),
            by_namespace: HashMap::new(),
            by_owner: HashMap::new(),
            orphans: HashMap::new(),
            resource_version: 0,
            synced: false,
        }
    }
}

/// The shared cache. Cloning shares it.
pub struct Store<K> {
    inner: Arc<RwLock<Inner<K>>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Cached> Default for Store<K> {
    fn default() -> Self {
        Store {
            inner: Arc::new(RwLock::new(Inner::default())),
        }
    }
}

impl<K: Cached> Inner<K> {
    fn index(&mut self, key: &str, obj: &K) {
        let meta = obj.metadata();
        let ns = meta.namespace.clone().unwrap_or_default();
        let by_controller = match controller_uid(meta) {
            Some(uid) => self.by_owner.entry(uid.to_string()).or_default(),
            None => self.orphans.entry(ns.clone()).or_default(),
        };
        by_controller.insert(key.to_string());
        self.by_namespace
            .entry(ns)
            .or_default()
            .insert(key.to_string());
    }

    fn unindex(&mut self, key: &str, obj: &K) {
        let meta = obj.metadata();
        let ns = meta.namespace.clone().unwrap_or_default();
        remove_from(&mut self.by_namespace, &ns, key);
        match controller_uid(meta) {
            Some(uid) => remove_from(&mut self.by_owner, uid, key),
            None => remove_from(&mut self.orphans, &ns, key),
        }
    }

    fn put(&mut self, obj: Arc<K>) -> Option<Arc<K>> {
        let key = key_of(obj.metadata());
        if let Some(slot) = self.objects.get_mut(&key) {
            let old = std::mem::replace(slot, obj.clone());
            // The namespace is part of the key; only the controller can move the object
            // between index entries. Most updates (status, binding) keep it, and re-indexing
            // them was two ordered-set operations on every pod of the namespace.
            if controller_uid(old.metadata()) != controller_uid(obj.metadata()) {
                self.unindex(&key, &old);
                self.index(&key, &obj);
            }
            return Some(old);
        }
        self.index(&key, &obj);
        self.objects.insert(key, obj);
        None
    }

    fn remove(&mut self, key: &str) -> Option<Arc<K>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }
}

fn remove_from(index: &mut HashMap<String, BTreeSet<String>>, at: &str, key: &str) {
    if let Some(set) = index.get_mut(at) {
        set.remove(key);
        if set.is_empty() {
            index.remove(at);
        }
    }
}

fn resource_version(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

impl<K: Cached> Store<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The object at `namespace/name` (or `name`).
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.inner.read().objects.get(key).cloned()
    }

    /// Every cached object, in key order.
    pub fn list(&self) -> Vec<Arc<K>> {
        let inner = self.inner.read();
        let mut keys: Vec<&String> = inner.objects.keys().collect();
        keys.sort();
        keys.into_iter().map(|k| inner.objects[k].clone()).collect()
    }

    /// The objects in `namespace` (the namespace index), in key order.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let inner = self.inner.read();
        inner
            .by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(|k| inner.objects.get(k).cloned())
            .collect()
    }

    /// The objects whose controller ownerReference has `uid` (the owner index), in key order.
    pub fn controlled_by(&self, uid: &str) -> Vec<Arc<K>> {
        let inner = self.inner.read();
        inner
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| inner.objects.get(k).cloned())
            .collect()
    }

    /// What a controller's `Claim…` can say anything but "ignore" about, in `namespace`:
    /// the objects controlled by `uid` and the orphans (no controller), each in key order.
    /// The rest of the namespace has another controller, which `ClaimObject` ignores before
    /// it looks at labels — so claiming from these two lists gives what upstream's
    /// `List(labels.Everything())` + `Claim…` gives, without visiting the whole namespace.
    pub fn claimable(&self, namespace: &str, uid: &str) -> (Vec<Arc<K>>, Vec<Arc<K>>) {
        let inner = self.inner.read();
        let get = |k: &String| inner.objects.get(k).cloned();
        let controlled = inner
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(get)
            // Owner references are namespace-local; the lister lists one namespace.
            .filter(|o| o.metadata().namespace.as_deref().unwrap_or("") == namespace)
            .collect();
        let orphans = inner
            .orphans
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(get)
            .collect();
        (controlled, orphans)
    }

    /// The objects in `namespace` whose labels match `selector` (label lookup, as a lister's
    /// `List(selector)` within a namespace).
    pub fn list_matching(&self, namespace: &str, selector: &LabelSelector) -> Vec<Arc<K>> {
        let empty = BTreeMap::new();
        self.list_namespace(namespace)
            .into_iter()
            .filter(|o| selector.matches(o.metadata().labels.as_ref().unwrap_or(&empty)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first list has been applied.
    pub fn has_synced(&self) -> bool {
        self.inner.read().synced
    }

    /// The revision the cache reflects.
    pub fn resource_version(&self) -> u64 {
        self.inner.read().resource_version
    }

    /// Replace the whole content with a list read at revision `rv` (client-go's
    /// `Replace`), and return the differences as events: `Added` for new keys, `Updated`
    /// for keys whose resourceVersion changed, `Deleted` for keys gone from the list. Marks
    /// the store synced; the first replace also ends with [`InformerEvent::Synced`].
    pub fn replace(&self, items: Vec<Arc<K>>, rv: u64) -> Vec<InformerEvent<K>> {
        let mut inner = self.inner.write();
        let mut events = Vec::new();
        let mut seen = BTreeSet::new();
        for obj in items {
            let key = key_of(obj.metadata());
            seen.insert(key);
            let new_rv = resource_version(obj.metadata());
            match inner.put(obj.clone()) {
                None => events.push(InformerEvent::Added(obj)),
                Some(old) if resource_version(old.metadata()) != new_rv => {
                    events.push(InformerEvent::Updated { old, new: obj })
                }
                Some(_) => {}
            }
        }
        let mut gone: Vec<String> = inner
            .objects
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        gone.sort();
        for key in gone {
            if let Some(old) = inner.remove(&key) {
                events.push(InformerEvent::Deleted(old));
            }
        }
        inner.resource_version = rv;
        if !inner.synced {
            inner.synced = true;
            events.push(InformerEvent::Synced);
        }
        events
    }

    /// Apply an added or modified object; returns `Added` or `Updated` (an `Updated` whose
    /// old and new are the same revision is dropped: a replay of what the cache has).
    pub fn upsert(&self, obj: Arc<K>) -> Option<InformerEvent<K>> {
        let mut inner = self.inner.write();
        let rv = resource_version(obj.metadata());
        inner.resource_version = inner.resource_version.max(rv);
        match inner.put(obj.clone()) {
            None => Some(InformerEvent::Added(obj)),
            Some(old) if resource_version(old.metadata()) == rv && rv != 0 => None,
            Some(old) => Some(InformerEvent::Updated { old, new: obj }),
        }
    }

    /// Apply a deletion; returns `Deleted` with the last state (the cached one if known).
    pub fn delete(&self, obj: Arc<K>) -> Option<InformerEvent<K>> {
        let mut inner = self.inner.write();
        let rv = resource_version(obj.metadata());
        inner.resource_version = inner.resource_version.max(rv);
        let key = key_of(obj.metadata());
        inner.remove(&key)?;
        Some(InformerEvent::Deleted(obj))
    }

    /// Record a bookmark's revision.
    pub fn bookmark(&self, rv: u64) {
        let mut inner = self.inner.write();
        inner.resource_version = inner.resource_version.max(rv);
    }

    /// Put an object directly (tests and fixtures).
    pub fn insert(&self, obj: K) {
        self.inner.write().put(Arc::new(obj));
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn rs(ns: &str, name: &str, rv: u64, owner: Option<&str>) -> Arc<ReplicaSet> {
        Arc::new(ReplicaSet {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                resource_version: Some(rv.to_string()),
                labels: Some([("app".to_string(), name.to_string())].into()),
                owner_references: owner.map(|uid| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "Deployment".into(),
                        name: "d".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn names(v: &[Arc<ReplicaSet>]) -> Vec<String> {
        v.iter().map(|o| key_of(&o.metadata)).collect()
    }

    #[test]
    fn indexes_by_namespace_and_controller() {
        let s = Store::new();
        s.upsert(rs("a", "x", 1, Some("u1")));
        s.upsert(rs("a", "y", 2, Some("u2")));
        s.upsert(rs("b", "z", 3, Some("u1")));
        assert_eq!(names(&s.list_namespace("a")), ["a/x", "a/y"]);
        assert_eq!(names(&s.controlled_by("u1")), ["a/x", "b/z"]);
        // Re-owning moves the object between owner buckets.
        s.upsert(rs("a", "x", 4, Some("u2")));
        assert_eq!(names(&s.controlled_by("u1")), ["b/z"]);
        assert_eq!(names(&s.controlled_by("u2")), ["a/x", "a/y"]);
        s.delete(rs("a", "y", 5, None));
        assert_eq!(names(&s.controlled_by("u2")), ["a/x"]);
        assert_eq!(names(&s.list_namespace("a")), ["a/x"]);
        assert_eq!(s.resource_version(), 5);
        assert_eq!(
            names(&s.list_matching("a", &LabelSelector::parse("app=x").unwrap())),
            ["a/x"]
        );
    }

    #[test]
    fn claimable_is_the_controlled_and_the_orphans_of_a_namespace() {
        let s = Store::new();
        s.upsert(rs("a", "mine", 1, Some("u1")));
        s.upsert(rs("a", "theirs", 2, Some("u2")));
        s.upsert(rs("a", "orphan", 3, None));
        s.upsert(rs("b", "elsewhere", 4, Some("u1")));
        s.upsert(rs("b", "far-orphan", 5, None));
        let claimable = |ns, uid| {
            let (controlled, orphans) = s.claimable(ns, uid);
            (names(&controlled), names(&orphans))
        };
        let expect = |c: &[&str], o: &[&str]| {
            let v = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            (v(c), v(o))
        };
        assert_eq!(claimable("a", "u1"), expect(&["a/mine"], &["a/orphan"]));
        // Adopted: no longer an orphan. Released: an orphan again. Gone: neither.
        s.upsert(rs("a", "orphan", 6, Some("u1")));
        assert_eq!(claimable("a", "u1"), expect(&["a/mine", "a/orphan"], &[]));
        s.upsert(rs("a", "mine", 7, None));
        assert_eq!(claimable("a", "u1"), expect(&["a/orphan"], &["a/mine"]));
        assert_eq!(claimable("a", "u2"), expect(&["a/theirs"], &["a/mine"]));
        s.delete(rs("a", "mine", 8, None));
        assert_eq!(claimable("a", "u1"), expect(&["a/orphan"], &[]));
        assert_eq!(
            claimable("b", "u1"),
            expect(&["b/elsewhere"], &["b/far-orphan"])
        );
        // A relist rebuilds the same indexes.
        s.replace(vec![rs("a", "x", 9, None), rs("a", "y", 9, Some("u1"))], 9);
        assert_eq!(claimable("a", "u1"), expect(&["a/y"], &["a/x"]));
        assert_eq!(claimable("b", "u1"), expect(&[], &[]));
    }

    #[test]
    fn relist_emits_the_differences() {
        let s = Store::new();
        let ev = s.replace(vec![rs("a", "x", 1, None), rs("a", "y", 2, None)], 2);
        assert_eq!(ev.len(), 3, "two adds and Synced");
        assert!(matches!(ev[2], InformerEvent::Synced));
        assert!(s.has_synced());
        // x changed, y is gone, z is new.
        let ev = s.replace(vec![rs("a", "x", 7, None), rs("a", "z", 8, None)], 9);
        let kinds: Vec<String> = ev
            .iter()
            .map(|e| match e {
                InformerEvent::Added(o) => format!("add {}", key_of(&o.metadata)),
                InformerEvent::Updated { old, new } => format!(
                    "update {} {}→{}",
                    key_of(&new.metadata),
                    old.metadata.resource_version.as_deref().unwrap_or(""),
                    new.metadata.resource_version.as_deref().unwrap_or("")
                ),
                InformerEvent::Deleted(o) => format!("delete {}", key_of(&o.metadata)),
                InformerEvent::Synced => "synced".into(),
            })
            .collect();
        assert_eq!(kinds, ["update a/x 1→7", "add a/z", "delete a/y"]);
        assert_eq!(s.resource_version(), 9);
    }

    #[test]
    fn replayed_events_are_not_updates() {
        let s = Store::new();
        assert!(matches!(
            s.upsert(rs("a", "x", 1, None)),
            Some(InformerEvent::Added(_))
        ));
        assert!(s.upsert(rs("a", "x", 1, None)).is_none());
        assert!(matches!(
            s.upsert(rs("a", "x", 2, None)),
            Some(InformerEvent::Updated { .. })
        ));
        assert!(s.delete(rs("a", "nope", 3, None)).is_none());
    }
}
