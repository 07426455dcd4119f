//! `PodTopologySpread`: spread matching pods evenly over topology domains. Hard constraints
//! (`whenUnsatisfiable: DoNotSchedule`) filter: placing the pod must keep
//! `matching pods in the domain + 1 - global minimum <= maxSkew`. Soft constraints
//! (`ScheduleAnyway`) — and, for pods without constraints, the system defaults (hostname
//! maxSkew 3, zone maxSkew 5) — score: fewer matching pods in the node's domains is better.
//!
//! Mirrors pkg/scheduler/framework/plugins/podtopologyspread/{common,filtering,scoring,plugin}.go.
//!
//! Discrepancy: the default constraints' selector upstream is built from the Services,
//! ReplicaSets, ReplicationControllers and StatefulSets selecting the pod; the scheduler
//! snapshot has none of those, so a pod *controlled* by a ReplicaSet / StatefulSet /
//! ReplicationController uses its own labels as the selector (its template's labels, which
//! the owner's selector is a subset of). Pods without such an owner get no default spreading.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Node, TopologySpreadConstraint};

use super::names;
use crate::scheduler::framework::{
    CycleState, FilterPlugin, NodeScore, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin,
    ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::scheduler::helpers::{
    find_untolerated_taint, node_labels, node_taints, pod_labels, pod_tolerations,
    required_node_affinity_matches, required_node_selector, LabelOp, Selector, LABEL_HOSTNAME,
    LABEL_ZONE,
};
use crate::scheduler::profile::{DefaultConstraint, DefaultingType, PodTopologySpreadArgs};
use crate::scheduler::snapshot::{NodeInfo, PodInfo, Snapshot, NO_ZONE_ID};

/// `ErrReasonConstraintsNotMatch`.
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
/// `ErrReasonNodeLabelNotMatch`.
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const PRE_FILTER_STATE_KEY: &str = "PreFilterPodTopologySpread";
const PRE_SCORE_STATE_KEY: &str = "PreScorePodTopologySpread";

/// A constraint, compiled (`topologySpreadConstraint`).
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: Selector,
    min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (default): only nodes matching the pod's node
    /// affinity/selector count.
    honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default Ignore): nodes with untolerated taints don't count.
    honor_node_taints: bool,
    /// Which label `topology_key` is, when it is one the snapshot keeps at hand.
    well_known: WellKnown,
}

/// A topology key whose value [`NodeInfo`] keeps, so reading it costs no label-map lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WellKnown {
    Hostname,
    Zone,
    Other,
}

impl WellKnown {
    fn of(topology_key: &str) -> WellKnown {
        match topology_key {
            LABEL_HOSTNAME => WellKnown::Hostname,
            LABEL_ZONE => WellKnown::Zone,
            _ => WellKnown::Other,
        }
    }
}

impl Constraint {
    fn is_hostname(&self) -> bool {
        self.well_known == WellKnown::Hostname
    }

    /// The node's value of this constraint's topology key.
    fn value<'a>(&self, ni: &'a NodeInfo) -> Option<&'a str> {
        match self.well_known {
            WellKnown::Hostname => ni.hostname_label.as_deref(),
            WellKnown::Zone => ni.zone_label.as_deref(),
            WellKnown::Other => node_labels(ni.node())
                .get(&self.topology_key)
                .map(String::as_str),
        }
    }

    /// `matchNodeInclusionPolicies`.
    fn includes_node(&self, pod: &PodInfo, node: &Node) -> bool {
        if self.honor_node_affinity && !required_node_affinity_matches(&pod.pod, node) {
            return false;
        }
        if self.honor_node_taints
            && find_untolerated_taint(node_taints(node), pod_tolerations(&pod.pod), |t| {
                t.effect == "NoSchedule" || t.effect == "NoExecute"
            })
            .is_some()
        {
            return false;
        }
        true
    }
}

/// `countPodsMatchSelector`: pods in the namespace, not terminating, matching the selector.
fn count_pods_match_selector(node: &NodeInfo, selector: &Selector, namespace: &str) -> i64 {
    node.pods
        .iter()
        .filter(|p| !p.is_terminating() && p.namespace == namespace)
        .filter(|p| selector.matches(pod_labels(&p.pod)))
        .count() as i64
}

/// The node of each pod `countPodsMatchSelector` counts for constraint `c` (non-terminating,
/// in `namespace`, matching the selector), found through the label index by the selector's
/// `key=value` term: a node once per such pod.
fn matching_pods_nodes<'a>(
    snapshot: &'a Snapshot,
    namespace: &str,
    c: &'a Constraint,
    key: &str,
    value: &str,
) -> impl Iterator<Item = &'a NodeInfo> + 'a {
    snapshot
        .pods_with_label(namespace, key, value)
        .filter(|(_, p)| !p.is_terminating() && c.selector.matches(pod_labels(&p.pod)))
        .map(|(ni, _)| ni)
}

/// Add `n` to `value`'s count, copying the value only the first time it is seen.
fn add_count(counts: &mut HashMap<String, i64>, value: &str, n: i64) {
    match counts.get_mut(value) {
        Some(c) => *c += n,
        None => {
            counts.insert(value.to_string(), n);
        }
    }
}

/// A `key=value` every pod matching `selector` must carry (an `In` requirement with one
/// value, as `matchLabels` gives), if there is one.
fn equality(selector: &Selector) -> Option<(&str, &str)> {
    match selector {
        Selector::Requirements(reqs) => reqs.iter().find_map(|r| match (r.op, &r.values[..]) {
            (LabelOp::In, [v]) => Some((r.key.as_str(), v.as_str())),
            _ => None,
        }),
        Selector::Nothing => None,
    }
}

/// `nodeLabelsMatchSpreadConstraints`.
fn node_has_all_keys(ni: &NodeInfo, constraints: &[Constraint]) -> bool {
    constraints.iter().all(|c| c.value(ni).is_some())
}

pub struct PodTopologySpread {
    default_constraints: Vec<DefaultConstraint>,
    system_defaulted: bool,
}

impl PodTopologySpread {
    pub fn new(args: &PodTopologySpreadArgs) -> PodTopologySpread {
        match args.defaulting_type {
            DefaultingType::System => PodTopologySpread {
                default_constraints: vec![
                    DefaultConstraint {
                        max_skew: 3,
                        topology_key: LABEL_HOSTNAME.into(),
                        when_unsatisfiable: "ScheduleAnyway".into(),
                    },
                    DefaultConstraint {
                        max_skew: 5,
                        topology_key: LABEL_ZONE.into(),
                        when_unsatisfiable: "ScheduleAnyway".into(),
                    },
                ],
                system_defaulted: true,
            },
            DefaultingType::List => PodTopologySpread {
                default_constraints: args.default_constraints.clone(),
                system_defaulted: false,
            },
        }
    }

