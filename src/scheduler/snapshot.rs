//! The scheduler's view of the cluster: one [`NodeInfo`] per node (its bound and assumed pods,
//! their summed requests, used host ports, images) in a [`Snapshot`].
//!
//! Mirrors `NodeInfo` / `PodInfo` (pkg/scheduler/framework/types.go) and the scheduler cache
//! (pkg/scheduler/backend/cache). Upstream keeps a cache that informers update and takes a
//! copy-on-write snapshot of it at the start of each scheduling cycle. Here the scheduling
//! cycle runs synchronously inside the scheduler actor, between two cache updates, so the
//! cache *is* the snapshot: no copy is needed.
//!
//! **Assume / forget.** After a decision, the scheduler [`Snapshot::assume`]s the pod onto its
//! node at once — before the Bind round trip to the API server — so the next decision sees the
//! node's resources, ports and pod count already taken. When the bound pod arrives through the
//! watch, [`Snapshot::add_pod`] confirms the assumption; if binding fails, [`Snapshot::forget`]
//! releases it. Back-to-back decisions therefore never double-book a node.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodAffinityTerm, WeightedPodAffinityTerm};

use super::helpers::{
    node_labels, pod_key, pod_labels, pod_priority, Selector, LABEL_HOSTNAME, LABEL_ZONE,
};
use super::resource::{
    compute_pod_non_zero_request, compute_pod_resource_request, node_allocatable, Resource,
};

/// Errors of the cache.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// The node is not in the cache (deleted, or not yet seen).
    #[error("node {0:?} not found")]
    NodeNotFound(String),
    /// The pod is already bound or assumed on a node.
    #[error("pod {pod} is already on node {node:?}")]
    PodAlreadyPlaced { pod: String, node: String },
    /// `forget` of a pod that is not assumed.
    #[error("pod {0} is not assumed")]
    PodNotAssumed(String),
}

/// A namespace selector of an affinity term. Namespaces' labels are not in the scheduler's
/// snapshot yet, so only the empty selector (`{}`: all namespaces) can match.
#[derive(Clone, Debug, PartialEq)]
pub enum NamespaceSelector {
    /// No selector: only the listed namespaces.
    Nothing,
    /// `{}`: every namespace.
    Everything,
    /// A selector over namespace labels (not evaluated yet: matches nothing).
    Labels(Selector),
}

/// A pod (anti-)affinity term, compiled. Mirrors `framework.AffinityTerm`.
#[derive(Clone, Debug, PartialEq)]
pub struct AffinityTerm {
    /// `namespaces`, or the owning pod's namespace when neither `namespaces` nor
    /// `namespaceSelector` is set.
    pub namespaces: Vec<String>,
    pub namespace_selector: NamespaceSelector,
    pub selector: Selector,
    pub topology_key: String,
}

impl AffinityTerm {
    fn new(owner_ns: &str, term: &PodAffinityTerm) -> AffinityTerm {
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        let namespace_selector = match term.namespace_selector.as_ref() {
            None => NamespaceSelector::Nothing,
            Some(s) => match Selector::from_label_selector(Some(s)) {
                sel if sel.is_empty() => NamespaceSelector::Everything,
                sel => NamespaceSelector::Labels(sel),
            },
        };
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.push(owner_ns.to_string());
        }
        AffinityTerm {
            namespaces,
            namespace_selector,
            selector: Selector::from_label_selector(term.label_selector.as_ref()),
            topology_key: term.topology_key.clone(),
        }
    }

    /// Mirrors `AffinityTerm.Matches`: the pod is in one of the term's namespaces and its
    /// labels match the selector.
    pub fn matches(&self, pod: &PodInfo) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector == NamespaceSelector::Everything;
        ns_ok && self.selector.matches(pod_labels(&pod.pod))
    }
}

/// A preferred (weighted) affinity term.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedAffinityTerm {
    pub term: AffinityTerm,
    pub weight: i32,
}

/// Whether two revisions of a pod agree on everything [`PodInfo::new`] reads besides the
/// key: priority, affinity, overhead, and each container's resources, ports and restart
/// policy. Comparing is a few string comparisons; recomputing parses every quantity.
pub fn same_scheduling_inputs(a: &Pod, b: &Pod) -> bool {
    if std::ptr::eq(a, b) {
        return true;
    }
    let (a, b) = match (a.spec.as_ref(), b.spec.as_ref()) {
        (Some(a), Some(b)) => (a, b),
        (None, None) => return true,
        _ => return false,
    };
    let same_containers = |x: &[Container], y: &[Container]| {
        x.len() == y.len()
            && x.iter().zip(y).all(|(c, d)| {
                c.resources == d.resources
                    && c.ports == d.ports
                    && c.restart_policy == d.restart_policy
            })
    };
    a.priority == b.priority
        && a.overhead == b.overhead
        && a.affinity == b.affinity
        && same_containers(&a.containers, &b.containers)
        && same_containers(
            a.init_containers.as_deref().unwrap_or_default(),
            b.init_containers.as_deref().unwrap_or_default(),
        )
}

/// A host port a container asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// `hostIP`, `0.0.0.0` when unset.
    pub ip: String,
    /// `TCP` when unset.
    pub protocol: String,
    pub port: i32,
}

