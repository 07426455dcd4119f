//! The HTTP API at the HTTP level: health and version, token auth, discovery (aggregated and
//! legacy), the verbs (get, list with selectors/paging/resourceVersion, create from JSON and
//! YAML, update, delete, deletecollection), Tables, watch (chunked lines, bookmarks, timeout,
//! 410 Gone), and bad input answered with a Status while nothing is stored.

mod support;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use kubeactor::apiserver::ApiServerOptions;
use reqwest::blocking::Response;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::http_server::{eventually, TestServer, TOKEN};

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}
        }
    })
}

fn pod(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    })
}

fn body(resp: Response) -> Value {
    resp.json::<Value>().expect("a JSON body")
}

fn post(s: &TestServer, path: &str, v: &Value) -> Response {
    s.client().post(s.at(path)).json(v).send().unwrap()
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[test]
fn health_and_version_are_open_and_the_api_needs_the_token() {
    let s = TestServer::start();
    let anonymous = reqwest::blocking::Client::new();
    for path in ["/healthz", "/livez", "/readyz"] {
        let r = anonymous.get(s.at(path)).send().unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.text().unwrap(), "ok");
    }
    let v = body(anonymous.get(s.at("/version")).send().unwrap());
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "32");

    let r = anonymous.get(s.at("/api/v1/namespaces")).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let status = body(r);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    assert_eq!(status["code"], 401);
    let r = anonymous
        .get(s.at("/api/v1/namespaces"))
        .bearer_auth("wrong")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = anonymous
        .get(s.at("/api/v1/namespaces"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn auth_can_be_switched_off_and_the_version_is_configurable() {
    let s = TestServer::start_with(ApiServerOptions::default(), |o| {
        o.token = None;
        o.version_minor = 29;
    });
    let anonymous = reqwest::blocking::Client::new();
    let r = anonymous.get(s.at("/api/v1/namespaces")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body(anonymous.get(s.at("/version")).send().unwrap())["minor"],
        "29"
    );
}

#[test]
fn discovery_is_aggregated_when_asked_and_legacy_otherwise() {
    let s = TestServer::start();
    let c = s.client();
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let r = c
        .get(s.at("/apis"))
        .header("Accept", accept)
        .send()
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let apis = body(r);
    assert_eq!(apis["kind"], "APIGroupDiscoveryList");
    assert_eq!(apis["items"][0]["metadata"]["name"], "apps");
    let core = body(c.get(s.at("/api")).header("Accept", accept).send().unwrap());
    assert_eq!(core["items"][0]["metadata"]["name"], "");

    let legacy = body(c.get(s.at("/api")).send().unwrap());
    assert_eq!(legacy["kind"], "APIVersions");
    assert_eq!(legacy["versions"], json!(["v1"]));
    let groups = body(c.get(s.at("/apis")).send().unwrap());
    assert_eq!(groups["kind"], "APIGroupList");
    let v1 = body(c.get(s.at("/api/v1")).send().unwrap());
    assert_eq!(v1["kind"], "APIResourceList");
    let pods = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap()
        .clone();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    let apps = body(c.get(s.at("/apis/apps/v1")).send().unwrap());
    assert_eq!(apps["groupVersion"], "apps/v1");
    assert_eq!(
        c.get(s.at("/apis/batch/v1")).send().unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

/// Self-reviews are create-only: a JSON SelfSubjectAccessReview is answered 201 with its
/// status, a malformed one 422 with upstream's field cause, and any other verb 405.
#[test]
fn self_subject_access_reviews_are_answered_and_validated() {
    let s = TestServer::start();
    const SSAR: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let review = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "spec": {"resourceAttributes": {"verb": "list", "resource": "nodes"}},
    });
    let resp = post(&s, SSAR, &review);
    assert_eq!(resp.status(), 201);
    let out = body(resp);
    assert_eq!(out["status"], json!({"allowed": true}));
    assert_eq!(out["spec"], review["spec"]);

    let resp = post(
        &s,
        SSAR,
        &json!({"kind": "SelfSubjectAccessReview", "spec": {}}),
    );
    assert_eq!(resp.status(), 422);
    let status = body(resp);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["kind"], "SelfSubjectAccessReview");
    assert_eq!(status["details"]["group"], "authorization.k8s.io");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.resourceAttributes"
    );

    let rules = post(
        &s,
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        &json!({"spec": {}}),
    );
    assert_eq!(rules.status(), 400);
    assert_eq!(body(rules)["message"], "no namespace on request");

    let get = s.client().get(s.at(SSAR)).send().unwrap();
    assert_eq!(get.status(), 405);
    // Counted as resource requests, as kube-apiserver labels them.
    let metrics = s
        .client()
        .get(s.at("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("apiserver_request_total{")
                && l.contains("verb=\"CREATE\"")
                && l.contains("resource=\"selfsubjectaccessreviews\"")
                && l.contains("code=\"201\"")),
        "{metrics}"
    );
}

/// `POST pods/<name>/eviction` deletes the pod (no PodDisruptionBudget can exist here) and
/// answers 201 with a Success Status; a body naming another pod is 400, a missing pod 404.
#[test]
fn an_eviction_deletes_the_pod_it_names() {
    let s = TestServer::start();
    assert_eq!(post(&s, PODS, &pod("victim", json!({}))).status(), 201);
    let eviction = |name: &str| {
        json!({"apiVersion": "policy/v1", "kind": "Eviction",
               "metadata": {"name": name, "namespace": "default"},
               "deleteOptions": {"gracePeriodSeconds": 0}})
    };
    let evict =
        |path: &str, name: &str| post(&s, &format!("{PODS}/{path}/eviction"), &eviction(name));

    let mismatch = evict("victim", "other");
    assert_eq!(mismatch.status(), 400);
    assert_eq!(
        body(mismatch)["message"],
        "name in URL does not match name in Eviction object"
    );
    let missing = evict("ghost", "ghost");
    assert_eq!(missing.status(), 404);
    assert_eq!(body(missing)["reason"], "NotFound");

    let done = evict("victim", "victim");
    assert_eq!(done.status(), 201);
    assert_eq!(
        body(done),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    let gone = s
        .client()
        .get(s.at(&format!("{PODS}/victim")))
        .send()
        .unwrap();
    assert_eq!(
        gone.status(),
        404,
        "a pod never bound to a node goes at once"
    );
}

#[test]
fn a_deployment_is_created_read_replaced_and_deleted() {
    let s = TestServer::start();
    let c = s.client();
    let r = post(&s, DEPLOYMENTS, &deployment("web", 2));
    assert_eq!(r.status(), StatusCode::CREATED);
    let created = body(r);
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created["metadata"]["uid"].is_string());
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let got = body(c.get(s.at(&format!("{DEPLOYMENTS}/web"))).send().unwrap());
    assert_eq!(got["metadata"]["resourceVersion"], rv);
    assert_eq!(got["spec"]["replicas"], 2);

    // PUT with the current resourceVersion succeeds; the same again is a 409 Conflict.
    let mut changed = got.clone();
    changed["spec"]["replicas"] = json!(3);
    let r = c
        .put(s.at(&format!("{DEPLOYMENTS}/web")))
        .json(&changed)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let updated = body(r);
    assert_eq!(updated["spec"]["replicas"], 3);
    assert_eq!(updated["metadata"]["generation"], 2);
    let r = c
        .put(s.at(&format!("{DEPLOYMENTS}/web")))
        .json(&changed)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(body(r)["reason"], "Conflict");

    let r = c
        .delete(s.at(&format!("{DEPLOYMENTS}/web")))
        .json(&json!({"propagationPolicy": "Background"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r)["metadata"]["name"], "web");
    let r = c.get(s.at(&format!("{DEPLOYMENTS}/web"))).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let status = body(r);
    assert_eq!(status["message"], "deployments.apps \"web\" not found");
    assert_eq!(status["details"]["group"], "apps");
}

#[test]
fn yaml_bodies_and_dry_run_create() {
    let s = TestServer::start();
    let c = s.client();
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n";
    let r = c
        .post(s.at("/api/v1/namespaces"))
        .header("Content-Type", "application/yaml")
        .body(yaml)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body(r)["metadata"]["name"], "team-a");

    let before = s.revision();
    let r = c
        .post(s.at(&format!("{PODS}?dryRun=All")))
        .json(&pod("dry", json!({})))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(s.revision(), before, "a dry run stores nothing");
    let r = c.get(s.at(&format!("{PODS}/dry"))).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn lists_filter_by_selectors_page_with_continue_and_read_exact_revisions() {
    let s = TestServer::start();
    let c = s.client();
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let r = post(&s, PODS, &pod(name, json!({"tier": tier})));
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all = body(c.get(s.at(PODS)).send().unwrap());
    assert_eq!(all["kind"], "PodList");
    assert_eq!(all["apiVersion"], "v1");
    assert_eq!(names(&all), ["a", "b", "c"]);
    let list_rv = all["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let web = body(
        c.get(s.at(&format!("{PODS}?labelSelector=tier%3Dweb")))
            .send()
            .unwrap(),
    );
    assert_eq!(names(&web), ["a", "b"]);
    let not_web = body(
        c.get(s.at(&format!("{PODS}?labelSelector=tier+notin+%28web%29")))
            .send()
            .unwrap(),
    );
    assert_eq!(names(&not_web), ["c"]);
    let by_name = body(
        c.get(s.at(&format!("{PODS}?fieldSelector=metadata.name%3Db")))
            .send()
            .unwrap(),
    );
    assert_eq!(names(&by_name), ["b"]);

    let page1 = body(c.get(s.at(&format!("{PODS}?limit=2"))).send().unwrap());
    assert_eq!(names(&page1), ["a", "b"]);
    assert_eq!(page1["metadata"]["remainingItemCount"], 1);
    let token = page1["metadata"]["continue"].as_str().unwrap();
    let page2 = body(
        c.get(s.at(PODS))
            .query(&[("limit", "2"), ("continue", token)])
            .send()
            .unwrap(),
    );
    assert_eq!(names(&page2), ["c"]);
    assert!(page2["metadata"].get("continue").is_none());
    assert!(page2["metadata"].get("remainingItemCount").is_none());
    let one = body(c.get(s.at(&format!("{PODS}?limit=1"))).send().unwrap());
    assert_eq!(one["metadata"]["remainingItemCount"], 2);
    let token = one["metadata"]["continue"].as_str().unwrap();
    let two = body(
        c.get(s.at(PODS))
            .query(&[("limit", "1"), ("continue", token)])
            .send()
            .unwrap(),
    );
    assert_eq!(names(&two), ["b"]);
    assert_eq!(two["metadata"]["remainingItemCount"], 1);
    // With a selector the count is unknown, and left out (as kube-apiserver does).
    let selected = body(
        c.get(s.at(&format!("{PODS}?limit=1&labelSelector=tier%3Dweb")))
            .send()
            .unwrap(),
    );
    assert_eq!(names(&selected), ["a"]);
    assert!(selected["metadata"]["continue"].is_string());
    assert!(selected["metadata"].get("remainingItemCount").is_none());

    // Delete one; an exact read at the old revision still sees it.
    let r = c.delete(s.at(&format!("{PODS}/a"))).send().unwrap();
    assert!(r.status().is_success());
    let exact = body(
        c.get(s.at(PODS))
            .query(&[
                ("resourceVersion", list_rv.as_str()),
                ("resourceVersionMatch", "Exact"),
            ])
            .send()
            .unwrap(),
    );
    assert_eq!(names(&exact), ["a", "b", "c"]);
    let any = body(
        c.get(s.at(&format!("{PODS}?resourceVersion=0")))
            .send()
            .unwrap(),
    );
    assert_eq!(names(&any), ["b", "c"]);
    let cluster_wide = body(c.get(s.at("/api/v1/pods")).send().unwrap());
    assert_eq!(names(&cluster_wide), ["b", "c"]);

    let r = c
        .delete(s.at(&format!("{PODS}?labelSelector=tier%3Dweb")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(names(&body(r)), ["b"]);
    assert_eq!(names(&body(c.get(s.at(PODS)).send().unwrap())), ["c"]);
}

#[test]
fn tables_have_kube_apiserver_columns_and_partial_object_metadata() {
    let s = TestServer::start();
    let c = s.client();
    post(&s, PODS, &pod("web-1", json!({"app": "web"})));
    post(&s, DEPLOYMENTS, &deployment("web", 2));
    let columns = |v: &Value| -> Vec<String> {
        v["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let t = body(
        c.get(s.at(&format!("{PODS}?limit=500")))
            .header("Accept", TABLE)
            .send()
            .unwrap(),
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        columns(&t),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(
        t["rows"][0]["cells"].as_array().unwrap()[..4],
        [json!("web-1"), json!("0/1"), json!("Pending"), json!("0")]
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["app"], "web");

    let t = body(
        c.get(s.at(DEPLOYMENTS))
            .header("Accept", TABLE)
            .send()
            .unwrap(),
    );
    assert_eq!(
        columns(&t),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[1], "0/2");
    assert_eq!(cells[5], "nginx");
    assert_eq!(cells[6], "nginx:1.25");
    assert_eq!(cells[7], "app=web");

    let one = body(
        c.get(s.at("/api/v1/namespaces/default"))
            .header("Accept", TABLE)
            .send()
            .unwrap(),
    );
    assert_eq!(columns(&one), ["Name", "Status", "Age"]);
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    for path in [
        "/api/v1/nodes",
        "/api/v1/events",
        "/apis/coordination.k8s.io/v1/leases",
        "/apis/apps/v1/replicasets",
    ] {
        let t = body(c.get(s.at(path)).header("Accept", TABLE).send().unwrap());
        assert_eq!(t["kind"], "Table", "{path}");
    }
}

/// Lines of a watch response, read on a thread so the test can wait with a deadline.
fn watch_lines(resp: Response) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(resp).lines().map_while(Result::ok) {
            if tx
                .send(serde_json::from_str(&line).expect("one JSON event per line"))
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

fn next(rx: &mpsc::Receiver<Value>) -> Value {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a watch event")
}

#[test]
fn a_watch_streams_events_after_its_revision_with_bookmarks_and_ends_on_timeout() {
    let s = TestServer::start_with(ApiServerOptions::default(), |o| {
        o.bookmark_interval = Duration::from_millis(50);
    });
    let c = s.client();
    post(&s, PODS, &pod("before", json!({})));
    let list = body(c.get(s.at(PODS)).send().unwrap());
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = c
        .get(s.at(PODS))
        .query(&[
            ("watch", "true"),
            ("resourceVersion", rv.as_str()),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", "5"),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let rx = watch_lines(resp);
    post(&s, PODS, &pod("after", json!({})));
    let added = eventually(10, "ADDED after", || {
        let ev = next(&rx);
        (ev["type"] == "ADDED").then_some(ev)
    });
    assert_eq!(
        added["object"]["metadata"]["name"], "after",
        "nothing before {rv}"
    );
    let bookmark = eventually(10, "a BOOKMARK", || {
        let ev = next(&rx);
        (ev["type"] == "BOOKMARK").then_some(ev)
    });
    let bm_rv: u64 = bookmark["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let added_rv: u64 = added["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(bm_rv >= added_rv);
    c.delete(s.at(&format!("{PODS}/after"))).send().unwrap();
    let deleted = eventually(10, "DELETED", || {
        let ev = next(&rx);
        (ev["type"] == "DELETED").then_some(ev)
    });
    assert_eq!(deleted["object"]["metadata"]["name"], "after");
    // timeoutSeconds closes the stream.
    eventually(15, "the stream to close", || {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(()),
            _ => None,
        }
    });
}

#[test]
fn a_table_watch_sends_one_row_tables() {
    let s = TestServer::start();
    let c = s.client();
    let resp = c
        .get(s.at(&format!("{DEPLOYMENTS}?watch=true&timeoutSeconds=5")))
        .header("Accept", TABLE)
        .send()
        .unwrap();
    let rx = watch_lines(resp);
    post(&s, DEPLOYMENTS, &deployment("web", 1));
    let ev = next(&rx);
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["kind"], "Table");
    assert_eq!(ev["object"]["rows"][0]["cells"][0], "web");
}

#[test]
fn a_watch_from_a_compacted_revision_gets_a_410_error_event() {
    let opts = ApiServerOptions {
        watch_cache_window: 2,
        ..Default::default()
    };
    let s = TestServer::start_with(opts, |_| {});
    for i in 0..5 {
        post(&s, PODS, &pod(&format!("p{i}"), json!({})));
    }
    let resp = s
        .client()
        .get(s.at(&format!("{PODS}?watch=1&resourceVersion=1")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let rx = watch_lines(resp);
    let ev = next(&rx);
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
}

#[test]
fn bad_input_is_a_status_and_stores_nothing() {
    let s = TestServer::start_with(ApiServerOptions::default(), |o| {
        o.max_request_bytes = 64 * 1024;
    });
    let c = s.client();
    assert_eq!(
        post(&s, DEPLOYMENTS, &deployment("web", 1)).status(),
        StatusCode::CREATED
    );
    let web = body(c.get(s.at(&format!("{DEPLOYMENTS}/web"))).send().unwrap());
    let mut stale = web.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let mut unknown = deployment("x", 1);
    unknown["spec"]["replica"] = json!(2);
    let mut invalid = deployment("bad", 1);
    invalid["spec"]["template"]["spec"]["containers"] = json!([]);
    let mut elsewhere = deployment("y", 1);
    elsewhere["metadata"]["namespace"] = json!("kube-system");
    let huge = deployment(&"x".repeat(100 * 1024), 1);

    struct Case {
        what: &'static str,
        method: &'static str,
        path: String,
        content_type: &'static str,
        body: Vec<u8>,
        code: u16,
        reason: &'static str,
    }
    let json_body = |v: &Value| serde_json::to_vec(v).unwrap();
    let cases = vec![
        Case {
            what: "malformed JSON",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "application/json",
            body: b"{\"kind\":".to_vec(),
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "malformed YAML",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "application/yaml",
            body: b"kind: [unclosed".to_vec(),
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "a body that is not an object",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "application/json",
            body: b"[1,2]".to_vec(),
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "a Pod posted to deployments",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "application/json",
            body: json_body(&pod("p", json!({}))),
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "a namespace mismatch",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "application/json",
            body: json_body(&elsewhere),
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "an unknown field, strict",
            method: "POST",
            path: format!("{DEPLOYMENTS}?fieldValidation=Strict"),
            content_type: "application/json",
            body: json_body(&unknown),
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "an invalid object",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "application/json",
            body: json_body(&invalid),
            code: 422,
            reason: "Invalid",
        },
        Case {
            what: "malformed protobuf",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "application/vnd.kubernetes.protobuf",
            body: b"k8s\0\xff\xff".to_vec(),
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "protobuf without the k8s magic",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "application/vnd.kubernetes.protobuf",
            body: b"{}".to_vec(),
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "a body over the limit",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "application/json",
            body: json_body(&huge),
            code: 413,
            reason: "RequestEntityTooLarge",
        },
        Case {
            what: "an unsupported media type",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "text/plain",
            body: b"hello".to_vec(),
            code: 415,
            reason: "UnsupportedMediaType",
        },
        Case {
            what: "an existing name",
            method: "POST",
            path: DEPLOYMENTS.into(),
            content_type: "application/json",
            body: json_body(&deployment("web", 1)),
            code: 409,
            reason: "AlreadyExists",
        },
        Case {
            what: "a PUT whose name differs from the URL",
            method: "PUT",
            path: format!("{DEPLOYMENTS}/other"),
            content_type: "application/json",
            body: json_body(&web),
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "a PUT with a stale resourceVersion",
            method: "PUT",
            path: format!("{DEPLOYMENTS}/web"),
            content_type: "application/json",
            body: json_body(&stale),
            code: 409,
            reason: "Conflict",
        },
        Case {
            what: "a bad label selector",
            method: "GET",
            path: format!("{PODS}?labelSelector=a%20in%20b"),
            content_type: "application/json",
            body: vec![],
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "an unsupported field selector",
            method: "GET",
            path: format!("{PODS}?fieldSelector=spec.bogus%3D1"),
            content_type: "application/json",
            body: vec![],
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "an unknown resource",
            method: "GET",
            path: "/api/v1/widgets".into(),
            content_type: "application/json",
            body: vec![],
            code: 404,
            reason: "NotFound",
        },
        Case {
            what: "a bad dryRun",
            method: "POST",
            path: format!("{DEPLOYMENTS}?dryRun=Some"),
            content_type: "application/json",
            body: json_body(&deployment("z", 1)),
            code: 400,
            reason: "BadRequest",
        },
        Case {
            what: "a POST to a cluster-wide namespaced collection",
            method: "POST",
            path: "/api/v1/pods".into(),
            content_type: "application/json",
            body: json_body(&pod("p", json!({}))),
            code: 405,
            reason: "MethodNotAllowed",
        },
    ];
    let before = s.revision();
    for case in cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let r = c
            .request(method, s.at(&case.path))
            .header("Content-Type", case.content_type)
            .body(case.body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), case.code, "{}", case.what);
        let status = body(r);
        assert_eq!(status["kind"], "Status", "{}", case.what);
        assert_eq!(status["status"], "Failure", "{}", case.what);
        assert_eq!(status["reason"], case.reason, "{}: {status}", case.what);
        assert_eq!(status["code"], case.code, "{}", case.what);
    }
    assert_eq!(s.revision(), before, "nothing was stored");
    assert_eq!(
        body(c.get(s.at(&format!("{DEPLOYMENTS}/web"))).send().unwrap()),
        web,
        "web is unchanged"
    );
}

fn patch(s: &TestServer, path: &str, content_type: &str, body: Value) -> Response {
    s.client()
        .patch(s.at(path))
        .header("Content-Type", content_type)
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .unwrap()
}

#[test]
fn merge_json_and_strategic_patches_update_the_object() {
    let s = TestServer::start();
    post(&s, DEPLOYMENTS, &deployment("web", 2));
    let web = format!("{DEPLOYMENTS}/web");
    let r = patch(
        &s,
        &web,
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"tier": "front"}}}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body(r)["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );

    let r = patch(
        &s,
        &web,
        "application/json-patch+json",
        json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]),
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r)["spec"]["replicas"], 4);

    // `kubectl set image` sends this.
    let r = patch(
        &s,
        &web,
        "application/strategic-merge-patch+json",
        json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}],
                                               "containers": [{"image": "nginx:1.27", "name": "nginx"}]}}}}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let d = body(r);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["name"],
        "nginx"
    );
    assert_eq!(d["metadata"]["generation"], 3);

    // A failed JSON patch test, an unknown field, server-side apply: errors, nothing stored.
    let before = s.revision();
    let r = patch(
        &s,
        &web,
        "application/json-patch+json",
        json!([{"op": "test", "path": "/spec/replicas", "value": 9}]),
    );
    // Upstream's `applyJSPatch`: 422 Invalid, a fixed message, empty details.
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let status = body(r);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "the server rejected our request due to an error in our request"
    );
    assert_eq!(status["details"], json!({}));
    let r = patch(
        &s,
        &web,
        "application/json-patch+json",
        json!({"op": "remove", "path": "/spec"}),
    );
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "not a list of operations"
    );
    let r = patch(
        &s,
        &format!("{web}?fieldValidation=Strict"),
        "application/merge-patch+json",
        json!({"spec": {"replica": 1}}),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = patch(&s, &web, "application/apply-patch+cbor", json!({}));
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body(r)["reason"], "UnsupportedMediaType");
    let r = patch(
        &s,
        &web,
        "application/apply-patch+yaml",
        deployment("web", 1),
    );
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "apply needs a fieldManager"
    );
    let r = patch(
        &s,
        &format!("{DEPLOYMENTS}/missing"),
        "application/merge-patch+json",
        json!({}),
    );
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.revision(), before);
}

