//! Renders a planned find into what a request needs: the key condition, the filter and the
//! projection with their placeholders, the projection of the follow-up table read, the plan
//! `explain()` shows, and the fingerprint that binds cursors and query-cache entries to the
//! query exactly as sent.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use super::plan::{Decisions, Plan, Planned};
use super::spec::{Order, ReadAs, Spec};
use crate::advice::{self, Pattern};
use crate::attr::Path;
use crate::expr::condition::{Cmp, Node};
use crate::expr::{self, Placeholders};
use crate::page::{self, CursorCheck};
use crate::{Error, Item, Operation, Result, TableSchema};

/// A projection expression with its attribute names.
pub(crate) type Projected = (Option<String>, Option<HashMap<String, String>>);

/// A find after planning and rendering: everything a request needs.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) plan: Plan,
    pub(crate) fingerprint: String,
    /// The table name, with the client's prefix.
    pub(crate) table: String,
    pub(crate) entity: &'static str,
    pub(crate) index: Option<&'static str>,
    pub(crate) key_condition: Option<String>,
    pub(crate) filter: Option<String>,
    pub(crate) projection: Option<String>,
    /// Every name placeholder of the request.
    pub(crate) names: Option<HashMap<String, String>>,
    /// The names the key condition and the filter use (a count sends no projection, and
    /// DynamoDB refuses unused names).
    pub(crate) condition_names: Option<HashMap<String, String>>,
    pub(crate) values: Option<HashMap<String, AttributeValue>>,
    pub(crate) fetch_base: bool,
    /// The projection of the table read that follows an index read.
    pub(crate) base_projection: Option<Projected>,
    /// The attributes a cursor resumes on.
    pub(crate) key_attrs: Vec<&'static str>,
    /// What a cursor of this find holds, checked before any request.
    pub(crate) cursor: CursorCheck,
    pub(crate) table_keys: Vec<&'static str>,
    pub(crate) get_key: Option<Item>,
    pub(crate) consistent: bool,
    pub(crate) descending: bool,
    pub(crate) has_filter: bool,
    /// What the index advisor records of each request, for a scan or a filtered query.
    pub(crate) pattern: Option<Pattern>,
    /// The value of the table's partition key, when the find reads one partition of the
    /// table itself (its cached results are scoped to that partition).
    pub(crate) partition: Option<AttributeValue>,
}

/// Renders `nodes` (ANDed), `None` when there are none. `separator` joins parenthesised parts
/// (a key condition takes no parentheses).
fn render_nodes(
    schema: &TableSchema,
    ph: &mut Placeholders,
    nodes: &[Node],
    parenthesise: bool,
) -> Result<Option<String>> {
    if nodes.is_empty() {
        return Ok(None);
    }
    let parenthesise = parenthesise && nodes.len() > 1;
    let mut out = String::with_capacity(32 * nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        if i > 0 {
            out.push_str(" AND ");
        }
        if parenthesise {
            out.push('(');
        }
        node.render(ph, &mut out)
            .map_err(|(path, e)| Error::validation(schema.entity, path.to_string(), e))?;
        if parenthesise {
            out.push(')');
        }
    }
    Ok(Some(out))
}

/// What `explain()` shows.
pub(crate) fn describe(nodes: &[Node]) -> Option<String> {
    (!nodes.is_empty()).then(|| {
        nodes
            .iter()
            .map(Node::describe)
            .collect::<Vec<_>>()
            .join(" AND ")
    })
}

/// The paths read from the source: only the keys when full items are fetched afterwards; else
/// the selection plus the keys (nothing: every attribute).
fn read_paths(spec: &Spec, decisions: &Decisions) -> Vec<Path> {
    if decisions.fetch_base {
        decisions.key_attrs.iter().map(|k| Path::top(*k)).collect()
    } else if spec.projection.is_empty() {
        Vec::new()
    } else {
        expr::with_keys(&spec.projection, &decisions.key_attrs)
    }
}

/// The projection of the follow-up table read, when the find selects attributes: with every
/// key attribute of the find (the index's too), so a full item says where it stands.
fn base_projection(spec: &Spec, decisions: &Decisions) -> Option<Projected> {
    (decisions.fetch_base && !spec.projection.is_empty()).then(|| {
        let mut ph = Placeholders::default();
        let paths = expr::with_keys(&spec.projection, &decisions.key_attrs);
        let projection = expr::projection(&mut ph, &paths);
        (projection, ph.names())
    })
}

