//! The `redb` engine: the store's writes in a redb file. Behind [`open`] it is the *backend*
//! of a write-ahead log ([`super::wal`]): a group commit is an append + `fdatasync` to the
//! WAL, and redb receives the durable batches in large checkpoint transactions off the
//! critical path (etcd's shape: WAL + bbolt batch commits). [`RedbEngine`] on its own
//! (without the WAL) commits one redb transaction, one fsync, per group commit.
//!
//! # On-disk layout
//!
//! * `<dir>/store.redb`, table `chunks`: sequence number (u64) → *chunk*, the records
//!   (`store::record`) of one checkpoint: the last write of each key it covers, puts and
//!   deletes (*tombstones*). A checkpoint of more than [`CHUNK_BYTES`] writes several chunks.
//! * table `meta`: `"revision"` → the revision of the last committed (with the WAL: the last
//!   *checkpointed*) write.
//! * `<dir>/wal/`: the WAL segments holding every durable write newer than that revision
//!   (see [`super::wal`] for the format).
//!
//! A key's current value is its record in the newest chunk that holds the key (a tombstone:
//! the key is gone). Opening the file reads every chunk, oldest first, and keeps the newest
//! record of each key, as etcd rebuilds its key index by scanning its revision-keyed `key`
//! bucket (`mvcc.restore`). redb is read only then: the store serves every read from memory.
//!
//! ## Why chunks and not a key → value table
//!
//! Until session 18 the file held one B-tree entry per key (`kv`: key → `create_revision ‖
//! mod_revision ‖ value`). Inserting a 1.4 KB record there cost 6–16 µs of CPU, a third of a
//! whole durable create, because a B-tree leaf holds only two such records and every insert
//! rewrites and splits leaves. One value of the whole checkpoint costs redb a copy and a
//! checksum: 1.5–2.5 µs per record (see `docs/store.md`). etcd makes the same choice for the
//! same reason: its bbolt `key` bucket is keyed by revision, so writes append.
//!
//! ## Garbage and its cleaning
//!
//! A record that a newer write to its key superseded is *garbage*; so is a tombstone. The
//! engine keeps, in memory, where each key's current record is and how many live bytes each
//! chunk holds. When the garbage exceeds the live bytes by more than the *slack*
//! ([`DEFAULT_GARBAGE_SLACK`]), a checkpoint also *cleans* the oldest chunks: it copies their
//! still-current records into the chunk it writes and removes them, in the same transaction,
//! up to twice the bytes of the checkpoint's own writes (at least [`MIN_CLEAN_BYTES`]). The
//! file therefore holds at most about twice the live bytes plus the slack, and each byte is
//! rewritten about once more in the worst case (a log-structured file system's cleaner, or
//! bitcask's merge). Only the oldest chunk is ever cleaned, so a tombstone can be dropped
//! with it: no older chunk is left that could still hold a record of its key.
//!
//! `chunks` and `meta` are updated in the same transaction, committed with
//! [`Durability::Immediate`], so after a crash the file holds exactly a prefix of the
//! committed batches; the WAL holds the rest. On open, the WAL records newer than the redb
//! revision are replayed into redb; a torn or corrupt WAL tail (a write whose `fdatasync`
//! never returned, hence never acknowledged) ends the replay and is dropped. After a clean
//! close everything is in redb and the WAL is empty. The event log is not persisted (see the
//! Restart contract in [`crate::store`]): after a reopen the watch window starts at the
//! recovered revision.
//!
//! A file of the older `kv` layout is rewritten as chunks when it is opened (one
//! transaction: the chunks are written and `kv` is deleted together).
//!
//! Never open a `store.redb` whose `wal/` directory holds segments with a bare
//! [`RedbEngine`]: the writes only the WAL holds would be missing (and then lost when the
//! WAL is next opened behind a newer revision — the open fails with a gap instead).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::redb::{Durability, ReadableTable, TableDefinition, TableHandle};

use super::record::{self, RecordWriter};
use super::wal::{WalEngine, WalOptions};
use super::{CoreStore, Engine, Event, EventType, KeyValue, Revision, StoreError, StoreOptions};

const CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("chunks");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
/// The layout before chunks: key → `create_revision (u64 LE) ‖ mod_revision (u64 LE) ‖
/// value`. Read once, and rewritten as chunks, when such a file is opened.
const LEGACY_KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// Bytes before the value in a legacy `kv` record.
const LEGACY_HEADER: usize = 16;

/// A chunk is closed once its records reach this many bytes; a checkpoint with more writes
/// several. Keeps each redb value far below its size limit, whatever the objects' sizes.
pub const CHUNK_BYTES: usize = 16 << 20;

/// Garbage tolerated beyond the live bytes before checkpoints start cleaning the oldest
/// chunks (see the module documentation).
pub const DEFAULT_GARBAGE_SLACK: u64 = 16 << 20;

/// The least a cleaning checkpoint may rewrite, so that small checkpoints (an idle cluster's
/// heartbeats) still clean a chunk each.
pub const MIN_CLEAN_BYTES: u64 = 1 << 20;

/// redb's page cache. redb's default is 1 GiB, but redb is read only when the store opens:
/// `CoreStore` keeps every current value in memory and serves all reads from there, and a
/// checkpoint writes new pages. A bigger cache just grows the daemon's memory with the
/// store's size (benches/chain.rs).
const CACHE_BYTES: usize = 64 << 20;

/// Where a key's current record is.
#[derive(Clone, Copy, Debug)]
struct Location {
    chunk: u64,
    bytes: u64,
}

/// A chunk's size and how much of it is still current.
#[derive(Clone, Copy, Debug, Default)]
struct ChunkInfo {
    bytes: u64,
    live: u64,
}

/// What the file holds, from the engine's accounting (record bytes, without redb's own
/// overhead).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Chunks in the file.
    pub chunks: usize,
    /// Bytes of every record in them, garbage included.
    pub bytes: u64,
    /// Bytes of the records that are current.
    pub live_bytes: u64,
}

/// A redb database file holding the store's writes, as chunks, and its revision.
pub struct RedbEngine {
    db: ::redb::Database,
    /// Where each key's current record is. Rebuilt by [`Engine::load`]. The store's keys a
    /// second time (`Box<str>`: no spare capacity); 2–3 % of the daemon's memory per pod
    /// in `benches/chain.rs`.
    index: HashMap<Box<str>, Location>,
    /// Every chunk in the file, by sequence number (oldest first).
    chunks: BTreeMap<u64, ChunkInfo>,
    /// The sum of `chunks`' bytes and live bytes.
    bytes: u64,
    live: u64,
    /// The sequence number of the next chunk written.
    next_chunk: u64,
    garbage_slack: u64,
    /// Reused encoding buffer: a checkpoint allocates nothing for it once it has grown.
    buf: Vec<u8>,
}

