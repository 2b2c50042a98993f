//! The shape check: a cursor's key against the query's key schema, before any request.

use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::invalid;
use crate::entity::{IndexSchema, TableSchema};
use crate::value::ScalarType;
use crate::{Item, Result};

/// The role of a key attribute, for DynamoDB's size limits and for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyRole {
    /// A partition key: up to 2048 bytes.
    Partition,
    /// A sort key: up to 1024 bytes.
    Sort,
}

impl KeyRole {
    fn max_bytes(self) -> usize {
        match self {
            KeyRole::Partition => 2048,
            KeyRole::Sort => 1024,
        }
    }

    fn label(self) -> &'static str {
        match self {
            KeyRole::Partition => "partition key",
            KeyRole::Sort => "sort key",
        }
    }
}

/// One attribute of the key a cursor must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyShape {
    pub(crate) name: &'static str,
    pub(crate) scalar: ScalarType,
    /// The strictest role the attribute has (an attribute that is both a partition key and a
    /// sort key must fit a sort key's limit).
    pub(crate) role: KeyRole,
}

/// The key a cursor of a find on `schema` (reading `index`, if any) holds: the table's key
/// attributes, then the index's, each once.
pub(crate) fn key_shape(schema: &TableSchema, index: Option<&IndexSchema>) -> Vec<KeyShape> {
    let mut shape: Vec<KeyShape> = Vec::with_capacity(4);
    let keys = [
        Some((schema.partition_key, KeyRole::Partition)),
        schema.sort_key.map(|k| (k, KeyRole::Sort)),
        index.map(|i| (i.partition_key, KeyRole::Partition)),
        index.and_then(|i| i.sort_key).map(|k| (k, KeyRole::Sort)),
    ];
    for (key, role) in keys.into_iter().flatten() {
        match shape.iter_mut().find(|s| s.name == key.name) {
            Some(known) => {
                if role == KeyRole::Sort {
                    known.role = KeyRole::Sort;
                }
            }
            None => shape.push(KeyShape {
                name: key.name,
                scalar: key.scalar,
                role,
            }),
        }
    }
    shape
}

/// What a cursor of one find must hold, checked before any request.
#[derive(Debug, Clone)]
pub(crate) struct CursorCheck {
    /// The key attributes (see [`key_shape`]).
    pub(crate) shape: Vec<KeyShape>,
    /// For a Query: the partition key it reads (of the index, if any) and the value its key
    /// condition fixes. A cursor holding another value would start outside the query, which
    /// DynamoDB refuses.
    pub(crate) partition: Option<(&'static str, AttributeValue)>,
}

/// Checks a cursor's key against the query's key schema: the names, types and values DynamoDB
/// accepts as an `ExclusiveStartKey`.
pub(super) fn check_shape(key: &Item, shape: &[KeyShape]) -> Result<()> {
    let expected = || {
        shape
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut names: Vec<&String> = key.keys().collect();
    names.sort_unstable();
    if let Some(stray) = names
        .iter()
        .find(|n| !shape.iter().any(|s| s.name == n.as_str()))
    {
        return Err(invalid(format!(
            "the cursor's key has attribute `{stray}`, which is not a key attribute of this \
             query (expected {})",
            expected()
        )));
    }
    for s in shape {
        let role = s.role.label();
        let name = s.name;
        let value = key.get(name).ok_or_else(|| {
            invalid(format!(
                "the cursor's key lacks the {role} `{name}` (expected {})",
                expected()
            ))
        })?;
        let size = match (s.scalar, value) {
            (ScalarType::String, AttributeValue::S(text)) => text.len(),
            (ScalarType::Binary, AttributeValue::B(bytes)) => bytes.as_ref().len(),
            (ScalarType::Number, AttributeValue::N(text)) => {
                check_number(text).map_err(|why| {
                    invalid(format!(
                        "the cursor's {role} `{name}` is not a valid DynamoDB number: {why}"
                    ))
                })?;
                continue;
            }
            (scalar, other) => {
                return Err(invalid(format!(
                    "the cursor's {role} `{name}` must be of type {}, found {}",
                    scalar.code(),
                    crate::value::type_name(other)
                )))
            }
        };
        if size == 0 {
            return Err(invalid(format!(
                "the cursor's {role} `{name}` is empty, which DynamoDB does not allow in a key"
            )));
        }
        let max = s.role.max_bytes();
        if size > max {
            return Err(invalid(format!(
                "the cursor's {role} `{name}` is {size} bytes, over DynamoDB's limit of {max} \
                 for a {role}"
            )));
        }
    }
    Ok(())
}

/// DynamoDB's rules for a number, on its text: a decimal number of at most 38 significant
/// digits, magnitude 1E-130 to 9.99…E+125 (or zero).
fn check_number(text: &str) -> std::result::Result<(), String> {
    let canonical = crate::key::normalize_number(text)
        .filter(|_| text.trim() == text)
        .ok_or_else(|| format!("`{}` is not a number", truncated(text)))?;
    if canonical == "0" {
        return Ok(());
    }
    let (digits, power) = canonical
        .trim_start_matches('-')
        .split_once('e')
        .expect("canonical numbers have an exponent");
    if digits.len() > 38 {
        return Err(format!(
            "{} significant digits, over DynamoDB's limit of 38",
            digits.len()
        ));
    }
    let power: i64 = power.parse().expect("canonical exponents are integers");
    if !(-130..=125).contains(&power) {
        return Err(format!(
            "`{}` is out of DynamoDB's number range (magnitude 1E-130 to 9.99E+125)",
            truncated(text)
        ));
    }
    Ok(())
}

/// At most 40 characters of `text`, for messages.
fn truncated(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}
