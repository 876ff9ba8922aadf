//! [`MetricsHandle`]: counting samples from any thread, cheaply.
//!
//! The counters live in a fixed number of shards, each a `Mutex<HashMap<Sample, Series>>`,
//! picked by the sample's precomputed hash. Counting is one clock read, one uncontended lock and
//! one lookup by reference; it allocates only the first time a sample is seen and when a sample
//! spans more minutes than it did before the last drain. Entries are never removed, like the
//! platform's counter maps: the set of samples is bounded by the agent's own tag values.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};

use super::sample::SampleHasher;
use super::{Minute, Sample};

/// Where counts get their time from. Injected so tests control minute boundaries.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to, with millisecond resolution.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(t: DateTime<Utc>) -> ManualClock {
        ManualClock(AtomicI64::new(t.timestamp_millis()))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        self.0.store(t.timestamp_millis(), Ordering::Relaxed);
    }

    pub fn advance(&self, by: TimeDelta) {
        self.0.fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        // Out of range only if `advance` pushed it past year 262142; pin to the edge rather
        // than fail a count.
        let ms = self.0.load(Ordering::Relaxed);
        DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    }
}

/// `n` occurrences of `sample` during `minute`, as returned by [`MetricsHandle::drain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinuteCount {
    pub sample: Sample,
    pub minute: Minute,
    pub n: u64,
}

/// Counts samples. Clone it into every actor; all clones share the same counters.
#[derive(Clone)]
pub struct MetricsHandle {
    inner: Arc<Counters>,
}

struct Counters {
    clock: Arc<dyn Clock>,
    shards: Box<[Mutex<Shard>]>,
}

type Shard = HashMap<Sample, Series, BuildHasherDefault<SampleHasher>>;

#[derive(Default)]
struct Series {
    /// Counts not drained yet, per minute, usually one or two entries.
    pending: Vec<(Minute, u64)>,
}

impl Series {
    fn add(&mut self, minute: Minute, n: u64) {
        // The clock normally moves forward, so the current minute is the last entry.
        match self.pending.iter_mut().rev().find(|(m, _)| *m == minute) {
            Some((_, count)) => *count = count.saturating_add(n),
            None => self.pending.push((minute, n)),
        }
    }
}

const SHARDS: usize = 16;

impl Default for MetricsHandle {
    fn default() -> Self {
        MetricsHandle::new()
    }
}

impl MetricsHandle {
    /// A handle on the system clock.
    pub fn new() -> MetricsHandle {
        MetricsHandle::with_clock(Arc::new(SystemClock))
    }

    pub fn with_clock(clock: Arc<dyn Clock>) -> MetricsHandle {
        MetricsHandle {
            inner: Arc::new(Counters {
                clock,
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            }),
        }
    }

    /// Counts one occurrence of `sample` now.
    pub fn count(&self, sample: &Sample) {
        self.count_n(sample, 1);
    }

    /// Counts `n` occurrences of `sample` now.
    pub fn count_n(&self, sample: &Sample, n: u64) {
        if n == 0 {
            return;
        }
        let minute = Minute::of(self.inner.clock.now());
        let mut shard = self.shard(sample);
        match shard.get_mut(sample) {
            Some(series) => series.add(minute, n),
            None => shard
                .entry(sample.clone())
                .or_default()
                .pending
                .push((minute, n)),
        }
    }

    /// Takes every count not drained yet, leaving them at zero. Order is unspecified.
    pub fn drain(&self) -> Vec<MinuteCount> {
        let mut out = Vec::new();
        for shard in self.inner.shards.iter() {
            let mut shard = lock(shard);
            for (sample, series) in shard.iter_mut() {
                out.extend(series.pending.drain(..).map(|(minute, n)| MinuteCount {
                    sample: sample.clone(),
                    minute,
                    n,
                }));
            }
        }
        out
    }

