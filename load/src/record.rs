//! What a run measured: latency histograms (overall, per operation, per second) and errors.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::workload::OpKind;

/// Highest latency tracked exactly, in µs (one hour); longer ones count as one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in µs, 3 significant figures.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

/// A histogram for one second of the timeline: 2 significant figures (1%, plenty for a chart)
/// and 32-bit counts, about 13 KB, so that a long run's timeline stays small.
fn new_second_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("constant bounds are valid")
}

/// One second of the run: latency of the operations that ended in it, and how many failed.
#[derive(Debug, Clone)]
pub(crate) struct Second {
    /// Latency of every operation that ended in this second, failed ones included.
    pub(crate) latency: Histogram<u32>,
    /// Operations that failed in this second.
    pub(crate) errors: u64,
}

/// Failures of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorTally {
    /// How many.
    pub(crate) count: u64,
    /// The first one's message.
    pub(crate) example: String,
}

/// Every measurement of a run (or of its warm-up). Shared by the workers behind a mutex;
/// recording takes well under a microsecond.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    /// Latency of every operation, failed ones included.
    pub(crate) total: Histogram<u64>,
    /// Latency by kind of operation.
    pub(crate) by_op: BTreeMap<OpKind, Histogram<u64>>,
    /// Per second of the run, by the second each operation ended in.
    pub(crate) timeline: Vec<Second>,
    /// Failures by kind (see [`error_label`]).
    pub(crate) errors: BTreeMap<String, ErrorTally>,
    /// Operations that failed.
    pub(crate) failed: u64,
}

impl Recorder {
    /// An empty recorder for a run of `duration` (the timeline has one entry per started
    /// second; operations ending after it count in the last one).
    pub(crate) fn new(duration: Duration) -> Self {
        let seconds = duration.as_secs_f64().ceil().max(1.0) as usize;
        Recorder {
            total: new_histogram(),
            by_op: BTreeMap::new(),
            timeline: (0..seconds)
                .map(|_| Second {
                    latency: new_second_histogram(),
                    errors: 0,
                })
                .collect(),
            errors: BTreeMap::new(),
            failed: 0,
        }
    }

    /// Records an operation of kind `op` that took `latency` and ended `ended` after the run
    /// started, and its error if it failed.
    pub(crate) fn record(
        &mut self,
        op: OpKind,
        latency: Duration,
        ended: Duration,
        error: Option<&dynamite::Error>,
    ) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        self.total.saturating_record(us);
        self.by_op
            .entry(op)
            .or_insert_with(new_histogram)
            .saturating_record(us);
        let last = self.timeline.len() - 1;
        let second = &mut self.timeline[(ended.as_secs() as usize).min(last)];
        second.latency.saturating_record(us);
        if let Some(error) = error {
            second.errors += 1;
            self.failed += 1;
            self.count_error(error_label(error), || error.to_string());
        }
    }

    /// Counts one failure labelled `label`; `message` is kept for the first.
    fn count_error(&mut self, label: &str, message: impl FnOnce() -> String) {
        self.errors
            .entry(label.to_owned())
            .and_modify(|t| t.count += 1)
            .or_insert_with(|| ErrorTally {
                count: 1,
                example: message(),
            });
    }

    /// Operations recorded.
    pub(crate) fn ops(&self) -> u64 {
        self.total.len()
    }
}

/// The label an error is counted under: its request-failure kind
/// ([`dynamite::ErrorKind::name`]: `Throttled`, `ServerError`, `NotSent`, `OutcomeUnknown`,
/// `Client`), or for errors that are not request failures, the variant's name.
pub(crate) fn error_label(error: &dynamite::Error) -> &'static str {
    use dynamite::Error as E;
    if let Some(kind) = error.kind() {
        return kind.name();
    }
    match error {
        E::Validation { .. } => "Validation",
        E::Conversion { .. } => "Conversion",
        E::ConditionFailed { .. } => "ConditionFailed",
        E::NotFound { .. } => "NotFound",
        E::VersionConflict { .. } => "VersionConflict",
        E::Timeout { .. } => "Timeout",
        E::ScanRequired { .. } => "ScanRequired",
        E::InvalidQuery { .. } => "InvalidQuery",
        E::InvalidCursor { .. } => "InvalidCursor",
        E::Unprocessed { .. } => "Unprocessed",
        E::UnprocessedKeys { .. } => "UnprocessedKeys",
        E::TransactionCanceled { .. } => "TransactionCanceled",
        E::Cache(_) => "Cache",
        E::Config(_) => "Config",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_land_in_the_second_they_ended_in() {
        let mut r = Recorder::new(Duration::from_millis(2500));
        assert_eq!(r.timeline.len(), 3);
        let ms = Duration::from_millis;
        r.record(OpKind::Get, ms(2), ms(10), None);
        r.record(OpKind::Get, ms(4), ms(999), None);
        r.record(OpKind::Put, ms(8), ms(2000), None);
        r.record(OpKind::Put, ms(16), ms(9000), None); // after the end: the last second
        assert_eq!(r.ops(), 4);
        let lens: Vec<u64> = r.timeline.iter().map(|s| s.latency.len()).collect();
        assert_eq!(lens, [2, 0, 2]);
        assert_eq!(r.by_op[&OpKind::Get].len(), 2);
        assert_eq!(r.by_op[&OpKind::Put].max(), r.total.max());
    }

    #[test]
    fn errors_are_counted_by_label_with_the_first_message() {
        let mut r = Recorder::new(Duration::from_secs(1));
        let e = dynamite::Error::Config("first".into());
        r.record(
            OpKind::Get,
            Duration::from_millis(1),
            Duration::ZERO,
            Some(&e),
        );
        let e = dynamite::Error::Config("second".into());
        r.record(
            OpKind::Get,
            Duration::from_millis(1),
            Duration::ZERO,
            Some(&e),
        );
        assert_eq!(r.failed, 2);
        assert_eq!(r.timeline[0].errors, 2);
        assert_eq!(
            r.errors["Config"],
            ErrorTally {
                count: 2,
                example: "configuration: first".into()
            }
        );
    }

    #[test]
    fn latencies_are_clamped_to_the_histogram_range() {
        let mut r = Recorder::new(Duration::from_secs(1));
        r.record(OpKind::Get, Duration::ZERO, Duration::ZERO, None);
        r.record(OpKind::Get, Duration::from_secs(7200), Duration::ZERO, None);
        assert_eq!(r.total.min(), 1);
        assert!(r.total.max() >= MAX_LATENCY_US);
    }
}
