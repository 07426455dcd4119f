//! The revisioned store: etcd's semantics on an embedded, durable engine.
//!
//! Only the [`ApiServer`](crate::apiserver::ApiServer) actor talks to a store; everything
//! else is a client of the API server. The store knows nothing about Kubernetes objects: keys
//! are strings such as `/registry/pods/default/web-1`, values are opaque bytes (the API
//! server stores serialized JSON).
//!
//! # Contracts
//!
//! * **Revision.** There is one global revision counter, starting at 1 for an empty store
//!   (like etcd, revision 1 is "nothing written yet"). Every successful write — put or delete —
//!   increments it by exactly one, and the new value is that write's revision. A key's
//!   `mod_revision` is the revision of the last write to it; its `create_revision` is the
//!   revision of the put that created it (after a delete, a new put starts a new life with a
//!   new `create_revision`). The API server uses `mod_revision` as `metadata.resourceVersion`.
//! * **Compare-and-swap.** A write carries a [`Precondition`]. It is checked against the
//!   latest state *including writes that are accepted but not yet durable*, so two writers
//!   racing on the same revision cannot both win: the second gets
//!   [`StoreError::Conflict`], never a lost update. A failed write uses no revision.
//!   Deleting a key that does not exist is a `Conflict` with `current: None`, whatever the
//!   precondition (the API server answers 404 Not Found).
//! * **Durability and group commit.** [`Store::write`] checks the precondition and assigns
//!   the revision at once (without I/O) and returns a [`PendingWrite`]; a single committer
//!   thread collects every write that arrived while the previous commit was in flight and
//!   commits them in ONE engine commit. For `redb` that commit is one frame appended to the
//!   write-ahead log ([`wal`]) followed by one `fdatasync`: the batch is durable when the
//!   `fdatasync` returns, whole or not at all (one frame, one CRC). Only then are the writes
//!   acknowledged (`PendingWrite::durable` resolves), made visible to
//!   [`Store::get`]/[`Store::range`], and delivered to watchers and subscribers. Writes are
//!   made visible in revision order, always as whole batches. The redb file itself is
//!   updated later, off the critical path, by checkpoints: a background thread applies the
//!   durable batches in large transactions (every `checkpoint_interval` or
//!   `checkpoint_events`, each committed with an fsync and recording the checkpointed
//!   revision) and then deletes the WAL segments they covered, so the log stays bounded.
//! * **Reads** see exactly the durable state: a read never observes a write that could still
//!   be lost by a crash.
//! * **Watch.** [`Store::watch`] from revision `r` first replays every retained event with
//!   revision `> r` whose key starts with the prefix, then continues live, with no gap and no
//!   duplicate. If `r` is older than the retained window (`r < compacted_revision()`), the
//!   answer is [`StoreError::Expired`] (the API server turns it into 410 Gone, and the client
//!   relists). A watcher whose buffer is full is closed with a final
//!   [`WatchMessage::Expired`] instead of blocking the committer: a slow watcher never stalls
//!   writers and never makes memory grow without bound.
//! * **Compaction.** The event log keeps at most `event_window` events; older ones are
//!   dropped and `compacted_revision()` advances. Compaction never removes current values.
//! * **Restart.** Reopening a durable store yields exactly the acknowledged writes (and
//!   possibly writes that were committed but whose acknowledgement was lost in the crash),
//!   with the same revision counter. For `redb`: the file holds every write up to its last
//!   checkpoint; the WAL records after that revision are replayed, in order, into the store
//!   and into redb (then checkpointed, and a fresh log begins). A torn or corrupt tail — a
//!   short frame or a CRC mismatch at the end of the log — ends the replay and is dropped:
//!   the crash interrupted its write, its `fdatasync` never returned, so it was never
//!   acknowledged, and its revisions are given again to new writes. A damaged frame followed
//!   by more log, or a log that does not continue redb's revision, fails the open instead of
//!   losing acknowledged writes. After [`Store::close`] everything is checkpointed and the
//!   WAL is empty: the next open replays nothing. The event log is kept in memory (like
//!   kube-apiserver's watch cache), so after a restart the window starts at the recovered
//!   revision: a watch from an older revision is `Expired`.
//! * **Failure.** If the engine fails to commit (disk full, I/O error), every write in that
//!   batch and every later write fails with [`StoreError::Engine`]; the store stops accepting
//!   writes rather than diverge from the disk. A failed checkpoint does the same from the
//!   next commit on (the WAL still holds every durable write; it is replayed on reopen).

mod core;
pub mod memory;
mod record;
pub mod redb;
pub mod wal;

use std::path::Path;
use std::sync::Arc;

pub use self::core::{CoreStore, Engine};
pub use self::memory::MemoryEngine;
pub use self::redb::RedbEngine;
pub use self::wal::{WalEngine, WalOptions};

/// Open the store configured by `engine`: `redb` keeps its file at `<data_dir>/store.redb`
/// and its write-ahead log in `<data_dir>/wal/` (creating `data_dir` if needed); `memory`
/// ignores `data_dir`.
pub fn open(
    engine: crate::config::StoreEngine,
    data_dir: &Path,
    opts: StoreOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    match engine {
        crate::config::StoreEngine::Memory => Ok(self::memory::open(opts)),
        crate::config::StoreEngine::Redb => {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                StoreError::Engine(format!("cannot create {}: {e}", data_dir.display()))
            })?;
            Ok(self::redb::open(&data_dir.join("store.redb"), opts)?)
        }
    }
}