    /// Gives back drained counts that could not be stored, so the next drain retries them.
    pub fn restore(&self, counts: Vec<MinuteCount>) {
        for MinuteCount { sample, minute, n } in counts {
            let mut shard = self.shard(&sample);
            shard.entry(sample).or_default().add(minute, n);
        }
    }

    fn shard(&self, sample: &Sample) -> MutexGuard<'_, Shard> {
        let mut hasher = SampleHasher::default();
        sample.hash(&mut hasher);
        lock(&self.inner.shards[hasher.finish() as usize % SHARDS])
    }
}

/// Locks a shard, recovering it if a thread panicked while holding it: every update leaves the
/// counters consistent, so the data is still good.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::super::window::utc;
    use super::super::{Outcome, Source};
    use super::*;

    fn setup(at: &str) -> (Arc<ManualClock>, MetricsHandle) {
        let clock = Arc::new(ManualClock::new(utc(at)));
        let handle = MetricsHandle::with_clock(clock.clone());
        (clock, handle)
    }

    fn sorted(mut counts: Vec<MinuteCount>) -> Vec<(String, DateTime<Utc>, u64)> {
        counts.sort_by_key(|c| (c.sample.clone(), c.minute));
        counts
            .into_iter()
            .map(|c| (format!("{:?}", c.sample), c.minute.start(), c.n))
            .collect()
    }

    #[test]
    fn counts_are_attributed_to_the_utc_minute_they_happen_in() {
        let (clock, handle) = setup("2024-05-10T14:59:59.999Z");
        let s = Sample::operation(Source::Engine, "START", Outcome::Ok, "");
        handle.count(&s);
        handle.count(&s);
        clock.advance(TimeDelta::milliseconds(1));
        handle.count_n(&s, 5);
        let got = sorted(handle.drain());
        let name = format!("{s:?}");
        assert_eq!(
            got,
            [
                (name.clone(), utc("2024-05-10T14:59:00Z"), 2),
                (name, utc("2024-05-10T15:00:00Z"), 5)
            ]
        );
    }

    #[test]
    fn drain_resets_pending_counts() {
        let (_clock, handle) = setup("2024-05-10T14:22:00Z");
        let s = Sample::control_panel("LOGIN", Outcome::Ok, "ops");
        handle.count_n(&s, 3);
        assert_eq!(handle.drain().len(), 1);
        assert!(handle.drain().is_empty());
        handle.count(&s);
        handle.count_n(&s, 0);
        assert_eq!(handle.drain()[0].n, 1);
    }

    #[test]
    fn restored_counts_come_back_in_the_next_drain() {
        let (clock, handle) = setup("2024-05-10T14:22:00Z");
        let s = Sample::queries_control_panel("MetricsApi", Outcome::Ko, "ops");
        handle.count_n(&s, 2);
        let drained = handle.drain();
        handle.count(&s);
        clock.advance(TimeDelta::minutes(1));
        handle.count(&s);
        handle.restore(drained);
        let got = sorted(handle.drain());
        assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), [3, 1]);
    }

    #[test]
    fn clones_on_other_threads_share_the_counters() {
        let (_clock, handle) = setup("2024-05-10T14:22:00Z");
        let samples: Vec<Sample> = (0..8)
            .map(|i| Sample::operation(Source::LogShipper, "SHIP", Outcome::Ok, &format!("u{i}")))
            .collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let (handle, samples) = (handle.clone(), &samples);
                scope.spawn(move || {
                    for _ in 0..1000 {
                        for s in samples {
                            handle.count(s);
                        }
                    }
                });
            }
        });
        let drained = handle.drain();
        assert_eq!(drained.len(), 8);
        assert!(drained.iter().all(|c| c.n == 4000));
    }

    #[test]
    fn equal_samples_built_separately_share_one_counter() {
        let (_clock, handle) = setup("2024-05-10T14:22:00Z");
        handle.count(&Sample::api("/r", "GET", "200", "u"));
        handle.count(&Sample::api("/r", "GET", "200", "u"));
        assert_eq!(handle.drain().len(), 1);
    }
}
