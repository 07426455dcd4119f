//! Field management: who owns which field of an object (`metadata.managedFields`), and
//! server-side apply's merge, prune and conflict rules.
//!
//! Mirrors `k8s.io/apimachinery/pkg/util/managedfields` (the field manager, its
//! `managedFieldsUpdater`, `stripMeta` and `NewConflictError`) and
//! `sigs.k8s.io/structured-merge-diff` (`fieldpath.Set`, `typed.Compare`, `merge.Updater`'s
//! `Update`, `Apply` and `prune`).
//!
//! # Where it runs
//!
//! In the HTTP layer, on the worker threads, as upstream's request handlers do: every HTTP
//! write already holds the live object it is based on (a patch reads it; an update reads it
//! too) and sends the ApiServer an `Update` with the live resourceVersion as its
//! precondition, so the field sets computed here are exactly those of the object that is
//! replaced — or the write is a 409 and is computed again. The ApiServer actor does no
//! field-set work: it only keeps the live `managedFields` when a writer sends none
//! ([`strategy::prepare_for_update`](crate::apiserver::strategy::prepare_for_update)). So
//! in-process components (controllers, scheduler, kubelets) write without entries of their
//! own, where upstream would record `kube-controller-manager` and friends.
//!
//! # Field sets
//!
//! A [`FieldSet`] is a tree of path elements — `f:<field>`, `k:{"name":"nginx"}` (an element
//! of a list keyed by merge keys), `v:"x"` (an element of a set of scalars), `i:<n>` — in the
//! `FieldsV1` encoding of the API:
//!
//! ```text
//! {"f:spec": {"f:replicas": {},
//!             "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
//!                 ".": {}, "f:image": {}, "f:name": {}}}}}}}
//! ```
//!
//! A member is a leaf (`{}`) or, when it also has children, marked by `"."`. Scalars, atomic
//! lists and maps, and list elements are members; plain maps and structs are not (only
//! their fields are). The schema knowledge is the strategic-merge-patch metadata of
//! [`patch`](super::patch) (merge keys) plus the keys SSA adds (`ports` by
//! `containerPort`+`protocol`, `protocol` defaulting to `TCP`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use serde_json::{Map, Value};

use crate::apiserver::ApiError;

/// Upstream's operations.
pub const APPLY: &str = "Apply";
pub const UPDATE: &str = "Update";

/// The annotation kubeactor's ApiServer writes on every traced write: nobody's field.
const TRACEPARENT: &str = crate::telemetry::TRACEPARENT_ANNOTATION;

// ---- path elements and sets (fieldpath) ----

/// One step of a field path. The order is upstream's (`PathElement.Less`): fields, keys,
/// values, indexes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElement {
    /// `f:name`
    Field(String),
    /// `k:{"name":"nginx"}` — the key fields as canonical JSON (sorted keys).
    Key(String),
    /// `v:"x"` — the value as canonical JSON.
    Value(String),
    /// `i:0`
    Index(usize),
}

