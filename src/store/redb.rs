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
//!   deletes (*tombstones*). A checkpoint of more than [`CHUNK_BYTES`] writes several chunks,
//!   and one of more than [`TXN_BYTES`] several transactions (see [`TXN_BYTES`]).
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
//! [`Durability::Immediate`]; a checkpoint split over several transactions commits a
//! consecutive part of its batch, with that part's last revision, in each. So after a crash
//! the file holds exactly a prefix of the committed writes; the WAL holds the rest. On open, the WAL records newer than the redb
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

/// The most bytes of records in one chunk (unless one record alone is larger: it then has
/// a chunk of its own); a checkpoint with more writes several. redb keeps a value in a page
/// of a power-of-two size, so a chunk stays just below 2 MiB with room for the leaf's
/// header: a chunk cut *after* reaching a power of two took a page twice its size.
pub const CHUNK_BYTES: usize = (2 << 20) - (4 << 10);

/// The most bytes of records one redb transaction writes (one chunk over it, at most); a
/// larger checkpoint commits several. redb buffers a transaction's pages in half of its
/// cache ([`CACHE_BYTES`]); a page beyond that is written out at once and, when the commit
/// checksums it, read back and written again. A quarter of the cache leaves room for the
/// chunks' rounding up to their pages and for the B-tree's own pages.
pub const TXN_BYTES: usize = CACHE_BYTES / 4;

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
pub const CACHE_BYTES: usize = 64 << 20;

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
    /// [`CHUNK_BYTES`] and [`TXN_BYTES`]; tests make them small.
    chunk_bytes: usize,
    txn_bytes: usize,
    /// redb transactions committed by [`Engine::commit`] since the file was opened.
    transactions: u64,
    /// Tests: fail [`Engine::commit`] once this many transactions are committed, as a crash
    /// between a large checkpoint's transactions would stop it.
    #[cfg(test)]
    fail_after: Option<u64>,
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
            chunk_bytes: CHUNK_BYTES,
            txn_bytes: TXN_BYTES,
            transactions: 0,
            #[cfg(test)]
            fail_after: None,
            buf: Vec::new(),
        })
    }

    /// Cut chunks at `chunk_bytes` and transactions at `txn_bytes` of records instead of
    /// [`CHUNK_BYTES`] and [`TXN_BYTES`] (tests use a few KiB to split small checkpoints).
    #[cfg(test)]
    fn with_limits(mut self, chunk_bytes: usize, txn_bytes: usize) -> RedbEngine {
        self.chunk_bytes = chunk_bytes;
        self.txn_bytes = txn_bytes;
        self
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

    /// Write `records` into `table` as chunks of at most `chunk_bytes` of records (a larger
    /// record alone), numbered from `next_chunk`; returns the chunk each record went into (in
    /// order) and the next free number, which the caller keeps once the transaction commits.
    fn write_chunks(
        &mut self,
        table: &mut ::redb::Table<u64, &[u8]>,
        records: &[&Event],
    ) -> Result<(Vec<u64>, u64), StoreError> {
        let mut placed = Vec::with_capacity(records.len());
        let mut chunk = self.next_chunk;
        let mut rest = records;
        while !rest.is_empty() {
            self.buf.clear();
            let mut writer = RecordWriter::new(&mut self.buf);
            let mut taken = 0;
            for event in rest {
                if taken > 0 && writer.len() + record::encoded_len(event) > self.chunk_bytes {
                    break;
                }
                writer.push(event);
                taken += 1;
            }
            writer.finish();
            table
                .insert(chunk, self.buf.as_slice())
                .map_err(|e| engine_error(format!("write chunk {chunk}"), e))?;
            placed.extend(std::iter::repeat_n(chunk, taken));
            rest = &rest[taken..];
            chunk += 1;
        }
        Ok((placed, chunk))
    }

    /// The next transaction of a checkpoint: the chunks it cleans, the oldest of `clean` up
    /// to `txn_bytes` of live records (at least one), and how many of `rest`'s writes it
    /// commits, those that fit in the room left (at least one if it cleans nothing).
    fn plan_transaction(
        &self,
        clean: &mut std::iter::Peekable<std::vec::IntoIter<u64>>,
        rest: &[Arc<Event>],
    ) -> (Vec<u64>, usize) {
        let mut cleaned = Vec::new();
        let mut room = self.txn_bytes;
        while let Some(&chunk) = clean.peek() {
            let live = self.chunks.get(&chunk).map_or(0, |c| c.live) as usize;
            if !cleaned.is_empty() && live > room {
                break;
            }
            room = room.saturating_sub(live);
            cleaned.push(chunk);
            clean.next();
        }
        let mut cut = 0;
        for event in rest {
            let len = record::encoded_len(event);
            if len > room && (cut > 0 || !cleaned.is_empty()) {
                break;
            }
            room = room.saturating_sub(len);
            cut += 1;
        }
        (cleaned, cut)
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
                let (placed, next) = self.write_chunks(&mut chunks, &records)?;
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

    /// The last event of each key as new chunks, the cleaning of the oldest chunks if the
    /// garbage is over its limit, and the revision, in one transaction; or, for a checkpoint
    /// of more than [`TXN_BYTES`] of records, in several, each of at most that many: the
    /// batch is cut into consecutive parts, and each transaction commits one part (and the
    /// revision of its last write) together with the cleaning it has room for. Each commit
    /// thus leaves the file at exactly the state of a revision, as a single one does.
    fn commit(&mut self, batch: &[Arc<Event>], new_revision: Revision) -> Result<(), StoreError> {
        let new_bytes: u64 = batch.iter().map(|e| record::encoded_len(e) as u64).sum();
        let mut clean = self
            .chunks_to_clean((2 * new_bytes).max(MIN_CLEAN_BYTES))
            .into_iter()
            .peekable();
        let mut rest = batch;
        loop {
            let (cleaned, cut) = self.plan_transaction(&mut clean, rest);
            let (part, after) = rest.split_at(cut);
            let done = clean.peek().is_none() && after.is_empty();
            let revision = match part.last() {
                _ if done => Some(new_revision),
                Some(event) => Some(event.revision()),
                None => None, // cleaning only: the state, hence the revision, is unchanged
            };
            // The last write of each key in the part, kept in revision order.
            let mut last: HashMap<&str, usize> = HashMap::with_capacity(part.len());
            for (i, event) in part.iter().enumerate() {
                last.insert(event.kv.key.as_str(), i);
            }
            let newest: Vec<&Event> = part
                .iter()
                .enumerate()
                .filter(|(i, event)| last.get(event.kv.key.as_str()) == Some(i))
                .map(|(_, event)| &**event)
                .collect();
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
                for &chunk in &cleaned {
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
                let written = self.write_chunks(&mut chunks, &records)?;
                if let Some(revision) = revision {
                    let mut meta = txn
                        .open_table(META)
                        .map_err(|e| engine_error("open meta", e))?;
                    meta.insert(META_REVISION, revision)
                        .map_err(|e| engine_error("write revision", e))?;
                }
                written
            };
            // etcd's `etcd_disk_backend_commit_duration_seconds` times bbolt's `tx.Commit`:
            // the write-out and fsync, not the puts before it.
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
            for chunk in cleaned {
                self.forget(chunk);
            }
            self.next_chunk = next_chunk;
            self.transactions += 1;
            #[cfg(test)]
            if self.fail_after == Some(self.transactions) && !done {
                return Err(StoreError::Engine(
                    "test: stopped between transactions".into(),
                ));
            }
            rest = after;
            if done {
                break;
            }
        }
        if self.buf.capacity() > 2 * self.chunk_bytes.max(CHUNK_BYTES) {
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

    /// A deterministic source of small random numbers (xorshift).
    fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    /// One random batch of puts and deletes over 24 keys, applied to `model`.
    fn random_batch(
        random: &mut impl FnMut(u64) -> u64,
        model: &mut BTreeMap<String, KeyValue>,
        revision: &mut Revision,
        writes: u64,
    ) -> Vec<Arc<Event>> {
        let mut batch = Vec::new();
        for _ in 0..writes {
            *revision += 1;
            let key = format!("/registry/pods/default/p{}", random(24));
            if random(4) == 0 && model.contains_key(&key) {
                let old = model.remove(&key).unwrap();
                batch.push(event(
                    EventType::Delete,
                    &key,
                    &old.value,
                    old.create_revision,
                    *revision,
                ));
            } else {
                let value = vec![b'a' + (*revision % 26) as u8; 20 + random(300) as usize];
                let create = model.get(&key).map_or(*revision, |kv| kv.create_revision);
                let put = event(EventType::Put, &key, &value, create, *revision);
                model.insert(key, put.kv.clone());
                batch.push(put);
            }
        }
        batch
    }

    /// Open `path` with every checkpoint allowed to clean, and `limits` (chunk, transaction
    /// bytes) if given.
    fn cleaning_engine(path: &Path, limits: Option<(usize, usize)>) -> RedbEngine {
        let engine = RedbEngine::open(path).unwrap().with_garbage_slack(0);
        match limits {
            Some((chunk, txn)) => engine.with_limits(chunk, txn),
            None => engine,
        }
    }

    /// Random puts and deletes over a few keys, with every checkpoint allowed to clean
    /// (slack 0): after each reopen the file holds exactly the model's keys (no deleted key
    /// comes back from an older chunk), the accounting rebuilt from the file equals the one
    /// kept in memory, and the file stays near the live bytes instead of growing with every
    /// write. Returns the redb transactions the checkpoints took.
    fn cleaning_model(limits: Option<(usize, usize)>) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let mut engine = cleaning_engine(&path, limits);
        assert_eq!(loaded(&mut engine).1, 1);
        let mut model: BTreeMap<String, KeyValue> = BTreeMap::new();
        let mut revision: Revision = 1;
        let mut random = xorshift(0x2545_f491_4f6c_dd1d);
        let mut written = 0u64;
        let mut transactions = 0;
        for round in 1..=300 {
            let writes = random(12) + 1;
            let batch = random_batch(&mut random, &mut model, &mut revision, writes);
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
                transactions += engine.transactions;
                drop(engine);
                engine = cleaning_engine(&path, limits);
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
        transactions
    }

    #[test]
    fn cleaning_keeps_the_file_small_and_loses_nothing() {
        assert_eq!(cleaning_model(None), 300, "one transaction per checkpoint");
    }

    /// The same with chunks of a few records and transactions of a few chunks: checkpoints
    /// and their cleaning are split over several transactions.
    #[test]
    fn cleaning_split_over_transactions_loses_nothing() {
        let transactions = cleaning_model(Some((600, 1_000)));
        assert!(
            transactions > 450,
            "{transactions} transactions for 300 checkpoints"
        );
    }

    /// A checkpoint stopped after one of its transactions (a crash between them) leaves the
    /// file at exactly the state of a revision inside the batch. Committing the batch's
    /// remaining writes again, as the WAL's replay does, then gives the whole batch.
    #[test]
    fn a_checkpoint_stopped_between_transactions_leaves_a_revision_s_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let limits = Some((600, 1_000));
        let mut engine = cleaning_engine(&path, limits);
        loaded(&mut engine);
        let mut model: BTreeMap<String, KeyValue> = BTreeMap::new();
        let mut revision: Revision = 1;
        let mut random = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..40 {
            let writes = random(12) + 1;
            let batch = random_batch(&mut random, &mut model, &mut revision, writes);
            engine.commit(&batch, revision).unwrap();
        }
        let before = revision;
        let mut states = vec![(before, model.clone())];
        let mut batch = Vec::new();
        for _ in 0..30 {
            batch.extend(random_batch(&mut random, &mut model, &mut revision, 1));
            states.push((revision, model.clone()));
        }
        engine.fail_after = Some(engine.transactions + 2);
        assert!(engine.commit(&batch, revision).is_err());
        drop(engine);
        let mut engine = cleaning_engine(&path, limits);
        let (state, at) = loaded(&mut engine);
        assert!(
            before < at && at < revision,
            "stopped at {at}, the batch is {before}..{revision}"
        );
        let expected = &states.iter().find(|(r, _)| *r == at).unwrap().1;
        assert_eq!(summary(&state), summary(expected));
        assert_eq!(&state, expected);
        let replay: Vec<_> = batch
            .iter()
            .filter(|e| e.revision() > at)
            .cloned()
            .collect();
        engine.commit(&replay, revision).unwrap();
        drop(engine);
        let mut engine = cleaning_engine(&path, limits);
        assert_eq!(loaded(&mut engine), (model, revision));
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

    /// A checkpoint larger than [`CHUNK_BYTES`] is split over several chunks, one larger than
    /// [`TXN_BYTES`] over several transactions, and it reads back whole.
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
        // Two records of 1 MiB do not fit a chunk below 2 MiB; 16 MiB of records per
        // transaction take 15 of them.
        assert_eq!(engine.stats().chunks, 20);
        assert_eq!(engine.transactions, 2);
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
