//! Scheduler profiles: which plugins run, their Score weights and arguments, as a
//! `KubeSchedulerConfiguration` profile does (pkg/scheduler/apis/config/v1/default_plugins.go
//! `getDefaultPlugins`, `mergePlugins`; plugin args in pkg/scheduler/apis/config/types_pluginargs.go).
//!
//! Differences from upstream, on purpose: plugins are enabled or disabled for all their
//! extension points at once (upstream's `multiPoint`; per-extension-point sets are not
//! supported), and the queue-sort plugin is fixed (PrioritySort, in [`super::queue`]).
//!
//! This is the `[scheduler]` section of the configuration; `config/default.toml` has every
//! key with a comment.

use serde::Deserialize;

use super::framework::WeightedPlugin;
use super::plugins::{self, names};

/// Errors building a framework from a profile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    /// A plugin name no registry entry has.
    #[error("unknown plugin {0:?}")]
    UnknownPlugin(String),
    /// A Score weight outside 1..=100.
    #[error("plugin {plugin:?}: weight {weight} must be between 1 and 100")]
    InvalidWeight { plugin: String, weight: i64 },
    /// Invalid plugin arguments (message says which).
    #[error("invalid plugin arguments: {0}")]
    InvalidArgs(String),
    /// Two profiles with the same `scheduler_name`.
    #[error("duplicate profile {0:?}")]
    DuplicateProfile(String),
}

/// `[scheduler]`: global settings and the profiles.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Percentage of nodes to find feasible before scoring (1–100); 0 = adaptive
    /// (50% − nodes/125, at least 5%, never fewer than 100 nodes).
    pub percentage_of_nodes_to_score: u32,
    /// Backoff after the first failed attempt, in seconds (doubles per attempt).
    pub pod_initial_backoff_seconds: u64,
    /// Longest backoff, in seconds.
    pub pod_max_backoff_seconds: u64,
    /// Unschedulable pods older than this go back to the active queue even without a
    /// cluster event (`podMaxInUnschedulablePodsDuration`), in seconds.
    pub pod_max_in_unschedulable_pods_seconds: u64,
    /// One framework per profile; a pod picks its profile by `spec.schedulerName`.
    pub profiles: Vec<SchedulerProfile>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            percentage_of_nodes_to_score: 0,
            pod_initial_backoff_seconds: 1,
            pod_max_backoff_seconds: 10,
            pod_max_in_unschedulable_pods_seconds: 300,
            profiles: vec![default_profile()],
        }
    }
}

impl SchedulerConfig {
    /// Check every profile builds and names are unique.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let mut seen = std::collections::HashSet::new();
        for p in &self.profiles {
            if !seen.insert(p.scheduler_name.as_str()) {
                return Err(ProfileError::DuplicateProfile(p.scheduler_name.clone()));
            }
            p.build_plugins()?;
        }
        Ok(())
    }
}

/// One profile. Mirrors `KubeSchedulerProfile`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerProfile {
    /// Pods with this `spec.schedulerName` use the profile.
    pub scheduler_name: String,
    /// Changes to the default plugin set.
    pub plugins: PluginSet,
    /// Arguments of plugins that take any.
    pub plugin_config: PluginConfig,
    /// Overrides the global `percentage_of_nodes_to_score` for this profile.
    pub percentage_of_nodes_to_score: Option<u32>,
}

impl Default for SchedulerProfile {
    fn default() -> Self {
        default_profile()
    }
}

/// Enabled and disabled plugins, merged with the defaults as upstream `mergePluginSet`:
/// defaults minus `disabled` (`"*"` disables every default), a default that is also in
/// `enabled` takes the enabled entry (its weight) at the default's position, then the other
/// enabled plugins in order.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSet {
    pub enabled: Vec<PluginRef>,
    pub disabled: Vec<String>,
}

/// A plugin by name, with an optional Score weight.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    /// Score weight (1–100). Unset: the default weight for a default plugin, else 1.
    #[serde(default)]
    pub weight: Option<i64>,
}

/// Plugin arguments (upstream `pluginConfig`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    pub node_resources_fit: NodeResourcesFitArgs,
    pub node_resources_balanced_allocation: BalancedAllocationArgs,
    pub inter_pod_affinity: InterPodAffinityArgs,
    pub pod_topology_spread: PodTopologySpreadArgs,
}

