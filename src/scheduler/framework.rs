//! The scheduling framework: extension-point traits, [`Status`], [`CycleState`], and the
//! [`Framework`] that runs one scheduling cycle for a pod.
//!
//! Mirrors pkg/scheduler/framework (interface.go, cycle_state.go, types.go `FitError`),
//! pkg/scheduler/framework/runtime/framework.go (`RunPreFilterPlugins`, `RunFilterPlugins`,
//! `RunScorePlugins`, …) and pkg/scheduler/schedule_one.go (`schedulePod`,
//! `findNodesThatFitPod`, `findNodesThatPassFilters`, `numFeasibleNodesToFind`,
//! `prioritizeNodes`, `selectHost`).
//!
//! One cycle ([`Framework::schedule`]):
//!
//! ```text
//! PreFilter ─▶ Filter over a sample of nodes ─▶ (no node: PostFilter, FitError)
//!     (start at a rotating index; stop after numFeasibleNodesToFind feasible nodes)
//!          ─▶ PreScore ─▶ Score ─▶ NormalizeScore ─▶ × weight ─▶ selectHost (ties: reservoir)
//!          ─▶ assume in the snapshot ─▶ Reserve ─▶ ScheduleResult (the caller binds)
//! ```

use std::any::Any;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Binding, Pod};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::profile::{ProfileError, SchedulerProfile};
use super::snapshot::{NodeInfo, PodInfo, Snapshot};

/// Highest score a Score plugin may return after normalization (`framework.MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;
/// Lowest score (`framework.MinNodeScore`).
pub const MIN_NODE_SCORE: i64 = 0;
/// Below this many nodes every node is checked (`minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this (`minFeasibleNodesPercentageToFind`).
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: u32 = 5;
/// Nodes whose per-plugin scores are kept for the trace (`numberOfNodeScoresToReturn`).
pub const NUMBER_OF_NODE_SCORES_TO_RETURN: usize = 3;
/// `NoNodeAvailableMsg`.
pub const NO_NODE_AVAILABLE_MSG: &str = "0/{} nodes are available";

/// The outcome class of a plugin call. Mirrors `framework.Code` (without Wait / Pending).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    Success,
    /// An internal error: the pod is retried with backoff.
    Error,
    /// The pod does not fit the node now; preemption might help.
    Unschedulable,
    /// The pod does not fit the node and preemption cannot help.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod: its later extension points are skipped.
    Skip,
}

/// The result of a plugin call: a code, reasons and the plugin that produced it.
/// Reasons are mostly the upstream constant strings, so they are `Cow` to avoid allocating.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    code: Code,
    reasons: Vec<Cow<'static, str>>,
    plugin: &'static str,
}

impl Default for Status {
    fn default() -> Self {
        Status::success()
    }
}

impl Status {
    pub fn success() -> Status {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>) -> Status {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    /// A status with several reasons (e.g. `Insufficient cpu`, `Insufficient memory`).
    pub fn with_reasons(code: Code, reasons: Vec<Cow<'static, str>>) -> Status {
        Status {
            code,
            reasons,
            plugin: "",
        }
    }

    /// A status with a code and no reason.
    pub fn code_only(code: Code) -> Status {
        Status {
            code,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn unschedulable(reason: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::Unschedulable, reason)
    }

    pub fn unresolvable(reason: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    pub fn error(msg: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::Error, msg)
    }

    pub fn skip() -> Status {
        Status::code_only(Code::Skip)
    }

    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = plugin;
        self
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn plugin(&self) -> &'static str {
        self.plugin
    }

    pub fn reasons(&self) -> &[Cow<'static, str>] {
        &self.reasons
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// Unschedulable or UnschedulableAndUnresolvable (`Status.IsRejected`).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    /// The reasons joined by `, ` (`Status.Message`).
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.code)?;
        if !self.plugin.is_empty() {
            write!(f, " ({})", self.plugin)?;
        }
        if !self.reasons.is_empty() {
            write!(f, ": {}", self.message())?;
        }
        Ok(())
    }
}

/// Data plugins share within one scheduling cycle (PreFilter → Filter, PreScore → Score).
/// Mirrors `framework.CycleState`.
///
/// `data` is a short list searched linearly: plugins read it once per node, and a handful of
/// entries compare faster than they hash.
#[derive(Default)]
pub struct CycleState {
    data: Vec<(&'static str, Box<dyn Any + Send + Sync>)>,
    /// Plugins whose PreFilter returned Skip: their Filter is not run.
    pub skip_filter_plugins: PluginNames,
    /// Plugins whose PreScore returned Skip: their Score is not run.
    pub skip_score_plugins: PluginNames,
}

/// A set of plugin names (upstream's `sets.Set[string]` of `SkipFilterPlugins` /
/// `SkipScorePlugins`). A profile has a dozen plugins at most, so a short list is searched
/// linearly: a `HashSet` per cycle cost an allocation, a rehash and a SipHash per insert and
/// per lookup, for every pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginNames(Vec<&'static str>);

impl PluginNames {
    /// Add a name; `false` if it was already there (as `HashSet::insert`).
    pub fn insert(&mut self, name: &'static str) -> bool {
        if self.contains(name) {
            return false;
        }
        self.0.push(name);
        true
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(&name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for CycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CycleState")
            .field(
                "keys",
                &self.data.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CycleState {
    pub fn new() -> CycleState {
        CycleState::default()
    }

    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        match self.data.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = Box::new(value),
            None => self.data.push((key, Box::new(value))),
        }
    }

    pub fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        self.data
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, b)| b.downcast_ref())
    }
}

/// Restricts the nodes Filter runs on (`framework.PreFilterResult`); `None` = all nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreFilterResult {
    pub node_names: Option<BTreeSet<String>>,
}

impl PreFilterResult {
    pub fn all_nodes() -> PreFilterResult {
        PreFilterResult { node_names: None }
    }

    pub fn nodes(names: impl IntoIterator<Item = String>) -> PreFilterResult {
        PreFilterResult {
            node_names: Some(names.into_iter().collect()),
        }
    }

    /// Intersection (`PreFilterResult.Merge`).
    pub fn merge(self, other: PreFilterResult) -> PreFilterResult {
        match (self.node_names, other.node_names) {
            (None, o) => PreFilterResult { node_names: o },
            (s, None) => PreFilterResult { node_names: s },
            (Some(a), Some(b)) => PreFilterResult {
                node_names: Some(a.intersection(&b).cloned().collect()),
            },
        }
    }
}

/// What a PostFilter (preemption) found: a node to nominate and the pods to evict there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PostFilterResult {
    pub nominated_node_name: Option<String>,
    /// `namespace/name` of the pods to preempt.
    pub victims: Vec<String>,
}

/// One node's score from one plugin; `index` is the node's position in the list given to
/// PreScore / Score (the feasible nodes), so no node name is allocated per score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeScore {
    pub index: usize,
    pub score: i64,
}

/// A node's weighted scores per plugin and their total, for the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePluginScores {
    pub node: String,
    /// (plugin, normalized score × weight)
    pub scores: Vec<(&'static str, i64)>,
    pub total: i64,
}

