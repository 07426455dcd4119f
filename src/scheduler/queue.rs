//! The scheduling queue: which pod to schedule next.
//!
//! Mirrors pkg/scheduler/backend/queue/scheduling_queue.go (`PriorityQueue`) with the
//! PrioritySort queue-sort plugin:
//!
//! * **activeQ** — pods ready to be tried, highest `spec.priority` first, then the earliest
//!   timestamp (when the pod entered the queue or last became unschedulable), then FIFO;
//! * **backoffQ** — pods waiting out their backoff after a failed attempt: 1 s after the
//!   first attempt, doubling per attempt, at most 10 s (`calculateBackoffDuration`);
//! * **unschedulable pods** — pods no node fits; they stay until a cluster event that may
//!   help them ([`SchedulingQueue::move_all_to_active_or_backoff`]: node added or changed,
//!   an assigned pod deleted, a taint removed …, filtered by the plugins that rejected the
//!   pod), or until they have waited 5 min ([`SchedulingQueue::flush_unschedulable_leftover`],
//!   upstream `podMaxInUnschedulablePodsDuration`).
//!
//! Time comes from an injectable [`Clock`], so tests advance a [`FakeClock`] instead of
//! sleeping. The queue never blocks: [`SchedulingQueue::pop`] returns `None` when nothing is
//! ready, and [`SchedulingQueue::next_wakeup`] says when to look again.
//!
//! Heaps use lazy deletion: each stored pod has a generation, and heap entries whose
//! generation is stale (the pod was updated, moved or deleted) are dropped when reached.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use parking_lot::Mutex;

use super::helpers::{node_labels, node_taints, pod_key, pod_priority};
use super::plugins::names;
use super::resource::node_allocatable;

/// A source of time (`clock.Clock`).
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Clone, Debug)]
pub struct FakeClock(Arc<Mutex<Instant>>);

impl Default for FakeClock {
    fn default() -> Self {
        FakeClock(Arc::new(Mutex::new(Instant::now())))
    }
}

impl FakeClock {
    pub fn new() -> FakeClock {
        FakeClock::default()
    }
    pub fn advance(&self, d: Duration) {
        *self.0.lock() += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        *self.0.lock()
    }
}

/// Queue tunables (from `[scheduler]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueOptions {
    pub pod_initial_backoff: Duration,
    pub pod_max_backoff: Duration,
    pub pod_max_in_unschedulable_pods: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            pod_initial_backoff: Duration::from_secs(1),
            pod_max_backoff: Duration::from_secs(10),
            pod_max_in_unschedulable_pods: Duration::from_secs(300),
        }
    }
}

impl From<&super::profile::SchedulerConfig> for QueueOptions {
    fn from(c: &super::profile::SchedulerConfig) -> Self {
        QueueOptions {
            pod_initial_backoff: Duration::from_secs(c.pod_initial_backoff_seconds),
            pod_max_backoff: Duration::from_secs(c.pod_max_backoff_seconds),
            pod_max_in_unschedulable_pods: Duration::from_secs(
                c.pod_max_in_unschedulable_pods_seconds,
            ),
        }
    }
}

/// A cluster change that may make unschedulable pods schedulable (`framework.ClusterEvent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClusterEvent {
    NodeAdd,
    /// Labels changed (NodeAffinity, InterPodAffinity, PodTopologySpread).
    NodeLabelChange,
    /// Taints changed or `spec.unschedulable` flipped.
    NodeTaintChange,
    /// Allocatable grew (NodeResourcesFit).
    NodeAllocatableChange,
    NodeDelete,
    /// A pod bound to a node was added / changed / deleted.
    AssignedPodAdd,
    AssignedPodUpdate,
    AssignedPodDelete,
    /// The pod waited `pod_max_in_unschedulable_pods`: always moved.
    UnschedulableTimeout,
}

