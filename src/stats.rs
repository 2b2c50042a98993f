//! In-process statistics per operation, table and entity ([`Client::stats`]): for services
//! without a metrics backend, and for load tests and benchmarks.
//!
//! Every request to DynamoDB is recorded once, where the pipeline's attempts loop ends (the
//! same place as [`metrics`](crate::metrics)): its latency (retries included), whether it
//! failed, its retries and throttled attempts, the capacity it consumed and the items it read
//! and wrote. Reads answered by the client's cache are counted as cache hits of their
//! operation (a get as `GetItem`, a query page as `Query`); reads the cache could not answer,
//! as misses.
//!
//! Recording costs a few relaxed atomic additions on counters kept per operation, table and
//! entity (a read lock finds them); latencies go to a log-linear histogram (16 buckets per
//! power of two, so a reported quantile is within 1/16 of the true one). The overhead
//! benchmark measures it (`benches/overhead`).
//!
//! [`Client::stats`]: crate::Client::stats

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::metrics::{self, RequestLabels, Series};
use crate::Operation;

/// Figures of one operation on one table for one entity, from [`Client::stats`](crate::Client::stats).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OperationStats {
    /// The operation.
    pub operation: Operation,
    /// The table, with the client's prefix.
    pub table: String,
    /// The entity the requests were made for (`"(transaction)"` for transactions).
    pub entity: &'static str,
    /// Requests sent to DynamoDB (each with its retries).
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Attempts sent again (errors, unprocessed items or keys).
    pub retries: u64,
    /// Attempts DynamoDB throttled.
    pub throttles: u64,
    /// The requests' latency, retries included.
    pub latency: LatencySummary,
    /// Capacity units consumed, read and write, as DynamoDB reported them.
    pub consumed_capacity: f64,
    /// Items DynamoDB read (a query's or scan's items before its filter).
    pub items_read: u64,
    /// Items written.
    pub items_written: u64,
    /// Reads answered by the client's cache, without a request.
    pub cache_hits: u64,
    /// Reads the cache could not answer (they made a request, or joined one).
    pub cache_misses: u64,
}

impl OperationStats {
    /// `cache_hits / (cache_hits + cache_misses)`; `None` when nothing was looked up.
    pub fn cache_hit_rate(&self) -> Option<f64> {
        let lookups = self.cache_hits + self.cache_misses;
        (lookups > 0).then(|| self.cache_hits as f64 / lookups as f64)
    }

    /// Calls answered: requests sent plus reads answered by the cache.
    pub fn calls(&self) -> u64 {
        self.requests + self.cache_hits
    }
}

/// Latency quantiles of a set of requests, each within 1/16 (6.25%) of the true value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Requests measured.
    pub count: u64,
    /// The mean.
    pub mean: Duration,
    /// The median.
    pub p50: Duration,
    /// The 95th percentile.
    pub p95: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The slowest (exact).
    pub max: Duration,
}

/// A snapshot of a client's statistics, from [`Client::stats`](crate::Client::stats).
///
/// ```
/// # async fn demo(db: &dynamite::Client) {
/// use dynamite::Operation;
///
/// let stats = db.stats();
/// for op in &stats.operations {
///     println!(
///         "{} {} ({}): {} requests, {} errors, p99 {:?}, {:.1} units",
///         op.operation, op.table, op.entity, op.requests, op.errors,
///         op.latency.p99, op.consumed_capacity,
///     );
/// }
/// if let Some(gets) = stats.get(Operation::GetItem, "orders") {
///     println!("cache hit rate of gets: {:?}", gets.cache_hit_rate());
/// }
/// println!("{stats}"); // the same as a table
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// One row per operation, table and entity, in the order they were first seen.
    pub operations: Vec<OperationStats>,
}

impl Stats {
    /// The row of `operation` on `table` (with prefix); the first one if several entities
    /// share the table.
    pub fn get(&self, operation: Operation, table: &str) -> Option<&OperationStats> {
        self.operations
            .iter()
            .find(|s| s.operation == operation && s.table == table)
    }

    /// Capacity units consumed by every request.
    pub fn total_consumed_capacity(&self) -> f64 {
        self.operations.iter().map(|s| s.consumed_capacity).sum()
    }

    /// Requests sent, all operations.
    pub fn total_requests(&self) -> u64 {
        self.operations.iter().map(|s| s.requests).sum()
    }

    /// Requests failed, all operations.
    pub fn total_errors(&self) -> u64 {
        self.operations.iter().map(|s| s.errors).sum()
    }
}

