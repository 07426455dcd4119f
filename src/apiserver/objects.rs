//! The API server's cache of objects: every stored object by store key, plus how many keys sit
//! under each prefix (a kind: `/registry/pods/`; a kind in a namespace:
//! `/registry/pods/default/`), so a page of a list can say how many items remain
//! (`remainingItemCount`) without walking them.
//!
//! Most objects are kept decoded: every watcher and every read shares the one `Arc`. Events
//! are kept as the bytes the store holds (the same `Arc<[u8]>`, so they cost their JSON once)
//! and decoded when read: no component informs on Events, there are five or six per pod, and
//! decoded (strings, maps, the trace annotation) each costs several times its JSON. What a
//! sweep for expired Events needs, their last-seen time, is kept beside the bytes.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use jiff::Timestamp;

use super::registry::Filter;
use crate::api::selectors::FieldSelector;
use crate::api::Object;
use crate::store::{Bytes, Revision};

/// One cached object.
#[derive(Clone)]
pub(crate) enum Entry {
    Decoded(Arc<Object>),
    /// The stored JSON (without resourceVersion, as stored) and the revision that wrote it.
    Encoded {
        bytes: Bytes,
        revision: Revision,
        /// When the Event was last seen ([`crate::controllers::event_ttl::last_seen`]).
        last_seen: Option<Timestamp>,
    },
}

impl Entry {
    /// The entry for `obj` as stored in `bytes` at its resourceVersion: encoded for the kinds
    /// kept that way (see the module documentation), else the object itself.
    pub fn new(obj: Arc<Object>, bytes: &Bytes) -> Entry {
        match &*obj {
            Object::Event(e) => Entry::Encoded {
                bytes: bytes.clone(),
                revision: obj.resource_version(),
                last_seen: crate::controllers::event_ttl::last_seen(e),
            },
            _ => Entry::Decoded(obj),
        }
    }

    /// The object, decoded if need be (`None`: stored bytes that no longer decode, logged).
    pub fn object(&self, key: &str) -> Option<Arc<Object>> {
        match self {
            Entry::Decoded(o) => Some(o.clone()),
            Entry::Encoded {
                bytes, revision, ..
            } => {
                let kind = Object::kind_of_key(key)?;
                match Object::from_json(kind, bytes) {
                    Ok(mut o) => {
                        o.meta_mut().resource_version = Some(revision.to_string());
                        Some(Arc::new(o))
                    }
                    Err(e) => {
                        tracing::error!(%key, error = %e, "undecodable stored object");
                        None
                    }
                }
            }
        }
    }
}

/// A cheap test on stored bytes before they are decoded (an encoded Event for a list, a write
/// in the watch window for a replay): each `field=value` term of the selector on a string
/// field must occur in them as the JSON string `"value"`. It only ever rejects what cannot
/// match: a string field is written as `"value"` when set, and an unset one reads as `""`,
/// which only an empty value matches (not looked for). Values that JSON would escape are not
/// looked for, nor fields that are not JSON strings (`spec.hostNetwork`,
/// `spec.unschedulable`, `status.replicas`): only those of [`STRING_FIELDS`].
pub(crate) struct Prefilter {
    needles: Vec<memchr::memmem::Finder<'static>>,
}

/// The selectable fields (`selectors::field_value`) whose value is a JSON string in the
/// stored object when it is not empty.
const STRING_FIELDS: [&str; 21] = [
    "metadata.name",
    "metadata.namespace",
    // Pod
    "spec.nodeName",
    "spec.host",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase", // also Namespace
    "status.podIP", // `status.podIPs[0].ip`, else `status.podIP`
    "status.nominatedNodeName",
    // Event
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source", // `source.component`, else `reportingComponent`: both strings
    "type",
];

impl Prefilter {
    pub fn new(fields: &FieldSelector) -> Prefilter {
        let verbatim = |v: &str| !v.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
        let needles = fields
            .terms()
            .iter()
            .filter(|t| t.equal && !t.value.is_empty() && verbatim(&t.value))
            .filter(|t| STRING_FIELDS.contains(&t.field.as_str()))
            .map(|t| {
                memchr::memmem::Finder::new(format!("\"{}\"", t.value).as_bytes()).into_owned()
            })
            .collect();
        Prefilter { needles }
    }

    /// `false` only if the object cannot match.
    pub fn may_match(&self, bytes: &[u8]) -> bool {
        self.needles.iter().all(|f| f.find(bytes).is_some())
    }
}

/// Objects by key. Writes go through [`Objects::insert`] and [`Objects::remove`], which keep
/// the counts.
#[derive(Default)]
pub(crate) struct Objects {
    map: BTreeMap<String, Entry>,
    /// Keys under each prefix that ends in `/` below `/registry/`.
    counts: HashMap<String, u64>,
}

/// The store's root; its direct children (`/registry/pods/`) are the first counted prefixes.
const ROOT: &str = "/registry/";

