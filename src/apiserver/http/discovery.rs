//! Discovery documents: aggregated (`apidiscovery.k8s.io/v2`, one request per root) and
//! legacy (`APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`).
//!
//! Mirrors `k8s.io/apiserver/pkg/endpoints/discovery` (legacy) and
//! `…/discovery/aggregated` (the v2 document). kubectl asks for aggregated discovery first
//! and falls back to legacy; both describe the same resources, built from `RESOURCES`.

use serde_json::{json, Value};

use super::path::versions;
use super::reviews::Review;
use crate::api::Kind;

/// The exact Content-Type of an aggregated discovery reply; kubectl checks it.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// The verbs of a fully served resource, as kube-apiserver lists them (sorted).
const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces have no `deletecollection` upstream.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// A subresource as discovery describes it.
struct Subresource {
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
}

/// One served resource.
struct Resource {
    kind: Kind,
    singular: &'static str,
    verbs: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [Subresource],
}

const fn status(kind: &'static str, group: &'static str) -> Subresource {
    Subresource {
        name: "status",
        group,
        version: "v1",
        kind,
        verbs: STATUS_VERBS,
    }
}

const SCALE: Subresource = Subresource {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: STATUS_VERBS,
};

/// Every served resource, in discovery order.
const RESOURCES: &[Resource] = &[
    Resource {
        kind: Kind::Namespace,
        singular: "namespace",
        verbs: NAMESPACE_VERBS,
        categories: &[],
        subresources: &[
            Subresource {
                name: "finalize",
                group: "",
                version: "v1",
                kind: "Namespace",
                verbs: &["update"],
            },
            status("Namespace", ""),
        ],
    },
    Resource {
        kind: Kind::Node,
        singular: "node",
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[status("Node", "")],
    },
    Resource {
        kind: Kind::Pod,
        singular: "pod",
        verbs: ALL_VERBS,
        categories: &["all"],
        subresources: &[
            Subresource {
                name: "binding",
                group: "",
                version: "v1",
                kind: "Binding",
                verbs: &["create"],
            },
            Subresource {
                name: "eviction",
                group: "policy",
                version: "v1",
                kind: "Eviction",
                verbs: &["create"],
            },
            Subresource {
                name: "log",
                group: "",
                version: "v1",
                kind: "Pod",
                verbs: &["get"],
            },
            status("Pod", ""),
        ],
    },
    Resource {
        kind: Kind::Event,
        singular: "event",
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
    },
    Resource {
        kind: Kind::Lease,
        singular: "lease",
        verbs: ALL_VERBS,
        categories: &[],
        subresources: &[],
    },
    Resource {
        kind: Kind::Deployment,
        singular: "deployment",
        verbs: ALL_VERBS,
        categories: &["all"],
        subresources: &[SCALE, status("Deployment", "apps")],
    },
    Resource {
        kind: Kind::ReplicaSet,
        singular: "replicaset",
        verbs: ALL_VERBS,
        categories: &["all"],
        subresources: &[SCALE, status("ReplicaSet", "apps")],
    },
];

/// `services`: read-only and always empty until Services are stored (see
/// [`super::path::Route::Services`]).
fn services_aggregated() -> Value {
    json!({
        "resource": "services",
        "responseKind": {"group": "", "version": "v1", "kind": "Service"},
        "scope": "Namespaced",
        "singularResource": "service",
        "verbs": ["get", "list", "watch"],
        "shortNames": ["svc"],
        "categories": ["all"],
    })
}

fn services_legacy() -> Value {
    json!({
        "name": "services",
        "singularName": "service",
        "namespaced": true,
        "kind": "Service",
        "verbs": ["get", "list", "watch"],
        "shortNames": ["svc"],
        "categories": ["all"],
    })
}

/// The self-reviews of `group` at `version` (create-only, cluster-scoped; see
/// [`super::reviews`]).
fn reviews_at<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = Review> + 'a {
    Review::ALL
        .into_iter()
        .filter(move |r| r.group() == group && r.versions().contains(&version))
}

