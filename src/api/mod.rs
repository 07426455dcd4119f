//! The API objects kubeactor serves: the real Kubernetes types from `k8s-openapi`, one
//! [`Object`] enum over them, their storage keys, and the pure functions the API server runs
//! on them (defaulting, validation, label and field selectors).

pub mod defaults;
pub mod json;
pub mod quantity;
pub mod selectors;
pub mod validation;

use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

/// The kinds kubeactor stores. The order is the order of discovery documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Node,
    Pod,
    Event,
    Lease,
    Deployment,
    ReplicaSet,
}

impl Kind {
    /// Every stored kind.
    pub const ALL: [Kind; 7] = [
        Kind::Namespace,
        Kind::Node,
        Kind::Pod,
        Kind::Event,
        Kind::Lease,
        Kind::Deployment,
        Kind::ReplicaSet,
    ];

    /// The `kind` field, e.g. `Deployment`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::Event => "Event",
            Kind::Lease => "Lease",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
        }
    }

    /// The resource (plural, lower case), e.g. `deployments`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::Event => "events",
            Kind::Lease => "leases",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
        }
    }

    /// The API group (`""` for core).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Node | Kind::Pod | Kind::Event => "",
            Kind::Lease => "coordination.k8s.io",
            Kind::Deployment | Kind::ReplicaSet => "apps",
        }
    }

    /// The version within the group.
    pub fn version(self) -> &'static str {
        "v1"
    }

    /// The `apiVersion` field, e.g. `apps/v1`.
    pub fn api_version(self) -> &'static str {
        match self.group() {
            "" => "v1",
            "apps" => "apps/v1",
            _ => "coordination.k8s.io/v1",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }

    /// The short names kubectl accepts (`deploy`, `rs`, `po`, …).
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Node => &["no"],
            Kind::Pod => &["po"],
            Kind::Event => &["ev"],
            Kind::Lease => &[],
            Kind::Deployment => &["deploy"],
            Kind::ReplicaSet => &["rs"],
        }
    }

    /// `group/resource` as kube-apiserver names it in messages: `deployments.apps`, `pods`.
    pub fn qualified_resource(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            g => format!("{}.{}", self.plural(), g),
        }
    }

    /// Look a kind up by its plural resource name.
    pub fn from_plural(plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == plural)
    }

    /// Look a kind up by its `kind` name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The store prefix of every object of this kind: `/registry/pods/`.
    pub fn prefix(self) -> String {
        format!("/registry/{}/", self.plural())
    }

    /// The store prefix of this kind in one namespace: `/registry/pods/default/`.
    pub fn namespace_prefix(self, namespace: &str) -> String {
        format!("/registry/{}/{}/", self.plural(), namespace)
    }

    /// The store key of one object, as kube-apiserver lays out etcd:
    /// `/registry/<resource>/<namespace>/<name>` or `/registry/<resource>/<name>`.
    ///
    /// Built with `push_str` into a string of the right size: `format!` goes through the
    /// formatting machinery and grows its buffer, and every write and lookup builds a key
    /// (about 1 % of the whole chain's CPU, `benches/chain.rs`).
    pub fn key(self, namespace: Option<&str>, name: &str) -> String {
        const PREFIX: &str = "/registry/";
        let plural = self.plural();
        let ns = namespace.filter(|_| self.namespaced());
        let len = PREFIX.len() + plural.len() + 1 + ns.map_or(0, |ns| ns.len() + 1) + name.len();
        let mut key = String::with_capacity(len);
        key.push_str(PREFIX);
        key.push_str(plural);
        key.push('/');
        if let Some(ns) = ns {
            key.push_str(ns);
            key.push('/');
        }
        key.push_str(name);
        key
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One API object of a stored kind.
///
/// Each variant holds its object behind an `Arc`: a decoded object exists once, shared by the
/// ApiServer's cache, its watch events and lists, every informer and the scheduler, so
/// cloning an `Object` (or taking a typed `Arc<K>` out of it, [`KindOf::arc_from_object`])
/// never copies the object. Writers change their own copy with [`Object::meta_mut`] or
/// `Arc::make_mut` (copy-on-write): a revision already handed to watchers never changes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Arc<Namespace>),
    Node(Arc<Node>),
    Pod(Arc<Pod>),
    Event(Arc<Event>),
    Lease(Arc<Lease>),
    Deployment(Arc<Deployment>),
    ReplicaSet(Arc<ReplicaSet>),
}

/// Apply `$body` to the inner value of any [`Object`] variant, bound as `$o`.
macro_rules! each_object {
    ($obj:expr, $o:ident => $body:expr) => {
        match $obj {
            Object::Namespace($o) => $body,
            Object::Node($o) => $body,
            Object::Pod($o) => $body,
            Object::Event($o) => $body,
            Object::Lease($o) => $body,
            Object::Deployment($o) => $body,
            Object::ReplicaSet($o) => $body,
        }
    };
}

/// Errors decoding an object.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("Object 'Kind' is missing in '{0}'")]
    MissingKind(String),
    #[error("no kind \"{kind}\" is registered for version \"{api_version}\"")]
    UnknownKind { kind: String, api_version: String },
}

