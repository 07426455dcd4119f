//! Request paths: which document or resource a URL names.
//!
//! Mirrors the layout kube-apiserver installs (`k8s.io/apiserver/pkg/endpoints/installer.go`):
//!
//! ```text
//! /api                                   APIVersions (legacy) or the core group (aggregated)
//! /apis                                  APIGroupList or every named group (aggregated)
//! /apis/<group>                          APIGroup
//! /api/v1, /apis/<group>/<version>       APIResourceList
//! …/<resource>                           a collection (cluster-wide for namespaced kinds)
//! …/namespaces/<ns>/<resource>           a collection in one namespace
//! …/<resource>/<name>[/<subresource>]    one object (or one of its subresources)
//! /api/v1/namespaces/<name>[/status]     a namespace itself
//! ```

use super::reviews::Review;
use crate::api::Kind;

/// What a request path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/api`.
    Api,
    /// `/apis`.
    Apis,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`: the resource list of a group version.
    GroupVersion { group: String, version: String },
    /// A served resource.
    Resource(ResourcePath),
    /// `services`: not stored yet (no Service kind), served as an always-empty, read-only
    /// resource so that `kubectl get all` and `get svc` work.
    Services {
        namespace: Option<String>,
        name: Option<String>,
    },
    /// A self-review (`selfsubjectaccessreviews`, …) at one of its versions: create-only,
    /// stored nowhere.
    Review(Review, &'static str),
}

/// A resource path, resolved to a stored kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub kind: Kind,
    /// The namespace in the path (`None` for cluster-scoped kinds and cluster-wide lists).
    pub namespace: Option<String>,
    /// The object name (`None` for a collection).
    pub name: Option<String>,
    /// `status`, `scale`, `binding`, `log`, …
    pub subresource: Option<String>,
}

/// Why a path names nothing served: answered 404 `the server could not find the requested
/// resource`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the server could not find the requested resource")]
pub struct NotServed;

/// Resolve a URL path (without the query).
pub fn parse(path: &str) -> Result<Route, NotServed> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["api"] => Ok(Route::Api),
        ["apis"] => Ok(Route::Apis),
        ["apis", group] if served_group(group) => Ok(Route::Group(group.to_string())),
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Err(NotServed),
    }
}

fn served_group(group: &str) -> bool {
    Kind::ALL.iter().any(|k| k.group() == group) || Review::serves_group(group)
}

