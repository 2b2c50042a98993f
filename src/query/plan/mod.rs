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
//! 4. No equality on any partition key, but a condition listing several values of one
//!    (`pk.is_in([..])`, or an OR of `pk = v`): a **fan-out**, one Query per value on the table
//!    (first) or the index keeping the most conditions in its key; each Query gets the sort-key
//!    condition and the filter. At most [`DEFAULT_MAX_FAN_OUT`] partitions unless the find
//!    allows more; above that, an error, never a scan.
//! 5. Nothing covers the conditions: [`Error::ScanRequired`] naming the keys that would have
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
    /// For a find over several partitions: how the Queries run and merge.
    pub fan_out: Option<FanOutPlan>,
}

/// The partitions a fan-out find reads: the number read by default at most.
pub const DEFAULT_MAX_FAN_OUT: usize = 100;

/// How a find over several partitions runs: one Query per partition, merged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FanOutPlan {
    /// The partition key the condition lists values of.
    pub attribute: &'static str,
    /// How many partitions (distinct values) are read: one Query each.
    pub partitions: usize,
    /// How many Queries run at once.
    pub concurrency: usize,
    /// How the partitions' items are merged.
    pub order: MergeOrder,
}

/// How the items of a fan-out's partitions are merged into one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MergeOrder {
    /// One partition after another, in the order the values were listed (duplicates once).
    Partitions,
    /// Ordered by the sort key across all partitions (a k-way merge), lowest first; ties in
    /// the order the partitions were listed.
    SortKeyAscending,
    /// Ordered by the sort key across all partitions, highest first.
    SortKeyDescending,
}

impl fmt::Display for FanOutPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = match self.order {
            MergeOrder::Partitions => "in partition order",
            MergeOrder::SortKeyAscending => "merged by sort key, ascending",
            MergeOrder::SortKeyDescending => "merged by sort key, descending",
        };
        write!(
            f,
            "{} Queries, one per `{}` value, {} at a time, {order}",
            self.partitions, self.attribute, self.concurrency
        )
    }
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
        if let Some(fan_out) = &self.fan_out {
            write!(f, " fan-out [{fan_out}]")?;
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
    /// A Query per partition value: the key condition holds the condition listing them.
    pub fan_out: Option<FanOut>,
}

/// The partitions a fan-out reads.
#[derive(Debug, Clone)]
pub(crate) struct FanOut {
    /// The partition key (of the table or of the index read).
    pub attribute: &'static str,
    /// The distinct values, in the order listed.
    pub values: Vec<AttributeValue>,
    /// Where the condition listing them is among the find's conditions.
    pub position: usize,
}

impl Planned {
    fn scan(index: Option<&'static IndexSchema>, filters: &[Node], reason: String) -> Self {
        Planned {
            operation: Operation::Scan,
            index,
            key_nodes: Vec::new(),
            filter_nodes: filters.to_vec(),
            reason,
            fan_out: None,
        }
    }
}

/// What the planner needs to know about a find.
pub(crate) struct PlanInput<'a> {
    pub filters: &'a [Node],
    pub index: Option<&'a str>,
    pub consistency: Consistency,
    pub source: Source,
    /// The most partitions a fan-out may read.
    pub max_fan_out: usize,
}

