//! The index advisor ([`Client::index_advice`](crate::Client::index_advice)): the access
//! patterns a client could not serve by key, and the global secondary indexes that would.
//!
//! Three kinds of finds are recorded, each as a pattern (entity, table, the attributes its
//! conditions compare by equality and by range, what it selects):
//! - finds refused with [`Error::ScanRequired`](crate::Error::ScanRequired) (no key serves them);
//! - scans (`scan()`, or `allow_scan()` falling back to one), with the items each request read
//!   and returned and the capacity it consumed;
//! - queries with a filter, likewise: a filter that drops most of what a query reads is an
//!   index missing its sort key.
//!
//! A pattern becomes a recommendation when an index can serve it: a scan's or a refused find's
//! first equality attribute as the partition key (and a range attribute, or a second equality,
//! as the sort key); a filtered query keeps its partition key and takes the filter's attribute
//! as the sort key. Patterns that recommend the same index are merged. The read units saved are
//! estimated from what was observed: the capacity consumed times the share of the items read
//! that the filter dropped (a refused find consumed nothing, so it saves nothing measurable;
//! it is counted as seen).
//!
//! Recording happens once per scan or filtered request and once per refused find (a lock and a
//! map lookup), never for GetItem or an unfiltered query.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::attr::{Path, PathSegment};
use crate::expr::condition::{Cmp, Node};
use crate::{Operation, ScalarType, TableSchema};

/// An index the advisor recommends, from [`Client::index_advice`](crate::Client::index_advice).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IndexAdvice {
    /// The entity whose finds it would serve.
    pub entity: &'static str,
    /// Its table, with the client's prefix.
    pub table: String,
    /// A name for the index.
    pub index_name: String,
    /// The index's partition key attribute and type.
    pub partition_key: KeyAttr,
    /// Its sort key, if any.
    pub sort_key: Option<KeyAttr>,
    /// The attributes to project besides the keys; `None`: all (a find read whole items).
    pub projection: Option<Vec<String>>,
    /// Finds and requests seen that it would serve.
    pub seen: u64,
    /// Of those, finds refused with `ScanRequired`.
    pub refused: u64,
    /// Items the observed requests read.
    pub items_read: u64,
    /// Items they returned after their filters.
    pub items_returned: u64,
    /// Capacity units they consumed.
    pub consumed_capacity: f64,
    /// Read units the index would have saved on them (estimated; see the module docs).
    pub read_units_saved: f64,
    /// One find it would serve, as planned (`explain()`'s form) or as refused.
    pub example: String,
}

impl IndexAdvice {
    /// The declaration to add to the entity: the struct attribute and the field attributes
    /// (fields named by their stored attribute names).
    pub fn declaration(&self) -> String {
        let projection = match &self.projection {
            None => "all".to_owned(),
            Some(attrs) if attrs.is_empty() => "keys_only".to_owned(),
            Some(attrs) => format!("include({})", attrs.join(", ")),
        };
        let name = &self.index_name;
        let mut text =
            format!("#[dynamite(global_index(name = \"{name}\", projection = {projection}))]");
        let mut key = |attr: &str, role: &str| {
            text.push_str(&format!(
                "\n// on the field stored as `{attr}`:\n#[dynamite(index_key(index = \"{name}\", {role}))]"
            ));
        };
        key(&self.partition_key.0, "partition");
        if let Some((sort, _)) = &self.sort_key {
            key(sort, "sort");
        }
        text
    }
}

impl fmt::Display for IndexAdvice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {}: index `{}` keyed by `{}`",
            self.entity, self.table, self.index_name, self.partition_key.0
        )?;
        if let Some((sort, _)) = &self.sort_key {
            write!(f, " and `{sort}`")?;
        }
        writeln!(
            f,
            " (seen {} times, {} refused; {} items read for {} returned; ~{:.1} read units saved)",
            self.seen, self.refused, self.items_read, self.items_returned, self.read_units_saved
        )?;
        writeln!(f, "  e.g. {}", self.example)?;
        write!(f, "{}", self.declaration())
    }
}

/// A key attribute: its name and type.
type KeyAttr = (String, ScalarType);