impl PathElement {
    fn encode(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Result<PathElement, String> {
        let bad = || format!("invalid path element {s:?}");
        let (prefix, rest) = s.split_once(':').ok_or_else(bad)?;
        Ok(match prefix {
            "f" => PathElement::Field(rest.to_string()),
            "k" => {
                let v: Value = serde_json::from_str(rest).map_err(|_| bad())?;
                if !v.is_object() {
                    return Err(bad());
                }
                PathElement::Key(v.to_string())
            }
            "v" => {
                let v: Value = serde_json::from_str(rest).map_err(|_| bad())?;
                PathElement::Value(v.to_string())
            }
            "i" => PathElement::Index(rest.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        })
    }

    /// Upstream's `PathElement.String()`: `.spec`, `[name="nginx"]`, `[=x]`, `[0]`.
    fn display(&self) -> String {
        match self {
            PathElement::Field(f) => format!(".{f}"),
            PathElement::Key(k) => {
                let fields: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
                format!("[{}]", parts.join(","))
            }
            PathElement::Value(v) => format!("[={v}]"),
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

/// A path as upstream prints it in conflicts: `.spec.template.spec.containers[name="nginx"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

/// A set of field paths (`fieldpath.Set`). Invariant: no empty child sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Add a path.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the path itself is a member.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether the path or anything under it is a member.
    fn has_at_or_under(&self, path: &[PathElement]) -> bool {
        match path {
            [] => !self.is_empty(),
            [last] => self.members.contains(last) || self.children.contains_key(last),
            [first, rest @ ..] => self
                .children
                .get(first)
                .is_some_and(|c| c.has_at_or_under(rest)),
        }
    }

    fn attach(&mut self, pe: PathElement, member: bool, children: FieldSet) {
        if member {
            self.members.insert(pe.clone());
        }
        if !children.is_empty() {
            self.children.entry(pe).or_default().union_with(&children);
        }
    }

    pub fn union_with(&mut self, other: &FieldSet) {
        self.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            self.children.entry(pe.clone()).or_default().union_with(c);
        }
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_with(other);
        out
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| {
                let d = match other.children.get(pe) {
                    Some(o) => c.difference(o),
                    None => c.clone(),
                };
                (!d.is_empty()).then(|| (pe.clone(), d))
            })
            .collect();
        FieldSet { members, children }
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| {
                let i = c.intersection(other.children.get(pe)?);
                (!i.is_empty()).then(|| (pe.clone(), i))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Every member path, in order.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        // Upstream's `Set.Iterate`: members first, then children.
        for m in &self.members {
            prefix.push(m.clone());
            out.push(prefix.clone());
            prefix.pop();
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    fn child_mut(&mut self, pe: &PathElement) -> Option<&mut FieldSet> {
        self.children.get_mut(pe)
    }

    fn remove(&mut self, pe: &PathElement) {
        self.members.remove(pe);
        self.children.remove(pe);
    }

    fn prune_empty(&mut self) {
        for c in self.children.values_mut() {
            c.prune_empty();
        }
        self.children.retain(|_, c| !c.is_empty());
    }

    /// The `FieldsV1` JSON of the set.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        for pe in self.members.iter().chain(self.children.keys()) {
            if m.contains_key(&pe.encode()) {
                continue;
            }
            let mut inner = match self.children.get(pe) {
                Some(c) => match c.to_fields_v1() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
                None => Map::new(),
            };
            if self.members.contains(pe) && !inner.is_empty() {
                inner.insert(".".into(), Value::Object(Map::new()));
            }
            m.insert(pe.encode(), Value::Object(inner));
        }
        Value::Object(m)
    }

    /// Parse `FieldsV1` JSON.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        let Value::Object(m) = v else {
            return Err("fieldsV1 must be an object".into());
        };
        let mut set = FieldSet::default();
        for (k, inner) in m {
            if k == "." {
                continue;
            }
            let pe = PathElement::decode(k)?;
            let Value::Object(im) = inner else {
                return Err(format!("fieldsV1 entry {k:?} must be an object"));
            };
            let member = im.is_empty() || im.contains_key(".");
            let children = FieldSet::from_fields_v1(inner)?;
            set.attach(pe, member, children);
        }
        Ok(set)
    }
}

// ---- schema: how each list and map merges ----

/// How a list is merged and owned (`x-kubernetes-list-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListType {
    /// Elements are owned one by one, by their key fields.
    Map(&'static [&'static str]),
    /// A set of scalars: each value is owned.
    Set,
    /// Owned, and replaced, as a whole.
    Atomic,
}

/// The list type of a field of the kinds served: the strategic-merge-patch merge keys
/// ([`super::patch::merge_key`]), with SSA's own keys where they differ.
fn list_type(field: &str) -> ListType {
    match field {
        "ports" => ListType::Map(&["containerPort", "protocol"]),
        "topologySpreadConstraints" => ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
        "finalizers" => ListType::Set,
        f => match super::patch::merge_key(f) {
            Some("name") => ListType::Map(&["name"]),
            Some("mountPath") => ListType::Map(&["mountPath"]),
            Some("devicePath") => ListType::Map(&["devicePath"]),
            Some("type") => ListType::Map(&["type"]),
            Some("uid") => ListType::Map(&["uid"]),
            Some("ip") => ListType::Map(&["ip"]),
            _ => ListType::Atomic,
        },
    }
}

/// Maps owned as a whole (`x-kubernetes-map-type: atomic`): label selectors.
fn is_atomic_map(field: &str) -> bool {
    matches!(field, "selector" | "labelSelector" | "namespaceSelector")
}

/// The key of a list element (`k:…`), with defaulted key fields filled in as SMD does
/// (`protocol: TCP`); `None` when the first key field is missing.
fn element_key(elem: &Value, keys: &[&str]) -> Option<PathElement> {
    let obj = elem.as_object()?;
    let mut key = Map::new();
    for (i, k) in keys.iter().enumerate() {
        match obj.get(*k).filter(|v| !v.is_null()) {
            Some(v) => {
                key.insert((*k).to_string(), v.clone());
            }
            None if *k == "protocol" => {
                key.insert("protocol".into(), Value::from("TCP"));
            }
            None if i == 0 => return None,
            None => {}
        }
    }
    Some(PathElement::Key(Value::Object(key).to_string()))
}

