//! OpenAPI v3: the documents `kubectl explain` and `kubectl create/apply -f` read.
//!
//! Mirrors kube-openapi's `handler3` (`k8s.io/kube-openapi/pkg/handler3`): `/openapi/v3`
//! lists each served group version with a `serverRelativeURL` that carries the hash of its
//! document (`/openapi/v3/apis/apps/v1?hash=<SHA-512, upper-case hex>`); the document is
//! served with that hash as its ETag (`If-None-Match` → 304), and when asked for by its hash,
//! as `Cache-Control: public, immutable` with a one-year `Expires` (a stale hash is redirected,
//! 301, to the current one).
//!
//! The schemas are derived from the Rust types, not written by hand: k8s-openapi's `schemars`
//! impls carry upstream's names (`io.k8s.api.apps.v1.Deployment`), the field descriptions and
//! the list/map extensions. [`group_version_document`] collects a group version's kinds and
//! everything they reference into `components.schemas` (references as
//! `#/components/schemas/…`; a reference with a description beside it becomes `allOf`, as
//! upstream writes it) and adds what the impls leave out: `x-kubernetes-group-version-kind`
//! on each kind, the list kinds (`DeploymentList`), and the strategic-merge-patch extensions
//! of the Go struct tags ([`PATCH_STRATEGIES`]), which kubectl's client-side `apply` reads to
//! merge lists by key. `paths` declares every served operation; every PATCH declares the
//! `fieldValidation` query parameter, so kubectl leaves validation to the server and sends
//! `fieldValidation=Strict` (unknown fields: 400, invalid values: 422), as it does against
//! kube-apiserver.
//!
//! The documents are built once per reported minor version, on first use.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use actix_web::web::Bytes;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Binding, Event, Namespace, Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Patch, Status, WatchEvent};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::api::Kind;

/// Where `components.schemas` are referenced from.
const SCHEMAS: &str = "#/components/schemas/";

/// A resource the documents describe: every stored kind, and `services` (served empty and
/// read-only until Services are stored).
#[derive(Clone, Copy, Debug)]
struct Resource {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    read_only: bool,
    subresources: &'static [&'static str],
}

fn resources() -> Vec<Resource> {
    let mut all: Vec<Resource> = Kind::ALL
        .into_iter()
        .map(|k| Resource {
            group: k.group(),
            kind: k.name(),
            plural: k.plural(),
            namespaced: k.namespaced(),
            read_only: false,
            subresources: match k {
                Kind::Pod => &["binding", "log", "status"],
                Kind::Deployment | Kind::ReplicaSet => &["scale", "status"],
                Kind::Node | Kind::Namespace => &["status"],
                Kind::Event | Kind::Lease => &[],
            },
        })
        .collect();
    all.push(Resource {
        group: "",
        kind: "Service",
        plural: "services",
        namespaced: true,
        read_only: true,
        subresources: &[],
    });
    all
}

/// `api/v1`, `apis/apps/v1`.
fn group_version_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_string()
    } else {
        format!("apis/{group}/v1")
    }
}

/// The served group versions (`api/v1`, `apis/apps/v1`, `apis/coordination.k8s.io/v1`).
fn group_versions() -> Vec<String> {
    let mut gvs: Vec<String> = resources()
        .iter()
        .map(|r| group_version_path(r.group))
        .collect();
    gvs.sort();
    gvs.dedup();
    gvs
}

// ---- schemas ----

/// Add `T`'s schema (and everything it references) to `gen`; its component name.
fn add<T: JsonSchema>(gen: &mut SchemaGenerator) -> String {
    gen.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// The component name of a served kind, its schema added to `gen`.
fn add_kind(gen: &mut SchemaGenerator, kind: &str) -> Option<String> {
    Some(match kind {
        "Namespace" => add::<Namespace>(gen),
        "Node" => add::<Node>(gen),
        "Pod" => add::<Pod>(gen),
        "Event" => add::<Event>(gen),
        "Service" => add::<Service>(gen),
        "Lease" => add::<Lease>(gen),
        "Deployment" => add::<Deployment>(gen),
        "ReplicaSet" => add::<ReplicaSet>(gen),
        _ => return None,
    })
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{ "group": group, "version": version, "kind": kind }])
}

