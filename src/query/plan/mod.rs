//! The query planner: turns a `find()` (a `Spec`) into the cheapest request (GetItem, Query on the table
//! or an index, or — only when asked — Scan), and explains its choice. No I/O.
//!
//! Rules, in order:
//! 1. No index given, not a scan, and the conditions are exactly equality on the full primary
//!    key: **GetItem**.
//! 2. `.index(..)` given: that index must exist, must be covered (equality on its partition
//!    key), and a consistent read must not be asked of a global index; otherwise an error.
//! 3. No index given: the **base table** when equality on its partition key is among the
//!    conditions; else the index keeping the most conditions in its key condition (partition
//!    key, plus a sort-key condition), ties broken by declaration order. Global indexes are
//!    skipped for consistent reads.
//! 4. Nothing covers the conditions: [`Error::ScanRequired`] naming the keys that would have
//!    served, unless a scan was asked for (`E::scan` or `.allow_scan()`).
//!
//! One condition on the partition key (`=`) and at most one on the sort key (`=`, `<`, `<=`,
//! `>`, `>=`, `BETWEEN`, `begins_with`) become the key condition; everything else is the filter.

use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;

mod rules;
#[cfg(test)]
mod tests;

pub(crate) use rules::{decide, Decisions};

use super::spec::{Consistency, Source, Spec};
use crate::attr::PathSegment;
use crate::expr::condition::{Cmp, Node};
use crate::{Error, IndexKind, IndexSchema, KeySchema, Operation, Projection, Result, TableSchema};

/// What a find will do, as [`Find::explain`](crate::ops::Find::explain) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// GetItem, Query or Scan.
    pub operation: Operation,
    /// The index read, `None` for the base table.
    pub index: Option<&'static str>,
    /// The key condition (GetItem: the key), readable form.
    pub key_condition: Option<String>,
    /// The filter applied after reading, readable form.
    pub filter: Option<String>,
    /// The attributes read (`None`: all the source holds).
    pub projection: Option<Vec<String>>,
    /// `true` when the index does not hold every attribute the result needs, so each page's
    /// items are read again from the table (one BatchGetItem per page).
    pub fetches_base_items: bool,
    /// Why this source was chosen.
    pub reason: String,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {}",
            self.operation,
            self.index.unwrap_or("the table")
        )?;
        if let Some(k) = &self.key_condition {
            write!(f, " key [{k}]")?;
        }
        if let Some(flt) = &self.filter {
            write!(f, " filter [{flt}]")?;
        }
        if let Some(p) = &self.projection {
            write!(f, " select [{}]", p.join(", "))?;
        }
        if self.fetches_base_items {
            write!(f, " + BatchGetItem per page for the full items")?;
        }
        write!(f, " ({})", self.reason)
    }
}

/// The planner's internal result: the plan plus the nodes to render into a request.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub operation: Operation,
    pub index: Option<&'static IndexSchema>,
    pub key_nodes: Vec<Node>,
    pub filter_nodes: Vec<Node>,
    pub reason: String,
}

/// What the planner needs to know about a find.
pub(crate) struct PlanInput<'a> {
    pub filters: &'a [Node],
    pub index: Option<&'a str>,
    pub consistency: Consistency,
    pub source: Source,
}

impl<'a> PlanInput<'a> {
    pub(crate) fn of(spec: &'a Spec) -> Self {
        PlanInput {
            filters: &spec.filters,
            index: spec.index.as_deref(),
            consistency: spec.consistency,
            source: spec.source,
        }
    }
}

/// A single-name path's attribute name, `None` for nested paths.
fn top_level(node_path: &crate::attr::Path) -> Option<&str> {
    match node_path.segments() {
        [PathSegment::Name(n)] => Some(n),
        _ => None,
    }
}

fn is_partition_condition(node: &Node, key: &KeySchema) -> bool {
    matches!(node, Node::Compare(p, Cmp::Eq, Ok(_)) if top_level(p) == Some(key.name))
}

fn is_sort_condition(node: &Node, key: &KeySchema) -> bool {
    match node {
        Node::Compare(p, cmp, Ok(_)) => *cmp != Cmp::Ne && top_level(p) == Some(key.name),
        Node::Between(p, Ok(_), Ok(_)) | Node::BeginsWith(p, Ok(_)) => {
            top_level(p) == Some(key.name)
        }
        _ => false,
    }
}

/// Positions of the filters that form the key condition on (pk, sk), if pk is covered.
fn cover(filters: &[Node], pk: &KeySchema, sk: Option<&KeySchema>) -> Option<Vec<usize>> {
    let p = filters.iter().position(|n| is_partition_condition(n, pk))?;
    let mut used = vec![p];
    if let Some(sk) = sk {
        if let Some(s) = filters
            .iter()
            .enumerate()
            .position(|(i, n)| i != p && is_sort_condition(n, sk))
        {
            used.push(s);
        }
    }
    Some(used)
}