/// How a pattern was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Seen {
    /// Refused: `ScanRequired`.
    Refused,
    /// Read with a Scan.
    Scan,
    /// Read with a Query whose filter dropped items; its partition key attribute.
    FilteredQuery(&'static str),
}

/// An entity's schema, the same when it is the same static.
#[derive(Debug, Clone, Copy)]
struct Schema(&'static TableSchema);

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Schema {}

impl std::hash::Hash for Schema {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(self.0, state);
    }
}

/// An access pattern the keys did not serve, as the conditions of a find describe it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Pattern {
    schema: Schema,
    table: String,
    seen: Seen,
    /// Top-level attributes compared with `=` to a key-typed value, in condition order.
    equalities: Vec<KeyAttr>,
    /// Top-level attributes compared by range (`<`, `<=`, `>`, `>=`, `BETWEEN`, `begins_with`).
    ranges: Vec<KeyAttr>,
    /// Selected attributes, `None`: whole items.
    selected: Option<Vec<String>>,
}

/// The scalar type of a value that can be a key.
fn key_type(value: &AttributeValue) -> Option<ScalarType> {
    match value {
        AttributeValue::S(_) => Some(ScalarType::String),
        AttributeValue::N(_) => Some(ScalarType::Number),
        AttributeValue::B(_) => Some(ScalarType::Binary),
        _ => None,
    }
}

fn top_level(path: &Path) -> Option<&str> {
    match path.segments() {
        [PathSegment::Name(name)] => Some(name),
        _ => None,
    }
}

/// The equality and range attributes of ANDed `nodes` (an `OR` or `NOT` offers no key).
fn key_candidates(nodes: &[Node], pattern: &mut Pattern) {
    for node in nodes {
        let (path, value, list) = match node {
            Node::And(children) => {
                key_candidates(children, pattern);
                continue;
            }
            Node::Compare(path, Cmp::Eq, Ok(value)) => (path, value, true),
            Node::Compare(path, Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge, Ok(value))
            | Node::Between(path, Ok(value), _)
            | Node::BeginsWith(path, Ok(value)) => (path, value, false),
            _ => continue,
        };
        let (Some(name), Some(scalar)) = (top_level(path), key_type(value)) else {
            continue;
        };
        let target = if list {
            &mut pattern.equalities
        } else {
            &mut pattern.ranges
        };
        if !target.iter().any(|(n, _)| n == name) {
            target.push((name.to_owned(), scalar));
        }
    }
}

impl Pattern {
    /// The pattern of a find on `table` met as `seen`, with `nodes` the conditions the keys
    /// did not serve (all of them for a scan or a refused find, the filter for a query) and
    /// `selected` its selection (empty: whole items).
    pub(crate) fn new(
        schema: &'static TableSchema,
        table: &str,
        seen: Seen,
        nodes: &[Node],
        selected: &[Path],
    ) -> Self {
        let mut pattern = Pattern {
            schema: Schema(schema),
            table: table.to_owned(),
            seen,
            equalities: Vec::new(),
            ranges: Vec::new(),
            selected: (!selected.is_empty()).then(|| {
                let mut roots: Vec<String> = selected.iter().map(|p| p.root().to_owned()).collect();
                roots.dedup();
                roots
            }),
        };
        key_candidates(nodes, &mut pattern);
        pattern
    }

    /// The index that would serve the pattern: (partition key, sort key), or `None`.
    fn index_keys(&self) -> Option<(KeyAttr, Option<KeyAttr>)> {
        let schema = self.schema.0;
        match self.seen {
            Seen::Refused | Seen::Scan => {
                let (partition, rest) = self.equalities.split_first()?;
                let sort = self.ranges.first().or(rest.first()).cloned();
                Some((partition.clone(), sort))
            }
            Seen::FilteredQuery(partition) => {
                let scalar = if partition == schema.partition_key.name {
                    schema.partition_key.scalar
                } else {
                    schema
                        .indexes
                        .iter()
                        .find(|i| i.partition_key.name == partition)?
                        .partition_key
                        .scalar
                };
                let sort = self.equalities.first().or(self.ranges.first()).cloned()?;
                Some(((partition.to_owned(), scalar), Some(sort)))
            }
        }
    }
}

