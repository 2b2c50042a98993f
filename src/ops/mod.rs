//! Operations: each builder here holds a request description and does no I/O until awaited
//! (or `send()`). All of them execute through `Client::execute`, the one request path where
//! tracing, error mapping (and later retries and caching) live.

mod batch_get;
mod batch_write;
mod delete;
mod find;
mod get;
mod put;
mod transact;
mod update;

pub use batch_get::{BatchGet, BatchGetOutput, BatchStats, MultiBatchGet, MultiBatchGetOutput};
pub use batch_write::{BatchWrite, BatchWriteOutput, WriteKind, WriteOp};
pub use delete::DeleteItem;
pub use find::{Find, IndexName};
pub use get::GetItem;
pub use put::PutItem;
pub use transact::{CancellationReason, TransactGet, TransactGetOutput, TransactWrite};
pub use update::UpdateItem;

use std::future::Future;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity};
use aws_smithy_types::body::SdkBody;
use tracing::Instrument;

use crate::expr::Placeholders;
use crate::retry::{classify, Attempts};
use crate::{Client, Condition, Entity, Error, Item, Result, RetryPolicy};

/// What a write returns: nothing (the default), or the item as it was or is.
pub mod returns {
    /// Return nothing (the default).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Nothing;
    /// Return the item as it was before the write (`ALL_OLD`).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Old;
    /// Return the item as it is after the update (`ALL_NEW`).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct New;
}

/// Where a request goes: for the span and for error context.
pub(crate) struct Target<'a> {
    pub operation: &'static str,
    pub table: &'a str,
    pub entity: &'static str,
    /// A per-call policy; the client's otherwise.
    pub retry: Option<&'a RetryPolicy>,
}

/// Errors of SDK operations, as the request path needs to see them.
pub(crate) trait OperationError:
    ProvideErrorMetadata + std::error::Error + Send + Sync + 'static
{
    /// `Some(old item)` when this is a failed condition check.
    fn condition_failed(&self) -> Option<Option<Item>> {
        None
    }

    /// The cancellation reasons, when this is a cancelled transaction.
    fn cancellation_reasons(&self) -> Option<Vec<transact::CancellationReason>> {
        None
    }
}