impl fmt::Display for Stats {
    /// A table: one line per row of [`Stats::operations`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<18} {:<24} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10} {:>6}",
            "operation",
            "table",
            "requests",
            "errors",
            "p50",
            "p95",
            "p99",
            "max",
            "capacity",
            "hits"
        )?;
        for s in &self.operations {
            let hits = s
                .cache_hit_rate()
                .map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0));
            writeln!(
                f,
                "{:<18} {:<24} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10.1} {:>6}",
                s.operation.name(),
                s.table,
                s.requests,
                s.errors,
                Millis(s.latency.p50),
                Millis(s.latency.p95),
                Millis(s.latency.p99),
                Millis(s.latency.max),
                s.consumed_capacity,
                hits,
            )?;
        }
        Ok(())
    }
}

/// A duration in milliseconds, for tables.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.2}ms", self.0.as_secs_f64() * 1e3);
        f.pad(&text)
    }
}

/// Sub-buckets per power of two: quantiles within 1/16 of the truth.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// The largest power of two with buckets of its own (2^40 ns, about 18 minutes); longer
/// latencies fall in the last bucket (the maximum stays exact).
const TOP_EXPONENT: u32 = 40;
const BUCKETS: usize = (TOP_EXPONENT as usize - SUB_BITS as usize + 2) * SUB;

/// A log-linear histogram of nanoseconds in atomics: recording is three relaxed additions and
/// a `fetch_max`.
pub(crate) struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl LatencyHistogram {
    pub(crate) fn new() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    /// The bucket of `ns`: values below 16 have one each; above, each power of two is cut in
    /// 16 equal parts.
    fn bucket(ns: u64) -> usize {
        if ns < SUB as u64 {
            return ns as usize;
        }
        let exponent = (63 - ns.leading_zeros()).min(TOP_EXPONENT + 1);
        if exponent > TOP_EXPONENT {
            return BUCKETS - 1;
        }
        let sub = (ns >> (exponent - SUB_BITS)) as usize & (SUB - 1);
        (exponent - SUB_BITS + 1) as usize * SUB + sub
    }

    /// The smallest value in bucket `index`, and the bucket's width.
    fn bounds(index: usize) -> (u64, u64) {
        if index < SUB {
            return (index as u64, 1);
        }
        let exponent = (index / SUB) as u32 + SUB_BITS - 1;
        let sub = (index % SUB) as u64;
        let width = 1u64 << (exponent - SUB_BITS);
        ((SUB as u64 + sub) * width, width)
    }

    pub(crate) fn record(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[Self::bucket(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    fn reset(&self) {
        for bucket in self.buckets.iter() {
            bucket.store(0, Ordering::Relaxed);
        }
        self.sum_ns.store(0, Ordering::Relaxed);
        self.max_ns.store(0, Ordering::Relaxed);
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        if count == 0 {
            return LatencySummary::default();
        }
        let max = self.max_ns.load(Ordering::Relaxed);
        let quantile = |q: f64| Duration::from_nanos(quantile(&counts, count, q).min(max));
        LatencySummary {
            count,
            mean: Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed) / count),
            p50: quantile(0.50),
            p95: quantile(0.95),
            p99: quantile(0.99),
            max: Duration::from_nanos(max),
        }
    }
}

/// The value at quantile `q` of `count` values counted by bucket: the middle of the bucket
/// holding the value of rank ⌈q·count⌉.
fn quantile(counts: &[u64], count: u64, q: f64) -> u64 {
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let mut seen = 0;
    for (index, &n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let (low, width) = LatencyHistogram::bounds(index);
            return low + width / 2;
        }
    }
    0
}

/// The counters of one operation, table and entity; the metrics series it records into are
/// kept beside them, registered once.
pub(crate) struct Slot {
    operation: Operation,
    entity: &'static str,
    table: Box<str>,
    requests: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    throttles: AtomicU64,
    /// Thousandths of a unit (DynamoDB reports capacity in halves and tenths).
    capacity_milli: AtomicU64,
    items_read: AtomicU64,
    items_written: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    latency: LatencyHistogram,
    pub(crate) series: Series,
}

/// What one request did, recorded when it ends.
pub(crate) struct RequestFigures {
    pub elapsed: Duration,
    pub failed: bool,
    pub retries: u32,
    pub throttles: u32,
    pub consumed_capacity: f64,
    pub items_read: u64,
    pub items_written: u64,
}

