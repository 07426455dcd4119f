//! The watch-cache window: the recent writes a watch may resume from (kube-apiserver's
//! `watchCache`, k8s.io/apiserver/pkg/storage/cacher/watch_cache.go, whose
//! `getAllEventsSinceLocked` serves a watch from a resourceVersion).
//!
//! The window keeps each write as the store delivered it — the same `Arc<store::Event>` the
//! store's own event log holds, with the new value and the previous one as stored bytes — and
//! the kind its key names. It does not keep decoded objects: a decoded pod is ~8–9 KiB, the
//! window holds up to `watch_cache_window` (100,000) writes, and by the time a watch resumes
//! from an old revision every informer has long moved on to newer ones, so those decoded
//! revisions were kept alive by the window alone. Live dispatch does not go through here; it
//! uses the object the write was decoded (or made) as.
//!
//! A resumed watch is replayed by decoding only what can reach it: entries of another kind,
//! or outside the watch's namespace (both known from the key), are skipped without looking
//! at their bytes, and so are writes whose new and previous values both lack a value the
//! field selector requires ([`Prefilter`]) — a kubelet's `spec.nodeName=node-7` pod watch
//! decodes only node-7's pods, not every Node, Lease and other pod write in the window. What
//! is decoded goes through [`Filter::event_for`], the function live dispatch uses, so a replay
//! yields the events a watcher of the time saw (ADDED / MODIFIED / DELETED, including the
//! DELETED of an object that stopped matching its selectors), with one difference: a live
//! DELETED event of a traced delete carries the delete request's trace context (the API server
//! stamps it on the final object, `ApiServer::stamp_trace`), while a replayed one carries the
//! `traceparent` annotation of the object's last write as stored — the delete request's
//! context is not stored anywhere.

use std::collections::VecDeque;
use std::sync::Arc;

use super::messages::WatchEvent;
use super::objects::Prefilter;
use super::registry::{Change, Filter};
use crate::api::{Kind, Object};
use crate::store::{Event, EventType, Revision};

/// One write in the window.
struct Entry {
    kind: Kind,
    event: Arc<Event>,
}

/// The recent writes, oldest first; covers the revisions above [`Window::floor`].
pub(crate) struct Window {
    entries: VecDeque<Entry>,
    floor: Revision,
    capacity: usize,
}

impl Window {
    /// An empty window at `floor` (the revision the API server starts from), keeping at most
    /// `capacity` writes.
    pub fn new(floor: Revision, capacity: usize) -> Window {
        Window {
            entries: VecDeque::new(),
            floor,
            capacity,
        }
    }

    /// The window covers the revisions above this one: a watch from an older revision is
    /// too old (410 Gone).
    pub fn floor(&self) -> Revision {
        self.floor
    }

    /// Append a write of `kind` (in revision order), dropping the oldest beyond the capacity.
    pub fn push(&mut self, kind: Kind, event: Arc<Event>) {
        self.entries.push_back(Entry { kind, event });
        while self.entries.len() > self.capacity {
            if let Some(old) = self.entries.pop_front() {
                self.floor = old.event.revision();
            }
        }
    }