    /// The pod's own constraints with this `whenUnsatisfiable`, or the defaults for pods
    /// without any (`filterTopologySpreadConstraints` / `buildDefaultConstraints`).
    fn constraints(&self, pod: &PodInfo, action: &str) -> Vec<Constraint> {
        let own: &[TopologySpreadConstraint] = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or(&[]);
        let labels = pod_labels(&pod.pod);
        if !own.is_empty() {
            return own
                .iter()
                .filter(|c| c.when_unsatisfiable == action)
                .map(|c| {
                    let mut selector = Selector::from_label_selector(c.label_selector.as_ref());
                    for key in c.match_label_keys.iter().flatten() {
                        if let Some(v) = labels.get(key) {
                            selector.add(key, LabelOp::In, v);
                        }
                    }
                    Constraint {
                        max_skew: c.max_skew as i64,
                        well_known: WellKnown::of(&c.topology_key),
                        topology_key: c.topology_key.clone(),
                        selector,
                        min_domains: c.min_domains.unwrap_or(1) as i64,
                        honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                        honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
                    }
                })
                .collect();
        }
        let Some(selector) = default_selector(pod) else {
            return Vec::new();
        };
        self.default_constraints
            .iter()
            .filter(|c| c.when_unsatisfiable == action)
            .map(|c| Constraint {
                max_skew: c.max_skew as i64,
                well_known: WellKnown::of(&c.topology_key),
                topology_key: c.topology_key.clone(),
                selector: selector.clone(),
                min_domains: 1,
                honor_node_affinity: true,
                honor_node_taints: false,
            })
            .collect()
    }
}

/// The selector of the default constraints (see the module documentation).
fn default_selector(pod: &PodInfo) -> Option<Selector> {
    let controlled = pod.pod.metadata.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true)
            && matches!(
                o.kind.as_str(),
                "ReplicaSet" | "StatefulSet" | "ReplicationController"
            )
    });
    let labels = pod_labels(&pod.pod);
    (controlled && !labels.is_empty()).then(|| Selector::from_set(labels))
}

/// Per hard constraint: matching pods per domain, and the global minimum.
struct PreFilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: topology value → matching pods (domains with 0 are present).
    tp_value_to_match_num: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest count over its domains (`criticalPaths[0]`).
    min_match: Vec<i64>,
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        names::POD_TOPOLOGY_SPREAD
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for PodTopologySpread {
    /// Mirrors `calPreFilterState`.
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let constraints = self.constraints(pod, "DoNotSchedule");
        if constraints.is_empty() {
            return (None, Status::skip());
        }
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
        for ni in snapshot.nodes() {
            let node = ni.node();
            if !node_has_all_keys(ni, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !c.includes_node(pod, node) {
                    continue;
                }
                let Some(value) = c.value(ni) else {
                    continue;
                };
                let n = count_pods_match_selector(ni, &c.selector, &pod.namespace);
                add_count(&mut counts[i], value, n);
            }
        }
        let min_match = counts
            .iter()
            .map(|m| m.values().copied().min().unwrap_or(0))
            .collect();
        state.write(
            PRE_FILTER_STATE_KEY,
            PreFilterState {
                constraints,
                tp_value_to_match_num: counts,
                min_match,
            },
        );
        (None, Status::success())
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error("PodTopologySpread: pre-filter state missing");
        };
        let pod_labels = pod_labels(&pod.pod);
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = c.value(node) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            // minDomains: with fewer domains than required, the global minimum is 0.
            let domains = s.tp_value_to_match_num[i].len() as i64;
            let min_match = if domains < c.min_domains {
                0
            } else {
                s.min_match[i]
            };
            let self_match = i64::from(c.selector.matches(pod_labels));
            let match_num = s.tp_value_to_match_num[i].get(value).copied().unwrap_or(0);
            if match_num + self_match - min_match > c.max_skew {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}

struct PreScoreState {
    constraints: Vec<Constraint>,
    /// By index in the PreScore node list: whether the node lacks a required topology key
    /// (NormalizeScore gives it 0). Empty when no node can be ignored (the system defaults
    /// spread nodes without a zone label by hostname), so the common case allocates nothing.
    ignored: Vec<bool>,
    /// Per constraint: what Score reads for each node of the PreScore list.
    per_node: Vec<PerNode>,
    /// Per constraint: `ln(domains + 2)`.
    topology_normalizing_weight: Vec<f64>,
    /// The length of the PreScore node list (Score is given the same list).
    len: usize,
}

/// One constraint's counts, by index in the PreScore node list, so that Score is one pass
/// per constraint over all scored nodes with no per-node lookups or dispatch.
enum PerNode {
    /// `kubernetes.io/hostname`: the node's own matching pods (`countPodsMatchSelector`, as
    /// upstream's Score counts them), [`NO_COUNT`] for a node without the label or ignored.
    Host(Vec<u32>),
    /// Any other key: the topology domains of the scored nodes with their matching pods, and
    /// each node's slot in them ([`NO_DOMAIN`] for a node without the key, or ignored).
    Domains { domains: Domains, at: Vec<u32> },
}

/// A [`PerNode::Host`] entry of a node Score skips for the constraint.
const NO_COUNT: u32 = u32::MAX;

/// A [`PerNode::Domains`] slot of a node without the constraint's topology key.
const NO_DOMAIN: u32 = u32::MAX;

/// Topology values → matching pods, each value stored once.
#[derive(Default)]
struct Domains {
    slot: HashMap<String, u32>,
    counts: Vec<i64>,
    /// For a zone constraint: [`NodeInfo::zone_id`] → the zone's slot, [`UNKNOWN`] until
    /// the zone is first looked up by its string (once per zone and cycle instead of once
    /// per scored node and per matching pod), [`NO_DOMAIN`] for a zone none of the scored
    /// nodes is in. Zone ids of [`MAX_CACHED_ZONE_ID`] and above are looked up by string.
    by_zone: Vec<u32>,
}

/// A `Domains::by_zone` entry not looked up yet.
const UNKNOWN: u32 = u32::MAX - 1;

/// Zone ids `Domains::by_zone` covers: a cluster with more distinct zones than this (never
/// seen in practice) hashes the zone strings of the rest, as before the cache.
const MAX_CACHED_ZONE_ID: u32 = 4096;

impl Domains {
    /// The node's entry in `by_zone` (grown to hold it) when `c` is a zone constraint and
    /// the node has a cacheable zone id. Zone ids come from the one scheduler snapshot every
    /// node of a cycle belongs to, so an id stands for the same zone string throughout.
    fn zone_entry(&mut self, c: &Constraint, ni: &NodeInfo) -> Option<usize> {
        if c.well_known != WellKnown::Zone
            || ni.zone_id == NO_ZONE_ID
            || ni.zone_id >= MAX_CACHED_ZONE_ID
        {
            return None;
        }
        let at = ni.zone_id as usize;
        if self.by_zone.len() <= at {
            self.by_zone.resize(at + 1, UNKNOWN);
        }
        Some(at)
    }

