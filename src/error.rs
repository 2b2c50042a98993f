//! The one error type of the crate.

use std::error::Error as StdError;
use std::fmt;

use crate::Item;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed source error.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in dynamite.
///
/// Variants say what happened; where another error caused it, that error is the
/// [`source()`](StdError::source) and is not repeated in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input that DynamoDB would reject (or that would lose data), caught before any request.
    #[error("invalid {entity}.{attribute}: {reason}")]
    Validation {
        /// The entity (or table) the value belongs to.
        entity: String,
        /// The attribute (or argument) that is wrong.
        attribute: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An item read from DynamoDB does not match the entity.
    #[error("cannot read {entity}.{attribute} from the stored item: {reason}")]
    Conversion {
        /// The entity being read.
        entity: String,
        /// The attribute that could not be read.
        attribute: String,
        /// Why.
        reason: String,
    },

    /// A condition expression of a write was not met.
    #[error("condition failed: {operation} on table {table}")]
    ConditionFailed {
        /// The operation, e.g. `PutItem`.
        operation: &'static str,
        /// The table, with its prefix.
        table: String,
        /// The item as it was, when DynamoDB returned it.
        current: Option<Box<Item>>,
    },

    /// Optimistic locking: the stored version is not the one the write expected.
    #[error("version conflict on table {table}: expected version {expected:?}, found {actual:?}")]
    VersionConflict {
        /// The table, with its prefix.
        table: String,
        /// The version the write was based on (`None`: the item was expected not to exist).
        expected: Option<u64>,
        /// The stored version, when known (`None`: no item, or no version attribute).
        actual: Option<u64>,
    },

    /// A request to DynamoDB failed; the SDK's error is the source.
    #[error("{operation} on table {table} failed")]
    Sdk {
        /// The operation, e.g. `GetItem`.
        operation: &'static str,
        /// The table, with its prefix.
        table: String,
        /// The service or transport error code, when there is one (e.g. `ResourceNotFoundException`).
        code: Option<String>,
        /// The HTTP status of the response, when there was one.
        status: Option<u16>,
        /// The SDK error.
        #[source]
        source: BoxError,
    },

    /// A table did not reach the expected state in time.
    #[error("table {table} did not become {state} within {waited:?}")]
    Timeout {
        /// The table, with its prefix.
        table: String,
        /// The state waited for.
        state: &'static str,
        /// How long it waited.
        waited: std::time::Duration,
    },

    /// A find that would need a scan, when no scan was asked for. `keys` names the attributes
    /// whose equality condition would let a query serve it.
    #[error("{entity}: no key condition covers this find, and scans were not asked for; an equality condition on one of {keys} would serve it (or use scan() / allow_scan())")]
    ScanRequired {
        /// The entity queried.
        entity: &'static str,
        /// The keys that would serve, with their table or index.
        keys: String,
    },

    /// A find that cannot run as asked (unknown index, consistent read on a global index, an
    /// index whose key the conditions do not cover, ...).
    #[error("invalid query on {entity}: {reason}")]
    InvalidQuery {
        /// The entity queried.
        entity: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// A cursor that is malformed, tampered with, or from another query.
    #[error("invalid cursor: {reason}")]
    InvalidCursor {
        /// What is wrong with it.
        reason: String,
    },

    /// A batch write ran out of retries (or hit an error that retrying cannot fix) before
    /// every operation was applied. `operations` are exactly the ones not applied (a request
    /// that failed in transit may have been applied anyway; puts and deletes are safe to send
    /// again); pass them to [`BatchWrite::resume`](crate::ops::BatchWrite::resume) to try again.
    #[error("batch write incomplete: {} operation(s) not applied, {applied} applied", operations.len())]
    Unprocessed {
        /// The operations not applied.
        operations: Vec<crate::ops::WriteOp>,
        /// How many operations were applied.
        applied: usize,
        /// The error that stopped the batch, when it was not only unprocessed items.
        #[source]
        cause: Option<Box<Error>>,
    },

    /// A batch read ran out of retries before every key was read. `keys` are the keys not
    /// read, per table.
    #[error("batch get incomplete: {} key(s) not read", keys.len())]
    UnprocessedKeys {
        /// `(table, key)` of every key not read.
        keys: Vec<(String, Item)>,
        /// The error that stopped the batch, when it was not only unprocessed keys.
        #[source]
        cause: Option<Box<Error>>,
    },

    /// A transaction was cancelled; `reasons` says which operations caused it and why.
    #[error("transaction cancelled: {}", reasons.iter().filter(|r| r.code.as_deref().is_some_and(|c| c != "None")).map(|r| format!("operation {} ({} on {}): {}", r.index, r.operation, r.table, r.code.as_deref().unwrap_or("?"))).collect::<Vec<_>>().join("; "))]
    TransactionCanceled {
        /// One entry per operation of the transaction, in order.
        reasons: Vec<crate::ops::CancellationReason>,
    },

    /// Client configuration is incomplete or invalid.
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// A validation error for `entity.attribute`.
    pub(crate) fn validation(
        entity: impl Into<String>,
        attribute: impl Into<String>,
        reason: impl fmt::Display,
    ) -> Self {
        Error::Validation {
            entity: entity.into(),
            attribute: attribute.into(),
            reason: reason.to_string(),
        }
    }

    /// The DynamoDB error code of a service error (e.g. `ResourceNotFoundException`).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Sdk { code, .. } => code.as_deref(),
            Error::ConditionFailed { .. } => Some("ConditionalCheckFailedException"),
            _ => None,
        }
    }

    /// `true` for [`Error::ConditionFailed`] and [`Error::VersionConflict`].
    pub fn is_condition_failed(&self) -> bool {
        matches!(
            self,
            Error::ConditionFailed { .. } | Error::VersionConflict { .. }
        )
    }
}
