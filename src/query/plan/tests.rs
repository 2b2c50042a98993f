//! One test per planner rule, on a hand-written schema: no server.

use aws_sdk_dynamodb::types::AttributeValue;

use super::*;
use crate::query::spec::{Order, ReadAs};
use crate::value::ScalarType;

const ID: KeySchema = KeySchema {
    name: "id",
    scalar: ScalarType::String,
};
const N: KeySchema = KeySchema {
    name: "n",
    scalar: ScalarType::Number,
};
const STATUS: KeySchema = KeySchema {
    name: "status",
    scalar: ScalarType::String,
};
const CREATED: KeySchema = KeySchema {
    name: "created",
    scalar: ScalarType::Number,
};

static INDEXES: [IndexSchema; 2] = [
    IndexSchema {
        name: "ByStatus",
        kind: IndexKind::Global,
        partition_key: STATUS,
        sort_key: Some(CREATED),
        projection: Projection::Include(&["title"]),
    },
    IndexSchema {
        name: "ByCreated",
        kind: IndexKind::Local,
        partition_key: ID,
        sort_key: Some(CREATED),
        projection: Projection::KeysOnly,
    },
];

static DOC: TableSchema = TableSchema {
    entity: "Doc",
    table: "docs",
    partition_key: ID,
    sort_key: Some(N),
    indexes: &INDEXES,
    ttl: None,
    version: None,
    created_at: None,
    updated_at: None,
    attributes: &["id", "n", "status", "created", "title", "body"],
    fingerprint: 1,
    cache: None,
    stream: None,
};

type A<T> = crate::Attr<(), T>;
const ID_A: A<String> = A::new("id");
const N_A: A<u32> = A::new("n");
const STATUS_A: A<String> = A::new("status");
const CREATED_A: A<u32> = A::new("created");
const BODY_A: A<String> = A::new("body");
const TITLE_A: A<String> = A::new("title");

/// A find with these conditions.
fn spec(conditions: Vec<crate::Condition<()>>) -> Spec {
    let mut spec = Spec::new(Source::Auto);
    for c in conditions {
        c.node.flatten_and(&mut spec.filters);
    }
    spec
}

fn decided(spec: &Spec) -> Decisions {
    decide(&DOC, spec).expect("planned")
}

fn refused(spec: &Spec) -> String {
    decide(&DOC, spec).expect_err("refused").to_string()
}

#[test]
fn equality_on_the_whole_primary_key_is_a_get_item() {
    let d = decided(&spec(vec![ID_A.eq("a"), N_A.eq(1u32)]));
    assert_eq!(d.planned.operation, Operation::GetItem);
    let key = d.get_key.expect("a key");
    assert_eq!(key.get("id"), Some(&AttributeValue::S("a".into())));
    assert_eq!(key.get("n"), Some(&AttributeValue::N("1".into())));
    assert!(!d.fetch_base, "a GetItem reads the table");
}

#[test]
fn equality_on_the_partition_key_is_a_query_on_the_table() {
    let d = decided(&spec(vec![ID_A.eq("a"), N_A.gt(3u32), BODY_A.eq("x")]));
    assert_eq!(d.planned.operation, Operation::Query);
    assert!(d.planned.index.is_none());
    assert_eq!(
        d.planned.key_nodes.len(),
        2,
        "partition and sort key conditions"
    );
    assert_eq!(d.planned.filter_nodes.len(), 1, "the rest filters");
    assert_eq!(d.key_attrs, ["id", "n"]);
    assert_eq!(
        d.cursor.partition,
        Some(("id", AttributeValue::S("a".into()))),
        "a cursor of this query must hold its partition value"
    );
}

#[test]
fn equality_on_an_index_partition_key_queries_that_index() {
    let d = decided(&spec(vec![
        STATUS_A.eq("open"),
        CREATED_A.between(1u32, 9u32),
    ]));
    assert_eq!(d.planned.operation, Operation::Query);
    assert_eq!(d.planned.index.map(|i| i.name), Some("ByStatus"));
    assert_eq!(d.key_attrs, ["id", "n", "status", "created"]);
    assert_eq!(d.cursor.partition.map(|(name, _)| name), Some("status"));
}

#[test]
fn nothing_covering_the_conditions_is_an_error_never_a_silent_scan() {
    let message = refused(&spec(vec![BODY_A.eq("x")]));
    assert!(message.contains("scan"), "{message}");
    let mut allowed = spec(vec![BODY_A.eq("x")]);
    allowed.source = Source::AllowScan;
    assert_eq!(decided(&allowed).planned.operation, Operation::Scan);
}

#[test]
fn a_scan_is_a_scan_even_when_a_key_would_serve() {
    let mut scan = spec(vec![ID_A.eq("a")]);
    scan.source = Source::Scan;
    let d = decided(&scan);
    assert_eq!(d.planned.operation, Operation::Scan);
    assert_eq!(d.planned.filter_nodes.len(), 1);
    assert!(d.cursor.partition.is_none());
}

#[test]
fn a_consistent_read_never_plans_a_global_index() {
    let mut named = spec(vec![STATUS_A.eq("open")]);
    named.index = Some("ByStatus".into());
    named.consistency = Consistency::Strong;
    assert!(refused(&named).contains("ByStatus"));
    let mut auto = spec(vec![STATUS_A.eq("open")]);
    auto.consistency = Consistency::Strong;
    decide(&DOC, &auto).expect_err("no index serves a consistent read on status");
}

#[test]
fn limit_zero_is_refused() {
    let mut s = spec(vec![ID_A.eq("a")]);
    s.limit = Some(0);
    assert!(refused(&s).contains("limit(0)"));
}

