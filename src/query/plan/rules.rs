//! The planner's decisions beyond the source: checks made before any request (limit, key
//! operands, segments, order, what a global index can filter on) and how the find reads (the
//! key attributes that locate an item, whether full items are fetched from the table after an
//! index read, what a cursor holds, the key of a GetItem). Each rule is one small function,
//! unit-tested in `tests.rs`.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{index_holds, plan, PlanInput, Planned};
use crate::attr::Path;
use crate::expr::condition::{Cmp, Node};
use crate::page::{self, CursorCheck};
use crate::query::spec::{Merge, Order, ReadAs, Spec};
use crate::{Error, IndexKind, IndexSchema, Item, Operation, Result, TableSchema};

/// Everything the planner decided about a find.
#[derive(Debug)]
pub(crate) struct Decisions {
    /// The request and its key condition and filter.
    pub(crate) planned: Planned,
    /// The attributes that locate an item in what is read: the table's keys, then the index's.
    pub(crate) key_attrs: Vec<&'static str>,
    /// Full items are read from the table after an index read.
    pub(crate) fetch_base: bool,
    /// What a cursor of this find holds.
    pub(crate) cursor: CursorCheck,
    /// The key of a GetItem.
    pub(crate) get_key: Option<Item>,
}

/// Plans `spec` on `schema` and makes every decision, or refuses it before any request.
pub(crate) fn decide(schema: &'static TableSchema, spec: &Spec) -> Result<Decisions> {
    check_limit(schema, spec)?;
    let planned = plan(schema, &PlanInput::of(spec))?;
    check_key_operands(schema.entity, &planned.key_nodes)?;
    check_segments(schema, spec, &planned)?;
    check_order(schema, spec, &planned)?;
    check_index_filter(schema, &planned)?;
    Ok(Decisions {
        key_attrs: key_attrs(schema, planned.index),
        fetch_base: fetches_base_items(schema, spec, &planned),
        cursor: CursorCheck {
            shape: page::key_shape(schema, planned.index),
            partition: cursor_partition(schema, &planned),
        },
        get_key: get_key(&planned),
        planned,
    })
}

/// `limit(0)` asks for nothing: refused.
pub(super) fn check_limit(schema: &TableSchema, spec: &Spec) -> Result<()> {
    if spec.limit == Some(0) {
        return Err(Error::validation(
            schema.entity,
            "limit",
            "limit(0) asks for no items; use a limit of at least 1",
        ));
    }
    Ok(())
}

/// Key conditions compare key attributes, and DynamoDB refuses empty strings and binaries as
/// key values: refused here, naming the attribute.
pub(super) fn check_key_operands(entity: &'static str, nodes: &[Node]) -> Result<()> {
    for node in nodes {
        let operands: Vec<(&Path, &Result<AttributeValue, crate::value::ConvertError>)> = match node
        {
            Node::Compare(path, _, value) | Node::BeginsWith(path, value) => vec![(path, value)],
            Node::Between(path, low, high) => vec![(path, low), (path, high)],
            _ => Vec::new(),
        };
        for (path, value) in operands {
            let empty = match value {
                Ok(AttributeValue::S(s)) => s.is_empty(),
                Ok(AttributeValue::B(b)) => b.as_ref().is_empty(),
                _ => false,
            };
            if empty {
                return Err(Error::validation(
                    entity,
                    path.to_string(),
                    "a key condition compares a key attribute with an empty value; DynamoDB \
                     key values cannot be empty",
                ));
            }
        }
    }
    Ok(())
}

/// `segments()` splits a Scan: refused on anything else.
pub(super) fn check_segments(schema: &TableSchema, spec: &Spec, planned: &Planned) -> Result<()> {
    if spec.segments.is_some() && planned.operation != Operation::Scan {
        return Err(Error::InvalidQuery {
            entity: schema.entity,
            reason: format!(
                "segments() is for scans, but this find plans a {}",
                planned.operation
            ),
        });
    }
    Ok(())
}

/// `descending()` and `sorted()` order by sort key, which a Scan does not have.
pub(super) fn check_order(schema: &TableSchema, spec: &Spec, planned: &Planned) -> Result<()> {
    if planned.operation != Operation::Scan {
        return Ok(());
    }
    let asked = if spec.order == Order::Descending {
        "descending()"
    } else if spec.merge == Merge::SortKey {
        "sorted()"
    } else {
        return Ok(());
    };
    Err(Error::InvalidQuery {
        entity: schema.entity,
        reason: format!("{asked} orders by sort key, which a scan does not"),
    })
}

/// A global index holds only its projection: a filter on anything else would silently match
/// nothing, so it is refused, naming what the index lacks.
pub(super) fn check_index_filter(schema: &TableSchema, planned: &Planned) -> Result<()> {
    let Some(index) = planned.index.filter(|i| i.kind == IndexKind::Global) else {
        return Ok(());
    };
    let mut paths = Vec::new();
    planned
        .filter_nodes
        .iter()
        .for_each(|n| n.paths(&mut paths));
    let missing: Vec<String> = paths
        .iter()
        .map(|p| p.root().to_owned())
        .filter(|root| !index_holds(schema, index, Some(std::slice::from_ref(root))))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidQuery {
        entity: schema.entity,
        reason: format!(
            "the filter reads {} which global index `{}` does not project",
            missing.join(", "),
            index.name
        ),
    })
}

/// The attributes that locate an item in the source: the table's keys, plus the index's.
pub(super) fn key_attrs(schema: &TableSchema, index: Option<&IndexSchema>) -> Vec<&'static str> {
    let mut attrs: Vec<&'static str> = vec![schema.partition_key.name];
    attrs.extend(schema.sort_key.map(|k| k.name));
    if let Some(index) = index {
        for k in std::iter::once(index.partition_key).chain(index.sort_key) {
            if !attrs.contains(&k.name) {
                attrs.push(k.name);
            }
        }
    }
    attrs
}

/// An index holds only its projection. Whole entities (or a selection the index does not hold)
/// are read again from the table; a projection type without a selection reads what the index
/// holds.
pub(super) fn fetches_base_items(schema: &TableSchema, spec: &Spec, planned: &Planned) -> bool {
    let Some(index) = planned.index else {
        return false;
    };
    if planned.operation == Operation::GetItem {
        return false;
    }
    let selected: Option<Vec<String>> = (!spec.projection.is_empty()).then(|| {
        spec.projection
            .iter()
            .map(|p| p.root().to_owned())
            .collect()
    });
    match (spec.read_as, selected) {
        (ReadAs::Projection, None) => false,
        (_, selected) => !index_holds(schema, index, selected.as_deref()),
    }
}

/// A Query's partition key value: the one value a cursor of it can hold there.
pub(super) fn cursor_partition(
    schema: &TableSchema,
    planned: &Planned,
) -> Option<(&'static str, AttributeValue)> {
    if planned.operation != Operation::Query {
        return None;
    }
    let pk = planned
        .index
        .map_or(schema.partition_key.name, |i| i.partition_key.name);
    planned.key_nodes.iter().find_map(|n| match n {
        Node::Compare(p, Cmp::Eq, Ok(v)) if p.root() == pk => Some((pk, v.clone())),
        _ => None,
    })
}

/// The key a GetItem reads, from its equality conditions.
pub(super) fn get_key(planned: &Planned) -> Option<Item> {
    (planned.operation == Operation::GetItem).then(|| {
        planned
            .key_nodes
            .iter()
            .filter_map(|n| match n {
                Node::Compare(p, _, Ok(v)) => Some((p.root().to_owned(), v.clone())),
                _ => None,
            })
            .collect()
    })
}
