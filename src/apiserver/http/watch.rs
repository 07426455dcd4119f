//! The watch stream: one JSON object per line, `{"type":"ADDED","object":{…}}`, over a
//! chunked response. Mirrors `k8s.io/apiserver/pkg/endpoints/handlers/watch.go`.
//!
//! * The stream ends after `timeoutSeconds` (kubectl and informers then re-watch from the last
//!   resourceVersion they saw), when the client goes away (the receiver is dropped, and the
//!   ApiServer's registry forgets the watcher), or after an ERROR event.
//! * With `allowWatchBookmarks=true`, a BOOKMARK carrying the current resourceVersion is sent
//!   every `bookmark_interval`. It is only sent once every event up to that revision has been
//!   written: the ApiServer fans a change out to watchers before it answers
//!   `CurrentRevision`, so draining the channel after the answer leaves nothing older behind.
//! * A watch asked for as a Table gets a one-row Table per event.
//! * Falling behind (or starting from a revision already compacted) is an ERROR event with a
//!   410 `Expired` Status; the client relists.

use std::time::Duration;

use std::sync::Arc;

use actix::Addr;
use actix_web::web::Bytes;
use futures::Stream;
use serde_json::json;
use tokio::time::{Instant, Interval};

use super::table::{self, ListMeta};
use crate::api::{Kind, Object};
use crate::apiserver::{ApiError, ApiServer, CurrentRevision, WatchEvent, WatchStream};

/// A watch without `timeoutSeconds` ends after this long (kube-apiserver picks between
/// `--min-request-timeout` and twice that, 30 to 60 minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// How one watch is encoded.
#[derive(Clone, Debug)]
pub struct Params {
    pub kind: Kind,
    /// `Some(apiVersion)` when the client asked for Tables.
    pub table: Option<&'static str>,
    pub bookmarks: bool,
    pub bookmark_interval: Duration,
    pub timeout: Duration,
}

/// One event as a line of JSON (with the trailing newline).
pub fn encode(event: &WatchEvent, kind: Kind, table_version: Option<&str>) -> Vec<u8> {
    let (kind_name, object) = match event {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        WatchEvent::Bookmark(rv) => {
            let bookmark = json!({
                "type": "BOOKMARK",
                "object": {
                    "kind": kind.name(),
                    "apiVersion": kind.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()},
                },
            });
            return line(&bookmark);
        }
        WatchEvent::Error(e) => {
            return line(&json!({"type": "ERROR", "object": e.to_status()}));
        }
    };
    match table_version {
        Some(api_version) => {
            let meta = ListMeta {
                resource_version: object.resource_version().to_string(),
                ..Default::default()
            };
            let t = table::table_bytes(
                kind,
                [&**object],
                &meta,
                api_version,
                jiff::Timestamp::now(),
            );
            let mut out = Vec::with_capacity(t.len() + 32);
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(kind_name.as_bytes());
            out.extend_from_slice(b"\",\"object\":");
            out.extend_from_slice(&t);
            out.extend_from_slice(b"}\n");
            out
        }
        None => {
            // Written by hand to serialize the (shared) object once, without a copy.
            let mut out = Vec::with_capacity(1024);
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(kind_name.as_bytes());
            out.extend_from_slice(b"\",\"object\":");
            let _ = serde_json::to_writer(&mut out, &**object);
            out.extend_from_slice(b"}\n");
            out
        }
    }
}

/// How many recently encoded events each HTTP worker thread keeps (see [`encode_shared`]).
const SHARED_ENCODINGS: usize = 64;

thread_local! {
    /// Events this worker thread encoded lately, by the shared object they carry.
    static ENCODED: std::cell::RefCell<std::collections::VecDeque<(Arc<Object>, &'static str, Bytes)>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
}

/// [`encode`], once per event rather than once per watcher: every watcher of a change gets
/// the same `Arc<Object>`, so the line encoded for the first watcher on this thread is reused
/// for the others (the entry holds the `Arc`, so a pointer match is the same object).
/// Tables are encoded per watcher (their AGE column is computed at sending time).
pub fn encode_shared(event: &WatchEvent, kind: Kind, table_version: Option<&str>) -> Bytes {
    let (tag, object) = match event {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        _ => return Bytes::from(encode(event, kind, table_version)),
    };
    if table_version.is_some() {
        return Bytes::from(encode(event, kind, table_version));
    }
    let hit = ENCODED.with(|cache| {
        cache
            .borrow()
            .iter()
            .find(|(o, t, _)| *t == tag && Arc::ptr_eq(o, object))
            .map(|(_, _, b)| b.clone())
    });
    if let Some(bytes) = hit {
        return bytes;
    }
    let bytes = Bytes::from(encode(event, kind, None));
    ENCODED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= SHARED_ENCODINGS {
            cache.pop_front();
        }
        cache.push_back((object.clone(), tag, bytes.clone()));
    });
    bytes
}