impl ClusterEvent {
    /// The events a node update amounts to (`nodeSchedulingPropertiesChange`).
    pub fn for_node_update(old: &Node, new: &Node) -> Vec<ClusterEvent> {
        let mut events = Vec::new();
        if node_labels(old) != node_labels(new) {
            events.push(ClusterEvent::NodeLabelChange);
        }
        let unschedulable = |n: &Node| {
            n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
        };
        if node_taints(old) != node_taints(new) || unschedulable(old) != unschedulable(new) {
            events.push(ClusterEvent::NodeTaintChange);
        }
        if node_allocatable(old) != node_allocatable(new) {
            events.push(ClusterEvent::NodeAllocatableChange);
        }
        events
    }

    /// Whether this event may make a pod rejected by `plugin` schedulable (upstream's
    /// `EventsToRegister` of each plugin, without queueing hints).
    pub fn may_help(self, plugin: &str) -> bool {
        use ClusterEvent::*;
        if matches!(self, NodeAdd | UnschedulableTimeout) {
            return true;
        }
        match plugin {
            names::NODE_UNSCHEDULABLE | names::TAINT_TOLERATION => self == NodeTaintChange,
            names::NODE_NAME => false,
            names::NODE_AFFINITY => self == NodeLabelChange,
            names::NODE_PORTS => self == AssignedPodDelete,
            names::NODE_RESOURCES_FIT => {
                matches!(
                    self,
                    AssignedPodDelete | AssignedPodUpdate | NodeAllocatableChange
                )
            }
            names::INTER_POD_AFFINITY => matches!(
                self,
                AssignedPodAdd | AssignedPodUpdate | AssignedPodDelete | NodeLabelChange
            ),
            names::POD_TOPOLOGY_SPREAD => matches!(
                self,
                AssignedPodAdd
                    | AssignedPodUpdate
                    | AssignedPodDelete
                    | NodeLabelChange
                    | NodeTaintChange
                    | NodeDelete
            ),
            _ => true,
        }
    }
}

/// Mirrors `isPodUpdated`: whether anything but the status and bookkeeping fields
/// (resourceVersion, generation, managedFields, finalizers, and kubeactor's `traceparent`
/// annotation) changed.
pub fn is_pod_updated(old: &Pod, new: &Pod) -> bool {
    let strip = |p: &Pod| {
        let mut p = p.clone();
        p.status = None;
        p.metadata.resource_version = None;
        p.metadata.generation = None;
        p.metadata.managed_fields = None;
        p.metadata.finalizers = None;
        if let Some(a) = p.metadata.annotations.as_mut() {
            a.remove(crate::telemetry::TRACEPARENT_ANNOTATION);
            if a.is_empty() {
                p.metadata.annotations = None;
            }
        }
        p
    };
    strip(old) != strip(new)
}

/// A pod in the queue, with its scheduling history (`framework.QueuedPodInfo`).
#[derive(Clone, Debug)]
pub struct QueuedPodInfo {
    pub pod: Arc<Pod>,
    pub key: String,
    pub priority: i32,
    /// When the pod was added, or last became unschedulable / backed off: activeQ order and
    /// the start of the backoff.
    pub timestamp: Instant,
    /// The first time the pod was popped (for "time to schedule").
    pub initial_attempt_timestamp: Option<Instant>,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// The plugins that rejected the pod in its last attempt; empty after an error.
    pub unschedulable_plugins: BTreeSet<&'static str>,
}

/// Where a stored pod is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Location {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled.
    InFlight,
}

struct Stored {
    info: QueuedPodInfo,
    location: Location,
    gen: u64,
}

#[derive(PartialEq, Eq)]
struct ActiveEntry {
    priority: i32,
    timestamp: Instant,
    gen: u64,
    key: String,
}

impl Ord for ActiveEntry {
    /// Max-heap: higher priority, then earlier timestamp, then earlier insertion.
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority
            .cmp(&o.priority)
            .then_with(|| o.timestamp.cmp(&self.timestamp))
            .then_with(|| o.gen.cmp(&self.gen))
    }
}