impl Slot {
    fn new(labels: RequestLabels<'_>) -> Self {
        let zero = || AtomicU64::new(0);
        Slot {
            operation: labels.operation,
            entity: labels.entity,
            table: labels.table.into(),
            requests: zero(),
            errors: zero(),
            retries: zero(),
            throttles: zero(),
            capacity_milli: zero(),
            items_read: zero(),
            items_written: zero(),
            cache_hits: zero(),
            cache_misses: zero(),
            latency: LatencyHistogram::new(),
            series: Series::new(labels),
        }
    }

    pub(crate) fn request(&self, figures: &RequestFigures) {
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.requests, 1);
        add(&self.errors, u64::from(figures.failed));
        add(&self.retries, u64::from(figures.retries));
        add(&self.throttles, u64::from(figures.throttles));
        add(
            &self.capacity_milli,
            (figures.consumed_capacity * 1000.0).round() as u64,
        );
        add(&self.items_read, figures.items_read);
        add(&self.items_written, figures.items_written);
        self.latency.record(figures.elapsed);
    }

    /// Counts `n` items written outside a single request's figures (a batch's chunk).
    pub(crate) fn written(&self, n: u64) {
        self.items_written.fetch_add(n, Ordering::Relaxed);
        metrics::items_written(&self.series, n);
    }

    /// Counts `hits` reads answered by the cache and `misses` not; `elapsed`: how long the
    /// call answered by the cache took, when it was timed (for metrics).
    pub(crate) fn cache_lookups(&self, hits: u64, misses: u64, elapsed: Option<Duration>) {
        if hits > 0 {
            self.cache_hits.fetch_add(hits, Ordering::Relaxed);
        }
        if misses > 0 {
            self.cache_misses.fetch_add(misses, Ordering::Relaxed);
        }
        metrics::cache_reads(&self.series, hits, misses, elapsed);
    }

    fn snapshot(&self) -> OperationStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OperationStats {
            operation: self.operation,
            table: self.table.to_string(),
            entity: self.entity,
            requests: load(&self.requests),
            errors: load(&self.errors),
            retries: load(&self.retries),
            throttles: load(&self.throttles),
            latency: self.latency.summary(),
            consumed_capacity: load(&self.capacity_milli) as f64 / 1000.0,
            items_read: load(&self.items_read),
            items_written: load(&self.items_written),
            cache_hits: load(&self.cache_hits),
            cache_misses: load(&self.cache_misses),
        }
    }

    fn reset(&self) {
        for counter in [
            &self.requests,
            &self.errors,
            &self.retries,
            &self.throttles,
            &self.capacity_milli,
            &self.items_read,
            &self.items_written,
            &self.cache_hits,
            &self.cache_misses,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.latency.reset();
    }
}

/// A client's slots, by operation and entity, then table (usually one).
#[derive(Default)]
pub(crate) struct Registry {
    slots: RwLock<Slots>,
}

#[derive(Default)]
struct Slots {
    by_operation:
        HashMap<(Operation, &'static str), Vec<Arc<Slot>>, BuildHasherDefault<WordHasher>>,
    /// Every slot, in the order of creation (for snapshots).
    all: Vec<Arc<Slot>>,
}

impl Slots {
    fn find(&self, labels: RequestLabels<'_>) -> Option<&Arc<Slot>> {
        let of_entity = self.by_operation.get(&(labels.operation, labels.entity))?;
        of_entity.iter().find(|s| &*s.table == labels.table)
    }
}

impl Registry {
    /// The slot of requests labelled `labels`, made on first use.
    pub(crate) fn slot(&self, labels: RequestLabels<'_>) -> Arc<Slot> {
        let find = |slots: &Slots| slots.find(labels).cloned();
        if let Some(slot) = find(&self.slots.read().unwrap_or_else(PoisonError::into_inner)) {
            return slot;
        }
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = find(&slots) {
            return slot;
        }
        let slot = Arc::new(Slot::new(labels));
        slots
            .by_operation
            .entry((labels.operation, labels.entity))
            .or_default()
            .push(Arc::clone(&slot));
        slots.all.push(Arc::clone(&slot));
        slot
    }

