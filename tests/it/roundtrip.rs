//! Round trips of item conversion (`Entity::to_item` / `Entity::from_item`), the shape of the
//! items written, and compatibility with `serde_dynamo`. No network.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use dynamite::aws_sdk_dynamodb::types::AttributeValue;
use dynamite::{Binary, Entity, Error, Item};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

// ---- entities ----------------------------------------------------------------------------------

/// Strings, every integer width, floats, bool.
#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[dynamite(table = "scalars")]
struct Scalars {
    #[dynamite(partition_key)]
    id: String,
    text: String,
    v_i8: i8,
    v_i16: i16,
    v_i32: i32,
    v_i64: i64,
    v_i128: i128,
    v_isize: isize,
    v_u8: u8,
    v_u16: u16,
    v_u32: u32,
    v_u64: u64,
    v_u128: u128,
    v_usize: usize,
    v_f32: f32,
    v_f64: f64,
    flag: bool,
}

/// Options, lists, maps, sets, binary.
#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[dynamite(table = "collections")]
struct Collections {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    n: i64,
    opt_text: Option<String>,
    opt_num: Option<i64>,
    opt_float: Option<f64>,
    opt_flag: Option<bool>,
    opt_list: Option<Vec<String>>,
    opt_blob: Option<Binary>,
    names: Vec<String>,
    numbers: Vec<i64>,
    counts: HashMap<String, i64>,
    labels: BTreeMap<String, String>,
    tags: HashSet<String>,
    ranks: BTreeSet<i64>,
    blobs: HashSet<Binary>,
    blob: Binary,
}

/// A nested struct: not a native type, so it goes through serde_dynamo.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Address {
    street: String,
    zip: Option<u32>,
    lines: Vec<String>,
    lat: f64,
    raw: Binary,
}

/// An enum with data: also through serde_dynamo.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Status {
    Active,
    Scored(f64),
    Pair(u8, String),
    Suspended { reason: String, until: Option<i64> },
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[dynamite(table = "nested")]
struct Nested {
    #[dynamite(partition_key)]
    id: String,
    address: Address,
    status: Status,
    maybe_address: Option<Address>,
    history: Vec<Status>,
}

/// serde attributes that change attribute names or presence.
#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[dynamite(table = "renamed")]
#[serde(rename_all = "camelCase")]
struct Renamed {
    #[dynamite(partition_key)]
    user_id: String,
    display_name: String,
    #[serde(rename = "AGE")]
    age_years: u32,
    #[serde(default)]
    login_count: u64,
    #[serde(default)]
    alt_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    home: Option<Address>,
}

/// Plain fields whose representation dynamite and serde_dynamo share (no sets, no `Binary`, no
/// 128-bit integers, which serde_dynamo does not support).
#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[dynamite(table = "plain")]
#[serde(rename_all = "camelCase")]
struct Plain {
    #[dynamite(partition_key)]
    id: String,
    display_name: String,
    small: i8,
    medium: i16,
    count: i32,
    total: i64,
    byte: u8,
    word: u16,
    dword: u32,
    qword: u64,
    ratio: f32,
    score: f64,
    active: bool,
    nickname: Option<String>,
    rank: Option<i64>,
    http2_codes: Vec<i64>,
    tags: Vec<String>,
    counts: HashMap<String, i64>,
    labels: BTreeMap<String, String>,
    address: Address,
    status: Status,
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[dynamite(table = "wide")]
struct Wide {
    #[dynamite(partition_key)]
    id: String,
    big: u128,
    signed: i128,
}

// ---- strategies --------------------------------------------------------------------------------

fn key() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,16}"
}

/// Any string, including empty and non-ASCII ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z]{0,8}",
        "\\PC{0,16}",
        any::<String>(),
        Just("héllo wörld ✓ 日本語 🦀".to_owned()),
    ]
}

/// Largest magnitude with 38 digits, DynamoDB's precision limit.
const MAX38: u128 = 10u128.pow(38) - 1;

fn u128_38() -> impl Strategy<Value = u128> {
    prop_oneof![
        Just(0),
        Just(MAX38),
        Just(u128::from(u64::MAX) + 1),
        0..=MAX38
    ]
}

fn i128_38() -> impl Strategy<Value = i128> {
    let max = MAX38 as i128;
    prop_oneof![Just(-max), Just(max), Just(0), -max..=max]
}

