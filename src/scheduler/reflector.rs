//! The scheduler's pod list-watches: client-go's reflector, without a typed cache.
//!
//! [`crate::informer`] keeps a cache of every object and hands each handler the object of
//! every event, a deleted one included. The scheduler's caches are its snapshot and its
//! queue, and a pod that leaves a watch (deleted, or bound: it stops matching
//! `spec.nodeName=`) only needs its key. So this reflector passes a pod on only when it is
//! added or changed — the ApiServer's own `Arc<Pod>`, never a copy — and remembers nothing
//! but each key's resourceVersion (to report the differences after a relist).
//!
//! The protocol is the informer's: **list** with the field selector (the first list ends with
//! [`PodEvent::Synced`]); **watch** from the list's revision; on 410 Gone, a refused watch or
//! a closed stream, **relist** and report what changed meanwhile (new or changed pods as
//! upserts, vanished keys as deletes). A failed list is retried with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use super::helpers::pod_key;
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::{Kind, KindOf, Object};
use crate::apiserver::{ApiServer, List, ListVersion, Watch, WatchEvent, WatchFrom};

const LIST_BACKOFF_START: Duration = Duration::from_millis(100);
const LIST_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One change to the set of pods a reflector watches.
#[derive(Clone, Debug)]
pub enum PodEvent {
    /// A pod was added or changed.
    Upsert(Arc<Pod>),
    /// A pod left the set (deleted, or no longer matches the selector): its key.
    Deleted(String),
    /// The first list has been reported: the set is complete. Sent once.
    Synced,
    /// A later list (after the watch was closed) has been reported.
    Relisted,
}

/// The pod inside `o`: the ApiServer's shared `Arc`, not a copy.
fn as_pod(o: &Object) -> Option<Arc<Pod>> {
    Pod::arc_from_object(o).cloned()
}

/// What the reflector knows: key → resourceVersion.
#[derive(Default)]
struct Known(HashMap<String, u64>);

impl Known {
    /// Record a pod; `false` if this exact revision was already known (a replay).
    fn upsert(&mut self, key: String, rv: u64) -> bool {
        self.0.insert(key, rv) != Some(rv)
    }
}

/// List and watch the pods matching `fields`, sending every change to `tx`, until `tx` is
/// closed. Run it as a task (`actix_rt::spawn`).
pub async fn run(api: Addr<ApiServer>, fields: FieldSelector, tx: mpsc::UnboundedSender<PodEvent>) {
    let mut known = Known::default();
    let mut synced = false;
    let mut backoff = LIST_BACKOFF_START;
    while !tx.is_closed() {
        let list = api
            .send(List {
                field_selector: fields.clone(),
                version: ListVersion::Latest,
                ..List::all(Kind::Pod)
            })
            .await;
        let list = match list {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::warn!(%fields, error = %e, ?backoff, "scheduler pod list failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(LIST_BACKOFF_MAX);
                continue;
            }
            Err(_) => return, // the API server is gone
        };
        // Report the differences with what was known (everything, the first time).
        let mut seen = HashMap::with_capacity(list.items.len());
        for o in &list.items {
            let Some(pod) = as_pod(o) else { continue };
            let key = pod_key(&pod);
            let rv = o.resource_version();
            seen.insert(key.clone(), rv);
            if known.0.get(&key) != Some(&rv) {
                let _ = tx.send(PodEvent::Upsert(pod));
            }
        }
        for key in known.0.keys() {
            if !seen.contains_key(key) {
                let _ = tx.send(PodEvent::Deleted(key.clone()));
            }
        }
        known.0 = seen;
        let _ = tx.send(if synced {
            PodEvent::Relisted
        } else {
            PodEvent::Synced
        });
        synced = true;

        let from = match list.resource_version {
            0 => WatchFrom::Now,
            rv => WatchFrom::Revision(rv),
        };
        // Release the listed objects now, not when the watch ends: at 100,000 pods they would
        // keep the API server's old versions alive for nothing.
        drop(list);
        let watch = api
            .send(Watch {
                kind: Kind::Pod,
                namespace: None,
                label_selector: LabelSelector::default(),
                field_selector: fields.clone(),
                from,
            })
            .await;
        let mut stream = match watch {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::info!(%fields, error = %e, "scheduler pod watch refused, relisting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(LIST_BACKOFF_MAX);
                continue;
            }
            Err(_) => return,
        };
        backoff = LIST_BACKOFF_START;
        while let Some(ev) = stream.rx.recv().await {
            let event = match ev {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    let Some(key) = o.as_pod().map(pod_key) else {
                        continue;
                    };
                    if !known.upsert(key, o.resource_version()) {
                        continue;
                    }
                    match as_pod(&o) {
                        Some(p) => PodEvent::Upsert(p),
                        None => continue,
                    }
                }
                WatchEvent::Deleted(o) => {
                    let Some(key) = o.as_pod().map(pod_key) else {
                        continue;
                    };
                    if known.0.remove(&key).is_none() {
                        continue;
                    }
                    PodEvent::Deleted(key)
                }
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(e) => {
                    tracing::info!(%fields, error = %e, "scheduler pod watch expired, relisting");
                    break;
                }
            };
            if tx.send(event).is_err() {
                return;
            }
        }
    }
}
