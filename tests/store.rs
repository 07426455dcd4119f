//! The store contracts (see `kubeactor::store`), checked against every engine.
//!
//! Each test is an `async fn(MakeEngine)`; the `suite!` macro at the bottom runs every one of
//! them against the memory engine, the bare redb engine and the WAL in front of redb. Tests that must control *when* a commit
//! happens wrap the engine in a [`Gated`] engine that holds each commit until the test opens
//! the gate — so batching and visibility are asserted deterministically, never by timing.
//! Every wait has a deadline: a broken store fails a test, it does not hang it.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use kubeactor::store::{
    CoreStore, Engine, Event, EventType, KeyValue, MemoryEngine, Op, PendingWrite, Precondition,
    RedbEngine, Revision, Store, StoreError, StoreOptions, WalEngine, WalOptions, WatchMessage,
};
use tempfile::TempDir;
use tokio::sync::mpsc;

/// Generous: nothing here should take more than milliseconds.
const DEADLINE: Duration = Duration::from_secs(10);

type MakeEngine = fn(&Path) -> Box<dyn Engine>;

fn memory_engine(_dir: &Path) -> Box<dyn Engine> {
    Box::new(MemoryEngine::new())
}

fn redb_engine(dir: &Path) -> Box<dyn Engine> {
    Box::new(RedbEngine::open(&dir.join("store.redb")).expect("open redb"))
}

/// What `store::open` uses for redb: a WAL in front of the redb file.
fn wal_engine(dir: &Path) -> Box<dyn Engine> {
    let redb = RedbEngine::open(&dir.join("store.redb")).expect("open redb");
    Box::new(WalEngine::open(&dir.join("wal"), redb, WalOptions::default()).expect("open wal"))
}

/// A store and the directory its engine lives in (kept alive as long as the store).
struct Harness {
    store: Arc<CoreStore>,
    _dir: TempDir,
}

fn open(make: MakeEngine, opts: StoreOptions) -> Harness {
    let dir = TempDir::new().expect("tempdir");
    let store = CoreStore::new(make(dir.path()), opts).expect("open store");
    Harness { store, _dir: dir }
}

/// A store whose every commit waits at `gate` until the test opens it.
fn open_gated(make: MakeEngine, opts: StoreOptions) -> (Harness, Arc<Gate>) {
    let dir = TempDir::new().expect("tempdir");
    let gate = Arc::new(Gate::default());
    let engine = Gated {
        inner: make(dir.path()),
        gate: gate.clone(),
    };
    let store = CoreStore::new(engine, opts).expect("open store");
    (Harness { store, _dir: dir }, gate)
}

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    open: bool,
    /// Fail every commit that passes the gate.
    fail: bool,
    /// Commits that reached the gate.
    entered: usize,
    /// Sizes of the batches that passed the gate, in order.
    batches: Vec<usize>,
}

impl Gate {
    fn open(&self) {
        self.state.lock().unwrap().open = true;
        self.changed.notify_all();
    }

    fn fail_and_open(&self) {
        self.state.lock().unwrap().fail = true;
        self.open();
    }

    /// Block until `n` commits have reached the gate.
    fn wait_entered(&self, n: usize) {
        let deadline = Instant::now() + DEADLINE;
        let mut state = self.state.lock().unwrap();
        while state.entered < n {
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("deadline waiting for a commit to reach the gate");
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
    }

    fn batches(&self) -> Vec<usize> {
        self.state.lock().unwrap().batches.clone()
    }
}

struct Gated {
    inner: Box<dyn Engine>,
    gate: Arc<Gate>,
}

impl Engine for Gated {
    fn load(&mut self) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        self.inner.load()
    }

    fn commit(&mut self, batch: &[Arc<Event>], new_revision: Revision) -> Result<(), StoreError> {
        {
            let mut state = self.gate.state.lock().unwrap();
            state.entered += 1;
            self.gate.changed.notify_all();
            while !state.open {
                state = self.gate.changed.wait(state).unwrap();
            }
            if state.fail {
                return Err(StoreError::Engine("disk on fire".into()));
            }
            state.batches.push(batch.len());
        }
        self.inner.commit(batch, new_revision)
    }
}

// ---- helpers ----

fn put(key: &str, value: &str, precondition: Precondition) -> Op {
    Op::Put {
        key: key.to_string(),
        value: Arc::from(value.as_bytes()),
        precondition,
    }
}

