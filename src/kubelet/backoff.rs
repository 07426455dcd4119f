//! Per-key exponential back-off. Mirrors `flowcontrol.Backoff` (k8s.io/client-go/util/flowcontrol)
//! as the kubelet uses it for crashed containers (`doBackOff` in kuberuntime_manager.go) and
//! image pulls (pkg/kubelet/images): the first failure waits the initial back-off, each next
//! one twice as long up to the maximum; a failure more than `reset` after the previous one
//! starts over.
//!
//! Durations are simulated; "has enough time passed" is answered on the real clock through
//! [`Clock::period`], so the same numbers work at any speed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::clock::Clock;

#[derive(Clone, Debug)]
struct Entry {
    /// The current back-off (simulated).
    backoff: Duration,
    /// When the last failure happened (real wall time).
    last_update: Timestamp,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    reset: Duration,
    clock: Arc<dyn Clock>,
    entries: HashMap<String, Entry>,
}

fn real_between(earlier: Timestamp, later: Timestamp) -> Duration {
    later
        .duration_since(earlier)
        .try_into()
        .unwrap_or(Duration::ZERO)
}

impl Backoff {
    pub fn new(
        initial: Duration,
        max: Duration,
        reset: Duration,
        clock: Arc<dyn Clock>,
    ) -> Backoff {
        Backoff {
            initial,
            max,
            reset,
            clock,
            entries: HashMap::new(),
        }
    }

    /// Record a failure at `event_time`. Mirrors `Backoff.Next`.
    pub fn next(&mut self, key: &str, event_time: Timestamp) {
        let reset = self.clock.period(self.reset);
        let entry = self.entries.get(key).cloned();
        let backoff = match entry {
            Some(e) if real_between(e.last_update, event_time) <= reset => {
                (e.backoff * 2).min(self.max)
            }
            _ => self.initial,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: event_time,
            },
        );
    }

    /// Whether `key` is still backing off from a failure at `event_time`, and if so for how
    /// much longer (real time). Mirrors `Backoff.IsInBackOffSince`.
    pub fn remaining_since(&self, key: &str, event_time: Timestamp) -> Option<Duration> {
        let e = self.entries.get(key)?;
        let now = self.clock.wall();
        if real_between(e.last_update, now) > self.clock.period(self.reset) {
            return None;
        }
        let wait = self.clock.period(e.backoff);
        let elapsed = real_between(event_time, now);
        (elapsed < wait).then(|| wait - elapsed)
    }

    /// The current back-off of `key` (simulated), as upstream prints it.
    pub fn get(&self, key: &str) -> Duration {
        self.entries
            .get(key)
            .map(|e| e.backoff)
            .unwrap_or(Duration::ZERO)
    }

    /// The time of the last recorded failure.
    pub fn last_update(&self, key: &str) -> Option<Timestamp> {
        self.entries.get(key).map(|e| e.last_update)
    }

    /// Forget `key` (the container is gone, the image was pulled).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// A duration as Go's `time.Duration.String()` prints it: `10s`, `1m20s`, `1.44s`, `300ms`.
pub fn go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d < Duration::from_secs(1) {
        let ms = d.as_secs_f64() * 1000.0;
        return format!("{}ms", trim(ms));
    }
    let total = d.as_secs_f64();
    let hours = (total / 3600.0).floor();
    let minutes = ((total - hours * 3600.0) / 60.0).floor();
    let seconds = total - hours * 3600.0 - minutes * 60.0;
    let mut out = String::new();
    if hours > 0.0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0.0 || minutes > 0.0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", trim(seconds)));
    out
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;

    #[test]
    fn back_off_doubles_to_the_maximum_and_resets_after_a_quiet_period() {
        let clock = SimClock::real().shared();
        let mut b = Backoff::new(
            Duration::from_secs(10),
            Duration::from_secs(300),
            Duration::from_secs(600),
            clock,
        );
        let t0 = Timestamp::now();
        b.next("c", t0);
        assert_eq!(b.get("c"), Duration::from_secs(10));
        assert!(b.remaining_since("c", t0).is_some());
        for _ in 0..10 {
            b.next("c", t0);
        }
        assert_eq!(b.get("c"), Duration::from_secs(300));
        let much_later = t0 + jiff::SignedDuration::from_secs(601);
        b.next("c", much_later);
        assert_eq!(b.get("c"), Duration::from_secs(10));
        assert!(b.remaining_since("other", t0).is_none());
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_millis(1440)), "1.44s");
        assert_eq!(go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
