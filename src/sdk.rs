//! Adapters between the AWS SDK and the request path: which SDK errors carry a failed
//! condition or cancellation reasons, which outputs report consumed capacity or return an item,
//! and [`map_error`], the one place where an SDK error becomes an [`Error`] with a typed
//! [`ErrorKind`] read from the error's variant and DynamoDB's error code.

use std::error::Error as StdError;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::ConsumedCapacity;
use aws_smithy_runtime_api::client::dns::ResolveDnsError;
use aws_smithy_types::body::SdkBody;

use crate::{Error, ErrorKind, Item, Operation};

/// The HTTP response type of SDK errors.
pub(crate) type HttpResponse = aws_smithy_runtime_api::http::Response<SdkBody>;

/// Errors of SDK operations, as the request path needs to see them.
pub(crate) trait OperationError:
    ProvideErrorMetadata + std::error::Error + Send + Sync + 'static
{
    /// `Some(old item)` when this is a failed condition check.
    fn condition_failed(&self) -> Option<Option<Item>> {
        None
    }

    /// The cancellation reasons, when this is a cancelled transaction.
    fn cancellation_reasons(&self) -> Option<Vec<crate::write::CancellationReason>> {
        None
    }

    /// `true` when the error is a throttling signal under a code of the operation's own that
    /// is not one of DynamoDB's throttling codes (DynamoDB Streams' `LimitExceededException`).
    fn throttled(&self) -> bool {
        false
    }
}

macro_rules! transaction_error {
    ($($err:path),*) => {$(
        impl OperationError for $err {
            fn cancellation_reasons(&self) -> Option<Vec<crate::write::CancellationReason>> {
                match self {
                    Self::TransactionCanceledException(e) => Some(
                        e.cancellation_reasons()
                            .iter()
                            .map(|r| crate::write::CancellationReason {
                                index: 0,
                                // Attributed to their operations by the transaction.
                                operation: crate::write::TransactAction::Get,
                                table: String::new(),
                                key: Item::new(),
                                code: r.code().map(str::to_owned),
                                message: r.message().map(str::to_owned),
                                item: r.item().cloned(),
                            })
                            .collect(),
                    ),
                    _ => None,
                }
            }
        }
    )*};
}
transaction_error!(
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError
);

macro_rules! condition_error {
    ($($err:path),*) => {$(
        impl OperationError for $err {
            fn condition_failed(&self) -> Option<Option<Item>> {
                match self {
                    Self::ConditionalCheckFailedException(e) => Some(e.item().cloned()),
                    _ => None,
                }
            }
        }
    )*};
}
condition_error!(
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError
);

macro_rules! plain_error {
    ($($err:path),*) => {$( impl OperationError for $err {} )*};
}
plain_error!(
    aws_sdk_dynamodb::operation::get_item::GetItemError,
    aws_sdk_dynamodb::operation::query::QueryError,
    aws_sdk_dynamodb::operation::scan::ScanError,
    aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError,
    aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError,
    aws_sdk_dynamodb::operation::create_table::CreateTableError,
    aws_sdk_dynamodb::operation::describe_table::DescribeTableError,
    aws_sdk_dynamodb::operation::delete_table::DeleteTableError,
    aws_sdk_dynamodb::operation::update_time_to_live::UpdateTimeToLiveError,
    aws_sdk_dynamodb::operation::describe_time_to_live::DescribeTimeToLiveError,
    aws_sdk_dynamodb::operation::update_table::UpdateTableError
);

/// DynamoDB Streams: `LimitExceededException` is its throttling answer (too many readers of a
/// shard, or requests too fast), unlike DynamoDB's own, which is about concurrent table
/// operations.
#[cfg(feature = "streams")]
macro_rules! stream_error {
    ($($err:path),*) => {$(
        impl OperationError for $err {
            fn throttled(&self) -> bool {
                self.code() == Some("LimitExceededException")
            }
        }
    )*};
}
#[cfg(feature = "streams")]
stream_error!(
    aws_sdk_dynamodbstreams::operation::describe_stream::DescribeStreamError,
    aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError,
    aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError
);

/// What the pipeline reads off every answer: the capacity consumed and the items read.
pub(crate) trait CapacityOutput {
    /// Capacity units consumed (all tables of a batch or transaction); `None`: not reported.
    fn capacity_units(&self) -> Option<f64> {
        None
    }
    /// Items DynamoDB read to answer (before a filter).
    fn items_read(&self) -> u64 {
        0
    }
}