macro_rules! transaction_error {
    ($($err:path),*) => {$(
        impl OperationError for $err {
            fn cancellation_reasons(&self) -> Option<Vec<transact::CancellationReason>> {
                match self {
                    Self::TransactionCanceledException(e) => Some(
                        e.cancellation_reasons()
                            .iter()
                            .map(|r| transact::CancellationReason {
                                index: 0,
                                operation: "",
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
    aws_sdk_dynamodb::operation::update_time_to_live::UpdateTimeToLiveError
);

/// Outputs that report consumed capacity.
pub(crate) trait CapacityOutput {
    fn consumed(&self) -> Option<&ConsumedCapacity> {
        None
    }
}

macro_rules! capacity_output {
    ($($out:path),*) => {$(
        impl CapacityOutput for $out {
            fn consumed(&self) -> Option<&ConsumedCapacity> {
                self.consumed_capacity()
            }
        }
    )*};
}
capacity_output!(
    aws_sdk_dynamodb::operation::get_item::GetItemOutput,
    aws_sdk_dynamodb::operation::put_item::PutItemOutput,
    aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput
);
capacity_output!(
    aws_sdk_dynamodb::operation::query::QueryOutput,
    aws_sdk_dynamodb::operation::scan::ScanOutput
);
impl CapacityOutput for aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput {
    fn consumed(&self) -> Option<&ConsumedCapacity> {
        self.consumed_capacity().first()
    }
}
impl CapacityOutput for aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput {
    fn consumed(&self) -> Option<&ConsumedCapacity> {
        self.consumed_capacity().first()
    }
}
impl CapacityOutput
    for aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput
{
    fn consumed(&self) -> Option<&ConsumedCapacity> {
        self.consumed_capacity().first()
    }
}
impl CapacityOutput for aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsOutput {
    fn consumed(&self) -> Option<&ConsumedCapacity> {
        self.consumed_capacity().first()
    }
}
impl CapacityOutput for aws_sdk_dynamodb::operation::create_table::CreateTableOutput {}
impl CapacityOutput for aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput {}
impl CapacityOutput for aws_sdk_dynamodb::operation::delete_table::DeleteTableOutput {}
impl CapacityOutput for aws_sdk_dynamodb::operation::update_time_to_live::UpdateTimeToLiveOutput {}

type HttpResponse = aws_smithy_runtime_api::http::Response<SdkBody>;

impl Client {
    /// The one request path: a span per operation (table, entity, operation, consumed
    /// capacity, retries), the SDK call in the retry loop, and the mapping of its error into
    /// [`Error`].
    ///
    /// `send` builds and sends the request; it is called once per attempt.
    pub(crate) async fn execute<O, E, F, Fut>(&self, target: Target<'_>, mut send: F) -> Result<O>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<O, SdkError<E, HttpResponse>>>,
        O: CapacityOutput,
        E: OperationError,
    {
        let span = tracing::info_span!(
            "dynamite",
            operation = target.operation,
            table = target.table,
            entity = target.entity,
            consumed_capacity = tracing::field::Empty,
            retries = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let policy = target.retry.unwrap_or_else(|| self.retry_policy());
        let mut attempts = Attempts::new(policy);
        loop {
            let result = send().instrument(span.clone()).await;
            match result {
                Ok(output) => {
                    if let Some(units) =
                        output.consumed().and_then(ConsumedCapacity::capacity_units)
                    {
                        span.record("consumed_capacity", units);
                    }
                    if attempts.total_retries > 0 {
                        span.record("retries", attempts.total_retries);
                    }
                    return Ok(output);
                }
                Err(err) => {
                    let error = map_sdk_error(&target, err);
                    let kind = classify(&error);
                    if kind.is_retryable() {
                        if let Some(delay) = attempts.next_delay() {
                            let reason = error.code().unwrap_or("transient").to_owned();
                            attempts
                                .wait(delay, target.operation, &reason)
                                .instrument(span.clone())
                                .await;
                            continue;
                        }
                    }
                    span.record("retries", attempts.total_retries);
                    span.record("error", tracing::field::display(&error));
                    return Err(error);
                }
            }
        }
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

impl Client {
    /// The path of single-item writes (put, update, delete): the request through
    /// [`execute`](Self::execute), then — whatever the outcome, as a failed request may still
    /// have been applied — the item's cache entries and the table's query results dropped,
    /// before the write returns; a failed condition refined into a version conflict when the
    /// stored version is not the expected one.
    pub(crate) async fn write_item<E, O, Er, F, Fut>(
        &self,
        target: Target<'_>,
        key: &Item,
        expected_version: Option<Option<u64>>,
        send: F,
    ) -> Result<Option<Item>>
    where
        E: Entity,
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<O, SdkError<Er, HttpResponse>>>,
        O: CapacityOutput + WriteOutput,
        Er: OperationError,
    {
        let table = target.table;
        let result = self.execute(target, send).await;
        self.invalidate_after_write::<E>(table, [key]).await;
        match result {
            Ok(output) => Ok(output.into_attributes()),
            Err(err) => Err(refine_condition_error::<E>(err, expected_version)),
        }
    }

    /// Drops the cache entries of the items with these keys (whole items work too) and the
    /// query results of `table`, in every layer. No-op without a cache.
    pub(crate) async fn invalidate_after_write<'k, E: Entity>(
        &self,
        table: &str,
        keys: impl IntoIterator<Item = &'k Item>,
    ) {
        if let Some(cache) = self.cache() {
            cache
                .invalidate_items(table, E::schema(), keys.into_iter())
                .await;
        }
    }
}

fn map_sdk_error<E: OperationError>(target: &Target<'_>, err: SdkError<E, HttpResponse>) -> Error {
    if let SdkError::ServiceError(service) = &err {
        if let Some(reasons) = service.err().cancellation_reasons() {
            return Error::TransactionCanceled { reasons };
        }
        if let Some(current) = service.err().condition_failed() {
            return Error::ConditionFailed {
                operation: target.operation,
                table: target.table.to_owned(),
                current: current.map(Box::new),
            };
        }
    }
    let code = match &err {
        SdkError::ServiceError(service) => service.err().code().map(str::to_owned).or_else(|| {
            let status = service.raw().status().as_u16();
            (status >= 500).then(|| format!("Http{status}"))
        }),
        SdkError::TimeoutError(_) => Some("TimeoutError".to_owned()),
        SdkError::DispatchFailure(_) => Some("DispatchFailure".to_owned()),
        SdkError::ResponseError(_) => Some("ResponseError".to_owned()),
        _ => None,
    };
    let status = match &err {
        SdkError::ServiceError(service) => Some(service.raw().status().as_u16()),
        SdkError::ResponseError(response) => Some(response.raw().status().as_u16()),
        _ => None,
    };
    Error::Sdk {
        operation: target.operation,
        table: target.table.to_owned(),
        code,
        status,
        source: Box::new(err),
    }
}

/// A rendered condition for a write, merged from the caller's condition and the version check.
pub(crate) struct WriteCondition {
    pub expression: Option<String>,
    /// The version the write expects (`Some(None)`: expects no item), when version-checked.
    pub expected_version: Option<Option<u64>>,
}

/// Renders `condition` AND the version check (if any) into `ph`.
pub(crate) fn write_condition<E: Entity>(
    ph: &mut Placeholders,
    condition: Option<&Condition<E>>,
    expected_version: Option<Option<u64>>,
) -> Result<WriteCondition> {
    let schema = E::schema();
    let mut parts = Vec::new();
    if let Some(cond) = condition {
        parts.push(render_condition::<E>(ph, cond)?);
    }
    if let Some(expected) = expected_version {
        match expected {
            None => {
                let pk = ph.name(schema.partition_key.name);
                parts.push(format!("attribute_not_exists({pk})"));
            }
            Some(v) => {
                let ver = ph.name(
                    schema
                        .version
                        .expect("version-checked entities have a version attribute"),
                );
                let val = ph.value(AttributeValue::N(v.to_string()));
                parts.push(format!("{ver} = {val}"));
            }
        }
    }
    let expression = match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(
            parts
                .iter()
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    };
    Ok(WriteCondition {
        expression,
        expected_version,
    })
}

/// Renders a condition, turning a value that could not be converted into a validation error.
pub(crate) fn render_condition<E: Entity>(
    ph: &mut Placeholders,
    cond: &Condition<E>,
) -> Result<String> {
    cond.render(ph)
        .map_err(|(path, e)| Error::validation(E::schema().entity, path.to_string(), e))
}

/// After a failed conditional write: a version conflict when the stored version is not the
/// expected one, otherwise the caller's condition failed.
pub(crate) fn refine_condition_error<E: Entity>(
    err: Error,
    expected_version: Option<Option<u64>>,
) -> Error {
    let Some(expected) = expected_version else {
        return err;
    };
    let Error::ConditionFailed {
        table,
        current,
        operation,
    } = err
    else {
        return err;
    };
    let version_attr = E::schema().version.expect("version-checked");
    let actual = current
        .as_deref()
        .and_then(|item| item.get(version_attr))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok());
    let exists = current.is_some();
    let conflict = match expected {
        None => exists,
        Some(v) => actual != Some(v),
    };
    if conflict {
        Error::VersionConflict {
            table,
            expected,
            actual,
        }
    } else {
        Error::ConditionFailed {
            operation,
            table,
            current,
        }
    }
}

/// Decodes an optional returned item.
pub(crate) fn decode_optional<E: Entity>(item: Option<Item>) -> Result<Option<E>> {
    match item {
        Some(item) if !item.is_empty() => E::from_item(item).map(Some),
        _ => Ok(None),
    }
}

/// Checks a whole item before it is written: key attributes, index keys, numbers, size.
pub(crate) fn validate_item<E: Entity>(item: &Item) -> Result<()> {
    let schema = E::schema();
    crate::entity::check_key_value(
        schema,
        &schema.partition_key,
        item.get(schema.partition_key.name),
    )?;
    if let Some(sk) = &schema.sort_key {
        crate::entity::check_key_value(schema, sk, item.get(sk.name))?;
    }
    for index in schema.indexes {
        for key in std::iter::once(&index.partition_key).chain(index.sort_key.as_ref()) {
            // Absent index keys are fine (sparse index); present ones must be valid.
            if let Some(value) = item.get(key.name) {
                crate::entity::check_key_value(schema, key, Some(value)).map_err(|e| match e {
                    Error::Validation {
                        entity,
                        attribute,
                        reason,
                    } => Error::Validation {
                        entity,
                        attribute,
                        reason: format!("{reason} (it is a key of index {})", index.name),
                    },
                    other => other,
                })?;
            }
        }
    }
    for (name, value) in item {
        check_numbers(value).map_err(|e| Error::validation(schema.entity, name.as_str(), e))?;
    }
    let size = crate::value::item_size(item);
    if size > crate::value::MAX_ITEM_SIZE {
        return Err(Error::validation(
            schema.entity,
            "(item)",
            format!(
                "item is {size} bytes, over DynamoDB's limit of {} bytes (400 KB)",
                crate::value::MAX_ITEM_SIZE
            ),
        ));
    }
    Ok(())
}

fn check_numbers(value: &AttributeValue) -> std::result::Result<(), crate::value::ConvertError> {
    match value {
        AttributeValue::N(n) => crate::value::check_number_text(n),
        AttributeValue::Ns(ns) => ns
            .iter()
            .try_for_each(|n| crate::value::check_number_text(n)),
        AttributeValue::L(l) => l.iter().try_for_each(check_numbers),
        AttributeValue::M(m) => m.values().try_for_each(check_numbers),
        _ => Ok(()),
    }
}

/// The version a write expects, checked against the schema.
pub(crate) fn expected_version<E: Entity>(version: Option<u64>) -> Result<Option<Option<u64>>> {
    match version {
        None => Ok(None),
        Some(_) if E::schema().version.is_none() => Err(Error::validation(
            E::schema().entity,
            "expect_version",
            "the entity has no #[dynamite(version)] attribute",
        )),
        Some(v) => Ok(Some(Some(v))),
    }
}