/// Finite `f64` inside DynamoDB's range: 0, or magnitude between 2^-431 (about 1.8e-130) and
/// 2^417 (about 3.4e125), with arbitrary mantissa bits; plus edge and everyday values.
fn f64_dynamo() -> impl Strategy<Value = f64> {
    let bits = (
        any::<bool>(),
        (1023u64 - 431)..=(1023 + 415),
        0u64..(1 << 52),
    )
        .prop_map(|(negative, exponent, mantissa)| {
            f64::from_bits((u64::from(negative) << 63) | (exponent << 52) | mantissa)
        });
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(0.1),
        Just(1e-130),
        Just(-1e-130),
        Just(1e125),
        Just(9.99e125),
        -1e6..1e6f64,
        bits.clone(),
        bits,
    ]
}

/// Any finite `f32` (all of them are inside DynamoDB's range), including subnormals.
fn f32_finite() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(0.0f32),
        Just(f32::MIN_POSITIVE),
        Just(f32::MAX),
        any::<u32>()
            .prop_map(f32::from_bits)
            .prop_filter("finite", |f| f.is_finite()),
    ]
}

fn binary() -> impl Strategy<Value = Binary> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Binary)
}

fn small_vec<T: Strategy>(s: T) -> proptest::collection::VecStrategy<T> {
    proptest::collection::vec(s, 0..5)
}

fn scalars() -> impl Strategy<Value = Scalars> {
    (
        (key(), text(), any::<bool>()),
        (
            any::<i8>(),
            any::<i16>(),
            any::<i32>(),
            any::<i64>(),
            i128_38(),
            any::<isize>(),
        ),
        (
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
            u128_38(),
            any::<usize>(),
        ),
        (f32_finite(), f64_dynamo()),
    )
        .prop_map(
            |(
                (id, text, flag),
                (v_i8, v_i16, v_i32, v_i64, v_i128, v_isize),
                (v_u8, v_u16, v_u32, v_u64, v_u128, v_usize),
                (v_f32, v_f64),
            )| Scalars {
                id,
                text,
                v_i8,
                v_i16,
                v_i32,
                v_i64,
                v_i128,
                v_isize,
                v_u8,
                v_u16,
                v_u32,
                v_u64,
                v_u128,
                v_usize,
                v_f32,
                v_f64,
                flag,
            },
        )
}

fn collections() -> impl Strategy<Value = Collections> {
    use proptest::collection::{btree_map, btree_set, hash_map, hash_set};
    use proptest::option::of;
    (
        (key(), any::<i64>()),
        (
            of(text()),
            of(any::<i64>()),
            of(f64_dynamo()),
            of(any::<bool>()),
            of(small_vec(text())),
            of(binary()),
        ),
        (
            small_vec(text()),
            small_vec(any::<i64>()),
            hash_map(text(), any::<i64>(), 0..5),
            btree_map(text(), text(), 0..5),
        ),
        (
            hash_set(text(), 0..5),
            btree_set(any::<i64>(), 0..5),
            hash_set(binary(), 0..4),
            binary(),
        ),
    )
        .prop_map(
            |(
                (id, n),
                (opt_text, opt_num, opt_float, opt_flag, opt_list, opt_blob),
                (names, numbers, counts, labels),
                (tags, ranks, blobs, blob),
            )| Collections {
                id,
                n,
                opt_text,
                opt_num,
                opt_float,
                opt_flag,
                opt_list,
                opt_blob,
                names,
                numbers,
                counts,
                labels,
                tags,
                ranks,
                blobs,
                blob,
            },
        )
}

fn address() -> impl Strategy<Value = Address> {
    (
        text(),
        proptest::option::of(any::<u32>()),
        small_vec(text()),
        f64_dynamo(),
        binary(),
    )
        .prop_map(|(street, zip, lines, lat, raw)| Address {
            street,
            zip,
            lines,
            lat,
            raw,
        })
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Active),
        f64_dynamo().prop_map(Status::Scored),
        (any::<u8>(), text()).prop_map(|(a, b)| Status::Pair(a, b)),
        (text(), proptest::option::of(any::<i64>()))
            .prop_map(|(reason, until)| Status::Suspended { reason, until }),
    ]
}