#[test]
fn an_empty_key_value_is_refused_before_sending() {
    let message = refused(&spec(vec![ID_A.eq("")]));
    assert!(message.contains("empty value"), "{message}");
    assert!(message.contains("id"), "{message}");
}

#[test]
fn segments_are_for_scans_only() {
    let mut s = spec(vec![ID_A.eq("a")]);
    s.segments = Some(4);
    assert!(refused(&s).contains("segments() is for scans"));
    s.source = Source::Scan;
    decided(&s);
}

#[test]
fn descending_needs_a_sort_key_order() {
    let mut s = spec(vec![]);
    s.source = Source::Scan;
    s.order = Order::Descending;
    assert!(refused(&s).contains("descending()"));
    let mut q = spec(vec![ID_A.eq("a")]);
    q.order = Order::Descending;
    decided(&q);
}

#[test]
fn a_global_index_filters_only_on_what_it_projects() {
    let message = refused(&spec(vec![STATUS_A.eq("open"), BODY_A.eq("x")]));
    assert!(
        message.contains("body") && message.contains("ByStatus"),
        "{message}"
    );
    let d = decided(&spec(vec![STATUS_A.eq("open"), TITLE_A.eq("x")]));
    assert_eq!(d.planned.filter_nodes.len(), 1);
}

#[test]
fn base_items_are_fetched_when_the_index_lacks_what_is_read() {
    let on_index = || spec(vec![STATUS_A.eq("open")]);
    assert!(decided(&on_index()).fetch_base, "the whole entity");
    let mut title = on_index();
    title.projection = vec![TITLE_A.path()];
    assert!(!decided(&title).fetch_base, "the index projects title");
    let mut body = on_index();
    body.projection = vec![BODY_A.path()];
    assert!(decided(&body).fetch_base, "body is only in the table");
    let mut projected = on_index();
    projected.read_as = ReadAs::Projection;
    assert!(
        !decided(&projected).fetch_base,
        "a projection type reads what the index holds"
    );
}

#[test]
fn an_unknown_index_is_refused() {
    let mut s = spec(vec![ID_A.eq("a")]);
    s.index = Some("Nope".into());
    assert!(refused(&s).contains("Nope"));
}

fn fan_out_values(d: &Decisions) -> Vec<AttributeValue> {
    d.planned
        .fan_out
        .as_ref()
        .expect("a fan-out")
        .values
        .clone()
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

#[test]
fn several_values_of_the_table_partition_key_fan_out_one_query_each() {
    let d = decided(&spec(vec![
        ID_A.is_in(["a", "b", "a", "c"]),
        N_A.gt(3u32),
        BODY_A.eq("x"),
    ]));
    assert_eq!(d.planned.operation, Operation::Query);
    assert!(d.planned.index.is_none(), "the table's own key first");
    assert_eq!(
        fan_out_values(&d),
        [s("a"), s("b"), s("c")],
        "distinct, in the order listed"
    );
    assert_eq!(
        d.planned.key_nodes.len(),
        2,
        "the list and the sort condition"
    );
    assert_eq!(
        d.planned.filter_nodes.len(),
        1,
        "the rest filters every Query"
    );
}

#[test]
fn an_or_of_equalities_on_a_partition_key_fans_out_too() {
    let either = STATUS_A.eq("open").or(STATUS_A.eq("held"));
    let d = decided(&spec(vec![either, CREATED_A.gt(5u32)]));
    assert_eq!(d.planned.index.map(|i| i.name), Some("ByStatus"));
    assert_eq!(fan_out_values(&d), [s("open"), s("held")]);
    let mixed = STATUS_A.eq("open").or(TITLE_A.eq("x"));
    assert!(
        refused(&spec(vec![mixed])).contains("scan"),
        "an OR over other attributes is a filter, not a list of partitions"
    );
}

#[test]
fn equality_on_a_partition_key_wins_over_a_fan_out() {
    let d = decided(&spec(vec![ID_A.is_in(["a", "b"]), STATUS_A.eq("open")]));
    assert!(d.planned.fan_out.is_none());
    assert_eq!(d.planned.index.map(|i| i.name), Some("ByStatus"));
    assert_eq!(d.planned.filter_nodes.len(), 1, "the list of ids filters");
}

#[test]
fn a_fan_out_wider_than_its_bound_or_empty_is_refused_never_a_scan() {
    let values: Vec<String> = (0..101).map(|i| format!("v{i}")).collect();
    let mut wide = spec(vec![ID_A.is_in(values.clone())]);
    wide.source = Source::AllowScan;
    let message = refused(&wide);
    assert!(
        message.contains("101 values") && message.contains("at most 100"),
        "{message}"
    );
    wide.max_fan_out = 101;
    assert_eq!(fan_out_values(&decided(&wide)).len(), 101);
    wide.max_fan_out = 10;
    assert!(refused(&wide).contains("at most 10 "));
    let empty = refused(&spec(vec![ID_A.is_in(Vec::<String>::new())]));
    assert!(empty.contains("lists no values"), "{empty}");
}

#[test]
fn a_named_index_fans_out_on_its_partition_key() {
    let mut s = spec(vec![STATUS_A.is_in(["open", "held"])]);
    s.index = Some("ByStatus".into());
    let d = decided(&s);
    assert_eq!(d.planned.index.map(|i| i.name), Some("ByStatus"));
    assert_eq!(
        d.planned.fan_out.as_ref().map(|f| f.attribute),
        Some("status")
    );
}

#[test]
fn sorted_merges_need_an_order_a_scan_lacks() {
    let mut scan = spec(vec![BODY_A.eq("x")]);
    scan.source = Source::Scan;
    scan.merge = crate::query::spec::Merge::SortKey;
    assert!(refused(&scan).contains("sorted()"));
}
