//! Metrics of requests to DynamoDB, recorded through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`): install any recorder (Prometheus, StatsD, OpenTelemetry, ...)
//! and they appear. Without the feature, recording compiles to nothing.
//!
//! Every request is recorded once, where the pipeline's attempts loop ends, with the labels of
//! OpenTelemetry's semantic conventions for database clients where they apply. Install the
//! recorder before the first request: the series of an operation on a table are registered
//! with the recorder of that moment, and kept (so recording a request allocates nothing).
//!
//! | name | kind | unit | labels |
//! |---|---|---|---|
//! | [`OPERATION_DURATION`] (`db.client.operation.duration`) | histogram | seconds, whole request, retries included | request labels, `outcome` |
//! | [`ATTEMPT_DURATION`] (`dynamite.attempt.duration`) | histogram | seconds, one attempt | request labels, `outcome` |
//! | [`REQUESTS`] (`dynamite.requests`) | counter | requests | request labels, `outcome`, `error.type` on failure |
//! | [`RETRIES`] (`dynamite.retries`) | counter | retries | request labels, `reason` (DynamoDB's code, `UnprocessedKeys`, ...) |
//! | [`THROTTLES`] (`dynamite.throttles`) | counter | throttled attempts | request labels |
//! | [`CONSUMED_CAPACITY`] (`dynamite.consumed_capacity`) | histogram | capacity units per request | request labels |
//! | [`ITEMS_READ`] (`dynamite.items.read`) | counter | items DynamoDB read (before filters) | request labels |
//! | [`ITEMS_WRITTEN`] (`dynamite.items.written`) | counter | items written | request labels |
//! | [`COALESCED_BATCH_SIZE`] (`dynamite.coalesce.batch_size`) | histogram | gets per coalesced BatchGetItem | request labels |
//! | [`CACHE_READS`] (`dynamite.cache.reads`) | counter | reads through the client's cache | request labels, `result` (`hit`, `miss`) |
//! | [`OPERATION_DURATION`], answered by the cache | histogram | seconds, the whole call | request labels, `outcome` = `ok`, `dynamite.cache` = `hit` |
//! | [`LAYER_LOOKUPS`] (`dynamite.cache.layer.lookups`) | counter | lookups in one layer | `dynamite.cache.layer`, `result` (`hit`, `miss`, `skipped`, `corrupt`) |
//! | [`LAYER_EVICTIONS`] (`dynamite.cache.layer.evictions`) | counter | entries evicted for capacity | `dynamite.cache.layer` |
//! | [`LAYER_FAULTS`] (`dynamite.cache.layer.faults`) | counter | backend errors and timeouts | `dynamite.cache.layer` |
//! | [`LAYER_INVALIDATIONS`] (`dynamite.cache.layer.invalidations`) | counter | invalidations applied | `dynamite.cache.layer` |
//! | [`PUBSUB_DELAY`] (`dynamite.cache.pubsub.delay`) | histogram | seconds from publishing to hearing back a heartbeat | `dynamite.cache.layer` |
//!
//! Request labels: `db.system.name` = `aws.dynamodb`, `db.operation.name` (`GetItem`, `Query`,
//! ...), `db.collection.name` (the table, with its prefix) and `dynamite.entity`. `outcome` is
//! `ok` or `error`; `error.type` is DynamoDB's error code when it answered with one
//! (`ResourceNotFoundException`, ...), else the failure's [kind](crate::ErrorKind)
//! (`OutcomeUnknown`, `NotSent`, ...) or `other`.
//!
//! A call answered by the client's cache makes no request: it counts as a `hit` of
//! [`CACHE_READS`] and records its own duration in [`OPERATION_DURATION`] with
//! `dynamite.cache` = `hit` (a call the cache could not answer records its request instead).
//! The layer metrics come from each layer's [`StatsCounter`](crate::cache::StatsCounter),
//! labelled with its name (`moka`, `lfu`, `redis`). The pub/sub delay is the time a
//! [`RedisLayer`](crate::cache)'s heartbeat takes to come back through Redis pub/sub: what an
//! invalidation published by this instance takes to reach the others.
//!
//! Without a recorder, [`Client::stats`](crate::Client::stats) gives most of these in process.

#[cfg(feature = "metrics")]
use crate::ErrorKind;
use crate::{Error, Operation};