fn delete(key: &str, precondition: Precondition) -> Op {
    Op::Delete {
        key: key.to_string(),
        precondition,
    }
}

/// Wait (with a deadline) until `pending` is durable; its revision.
async fn durable(pending: PendingWrite) -> Revision {
    tokio::time::timeout(DEADLINE, pending.durable)
        .await
        .expect("deadline waiting for durability")
        .expect("committer dropped the acknowledgement")
        .expect("commit failed");
    pending.revision
}

/// Write and wait until durable.
async fn commit(store: &CoreStore, op: Op) -> Revision {
    durable(store.write(op).expect("write accepted")).await
}

async fn next(rx: &mut mpsc::Receiver<WatchMessage>) -> Option<WatchMessage> {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("deadline waiting for a watch message")
}

/// `(kind, key, revision)` of each event of an `Events` message.
fn summary(msg: Option<WatchMessage>) -> Vec<(EventType, String, Revision)> {
    match msg {
        Some(WatchMessage::Events(events)) => events
            .iter()
            .map(|e| (e.kind, e.kv.key.clone(), e.revision()))
            .collect(),
        other => panic!("expected events, got {other:?}"),
    }
}

fn value(kv: &KeyValue) -> &str {
    std::str::from_utf8(&kv.value).expect("utf-8 value")
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

fn small_window(event_window: usize) -> StoreOptions {
    StoreOptions {
        event_window,
        ..StoreOptions::default()
    }
}

// ---- the suite ----

/// Revision 1 is the empty store; every write adds exactly one.
async fn revision_starts_at_one_and_each_write_adds_one(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    assert_eq!(s.revision(), 1);
    assert_eq!(s.compacted_revision(), 1);
    assert_eq!(commit(s, put("/a", "1", Precondition::Absent)).await, 2);
    assert_eq!(commit(s, put("/b", "1", Precondition::None)).await, 3);
    assert_eq!(
        commit(s, put("/a", "2", Precondition::ModRevision(2))).await,
        4
    );
    assert_eq!(commit(s, delete("/b", Precondition::Exists)).await, 5);
    assert_eq!(s.revision(), 5);
    let a = s.get("/a").unwrap().expect("a exists");
    assert_eq!((a.create_revision, a.mod_revision, value(&a)), (2, 4, "2"));
    assert_eq!(s.get("/b").unwrap(), None);
}

/// `get` returns one key; `range` every key under a prefix, in key order.
async fn get_and_range_by_prefix(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    for key in ["/a/2", "/b/1", "/a/1", "/ab"] {
        commit(s, put(key, key, Precondition::Absent)).await;
    }
    let a = s.range("/a/", None).unwrap();
    assert_eq!(keys(&a.kvs), ["/a/1", "/a/2"]);
    assert_eq!(a.revision, 5);
    assert_eq!(value(&a.kvs[0]), "/a/1");
    assert_eq!(
        keys(&s.range("/a", None).unwrap().kvs),
        ["/a/1", "/a/2", "/ab"]
    );
    assert_eq!(s.range("", None).unwrap().kvs.len(), 4);
    assert!(s.range("/c", None).unwrap().kvs.is_empty());
    assert_eq!(s.get("/a/1").unwrap().unwrap().mod_revision, 4);
    assert_eq!(s.get("/a").unwrap(), None);
}

/// A create of an existing key is a conflict and uses no revision.
async fn create_on_existing_key_conflicts(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    commit(s, put("/k", "first", Precondition::Absent)).await;
    let err = s.write(put("/k", "second", Precondition::Absent)).err();
    assert_eq!(
        err,
        Some(StoreError::Conflict {
            key: "/k".into(),
            current: Some(2)
        })
    );
    assert_eq!(value(&s.get("/k").unwrap().unwrap()), "first");
    assert_eq!(commit(s, put("/other", "x", Precondition::None)).await, 3);
}

/// An update with a stale revision is a conflict; the stored value is unchanged.
async fn stale_update_conflicts_and_leaves_value_unchanged(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    commit(s, put("/k", "v1", Precondition::Absent)).await;
    commit(s, put("/k", "v2", Precondition::ModRevision(2))).await;
    let err = s
        .write(put("/k", "lost", Precondition::ModRevision(2)))
        .err();
    assert_eq!(
        err,
        Some(StoreError::Conflict {
            key: "/k".into(),
            current: Some(3)
        })
    );
    let err = s.write(put("/missing", "x", Precondition::Exists)).err();
    assert_eq!(
        err,
        Some(StoreError::Conflict {
            key: "/missing".into(),
            current: None
        })
    );
    let kv = s.get("/k").unwrap().unwrap();
    assert_eq!((value(&kv), kv.mod_revision), ("v2", 3));
    assert_eq!(s.revision(), 3);
}

/// Deletes honour their precondition; a delete event carries the last value; a put after a
/// delete starts a new life.
async fn delete_honours_its_precondition(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    commit(s, put("/k", "v1", Precondition::Absent)).await;
    commit(s, put("/k", "v2", Precondition::None)).await;
    let err = s.write(delete("/k", Precondition::ModRevision(2))).err();
    assert!(matches!(
        err,
        Some(StoreError::Conflict {
            current: Some(3),
            ..
        })
    ));
    assert!(s.get("/k").unwrap().is_some());

    let mut commits = s.subscribe();
    let pending = s.write(delete("/k", Precondition::ModRevision(3))).unwrap();
    assert_eq!(pending.prev.as_ref().map(value), Some("v2"));
    assert_eq!(durable(pending).await, 4);
    assert_eq!(s.get("/k").unwrap(), None);
    let batch = commits.recv().await.expect("a batch");
    let event = &batch[0];
    assert_eq!(event.kind, EventType::Delete);
    assert_eq!((value(&event.kv), event.kv.mod_revision), ("v2", 4));
    assert_eq!(event.kv.create_revision, 2);
    assert_eq!(event.prev.as_ref().map(|kv| kv.mod_revision), Some(3));

    // Deleting what is not there is a conflict, whatever the precondition.
    for pre in [Precondition::None, Precondition::Exists] {
        let err = s.write(delete("/k", pre)).err();
        assert_eq!(
            err,
            Some(StoreError::Conflict {
                key: "/k".into(),
                current: None
            })
        );
    }
    commit(s, put("/k", "v3", Precondition::Absent)).await;
    let kv = s.get("/k").unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (5, 5));
}