/// Filter verdicts for the nodes the filter rejected, and the status for nodes not listed
/// (filtered out by a PreFilter result). Mirrors `framework.NodeToStatus`.
#[derive(Clone, Debug)]
pub struct NodeToStatus {
    map: HashMap<String, Status>,
    absent: Status,
}

impl Default for NodeToStatus {
    fn default() -> Self {
        NodeToStatus {
            map: HashMap::new(),
            absent: Status::code_only(Code::UnschedulableAndUnresolvable),
        }
    }
}

impl NodeToStatus {
    pub fn set(&mut self, node: String, status: Status) {
        self.map.insert(node, status);
    }

    /// The status of a node: its own, or the absent-node status.
    pub fn get(&self, node: &str) -> &Status {
        self.map.get(node).unwrap_or(&self.absent)
    }

    pub fn explicit(&self) -> impl Iterator<Item = (&String, &Status)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn set_absent_nodes_status(&mut self, s: Status) {
        self.absent = s;
    }

    pub fn absent_nodes_status(&self) -> &Status {
        &self.absent
    }
}

/// Why nodes were rejected for a pod. Mirrors `framework.Diagnosis`.
#[derive(Clone, Debug, Default)]
pub struct Diagnosis {
    pub node_to_status: NodeToStatus,
    /// Plugins that rejected the pod on at least one node (the queue uses them to decide
    /// which cluster events may make the pod schedulable).
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// Set when a PreFilter plugin rejected the pod.
    pub pre_filter_msg: Option<String>,
    /// Set by the PostFilter (preemption) outcome.
    pub post_filter_msg: Option<String>,
}

impl Diagnosis {
    fn add_plugin_status(&mut self, s: &Status) {
        if s.is_rejected() && !s.plugin().is_empty() {
            self.unschedulable_plugins.insert(s.plugin());
        }
    }

    /// How many nodes gave each reason, counting absent nodes with the absent status, as
    /// upstream `FitError.Error` builds its histogram.
    pub fn reason_counts(&self, num_all_nodes: usize) -> BTreeMap<String, usize> {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for s in self.node_to_status.map.values() {
            for r in s.reasons() {
                *reasons.entry(r.to_string()).or_default() += 1;
            }
        }
        let explicit = self.node_to_status.len();
        if explicit < num_all_nodes {
            for r in self.node_to_status.absent.reasons() {
                *reasons.entry(r.to_string()).or_default() += num_all_nodes - explicit;
            }
        }
        reasons
    }

    /// A bounded view for span events: up to `max_nodes` rejected nodes (by name) with the
    /// plugin and reasons, and the count per reason over all of them.
    pub fn summary(&self, max_nodes: usize, num_all_nodes: usize) -> DiagnosisSummary {
        let mut nodes: Vec<_> = self.node_to_status.map.iter().collect();
        nodes.sort_by(|a, b| a.0.cmp(b.0));
        DiagnosisSummary {
            rejected_nodes: nodes
                .into_iter()
                .take(max_nodes)
                .map(|(n, s)| (n.clone(), s.plugin(), s.message()))
                .collect(),
            rejected_total: self.node_to_status.len(),
            reason_counts: self.reason_counts(num_all_nodes),
        }
    }
}

/// See [`Diagnosis::summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagnosisSummary {
    /// (node, plugin, reasons)
    pub rejected_nodes: Vec<(String, &'static str, String)>,
    pub rejected_total: usize,
    pub reason_counts: BTreeMap<String, usize>,
}

/// No node fits the pod. Its `Display` is upstream's message, which becomes the
/// `PodScheduled=False` condition's message and the `FailedScheduling` event.
#[derive(Clone, Debug)]
pub struct FitError {
    pub pod: String,
    pub num_all_nodes: usize,
    pub diagnosis: Diagnosis,
}

impl fmt::Display for FitError {
    /// Mirrors `FitError.Error`: `0/N nodes are available: <count reason, …>.` — the
    /// histogram entries formatted as `"<count> <reason>"` and sorted as strings — followed
    /// by the PostFilter message, e.g. ` preemption: 0/N nodes are available: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        match &self.diagnosis.pre_filter_msg {
            Some(msg) if !msg.is_empty() => write!(f, " {msg}.")?,
            _ => {
                let mut hist: Vec<String> = self
                    .diagnosis
                    .reason_counts(self.num_all_nodes)
                    .into_iter()
                    .map(|(r, n)| format!("{n} {r}"))
                    .collect();
                hist.sort();
                if !hist.is_empty() {
                    write!(f, " {}.", hist.join(", "))?;
                }
            }
        }
        // The PostFilter message is itself a FitError message ending in "."; one period only.
        if let Some(msg) = self
            .diagnosis
            .post_filter_msg
            .as_ref()
            .filter(|m| !m.is_empty())
        {
            write!(f, " {}.", msg.trim_end_matches('.'))?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

/// Why a cycle produced no placement.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// There are no nodes at all (`ErrNoNodesAvailable`).
    #[error("no nodes available to schedule pods")]
    NoNodesAvailable,
    /// No node fits; the PostFilter ran. The pod goes to the unschedulable pods.
    #[error("{}", .0.error)]
    Unschedulable(Box<Unschedulable>),
    /// A plugin failed: the pod is retried with backoff.
    #[error("{0}")]
    Internal(Status),
}

/// Why no node fits, and what preemption found.
#[derive(Debug)]
pub struct Unschedulable {
    pub error: FitError,
    /// What preemption found (real eviction is left to the caller).
    pub post_filter: Option<PostFilterResult>,
}

/// The decision for a pod: where it goes, why, and the cycle state the Bind step needs.
#[derive(Debug)]
pub struct ScheduleResult {
    pub pod: Arc<Pod>,
    pub pod_key: String,
    pub suggested_host: String,
    /// Nodes the filter looked at (feasible + rejected).
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
    /// Per-plugin scores of the best nodes, the winner first (at most
    /// [`NUMBER_OF_NODE_SCORES_TO_RETURN`] unless configured).
    pub top_nodes: Vec<NodePluginScores>,
    /// Nodes rejected on the way (bounded summary: [`Diagnosis::summary`]).
    pub diagnosis: Diagnosis,
    pub state: CycleState,
}

/// A plugin: its name, and the extension points it implements (each `as_*` returns `Some`
/// for the points the plugin takes part in).
pub trait Plugin: Send + Sync {
    /// The upstream name, e.g. `NodeResourcesFit`.
    fn name(&self) -> &'static str;
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
}

/// PreFilter: compute per-pod state once; may restrict the nodes, reject the pod outright,
/// or Skip (then the plugin's Filter is not run).
pub trait PreFilterPlugin {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status);
}

/// Filter: can the pod run on this node?
pub trait FilterPlugin {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;

    /// A cheap sufficient condition for [`FilterPlugin::filter`] passing: `true` only when
    /// `filter` would return Success (or Skip) for this pod and node. The framework asks it
    /// first for every node and calls `filter` only when it says `false`, so the common
    /// case (an untainted, schedulable node with room) costs a few loads per plugin instead
    /// of building and dropping a `Status`. The default knows nothing (`false`).
    fn passes_fast(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> bool {
        false
    }
}

/// What a PostFilter plugin sees after no node fit.
pub struct PostFilterContext<'a> {
    pub framework: &'a Framework,
    pub state: &'a CycleState,
    pub pod: &'a PodInfo,
    pub snapshot: &'a Snapshot,
    pub statuses: &'a NodeToStatus,
}