impl RedbEngine {
    /// Open `path`, creating the file if it does not exist.
    pub fn open(path: &Path) -> Result<RedbEngine, StoreError> {
        let db = ::redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| engine_error(format!("cannot open {}", path.display()), e))?;
        Ok(RedbEngine {
            db,
            index: HashMap::new(),
            chunks: BTreeMap::new(),
            bytes: 0,
            live: 0,
            next_chunk: 1,
            garbage_slack: DEFAULT_GARBAGE_SLACK,
            buf: Vec::new(),
        })
    }

    /// Tolerate `bytes` of garbage beyond the live bytes before cleaning (tests use 0 to
    /// make every checkpoint clean).
    pub fn with_garbage_slack(mut self, bytes: u64) -> RedbEngine {
        self.garbage_slack = bytes;
        self
    }

    /// What the file holds, as of the last load or commit.
    pub fn stats(&self) -> ChunkStats {
        ChunkStats {
            chunks: self.chunks.len(),
            bytes: self.bytes,
            live_bytes: self.live,
        }
    }

    /// Count `event`, just written into chunk `chunk`: its bytes, and the record it made
    /// garbage.
    fn account(&mut self, event: &Event, chunk: u64) {
        let bytes = record::encoded_len(event) as u64;
        let info = self.chunks.entry(chunk).or_default();
        info.bytes += bytes;
        self.bytes += bytes;
        let superseded = match event.kind {
            EventType::Put => {
                info.live += bytes;
                self.live += bytes;
                let here = Location { chunk, bytes };
                match self.index.get_mut(event.kv.key.as_str()) {
                    Some(location) => Some(std::mem::replace(location, here)),
                    None => {
                        self.index.insert(event.kv.key.as_str().into(), here);
                        None
                    }
                }
            }
            EventType::Delete => self.index.remove(event.kv.key.as_str()),
        };
        if let Some(old) = superseded {
            if let Some(info) = self.chunks.get_mut(&old.chunk) {
                info.live -= old.bytes;
            }
            self.live -= old.bytes;
        }
    }

    /// Forget a removed chunk. Every record of it is garbage by now (the cleaning copied the
    /// current ones into a newer chunk).
    fn forget(&mut self, chunk: u64) {
        if let Some(info) = self.chunks.remove(&chunk) {
            debug_assert_eq!(info.live, 0, "chunk {chunk} removed with live records");
            self.bytes -= info.bytes;
            self.live -= info.live;
        }
    }

    /// The oldest chunks this checkpoint should clean, rewriting at most about `budget`
    /// bytes: none while the garbage is within the live bytes plus the slack.
    fn chunks_to_clean(&self, budget: u64) -> Vec<u64> {
        let mut bytes = self.bytes;
        let mut rewritten = 0;
        let mut clean = Vec::new();
        for (&chunk, info) in &self.chunks {
            if bytes <= 2 * self.live + self.garbage_slack || rewritten >= budget {
                break;
            }
            bytes -= info.bytes - info.live;
            rewritten += info.bytes;
            clean.push(chunk);
        }
        clean
    }

    /// Read `chunk`'s current records: the puts the index still points at, except the keys
    /// in `superseded` (this checkpoint writes them anyway).
    fn current_records(
        &self,
        table: &::redb::Table<u64, &[u8]>,
        chunk: u64,
        superseded: &HashMap<&str, usize>,
    ) -> Result<Vec<Arc<Event>>, StoreError> {
        let Some(value) = table
            .get(chunk)
            .map_err(|e| engine_error(format!("read chunk {chunk}"), e))?
        else {
            return Err(StoreError::Engine(format!(
                "redb: chunk {chunk} is missing"
            )));
        };
        let mut events = record::decode(value.value())
            .map_err(|e| StoreError::Engine(format!("redb: corrupt chunk {chunk}: {e}")))?;
        events.retain(|event| {
            let key = event.kv.key.as_str();
            event.kind == EventType::Put
                && !superseded.contains_key(key)
                && self.index.get(key).is_some_and(|at| at.chunk == chunk)
        });
        Ok(events)
    }
}

fn engine_error(what: impl std::fmt::Display, e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("redb: {what}: {e}"))
}

/// Write `records` as chunks of about [`CHUNK_BYTES`], numbered from `first`; returns the
/// chunk each record went into (in order) and the next free number.
fn write_chunks(
    table: &mut ::redb::Table<u64, &[u8]>,
    records: &[&Event],
    first: u64,
    buf: &mut Vec<u8>,
) -> Result<(Vec<u64>, u64), StoreError> {
    let mut placed = Vec::with_capacity(records.len());
    let mut chunk = first;
    let mut rest = records;
    while !rest.is_empty() {
        buf.clear();
        let mut writer = RecordWriter::new(buf);
        let mut taken = 0;
        for event in rest {
            writer.push(event);
            taken += 1;
            if writer.len() >= CHUNK_BYTES {
                break;
            }
        }
        writer.finish();
        table
            .insert(chunk, buf.as_slice())
            .map_err(|e| engine_error(format!("write chunk {chunk}"), e))?;
        placed.extend(std::iter::repeat_n(chunk, taken));
        rest = &rest[taken..];
        chunk += 1;
    }
    Ok((placed, chunk))
}