/// Preconditions see accepted writes that are not durable yet; reads do not.
async fn preconditions_see_pending_writes_but_reads_do_not(make: MakeEngine) {
    let (h, gate) = open_gated(make, StoreOptions::default());
    let s = &*h.store;
    let first = s.write(put("/k", "v1", Precondition::Absent)).unwrap();
    gate.wait_entered(1);
    let second = s
        .write(put("/k", "v2", Precondition::ModRevision(2)))
        .unwrap();
    assert_eq!(second.revision, 3);
    assert_eq!(second.prev.as_ref().map(|kv| kv.mod_revision), Some(2));
    assert!(matches!(
        s.write(put("/k", "v0", Precondition::Absent)),
        Err(StoreError::Conflict {
            current: Some(3),
            ..
        })
    ));
    let gone = s.write(delete("/k", Precondition::ModRevision(3))).unwrap();
    assert!(matches!(
        s.write(put("/k", "v9", Precondition::Exists)),
        Err(StoreError::Conflict { current: None, .. })
    ));

    // Nothing is durable yet: reads see the empty store.
    assert_eq!(s.get("/k").unwrap(), None);
    assert!(s.range("", None).unwrap().kvs.is_empty());
    assert_eq!(s.revision(), 1);
    assert!(matches!(
        s.watch("", 2),
        Err(StoreError::FutureRevision {
            requested: 2,
            current: 1
        })
    ));

    gate.open();
    assert_eq!(durable(first).await, 2);
    assert_eq!(durable(second).await, 3);
    assert_eq!(durable(gone).await, 4);
    assert_eq!(s.get("/k").unwrap(), None);
    assert_eq!(s.revision(), 4);
}