fn nested() -> impl Strategy<Value = Nested> {
    (
        key(),
        address(),
        status(),
        proptest::option::of(address()),
        small_vec(status()),
    )
        .prop_map(|(id, address, status, maybe_address, history)| Nested {
            id,
            address,
            status,
            maybe_address,
            history,
        })
}

fn renamed() -> impl Strategy<Value = Renamed> {
    (
        key(),
        text(),
        any::<u32>(),
        any::<u64>(),
        small_vec(text()),
        proptest::option::of(text()),
        proptest::option::of(address()),
    )
        .prop_map(
            |(user_id, display_name, age_years, login_count, alt_names, middle_name, home)| {
                Renamed {
                    user_id,
                    display_name,
                    age_years,
                    login_count,
                    alt_names,
                    middle_name,
                    home,
                }
            },
        )
}

fn plain() -> impl Strategy<Value = Plain> {
    use proptest::collection::{btree_map, hash_map};
    (
        (key(), text(), any::<bool>()),
        (any::<i8>(), any::<i16>(), any::<i32>(), any::<i64>()),
        (any::<u8>(), any::<u16>(), any::<u32>(), any::<u64>()),
        (f32_finite(), f64_dynamo()),
        (
            proptest::option::of(text()),
            proptest::option::of(any::<i64>()),
        ),
        (
            small_vec(any::<i64>()),
            small_vec(text()),
            hash_map(text(), any::<i64>(), 0..5),
            btree_map(text(), text(), 0..5),
        ),
        (address(), status()),
    )
        .prop_map(
            |(
                (id, display_name, active),
                (small, medium, count, total),
                (byte, word, dword, qword),
                (ratio, score),
                (nickname, rank),
                (http2_codes, tags, counts, labels),
                (address, status),
            )| Plain {
                id,
                display_name,
                small,
                medium,
                count,
                total,
                byte,
                word,
                dword,
                qword,
                ratio,
                score,
                active,
                nickname,
                rank,
                http2_codes,
                tags,
                counts,
                labels,
                address,
                status,
            },
        )
}

// ---- helpers -----------------------------------------------------------------------------------

fn n(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.clone(),
        other => panic!("{name}: expected N, found {other:?}"),
    }
}

fn assert_absent_or<F: FnOnce(&AttributeValue) -> bool>(
    item: &Item,
    name: &str,
    present: bool,
    shape: F,
) {
    match item.get(name) {
        None => assert!(!present, "{name} is missing from {item:?}"),
        Some(v) => {
            assert!(present, "{name} should be absent, found {v:?}");
            assert!(shape(v), "{name} has the wrong shape: {v:?}");
        }
    }
}

fn ss(v: &AttributeValue) -> &[String] {
    match v {
        AttributeValue::Ss(v) => v,
        other => panic!("expected SS, found {other:?}"),
    }
}

fn no_nulls(item: &Item) {
    for (k, v) in item {
        assert!(
            !matches!(v, AttributeValue::Null(_)),
            "top-level attribute {k} written as NULL"
        );
    }
}