/// The counted prefixes of `key`: `/registry/pods/` and `/registry/pods/default/` for
/// `/registry/pods/default/web-1`.
fn prefixes(key: &str) -> impl Iterator<Item = &str> {
    let start = if key.starts_with(ROOT) {
        ROOT.len()
    } else {
        key.len()
    };
    key[start..]
        .match_indices('/')
        .map(move |(i, _)| &key[..start + i + 1])
}

impl Objects {
    /// Store `entry` under `key`; returns whether it replaces one.
    pub fn insert(&mut self, key: String, entry: Entry) -> bool {
        use std::collections::btree_map::Entry::{Occupied, Vacant};
        match self.map.entry(key) {
            Occupied(mut e) => {
                e.insert(entry);
                true
            }
            Vacant(e) => {
                add(&mut self.counts, e.key(), 1);
                e.insert(entry);
                false
            }
        }
    }

    /// [`Objects::insert`] for a borrowed key; returns the entry it replaces. One walk down
    /// the map: copying the key (kept only if it is new) costs less than a second walk to
    /// find out first, with long keys that share their first twenty-odd bytes.
    pub fn put(&mut self, key: &str, entry: Entry) -> Option<Entry> {
        let old = self.map.insert(key.to_string(), entry);
        if old.is_none() {
            add(&mut self.counts, key, 1);
        }
        old
    }

    /// Forget `key`; returns its entry if it was there.
    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let old = self.map.remove(key);
        if old.is_some() {
            add(&mut self.counts, key, -1);
        }
        old
    }

    /// The object under `key`, decoded if it is kept encoded.
    pub fn get(&self, key: &str) -> Option<Arc<Object>> {
        self.map.get(key).and_then(|e| e.object(key))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The entries whose keys start with `prefix`, from `lower` on, in key order.
    pub fn under<'a>(
        &'a self,
        prefix: &'a str,
        lower: Bound<String>,
    ) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        self.map
            .range((lower, Bound::Unbounded))
            .take_while(move |(key, _)| key.starts_with(prefix))
    }

    /// The objects whose keys start with `prefix`, from `lower` on, in key order, that pass
    /// `filter`. An encoded object is decoded only if its bytes may match ([`Prefilter`]).
    pub fn matching<'a>(
        &'a self,
        prefix: &'a str,
        lower: Bound<String>,
        filter: &'a Filter,
    ) -> impl Iterator<Item = (&'a String, Arc<Object>)> + 'a {
        let prefilter = Prefilter::new(&filter.fields);
        self.under(prefix, lower).filter_map(move |(key, entry)| {
            let obj = match entry {
                Entry::Decoded(obj) => filter.matches(obj).then(|| obj.clone())?,
                Entry::Encoded { bytes, .. } => {
                    if !prefilter.may_match(bytes) {
                        return None;
                    }
                    entry.object(key).filter(|obj| filter.matches(obj))?
                }
            };
            Some((key, obj))
        })
    }

    /// Every key (in order).
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }

    /// The number of objects.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The number of keys starting with `prefix` (one ending in `/`, as [`Kind::prefix`] and
    /// [`Kind::namespace_prefix`] make them).
    ///
    /// [`Kind::prefix`]: crate::api::Kind::prefix
    /// [`Kind::namespace_prefix`]: crate::api::Kind::namespace_prefix
    pub fn count(&self, prefix: &str) -> u64 {
        self.counts.get(prefix).copied().unwrap_or(0)
    }
}

