//! The one error type of the crate.

use std::error::Error as StdError;
use std::fmt;

use crate::{Item, Operation};

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
        operation: Operation,
        /// The table, with its prefix.
        table: String,
        /// The item as it was, when DynamoDB returned it.
        current: Option<Box<Item>>,
    },

    /// An update of an item that does not exist (`update()` changes existing items only;
    /// `upsert()` creates them).
    #[error(
        "{operation} on table {table}: no item with key {}",
        crate::value::display_item(key)
    )]
    NotFound {
        /// The operation.
        operation: Operation,
        /// The table, with its prefix.
        table: String,
        /// The key looked for.
        key: Item,
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

    /// A request to DynamoDB failed; the SDK's error is the source. The message carries
    /// DynamoDB's own error code and message when the service answered.
    #[error("{operation} on table {table} failed: {}", sdk_reason(*kind, code.as_deref(), message.as_deref()))]
    Sdk {
        /// The operation.
        operation: Operation,
        /// The table, with its prefix.
        table: String,
        /// What kind of failure it was, from the SDK error's variant and the service's code.
        kind: ErrorKind,
        /// DynamoDB's error code, when the service answered with one (e.g.
        /// `ResourceNotFoundException`).
        code: Option<String>,
        /// DynamoDB's error message, when the service answered with one.
        message: Option<String>,
        /// The HTTP status of the response, when there was one.
        status: Option<u16>,
        /// The SDK error.
        #[source]
        source: BoxError,
    },

    /// A write that may or may not have been applied: an answer was lost (connection closed or
    /// timed out after sending, an unreadable response, HTTP 500), and either sending it again
    /// could apply it twice or misreport it (so dynamite did not), or the attempts that followed
    /// could not settle it. Read the item to learn what happened, or use idempotent mode
    /// (`.idempotent(true)`), which retries safely.
    #[error("{operation} on table {table}{}: the outcome is unknown (an answer was lost, so the request may have been applied)", key_part(key))]
    OutcomeUnknown {
        /// The operation.
        operation: Operation,
        /// The table, with its prefix.
        table: String,
        /// The key of the item written.
        key: Item,
        /// The failure that left the outcome unknown.
        #[source]
        source: Cause,
    },

    /// An existing table differs from what its entity declares (found by
    /// [`Entity::ensure_table`](crate::Entity::ensure_table)): each difference is listed.
    /// Missing global indexes can be added with
    /// [`CreateTable::migrate`](crate::table::CreateTable::migrate).
    #[error(
        "table {table} does not match entity {entity}: {}",
        describe_drift(differences)
    )]
    SchemaDrift {
        /// The table, with its prefix.
        table: String,
        /// The entity.
        entity: &'static str,
        /// Every difference.
        differences: Vec<crate::table::SchemaDrift>,
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

    /// A cursor that is malformed, altered, forged (its key does not fit the query's key
    /// schema), from another query, empty, or encrypted when the client has no cursor key (or
    /// plain when it has one). Always raised before any request.
    #[error("invalid cursor: {reason}")]
    InvalidCursor {
        /// What is wrong with it.
        reason: String,
    },

    /// A batch write ran out of retries (or hit an error that retrying cannot fix) before
    /// every operation was applied. `operations` were certainly not applied; `unknown` were in
    /// a request whose answer was lost, so they may have been. Pass `operations` (and `unknown`
    /// too, if you choose: puts and deletes of whole items leave the same state when applied
    /// twice) to [`BatchWrite::resume`](crate::ops::BatchWrite::resume) to try again.
    #[error("batch write incomplete: {} operation(s) not applied, {} with an unknown outcome, {applied} applied", operations.len(), unknown.len())]
    Unprocessed {
        /// The operations certainly not applied.
        operations: Vec<crate::write::WriteOp>,
        /// The operations that may or may not have been applied.
        unknown: Vec<crate::write::WriteOp>,
        /// How many operations were applied.
        applied: usize,
        /// The error that stopped the batch, when it was not only unprocessed items.
        #[source]
        cause: Option<Cause>,
    },

    /// A batch read ran out of retries (or hit an error) before every key was read. `keys` are
    /// exactly the keys not read; `read` every item that was read (from DynamoDB or the cache),
    /// so nothing already read is lost. `batch_get` decodes items as each request is answered:
    /// those it had decoded come back encoded again from the entity.
    #[error("batch get incomplete: {} key(s) not read, {} item(s) read", keys.len(), read.len())]
    UnprocessedKeys {
        /// `(table, key)` of every key not read.
        keys: Vec<(String, Item)>,
        /// `(table, item)` of every item read (decode them with `E::from_item`).
        read: Vec<(String, Item)>,
        /// The error that stopped the batch, when it was not only unprocessed keys.
        #[source]
        cause: Option<Cause>,
    },

    /// A transaction was cancelled; `reasons` says which operations caused it and why.
    #[error("transaction cancelled: {}", reasons.iter().filter(|r| r.code.as_deref().is_some_and(|c| c != "None")).map(|r| format!("operation {} ({} on {}): {}", r.index, r.operation, r.table, r.code.as_deref().unwrap_or("?"))).collect::<Vec<_>>().join("; "))]
    TransactionCanceled {
        /// One entry per operation of the transaction, in order.
        reasons: Vec<crate::write::CancellationReason>,
    },

    /// A cache layer could not be set up (e.g. `RedisLayer::connect`). Cache faults while
    /// serving requests never fail them; they are counted and logged instead.
    #[error("cache layer error")]
    Cache(#[from] CacheError),

    /// Client configuration is incomplete or invalid.
    #[error("configuration: {0}")]
    Config(String),

    /// A stream consumer asked for records its shard no longer holds: DynamoDB Streams keeps
    /// records for 24 hours, and the checkpoint (or iterator) pointed before what is left. The
    /// records in between are lost to this consumer; start it again (from `TRIM_HORIZON`, or
    /// after rebuilding what it maintains) knowing that. The DynamoDB Streams error is the
    /// source.
    #[error("stream of table {table}: shard {shard} was trimmed past {}: changes in between are no longer in the stream", position.as_deref().unwrap_or("its start"))]
    StreamTrimmed {
        /// The table, with its prefix.
        table: String,
        /// The shard read.
        shard: String,
        /// The last sequence number processed in the shard (`None`: none was).
        position: Option<String>,
        /// The service's error.
        #[source]
        source: Cause,
    },

    /// A stream consumer's checkpoint store failed to load or save a checkpoint; the store's
    /// error is the source.
    #[error("checkpoint store failed for shard {shard} of stream {stream}")]
    Checkpoint {
        /// The stream's ARN.
        stream: String,
        /// The shard.
        shard: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },

    /// The handler given to a stream consumer's `run` failed on a batch (whose checkpoint was
    /// therefore not saved); the handler's error is the source.
    #[error("stream handler failed on a batch of shard {shard} (its checkpoint was not saved)")]
    StreamHandler {
        /// The shard the batch came from.
        shard: String,
        /// The handler's error.
        #[source]
        source: BoxError,
    },
}

/// The [`Error`] behind another one (the failure that stopped a batch, or left a write's outcome
/// unknown). It dereferences to that error, and is the outer error's
/// [`source()`](StdError::source) as the `Error` itself, so
/// `source().downcast_ref::<dynamite::Error>()` finds it.
#[derive(Debug)]
pub struct Cause(Box<Error>);

impl Cause {
    /// The error.
    pub fn into_inner(self) -> Error {
        *self.0
    }
}

impl std::ops::Deref for Cause {
    type Target = Error;

    fn deref(&self) -> &Error {
        &self.0
    }
}

impl From<Error> for Cause {
    fn from(error: Error) -> Self {
        Cause(Box::new(error))
    }
}

/// What kind of failure a request to DynamoDB met. Read from the SDK error's variant and the
/// service's error code (never from message text), and the basis of every retry decision.
///
/// | kind | applied? | retried |
/// |---|---|---|
/// | `Throttled` | no | yes |
/// | `ServerError` | no | yes |
/// | `NotSent` | no | yes |
/// | `OutcomeUnknown` | maybe | only requests that are safe to repeat |
/// | `Client` | no | no |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// DynamoDB refused the request to slow the caller down (`ThrottlingException`,
    /// `ProvisionedThroughputExceededException`, `RequestLimitExceeded`). Nothing was applied.
    Throttled,
    /// DynamoDB refused the request for a passing server-side reason without applying it
    /// (HTTP 503, `TransactionInProgressException`).
    ServerError,
    /// The request never reached DynamoDB (connection refused, name resolution failed).
    NotSent,
    /// The request may have reached DynamoDB and been applied: the connection was lost or
    /// timed out after sending, the response could not be read, or DynamoDB answered HTTP 500
    /// (`InternalServerError`), after which the request may or may not have succeeded.
    OutcomeUnknown,
    /// Retrying cannot help: invalid request, access denied, missing table, failed condition,
    /// or a request the SDK could not build.
    Client,
}