/// What the scheduler precomputes about a pod once, whether it is being scheduled or is
/// already on a node. Mirrors `framework.PodInfo`.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    pub namespace: String,
    /// Requests as the NodeResourcesFit filter counts them.
    pub request: Resource,
    /// Requests with the scoring defaults for containers that request nothing.
    pub non_zero_request: Resource,
    pub priority: i32,
    pub required_affinity_terms: Vec<AffinityTerm>,
    pub required_anti_affinity_terms: Vec<AffinityTerm>,
    pub preferred_affinity_terms: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity_terms: Vec<WeightedAffinityTerm>,
    /// Host ports of all containers (`hostPort > 0`).
    pub host_ports: Vec<HostPort>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let spec = pod.spec.as_ref();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&namespace, t))
                .collect()
        };
        let preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .map(|t| WeightedAffinityTerm {
                    term: AffinityTerm::new(&namespace, &t.pod_affinity_term),
                    weight: t.weight,
                })
                .collect::<Vec<_>>()
        };
        let mut host_ports = Vec::new();
        for c in spec.into_iter().flat_map(|s| s.containers.iter()) {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p
                            .protocol
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "TCP".into()),
                        port: hp,
                    });
                }
            }
        }
        PodInfo {
            key: pod_key(&pod),
            request: compute_pod_resource_request(&pod),
            non_zero_request: compute_pod_non_zero_request(&pod),
            priority: pod_priority(&pod),
            required_affinity_terms: required(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity_terms: required(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity_terms: preferred(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity_terms: preferred(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            host_ports,
            namespace,
            pod,
        }
    }

    /// The same pod at a newer revision: what was precomputed is kept when nothing it was
    /// computed from changed ([`same_scheduling_inputs`]) — the bound pod confirming an
    /// assumed one, a kubelet's status update — and computed afresh otherwise (an in-place
    /// resize). Upstream builds a new `PodInfo` on every update; parsing the quantities again
    /// is most of its cost.
    pub fn updated(previous: Arc<PodInfo>, pod: Arc<Pod>) -> PodInfo {
        if !same_scheduling_inputs(&previous.pod, &pod) {
            return PodInfo::new(pod);
        }
        PodInfo {
            pod,
            ..Arc::unwrap_or_clone(previous)
        }
    }

    /// Whether the pod has any pod affinity or anti-affinity term.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity_terms.is_empty()
            && self.required_anti_affinity_terms.is_empty()
            && self.preferred_affinity_terms.is_empty()
            && self.preferred_anti_affinity_terms.is_empty())
    }

    /// Whether the pod is being deleted (terminating pods do not count for spreading).
    pub fn is_terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }
}

/// One node and what is placed on it. Mirrors `framework.NodeInfo`.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    node: Arc<Node>,
    /// Bound and assumed pods.
    pub pods: Vec<Arc<PodInfo>>,
    /// The subset of `pods` with any (anti-)affinity term (InterPodAffinity scoring).
    pub pods_with_affinity: Vec<Arc<PodInfo>>,
    /// The subset of `pods` with a required anti-affinity term (InterPodAffinity filter).
    pub pods_with_required_anti_affinity: Vec<Arc<PodInfo>>,
    /// Sum of the pods' requests (filtering).
    pub requested: Resource,
    /// Sum of the pods' requests with scoring defaults (LeastAllocated & co.).
    pub non_zero_requested: Resource,
    /// From `status.allocatable` (`pods` is the pod limit).
    pub allocatable: Resource,
    /// Host ports in use, with the number of pods using each.
    pub used_ports: HashMap<HostPort, u32>,
    /// Images on the node (`status.images`): every reported name → size in bytes.
    pub images: HashMap<String, i64>,
    /// `spec.unschedulable`, copied when the node is set: the filters read these flags for
    /// every sampled node, and reading them here touches no `Node` object (a cache miss per
    /// node at 10,000 nodes).
    pub unschedulable: bool,
    /// Whether `spec.taints` is non-empty (see `unschedulable`).
    pub has_taints: bool,
    /// The `kubernetes.io/hostname` and `topology.kubernetes.io/zone` labels, copied when the
    /// node is set: topology spreading reads them for every scored node, and a lookup in the
    /// node's label map is several string comparisons.
    pub hostname_label: Option<String>,
    pub zone_label: Option<String>,
    /// `zone_label` as a small integer, the same for every node of the [`Snapshot`] with the
    /// same zone ([`Snapshot::add_node`] sets it), so topology spreading finds a node's zone
    /// domain by index instead of hashing the zone string for every scored node.
    /// [`NO_ZONE_ID`] without a zone label, or for a `NodeInfo` no snapshot holds.
    pub zone_id: u32,
}

/// [`NodeInfo::zone_id`] of a node without one.
pub const NO_ZONE_ID: u32 = u32::MAX;

impl NodeInfo {
    /// A node with no pods.
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let mut ni = NodeInfo {
            node: node.clone(),
            pods: Vec::new(),
            pods_with_affinity: Vec::new(),
            pods_with_required_anti_affinity: Vec::new(),
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            allocatable: Resource::default(),
            used_ports: HashMap::new(),
            images: HashMap::new(),
            unschedulable: false,
            has_taints: false,
            hostname_label: None,
            zone_label: None,
            zone_id: NO_ZONE_ID,
        };
        ni.set_node(node);
        ni
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn node_arc(&self) -> &Arc<Node> {
        &self.node
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = node_allocatable(&node);
        self.images = node
            .status
            .iter()
            .flat_map(|s| s.images.iter().flatten())
            .flat_map(|img| {
                let size = img.size_bytes.unwrap_or(0);
                img.names.iter().flatten().map(move |n| (n.clone(), size))
            })
            .collect();
        let spec = node.spec.as_ref();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        self.has_taints = spec
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| !t.is_empty());
        let labels = node_labels(&node);
        self.hostname_label = labels.get(LABEL_HOSTNAME).cloned();
        self.zone_label = labels.get(LABEL_ZONE).cloned();
        // Only the snapshot knows the ids; it sets this again (`Snapshot::add_node`).
        self.zone_id = NO_ZONE_ID;
        self.node = node;
    }

    /// Add a pod's requests, ports and affinity to the node. Mirrors `NodeInfo.AddPodInfo`.
    pub fn add_pod(&mut self, pi: Arc<PodInfo>) {
        self.requested.add(&pi.request);
        self.non_zero_requested.add(&pi.non_zero_request);
        for hp in &pi.host_ports {
            *self.used_ports.entry(hp.clone()).or_default() += 1;
        }
        if pi.has_affinity() {
            self.pods_with_affinity.push(pi.clone());
        }
        if !pi.required_anti_affinity_terms.is_empty() {
            self.pods_with_required_anti_affinity.push(pi.clone());
        }
        self.pods.push(pi);
    }

    /// Remove a pod by key; returns it if it was there. Mirrors `NodeInfo.RemovePod`.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.key == key)?;
        let pi = self.pods.swap_remove(i);
        self.requested.sub(&pi.request);
        self.non_zero_requested.sub(&pi.non_zero_request);
        for hp in &pi.host_ports {
            if let Some(n) = self.used_ports.get_mut(hp) {
                *n -= 1;
                if *n == 0 {
                    self.used_ports.remove(hp);
                }
            }
        }
        self.pods_with_affinity.retain(|p| p.key != key);
        self.pods_with_required_anti_affinity
            .retain(|p| p.key != key);
        Some(pi)
    }

    /// Mirrors `HostPortInfo.CheckConflict`: `0.0.0.0` conflicts with the same protocol and
    /// port on any IP; a specific IP conflicts with itself and `0.0.0.0`.
    pub fn host_port_conflicts(&self, want: &HostPort) -> bool {
        if want.port <= 0 {
            return false;
        }
        self.used_ports.keys().any(|used| {
            used.port == want.port
                && used.protocol == want.protocol
                && (want.ip == "0.0.0.0" || used.ip == "0.0.0.0" || used.ip == want.ip)
        })
    }
}