impl<'a> PlanInput<'a> {
    pub(crate) fn of(spec: &'a Spec) -> Self {
        PlanInput {
            filters: &spec.filters,
            index: spec.index.as_deref(),
            consistency: spec.consistency,
            source: spec.source,
            max_fan_out: spec.max_fan_out,
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

/// The values a condition lists for partition key `key`: `key IN (..)`, or an OR of `key = v`
/// (`None` for anything else, or when a value failed to convert).
fn partition_values(node: &Node, key: &KeySchema) -> Option<Vec<AttributeValue>> {
    match node {
        Node::In(p, values) if top_level(p) == Some(key.name) => {
            values.iter().map(|v| v.as_ref().ok().cloned()).collect()
        }
        Node::Or(children) => children
            .iter()
            .map(|c| match c {
                Node::Compare(p, Cmp::Eq, Ok(v)) if top_level(p) == Some(key.name) => {
                    Some(v.clone())
                }
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Positions of the filters that form the key condition on (pk, sk), if pk is covered.
fn cover(filters: &[Node], pk: &KeySchema, sk: Option<&KeySchema>) -> Option<Vec<usize>> {
    cover_with(filters, pk, sk, is_partition_condition)
}

/// As [`cover`], with a condition listing partition values in place of the equality.
fn fan_out_cover(filters: &[Node], pk: &KeySchema, sk: Option<&KeySchema>) -> Option<Vec<usize>> {
    cover_with(filters, pk, sk, |n, key| partition_values(n, key).is_some())
}

fn cover_with(
    filters: &[Node],
    pk: &KeySchema,
    sk: Option<&KeySchema>,
    partition: impl Fn(&Node, &KeySchema) -> bool,
) -> Option<Vec<usize>> {
    let p = filters.iter().position(|n| partition(n, pk))?;
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
        return Ok(Planned::scan(forced, input.filters, reason));
    }

    if let Some(index) = forced {
        let (pk, sk) = (&index.partition_key, index.sort_key.as_ref());
        let listed = match cover(input.filters, pk, sk) {
            Some(_) => None,
            None => fan_out_cover(input.filters, pk, sk),
        };
        if let Some(used) = listed {
            let reason = format!(
                "{} was asked for, with several values of its partition key `{}`",
                index_label(index),
                index.partition_key.name
            );
            return fan_out(schema, input, Some(index), &used, reason);
        }
        return match cover(input.filters, &index.partition_key, index.sort_key.as_ref()) {
            Some(used) => {
                let (key_nodes, filter_nodes) = split(input.filters, &used);
                Ok(Planned {
                    operation: Operation::Query,
                    index: Some(index),
                    key_nodes,
                    filter_nodes,
                    reason: format!("{} was asked for", index_label(index)),
                    fan_out: None,
                })
            }
            None if input.source.allows_scan() => Ok(Planned::scan(
                Some(index),
                input.filters,
                format!(
                    "{} was asked for, no equality on its partition key `{}`, and scans are allowed",
                    index_label(index),
                    index.partition_key.name
                ),
            )),
            None => Err(invalid(format!(
                "{} needs an equality condition on its partition key `{}` (or a list of its \
                 values: a fan-out)",
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
                fan_out: None,
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
            fan_out: None,
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
            fan_out: None,
        });
    }

    // Several values of a partition key: one Query per value, the table's key first.
    if let Some(used) = fan_out_cover(
        input.filters,
        &schema.partition_key,
        schema.sort_key.as_ref(),
    ) {
        let reason = format!(
            "the table's partition key `{}` is given several values",
            schema.partition_key.name
        );
        return fan_out(schema, input, None, &used, reason);
    }
    let mut best: Option<(&'static IndexSchema, Vec<usize>)> = None;
    for index in schema.indexes {
        if input.consistency.is_strong() && index.kind == IndexKind::Global {
            continue;
        }
        let covered = fan_out_cover(input.filters, &index.partition_key, index.sort_key.as_ref());
        if let Some(used) = covered {
            if best.as_ref().is_none_or(|(_, b)| used.len() > b.len()) {
                best = Some((index, used));
            }
        }
    }
    if let Some((index, used)) = best {
        let reason = format!(
            "the table's partition key `{}` is not given; {} has several values of its \
             partition key `{}`",
            schema.partition_key.name,
            index_label(index),
            index.partition_key.name
        );
        return fan_out(schema, input, Some(index), &used, reason);
    }

    if input.source.allows_scan() {
        let reason = "no key condition covers the conditions, and scans are allowed".to_owned();
        return Ok(Planned::scan(None, input.filters, reason));
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

/// A fan-out on the table (`index` `None`) or an index: the conditions at `used` (the list of
/// partition values first, then any sort-key condition) form each Query's key condition. The
/// values are deduplicated (in the order listed) and bounded by the find's maximum.
fn fan_out(
    schema: &'static TableSchema,
    input: &PlanInput<'_>,
    index: Option<&'static IndexSchema>,
    used: &[usize],
    reason: String,
) -> Result<Planned> {
    let key = index.map_or(schema.partition_key, |i| i.partition_key);
    let position = used[0];
    let listed = partition_values(&input.filters[position], &key).expect("a fan-out cover");
    let mut seen = std::collections::HashSet::with_capacity(listed.len());
    let values: Vec<AttributeValue> = listed
        .into_iter()
        .filter(|v| seen.insert(crate::key::encode_key_values(v, None)))
        .collect();
    let invalid = |reason: String| Error::InvalidQuery {
        entity: schema.entity,
        reason,
    };
    if values.is_empty() {
        return Err(invalid(format!(
            "the condition on partition key `{}` lists no values: there is nothing to read",
            key.name
        )));
    }
    if values.len() > input.max_fan_out {
        return Err(invalid(format!(
            "the condition on partition key `{}` lists {} values: a fan-out reads at most {} \
             partitions (one Query each); raise the bound with max_fan_out(n), or narrow the list",
            key.name,
            values.len(),
            input.max_fan_out
        )));
    }
    let (key_nodes, filter_nodes) = split(input.filters, used);
    Ok(Planned {
        operation: Operation::Query,
        index,
        key_nodes,
        filter_nodes,
        reason,
        fan_out: Some(FanOut {
            attribute: key.name,
            values,
            position,
        }),
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
