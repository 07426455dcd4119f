//! Informers: client-go's reflector + indexer + shared informer, over the ApiServer's typed
//! messages.
//!
//! An [`Informer<K>`] lists every `K` (`List`), then watches from the list's revision
//! (`Watch { from: Revision(rv) }`), and keeps a [`Store`] of `Arc<K>` with indexes by
//! namespace, by controller owner uid, and label lookup. Each change is pushed to its handlers
//! as an [`InformerEvent`] — into an actix [`Recipient`] or an mpsc channel that the consuming
//! actor adds as a stream.
//!
//! # The list-watch protocol (a state machine, as [`Phase`] names it)
//!
//! 1. **List**: `List` at the latest state. The result replaces the cache; the differences
//!    with what the cache held (adds, updates by resourceVersion, deletes) go to the handlers.
//!    The first list ends with [`InformerEvent::Synced`] and makes [`Informer::has_synced`]
//!    true. A failed list is retried with backoff (100 ms doubling to 30 s).
//! 2. **Watch** from the list's revision: every event updates the cache, then the handlers.
//! 3. On `WatchEvent::Error` (410 Gone: the watcher fell behind or the revision was
//!    compacted), a refused watch, or a closed stream: back to 1. Because the relist emits
//!    differences, a handler never misses a delete that happened while the watch was down.
//!
//! # Sharing
//!
//! [`SharedInformerFactory`] keeps one informer per kind; several controllers in the process
//! get the same `Arc<Informer<K>>`, each adding its own handler. That is one list-watch per
//! kind, however many controllers read it.
//!
//! The cache holds no copies: the ApiServer's `Object` holds each object as an `Arc<K>`, and
//! the informer keeps (and hands its handlers) that same `Arc`, so an object decoded once by
//! the ApiServer is shared by its cache, its watch events and every informer of every
//! component (kubelets run their own informers over the same `Arc`s).

pub mod store;

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Recipient};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::mpsc;

pub use self::store::{controller_uid, key_of, split_key, Cached, InformerEvent, Store};
use crate::api::selectors::FieldSelector;
use crate::api::{Kind, KindOf, Object};
use crate::apiserver::{
    ApiError, ApiServer, List, ObjectList, Watch, WatchEvent, WatchFrom, WatchStream,
};

/// Where an informer lists and watches. [`ApiSource`] in production; tests script one.
pub trait Source: Send + Sync + 'static {
    /// List every object (latest state).
    fn list(&self) -> BoxFuture<'static, Result<ObjectList, ApiError>>;
    /// Watch from a revision.
    fn watch(&self, from: WatchFrom) -> BoxFuture<'static, Result<WatchStream, ApiError>>;
    /// The source will never answer again (the API server actor has stopped, as at the
    /// daemon's shutdown): the loop ends instead of retrying. Default: never.
    fn gone(&self) -> bool {
        false
    }
}

/// The ApiServer as an informer's source: one kind, optionally one namespace, optionally a
/// field selector (a kubelet's pods: `spec.nodeName=<node>`).
#[derive(Clone)]
pub struct ApiSource {
    pub api: Addr<ApiServer>,
    pub kind: Kind,
    pub namespace: Option<String>,
    pub field_selector: FieldSelector,
}

impl Source for ApiSource {
    fn list(&self) -> BoxFuture<'static, Result<ObjectList, ApiError>> {
        let mut msg = List::all(self.kind);
        msg.namespace = self.namespace.clone();
        msg.field_selector = self.field_selector.clone();
        let req = self.api.send(msg);
        Box::pin(async move { req.await.map_err(ApiError::unreachable)? })
    }
    fn watch(&self, from: WatchFrom) -> BoxFuture<'static, Result<WatchStream, ApiError>> {
        let mut msg = Watch::all(self.kind);
        msg.namespace = self.namespace.clone();
        msg.field_selector = self.field_selector.clone();
        msg.from = from;
        let req = self.api.send(msg);
        Box::pin(async move { req.await.map_err(ApiError::unreachable)? })
    }
    fn gone(&self) -> bool {
        !self.api.connected()
    }
}

/// Where an informer delivers events.
pub enum Handler<K: Cached> {
    /// An actor: it implements `Handler<InformerEvent<K>>`.
    Recipient(Recipient<InformerEvent<K>>),
    /// A channel (e.g. added to an actor with `ctx.add_stream`).
    Channel(mpsc::UnboundedSender<InformerEvent<K>>),
}

impl<K: Cached> Handler<K> {
    /// Deliver; false if the receiver is gone (the handler is then dropped).
    fn deliver(&self, ev: InformerEvent<K>) -> bool {
        match self {
            Handler::Recipient(r) => {
                if !r.connected() {
                    return false;
                }
                r.do_send(ev);
                true
            }
            Handler::Channel(tx) => tx.send(ev).is_ok(),
        }
    }
}