/// The units of every table's consumed capacity, when any was reported.
fn units_of_tables(consumed: &[ConsumedCapacity]) -> Option<f64> {
    let units = consumed.iter().filter_map(ConsumedCapacity::capacity_units);
    units.reduce(|a, b| a + b)
}

/// Outputs of one table, with a consumed capacity; `items_read` for those that say.
macro_rules! capacity_output {
    ($($out:path $(=> $items:expr)?),* $(,)?) => {$(
        impl CapacityOutput for $out {
            fn capacity_units(&self) -> Option<f64> {
                self.consumed_capacity()?.capacity_units()
            }
            $(fn items_read(&self) -> u64 {
                ($items)(self)
            })?
        }
    )*};
}
capacity_output!(
    aws_sdk_dynamodb::operation::get_item::GetItemOutput
        => |o: &Self| u64::from(o.item.as_ref().is_some_and(|i| !i.is_empty())),
    aws_sdk_dynamodb::operation::put_item::PutItemOutput,
    aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput,
    aws_sdk_dynamodb::operation::query::QueryOutput => |o: &Self| o.scanned_count().max(0) as u64,
    aws_sdk_dynamodb::operation::scan::ScanOutput => |o: &Self| o.scanned_count().max(0) as u64,
);

/// Outputs across tables, with one consumed capacity per table.
macro_rules! tables_output {
    ($($out:path $(=> $items:expr)?),* $(,)?) => {$(
        impl CapacityOutput for $out {
            fn capacity_units(&self) -> Option<f64> {
                units_of_tables(self.consumed_capacity())
            }
            $(fn items_read(&self) -> u64 {
                ($items)(self)
            })?
        }
    )*};
}
tables_output!(
    aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput => |o: &Self| {
        let responses = o.responses.iter().flat_map(|r| r.values());
        responses.map(|items| items.len() as u64).sum()
    },
    aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput,
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput,
    aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsOutput => |o: &Self| {
        o.responses().iter().filter(|r| r.item.is_some()).count() as u64
    },
);
impl CapacityOutput for aws_sdk_dynamodb::operation::create_table::CreateTableOutput {}
impl CapacityOutput for aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput {}
impl CapacityOutput for aws_sdk_dynamodb::operation::delete_table::DeleteTableOutput {}
impl CapacityOutput for aws_sdk_dynamodb::operation::update_table::UpdateTableOutput {}
impl CapacityOutput for aws_sdk_dynamodb::operation::update_time_to_live::UpdateTimeToLiveOutput {}
impl CapacityOutput
    for aws_sdk_dynamodb::operation::describe_time_to_live::DescribeTimeToLiveOutput
{
}

#[cfg(feature = "streams")]
impl CapacityOutput for aws_sdk_dynamodbstreams::operation::describe_stream::DescribeStreamOutput {}
#[cfg(feature = "streams")]
impl CapacityOutput
    for aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorOutput
{
}
#[cfg(feature = "streams")]
impl CapacityOutput for aws_sdk_dynamodbstreams::operation::get_records::GetRecordsOutput {
    fn items_read(&self) -> u64 {
        self.records().len() as u64
    }
}

/// Outputs of single-item writes: the item they return, if asked.
pub(crate) trait WriteOutput {
    fn into_attributes(self) -> Option<Item>;
}

macro_rules! write_output {
    ($($out:path),*) => {$(
        impl WriteOutput for $out {
            fn into_attributes(self) -> Option<Item> {
                self.attributes
            }
        }
    )*};
}
write_output!(
    aws_sdk_dynamodb::operation::put_item::PutItemOutput,
    aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput
);

/// DynamoDB's throttling error codes: the request was refused, not applied.
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// Error codes of requests refused for a passing server-side reason, not applied.
const REFUSED_TRANSIENT: &[&str] = &[
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionInProgressException",
];

/// The kind of a service error, from its code and HTTP status. HTTP 500 (and any other 5xx but
/// 503) leaves the outcome unknown: DynamoDB documents that such a request may have succeeded.
pub(crate) fn service_error_kind(code: Option<&str>, status: u16) -> ErrorKind {
    match code {
        Some(c) if THROTTLING.contains(&c) => ErrorKind::Throttled,
        Some(c) if REFUSED_TRANSIENT.contains(&c) => ErrorKind::ServerError,
        _ if status == 503 => ErrorKind::ServerError,
        _ if status >= 500 => ErrorKind::OutcomeUnknown,
        _ => ErrorKind::Client,
    }
}