impl PartialOrd for ActiveEntry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// See the module documentation.
pub struct SchedulingQueue {
    clock: Arc<dyn Clock>,
    opts: QueueOptions,
    pods: HashMap<String, Stored>,
    /// Keys of the unschedulable pods in `pods`, so cluster events (one per bound pod at
    /// scale) scan only those, not every pending pod.
    unschedulable: HashSet<String>,
    active: BinaryHeap<ActiveEntry>,
    /// (backoff expiry, gen, key), earliest first.
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_gen: u64,
    /// Incremented by every pop.
    scheduling_cycle: u64,
    /// The cycle of the last move request: a pod whose attempt started before it goes to
    /// backoff, not unschedulable, so the event is not missed.
    move_request_cycle: u64,
}

impl SchedulingQueue {
    pub fn new(clock: Arc<dyn Clock>, opts: QueueOptions) -> SchedulingQueue {
        SchedulingQueue {
            clock,
            opts,
            pods: HashMap::new(),
            unschedulable: HashSet::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            next_gen: 0,
            scheduling_cycle: 0,
            move_request_cycle: 0,
        }
    }

    /// Every insert goes through here, to keep `unschedulable` in step.
    fn insert_stored(&mut self, key: String, stored: Stored) {
        if stored.location == Location::Unschedulable {
            self.unschedulable.insert(key.clone());
        } else {
            self.unschedulable.remove(&key);
        }
        self.pods.insert(key, stored);
    }

    /// Every removal goes through here, to keep `unschedulable` in step.
    fn remove_stored(&mut self, key: &str) -> Option<Stored> {
        self.unschedulable.remove(key);
        self.pods.remove(key)
    }

    fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    /// Number of pods known to the queue (including in-flight).
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    fn count(&self, l: Location) -> usize {
        self.pods.values().filter(|s| s.location == l).count()
    }

    pub fn active_len(&self) -> usize {
        self.count(Location::Active)
    }

    pub fn backoff_len(&self) -> usize {
        self.count(Location::Backoff)
    }