/// The strategic-merge-patch extensions of the Go struct tags (`patchStrategy`,
/// `patchMergeKey` in k8s.io/api), which the schemars impls do not carry: (component,
/// property, strategy, merge key).
pub const PATCH_STRATEGIES: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "merge",
        None,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        Some("uid"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        Some("topologyKey"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    ("io.k8s.api.core.v1.Container", "env", "merge", Some("name")),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "resourceClaimStatuses",
        "merge,retainKeys",
        Some("name"),
    ),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", None),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "merge",
        Some("port"),
    ),
    (
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        None,
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
];

/// Set the strategic-merge-patch extensions of [`PATCH_STRATEGIES`] on `schemas`.
fn add_patch_strategies(schemas: &mut Map<String, Value>) {
    for (component, property, strategy, key) in PATCH_STRATEGIES {
        let Some(Value::Object(prop)) = schemas
            .get_mut(*component)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(*property))
        else {
            continue;
        };
        prop.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
        if let Some(key) = key {
            prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
    }
}

/// `DeploymentList`: the list kind of `kind` (component `item`), as upstream names it.
fn list_schema(r: &Resource, item: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {}.", r.kind, r.plural),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string"
            },
            "items": {
                "description": format!("Items is the list of {}.", r.plural),
                "type": "array",
                "items": {"allOf": [{"$ref": format!("{SCHEMAS}{item}")}], "default": {}}
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string"
            },
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                "allOf": [{"$ref": format!("{SCHEMAS}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")}],
                "default": {}
            }
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": gvk(r.group, "v1", &format!("{}List", r.kind)),
    })
}

/// The component names of one group version's document, and its `components.schemas`.
struct Components {
    /// Each resource of the group version with its kind's component name.
    kinds: Vec<(Resource, String)>,
    status: String,
    delete_options: String,
    patch: String,
    scale: Option<String>,
    binding: Option<String>,
    schemas: Map<String, Value>,
}

fn components(gv: &str) -> Components {
    let mut gen = SchemaGenerator::new(SchemaSettings::openapi3());
    let mut kinds = Vec::new();
    for r in resources() {
        if group_version_path(r.group) != gv {
            continue;
        }
        if let Some(name) = add_kind(&mut gen, r.kind) {
            kinds.push((r, name));
        }
    }
    let status = add::<Status>(&mut gen);
    let delete_options = add::<DeleteOptions>(&mut gen);
    // Watch responses are streams of these (upstream's documents carry it too).
    add::<WatchEvent<Pod>>(&mut gen);
    let patch = add::<Patch>(&mut gen);
    let has = |sub: &str| kinds.iter().any(|(r, _)| r.subresources.contains(&sub));
    let scale = has("scale").then(|| add::<Scale>(&mut gen));
    let binding = has("binding").then(|| add::<Binding>(&mut gen));
    let mut schemas = gen.take_definitions(true);
    let mut set_gvk = |name: &str, group: &str, kind: &str| {
        if let Some(Value::Object(s)) = schemas.get_mut(name) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                gvk(group, "v1", kind),
            );
        }
    };
    for (r, name) in &kinds {
        set_gvk(name, r.group, r.kind);
    }
    set_gvk(&status, "", "Status");
    if let Some(scale) = &scale {
        set_gvk(scale, "autoscaling", "Scale");
    }
    if let Some(binding) = &binding {
        set_gvk(binding, "", "Binding");
    }
    for (r, name) in &kinds {
        schemas.insert(format!("{name}List"), list_schema(r, name));
    }
    add_patch_strategies(&mut schemas);
    Components {
        kinds,
        status,
        delete_options,
        patch,
        scale,
        binding,
        schemas,
    }
}