// ---- round-trip properties ---------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scalars_round_trip(e in scalars()) {
        let item = e.to_item().unwrap();
        prop_assert_eq!(item.len(), 17);
        prop_assert_eq!(item.get("text"), Some(&AttributeValue::S(e.text.clone())));
        prop_assert_eq!(item.get("flag"), Some(&AttributeValue::Bool(e.flag)));
        prop_assert_eq!(n(&item, "v_u128"), e.v_u128.to_string());
        prop_assert_eq!(n(&item, "v_i128"), e.v_i128.to_string());
        prop_assert_eq!(n(&item, "v_i8"), e.v_i8.to_string());
        // Floats are written in their shortest round-tripping form.
        prop_assert_eq!(n(&item, "v_f64").parse::<f64>().unwrap().to_bits(), e.v_f64.to_bits());
        prop_assert_eq!(n(&item, "v_f32").parse::<f32>().unwrap().to_bits(), e.v_f32.to_bits());
        let back = Scalars::from_item(item).unwrap();
        prop_assert_eq!(&back, &e);
        // Exact, including the sign of zero.
        prop_assert_eq!(back.v_f64.to_bits(), e.v_f64.to_bits());
        prop_assert_eq!(back.v_f32.to_bits(), e.v_f32.to_bits());
    }

    #[test]
    fn collections_round_trip(e in collections()) {
        let item = e.to_item().unwrap();
        no_nulls(&item);
        // None is absent, Some is the value itself.
        assert_absent_or(&item, "opt_text", e.opt_text.is_some(), |v| matches!(v, AttributeValue::S(_)));
        assert_absent_or(&item, "opt_num", e.opt_num.is_some(), |v| matches!(v, AttributeValue::N(_)));
        assert_absent_or(&item, "opt_float", e.opt_float.is_some(), |v| matches!(v, AttributeValue::N(_)));
        assert_absent_or(&item, "opt_flag", e.opt_flag.is_some(), |v| matches!(v, AttributeValue::Bool(_)));
        assert_absent_or(&item, "opt_list", e.opt_list.is_some(), |v| matches!(v, AttributeValue::L(_)));
        assert_absent_or(&item, "opt_blob", e.opt_blob.is_some(), |v| matches!(v, AttributeValue::B(_)));
        // Lists and maps are always written, even when empty.
        prop_assert!(matches!(item.get("names"), Some(AttributeValue::L(l)) if l.len() == e.names.len()
            && l.iter().all(|v| matches!(v, AttributeValue::S(_)))));
        prop_assert!(matches!(item.get("numbers"), Some(AttributeValue::L(l)) if l.len() == e.numbers.len()
            && l.iter().all(|v| matches!(v, AttributeValue::N(_)))));
        prop_assert!(matches!(item.get("counts"), Some(AttributeValue::M(m)) if m.len() == e.counts.len()));
        prop_assert!(matches!(item.get("labels"), Some(AttributeValue::M(m)) if m.len() == e.labels.len()));
        // Sets are DynamoDB sets; an empty set is absent.
        assert_absent_or(&item, "tags", !e.tags.is_empty(), |v| {
            let s = ss(v);
            s.len() == e.tags.len() && s.iter().all(|t| e.tags.contains(t))
        });
        assert_absent_or(&item, "ranks", !e.ranks.is_empty(), |v| {
            matches!(v, AttributeValue::Ns(ns) if ns.len() == e.ranks.len())
        });
        assert_absent_or(&item, "blobs", !e.blobs.is_empty(), |v| {
            matches!(v, AttributeValue::Bs(bs) if bs.len() == e.blobs.len())
        });
        // Binary is B, even when empty.
        prop_assert!(matches!(item.get("blob"), Some(AttributeValue::B(b)) if b.as_ref() == e.blob.0.as_slice()));
        let back = Collections::from_item(item).unwrap();
        prop_assert_eq!(back, e);
    }

    #[test]
    fn nested_round_trip(e in nested()) {
        let item = e.to_item().unwrap();
        no_nulls(&item);
        prop_assert!(matches!(item.get("address"), Some(AttributeValue::M(_))));
        // serde_dynamo writes Binary inside a nested struct as B too.
        prop_assert!(matches!(item.get("address"), Some(AttributeValue::M(m)) if matches!(m.get("raw"), Some(AttributeValue::B(_)))));
        match e.status {
            Status::Active => prop_assert_eq!(item.get("status"), Some(&AttributeValue::S("Active".into()))),
            _ => prop_assert!(matches!(item.get("status"), Some(AttributeValue::M(m)) if m.len() == 1)),
        }
        assert_absent_or(&item, "maybe_address", e.maybe_address.is_some(), |v| matches!(v, AttributeValue::M(_)));
        prop_assert!(matches!(item.get("history"), Some(AttributeValue::L(l)) if l.len() == e.history.len()));
        // The same attribute values serde_dynamo writes for these fields.
        let via_serde: Item = serde_dynamo::to_item(&e).unwrap();
        for name in ["address", "status", "history"] {
            prop_assert_eq!(item.get(name), via_serde.get(name), "{}", name);
        }
        let back = Nested::from_item(item).unwrap();
        prop_assert_eq!(back, e);
    }

    #[test]
    fn renamed_round_trip(e in renamed()) {
        let item = e.to_item().unwrap();
        no_nulls(&item);
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = vec!["AGE", "altNames", "displayName", "loginCount", "userId"];
        if e.middle_name.is_some() {
            expected.push("middleName");
        }
        if e.home.is_some() {
            expected.push("home");
        }
        expected.sort_unstable();
        prop_assert_eq!(names, expected);
        prop_assert_eq!(Renamed::schema().attributes, &["userId", "displayName", "AGE", "loginCount", "altNames", "middleName", "home"]);
        let back = Renamed::from_item(item.clone()).unwrap();
        prop_assert_eq!(&back, &e);

        // Attribute names agree with serde's own renaming.
        let via_serde: Item = serde_dynamo::to_item(&e).unwrap();
        let mut serde_names: Vec<&String> = via_serde.keys().collect();
        let mut ours: Vec<&String> = item.keys().collect();
        serde_names.sort_unstable();
        ours.sort_unstable();
        prop_assert_eq!(ours, serde_names);

        // #[serde(default)] fields read back as their default when absent.
        let mut sparse = item;
        sparse.remove("loginCount");
        sparse.remove("altNames");
        sparse.remove("middleName");
        sparse.remove("home");
        let back = Renamed::from_item(sparse).unwrap();
        prop_assert_eq!(back.login_count, 0);
        prop_assert!(back.alt_names.is_empty());
        prop_assert_eq!(back.middle_name, None);
        prop_assert_eq!(back.home, None);
        prop_assert_eq!(back.age_years, e.age_years);
    }

    #[test]
    fn wide_integers_within_38_digits_round_trip(big in u128_38(), signed in i128_38()) {
        let e = Wide { id: "w".into(), big, signed };
        let item = e.to_item().unwrap();
        prop_assert_eq!(n(&item, "big"), big.to_string());
        prop_assert_eq!(Wide::from_item(item).unwrap(), e);
    }

    /// dynamite's items read back with serde_dynamo, and serde_dynamo's with dynamite, where
    /// the two representations agree.
    #[test]
    fn compatible_with_serde_dynamo(e in plain()) {
        let ours = e.to_item().unwrap();
        no_nulls(&ours);
        let decoded: Plain = serde_dynamo::from_item(ours.clone()).unwrap();
        prop_assert_eq!(&decoded, &e);

        let theirs: Item = serde_dynamo::to_item(&e).unwrap();
        let decoded = Plain::from_item(theirs.clone()).unwrap();
        prop_assert_eq!(&decoded, &e);

        // Attribute by attribute: identical, except that serde_dynamo writes None as NULL where
        // dynamite leaves the attribute out, and floats may be spelled differently.
        for (name, theirs_v) in &theirs {
            match (ours.get(name), theirs_v) {
                (None, AttributeValue::Null(_)) => {}
                (Some(AttributeValue::N(a)), AttributeValue::N(b)) if name == "ratio" => {
                    prop_assert_eq!(a.parse::<f32>().unwrap(), b.parse::<f32>().unwrap());
                }
                (Some(AttributeValue::N(a)), AttributeValue::N(b)) if name == "score" => {
                    prop_assert_eq!(a.parse::<f64>().unwrap(), b.parse::<f64>().unwrap());
                }
                (Some(a), b) => prop_assert_eq!(a, b, "{}", name),
                (None, b) => prop_assert!(false, "{} missing from dynamite's item (serde_dynamo: {:?})", name, b),
            }
        }
        prop_assert!(ours.keys().all(|k| theirs.contains_key(k)));
    }
}