/// The duration of a request to DynamoDB, retries included (seconds).
pub const OPERATION_DURATION: &str = "db.client.operation.duration";
/// The duration of one attempt of a request (seconds).
pub const ATTEMPT_DURATION: &str = "dynamite.attempt.duration";
/// Requests made, by outcome.
pub const REQUESTS: &str = "dynamite.requests";
/// Retries, by reason.
pub const RETRIES: &str = "dynamite.retries";
/// Attempts DynamoDB throttled.
pub const THROTTLES: &str = "dynamite.throttles";
/// Capacity units a request consumed (read and write units, as DynamoDB reports them).
pub const CONSUMED_CAPACITY: &str = "dynamite.consumed_capacity";
/// Items DynamoDB read to answer a request (a query's or scan's before its filter).
pub const ITEMS_READ: &str = "dynamite.items.read";
/// Items a request wrote.
pub const ITEMS_WRITTEN: &str = "dynamite.items.written";
/// Reads through the client's cache, by `result`: `hit` (answered, no request) or `miss`.
pub const CACHE_READS: &str = "dynamite.cache.reads";
/// Lookups in one cache layer, by `result`: `hit`, `miss`, `skipped` (the layer could not
/// vouch for its freshness) or `corrupt` (an entry that could not be read).
pub const LAYER_LOOKUPS: &str = "dynamite.cache.layer.lookups";
/// Entries a cache layer evicted for capacity.
pub const LAYER_EVICTIONS: &str = "dynamite.cache.layer.evictions";
/// Faults of a cache layer's backend (errors, timeouts).
pub const LAYER_FAULTS: &str = "dynamite.cache.layer.faults";
/// Invalidations a cache layer applied (its own and, for shared layers, other instances').
pub const LAYER_INVALIDATIONS: &str = "dynamite.cache.layer.invalidations";
/// The time a shared layer's heartbeat takes to come back through pub/sub (seconds).
pub const PUBSUB_DELAY: &str = "dynamite.cache.pubsub.delay";
/// Gets carried by each BatchGetItem of coalesced gets
/// ([`ClientBuilder::coalesce_gets`](crate::ClientBuilder::coalesce_gets)): its count is the
/// batches, its sum the gets they answered.
pub const COALESCED_BATCH_SIZE: &str = "dynamite.coalesce.batch_size";

/// What a request is recorded under.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))] // table and entity: read when recording
pub(crate) struct RequestLabels<'a> {
    pub operation: Operation,
    pub table: &'a str,
    pub entity: &'static str,
}

#[cfg(feature = "metrics")]
impl RequestLabels<'_> {
    fn labels(&self) -> Vec<metrics::Label> {
        vec![
            metrics::Label::from_static_parts("db.system.name", "aws.dynamodb"),
            metrics::Label::from_static_parts("db.operation.name", self.operation.name()),
            metrics::Label::new("db.collection.name", self.table.to_owned()),
            metrics::Label::from_static_parts("dynamite.entity", self.entity),
        ]
    }
}

#[cfg(feature = "metrics")]
fn outcome(error: Option<&Error>) -> metrics::Label {
    metrics::Label::from_static_parts("outcome", if error.is_some() { "error" } else { "ok" })
}

/// `error.type`: DynamoDB's error code when it answered with one, else the failure's kind.
#[cfg(feature = "metrics")]
fn error_type(error: &Error) -> metrics::Label {
    match error.code() {
        Some(code) => metrics::Label::new("error.type", code.to_owned()),
        None => {
            let kind = error.kind().map_or("other", ErrorKind::name);
            metrics::Label::from_static_parts("error.type", kind)
        }
    }
}

/// The series a request's successful attempts and its end go to, registered once per
/// operation, table and entity (kept in the client's [`Slot`](crate::stats::Slot); the failure
/// series, rarer, are looked up when they happen). Recording into a registered series
/// allocates nothing.
#[cfg_attr(not(feature = "metrics"), derive(Default))]
pub(crate) struct Series {
    #[cfg(feature = "metrics")]
    attempt_ok: metrics::Histogram,
    #[cfg(feature = "metrics")]
    duration_ok: metrics::Histogram,
    #[cfg(feature = "metrics")]
    requests_ok: metrics::Counter,
    /// Item operations only.
    #[cfg(feature = "metrics")]
    capacity: Option<metrics::Histogram>,
    /// Reads only.
    #[cfg(feature = "metrics")]
    items_read: Option<metrics::Counter>,
    /// Writes only.
    #[cfg(feature = "metrics")]
    items_written: Option<metrics::Counter>,
    /// Registered on the first read through the cache.
    #[cfg(feature = "metrics")]
    cache: std::sync::OnceLock<CacheSeries>,
    #[cfg(feature = "metrics")]
    labels: Vec<metrics::Label>,
}

/// The series of reads through the client's cache, of one operation, table and entity.
#[cfg(feature = "metrics")]
struct CacheSeries {
    hits: metrics::Counter,
    misses: metrics::Counter,
    /// The duration of calls answered by the cache.
    duration: metrics::Histogram,
}