    /// [`Domains::slot_of`] for the node's `value` of constraint `c`, through the zone id
    /// cache for a zone constraint.
    fn slot_of_node(&mut self, c: &Constraint, ni: &NodeInfo, value: &str) -> u32 {
        let at = self.zone_entry(c, ni);
        if let Some(at) = at {
            let slot = self.by_zone[at];
            if slot != UNKNOWN && slot != NO_DOMAIN {
                return slot;
            }
        }
        let slot = self.slot_of(value);
        if let Some(at) = at {
            self.by_zone[at] = slot;
        }
        slot
    }

    /// The count of the node's `value` of constraint `c` if it is one of the domains, through
    /// the zone id cache for a zone constraint. Called once every domain is in (`slot_of_node` is not
    /// called after it), so a zone found missing stays missing.
    fn count_mut_node(&mut self, c: &Constraint, ni: &NodeInfo, value: &str) -> Option<&mut i64> {
        let slot = match self.zone_entry(c, ni) {
            Some(at) => {
                if self.by_zone[at] == UNKNOWN {
                    self.by_zone[at] = self.slot.get(value).copied().unwrap_or(NO_DOMAIN);
                }
                self.by_zone[at]
            }
            None => *self.slot.get(value)?,
        };
        if slot == NO_DOMAIN {
            return None;
        }
        self.counts.get_mut(slot as usize)
    }

    /// The slot of `value`, added with count 0 the first time it is seen.
    fn slot_of(&mut self, value: &str) -> u32 {
        if let Some(&slot) = self.slot.get(value) {
            return slot;
        }
        let slot = self.counts.len() as u32;
        self.slot.insert(value.to_string(), slot);
        self.counts.push(0);
        slot
    }

    fn count(&self, value: &str) -> i64 {
        self.slot
            .get(value)
            .and_then(|&slot| self.counts.get(slot as usize))
            .copied()
            .unwrap_or(0)
    }
}

impl Domains {
    /// The node's slot when it is already in the zone id cache (every scored node of a
    /// zone after the zone's first): one load instead of [`Domains::slot_of_node`]'s checks.
    #[inline]
    fn cached_slot(&self, c: &Constraint, ni: &NodeInfo) -> Option<u32> {
        if c.well_known != WellKnown::Zone {
            return None;
        }
        // NO_ZONE_ID and ids past the cache are out of range.
        match self.by_zone.get(ni.zone_id as usize) {
            Some(&slot) if slot < UNKNOWN => Some(slot),
            _ => None,
        }
    }
}

impl PreScoreState {
    /// Upstream's `Score` for one node, its counts found by its values: the per-node path
    /// ([`ScorePlugin::score`], a list other than PreScore's, nodes PreScore ignored).
    fn score_one(&self, node: &NodeInfo, pod: &PodInfo) -> i64 {
        let mut score = 0f64;
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = c.value(node) else {
                continue;
            };
            let cnt = match &self.per_node[i] {
                PerNode::Host(_) => count_pods_match_selector(node, &c.selector, &pod.namespace),
                PerNode::Domains { domains, .. } => domains.count(value),
            };
            score += score_for_count(cnt, c.max_skew, self.topology_normalizing_weight[i]);
        }
        round_score(score)
    }

    /// Every node of the PreScore list, one pass per constraint over all of them. Each
    /// node's sum gets the same terms in the same (constraint) order as in
    /// [`PreScoreState::score_one`], so the floating-point sums, and the scores, are equal.
    fn score_all(&self, nodes: &[&NodeInfo], pod: &PodInfo, out: &mut Vec<NodeScore>) {
        let mut sum = vec![0f64; nodes.len()];
        for (i, c) in self.constraints.iter().enumerate() {
            let weight = self.topology_normalizing_weight[i];
            match &self.per_node[i] {
                PerNode::Host(counts) => {
                    for (s, &cnt) in sum.iter_mut().zip(counts) {
                        if cnt != NO_COUNT {
                            *s += score_for_count(i64::from(cnt), c.max_skew, weight);
                        }
                    }
                }
                PerNode::Domains { domains, at } => {
                    // Each domain's term once, not once per node.
                    let term: Vec<f64> = domains
                        .counts
                        .iter()
                        .map(|&cnt| score_for_count(cnt, c.max_skew, weight))
                        .collect();
                    for (s, &slot) in sum.iter_mut().zip(at) {
                        // NO_DOMAIN is past the end.
                        if let Some(t) = term.get(slot as usize) {
                            *s += t;
                        }
                    }
                }
            }
        }
        let base = out.len();
        out.extend(sum.iter().enumerate().map(|(index, s)| NodeScore {
            index,
            score: round_score(*s),
        }));
        // Ignored nodes (NormalizeScore zeroes them) still get upstream's raw score.
        for (j, _) in self.ignored.iter().enumerate().filter(|(_, &ig)| ig) {
            out[base + j].score = self.score_one(nodes[j], pod);
        }
    }
}

fn pre_score_state(state: &CycleState) -> Result<&PreScoreState, Status> {
    state
        .read::<PreScoreState>(PRE_SCORE_STATE_KEY)
        .ok_or_else(|| Status::error("PodTopologySpread: pre-score state missing"))
}

/// `topologyNormalizingWeight`.
fn topology_normalizing_weight(size: usize) -> f64 {
    ((size + 2) as f64).ln()
}

/// `int64(math.Round(score))`. A sum of `scoreForCount` terms is never negative, and for
/// `0 <= x < 2^52` the fraction `x - trunc(x)` is exact, so truncating and comparing it with
/// one half rounds half away from zero exactly as `f64::round` does — which is a library
/// call per scored node (a tenth of Score's instructions); anything else takes the library.
fn round_score(x: f64) -> i64 {
    if (0.0..4_503_599_627_370_496.0).contains(&x) {
        let t = x as i64;
        if x - t as f64 >= 0.5 {
            t + 1
        } else {
            t
        }
    } else {
        x.round() as i64
    }
}

/// `scoreForCount`: `maxSkew - 1` waters down differences between domains.
fn score_for_count(cnt: i64, max_skew: i64, weight: f64) -> f64 {
    cnt as f64 * weight + (max_skew - 1) as f64
}

/// Whether the pod has no required node placement (`spec.nodeSelector` or required node
/// affinity), so that `required_node_affinity_matches` holds for every node.
fn without_required_node_affinity(pod: &PodInfo) -> bool {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return true;
    };
    spec.node_selector.as_ref().is_none_or(|s| s.is_empty())
        && required_node_selector(spec).is_none()
}

/// The first index at or after `from` whose entry is `>= target` in the sorted `sorted`,
/// given that every entry before `from` is `< target`: a few steps forward (the next
/// scored node is usually next in the snapshot too), then a binary search of the rest.
fn lower_bound_from(sorted: &[u32], from: usize, target: u32) -> usize {
    let mut i = from;
    for _ in 0..4 {
        if i >= sorted.len() || sorted[i] >= target {
            return i;
        }
        i += 1;
    }
    i + sorted[i..].partition_point(|&x| x < target)
}