fn line(v: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    out
}

struct State {
    api: Addr<ApiServer>,
    stream: WatchStream,
    params: Params,
    /// When the watch ends (`timeoutSeconds`); one timer for the stream's whole life.
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    bookmarks: Option<Interval>,
    done: bool,
}

/// At most this many bytes of events already waiting are written as one chunk.
const COALESCE_BYTES: usize = 64 * 1024;

/// The body of a watch response.
pub fn events(
    api: Addr<ApiServer>,
    stream: WatchStream,
    params: Params,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let bookmarks = params.bookmarks.then(|| {
        let period = params.bookmark_interval.max(Duration::from_millis(1));
        tokio::time::interval_at(Instant::now() + period, period)
    });
    let state = State {
        api,
        deadline: Box::pin(tokio::time::sleep_until(Instant::now() + params.timeout)),
        stream,
        params,
        bookmarks,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        // Checked here too: the biased select below would never reach the timer on a
        // stream that always has an event waiting.
        if st.done || st.deadline.is_elapsed() {
            return None;
        }
        let kind = st.params.kind;
        let table = st.params.table;
        let bookmarks = &mut st.bookmarks;
        let rx = &mut st.stream.rx;
        let tick = async {
            match bookmarks.as_mut() {
                Some(i) => {
                    i.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        enum Next {
            Event(Option<WatchEvent>),
            Bookmark,
            Timeout,
        }
        // Biased: events first, so a busy stream never pays for polling its timers first.
        let next = tokio::select! {
            biased;
            ev = rx.recv() => Next::Event(ev),
            _ = tick => Next::Bookmark,
            _ = st.deadline.as_mut() => Next::Timeout,
        };
        match next {
            Next::Event(Some(ev)) => {
                st.done = matches!(ev, WatchEvent::Error(_));
                let first = encode_shared(&ev, kind, table);
                if st.done {
                    return Some((Ok(first), st));
                }
                // Events already waiting go out in the same chunk (one write instead of
                // many when the watcher is behind); nothing waits for more to arrive.
                let mut waiting = Vec::new();
                st.done =
                    drain_waiting(&mut st.stream.rx, &mut waiting, kind, table, COALESCE_BYTES);
                if waiting.is_empty() {
                    return Some((Ok(first), st));
                }
                let mut out = Vec::with_capacity(first.len() + waiting.len());
                out.extend_from_slice(&first);
                out.extend_from_slice(&waiting);
                Some((Ok(Bytes::from(out)), st))
            }
            Next::Event(None) | Next::Timeout => None,
            Next::Bookmark => {
                let rev = st.api.send(CurrentRevision).await.ok()?;
                let mut out = Vec::new();
                st.done = drain_waiting(&mut st.stream.rx, &mut out, kind, table, usize::MAX);
                if st.done {
                    return Some((Ok(Bytes::from(out)), st));
                }
                out.extend(encode(&WatchEvent::Bookmark(rev), kind, table));
                Some((Ok(Bytes::from(out)), st))
            }
        }
    })
}

/// Append the events already waiting in `rx`, encoded, to `out` until none is left or `out`
/// holds `limit` bytes. Returns `true` if one was an ERROR: it is the last, nothing follows.
fn drain_waiting(
    rx: &mut tokio::sync::mpsc::Receiver<WatchEvent>,
    out: &mut Vec<u8>,
    kind: Kind,
    table: Option<&str>,
    limit: usize,
) -> bool {
    while out.len() < limit {
        let Ok(ev) = rx.try_recv() else {
            break;
        };
        out.extend_from_slice(&encode_shared(&ev, kind, table));
        if matches!(ev, WatchEvent::Error(_)) {
            return true;
        }
    }
    false
}

/// A stream of a single ERROR event (a watch that could not start, e.g. 410 Gone).
pub fn error_only(e: &ApiError) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let bytes = encode(&WatchEvent::Error(e.clone()), Kind::Pod, None);
    futures::stream::once(async move { Ok(Bytes::from(bytes)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ns(name: &str, rv: &str) -> Arc<Object> {
        Arc::new(Object::from(Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }))
    }

    fn parse(bytes: &[u8]) -> serde_json::Value {
        assert_eq!(bytes.last(), Some(&b'\n'), "one event per line");
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn events_are_one_json_line_each() {
        let ev = parse(&encode(
            &WatchEvent::Added(ns("a", "5")),
            Kind::Namespace,
            None,
        ));
        assert_eq!(ev["type"], "ADDED");
        assert_eq!(ev["object"]["kind"], "Namespace");
        assert_eq!(ev["object"]["metadata"]["resourceVersion"], "5");
        let bm = parse(&encode(&WatchEvent::Bookmark(9), Kind::Pod, None));
        assert_eq!(
            bm,
            json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}}})
        );
        let err = parse(&encode(
            &WatchEvent::Error(ApiError::too_old(1, 10)),
            Kind::Pod,
            None,
        ));
        assert_eq!(err["type"], "ERROR");
        assert_eq!(err["object"]["code"], 410);
        assert_eq!(err["object"]["reason"], "Expired");
    }

    #[test]
    fn an_event_is_encoded_once_for_all_watchers_of_a_thread() {
        let obj = ns("a", "5");
        let first = encode_shared(&WatchEvent::Added(obj.clone()), Kind::Namespace, None);
        let second = encode_shared(&WatchEvent::Added(obj.clone()), Kind::Namespace, None);
        assert_eq!(first.as_ptr(), second.as_ptr(), "the same bytes, shared");
        let modified = encode_shared(&WatchEvent::Modified(obj.clone()), Kind::Namespace, None);
        assert_eq!(parse(&modified)["type"], "MODIFIED");
        let other = encode_shared(&WatchEvent::Added(ns("a", "5")), Kind::Namespace, None);
        assert_ne!(
            first.as_ptr(),
            other.as_ptr(),
            "another Arc is another object"
        );
        assert_eq!(first, other);
    }

    async fn api() -> Addr<ApiServer> {
        let store = crate::store::memory::open(Default::default());
        let telemetry = crate::telemetry::Telemetry::in_memory(16);
        ApiServer::new(store, Default::default(), &telemetry)
            .unwrap()
            .start()
            .await
            .unwrap()
    }

    fn params(timeout: Duration) -> Params {
        Params {
            kind: Kind::Namespace,
            table: None,
            bookmarks: false,
            bookmark_interval: Duration::from_secs(60),
            timeout,
        }
    }

    #[actix_rt::test]
    async fn events_already_waiting_go_out_in_one_chunk() {
        use futures::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for (name, rv) in [("a", "5"), ("b", "6"), ("c", "7")] {
            tx.send(WatchEvent::Added(ns(name, rv))).await.unwrap();
        }
        let stream = WatchStream {
            rx,
            start_revision: 4,
        };
        let mut body = Box::pin(events(api().await, stream, params(DEFAULT_TIMEOUT)));
        let chunk = body.next().await.unwrap().unwrap();
        let lines: Vec<serde_json::Value> =
            chunk.split_inclusive(|&b| b == b'\n').map(parse).collect();
        let names: Vec<_> = lines
            .iter()
            .map(|l| l["object"]["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"], "three events, in order, one write");
        drop(tx);
        assert!(body.next().await.is_none(), "ends when the watch is closed");
    }

    #[actix_rt::test]
    async fn a_watch_ends_at_its_timeout_even_while_events_keep_coming() {
        use futures::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let stream = WatchStream {
            rx,
            start_revision: 0,
        };
        let busy = actix_rt::spawn(async move {
            for rv in 1.. {
                if tx
                    .send(WatchEvent::Added(ns("a", &rv.to_string())))
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::task::yield_now().await;
            }
        });
        let body = events(api().await, stream, params(Duration::from_millis(20)));
        let chunks = tokio::time::timeout(Duration::from_secs(10), body.count())
            .await
            .expect("the stream ended at its timeout");
        assert!(chunks > 0);
        busy.abort();
    }

    #[test]
    fn table_watches_get_one_row_tables() {
        let ev = parse(&encode(
            &WatchEvent::Modified(ns("a", "7")),
            Kind::Namespace,
            Some("meta.k8s.io/v1"),
        ));
        assert_eq!(ev["type"], "MODIFIED");
        assert_eq!(ev["object"]["kind"], "Table");
        assert_eq!(ev["object"]["rows"].as_array().unwrap().len(), 1);
        assert_eq!(ev["object"]["metadata"]["resourceVersion"], "7");
    }
}