impl Object {
    /// The kind of this object.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Node(_) => Kind::Node,
            Object::Pod(_) => Kind::Pod,
            Object::Event(_) => Kind::Event,
            Object::Lease(_) => Kind::Lease,
            Object::Deployment(_) => Kind::Deployment,
            Object::ReplicaSet(_) => Kind::ReplicaSet,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        each_object!(self, o => &o.metadata)
    }

    /// The metadata, to change: copies the object first if it is shared (`Arc::make_mut`).
    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each_object!(self, o => &mut Arc::make_mut(o).metadata)
    }

    /// `metadata.name` (empty if unset).
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, for namespaced kinds.
    pub fn namespace(&self) -> Option<&str> {
        if self.kind().namespaced() {
            self.meta().namespace.as_deref()
        } else {
            None
        }
    }

    /// The store key of this object.
    pub fn key(&self) -> String {
        self.kind().key(self.namespace(), self.name())
    }

    /// `metadata.resourceVersion` parsed as a store revision (0 if absent or malformed).
    pub fn resource_version(&self) -> u64 {
        self.meta()
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse().ok())
            .unwrap_or(0)
    }

    /// Serialize to JSON bytes, with `apiVersion` and `kind`.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing the k8s-openapi types cannot fail: they are plain data with string keys.
        // `json` writes the same bytes as serde_json, faster (see there).
        json::to_vec(&json::ObjectJson(self)).unwrap_or_default()
    }

    /// Decode JSON of a known kind (as stored).
    pub fn from_json(kind: Kind, bytes: &[u8]) -> Result<Object, serde_json::Error> {
        Ok(match kind {
            Kind::Namespace => Object::Namespace(Arc::new(serde_json::from_slice(bytes)?)),
            Kind::Node => Object::Node(Arc::new(serde_json::from_slice(bytes)?)),
            Kind::Pod => Object::Pod(Arc::new(serde_json::from_slice(bytes)?)),
            Kind::Event => Object::Event(Arc::new(serde_json::from_slice(bytes)?)),
            Kind::Lease => Object::Lease(Arc::new(serde_json::from_slice(bytes)?)),
            Kind::Deployment => Object::Deployment(Arc::new(serde_json::from_slice(bytes)?)),
            Kind::ReplicaSet => Object::ReplicaSet(Arc::new(serde_json::from_slice(bytes)?)),
        })
    }

    /// Decode a JSON value of a known kind.
    pub fn from_value(kind: Kind, value: serde_json::Value) -> Result<Object, serde_json::Error> {
        Ok(match kind {
            Kind::Namespace => Object::Namespace(Arc::new(serde_json::from_value(value)?)),
            Kind::Node => Object::Node(Arc::new(serde_json::from_value(value)?)),
            Kind::Pod => Object::Pod(Arc::new(serde_json::from_value(value)?)),
            Kind::Event => Object::Event(Arc::new(serde_json::from_value(value)?)),
            Kind::Lease => Object::Lease(Arc::new(serde_json::from_value(value)?)),
            Kind::Deployment => Object::Deployment(Arc::new(serde_json::from_value(value)?)),
            Kind::ReplicaSet => Object::ReplicaSet(Arc::new(serde_json::from_value(value)?)),
        })
    }

    /// The store kind of a key (`/registry/pods/...` → Pod).
    pub fn kind_of_key(key: &str) -> Option<Kind> {
        let rest = key.strip_prefix("/registry/")?;
        // Up to the next '/', found by byte (a `char` pattern's searcher costs more here).
        let plural = rest
            .bytes()
            .position(|c| c == b'/')
            .map_or(rest, |at| &rest[..at]);
        Kind::from_plural(plural)
    }

    /// Borrow as a Pod, if it is one.
    pub fn as_pod(&self) -> Option<&Pod> {
        match self {
            Object::Pod(p) => Some(p),
            _ => None,
        }
    }
}

macro_rules! object_from {
    ($($variant:ident),*) => {
        $(impl From<$variant> for Object {
            fn from(o: $variant) -> Object {
                Object::$variant(Arc::new(o))
            }
        }
        impl From<Arc<$variant>> for Object {
            fn from(o: Arc<$variant>) -> Object {
                Object::$variant(o)
            }
        })*
    };
}
object_from!(Namespace, Node, Pod, Event, Lease, Deployment, ReplicaSet);

/// A typed view of one kind inside [`Object`], for generic clients (informers, tests).
pub trait KindOf: Sized + Clone + Send + Sync + 'static {
    const KIND: Kind;
    /// Borrow the object, if it is of this kind.
    fn from_object(obj: &Object) -> Option<&Self>;
    /// Borrow the shared `Arc` holding it, if it is of this kind: cloning that shares the
    /// object instead of copying it.
    fn arc_from_object(obj: &Object) -> Option<&Arc<Self>>;
    fn into_object(self) -> Object;
}

macro_rules! kind_of {
    ($($variant:ident),*) => {
        $(impl KindOf for $variant {
            const KIND: Kind = Kind::$variant;
            fn from_object(obj: &Object) -> Option<&Self> {
                match obj {
                    Object::$variant(o) => Some(o),
                    _ => None,
                }
            }
            fn arc_from_object(obj: &Object) -> Option<&Arc<Self>> {
                match obj {
                    Object::$variant(o) => Some(o),
                    _ => None,
                }
            }
            fn into_object(self) -> Object {
                Object::$variant(Arc::new(self))
            }
        })*
    };
}
kind_of!(Namespace, Node, Pod, Event, Lease, Deployment, ReplicaSet);

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys as kube-apiserver lays out etcd; a cluster-scoped kind ignores a namespace.
    #[test]
    fn store_keys() {
        assert_eq!(
            Kind::Pod.key(Some("default"), "web-1"),
            "/registry/pods/default/web-1"
        );
        assert_eq!(Kind::Node.key(None, "n1"), "/registry/nodes/n1");
        assert_eq!(Kind::Node.key(Some("default"), "n1"), "/registry/nodes/n1");
        assert_eq!(Kind::Pod.key(None, "p"), "/registry/pods/p");
        let key = Kind::ReplicaSet.key(Some("ns"), "rs");
        assert_eq!(key, "/registry/replicasets/ns/rs");
        assert_eq!(key.capacity(), key.len());
        assert_eq!(Object::kind_of_key(&key), Some(Kind::ReplicaSet));
    }
}