/// Where a pod sits in the cache.
#[derive(Clone, Debug)]
struct PodPlacement {
    node: String,
    /// Placed by the scheduler's own decision, not yet confirmed by the watch.
    assumed: bool,
}

/// All nodes and their pods, in a stable order (the order nodes were added) so that the
/// rotating start index of the filter sample walks every node. See the module documentation.
#[derive(Debug, Default)]
pub struct Snapshot {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, PodPlacement>,
    /// Pods bound to nodes the cache has not seen (yet, or any more), by node name. They are
    /// attached when the node is added (upstream keeps a node-less NodeInfo instead).
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Image name → number of nodes that have it (ImageLocality's spread).
    image_nodes: HashMap<String, usize>,
    /// Pods on nodes with any (anti-)affinity term, and with a required anti-affinity term:
    /// when 0, InterPodAffinity skips its scan of every node (upstream keeps the lists
    /// `HavePodsWithAffinityList` / `HavePodsWithRequiredAntiAffinityList` for the same).
    num_pods_with_affinity: usize,
    num_pods_with_required_anti_affinity: usize,
    /// Placed pods by (namespace, label key, label value): PodTopologySpread counts the pods
    /// matching a selector in every topology domain, and with this index it visits only the
    /// pods carrying one of the selector's `key=value` labels instead of every pod on every
    /// node ([`Snapshot::pods_with_label`]). Each entry's pods are keyed `namespace/name`, so
    /// taking one out (a pod bound, confirmed, deleted) does not scan every pod with the label,
    /// and each is filed with the position in `nodes` of the node it is placed on
    /// ([`NOT_PLACED`] for an orphan), so a query finds the node without hashing a pod key or
    /// a node name (PodTopologySpread's PreScore visits up to a Deployment's replicas per
    /// scheduled pod in `benches/chain.rs`). `remove_node` and `add_node` keep the positions
    /// true when a node moves or its orphans are attached.
    label_index: HashMap<LabelEntry, HashMap<String, Labelled>>,
    /// Zone label value → [`NodeInfo::zone_id`]. Ids are never reused or taken back (a
    /// zone's id stays valid while the scheduler runs), so this holds every zone value any
    /// node has had: a handful in a real cluster.
    zone_ids: HashMap<String, u32>,
}

/// Count (or uncount) a node's images in `image_nodes` (image name → nodes that have it).
fn count_images(
    image_nodes: &mut HashMap<String, usize>,
    images: &HashMap<String, i64>,
    delta: isize,
) {
    for name in images.keys() {
        let e = image_nodes.entry(name.clone()).or_default();
        *e = e.saturating_add_signed(delta);
        if *e == 0 {
            image_nodes.remove(name);
        }
    }
}

/// The id of a zone label value in `zone_ids` (see [`NodeInfo::zone_id`]), given the first
/// time the value is seen.
fn zone_id(zone_ids: &mut HashMap<String, u32>, zone: Option<&str>) -> u32 {
    let Some(zone) = zone else {
        return NO_ZONE_ID;
    };
    if let Some(&id) = zone_ids.get(zone) {
        return id;
    }
    // Never NO_ZONE_ID: four billion distinct zones would not fit in memory.
    let id = zone_ids.len() as u32;
    zone_ids.insert(zone.to_string(), id);
    id
}

/// A pod in [`Snapshot`]'s label index, with the position of its node in `Snapshot::nodes`.
type Labelled = (Arc<PodInfo>, u32);

/// The [`Labelled`] position of a pod whose node the snapshot does not have (an orphan).
const NOT_PLACED: u32 = u32::MAX;

/// A key of [`Snapshot`]'s label index: (namespace, label key, label value). It is looked up
/// by borrowed strings ([`LabelKey`]), so a query or an update allocates no key.
#[derive(Clone, Debug)]
struct LabelEntry(String, String, String);

/// The three parts of a label index key, owned ([`LabelEntry`]) or borrowed.
trait LabelKey {
    fn parts(&self) -> (&str, &str, &str);
}

impl LabelKey for LabelEntry {
    fn parts(&self) -> (&str, &str, &str) {
        (&self.0, &self.1, &self.2)
    }
}

impl LabelKey for (&str, &str, &str) {
    fn parts(&self) -> (&str, &str, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn LabelKey + 'a> for LabelEntry {
    fn borrow(&self) -> &(dyn LabelKey + 'a) {
        self
    }
}

// `Borrow` requires the owned and the borrowed form to hash and compare alike: both go
// through `parts`.
impl std::hash::Hash for dyn LabelKey + '_ {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.parts().hash(h)
    }
}

impl PartialEq for dyn LabelKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn LabelKey + '_ {}

impl std::hash::Hash for LabelEntry {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.parts().hash(h)
    }
}

impl PartialEq for LabelEntry {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for LabelEntry {}

/// The label index key `(namespace, key, value)`, borrowed.
fn label_key<'a>(namespace: &'a str, key: &'a str, value: &'a str) -> (&'a str, &'a str, &'a str) {
    (namespace, key, value)
}