fn element_pe(elem: &Value, index: usize, keys: &[&str]) -> PathElement {
    element_key(elem, keys).unwrap_or(PathElement::Index(index))
}

// ---- the field set of a value (typed.ToFieldSet) ----

/// The set of a value found at `field`: whether the node itself is a member, and its children.
fn node_of(v: &Value, field: &str) -> (bool, FieldSet) {
    match v {
        Value::Null => (false, FieldSet::default()),
        Value::Object(m) if m.is_empty() || is_atomic_map(field) => (true, FieldSet::default()),
        Value::Object(m) => (false, map_set(m)),
        Value::Array(a) if a.is_empty() => (true, FieldSet::default()),
        Value::Array(a) => match list_type(field) {
            ListType::Atomic => (true, FieldSet::default()),
            ListType::Set => {
                let mut s = FieldSet::default();
                for v in a {
                    s.members.insert(PathElement::Value(v.to_string()));
                }
                (false, s)
            }
            ListType::Map(keys) => {
                let mut s = FieldSet::default();
                for (i, e) in a.iter().enumerate() {
                    let children = e.as_object().map(map_set).unwrap_or_default();
                    s.attach(element_pe(e, i, keys), true, children);
                }
                (false, s)
            }
        },
        _ => (true, FieldSet::default()),
    }
}

fn map_set(m: &Map<String, Value>) -> FieldSet {
    let mut s = FieldSet::default();
    for (k, v) in m {
        let (member, children) = node_of(v, k);
        s.attach(PathElement::Field(k.clone()), member, children);
    }
    s
}

/// Which part of an object a write may own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The main resource: everything but `status`.
    Main,
    /// The `status` subresource: only `status`.
    Status,
}

/// Take out what no manager owns: the system fields (upstream's `stripMeta`), kubeactor's
/// trace annotation, and the part the scope resets (the strategies' `GetResetFields`).
fn strip(set: &mut FieldSet, scope: Scope) {
    for f in ["apiVersion", "kind", "metadata"] {
        set.members.remove(&PathElement::Field(f.into()));
    }
    set.children
        .remove(&PathElement::Field("apiVersion".into()));
    set.children.remove(&PathElement::Field("kind".into()));
    let status = PathElement::Field("status".into());
    match scope {
        Scope::Main => set.remove(&status),
        Scope::Status => {
            set.members.retain(|pe| *pe == status);
            set.children.retain(|pe, _| *pe == status);
        }
    }
    if let Some(meta) = set.child_mut(&PathElement::Field("metadata".into())) {
        for f in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        ] {
            meta.remove(&PathElement::Field(f.into()));
        }
        if let Some(ann) = meta.child_mut(&PathElement::Field("annotations".into())) {
            ann.remove(&PathElement::Field(TRACEPARENT.into()));
        }
    }
    set.prune_empty();
}

/// The fields an object (as JSON) sets, as owned by a write in `scope`.
pub fn object_fields(obj: &Value, scope: Scope) -> FieldSet {
    let mut set = match obj {
        Value::Object(m) => map_set(m),
        _ => FieldSet::default(),
    };
    strip(&mut set, scope);
    set
}

// ---- comparison (typed.Compare) ----

/// What changed between two versions of an object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub added: FieldSet,
    pub removed: FieldSet,
    pub modified: FieldSet,
}

impl Comparison {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }

    /// Added or modified: what a write set.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    fn attach(&mut self, pe: PathElement, sub: Comparison) {
        self.added.attach(pe.clone(), false, sub.added);
        self.removed.attach(pe.clone(), false, sub.removed);
        self.modified.attach(pe, false, sub.modified);
    }
}

/// Compare two versions of an object in `scope` (upstream's `TypedValue.Compare`). Equal
/// subtrees are skipped with one equality check, so an update that changes one field costs
/// about one walk of the object.
pub fn compare(old: &Value, new: &Value, scope: Scope) -> Comparison {
    let mut c = Comparison::default();
    if let (Value::Object(o), Value::Object(n)) = (old, new) {
        compare_maps(o, n, &mut c);
    }
    strip(&mut c.added, scope);
    strip(&mut c.removed, scope);
    strip(&mut c.modified, scope);
    c
}

