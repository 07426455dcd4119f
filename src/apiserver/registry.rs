//! The watcher registry: which watchers a change must reach, found by index rather than by
//! broadcast.
//!
//! A watcher is filed under exactly one index entry, the most selective its filter allows:
//! pods watched with `spec.nodeName=X` (every kubelet) under that node, anything watched with
//! `metadata.name=X` under that name, a namespaced watch under its namespace, everything else
//! under its kind. A change to a pod on node-7 therefore looks at node-7's watchers, the pod's
//! namespace's and name's watchers and the kind-wide ones — not at 10,000 kubelets.
//!
//! Sending never blocks: each watcher has a bounded channel; one that is full is sent
//! `WatchEvent::Error(Gone)` in the slot kept for it and dropped, and its client relists
//! (as kube-apiserver's cacher terminates a blocked watcher).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::error::ApiError;
use super::messages::WatchEvent;
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::{Kind, Object};

/// A committed change, decoded once and shared by every watcher it reaches.
#[derive(Debug)]
pub struct Change {
    pub kind: Kind,
    /// The new object (for a delete: the last state, resourceVersion = the delete's revision).
    pub object: Arc<Object>,
    /// The object before the change, if it existed.
    pub prev: Option<Arc<Object>>,
    pub deleted: bool,
}

impl Change {
    pub fn revision(&self) -> u64 {
        self.object.resource_version()
    }
}

/// What a watcher wants to see.
#[derive(Clone, Debug)]
pub struct Filter {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    /// Does `obj` pass this filter?
    pub fn matches(&self, obj: &Object) -> bool {
        if obj.kind() != self.kind {
            return false;
        }
        if let Some(ns) = &self.namespace {
            if obj.namespace() != Some(ns.as_str()) {
                return false;
            }
        }
        let empty = Default::default();
        let labels = obj.meta().labels.as_ref().unwrap_or(&empty);
        self.labels.matches(labels) && self.fields.matches(obj)
    }

    /// The event this watcher sees for `change`, if any. An object that stops matching its
    /// selector is DELETED for this watcher; one that starts matching is ADDED (as upstream's
    /// cacher does).
    pub fn event_for(&self, change: &Change) -> Option<WatchEvent> {
        let now = self.matches(&change.object);
        if change.deleted {
            return now.then(|| WatchEvent::Deleted(change.object.clone()));
        }
        let before = change.prev.as_deref().is_some_and(|p| self.matches(p));
        match (before, now) {
            (true, true) => Some(WatchEvent::Modified(change.object.clone())),
            (false, true) => Some(WatchEvent::Added(change.object.clone())),
            (true, false) => {
                // The last state that matched, at the revision it stopped matching.
                let prev = change.prev.as_deref()?;
                let mut gone = prev.clone();
                gone.meta_mut().resource_version = Some(change.revision().to_string());
                Some(WatchEvent::Deleted(Arc::new(gone)))
            }
            (false, false) => None,
        }
    }