impl Snapshot {
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All nodes, in cache order.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The position in [`Snapshot::nodes`] of a `NodeInfo` borrowed from this snapshot, found
    /// from its address (no lookup by name); `None` for a `NodeInfo` that is not one of its
    /// nodes (no other object can lie inside the node vector's buffer).
    pub fn position_of(&self, ni: &NodeInfo) -> Option<usize> {
        let size = std::mem::size_of::<NodeInfo>();
        let offset = (ni as *const NodeInfo as usize).checked_sub(self.nodes.as_ptr() as usize)?;
        let at = offset / size;
        (offset % size == 0 && at < self.nodes.len()).then_some(at)
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Position of a node in [`Snapshot::nodes`].
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        self.index.get(name).map(|&i| &mut self.nodes[i])
    }

    /// How many nodes have an image (by any of its reported names).
    pub fn image_num_nodes(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// Whether any pod on a node has a pod affinity or anti-affinity term.
    pub fn has_pods_with_affinity(&self) -> bool {
        self.num_pods_with_affinity > 0
    }

    /// Whether any pod on a node has a required pod anti-affinity term.
    pub fn has_pods_with_required_anti_affinity(&self) -> bool {
        self.num_pods_with_required_anti_affinity > 0
    }

    /// Count (or uncount) a node's affinity pods.
    fn count_affinity(&mut self, pods_with_affinity: usize, with_required_anti: usize, add: bool) {
        if add {
            self.num_pods_with_affinity += pods_with_affinity;
            self.num_pods_with_required_anti_affinity += with_required_anti;
        } else {
            self.num_pods_with_affinity -= pods_with_affinity;
            self.num_pods_with_required_anti_affinity -= with_required_anti;
        }
    }

    fn count_images(&mut self, ni: &NodeInfo, delta: isize) {
        count_images(&mut self.image_nodes, &ni.images, delta);
    }

    /// Add a node, or replace it if present (keeping its pods). Mirrors `Cache.AddNode` /
    /// `UpdateNode`.
    pub fn add_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(&i) = self.index.get(&name) {
            // Only the image lists are compared and recounted: cloning the whole `NodeInfo`
            // twice for them (its pods, ports and images) was most of a node status update.
            let ni = &mut self.nodes[i];
            let old_images = std::mem::take(&mut ni.images);
            ni.set_node(node);
            ni.zone_id = zone_id(&mut self.zone_ids, ni.zone_label.as_deref());
            if ni.images != old_images {
                count_images(&mut self.image_nodes, &old_images, -1);
                count_images(&mut self.image_nodes, &ni.images, 1);
            }
            return;
        }
        let mut ni = NodeInfo::new(node);
        ni.zone_id = zone_id(&mut self.zone_ids, ni.zone_label.as_deref());
        let at = self.nodes.len() as u32;
        for pi in self.orphans.remove(&name).into_iter().flatten() {
            self.file_position(&pi, at);
            ni.add_pod(pi);
        }
        self.count_images(&ni, 1);
        self.count_affinity(
            ni.pods_with_affinity.len(),
            ni.pods_with_required_anti_affinity.len(),
            true,
        );
        self.index.insert(name, self.nodes.len());
        self.nodes.push(ni);
    }

    /// Same as [`Snapshot::add_node`].
    pub fn update_node(&mut self, node: Arc<Node>) {
        self.add_node(node)
    }