/// Hostname constraint `c`: per node of `nodes`, its pods matching the selector
/// (`countPodsMatchSelector` of upstream's Score), [`NO_COUNT`] for a node without the
/// hostname label or ignored. `walk`: the nodes of the matching pods from the label index
/// (one entry per pod), when the selector has a `key=value` term.
fn host_counts(
    c: &Constraint,
    nodes: &[&NodeInfo],
    ignored: &[bool],
    walk: Option<&[&NodeInfo]>,
    pod: &PodInfo,
    snapshot: &Snapshot,
) -> Vec<u32> {
    let mut counts: Vec<u32> = nodes
        .iter()
        .enumerate()
        .map(|(j, ni)| {
            if ignored.get(j).copied().unwrap_or(false) || ni.hostname_label.is_none() {
                NO_COUNT
            } else {
                0
            }
        })
        .collect();
    let own_pods = |ni: &NodeInfo| {
        let n = count_pods_match_selector(ni, &c.selector, &pod.namespace);
        u32::try_from(n).unwrap_or(NO_COUNT - 1)
    };
    let Some(walk) = walk else {
        for (cnt, ni) in counts.iter_mut().zip(nodes) {
            if *cnt != NO_COUNT {
                *cnt = own_pods(ni);
            }
        }
        return counts;
    };
    // The snapshot positions of the matching pods' nodes, sorted, merged with the scored
    // nodes' positions: the scored nodes come in snapshot order from the filter's rotating
    // start (two ascending runs), so each costs a step or two, and no snapshot-sized table
    // is zeroed per pod (every node the label index yields is one of the snapshot's).
    let mut at: Vec<u32> = walk
        .iter()
        .filter_map(|ni| snapshot.position_of(ni))
        .map(|p| p as u32)
        .collect();
    at.sort_unstable();
    // `next`: the entry at `cursor`, so that the many nodes before it (no matching pod)
    // cost one comparison.
    let first = at.first().copied().unwrap_or(u32::MAX);
    let (mut cursor, mut last, mut next) = (0usize, 0u32, first);
    for (cnt, ni) in counts.iter_mut().zip(nodes) {
        if *cnt == NO_COUNT {
            continue;
        }
        let Some(p) = snapshot.position_of(ni) else {
            // Not one of the snapshot's nodes: none of the label index's pods is on it.
            *cnt = own_pods(ni);
            continue;
        };
        let p = p as u32;
        if p < last {
            (cursor, next) = (0, first); // a new ascending run
        }
        last = p;
        if p < next {
            continue; // stays 0
        }
        cursor = lower_bound_from(&at, cursor, p);
        let equal = at[cursor..].iter().take_while(|&&x| x == p).count();
        *cnt = equal as u32;
        next = at.get(cursor).copied().unwrap_or(u32::MAX);
    }
    counts
}

