//! Property: paging through a find with `.limit(k).page(cursor)` returns exactly the items of
//! one full `.all()` read, in the same order, whatever the data, the filter, the limit, the
//! page size and the direction; and the full read is what the filter means.
//!
//! Property: with random key values (any printable text as the partition key, any `i64` or any
//! bytes as the sort key), with and without a cursor key, every cursor resumes exactly after its
//! item (the key round-trips through the cursor), distinct positions have distinct cursor
//! strings, and one position reached by two routes has one cursor string.
//!
//! One table per entity for every case; each case writes its random items under a fresh
//! partition key.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::support;
use base64::Engine as _;
use dynamite::ops::Find;
use dynamite::{Binary, Client, Condition, Cursor, Entity};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "cursor-prop")]
struct Rec {
    #[dynamite(partition_key)]
    part: String,
    #[dynamite(sort_key)]
    seq: u32,
    a: i64,
    b: String,
    c: Option<u8>,
}

/// The filter shapes drawn: one per operator family, plus combinations. Never on key
/// attributes (DynamoDB refuses those in a Query filter), except the sort-key conditions,
/// which become the key condition.
#[derive(Clone, Debug)]
enum Shape {
    None,
    AEq(i64),
    ANe(i64),
    AGt(i64),
    ABetween(i64, i64),
    AIn(Vec<i64>),
    BBeginsWith(String),
    BContains(String),
    BSizeLe(u64),
    CExists,
    CNotExists,
    CEqOrAGt(u8, i64),
    NotALe(i64),
    SeqGe(u32),
    SeqBetweenAndAEq(u32, u32, i64),
}

impl Shape {
    fn conditions(&self) -> Vec<Condition<Rec>> {
        match self {
            Shape::None => vec![],
            Shape::AEq(x) => vec![Rec::A.eq(*x)],
            Shape::ANe(x) => vec![Rec::A.ne(*x)],
            Shape::AGt(x) => vec![Rec::A.gt(*x)],
            Shape::ABetween(lo, hi) => vec![Rec::A.between(*lo, *hi)],
            Shape::AIn(xs) => vec![Rec::A.is_in(xs.iter().copied())],
            Shape::BBeginsWith(p) => vec![Rec::B.begins_with(p.as_str())],
            Shape::BContains(p) => vec![Rec::B.contains(p.as_str())],
            Shape::BSizeLe(n) => vec![Rec::B.size().le(*n)],
            Shape::CExists => vec![Rec::C.exists()],
            Shape::CNotExists => vec![Rec::C.not_exists()],
            Shape::CEqOrAGt(c, a) => vec![Rec::C.eq(*c).or(Rec::A.gt(*a))],
            Shape::NotALe(x) => vec![!Rec::A.le(*x)],
            Shape::SeqGe(s) => vec![Rec::SEQ.ge(*s)],
            Shape::SeqBetweenAndAEq(lo, hi, a) => {
                vec![Rec::SEQ.between(*lo, *hi), Rec::A.eq(*a)]
            }
        }
    }

