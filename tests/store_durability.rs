//! A write acknowledged as durable survives `kill -9`.
//!
//! The parent test re-executes this test binary as a child (selected by an environment
//! variable) that writes through a redb store as fast as group commit allows and prints one
//! `ACK <revision> <key> <value>` line per write *after* its `durable` future resolved. The
//! parent reads those lines and SIGKILLs the child after 10, 200 and 1000 acknowledgements
//! (three rounds on the same data directory), then reopens the store and checks:
//!
//! * every acknowledged write is there, with its value and revision;
//! * the recovered state is a prefix of the child's writes (no hole: batches are atomic);
//! * the store accepts new writes, with revisions above every acknowledged one.
//!
//! Writes acknowledged just before the kill are still in the pipe; the parent reads the pipe to
//! its end after the kill, so those count too.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubeactor::store::{Op, PendingWrite, Precondition, Revision, Store, StoreOptions};

const CHILD_DIR_VAR: &str = "KUBEACTOR_DURABILITY_CHILD_DIR";
const CHILD_ROUND_VAR: &str = "KUBEACTOR_DURABILITY_CHILD_ROUND";
const DEADLINE: Duration = Duration::from_secs(15);
/// Writes the child keeps in flight, so that several land in each group commit.
const IN_FLIGHT: usize = 32;
/// The child stops by itself after this many steps, in case the parent is gone.
const MAX_STEPS: usize = 100_000;
/// Overwritten by every step: checks that overwrites recover too.
const LAST_KEY: &str = "/d/last";

fn store_path(dir: &Path) -> PathBuf {
    dir.join("store.redb")
}

fn unique_key(round: usize, step: usize) -> String {
    format!("/d/r{round}/{step:06}")
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.to_string(),
        value: Arc::from(value.as_bytes()),
        precondition: Precondition::None,
    }
}

/// The child role: not a test of its own (it returns at once unless the parent started it).
#[test]
fn durability_child_role() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_DIR_VAR), std::env::var(CHILD_ROUND_VAR))
    else {
        return;
    };
    let round: usize = round.parse().expect("round number");
    let store = kubeactor::store::redb::open(&store_path(Path::new(&dir)), StoreOptions::default())
        .expect("child opens the store");
    let mut stdout = std::io::stdout().lock();
    let mut in_flight: VecDeque<(String, String, PendingWrite)> = VecDeque::new();
    for step in 0..MAX_STEPS {
        let value = format!("value-{round}-{step}-{}", "x".repeat(step % 97));
        for key in [unique_key(round, step), LAST_KEY.to_string()] {
            let pending = store.write(put(&key, &value)).expect("write accepted");
            in_flight.push_back((key, value.clone(), pending));
        }
        while in_flight.len() > IN_FLIGHT {
            let (key, value, pending) = in_flight.pop_front().expect("non-empty");
            let revision = pending.revision;
            pending
                .durable
                .blocking_recv()
                .expect("acknowledgement")
                .expect("durable");
            if writeln!(stdout, "ACK {revision} {key} {value}").is_err() {
                return; // the parent is gone
            }
            let _ = stdout.flush();
        }
    }
}

struct Ack {
    revision: Revision,
    key: String,
    value: String,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ACK ")?.splitn(3, ' ');
    Some(Ack {
        revision: parts.next()?.parse().ok()?,
        key: parts.next()?.to_string(),
        value: parts.next()?.to_string(),
    })
}

/// Run one child round and SIGKILL it after `kill_after` acknowledgements; every ack it printed.
fn run_child_and_kill(dir: &Path, round: usize, kill_after: usize) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "durability_child_role",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VAR, dir)
        .env(CHILD_ROUND_VAR, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    // Read on a thread so that every wait below has a deadline.
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + DEADLINE;
    let mut acks = Vec::new();
    let mut killed = false;
    loop {
        if !killed && acks.len() >= kill_after {
            child.kill().expect("SIGKILL the child"); // std's kill is SIGKILL on Unix
            killed = true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => acks.extend(parse_ack(&line)),
            // The pipe is closed: the child is dead and everything it printed was read.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("deadline: round {round} saw {} acks", acks.len());
            }
        }
    }
    let status = child.wait().expect("reap child");
    reader.join().expect("reader thread");
    assert!(
        killed,
        "child exited by itself ({status}) after {} acks",
        acks.len()
    );
    assert!(acks.len() >= kill_after);
    acks
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    // Latest acknowledged (revision, value) per key, over all rounds.
    let mut acked: BTreeMap<String, (Revision, String)> = BTreeMap::new();
    for (round, kill_after) in [(0, 10), (1, 200), (2, 1000)] {
        for ack in run_child_and_kill(dir.path(), round, kill_after) {
            let latest = acked.entry(ack.key).or_insert((0, String::new()));
            if ack.revision > latest.0 {
                *latest = (ack.revision, ack.value);
            }
        }
        let max_acked = acked
            .values()
            .map(|(rev, _)| *rev)
            .max()
            .expect("some acks");

        let store = kubeactor::store::redb::open(&store_path(dir.path()), StoreOptions::default())
            .expect("the store reopens cleanly after SIGKILL");
        assert!(
            store.revision() >= max_acked,
            "round {round}: revision went back"
        );
        for (key, (revision, value)) in &acked {
            let kv = store
                .get(key)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged {key}@{revision} lost"));
            if key == LAST_KEY {
                // Later (committed but unacknowledged) overwrites may have landed.
                assert!(
                    kv.mod_revision >= *revision,
                    "round {round}: {key} went back"
                );
                if kv.mod_revision == *revision {
                    assert_eq!(&*kv.value, value.as_bytes());
                }
            } else {
                assert_eq!(kv.mod_revision, *revision, "round {round}: {key}");
                assert_eq!(&*kv.value, value.as_bytes(), "round {round}: {key}");
            }
        }
        // Batches are atomic: each round's keys are steps 0..n with no hole.
        for r in 0..=round {
            let kvs = store.range(&format!("/d/r{r}/"), None).unwrap().kvs;
            for (step, kv) in kvs.iter().enumerate() {
                assert_eq!(
                    kv.key,
                    unique_key(r, step),
                    "round {round}: a hole in round {r}"
                );
            }
        }
        let pending = store
            .write(put("/d/after", &round.to_string()))
            .expect("accepts writes");
        assert!(pending.revision > max_acked);
        assert_eq!(pending.revision, store.revision() + 1);
        pending
            .durable
            .blocking_recv()
            .expect("acknowledgement")
            .expect("durable after recovery");
        store.close();
    }
}