/// The table's partition key value a find on the table itself reads (GetItem or Query; not
/// an index: a write may move an item between an index's partitions).
fn base_partition(schema: &TableSchema, planned: &Planned) -> Option<AttributeValue> {
    if planned.index.is_some() {
        return None;
    }
    planned.key_nodes.iter().find_map(|node| match node {
        Node::Compare(path, Cmp::Eq, Ok(value)) if path.root() == schema.partition_key.name => {
            Some(value.clone())
        }
        _ => None,
    })
}

/// What `explain()` shows of a planned find (with no fan-out: a fan-out sets its own).
pub(crate) fn explain(spec: &Spec, decisions: &Decisions) -> Plan {
    let planned = &decisions.planned;
    Plan {
        operation: planned.operation,
        index: planned.index.map(|i| i.name),
        key_condition: describe(&planned.key_nodes),
        filter: describe(&planned.filter_nodes),
        projection: (!spec.projection.is_empty())
            .then(|| spec.projection.iter().map(|p| p.to_string()).collect()),
        fetches_base_items: decisions.fetch_base,
        reason: planned.reason.clone(),
        fan_out: None,
    }
}

/// Renders a planned find on `table` (the full, prefixed name).
pub(crate) fn prepare(
    schema: &'static TableSchema,
    spec: &Spec,
    decisions: Decisions,
    table: String,
) -> Result<Prepared> {
    let planned = &decisions.planned;
    let mut ph = Placeholders::default();
    let key_condition = if planned.operation == Operation::Query {
        Some(render_nodes(schema, &mut ph, &planned.key_nodes, false)?.unwrap_or_default())
    } else {
        None
    };
    let filter = render_nodes(schema, &mut ph, &planned.filter_nodes, true)?;
    let condition_names = ph.names();
    let projection = expr::projection(&mut ph, &read_paths(spec, &decisions));
    let plan = explain(spec, &decisions);
    let (names, values) = (ph.names(), ph.values());
    let has_filter = !planned.filter_nodes.is_empty();
    let pattern =
        advice::seen_of(schema, planned.operation, planned.index, has_filter).map(|seen| {
            Pattern::new(
                schema,
                &table,
                seen,
                &planned.filter_nodes,
                &spec.projection,
            )
        });
    let mut prepared = Prepared {
        fingerprint: String::new(),
        table,
        entity: schema.entity,
        index: planned.index.map(|i| i.name),
        has_filter,
        pattern,
        partition: base_partition(schema, planned),
        key_condition,
        filter,
        projection,
        names,
        condition_names,
        values,
        fetch_base: decisions.fetch_base,
        base_projection: base_projection(spec, &decisions),
        table_keys: schema.primary_key_names(),
        key_attrs: decisions.key_attrs,
        cursor: decisions.cursor,
        get_key: decisions.get_key,
        consistent: spec.consistency.is_strong(),
        descending: spec.order == Order::Descending,
        plan,
    };
    prepared.fingerprint = fingerprint(&prepared, spec);
    Ok(prepared)
}

/// What the query is, exactly as sent: the expressions with their placeholders resolved
/// through the name and value maps (so a nested path `m.c` and an attribute named "m.c"
/// differ), the key of a GetItem in the canonical key encoding, and how it is read.
fn fingerprint(p: &Prepared, spec: &Spec) -> String {
    let sorted_names: Option<BTreeMap<&String, &String>> =
        p.names.as_ref().map(|m| m.iter().collect());
    let sorted_values: Option<BTreeMap<&String, &AttributeValue>> =
        p.values.as_ref().map(|m| m.iter().collect());
    let normalised = format!(
        "{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{}|{}",
        p.entity,
        p.table,
        p.plan.operation,
        p.plan.index,
        p.key_condition,
        p.filter,
        p.projection,
        sorted_names,
        sorted_values,
        p.get_key.as_ref().map(crate::key::encode_item_key),
        p.descending,
        spec.segments,
        spec.read_as == ReadAs::Projection,
        p.fetch_base,
    );
    page::fingerprint(&normalised)
}