fn split(filters: &[Node], used: &[usize]) -> (Vec<Node>, Vec<Node>) {
    let key = used.iter().map(|&i| filters[i].clone()).collect();
    let rest = filters
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, n)| n.clone())
        .collect();
    (key, rest)
}

fn index_label(index: &IndexSchema) -> String {
    let kind = match index.kind {
        IndexKind::Global => "global index",
        IndexKind::Local => "local index",
    };
    format!("{kind} {}", index.name)
}

/// DynamoDB refuses a Query whose filter reads the partition or sort key of the table or index
/// queried: such conditions must be the key condition, and only one per key can be.
fn check_query_filter(schema: &TableSchema, planned: &Planned) -> Result<()> {
    if planned.operation != Operation::Query {
        return Ok(());
    }
    let (pk, sk) = match planned.index {
        Some(i) => (i.partition_key, i.sort_key),
        None => (schema.partition_key, schema.sort_key),
    };
    for node in &planned.filter_nodes {
        let mut paths = Vec::new();
        node.paths(&mut paths);
        if let Some(key) = paths
            .iter()
            .map(|p| p.root())
            .find(|r| *r == pk.name || sk.is_some_and(|k| k.name == *r))
        {
            let source = planned
                .index
                .map_or("the table".to_owned(), |i| format!("index `{}`", i.name));
            return Err(Error::InvalidQuery {
                entity: schema.entity,
                reason: format!(
                    "`{}` reads `{key}`, a key attribute of {source}, but cannot be its key condition \
                     (one `=` on the partition key and one of =, <, <=, >, >=, BETWEEN, begins_with on \
                     the sort key); DynamoDB does not allow key attributes in a Query filter — \
                     combine them into one key condition, or use scan()",
                    node.describe()
                ),
            });
        }
    }
    Ok(())
}

/// Plans a find over entity `E`.
pub(crate) fn plan(schema: &'static TableSchema, input: &PlanInput<'_>) -> Result<Planned> {
    let planned = plan_source(schema, input)?;
    check_query_filter(schema, &planned)?;
    Ok(planned)
}