/// Where the list-watch loop is (for logs and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    NotStarted,
    Listing,
    Watching,
    Stopped,
}

struct Shared<K: Cached> {
    kind: Kind,
    store: Store<K>,
    handlers: Mutex<Vec<Handler<K>>>,
    phase: Mutex<Phase>,
}

impl<K: Cached> Shared<K> {
    fn deliver(&self, events: Vec<InformerEvent<K>>) {
        if events.is_empty() {
            return;
        }
        let mut handlers = self.handlers.lock();
        handlers.retain(|h| events.iter().all(|e| h.deliver(e.clone())));
    }

    fn set_phase(&self, p: Phase) {
        *self.phase.lock() = p;
    }
}

/// One kind's informer. See the module documentation.
pub struct Informer<K: Cached> {
    shared: Arc<Shared<K>>,
    source: Arc<dyn Source>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Backoff between failed lists.
const LIST_BACKOFF_START: Duration = Duration::from_millis(100);
const LIST_BACKOFF_MAX: Duration = Duration::from_secs(30);

impl<K: Cached> Informer<K> {
    /// An informer over every `K` the API server holds.
    pub fn new(api: Addr<ApiServer>) -> Self {
        Self::with_source(Arc::new(ApiSource {
            api,
            kind: <K as KindOf>::KIND,
            namespace: None,
            field_selector: FieldSelector::default(),
        }))
    }

    /// An informer over any source.
    pub fn with_source(source: Arc<dyn Source>) -> Self {
        Informer {
            shared: Arc::new(Shared {
                kind: <K as KindOf>::KIND,
                store: Store::new(),
                handlers: Mutex::new(Vec::new()),
                phase: Mutex::new(Phase::NotStarted),
            }),
            source,
            task: Mutex::new(None),
        }
    }

    /// The cache (shared; clone it into the consuming actor as its lister).
    pub fn store(&self) -> Store<K> {
        self.shared.store.clone()
    }

    /// Whether the first list has been applied to the cache.
    pub fn has_synced(&self) -> bool {
        self.shared.store.has_synced()
    }

    pub fn phase(&self) -> Phase {
        *self.shared.phase.lock()
    }

    /// Add a handler. One added after the informer has synced is first told about every
    /// cached object (`Added`) and then `Synced`, as client-go's `AddEventHandler`; an
    /// object changing meanwhile may reach it twice, which key-enqueuing handlers absorb.
    pub fn add_handler(&self, handler: Handler<K>) {
        let mut handlers = self.shared.handlers.lock();
        if self.shared.store.has_synced() {
            for obj in self.shared.store.list() {
                handler.deliver(InformerEvent::Added(obj));
            }
            handler.deliver(InformerEvent::Synced);
        }
        handlers.push(handler);
    }

    /// Deliver to an actor.
    pub fn add_recipient(&self, r: Recipient<InformerEvent<K>>) {
        self.add_handler(Handler::Recipient(r));
    }

    /// Deliver to a new unbounded channel; returns its receiver.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<InformerEvent<K>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.add_handler(Handler::Channel(tx));
        rx
    }

    /// Start the list-watch loop on the current actix/tokio runtime (no-op if running).
    pub fn start(&self) {
        let mut task = self.task.lock();
        if task.is_some() {
            return;
        }
        let shared = self.shared.clone();
        let source = self.source.clone();
        *task = Some(actix_rt::spawn(run(shared, source)));
    }

    /// Stop the loop. The cache keeps its content.
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
        self.shared.set_phase(Phase::Stopped);
    }
}

impl<K: Cached> Drop for Informer<K> {
    fn drop(&mut self) {
        if let Some(t) = self.task.get_mut().take() {
            t.abort();
        }
    }
}

/// The typed object inside `obj`: the same `Arc` the ApiServer's cache holds, not a copy.
fn typed<K: Cached>(obj: &Object) -> Option<Arc<K>> {
    K::arc_from_object(obj).cloned()
}