/// The self-reviews of `group` at `version`, as aggregated discovery lists them.
fn reviews_aggregated<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = Value> + 'a {
    reviews_at(group, version).map(move |r| {
        json!({
            "resource": r.plural(),
            "responseKind": {"group": r.group(), "version": version, "kind": r.kind()},
            "scope": "Cluster",
            "singularResource": r.singular(),
            "verbs": ["create"],
        })
    })
}

/// The self-reviews of `group` at `version`, as an `APIResourceList` lists them.
fn reviews_legacy<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = Value> + 'a {
    reviews_at(group, version).map(|r| {
        json!({
            "name": r.plural(),
            "singularName": r.singular(),
            "namespaced": false,
            "kind": r.kind(),
            "verbs": ["create"],
        })
    })
}

/// The served groups, core (`""`) first.
fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    let served = RESOURCES
        .iter()
        .map(|r| r.kind.group())
        .chain(Review::ALL.iter().map(|r| r.group()));
    for group in served {
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups.sort_by_key(|g| (!g.is_empty(), *g));
    groups
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn scope(kind: Kind) -> &'static str {
    if kind.namespaced() {
        "Namespaced"
    } else {
        "Cluster"
    }
}

/// One group's entry of an aggregated document (`APIGroupDiscovery`): each of its versions,
/// preferred first.
fn aggregated_group(group: &str) -> Value {
    let versions: Vec<Value> = versions(group)
        .into_iter()
        .map(|version| aggregated_version(group, version))
        .collect();
    json!({
        "metadata": {"name": group, "creationTimestamp": null},
        "versions": versions,
    })
}

/// One version of a group in an aggregated document. Every stored kind is at `v1`; a review
/// group may have another version (as [`resource_list`]).
fn aggregated_version(group: &str, version: &str) -> Value {
    let mut resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| version == "v1" && r.kind.group() == group)
        .map(|r| {
            let mut v = json!({
                "resource": r.kind.plural(),
                "responseKind": {"group": group, "version": "v1", "kind": r.kind.name()},
                "scope": scope(r.kind),
                "singularResource": r.singular,
                "verbs": r.verbs,
            });
            if !r.kind.short_names().is_empty() {
                v["shortNames"] = json!(r.kind.short_names());
            }
            if !r.categories.is_empty() {
                v["categories"] = json!(r.categories);
            }
            if !r.subresources.is_empty() {
                v["subresources"] = r
                    .subresources
                    .iter()
                    .map(|s| {
                        json!({
                            "subresource": s.name,
                            "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                            "verbs": s.verbs,
                        })
                    })
                    .collect();
            }
            v
        })
        .collect();
    if group.is_empty() && version == "v1" {
        resources.push(services_aggregated());
    }
    resources.extend(reviews_aggregated(group, version));
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// The aggregated document of `/api` (`core == true`: the core group) or `/apis` (every named
/// group). `version` is the `apidiscovery.k8s.io` version the client asked for.
pub fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = groups()
        .into_iter()
        .filter(|g| g.is_empty() == core)
        .map(aggregated_group)
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// Legacy `/api`: `APIVersions`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str) -> Value {
    let gvs: Vec<Value> = versions(group)
        .into_iter()
        .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
        .collect();
    let preferred = gvs[0].clone();
    json!({"name": group, "versions": gvs, "preferredVersion": preferred})
}

