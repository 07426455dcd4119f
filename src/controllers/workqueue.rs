//! The rate-limited work queue every controller drains: client-go's `workqueue.Type`
//! (dirty set + processing set), its delaying queue (`AddAfter`) and its rate limiters
//! (`DefaultControllerRateLimiter`: per-item exponential backoff max'ed with a token bucket).
//!
//! # Contract (as client-go's `workqueue.Type`)
//!
//! * A key is in the queue at most once: adding a key that is already waiting is a no-op
//!   (the *dirty* set).
//! * A key is handed out to at most one worker at a time: a key added while it is being
//!   processed is only marked dirty, and goes back to the queue when the worker calls
//!   [`WorkQueue::done`] (the *processing* set).
//! * [`WorkQueue::add_rate_limited`] delays the key by the rate limiter's answer; a sync that
//!   succeeded calls [`WorkQueue::forget`] so the next failure starts again from the base delay.
//! * After [`WorkQueue::shut_down`] nothing new is accepted; `get` keeps handing out what is
//!   queued (client-go's `ShutDownWithDrain` behaviour is left to the caller).
//!
//! # Use from an actor
//!
//! The queue never blocks: [`WorkQueue::get`] answers `None` when nothing is ready. An actor
//! owns its queue, calls `get` in a loop after every event, and when `get` is `None` but
//! [`WorkQueue::next_ready_in`] is `Some(d)` it schedules itself with `ctx.run_later(d, …)`.
//! Time comes from a [`Clock`], so tests move a [`FakeClock`] forward instead of sleeping.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A source of time. [`SystemClock`] in production, [`FakeClock`] in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to ([`FakeClock::advance`]).
#[derive(Debug)]
pub struct FakeClock {
    now: Mutex<Instant>,
}

impl Default for FakeClock {
    fn default() -> Self {
        FakeClock {
            now: Mutex::new(Instant::now()),
        }
    }
}

impl FakeClock {
    pub fn new() -> Arc<FakeClock> {
        Arc::new(FakeClock::default())
    }
    /// Move time forward by `d`.
    pub fn advance(&self, d: Duration) {
        *self.now.lock() += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        *self.now.lock()
    }
}

/// Decides how long a failing item waits before it is retried. Mirrors client-go's
/// `workqueue.TypedRateLimiter`.
pub trait RateLimiter<K>: Send {
    /// How long `item` should wait now; records one more failure of it.
    fn when(&mut self, item: &K, now: Instant) -> Duration;
    /// Stop tracking `item` (its sync succeeded).
    fn forget(&mut self, item: &K);
    /// How many times `item` has been requeued since it was last forgotten.
    fn num_requeues(&self, item: &K) -> u32;
}

/// Per-item exponential backoff: `base * 2^failures`, capped at `max`. Mirrors
/// `ItemExponentialFailureRateLimiter`.
#[derive(Debug)]
pub struct ItemExponentialFailureRateLimiter<K> {
    base: Duration,
    max: Duration,
    failures: HashMap<K, u32>,
}

