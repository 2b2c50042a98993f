//! The batch engines shared by every operation that reads or writes many items: chunking to
//! DynamoDB's limits, bounded concurrency, remainders (unprocessed keys and items) sent again by
//! the pipeline, and stats. `ops::batch_get` and `ops::batch_write` are the builders over them;
//! finds use the read engine for the table reads that follow an index read, and coalesced gets
//! ([`Coalescer`]) share BatchGetItem requests through it.

mod coalesce;
mod read;
mod write;

pub(crate) use self::coalesce::{CoalescedGet, Coalescer};

pub(crate) use self::read::{table_read, table_read_owned, TableRead};
pub(crate) use self::write::{write_chunk, ChunkResult};

/// DynamoDB's limit of keys per BatchGetItem request.
pub(crate) const MAX_KEYS_PER_REQUEST: usize = 100;
/// DynamoDB's limit of operations per BatchWriteItem request.
pub(crate) const MAX_WRITES_PER_REQUEST: usize = 25;
/// Requests in flight at once by default.
pub(crate) const DEFAULT_CONCURRENCY: usize = 8;

/// Counts of a batch operation, for reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Requests sent (each BatchGetItem / BatchWriteItem call, retries included).
    pub requests: usize,
    /// Rounds that re-sent unprocessed keys or items.
    pub unprocessed_retries: usize,
}

/// `err` with `more` items added to what it says was read, when it is an
/// [`Error::UnprocessedKeys`](crate::Error::UnprocessedKeys) (other errors are returned as they
/// are): for a caller that was handed some items before the read failed.
pub(crate) fn with_read_items(
    err: crate::Error,
    more: impl IntoIterator<Item = (String, crate::Item)>,
) -> crate::Error {
    match err {
        crate::Error::UnprocessedKeys {
            keys,
            mut read,
            cause,
        } => {
            read.extend(more);
            crate::Error::UnprocessedKeys { keys, read, cause }
        }
        other => other,
    }
}
