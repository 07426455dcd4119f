//! The engine-independent part of a store: revisions, compare-and-swap, group commit, the
//! event log, watchers and historical reads. An [`Engine`] only has to persist batches.
//!
//! # Layout
//!
//! ```text
//!             write() ──▶ [WriteState]  overlay (accepted, not durable) + pending queue
//!                              │ condvar
//!                              ▼
//!                     committer thread ──▶ Engine::commit(batch)   (one fsync per batch)
//!                              │
//!             ┌────────────────┴───────────────┐
//!             ▼                                ▼
//!     [Durable]  key → KeyValue        [Log]  event window, watchers, subscribers
//!      get() / range()                  watch() / subscribe() / range(at)
//! ```
//!
//! Three locks, always taken in this order when nested: `writes` → `durable` → `log`.
//! `write()` holds `writes` and briefly reads `durable`; the committer never holds `writes`
//! while it holds either of the others, so writers are never blocked by watcher delivery.
//!
//! # Worked example
//!
//! Empty store (revision 1), `event_window = 3`:
//!
//! ```text
//! write(Put a=1, Absent)        → rev 2   overlay {a: rev 2}; pending [2]
//! write(Put a=2, ModRevision 2) → rev 3   checked against the overlay, not the disk
//! write(Put a=9, ModRevision 2) → Conflict { current: Some(3) }   (no revision used)
//! -- committer: engine.commit([2, 3]) — one transaction --
//! durable {a: (create 2, mod 3, "2")}, revision 3, log [2, 3], overlay {}, acks sent
//! write(Put b=1) → 4; write(Delete a) → 5   (committed together or apart)
//! log [3, 4, 5] — event 2 was dropped, compacted_revision = 2
//! watch("", 1)      → Expired { requested: 1, compacted: 2 }
//! watch("", 2)      → replays 3, 4, 5, then live
//! range("", Some(3)): start from the current state {b}, undo 5 (Delete a: restore its prev,
//!                     a=2@3) and 4 (Put b, created: remove b) → {a=2@3}
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};

use super::*;

/// The durable part of a store. The [`CoreStore`] owns an engine and calls it from a single
/// thread (the committer), so an engine needs no locking of its own.
pub trait Engine: Send + 'static {
    /// Read the durable state: every key, and the revision of the last committed write (1 for
    /// an empty store). Called once, before any commit.
    fn load(&mut self) -> Result<(Vec<KeyValue>, Revision), StoreError>;

    /// Make `batch` durable, atomically (all of it or none of it survives a crash), and
    /// record `new_revision` (the revision of the batch's last event) as the current revision.
    /// Events are in revision order; a key may appear more than once (the last one wins).
    /// When this returns `Ok`, the batch must survive a crash.
    fn commit(&mut self, batch: &[Arc<Event>], new_revision: Revision) -> Result<(), StoreError>;

    /// The store is closing and will commit nothing more: finish background work (the WAL
    /// engine checkpoints everything into its backend and empties its log). Called once, on
    /// the committer thread, after the last commit; an error is logged. The default does
    /// nothing.
    fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<E: Engine + ?Sized> Engine for Box<E> {
    fn load(&mut self) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        (**self).load()
    }

    fn commit(&mut self, batch: &[Arc<Event>], new_revision: Revision) -> Result<(), StoreError> {
        (**self).commit(batch, new_revision)
    }

    fn close(&mut self) -> Result<(), StoreError> {
        (**self).close()
    }
}

/// A store over an engine: implements every [`Store`] contract (see the module docs of
/// [`crate::store`]) and leaves only persistence to the [`Engine`].
pub struct CoreStore {
    shared: Arc<Shared>,
    /// The committer thread; taken (and joined) by `close`.
    committer: Mutex<Option<JoinHandle<()>>>,
}

/// State shared between callers and the committer thread.
struct Shared {
    opts: StoreOptions,
    writes: Mutex<WriteState>,
    /// Signalled when `writes.pending` becomes non-empty or the state leaves `Open`.
    wake: Condvar,
    durable: RwLock<Durable>,
    log: Mutex<Log>,
    /// Mirrors of `Log::revision` / `Log::compacted` so that `revision()` and
    /// `compacted_revision()` take no lock.
    revision: AtomicU64,
    compacted: AtomicU64,
}