// ---- paths ----

fn reference(component: &str) -> Value {
    json!({ "$ref": format!("{SCHEMAS}{component}") })
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": ty, "uniqueItems": true}
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true}
    })
}

fn dry_run() -> Value {
    query("dryRun", "string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed")
}

fn field_manager() -> Value {
    query("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.")
}

fn field_validation() -> Value {
    query("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.")
}

fn list_params() -> Vec<Value> {
    vec![
        query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion."),
        query("continue", "string", "The continue option should be set when retrieving more results from the server."),
        query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
        query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        query("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity."),
        query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
    ]
}

/// The content types an object is answered in.
fn object_content(schema: Value) -> Value {
    json!({
        "application/json": {"schema": schema},
        "application/yaml": {"schema": schema},
        "application/vnd.kubernetes.protobuf": {"schema": schema},
    })
}

/// One operation, upstream-shaped.
struct Op<'a> {
    action: &'a str,
    verb_id: &'a str,
    description: String,
    gvk: Value,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(&'a str, Value)>,
}

fn operation(op: Op<'_>, id_suffix: &str, tag: &str) -> Value {
    let mut responses = Map::new();
    for (code, content) in op.responses {
        let description = match code {
            "200" => "OK",
            "201" => "Created",
            "202" => "Accepted",
            _ => "",
        };
        responses.insert(
            code.into(),
            json!({"description": description, "content": content}),
        );
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut o = json!({
        "tags": [tag],
        "description": op.description,
        "operationId": format!("{}{id_suffix}", op.verb_id),
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk.get(0).cloned().unwrap_or(Value::Null),
    });
    if !op.params.is_empty() {
        o["parameters"] = Value::Array(op.params);
    }
    if let Some(body) = op.body {
        o["requestBody"] = json!({"content": body, "required": true});
    }
    o
}

/// `CoreV1`, `AppsV1`, `CoordinationV1`: the operationId infix; `core_v1` …: the tag.
fn group_names(group: &str) -> (String, String) {
    let short = match group {
        "" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    let mut camel = short.to_string();
    if let Some(first) = camel.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    (format!("{camel}V1"), format!("{short}_v1"))
}

fn paths(gv: &str, c: &Components) -> Map<String, Value> {
    let mut paths = Map::new();
    let status = reference(&c.status);
    for (r, name) in &c.kinds {
        let (infix, tag) = group_names(r.group);
        let kind_gvk = gvk(r.group, "v1", r.kind);
        let object = reference(name);
        let list = reference(&format!("{name}List"));
        let scope = if r.namespaced { "Namespaced" } else { "" };
        let base = if r.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("/{gv}/{}", r.plural)
        };
        let mut common = Vec::new();
        if r.namespaced {
            common.push(path_param(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        common.push(query(
            "pretty",
            "string",
            "If 'true', then the output is pretty printed.",
        ));
        let write_params = || vec![dry_run(), field_manager(), field_validation()];
        let patch_body = json!({
            "application/json-patch+json": {"schema": reference(&c.patch)},
            "application/merge-patch+json": {"schema": reference(&c.patch)},
            "application/strategic-merge-patch+json": {"schema": reference(&c.patch)},
            "application/apply-patch+yaml": {"schema": reference(&c.patch)},
        });
        let patch_params = || {
            let mut p = write_params();
            p.push(query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests."));
            p
        };
        let id = |what: &str| format!("{infix}{scope}{}{what}", r.kind);

        // The collection.
        let mut collection = Map::new();
        collection.insert(
            "get".into(),
            operation(
                Op {
                    action: "list",
                    verb_id: "list",
                    description: format!("list or watch objects of kind {}", r.kind),
                    gvk: kind_gvk.clone(),
                    params: list_params(),
                    body: None,
                    responses: vec![("200", object_content(list.clone()))],
                },
                &id(""),
                &tag,
            ),
        );
        if !r.read_only {
            collection.insert(
                "post".into(),
                operation(
                    Op {
                        action: "post",
                        verb_id: "create",
                        description: format!("create a {}", r.kind),
                        gvk: kind_gvk.clone(),
                        params: write_params(),
                        body: Some(json!({"*/*": {"schema": object}})),
                        responses: vec![
                            ("200", object_content(object.clone())),
                            ("201", object_content(object.clone())),
                            ("202", object_content(object.clone())),
                        ],
                    },
                    &id(""),
                    &tag,
                ),
            );
            if r.kind != "Namespace" {
                collection.insert(
                    "delete".into(),
                    operation(
                        Op {
                            action: "deletecollection",
                            verb_id: "deletecollection",
                            description: format!("delete collection of {}", r.kind),
                            gvk: kind_gvk.clone(),
                            params: [vec![dry_run()], list_params()].concat(),
                            body: Some(json!({"*/*": {"schema": reference(&c.delete_options)}})),
                            responses: vec![("200", object_content(status.clone()))],
                        },
                        &id(""),
                        &tag,
                    ),
                );
            }
        }
        collection.insert("parameters".into(), Value::Array(common.clone()));
        paths.insert(base.clone(), Value::Object(collection));

        // Across namespaces.
        if r.namespaced {
            paths.insert(
                format!("/{gv}/{}", r.plural),
                json!({
                    "get": operation(
                        Op {
                            action: "list",
                            verb_id: "list",
                            description: format!("list or watch objects of kind {}", r.kind),
                            gvk: kind_gvk.clone(),
                            params: list_params(),
                            body: None,
                            responses: vec![("200", object_content(list.clone()))],
                        },
                        &format!("{infix}{}ForAllNamespaces", r.kind),
                        &tag,
                    ),
                }),
            );
        }

        // One object, and its subresources.
        let mut item_params = vec![path_param("name", &format!("name of the {}", r.kind))];
        item_params.extend(common.iter().cloned());
        let item_ops = |sub: &str, what: &str, gvk: &Value, object: &Value, read_only: bool| {
            let suffix = id(what);
            let mut item = Map::new();
            item.insert(
                "get".into(),
                operation(
                    Op {
                        action: "get",
                        verb_id: "read",
                        description: format!("read {sub}of the specified {}", r.kind),
                        gvk: gvk.clone(),
                        params: vec![],
                        body: None,
                        responses: vec![("200", object_content(object.clone()))],
                    },
                    &suffix,
                    &tag,
                ),
            );
            if !read_only {
                item.insert(
                    "put".into(),
                    operation(
                        Op {
                            action: "put",
                            verb_id: "replace",
                            description: format!("replace {sub}of the specified {}", r.kind),
                            gvk: gvk.clone(),
                            params: write_params(),
                            body: Some(json!({"*/*": {"schema": object}})),
                            responses: vec![
                                ("200", object_content(object.clone())),
                                ("201", object_content(object.clone())),
                            ],
                        },
                        &suffix,
                        &tag,
                    ),
                );
                item.insert(
                    "patch".into(),
                    operation(
                        Op {
                            action: "patch",
                            verb_id: "patch",
                            description: format!(
                                "partially update {sub}of the specified {}",
                                r.kind
                            ),
                            gvk: gvk.clone(),
                            params: patch_params(),
                            body: Some(patch_body.clone()),
                            responses: vec![
                                ("200", object_content(object.clone())),
                                ("201", object_content(object.clone())),
                            ],
                        },
                        &suffix,
                        &tag,
                    ),
                );
            }
            item.insert("parameters".into(), Value::Array(item_params.clone()));
            item
        };
        let mut item = item_ops("", "", &kind_gvk, &object, r.read_only);
        if !r.read_only {
            item.insert(
                "delete".into(),
                operation(
                    Op {
                        action: "delete",
                        verb_id: "delete",
                        description: format!("delete a {}", r.kind),
                        gvk: kind_gvk.clone(),
                        params: vec![
                            dry_run(),
                            query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
                            query("propagationPolicy", "string", "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'."),
                        ],
                        body: Some(json!({"*/*": {"schema": reference(&c.delete_options)}})),
                        responses: vec![
                            ("200", object_content(object.clone())),
                            ("202", object_content(object.clone())),
                        ],
                    },
                    &id(""),
                    &tag,
                ),
            );
        }
        paths.insert(format!("{base}/{{name}}"), Value::Object(item));
        for sub in r.subresources {
            let at = format!("{base}/{{name}}/{sub}");
            match *sub {
                "status" => {
                    let ops = item_ops("status ", "Status", &kind_gvk, &object, false);
                    paths.insert(at, Value::Object(ops));
                }
                "scale" => {
                    if let Some(scale) = &c.scale {
                        let ops = item_ops(
                            "scale ",
                            "Scale",
                            &gvk("autoscaling", "v1", "Scale"),
                            &reference(scale),
                            false,
                        );
                        paths.insert(at, Value::Object(ops));
                    }
                }
                "binding" => {
                    if let Some(binding) = &c.binding {
                        let binding = reference(binding);
                        let mut ops = Map::new();
                        ops.insert(
                            "post".into(),
                            operation(
                                Op {
                                    action: "post",
                                    verb_id: "create",
                                    description: format!("create binding of a {}", r.kind),
                                    gvk: gvk("", "v1", "Binding"),
                                    params: write_params(),
                                    body: Some(json!({"*/*": {"schema": binding}})),
                                    responses: vec![("201", object_content(binding.clone()))],
                                },
                                &id("Binding"),
                                &tag,
                            ),
                        );
                        ops.insert("parameters".into(), Value::Array(item_params.clone()));
                        paths.insert(at, Value::Object(ops));
                    }
                }
                "log" => {
                    paths.insert(
                        at,
                        json!({
                            "get": operation(
                                Op {
                                    action: "get",
                                    verb_id: "read",
                                    description: format!("read log of the specified {}", r.kind),
                                    gvk: kind_gvk.clone(),
                                    params: vec![
                                        query("container", "string", "The container for which to stream logs. Defaults to only container if there is one container in the pod."),
                                        query("follow", "boolean", "Follow the log stream of the pod. Defaults to false."),
                                        query("limitBytes", "integer", "If set, the number of bytes to read from the server before terminating the log output."),
                                        query("previous", "boolean", "Return previous terminated container logs. Defaults to false."),
                                        query("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show logs."),
                                        query("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
                                        query("timestamps", "boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false."),
                                    ],
                                    body: None,
                                    responses: vec![("200", json!({"text/plain": {"schema": {"type": "string"}}}))],
                                },
                                &id("Log"),
                                &tag,
                            ),
                            "parameters": item_params.clone(),
                        }),
                    );
                }
                _ => {}
            }
        }
    }
    paths
}

// ---- documents ----

/// One group version's document (`/openapi/v3/apis/apps/v1`).
pub fn group_version_document(gv: &str, minor: u32) -> Option<Value> {
    if !group_versions().iter().any(|g| g == gv) {
        return None;
    }
    let c = components(gv);
    let paths = paths(gv, &c);
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{minor}.0")},
        "paths": paths,
        "components": {
            "schemas": c.schemas,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}
            }
        },
        "security": [{"BearerToken": []}],
    }))
}

/// A served document: its bytes and the hash clients cache it by.
pub struct Document {
    pub body: Bytes,
    /// SHA-512 of `body`, upper-case hex (kube-openapi's `computeETag`).
    pub hash: String,
}

impl Document {
    fn new(body: Vec<u8>) -> Document {
        let digest = ring::digest::digest(&ring::digest::SHA512, &body);
        let hash = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        Document {
            body: Bytes::from(body),
            hash,
        }
    }
}

/// Every document of one reported minor version.
pub struct Documents {
    /// `/openapi/v3`.
    pub index: Document,
    /// By group version path (`api/v1`, `apis/apps/v1`).
    pub groups: BTreeMap<String, Document>,
}

fn build(minor: u32) -> Documents {
    let mut groups = BTreeMap::new();
    let mut index = Map::new();
    for gv in group_versions() {
        let Some(doc) = group_version_document(&gv, minor) else {
            continue;
        };
        let doc = Document::new(serde_json::to_vec(&doc).unwrap_or_default());
        index.insert(
            gv.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", doc.hash) }),
        );
        groups.insert(gv, doc);
    }
    let index = Document::new(serde_json::to_vec(&json!({ "paths": index })).unwrap_or_default());
    Documents { index, groups }
}

/// The documents for `minor`, built on first use.
pub fn documents(minor: u32) -> Arc<Documents> {
    static BUILT: OnceLock<parking_lot::Mutex<BTreeMap<u32, Arc<Documents>>>> = OnceLock::new();
    BUILT
        .get_or_init(Default::default)
        .lock()
        .entry(minor)
        .or_insert_with(|| Arc::new(build(minor)))
        .clone()
}

/// How to answer a GET of an OpenAPI v3 path.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the document; `immutable` when it was asked for by its current hash.
    Document { immutable: bool },
    /// 304: the client's `If-None-Match` is the current ETag.
    NotModified,
    /// 301 to the document's current URL: the hash asked for is stale.
    Redirect(String),
}

