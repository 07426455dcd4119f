//! The `redb` engine: the store's keys in a redb file, one write transaction (one fsync) per
//! group commit.
//!
//! # On-disk layout
//!
//! * table `kv`: key → record `create_revision (u64 LE) ‖ mod_revision (u64 LE) ‖ value`;
//!   a delete removes the key.
//! * table `meta`: `"revision"` → the revision of the last committed write.
//!
//! Both are updated in the same transaction, committed with [`Durability::Immediate`], so
//! after a crash the file holds exactly a prefix of the committed batches. The event log is
//! not persisted (see the Restart contract in [`crate::store`]): after a reopen the watch
//! window starts at the recovered revision.

use std::path::Path;
use std::sync::Arc;

use ::redb::{Database, Durability, ReadableTable, TableDefinition};

use super::{CoreStore, Engine, Event, EventType, KeyValue, Revision, StoreError, StoreOptions};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
/// Bytes before the value in a `kv` record.
const HEADER: usize = 16;

/// A redb database file holding the store's current keys and revision.
pub struct RedbEngine {
    db: Database,
}

impl RedbEngine {
    /// Open `path`, creating the file if it does not exist.
    pub fn open(path: &Path) -> Result<RedbEngine, StoreError> {
        let db = Database::create(path)
            .map_err(|e| engine_error(format!("cannot open {}", path.display()), e))?;
        Ok(RedbEngine { db })
    }
}

fn engine_error(what: impl std::fmt::Display, e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("redb: {what}: {e}"))
}

fn encode(kv: &KeyValue) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER + kv.value.len());
    record.extend_from_slice(&kv.create_revision.to_le_bytes());
    record.extend_from_slice(&kv.mod_revision.to_le_bytes());
    record.extend_from_slice(&kv.value);
    record
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

    fn commit(&mut self, batch: &[Arc<Event>], new_revision: Revision) -> Result<(), StoreError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| engine_error("begin commit", e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| engine_error("set durability", e))?;
        {
            let mut kv = txn.open_table(KV).map_err(|e| engine_error("open kv", e))?;
            for event in batch {
                let key = event.kv.key.as_str();
                match event.kind {
                    EventType::Put => {
                        kv.insert(key, encode(&event.kv).as_slice())
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
        txn.commit().map_err(|e| engine_error("commit", e))
    }
}

/// Open (or create) the store in the redb file at `path`, loading every key and the revision.
pub fn open(path: &Path, opts: StoreOptions) -> Result<Arc<CoreStore>, StoreError> {
    CoreStore::new(RedbEngine::open(path)?, opts)
}
