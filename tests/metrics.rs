//! `GET /metrics`: Prometheus text under upstream names, behind the token, counting the
//! requests made.

mod support;

use kubeactor::metrics::parse_text;
use support::http_server::{TestServer, TOKEN};

/// The value of `name` whose labels include all of `with`, or 0 when absent.
fn sample(text: &str, name: &str, with: &[(&str, &str)]) -> f64 {
    parse_text(text)
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"))
        .into_iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_requests() {
    let server = TestServer::start();
    let http = server.client();
    let scrape = || {
        let resp = http
            .get(server.at("/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        resp.text().unwrap()
    };
    let list_pods = [
        ("verb", "LIST"),
        ("resource", "pods"),
        ("scope", "namespace"),
        ("code", "200"),
    ];
    let before = sample(&scrape(), "apiserver_request_total", &list_pods);
    for _ in 0..3 {
        let resp = http
            .get(server.at("/api/v1/namespaces/default/pods"))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let missing = http
        .get(server.at("/api/v1/namespaces/default/pods/nope"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
    let text = scrape();
    assert_eq!(
        sample(&text, "apiserver_request_total", &list_pods) - before,
        3.0
    );
    assert!(
        sample(
            &text,
            "apiserver_request_total",
            &[("verb", "GET"), ("resource", "pods"), ("code", "404")]
        ) >= 1.0
    );
    assert!(
        sample(
            &text,
            "apiserver_request_duration_seconds_count",
            &[("verb", "LIST"), ("resource", "pods")]
        ) >= 3.0
    );
    // The system namespaces the server created are stored objects.
    assert!(
        sample(
            &text,
            "apiserver_storage_objects",
            &[("resource", "namespaces")]
        ) >= 4.0
    );
    assert!(
        sample(
            &text,
            "etcd_request_duration_seconds_count",
            &[("operation", "create"), ("type", "namespaces")]
        ) >= 4.0
    );
    assert!(text.contains("# TYPE apiserver_request counter"), "{text}");
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE apiserver_request_duration_seconds histogram"));
}

#[test]
fn metrics_need_the_token() {
    let server = TestServer::start();
    let _ = server.client(); // installs the TLS provider
    let resp = reqwest::blocking::get(server.at("/metrics")).unwrap();
    assert_eq!(resp.status(), 401);
}