fn compare_maps(o: &Map<String, Value>, n: &Map<String, Value>, out: &mut Comparison) {
    for (k, ov) in o {
        let pe = PathElement::Field(k.clone());
        match n.get(k) {
            Some(nv) => compare_node(pe, ov, nv, k, out),
            None => {
                let (m, c) = node_of(ov, k);
                out.removed.attach(pe, m, c);
            }
        }
    }
    for (k, nv) in n {
        if !o.contains_key(k) {
            let (m, c) = node_of(nv, k);
            out.added.attach(PathElement::Field(k.clone()), m, c);
        }
    }
}

fn compare_node(pe: PathElement, old: &Value, new: &Value, field: &str, out: &mut Comparison) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n))
            if !o.is_empty() && !n.is_empty() && !is_atomic_map(field) =>
        {
            let mut sub = Comparison::default();
            compare_maps(o, n, &mut sub);
            out.attach(pe, sub);
        }
        (Value::Array(o), Value::Array(n))
            if !o.is_empty() && !n.is_empty() && list_type(field) != ListType::Atomic =>
        {
            let mut sub = Comparison::default();
            match list_type(field) {
                ListType::Set => {
                    for v in o.iter().filter(|v| !n.contains(v)) {
                        sub.removed
                            .members
                            .insert(PathElement::Value(v.to_string()));
                    }
                    for v in n.iter().filter(|v| !o.contains(v)) {
                        sub.added.members.insert(PathElement::Value(v.to_string()));
                    }
                }
                ListType::Map(keys) => {
                    let index = |a: &[Value]| -> BTreeMap<PathElement, Value> {
                        a.iter()
                            .enumerate()
                            .map(|(i, e)| (element_pe(e, i, keys), e.clone()))
                            .collect()
                    };
                    let (oi, ni) = (index(o), index(n));
                    for (epe, oe) in &oi {
                        match ni.get(epe) {
                            Some(ne) if oe == ne => {}
                            Some(ne) => match (oe, ne) {
                                (Value::Object(om), Value::Object(nm)) => {
                                    let mut esub = Comparison::default();
                                    compare_maps(om, nm, &mut esub);
                                    sub.attach(epe.clone(), esub);
                                }
                                _ => {
                                    sub.modified.members.insert(epe.clone());
                                }
                            },
                            None => {
                                let c = oe.as_object().map(map_set).unwrap_or_default();
                                sub.removed.attach(epe.clone(), true, c);
                            }
                        }
                    }
                    for (epe, ne) in &ni {
                        if !oi.contains_key(epe) {
                            let c = ne.as_object().map(map_set).unwrap_or_default();
                            sub.added.attach(epe.clone(), true, c);
                        }
                    }
                }
                ListType::Atomic => {}
            }
            out.attach(pe, sub);
        }
        _ => {
            // Leaves, atomic values, or a change of shape (empty ↔ not empty).
            let (om, oc) = node_of(old, field);
            let (nm, nc) = node_of(new, field);
            if om && nm {
                out.modified.members.insert(pe.clone());
            } else if om {
                out.removed.members.insert(pe.clone());
            } else if nm {
                out.added.members.insert(pe.clone());
            }
            out.removed.attach(pe.clone(), false, oc.difference(&nc));
            out.added.attach(pe.clone(), false, nc.difference(&oc));
            out.modified.attach(pe, false, oc.intersection(&nc));
        }
    }
}

// ---- managers ----

/// One manager's entry: who (manager, operation, subresource, apiVersion) and what it owns.
#[derive(Clone, Debug, PartialEq)]
pub struct Managed {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    pub api_version: String,
    pub time: Option<Time>,
    pub set: FieldSet,
}

/// Who is writing, for [`update`] and [`apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Writer<'a> {
    pub manager: &'a str,
    /// `""`, `status` or `scale`.
    pub subresource: &'a str,
    pub api_version: &'a str,
}

impl Managed {
    /// Whether this entry is the writer's own (upstream's `BuildManagerIdentifier`: the
    /// apiVersion counts for updates, not for appliers).
    fn is(&self, w: &Writer, operation: &str) -> bool {
        self.manager == w.manager
            && self.operation == operation
            && self.subresource == w.subresource
            && (operation == APPLY || self.api_version == w.api_version)
    }