fn add(counts: &mut HashMap<String, u64>, key: &str, n: i64) {
    for prefix in prefixes(key) {
        match counts.get_mut(prefix) {
            Some(c) => *c = c.saturating_add_signed(n),
            None if n > 0 => {
                counts.insert(prefix.to_string(), n as u64);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Kind;
    use k8s_openapi::api::core::v1::Pod;

    fn pod() -> Entry {
        Entry::Decoded(Arc::new(Object::from(Pod::default())))
    }

    #[test]
    fn a_key_counts_under_its_kind_and_its_namespace() {
        assert_eq!(
            prefixes("/registry/pods/default/web-1").collect::<Vec<_>>(),
            ["/registry/pods/", "/registry/pods/default/"]
        );
        assert_eq!(
            prefixes("/registry/nodes/node-1").collect::<Vec<_>>(),
            ["/registry/nodes/"]
        );
    }

    #[test]
    fn counts_follow_inserts_replacements_and_removals() {
        let mut objects = Objects::default();
        let key = |ns: &str, name: &str| Kind::Pod.key(Some(ns), name);
        objects.insert(key("a", "1"), pod());
        objects.insert(key("a", "2"), pod());
        objects.insert(key("b", "1"), pod());
        assert!(objects.insert(key("a", "1"), pod()), "a replacement");
        assert!(
            objects.put(&key("a", "1"), pod()).is_some(),
            "a replacement, borrowed"
        );
        assert!(
            objects.put(&key("c", "1"), pod()).is_none(),
            "new, borrowed"
        );
        assert!(objects.remove(&key("c", "1")).is_some());
        assert_eq!(objects.count(&Kind::Pod.prefix()), 3);
        assert_eq!(objects.count(&Kind::Pod.namespace_prefix("a")), 2);
        assert_eq!(objects.count(&Kind::Pod.namespace_prefix("b")), 1);
        assert!(objects.remove(&key("a", "2")).is_some());
        assert!(objects.remove(&key("a", "2")).is_none(), "already gone");
        assert_eq!(objects.count(&Kind::Pod.prefix()), 2);
        assert_eq!(objects.count(&Kind::Pod.namespace_prefix("a")), 1);
        assert_eq!(objects.count(&Kind::Node.prefix()), 0);
        assert_eq!(objects.len(), 2, "reads go to the map");
    }

    fn event(name: &str, uid: &str, rv: u64) -> (Arc<Object>, Bytes) {
        use k8s_openapi::api::core::v1::{Event, ObjectReference};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
        let mut obj = Object::Event(
            Event {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("default".into()),
                    ..Default::default()
                },
                involved_object: ObjectReference {
                    kind: Some("Pod".into()),
                    name: Some("web-1".into()),
                    uid: Some(uid.into()),
                    ..Default::default()
                },
                reason: Some("Scheduled".into()),
                last_timestamp: Some(Time(Timestamp::from_second(1_700_000_000).unwrap())),
                ..Default::default()
            }
            .into(),
        );
        let bytes: Bytes = obj.to_json().into();
        obj.meta_mut().resource_version = Some(rv.to_string());
        (Arc::new(obj), bytes)
    }

    /// An Event is kept as its stored bytes and reads back as it was written, with its
    /// resourceVersion and its last-seen time.
    #[test]
    fn events_are_kept_encoded_and_read_back_whole() {
        let (obj, bytes) = event("web-1.1", "u-1", 42);
        let entry = Entry::new(obj.clone(), &bytes);
        let Entry::Encoded {
            bytes: kept,
            revision,
            last_seen,
        } = &entry
        else {
            panic!("an Event is kept encoded");
        };
        assert!(Arc::ptr_eq(kept, &bytes), "the store's bytes, shared");
        assert_eq!(*revision, 42);
        assert_eq!(last_seen.map(|t| t.as_second()), Some(1_700_000_000));
        let key = Kind::Event.key(Some("default"), "web-1.1");
        assert_eq!(entry.object(&key).as_deref(), Some(&*obj));
        assert!(matches!(Entry::new(pod_arc(), &bytes), Entry::Decoded(_)));
    }

    fn pod_arc() -> Arc<Object> {
        Arc::new(Object::from(Pod::default()))
    }

    /// Field selectors on encoded Events: the prefilter skips what cannot match and never
    /// what does; the full selector decides.
    #[test]
    fn encoded_events_are_listed_by_field_selector() {
        let mut objects = Objects::default();
        for (i, uid) in ["u-1", "u-2", "u-1"].iter().enumerate() {
            let (obj, bytes) = event(&format!("e{i}"), uid, i as u64 + 1);
            let key = Kind::Event.key(Some("default"), &format!("e{i}"));
            objects.insert(key, Entry::new(obj, &bytes));
        }
        let names = |sel: &str| {
            let filter = Filter {
                kind: Kind::Event,
                namespace: None,
                labels: Default::default(),
                fields: FieldSelector::parse_for(Kind::Event, sel).unwrap(),
            };
            let prefix = Kind::Event.prefix();
            objects
                .matching(&prefix, Bound::Included(prefix.clone()), &filter)
                .map(|(_, o)| o.name().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("involvedObject.uid=u-1"), ["e0", "e2"]);
        assert_eq!(names("involvedObject.uid!=u-1"), ["e1"]);
        assert_eq!(
            names("involvedObject.uid=u-1,reason=Scheduled"),
            ["e0", "e2"]
        );
        assert_eq!(
            names("involvedObject.uid=u-"),
            Vec::<String>::new(),
            "not a substring match"
        );
        assert_eq!(
            names("involvedObject.fieldPath="),
            ["e0", "e1", "e2"],
            "unset reads as empty"
        );
        assert_eq!(names(""), ["e0", "e1", "e2"]);

        let prefilter = Prefilter::new(&FieldSelector::parse("reason=Scheduled").unwrap());
        assert!(prefilter.may_match(br#"{"reason":"Scheduled"}"#));
        assert!(!prefilter.may_match(br#"{"reason":"Pulled"}"#));
        let escaped = Prefilter::new(&FieldSelector::parse(r#"reason=a"b"#).unwrap());
        assert!(
            escaped.may_match(b"{}"),
            "values JSON escapes are left to the full match"
        );
        for not_a_string in [
            "spec.hostNetwork=true",
            "spec.unschedulable=true",
            "status.replicas=3",
        ] {
            let prefilter = Prefilter::new(&FieldSelector::parse(not_a_string).unwrap());
            assert!(
                prefilter.may_match(br#"{"spec":{"hostNetwork":true,"unschedulable":true}}"#),
                "{not_a_string}: not a JSON string, left to the full match"
            );
        }
    }
}