/// `NodeResourcesFitArgs`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeResourcesFitArgs {
    pub scoring_strategy: ScoringStrategy,
}

/// How NodeResourcesFit scores nodes. Mirrors `ScoringStrategy`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringStrategy {
    #[serde(rename = "type")]
    pub kind: ScoringStrategyType,
    /// Resources scored and their weights (default cpu 1, memory 1).
    pub resources: Vec<ResourceSpec>,
    /// For RequestedToCapacityRatio: the utilization → score function.
    pub shape: Vec<UtilizationShapePoint>,
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        ScoringStrategy {
            kind: ScoringStrategyType::LeastAllocated,
            resources: default_resources(),
            shape: Vec::new(),
        }
    }
}

/// `ScoringStrategyType`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum ScoringStrategyType {
    /// Prefer nodes with the most free resources (spreads load). The default.
    #[default]
    LeastAllocated,
    /// Prefer the fullest nodes (bin packing).
    MostAllocated,
    /// Score by a piecewise-linear function of utilization (`shape`).
    RequestedToCapacityRatio,
}

/// A scored resource and its weight.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    pub name: String,
    pub weight: i64,
}

/// One point of the RequestedToCapacityRatio function: utilization 0–100 → score 0–10.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UtilizationShapePoint {
    pub utilization: i64,
    pub score: i64,
}

/// `NodeResourcesBalancedAllocationArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BalancedAllocationArgs {
    pub resources: Vec<ResourceSpec>,
}

impl Default for BalancedAllocationArgs {
    fn default() -> Self {
        BalancedAllocationArgs {
            resources: default_resources(),
        }
    }
}

/// `InterPodAffinityArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InterPodAffinityArgs {
    /// Score weight of existing pods' *required* affinity terms that the incoming pod
    /// matches (0–100, default 1).
    pub hard_pod_affinity_weight: i64,
}

impl Default for InterPodAffinityArgs {
    fn default() -> Self {
        InterPodAffinityArgs {
            hard_pod_affinity_weight: 1,
        }
    }
}

/// `PodTopologySpreadArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PodTopologySpreadArgs {
    /// `System`: spread over hostname (maxSkew 3) and zone (maxSkew 5), ScheduleAnyway, for
    /// pods without constraints. `List`: use `default_constraints`.
    pub defaulting_type: DefaultingType,
    pub default_constraints: Vec<DefaultConstraint>,
}

impl Default for PodTopologySpreadArgs {
    fn default() -> Self {
        PodTopologySpreadArgs {
            defaulting_type: DefaultingType::System,
            default_constraints: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum DefaultingType {
    #[default]
    System,
    List,
}

/// A default spreading constraint (its selector comes from the pod's owner).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DefaultConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    /// `DoNotSchedule` or `ScheduleAnyway`.
    pub when_unsatisfiable: String,
}

fn default_resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec {
            name: "cpu".into(),
            weight: 1,
        },
        ResourceSpec {
            name: "memory".into(),
            weight: 1,
        },
    ]
}

/// The default plugins, in upstream's order, with their default Score weights (0 for
/// plugins without Score). Mirrors `getDefaultPlugins` (volume, DRA and scheduling-gates
/// plugins are not modelled; PrioritySort is the queue's fixed order).
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    (names::NODE_UNSCHEDULABLE, 0),
    (names::NODE_NAME, 0),
    (names::TAINT_TOLERATION, 3),
    (names::NODE_AFFINITY, 2),
    (names::NODE_PORTS, 0),
    (names::NODE_RESOURCES_FIT, 1),
    (names::POD_TOPOLOGY_SPREAD, 2),
    (names::INTER_POD_AFFINITY, 2),
    (names::DEFAULT_PREEMPTION, 0),
    (names::NODE_RESOURCES_BALANCED_ALLOCATION, 1),
    (names::IMAGE_LOCALITY, 1),
    (names::DEFAULT_BINDER, 0),
];