/// Whether the store accepts writes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Lifecycle {
    Open,
    /// `close()` was called: no new writes; the committer drains what is pending, then exits.
    Closing,
    /// An engine commit failed; nothing more is accepted (see the Failure contract).
    Failed(String),
}

/// Everything `write()` needs: guarded by one mutex held for microseconds.
struct WriteState {
    lifecycle: Lifecycle,
    /// The revision given to the last accepted write.
    last_assigned: Revision,
    /// Accepted-but-not-durable state of each key with a pending write: the state after the
    /// *latest* such write (`None`: deleted) and that write's revision. The committer removes
    /// an entry once the write that set it is durable — the durable map then says the same —
    /// and leaves it alone if a newer write replaced it meanwhile.
    overlay: HashMap<String, (Revision, Option<KeyValue>)>,
    /// Accepted writes, in revision order, waiting for the committer.
    pending: VecDeque<Pending>,
}

struct Pending {
    event: Arc<Event>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The durable state, as read by `get` and `range`.
struct Durable {
    kvs: BTreeMap<String, Stored>,
}

/// A key's durable value and revisions; the key is the map's (a [`KeyValue`] would hold it a
/// second time, for every object in the store).
#[derive(Clone, Debug)]
struct Stored {
    value: Bytes,
    create_revision: Revision,
    mod_revision: Revision,
}

impl Stored {
    fn of(kv: &KeyValue) -> Stored {
        Stored {
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
        }
    }

    fn key_value(&self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        }
    }
}

/// The event log and everyone who listens to it. A watcher is registered under this lock,
/// and the committer publishes under it, so a watcher sees every event exactly once.
struct Log {
    /// Every event with revision in `compacted + 1 ..= revision`, oldest first.
    events: VecDeque<Arc<Event>>,
    revision: Revision,
    compacted: Revision,
    watchers: Vec<Watcher>,
    subscribers: Vec<mpsc::UnboundedSender<Arc<Vec<Arc<Event>>>>>,
}

struct Watcher {
    prefix: String,
    /// Capacity `watch_buffer + 1`: the extra slot is kept free for the final
    /// [`WatchMessage::Expired`], so a slow watcher is always told why it was closed.
    tx: mpsc::Sender<WatchMessage>,
}

impl Watcher {
    /// Deliver `events` (already filtered). Returns `false` if the watcher must be dropped:
    /// its receiver is gone, or its buffer is full (it then gets `Expired`).
    fn deliver(&self, events: Vec<Arc<Event>>) -> bool {
        if self.tx.is_closed() {
            return false;
        }
        if self.tx.capacity() <= 1 {
            // Only the reserved slot is left: the watcher fell behind.
            let _ = self.tx.try_send(WatchMessage::Expired);
            return false;
        }
        self.tx.try_send(WatchMessage::Events(events)).is_ok()
    }
}

impl CoreStore {
    /// Load the engine's durable state and start the committer thread.
    pub fn new(mut engine: impl Engine, opts: StoreOptions) -> Result<Arc<CoreStore>, StoreError> {
        let (kvs, revision) = engine.load()?;
        let kvs: BTreeMap<String, Stored> = kvs
            .into_iter()
            .map(|kv| {
                let stored = Stored::of(&kv);
                (kv.key, stored)
            })
            .collect();
        if let Some(newest) = kvs.values().map(|kv| kv.mod_revision).max() {
            if newest > revision {
                return Err(StoreError::Engine(format!(
                    "inconsistent engine state: a key has mod_revision {newest} but the store revision is {revision}"
                )));
            }
        }
        let revision = revision.max(1);
        let shared = Arc::new(Shared {
            opts,
            writes: Mutex::new(WriteState {
                lifecycle: Lifecycle::Open,
                last_assigned: revision,
                overlay: HashMap::new(),
                pending: VecDeque::new(),
            }),
            wake: Condvar::new(),
            durable: RwLock::new(Durable { kvs }),
            // After a (re)start the window is empty: it begins at the recovered revision.
            log: Mutex::new(Log {
                events: VecDeque::new(),
                revision,
                compacted: revision,
                watchers: Vec::new(),
                subscribers: Vec::new(),
            }),
            revision: AtomicU64::new(revision),
            compacted: AtomicU64::new(revision),
        });
        let committer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("store-committer".into())
                .spawn(move || shared.run_committer(Box::new(engine)))
                .map_err(|e| StoreError::Engine(format!("cannot start committer thread: {e}")))?
        };
        Ok(Arc::new(CoreStore {
            shared,
            committer: Mutex::new(Some(committer)),
        }))
    }

    /// How many watchers are registered (closed ones are removed at the next commit).
    pub fn watcher_count(&self) -> usize {
        self.shared.log.lock().watchers.len()
    }
}