    /// Counts a read of `labels` answered by the cache (`hit`) or not; `started`: when the
    /// call began, if it was timed ([`metrics::clock`]).
    pub(crate) fn cache_lookup(
        &self,
        labels: RequestLabels<'_>,
        hit: bool,
        started: Option<std::time::Instant>,
    ) {
        let (hits, misses) = if hit { (1, 0) } else { (0, 1) };
        let elapsed = started.map(|t| t.elapsed());
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        match slots.find(labels) {
            Some(slot) => slot.cache_lookups(hits, misses, elapsed),
            None => {
                drop(slots);
                self.slot(labels).cache_lookups(hits, misses, elapsed);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        Stats {
            operations: slots.all.iter().map(|s| s.snapshot()).collect(),
        }
    }

    pub(crate) fn reset(&self) {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        for slot in &slots.all {
            slot.reset();
        }
    }
}

/// The registry's hasher: its keys are an operation and a short entity name, hashed on every
/// request, so it takes eight bytes per step (as rustc's FxHasher does); SipHash's resistance
/// to chosen keys buys nothing for keys the program itself names.
#[derive(Default)]
pub(crate) struct WordHasher(u64);

impl WordHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for ns in (0..5000).chain([1 << 20, (1 << 40) - 1, 1 << 40, u64::MAX]) {
            let b = LatencyHistogram::bucket(ns);
            assert!(b >= last, "bucket of {ns} went back");
            assert!(b < BUCKETS);
            last = b;
        }
        assert_eq!(LatencyHistogram::bucket(u64::MAX), BUCKETS - 1);
    }

    proptest! {
        #[test]
        fn a_value_lies_in_its_bucket(ns in 0u64..(1 << 41)) {
            let (low, width) = LatencyHistogram::bounds(LatencyHistogram::bucket(ns));
            prop_assert!(low <= ns && ns < low + width, "{ns} not in [{low}, {})", low + width);
            // Width at most 1/16 of the bucket's values.
            prop_assert!(width == 1 || width * 16 <= low);
        }
    }

    #[test]
    fn quantiles_are_within_a_sixteenth() {
        let h = LatencyHistogram::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_micros(ms * 1000));
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.max, Duration::from_millis(1000));
        for (got, want) in [(s.p50, 500.0), (s.p95, 950.0), (s.p99, 990.0)] {
            let got = got.as_secs_f64() * 1e3;
            assert!((got - want).abs() <= want / 16.0, "{got} vs {want}");
        }
        assert_eq!(s.mean, Duration::from_micros(500_500));
        h.reset();
        assert_eq!(h.summary(), LatencySummary::default());
    }

    #[test]
    fn a_quantile_never_exceeds_the_maximum() {
        let h = LatencyHistogram::new();
        h.record(Duration::from_nanos(1_000_001));
        let s = h.summary();
        assert_eq!(s.max, Duration::from_nanos(1_000_001));
        assert!(s.p50 <= s.max && s.p99 <= s.max);
        assert!(s.p50.as_nanos() * 16 >= 1_000_001 * 15, "{s:?}");
    }

    fn labels(table: &str) -> RequestLabels<'_> {
        RequestLabels {
            operation: Operation::GetItem,
            table,
            entity: "Thing",
        }
    }

    #[test]
    fn the_registry_keeps_one_slot_per_operation_entity_and_table() {
        let registry = Registry::default();
        let a = registry.slot(labels("a"));
        assert!(Arc::ptr_eq(&a, &registry.slot(labels("a"))));
        let b = registry.slot(labels("b"));
        a.request(&RequestFigures {
            elapsed: Duration::from_millis(3),
            failed: false,
            retries: 2,
            throttles: 1,
            consumed_capacity: 0.5,
            items_read: 1,
            items_written: 0,
        });
        a.cache_lookups(2, 1, None);
        b.request(&RequestFigures {
            elapsed: Duration::from_millis(1),
            failed: true,
            retries: 0,
            throttles: 0,
            consumed_capacity: 0.0,
            items_read: 0,
            items_written: 0,
        });
        let stats = registry.snapshot();
        assert_eq!(stats.operations.len(), 2);
        let a = stats.get(Operation::GetItem, "a").unwrap();
        assert_eq!((a.requests, a.errors, a.retries, a.throttles), (1, 0, 2, 1));
        assert_eq!(a.consumed_capacity, 0.5);
        assert_eq!(a.items_read, 1);
        assert_eq!(a.calls(), 3);
        assert!((a.cache_hit_rate().unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(stats.total_errors(), 1);
        assert_eq!(stats.total_requests(), 2);
        assert!(stats.to_string().contains("GetItem"));
        registry.reset();
        assert_eq!(registry.snapshot().total_requests(), 0);
    }
}
