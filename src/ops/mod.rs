//! Operations: each builder here holds a request description and does no I/O until awaited
//! (or `send()`). All of them run through the request pipeline (`crate::pipeline`).

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
pub use transact::{
    CancellationReason, TransactAction, TransactGet, TransactGetOutput, TransactWrite,
};
pub use update::UpdateItem;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::expr::Placeholders;
use crate::{Condition, Entity, Error, Item, Result};

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
