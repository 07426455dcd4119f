//! The `redb` engine: the store's keys in a redb file. Behind [`open`] it is the *backend*
//! of a write-ahead log ([`super::wal`]): a group commit is an append + `fdatasync` to the
//! WAL, and redb receives the durable batches in large checkpoint transactions off the
//! critical path (etcd's shape: WAL + bbolt batch commits). [`RedbEngine`] on its own
//! (without the WAL) commits one redb transaction, one fsync, per group commit.
//!
//! # On-disk layout
//!
//! * `<dir>/store.redb`, table `kv`: key → record
//!   `create_revision (u64 LE) ‖ mod_revision (u64 LE) ‖ value`; a delete removes the key.
//! * table `meta`: `"revision"` → the revision of the last committed (with the WAL: the last
//!   *checkpointed*) write.
//! * `<dir>/wal/`: the WAL segments holding every durable write newer than that revision
//!   (see [`super::wal`] for the format).
//!
//! `kv` and `meta` are updated in the same transaction, committed with
//! [`Durability::Immediate`], so after a crash the file holds exactly a prefix of the
//! committed batches; the WAL holds the rest. On open, the WAL records newer than the redb
//! revision are replayed into redb; a torn or corrupt WAL tail (a write whose `fdatasync`
//! never returned, hence never acknowledged) ends the replay and is dropped. After a clean
//! close everything is in redb and the WAL is empty. The event log is not persisted (see the
//! Restart contract in [`crate::store`]): after a reopen the watch window starts at the
//! recovered revision.
//!
//! Never open a `store.redb` whose `wal/` directory holds segments with a bare
//! [`RedbEngine`]: the writes only the WAL holds would be missing (and then lost when the
//! WAL is next opened behind a newer revision — the open fails with a gap instead).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::redb::{Durability, ReadableTable, TableDefinition};

use super::wal::{WalEngine, WalOptions};
use super::{CoreStore, Engine, Event, EventType, KeyValue, Revision, StoreError, StoreOptions};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
/// Bytes before the value in a `kv` record.
const HEADER: usize = 16;

/// redb's page cache. redb's default is 1 GiB, but redb is read only when the store opens:
/// `CoreStore` keeps every current value in memory and serves all reads from there. The cache
/// only speeds up the checkpoints' B-tree updates, where 64 MiB holds the upper levels of the
/// tree; a bigger one just grows the daemon's memory with the store's size (benches/chain.rs).
const CACHE_BYTES: usize = 64 << 20;

/// A redb database file holding the store's current keys and revision.
pub struct RedbEngine {
    db: ::redb::Database,
}

impl RedbEngine {
    /// Open `path`, creating the file if it does not exist.
    pub fn open(path: &Path) -> Result<RedbEngine, StoreError> {
        let db = ::redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| engine_error(format!("cannot open {}", path.display()), e))?;
        Ok(RedbEngine { db })
    }
}

fn engine_error(what: impl std::fmt::Display, e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("redb: {what}: {e}"))
}

/// Encode `kv` into `record` (cleared first; reused across a transaction).
fn encode(kv: &KeyValue, record: &mut Vec<u8>) {
    record.clear();
    record.extend_from_slice(&kv.create_revision.to_le_bytes());
    record.extend_from_slice(&kv.mod_revision.to_le_bytes());
    record.extend_from_slice(&kv.value);
}

fn decode(key: &str, record: &[u8]) -> Result<KeyValue, StoreError> {
    let (Some(create), Some(modified)) = (record.get(0..8), record.get(8..HEADER)) else {
        return Err(StoreError::Engine(format!(
            "redb: corrupt record for {key}: {} bytes",
            record.len()
        )));
    };
    let u64_le = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8-byte slice"));
    Ok(KeyValue {
        key: key.to_string(),
        value: Arc::from(&record[HEADER..]),
        create_revision: u64_le(create),
        mod_revision: u64_le(modified),
    })
}

impl Engine for RedbEngine {
    /// Reads everything in a write transaction, which also creates the tables of a new file.
    fn load(&mut self) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| engine_error("begin load", e))?;
        let loaded = {
            let kv = txn.open_table(KV).map_err(|e| engine_error("open kv", e))?;
            let meta = txn
                .open_table(META)
                .map_err(|e| engine_error("open meta", e))?;
            let revision = meta
                .get(META_REVISION)
                .map_err(|e| engine_error("read revision", e))?
                .map_or(1, |v| v.value());
            let mut kvs = Vec::new();
            for entry in kv.iter().map_err(|e| engine_error("scan kv", e))? {
                let (key, record) = entry.map_err(|e| engine_error("scan kv", e))?;
                kvs.push(decode(key.value(), record.value())?);
            }
            (kvs, revision)
        };
        txn.commit().map_err(|e| engine_error("commit load", e))?;
        Ok(loaded)
    }

    /// Only the last event of each key is applied, in key order: a checkpoint of thousands of
    /// events that rewrite the same keys touches each key (and each B-tree page) once.
    fn commit(&mut self, batch: &[Arc<Event>], new_revision: Revision) -> Result<(), StoreError> {
        let mut last: BTreeMap<&str, &Event> = BTreeMap::new();
        for event in batch {
            last.insert(event.kv.key.as_str(), event);
        }
        let mut record = Vec::new();
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| engine_error("begin commit", e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| engine_error("set durability", e))?;
        {
            let mut kv = txn.open_table(KV).map_err(|e| engine_error("open kv", e))?;
            for (key, event) in last {
                match event.kind {
                    EventType::Put => {
                        encode(&event.kv, &mut record);
                        kv.insert(key, record.as_slice())
                            .map_err(|e| engine_error(format!("put {key}"), e))?;
                    }
                    EventType::Delete => {
                        kv.remove(key)
                            .map_err(|e| engine_error(format!("delete {key}"), e))?;
                    }
                }
            }
            let mut meta = txn
                .open_table(META)
                .map_err(|e| engine_error("open meta", e))?;
            meta.insert(META_REVISION, new_revision)
                .map_err(|e| engine_error("write revision", e))?;
        }
        // etcd's `etcd_disk_backend_commit_duration_seconds` times bbolt's `tx.Commit`: the
        // write-out and fsync, not the puts before it.
        let started = std::time::Instant::now();
        txn.commit().map_err(|e| engine_error("commit", e))?;
        crate::metrics::global()
            .etcd_disk_backend_commit_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// Open (or create) the store in the redb file at `path` with its WAL in [`wal_dir`]`(path)`
/// (tuned by `opts.wal`): load every key and the revision, replaying the WAL.
pub fn open(path: &Path, opts: StoreOptions) -> Result<Arc<CoreStore>, StoreError> {
    let engine = wal_engine(path, opts.wal.clone())?;
    CoreStore::new(engine, opts)
}

/// The engine [`open`] uses: a WAL in [`wal_dir`]`(path)` in front of the redb file at `path`.
pub fn wal_engine(path: &Path, wal: WalOptions) -> Result<WalEngine<RedbEngine>, StoreError> {
    WalEngine::open(&wal_dir(path), RedbEngine::open(path)?, wal)
}

/// The WAL directory of the redb file at `path`: `wal/` next to it.
pub fn wal_dir(path: &Path) -> PathBuf {
    path.parent().unwrap_or_else(|| Path::new("")).join("wal")
}