    /// The index entry this watcher is filed under.
    fn index_key(&self) -> IndexKey {
        if self.kind == Kind::Pod {
            if let Some(node) = self.fields.exact("spec.nodeName") {
                return IndexKey::Node(node.to_string());
            }
        }
        if let Some(name) = self.fields.exact("metadata.name") {
            return IndexKey::Name(name.to_string());
        }
        match &self.namespace {
            Some(ns) => IndexKey::Namespace(ns.clone()),
            None => IndexKey::All,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum IndexKey {
    All,
    Namespace(String),
    Name(String),
    Node(String),
}

struct Watcher {
    filter: Filter,
    tx: mpsc::Sender<WatchEvent>,
    index: IndexKey,
}

/// The watchers of one kind, by index entry. Looked up with borrowed names: dispatching a
/// change allocates nothing.
#[derive(Default)]
struct KindIndex {
    all: HashSet<u64>,
    namespace: HashMap<String, HashSet<u64>>,
    name: HashMap<String, HashSet<u64>>,
    node: HashMap<String, HashSet<u64>>,
}

impl KindIndex {
    fn file(&mut self, key: &IndexKey, id: u64) {
        let set = match key {
            IndexKey::All => &mut self.all,
            IndexKey::Namespace(k) => self.namespace.entry(k.clone()).or_default(),
            IndexKey::Name(k) => self.name.entry(k.clone()).or_default(),
            IndexKey::Node(k) => self.node.entry(k.clone()).or_default(),
        };
        set.insert(id);
    }

    fn unfile(&mut self, key: &IndexKey, id: u64) {
        let (map, k) = match key {
            IndexKey::All => {
                self.all.remove(&id);
                return;
            }
            IndexKey::Namespace(k) => (&mut self.namespace, k),
            IndexKey::Name(k) => (&mut self.name, k),
            IndexKey::Node(k) => (&mut self.node, k),
        };
        if let Some(set) = map.get_mut(k) {
            set.remove(&id);
            if set.is_empty() {
                map.remove(k);
            }
        }
    }
}

/// Watchers by kind and index entry.
#[derive(Default)]
pub struct Registry {
    next_id: u64,
    watchers: HashMap<u64, Watcher>,
    index: HashMap<Kind, KindIndex>,
}

/// Try to send without blocking. `false` means the watcher must be dropped (closed by the
/// client, or too slow — then it was told so with a Gone error in its reserved last slot).
pub fn offer(tx: &mpsc::Sender<WatchEvent>, event: WatchEvent) -> bool {
    if tx.is_closed() {
        return false;
    }
    if tx.capacity() <= 1 {
        let _ = tx.try_send(WatchEvent::Error(ApiError::Gone(
            "watch closed: the client did not keep up; relist and watch again".to_string(),
        )));
        return false;
    }
    tx.try_send(event).is_ok()
}

impl Registry {
    /// File a watcher; returns its id.
    pub fn add(&mut self, filter: Filter, tx: mpsc::Sender<WatchEvent>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let index = filter.index_key();
        self.index.entry(filter.kind).or_default().file(&index, id);
        self.watchers.insert(id, Watcher { filter, tx, index });
        id
    }

    fn remove(&mut self, id: u64) {
        if let Some(w) = self.watchers.remove(&id) {
            if let Some(ix) = self.index.get_mut(&w.filter.kind) {
                ix.unfile(&w.index, id);
            }
        }
    }

    /// Number of live watchers.
    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// Deliver a change to every watcher it concerns.
    pub fn dispatch(&mut self, change: &Change) {
        let Some(ix) = self.index.get(&change.kind) else {
            return;
        };
        let obj = &change.object;
        let mut sets = [
            Some(&ix.all),
            ix.name.get(obj.name()),
            obj.namespace().and_then(|ns| ix.namespace.get(ns)),
            None,
            None,
        ];
        if change.kind == Kind::Pod {
            // An unassigned pod is filed under the empty node name, where the scheduler's
            // `spec.nodeName=` watch lives. A pod that moved reaches both nodes' watchers.
            fn node(o: &Object) -> &str {
                o.as_pod()
                    .and_then(|p| p.spec.as_ref())
                    .and_then(|s| s.node_name.as_deref())
                    .unwrap_or_default()
            }
            let now = node(obj);
            sets[3] = ix.node.get(now);
            if let Some(before) = change.prev.as_deref().map(node).filter(|b| *b != now) {
                sets[4] = ix.node.get(before);
            }
        }
        let mut dead = Vec::new();
        for ids in sets.into_iter().flatten() {
            for id in ids {
                let Some(w) = self.watchers.get(id) else {
                    continue;
                };
                if let Some(event) = w.filter.event_for(change) {
                    if !offer(&w.tx, event) {
                        dead.push(*id);
                    }
                }
            }
        }
        for id in dead {
            self.remove(id);
        }
    }

    /// Send a bookmark to every watcher of `kind` (progress notification), dropping closed ones.
    pub fn bookmark_all(&mut self, revision: u64) {
        let mut dead = Vec::new();
        for (id, w) in &self.watchers {
            if !offer(&w.tx, WatchEvent::Bookmark(revision)) {
                dead.push(*id);
            }
        }
        for id in dead {
            self.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(ns: &str, name: &str, node: Option<&str>, rv: u64) -> Arc<Object> {
        Arc::new(Object::from(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                resource_version: Some(rv.to_string()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    fn watch(
        reg: &mut Registry,
        namespace: Option<&str>,
        fields: &str,
    ) -> mpsc::Receiver<WatchEvent> {
        let (tx, rx) = mpsc::channel(16);
        let filter = Filter {
            kind: Kind::Pod,
            namespace: namespace.map(Into::into),
            labels: LabelSelector::everything(),
            fields: FieldSelector::parse(fields).unwrap(),
        };
        reg.add(filter, tx);
        rx
    }

    /// The events a watcher has been sent so far, as `TYPE name@node`.
    fn seen(rx: &mut mpsc::Receiver<WatchEvent>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            let (t, o) = match &ev {
                WatchEvent::Added(o) => ("ADDED", o),
                WatchEvent::Modified(o) => ("MODIFIED", o),
                WatchEvent::Deleted(o) => ("DELETED", o),
                _ => continue,
            };
            let node = o
                .as_pod()
                .and_then(|p| p.spec.as_ref())
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            out.push(format!("{t} {}@{node}", o.name()));
        }
        out
    }

    #[test]
    fn a_change_reaches_exactly_the_watchers_whose_index_entry_it_touches() {
        let mut reg = Registry::default();
        let mut all = watch(&mut reg, None, "");
        let mut in_a = watch(&mut reg, Some("a"), "");
        let mut in_b = watch(&mut reg, Some("b"), "");
        let mut by_name = watch(&mut reg, Some("a"), "metadata.name=web-1");
        let mut unassigned = watch(&mut reg, None, "spec.nodeName=");
        let mut node1 = watch(&mut reg, None, "spec.nodeName=node-1");
        let mut node2 = watch(&mut reg, None, "spec.nodeName=node-2");

        let created = pod("a", "web-1", None, 2);
        reg.dispatch(&Change {
            kind: Kind::Pod,
            object: created.clone(),
            prev: None,
            deleted: false,
        });
        // Bound to node-1: the scheduler's watch of unassigned pods sees it leave.
        reg.dispatch(&Change {
            kind: Kind::Pod,
            object: pod("a", "web-1", Some("node-1"), 3),
            prev: Some(created),
            deleted: false,
        });

        assert_eq!(seen(&mut all), ["ADDED web-1@", "MODIFIED web-1@node-1"]);
        assert_eq!(seen(&mut in_a), ["ADDED web-1@", "MODIFIED web-1@node-1"]);
        assert_eq!(
            seen(&mut by_name),
            ["ADDED web-1@", "MODIFIED web-1@node-1"]
        );
        assert!(seen(&mut in_b).is_empty());
        assert_eq!(seen(&mut unassigned), ["ADDED web-1@", "DELETED web-1@"]);
        assert_eq!(seen(&mut node1), ["ADDED web-1@node-1"]);
        assert!(
            seen(&mut node2).is_empty(),
            "10,000 kubelets must not see every pod"
        );
    }

    #[test]
    fn closed_watchers_are_forgotten_on_the_next_change() {
        let mut reg = Registry::default();
        let kept = watch(&mut reg, Some("a"), "");
        drop(watch(&mut reg, Some("a"), ""));
        drop(watch(&mut reg, None, "spec.nodeName=node-1"));
        assert_eq!(reg.len(), 3);
        reg.dispatch(&Change {
            kind: Kind::Pod,
            object: pod("a", "web-1", Some("node-1"), 2),
            prev: None,
            deleted: false,
        });
        assert_eq!(reg.len(), 1);
        drop(kept);
    }
}