/// PostFilter: runs when no node fits (preemption).
pub trait PostFilterPlugin {
    fn post_filter(&self, cx: &PostFilterContext<'_>) -> (Option<PostFilterResult>, Status);
}

/// PreScore: compute per-pod state for Score over the feasible nodes; may Skip.
pub trait PreScorePlugin {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status;
}

/// Score: rank a feasible node; then NormalizeScore over all of them (default: none). After
/// normalization every score must be within [`MIN_NODE_SCORE`, `MAX_NODE_SCORE`].
pub trait ScorePlugin {
    fn score(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        snapshot: &Snapshot,
    ) -> Result<i64, Status>;

    /// Score every node of the cycle into `out` (cleared by the caller), in order. The
    /// default calls [`ScorePlugin::score`] per node; a plugin overrides it to read its
    /// cycle state once instead of once per node (same scores).
    fn score_nodes(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
        out: &mut Vec<NodeScore>,
    ) -> Result<(), Status> {
        for (index, ni) in nodes.iter().enumerate() {
            out.push(NodeScore {
                index,
                score: self.score(state, pod, ni, snapshot)?,
            });
        }
        Ok(())
    }

    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        _scores: &mut [NodeScore],
    ) -> Status {
        Status::success()
    }
}

/// Reserve: claim plugin-side resources for the chosen node; Unreserve undoes it.
pub trait ReservePlugin {
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status;
    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str);
}

/// Bind: produce the binding to perform (the actor sends it as the ApiServer `Bind`
/// message). A plugin that does not handle the pod returns `Err(Status::skip())`.
pub trait BindPlugin {
    fn bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Result<Binding, Status>;
}

/// `DefaultNormalizeScore` (plugins/helper/normalize_score.go): scale to
/// `[0, max_priority]` by the highest score; `reverse` flips it (fewer is better).
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [NodeScore]) {
    let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
    if max == 0 {
        if reverse {
            for s in scores.iter_mut() {
                s.score = max_priority;
            }
        }
        return;
    }
    for s in scores.iter_mut() {
        let mut v = max_priority * s.score / max;
        if reverse {
            v = max_priority - v;
        }
        s.score = v;
    }
}