/// The list-watch loop. Runs until aborted, or until its source is gone.
async fn run<K: Cached>(shared: Arc<Shared<K>>, source: Arc<dyn Source>) {
    let kind = shared.kind;
    let mut backoff = LIST_BACKOFF_START;
    loop {
        shared.set_phase(Phase::Listing);
        let list = match source.list().await {
            Ok(l) => l,
            Err(_) if source.gone() => break,
            Err(e) => {
                tracing::warn!(%kind, error = %e, ?backoff, "informer list failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(LIST_BACKOFF_MAX);
                continue;
            }
        };
        let rv = list.resource_version;
        let items = list.items.iter().filter_map(|o| typed::<K>(o)).collect();
        shared.deliver(shared.store.replace(items, rv));
        tracing::debug!(%kind, rv, objects = shared.store.len(), "informer listed");

        let from = if rv == 0 {
            WatchFrom::Now
        } else {
            WatchFrom::Revision(rv)
        };
        let mut stream = match source.watch(from).await {
            Ok(s) => s,
            Err(_) if source.gone() => break,
            Err(e) => {
                tracing::info!(%kind, error = %e, "informer watch refused, relisting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(LIST_BACKOFF_MAX);
                continue;
            }
        };
        backoff = LIST_BACKOFF_START;
        shared.set_phase(Phase::Watching);
        while let Some(ev) = stream.rx.recv().await {
            let out = match ev {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    typed::<K>(&o).and_then(|k| shared.store.upsert(k))
                }
                WatchEvent::Deleted(o) => typed::<K>(&o).and_then(|k| shared.store.delete(k)),
                WatchEvent::Bookmark(rv) => {
                    shared.store.bookmark(rv);
                    None
                }
                WatchEvent::Error(e) => {
                    tracing::info!(%kind, error = %e, "informer watch expired, relisting");
                    break;
                }
            };
            if let Some(ev) = out {
                shared.deliver(vec![ev]);
            }
        }
        tracing::debug!(%kind, "informer watch ended, relisting");
    }
    tracing::debug!(%kind, "the API server has stopped; the informer ends");
    shared.set_phase(Phase::Stopped);
}

/// Type-erased view of an informer, for the factory.
trait AnyInformer: Send + Sync {
    fn start(&self);
    fn stop(&self);
    fn has_synced(&self) -> bool;
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<K: Cached> AnyInformer for Informer<K> {
    fn start(&self) {
        Informer::start(self)
    }
    fn stop(&self) {
        Informer::stop(self)
    }
    fn has_synced(&self) -> bool {
        Informer::has_synced(self)
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// One informer per kind, shared by every controller of the process (client-go's
/// `SharedInformerFactory`). Ask for informers, add handlers, then [`start`](Self::start).
pub struct SharedInformerFactory {
    api: Addr<ApiServer>,
    informers: Mutex<HashMap<Kind, Arc<dyn AnyInformer>>>,
}

impl SharedInformerFactory {
    pub fn new(api: Addr<ApiServer>) -> Self {
        SharedInformerFactory {
            api,
            informers: Mutex::new(HashMap::new()),
        }
    }

    /// The informer of kind `K`, created on first use (not started).
    pub fn informer<K: Cached>(&self) -> Arc<Informer<K>> {
        let mut map = self.informers.lock();
        let entry = map
            .entry(<K as KindOf>::KIND)
            .or_insert_with(|| Arc::new(Informer::<K>::new(self.api.clone())));
        match entry.clone().as_any().downcast::<Informer<K>>() {
            Ok(i) => i,
            // Unreachable: a kind maps to exactly one type through `KindOf::KIND`.
            Err(_) => Arc::new(Informer::<K>::new(self.api.clone())),
        }
    }

    /// Start every informer asked for so far.
    pub fn start(&self) {
        self.informers.lock().values().for_each(|i| i.start());
    }

    /// Stop them all.
    pub fn stop(&self) {
        self.informers.lock().values().for_each(|i| i.stop());
    }

    /// Whether every informer asked for has synced (`WaitForCacheSync`).
    pub fn has_synced(&self) -> bool {
        self.informers.lock().values().all(|i| i.has_synced())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod(name: &str, rv: u64) -> Arc<Object> {
        Arc::new(Object::from(Pod {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some(name.into()),
                resource_version: Some(rv.to_string()),
                ..Default::default()
            },
            ..Default::default()
        }))
    }

    /// A scripted source: lists answer in order; each watch hands out the next prepared
    /// channel (the test keeps the senders and plays events into them).
    struct Scripted {
        lists: Mutex<VecDeque<ObjectList>>,
        watches: Mutex<VecDeque<mpsc::Receiver<WatchEvent>>>,
        watched_from: Mutex<Vec<WatchFrom>>,
    }

    impl Source for Scripted {
        fn list(&self) -> BoxFuture<'static, Result<ObjectList, ApiError>> {
            let next = self.lists.lock().pop_front();
            Box::pin(async move { next.ok_or_else(|| ApiError::Internal("no more lists".into())) })
        }
        fn watch(&self, from: WatchFrom) -> BoxFuture<'static, Result<WatchStream, ApiError>> {
            self.watched_from.lock().push(from);
            let rx = self.watches.lock().pop_front();
            Box::pin(async move {
                let rx = rx.ok_or_else(|| ApiError::Internal("no more watches".into()))?;
                Ok(WatchStream {
                    rx,
                    start_revision: 0,
                })
            })
        }
    }

    fn list(items: Vec<Arc<Object>>, rv: u64) -> ObjectList {
        ObjectList {
            items,
            resource_version: rv,
            continue_token: None,
            remaining: None,
        }
    }

    fn describe(ev: &InformerEvent<Pod>) -> String {
        match ev {
            InformerEvent::Added(p) => format!("add {}", key_of(&p.metadata)),
            InformerEvent::Updated { new, .. } => format!("update {}", key_of(&new.metadata)),
            InformerEvent::Deleted(p) => format!("delete {}", key_of(&p.metadata)),
            InformerEvent::Synced => "synced".into(),
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<InformerEvent<Pod>>) -> String {
        // Generous deadline: the informer task runs on the same runtime.
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an informer event")
            .expect("channel open");
        describe(&ev)
    }

    #[actix_rt::test]
    async fn lists_watches_and_relists_on_gone() {
        let (w1_tx, w1_rx) = mpsc::channel(16);
        let (w2_tx, w2_rx) = mpsc::channel(16);
        let source = Arc::new(Scripted {
            lists: Mutex::new(VecDeque::from([
                list(vec![pod("a", 5), pod("b", 6)], 10),
                // The relist: a changed, b deleted while the watch was down, d is new.
                list(vec![pod("a", 12), pod("c", 11), pod("d", 14)], 15),
            ])),
            watches: Mutex::new(VecDeque::from([w1_rx, w2_rx])),
            watched_from: Mutex::new(Vec::new()),
        });
        let informer = Informer::<Pod>::with_source(source.clone());
        let mut rx = informer.subscribe();
        informer.start();

        assert_eq!(next(&mut rx).await, "add default/a");
        assert_eq!(next(&mut rx).await, "add default/b");
        assert_eq!(next(&mut rx).await, "synced");
        assert!(informer.has_synced());

        w1_tx.send(WatchEvent::Added(pod("c", 11))).await.unwrap();
        assert_eq!(next(&mut rx).await, "add default/c");
        w1_tx
            .send(WatchEvent::Error(ApiError::too_old(11, 13)))
            .await
            .unwrap();

        let mut relist = vec![
            next(&mut rx).await,
            next(&mut rx).await,
            next(&mut rx).await,
        ];
        relist.sort();
        assert_eq!(
            relist,
            ["add default/d", "delete default/b", "update default/a"]
        );
        assert_eq!(
            *source.watched_from.lock(),
            [WatchFrom::Revision(10), WatchFrom::Revision(15)]
        );

        w2_tx.send(WatchEvent::Deleted(pod("d", 16))).await.unwrap();
        assert_eq!(next(&mut rx).await, "delete default/d");
        let store = informer.store();
        let keys: Vec<String> = store.list().iter().map(|p| key_of(&p.metadata)).collect();
        assert_eq!(keys, ["default/a", "default/c"]);
        assert_eq!(store.resource_version(), 16);

        // A late handler is told about the cache first.
        let mut late = informer.subscribe();
        assert_eq!(next(&mut late).await, "add default/a");
        assert_eq!(next(&mut late).await, "add default/c");
        assert_eq!(next(&mut late).await, "synced");
        informer.stop();
        assert_eq!(informer.phase(), Phase::Stopped);
    }

    /// At shutdown the API server stops first: an informer over it ends its loop instead of
    /// retrying (and warning) every backoff until the process exits.
    #[actix_rt::test]
    async fn an_informer_ends_when_its_api_server_stops() {
        use crate::apiserver::ApiServerOptions;
        use crate::store::StoreOptions;
        use crate::telemetry::Telemetry;

        let telemetry = Telemetry::in_memory(16);
        let store = crate::store::memory::open(StoreOptions::default());
        let arbiter = actix::Arbiter::new();
        let api = ApiServer::new(store.clone(), ApiServerOptions::default(), &telemetry)
            .unwrap()
            .start_on(&arbiter.handle())
            .await
            .unwrap();
        let informer = Informer::<Pod>::new(api);
        let mut rx = informer.subscribe();
        informer.start();
        assert_eq!(next(&mut rx).await, "synced");
        let phase = |want: Phase| {
            let informer = &informer;
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while informer.phase() != want {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "waited for {want:?}, the informer is {:?}",
                        informer.phase()
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        phase(Phase::Watching).await;
        arbiter.stop();
        phase(Phase::Stopped).await;
        crate::store::Store::close(&*store);
    }
}