/// The kind of a failure to send or to read the answer. Only a failure to connect at all
/// (refused, unreachable, name resolution) proves that nothing reached DynamoDB; a timeout, a
/// connection closed or reset while waiting, or an unreadable response may follow an applied
/// request.
fn transport_error_kind<E, R>(err: &SdkError<E, R>) -> ErrorKind {
    match err {
        SdkError::ConstructionFailure(_) => ErrorKind::Client,
        SdkError::DispatchFailure(dispatch) if dispatch.is_user() => ErrorKind::Client,
        SdkError::DispatchFailure(dispatch)
            if dispatch
                .as_connector_error()
                .is_some_and(|e| never_connected(e)) =>
        {
            ErrorKind::NotSent
        }
        _ => ErrorKind::OutcomeUnknown,
    }
}

/// `true` when the error or its sources show that no connection was made.
fn never_connected(err: &(dyn StdError + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if e.is::<ResolveDnsError>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            return matches!(
                io.kind(),
                Io::ConnectionRefused
                    | Io::AddrNotAvailable
                    | Io::HostUnreachable
                    | Io::NetworkUnreachable
                    | Io::NotFound
            );
        }
        source = e.source();
    }
    false
}

/// Maps an SDK error into [`Error`]: a cancelled transaction, a failed condition (with the item
/// DynamoDB returned), or [`Error::Sdk`] with its kind, code, message and status.
pub(crate) fn map_error<E: OperationError>(
    operation: Operation,
    table: &str,
    err: SdkError<E, HttpResponse>,
) -> Error {
    if let SdkError::ServiceError(service) = &err {
        if let Some(reasons) = service.err().cancellation_reasons() {
            return Error::TransactionCanceled { reasons };
        }
        if let Some(current) = service.err().condition_failed() {
            return Error::ConditionFailed {
                operation,
                table: table.to_owned(),
                current: current.map(Box::new),
            };
        }
    }
    let (kind, code, message, status) = match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code();
            let kind = if service.err().throttled() {
                ErrorKind::Throttled
            } else {
                service_error_kind(code, status)
            };
            (
                kind,
                code.map(str::to_owned),
                service.err().message().map(str::to_owned),
                Some(status),
            )
        }
        SdkError::ResponseError(response) => (
            ErrorKind::OutcomeUnknown,
            None,
            None,
            Some(response.raw().status().as_u16()),
        ),
        other => (transport_error_kind(other), None, None, None),
    };
    Error::Sdk {
        operation,
        table: table.to_owned(),
        kind,
        code,
        message,
        status,
        source: Box::new(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_are_classified_by_code_then_status() {
        assert_eq!(
            service_error_kind(Some("ThrottlingException"), 400),
            ErrorKind::Throttled
        );
        assert_eq!(
            service_error_kind(Some("ProvisionedThroughputExceededException"), 400),
            ErrorKind::Throttled
        );
        assert_eq!(
            service_error_kind(Some("RequestLimitExceeded"), 400),
            ErrorKind::Throttled
        );
        assert_eq!(
            service_error_kind(Some("TransactionInProgressException"), 400),
            ErrorKind::ServerError
        );
        assert_eq!(
            service_error_kind(Some("ServiceUnavailable"), 503),
            ErrorKind::ServerError
        );
        assert_eq!(service_error_kind(None, 503), ErrorKind::ServerError);
        assert_eq!(
            service_error_kind(Some("InternalServerError"), 500),
            ErrorKind::OutcomeUnknown
        );
        assert_eq!(
            service_error_kind(Some("Odd"), 502),
            ErrorKind::OutcomeUnknown
        );
        for code in [
            "ValidationException",
            "AccessDeniedException",
            "ResourceNotFoundException",
            "ConditionalCheckFailedException",
        ] {
            assert_eq!(
                service_error_kind(Some(code), 400),
                ErrorKind::Client,
                "{code}"
            );
        }
    }

    #[test]
    fn only_a_refused_connection_proves_nothing_was_sent() {
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl StdError for Wrap {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        #[derive(Debug)]
        struct Top(Wrap);
        impl std::fmt::Display for Top {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("top")
            }
        }
        impl StdError for Top {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Top(Wrap(std::io::ErrorKind::ConnectionRefused.into()));
        assert!(never_connected(&refused));
        let reset = Top(Wrap(std::io::ErrorKind::ConnectionReset.into()));
        assert!(!never_connected(&reset));
        let eof = Top(Wrap(std::io::ErrorKind::UnexpectedEof.into()));
        assert!(!never_connected(&eof));
    }
}