/// The `default-scheduler` profile with upstream's defaults.
pub fn default_profile() -> SchedulerProfile {
    SchedulerProfile {
        scheduler_name: "default-scheduler".into(),
        plugins: PluginSet::default(),
        plugin_config: PluginConfig::default(),
        percentage_of_nodes_to_score: None,
    }
}

impl SchedulerProfile {
    /// The enabled plugins in run order with their weights (see [`PluginSet`]).
    pub fn enabled_plugins(&self) -> Result<Vec<(String, i64)>, ProfileError> {
        let disabled_all = self.plugins.disabled.iter().any(|d| d == "*");
        let mut used = vec![false; self.plugins.enabled.len()];
        let mut out = Vec::new();
        for (name, default_weight) in DEFAULT_PLUGINS {
            if disabled_all || self.plugins.disabled.iter().any(|d| d == name) {
                continue;
            }
            let mut weight = *default_weight;
            if let Some(i) = self.plugins.enabled.iter().position(|e| e.name == *name) {
                used[i] = true;
                if let Some(w) = self.plugins.enabled[i].weight {
                    weight = w;
                }
            }
            out.push((name.to_string(), weight));
        }
        for (i, e) in self.plugins.enabled.iter().enumerate() {
            if !used[i] && !out.iter().any(|(n, _)| *n == e.name) {
                out.push((e.name.clone(), e.weight.unwrap_or(1)));
            }
        }
        for (name, weight) in &mut out {
            if *weight == 0 {
                *weight = 1; // upstream: an unset score weight is 1
            }
            if !(1..=100).contains(weight) {
                return Err(ProfileError::InvalidWeight {
                    plugin: name.clone(),
                    weight: *weight,
                });
            }
        }
        Ok(out)
    }

    /// Instantiate the enabled plugins with this profile's arguments.
    pub fn build_plugins(&self) -> Result<Vec<WeightedPlugin>, ProfileError> {
        self.validate_args()?;
        self.enabled_plugins()?
            .into_iter()
            .map(|(name, weight)| {
                plugins::new_plugin(&name, &self.plugin_config)
                    .map(|p| (p, weight))
                    .ok_or(ProfileError::UnknownPlugin(name))
            })
            .collect()
    }