/// A global, monotonically increasing write counter. See the module contracts.
pub type Revision = u64;

/// Immutable, cheaply cloned bytes of a stored value.
pub type Bytes = Arc<[u8]>;

/// A key with its value and revisions, as of some revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the put that created this incarnation of the key.
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// One committed write, as seen by watchers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    /// For a put, the new value. For a delete, the *last* value of the key with
    /// `mod_revision` set to the revision of the delete (so watchers can tell what was
    /// deleted, as Kubernetes' DELETED events carry the final object).
    pub kv: KeyValue,
    /// The value before this write (`None` for a create).
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of this write.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// The condition a write requires of the key's current (possibly not yet durable) state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Write unconditionally.
    None,
    /// The key must not exist (create).
    Absent,
    /// The key must exist with exactly this `mod_revision` (update/delete with a
    /// resourceVersion precondition).
    ModRevision(Revision),
    /// The key must exist, whatever its revision.
    Exists,
}

/// One write.
#[derive(Clone, Debug)]
pub enum Op {
    Put {
        key: String,
        value: Bytes,
        precondition: Precondition,
    },
    Delete {
        key: String,
        precondition: Precondition,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// A write that was accepted (its precondition held) and given a revision, but that may not
/// be durable yet.
pub struct PendingWrite {
    /// The revision this write will have once committed.
    pub revision: Revision,
    /// The key's state before this write (including not-yet-durable writes before it).
    pub prev: Option<KeyValue>,
    /// Resolves when the write is durable (`Ok`) or its commit failed.
    pub durable: tokio::sync::oneshot::Receiver<Result<(), StoreError>>,
}

/// The result of a range read.
#[derive(Clone, Debug, Default)]
pub struct RangeResult {
    /// Matching keys in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision the read reflects.
    pub revision: Revision,
}

/// What a watcher receives.
#[derive(Clone, Debug)]
pub enum WatchMessage {
    /// Committed events, in revision order (one batch may hold several).
    Events(Vec<Arc<Event>>),
    /// The watcher fell behind (its buffer filled) and was closed; the client must relist.
    /// Nothing follows this message.
    Expired,
}

/// A live watch: replay, then live events. Dropping it cancels the watch.
pub struct Watch {
    pub rx: tokio::sync::mpsc::Receiver<WatchMessage>,
}

/// Every batch of durable events, in order, never dropped: how the API server learns that its
/// writes are durable (see [`Store::subscribe`]).
pub type CommitStream = tokio::sync::mpsc::UnboundedReceiver<Arc<Vec<Arc<Event>>>>;

/// Errors of the store. Each maps onto a Kubernetes status in the API server.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The write's precondition did not hold. `current` is the key's mod_revision, or `None`
    /// if it does not exist.
    #[error("precondition failed for {key}: current revision {current:?}")]
    Conflict {
        key: String,
        current: Option<Revision>,
    },
    /// The requested revision is older than the retained window.
    #[error("required revision {requested} has been compacted (oldest retained is {compacted})")]
    Expired {
        requested: Revision,
        compacted: Revision,
    },
    /// A revision in the future was requested.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// The engine failed; the store accepts no more writes.
    #[error("storage engine error: {0}")]
    Engine(String),
    /// The store was closed.
    #[error("store is closed")]
    Closed,
}

/// Tunables of a store (from `[store]` in the config).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Events retained in the watch log; older ones are compacted away.
    pub event_window: usize,
    /// Most writes committed in one transaction (a bound on latency for huge bursts).
    pub max_batch: usize,
    /// Buffer (in messages) of each watcher before it is closed as too slow.
    pub watch_buffer: usize,
    /// The write-ahead log of the `redb` engine (ignored by `memory`).
    pub wal: WalOptions,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            event_window: 100_000,
            max_batch: 4096,
            watch_buffer: 1024,
            wal: WalOptions::default(),
        }
    }
}

/// The store interface; see the module documentation for the contracts.
pub trait Store: Send + Sync + 'static {
    /// Check the precondition against the latest state, assign the next revision, and queue
    /// the write for the next group commit. Returns at once, without I/O.
    fn write(&self, op: Op) -> Result<PendingWrite, StoreError>;
    /// The durable value of `key`.
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;
    /// Every durable key starting with `prefix`, at the current revision (`at = None`) or at
    /// an older revision still inside the retained window.
    fn range(&self, prefix: &str, at: Option<Revision>) -> Result<RangeResult, StoreError>;
    /// Watch keys starting with `prefix` for events with revision `> from`.
    fn watch(&self, prefix: &str, from: Revision) -> Result<Watch, StoreError>;
    /// Every durable batch from now on, in order, unbounded and never dropped. The API server
    /// is the only subscriber; it must keep up.
    fn subscribe(&self) -> CommitStream;
    /// The revision of the last durable write (1 for an empty store).
    fn revision(&self) -> Revision;
    /// The oldest revision a watch may start from.
    fn compacted_revision(&self) -> Revision;
    /// Wait until every accepted write is durable, then stop the committer. Later writes fail
    /// with [`StoreError::Closed`].
    fn close(&self);
}
