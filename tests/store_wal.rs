//! The write-ahead log in front of redb (`kubeactor::store::wal`): recovery after a kill,
//! torn tails, bounded disk, and a clean close.
//!
//! A kill *before any checkpoint* is made deterministic by a child process: this test binary
//! re-executes itself (selected by an environment variable) with checkpoints pushed an hour
//! away, makes `n` writes one at a time (one WAL frame each), waits until each is durable and
//! then SIGKILLs itself. The parent then opens the engine directly and reads its
//! [`Recovery`] report: what was checkpointed, what was replayed, what tail was dropped.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubeactor::store::redb::{open, wal_dir, wal_engine};
use kubeactor::store::wal::{segment_files, Recovery, WalOptions};
use kubeactor::store::{Engine, KeyValue, Op, Precondition, Revision, Store, StoreOptions};
use tempfile::TempDir;

const CHILD_DIR_VAR: &str = "KUBEACTOR_WAL_CHILD_DIR";
const CHILD_WRITES_VAR: &str = "KUBEACTOR_WAL_CHILD_WRITES";
const CHILD_SEGMENT_VAR: &str = "KUBEACTOR_WAL_CHILD_SEGMENT_BYTES";
const CHILD_CHECKPOINTS_VAR: &str = "KUBEACTOR_WAL_CHILD_CHECKPOINTS";
/// Generous: every step here takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);

fn store_path(dir: &Path) -> PathBuf {
    dir.join("store.redb")
}

fn key(i: usize) -> String {
    format!("/w/{i:04}")
}

fn value(i: usize) -> String {
    format!("value-{i}-{}", "x".repeat(40))
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.to_string(),
        value: Arc::from(value.as_bytes()),
        precondition: Precondition::None,
    }
}

/// Write and wait until durable.
fn commit(store: &dyn Store, op: Op) -> Revision {
    let pending = store.write(op).expect("write accepted");
    pending
        .durable
        .blocking_recv()
        .expect("acknowledgement")
        .expect("durable");
    pending.revision
}

/// Checkpoints so rare that none happens while a child runs.
fn no_checkpoints(segment_bytes: Option<u64>) -> WalOptions {
    let defaults = WalOptions::default();
    WalOptions {
        segment_bytes: segment_bytes.unwrap_or(defaults.segment_bytes),
        checkpoint_interval: Duration::from_secs(3600),
        checkpoint_events: usize::MAX,
    }
}

/// The child role: not a test of its own (it returns at once unless the parent started it).
#[test]
fn wal_child_role() {
    let (Ok(dir), Ok(writes)) = (
        std::env::var(CHILD_DIR_VAR),
        std::env::var(CHILD_WRITES_VAR),
    ) else {
        return;
    };
    let writes: usize = writes.parse().expect("write count");
    let segment_bytes = std::env::var(CHILD_SEGMENT_VAR)
        .ok()
        .map(|s| s.parse().expect("segment bytes"));
    let checkpoints = std::env::var_os(CHILD_CHECKPOINTS_VAR).is_some();
    let wal = if checkpoints {
        // Checkpoints as often as possible: segments are released, recycled and reused
        // while the child writes.
        WalOptions {
            checkpoint_interval: Duration::from_millis(1),
            checkpoint_events: 8,
            ..no_checkpoints(segment_bytes)
        }
    } else {
        no_checkpoints(segment_bytes)
    };
    let opts = StoreOptions {
        wal,
        ..StoreOptions::default()
    };
    let store = open(&store_path(Path::new(&dir)), opts).expect("child opens the store");
    for i in 0..writes {
        commit(&*store, put(&key(i), &value(i)));
    }
    if checkpoints {
        // Die only once a checkpointed segment has been recycled (a spare file exists), so
        // that the recovery really reads a log written over old frames.
        let wal = wal_dir(&store_path(Path::new(&dir)));
        let deadline = Instant::now() + DEADLINE;
        while !std::fs::read_dir(&wal)
            .expect("list the WAL")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("spare-"))
        {
            assert!(Instant::now() < deadline, "no segment was recycled");
            std::thread::sleep(Duration::from_millis(5)); // polling, with a deadline
        }
        // One more write, into whatever segment is current now.
        commit(&*store, put(&key(writes), &value(writes)));
    }
    // Every write is acknowledged and none (or, with checkpoints, not all) is checkpointed:
    // die without closing.
    // SAFETY: kill(2) on our own pid; it does not return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!("SIGKILL is not caught");
}

/// Run the child on `dir` until it has made `writes` durable writes and killed itself;
/// with `checkpoints`, it checkpoints every few writes instead of never.
fn write_then_kill(dir: &Path, writes: usize, segment_bytes: Option<u64>, checkpoints: bool) {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "wal_child_role",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR_VAR, dir)
    .env(CHILD_WRITES_VAR, writes.to_string());
    if let Some(bytes) = segment_bytes {
        cmd.env(CHILD_SEGMENT_VAR, bytes.to_string());
    }
    if checkpoints {
        cmd.env(CHILD_CHECKPOINTS_VAR, "1");
    }
    let mut child = cmd.spawn().expect("spawn child");
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not finish {writes} writes in time");
        }
        std::thread::sleep(Duration::from_millis(10)); // polling the child, with a deadline
    };
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the child died by its own SIGKILL ({status})"
    );
}

