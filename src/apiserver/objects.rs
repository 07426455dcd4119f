//! The API server's cache of decoded objects: every stored object by store key, plus how many
//! keys sit under each prefix (a kind: `/registry/pods/`; a kind in a namespace:
//! `/registry/pods/default/`), so a page of a list can say how many items remain
//! (`remainingItemCount`) without walking them.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::sync::Arc;

use crate::api::Object;

/// Objects by key. Reads go through `Deref` to the map; writes through [`Objects::insert`] and
/// [`Objects::remove`], which keep the counts.
#[derive(Default)]
pub(crate) struct Objects {
    map: BTreeMap<String, Arc<Object>>,
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
    /// Store `obj` under `key`; returns the object it replaces.
    pub fn insert(&mut self, key: String, obj: Arc<Object>) -> Option<Arc<Object>> {
        use std::collections::btree_map::Entry;
        match self.map.entry(key) {
            Entry::Occupied(mut e) => Some(e.insert(obj)),
            Entry::Vacant(e) => {
                add(&mut self.counts, e.key(), 1);
                e.insert(obj);
                None
            }
        }
    }

    /// Forget `key`; returns the object it held.
    pub fn remove(&mut self, key: &str) -> Option<Arc<Object>> {
        let prev = self.map.remove(key);
        if prev.is_some() {
            add(&mut self.counts, key, -1);
        }
        prev
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

impl Deref for Objects {
    type Target = BTreeMap<String, Arc<Object>>;

    fn deref(&self) -> &Self::Target {
        &self.map
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

    fn pod() -> Arc<Object> {
        Arc::new(Object::from(Pod::default()))
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
        assert!(
            objects.insert(key("a", "1"), pod()).is_some(),
            "a replacement"
        );
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
}