impl<K: Eq + Hash> ItemExponentialFailureRateLimiter<K> {
    pub fn new(base: Duration, max: Duration) -> Self {
        ItemExponentialFailureRateLimiter {
            base,
            max,
            failures: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone + Send> RateLimiter<K> for ItemExponentialFailureRateLimiter<K> {
    fn when(&mut self, item: &K, _now: Instant) -> Duration {
        let n = self.failures.entry(item.clone()).or_insert(0);
        let exp = *n;
        *n += 1;
        // As client-go: compute in f64 and cap, so a large exponent cannot overflow.
        let backoff = self.base.as_secs_f64() * 2f64.powi(exp.min(1023) as i32);
        if backoff >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(backoff)
        }
    }
    fn forget(&mut self, item: &K) {
        self.failures.remove(item);
    }
    fn num_requeues(&self, item: &K) -> u32 {
        self.failures.get(item).copied().unwrap_or(0)
    }
}

/// An overall token bucket (`qps` refill, `burst` capacity) shared by all items. Mirrors
/// `BucketRateLimiter` over `golang.org/x/time/rate`: each call reserves a token, and the
/// delay is how long until that reservation is covered (tokens may go negative).
#[derive(Debug)]
pub struct BucketRateLimiter {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl BucketRateLimiter {
    pub fn new(qps: f64, burst: u32) -> Self {
        BucketRateLimiter {
            qps,
            burst: burst as f64,
            tokens: burst as f64,
            last: None,
        }
    }
}

impl<K> RateLimiter<K> for BucketRateLimiter {
    fn when(&mut self, _item: &K, now: Instant) -> Duration {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
    fn forget(&mut self, _item: &K) {}
    fn num_requeues(&self, _item: &K) -> u32 {
        0
    }
}

/// The worst (longest) answer of several limiters. Mirrors `MaxOfRateLimiter`.
pub struct MaxOfRateLimiter<K> {
    limiters: Vec<Box<dyn RateLimiter<K>>>,
}

impl<K> MaxOfRateLimiter<K> {
    pub fn new(limiters: Vec<Box<dyn RateLimiter<K>>>) -> Self {
        MaxOfRateLimiter { limiters }
    }
}

impl<K> RateLimiter<K> for MaxOfRateLimiter<K> {
    fn when(&mut self, item: &K, now: Instant) -> Duration {
        self.limiters
            .iter_mut()
            .map(|l| l.when(item, now))
            .max()
            .unwrap_or(Duration::ZERO)
    }
    fn forget(&mut self, item: &K) {
        self.limiters.iter_mut().for_each(|l| l.forget(item));
    }
    fn num_requeues(&self, item: &K) -> u32 {
        self.limiters
            .iter()
            .map(|l| l.num_requeues(item))
            .max()
            .unwrap_or(0)
    }
}

/// client-go's `DefaultControllerRateLimiter`: 5 ms doubling per failure up to 1000 s,
/// max'ed with a 10 qps / 100 burst bucket over all items.
pub fn default_controller_rate_limiter<K>() -> MaxOfRateLimiter<K>
where
    K: Eq + Hash + Clone + Send + 'static,
{
    MaxOfRateLimiter::new(vec![
        Box::new(ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ])
}

/// What [`WorkQueue::requeue`] did with a failed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// Added back, ready after this delay.
    After(Duration),
    /// Retried `max_retries` times already: dropped (and logged), its backoff forgotten.
    Dropped,
}

/// A de-duplicating, rate-limited, delaying work queue. See the module documentation.
pub struct WorkQueue<K> {
    /// Keys ready to be handed out, in order.
    queue: VecDeque<K>,
    /// Keys that need processing (queued, or re-added while being processed).
    dirty: HashSet<K>,
    /// Keys handed out by `get` and not yet `done`.
    processing: HashSet<K>,
    /// Delayed keys by (ready time, sequence): the sequence keeps equal times in insertion
    /// order and makes the map key unique.
    waiting: BTreeMap<(Instant, u64), K>,
    /// Each delayed key's slot in `waiting`: a key waits once, at its earliest ready time.
    waiting_for: HashMap<K, (Instant, u64)>,
    seq: u64,
    limiter: Box<dyn RateLimiter<K>>,
    clock: Arc<dyn Clock>,
    shutting_down: bool,
    /// For logs: which controller's queue this is.
    name: String,
    /// `workqueue_depth{name}` and `workqueue_adds_total{name}` (issue 7).
    depth: prometheus_client::metrics::gauge::Gauge,
    adds: prometheus_client::metrics::counter::Counter,
}

/// A dropped queue's keys leave `workqueue_depth` (issue 7).
impl<K> Drop for WorkQueue<K> {
    fn drop(&mut self) {
        self.depth.dec_by(self.queue.len() as i64);
    }
}

impl<K> WorkQueue<K>
where
    K: Eq + Hash + Clone + Send + std::fmt::Debug + 'static,
{
    /// A queue with client-go's default controller rate limiter and the system clock.
    pub fn new(name: impl Into<String>) -> Self {
        Self::with(
            name,
            Box::new(default_controller_rate_limiter()),
            Arc::new(SystemClock),
        )
    }

    /// A queue with a given limiter and clock.
    pub fn with(
        name: impl Into<String>,
        limiter: Box<dyn RateLimiter<K>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let name = name.into();
        let (depth, adds) = crate::metrics::global().workqueue(&name);
        WorkQueue {
            queue: VecDeque::new(),
            dirty: HashSet::new(),
            processing: HashSet::new(),
            waiting: BTreeMap::new(),
            waiting_for: HashMap::new(),
            seq: 0,
            limiter,
            clock,
            shutting_down: false,
            name,
            depth,
            adds,
        }
    }

    /// Mark `key` as needing processing. No-op if it is already queued, or after shutdown.
    pub fn add(&mut self, key: K) {
        if self.shutting_down || self.dirty.contains(&key) {
            return;
        }
        self.dirty.insert(key.clone());
        self.adds.inc();
        if self.processing.contains(&key) {
            // Re-queued by `done`.
            return;
        }
        self.queue.push_back(key);
        self.depth.inc();
    }

    /// Add `key` once `delay` has passed (at once if zero). A key already waiting keeps the
    /// earlier of its two ready times.
    pub fn add_after(&mut self, key: K, delay: Duration) {
        if self.shutting_down {
            return;
        }
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let ready = self.clock.now() + delay;
        if let Some(&(at, seq)) = self.waiting_for.get(&key) {
            if at <= ready {
                return;
            }
            self.waiting.remove(&(at, seq));
        }
        self.seq += 1;
        self.waiting.insert((ready, self.seq), key.clone());
        self.waiting_for.insert(key, (ready, self.seq));
    }

    /// Add `key` after the rate limiter's delay (one more failure recorded).
    pub fn add_rate_limited(&mut self, key: K) -> Duration {
        let delay = self.limiter.when(&key, self.clock.now());
        self.add_after(key, delay);
        delay
    }

    /// The controllers' `handleErr`: requeue with backoff unless `key` has already been
    /// requeued `max_retries` times, in which case it is dropped, forgotten and logged.
    pub fn requeue(&mut self, key: K, max_retries: u32, error: &dyn std::fmt::Display) -> Requeue {
        if self.num_requeues(&key) < max_retries {
            tracing::debug!(queue = %self.name, ?key, %error, "error syncing, requeuing");
            Requeue::After(self.add_rate_limited(key))
        } else {
            tracing::warn!(queue = %self.name, ?key, %error, max_retries, "dropping key out of the queue");
            self.forget(&key);
            Requeue::Dropped
        }
    }

    /// Stop tracking `key`'s failures (its sync succeeded). Does not remove it from the queue.
    pub fn forget(&mut self, key: &K) {
        self.limiter.forget(key);
    }

    /// How many times `key` has been rate-limited since it was last forgotten.
    pub fn num_requeues(&self, key: &K) -> u32 {
        self.limiter.num_requeues(key)
    }

    /// Move delayed keys whose time has come into the queue.
    fn promote_ready(&mut self) {
        let now = self.clock.now();
        while let Some((&(at, seq), _)) = self.waiting.first_key_value() {
            if at > now {
                break;
            }
            if let Some(key) = self.waiting.remove(&(at, seq)) {
                self.waiting_for.remove(&key);
                self.add(key);
            }
        }
    }

    /// The next key to process, marked as processing until [`WorkQueue::done`]; `None` when
    /// nothing is ready now.
    pub fn get(&mut self) -> Option<K> {
        self.promote_ready();
        let key = self.queue.pop_front()?;
        self.depth.dec();
        self.dirty.remove(&key);
        self.processing.insert(key.clone());
        Some(key)
    }

    /// Finish processing `key`; if it was added meanwhile, it goes back to the queue.
    pub fn done(&mut self, key: &K) {
        self.processing.remove(key);
        if self.dirty.contains(key) {
            self.queue.push_back(key.clone());
            self.depth.inc();
        }
    }

    /// How long until the earliest delayed key is ready (`Some(ZERO)` if already due).
    pub fn next_ready_in(&self) -> Option<Duration> {
        let (&(at, _), _) = self.waiting.first_key_value()?;
        Some(at.saturating_duration_since(self.clock.now()))
    }

    /// Keys ready to be handed out (not counting delayed or processing ones).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Keys currently handed out.
    pub fn processing(&self) -> usize {
        self.processing.len()
    }

    /// Keys waiting for their delay.
    pub fn delayed(&self) -> usize {
        self.waiting.len()
    }

    /// Accept nothing more; delayed keys are discarded.
    pub fn shut_down(&mut self) {
        self.shutting_down = true;
        self.waiting.clear();
        self.waiting_for.clear();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (WorkQueue<String>, Arc<FakeClock>) {
        let clock = FakeClock::new();
        let q = WorkQueue::with(
            "test",
            Box::new(default_controller_rate_limiter()),
            clock.clone(),
        );
        (q, clock)
    }

    #[test]
    fn adding_a_queued_key_twice_queues_it_once() {
        let (mut q, _) = queue();
        q.add("a".to_string());
        q.add("b".to_string());
        q.add("a".to_string());
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().as_deref(), Some("a"));
        assert_eq!(q.get().as_deref(), Some("b"));
        assert_eq!(q.get(), None);
    }

    #[test]
    fn a_key_is_never_handed_out_twice_at_once() {
        let (mut q, _) = queue();
        q.add("a".to_string());
        let k = q.get().unwrap();
        // Added again while processing: held back until done.
        q.add("a".to_string());
        assert_eq!(q.get(), None);
        assert_eq!(q.len(), 0);
        q.done(&k);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().as_deref(), Some("a"));
        q.done(&k);
        assert_eq!(q.get(), None);
    }

    #[test]
    fn per_item_backoff_doubles_from_5ms_to_1000s() {
        let mut l = ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        );
        let now = Instant::now();
        let k = "a".to_string();
        let delays: Vec<Duration> = (0..4).map(|_| l.when(&k, now)).collect();
        assert_eq!(delays, [5, 10, 20, 40].map(Duration::from_millis).to_vec());
        for _ in 0..30 {
            l.when(&k, now);
        }
        assert_eq!(l.when(&k, now), Duration::from_secs(1000));
        assert_eq!(l.num_requeues(&k), 35);
        l.forget(&k);
        assert_eq!(l.when(&k, now), Duration::from_millis(5));
    }

    #[test]
    fn bucket_allows_a_burst_then_10_per_second() {
        let mut b = BucketRateLimiter::new(10.0, 100);
        let now = Instant::now();
        for i in 0..100 {
            assert_eq!(RateLimiter::<u32>::when(&mut b, &i, now), Duration::ZERO);
        }
        let d = RateLimiter::<u32>::when(&mut b, &100, now);
        assert!((d.as_secs_f64() - 0.1).abs() < 1e-9, "{d:?}");
        let d = RateLimiter::<u32>::when(&mut b, &101, now);
        assert!((d.as_secs_f64() - 0.2).abs() < 1e-9, "{d:?}");
        // One second later ten tokens came back: the debt of two is paid, eight remain.
        let later = now + Duration::from_secs(1);
        assert_eq!(
            RateLimiter::<u32>::when(&mut b, &102, later),
            Duration::ZERO
        );
    }

    #[test]
    fn rate_limited_keys_wait_for_the_clock() {
        let (mut q, clock) = queue();
        let d = q.add_rate_limited("a".to_string());
        assert_eq!(d, Duration::from_millis(5));
        assert_eq!(q.get(), None);
        assert_eq!(q.next_ready_in(), Some(Duration::from_millis(5)));
        clock.advance(Duration::from_millis(4));
        assert_eq!(q.get(), None);
        clock.advance(Duration::from_millis(1));
        assert_eq!(q.get().as_deref(), Some("a"));
        assert_eq!(q.num_requeues(&"a".to_string()), 1);
    }

    #[test]
    fn a_delayed_key_keeps_its_earliest_time() {
        let (mut q, clock) = queue();
        q.add_after("a".to_string(), Duration::from_secs(10));
        q.add_after("a".to_string(), Duration::from_secs(2));
        q.add_after("a".to_string(), Duration::from_secs(5));
        assert_eq!(q.delayed(), 1);
        clock.advance(Duration::from_secs(2));
        assert_eq!(q.get().as_deref(), Some("a"));
        assert_eq!(q.delayed(), 0);
    }

    #[test]
    fn max_retries_drops_and_forgets() {
        let (mut q, _) = queue();
        let k = "a".to_string();
        for i in 0..3 {
            assert!(
                matches!(q.requeue(k.clone(), 3, &"boom"), Requeue::After(_)),
                "{i}"
            );
        }
        assert_eq!(q.requeue(k.clone(), 3, &"boom"), Requeue::Dropped);
        assert_eq!(q.num_requeues(&k), 0);
    }

    #[test]
    fn shutdown_refuses_new_keys() {
        let (mut q, _) = queue();
        q.add("a".to_string());
        q.shut_down();
        q.add("b".to_string());
        q.add_after("c".to_string(), Duration::from_secs(1));
        assert!(q.is_shutting_down());
        assert_eq!(q.get().as_deref(), Some("a"));
        assert_eq!(q.get(), None);
        assert_eq!(q.next_ready_in(), None);
    }
}