/// Mirrors `HandleGroupVersion` in kube-openapi's pkg/handler3/handler.go (and the
/// `If-None-Match` check of Go's `http.ServeContent`).
pub fn answer(gv: &str, doc: &Document, hash: Option<&str>, if_none_match: Option<&str>) -> Answer {
    if let Some(hash) = hash.filter(|h| !h.is_empty()) {
        if hash != doc.hash {
            return Answer::Redirect(format!("/openapi/v3/{gv}?hash={}", doc.hash));
        }
    }
    let etag = format!("\"{}\"", doc.hash);
    if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return Answer::NotModified;
    }
    Answer::Document {
        immutable: hash.is_some_and(|h| !h.is_empty()),
    }
}

/// Serve `/openapi/v3` and `/openapi/v3/<group version>`; `None` for any other path.
pub fn respond(
    path: &str,
    query: &str,
    if_none_match: Option<&str>,
    minor: u32,
) -> Option<actix_web::HttpResponse> {
    use actix_web::http::header;
    use actix_web::HttpResponse;
    let docs = documents(minor);
    let (gv, doc) = if path == "/openapi/v3" {
        ("", &docs.index)
    } else {
        let gv = path.strip_prefix("/openapi/v3/")?;
        (gv, docs.groups.get(gv)?)
    };
    let hash = query.split('&').find_map(|kv| kv.strip_prefix("hash="));
    let etag = format!("\"{}\"", doc.hash);
    Some(
        match answer(gv, doc, hash.filter(|_| !gv.is_empty()), if_none_match) {
            Answer::Redirect(to) => HttpResponse::MovedPermanently()
                .insert_header((header::LOCATION, to))
                .finish(),
            Answer::NotModified => HttpResponse::NotModified()
                .insert_header((header::ETAG, etag))
                .finish(),
            Answer::Document { immutable } => {
                let mut resp = HttpResponse::Ok();
                resp.content_type("application/json")
                    .insert_header((header::ETAG, etag));
                if immutable {
                    let expires =
                        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(365 * 24);
                    resp.insert_header((header::VARY, "Accept"))
                        .insert_header((header::CACHE_CONTROL, "public, immutable"))
                        .insert_header((header::EXPIRES, http_date(expires)));
                }
                resp.body(doc.body.clone())
            }
        },
    )
}