impl ErrorKind {
    /// `true` for failures that may pass on another attempt (all but [`ErrorKind::Client`]).
    /// Whether a request is actually sent again also depends on whether it is safe to repeat.
    pub const fn is_transient(self) -> bool {
        !matches!(self, ErrorKind::Client)
    }

    /// The variant's name (`"OutcomeUnknown"`), for logs and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "Throttled",
            ErrorKind::ServerError => "ServerError",
            ErrorKind::NotSent => "NotSent",
            ErrorKind::OutcomeUnknown => "OutcomeUnknown",
            ErrorKind::Client => "Client",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::ServerError => "server error",
            ErrorKind::NotSent => "not sent: DynamoDB could not be reached",
            ErrorKind::OutcomeUnknown => {
                "the answer was lost: connection closed, timed out or unreadable"
            }
            ErrorKind::Client => "request refused",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The differences, `; `-separated, and what to do about them.
fn describe_drift(differences: &[crate::table::SchemaDrift]) -> String {
    let listed: Vec<String> = differences.iter().map(ToString::to_string).collect();
    let advice = if differences
        .iter()
        .all(crate::table::SchemaDrift::is_migratable)
    {
        "ensure_table().migrate() adds missing global indexes"
    } else {
        "change the entity, or migrate the table by hand (keys, local indexes and projections \
         cannot be changed in place)"
    };
    format!("{} ({advice})", listed.join("; "))
}

/// `, key {id: "u1"}` for a key, nothing for none (a transaction of several items).
fn key_part(key: &Item) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(", key {}", crate::value::display_item(key))
    }
}