/// Open the WAL engine on `dir` and load it: the recovered state and the recovery report.
/// Dropping the engine closes it (checkpoint everything, empty WAL).
fn recover(dir: &Path) -> (Vec<KeyValue>, Revision, Recovery) {
    let mut engine = wal_engine(&store_path(dir), WalOptions::default()).expect("open engine");
    let (kvs, revision) = engine.load().expect("recovery succeeds");
    let recovery = engine.recovery().clone();
    (kvs, revision, recovery)
}

fn value_of(kvs: &[KeyValue], key: &str) -> Option<String> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

#[test]
fn wal_is_replayed_after_a_kill_before_any_checkpoint() {
    let dir = TempDir::new().unwrap();
    write_then_kill(dir.path(), 100, None, false);

    let (kvs, revision, recovery) = recover(dir.path());
    assert_eq!(
        recovery.checkpointed_revision, 1,
        "nothing reached redb before the kill"
    );
    assert_eq!(
        recovery.replayed_events, 100,
        "every write came from the WAL"
    );
    assert_eq!((revision, recovery.revision), (101, 101));
    assert_eq!(recovery.torn_tail, None);
    assert_eq!(kvs.len(), 100);
    for i in 0..100 {
        assert_eq!(value_of(&kvs, &key(i)), Some(value(i)), "{}", key(i));
    }

    // The replay was checkpointed: the store has it all, and the next open replays nothing.
    let store = open(&store_path(dir.path()), StoreOptions::default()).expect("reopen");
    assert_eq!(store.revision(), 101);
    assert_eq!(store.range("/w/", None).unwrap().kvs, kvs);
    assert_eq!(commit(&*store, put("/after", "1")), 102);
    store.close();
    let (_, revision, recovery) = recover(dir.path());
    assert_eq!(revision, 102);
    assert_eq!(recovery.replayed_events, 0);
}

