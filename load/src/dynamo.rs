//! The client's own per-request statistics ([`Client::stats`]): requests to DynamoDB by
//! operation, their latency, and the capacity they consumed.

use std::time::Duration;

use dynamite::Client;

/// One DynamoDB operation's requests during the measured run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RequestRow {
    /// DynamoDB's name of the operation (`GetItem`).
    pub(crate) operation: String,
    /// Requests made.
    pub(crate) requests: u64,
    /// Requests that failed.
    pub(crate) errors: u64,
    /// Retries sent.
    pub(crate) retries: u64,
    /// Attempts refused by throttling.
    pub(crate) throttles: u64,
    /// Reads answered by the client's cache, without a request.
    pub(crate) cache_hits: u64,
    /// Median latency of a request, retries included.
    pub(crate) p50: Duration,
    /// 99th percentile latency of a request, retries included.
    pub(crate) p99: Duration,
    /// Capacity units consumed.
    pub(crate) capacity: f64,
}

/// What the client's statistics said, for one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RequestStats {
    /// Capacity units consumed by every request of the client.
    pub(crate) total_capacity: f64,
    /// Per operation on the run's table.
    pub(crate) rows: Vec<RequestRow>,
}

/// The client's statistics now: the capacity of every request, and a row per operation on
/// the table `table` (with prefix).
pub(crate) fn snapshot(db: &Client, table: &str) -> RequestStats {
    let stats = db.stats();
    let rows = stats
        .operations
        .iter()
        .filter(|op| op.table == table)
        .map(|op| RequestRow {
            operation: op.operation.name().to_owned(),
            requests: op.requests,
            errors: op.errors,
            retries: op.retries,
            throttles: op.throttles,
            cache_hits: op.cache_hits,
            p50: op.latency.p50,
            p99: op.latency.p99,
            capacity: op.consumed_capacity,
        })
        .collect();
    RequestStats {
        total_capacity: stats.total_consumed_capacity(),
        rows,
    }
}

/// The requests made between two snapshots: counters and capacity are differences; the
/// latency percentiles are those of `after` (the run resets the client's statistics before
/// its first snapshot, so they cover the measured run).
pub(crate) fn between(before: &RequestStats, after: &RequestStats) -> RequestStats {
    let rows = after
        .rows
        .iter()
        .map(|a| {
            let b = before.rows.iter().find(|b| b.operation == a.operation);
            let sub = |f: fn(&RequestRow) -> u64| f(a).saturating_sub(b.map_or(0, f));
            RequestRow {
                operation: a.operation.clone(),
                requests: sub(|r| r.requests),
                errors: sub(|r| r.errors),
                retries: sub(|r| r.retries),
                throttles: sub(|r| r.throttles),
                cache_hits: sub(|r| r.cache_hits),
                p50: a.p50,
                p99: a.p99,
                capacity: a.capacity - b.map_or(0.0, |b| b.capacity),
            }
        })
        .filter(|r| r.requests > 0 || r.cache_hits > 0)
        .collect();
    RequestStats {
        total_capacity: after.total_capacity - before.total_capacity,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(operation: &str, requests: u64, capacity: f64) -> RequestRow {
        RequestRow {
            operation: operation.into(),
            requests,
            errors: requests / 10,
            retries: 1,
            throttles: 0,
            cache_hits: requests / 2,
            p50: Duration::from_millis(1),
            p99: Duration::from_millis(requests),
            capacity,
        }
    }

    #[test]
    fn the_run_is_the_difference_of_two_snapshots() {
        let before = RequestStats {
            total_capacity: 10.0,
            rows: vec![row("GetItem", 100, 50.0), row("DescribeTable", 1, 0.0)],
        };
        let after = RequestStats {
            total_capacity: 110.0,
            rows: vec![
                row("GetItem", 300, 140.0),
                row("PutItem", 20, 20.0),
                row("DescribeTable", 1, 0.0),
            ],
        };
        let run = between(&before, &after);
        assert_eq!(run.total_capacity, 100.0);
        assert_eq!(
            run.rows.len(),
            2,
            "operations without requests are left out"
        );
        assert_eq!(run.rows[0].operation, "GetItem");
        assert_eq!(run.rows[0].requests, 200);
        assert_eq!(run.rows[0].errors, 20);
        assert_eq!(run.rows[0].retries, 0);
        assert_eq!(run.rows[0].cache_hits, 100);
        assert_eq!(run.rows[0].capacity, 90.0);
        assert_eq!(run.rows[0].p99, Duration::from_millis(300));
        assert_eq!(run.rows[1], row("PutItem", 20, 20.0));
    }
}