    pub fn unschedulable_len(&self) -> usize {
        self.unschedulable.len()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// The current scheduling cycle (the number of pops so far).
    pub fn scheduling_cycle(&self) -> u64 {
        self.scheduling_cycle
    }

    fn push_active(&mut self, info: QueuedPodInfo) {
        let gen = self.gen();
        self.active.push(ActiveEntry {
            priority: info.priority,
            timestamp: info.timestamp,
            gen,
            key: info.key.clone(),
        });
        self.insert_stored(
            info.key.clone(),
            Stored {
                info,
                location: Location::Active,
                gen,
            },
        );
    }

    fn push_backoff(&mut self, info: QueuedPodInfo) {
        let gen = self.gen();
        let expiry = self.backoff_expiry(&info);
        self.backoff.push(Reverse((expiry, gen, info.key.clone())));
        self.insert_stored(
            info.key.clone(),
            Stored {
                info,
                location: Location::Backoff,
                gen,
            },
        );
    }

    fn push_unschedulable(&mut self, info: QueuedPodInfo) {
        let gen = self.gen();
        self.insert_stored(
            info.key.clone(),
            Stored {
                info,
                location: Location::Unschedulable,
                gen,
            },
        );
    }

    /// Mirrors `calculateBackoffDuration`: initial × 2^(attempts−1), at most max.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        if attempts == 0 {
            return Duration::ZERO;
        }
        let mut d = self.opts.pod_initial_backoff;
        for _ in 1..attempts {
            if d > self.opts.pod_max_backoff.saturating_sub(d) {
                return self.opts.pod_max_backoff;
            }
            d += d;
        }
        d
    }

    fn backoff_expiry(&self, info: &QueuedPodInfo) -> Instant {
        info.timestamp + self.backoff_duration(info.attempts)
    }

    fn is_backing_off(&self, info: &QueuedPodInfo) -> bool {
        self.backoff_expiry(info) > self.clock.now()
    }

    /// A new pending pod (or one not yet seen): into activeQ. An update of a known pod goes
    /// to [`SchedulingQueue::update`].
    pub fn add(&mut self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        if self.pods.contains_key(&key) {
            self.update(pod);
            return;
        }
        let info = QueuedPodInfo {
            priority: pod_priority(&pod),
            key,
            pod,
            timestamp: self.clock.now(),
            initial_attempt_timestamp: None,
            attempts: 0,
            unschedulable_plugins: BTreeSet::new(),
        };
        self.push_active(info);
    }

    /// A pending pod changed. In activeQ / backoffQ it is re-queued with its new priority;
    /// an unschedulable pod is given another chance (backoffQ if still backing off, else
    /// activeQ); an in-flight pod is just updated.
    pub fn update(&mut self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        let Some(stored) = self.remove_stored(&key) else {
            self.add(pod);
            return;
        };
        let mut info = stored.info.clone();
        info.priority = pod_priority(&pod);
        info.pod = pod;
        match stored.location {
            Location::Active => self.push_active(info),
            Location::Backoff => self.push_backoff(info),
            Location::Unschedulable if !is_pod_updated(&stored.info.pod, &info.pod) => {
                // A status-only change (e.g. our own PodScheduled=False) is no new chance.
                self.insert_stored(
                    key,
                    Stored {
                        info,
                        location: Location::Unschedulable,
                        gen: stored.gen,
                    },
                );
            }
            Location::Unschedulable => {
                if self.is_backing_off(&info) {
                    self.push_backoff(info)
                } else {
                    self.push_active(info)
                }
            }
            Location::InFlight => {
                self.insert_stored(
                    key,
                    Stored {
                        info,
                        location: Location::InFlight,
                        gen: stored.gen,
                    },
                );
            }
        }
    }

    /// The pod was deleted or bound by someone else: forget it.
    pub fn delete(&mut self, key: &str) -> bool {
        self.remove_stored(key).is_some()
    }

    /// The next pod to schedule, or `None` if none is ready. Moves pods whose backoff has
    /// completed into activeQ first. The pod stays known (in flight) until [`done`] or
    /// [`add_unschedulable_if_not_present`].
    ///
    /// [`done`]: SchedulingQueue::done
    /// [`add_unschedulable_if_not_present`]: SchedulingQueue::add_unschedulable_if_not_present
    pub fn pop(&mut self) -> Option<QueuedPodInfo> {
        self.flush_backoff_completed();
        while let Some(e) = self.active.pop() {
            let Some(stored) = self.pods.get_mut(&e.key) else {
                continue;
            };
            if stored.gen != e.gen || stored.location != Location::Active {
                continue;
            }
            self.scheduling_cycle += 1;
            stored.location = Location::InFlight;
            stored.info.attempts += 1;
            let now = self.clock.now();
            stored.info.initial_attempt_timestamp.get_or_insert(now);
            return Some(stored.info.clone());
        }
        None
    }

    /// The popped pod was scheduled (or given up on): it leaves the queue.
    pub fn done(&mut self, key: &str) {
        if self
            .pods
            .get(key)
            .is_some_and(|s| s.location == Location::InFlight)
        {
            self.remove_stored(key);
        }
    }

    /// Put back a popped pod that could not be scheduled. `unschedulable_plugins` are the
    /// plugins that rejected it (empty for an internal error: then it goes to backoffQ).
    /// `pod_scheduling_cycle` is the cycle it was popped in: if a move request came since,
    /// it goes to backoffQ rather than waiting for another event. Mirrors
    /// `AddUnschedulableIfNotPresent`.
    pub fn add_unschedulable_if_not_present(
        &mut self,
        mut info: QueuedPodInfo,
        unschedulable_plugins: BTreeSet<&'static str>,
        pod_scheduling_cycle: u64,
    ) {
        match self.pods.get(&info.key) {
            Some(s) if s.location != Location::InFlight => return,
            None => return, // deleted while in flight
            _ => {}
        }
        // Keep the freshest object (it may have been updated while in flight).
        if let Some(s) = self.pods.get(&info.key) {
            info.pod = s.info.pod.clone();
            info.priority = s.info.priority;
            info.attempts = info.attempts.max(s.info.attempts);
        }
        info.timestamp = self.clock.now();
        let error = unschedulable_plugins.is_empty();
        info.unschedulable_plugins = unschedulable_plugins;
        if error || self.move_request_cycle >= pod_scheduling_cycle {
            self.push_backoff(info);
        } else {
            self.push_unschedulable(info);
        }
    }

    /// A cluster event happened: every unschedulable pod that one of its rejecting plugins
    /// says may now fit goes to backoffQ (still backing off) or activeQ. Mirrors
    /// `MoveAllToActiveOrBackoffQueue`. Returns how many pods moved.
    pub fn move_all_to_active_or_backoff(&mut self, event: ClusterEvent) -> usize {
        let keys: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.pods.get(*k).is_some_and(|s| {
                    s.info.unschedulable_plugins.is_empty()
                        || s.info
                            .unschedulable_plugins
                            .iter()
                            .any(|p| event.may_help(p))
                })
            })
            .cloned()
            .collect();
        let n = keys.len();
        self.move_pods(keys);
        self.move_request_cycle = self.scheduling_cycle;
        n
    }

    fn move_pods(&mut self, mut keys: Vec<String>) {
        keys.sort(); // deterministic order for equal timestamps
        for key in keys {
            if let Some(s) = self.remove_stored(&key) {
                if self.is_backing_off(&s.info) {
                    self.push_backoff(s.info);
                } else {
                    self.push_active(s.info);
                }
            }
        }
    }

    /// Move pods whose backoff has completed to activeQ (upstream runs this every second).
    pub fn flush_backoff_completed(&mut self) -> usize {
        let now = self.clock.now();
        let mut moved = 0;
        while let Some(Reverse((expiry, gen, _))) = self.backoff.peek() {
            if *expiry > now {
                break;
            }
            let gen = *gen;
            let Some(Reverse((_, _, key))) = self.backoff.pop() else {
                break;
            };
            let current = self
                .pods
                .get(&key)
                .is_some_and(|s| s.gen == gen && s.location == Location::Backoff);
            if current {
                if let Some(s) = self.remove_stored(&key) {
                    self.push_active(s.info);
                    moved += 1;
                }
            }
        }
        moved
    }

    /// Move pods that have been unschedulable longer than `pod_max_in_unschedulable_pods`
    /// (upstream runs this every 30 s). Mirrors `flushUnschedulablePodsLeftover`.
    pub fn flush_unschedulable_leftover(&mut self) -> usize {
        let now = self.clock.now();
        let max = self.opts.pod_max_in_unschedulable_pods;
        let keys: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.pods
                    .get(*k)
                    .is_some_and(|s| now.saturating_duration_since(s.info.timestamp) >= max)
            })
            .cloned()
            .collect();
        let n = keys.len();
        self.move_pods(keys);
        n
    }

    /// When the earliest backoff completes (`None` if nothing is backing off): the actor
    /// wakes up then.
    pub fn next_wakeup(&mut self) -> Option<Instant> {
        while let Some(Reverse((expiry, gen, key))) = self.backoff.peek() {
            let current = self
                .pods
                .get(key)
                .is_some_and(|s| s.gen == *gen && s.location == Location::Backoff);
            if current {
                return Some(*expiry);
            }
            self.backoff.pop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::snapshot::testing::pod;

    fn prio(name: &str, p: i32) -> Arc<Pod> {
        let mut pod = pod(name, 0, 0);
        pod.spec.as_mut().unwrap().priority = Some(p);
        Arc::new(pod)
    }

    fn queue() -> (SchedulingQueue, FakeClock) {
        let clock = FakeClock::new();
        (
            SchedulingQueue::new(Arc::new(clock.clone()), QueueOptions::default()),
            clock,
        )
    }

    fn plugins(p: &[&'static str]) -> BTreeSet<&'static str> {
        p.iter().copied().collect()
    }

    /// activeQ: higher priority first, then arrival order.
    #[test]
    fn active_queue_orders_by_priority_then_arrival() {
        let (mut q, clock) = queue();
        q.add(prio("low-1", 0));
        clock.advance(Duration::from_millis(1));
        q.add(prio("high", 100));
        clock.advance(Duration::from_millis(1));
        q.add(prio("low-2", 0));
        q.add(prio("mid", 50));
        let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|p| p.key)).collect();
        assert_eq!(
            order,
            [
                "default/high",
                "default/mid",
                "default/low-1",
                "default/low-2"
            ]
        );
        // Same timestamp: FIFO.
        let (mut q, _) = queue();
        for i in 0..5 {
            q.add(prio(&format!("p{i}"), 0));
        }
        let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|p| p.key)).collect();
        assert_eq!(
            order,
            [
                "default/p0",
                "default/p1",
                "default/p2",
                "default/p3",
                "default/p4"
            ]
        );
    }

    /// Backoff doubles per attempt from 1 s up to 10 s.
    #[test]
    fn backoff_doubles_up_to_the_max() {
        let (q, _) = queue();
        let secs: Vec<u64> = (0..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 10, 10]);
    }

    /// A failed attempt after a move request (or an error) waits out its backoff, then
    /// comes back; without the clock moving it stays.
    #[test]
    fn backoff_holds_pods_until_expiry() {
        let (mut q, clock) = queue();
        q.add(prio("p", 0));
        let info = q.pop().unwrap();
        assert_eq!(info.attempts, 1);
        // Internal error → backoffQ.
        q.add_unschedulable_if_not_present(info, BTreeSet::new(), q.scheduling_cycle());
        assert_eq!(q.backoff_len(), 1);
        assert!(q.pop().is_none());
        assert_eq!(q.next_wakeup(), Some(clock.now() + Duration::from_secs(1)));
        clock.advance(Duration::from_millis(999));
        assert!(q.pop().is_none());
        clock.advance(Duration::from_millis(1));
        let info = q.pop().unwrap();
        assert_eq!(info.attempts, 2);
        // Second failure: 2 s.
        q.add_unschedulable_if_not_present(info, BTreeSet::new(), q.scheduling_cycle());
        clock.advance(Duration::from_secs(1));
        assert!(q.pop().is_none());
        clock.advance(Duration::from_secs(1));
        assert!(q.pop().is_some());
    }

    /// Unschedulable pods wait for a relevant event; an irrelevant one leaves them.
    #[test]
    fn cluster_events_move_only_relevant_pods() {
        let (mut q, clock) = queue();
        q.add(prio("needs-cpu", 0));
        q.add(prio("needs-taint-gone", 0));
        let a = q.pop().unwrap();
        let cycle_a = q.scheduling_cycle();
        let b = q.pop().unwrap();
        let cycle_b = q.scheduling_cycle();
        q.add_unschedulable_if_not_present(a, plugins(&[names::NODE_RESOURCES_FIT]), cycle_a);
        q.add_unschedulable_if_not_present(b, plugins(&[names::TAINT_TOLERATION]), cycle_b);
        assert_eq!(q.unschedulable_len(), 2);
        assert_eq!(
            q.move_all_to_active_or_backoff(ClusterEvent::NodeLabelChange),
            0
        );
        assert_eq!(
            q.move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete),
            1
        );
        assert_eq!(q.unschedulable_len(), 1);
        // Still within its 1 s backoff: in backoffQ, then active.
        assert_eq!(q.backoff_len(), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(q.pop().unwrap().key, "default/needs-cpu");
        assert_eq!(
            q.move_all_to_active_or_backoff(ClusterEvent::NodeTaintChange),
            1
        );
        assert_eq!(q.pop().unwrap().key, "default/needs-taint-gone");
        // NodeAdd moves everything.
        let (mut q, _) = queue();
        q.add(prio("p", 0));
        let p = q.pop().unwrap();
        let c = q.scheduling_cycle();
        q.add_unschedulable_if_not_present(p, plugins(&[names::NODE_AFFINITY]), c);
        assert_eq!(q.move_all_to_active_or_backoff(ClusterEvent::NodeAdd), 1);
    }

    /// A move request during a pod's attempt sends it to backoff, not unschedulable.
    #[test]
    fn move_request_during_attempt_is_not_missed() {
        let (mut q, _) = queue();
        q.add(prio("p", 0));
        let p = q.pop().unwrap();
        let cycle = q.scheduling_cycle();
        q.move_all_to_active_or_backoff(ClusterEvent::NodeAdd);
        q.add_unschedulable_if_not_present(p, plugins(&[names::NODE_RESOURCES_FIT]), cycle);
        assert_eq!(q.unschedulable_len(), 0);
        assert_eq!(q.backoff_len(), 1);
    }

    /// Pods unschedulable for 5 minutes go back without any event.
    #[test]
    fn unschedulable_leftovers_are_flushed_after_five_minutes() {
        let (mut q, clock) = queue();
        q.add(prio("p", 0));
        let p = q.pop().unwrap();
        let c = q.scheduling_cycle();
        q.add_unschedulable_if_not_present(p, plugins(&[names::NODE_AFFINITY]), c);
        clock.advance(Duration::from_secs(299));
        assert_eq!(q.flush_unschedulable_leftover(), 0);
        clock.advance(Duration::from_secs(1));
        assert_eq!(q.flush_unschedulable_leftover(), 1);
        assert_eq!(q.pop().unwrap().attempts, 2);
    }

    /// A status-only update leaves an unschedulable pod where it is; a spec change gives it
    /// another chance.
    #[test]
    fn status_only_updates_do_not_requeue_unschedulable_pods() {
        let (mut q, clock) = queue();
        q.add(prio("p", 0));
        let p = q.pop().unwrap();
        let c = q.scheduling_cycle();
        q.add_unschedulable_if_not_present(p, plugins(&[names::NODE_RESOURCES_FIT]), c);
        let mut with_status = (*prio("p", 0)).clone();
        with_status.status = Some(Default::default());
        with_status.metadata.resource_version = Some("7".into());
        q.update(Arc::new(with_status));
        assert_eq!(q.unschedulable_len(), 1);
        clock.advance(Duration::from_secs(2));
        let mut relabelled = (*prio("p", 0)).clone();
        relabelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        q.update(Arc::new(relabelled));
        assert_eq!(q.unschedulable_len(), 0);
        assert!(q.pop().is_some());
    }

    /// Updates re-queue with the new priority; deletes forget; done removes in-flight pods.
    #[test]
    fn update_delete_and_done() {
        let (mut q, _) = queue();
        q.add(prio("a", 0));
        q.add(prio("b", 0));
        q.update(prio("b", 10));
        assert_eq!(q.pop().unwrap().key, "default/b");
        q.done("default/b");
        assert!(!q.contains("default/b"));
        assert!(q.delete("default/a"));
        assert!(q.pop().is_none());
        assert!(q.is_empty());
        // Deleted while in flight: not re-added.
        q.add(prio("c", 0));
        let c = q.pop().unwrap();
        q.delete("default/c");
        q.add_unschedulable_if_not_present(c, BTreeSet::new(), 1);
        assert!(q.is_empty());
    }
}