/// The reason part of [`Error::Sdk`]'s message: DynamoDB's code and message, else the kind.
fn sdk_reason(kind: ErrorKind, code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(code), Some(message)) if !message.is_empty() => format!("{code}: {message}"),
        (Some(code), _) => code.to_owned(),
        (None, _) => kind.describe().to_owned(),
    }
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

    /// The DynamoDB error code of a service error (e.g. `ResourceNotFoundException`); for a
    /// batch or a write stopped by another error, that error's code.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Sdk { code, .. } => code.as_deref(),
            Error::ConditionFailed { .. } => Some("ConditionalCheckFailedException"),
            Error::OutcomeUnknown { source, .. } => source.code(),
            Error::Unprocessed { cause, .. } | Error::UnprocessedKeys { cause, .. } => {
                cause.as_deref().and_then(Error::code)
            }
            _ => None,
        }
    }

    /// The kind of request failure, for [`Error::Sdk`] and [`Error::OutcomeUnknown`]; for an
    /// incomplete batch ([`Error::Unprocessed`], [`Error::UnprocessedKeys`]), the kind of the
    /// error that stopped it, or [`ErrorKind::Throttled`] when DynamoDB left items unprocessed
    /// to the end (its way of throttling a batch). `None` for errors that are not request
    /// failures (validation, conversion, conditions, ...).
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Sdk { kind, .. } => Some(*kind),
            Error::OutcomeUnknown { .. } => Some(ErrorKind::OutcomeUnknown),
            Error::Unprocessed { cause, .. } | Error::UnprocessedKeys { cause, .. } => {
                match cause.as_deref() {
                    Some(cause) => cause.kind(),
                    None => Some(ErrorKind::Throttled),
                }
            }
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

    /// `true` for [`Error::NotFound`]: `update()` of an item that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// `true` for [`Error::VersionConflict`].
    pub fn is_version_conflict(&self) -> bool {
        matches!(self, Error::VersionConflict { .. })
    }

    /// `true` for [`Error::OutcomeUnknown`]: a write that may or may not have been applied.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown { .. })
    }

    /// `true` when DynamoDB throttled the request (and retries did not get through).
    pub fn is_throttled(&self) -> bool {
        self.kind() == Some(ErrorKind::Throttled)
    }

    /// `true` for [`Error::Validation`]: bad input, refused before sending.
    pub fn is_validation(&self) -> bool {
        matches!(self, Error::Validation { .. })
    }

    /// `true` for [`Error::SchemaDrift`]: an existing table differs from its entity.
    pub fn is_schema_drift(&self) -> bool {
        matches!(self, Error::SchemaDrift { .. })
    }

    /// `true` for [`Error::TransactionCanceled`].
    pub fn is_transaction_canceled(&self) -> bool {
        matches!(self, Error::TransactionCanceled { .. })
    }

    /// `true` for [`Error::StreamTrimmed`]: a stream consumer lost records to the stream's
    /// retention.
    pub fn is_stream_trimmed(&self) -> bool {
        matches!(self, Error::StreamTrimmed { .. })
    }

    /// `true` for [`Error::Checkpoint`]: a stream consumer's checkpoint store failed.
    pub fn is_checkpoint(&self) -> bool {
        matches!(self, Error::Checkpoint { .. })
    }

    /// `true` for [`Error::StreamHandler`]: the handler of a stream consumer failed.
    pub fn is_stream_handler(&self) -> bool {
        matches!(self, Error::StreamHandler { .. })
    }

    /// `true` when DynamoDB answered that the table (or index) does not exist.
    pub fn is_resource_not_found(&self) -> bool {
        self.code() == Some("ResourceNotFoundException")
    }

    /// `true` when DynamoDB answered that the table is being created, updated or deleted, or
    /// exists already (`ResourceInUseException`).
    pub fn is_resource_in_use(&self) -> bool {
        self.code() == Some("ResourceInUseException")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_causes_downcast_to_the_dynamite_error() {
        let cause = Error::Config("x".into());
        let err = Error::UnprocessedKeys {
            keys: Vec::new(),
            read: Vec::new(),
            cause: Some(cause.into()),
        };
        let source = StdError::source(&err).expect("a source");
        assert!(source.downcast_ref::<Error>().is_some(), "{source:?}");
        assert_eq!(err.kind(), None, "stopped by a configuration error");
    }

    #[test]
    fn an_incomplete_batch_has_the_kind_of_what_stopped_it() {
        let throttled = Error::Unprocessed {
            operations: Vec::new(),
            unknown: Vec::new(),
            applied: 0,
            cause: None,
        };
        assert_eq!(throttled.kind(), Some(ErrorKind::Throttled));
        let lost = Error::UnprocessedKeys {
            keys: Vec::new(),
            read: Vec::new(),
            cause: Some(
                Error::Sdk {
                    operation: crate::Operation::BatchGetItem,
                    table: "t".into(),
                    kind: ErrorKind::OutcomeUnknown,
                    code: None,
                    message: None,
                    status: None,
                    source: "connection reset".into(),
                }
                .into(),
            ),
        };
        assert_eq!(lost.kind(), Some(ErrorKind::OutcomeUnknown));
    }
}

/// A cache layer failed (the request goes on to DynamoDB).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The backend did not answer in time.
    #[error("cache layer {layer} timed out after {after:?}")]
    Timeout {
        /// The layer's name.
        layer: String,
        /// The timeout.
        after: std::time::Duration,
    },
    /// The layer did not look (it cannot vouch for its freshness now, or was configured wrong).
    #[error("cache layer {layer} unavailable: {reason}")]
    Unavailable {
        /// The layer's name.
        layer: String,
        /// Why.
        reason: &'static str,
    },
    /// The backend failed.
    #[error("cache layer {layer} failed")]
    Backend {
        /// The layer's name.
        layer: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
}