/// Legacy `/apis`: `APIGroupList`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(api_group)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Legacy `/apis/<group>`: `APIGroup`, or `None` if the group is not served.
pub fn group(group: &str) -> Option<Value> {
    if group.is_empty() || !groups().contains(&group) {
        return None;
    }
    let mut g = api_group(group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// Legacy `/api/v1`, `/apis/<group>/<version>`: `APIResourceList` (subresources as
/// `pods/status`). Every stored kind is at `v1`; a review group may have another version.
pub fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    let stored = RESOURCES
        .iter()
        .filter(|r| version == "v1" && r.kind.group() == group);
    for r in stored {
        let mut v = json!({
            "name": r.kind.plural(),
            "singularName": r.singular,
            "namespaced": r.kind.namespaced(),
            "kind": r.kind.name(),
            "verbs": r.verbs,
        });
        if !r.kind.short_names().is_empty() {
            v["shortNames"] = json!(r.kind.short_names());
        }
        if !r.categories.is_empty() {
            v["categories"] = json!(r.categories);
        }
        resources.push(v);
        for s in r.subresources {
            let mut sv = json!({
                "name": format!("{}/{}", r.kind.plural(), s.name),
                "singularName": "",
                "namespaced": r.kind.namespaced(),
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if s.group != group {
                sv["group"] = json!(s.group);
                sv["version"] = json!(s.version);
            }
            resources.push(sv);
        }
    }
    if group.is_empty() && version == "v1" {
        resources.push(services_legacy());
    }
    resources.extend(reviews_legacy(group, version));
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_core_group_describes_pods_with_short_names_categories_and_subresources() {
        let doc = aggregated(true, "v2");
        assert_eq!(doc["kind"], "APIGroupDiscoveryList");
        let items = doc["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        let resources = items[0]["versions"][0]["resources"].as_array().unwrap();
        let pods = resources.iter().find(|r| r["resource"] == "pods").unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["scope"], "Namespaced");
        let subs: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert_eq!(subs, ["binding", "eviction", "log", "status"]);
        // `kubectl drain` evicts only if `pods/eviction` names its group and version.
        let eviction = &pods["subresources"][1]["responseKind"];
        assert_eq!(
            eviction,
            &json!({"group": "policy", "version": "v1", "kind": "Eviction"})
        );
        let nodes = resources.iter().find(|r| r["resource"] == "nodes").unwrap();
        assert_eq!(nodes["scope"], "Cluster");
    }

    #[test]
    fn whoami_is_also_discovered_at_v1beta1() {
        let doc = aggregated(false, "v2");
        let authn = doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "authentication.k8s.io")
            .unwrap();
        let versions: Vec<&str> = authn["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["v1", "v1beta1"]);
        let beta = &authn["versions"][1]["resources"][0];
        assert_eq!(beta["resource"], "selfsubjectreviews");
        assert_eq!(beta["responseKind"]["version"], "v1beta1");
        let authn_group = group("authentication.k8s.io").unwrap();
        assert_eq!(
            authn_group["preferredVersion"]["groupVersion"],
            "authentication.k8s.io/v1"
        );
        assert_eq!(
            authn_group["versions"][1]["groupVersion"],
            "authentication.k8s.io/v1beta1"
        );
        let list = resource_list("authentication.k8s.io", "v1beta1");
        assert_eq!(list["groupVersion"], "authentication.k8s.io/v1beta1");
        assert_eq!(list["resources"].as_array().unwrap().len(), 1);
        // Other groups keep their one version.
        assert_eq!(
            group("apps").unwrap()["versions"].as_array().unwrap().len(),
            1
        );
        assert_eq!(resource_list("apps", "v1beta1")["resources"], json!([]));
    }

    #[test]
    fn aggregated_named_groups_are_in_upstream_order() {
        let doc = aggregated(false, "v2");
        let names: Vec<&str> = doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "apps",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "coordination.k8s.io"
            ]
        );
        let authz = &doc["items"][2]["versions"][0]["resources"];
        let ssar = authz
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "selfsubjectaccessreviews")
            .unwrap();
        assert_eq!(ssar["verbs"], json!(["create"]));
        assert_eq!(ssar["scope"], "Cluster");
        let legacy = resource_list("authentication.k8s.io", "v1");
        assert_eq!(legacy["groupVersion"], "authentication.k8s.io/v1");
        assert_eq!(legacy["resources"][0]["kind"], "SelfSubjectReview");
        let apps = &doc["items"][0]["versions"][0]["resources"];
        let deploy = apps
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["subresources"][0]["responseKind"]["kind"], "Scale");
        assert_eq!(
            deploy["subresources"][0]["responseKind"]["group"],
            "autoscaling"
        );
    }

    #[test]
    fn legacy_resource_list_names_subresources_with_a_slash() {
        let list = resource_list("apps", "v1");
        assert_eq!(list["groupVersion"], "apps/v1");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status"
            ]
        );
        assert!(group("apps").is_some());
        assert!(group("batch").is_none());
        // apps, authentication.k8s.io, authorization.k8s.io, coordination.k8s.io
        assert_eq!(api_group_list()["groups"].as_array().unwrap().len(), 4);
        assert!(group("authorization.k8s.io").is_some());
    }
}
