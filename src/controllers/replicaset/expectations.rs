//! Expectations: what a controller is waiting to see in its informer cache before it acts on
//! a key again. Mirrors `ControllerExpectations` and `UIDTrackingControllerExpectations` in
//! `pkg/controller/controller_utils.go`.
//!
//! Why: a ReplicaSet controller creates 3 pods and the next sync of the same key may start
//! before the pod informer has seen them. Without expectations it would count 0 pods and
//! create 3 more. So before creating it *expects* 3 creations; each pod ADDED event lowers the
//! count (`creation_observed`); the key is synced again only when the count is back to 0 —
//! or when the expectations are older than [`EXPECTATIONS_TIMEOUT`] (a lost event must not
//! wedge the controller forever). Deletions are expected by pod key, so a deletion observed
//! twice (update with deletionTimestamp, then delete) is counted once.
//!
//! Time is passed in (`now`), so tests move it instead of sleeping.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// `ExpectationsTimeout`: expectations older than this are considered satisfied.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// One key's pending adds and deletes (`ControlleeExpectations`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub add: i64,
    pub del: i64,
    /// When they were set (for the timeout).
    pub at: Instant,
}

impl Expectation {
    /// `Fulfilled`: nothing more to wait for.
    pub fn fulfilled(&self) -> bool {
        self.add <= 0 && self.del <= 0
    }
}

/// Expectations per controller key, with the pod keys whose deletion is expected.
#[derive(Debug, Default)]
pub struct Expectations {
    by_key: HashMap<String, Expectation>,
    /// Pod keys (`namespace/name`) whose deletion each controller key waits for.
    deleting: HashMap<String, HashSet<String>>,
}

impl Expectations {
    pub fn new() -> Self {
        Self::default()
    }

    /// `SatisfiedExpectations`: may `key` be synced now? Yes when it has no expectations
    /// (a new controller), when they are fulfilled, or when they expired.
    pub fn satisfied(&self, key: &str, now: Instant) -> bool {
        match self.by_key.get(key) {
            None => true,
            Some(e) if e.fulfilled() => true,
            Some(e) => {
                let expired = now.saturating_duration_since(e.at) > EXPECTATIONS_TIMEOUT;
                if expired {
                    tracing::info!(key, add = e.add, del = e.del, "expectations expired");
                }
                expired
            }
        }
    }

    /// `ExpectCreations`: `key` is about to create `adds` objects.
    pub fn expect_creations(&mut self, key: &str, adds: usize, now: Instant) {
        self.set(key, adds as i64, 0, now);
    }

    /// `ExpectDeletions`: `key` is about to delete the pods with these keys.
    pub fn expect_deletions(&mut self, key: &str, pod_keys: Vec<String>, now: Instant) {
        let n = pod_keys.len() as i64;
        self.deleting
            .insert(key.to_string(), pod_keys.into_iter().collect());
        self.set(key, 0, n, now);
    }

    fn set(&mut self, key: &str, add: i64, del: i64, now: Instant) {
        self.by_key
            .insert(key.to_string(), Expectation { add, del, at: now });
    }

    /// `LowerExpectations`.
    fn lower(&mut self, key: &str, add: i64, del: i64) {
        if let Some(e) = self.by_key.get_mut(key) {
            e.add -= add;
            e.del -= del;
        }
    }

    /// `CreationObserved`: one expected object was seen (or its create failed or was
    /// skipped, so it never will be).
    pub fn creation_observed(&mut self, key: &str) {
        self.lower(key, 1, 0);
    }

    /// `DeletionObserved`: the pod `pod_key` is gone or being deleted. Counted once per pod,
    /// and only if its deletion was expected.
    pub fn deletion_observed(&mut self, key: &str, pod_key: &str) {
        let expected = self
            .deleting
            .get_mut(key)
            .is_some_and(|keys| keys.remove(pod_key));
        if expected {
            self.lower(key, 0, 1);
        }
    }

    /// `DeleteExpectations`: the controller is gone.
    pub fn delete(&mut self, key: &str) {
        self.by_key.remove(key);
        self.deleting.remove(key);
    }

    /// The current expectation of `key` (for tests and span attributes).
    pub fn get(&self, key: &str) -> Option<&Expectation> {
        self.by_key.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scenario expectations exist for: the watch lags behind the creates, so the cache
    /// still shows no pods; the key must not be synced (and create again) until every
    /// create has been observed.
    #[test]
    fn a_lagging_watch_blocks_the_next_sync_until_every_create_is_observed() {
        let t0 = Instant::now();
        let mut e = Expectations::new();
        assert!(e.satisfied("default/web", t0), "a new controller may sync");
        e.expect_creations("default/web", 3, t0);
        assert!(
            !e.satisfied("default/web", t0),
            "3 creates in flight, none seen"
        );
        e.creation_observed("default/web");
        e.creation_observed("default/web");
        assert!(!e.satisfied("default/web", t0), "one create not seen yet");
        assert!(
            e.satisfied("default/other", t0),
            "other keys are independent"
        );
        e.creation_observed("default/web");
        assert!(e.satisfied("default/web", t0));
    }

    #[test]
    fn a_lost_event_only_delays_until_the_timeout() {
        let t0 = Instant::now();
        let mut e = Expectations::new();
        e.expect_creations("default/web", 2, t0);
        assert!(!e.satisfied("default/web", t0 + EXPECTATIONS_TIMEOUT));
        assert!(e.satisfied(
            "default/web",
            t0 + EXPECTATIONS_TIMEOUT + Duration::from_secs(1)
        ));
    }

    #[test]
    fn each_expected_deletion_counts_once() {
        let t0 = Instant::now();
        let mut e = Expectations::new();
        e.expect_deletions(
            "default/web",
            vec!["default/web-a".into(), "default/web-b".into()],
            t0,
        );
        // The update that sets deletionTimestamp, then the delete: one observation.
        e.deletion_observed("default/web", "default/web-a");
        e.deletion_observed("default/web", "default/web-a");
        // A pod whose deletion was not expected changes nothing.
        e.deletion_observed("default/web", "default/web-z");
        assert!(!e.satisfied("default/web", t0));
        e.deletion_observed("default/web", "default/web-b");
        assert!(e.satisfied("default/web", t0));
        e.delete("default/web");
        assert!(e.get("default/web").is_none());
    }
}