/// RFC 1123 with `GMT`, as HTTP dates are written.
fn http_date(t: jiff::Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(gv: &str) -> Value {
        group_version_document(gv, 32).unwrap()
    }

    /// Every `$ref` in `v`.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_index_names_each_served_group_version_by_its_hash() {
        let docs = documents(32);
        let index: Value = serde_json::from_slice(&docs.index.body).unwrap();
        let paths = index["paths"].as_object().unwrap();
        let names: Vec<&String> = paths.keys().collect();
        assert_eq!(
            names,
            ["api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1"]
        );
        let apps = &docs.groups["apis/apps/v1"];
        assert_eq!(apps.hash.len(), 128);
        assert_eq!(
            paths["apis/apps/v1"]["serverRelativeURL"],
            format!("/openapi/v3/apis/apps/v1?hash={}", apps.hash)
        );
        assert!(group_version_document("apis/batch/v1", 32).is_none());
    }

    #[test]
    fn a_deployment_schema_carries_its_kind_descriptions_and_references() {
        let apps = doc("apis/apps/v1");
        let schemas = &apps["components"]["schemas"];
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        assert_eq!(
            deployment["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let replicas = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"];
        assert_eq!(replicas["type"], "integer");
        assert!(replicas["description"]
            .as_str()
            .unwrap()
            .starts_with("Number of desired pods."));
        assert_eq!(
            schemas["io.k8s.api.apps.v1.DeploymentList"]["x-kubernetes-group-version-kind"][0]
                ["kind"],
            "DeploymentList"
        );
        assert_eq!(
            schemas["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"][0]
                ["group"],
            "autoscaling"
        );
        for gv in group_versions() {
            let d = doc(&gv);
            let mut all = Vec::new();
            refs(&d, &mut all);
            for r in all {
                let name = r.strip_prefix(SCHEMAS).unwrap();
                assert!(
                    d["components"]["schemas"].get(name).is_some(),
                    "{gv}: {r} is not a component"
                );
            }
        }
    }

    #[test]
    fn lists_carry_the_patch_strategies_of_the_go_types() {
        let core = doc("api/v1");
        let schemas = &core["components"]["schemas"];
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let ports = &schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        let volumes = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
        // Every entry of the table names a property that exists.
        for (component, property, _, _) in PATCH_STRATEGIES {
            let found = group_versions().iter().any(|gv| {
                doc(gv)["components"]["schemas"][*component]["properties"]
                    .get(*property)
                    .is_some()
            });
            assert!(found, "{component}.{property}");
        }
    }

    #[test]
    fn every_patch_declares_field_validation_so_kubectl_validates_on_the_server() {
        for gv in group_versions() {
            let d = doc(&gv);
            for (path, item) in d["paths"].as_object().unwrap() {
                if let Some(patch) = item.get("patch") {
                    assert!(
                        patch["parameters"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p["name"] == "fieldValidation"),
                        "{path}"
                    );
                }
            }
        }
        let apps = doc("apis/apps/v1");
        let op = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert_eq!(op["operationId"], "patchAppsV1NamespacedDeployment");
        let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(
            scale["patch"]["x-kubernetes-group-version-kind"]["kind"],
            "Scale"
        );
        let core = doc("api/v1");
        assert!(core["paths"].get("/api/v1/nodes/{name}").is_some());
        assert_eq!(
            core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]["operationId"],
            "readCoreV1NamespacedPodLog"
        );
    }

    #[test]
    fn a_stale_hash_redirects_the_current_one_is_immutable_and_a_known_etag_is_not_modified() {
        let d = Document::new(b"{}".to_vec());
        assert_eq!(
            answer("apis/apps/v1", &d, Some("OLD"), None),
            Answer::Redirect(format!("/openapi/v3/apis/apps/v1?hash={}", d.hash))
        );
        assert_eq!(
            answer("apis/apps/v1", &d, Some(&d.hash), None),
            Answer::Document { immutable: true }
        );
        assert_eq!(
            answer("apis/apps/v1", &d, None, None),
            Answer::Document { immutable: false }
        );
        let etag = format!("\"{}\"", d.hash);
        assert_eq!(
            answer("apis/apps/v1", &d, None, Some(&etag)),
            Answer::NotModified
        );
    }

    #[test]
    fn the_v2_protobuf_document_starts_with_its_swagger_version_and_names_each_kind() {
        let doc = v2_protobuf(27);
        assert_eq!(doc[..5], [0x0a, 3, b'2', b'.', b'0']);
        let text = String::from_utf8_lossy(&doc);
        assert!(text.contains("/apis/apps/v1/namespaces/{namespace}/deployments/{name}"));
        assert!(text.contains("kind: Deployment"));
        assert!(text.contains("fieldValidation"));
    }
}