impl Shared {
    fn run_committer(&self, mut engine: Box<dyn Engine>) {
        self.commit_until_closed(&mut *engine);
        let closed = catch_unwind(AssertUnwindSafe(|| engine.close()))
            .unwrap_or_else(|_| Err(StoreError::Engine("storage engine panicked".into())));
        if let Err(e) = closed {
            tracing::error!(error = %e, "closing the storage engine failed");
        }
    }

    /// Commit batches until the store is closed and drained, or the engine fails.
    fn commit_until_closed(&self, engine: &mut dyn Engine) {
        let max_batch = self.opts.max_batch.max(1);
        loop {
            let batch: Vec<Pending> = {
                let mut w = self.writes.lock();
                while w.pending.is_empty() && w.lifecycle == Lifecycle::Open {
                    self.wake.wait(&mut w);
                }
                if w.pending.is_empty() {
                    return; // closing (or failed) and drained
                }
                let n = w.pending.len().min(max_batch);
                w.pending.drain(..n).collect()
            };
            let events: Vec<Arc<Event>> = batch.iter().map(|p| p.event.clone()).collect();
            let new_revision = events[events.len() - 1].revision();
            let result = catch_unwind(AssertUnwindSafe(|| engine.commit(&events, new_revision)))
                .unwrap_or_else(|_| Err(StoreError::Engine("storage engine panicked".into())));
            match result {
                Ok(()) => self.publish(batch, events, new_revision),
                Err(err) => {
                    let msg = match err {
                        StoreError::Engine(msg) => msg,
                        other => other.to_string(),
                    };
                    self.fail(batch, msg);
                    return;
                }
            }
        }
    }

    /// Make a committed batch visible, in this order: durable map, event log, subscribers,
    /// watchers, overlay cleanup, acknowledgements.
    fn publish(&self, batch: Vec<Pending>, events: Vec<Arc<Event>>, new_revision: Revision) {
        let mut durable = self.durable.write();
        for event in &events {
            match event.kind {
                // A create (no previous value) inserts its key; any other put replaces the
                // value under the key already there, which is not copied again.
                EventType::Put => match event
                    .prev
                    .as_ref()
                    .and_then(|_| durable.kvs.get_mut(&event.kv.key))
                {
                    Some(stored) => *stored = Stored::of(&event.kv),
                    None => {
                        durable
                            .kvs
                            .insert(event.kv.key.clone(), Stored::of(&event.kv));
                    }
                },
                EventType::Delete => {
                    durable.kvs.remove(&event.kv.key);
                }
            }
        }
        // Take the log before releasing the map, so `range(at)` (durable → log) always sees
        // the map and the log at the same revision.
        let mut log = self.log.lock();
        log.events.extend(events.iter().cloned());
        log.revision = new_revision;
        while log.events.len() > self.opts.event_window {
            if let Some(dropped) = log.events.pop_front() {
                log.compacted = dropped.revision();
            }
        }
        self.revision.store(new_revision, Ordering::Release);
        self.compacted.store(log.compacted, Ordering::Release);
        drop(durable);

        let events = Arc::new(events);
        log.subscribers.retain(|tx| tx.send(events.clone()).is_ok());
        log.watchers.retain(|watcher| {
            let matching: Vec<Arc<Event>> = events
                .iter()
                .filter(|e| e.kv.key.starts_with(&watcher.prefix))
                .cloned()
                .collect();
            if matching.is_empty() {
                !watcher.tx.is_closed()
            } else {
                watcher.deliver(matching)
            }
        });
        drop(log);

        {
            let mut w = self.writes.lock();
            for event in events.iter() {
                if let Some((rev, _)) = w.overlay.get(&event.kv.key) {
                    if *rev <= new_revision {
                        w.overlay.remove(&event.kv.key);
                    }
                }
            }
        }
        for p in batch {
            let _ = p.done.send(Ok(()));
        }
    }