    /// Remove a node. Its pods stay known (as orphans) until they are deleted or the node
    /// comes back, as upstream keeps a node's pods after the node object is gone.
    pub fn remove_node(&mut self, name: &str) -> Result<(), SnapshotError> {
        let i = self
            .index
            .remove(name)
            .ok_or_else(|| SnapshotError::NodeNotFound(name.to_string()))?;
        let ni = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            let moved = self.nodes[i].name().to_string();
            self.index.insert(moved, i);
            let pods = self.nodes[i].pods.clone();
            for pi in &pods {
                self.file_position(pi, i as u32);
            }
        }
        for pi in &ni.pods {
            self.file_position(pi, NOT_PLACED);
        }
        self.count_images(&ni, -1);
        self.count_affinity(
            ni.pods_with_affinity.len(),
            ni.pods_with_required_anti_affinity.len(),
            false,
        );
        if !ni.pods.is_empty() {
            self.orphans.insert(name.to_string(), ni.pods);
        }
        Ok(())
    }

    /// File a pod placed on the node at `at` (or [`NOT_PLACED`]) under each of its labels.
    fn index_labels(&mut self, pi: &Arc<PodInfo>, at: u32) {
        for (k, v) in pi.pod.metadata.labels.iter().flatten() {
            let entry = label_key(&pi.namespace, k, v);
            let pods = match self.label_index.get_mut(&entry as &dyn LabelKey) {
                Some(pods) => pods,
                None => self
                    .label_index
                    .entry(LabelEntry(pi.namespace.clone(), k.clone(), v.clone()))
                    .or_default(),
            };
            pods.insert(pi.key.clone(), (pi.clone(), at));
        }
    }

    /// Record in the label index that a placed pod's node is now at `at` (or gone).
    fn file_position(&mut self, pi: &PodInfo, at: u32) {
        self.each_filed(pi, |filed| filed.1 = at);
    }

    /// Apply `change` to each label index entry of the pod `pi` (one per label; `pi`'s
    /// labels and key name them).
    fn each_filed(&mut self, pi: &PodInfo, mut change: impl FnMut(&mut Labelled)) {
        for (k, v) in pi.pod.metadata.labels.iter().flatten() {
            let entry = label_key(&pi.namespace, k, v);
            if let Some(filed) = self
                .label_index
                .get_mut(&entry as &dyn LabelKey)
                .and_then(|pods| pods.get_mut(&pi.key))
            {
                change(filed);
            }
        }
    }

    fn unindex_labels(&mut self, pi: &PodInfo) {
        for (k, v) in pi.pod.metadata.labels.iter().flatten() {
            let entry = label_key(&pi.namespace, k, v);
            if let Some(list) = self.label_index.get_mut(&entry as &dyn LabelKey) {
                list.remove(&pi.key);
                if list.is_empty() {
                    self.label_index.remove(&entry as &dyn LabelKey);
                }
            }
        }
    }

    /// The placed pods of `namespace` labelled `key=value`, each with the node it is on;
    /// pods whose node the snapshot does not have (orphans) are left out.
    pub fn pods_with_label<'a>(
        &'a self,
        namespace: &str,
        key: &str,
        value: &str,
    ) -> impl Iterator<Item = (&'a NodeInfo, &'a PodInfo)> + 'a {
        self.label_index
            .get(&label_key(namespace, key, value) as &dyn LabelKey)
            .into_iter()
            .flat_map(|pods| pods.values())
            .filter_map(move |(pi, at)| Some((self.nodes.get(*at as usize)?, &**pi)))
    }

    fn place(&mut self, pi: Arc<PodInfo>, node: &str) {
        let at = self.index.get(node).copied();
        self.index_labels(&pi, at.map_or(NOT_PLACED, |i| i as u32));
        let (affinity, anti) = (
            pi.has_affinity() as usize,
            !pi.required_anti_affinity_terms.is_empty() as usize,
        );
        match at {
            Some(i) => {
                self.nodes[i].add_pod(pi);
                self.count_affinity(affinity, anti, true);
            }
            None => self.orphans.entry(node.to_string()).or_default().push(pi),
        }
    }

    /// Take a pod off its node (or the orphans); returns its `PodInfo` if it was there.
    fn unplace(&mut self, key: &str, node: &str) -> Option<Arc<PodInfo>> {
        match self.node_mut(node) {
            Some(ni) => {
                let pi = ni.remove_pod(key)?;
                self.count_affinity(
                    pi.has_affinity() as usize,
                    !pi.required_anti_affinity_terms.is_empty() as usize,
                    false,
                );
                self.unindex_labels(&pi);
                Some(pi)
            }
            None => {
                let v = self.orphans.get_mut(node)?;
                let removed = v.iter().position(|p| p.key == key).map(|i| v.remove(i));
                if v.is_empty() {
                    self.orphans.remove(node);
                }
                if let Some(pi) = &removed {
                    self.unindex_labels(pi);
                }
                removed
            }
        }
    }

    /// The `PodInfo` of a bound or assumed pod.
    pub fn pod_info(&self, key: &str) -> Option<&Arc<PodInfo>> {
        let node = &self.pods.get(key)?.node;
        let placed = match self.node(node) {
            Some(ni) => &ni.pods,
            None => self.orphans.get(node)?,
        };
        placed.iter().find(|p| p.key == key)
    }

    /// Add or update a pod that the API server says is bound (`spec.nodeName` set). Confirms
    /// an assumed pod. Pods without a node are ignored; pods that finished (`Succeeded`,
    /// `Failed`) are removed, as the upstream informer filters them out.
    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        self.upsert_pod(pod_key(&pod), pod);
    }

    /// [`Snapshot::add_pod`] of a pod whose key (`namespace/name`) the caller has already
    /// built. Returns whether the pod was bound before (placed and not assumed): the
    /// scheduler's informer handler tells an assigned pod's update from its add by it.
    pub fn upsert_pod(&mut self, key: String, pod: Arc<Pod>) -> bool {
        let was_bound = self.pods.get(&key).is_some_and(|p| !p.assumed);
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty() && !terminal)
        else {
            self.remove_pod(&key);
            return was_bound;
        };
        if self.replace_in_place(&key, node, &pod) {
            return was_bound;
        }
        let node = node.to_string();
        // The assumed (or previous) revision's PodInfo is kept when its inputs did not change.
        let previous = match self.pods.remove(&key) {
            Some(old) => self.unplace(&key, &old.node),
            None => None,
        };
        let pi = match previous {
            Some(previous) => PodInfo::updated(previous, pod),
            None => PodInfo::new(pod),
        };
        self.place(Arc::new(pi), &node);
        self.pods.insert(
            key,
            PodPlacement {
                node,
                assumed: false,
            },
        );
        was_bound
    }

    /// A new revision of a pod on the node it is already placed on (bound, or assumed there)
    /// with the same labels and scheduling inputs ([`same_scheduling_inputs`]): a kubelet's
    /// status write, or the bound pod confirming the assumed one. Everything the snapshot
    /// derives from the pod (requests, ports, affinity lists, label index entries) stays as
    /// it is, so the new `PodInfo` replaces the old one where it is referenced instead of
    /// taking the pod off its node and placing it again (re-filing every label, two key
    /// copies and a node name per label). The result is what upstream's `UpdatePod` (remove,
    /// then add) leaves, down to the order of the node's pods. `false`: nothing was done, the
    /// caller takes the general path.
    fn replace_in_place(&mut self, key: &str, node: &str, pod: &Arc<Pod>) -> bool {
        let Some(placement) = self.pods.get_mut(key) else {
            return false;
        };
        if placement.node != node {
            return false;
        }
        let Some(&i) = self.index.get(node) else {
            return false; // an orphan
        };
        let ni = &mut self.nodes[i];
        let Some(at) = ni.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let previous = &ni.pods[at];
        if previous.pod.metadata.labels != pod.metadata.labels
            || !same_scheduling_inputs(&previous.pod, pod)
        {
            return false;
        }
        placement.assumed = false;
        let pi = Arc::new(PodInfo {
            pod: pod.clone(),
            ..PodInfo::clone(previous)
        });
        // As `NodeInfo::remove_pod` then `add_pod` order them.
        ni.pods.swap_remove(at);
        if pi.has_affinity() {
            ni.pods_with_affinity.retain(|p| p.key != key);
            ni.pods_with_affinity.push(pi.clone());
        }
        if !pi.required_anti_affinity_terms.is_empty() {
            ni.pods_with_required_anti_affinity.retain(|p| p.key != key);
            ni.pods_with_required_anti_affinity.push(pi.clone());
        }
        ni.pods.push(pi.clone());
        self.each_filed(&pi, |filed| filed.0 = pi.clone());
        true
    }

    /// Same as [`Snapshot::add_pod`].
    pub fn update_pod(&mut self, pod: Arc<Pod>) {
        self.add_pod(pod)
    }

    /// Remove a pod (deleted, or finished). Returns whether it was known.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        match self.pods.remove(key) {
            Some(p) => {
                self.unplace(key, &p.node);
                true
            }
            None => false,
        }
    }

    /// Place a pod on a node before it is bound, so the next decision accounts for it.
    /// Mirrors `Cache.AssumePod`.
    pub fn assume(&mut self, pod: Arc<Pod>, node: &str) -> Result<(), SnapshotError> {
        self.assume_info(Arc::new(PodInfo::new(pod)), node)
    }

    /// [`Snapshot::assume`] with the `PodInfo` the scheduling cycle already built.
    pub fn assume_info(&mut self, pi: Arc<PodInfo>, node: &str) -> Result<(), SnapshotError> {
        let key = pi.key.clone();
        if let Some(p) = self.pods.get(&key) {
            return Err(SnapshotError::PodAlreadyPlaced {
                pod: key,
                node: p.node.clone(),
            });
        }
        if self.node(node).is_none() {
            return Err(SnapshotError::NodeNotFound(node.to_string()));
        }
        self.place(pi, node);
        self.pods.insert(
            key,
            PodPlacement {
                node: node.to_string(),
                assumed: true,
            },
        );
        Ok(())
    }

    /// Release an assumed pod (binding failed). Mirrors `Cache.ForgetPod`.
    pub fn forget(&mut self, key: &str) -> Result<(), SnapshotError> {
        match self.pods.get(key) {
            Some(p) if p.assumed => {
                let node = p.node.clone();
                self.pods.remove(key);
                self.unplace(key, &node);
                Ok(())
            }
            _ => Err(SnapshotError::PodNotAssumed(key.to_string())),
        }
    }

    /// Number of pods placed on nodes (bound or assumed).
    pub fn num_pods(&self) -> usize {
        self.pods.len()
    }

    /// Whether a pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|p| p.assumed)
    }

    /// The node a pod is bound or assumed to.
    pub fn pod_node(&self, key: &str) -> Option<&str> {
        self.pods.get(key).map(|p| p.node.as_str())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for nodes and pods used by every scheduler test.
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{
        Container, ContainerImage, Node, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
        Taint,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A node with allocatable cpu (millicores), memory (bytes) and a pod limit.
    pub fn node(name: &str, milli_cpu: i64, memory: i64) -> Node {
        let mut alloc = BTreeMap::new();
        alloc.insert("cpu".into(), Quantity(format!("{milli_cpu}m")));
        alloc.insert("memory".into(), Quantity(memory.to_string()));
        alloc.insert("pods".into(), Quantity("110".into()));
        alloc.insert("ephemeral-storage".into(), Quantity("100Gi".into()));
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(alloc),
                ..Default::default()
            }),
        }
    }

    pub fn with_labels(mut n: Node, labels: &[(&str, &str)]) -> Node {
        let l = n.metadata.labels.get_or_insert_with(Default::default);
        for (k, v) in labels {
            l.insert(k.to_string(), v.to_string());
        }
        n
    }

    pub fn with_taint(mut n: Node, key: &str, value: &str, effect: &str) -> Node {
        let spec = n.spec.get_or_insert_with(Default::default);
        spec.taints.get_or_insert_with(Vec::new).push(Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.to_string()),
            effect: effect.into(),
            time_added: None,
        });
        n
    }

    pub fn with_images(mut n: Node, images: &[(&str, i64)]) -> Node {
        let status = n.status.get_or_insert_with(Default::default);
        status.images = Some(
            images
                .iter()
                .map(|(name, size)| ContainerImage {
                    names: Some(vec![name.to_string()]),
                    size_bytes: Some(*size),
                })
                .collect(),
        );
        n
    }

    pub fn with_pods_limit(mut n: Node, pods: i64) -> Node {
        if let Some(a) = n.status.as_mut().and_then(|s| s.allocatable.as_mut()) {
            a.insert("pods".into(), Quantity(pods.to_string()));
        }
        n
    }

    /// A pod in `default` with one container requesting cpu (millicores) and memory (bytes);
    /// 0 means "no request".
    pub fn pod(name: &str, milli_cpu: i64, memory: i64) -> Pod {
        let mut requests = BTreeMap::new();
        if milli_cpu > 0 {
            requests.insert("cpu".into(), Quantity(format!("{milli_cpu}m")));
        }
        if memory > 0 {
            requests.insert("memory".into(), Quantity(memory.to_string()));
        }
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx:1.27".into()),
                    resources: Some(ResourceRequirements {
                        requests: (!requests.is_empty()).then_some(requests),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    pub fn with_pod_labels(mut p: Pod, labels: &[(&str, &str)]) -> Pod {
        let l = p.metadata.labels.get_or_insert_with(Default::default);
        for (k, v) in labels {
            l.insert(k.to_string(), v.to_string());
        }
        p
    }

    /// The pod bound to `node`.
    pub fn on(mut p: Pod, node: &str) -> Pod {
        p.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
        p
    }

    pub fn arc<T>(t: T) -> Arc<T> {
        Arc::new(t)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    const GI: i64 = 1 << 30;

    fn labelled(s: &Snapshot, key: &str, value: &str) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = s
            .pods_with_label("default", key, value)
            .map(|(n, p)| (n.name().to_string(), p.key.clone()))
            .collect();
        found.sort();
        found
    }

    /// A node borrowed from the snapshot is found at its position; a copy is not.
    #[test]
    fn nodes_are_found_at_their_position_by_address() {
        let mut s = Snapshot::new();
        for n in ["n1", "n2", "n3"] {
            s.add_node(arc(node(n, 4000, 8 * GI)));
        }
        for (at, ni) in s.nodes().iter().enumerate() {
            assert_eq!(s.position_of(ni), Some(at));
            assert_eq!(s.node_index(ni.name()), Some(at));
        }
        let copy = s.node("n2").unwrap().clone();
        assert_eq!(s.position_of(&copy), None);
        let other = Snapshot::new();
        assert_eq!(other.position_of(s.node("n1").unwrap()), None);
    }

    /// The label index follows binds, assumes, forgets, deletes and node removal.
    #[test]
    fn pods_are_found_by_label_on_the_nodes_they_are_placed_on() {
        let mut s = Snapshot::new();
        s.add_node(arc(node("n1", 4000, 8 * GI)));
        s.add_node(arc(node("n2", 4000, 8 * GI)));
        let web = |name: &str| with_pod_labels(pod(name, 100, GI), &[("app", "web")]);
        s.add_pod(arc(on(web("a"), "n1")));
        s.assume(arc(web("b")), "n2").unwrap();
        s.add_pod(arc(on(
            with_pod_labels(pod("c", 100, GI), &[("app", "db")]),
            "n1",
        )));
        assert_eq!(
            labelled(&s, "app", "web"),
            [
                ("n1".to_string(), "default/a".to_string()),
                ("n2".to_string(), "default/b".to_string())
            ]
        );
        s.forget("default/b").unwrap();
        s.remove_pod("default/c");
        assert_eq!(labelled(&s, "app", "web").len(), 1);
        assert!(labelled(&s, "app", "db").is_empty());
        s.add_pod(arc(on(web("d"), "n2")));
        let (a, d) = (
            ("n1".to_string(), "default/a".to_string()),
            ("n2".to_string(), "default/d".to_string()),
        );
        // A pod on a removed node is not counted until the node is back; the last node
        // takes the removed one's position, and its pods are found on it there.
        s.remove_node("n1").unwrap();
        assert_eq!(s.node_index("n2"), Some(0));
        assert_eq!(labelled(&s, "app", "web"), std::slice::from_ref(&d));
        s.add_node(arc(node("n1", 4000, 8 * GI)));
        assert_eq!(labelled(&s, "app", "web"), [a, d.clone()]);
        s.remove_node("n1").unwrap();
        s.remove_pod("default/a");
        s.add_node(arc(node("n1", 4000, 8 * GI)));
        assert_eq!(labelled(&s, "app", "web"), [d]);
    }

    /// The snapshot knows whether any placed pod has (anti-)affinity, through assume,
    /// forget, node removal and the node coming back.
    #[test]
    fn affinity_pods_are_counted() {
        use k8s_openapi::api::core::v1::{Affinity, PodAntiAffinity};
        let mut anti = pod("db", 100, 0);
        anti.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        let mut s = Snapshot::new();
        s.add_node(arc(node("n1", 1000, GI)));
        s.add_pod(arc(on(pod("plain", 100, 0), "n1")));
        assert!(!s.has_pods_with_affinity());
        s.assume(arc(anti.clone()), "n1").unwrap();
        assert!(s.has_pods_with_affinity() && s.has_pods_with_required_anti_affinity());
        s.forget("default/db").unwrap();
        assert!(!s.has_pods_with_required_anti_affinity());
        s.add_pod(arc(on(anti, "n1")));
        s.remove_node("n1").unwrap();
        assert!(!s.has_pods_with_affinity(), "orphans are on no node");
        s.add_node(arc(node("n1", 1000, GI)));
        assert!(s.has_pods_with_required_anti_affinity());
        s.remove_pod("default/db");
        assert!(!s.has_pods_with_affinity());
    }

    /// The bound pod confirming an assumed one keeps the `PodInfo` the scheduling cycle built
    /// (with the new revision's pod); a revision whose requests changed gets a new one.
    #[test]
    fn confirming_an_assumed_pod_keeps_its_pod_info() {
        let mut s = Snapshot::new();
        s.add_node(arc(node("n1", 2000, 4 * GI)));
        let mut built = PodInfo::new(arc(pod("a", 500, GI)));
        // A marker no fresh PodInfo::new would compute: it shows which one the snapshot kept.
        built.non_zero_request.milli_cpu = 501;
        s.assume_info(arc(built), "n1").unwrap();

        let bound = arc(on(pod("a", 500, GI), "n1"));
        s.add_pod(bound.clone());
        assert!(!s.is_assumed("default/a"));
        let kept = s.pod_info("default/a").unwrap();
        assert_eq!(kept.non_zero_request.milli_cpu, 501, "not recomputed");
        assert!(Arc::ptr_eq(&kept.pod, &bound), "the new revision's pod");
        assert_eq!(s.node("n1").unwrap().non_zero_requested.milli_cpu, 501);

        s.add_pod(arc(on(pod("a", 700, GI), "n1")));
        let fresh = s.pod_info("default/a").unwrap();
        assert_eq!(fresh.request.milli_cpu, 700);
        assert_eq!(fresh.non_zero_request.milli_cpu, 700);
        assert_eq!(s.node("n1").unwrap().non_zero_requested.milli_cpu, 700);
    }

    /// A new revision that changes no label or scheduling input (a kubelet's status write,
    /// the bound pod confirming the assumed one) replaces the `PodInfo` wherever the snapshot
    /// holds it — the node's pods (in the order remove-then-add leaves them), its affinity
    /// list, every label index entry — and keeps no reference to the old revision; a label
    /// change re-files the pod.
    #[test]
    fn unchanged_revisions_replace_the_pod_info_everywhere() {
        use k8s_openapi::api::core::v1::{Affinity, PodAffinity, PodStatus};
        let mut s = Snapshot::new();
        s.add_node(arc(node("n1", 4000, 8 * GI)));
        let web = |name: &str| {
            let mut p = with_pod_labels(pod(name, 100, GI), &[("app", "web"), ("tier", "x")]);
            p.spec.as_mut().unwrap().affinity = Some(Affinity {
                pod_affinity: Some(PodAffinity {
                    required_during_scheduling_ignored_during_execution: Some(vec![
                        PodAffinityTerm {
                            topology_key: LABEL_HOSTNAME.into(),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            });
            p
        };
        s.assume(arc(web("a")), "n1").unwrap();
        s.add_pod(arc(on(web("b"), "n1")));
        s.add_pod(arc(on(web("c"), "n1")));
        let keys = |s: &Snapshot| -> Vec<String> {
            s.node("n1")
                .unwrap()
                .pods
                .iter()
                .map(|p| p.key.clone())
                .collect()
        };
        assert_eq!(keys(&s), ["default/a", "default/b", "default/c"]);

        // The bound pod confirms the assumed one: not bound before.
        let bound = arc(on(web("a"), "n1"));
        assert!(!s.upsert_pod("default/a".into(), bound.clone()));
        assert!(!s.is_assumed("default/a"));
        // Then the kubelet's status write: bound before.
        let mut running = on(web("a"), "n1");
        running.status = Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        let running = arc(running);
        assert!(s.upsert_pod("default/a".into(), running.clone()));
        // As remove (swap with the last) then add (push) leave them: a, b, c → c, b, a (the
        // confirmation) → c, b, a (the status write).
        assert_eq!(keys(&s), ["default/c", "default/b", "default/a"]);
        let n1 = s.node("n1").unwrap();
        assert_eq!(n1.requested.milli_cpu, 300);
        assert_eq!(n1.pods_with_affinity.len(), 3);
        assert_eq!(s.num_pods(), 3);
        let is_running = |pi: &PodInfo| Arc::ptr_eq(&pi.pod, &running);
        assert!(is_running(s.pod_info("default/a").unwrap()));
        assert!(n1.pods_with_affinity.iter().any(|p| is_running(p)));
        for (k, v) in [("app", "web"), ("tier", "x")] {
            let filed: Vec<&PodInfo> = s
                .pods_with_label("default", k, v)
                .filter(|(_, p)| p.key == "default/a")
                .map(|(_, p)| p)
                .collect();
            assert_eq!(filed.len(), 1);
            assert!(is_running(filed[0]), "{k}={v} holds the new revision");
        }
        // Nothing holds the earlier revision any more.
        assert_eq!(Arc::strong_count(&bound), 1);

        // A label change re-files the pod under its new labels.
        let relabelled = {
            let mut p = on(web("a"), "n1");
            p.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert("tier".into(), "y".into());
            arc(p)
        };
        assert!(s.upsert_pod("default/a".into(), relabelled.clone()));
        assert_eq!(labelled(&s, "tier", "x").len(), 2);
        assert_eq!(
            labelled(&s, "tier", "y"),
            [("n1".into(), "default/a".into())]
        );
        assert_eq!(Arc::strong_count(&running), 1);
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 300);
    }

    /// Node and pod accounting: add, update, remove, orphans attached when the node appears.
    #[test]
    fn pods_are_accounted_on_their_node() {
        let mut s = Snapshot::new();
        s.add_node(arc(node("n1", 2000, 4 * GI)));
        s.add_pod(arc(on(pod("a", 500, GI), "n1")));
        s.add_pod(arc(on(pod("b", 300, 0), "n2"))); // node not yet known
        let n1 = s.node("n1").unwrap();
        assert_eq!(n1.requested.milli_cpu, 500);
        assert_eq!(n1.requested.memory, GI);
        assert_eq!(n1.pods.len(), 1);
        s.add_node(arc(node("n2", 1000, GI)));
        assert_eq!(s.node("n2").unwrap().requested.milli_cpu, 300);
        // Update moves nothing but replaces requests.
        s.update_pod(arc(on(pod("a", 700, GI), "n1")));
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 700);
        assert!(s.remove_pod("default/a"));
        assert_eq!(
            s.node("n1").unwrap().requested,
            Resource {
                allowed_pod_number: 0,
                ..Default::default()
            }
        );
        s.remove_node("n1").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s.node_index("n2"), Some(0));
        assert_eq!(
            s.remove_node("n1"),
            Err(SnapshotError::NodeNotFound("n1".into()))
        );
    }

    /// Assume places the pod at once; the watch confirms it; forget releases it.
    #[test]
    fn assume_confirm_and_forget() {
        let mut s = Snapshot::new();
        s.add_node(arc(node("n1", 1000, GI)));
        let p = arc(pod("a", 600, 0));
        s.assume(p.clone(), "n1").unwrap();
        assert!(s.is_assumed("default/a"));
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 600);
        assert!(matches!(
            s.assume(p.clone(), "n1"),
            Err(SnapshotError::PodAlreadyPlaced { .. })
        ));
        s.forget("default/a").unwrap();
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 0);
        assert!(s.forget("default/a").is_err());
        // Assume then the bound pod arrives: confirmed, counted once.
        s.assume(p, "n1").unwrap();
        s.add_pod(arc(on(pod("a", 600, 0), "n1")));
        assert!(!s.is_assumed("default/a"));
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 600);
        assert_eq!(s.node("n1").unwrap().pods.len(), 1);
    }

    /// Images are counted per node for ImageLocality's spread.
    #[test]
    fn image_spread_is_counted() {
        let mut s = Snapshot::new();
        s.add_node(arc(with_images(
            node("n1", 1000, GI),
            &[("nginx:1.27", 100)],
        )));
        s.add_node(arc(with_images(
            node("n2", 1000, GI),
            &[("nginx:1.27", 100)],
        )));
        assert_eq!(s.image_num_nodes("nginx:1.27"), 2);
        // A status update with the same images counts nothing twice.
        s.update_node(arc(with_images(
            node("n2", 1000, GI),
            &[("nginx:1.27", 100)],
        )));
        assert_eq!(s.image_num_nodes("nginx:1.27"), 2);
        s.update_node(arc(with_images(node("n2", 1000, GI), &[("redis:7", 50)])));
        assert_eq!(s.image_num_nodes("nginx:1.27"), 1);
        assert_eq!(s.image_num_nodes("redis:7"), 1);
        s.update_node(arc(node("n2", 1000, GI)));
        assert_eq!(s.image_num_nodes("nginx:1.27"), 1);
        assert_eq!(s.image_num_nodes("redis:7"), 0);
        s.remove_node("n1").unwrap();
        assert_eq!(s.image_num_nodes("nginx:1.27"), 0);
    }

    /// Host port conflicts as upstream HostPortInfo.CheckConflict.
    #[test]
    fn host_port_conflicts() {
        let mut ni = NodeInfo::new(arc(node("n1", 1000, GI)));
        let hp = |ip: &str, proto: &str, port| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        };
        ni.used_ports.insert(hp("127.0.0.1", "TCP", 8080), 1);
        ni.used_ports.insert(hp("0.0.0.0", "UDP", 53), 1);
        let cases = [
            (hp("127.0.0.1", "TCP", 8080), true),
            (hp("0.0.0.0", "TCP", 8080), true),
            (hp("127.0.0.2", "TCP", 8080), false),
            (hp("127.0.0.1", "UDP", 8080), false),
            (hp("10.0.0.1", "UDP", 53), true),
            (hp("0.0.0.0", "TCP", 53), false),
        ];
        for (want, conflict) in cases {
            assert_eq!(ni.host_port_conflicts(&want), conflict, "{want:?}");
        }
    }
}