/// Checkpoints release segments while the child writes, so its cuts reuse recycled ones
/// (whose old frames stay behind the new). After the kill every acknowledged write is back.
#[test]
fn a_kill_while_segments_are_recycled_loses_nothing() {
    let dir = TempDir::new().unwrap();
    // ~100-byte frames in 1 KiB segments: dozens of cuts.
    write_then_kill(dir.path(), 400, Some(1024), true);
    let (kvs, revision, recovery) = recover(dir.path());
    // 400 writes, then one more once a segment was recycled.
    assert_eq!((revision, recovery.revision), (402, 402));
    assert!(
        recovery.checkpointed_revision > 1,
        "checkpoints ran: {recovery:?}"
    );
    assert_eq!(kvs.len(), 401);
    for i in 0..=400 {
        assert_eq!(value_of(&kvs, &key(i)), Some(value(i)), "{}", key(i));
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// The file ends three bytes before the last frame does: a write cut short.
    TruncateMidRecord,
    /// The last byte of the last frame is flipped: its CRC no longer matches.
    FlipLastByte,
}

#[test]
fn a_torn_tail_is_dropped_and_the_store_opens() {
    for damage in [Damage::TruncateMidRecord, Damage::FlipLastByte] {
        let dir = TempDir::new().unwrap();
        write_then_kill(dir.path(), 20, None, false);
        let segments = segment_files(&wal_dir(&store_path(dir.path()))).unwrap();
        let last = segments.last().expect("a segment");
        let mut bytes = std::fs::read(last).unwrap();
        // The segment is preallocated with zeros: the last frame ends at the last non-zero
        // byte (its value ends in 'x').
        let end = bytes.iter().rposition(|b| *b != 0).expect("records") + 1;
        match damage {
            Damage::TruncateMidRecord => {
                let file = std::fs::OpenOptions::new().write(true).open(last).unwrap();
                file.set_len(end as u64 - 3).unwrap();
            }
            Damage::FlipLastByte => {
                bytes[end - 1] ^= 0xff;
                std::fs::write(last, &bytes).unwrap();
            }
        }

        let (kvs, revision, recovery) = recover(dir.path());
        let torn = recovery
            .torn_tail
            .as_ref()
            .unwrap_or_else(|| panic!("{damage:?}: the damaged frame is reported as a torn tail"));
        assert_eq!(&torn.segment, last, "{damage:?}");
        assert_eq!(
            recovery.replayed_events, 19,
            "{damage:?}: the 19 intact frames"
        );
        assert_eq!(revision, 20, "{damage:?}");
        assert_eq!(value_of(&kvs, &key(18)), Some(value(18)), "{damage:?}");
        assert_eq!(value_of(&kvs, &key(19)), None, "{damage:?}: the torn write");

        let store = open(&store_path(dir.path()), StoreOptions::default())
            .expect("the store opens after a torn tail");
        assert_eq!(store.revision(), 20, "{damage:?}");
        assert_eq!(
            commit(&*store, put(&key(19), "again")),
            21,
            "{damage:?}: the torn revision is reused"
        );
        store.close();
        let (_, _, recovery) = recover(dir.path());
        assert_eq!(
            recovery.torn_tail, None,
            "{damage:?}: the torn tail is gone for good"
        );
    }
}

#[test]
fn a_bad_record_in_the_middle_of_the_log_fails_the_open() {
    let dir = TempDir::new().unwrap();
    // ~100-byte frames in 512-byte segments: several segments.
    write_then_kill(dir.path(), 30, Some(512), false);
    let segments = segment_files(&wal_dir(&store_path(dir.path()))).unwrap();
    assert!(segments.len() > 2, "the log was cut: {segments:?}");
    let first = &segments[0];
    let mut bytes = std::fs::read(first).unwrap();
    bytes[20] ^= 0xff; // inside the first frame's payload
    std::fs::write(first, &bytes).unwrap();

    let mut engine = wal_engine(&store_path(dir.path()), WalOptions::default()).unwrap();
    let err = engine
        .load()
        .expect_err("acknowledged records follow the bad one: not a tail");
    assert!(err.to_string().contains("corrupt WAL segment"), "{err}");
}

#[test]
fn checkpoints_remove_segments_so_the_wal_stays_bounded() {
    let dir = TempDir::new().unwrap();
    let wal = wal_dir(&store_path(dir.path()));
    let opts = StoreOptions {
        wal: WalOptions {
            segment_bytes: 16 << 10,
            checkpoint_interval: Duration::from_millis(5),
            checkpoint_events: 32,
        },
        ..StoreOptions::default()
    };
    let store = open(&store_path(dir.path()), opts).expect("open store");
    let big = "v".repeat(1000);
    for round in 0..20 {
        let pending: Vec<_> = (0..16)
            .map(|i| {
                store
                    .write(put(&key(round * 16 + i), &big))
                    .expect("write accepted")
            })
            .collect();
        for p in pending {
            p.durable.blocking_recv().unwrap().unwrap();
        }
    }
    // 320 KB were logged into 16 KiB segments.
    let newest = segment_files(&wal).unwrap();
    let newest_name = newest
        .last()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy();
    let seq = u64::from_str_radix(&newest_name[..16], 16).unwrap();
    assert!(
        seq >= 15,
        "the log was cut many times (newest {newest_name})"
    );

    let deadline = Instant::now() + DEADLINE;
    while segment_files(&wal).unwrap().len() > 1 {
        assert!(
            Instant::now() < deadline,
            "checkpoints did not release the closed segments: {:?}",
            segment_files(&wal).unwrap()
        );
        std::thread::sleep(Duration::from_millis(5)); // polling the checkpoint thread
    }

    store.close();
    assert_eq!(segment_files(&wal).unwrap(), Vec::<PathBuf>::new());
    let (kvs, revision, recovery) = recover(dir.path());
    assert_eq!((kvs.len(), revision), (320, 321));
    assert_eq!(recovery.replayed_events, 0);
}

#[test]
fn reopen_after_close_needs_no_replay() {
    let metrics = kubeactor::metrics::global();
    let (syncs, commits) = (
        metrics.sample("etcd_disk_wal_fsync_duration_seconds_count"),
        metrics.sample("etcd_disk_backend_commit_duration_seconds_count"),
    );
    let dir = TempDir::new().unwrap();
    let store = open(&store_path(dir.path()), StoreOptions::default()).expect("open store");
    for i in 0..50 {
        commit(&*store, put(&key(i), &value(i)));
    }
    commit(
        &*store,
        Op::Delete {
            key: key(0),
            precondition: Precondition::None,
        },
    );
    store.close();
    assert!(
        segment_files(&wal_dir(&store_path(dir.path())))
            .unwrap()
            .is_empty(),
        "close leaves an empty WAL"
    );
    // Each acknowledged write was its own fdatasync'd frame; close checkpointed into redb.
    // (Other tests in this binary count too: at least ours are there.)
    assert!(metrics.sample("etcd_disk_wal_fsync_duration_seconds_count") >= syncs + 51.0);
    assert!(metrics.sample("etcd_disk_backend_commit_duration_seconds_count") > commits);

    let (kvs, revision, recovery) = recover(dir.path());
    assert_eq!(
        recovery,
        Recovery {
            checkpointed_revision: 52,
            replayed_events: 0,
            revision: 52,
            torn_tail: None,
        },
        "redb already holds every write"
    );
    assert_eq!((kvs.len(), revision), (49, 52));
    assert_eq!(value_of(&kvs, &key(0)), None, "the delete was checkpointed");
}