    /// Upstream's `printManager`: `"kubectl"`, or `"kubectl" with subresource "scale" using
    /// apps/v1` for an updater.
    fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == UPDATE {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// Decode `metadata.managedFields`. Entries that do not parse make the whole list invalid,
/// which upstream answers by starting over from no managers.
pub fn decode(entries: &[ManagedFieldsEntry]) -> Result<Vec<Managed>, String> {
    entries
        .iter()
        .map(|e| {
            let set = match &e.fields_v1 {
                Some(FieldsV1(v)) => FieldSet::from_fields_v1(v)?,
                None => FieldSet::default(),
            };
            Ok(Managed {
                manager: e.manager.clone().unwrap_or_default(),
                operation: e.operation.clone().unwrap_or_default(),
                subresource: e.subresource.clone().unwrap_or_default(),
                api_version: e.api_version.clone().unwrap_or_default(),
                time: e.time.clone(),
                set,
            })
        })
        .collect()
}

/// Encode managers as `metadata.managedFields`, in upstream's order (operation, time,
/// manager, apiVersion, subresource).
pub fn encode(managers: &[Managed]) -> Vec<ManagedFieldsEntry> {
    let mut sorted: Vec<&Managed> = managers.iter().collect();
    let secs = |m: &Managed| m.time.as_ref().map(|t| t.0.as_second()).unwrap_or(0);
    sorted.sort_by(|p, q| {
        (
            &p.operation,
            secs(p),
            &p.manager,
            &p.api_version,
            &p.subresource,
        )
            .cmp(&(
                &q.operation,
                secs(q),
                &q.manager,
                &q.api_version,
                &q.subresource,
            ))
    });
    sorted
        .into_iter()
        .map(|m| ManagedFieldsEntry {
            manager: Some(m.manager.clone()),
            operation: Some(m.operation.clone()),
            api_version: Some(m.api_version.clone()),
            time: m.time.clone(),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(m.set.to_fields_v1())),
            subresource: (!m.subresource.is_empty()).then(|| m.subresource.clone()),
        })
        .collect()
}

/// Record an update (create, update, patch, scale) by `writer`: it takes what it added or
/// modified from every other manager, what it removed is nobody's any more. Mirrors
/// `Updater.Update` and `managedFieldsUpdater.Update` (the entry's time moves only when the
/// write set something).
pub fn update(managers: &mut Vec<Managed>, cmp: &Comparison, writer: &Writer, now: &Time) {
    let changed = cmp.changed();
    for m in managers.iter_mut().filter(|m| !m.is(writer, UPDATE)) {
        m.set = m.set.difference(&changed).difference(&cmp.removed);
    }
    let mine = managers.iter().position(|m| m.is(writer, UPDATE));
    match mine {
        Some(i) => {
            let m = &mut managers[i];
            m.set = m.set.difference(&cmp.removed).union(&changed);
            if !changed.is_empty() {
                m.time = Some(now.clone());
            }
        }
        None if !changed.is_empty() => managers.push(Managed {
            manager: writer.manager.to_string(),
            operation: UPDATE.into(),
            subresource: writer.subresource.to_string(),
            api_version: writer.api_version.to_string(),
            time: Some(now.clone()),
            set: changed,
        }),
        None => {}
    }
    managers.retain(|m| !m.set.is_empty());
}

/// A field the configuration would change that another manager owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// As upstream prints it: `"kubectl" with subresource "scale" using apps/v1`.
    pub manager: String,
    /// `.spec.replicas`
    pub path: String,
}

/// The 409 of conflicting fields. Mirrors `NewConflictError` and `getConflictMessage`.
pub fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let message = match conflicts {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.path
        ),
        _ => {
            let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for c in conflicts {
                by_manager.entry(&c.manager).or_default().push(&c.path);
            }
            let mut lines = Vec::new();
            for (manager, paths) in by_manager {
                lines.push(format!("conflicts with {manager}:"));
                lines.extend(paths.iter().map(|p| format!("- {p}")));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        }
    };
    ApiError::ApplyConflict {
        message,
        causes: conflicts
            .iter()
            .map(|c| (c.path.clone(), format!("conflict with {}", c.manager)))
            .collect(),
    }
}

/// The outcome of an apply.
#[derive(Debug)]
pub struct Applied {
    /// The object to store (the live one merged with the configuration, pruned).
    pub object: Value,
    /// The managers afterwards.
    pub managers: Vec<Managed>,
}