    fn validate_args(&self) -> Result<(), ProfileError> {
        let bad = |m: String| Err(ProfileError::InvalidArgs(m));
        let fit = &self.plugin_config.node_resources_fit.scoring_strategy;
        let check_resources = |what: &str, rs: &[ResourceSpec]| -> Result<(), ProfileError> {
            for r in rs {
                if !(1..=100).contains(&r.weight) {
                    return bad(format!(
                        "{what}: resource {:?} weight {} must be 1..100",
                        r.name, r.weight
                    ));
                }
            }
            Ok(())
        };
        check_resources("NodeResourcesFit", &fit.resources)?;
        check_resources(
            "NodeResourcesBalancedAllocation",
            &self
                .plugin_config
                .node_resources_balanced_allocation
                .resources,
        )?;
        if fit.kind == ScoringStrategyType::RequestedToCapacityRatio {
            if fit.shape.is_empty() {
                return bad("RequestedToCapacityRatio needs at least one shape point".into());
            }
            for (i, p) in fit.shape.iter().enumerate() {
                if !(0..=100).contains(&p.utilization) || !(0..=10).contains(&p.score) {
                    return bad(format!(
                        "shape point {i}: utilization must be 0..100 and score 0..10"
                    ));
                }
                if i > 0 && p.utilization <= fit.shape[i - 1].utilization {
                    return bad("shape utilization values must be strictly increasing".into());
                }
            }
        }
        let w = self
            .plugin_config
            .inter_pod_affinity
            .hard_pod_affinity_weight;
        if !(0..=100).contains(&w) {
            return bad(format!(
                "InterPodAffinity hard_pod_affinity_weight {w} must be 0..100"
            ));
        }
        for c in &self.plugin_config.pod_topology_spread.default_constraints {
            if c.max_skew <= 0 {
                return bad(format!(
                    "PodTopologySpread: max_skew {} must be > 0",
                    c.max_skew
                ));
            }
            if !matches!(
                c.when_unsatisfiable.as_str(),
                "DoNotSchedule" | "ScheduleAnyway"
            ) {
                return bad(format!(
                    "PodTopologySpread: when_unsatisfiable {:?}",
                    c.when_unsatisfiable
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default profile enables upstream's plugins with upstream's weights.
    #[test]
    fn default_profile_matches_upstream_weights() {
        let p = default_profile();
        let enabled = p.enabled_plugins().unwrap();
        let weight = |n: &str| enabled.iter().find(|(x, _)| x == n).map(|(_, w)| *w);
        assert_eq!(weight("TaintToleration"), Some(3));
        assert_eq!(weight("NodeAffinity"), Some(2));
        assert_eq!(weight("NodeResourcesFit"), Some(1));
        assert_eq!(weight("NodeResourcesBalancedAllocation"), Some(1));
        assert_eq!(weight("ImageLocality"), Some(1));
        assert_eq!(weight("InterPodAffinity"), Some(2));
        assert_eq!(weight("PodTopologySpread"), Some(2));
        assert_eq!(enabled.len(), DEFAULT_PLUGINS.len());
        assert_eq!(p.build_plugins().unwrap().len(), DEFAULT_PLUGINS.len());
    }

    /// Profiles from TOML: disable, re-weight in place, add, strategy args.
    #[test]
    fn profile_from_toml_merges_with_defaults() {
        let cfg: SchedulerConfig = toml::from_str(
            r#"
            percentage_of_nodes_to_score = 20
            [[profiles]]
            scheduler_name = "bin-packing"
            plugins.disabled = ["ImageLocality", "NodeResourcesBalancedAllocation"]
            plugins.enabled = [{ name = "NodeResourcesFit", weight = 5 }]
            [profiles.plugin_config.node_resources_fit.scoring_strategy]
            type = "MostAllocated"
            resources = [{ name = "cpu", weight = 2 }, { name = "memory", weight = 1 }]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.percentage_of_nodes_to_score, 20);
        assert_eq!(cfg.pod_max_backoff_seconds, 10);
        let p = &cfg.profiles[0];
        let enabled = p.enabled_plugins().unwrap();
        let names: Vec<&str> = enabled.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!names.contains(&"ImageLocality"));
        let fit_pos = names.iter().position(|n| *n == "NodeResourcesFit").unwrap();
        assert_eq!(fit_pos, 5, "re-weighted default keeps its position");
        assert_eq!(enabled[fit_pos].1, 5);
        assert_eq!(
            p.plugin_config.node_resources_fit.scoring_strategy.kind,
            ScoringStrategyType::MostAllocated
        );
        cfg.validate().unwrap();
    }

    /// The `[scheduler]` section of `config/default.toml` parses and says exactly the defaults.
    #[test]
    fn default_toml_section_is_the_default() {
        #[derive(Deserialize)]
        struct File {
            scheduler: SchedulerConfig,
        }
        let f: File = toml::from_str(include_str!("../../config/default.toml")).unwrap();
        assert_eq!(f.scheduler, SchedulerConfig::default());
    }

    /// Invalid profiles are rejected with a reason.
    #[test]
    fn invalid_profiles_are_rejected() {
        let mut p = default_profile();
        p.plugins.enabled.push(PluginRef {
            name: "NoSuchPlugin".into(),
            weight: None,
        });
        assert_eq!(
            p.build_plugins().err(),
            Some(ProfileError::UnknownPlugin("NoSuchPlugin".into()))
        );
        let mut p = default_profile();
        p.plugins.enabled.push(PluginRef {
            name: "TaintToleration".into(),
            weight: Some(500),
        });
        assert!(matches!(
            p.build_plugins(),
            Err(ProfileError::InvalidWeight { .. })
        ));
        let mut p = default_profile();
        p.plugin_config.node_resources_fit.scoring_strategy.kind =
            ScoringStrategyType::RequestedToCapacityRatio;
        assert!(matches!(
            p.build_plugins(),
            Err(ProfileError::InvalidArgs(_))
        ));
        let mut p = default_profile();
        p.plugins.disabled.push("*".into());
        assert!(p.enabled_plugins().unwrap().is_empty());
        let cfg = SchedulerConfig {
            profiles: vec![default_profile(), default_profile()],
            ..Default::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(ProfileError::DuplicateProfile(_))
        ));
    }
}