/// What was observed of a pattern.
#[derive(Debug, Default, Clone)]
struct Observed {
    /// The first find seen, as planned or refused.
    example: String,
    seen: u64,
    refused: u64,
    items_read: u64,
    items_returned: u64,
    consumed_capacity: f64,
}

/// Patterns kept at most: they are shapes (attribute names, not values), so a service has a
/// handful; past this, new ones are not recorded.
const MAX_PATTERNS: usize = 1024;

/// A client's record of the patterns its keys did not serve.
#[derive(Default)]
pub(crate) struct Advisor {
    patterns: Mutex<HashMap<Pattern, Observed>>,
}

/// What one request read: items read, returned, and the capacity consumed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReadFigures {
    pub(crate) items_read: u64,
    pub(crate) items_returned: u64,
    pub(crate) consumed_capacity: f64,
}

impl Advisor {
    /// What was observed of `pattern` (`example`: the find, if it is new), `None` when the
    /// record is full.
    fn observed<'m>(
        patterns: &'m mut HashMap<Pattern, Observed>,
        pattern: &Pattern,
        example: impl FnOnce() -> String,
    ) -> Option<&'m mut Observed> {
        if !patterns.contains_key(pattern) {
            if patterns.len() >= MAX_PATTERNS {
                return None;
            }
            let observed = Observed {
                example: example(),
                ..Observed::default()
            };
            patterns.insert(pattern.clone(), observed);
        }
        patterns.get_mut(pattern)
    }

    /// Records a find refused with `ScanRequired` (`example`: how it reads).
    pub(crate) fn refused(&self, pattern: &Pattern, example: impl FnOnce() -> String) {
        let mut patterns = self.patterns.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(observed) = Self::observed(&mut patterns, pattern, example) {
            observed.seen += 1;
            observed.refused += 1;
        }
    }

    /// Records a request of a scan or filtered query (`example`: its plan).
    pub(crate) fn read(
        &self,
        pattern: &Pattern,
        figures: ReadFigures,
        example: impl FnOnce() -> String,
    ) {
        let mut patterns = self.patterns.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(observed) = Self::observed(&mut patterns, pattern, example) else {
            return;
        };
        observed.seen += 1;
        observed.items_read += figures.items_read;
        observed.items_returned += figures.items_returned;
        observed.consumed_capacity += figures.consumed_capacity;
    }

    /// The recommendations, best first: most read units saved, then most seen.
    pub(crate) fn advice(&self) -> Vec<IndexAdvice> {
        let patterns = self.patterns.lock().unwrap_or_else(PoisonError::into_inner);
        // Each recommendation, and how often the find of its example was seen: the example
        // is the most frequent pattern's.
        let mut merged: Vec<(IndexAdvice, u64)> = Vec::new();
        for (pattern, observed) in patterns.iter() {
            let schema = pattern.schema.0;
            let Some((partition, sort)) = pattern.index_keys() else {
                continue;
            };
            if exists(schema, &partition.0, sort.as_ref().map(|s| s.0.as_str())) {
                continue;
            }
            let (advice, example_seen) = match merged.iter_mut().find(|(a, _)| {
                a.entity == schema.entity
                    && a.table == pattern.table
                    && a.partition_key == partition
                    && a.sort_key == sort
            }) {
                Some((advice, example_seen)) => (advice, example_seen),
                None => {
                    let advice = IndexAdvice {
                        entity: schema.entity,
                        table: pattern.table.clone(),
                        index_name: index_name(&partition.0, sort.as_ref().map(|s| s.0.as_str())),
                        partition_key: partition.clone(),
                        sort_key: sort.clone(),
                        projection: Some(Vec::new()),
                        seen: 0,
                        refused: 0,
                        items_read: 0,
                        items_returned: 0,
                        consumed_capacity: 0.0,
                        read_units_saved: 0.0,
                        example: String::new(),
                    };
                    merged.push((advice, 0));
                    let (advice, example_seen) = merged.last_mut().expect("just pushed");
                    (advice, example_seen)
                }
            };
            add(advice, schema, pattern, observed);
            if observed.seen > *example_seen {
                *example_seen = observed.seen;
                advice.example.clone_from(&observed.example);
            }
        }
        let mut merged: Vec<IndexAdvice> = merged.into_iter().map(|(a, _)| a).collect();
        merged.sort_by(|a, b| {
            b.read_units_saved
                .total_cmp(&a.read_units_saved)
                .then(b.seen.cmp(&a.seen))
                .then(a.index_name.cmp(&b.index_name))
        });
        merged
    }
}