/// Server-side apply of `config` by `writer` onto `live` (`{}` when the object is new).
/// `merged` is the live object with the configuration merged in (the caller's strategic
/// merge). Mirrors `Updater.Apply`:
///
/// 1. the applier's set becomes exactly the configuration's fields;
/// 2. fields it applied last time and no longer sends are removed from the object, unless
///    another manager (or this configuration) owns them (`prune`);
/// 3. a field whose value the apply changes, owned by another manager, is a conflict —
///    unless `force`, which moves it to the applier;
/// 4. removed fields are nobody's any more.
pub fn apply(
    live: &Value,
    config: &Value,
    mut merged: Value,
    mut managers: Vec<Managed>,
    writer: &Writer,
    force: bool,
    now: &Time,
) -> Result<Applied, ApiError> {
    let scope = if writer.subresource == "status" {
        Scope::Status
    } else {
        Scope::Main
    };
    let config_set = object_fields(config, scope);
    let mine = managers.iter().position(|m| m.is(writer, APPLY));
    let last_set = mine.map(|i| managers[i].set.clone()).unwrap_or_default();

    // Prune what this applier dropped from its configuration and nobody else owns.
    let mut keep = config_set.clone();
    for m in managers.iter().filter(|m| !m.is(writer, APPLY)) {
        keep.union_with(&m.set);
    }
    for path in last_set.difference(&config_set).paths() {
        if !keep.has_at_or_under(&path) {
            remove_path(&mut merged, &path);
        }
    }

    let cmp = compare(live, &merged, scope);
    let changed = cmp.changed();
    let mut conflicts = Vec::new();
    for m in managers.iter_mut().filter(|m| !m.is(writer, APPLY)) {
        let c = m.set.intersection(&changed);
        if c.is_empty() {
            continue;
        }
        if force {
            m.set = m.set.difference(&c);
        } else {
            conflicts.extend(c.paths().iter().map(|p| Conflict {
                manager: m.display(),
                path: path_string(p),
            }));
        }
    }
    if !conflicts.is_empty() {
        conflicts.sort_by(|a, b| (&a.manager, &a.path).cmp(&(&b.manager, &b.path)));
        return Err(conflict_error(&conflicts));
    }
    for m in managers.iter_mut().filter(|m| !m.is(writer, APPLY)) {
        m.set = m.set.difference(&cmp.removed);
    }
    let entry = Managed {
        manager: writer.manager.to_string(),
        operation: APPLY.into(),
        subresource: writer.subresource.to_string(),
        api_version: writer.api_version.to_string(),
        // The time moves when the object changed (or the applier is new).
        time: match mine {
            Some(i) if cmp.is_empty() => managers[i].time.clone(),
            _ => Some(now.clone()),
        },
        set: config_set,
    };
    match mine {
        Some(i) => managers[i] = entry,
        None => managers.push(entry),
    }
    managers.retain(|m| !m.set.is_empty());
    Ok(Applied {
        object: merged,
        managers,
    })
}

/// Remove the value at `path` from an object (nothing when it is not there).
fn remove_path(v: &mut Value, path: &[PathElement]) {
    fn go(v: &mut Value, path: &[PathElement], field: &str) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        match (v, first) {
            (Value::Object(m), PathElement::Field(f)) => {
                if rest.is_empty() {
                    m.remove(f);
                } else if let Some(child) = m.get_mut(f) {
                    go(child, rest, f);
                }
            }
            (Value::Array(a), pe) => {
                let pos = match (pe, list_type(field)) {
                    (PathElement::Key(_), ListType::Map(keys)) => a
                        .iter()
                        .enumerate()
                        .position(|(i, e)| element_pe(e, i, keys) == *pe),
                    (PathElement::Value(_), _) => a
                        .iter()
                        .position(|e| PathElement::Value(e.to_string()) == *pe),
                    (PathElement::Index(i), _) => (*i < a.len()).then_some(*i),
                    _ => None,
                };
                if let Some(i) = pos {
                    if rest.is_empty() {
                        a.remove(i);
                    } else {
                        go(&mut a[i], rest, field);
                    }
                }
            }
            _ => {}
        }
    }
    go(v, path, "")
}

/// The field manager of a request: the `fieldManager` query parameter, or else the
/// User-Agent's program name (`kubectl/v1.32.4 (linux/amd64) …` → `kubectl`). Mirrors
/// `managerOrUserAgent` and `prefixFromUserAgent`.
pub fn manager_or_user_agent(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    match field_manager.filter(|m| !m.is_empty()) {
        Some(m) => m.to_string(),
        None => user_agent
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string(),
    }
}