#[cfg(feature = "metrics")]
impl CacheSeries {
    fn new(labels: &[metrics::Label]) -> Self {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = labels.to_vec();
            all.extend(
                extra
                    .iter()
                    .map(|&(k, v)| metrics::Label::from_static_parts(k, v)),
            );
            all
        };
        CacheSeries {
            hits: metrics::counter!(CACHE_READS, with(&[("result", "hit")])),
            misses: metrics::counter!(CACHE_READS, with(&[("result", "miss")])),
            duration: metrics::histogram!(
                OPERATION_DURATION,
                with(&[("outcome", "ok"), ("dynamite.cache", "hit")])
            ),
        }
    }
}

/// Whether an operation reads items (for [`ITEMS_READ`]).
#[cfg(feature = "metrics")]
fn reads_items(operation: Operation) -> bool {
    matches!(
        operation,
        Operation::GetItem
            | Operation::Query
            | Operation::Scan
            | Operation::BatchGetItem
            | Operation::TransactGetItems
    )
}

/// Whether an operation writes items (for [`ITEMS_WRITTEN`]).
#[cfg(feature = "metrics")]
fn writes_items(operation: Operation) -> bool {
    matches!(
        operation,
        Operation::PutItem
            | Operation::UpdateItem
            | Operation::DeleteItem
            | Operation::BatchWriteItem
            | Operation::TransactWriteItems
    )
}

impl Series {
    /// The series of requests labelled `labels`, registered with the recorder installed now
    /// (so install the recorder before making requests).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(labels: RequestLabels<'_>) -> Self {
        #[cfg(feature = "metrics")]
        {
            let mut ok = labels.labels();
            ok.push(outcome(None));
            let op = labels.operation;
            Series {
                attempt_ok: metrics::histogram!(ATTEMPT_DURATION, ok.clone()),
                duration_ok: metrics::histogram!(OPERATION_DURATION, ok.clone()),
                requests_ok: metrics::counter!(REQUESTS, ok),
                capacity: (reads_items(op) || writes_items(op))
                    .then(|| metrics::histogram!(CONSUMED_CAPACITY, labels.labels())),
                items_read: reads_items(op).then(|| metrics::counter!(ITEMS_READ, labels.labels())),
                items_written: writes_items(op)
                    .then(|| metrics::counter!(ITEMS_WRITTEN, labels.labels())),
                cache: std::sync::OnceLock::new(),
                labels: labels.labels(),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Series::default()
    }
}

/// Records one attempt that took `elapsed` and failed with `error` (`None`: answered).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn attempt(
    labels: RequestLabels<'_>,
    series: &Series,
    elapsed: std::time::Duration,
    error: Option<&Error>,
) {
    #[cfg(feature = "metrics")]
    {
        let Some(error) = error else {
            series.attempt_ok.record(elapsed.as_secs_f64());
            return;
        };
        let mut all = labels.labels();
        all.push(outcome(Some(error)));
        metrics::histogram!(ATTEMPT_DURATION, all).record(elapsed.as_secs_f64());
        if error.kind() == Some(ErrorKind::Throttled) {
            metrics::counter!(THROTTLES, labels.labels()).increment(1);
        }
    }
}

/// Records a retry for `reason`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn retry(labels: RequestLabels<'_>, reason: &str) {
    #[cfg(feature = "metrics")]
    {
        let mut all = labels.labels();
        all.push(metrics::Label::new("reason", reason.to_owned()));
        metrics::counter!(RETRIES, all).increment(1);
    }
}

/// Records a request that ended (with `error` if it failed).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn request(
    labels: RequestLabels<'_>,
    series: &Series,
    figures: &crate::stats::RequestFigures,
    error: Option<&Error>,
) {
    #[cfg(feature = "metrics")]
    {
        let elapsed = figures.elapsed;
        if let Some(capacity) = series.capacity.as_ref() {
            if figures.consumed_capacity > 0.0 {
                capacity.record(figures.consumed_capacity);
            }
        }
        if let Some(read) = series
            .items_read
            .as_ref()
            .filter(|_| figures.items_read > 0)
        {
            read.increment(figures.items_read);
        }
        if let Some(written) = &series.items_written {
            written.increment(figures.items_written);
        }
        let Some(error) = error else {
            series.duration_ok.record(elapsed.as_secs_f64());
            series.requests_ok.increment(1);
            return;
        };
        let mut all = labels.labels();
        all.push(outcome(Some(error)));
        metrics::histogram!(OPERATION_DURATION, all.clone()).record(elapsed.as_secs_f64());
        all.push(error_type(error));
        metrics::counter!(REQUESTS, all).increment(1);
    }
}

/// Records `n` items written by a batch's requests.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn items_written(series: &Series, n: u64) {
    #[cfg(feature = "metrics")]
    if let Some(written) = &series.items_written {
        written.increment(n);
    }
}