    fn matches(&self, r: &Rec) -> bool {
        match self {
            Shape::None => true,
            Shape::AEq(x) => r.a == *x,
            Shape::ANe(x) => r.a != *x,
            Shape::AGt(x) => r.a > *x,
            Shape::ABetween(lo, hi) => (*lo..=*hi).contains(&r.a),
            Shape::AIn(xs) => xs.contains(&r.a),
            Shape::BBeginsWith(p) => r.b.starts_with(p.as_str()),
            Shape::BContains(p) => r.b.contains(p.as_str()),
            Shape::BSizeLe(n) => r.b.len() as u64 <= *n,
            Shape::CExists => r.c.is_some(),
            Shape::CNotExists => r.c.is_none(),
            Shape::CEqOrAGt(c, a) => r.c == Some(*c) || r.a > *a,
            Shape::NotALe(x) => r.a > *x,
            Shape::SeqGe(s) => r.seq >= *s,
            Shape::SeqBetweenAndAEq(lo, hi, a) => (*lo..=*hi).contains(&r.seq) && r.a == *a,
        }
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    let a = -3i64..4;
    prop_oneof![
        Just(Shape::None),
        a.clone().prop_map(Shape::AEq),
        a.clone().prop_map(Shape::ANe),
        a.clone().prop_map(Shape::AGt),
        (a.clone(), a.clone()).prop_map(|(x, y)| Shape::ABetween(x.min(y), x.max(y))),
        prop::collection::vec(a.clone(), 1..4).prop_map(Shape::AIn),
        "[xy]{1,2}".prop_map(Shape::BBeginsWith),
        "[xyz]".prop_map(Shape::BContains),
        (0u64..4).prop_map(Shape::BSizeLe),
        Just(Shape::CExists),
        Just(Shape::CNotExists),
        (0u8..3, a.clone()).prop_map(|(c, x)| Shape::CEqOrAGt(c, x)),
        a.clone().prop_map(Shape::NotALe),
        (0u32..120).prop_map(Shape::SeqGe),
        (0u32..120, 0u32..120, a).prop_map(|(x, y, a)| Shape::SeqBetweenAndAEq(
            x.min(y),
            x.max(y),
            a
        )),
    ]
}

/// Items of one partition: distinct sort keys (with gaps), small random attributes.
fn items() -> impl Strategy<Value = Vec<(u32, i64, String, Option<u8>)>> {
    prop::collection::btree_map(
        0u32..120,
        (-3i64..4, "[xyz]{0,3}", prop::option::of(0u8..3)),
        0..45,
    )
    .prop_map(|m| m.into_iter().map(|(s, (a, b, c))| (s, a, b, c)).collect())
}

#[derive(Clone, Debug)]
struct Case {
    items: Vec<(u32, i64, String, Option<u8>)>,
    shape: Shape,
    limit: usize,
    page_size: Option<u32>,
    descending: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        items(),
        shape(),
        1usize..=20,
        prop::option::of(1u32..12),
        any::<bool>(),
    )
        .prop_map(|(items, shape, limit, page_size, descending)| Case {
            items,
            shape,
            limit,
            page_size,
            descending,
        })
}

static NEXT_PARTITION: AtomicU32 = AtomicU32::new(0);

async fn check(db: &Client, case: &Case) -> Result<(), TestCaseError> {
    // A fresh partition per run (shrinking re-runs cases, so never reuse one).
    let part = format!("p{}", NEXT_PARTITION.fetch_add(1, Ordering::Relaxed));
    let recs: Vec<Rec> = case
        .items
        .iter()
        .map(|(seq, a, b, c)| Rec {
            part: part.clone(),
            seq: *seq,
            a: *a,
            b: b.clone(),
            c: *c,
        })
        .collect();
    futures::stream::iter(&recs)
        .for_each_concurrent(16, |r| async move { r.put(db).await.expect("put") })
        .await;

    let find = || {
        let mut f = Rec::find(db).filter(Rec::PART.eq(part.as_str()));
        for cond in case.shape.conditions() {
            f = f.filter(cond);
        }
        if let Some(n) = case.page_size {
            f = f.page_size(n);
        }
        if case.descending {
            f = f.descending();
        }
        f
    };

    // The full read is what the filter means, in sort-key order.
    let mut expected: Vec<Rec> = recs
        .iter()
        .filter(|r| case.shape.matches(r))
        .cloned()
        .collect();
    if case.descending {
        expected.reverse();
    }
    let full = find()
        .all()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&full, &expected);

    // Paged: the same items, in the same order; pages full but the last; next None at the end.
    let mut paged: Vec<Rec> = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = find()
            .limit(case.limit)
            .page(cursor.take())
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        pages += 1;
        prop_assert!(pages <= expected.len() + 2, "paging does not end");
        prop_assert!(page.items.len() <= case.limit);
        let full_page = page.items.len() == case.limit;
        paged.extend(page.items);
        match page.next {
            Some(next) => {
                prop_assert!(full_page, "a page with a next cursor must be full");
                cursor = Some(next);
            }
            None => break,
        }
    }
    prop_assert_eq!(&paged, &full);
    // Pages hold `limit` items each, and only an exact multiple may need one empty last page.
    prop_assert!(pages <= full.len() / case.limit + 1);
    Ok(())
}

#[test]
fn paging_by_cursor_returns_exactly_the_full_read() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(async {
        let db = support::client().await;
        Rec::create_table(&db).await.expect("create table");
        db
    });
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| rt.block_on(check(&db, &case)));
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Random key values through cursors
// ---------------------------------------------------------------------------------------------

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "cursor-numbers")]
struct Spot {
    #[dynamite(partition_key)]
    place: String,
    #[dynamite(sort_key)]
    at: i64,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "cursor-bytes")]
struct Mark {
    #[dynamite(partition_key)]
    place: String,
    #[dynamite(sort_key)]
    code: Binary,
}

#[derive(Clone, Debug)]
struct KeyCase {
    /// Printable text of any script, made unique per case by a counter prefix.
    place: String,
    ats: Vec<i64>,
    codes: Vec<Vec<u8>>,
    limit: usize,
    encrypted: bool,
}