/// Validate a `fieldManager` (upstream's `ValidateFieldManager`: at most 128 characters).
pub fn validate_manager(m: &str) -> Result<(), String> {
    if m.chars().count() > 128 {
        return Err(format!(
            "fieldManager: Too long: may not be more than 128 bytes (got {})",
            m.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn set(v: Value) -> FieldSet {
        FieldSet::from_fields_v1(&v).unwrap()
    }

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            subresource: "",
            api_version: "apps/v1",
        }
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": image,
                                                           "ports": [{"containerPort": 80}]}]}}}
        })
    }

    #[test]
    fn an_object_sets_fields_in_the_fields_v1_format() {
        let got = object_fields(&deployment(2, "nginx"), Scope::Main).to_fields_v1();
        assert_eq!(
            got,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:selector": {},
                           "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                                          "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                                              ".": {}, "f:image": {}, "f:name": {},
                                              "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                                  ".": {}, "f:containerPort": {}}}}}}}}
            })
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let cases = [
            json!({}),
            json!({"f:a": {}}),
            json!({"f:metadata": {"f:finalizers": {"v:\"x\"": {}, "v:\"y\"": {}}}}),
            json!({"f:l": {"k:{\"name\":\"a\"}": {".": {}, "f:b": {}}, "i:3": {}}}),
        ];
        for case in cases {
            assert_eq!(set(case.clone()).to_fields_v1(), case);
        }
        assert!(FieldSet::from_fields_v1(&json!({"x:a": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
    }

    #[test]
    fn set_algebra() {
        let a = set(json!({"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}}));
        let b = set(json!({"f:b": {"f:c": {}}, "f:e": {}}));
        let cases = [
            (
                a.union(&b),
                json!({"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}, "f:e": {}}),
            ),
            (a.difference(&b), json!({"f:a": {}, "f:b": {"f:d": {}}})),
            (a.intersection(&b), json!({"f:b": {"f:c": {}}})),
            (b.difference(&b), json!({})),
        ];
        for (got, want) in cases {
            assert_eq!(got.to_fields_v1(), want);
        }
    }

    #[test]
    fn comparisons() {
        // (old, new, added, removed, modified)
        let cases = [
            (
                json!({"spec": {"replicas": 1}}),
                json!({"spec": {"replicas": 2}}),
                json!({}),
                json!({}),
                json!({"f:spec": {"f:replicas": {}}}),
            ),
            (
                json!({"spec": {"a": 1}}),
                json!({"spec": {"b": 1}}),
                json!({"f:spec": {"f:b": {}}}),
                json!({"f:spec": {"f:a": {}}}),
                json!({}),
            ),
            (
                json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}),
                json!({"spec": {"containers": [{"name": "a", "image": "y"}, {"name": "b"}]}}),
                json!({"f:spec": {"f:containers": {"k:{\"name\":\"b\"}": {".": {}, "f:name": {}}}}}),
                json!({}),
                json!({"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {"f:image": {}}}}}),
            ),
            (
                json!({"metadata": {"finalizers": ["a", "b"], "resourceVersion": "1"}}),
                json!({"metadata": {"finalizers": ["b", "c"], "resourceVersion": "2"}}),
                json!({"f:metadata": {"f:finalizers": {"v:\"c\"": {}}}}),
                json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}}}}),
                json!({}),
            ),
            (
                json!({"spec": {"tolerations": [{"key": "a"}]}, "status": {"x": 1}}),
                json!({"spec": {"tolerations": [{"key": "b"}]}, "status": {"x": 2}}),
                json!({}),
                json!({}),
                json!({"f:spec": {"f:tolerations": {}}}),
            ),
        ];
        for (old, new, added, removed, modified) in cases {
            let c = compare(&old, &new, Scope::Main);
            assert_eq!(c.added.to_fields_v1(), added, "added: {old} -> {new}");
            assert_eq!(c.removed.to_fields_v1(), removed, "removed: {old} -> {new}");
            assert_eq!(
                c.modified.to_fields_v1(),
                modified,
                "modified: {old} -> {new}"
            );
        }
    }

    #[test]
    fn an_update_takes_the_fields_it_changes_from_other_managers() {
        let created = deployment(2, "nginx");
        let mut managers = Vec::new();
        let w = writer("kubectl-create");
        update(
            &mut managers,
            &compare(&json!({}), &created, Scope::Main),
            &w,
            &now(),
        );
        assert_eq!(managers.len(), 1);
        assert!(managers[0].set.has(&[
            PathElement::Field("spec".into()),
            PathElement::Field("replicas".into())
        ]));

        let scaled = deployment(5, "nginx");
        let scaler = Writer {
            manager: "kubectl",
            subresource: "scale",
            api_version: "apps/v1",
        };
        update(
            &mut managers,
            &compare(&created, &scaled, Scope::Main),
            &scaler,
            &now(),
        );
        assert_eq!(managers.len(), 2);
        assert_eq!(
            managers[1].set.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert!(!managers[0].set.has(&[
            PathElement::Field("spec".into()),
            PathElement::Field("replicas".into())
        ]));
        let encoded = encode(&managers);
        // Same time: ordered by manager name.
        assert_eq!(encoded[0].manager.as_deref(), Some("kubectl"));
        assert_eq!(encoded[0].subresource.as_deref(), Some("scale"));
        assert_eq!(decode(&encoded).unwrap().len(), 2);
    }

    fn applied(
        live: &Value,
        config: &Value,
        managers: Vec<Managed>,
        manager: &str,
        force: bool,
    ) -> Result<Applied, ApiError> {
        let merged = super::super::patch::merge_apply(live, config).unwrap();
        apply(
            live,
            config,
            merged,
            managers,
            &writer(manager),
            force,
            &now(),
        )
    }

    #[test]
    fn apply_conflicts_with_another_managers_field_unless_forced() {
        let live = deployment(2, "nginx");
        let mut managers = Vec::new();
        update(
            &mut managers,
            &compare(&json!({}), &live, Scope::Main),
            &writer("kubectl-client-side-apply"),
            &now(),
        );
        // Same values: co-owned, no conflict.
        let same = applied(
            &live,
            &deployment(2, "nginx"),
            managers.clone(),
            "kubectl",
            false,
        )
        .unwrap();
        assert_eq!(same.managers.len(), 2);
        // A different replicas: one conflict, worded as upstream.
        let err = applied(
            &live,
            &deployment(3, "nginx"),
            managers.clone(),
            "kubectl",
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        let status = err.to_status();
        assert_eq!(status.code, Some(409));
        assert_eq!(status.reason.as_deref(), Some("Conflict"));
        let cause = &status.details.unwrap().causes.unwrap()[0];
        assert_eq!(cause.reason.as_deref(), Some("FieldManagerConflict"));
        assert_eq!(cause.field.as_deref(), Some(".spec.replicas"));
        // Two conflicts are listed per manager.
        let err = applied(
            &live,
            &deployment(3, "httpd"),
            managers.clone(),
            "kubectl",
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
        );
        // Forced: the applier takes the field.
        let forced = applied(&live, &deployment(3, "nginx"), managers, "kubectl", true).unwrap();
        assert_eq!(forced.object["spec"]["replicas"], json!(3));
        let csa = forced
            .managers
            .iter()
            .find(|m| m.manager == "kubectl-client-side-apply")
            .unwrap();
        assert!(!csa.set.has(&[
            PathElement::Field("spec".into()),
            PathElement::Field("replicas".into())
        ]));
    }

    #[test]
    fn apply_removes_fields_the_applier_no_longer_sends() {
        let first = applied(
            &json!({}),
            &deployment(2, "nginx"),
            Vec::new(),
            "kubectl",
            false,
        )
        .unwrap();
        assert_eq!(first.managers.len(), 1);
        assert_eq!(first.managers[0].operation, APPLY);
        let mut config = deployment(2, "nginx");
        config["metadata"]["labels"] = json!({"tier": "web"});
        config["spec"].as_object_mut().unwrap().remove("replicas");
        let second = applied(
            &first.object,
            &config,
            first.managers.clone(),
            "kubectl",
            false,
        )
        .unwrap();
        assert_eq!(second.object["metadata"]["labels"], json!({"tier": "web"}));
        assert!(second.object["spec"].get("replicas").is_none());

        // A field another manager also owns stays.
        let mut managers = first.managers.clone();
        managers.push(Managed {
            manager: "other".into(),
            operation: APPLY.into(),
            subresource: String::new(),
            api_version: "apps/v1".into(),
            time: None,
            set: set(json!({"f:spec": {"f:replicas": {}}})),
        });
        let kept = applied(&first.object, &config, managers, "kubectl", false).unwrap();
        assert_eq!(kept.object["spec"]["replicas"], json!(2));
    }

    #[test]
    fn managers_come_from_the_query_or_the_user_agent() {
        let cases = [
            (
                Some("kubectl-client-side-apply"),
                Some("kubectl/v1.32.4 (linux/amd64)"),
                "kubectl-client-side-apply",
            ),
            (
                None,
                Some("kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07"),
                "kubectl",
            ),
            (Some(""), Some("kube-rs/0.99"), "kube-rs"),
            (None, None, ""),
        ];
        for (query, ua, want) in cases {
            assert_eq!(manager_or_user_agent(query, ua), want);
        }
    }
}