/// Adds what was observed of `pattern` to `advice`.
fn add(advice: &mut IndexAdvice, schema: &TableSchema, pattern: &Pattern, observed: &Observed) {
    advice.seen += observed.seen;
    advice.refused += observed.refused;
    advice.items_read += observed.items_read;
    advice.items_returned += observed.items_returned;
    advice.consumed_capacity += observed.consumed_capacity;
    if observed.items_read > 0 {
        let dropped = 1.0 - observed.items_returned as f64 / observed.items_read as f64;
        advice.read_units_saved += observed.consumed_capacity * dropped.max(0.0);
    }
    // The projection covers every pattern's selection; a whole-item read needs all.
    advice.projection = match (advice.projection.take(), &pattern.selected) {
        (Some(mut attrs), Some(selected)) => {
            let keys = [
                Some(schema.partition_key.name),
                schema.sort_key.map(|k| k.name),
                Some(advice.partition_key.0.as_str()),
                advice.sort_key.as_ref().map(|k| k.0.as_str()),
            ];
            for attr in selected {
                if !keys.contains(&Some(attr.as_str())) && !attrs.contains(attr) {
                    attrs.push(attr.clone());
                }
            }
            Some(attrs)
        }
        _ => None,
    };
}

/// Whether `schema` declares an index keyed by `partition` and `sort` already.
fn exists(schema: &TableSchema, partition: &str, sort: Option<&str>) -> bool {
    schema
        .indexes
        .iter()
        .any(|i| i.partition_key.name == partition && i.sort_key.map(|k| k.name) == sort)
}

/// `status` + `created_at` → `StatusCreatedAtIndex`.
fn index_name(partition: &str, sort: Option<&str>) -> String {
    let mut name = String::new();
    for attr in std::iter::once(partition).chain(sort) {
        let mut upper = true;
        for c in attr.chars() {
            if !c.is_alphanumeric() {
                upper = true;
                continue;
            }
            if upper {
                name.extend(c.to_uppercase());
                upper = false;
            } else {
                name.push(c);
            }
        }
    }
    name.push_str("Index");
    name
}