/// Many threads race a compare-and-swap on the same revision: exactly one wins each round, the
/// others see the winner's revision.
async fn concurrent_cas_has_exactly_one_winner_per_round(make: MakeEngine) {
    const THREADS: usize = 16;
    const ROUNDS: usize = 25;
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    let mut current = commit(s, put("/cas", "start", Precondition::Absent)).await;
    let mut last = None;
    for round in 0..ROUNDS {
        let barrier = Barrier::new(THREADS);
        let results: Vec<(usize, Result<PendingWrite, StoreError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        let op = put(
                            "/cas",
                            &format!("{round}-{t}"),
                            Precondition::ModRevision(current),
                        );
                        (t, s.write(op))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut winners = Vec::new();
        for (t, result) in results {
            match result {
                Ok(pending) => winners.push((t, pending)),
                Err(StoreError::Conflict { current: c, .. }) => {
                    assert_eq!(c, Some(current + 1), "a loser sees the winner's revision")
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner");
        let (t, pending) = winners.pop().unwrap();
        current = pending.revision;
        last = Some((format!("{round}-{t}"), pending));
    }
    let (winning_value, pending) = last.unwrap();
    assert_eq!(durable(pending).await, current);
    let kv = s.get("/cas").unwrap().unwrap();
    assert_eq!(
        (value(&kv), kv.mod_revision),
        (winning_value.as_str(), current)
    );
    assert_eq!(s.revision(), 2 + ROUNDS as Revision);
}

/// `range` at an old revision inside the window shows the state as of that revision.
async fn range_at_an_old_revision(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    commit(s, put("/r/a", "a1", Precondition::Absent)).await; // 2
    commit(s, put("/r/b", "b1", Precondition::Absent)).await; // 3
    commit(s, put("/r/a", "a2", Precondition::None)).await; // 4
    commit(s, delete("/r/b", Precondition::None)).await; // 5
    commit(s, put("/r/c", "c1", Precondition::Absent)).await; // 6
    commit(s, put("/x", "x", Precondition::Absent)).await; // 7

    let at = |r| {
        let result = s.range("/r/", Some(r)).unwrap();
        assert_eq!(result.revision, r);
        result
            .kvs
            .iter()
            .map(|kv| format!("{}={}@{}", kv.key, value(kv), kv.mod_revision))
            .collect::<Vec<_>>()
    };
    assert!(at(1).is_empty());
    assert_eq!(at(2), ["/r/a=a1@2"]);
    assert_eq!(at(3), ["/r/a=a1@2", "/r/b=b1@3"]);
    assert_eq!(at(4), ["/r/a=a2@4", "/r/b=b1@3"]);
    assert_eq!(at(5), ["/r/a=a2@4"]);
    assert_eq!(at(7), ["/r/a=a2@4", "/r/c=c1@6"]);
    assert_eq!(
        at(7),
        keys(&s.range("/r/", None).unwrap().kvs)
            .iter()
            .map(|k| {
                let kv = s.get(k).unwrap().unwrap();
                format!("{}={}@{}", k, value(&kv), kv.mod_revision)
            })
            .collect::<Vec<_>>()
    );
    assert!(matches!(
        s.range("/r/", Some(8)),
        Err(StoreError::FutureRevision {
            requested: 8,
            current: 7
        })
    ));
}

/// A watch from `r` replays exactly the events after `r`, then continues live.
async fn watch_replays_events_after_from_then_live(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    for i in 0..5 {
        commit(s, put(&format!("/w/{i}"), "v", Precondition::Absent)).await; // 2..=6
    }
    let mut watch = s.watch("/w/", 3).unwrap();
    let replay = summary(next(&mut watch.rx).await);
    assert_eq!(
        replay.iter().map(|e| e.2).collect::<Vec<_>>(),
        [4, 5, 6],
        "exactly the events after revision 3"
    );
    commit(s, delete("/w/0", Precondition::None)).await; // 7
    commit(s, put("/w/1", "v2", Precondition::None)).await; // 8
    assert_eq!(
        summary(next(&mut watch.rx).await),
        [(EventType::Delete, "/w/0".to_string(), 7)]
    );
    assert_eq!(
        summary(next(&mut watch.rx).await),
        [(EventType::Put, "/w/1".to_string(), 8)]
    );
    assert!(watch.rx.try_recv().is_err(), "no duplicates");
}

/// A watch from the current revision gets only new events; a future revision is refused.
async fn watch_from_current_revision_gets_only_new_events(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    commit(s, put("/k", "1", Precondition::None)).await;
    let mut watch = s.watch("", s.revision()).unwrap();
    assert!(watch.rx.try_recv().is_err(), "nothing to replay");
    assert!(matches!(
        s.watch("", 3),
        Err(StoreError::FutureRevision {
            requested: 3,
            current: 2
        })
    ));
    commit(s, put("/k", "2", Precondition::None)).await;
    assert_eq!(
        summary(next(&mut watch.rx).await),
        [(EventType::Put, "/k".to_string(), 3)]
    );
}

/// Below the retained window, watch and range answer `Expired`; at its edge they work.
async fn watch_from_compacted_revision_expires(make: MakeEngine) {
    let h = open(make, small_window(5));
    let s = &*h.store;
    for i in 0..20 {
        commit(s, put(&format!("/c/{i:02}"), "v", Precondition::Absent)).await; // 2..=21
    }
    assert_eq!(s.revision(), 21);
    assert_eq!(s.compacted_revision(), 16, "the window holds 17..=21");
    assert!(matches!(
        s.watch("", 15),
        Err(StoreError::Expired {
            requested: 15,
            compacted: 16
        })
    ));
    assert!(matches!(
        s.range("", Some(15)),
        Err(StoreError::Expired {
            requested: 15,
            compacted: 16
        })
    ));
    let mut watch = s.watch("", 16).unwrap();
    let replay = summary(next(&mut watch.rx).await);
    assert_eq!(
        replay.iter().map(|e| e.2).collect::<Vec<_>>(),
        [17, 18, 19, 20, 21]
    );
    assert_eq!(s.range("", Some(16)).unwrap().kvs.len(), 15);
    assert_eq!(
        s.range("", None).unwrap().kvs.len(),
        20,
        "compaction keeps current values"
    );
}

/// A watcher that never reads is closed with `Expired`; writers never wait for it.
async fn slow_watcher_is_expired_without_blocking_writers(make: MakeEngine) {
    let opts = StoreOptions {
        watch_buffer: 4,
        ..StoreOptions::default()
    };
    let h = open(make, opts);
    let s = &*h.store;
    let mut slow = s.watch("", 1).unwrap();
    let mut fast = s.watch("", 1).unwrap();
    let started = Instant::now();
    for i in 0..50 {
        // One commit per write (each awaited), so one message per commit.
        commit(s, put(&format!("/s/{i}"), "v", Precondition::None)).await;
        summary(next(&mut fast.rx).await);
    }
    assert!(started.elapsed() < DEADLINE);
    for i in 0..4 {
        assert_eq!(
            summary(next(&mut slow.rx).await),
            [(EventType::Put, format!("/s/{i}"), i + 2)]
        );
    }
    assert!(matches!(
        next(&mut slow.rx).await,
        Some(WatchMessage::Expired)
    ));
    assert!(
        next(&mut slow.rx).await.is_none(),
        "nothing follows Expired"
    );
    assert_eq!(h.store.watcher_count(), 1, "only the fast watcher remains");
}

/// Watchers and ranges only see keys under their prefix.
async fn watch_filters_by_prefix(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    let mut pods = s.watch("/registry/pods/", 1).unwrap();
    commit(s, put("/registry/pods/a", "p", Precondition::None)).await; // 2
    commit(s, put("/registry/podsx", "no", Precondition::None)).await; // 3
    commit(s, put("/registry/nodes/n", "no", Precondition::None)).await; // 4
    commit(s, put("/registry/pods/b", "p", Precondition::None)).await; // 5
    assert_eq!(summary(next(&mut pods.rx).await)[0].2, 2);
    assert_eq!(summary(next(&mut pods.rx).await)[0].2, 5);
    let mut replayed = s.watch("/registry/pods/", 1).unwrap();
    assert_eq!(
        summary(next(&mut replayed.rx).await)
            .iter()
            .map(|e| e.2)
            .collect::<Vec<_>>(),
        [2, 5]
    );
}

/// A dropped watch is removed at the next commit.
async fn dropped_watch_is_removed(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    let kept = s.watch("/a", 1).unwrap();
    let dropped = s.watch("/b", 1).unwrap();
    assert_eq!(h.store.watcher_count(), 2);
    drop(dropped);
    commit(s, put("/a", "v", Precondition::None)).await;
    assert_eq!(h.store.watcher_count(), 1);
    drop(kept);
}

/// Writes submitted while a commit is in flight go together in the next one; watchers and
/// subscribers get one message per commit; `max_batch` bounds a batch.
async fn group_commit_batches_writes(make: MakeEngine) {
    for (max_batch, expected) in [
        (4096, vec![1, 999]),
        (100, [vec![1], vec![100; 9], vec![99]].concat()),
    ] {
        let opts = StoreOptions {
            max_batch,
            ..StoreOptions::default()
        };
        let (h, gate) = open_gated(make, opts);
        let s = &*h.store;
        let mut commits = s.subscribe();
        let mut watch = s.watch("", 1).unwrap();
        let mut pending = vec![s.write(put("/g/0000", "v", Precondition::Absent)).unwrap()];
        gate.wait_entered(1);
        for i in 1..1000 {
            pending.push(
                s.write(put(&format!("/g/{i:04}"), "v", Precondition::Absent))
                    .unwrap(),
            );
        }
        gate.open();
        let mut revisions = Vec::new();
        for p in pending {
            revisions.push(durable(p).await);
        }
        assert_eq!(
            revisions,
            (2..=1001).collect::<Vec<_>>(),
            "contiguous, in order"
        );
        assert_eq!(gate.batches(), expected);
        assert_eq!(s.revision(), 1001);
        assert_eq!(s.range("/g/", None).unwrap().kvs.len(), 1000);
        for size in &expected {
            assert_eq!(commits.recv().await.expect("batch").len(), *size);
            assert_eq!(summary(next(&mut watch.rx).await).len(), *size);
        }
    }
}

/// A burst of writes that nobody awaits until the end all become durable, contiguously.
async fn burst_of_unawaited_writes_all_become_durable(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    let pending: Vec<PendingWrite> = (0..1000)
        .map(|i| {
            s.write(put(
                &format!("/burst/{i:04}"),
                &i.to_string(),
                Precondition::Absent,
            ))
            .unwrap()
        })
        .collect();
    let mut revisions = Vec::new();
    for p in pending {
        revisions.push(durable(p).await);
    }
    assert_eq!(revisions, (2..=1001).collect::<Vec<_>>());
    let all = s.range("/burst/", None).unwrap();
    assert_eq!(all.kvs.len(), 1000);
    for (i, kv) in all.kvs.iter().enumerate() {
        assert_eq!(
            (value(kv), kv.mod_revision),
            (i.to_string().as_str(), i as Revision + 2)
        );
    }
}

/// The subscriber gets every batch, in order.
async fn subscriber_receives_every_batch_in_order(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    let mut commits = s.subscribe();
    let pending: Vec<_> = (0..200)
        .map(|i| {
            s.write(put(&format!("/sub/{i}"), "v", Precondition::None))
                .unwrap()
        })
        .collect();
    for p in pending {
        durable(p).await;
    }
    let mut seen = Vec::new();
    while seen.len() < 200 {
        let batch = tokio::time::timeout(DEADLINE, commits.recv())
            .await
            .unwrap()
            .unwrap();
        seen.extend(batch.iter().map(|e| e.revision()));
    }
    assert_eq!(seen, (2..=201).collect::<Vec<_>>());
}

/// An engine failure fails the batch and everything behind it; the store then refuses writes
/// but still serves reads.
async fn engine_failure_fails_the_batch_and_refuses_later_writes(make: MakeEngine) {
    let (h, gate) = open_gated(make, StoreOptions::default());
    let s = &*h.store;
    let in_flight = s.write(put("/f/1", "v", Precondition::None)).unwrap();
    gate.wait_entered(1);
    let queued = s.write(put("/f/2", "v", Precondition::None)).unwrap();
    gate.fail_and_open();
    for p in [in_flight, queued] {
        let result = tokio::time::timeout(DEADLINE, p.durable)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(result, Err(StoreError::Engine(_))), "{result:?}");
    }
    assert!(matches!(
        s.write(put("/f/3", "v", Precondition::None)),
        Err(StoreError::Engine(_))
    ));
    assert_eq!(s.get("/f/1").unwrap(), None);
    assert_eq!(s.revision(), 1);
    s.close();
}

/// `close` waits for every accepted write; later writes are refused.
async fn close_drains_pending_writes_then_refuses(make: MakeEngine) {
    let h = open(make, StoreOptions::default());
    let s = &*h.store;
    let pending: Vec<_> = (0..100)
        .map(|i| {
            s.write(put(&format!("/close/{i}"), "v", Precondition::None))
                .unwrap()
        })
        .collect();
    s.close();
    assert_eq!(
        s.revision(),
        101,
        "close returned after everything was durable"
    );
    for p in pending {
        durable(p).await;
    }
    assert!(matches!(
        s.write(put("/late", "v", Precondition::None)),
        Err(StoreError::Closed)
    ));
    s.close(); // idempotent
}

fn run<F: Future<Output = ()>>(test: impl FnOnce(MakeEngine) -> F, make: MakeEngine) {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(test(make));
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $name() { super::run(super::$name, super::memory_engine) } )*
        }
        mod redb {
            $( #[test] fn $name() { super::run(super::$name, super::redb_engine) } )*
        }
        mod wal {
            $( #[test] fn $name() { super::run(super::$name, super::wal_engine) } )*
        }
    };
}

suite!(
    revision_starts_at_one_and_each_write_adds_one,
    get_and_range_by_prefix,
    create_on_existing_key_conflicts,
    stale_update_conflicts_and_leaves_value_unchanged,
    delete_honours_its_precondition,
    preconditions_see_pending_writes_but_reads_do_not,
    concurrent_cas_has_exactly_one_winner_per_round,
    range_at_an_old_revision,
    watch_replays_events_after_from_then_live,
    watch_from_current_revision_gets_only_new_events,
    watch_from_compacted_revision_expires,
    slow_watcher_is_expired_without_blocking_writers,
    watch_filters_by_prefix,
    dropped_watch_is_removed,
    group_commit_batches_writes,
    burst_of_unawaited_writes_all_become_durable,
    subscriber_receives_every_batch_in_order,
    engine_failure_fails_the_batch_and_refuses_later_writes,
    close_drains_pending_writes_then_refuses,
);

// ---- redb only ----

/// Reopening a redb store yields every key and the revision; the watch window restarts at
/// the recovered revision; new writes continue the counter.
#[test]
fn redb_reopen_keeps_keys_and_revision() {
    run(
        |_| async {
            let dir = TempDir::new().unwrap();
            let path = dir.path().join("store.redb");
            let before = {
                let s = kubeactor::store::redb::open(&path, StoreOptions::default()).unwrap();
                commit(&s, put("/a", "1", Precondition::Absent)).await; // 2
                commit(&s, put("/b", "1", Precondition::Absent)).await; // 3
                commit(&s, put("/a", "2", Precondition::ModRevision(2))).await; // 4
                commit(&s, delete("/b", Precondition::None)).await; // 5
                commit(&s, put("/c", "", Precondition::Absent)).await; // 6
                s.range("", None).unwrap().kvs
            }; // dropped: closed
            let s = kubeactor::store::redb::open(&path, StoreOptions::default()).unwrap();
            assert_eq!(s.revision(), 6);
            assert_eq!(s.compacted_revision(), 6);
            assert_eq!(s.range("", None).unwrap().kvs, before);
            let a = s.get("/a").unwrap().unwrap();
            assert_eq!((value(&a), a.create_revision, a.mod_revision), ("2", 2, 4));
            assert!(matches!(
                s.watch("", 5),
                Err(StoreError::Expired {
                    requested: 5,
                    compacted: 6
                })
            ));
            let mut watch = s.watch("", 6).unwrap();
            assert_eq!(
                commit(&s, put("/b", "again", Precondition::Absent)).await,
                7
            );
            assert_eq!(
                summary(next(&mut watch.rx).await),
                [(EventType::Put, "/b".to_string(), 7)]
            );
        },
        redb_engine,
    );
}

/// `store::open` creates the data directory and the redb file in it.
#[test]
fn open_by_config_creates_the_data_dir() {
    run(
        |_| async {
            let dir = TempDir::new().unwrap();
            let data_dir = dir.path().join("nested/data");
            let s = kubeactor::store::open(
                kubeactor::config::StoreEngine::Redb,
                &data_dir,
                StoreOptions::default(),
            )
            .unwrap();
            let p = s.write(put("/k", "v", Precondition::Absent)).unwrap();
            assert_eq!(durable(p).await, 2);
            s.close();
            assert!(data_dir.join("store.redb").is_file());
            let m = kubeactor::store::open(
                kubeactor::config::StoreEngine::Memory,
                &data_dir,
                StoreOptions::default(),
            )
            .unwrap();
            assert_eq!(m.revision(), 1);
        },
        redb_engine,
    );
}