/// The versions `group` is served at, preferred (`v1`) first: only the review groups have
/// another (see [`Review::versions`]).
pub fn versions(group: &str) -> Vec<&'static str> {
    let mut versions = vec!["v1"];
    for v in Review::group_versions(group) {
        if !versions.contains(&v) {
            versions.push(v);
        }
    }
    versions
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Result<Route, NotServed> {
    // `v1` first: every group serves it, and it spares nearly every request the list.
    let served_version = version == "v1" || versions(group).contains(&version);
    if !served_version || (!group.is_empty() && !served_group(group)) {
        return Err(NotServed);
    }
    let (namespace, rest) = match rest {
        // `/api/v1/namespaces/<name>` and its own subresources name a Namespace object.
        ["namespaces", _] | ["namespaces", _, "status" | "finalize"] => (None, rest),
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        _ => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [] => {
            return Ok(Route::GroupVersion {
                group: group.to_string(),
                version: version.to_string(),
            })
        }
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(name.to_string()), None),
        [resource, name, sub] => (*resource, Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(NotServed),
    };
    if Review::serves_group(group) {
        return match (
            Review::at(group, version, resource),
            &namespace,
            &name,
            &subresource,
        ) {
            (Some((review, version)), None, None, None) => Ok(Route::Review(review, version)),
            _ => Err(NotServed),
        };
    }
    if resource == "services" && group.is_empty() && subresource.is_none() {
        return Ok(Route::Services { namespace, name });
    }
    let kind = Kind::from_plural(resource).ok_or(NotServed)?;
    if kind.group() != group || (namespace.is_some() && !kind.namespaced()) {
        return Err(NotServed);
    }
    Ok(Route::Resource(ResourcePath {
        kind,
        namespace,
        name,
        subresource,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(kind: Kind, ns: Option<&str>, name: Option<&str>, sub: Option<&str>) -> Route {
        Route::Resource(ResourcePath {
            kind,
            namespace: ns.map(String::from),
            name: name.map(String::from),
            subresource: sub.map(String::from),
        })
    }

    #[test]
    fn paths_resolve_as_kube_apiserver_lays_them_out() {
        let cases = [
            ("/api", Ok(Route::Api)),
            ("/apis/", Ok(Route::Apis)),
            ("/apis/apps", Ok(Route::Group("apps".into()))),
            (
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                Ok(Route::Review(Review::SelfSubjectAccess, "v1")),
            ),
            (
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                Ok(Route::Review(Review::SelfSubject, "v1")),
            ),
            (
                "/apis/authentication.k8s.io/v1beta1/selfsubjectreviews",
                Ok(Route::Review(Review::SelfSubject, "v1beta1")),
            ),
            (
                "/apis/authentication.k8s.io/v1beta1",
                Ok(Route::GroupVersion {
                    group: "authentication.k8s.io".into(),
                    version: "v1beta1".into(),
                }),
            ),
            (
                "/apis/authorization.k8s.io/v1beta1/selfsubjectaccessreviews",
                Err(NotServed),
            ),
            ("/apis/apps/v1beta1/deployments", Err(NotServed)),
            (
                "/apis/authentication.k8s.io",
                Ok(Route::Group("authentication.k8s.io".into())),
            ),
            (
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/x",
                Err(NotServed),
            ),
            (
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                Err(NotServed),
            ),
            (
                "/api/v1",
                Ok(Route::GroupVersion {
                    group: "".into(),
                    version: "v1".into(),
                }),
            ),
            ("/api/v1/pods", Ok(res(Kind::Pod, None, None, None))),
            (
                "/api/v1/namespaces/default/pods",
                Ok(res(Kind::Pod, Some("default"), None, None)),
            ),
            (
                "/api/v1/namespaces/default/pods/web/status",
                Ok(res(Kind::Pod, Some("default"), Some("web"), Some("status"))),
            ),
            (
                "/api/v1/namespaces",
                Ok(res(Kind::Namespace, None, None, None)),
            ),
            (
                "/api/v1/namespaces/kube-system",
                Ok(res(Kind::Namespace, None, Some("kube-system"), None)),
            ),
            (
                "/api/v1/namespaces/x/status",
                Ok(res(Kind::Namespace, None, Some("x"), Some("status"))),
            ),
            (
                "/api/v1/nodes/n1",
                Ok(res(Kind::Node, None, Some("n1"), None)),
            ),
            (
                "/apis/apps/v1/namespaces/default/deployments/web/scale",
                Ok(res(
                    Kind::Deployment,
                    Some("default"),
                    Some("web"),
                    Some("scale"),
                )),
            ),
            (
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                Ok(res(Kind::Lease, Some("kube-node-lease"), None, None)),
            ),
            ("/apis/apps/v1/pods", Err(NotServed)),
            ("/api/v1/deployments", Err(NotServed)),
            ("/api/v2/pods", Err(NotServed)),
            ("/api/v1/namespaces/default/nodes", Err(NotServed)),
            ("/api/v1/widgets", Err(NotServed)),
            (
                "/api/v1/namespaces/default/services",
                Ok(Route::Services {
                    namespace: Some("default".into()),
                    name: None,
                }),
            ),
            ("/apis/batch/v1/jobs", Err(NotServed)),
            ("/metrics", Err(NotServed)),
        ];
        for (path, want) in cases {
            assert_eq!(parse(path), want, "{path}");
        }
    }
}