fn plan_source(schema: &'static TableSchema, input: &PlanInput<'_>) -> Result<Planned> {
    let invalid = |reason: String| Error::InvalidQuery {
        entity: schema.entity,
        reason,
    };
    for node in input.filters {
        check_values(schema, node)?;
    }

    let forced = match input.index {
        Some(name) => Some(schema.index(name).ok_or_else(|| {
            let known: Vec<&str> = schema.indexes.iter().map(|i| i.name).collect();
            invalid(format!(
                "unknown index `{name}`; {} declares {}",
                schema.entity,
                if known.is_empty() {
                    "no indexes".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?),
        None => None,
    };
    if input.consistency.is_strong() {
        if let Some(index) = forced.filter(|i| i.kind == IndexKind::Global) {
            return Err(invalid(format!(
                "consistent reads are not supported on global secondary index `{}`",
                index.name
            )));
        }
    }

    if input.source == Source::Scan {
        let reason = "a scan was asked for".to_owned();
        return Ok(Planned {
            operation: Operation::Scan,
            index: forced,
            key_nodes: Vec::new(),
            filter_nodes: input.filters.to_vec(),
            reason,
        });
    }

    if let Some(index) = forced {
        return match cover(input.filters, &index.partition_key, index.sort_key.as_ref()) {
            Some(used) => {
                let (key_nodes, filter_nodes) = split(input.filters, &used);
                Ok(Planned {
                    operation: Operation::Query,
                    index: Some(index),
                    key_nodes,
                    filter_nodes,
                    reason: format!("{} was asked for", index_label(index)),
                })
            }
            None if input.source.allows_scan() => Ok(Planned {
                operation: Operation::Scan,
                index: Some(index),
                key_nodes: Vec::new(),
                filter_nodes: input.filters.to_vec(),
                reason: format!(
                    "{} was asked for, no equality on its partition key `{}`, and scans are allowed",
                    index_label(index),
                    index.partition_key.name
                ),
            }),
            None => Err(invalid(format!(
                "{} needs an equality condition on its partition key `{}`",
                index_label(index),
                index.partition_key.name
            ))),
        };
    }

    // Full primary key by equality and nothing else: GetItem.
    if let Some(used) = cover(
        input.filters,
        &schema.partition_key,
        schema.sort_key.as_ref(),
    ) {
        let full_key = used.len() == 1 + usize::from(schema.sort_key.is_some());
        let sort_is_eq = used
            .get(1)
            .is_none_or(|&s| matches!(input.filters[s], Node::Compare(_, Cmp::Eq, _)));
        if full_key && sort_is_eq && input.filters.len() == used.len() {
            let (key_nodes, _) = split(input.filters, &used);
            return Ok(Planned {
                operation: Operation::GetItem,
                index: None,
                key_nodes,
                filter_nodes: Vec::new(),
                reason: "equality on the whole primary key and no other condition".to_owned(),
            });
        }
        let (key_nodes, filter_nodes) = split(input.filters, &used);
        return Ok(Planned {
            operation: Operation::Query,
            index: None,
            key_nodes,
            filter_nodes,
            reason: format!(
                "the table's partition key `{}` is given by equality",
                schema.partition_key.name
            ),
        });
    }

    // Indexes: most key conditions wins; declaration order breaks ties.
    let mut best: Option<(&'static IndexSchema, Vec<usize>)> = None;
    for index in schema.indexes {
        if input.consistency.is_strong() && index.kind == IndexKind::Global {
            continue;
        }
        if let Some(used) = cover(input.filters, &index.partition_key, index.sort_key.as_ref()) {
            if best.as_ref().is_none_or(|(_, b)| used.len() > b.len()) {
                best = Some((index, used));
            }
        }
    }
    if let Some((index, used)) = best {
        let (key_nodes, filter_nodes) = split(input.filters, &used);
        let reason = format!(
            "the table's partition key `{}` is not given; {} covers {} condition(s) in its key",
            schema.partition_key.name,
            index_label(index),
            used.len()
        );
        return Ok(Planned {
            operation: Operation::Query,
            index: Some(index),
            key_nodes,
            filter_nodes,
            reason,
        });
    }

    if input.source.allows_scan() {
        return Ok(Planned {
            operation: Operation::Scan,
            index: None,
            key_nodes: Vec::new(),
            filter_nodes: input.filters.to_vec(),
            reason: "no key condition covers the conditions, and scans are allowed".to_owned(),
        });
    }
    let mut options = vec![format!("`{}` (the table)", schema.partition_key.name)];
    for index in schema.indexes {
        if input.consistency.is_strong() && index.kind == IndexKind::Global {
            continue;
        }
        options.push(format!(
            "`{}` ({})",
            index.partition_key.name,
            index_label(index)
        ));
    }
    Err(Error::ScanRequired {
        entity: schema.entity,
        keys: options.join(", "),
    })
}

/// Key-condition and filter values must be of the attribute's key type where the attribute is
/// a key: a mismatch would only fail at the server.
fn check_values(schema: &TableSchema, node: &Node) -> Result<()> {
    let check = |path: &crate::attr::Path, value: &AttributeValue| -> Result<()> {
        let Some(name) = top_level(path) else {
            return Ok(());
        };
        if let Some(key) = schema
            .all_key_attributes()
            .into_iter()
            .find(|k| k.name == name)
        {
            let ok = matches!(
                (key.scalar, value),
                (crate::ScalarType::String, AttributeValue::S(_))
                    | (crate::ScalarType::Number, AttributeValue::N(_))
                    | (crate::ScalarType::Binary, AttributeValue::B(_))
            );
            if !ok {
                return Err(Error::validation(
                    schema.entity,
                    name,
                    format!(
                        "key attribute of type {} compared with a value of type {}",
                        key.scalar.code(),
                        crate::value::type_name(value)
                    ),
                ));
            }
        }
        Ok(())
    };
    match node {
        Node::Compare(p, _, v) | Node::BeginsWith(p, v) => match v {
            Ok(v) => check(p, v),
            Err(e) => Err(Error::validation(schema.entity, p.to_string(), e)),
        },
        Node::Between(p, lo, hi) => {
            for v in [lo, hi] {
                match v {
                    Ok(v) => check(p, v)?,
                    Err(e) => return Err(Error::validation(schema.entity, p.to_string(), e)),
                }
            }
            Ok(())
        }
        Node::Contains(p, Err(e)) => Err(Error::validation(schema.entity, p.to_string(), e)),
        Node::In(p, vs) => vs.iter().try_for_each(|v| match v {
            Ok(v) => check(p, v),
            Err(e) => Err(Error::validation(schema.entity, p.to_string(), e)),
        }),
        Node::And(all) | Node::Or(all) => all.iter().try_for_each(|n| check_values(schema, n)),
        Node::Not(inner) => check_values(schema, inner),
        _ => Ok(()),
    }
}

/// Whether items read from `index` hold every attribute of `needed` (`None`: the whole entity).
pub(crate) fn index_holds(
    schema: &TableSchema,
    index: &IndexSchema,
    needed: Option<&[String]>,
) -> bool {
    // An index holds the table's keys, its own keys, and its projection.
    let is_key = |name: &str| {
        schema.is_key_attribute(name)
            || index.partition_key.name == name
            || index.sort_key.is_some_and(|k| k.name == name)
    };
    let projected = |name: &str| match index.projection {
        Projection::All => true,
        Projection::KeysOnly => is_key(name),
        Projection::Include(extra) => extra.contains(&name) || is_key(name),
    };
    match needed {
        None => {
            index.projection == Projection::All || schema.attributes.iter().all(|a| projected(a))
        }
        Some(names) => names.iter().all(|n| projected(n)),
    }
}
