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
    required_node_affinity_matches, LabelOp, Selector, LABEL_HOSTNAME, LABEL_ZONE,
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
    /// Positions (in the PreScore node list) of nodes lacking a required topology key.
    ignored: Vec<bool>,
    /// Per constraint (not hostname): the topology domains of the scored nodes, with their
    /// matching pods.
    domains: Vec<Domains>,
    /// Per constraint (not hostname): per position in the PreScore node list, the node's
    /// slot in `domains` (`NO_DOMAIN` if it lacks the key), so Score reads a count by position
    /// instead of hashing the node's topology value a second time.
    domain_at: Vec<Vec<u32>>,
    /// Per constraint: `ln(domains + 2)`.
    topology_normalizing_weight: Vec<f64>,
    /// Per hostname constraint whose selector has a `key=value` term: the matching pods of
    /// each node, counted once from the snapshot's label index (see `pre_score`), by the
    /// node's position in [`Snapshot::nodes`] (empty when no pod matches). Score reads a
    /// node's count by its position instead of searching a list of nodes (a binary search per
    /// scored node was ~70 % of Score's instructions). `None`: Score counts the node's own
    /// pods.
    host_counts: Vec<Option<Vec<u32>>>,
}

/// `domain_at` of a node without the constraint's topology key.
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

impl PreScoreState {
    /// Matching pods counted for constraint `i` at the node at `pos` in the PreScore node
    /// list (`scoreForCount`'s `cnt`); `None` when the node lacks the topology key.
    fn count(
        &self,
        i: usize,
        pos: Option<usize>,
        node: &NodeInfo,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Option<i64> {
        let c = &self.constraints[i];
        if c.is_hostname() {
            c.value(node)?;
            return Some(match &self.host_counts[i] {
                Some(per_node) if per_node.is_empty() => 0,
                // A node not in the snapshot holds none of the pods its label index knows.
                Some(per_node) => snapshot
                    .position_of(node)
                    .map_or(0, |at| i64::from(per_node[at])),
                None => count_pods_match_selector(node, &c.selector, &pod.namespace),
            });
        }
        let d = &self.domains[i];
        match pos.and_then(|p| self.domain_at[i].get(p)) {
            Some(&slot) if slot != NO_DOMAIN => Some(d.counts[slot as usize]),
            // Not from the PreScore list, or ignored there: look the value up.
            _ => c.value(node).map(|v| d.count(v)),
        }
    }

    /// `Score` for the node at `pos` (if known) in the PreScore node list.
    fn score(
        &self,
        pos: Option<usize>,
        node: &NodeInfo,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> i64 {
        let mut score = 0f64;
        for (i, c) in self.constraints.iter().enumerate() {
            if let Some(cnt) = self.count(i, pos, node, pod, snapshot) {
                score += score_for_count(cnt, c.max_skew, self.topology_normalizing_weight[i]);
            }
        }
        score.round() as i64
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

/// `scoreForCount`: `maxSkew - 1` waters down differences between domains.
fn score_for_count(cnt: i64, max_skew: i64, weight: f64) -> f64 {
    cnt as f64 * weight + (max_skew - 1) as f64
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
        let mut ignored = vec![false; nodes.len()];
        let mut domains: Vec<Domains> = constraints.iter().map(|_| Domains::default()).collect();
        let mut domain_at: Vec<Vec<u32>> = constraints
            .iter()
            .map(|c| {
                if c.is_hostname() {
                    Vec::new()
                } else {
                    vec![NO_DOMAIN; nodes.len()]
                }
            })
            .collect();
        for (pos, ni) in nodes.iter().enumerate() {
            if require_all_topologies && !node_has_all_keys(ni, &constraints) {
                ignored[pos] = true;
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.is_hostname() {
                    continue;
                }
                if let Some(v) = c.value(ni) {
                    domain_at[i][pos] = domains[i].slot_of_node(c, ni, v);
                }
            }
        }
        let scored = ignored.iter().filter(|i| !**i).count();
        let weights = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.is_hostname() {
                    scored
                } else {
                    domains[i].counts.len()
                };
                topology_normalizing_weight(size)
            })
            .collect();
        // `processAllNode`: the matching pods of every domain the scored nodes are in. The
        // hostname constraint's counts are the scored node's own pods (see `score`).
        for (i, c) in constraints.iter().enumerate() {
            if c.is_hostname() || domains[i].counts.is_empty() {
                continue;
            }
            let counted = |ni: &NodeInfo| {
                (!require_all_topologies || node_has_all_keys(ni, &constraints))
                    && c.includes_node(pod, ni.node())
            };
            match equality(&c.selector) {
                // Only pods labelled key=value can match: visit those (snapshot's label
                // index) instead of every pod on every node. Same counts, far fewer visits.
                Some((key, value)) => {
                    for ni in matching_pods_nodes(snapshot, &pod.namespace, c, key, value) {
                        if !counted(ni) {
                            continue;
                        }
                        if let Some(n) = c
                            .value(ni)
                            .and_then(|v| domains[i].count_mut_node(c, ni, v))
                        {
                            *n += 1;
                        }
                    }
                }
                None => {
                    for ni in snapshot.nodes() {
                        if !counted(ni) {
                            continue;
                        }
                        let Some(v) = c.value(ni) else {
                            continue;
                        };
                        if let Some(n) = domains[i].count_mut_node(c, ni, v) {
                            *n += count_pods_match_selector(ni, &c.selector, &pod.namespace);
                        }
                    }
                }
            }
        }
        // Hostname constraints: Score counts each candidate's matching pods. With a
        // `key=value` term, count them here once from the label index instead of walking
        // the pods of every scored node (at 10 pods a node and 500 scored nodes, 5,000
        // selector matches a pod). Same counts: non-terminating pods of the namespace on the
        // node that match the selector.
        let host_counts = constraints
            .iter()
            .map(|c| {
                if !c.is_hostname() {
                    return None;
                }
                let (key, value) = equality(&c.selector)?;
                let mut per_node: Vec<u32> = Vec::new();
                for ni in matching_pods_nodes(snapshot, &pod.namespace, c, key, value) {
                    // Every node the label index yields is one of the snapshot's.
                    if let Some(at) = snapshot.position_of(ni) {
                        if per_node.is_empty() {
                            per_node = vec![0; snapshot.len()];
                        }
                        per_node[at] += 1;
                    }
                }
                Some(per_node)
            })
            .collect();
        state.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                constraints,
                ignored,
                domains,
                domain_at,
                topology_normalizing_weight: weights,
                host_counts,
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
        snapshot: &Snapshot,
    ) -> Result<i64, Status> {
        Ok(pre_score_state(state)?.score(None, node, pod, snapshot))
    }

    /// Same scores as [`ScorePlugin::score`] per node, with the state read once and each
    /// node's domain count read by its position.
    fn score_nodes(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
        out: &mut Vec<NodeScore>,
    ) -> Result<(), Status> {
        let s = pre_score_state(state)?;
        out.extend(nodes.iter().enumerate().map(|(index, ni)| NodeScore {
            index,
            score: s.score(Some(index), ni, pod, snapshot),
        }));
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
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - ns.score) / max
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
        let owned = |p: Pod| {
            let mut p = with_pod_labels(p, &[("foo", "")]);
            p.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "rs".into(),
                uid: "u".into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]);
            p
        };
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