// ---- unit tests --------------------------------------------------------------------------------

#[test]
fn u128_over_38_digits_is_a_clear_error_naming_the_attribute() {
    let e = Wide {
        id: "w".into(),
        big: 10u128.pow(38), // 39 digits
        signed: 0,
    };
    let err = e.to_item().unwrap_err();
    let message = err.to_string();
    match &err {
        Error::Validation {
            entity,
            attribute,
            reason,
        } => {
            assert_eq!(entity, "Wide");
            assert_eq!(attribute, "big");
            assert!(reason.contains("38 digits"), "{reason}");
            assert!(
                reason.contains("100000000000000000000000000000000000000"),
                "{reason}"
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(message.contains("Wide.big"), "{message}");

    let e = Wide {
        id: "w".into(),
        big: 0,
        signed: -(10i128.pow(38)),
    };
    assert!(
        matches!(e.to_item(), Err(Error::Validation { attribute, .. }) if attribute == "signed")
    );

    let e = Wide {
        id: "w".into(),
        big: u128::MAX,
        signed: i128::MIN,
    };
    assert!(e.to_item().is_err());

    let e = Wide {
        id: "w".into(),
        big: MAX38,
        signed: -(MAX38 as i128),
    };
    assert_eq!(Wide::from_item(e.to_item().unwrap()).unwrap(), e);
}

#[test]
fn out_of_range_floats_are_rejected_naming_the_attribute() {
    let mut e = Scalars {
        id: "s".into(),
        text: String::new(),
        v_i8: 0,
        v_i16: 0,
        v_i32: 0,
        v_i64: 0,
        v_i128: 0,
        v_isize: 0,
        v_u8: 0,
        v_u16: 0,
        v_u32: 0,
        v_u64: 0,
        v_u128: 0,
        v_usize: 0,
        v_f32: 0.0,
        v_f64: 0.0,
        flag: false,
    };
    for bad in [f64::NAN, f64::INFINITY, 1e126, 1e-131, -1e200] {
        e.v_f64 = bad;
        assert!(
            matches!(e.to_item(), Err(Error::Validation { attribute, .. }) if attribute == "v_f64"),
            "{bad}"
        );
    }
    e.v_f64 = 1e-130;
    e.v_f32 = f32::NAN;
    assert!(
        matches!(e.to_item(), Err(Error::Validation { attribute, .. }) if attribute == "v_f32")
    );
}

#[test]
fn empty_strings_and_empty_collections() {
    let e = Collections {
        id: "c".into(),
        n: 0,
        opt_text: Some(String::new()),
        opt_num: None,
        opt_float: None,
        opt_flag: Some(false),
        opt_list: Some(vec![]),
        opt_blob: None,
        names: vec![String::new()],
        numbers: vec![],
        counts: HashMap::new(),
        labels: BTreeMap::from([(String::new(), String::new())]),
        tags: HashSet::new(),
        ranks: BTreeSet::new(),
        blobs: HashSet::new(),
        blob: Binary::default(),
    };
    let item = e.to_item().unwrap();
    assert_eq!(
        item.get("opt_text"),
        Some(&AttributeValue::S(String::new()))
    );
    assert_eq!(item.get("opt_list"), Some(&AttributeValue::L(vec![])));
    assert_eq!(item.get("numbers"), Some(&AttributeValue::L(vec![])));
    assert_eq!(item.get("counts"), Some(&AttributeValue::M(HashMap::new())));
    for absent in ["opt_num", "opt_float", "opt_blob", "tags", "ranks", "blobs"] {
        assert!(!item.contains_key(absent), "{absent} should be absent");
    }
    assert!(matches!(item.get("blob"), Some(AttributeValue::B(b)) if b.as_ref().is_empty()));
    assert_eq!(Collections::from_item(item).unwrap(), e);
}

#[test]
fn set_shapes() {
    let e = Collections {
        id: "c".into(),
        n: 1,
        opt_text: None,
        opt_num: None,
        opt_float: None,
        opt_flag: None,
        opt_list: None,
        opt_blob: Some(Binary(vec![0, 1, 2])),
        names: vec![],
        numbers: vec![-1, 2],
        counts: HashMap::from([("a".to_owned(), 1)]),
        labels: BTreeMap::new(),
        tags: HashSet::from(["x".to_owned(), "y".to_owned()]),
        ranks: BTreeSet::from([3, -1, 2]),
        blobs: HashSet::from([Binary(vec![1]), Binary(vec![])]),
        blob: Binary(vec![255]),
    };
    let item = e.to_item().unwrap();
    let mut tags = ss(&item["tags"]).to_vec();
    tags.sort();
    assert_eq!(tags, ["x", "y"]);
    assert_eq!(
        item["ranks"],
        AttributeValue::Ns(vec!["-1".into(), "2".into(), "3".into()])
    );
    assert!(matches!(&item["blobs"], AttributeValue::Bs(bs) if bs.len() == 2));
    assert!(matches!(&item["opt_blob"], AttributeValue::B(b) if b.as_ref() == [0, 1, 2]));
    assert_eq!(
        item["numbers"],
        AttributeValue::L(vec![
            AttributeValue::N("-1".into()),
            AttributeValue::N("2".into())
        ])
    );
    assert_eq!(
        item["counts"],
        AttributeValue::M(HashMap::from([(
            "a".to_owned(),
            AttributeValue::N("1".into())
        )]))
    );
    assert_eq!(Collections::from_item(item).unwrap(), e);
}

#[test]
fn wrong_type_on_read_names_the_attribute() {
    let mut item = Wide {
        id: "w".into(),
        big: 1,
        signed: 2,
    }
    .to_item()
    .unwrap();
    item.insert("big".into(), AttributeValue::S("1".into()));
    match Wide::from_item(item) {
        Err(Error::Conversion {
            attribute, reason, ..
        }) => {
            assert_eq!(attribute, "big");
            assert!(reason.contains("expected N"), "{reason}");
        }
        other => panic!("expected a conversion error, got {other:?}"),
    }
}

// ---- integers written by other writers ---------------------------------------------------------

/// Another writer may spell an integer with an exponent or a fraction of zeros; it must read
/// back exactly, not through a lossy `f64`.
#[test]
fn integers_in_other_spellings_read_exactly() {
    use dynamite::FromAttributeValue;
    let read_u64 = |s: &str| u64::from_attribute_value(AttributeValue::N(s.to_owned()));
    let read_i64 = |s: &str| i64::from_attribute_value(AttributeValue::N(s.to_owned()));
    let read_u128 = |s: &str| u128::from_attribute_value(AttributeValue::N(s.to_owned()));
    assert_eq!(read_u64("1E+3"), Ok(1000));
    assert_eq!(read_u64("1.5E1"), Ok(15));
    assert_eq!(read_u64("10.000"), Ok(10));
    assert_eq!(read_u64("0.0"), Ok(0));
    assert_eq!(read_u64("0E+500"), Ok(0));
    assert_eq!(
        read_u64("12345678901234567891E0"),
        Ok(12_345_678_901_234_567_891)
    );
    assert_eq!(read_u64("1.8446744073709551615E19"), Ok(u64::MAX));
    assert_eq!(read_i64("-9.223372036854775808E18"), Ok(i64::MIN));
    assert_eq!(
        read_u128("9.9999999999999999999999999999999999999E+37"),
        Ok(MAX38)
    );
    assert_eq!(
        read_u128("123456789012345678901234567890.000"),
        Ok(123_456_789_012_345_678_901_234_567_890)
    );
    for not_integral in ["1.5", "1E-1", "-12E-1", "0.0000001"] {
        let err = read_u64(not_integral).unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{not_integral}: {err}");
    }
    for too_big in [
        "1.8446744073709551616E19",
        "1E+20",
        "1E+400",
        "1E+9999999999999999999",
    ] {
        let err = read_u64(too_big).unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{too_big}: {err}");
    }
    for bad in [
        "", "-", "E5", "1E", "1.2.3", "abc", "NaN", "inf", "1e+", "+-1", "1 ",
    ] {
        let err = read_u64(bad).unwrap_err().to_string();
        assert!(err.contains("not a number"), "{bad:?}: {err}");
    }
    assert_eq!(read_i64("-0"), Ok(0));
    assert_eq!(read_u64("-0.0E3"), Ok(0));
    assert!(read_u64("-1E0").is_err());
}

proptest! {
    #[test]
    fn integers_in_exponent_form_read_exactly(v in any::<i64>(), w in u128_38(), shift in 0usize..5) {
        use dynamite::FromAttributeValue;
        let read_i64 = |s: String| i64::from_attribute_value(AttributeValue::N(s));
        let read_u128 = |s: String| u128::from_attribute_value(AttributeValue::N(s));
        prop_assert_eq!(read_i64(format!("{v:e}")), Ok(v));
        prop_assert_eq!(read_i64(format!("{v:E}")), Ok(v));
        prop_assert_eq!(read_i64(format!("{v}.{}", "0".repeat(shift))), Ok(v));
        prop_assert_eq!(read_i64(format!("{v}{}E-{shift}", "0".repeat(shift))), Ok(v));
        prop_assert_eq!(read_u128(format!("{w:e}")), Ok(w));
        prop_assert_eq!(read_u128(format!("{w}{}e-{shift}", "0".repeat(shift))), Ok(w));
    }
}
