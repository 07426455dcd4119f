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

/// Watchers by kind and index entry.
#[derive(Default)]
pub struct Registry {
    next_id: u64,
    watchers: HashMap<u64, Watcher>,
    index: HashMap<(Kind, IndexKey), HashSet<u64>>,
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
        self.index
            .entry((filter.kind, index.clone()))
            .or_default()
            .insert(id);
        self.watchers.insert(id, Watcher { filter, tx, index });
        id
    }

    fn remove(&mut self, id: u64) {
        if let Some(w) = self.watchers.remove(&id) {
            let key = (w.filter.kind, w.index);
            if let Some(set) = self.index.get_mut(&key) {
                set.remove(&id);
                if set.is_empty() {
                    self.index.remove(&key);
                }
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
        let mut keys = vec![
            IndexKey::All,
            IndexKey::Name(change.object.name().to_string()),
        ];
        if let Some(ns) = change.object.namespace() {
            keys.push(IndexKey::Namespace(ns.to_string()));
        }
        if change.kind == Kind::Pod {
            // An unassigned pod is filed under the empty node name, where the scheduler's
            // `spec.nodeName=` watch lives.
            for obj in std::iter::once(&change.object).chain(change.prev.iter()) {
                if let Some(pod) = obj.as_pod() {
                    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
                    let key = IndexKey::Node(node.unwrap_or_default().to_string());
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
            }
        }
        let mut dead = Vec::new();
        for key in keys {
            let Some(ids) = self.index.get(&(change.kind, key)) else {
                continue;
            };
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