/// `kubectl label`, `kubectl scale` and `kubectl patch` at once on one object: each is applied
/// to the latest state inside the API server, so none gets a spurious 409 and none is lost.
#[test]
fn concurrent_patches_and_scales_of_one_object_all_succeed() {
    let s = TestServer::start();
    post(&s, DEPLOYMENTS, &deployment("web", 1));
    let web = format!("{DEPLOYMENTS}/web");
    let statuses: Vec<StatusCode> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|i| {
                let (s, web) = (&s, &web);
                scope.spawn(move || {
                    let r = if i % 4 == 0 {
                        patch(
                            s,
                            &format!("{web}/scale"),
                            "application/merge-patch+json",
                            json!({"spec": {"replicas": 3}}),
                        )
                    } else {
                        patch(
                            s,
                            web,
                            "application/merge-patch+json",
                            json!({"metadata": {"labels": {format!("l{i}"): "x"}}}),
                        )
                    };
                    r.status()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|c| *c == StatusCode::OK),
        "{statuses:?}"
    );
    let d = body(s.client().get(s.at(&web)).send().unwrap());
    let labels = d["metadata"]["labels"].as_object().unwrap();
    assert_eq!(
        labels.len(),
        1 + 12,
        "every label patch was kept: {labels:?}"
    );
    assert_eq!(d["spec"]["replicas"], 3);
}

/// A patch naming a stale `metadata.resourceVersion` is the caller's precondition: 409.
#[test]
fn a_patch_with_a_stale_resource_version_is_a_conflict() {
    let s = TestServer::start();
    let created = body(post(&s, DEPLOYMENTS, &deployment("web", 1)));
    let web = format!("{DEPLOYMENTS}/web");
    let rv = created["metadata"]["resourceVersion"].clone();
    let r = patch(
        &s,
        &web,
        "application/merge-patch+json",
        json!({"spec": {"replicas": 2}}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let r = patch(
        &s,
        &web,
        "application/merge-patch+json",
        json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": 5}}),
    );
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        body(r)["message"],
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[test]
fn the_scale_subresource_reads_and_writes_replicas() {
    let s = TestServer::start();
    post(&s, DEPLOYMENTS, &deployment("web", 2));
    let c = s.client();
    let scale_path = format!("{DEPLOYMENTS}/web/scale");
    let scale = body(c.get(s.at(&scale_path)).send().unwrap());
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=web");

    // `kubectl scale` sends a merge patch.
    let r = patch(
        &s,
        &scale_path,
        "application/merge-patch+json",
        json!({"spec": {"replicas": 5}}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r)["spec"]["replicas"], 5);
    let d = body(c.get(s.at(&format!("{DEPLOYMENTS}/web"))).send().unwrap());
    assert_eq!(d["spec"]["replicas"], 5);

    // `--current-replicas` uses GET + PUT: a stale resourceVersion is a 409.
    let mut put = body(c.get(s.at(&scale_path)).send().unwrap());
    put["spec"]["replicas"] = json!(3);
    let r = c.put(s.at(&scale_path)).json(&put).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r)["spec"]["replicas"], 3);
    let r = c.put(s.at(&scale_path)).json(&put).send().unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);

    let r = patch(
        &s,
        &scale_path,
        "application/merge-patch+json",
        json!({"spec": {"replicas": -1}}),
    );
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = c
        .get(s.at("/api/v1/namespaces/default/pods/x/scale"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn the_status_subresource_changes_only_status() {
    let s = TestServer::start();
    post(&s, DEPLOYMENTS, &deployment("web", 2));
    let r = patch(
        &s,
        &format!("{DEPLOYMENTS}/web/status"),
        "application/merge-patch+json",
        json!({"spec": {"replicas": 9}, "status": {"replicas": 2, "readyReplicas": 1}}),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let d = body(r);
    assert_eq!(d["status"]["readyReplicas"], 1);
    assert_eq!(d["spec"]["replicas"], 2, "spec is kept on a status update");
}

#[test]
fn services_are_an_empty_read_only_resource_until_they_are_stored() {
    let s = TestServer::start();
    let c = s.client();
    let list = body(
        c.get(s.at("/api/v1/namespaces/default/services"))
            .send()
            .unwrap(),
    );
    assert_eq!(list["kind"], "ServiceList");
    assert_eq!(list["items"], json!([]));
    let t = body(
        c.get(s.at("/api/v1/services"))
            .header("Accept", TABLE)
            .send()
            .unwrap(),
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["columnDefinitions"][1]["name"], "Type");
    let r = c
        .get(s.at("/api/v1/namespaces/default/services/x"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = post(
        &s,
        "/api/v1/namespaces/default/services",
        &json!({"kind": "Service"}),
    );
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// kubectl's `Kubectl-Command` header names the span after the command the user ran, and is
/// kept as the `kubectl.command` attribute.
#[test]
fn a_write_is_named_after_the_kubectl_command_when_kubectl_sends_it() {
    let s = TestServer::start();
    post(&s, DEPLOYMENTS, &deployment("web", 1));
    let r = s
        .client()
        .patch(s.at(&format!("{DEPLOYMENTS}/web")))
        .header("User-Agent", "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07")
        .header("Kubectl-Command", "kubectl set image")
        .header("Content-Type", "application/strategic-merge-patch+json")
        .body(r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let span = eventually(10, "the set image span", || {
        s.telemetry
            .span_store()
            .spans()
            .into_iter()
            .find(|sp| sp.name == "kubectl set image deployments/web")
    });
    assert_eq!(
        span.attribute("kubectl.command").map(|v| v.to_string()),
        Some("kubectl set image".to_string())
    );
    assert!(span.is_root());
}

#[test]
fn a_write_is_one_trace_named_after_the_client_verb_and_continues_a_traceparent() {
    let s = TestServer::start();
    let r = s
        .client()
        .post(s.at(DEPLOYMENTS))
        .header(
            "User-Agent",
            "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07",
        )
        .json(&deployment("web", 1))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let spans = eventually(10, "the request's spans", || {
        let spans = s.telemetry.span_store().spans();
        spans
            .iter()
            .any(|sp| sp.name == "kubectl create deployments/web")
            .then_some(spans)
    });
    let root = spans
        .iter()
        .find(|sp| sp.name == "kubectl create deployments/web")
        .unwrap();
    assert!(root.is_root());
    assert_eq!(&*root.service_name, "kube-apiserver");
    assert!(
        spans
            .iter()
            .any(|sp| sp.trace_id == root.trace_id && &*sp.service_name == "etcd"),
        "the store write is a child span in the same trace"
    );

    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = s
        .client()
        .post(s.at(PODS))
        .header("traceparent", traceparent)
        .header("User-Agent", "kubectl/v1.32.4")
        .json(&pod("traced", json!({})))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let span = eventually(10, "the continued span", || {
        s.telemetry
            .span_store()
            .spans()
            .into_iter()
            .find(|sp| sp.name == "kubectl create pods/traced")
    });
    assert_eq!(
        span.trace_id.to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert!(!span.is_root());
}

#[test]
fn server_side_apply_creates_merges_and_refuses_another_managers_change() {
    let s = TestServer::start();
    let path = format!("{DEPLOYMENTS}/web3?fieldManager=kubectl&force=false");
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web3\n";
    let r = s
        .client()
        .patch(s.at(&path.replace("web3?", "other?")))
        .header("Content-Type", "application/apply-patch+yaml")
        .body(yaml)
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "the name must match the URL"
    );
    let r = patch(
        &s,
        &path,
        "application/apply-patch+yaml",
        deployment("web3", 2),
    );
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = patch(
        &s,
        &path,
        "application/apply-patch+yaml",
        deployment("web3", 4),
    );
    assert_eq!(r.status(), StatusCode::OK);
    let d = body(r);
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["generation"], 2);
    let managers = d["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(managers.len(), 1);
    assert_eq!(managers[0]["manager"], "kubectl");
    assert_eq!(managers[0]["operation"], "Apply");
    assert_eq!(managers[0]["fieldsV1"]["f:spec"]["f:replicas"], json!({}));

    // Another manager changing kubectl's field: 409, nothing stored.
    let before = s.revision();
    let r = patch(
        &s,
        &path.replace("fieldManager=kubectl", "fieldManager=other"),
        "application/apply-patch+yaml",
        deployment("web3", 6),
    );
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let status = body(r);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"kubectl\"", "field": ".spec.replicas"})
    );
    assert_eq!(s.revision(), before, "nothing stored");
}

// ---- OpenAPI v3 documents and pods/log ----

#[test]
fn openapi_documents_are_named_by_their_hash_and_cached_as_kube_apiserver_does() {
    let s = TestServer::start();
    support::http_server::install_crypto_provider();
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| client.get(s.at(path)).bearer_auth(TOKEN).send().unwrap();
    let index = body(get("/openapi/v3"));
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = url.split_once("?hash=").unwrap().1.to_string();
    assert_eq!(hash.len(), 128);

    let r = get(&url);
    assert_eq!(r.status(), StatusCode::OK);
    let header = |r: &Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(header(&r, "etag"), Some(format!("\"{hash}\"")));
    assert_eq!(
        header(&r, "cache-control").as_deref(),
        Some("public, immutable")
    );
    assert!(header(&r, "expires").is_some());
    let doc = body(r);
    assert_eq!(
        doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
            ["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );

    let stale = get("/openapi/v3/apis/apps/v1?hash=0123");
    assert_eq!(stale.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header(&stale, "location"), Some(url.clone()));
    let unchanged = client
        .get(s.at("/openapi/v3/apis/apps/v1"))
        .bearer_auth(TOKEN)
        .header("If-None-Match", format!("\"{hash}\""))
        .send()
        .unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        get("/openapi/v3/apis/batch/v1").status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn the_log_of_an_unscheduled_pod_is_empty_and_an_unknown_node_is_not_found() {
    let s = TestServer::start();
    assert_eq!(
        post(&s, PODS, &pod("pending", json!({}))).status(),
        StatusCode::CREATED
    );
    let r = s
        .client()
        .get(s.at(&format!("{PODS}/pending/log")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().unwrap(), "");

    let mut bound = pod("bound", json!({}));
    bound["spec"]["nodeName"] = json!("node-9");
    assert_eq!(post(&s, PODS, &bound).status(), StatusCode::CREATED);
    let r = s
        .client()
        .get(s.at(&format!("{PODS}/bound/log")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(r)["message"], "nodes \"node-9\" not found");

    let r = s
        .client()
        .get(s.at(&format!("{PODS}/pending/log?tailLines=-1")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .client()
        .get(s.at(&format!("{PODS}/missing/log")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(r)["message"], "pods \"missing\" not found");
}