/// Protobuf writing, just enough for [`v2_protobuf`].
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A length-delimited field (strings and sub-messages).
    pub fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
        varint(out, u64::from(field << 3 | 2));
        varint(out, data.len() as u64);
        out.extend_from_slice(data);
    }

    pub fn message(out: &mut Vec<u8>, field: u32, build: impl FnOnce(&mut Vec<u8>)) {
        let mut inner = Vec::new();
        build(&mut inner);
        bytes(out, field, &inner);
    }
}

/// `/openapi/v2` in protobuf (served as `application/octet-stream`: client-go cannot parse
/// the `…spec.v2@v1.0+protobuf` media type it asks for), for kubectl 1.27 and 1.28, which check server-side field
/// validation there (`SupportsQueryParam` in k8s.io/kubectl/pkg/util/openapi): the same
/// minimal document: each kind's PATCH operation with its
/// `x-kubernetes-group-version-kind` and the `fieldValidation` query parameter, no schemas.
///
/// Field numbers are gnostic's `openapiv2/OpenAPIv2.proto`: Document{swagger 1, info 2,
/// paths 8}, Info{title 1, version 2}, Paths{path 1}, NamedPathItem{name 1, value 2},
/// PathItem{patch 8}, Operation{parameters 8, vendor_extension 13},
/// ParametersItem{parameter 1}, Parameter{non_body_parameter 2},
/// NonBodyParameter{query_parameter_sub_schema 3}, QueryParameterSubSchema{in 2, name 4,
/// type 6}, NamedAny{name 1, value 2}, Any{yaml 2}.
pub fn v2_protobuf(minor: u32) -> Vec<u8> {
    let mut doc = Vec::new();
    pb::bytes(&mut doc, 1, b"2.0");
    pb::message(&mut doc, 2, |info| {
        pb::bytes(info, 1, b"Kubernetes");
        pb::bytes(info, 2, format!("v1.{minor}.0").as_bytes());
    });
    pb::message(&mut doc, 8, |paths| {
        for kind in Kind::ALL {
            let gv = group_version_path(kind.group());
            let item = if kind.namespaced() {
                format!("/{gv}/namespaces/{{namespace}}/{}/{{name}}", kind.plural())
            } else {
                format!("/{gv}/{}/{{name}}", kind.plural())
            };
            pb::message(paths, 1, |named| {
                pb::bytes(named, 1, item.as_bytes());
                pb::message(named, 2, |path_item| {
                    pb::message(path_item, 8, |op| {
                        for param in ["dryRun", "fieldManager", "fieldValidation", "force"] {
                            pb::message(op, 8, |item| {
                                pb::message(item, 1, |p| {
                                    pb::message(p, 2, |non_body| {
                                        pb::message(non_body, 3, |q| {
                                            pb::bytes(q, 2, b"query");
                                            pb::bytes(q, 4, param.as_bytes());
                                            pb::bytes(q, 6, b"string");
                                        })
                                    })
                                })
                            });
                        }
                        pb::message(op, 13, |ext| {
                            pb::bytes(ext, 1, b"x-kubernetes-group-version-kind");
                            pb::message(ext, 2, |any| {
                                let yaml = format!(
                                    "group: \"{}\"\nkind: {}\nversion: v1\n",
                                    kind.group(),
                                    kind.name()
                                );
                                pb::bytes(any, 2, yaml.as_bytes());
                            });
                        });
                    });
                });
            });
        }
    });
    doc
}