impl PreScorePlugin for PodTopologySpread {
    /// Mirrors `PreScore` + `initPreScoreState`.
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        if nodes.is_empty() || snapshot.is_empty() {
            return Status::skip();
        }
        let constraints = self.constraints(pod, "ScheduleAnyway");
        if constraints.is_empty() {
            return Status::skip();
        }
        let has_own = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        // Nodes without a zone label still get hostname spreading under the system defaults.
        let require_all_topologies = has_own || !self.system_defaulted;
        let ignored: Vec<bool> = if require_all_topologies {
            nodes
                .iter()
                .map(|ni| !node_has_all_keys(ni, &constraints))
                .collect()
        } else {
            Vec::new()
        };
        let scored = nodes.len() - ignored.iter().filter(|i| **i).count();
        // `processAllNode`'s node filter. Without a required node placement every node
        // passes the node affinity policy: `includes_node` is only asked about taints.
        let affinity_free = without_required_node_affinity(pod);
        let counted = |c: &Constraint, ni: &NodeInfo| {
            (!require_all_topologies || node_has_all_keys(ni, &constraints))
                && ((affinity_free && !c.honor_node_taints) || c.includes_node(pod, ni.node()))
        };
        // The nodes of the pods matching each constraint's selector (non-terminating, in the
        // pod's namespace), from the snapshot's label index when the selector has a
        // `key=value` term: visited once for all constraints with the same selector (the
        // system defaults' two) instead of once per constraint.
        let mut walks: Vec<Vec<&NodeInfo>> = Vec::new();
        let mut walk_of: Vec<Option<usize>> = Vec::with_capacity(constraints.len());
        for (i, c) in constraints.iter().enumerate() {
            let shared = (0..i)
                .find(|&j| walk_of[j].is_some() && constraints[j].selector == c.selector)
                .and_then(|j| walk_of[j]);
            let w = shared.or_else(|| {
                let (key, value) = equality(&c.selector)?;
                walks.push(matching_pods_nodes(snapshot, &pod.namespace, c, key, value).collect());
                Some(walks.len() - 1)
            });
            walk_of.push(w);
        }
        let mut per_node = Vec::with_capacity(constraints.len());
        let mut weights = Vec::with_capacity(constraints.len());
        for (i, c) in constraints.iter().enumerate() {
            let walk = walk_of[i].map(|w| &walks[w][..]);
            if c.is_hostname() {
                // Score counts each node's own matching pods (upstream: in Score).
                weights.push(topology_normalizing_weight(scored));
                per_node.push(PerNode::Host(host_counts(
                    c, nodes, &ignored, walk, pod, snapshot,
                )));
                continue;
            }
            // The domains of the scored nodes, and each scored node's slot.
            let mut domains = Domains::default();
            let mut at = vec![NO_DOMAIN; nodes.len()];
            for (j, ni) in nodes.iter().enumerate() {
                if ignored.get(j).copied().unwrap_or(false) {
                    continue;
                }
                if let Some(slot) = domains.cached_slot(c, ni) {
                    at[j] = slot;
                } else if let Some(v) = c.value(ni) {
                    at[j] = domains.slot_of_node(c, ni, v);
                }
            }
            weights.push(topology_normalizing_weight(domains.counts.len()));
            // `processAllNode`: the matching pods of every domain the scored nodes are in.
            if !domains.counts.is_empty() {
                match walk {
                    // Only pods labelled key=value can match: visit those instead of every
                    // pod on every node. Same counts, far fewer visits.
                    Some(walk) => {
                        for ni in walk {
                            if !counted(c, ni) {
                                continue;
                            }
                            if let Some(n) =
                                c.value(ni).and_then(|v| domains.count_mut_node(c, ni, v))
                            {
                                *n += 1;
                            }
                        }
                    }
                    None => {
                        for ni in snapshot.nodes() {
                            if !counted(c, ni) {
                                continue;
                            }
                            let Some(v) = c.value(ni) else {
                                continue;
                            };
                            if let Some(n) = domains.count_mut_node(c, ni, v) {
                                *n += count_pods_match_selector(ni, &c.selector, &pod.namespace);
                            }
                        }
                    }
                }
            }
            per_node.push(PerNode::Domains { domains, at });
        }
        state.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                constraints,
                ignored,
                per_node,
                topology_normalizing_weight: weights,
                len: nodes.len(),
            },
        );
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        _snapshot: &Snapshot,
    ) -> Result<i64, Status> {
        Ok(pre_score_state(state)?.score_one(node, pod))
    }

    /// Same scores as [`ScorePlugin::score`] per node: for PreScore's node list, one pass
    /// per constraint over the counts PreScore laid out by node (`PreScoreState::score_all`).
    fn score_nodes(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
        out: &mut Vec<NodeScore>,
    ) -> Result<(), Status> {
        let s = pre_score_state(state)?;
        if nodes.len() != s.len {
            // Not PreScore's list: node by node.
            out.extend(nodes.iter().enumerate().map(|(index, ni)| NodeScore {
                index,
                score: s.score_one(ni, pod),
            }));
            return Ok(());
        }
        s.score_all(nodes, pod, out);
        Ok(())
    }

    /// Mirrors `NormalizeScore`: fewer matching pods is better; ignored nodes get 0.
    fn normalize_score(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) else {
            return Status::success();
        };
        let normalized = |score: i64, min: i64, max: i64| {
            if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - score) / max
            }
        };
        if s.ignored.is_empty() {
            // No node is ignored (the system defaults): no per-node lookups.
            let (min, max) = scores.iter().fold((i64::MAX, 0i64), |(min, max), ns| {
                (min.min(ns.score), max.max(ns.score))
            });
            for ns in scores.iter_mut() {
                ns.score = normalized(ns.score, min, max);
            }
            return Status::success();
        }
        let is_ignored = |ns: &NodeScore| s.ignored.get(ns.index).copied().unwrap_or(false);
        let mut min = i64::MAX;
        let mut max = 0i64;
        for ns in scores.iter().filter(|ns| !is_ignored(ns)) {
            min = min.min(ns.score);
            max = max.max(ns.score);
        }
        for ns in scores.iter_mut() {
            ns.score = if is_ignored(ns) {
                0
            } else {
                normalized(ns.score, min, max)
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::snapshot::testing::*;

    fn spread(mut p: Pod, constraints: &[(i32, &str, &str)]) -> Pod {
        p.spec.as_mut().unwrap().topology_spread_constraints = Some(
            constraints
                .iter()
                .map(|(max_skew, key, when)| TopologySpreadConstraint {
                    max_skew: *max_skew,
                    topology_key: key.to_string(),
                    when_unsatisfiable: when.to_string(),
                    label_selector: Some(LabelSelector {
                        match_labels: Some([("foo".to_string(), "".to_string())].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        );
        with_pod_labels(p, &[("foo", "")])
    }

    fn matching(name: &str, node: &str) -> Pod {
        on(with_pod_labels(pod(name, 0, 0), &[("foo", "")]), node)
    }

    /// Nodes node-a, node-b in zone1 and node-x, node-y in zone2 (upstream's usual layout).
    fn four_nodes(pods: Vec<Pod>) -> Snapshot {
        let mut s = Snapshot::new();
        for (n, z) in [
            ("node-a", "zone1"),
            ("node-b", "zone1"),
            ("node-x", "zone2"),
            ("node-y", "zone2"),
        ] {
            s.add_node(Arc::new(with_labels(
                node(n, 1000, 1 << 30),
                &[("zone", z), ("node", n)],
            )));
        }
        for p in pods {
            s.add_pod(Arc::new(p));
        }
        s
    }

    fn filter_all(p: Pod, snap: &Snapshot) -> Vec<Code> {
        let pl = PodTopologySpread::new(&PodTopologySpreadArgs::default());
        let pi = PodInfo::new(Arc::new(p));
        let mut state = CycleState::new();
        let (_, s) = pl.pre_filter(&mut state, &pi, snap);
        assert!(s.is_success() || s.is_skip(), "{s}");
        snap.nodes()
            .iter()
            .map(|ni| {
                if s.is_skip() {
                    Code::Success
                } else {
                    pl.filter(&state, &pi, ni).code()
                }
            })
            .collect()
    }

    /// Hard constraints, modelled on upstream TestSingleConstraint (nodes node-a, node-b in
    /// zone1, node-x, node-y in zone2).
    #[test]
    fn hard_constraint_filter() {
        use Code::{Success as S, Unschedulable as U};
        // "pods spread across zones as 3/3, all nodes fit"
        let p = spread(pod("p", 0, 0), &[(1, "zone", "DoNotSchedule")]);
        let snap = four_nodes(vec![
            matching("p-a1", "node-a"),
            matching("p-b1", "node-b"),
            matching("p-y1", "node-y"),
        ]);
        // zone1: 2, zone2: 1 → zone1 nodes would make 3 - 1 = 2 > 1.
        assert_eq!(filter_all(p.clone(), &snap), vec![U, U, S, S]);
        // "no existing pods": every node fits.
        assert_eq!(filter_all(p, &four_nodes(vec![])), vec![S, S, S, S]);
        // "pods spread across nodes as 2/1/0/3, only node-x fits" (per-node constraint).
        let p = spread(pod("p", 0, 0), &[(1, "node", "DoNotSchedule")]);
        let snap = four_nodes(vec![
            matching("p-a1", "node-a"),
            matching("p-a2", "node-a"),
            matching("p-b1", "node-b"),
            matching("p-y1", "node-y"),
            matching("p-y2", "node-y"),
            matching("p-y3", "node-y"),
        ]);
        assert_eq!(filter_all(p.clone(), &snap), vec![U, U, S, U]);
        // "pods spread across nodes as 2/1/0/3, maxSkew is 2, node-b and node-x fit"
        let p = spread(pod("p", 0, 0), &[(2, "node", "DoNotSchedule")]);
        assert_eq!(filter_all(p, &snap), vec![U, S, S, U]);
        // Terminating pods and pods of other namespaces don't count.
        let mut terminating = matching("p-t", "node-x");
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let mut other_ns = matching("p-o", "node-x");
        other_ns.metadata.namespace = Some("other".into());
        let snap = four_nodes(vec![terminating, other_ns]);
        let p = spread(pod("p", 0, 0), &[(1, "node", "DoNotSchedule")]);
        assert_eq!(filter_all(p, &snap), vec![S, S, S, S]);
    }

    /// A node without the topology key is rejected as unresolvable.
    #[test]
    fn missing_topology_label_is_unresolvable() {
        let mut snap = four_nodes(vec![]);
        snap.add_node(Arc::new(node("no-zone", 1000, 1 << 30)));
        let pl = PodTopologySpread::new(&PodTopologySpreadArgs::default());
        let pi = PodInfo::new(Arc::new(spread(
            pod("p", 0, 0),
            &[(1, "zone", "DoNotSchedule")],
        )));
        let mut state = CycleState::new();
        pl.pre_filter(&mut state, &pi, &snap);
        let s = pl.filter(&state, &pi, snap.node("no-zone").unwrap());
        assert_eq!(s.code(), Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), ERR_REASON_NODE_LABEL_NOT_MATCH);
    }

    /// PreScore + Score + NormalizeScore for `p` over the `candidates` (the nodes that passed
    /// Filter); the snapshot holds every node.
    fn scores(p: Pod, snap: &Snapshot, candidates: &[&str]) -> Option<Vec<i64>> {
        let pl = PodTopologySpread::new(&PodTopologySpreadArgs::default());
        let pi = PodInfo::new(Arc::new(p));
        let mut state = CycleState::new();
        let refs: Vec<&NodeInfo> = candidates.iter().map(|n| snap.node(n).unwrap()).collect();
        if pl.pre_score(&mut state, &pi, &refs, snap).is_skip() {
            return None;
        }
        let mut s: Vec<NodeScore> = refs
            .iter()
            .enumerate()
            .map(|(index, ni)| NodeScore {
                index,
                score: pl.score(&state, &pi, ni, snap).unwrap(),
            })
            .collect();
        // Scoring all nodes in one call gives the same raw scores.
        let mut all = Vec::new();
        pl.score_nodes(&state, &pi, &refs, snap, &mut all).unwrap();
        assert_eq!(all, s);
        pl.normalize_score(&state, &pi, &mut s);
        Some(s.iter().map(|s| s.score).collect())
    }

    /// Nodes with labels, and `foo` pods per node.
    fn cluster(nodes: &[(&str, &[(&str, &str)])], pods: &[(&str, usize)]) -> Snapshot {
        let mut s = Snapshot::new();
        for (name, labels) in nodes {
            let mut n = node(name, 1000, 1 << 30);
            n.metadata.labels = Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            s.add_node(Arc::new(n));
        }
        for (node_name, count) in pods {
            for i in 0..*count {
                s.add_pod(Arc::new(matching(&format!("p-{node_name}-{i}"), node_name)));
            }
        }
        s
    }

    const H: &str = LABEL_HOSTNAME;

    /// Upstream TestPodTopologySpreadScore cases.
    #[test]
    fn soft_constraint_scores_match_upstream() {
        let by_host: &[(&str, &[(&str, &str)])] = &[
            ("node-a", &[(H, "node-a")]),
            ("node-b", &[(H, "node-b")]),
            ("node-c", &[(H, "node-c")]),
            ("node-d", &[(H, "node-d")]),
        ];
        let all = ["node-a", "node-b", "node-c", "node-d"];
        let spread_2103 = cluster(by_host, &[("node-a", 2), ("node-b", 1), ("node-d", 3)]);
        // "one constraint on node, no existing pods"
        let p1 = spread(pod("p", 0, 0), &[(1, H, "ScheduleAnyway")]);
        assert_eq!(
            scores(p1.clone(), &cluster(by_host, &[]), &all),
            Some(vec![100, 100, 100, 100])
        );
        // "one constraint on node, all 4 nodes are candidates" (2/1/0/3)
        assert_eq!(
            scores(p1.clone(), &spread_2103, &all),
            Some(vec![20, 60, 100, 0])
        );
        // "..., maxSkew=2"
        let p2 = spread(pod("p", 0, 0), &[(2, H, "ScheduleAnyway")]);
        assert_eq!(scores(p2, &spread_2103, &all), Some(vec![33, 66, 100, 16]));
        // "..., maxSkew=3" (4/3/2/1)
        let p3 = spread(pod("p", 0, 0), &[(3, H, "ScheduleAnyway")]);
        let spread_4321 = cluster(
            by_host,
            &[("node-a", 4), ("node-b", 3), ("node-c", 2), ("node-d", 1)],
        );
        assert_eq!(scores(p3, &spread_4321, &all), Some(vec![44, 66, 77, 100]));
        // "one constraint on node, 3 out of 4 nodes are candidates" (4/2/1/~3~)
        let axy: &[(&str, &[(&str, &str)])] = &[
            ("node-a", &[(H, "node-a")]),
            ("node-b", &[(H, "node-b")]),
            ("node-x", &[(H, "node-x")]),
            ("node-y", &[(H, "node-y")]),
        ];
        let pods_4213 = [("node-a", 4), ("node-b", 2), ("node-x", 1), ("node-y", 3)];
        let snap = cluster(axy, &pods_4213);
        assert_eq!(
            scores(p1.clone(), &snap, &["node-a", "node-b", "node-x"]),
            Some(vec![33, 83, 100])
        );
        // "..., one node doesn't match topology key": node-b is ignored (0).
        let b_unlabelled: &[(&str, &[(&str, &str)])] = &[
            ("node-a", &[(H, "node-a")]),
            ("node-b", &[("n", "node-b")]),
            ("node-x", &[(H, "node-x")]),
            ("node-y", &[(H, "node-y")]),
        ];
        let snap = cluster(b_unlabelled, &pods_4213);
        assert_eq!(
            scores(p1, &snap, &["node-a", "node-b", "node-x"]),
            Some(vec![16, 0, 100])
        );
        // "one constraint on zone, 3 out of 4 nodes are candidates"
        let zoned: &[(&str, &[(&str, &str)])] = &[
            ("node-a", &[("zone", "zone1"), (H, "node-a")]),
            ("node-b", &[("zone", "zone1"), (H, "node-b")]),
            ("node-x", &[("zone", "zone2"), (H, "node-x")]),
            ("node-y", &[("zone", "zone2"), (H, "node-y")]),
        ];
        let pz = spread(pod("p", 0, 0), &[(1, "zone", "ScheduleAnyway")]);
        let snap = cluster(zoned, &pods_4213);
        assert_eq!(
            scores(pz, &snap, &["node-a", "node-b", "node-x"]),
            Some(vec![75, 75, 100])
        );
        // The same on the well-known zone label (read from the snapshot's copy of it).
        let well_known: &[(&str, &[(&str, &str)])] = &[
            ("node-a", &[(LABEL_ZONE, "zone1"), (H, "node-a")]),
            ("node-b", &[(LABEL_ZONE, "zone1"), (H, "node-b")]),
            ("node-x", &[(LABEL_ZONE, "zone2"), (H, "node-x")]),
            ("node-y", &[(LABEL_ZONE, "zone2"), (H, "node-y")]),
        ];
        let pz = spread(pod("p", 0, 0), &[(1, LABEL_ZONE, "ScheduleAnyway")]);
        let snap = cluster(well_known, &pods_4213);
        assert_eq!(
            scores(pz, &snap, &["node-a", "node-b", "node-x"]),
            Some(vec![75, 75, 100])
        );
        // "two Constraints on zone and node, 2 out of 4 nodes are candidates" (2/~1~/2/~4~)
        let pzn = spread(
            pod("p", 0, 0),
            &[(1, "zone", "ScheduleAnyway"), (1, H, "ScheduleAnyway")],
        );
        let snap = cluster(
            zoned,
            &[("node-a", 2), ("node-b", 1), ("node-x", 2), ("node-y", 4)],
        );
        assert_eq!(
            scores(pzn, &snap, &["node-a", "node-x"]),
            Some(vec![100, 63])
        );
        // Pods without constraints and without a controlling owner: skipped.
        assert_eq!(scores(pod("p", 0, 0), &spread_2103, &all), None);
    }

    /// Hostname counts come from the label index when the selector has a `key=value` term
    /// and from each node's pods otherwise: both give the same scores.
    #[test]
    fn hostname_counts_are_the_same_with_and_without_an_equality_term() {
        let by_host: &[(&str, &[(&str, &str)])] = &[
            ("node-a", &[(H, "node-a")]),
            ("node-b", &[(H, "node-b")]),
            ("node-c", &[(H, "node-c")]),
            ("node-d", &[(H, "node-d")]),
        ];
        let snap = cluster(
            by_host,
            &[("node-a", 4), ("node-b", 3), ("node-c", 2), ("node-d", 1)],
        );
        let all = ["node-a", "node-b", "node-c", "node-d"];
        let equality = spread(pod("p", 0, 0), &[(3, H, "ScheduleAnyway")]);
        let exists = with_exists_selector(&equality);
        let want = Some(vec![44, 66, 77, 100]);
        assert_eq!(scores(equality, &snap, &all), want);
        assert_eq!(scores(exists, &snap, &all), want);
    }

    /// Upstream "system defaulting, nodes don't have zone, pods match service": the system
    /// defaults (hostname maxSkew 3, zone maxSkew 5) give the same scores as one hostname
    /// constraint with maxSkew 3. Here the selector comes from a controlling ReplicaSet.
    #[test]
    fn system_defaults_spread_replica_set_pods() {
        let owned = |p: Pod| owned_by_replica_set(with_pod_labels(p, &[("foo", "")]));
        let by_host: &[(&str, &[(&str, &str)])] = &[
            ("node-a", &[(H, "node-a")]),
            ("node-b", &[(H, "node-b")]),
            ("node-c", &[(H, "node-c")]),
            ("node-d", &[(H, "node-d")]),
        ];
        let snap = cluster(
            by_host,
            &[("node-a", 4), ("node-b", 3), ("node-c", 2), ("node-d", 1)],
        );
        let all = ["node-a", "node-b", "node-c", "node-d"];
        assert_eq!(
            scores(owned(pod("p", 0, 0)), &snap, &all),
            Some(vec![44, 66, 77, 100])
        );
    }

    /// Zone domains found through the snapshot's zone ids (`Domains::by_zone`) give the same
    /// scores as through the zone strings (a `NodeInfo` outside a snapshot has no id), also
    /// after nodes change zone, with and without a `key=value` term in the selector.
    #[test]
    fn zone_ids_give_the_same_scores_as_zone_strings() {
        let z = LABEL_ZONE;
        let mut snap = cluster(
            &[
                ("node-a", &[(z, "zone1"), (H, "node-a")]),
                ("node-b", &[(z, "zone1"), (H, "node-b")]),
                ("node-c", &[(z, "zone2"), (H, "node-c")]),
                ("node-d", &[(z, "zone3"), (H, "node-d")]),
                ("node-e", &[(H, "node-e")]),
            ],
            &[("node-a", 3), ("node-b", 1), ("node-c", 2), ("node-e", 1)],
        );
        // node-b moves to a zone another node is in, node-d to a zone not seen before.
        for (n, zone) in [("node-b", "zone3"), ("node-d", "zone4")] {
            snap.update_node(Arc::new(with_labels(
                node(n, 1000, 1 << 30),
                &[(z, zone), (H, n)],
            )));
        }
        let ids: Vec<u32> = ["node-a", "node-b", "node-c", "node-d", "node-e"]
            .iter()
            .map(|n| snap.node(n).unwrap().zone_id)
            .collect();
        assert_eq!(ids[1], ids[3] - 1, "zone3 was given its id before zone4");
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[4], NO_ZONE_ID);

        let equality = spread(pod("p", 0, 0), &[(1, z, "ScheduleAnyway")]);
        let exists = with_exists_selector(&equality);
        let all = ["node-a", "node-b", "node-c", "node-d", "node-e"];
        // zone1: 3 pods (node-a), zone3: 1 (node-b), zone2: 2 (node-c), zone4: 0 (node-d);
        // node-e has no zone and is ignored.
        let want = Some(vec![0, 60, 20, 100, 0]);
        for p in [equality, exists] {
            assert_eq!(scores(p.clone(), &snap, &all), want);
            // The same nodes without their ids: every zone looked up by its string.
            let pl = PodTopologySpread::new(&PodTopologySpreadArgs::default());
            let pi = PodInfo::new(Arc::new(p));
            let raw = |nodes: &[&NodeInfo]| {
                let mut state = CycleState::new();
                assert!(pl.pre_score(&mut state, &pi, nodes, &snap).is_success());
                let mut out = Vec::new();
                pl.score_nodes(&state, &pi, nodes, &snap, &mut out).unwrap();
                out
            };
            let with_ids: Vec<&NodeInfo> = all.iter().map(|n| snap.node(n).unwrap()).collect();
            let copies: Vec<NodeInfo> = with_ids
                .iter()
                .map(|ni| {
                    let mut copy = (*ni).clone();
                    copy.zone_id = NO_ZONE_ID;
                    copy
                })
                .collect();
            let without_ids: Vec<&NodeInfo> = copies.iter().collect();
            assert_eq!(raw(&with_ids), raw(&without_ids));
        }
    }

    /// `p` controlled by a ReplicaSet (the system defaults apply to it).
    fn owned_by_replica_set(mut p: Pod) -> Pod {
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        p
    }

    /// Upstream's PreScore + Score written out literally, for the raw scores of `nodes`:
    /// `processAllNode` over every snapshot node into a map keyed by topology value, then
    /// per node a sum over the constraints whose key it has.
    fn upstream_raw_scores(
        pl: &PodTopologySpread,
        pi: &PodInfo,
        nodes: &[&NodeInfo],
        snap: &Snapshot,
    ) -> Vec<i64> {
        let constraints = pl.constraints(pi, "ScheduleAnyway");
        let has_own = pi
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        let require_all = has_own || !pl.system_defaulted;
        let ignored = |ni: &NodeInfo| require_all && !node_has_all_keys(ni, &constraints);
        let scored = nodes.iter().filter(|ni| !ignored(ni)).count();
        let mut per_value: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
        for (i, c) in constraints.iter().enumerate() {
            if c.is_hostname() {
                continue;
            }
            for ni in nodes.iter().filter(|ni| !ignored(ni)) {
                if let Some(v) = c.value(ni) {
                    per_value[i].insert(v.to_string(), 0);
                }
            }
        }
        let weights: Vec<f64> = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.is_hostname() {
                    scored
                } else {
                    per_value[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        for ni in snap.nodes() {
            if ignored(ni) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.is_hostname() || !c.includes_node(pi, ni.node()) {
                    continue;
                }
                let Some(v) = c.value(ni) else {
                    continue;
                };
                if let Some(n) = per_value[i].get_mut(v) {
                    *n += count_pods_match_selector(ni, &c.selector, &pi.namespace);
                }
            }
        }
        nodes
            .iter()
            .map(|ni| {
                let mut score = 0f64;
                for (i, c) in constraints.iter().enumerate() {
                    let Some(v) = c.value(ni) else {
                        continue;
                    };
                    let cnt = if c.is_hostname() {
                        count_pods_match_selector(ni, &c.selector, &pi.namespace)
                    } else {
                        per_value[i].get(v).copied().unwrap_or(0)
                    };
                    score += cnt as f64 * weights[i] + (c.max_skew - 1) as f64;
                }
                score.round() as i64
            })
            .collect()
    }

    /// The per-constraint pass of `score_nodes` (counts laid out by node in PreScore, host
    /// counts merged by snapshot position) gives the same raw scores as the per-node `score`
    /// and as upstream's algorithm written out, on a varied cluster: nodes without a
    /// hostname, zone or rack label, three zones, pods of another namespace, terminating and
    /// non-matching pods, several pods per node; candidate lists in the filter's rotated
    /// order with gaps, reversed, and not PreScore's list; selectors with and without a
    /// `key=value` term; system defaults, own constraints (with ignored nodes) and a pod with
    /// a node selector.
    #[test]
    fn per_constraint_pass_scores_equal_per_node_and_upstream() {
        let mut snap = Snapshot::new();
        let names: Vec<String> = (0..40).map(|i| format!("n{i:02}")).collect();
        for (i, name) in names.iter().enumerate() {
            let mut labels: Vec<(&str, String)> = vec![("rack", format!("r{}", i % 4))];
            if i % 7 != 3 {
                labels.push((H, name.clone()));
            }
            if i % 5 != 2 {
                labels.push((LABEL_ZONE, format!("z{}", i % 3)));
            }
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            snap.add_node(Arc::new(with_labels(node(name, 1000, 1 << 30), &labels)));
        }
        let mut k = 0;
        let mut add = |snap: &mut Snapshot, p: Pod, node: &str| {
            k += 1;
            let mut p = on(p, node);
            p.metadata.name = Some(format!("q{k}"));
            snap.add_pod(Arc::new(p));
        };
        for (i, name) in names.iter().enumerate() {
            for _ in 0..(i * 7 % 5) {
                add(&mut snap, matching("x", name), name);
            }
            if i % 3 == 0 {
                add(
                    &mut snap,
                    with_pod_labels(pod("x", 0, 0), &[("foo", "bar")]),
                    name,
                );
            }
            if i % 4 == 1 {
                let mut other = matching("x", name);
                other.metadata.namespace = Some("other".into());
                add(&mut snap, other, name);
            }
            if i % 6 == 5 {
                let mut t = matching("x", name);
                t.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        jiff::Timestamp::UNIX_EPOCH,
                    ));
                add(&mut snap, t, name);
            }
        }
        let all: Vec<&NodeInfo> = snap.nodes().iter().collect();
        // The filter's order: from a rotating start, wrapping, skipping some nodes.
        let rotated: Vec<&NodeInfo> = (0..all.len())
            .map(|i| (i + 23) % all.len())
            .filter(|i| i % 6 != 4)
            .map(|i| all[i])
            .collect();
        let reversed: Vec<&NodeInfo> = all.iter().rev().step_by(2).copied().collect();

        let own = |constraints: &[(i32, &str, &str)]| spread(pod("p", 0, 0), constraints);
        let with_node_selector = {
            let mut p = own(&[(2, LABEL_ZONE, "ScheduleAnyway"), (1, H, "ScheduleAnyway")]);
            p.spec.as_mut().unwrap().node_selector = Some([("rack".into(), "r1".into())].into());
            p
        };
        let pods = [
            owned_by_replica_set(with_pod_labels(pod("p", 0, 0), &[("foo", "")])),
            own(&[
                (1, H, "ScheduleAnyway"),
                (2, LABEL_ZONE, "ScheduleAnyway"),
                (3, "rack", "ScheduleAnyway"),
            ]),
            with_exists_selector(&own(&[
                (1, H, "ScheduleAnyway"),
                (2, LABEL_ZONE, "ScheduleAnyway"),
            ])),
            with_node_selector,
        ];
        let pl = PodTopologySpread::new(&PodTopologySpreadArgs::default());
        for p in pods {
            let pi = PodInfo::new(Arc::new(p));
            for list in [&rotated, &reversed, &all] {
                let mut state = CycleState::new();
                assert!(pl.pre_score(&mut state, &pi, list, &snap).is_success());
                let mut pass = Vec::new();
                pl.score_nodes(&state, &pi, list, &snap, &mut pass).unwrap();
                let per_node: Vec<NodeScore> = list
                    .iter()
                    .enumerate()
                    .map(|(index, ni)| NodeScore {
                        index,
                        score: pl.score(&state, &pi, ni, &snap).unwrap(),
                    })
                    .collect();
                assert_eq!(pass, per_node, "{}", pi.key);
                let raw: Vec<i64> = pass.iter().map(|s| s.score).collect();
                assert_eq!(raw, upstream_raw_scores(&pl, &pi, list, &snap));
                // Not PreScore's list (the first half of it): scored node by node.
                let half = &list[..list.len() / 2];
                let mut part = Vec::new();
                pl.score_nodes(&state, &pi, half, &snap, &mut part).unwrap();
                assert_eq!(part, per_node[..half.len()].to_vec());
            }
            // Scores differ between nodes: the counts are not all equal (the case is not
            // trivially passing).
            let mut state = CycleState::new();
            pl.pre_score(&mut state, &pi, &all, &snap);
            let mut pass = Vec::new();
            pl.score_nodes(&state, &pi, &all, &snap, &mut pass).unwrap();
            assert!(pass.iter().any(|s| s.score != pass[0].score), "{}", pi.key);
        }
    }

    /// `round_score` rounds as `f64::round` does: halves away from zero, the largest double
    /// below one half down, large and negative values through the library.
    #[test]
    fn round_score_is_f64_round() {
        let below_half = 0.5 - f64::EPSILON / 4.0;
        let mut xs = vec![
            0.0,
            0.5,
            1.5,
            2.5,
            below_half,
            1.0 + below_half,
            4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            1e300,
            -0.5,
            -2.5,
            f64::INFINITY,
        ];
        // Sums as Score makes them: counts times ln(domains + 2) plus maxSkew - 1.
        for cnt in 0..200i64 {
            for domains in 0..12usize {
                for skew in 1..6 {
                    let w = topology_normalizing_weight(domains);
                    xs.push(score_for_count(cnt, skew, w) + score_for_count(cnt / 3, skew, w));
                }
            }
        }
        for x in xs {
            assert_eq!(round_score(x), x.round() as i64, "{x:?}");
        }
    }

    /// `pod` with each spread constraint selecting `foo` by `Exists` instead of by equality:
    /// the same pods, through the other kind of selector.
    fn with_exists_selector(pod: &Pod) -> Pod {
        let mut exists = pod.clone();
        for c in exists
            .spec
            .as_mut()
            .unwrap()
            .topology_spread_constraints
            .as_mut()
            .unwrap()
        {
            c.label_selector = Some(LabelSelector {
                match_expressions: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                        key: "foo".into(),
                        operator: "Exists".into(),
                        values: None,
                    },
                ]),
                ..Default::default()
            });
        }
        exists
    }
}
