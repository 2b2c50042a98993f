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
//! | [`COALESCED_BATCH_SIZE`] (`dynamite.coalesce.batch_size`) | histogram | gets per coalesced BatchGetItem | request labels |
//!
//! Request labels: `db.system.name` = `aws.dynamodb`, `db.operation.name` (`GetItem`, `Query`,
//! ...), `db.collection.name` (the table, with its prefix) and `dynamite.entity`. `outcome` is
//! `ok` or `error`; `error.type` is DynamoDB's error code when it answered with one
//! (`ResourceNotFoundException`, ...), else the failure's [kind](crate::ErrorKind)
//! (`OutcomeUnknown`, `NotSent`, ...) or `other`.
//!
//! Not recorded yet: the cache layers' hits and misses (see [`Client::cache_stats`](crate::Client::cache_stats)),
//! and a logical call's own latency when it is answered from the cache.

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
/// operation, table and entity (the failure series, rarer, are looked up when they happen).
/// Recording into a registered series allocates nothing.
#[cfg_attr(not(feature = "metrics"), derive(Default))]
pub(crate) struct Series {
    #[cfg(feature = "metrics")]
    table: Box<str>,
    #[cfg(feature = "metrics")]
    attempt_ok: metrics::Histogram,
    #[cfg(feature = "metrics")]
    duration_ok: metrics::Histogram,
    #[cfg(feature = "metrics")]
    requests_ok: metrics::Counter,
    #[cfg(feature = "metrics")]
    capacity: metrics::Histogram,
}

#[cfg(feature = "metrics")]
impl Series {
    fn register(labels: RequestLabels<'_>) -> Self {
        let mut ok = labels.labels();
        ok.push(outcome(None));
        Series {
            table: labels.table.into(),
            attempt_ok: metrics::histogram!(ATTEMPT_DURATION, ok.clone()),
            duration_ok: metrics::histogram!(OPERATION_DURATION, ok.clone()),
            requests_ok: metrics::counter!(REQUESTS, ok),
            capacity: metrics::histogram!(CONSUMED_CAPACITY, labels.labels()),
        }
    }
}

/// The series of requests labelled `labels`, registered with the recorder installed when the
/// first of them was made (so install the recorder before making requests).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn series(labels: RequestLabels<'_>) -> std::sync::Arc<Series> {
    #[cfg(feature = "metrics")]
    {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex, OnceLock, PoisonError};
        type Registered = HashMap<(Operation, &'static str), Vec<Arc<Series>>>;
        static REGISTERED: OnceLock<Mutex<Registered>> = OnceLock::new();
        let mut registered = REGISTERED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let of_entity = registered
            .entry((labels.operation, labels.entity))
            .or_default();
        if let Some(series) = of_entity.iter().find(|s| &*s.table == labels.table) {
            return Arc::clone(series);
        }
        let series = Arc::new(Series::register(labels));
        of_entity.push(Arc::clone(&series));
        series
    }
    #[cfg(not(feature = "metrics"))]
    std::sync::Arc::default()
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

/// Records a request that ended after `elapsed` (with `error` if it failed), having consumed
/// `consumed_capacity` units.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn request(
    labels: RequestLabels<'_>,
    series: &Series,
    elapsed: std::time::Duration,
    consumed_capacity: f64,
    error: Option<&Error>,
) {
    #[cfg(feature = "metrics")]
    {
        if consumed_capacity > 0.0 {
            series.capacity.record(consumed_capacity);
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

/// Records a BatchGetItem that carried `gets` coalesced gets.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn coalesced_batch(labels: RequestLabels<'_>, gets: usize) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(COALESCED_BATCH_SIZE, labels.labels()).record(gets as f64);
}

/// Whether anything is recorded: the clock is read for metrics only when it is.
pub(crate) const ENABLED: bool = cfg!(feature = "metrics");