    /// The engine failed: fail this batch and everything queued behind it, refuse new writes.
    fn fail(&self, batch: Vec<Pending>, msg: String) {
        tracing::error!(error = %msg, "store engine commit failed; refusing further writes");
        let queued: Vec<Pending> = {
            let mut w = self.writes.lock();
            w.lifecycle = Lifecycle::Failed(msg.clone());
            w.overlay.clear();
            w.pending.drain(..).collect()
        };
        for p in batch.into_iter().chain(queued) {
            let _ = p.done.send(Err(StoreError::Engine(msg.clone())));
        }
    }
}

/// The state `op` leaves the key in, and the event recording it.
fn apply(op: Op, current: Option<KeyValue>, revision: Revision) -> Result<Event, StoreError> {
    let key = op.key();
    let precondition = match &op {
        Op::Put { precondition, .. } | Op::Delete { precondition, .. } => *precondition,
    };
    let holds = match precondition {
        Precondition::None => true,
        Precondition::Absent => current.is_none(),
        Precondition::Exists => current.is_some(),
        Precondition::ModRevision(r) => current.as_ref().is_some_and(|kv| kv.mod_revision == r),
    };
    // Deleting a key that does not exist writes nothing, whatever the precondition: it is
    // reported as a conflict with `current: None` (the API server answers 404).
    let holds = holds && (current.is_some() || matches!(op, Op::Put { .. }));
    if !holds {
        return Err(StoreError::Conflict {
            key: key.to_string(),
            current: current.map(|kv| kv.mod_revision),
        });
    }
    let event = match op {
        Op::Put { key, value, .. } => Event {
            kind: EventType::Put,
            kv: KeyValue {
                key,
                value,
                create_revision: current.as_ref().map_or(revision, |kv| kv.create_revision),
                mod_revision: revision,
            },
            prev: current,
        },
        Op::Delete { .. } => {
            let prev = current.expect("checked above: a delete needs an existing key");
            Event {
                kind: EventType::Delete,
                kv: KeyValue {
                    mod_revision: revision,
                    ..prev.clone()
                },
                prev: Some(prev),
            }
        }
    };
    Ok(event)
}

/// Every entry of `kvs` whose key starts with `prefix`, in key order.
fn with_prefix<'a>(
    kvs: &'a BTreeMap<String, Stored>,
    prefix: &'a str,
) -> impl Iterator<Item = KeyValue> + 'a {
    kvs.range::<str, _>((
        std::ops::Bound::Included(prefix),
        std::ops::Bound::Unbounded,
    ))
    .take_while(move |(k, _)| k.starts_with(prefix))
    .map(|(key, stored)| stored.key_value(key))
}