/// How a planned find is met, if the advisor records it: a scan, or a query with a filter.
pub(crate) fn seen_of(
    schema: &TableSchema,
    operation: Operation,
    index: Option<&crate::IndexSchema>,
    has_filter: bool,
) -> Option<Seen> {
    match operation {
        Operation::Scan => Some(Seen::Scan),
        Operation::Query if has_filter => Some(Seen::FilteredQuery(
            index.map_or(schema.partition_key.name, |i| i.partition_key.name),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeySchema;

    static SCHEMA: TableSchema = TableSchema {
        entity: "Order",
        table: "orders",
        partition_key: KeySchema {
            name: "customer",
            scalar: ScalarType::String,
        },
        sort_key: Some(KeySchema {
            name: "id",
            scalar: ScalarType::Number,
        }),
        indexes: &[],
        ttl: None,
        version: None,
        created_at: None,
        updated_at: None,
        attributes: &["customer", "id", "status", "created_at", "total"],
        fingerprint: 1,
        cache: None,
        stream: None,
    };

    fn eq(attr: &str, value: AttributeValue) -> Node {
        Node::Compare(Path::top(attr.to_owned()), Cmp::Eq, Ok(value))
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_owned())
    }

    fn pattern(seen: Seen, nodes: &[Node], selected: &[&str]) -> Pattern {
        let selected: Vec<Path> = selected.iter().map(|a| Path::top(a.to_string())).collect();
        Pattern::new(&SCHEMA, "p-orders", seen, nodes, &selected)
    }

    fn advice(advisor: &Advisor) -> Vec<IndexAdvice> {
        advisor.advice()
    }

    #[test]
    fn a_scan_by_equality_recommends_that_attribute_as_partition_key() {
        let advisor = Advisor::default();
        let by_status = pattern(
            Seen::Scan,
            &[
                eq("status", s("open")),
                Node::Compare(Path::top("created_at"), Cmp::Gt, Ok(n("5"))),
            ],
            &[],
        );
        for _ in 0..3 {
            advisor.read(
                &by_status,
                ReadFigures {
                    items_read: 100,
                    items_returned: 5,
                    consumed_capacity: 10.0,
                },
                || "Scan".into(),
            );
        }
        let advice = advice(&advisor);
        assert_eq!(advice.len(), 1);
        let a = &advice[0];
        assert_eq!(a.partition_key, ("status".to_owned(), ScalarType::String));
        assert_eq!(
            a.sort_key,
            Some(("created_at".to_owned(), ScalarType::Number))
        );
        assert_eq!(a.index_name, "StatusCreatedAtIndex");
        assert_eq!((a.seen, a.items_read, a.items_returned), (3, 300, 15));
        assert!((a.read_units_saved - 28.5).abs() < 1e-9, "{a:?}");
        assert_eq!(a.projection, None, "whole items were read");
        let declaration = a.declaration();
        assert!(declaration.contains(
            "#[dynamite(global_index(name = \"StatusCreatedAtIndex\", projection = all))]"
        ));
        assert!(
            declaration.contains("#[dynamite(index_key(index = \"StatusCreatedAtIndex\", sort))]")
        );
    }

    #[test]
    fn patterns_of_one_index_merge_and_rank_by_read_units_saved() {
        let advisor = Advisor::default();
        let refused = pattern(Seen::Refused, &[eq("status", s("open"))], &["total"]);
        advisor.refused(&refused, || "refused".into());
        advisor.refused(&refused, String::new);
        let scanned = pattern(Seen::Scan, &[eq("status", s("open"))], &["total", "id"]);
        advisor.read(
            &scanned,
            ReadFigures {
                items_read: 10,
                items_returned: 1,
                consumed_capacity: 2.0,
            },
            String::new,
        );
        // A filtered query on the table's partition: (customer, total).
        let filtered = pattern(
            Seen::FilteredQuery("customer"),
            &[Node::Compare(Path::top("total"), Cmp::Ge, Ok(n("100")))],
            &[],
        );
        advisor.read(
            &filtered,
            ReadFigures {
                items_read: 1000,
                items_returned: 10,
                consumed_capacity: 50.0,
            },
            String::new,
        );
        let advice = advice(&advisor);
        assert_eq!(advice.len(), 2, "{advice:#?}");
        assert_eq!(advice[0].index_name, "CustomerTotalIndex");
        assert_eq!(advice[0].partition_key.0, "customer");
        let status = &advice[1];
        assert_eq!((status.seen, status.refused), (3, 2));
        assert_eq!(
            status.projection,
            Some(vec!["total".to_owned()]),
            "keys left out"
        );
    }

    #[test]
    fn nothing_is_recommended_without_a_key_candidate_or_for_an_existing_index() {
        let advisor = Advisor::default();
        let contains = Node::Contains(Path::top("tags"), Ok(s("x")));
        advisor.refused(&pattern(Seen::Refused, &[contains], &[]), String::new);
        let boolean = eq("active", AttributeValue::Bool(true));
        advisor.refused(&pattern(Seen::Refused, &[boolean], &[]), String::new);
        assert!(advice(&advisor).is_empty());

        static INDEXES: [crate::IndexSchema; 1] = [crate::IndexSchema {
            name: "StatusIndex",
            kind: crate::IndexKind::Global,
            partition_key: KeySchema {
                name: "status",
                scalar: ScalarType::String,
            },
            sort_key: None,
            projection: crate::Projection::All,
        }];
        static INDEXED: TableSchema = TableSchema {
            indexes: &INDEXES,
            ..TableSchema::for_tests(None, 2)
        };
        let p = Pattern::new(
            &INDEXED,
            "t",
            Seen::Refused,
            &[eq("status", s("open"))],
            &[],
        );
        let advisor = Advisor::default();
        advisor.refused(&p, String::new);
        assert!(advisor.advice().is_empty());
    }

    #[test]
    fn index_names_are_pascal_case() {
        assert_eq!(index_name("status", None), "StatusIndex");
        assert_eq!(index_name("created-at", Some("sk")), "CreatedAtSkIndex");
    }
}