/// Records of the legacy `kv` table, if the file has one (then it is deleted: the caller
/// rewrites them as chunks in the same transaction).
fn take_legacy(txn: &::redb::WriteTransaction) -> Result<Vec<Arc<Event>>, StoreError> {
    let exists = txn
        .list_tables()
        .map_err(|e| engine_error("list tables", e))?
        .any(|table| table.name() == LEGACY_KV.name());
    if !exists {
        return Ok(Vec::new());
    }
    let mut events = Vec::new();
    {
        let kv = txn
            .open_table(LEGACY_KV)
            .map_err(|e| engine_error("open kv", e))?;
        for entry in kv.iter().map_err(|e| engine_error("scan kv", e))? {
            let (key, record) = entry.map_err(|e| engine_error("scan kv", e))?;
            let (key, record) = (key.value(), record.value());
            let (Some(create), Some(modified)) = (record.get(0..8), record.get(8..LEGACY_HEADER))
            else {
                return Err(StoreError::Engine(format!(
                    "redb: corrupt record for {key}: {} bytes",
                    record.len()
                )));
            };
            let u64_le = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8-byte slice"));
            events.push(Arc::new(Event {
                kind: EventType::Put,
                kv: KeyValue {
                    key: key.to_string(),
                    value: Arc::from(&record[LEGACY_HEADER..]),
                    create_revision: u64_le(create),
                    mod_revision: u64_le(modified),
                },
                prev: None,
            }));
        }
    }
    txn.delete_table(LEGACY_KV)
        .map_err(|e| engine_error("delete kv", e))?;
    Ok(events)
}