impl Store for CoreStore {
    fn write(&self, op: Op) -> Result<PendingWrite, StoreError> {
        let shared = &*self.shared;
        let mut w = shared.writes.lock();
        match &w.lifecycle {
            Lifecycle::Open => {}
            Lifecycle::Closing => return Err(StoreError::Closed),
            Lifecycle::Failed(msg) => return Err(StoreError::Engine(msg.clone())),
        }
        let current = match w.overlay.get(op.key()) {
            Some((_, state)) => state.clone(),
            // `read_recursive` does not queue behind a committer waiting for the write lock
            // (which may itself wait for a long `range`): a write only ever waits for the
            // committer's short map update.
            None => shared
                .durable
                .read_recursive()
                .kvs
                .get(op.key())
                .map(|stored| stored.key_value(op.key())),
        };
        let revision = w.last_assigned + 1;
        let event = Arc::new(apply(op, current, revision)?);
        w.last_assigned = revision;
        let state = match event.kind {
            EventType::Put => Some(event.kv.clone()),
            EventType::Delete => None,
        };
        w.overlay.insert(event.kv.key.clone(), (revision, state));
        let (done, durable) = oneshot::channel();
        let prev = event.prev.clone();
        let was_idle = w.pending.is_empty();
        w.pending.push_back(Pending { event, done });
        drop(w);
        if was_idle {
            shared.wake.notify_one();
        }
        Ok(PendingWrite {
            revision,
            prev,
            durable,
        })
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self
            .shared
            .durable
            .read()
            .kvs
            .get(key)
            .map(|stored| stored.key_value(key)))
    }

    /// `at = Some(r)` is answered from the current state by undoing, newest first, every
    /// retained event with revision `> r` under the prefix: a put that created its key is
    /// undone by removing the key, any other event by restoring `Event::prev`. That needs
    /// every event after `r`, hence `compacted_revision() <= r <= revision()`.
    fn range(&self, prefix: &str, at: Option<Revision>) -> Result<RangeResult, StoreError> {
        let durable = self.shared.durable.read();
        let Some(at) = at else {
            return Ok(RangeResult {
                kvs: with_prefix(&durable.kvs, prefix).collect(),
                revision: self.shared.revision.load(Ordering::Acquire),
            });
        };
        let log = self.shared.log.lock();
        if at < log.compacted {
            return Err(StoreError::Expired {
                requested: at,
                compacted: log.compacted,
            });
        }
        if at > log.revision {
            return Err(StoreError::FutureRevision {
                requested: at,
                current: log.revision,
            });
        }
        let mut kvs: BTreeMap<String, KeyValue> = with_prefix(&durable.kvs, prefix)
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        drop(durable);
        for event in log.events.iter().rev() {
            if event.revision() <= at {
                break;
            }
            if !event.kv.key.starts_with(prefix) {
                continue;
            }
            match &event.prev {
                Some(prev) => kvs.insert(prev.key.clone(), prev.clone()),
                None => kvs.remove(&event.kv.key),
            };
        }
        Ok(RangeResult {
            kvs: kvs.into_values().collect(),
            revision: at,
        })
    }

    fn watch(&self, prefix: &str, from: Revision) -> Result<Watch, StoreError> {
        let mut log = self.shared.log.lock();
        if from < log.compacted {
            return Err(StoreError::Expired {
                requested: from,
                compacted: log.compacted,
            });
        }
        if from > log.revision {
            return Err(StoreError::FutureRevision {
                requested: from,
                current: log.revision,
            });
        }
        let (tx, rx) = mpsc::channel(self.shared.opts.watch_buffer + 1);
        let watcher = Watcher {
            prefix: prefix.to_string(),
            tx,
        };
        // Events are in revision order: skip to the first one after `from`.
        let start = log.events.partition_point(|e| e.revision() <= from);
        let replay: Vec<Arc<Event>> = log
            .events
            .range(start..)
            .filter(|e| e.kv.key.starts_with(prefix))
            .cloned()
            .collect();
        // The whole replay is one message, so it cannot overflow the buffer by itself.
        if replay.is_empty() || watcher.deliver(replay) {
            log.watchers.push(watcher);
        }
        Ok(Watch { rx })
    }

    fn subscribe(&self) -> CommitStream {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.log.lock().subscribers.push(tx);
        rx
    }

    fn revision(&self) -> Revision {
        self.shared.revision.load(Ordering::Acquire)
    }

    fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::Acquire)
    }

    fn close(&self) {
        {
            let mut w = self.shared.writes.lock();
            if w.lifecycle == Lifecycle::Open {
                w.lifecycle = Lifecycle::Closing;
            }
        }
        self.shared.wake.notify_all();
        let committer = self.committer.lock().take();
        if let Some(handle) = committer {
            let _ = handle.join();
        }
    }
}

impl Drop for CoreStore {
    fn drop(&mut self) {
        self.close();
    }
}