    /// The events a watch with `filter` sees for the writes after revision `after`, in order.
    /// The caller checks `after` against [`Window::floor`] first.
    pub fn replay(&self, filter: &Filter, after: Revision) -> Vec<WatchEvent> {
        let namespace_prefix = filter
            .namespace
            .as_deref()
            .map(|ns| filter.kind.namespace_prefix(ns));
        let prefilter = Prefilter::new(&filter.fields);
        let skip = self
            .entries
            .partition_point(|e| e.event.revision() <= after);
        self.entries
            .iter()
            .skip(skip)
            .filter(|e| e.kind == filter.kind)
            .filter(|e| {
                namespace_prefix
                    .as_deref()
                    .is_none_or(|p| e.event.kv.key.starts_with(p))
            })
            .filter_map(|e| replay_one(filter, &prefilter, e.kind, &e.event))
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The event `filter` sees for one write (of the filter's kind and namespace), decoding
/// only the values that may match.
fn replay_one(
    filter: &Filter,
    prefilter: &Prefilter,
    kind: Kind,
    event: &Event,
) -> Option<WatchEvent> {
    let deleted = event.kind == EventType::Delete;
    let now_may_match = prefilter.may_match(&event.kv.value);
    // A delete's event depends only on the final object (`kv`); a put's also on whether the
    // object matched before.
    let prev = event
        .prev
        .as_ref()
        .filter(|p| !deleted && prefilter.may_match(&p.value));
    if !now_may_match && prev.is_none() {
        return None;
    }
    // Decoded even if it cannot match: a DELETED for an object that stopped matching is at
    // its revision, which `event_for` reads from it.
    let object = decode(kind, &event.kv.key, &event.kv.value, event.revision())?;
    let prev = prev.and_then(|p| decode(kind, &p.key, &p.value, p.mod_revision));
    filter.event_for(&Change {
        kind,
        object,
        prev,
        deleted,
    })
}

/// A stored value as the object it was at `revision`: the stored JSON has no resourceVersion
/// (see `object_bytes`), it is the key's mod_revision. `None` (logged) if it does not decode.
fn decode(kind: Kind, key: &str, bytes: &[u8], revision: Revision) -> Option<Arc<Object>> {
    match Object::from_json(kind, bytes) {
        Ok(mut obj) => {
            obj.meta_mut().resource_version = Some(revision.to_string());
            Some(Arc::new(obj))
        }
        Err(e) => {
            tracing::error!(%key, revision, error = %e, "skipping an undecodable write in watch replay");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::selectors::{FieldSelector, LabelSelector};
    use crate::store::KeyValue;
    use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, node: &str) -> Object {
        Object::from(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn kv(obj: &Object, revision: Revision) -> KeyValue {
        KeyValue {
            key: obj.key(),
            value: obj.to_json().into(),
            create_revision: revision,
            mod_revision: revision,
        }
    }

    fn put(obj: &Object, revision: Revision, prev: Option<KeyValue>) -> Arc<Event> {
        Arc::new(Event {
            kind: EventType::Put,
            kv: kv(obj, revision),
            prev,
        })
    }

    fn filter(kind: Kind, fields: &str) -> Filter {
        Filter {
            kind,
            namespace: None,
            labels: LabelSelector::everything(),
            fields: FieldSelector::parse_for(kind, fields).unwrap(),
        }
    }

    fn describe(events: &[WatchEvent]) -> Vec<String> {
        events
            .iter()
            .map(|ev| match ev {
                WatchEvent::Added(o) => format!("ADDED {}@{}", o.name(), o.resource_version()),
                WatchEvent::Modified(o) => {
                    format!("MODIFIED {}@{}", o.name(), o.resource_version())
                }
                WatchEvent::Deleted(o) => {
                    format!("DELETED {}@{}", o.name(), o.resource_version())
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// The window drops its oldest writes beyond its capacity and moves its floor to the
    /// last one dropped.
    #[test]
    fn the_floor_follows_what_was_dropped() {
        let mut w = Window::new(1, 2);
        for rev in 2..=5 {
            w.push(Kind::Pod, put(&pod(&format!("p{rev}"), ""), rev, None));
        }
        assert_eq!(w.len(), 2);
        assert_eq!(w.floor(), 3);
        assert_eq!(
            describe(&w.replay(&filter(Kind::Pod, ""), 3)),
            ["ADDED p4@4", "ADDED p5@5"]
        );
    }

    /// An entry whose bytes do not decode is skipped (and logged), never a panic; the
    /// entries around it are replayed.
    #[test]
    fn an_undecodable_entry_is_skipped() {
        let mut w = Window::new(1, 10);
        w.push(Kind::Pod, put(&pod("a", ""), 2, None));
        let mut bad = kv(&pod("b", ""), 3);
        bad.value = Arc::from(&b"{\"metadata\": not json"[..]);
        w.push(
            Kind::Pod,
            Arc::new(Event {
                kind: EventType::Put,
                kv: bad,
                prev: None,
            }),
        );
        w.push(Kind::Pod, put(&pod("c", ""), 4, None));
        assert_eq!(
            describe(&w.replay(&filter(Kind::Pod, ""), 1)),
            ["ADDED a@2", "ADDED c@4"]
        );
    }

    /// A `spec.nodeName` watch decodes nothing of another kind and no pod whose stored JSON
    /// (now or before) lacks the node's name: the bytes of those entries are not JSON at all
    /// here, so decoding any of them would log and drop it — and the replay is still exact.
    #[test]
    fn a_node_watch_replays_its_pods_without_decoding_the_rest() {
        let mut w = Window::new(1, 100);
        let garbage = |key: String, rev| {
            Arc::new(Event {
                kind: EventType::Put,
                kv: KeyValue {
                    key,
                    value: Arc::from(&b"not json"[..]),
                    create_revision: rev,
                    mod_revision: rev,
                },
                prev: None,
            })
        };
        let node = Object::from(Node {
            metadata: ObjectMeta {
                name: Some("node-7".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        // Another kind, even one whose JSON holds the node's name: skipped by kind.
        w.push(Kind::Node, put(&node, 2, None));
        w.push(Kind::Node, garbage(Kind::Node.key(None, "node-7"), 3));
        // A pod on another node: skipped by its bytes.
        let other = pod("other", "node-8");
        let mut other_garbage = kv(&other, 4);
        other_garbage.value = Arc::from(&b"{\"spec\":{\"nodeName\":\"node-8\"} broken"[..]);
        w.push(
            Kind::Pod,
            Arc::new(Event {
                kind: EventType::Put,
                kv: other_garbage,
                prev: None,
            }),
        );
        // Ours: created unassigned, bound to node-7, then moved away (a DELETED for us).
        let mine = pod("mine", "");
        w.push(Kind::Pod, put(&mine, 5, None));
        let bound = pod("mine", "node-7");
        w.push(Kind::Pod, put(&bound, 6, Some(kv(&mine, 5))));
        let moved = pod("mine", "node-9");
        w.push(Kind::Pod, put(&moved, 7, Some(kv(&bound, 6))));
        let events = w.replay(&filter(Kind::Pod, "spec.nodeName=node-7"), 1);
        assert_eq!(describe(&events), ["ADDED mine@6", "DELETED mine@7"]);
        let WatchEvent::Deleted(gone) = &events[1] else {
            unreachable!()
        };
        let on = gone
            .as_pod()
            .and_then(|p| p.spec.as_ref()?.node_name.clone());
        assert_eq!(on.as_deref(), Some("node-7"), "the last state that matched");
    }
}