/// Mirrors `numFeasibleNodesToFind`: how many feasible nodes to find before scoring.
/// `percentage` 0 means adaptive: `50 - nodes/125`, at least 5%; never fewer than 100 nodes.
pub fn num_feasible_nodes_to_find(percentage: u32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut pct = percentage.min(100) as i64;
    if pct == 0 {
        pct = 50 - (num_all_nodes as i64) / 125;
        if pct < MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND as i64 {
            pct = MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND as i64;
        }
    }
    let n = (num_all_nodes as i64 * pct / 100) as usize;
    n.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// A plugin with its Score weight.
pub type WeightedPlugin = (Arc<dyn Plugin>, i64);

/// An enabled plugin with its Score weight.
#[derive(Clone)]
struct Enabled {
    plugin: Arc<dyn Plugin>,
    weight: i64,
}

/// A profile's plugins, ready to run cycles. Mirrors `frameworkImpl` plus the scheduler's
/// per-profile cycle state (`nextStartNodeIndex`).
pub struct Framework {
    profile_name: String,
    plugins: Vec<Enabled>,
    /// `percentageOfNodesToScore`; 0 = adaptive.
    percentage_of_nodes_to_score: u32,
    /// Where the next filter pass starts, so successive pods look at different nodes.
    next_start_node_index: usize,
    /// Tie-breaking between equally scored nodes.
    rng: SmallRng,
    /// How many nodes' per-plugin scores [`ScheduleResult::top_nodes`] keeps.
    pub top_n: usize,
    /// When the last cycle's phases ran, for the trace (the caller draws them as spans).
    pub last_phases: CyclePhases,
    /// Scoring's buffers, kept from one cycle to the next.
    scratch: ScoreScratch,
}

/// The buffers one cycle's scoring fills, reused by the next cycle: allocating and zeroing
/// a total and a weighted score per node for every Score plugin cost five zeroed
/// allocations of a few KiB per pod (a sixth of the scoring's instructions at 420 nodes).
#[derive(Default)]
struct ScoreScratch {
    /// Weighted total per feasible node.
    totals: Vec<i64>,
    /// The Score plugins that ran this cycle, in order: (name, weight, normalized scores in
    /// node order). Only the first `used` entries belong to this cycle; the rest keep their
    /// allocations for later cycles.
    plugins: Vec<(&'static str, i64, Vec<NodeScore>)>,
    used: usize,
}

impl ScoreScratch {
    /// The weighted score plugin `p` gave node `index` (0 if it gave none).
    fn weighted(&self, p: usize, index: usize) -> i64 {
        let (_, weight, scores) = &self.plugins[p];
        // `score_nodes` scores the nodes in order, so a node's score is at its index.
        let score = match scores.get(index) {
            Some(ns) if ns.index == index => ns.score,
            _ => scores
                .iter()
                .rev()
                .find(|ns| ns.index == index)
                .map_or(0, |ns| ns.score),
        };
        score * weight
    }
}

/// When the phases of one scheduling cycle started and ended (wall clock, as span times).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CyclePhases {
    /// PreFilter and Filter over the sampled nodes.
    pub filter: Option<(SystemTime, SystemTime)>,
    /// PreScore, Score, NormalizeScore and host selection; `None` when nothing was scored
    /// (no feasible node, or exactly one).
    pub score: Option<(SystemTime, SystemTime)>,
}

impl fmt::Debug for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Framework")
            .field("profile", &self.profile_name)
            .field(
                "plugins",
                &self
                    .plugins
                    .iter()
                    .map(|e| (e.plugin.name(), e.weight))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Framework {
    /// Build the framework of a profile (the plugins it enables, with their weights and
    /// arguments). `percentage_of_nodes_to_score` is the global default, used when the
    /// profile does not set its own.
    pub fn new(
        profile: &SchedulerProfile,
        percentage_of_nodes_to_score: u32,
    ) -> Result<Framework, ProfileError> {
        let plugins = profile
            .build_plugins()?
            .into_iter()
            .map(|(plugin, weight)| Enabled { plugin, weight })
            .collect();
        Ok(Framework {
            profile_name: profile.scheduler_name.clone(),
            plugins,
            percentage_of_nodes_to_score: profile
                .percentage_of_nodes_to_score
                .unwrap_or(percentage_of_nodes_to_score),
            next_start_node_index: 0,
            rng: SmallRng::from_os_rng(),
            top_n: NUMBER_OF_NODE_SCORES_TO_RETURN,
            last_phases: CyclePhases::default(),
            scratch: ScoreScratch::default(),
        })
    }

    /// A framework from explicit plugins and weights (tests, custom setups).
    pub fn from_plugins(
        profile_name: &str,
        plugins: Vec<WeightedPlugin>,
        percentage_of_nodes_to_score: u32,
    ) -> Framework {
        Framework {
            profile_name: profile_name.to_string(),
            plugins: plugins
                .into_iter()
                .map(|(plugin, weight)| Enabled { plugin, weight })
                .collect(),
            percentage_of_nodes_to_score,
            next_start_node_index: 0,
            rng: SmallRng::from_os_rng(),
            top_n: NUMBER_OF_NODE_SCORES_TO_RETURN,
            last_phases: CyclePhases::default(),
            scratch: ScoreScratch::default(),
        }
    }

    /// Make tie-breaking deterministic (tests).
    pub fn seed(&mut self, seed: u64) {
        self.rng = SmallRng::seed_from_u64(seed);
    }

    /// The profile's `schedulerName`.
    pub fn profile_name(&self) -> &str {
        &self.profile_name
    }

    /// Enabled plugin names with their weights, in run order.
    pub fn plugins(&self) -> Vec<(&'static str, i64)> {
        self.plugins
            .iter()
            .map(|e| (e.plugin.name(), e.weight))
            .collect()
    }

    fn has_filter_plugins(&self) -> bool {
        self.plugins.iter().any(|e| e.plugin.as_filter().is_some())
    }

    fn has_score_plugins(&self) -> bool {
        self.plugins.iter().any(|e| e.plugin.as_score().is_some())
    }

    /// Schedule one pod: find the node, assume the pod there and run Reserve. On success
    /// the caller binds ([`Framework::bind`]) and, if binding fails, calls
    /// [`Framework::unreserve_and_forget`]. Mirrors `schedulingCycle` in schedule_one.go.
    pub fn schedule(
        &mut self,
        snapshot: &mut Snapshot,
        pod: Arc<Pod>,
    ) -> Result<ScheduleResult, ScheduleError> {
        // Built once: the cycle reads it, the snapshot keeps it for the assumed pod, and the
        // bound pod's watch event reuses it (`PodInfo::updated`).
        let pi = Arc::new(PodInfo::new(pod.clone()));
        let mut state = CycleState::new();
        let found = match self.schedule_pod(&mut state, snapshot, &pi) {
            Ok(found) => found,
            Err(ScheduleError::Unschedulable(mut u)) => {
                let (result, status) = self.run_post_filter_plugins(
                    &state,
                    &pi,
                    snapshot,
                    &u.error.diagnosis.node_to_status,
                );
                if !status.message().is_empty() {
                    u.error.diagnosis.post_filter_msg = Some(status.message());
                }
                u.post_filter = result;
                return Err(ScheduleError::Unschedulable(u));
            }
            Err(e) => return Err(e),
        };
        let host = found.suggested_host.clone();
        if let Err(e) = snapshot.assume_info(pi.clone(), &host) {
            return Err(ScheduleError::Internal(Status::error(e.to_string())));
        }
        let status = self.run_reserve_plugins(&mut state, &pi, &host);
        if !status.is_success() {
            self.run_unreserve_plugins(&mut state, &pi, &host);
            let _ = snapshot.forget(&pi.key);
            return Err(ScheduleError::Internal(status));
        }
        Ok(ScheduleResult {
            pod,
            pod_key: pi.key.clone(),
            suggested_host: host,
            evaluated_nodes: found.evaluated_nodes,
            feasible_nodes: found.feasible_nodes,
            top_nodes: found.top_nodes,
            diagnosis: found.diagnosis,
            state,
        })
    }

    /// Run the Bind plugins until one handles the pod. Mirrors `RunBindPlugins`.
    pub fn bind(&self, result: &ScheduleResult) -> Result<Binding, Status> {
        for e in &self.plugins {
            let Some(b) = e.plugin.as_bind() else {
                continue;
            };
            match b.bind(&result.state, &result.pod, &result.suggested_host) {
                Ok(binding) => return Ok(binding),
                Err(s) if s.is_skip() => continue,
                Err(s) => return Err(s.with_plugin(e.plugin.name())),
            }
        }
        Err(Status::error("no bind plugin bound the pod"))
    }

    /// Undo a decision whose binding failed: Unreserve and forget the assumed pod.
    pub fn unreserve_and_forget(&self, snapshot: &mut Snapshot, result: &mut ScheduleResult) {
        let pi = match snapshot.pod_info(&result.pod_key) {
            Some(pi) => pi.clone(),
            None => Arc::new(PodInfo::new(result.pod.clone())),
        };
        self.run_unreserve_plugins(&mut result.state, &pi, &result.suggested_host);
        let _ = snapshot.forget(&result.pod_key);
    }

    /// Find the best node without assuming anything. Mirrors `schedulePod`.
    pub fn schedule_pod(
        &mut self,
        state: &mut CycleState,
        snapshot: &Snapshot,
        pod: &PodInfo,
    ) -> Result<ScheduleResult, ScheduleError> {
        self.last_phases = CyclePhases::default();
        if snapshot.is_empty() {
            return Err(ScheduleError::NoNodesAvailable);
        }
        let filter_start = SystemTime::now();
        let found = self.find_nodes_that_fit_pod(state, snapshot, pod);
        self.last_phases.filter = Some((filter_start, SystemTime::now()));
        let (feasible, diagnosis) = found?;
        if feasible.is_empty() {
            return Err(ScheduleError::Unschedulable(Box::new(Unschedulable {
                error: FitError {
                    pod: pod.key.clone(),
                    num_all_nodes: snapshot.len(),
                    diagnosis,
                },
                post_filter: None,
            })));
        }
        let evaluated_nodes = feasible.len() + diagnosis.node_to_status.len();
        let feasible_nodes = feasible.len();
        let base = |host: String, top_nodes| ScheduleResult {
            pod: pod.pod.clone(),
            pod_key: pod.key.clone(),
            suggested_host: host,
            evaluated_nodes,
            feasible_nodes,
            top_nodes,
            diagnosis: Diagnosis::default(),
            state: CycleState::new(),
        };
        // One feasible node: no need to score (as upstream).
        if feasible.len() == 1 {
            let mut r = base(feasible[0].name().to_string(), Vec::new());
            r.diagnosis = diagnosis;
            return Ok(r);
        }
        let score_start = SystemTime::now();
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Err(e) = self.prioritize_nodes(&mut scratch, state, snapshot, pod, &feasible) {
            self.scratch = scratch;
            self.last_phases.score = Some((score_start, SystemTime::now()));
            return Err(e);
        }
        let (winner, top) = self.select_host(&scratch.totals);
        self.last_phases.score = Some((score_start, SystemTime::now()));
        let top_nodes = top
            .into_iter()
            .map(|i| NodePluginScores {
                node: feasible[i].name().to_string(),
                scores: (0..scratch.used)
                    .map(|p| (scratch.plugins[p].0, scratch.weighted(p, i)))
                    .collect(),
                total: scratch.totals[i],
            })
            .collect();
        self.scratch = scratch;
        let mut r = base(feasible[winner].name().to_string(), top_nodes);
        r.diagnosis = diagnosis;
        Ok(r)
    }

    /// Mirrors `findNodesThatFitPod`: PreFilter, then Filter over (a sample of) the nodes.
    fn find_nodes_that_fit_pod<'s>(
        &mut self,
        state: &mut CycleState,
        snapshot: &'s Snapshot,
        pod: &PodInfo,
    ) -> Result<(Vec<&'s NodeInfo>, Diagnosis), ScheduleError> {
        let mut diagnosis = Diagnosis::default();
        let (pre_res, status, plugins) = self.run_pre_filter_plugins(state, pod, snapshot);
        diagnosis.unschedulable_plugins.extend(plugins);
        if !status.is_success() {
            if !status.is_rejected() {
                return Err(ScheduleError::Internal(status));
            }
            diagnosis.pre_filter_msg = Some(status.message());
            diagnosis.add_plugin_status(&status);
            diagnosis.node_to_status.set_absent_nodes_status(status);
            return Ok((Vec::new(), diagnosis));
        }
        // A nominated node (set by an earlier preemption) is tried first.
        if let Some(nominated) = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .and_then(|n| snapshot.node(n))
        {
            if self.run_filter_plugins(state, pod, nominated).is_success() {
                return Ok((vec![nominated], diagnosis));
            }
        }
        let restricted: Option<Vec<&NodeInfo>> = pre_res
            .node_names
            .map(|names| names.iter().filter_map(|n| snapshot.node(n)).collect());
        if restricted.is_some() {
            diagnosis
                .node_to_status
                .set_absent_nodes_status(Status::unresolvable(
                    "node is filtered out by the prefilter result",
                ));
        }
        let feasible =
            self.find_nodes_that_pass_filters(state, pod, snapshot, restricted, &mut diagnosis)?;
        Ok((feasible, diagnosis))
    }

    /// Mirrors `findNodesThatPassFilters`: check nodes starting at the rotating index until
    /// `numFeasibleNodesToFind` feasible nodes are found or every node was checked.
    fn find_nodes_that_pass_filters<'s>(
        &mut self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &'s Snapshot,
        restricted: Option<Vec<&'s NodeInfo>>,
        diagnosis: &mut Diagnosis,
    ) -> Result<Vec<&'s NodeInfo>, ScheduleError> {
        let all = snapshot.nodes();
        let num_all_nodes = all.len();
        let use_all = restricted.is_none();
        let nodes: Vec<&NodeInfo> = restricted.unwrap_or_default();
        let n = if use_all { num_all_nodes } else { nodes.len() };
        if n == 0 {
            return Ok(Vec::new());
        }
        // The rotating start, wrapped once: stepping an index and wrapping it at `n` costs
        // a compare per node where `(start + i) % n` cost a division per node (measured:
        // a tenth of the cycle's own time at 10,000 nodes).
        let start = self.next_start_node_index % n;
        let node_at = |at: usize| -> &'s NodeInfo {
            if use_all {
                &all[at]
            } else {
                nodes[at]
            }
        };
        let step = |at: usize| if at + 1 == n { 0 } else { at + 1 };
        let to_find = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score, n);
        let mut feasible = Vec::with_capacity(to_find.min(n));
        if !self.has_filter_plugins() {
            let mut at = start;
            for _ in 0..to_find.min(n) {
                feasible.push(node_at(at));
                at = step(at);
            }
            self.next_start_node_index =
                (self.next_start_node_index + feasible.len()) % num_all_nodes;
            return Ok(feasible);
        }
        let filters = self.active_filters(state);
        let mut processed = 0;
        let mut at = start;
        for _ in 0..n {
            let ni = node_at(at);
            at = step(at);
            processed += 1;
            let status = run_filters(&filters, state, pod, ni);
            match status.code() {
                Code::Success => {
                    feasible.push(ni);
                    if feasible.len() >= to_find {
                        break;
                    }
                }
                Code::Error => return Err(ScheduleError::Internal(status)),
                _ => {
                    diagnosis.add_plugin_status(&status);
                    diagnosis.node_to_status.set(ni.name().to_string(), status);
                }
            }
        }
        self.next_start_node_index = (self.next_start_node_index + processed) % num_all_nodes;
        Ok(feasible)
    }

    /// Mirrors `RunPreFilterPlugins`: returns the merged node restriction, the status, and the
    /// plugins that rejected the pod or restricted the nodes.
    fn run_pre_filter_plugins(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status, Vec<&'static str>) {
        let mut result = PreFilterResult::all_nodes();
        let mut with_nodes: Vec<&'static str> = Vec::new();
        for e in &self.plugins {
            let Some(pf) = e.plugin.as_pre_filter() else {
                continue;
            };
            let name = e.plugin.name();
            let (r, s) = pf.pre_filter(state, pod, snapshot);
            if s.is_skip() {
                state.skip_filter_plugins.insert(name);
                continue;
            }
            if !s.is_success() {
                let s = s.with_plugin(name);
                if s.is_rejected() {
                    return (result, s, vec![name]);
                }
                return (
                    result,
                    Status::error(format!(
                        "running PreFilter plugin {name:?}: {}",
                        s.message()
                    ))
                    .with_plugin(name),
                    Vec::new(),
                );
            }
            let r = r.unwrap_or_default();
            if r.node_names.is_some() {
                with_nodes.push(name);
            }
            result = result.merge(r);
            if result.node_names.as_ref().is_some_and(|n| n.is_empty()) {
                let msg = if with_nodes.len() == 1 {
                    format!("node(s) didn't satisfy plugin {}", with_nodes[0])
                } else {
                    format!(
                        "node(s) didn't satisfy plugin(s) [{}] simultaneously",
                        with_nodes.join(" ")
                    )
                };
                return (result, Status::unresolvable(msg), with_nodes);
            }
        }
        (result, Status::success(), Vec::new())
    }

    /// Mirrors `RunFilterPlugins`: the first rejecting plugin's status (with its name).
    pub fn run_filter_plugins(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        run_filters(&self.active_filters(state), state, pod, node)
    }

    /// The Filter plugins of this cycle, in order: those whose PreFilter did not skip them.
    /// Worked out once per cycle, not once per node.
    fn active_filters(&self, state: &CycleState) -> Vec<(&'static str, &dyn FilterPlugin)> {
        self.plugins
            .iter()
            .filter_map(|e| Some((e.plugin.name(), e.plugin.as_filter()?)))
            .filter(|(name, _)| !state.skip_filter_plugins.contains(name))
            .collect()
    }

    fn run_post_filter_plugins(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        statuses: &NodeToStatus,
    ) -> (Option<PostFilterResult>, Status) {
        let cx = PostFilterContext {
            framework: self,
            state,
            pod,
            snapshot,
            statuses,
        };
        let mut last = Status::unschedulable("");
        let mut reasons = Vec::new();
        for e in &self.plugins {
            let Some(pf) = e.plugin.as_post_filter() else {
                continue;
            };
            let (r, s) = pf.post_filter(&cx);
            if s.is_success() {
                return (r, s);
            }
            if !s.is_rejected() {
                return (r, s.with_plugin(e.plugin.name()));
            }
            reasons.extend(s.reasons().iter().cloned());
            last = s;
        }
        if reasons.is_empty() {
            return (None, Status::code_only(last.code()));
        }
        (None, Status::with_reasons(last.code(), reasons))
    }

    /// Mirrors `prioritizeNodes` + `RunPreScorePlugins` + `RunScorePlugins`: into `out`, the
    /// weighted total per feasible node and each Score plugin's normalized scores (weighted
    /// when read, [`ScoreScratch::weighted`]).
    fn prioritize_nodes(
        &self,
        out: &mut ScoreScratch,
        state: &mut CycleState,
        snapshot: &Snapshot,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
    ) -> Result<(), ScheduleError> {
        out.used = 0;
        out.totals.clear();
        if !self.has_score_plugins() {
            out.totals.resize(nodes.len(), 1);
            return Ok(());
        }
        for e in &self.plugins {
            let Some(ps) = e.plugin.as_pre_score() else {
                continue;
            };
            let name = e.plugin.name();
            let s = ps.pre_score(state, pod, nodes, snapshot);
            if s.is_skip() {
                state.skip_score_plugins.insert(name);
            } else if !s.is_success() {
                return Err(ScheduleError::Internal(s.with_plugin(name)));
            }
        }
        out.totals.resize(nodes.len(), 0);
        for e in &self.plugins {
            let Some(sp) = e.plugin.as_score() else {
                continue;
            };
            let name = e.plugin.name();
            if state.skip_score_plugins.contains(name) {
                continue;
            }
            if out.used == out.plugins.len() {
                out.plugins
                    .push((name, e.weight, Vec::with_capacity(nodes.len())));
            }
            let slot = &mut out.plugins[out.used];
            out.used += 1;
            slot.0 = name;
            slot.1 = e.weight;
            let scores = &mut slot.2;
            scores.clear();
            sp.score_nodes(state, pod, nodes, snapshot, scores)
                .map_err(|s| ScheduleError::Internal(s.with_plugin(name)))?;
            let s = sp.normalize_score(state, pod, scores);
            if !s.is_success() {
                return Err(ScheduleError::Internal(s.with_plugin(name)));
            }
            for ns in scores.iter() {
                if !(MIN_NODE_SCORE..=MAX_NODE_SCORE).contains(&ns.score) {
                    return Err(ScheduleError::Internal(
                        Status::error(format!(
                            "plugin {name:?} returns an invalid score {}, it should in the range of [{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after normalizing",
                            ns.score
                        ))
                        .with_plugin(name),
                    ));
                }
                out.totals[ns.index] += ns.score * e.weight;
            }
        }
        Ok(())
    }

    /// Mirrors `selectHost`: the highest total wins; ties are broken uniformly at random by
    /// reservoir sampling. Returns the winner and the indices of the top nodes (winner first).
    fn select_host(&mut self, totals: &[i64]) -> (usize, Vec<usize>) {
        let best = totals.iter().copied().max().unwrap_or(0);
        let mut winner = 0;
        let mut ties = 0u32;
        for (i, &t) in totals.iter().enumerate() {
            if t == best {
                ties += 1;
                // Replace the candidate with probability 1/ties.
                if self.rng.random_range(0..ties) == 0 {
                    winner = i;
                }
            }
        }
        // The runners-up for the trace (highest total, then lowest index): one pass keeping
        // a sorted list of at most `rest`, no copy of all the indices.
        let rest = self.top_n.max(1) - 1;
        let mut top = Vec::with_capacity(rest + 1);
        top.push(winner);
        if rest > 0 {
            let mut others: Vec<usize> = Vec::with_capacity(rest + 1);
            for (i, &t) in totals.iter().enumerate() {
                if i == winner {
                    continue;
                }
                if others.len() == rest && others.last().is_some_and(|&w| totals[w] >= t) {
                    continue; // not better than the worst kept (ties keep the lower index)
                }
                let at = others.partition_point(|&o| totals[o] >= t);
                others.insert(at, i);
                others.truncate(rest);
            }
            top.extend(others);
        }
        (winner, top)
    }

    fn run_reserve_plugins(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        for e in &self.plugins {
            let Some(r) = e.plugin.as_reserve() else {
                continue;
            };
            let s = r.reserve(state, pod, node);
            if !s.is_success() {
                return s.with_plugin(e.plugin.name());
            }
        }
        Status::success()
    }

    fn run_unreserve_plugins(&self, state: &mut CycleState, pod: &PodInfo, node: &str) {
        for e in self.plugins.iter().rev() {
            if let Some(r) = e.plugin.as_reserve() {
                r.unreserve(state, pod, node);
            }
        }
    }
}