impl Engine for RedbEngine {
    /// Reads every chunk, oldest first, in a write transaction (which also creates the tables
    /// of a new file, and rewrites a legacy `kv` table as chunks).
    fn load(&mut self) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| engine_error("begin load", e))?;
        let legacy = take_legacy(&txn)?;
        let mut state: HashMap<String, KeyValue> = HashMap::new();
        let revision = {
            let mut chunks = txn
                .open_table(CHUNKS)
                .map_err(|e| engine_error("open chunks", e))?;
            let meta = txn
                .open_table(META)
                .map_err(|e| engine_error("open meta", e))?;
            let revision = meta
                .get(META_REVISION)
                .map_err(|e| engine_error("read revision", e))?
                .map_or(1, |v| v.value());
            for entry in chunks.iter().map_err(|e| engine_error("scan chunks", e))? {
                let (chunk, records) = entry.map_err(|e| engine_error("scan chunks", e))?;
                let chunk = chunk.value();
                let events = record::decode(records.value())
                    .map_err(|e| StoreError::Engine(format!("redb: corrupt chunk {chunk}: {e}")))?;
                for event in events {
                    self.account(&event, chunk);
                    let event = Arc::unwrap_or_clone(event);
                    match event.kind {
                        EventType::Put => {
                            state.insert(event.kv.key.clone(), event.kv);
                        }
                        EventType::Delete => {
                            state.remove(&event.kv.key);
                        }
                    }
                }
                self.next_chunk = chunk + 1;
            }
            if !legacy.is_empty() {
                if !self.chunks.is_empty() {
                    return Err(StoreError::Engine(
                        "redb: the file holds both a legacy kv table and chunks".into(),
                    ));
                }
                let records: Vec<&Event> = legacy.iter().map(|e| &**e).collect();
                let (placed, next) =
                    write_chunks(&mut chunks, &records, self.next_chunk, &mut self.buf)?;
                for (event, chunk) in records.iter().zip(placed) {
                    self.account(event, chunk);
                    state.insert(event.kv.key.clone(), event.kv.clone());
                }
                self.next_chunk = next;
            }
            revision
        };
        txn.commit().map_err(|e| engine_error("commit load", e))?;
        Ok((state.into_values().collect(), revision))
    }

    /// One transaction: the last event of each key as new chunks, the cleaning of the oldest
    /// chunks if the garbage is over its limit, and the revision.
    fn commit(&mut self, batch: &[Arc<Event>], new_revision: Revision) -> Result<(), StoreError> {
        // The last event of each key, kept in revision order.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
        for (i, event) in batch.iter().enumerate() {
            last.insert(event.kv.key.as_str(), i);
        }
        let newest: Vec<&Event> = batch
            .iter()
            .enumerate()
            .filter(|(i, event)| last.get(event.kv.key.as_str()) == Some(i))
            .map(|(_, event)| &**event)
            .collect();
        let new_bytes: u64 = newest.iter().map(|e| record::encoded_len(e) as u64).sum();
        let clean = self.chunks_to_clean((2 * new_bytes).max(MIN_CLEAN_BYTES));
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| engine_error("begin commit", e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| engine_error("set durability", e))?;
        let mut carried: Vec<Arc<Event>> = Vec::new();
        let (placed, next_chunk) = {
            let mut chunks = txn
                .open_table(CHUNKS)
                .map_err(|e| engine_error("open chunks", e))?;
            for &chunk in &clean {
                carried.extend(self.current_records(&chunks, chunk, &last)?);
                chunks
                    .remove(chunk)
                    .map_err(|e| engine_error(format!("remove chunk {chunk}"), e))?;
            }
            let records: Vec<&Event> = carried
                .iter()
                .map(|e| &**e)
                .chain(newest.iter().copied())
                .collect();
            let written = write_chunks(&mut chunks, &records, self.next_chunk, &mut self.buf);
            let mut meta = txn
                .open_table(META)
                .map_err(|e| engine_error("open meta", e))?;
            meta.insert(META_REVISION, new_revision)
                .map_err(|e| engine_error("write revision", e))?;
            written?
        };
        // etcd's `etcd_disk_backend_commit_duration_seconds` times bbolt's `tx.Commit`: the
        // write-out and fsync, not the puts before it.
        let started = std::time::Instant::now();
        txn.commit().map_err(|e| engine_error("commit", e))?;
        crate::metrics::global()
            .etcd_disk_backend_commit_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        // Committed: only now does the accounting follow.
        let records = carried.iter().map(|e| &**e).chain(newest.iter().copied());
        for (event, chunk) in records.zip(placed) {
            self.account(event, chunk);
        }
        for chunk in clean {
            self.forget(chunk);
        }
        self.next_chunk = next_chunk;
        if self.buf.capacity() > 2 * CHUNK_BYTES {
            self.buf = Vec::new(); // one huge record: do not keep its buffer forever
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        kind: EventType,
        key: &str,
        value: &[u8],
        create: Revision,
        revision: Revision,
    ) -> Arc<Event> {
        Arc::new(Event {
            kind,
            kv: KeyValue {
                key: key.to_string(),
                value: Arc::from(value),
                create_revision: create,
                mod_revision: revision,
            },
            prev: None,
        })
    }

    fn loaded(engine: &mut RedbEngine) -> (BTreeMap<String, KeyValue>, Revision) {
        let (kvs, revision) = engine.load().expect("load");
        (
            kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect(),
            revision,
        )
    }

    /// Each key's revisions and value (length and first byte): what a failing comparison
    /// prints instead of whole values.
    fn summary(state: &BTreeMap<String, KeyValue>) -> Vec<(&str, Revision, Revision, usize, u8)> {
        state
            .values()
            .map(|kv| {
                let first = kv.value.first().copied().unwrap_or(0);
                (
                    kv.key.as_str(),
                    kv.create_revision,
                    kv.mod_revision,
                    kv.value.len(),
                    first,
                )
            })
            .collect()
    }

    /// Random puts and deletes over a few keys, with every checkpoint allowed to clean
    /// (slack 0): after each reopen the file holds exactly the model's keys (no deleted key
    /// comes back from an older chunk), the accounting rebuilt from the file equals the one
    /// kept in memory, and the file stays near the live bytes instead of growing with every
    /// write.
    #[test]
    fn cleaning_keeps_the_file_small_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let mut engine = RedbEngine::open(&path).unwrap().with_garbage_slack(0);
        assert_eq!(loaded(&mut engine).1, 1);
        let mut model: BTreeMap<String, KeyValue> = BTreeMap::new();
        let mut revision: Revision = 1;
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut written = 0u64;
        for round in 1..=300 {
            let mut batch = Vec::new();
            for _ in 0..=random(12) {
                revision += 1;
                let key = format!("/registry/pods/default/p{}", random(24));
                if random(4) == 0 && model.contains_key(&key) {
                    let old = model.remove(&key).unwrap();
                    batch.push(event(
                        EventType::Delete,
                        &key,
                        &old.value,
                        old.create_revision,
                        revision,
                    ));
                } else {
                    let value = vec![b'a' + (revision % 26) as u8; 20 + random(300) as usize];
                    let create = model.get(&key).map_or(revision, |kv| kv.create_revision);
                    let put = event(EventType::Put, &key, &value, create, revision);
                    model.insert(key, put.kv.clone());
                    batch.push(put);
                }
            }
            written += batch
                .iter()
                .map(|e| record::encoded_len(e) as u64)
                .sum::<u64>();
            engine.commit(&batch, revision).unwrap();
            let stats = engine.stats();
            let live: u64 = model
                .values()
                .map(|kv| 25 + kv.key.len() as u64 + kv.value.len() as u64)
                .sum();
            assert_eq!(stats.live_bytes, live, "round {round}");
            assert!(
                stats.bytes <= 2 * live + 8 * 1024,
                "round {round}: {stats:?} for {live} live bytes"
            );
            if round % 25 == 0 {
                drop(engine);
                engine = RedbEngine::open(&path).unwrap().with_garbage_slack(0);
                let (state, at) = loaded(&mut engine);
                assert_eq!(at, revision);
                assert_eq!(summary(&state), summary(&model), "round {round}");
                assert_eq!(state, model, "round {round}");
                assert_eq!(
                    engine.stats(),
                    stats,
                    "round {round}: accounting after reopen"
                );
            }
        }
        assert!(
            written > 20 * engine.stats().bytes,
            "the test wrote too little to need cleaning"
        );
    }

    /// Without cleaning (the default slack), superseded records stay until the garbage is
    /// worth a rewrite.
    #[test]
    fn garbage_within_the_slack_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = RedbEngine::open(&dir.path().join("store.redb")).unwrap();
        loaded(&mut engine);
        for revision in 2..12 {
            engine
                .commit(
                    &[event(EventType::Put, "/k", b"value", 2, revision)],
                    revision,
                )
                .unwrap();
        }
        let stats = engine.stats();
        assert_eq!(stats.chunks, 10);
        assert_eq!(stats.live_bytes, 25 + 2 + 5);
        assert_eq!(stats.bytes, 10 * (25 + 2 + 5));
    }

    /// A checkpoint larger than [`CHUNK_BYTES`] is split over several chunks, and reads back whole.
    #[test]
    fn a_large_checkpoint_is_written_as_several_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let mut engine = RedbEngine::open(&path).unwrap();
        loaded(&mut engine);
        let value = vec![7u8; 1 << 20];
        let batch: Vec<_> = (0..20)
            .map(|i| {
                event(
                    EventType::Put,
                    &format!("/big/{i:02}"),
                    &value,
                    i + 2,
                    i + 2,
                )
            })
            .collect();
        engine.commit(&batch, 21).unwrap();
        assert_eq!(engine.stats().chunks, 2);
        drop(engine);
        let mut engine = RedbEngine::open(&path).unwrap();
        let (state, revision) = loaded(&mut engine);
        assert_eq!(revision, 21);
        assert_eq!(state.len(), 20);
        assert!(state.values().all(|kv| kv.value.len() == 1 << 20));
        assert_eq!(state["/big/19"].mod_revision, 21);
    }

    /// A file of the layout before chunks (key → record) opens with every key, and is
    /// rewritten as chunks (its `kv` table is gone afterwards).
    #[test]
    fn a_file_of_the_key_value_layout_is_rewritten_as_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        {
            let db = ::redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut kv = txn.open_table(LEGACY_KV).unwrap();
                for (key, create, modified) in [("/a", 2u64, 5u64), ("/b", 3, 3), ("/c", 4, 6)] {
                    let mut record = create.to_le_bytes().to_vec();
                    record.extend_from_slice(&modified.to_le_bytes());
                    record.extend_from_slice(key.as_bytes());
                    kv.insert(key, record.as_slice()).unwrap();
                }
                let mut meta = txn.open_table(META).unwrap();
                meta.insert(META_REVISION, 7).unwrap();
            }
            txn.commit().unwrap();
        }
        for _ in 0..2 {
            let mut engine = RedbEngine::open(&path).unwrap();
            let (state, revision) = loaded(&mut engine);
            assert_eq!(revision, 7);
            let got: Vec<_> = state
                .values()
                .map(|kv| {
                    (
                        kv.key.as_str(),
                        kv.create_revision,
                        kv.mod_revision,
                        &*kv.value,
                    )
                })
                .collect();
            assert_eq!(
                got,
                [
                    ("/a", 2, 5, b"/a".as_slice()),
                    ("/b", 3, 3, b"/b".as_slice()),
                    ("/c", 4, 6, b"/c".as_slice())
                ]
            );
            assert_eq!(engine.stats().chunks, 1);
        }
        let db = ::redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let tables: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        assert!(!tables.contains(&"kv".to_string()), "{tables:?}");
    }
}