fn key_case() -> impl Strategy<Value = KeyCase> {
    (
        "\\PC{1,40}",
        prop::collection::btree_set(any::<i64>(), 0..10),
        prop::collection::btree_set(prop::collection::vec(any::<u8>(), 1..24), 0..10),
        1usize..4,
        any::<bool>(),
    )
        .prop_map(|(place, ats, codes, limit, encrypted)| KeyCase {
            place,
            ats: ats.into_iter().collect(),
            codes: codes.into_iter().collect(),
            limit,
            encrypted,
        })
}

/// Pages through `find()` `limit` at a time; checks the items are `expected` (each cursor
/// resumed exactly after its item), the cursors are distinct, each cursor is the one a single
/// page up to the same item ends with, and an encrypted cursor does not hold `secret`.
async fn check_positions<'a, E>(
    find: impl Fn() -> Find<'a, E>,
    expected: &[E],
    limit: usize,
    secret: Option<&str>,
) -> Result<(), TestCaseError>
where
    E: Entity + PartialEq + std::fmt::Debug + Send + 'static,
{
    let fail = |e: dynamite::Error| TestCaseError::fail(e.to_string());
    let mut items: Vec<E> = Vec::new();
    let mut cursors: Vec<Cursor> = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = find()
            .limit(limit)
            .page(cursor.take())
            .await
            .map_err(fail)?;
        prop_assert!(items.len() <= expected.len(), "paging does not end");
        items.extend(page.items);
        match page.next {
            Some(next) => {
                cursors.push(next.clone());
                cursor = Some(next);
            }
            None => break,
        }
    }
    prop_assert_eq!(items.as_slice(), expected);
    let distinct: std::collections::HashSet<&Cursor> = cursors.iter().collect();
    prop_assert_eq!(
        distinct.len(),
        cursors.len(),
        "two positions share a cursor"
    );
    for (i, c) in cursors.iter().enumerate() {
        // The same position, reached in one page.
        let direct = find()
            .limit(limit * (i + 1))
            .page(None)
            .await
            .map_err(fail)?
            .next;
        prop_assert_eq!(direct.as_ref(), Some(c), "one position, two cursors");
        if let Some(secret) = secret.filter(|s| s.len() >= 8) {
            prop_assert!(!c.as_str().contains(secret));
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c.as_str())
                .expect("base64");
            prop_assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
    }
    Ok(())
}

async fn check_keys(plain: &Client, keyed: &Client, case: &KeyCase) -> Result<(), TestCaseError> {
    let db = if case.encrypted { keyed } else { plain };
    let place = format!(
        "{}:{}",
        NEXT_PARTITION.fetch_add(1, Ordering::Relaxed),
        case.place
    );
    let spots: Vec<Spot> = case
        .ats
        .iter()
        .map(|&at| Spot {
            place: place.clone(),
            at,
        })
        .collect();
    let marks: Vec<Mark> = case
        .codes
        .iter()
        .map(|code| Mark {
            place: place.clone(),
            code: Binary(code.clone()),
        })
        .collect();
    futures::stream::iter(&spots)
        .for_each_concurrent(16, |r| async move { r.put(db).await.expect("put") })
        .await;
    futures::stream::iter(&marks)
        .for_each_concurrent(16, |r| async move { r.put(db).await.expect("put") })
        .await;
    let secret = case.encrypted.then_some(case.place.as_str());
    // Sort keys in DynamoDB's order: numbers by value, binaries bytewise (as generated).
    check_positions(
        || Spot::find(db).filter(Spot::PLACE.eq(place.as_str())),
        &spots,
        case.limit,
        secret,
    )
    .await?;
    check_positions(
        || Mark::find(db).filter(Mark::PLACE.eq(place.as_str())),
        &marks,
        case.limit,
        secret,
    )
    .await
}

#[test]
fn random_keys_round_trip_through_cursors_one_string_per_position() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (plain, keyed) = rt.block_on(async {
        let db = support::client().await;
        Spot::create_table(&db).await.expect("create table");
        Mark::create_table(&db).await.expect("create table");
        let keyed = Client::builder(db.sdk().clone())
            .table_prefix(db.table_prefix().to_owned())
            .cursor_key(b"cursor_prop: 32 bytes of secret!".to_vec())
            .build();
        (db, keyed)
    });
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&key_case(), |case| {
        rt.block_on(check_keys(&plain, &keyed, &case))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