/// Run `filters` on one node: the first rejecting plugin's status (with its name); a Skip
/// from Filter counts as success. Mirrors `RunFilterPlugins`.
fn run_filters(
    filters: &[(&'static str, &dyn FilterPlugin)],
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Status {
    for (name, f) in filters {
        if f.passes_fast(state, pod, node) {
            continue;
        }
        let s = f.filter(state, pod, node);
        if !s.is_success() {
            if !s.is_rejected() && s.code() != Code::Error {
                continue;
            }
            return s.with_plugin(name);
        }
    }
    Status::success()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;
    use crate::scheduler::plugins::{names, new_plugin};
    use crate::scheduler::profile::{default_profile, PluginConfig};
    use crate::scheduler::snapshot::testing::*;

    const GI: i64 = 1 << 30;

    fn default_framework(seed: u64) -> Framework {
        let mut fw = Framework::new(&default_profile(), 0).unwrap();
        fw.seed(seed);
        fw
    }

    fn fit_error(r: Result<ScheduleResult, ScheduleError>) -> (FitError, Option<PostFilterResult>) {
        match r {
            Err(ScheduleError::Unschedulable(u)) => (u.error, u.post_filter),
            other => panic!("expected a FitError, got {other:?}"),
        }
    }

    /// Filtering starts where the previous cycle stopped and wraps around the node list
    /// (upstream's `nextStartNodeIndex`): 150 nodes, 100 to find per cycle.
    #[test]
    fn filtering_starts_at_the_rotating_index_and_wraps() {
        let mut snap = Snapshot::new();
        for i in 0..150 {
            snap.add_node(arc(node(&format!("n{i:03}"), 4000, 8 * GI)));
        }
        let order: Vec<String> = snap.nodes().iter().map(|n| n.name().to_string()).collect();
        let mut fw = default_framework(1);
        let p = PodInfo::new(arc(pod("web", 100, 0)));
        let cases = [
            ("first cycle: from the start", 0, 100),
            ("second: from 100, wrapping after the last node", 100, 50),
            ("third: from 200 mod 150 = 50", 50, 100),
        ];
        for (name, first, contiguous) in cases {
            let (found, _) = fw
                .find_nodes_that_fit_pod(&mut CycleState::new(), &snap, &p)
                .unwrap();
            let names: Vec<&str> = found.iter().map(|n| n.name()).collect();
            assert_eq!(names.len(), 100, "{name}");
            let want: Vec<&str> = (0..100)
                .map(|i| order[(first + i) % 150].as_str())
                .collect();
            assert_eq!(names, want, "{name}");
            assert_eq!(
                names[contiguous - 1],
                order[first + contiguous - 1],
                "{name}"
            );
        }
    }

    /// Upstream TestNumFeasibleNodesToFind cases, plus the issue's numbers.
    #[test]
    fn percentage_of_nodes_to_score() {
        let cases = [
            (0, 10, 10), // fewer than 100 nodes: all
            (40, 10, 10),
            (0, 100, 100),  // 100 nodes: 50% = 50 → at least 100
            (0, 1000, 420), // 50 - 1000/125 = 42%
            (40, 1000, 400),
            (0, 5000, 500), // 50 - 40 = 10%
            (0, 6000, 300), // 50 - 48 = 2% → 5%
            (40, 6000, 2400),
            (0, 10_000, 500),  // → 5%
            (1, 1000, 100),    // never fewer than 100
            (150, 1000, 1000), // above 100%: 100%
        ];
        for (pct, nodes, want) in cases {
            assert_eq!(
                num_feasible_nodes_to_find(pct, nodes),
                want,
                "{pct}% of {nodes}"
            );
        }
    }

    /// The issue's example, exactly: one tainted control-plane node and two workers too
    /// small for the pod (it asks for more than their whole allocatable, so preemption
    /// cannot help on any node).
    #[test]
    fn fit_error_message_matches_upstream_format() {
        let mut snap = Snapshot::new();
        snap.add_node(arc(with_taint(
            node("control-plane", 4000, 8 * GI),
            "node-role.kubernetes.io/control-plane",
            "",
            "NoSchedule",
        )));
        snap.add_node(arc(node("worker-1", 1000, 8 * GI)));
        snap.add_node(arc(node("worker-2", 1000, 8 * GI)));
        let mut fw = default_framework(1);
        let (err, post) = fit_error(fw.schedule(&mut snap, arc(pod("web", 2000, 0))));
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
             2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        assert_eq!(post, None);
        assert_eq!(
            err.diagnosis.unschedulable_plugins,
            [names::TAINT_TOLERATION, names::NODE_RESOURCES_FIT]
                .into_iter()
                .collect()
        );
        assert!(
            snap.node("worker-1").unwrap().pods.is_empty(),
            "nothing assumed"
        );
    }

    /// When the workers could host the pod but are full of pods of the same priority,
    /// preemption finds no victims (upstream's second common message).
    #[test]
    fn fit_error_when_no_preemption_victims() {
        let mut snap = Snapshot::new();
        snap.add_node(arc(with_taint(
            node("cp", 4000, 8 * GI),
            "node-role.kubernetes.io/control-plane",
            "",
            "NoSchedule",
        )));
        for w in ["w1", "w2"] {
            snap.add_node(arc(node(w, 2000, 8 * GI)));
            snap.add_pod(arc(on(pod(&format!("busy-{w}"), 1500, 0), w)));
        }
        let mut fw = default_framework(1);
        let (err, _) = fit_error(fw.schedule(&mut snap, arc(pod("web", 1000, 0))));
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
             2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
             2 No preemption victims found for incoming pod."
        );
    }

    /// A higher-priority pod gets a nominated node and the fewest, least important victims.
    #[test]
    fn preemption_nominates_a_node_with_victims() {
        let mut snap = Snapshot::new();
        snap.add_node(arc(node("w1", 2000, 8 * GI)));
        snap.add_node(arc(node("w2", 2000, 8 * GI)));
        let with_prio = |p: k8s_openapi::api::core::v1::Pod, prio: i32| {
            let mut p = p;
            p.spec.as_mut().unwrap().priority = Some(prio);
            p
        };
        // w1: two low pods (one is enough to evict); w2: one pod of priority 50.
        snap.add_pod(arc(on(with_prio(pod("low-a", 800, 0), 0), "w1")));
        snap.add_pod(arc(on(with_prio(pod("low-b", 800, 0), 0), "w1")));
        snap.add_pod(arc(on(with_prio(pod("mid", 1500, 0), 50), "w2")));
        let mut fw = default_framework(1);
        let (_, post) = fit_error(fw.schedule(&mut snap, arc(with_prio(pod("vip", 1000, 0), 100))));
        let post = post.expect("a preemption candidate");
        assert_eq!(post.nominated_node_name.as_deref(), Some("w1"));
        assert_eq!(post.victims.len(), 1);
        // preemptionPolicy: Never → not eligible.
        let mut never = with_prio(pod("vip2", 1000, 0), 100);
        never.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        let (err, post) = fit_error(fw.schedule(&mut snap, arc(never)));
        assert_eq!(post, None);
        assert!(
            err.to_string()
                .ends_with(" preemption: not eligible due to preemptionPolicy=Never."),
            "{err}"
        );
    }

    /// Assume makes back-to-back decisions see each other: 500 pods onto 20 small nodes
    /// never overcommit a node, and exactly the capacity is used.
    #[test]
    fn assume_prevents_double_booking() {
        let mut snap = Snapshot::new();
        for i in 0..20 {
            snap.add_node(arc(node(&format!("n{i:02}"), 1000, 4 * GI)));
        }
        let mut fw = default_framework(7);
        let mut placed = 0;
        let mut failed = 0;
        for i in 0..500 {
            match fw.schedule(&mut snap, arc(pod(&format!("p{i}"), 150, 100 << 20))) {
                Ok(r) => {
                    assert_eq!(
                        fw.bind(&r).unwrap().target.name.as_deref(),
                        Some(r.suggested_host.as_str())
                    );
                    placed += 1;
                }
                Err(ScheduleError::Unschedulable(u)) => {
                    let error = u.error;
                    assert!(
                        error
                            .to_string()
                            .starts_with("0/20 nodes are available: 20 Insufficient cpu."),
                        "{error}"
                    );
                    failed += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        for ni in snap.nodes() {
            assert!(
                ni.requested.milli_cpu <= ni.allocatable.milli_cpu,
                "{} overcommitted",
                ni.name()
            );
            assert_eq!(ni.pods.len(), 6, "{} holds 6 × 150m", ni.name());
        }
        assert_eq!((placed, failed), (120, 380));
    }

    /// The classic decision sequence: 3 replicas of a ReplicaSet over 2 equal nodes end up
    /// 2 + 1 (LeastAllocated, BalancedAllocation and the default spreading all prefer the
    /// emptier node), whatever the tie-break.
    #[test]
    fn three_replicas_over_two_equal_nodes_end_up_two_plus_one() {
        for seed in 0..20 {
            let mut snap = Snapshot::new();
            snap.add_node(arc(node("node-1", 4000, 8 * GI)));
            snap.add_node(arc(node("node-2", 4000, 8 * GI)));
            let mut fw = default_framework(seed);
            let mut per_node: HashMap<String, usize> = HashMap::new();
            let mut first_two = Vec::new();
            for i in 0..3 {
                let mut p =
                    with_pod_labels(pod(&format!("web-{i}"), 500, 256 << 20), &[("app", "web")]);
                p.metadata.owner_references = Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "web-7d9f".into(),
                    uid: "rs-uid".into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]);
                let r = fw.schedule(&mut snap, arc(p)).unwrap();
                if i < 2 {
                    first_two.push(r.suggested_host.clone());
                }
                *per_node.entry(r.suggested_host).or_default() += 1;
            }
            assert_ne!(
                first_two[0], first_two[1],
                "seed {seed}: the second replica goes to the empty node"
            );
            let mut counts: Vec<usize> = per_node.values().copied().collect();
            counts.sort();
            assert_eq!(counts, vec![1, 2], "seed {seed}");
        }
    }

    /// Scores are normalized, multiplied by the plugin weight and summed; the trace keeps
    /// the per-plugin scores of the top nodes, the winner first.
    #[test]
    #[allow(clippy::type_complexity)]
    fn weighted_scores_and_top_nodes() {
        let cfg = PluginConfig::default();
        let plugin = |n: &str| new_plugin(n, &cfg).unwrap();
        let mut fw = Framework::from_plugins(
            "test",
            vec![
                (plugin(names::TAINT_TOLERATION), 3),
                (plugin(names::NODE_RESOURCES_FIT), 1),
            ],
            0,
        );
        fw.seed(3);
        let mut snap = Snapshot::new();
        // a: PreferNoSchedule taint, empty; b: no taint, half full; c: no taint, empty.
        snap.add_node(arc(with_taint(
            node("a", 2000, 4 * GI),
            "k",
            "v",
            "PreferNoSchedule",
        )));
        snap.add_node(arc(node("b", 2000, 4 * GI)));
        snap.add_pod(arc(on(pod("busy", 1000, 2 * GI), "b")));
        snap.add_node(arc(node("c", 2000, 4 * GI)));
        let r = fw.schedule(&mut snap, arc(pod("p", 1000, GI))).unwrap();
        assert_eq!(r.suggested_host, "c");
        assert_eq!(r.feasible_nodes, 3);
        let top: Vec<(&str, Vec<(&str, i64)>, i64)> = r
            .top_nodes
            .iter()
            .map(|n| (n.node.as_str(), n.scores.clone(), n.total))
            .collect();
        // TaintToleration: a has 1 intolerable taint → 0, others 100 (× 3).
        // LeastAllocated: c (50 + 75)/2 = 62; a 62; b (0 + 25)/2 = 12.
        assert_eq!(
            top,
            vec![
                (
                    "c",
                    vec![("TaintToleration", 300), ("NodeResourcesFit", 62)],
                    362
                ),
                (
                    "b",
                    vec![("TaintToleration", 300), ("NodeResourcesFit", 12)],
                    312
                ),
                (
                    "a",
                    vec![("TaintToleration", 0), ("NodeResourcesFit", 62)],
                    62
                ),
            ]
        );
    }

    /// Ties are broken at random over all tied nodes (reservoir sampling).
    #[test]
    fn ties_are_broken_randomly() {
        let mut seen = BTreeSet::new();
        for seed in 0..40 {
            let mut snap = Snapshot::new();
            for n in ["a", "b", "c"] {
                snap.add_node(arc(node(n, 1000, GI)));
            }
            let mut fw = default_framework(seed);
            let r = fw.schedule(&mut snap, arc(pod("p", 100, 0))).unwrap();
            assert_eq!(r.top_nodes[0].node, r.suggested_host);
            seen.insert(r.suggested_host);
        }
        assert_eq!(seen.len(), 3, "every tied node wins sometimes: {seen:?}");
    }

    /// With 1,000 nodes only 420 are checked per pod (adaptive percentage), starting where
    /// the previous pod stopped, so successive pods see different nodes.
    #[test]
    fn filter_samples_nodes_from_a_rotating_start() {
        let mut snap = Snapshot::new();
        for i in 0..1000 {
            snap.add_node(arc(node(&format!("n{i:04}"), 4000, 8 * GI)));
        }
        let mut fw = default_framework(1);
        let r1 = fw.schedule(&mut snap, arc(pod("p1", 100, 0))).unwrap();
        assert_eq!((r1.evaluated_nodes, r1.feasible_nodes), (420, 420));
        assert_eq!(fw.next_start_node_index, 420);
        let r2 = fw.schedule(&mut snap, arc(pod("p2", 100, 0))).unwrap();
        assert_eq!(r2.evaluated_nodes, 420);
        assert_eq!(fw.next_start_node_index, 840);
        let idx = snap.node_index(&r2.suggested_host).unwrap();
        assert!(
            (420..840).contains(&idx),
            "p2 was placed among the second sample ({idx})"
        );
        fw.schedule(&mut snap, arc(pod("p3", 100, 0))).unwrap();
        assert_eq!(fw.next_start_node_index, 260, "wraps around");
    }

    /// A PreFilter restriction (spec.nodeName) marks the other nodes as filtered out (and
    /// n2 is too small for the pod even when empty, so preemption cannot help anywhere).
    #[test]
    fn pre_filter_result_restricts_nodes() {
        let mut snap = Snapshot::new();
        snap.add_node(arc(node("n1", 1000, GI)));
        snap.add_node(arc(node("n2", 100, GI)));
        snap.add_node(arc(node("n3", 1000, GI)));
        let mut fw = default_framework(1);
        let (err, _) = fit_error(fw.schedule(&mut snap, arc(on(pod("p", 500, 0), "n2"))));
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node is filtered out by the prefilter result. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        let r = fw
            .schedule(&mut snap, arc(on(pod("q", 500, 0), "n3")))
            .unwrap();
        assert_eq!(r.suggested_host, "n3");
    }

    /// No nodes at all is its own error; a failed bind is undone by unreserve_and_forget.
    #[test]
    fn no_nodes_and_forget_after_failed_bind() {
        let mut snap = Snapshot::new();
        let mut fw = default_framework(1);
        assert!(matches!(
            fw.schedule(&mut snap, arc(pod("p", 1, 0))),
            Err(ScheduleError::NoNodesAvailable)
        ));
        snap.add_node(arc(node("n1", 1000, GI)));
        let mut r = fw.schedule(&mut snap, arc(pod("p", 600, 0))).unwrap();
        assert!(snap.is_assumed("default/p"));
        fw.unreserve_and_forget(&mut snap, &mut r);
        assert!(!snap.is_assumed("default/p"));
        assert_eq!(snap.node("n1").unwrap().requested.milli_cpu, 0);
    }

    /// The diagnosis summary is bounded for span events but counts every node.
    #[test]
    fn diagnosis_summary_is_bounded() {
        let mut snap = Snapshot::new();
        for i in 0..50 {
            snap.add_node(arc(node(&format!("n{i:02}"), 100, GI)));
        }
        let mut fw = default_framework(1);
        let (err, _) = fit_error(fw.schedule(&mut snap, arc(pod("p", 500, 0))));
        let s = err.diagnosis.summary(5, err.num_all_nodes);
        assert_eq!(s.rejected_nodes.len(), 5);
        assert_eq!(s.rejected_total, 50);
        assert_eq!(
            s.rejected_nodes[0],
            (
                "n00".to_string(),
                "NodeResourcesFit",
                "Insufficient cpu".to_string()
            )
        );
        assert_eq!(s.reason_counts.get("Insufficient cpu"), Some(&50));
    }
}