/// Records reads through the cache: `hits` answered by it (`elapsed`: the call's duration,
/// when it was timed), `misses` not.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn cache_reads(
    series: &Series,
    hits: u64,
    misses: u64,
    elapsed: Option<std::time::Duration>,
) {
    #[cfg(feature = "metrics")]
    {
        let cache = series
            .cache
            .get_or_init(|| CacheSeries::new(&series.labels));
        cache.hits.increment(hits);
        cache.misses.increment(misses);
        if let Some(elapsed) = elapsed.filter(|_| hits > 0) {
            cache.duration.record(elapsed.as_secs_f64());
        }
    }
}

/// A clock started when metrics are recorded (`None` without the feature: nothing to time).
pub(crate) fn clock() -> Option<std::time::Instant> {
    ENABLED.then(std::time::Instant::now)
}

/// The metrics of one cache layer, by its name; registered on the first count.
#[derive(Default)]
pub(crate) struct LayerMetrics {
    #[cfg(feature = "metrics")]
    name: Option<Box<str>>,
    #[cfg(feature = "metrics")]
    series: std::sync::OnceLock<LayerSeries>,
}

impl std::fmt::Debug for LayerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerMetrics").finish_non_exhaustive()
    }
}

impl LayerMetrics {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn named(name: String) -> Self {
        #[cfg(feature = "metrics")]
        return LayerMetrics {
            name: Some(name.into()),
            series: std::sync::OnceLock::new(),
        };
        #[cfg(not(feature = "metrics"))]
        LayerMetrics::default()
    }

    #[cfg(feature = "metrics")]
    fn series(&self) -> &LayerSeries {
        self.series
            .get_or_init(|| LayerSeries::new(self.name.as_deref().unwrap_or("custom")))
    }

    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn count(&self, event: LayerEvent) {
        #[cfg(feature = "metrics")]
        self.series().count(event);
    }

    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn pubsub_delay(&self, delay: std::time::Duration) {
        #[cfg(feature = "metrics")]
        {
            let series = self.series();
            let histogram = series
                .pubsub_delay
                .get_or_init(|| metrics::histogram!(PUBSUB_DELAY, vec![series.layer.clone()]));
            histogram.record(delay.as_secs_f64());
        }
    }
}

/// The series of one cache layer.
#[cfg(feature = "metrics")]
struct LayerSeries {
    hits: metrics::Counter,
    misses: metrics::Counter,
    skipped: metrics::Counter,
    corrupt: metrics::Counter,
    evictions: metrics::Counter,
    faults: metrics::Counter,
    invalidations: metrics::Counter,
    /// Shared layers only: registered on the first delay.
    pubsub_delay: std::sync::OnceLock<metrics::Histogram>,
    layer: metrics::Label,
}

/// What a layer's [`StatsCounter`](crate::cache::StatsCounter) counts.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum LayerEvent {
    Hit,
    Miss,
    Skipped,
    Corrupt,
    Eviction,
    Fault,
    Invalidation,
}

#[cfg(feature = "metrics")]
impl LayerSeries {
    fn new(layer: &str) -> Self {
        let layer = metrics::Label::new("dynamite.cache.layer", layer.to_owned());
        let lookups = |result: &'static str| {
            let labels = vec![
                layer.clone(),
                metrics::Label::from_static_parts("result", result),
            ];
            metrics::counter!(LAYER_LOOKUPS, labels)
        };
        let of_layer = || vec![layer.clone()];
        LayerSeries {
            hits: lookups("hit"),
            misses: lookups("miss"),
            skipped: lookups("skipped"),
            corrupt: lookups("corrupt"),
            evictions: metrics::counter!(LAYER_EVICTIONS, of_layer()),
            faults: metrics::counter!(LAYER_FAULTS, of_layer()),
            invalidations: metrics::counter!(LAYER_INVALIDATIONS, of_layer()),
            pubsub_delay: std::sync::OnceLock::new(),
            layer,
        }
    }

    fn count(&self, event: LayerEvent) {
        let counter = match event {
            LayerEvent::Hit => &self.hits,
            LayerEvent::Miss => &self.misses,
            LayerEvent::Skipped => &self.skipped,
            LayerEvent::Corrupt => &self.corrupt,
            LayerEvent::Eviction => &self.evictions,
            LayerEvent::Fault => &self.faults,
            LayerEvent::Invalidation => &self.invalidations,
        };
        counter.increment(1);
    }
}

/// Records a BatchGetItem that carried `gets` coalesced gets.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn coalesced_batch(labels: RequestLabels<'_>, gets: usize) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(COALESCED_BATCH_SIZE, labels.labels()).record(gets as f64);
}

/// Whether anything is recorded: the clock is read for metrics only when it is.
pub(crate) const ENABLED: bool = cfg!(feature = "metrics");
