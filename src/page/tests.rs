//! Cursor round trips, canonical form, tamper detection, shape errors and serde.

use super::codec::*;
use super::shape::*;
use super::*;
use crate::entity::{IndexSchema, TableSchema};
use crate::value::ScalarType;
use crate::{Error, Item, Result};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use proptest::prelude::*;

const FP: &str = "0123456789abcdef01234567";
const OTHER_FP: &str = "0123456789abcdef01234568";
const SECRET: &[u8] = b"a cursor key of any length";

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}
fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.to_owned())
}
fn b(v: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(v.to_vec()))
}

/// Table `id` (S) + `n` (N); index `email` (S) + `bin` (B); no partition value fixed.
fn shape() -> CursorCheck {
    CursorCheck {
        shape: key_shapes(),
        partition: None,
    }
}

fn key_shapes() -> Vec<KeyShape> {
    vec![
        KeyShape {
            name: "id",
            scalar: ScalarType::String,
            role: KeyRole::Partition,
        },
        KeyShape {
            name: "n",
            scalar: ScalarType::Number,
            role: KeyRole::Sort,
        },
        KeyShape {
            name: "email",
            scalar: ScalarType::String,
            role: KeyRole::Partition,
        },
        KeyShape {
            name: "bin",
            scalar: ScalarType::Binary,
            role: KeyRole::Sort,
        },
    ]
}

fn key() -> Item {
    [
        ("id".to_string(), s("u/1?&=.é")),
        ("n".to_string(), n("5")),
        ("email".to_string(), s("alice@example.com")),
        ("bin".to_string(), b(&[0, 1, 255])),
    ]
    .into()
}

fn with(key: &Item, name: &str, value: Option<AttributeValue>) -> Item {
    let mut key = key.clone();
    match value {
        Some(v) => key.insert(name.to_owned(), v),
        None => key.remove(name),
    };
    key
}

fn reason(r: Result<Item>) -> String {
    match r {
        Err(Error::InvalidCursor { reason }) => reason,
        other => panic!("expected InvalidCursor, got {other:?}"),
    }
}

/// A cursor of `body` with format byte `format`, bypassing `encode`.
fn raw(format: u8, body: &[u8]) -> Cursor {
    let mut bytes = vec![format];
    bytes.extend_from_slice(body);
    Cursor(B64.encode(bytes))
}

fn url_safe(c: &Cursor) -> bool {
    c.as_str()
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
}

#[test]
fn round_trip_and_url_safe() {
    for secret in [None, Some(SECRET)] {
        let c = encode(FP, &key(), secret);
        assert!(url_safe(&c), "{c:?}");
        assert_eq!(decode(&c, FP, &shape(), secret).unwrap(), key());
        assert!(reason(decode(&c, OTHER_FP, &shape(), secret)).contains("another query"));
    }
    assert!(reason(decode(&Cursor::parse("%%%"), FP, &shape(), None)).contains("encoding"));
}

#[test]
fn numbers_come_back_as_plain_decimals() {
    for (written, back) in [
        ("5", "5"),
        ("1.50", "1.5"),
        ("1e2", "100"),
        ("-25E-3", "-0.025"),
    ] {
        let key = with(&key(), "n", Some(n(written)));
        let c = encode(FP, &key, None);
        assert_eq!(decode(&c, FP, &shape(), None).unwrap()["n"], n(back));
    }
}

#[test]
fn one_position_one_string() {
    for secret in [None, Some(SECRET)] {
        let c = encode(FP, &key(), secret);
        // Again, from a map built in another order, and with the number written otherwise.
        let mut reordered = Item::new();
        for name in ["bin", "n", "email", "id"] {
            reordered.insert(name.to_owned(), key()[name].clone());
        }
        assert_eq!(encode(FP, &reordered, secret), c);
        for same in ["5.0", "5e0", "50E-1", "+5", "005"] {
            let again = with(&key(), "n", Some(n(same)));
            assert_eq!(encode(FP, &again, secret), c, "{same}");
        }
        let other = with(&key(), "n", Some(n("6")));
        assert_ne!(encode(FP, &other, secret), c);
        // The decoded key encodes to the same string.
        let back = decode(&c, FP, &shape(), secret).unwrap();
        assert_eq!(encode(FP, &back, secret), c);
    }
}

#[test]
fn non_canonical_spellings_are_refused() {
    let fp = fingerprint_bytes(FP);
    // Attributes out of name order.
    let unordered = "a2:ids1:xa1:nn3:5e0a5:emails1:ya3:binb2:00";
    // A number not in canonical form.
    let unnormalised = "a3:binb2:00a5:emails1:ya2:ids1:xa1:nn3:5.0";
    // Upper-case hex.
    let upper = "a3:binb2:AAa5:emails1:ya2:ids1:xa1:nn3:5e0";
    // A length with a leading zero.
    let padded = "a3:binb2:00a5:emails01:ya2:ids1:xa1:nn3:5e0";
    let canonical = "a3:binb2:00a5:emails1:ya2:ids1:xa1:nn3:5e0";
    let good = {
        let mut body = fp.clone();
        body.extend_from_slice(canonical.as_bytes());
        raw(PLAIN, &body)
    };
    decode(&good, FP, &shape(), None).unwrap();
    for text in [unordered, unnormalised, upper, padded] {
        let mut body = fp.clone();
        body.extend_from_slice(text.as_bytes());
        let why = reason(decode(&raw(PLAIN, &body), FP, &shape(), None));
        assert!(why.contains("non-canonical"), "{text}: {why}");
    }
    // Non-zero trailing bits in the base64 text: another string for the same bytes.
    let mut text = good.as_str().to_owned();
    let last = text.pop().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let i = alphabet.find(last).unwrap();
    text.push(alphabet.as_bytes()[i ^ 1] as char);
    let why = reason(decode(&Cursor(text), FP, &shape(), None));
    assert!(why.contains("encoding"), "{why}");
}

#[test]
fn the_empty_string_is_refused_with_a_hint() {
    for secret in [None, Some(SECRET)] {
        let why = reason(decode(&Cursor::parse(""), FP, &shape(), secret));
        assert!(
            why.contains("empty cursor") && why.contains("None"),
            "{why}"
        );
    }
}

#[test]
fn key_and_no_key_do_not_mix() {
    let plain = encode(FP, &key(), None);
    let sealed = encode(FP, &key(), Some(SECRET));
    assert!(reason(decode(&plain, FP, &shape(), Some(SECRET))).contains("not encrypted"));
    assert!(reason(decode(&sealed, FP, &shape(), None)).contains("no cursor key"));
    assert!(reason(decode(&sealed, FP, &shape(), Some(b"another key"))).contains("altered"));
}

#[test]
fn encrypted_cursors_hide_key_values() {
    let c = encode(FP, &key(), Some(SECRET));
    let bytes = B64.decode(c.as_str()).unwrap();
    let plain = payload(FP, &key());
    for needle in [
        &b"alice@example.com"[..],
        b"alice",
        b"example",
        b"email",
        b"u/1",
    ] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{needle:?}"
        );
        assert!(
            plain.windows(needle.len()).any(|w| w == needle),
            "the plain payload holds {needle:?}"
        );
    }
    assert!(!c.as_str().contains("alice"));
}

#[test]
fn any_alteration_of_an_encrypted_cursor_is_detected() {
    let c = encode(FP, &key(), Some(SECRET));
    let bytes = B64.decode(c.as_str()).unwrap();
    for i in 1..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut altered = bytes.clone();
            altered[i] ^= bit;
            let why = reason(decode(
                &Cursor(B64.encode(&altered)),
                FP,
                &shape(),
                Some(SECRET),
            ));
            assert!(why.contains("altered"), "byte {i}: {why}");
        }
    }
    // Truncated and extended.
    for altered in [&bytes[..bytes.len() - 1], &bytes[..5], &bytes[..1]] {
        let why = reason(decode(
            &Cursor(B64.encode(altered)),
            FP,
            &shape(),
            Some(SECRET),
        ));
        assert!(why.contains("altered"), "{why}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let why = reason(decode(
        &Cursor(B64.encode(&longer)),
        FP,
        &shape(),
        Some(SECRET),
    ));
    assert!(why.contains("altered"), "{why}");
    // The format byte is authenticated: flipping it makes a plain or unknown cursor.
    let mut flipped = bytes.clone();
    flipped[0] = 0x7f;
    assert!(reason(decode(
        &Cursor(B64.encode(&flipped)),
        FP,
        &shape(),
        Some(SECRET)
    ))
    .contains("version"));
}

#[test]
fn forged_keys_are_refused_with_what_is_wrong() {
    let cases: Vec<(&str, Item, &str)> = vec![
        (
            "missing sort key",
            with(&key(), "n", None),
            "lacks the sort key `n`",
        ),
        (
            "missing index key",
            with(&key(), "email", None),
            "lacks the partition key `email`",
        ),
        (
            "stray attribute",
            with(&key(), "role", Some(s("admin"))),
            "attribute `role`, which is not a key attribute",
        ),
        (
            "renamed attribute",
            with(&with(&key(), "id", None), "idd", Some(s("x"))),
            "attribute `idd`",
        ),
        (
            "string as number",
            with(&key(), "n", Some(s("5"))),
            "`n` must be of type N, found S",
        ),
        (
            "number as string",
            with(&key(), "id", Some(n("5"))),
            "`id` must be of type S, found N",
        ),
        (
            "string as binary",
            with(&key(), "bin", Some(s("x"))),
            "`bin` must be of type B",
        ),
        (
            "empty string",
            with(&key(), "id", Some(s(""))),
            "`id` is empty",
        ),
        (
            "empty binary",
            with(&key(), "bin", Some(b(&[]))),
            "`bin` is empty",
        ),
        (
            "oversized partition key",
            with(&key(), "id", Some(s(&"x".repeat(2049)))),
            "2049 bytes, over DynamoDB's limit of 2048",
        ),
        (
            "oversized sort key",
            with(&key(), "bin", Some(b(&[7; 1025]))),
            "1025 bytes, over DynamoDB's limit of 1024",
        ),
        (
            "multi-byte oversized",
            with(&key(), "email", Some(s(&"é".repeat(1025)))),
            "2050 bytes",
        ),
        (
            "not a number",
            with(&key(), "n", Some(n("abc"))),
            "`abc` is not a number",
        ),
        ("NaN", with(&key(), "n", Some(n("NaN"))), "not a number"),
        (
            "too many digits",
            with(&key(), "n", Some(n(&"1".repeat(39)))),
            "39 significant digits",
        ),
        (
            "too large",
            with(&key(), "n", Some(n("1e126"))),
            "out of DynamoDB's number range",
        ),
        (
            "too small",
            with(&key(), "n", Some(n("1e-131"))),
            "out of DynamoDB's number range",
        ),
        (
            "way too small",
            with(&key(), "n", Some(n("1e-999999999"))),
            "out of DynamoDB's",
        ),
        ("no key at all", Item::new(), "lacks the partition key `id`"),
    ];
    for secret in [None, Some(SECRET)] {
        for (what, forged, needle) in &cases {
            let c = encode(FP, forged, secret);
            let why = reason(decode(&c, FP, &shape(), secret));
            assert!(why.contains(needle), "{what}: {why}");
        }
    }
    // Limits that still hold.
    for fine in [
        with(&key(), "id", Some(s(&"x".repeat(2048)))),
        with(&key(), "bin", Some(b(&[7; 1024]))),
        with(
            &key(),
            "n",
            Some(n("9.9999999999999999999999999999999999999E+125")),
        ),
        with(&key(), "n", Some(n("-1E-130"))),
        with(&key(), "n", Some(n("0"))),
    ] {
        decode(&encode(FP, &fine, None), FP, &shape(), None).unwrap();
    }
}

#[test]
fn a_query_cursor_holds_the_query_partition() {
    let check = |value: AttributeValue| CursorCheck {
        partition: Some(("email", value)),
        ..shape()
    };
    let c = encode(FP, &key(), None);
    decode(&c, FP, &check(s("alice@example.com")), None).unwrap();
    let why = reason(decode(&c, FP, &check(s("bob@example.com")), None));
    assert!(why.contains("starts outside this query"), "{why}");
    // Numbers by value.
    let by_n = |value: &str| CursorCheck {
        partition: Some(("n", n(value))),
        ..shape()
    };
    decode(&c, FP, &by_n("5.0"), None).unwrap();
    assert!(decode(&c, FP, &by_n("6"), None).is_err());
}

#[test]
fn malformed_payloads_are_refused() {
    let fp = fingerprint_bytes(FP);
    let with_key = |text: &[u8]| {
        let mut body = fp.clone();
        body.extend_from_slice(text);
        raw(PLAIN, &body)
    };
    for (what, cursor, needle) in [
        ("only a format byte", raw(PLAIN, b""), "too short"),
        ("short fingerprint", raw(PLAIN, &fp[..5]), "too short"),
        ("unknown format", raw(9, &fp), "version"),
        (
            "old JSON cursor",
            Cursor(B64.encode(br#"{"v":1,"q":"x","k":{}}"#)),
            "version",
        ),
        (
            "old signed cursor",
            Cursor("eyJ2IjoxfQ.c2ln".into()),
            "encoding",
        ),
        ("not text", with_key(&[0xff, 0xfe]), "not text"),
        ("bad structure", with_key(b"a2:id"), "bad key"),
        ("duplicate", with_key(b"a2:ids1:xa2:ids1:x"), "twice"),
        (
            "too long",
            Cursor("A".repeat(MAX_CURSOR_LEN + 4)),
            "too long",
        ),
    ] {
        let why = reason(decode(&cursor, FP, &shape(), None));
        assert!(why.contains(needle), "{what}: {why}");
    }
}

#[test]
fn key_shape_of_table_and_index() {
    use crate::entity::{IndexKind, KeySchema, Projection};
    let k = |name, scalar| KeySchema { name, scalar };
    let index = IndexSchema {
        name: "ByOwner",
        kind: IndexKind::Global,
        partition_key: k("sk", ScalarType::Number),
        sort_key: Some(k("owner", ScalarType::String)),
        projection: Projection::All,
    };
    let local = IndexSchema {
        name: "ByDay",
        kind: IndexKind::Local,
        partition_key: k("pk", ScalarType::String),
        sort_key: Some(k("day", ScalarType::String)),
        projection: Projection::KeysOnly,
    };
    let schema = TableSchema::for_tests(Some(k("sk", ScalarType::Number)), 0);
    let names = |shape: Vec<KeyShape>| {
        shape
            .into_iter()
            .map(|s| (s.name, s.role))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(key_shape(&schema, None)),
        [("pk", KeyRole::Partition), ("sk", KeyRole::Sort)]
    );
    // `sk` is the table's sort key and the index's partition key: the stricter limit.
    assert_eq!(
        names(key_shape(&schema, Some(&index))),
        [
            ("pk", KeyRole::Partition),
            ("sk", KeyRole::Sort),
            ("owner", KeyRole::Sort)
        ]
    );
    assert_eq!(
        names(key_shape(&schema, Some(&local))),
        [
            ("pk", KeyRole::Partition),
            ("sk", KeyRole::Sort),
            ("day", KeyRole::Sort)
        ]
    );
}

#[test]
fn serde_forms() {
    let c = Cursor::parse("abc_-1");
    assert_eq!(serde_json::to_string(&c).unwrap(), r#""abc_-1""#);
    assert_eq!(serde_json::from_str::<Cursor>(r#""abc_-1""#).unwrap(), c);
    let page = Page {
        items: vec![1, 2],
        next: Some(c.clone()),
    };
    let json = serde_json::to_value(&page).unwrap();
    assert_eq!(json, serde_json::json!({"items": [1, 2], "next": "abc_-1"}));
    assert_eq!(serde_json::from_value::<Page<i32>>(json).unwrap(), page);
    let last: Page<i32> = Page {
        items: vec![],
        next: None,
    };
    let json = serde_json::to_value(&last).unwrap();
    assert_eq!(json, serde_json::json!({"items": [], "next": null}));
    assert_eq!(serde_json::from_value::<Page<i32>>(json).unwrap(), last);
    // A real cursor survives the trip and still decodes.
    let real = Page {
        items: vec!["x".to_owned()],
        next: Some(encode(FP, &key(), Some(SECRET))),
    };
    let back: Page<String> = serde_json::from_str(&serde_json::to_string(&real).unwrap()).unwrap();
    assert_eq!(back, real);
    let next = back.next.as_ref().unwrap();
    assert_eq!(decode(next, FP, &shape(), Some(SECRET)).unwrap(), key());
}

#[test]
fn page_helpers() {
    let page = Page {
        items: vec![1, 2, 3],
        next: Some(Cursor::parse("c")),
    };
    assert!(!page.is_last());
    let mapped = page.clone().map(|x| x * 10);
    assert_eq!(mapped.items, [10, 20, 30]);
    assert_eq!(mapped.next, page.next);
    let (items, next) = page.into_parts();
    assert_eq!((items, next), (vec![1, 2, 3], Some(Cursor::parse("c"))));
    let last: Page<u8> = Page {
        items: vec![],
        next: None,
    };
    assert!(last.is_last());
}

fn value_of(scalar: ScalarType) -> BoxedStrategy<AttributeValue> {
    match scalar {
        ScalarType::String => "\\PC{1,40}".prop_map(AttributeValue::S).boxed(),
        ScalarType::Number => (-1_000_000_000i64..1_000_000_000, -20i32..20)
            .prop_map(|(m, e)| AttributeValue::N(format!("{m}e{e}")))
            .boxed(),
        ScalarType::Binary => proptest::collection::vec(any::<u8>(), 1..40)
            .prop_map(|v| AttributeValue::B(Blob::new(v)))
            .boxed(),
    }
}

fn random_key() -> impl Strategy<Value = Item> {
    key_shapes()
        .into_iter()
        .map(|s| value_of(s.scalar).prop_map(move |v| (s.name.to_owned(), v)))
        .collect::<Vec<_>>()
        .prop_map(|pairs| pairs.into_iter().collect::<Item>())
}

/// DynamoDB's equality of key values: numbers by value.
fn same_position(a: &Item, b: &Item) -> bool {
    crate::key::encode_item_key(a) == crate::key::encode_item_key(b)
}

/// `key` with every number written another way (`m e k` as `m0 e k-1`, with a `.0`).
fn respelled(key: &Item) -> Item {
    key.iter()
        .map(|(name, v)| {
            let v = match v {
                AttributeValue::N(text) => {
                    let (m, e) = text.split_once('e').unwrap();
                    let e: i32 = e.parse().unwrap();
                    AttributeValue::N(format!("{m}0.0E{}", e - 1))
                }
                other => other.clone(),
            };
            (name.clone(), v)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_keys_round_trip(key in random_key(), sealed in any::<bool>()) {
        let secret = sealed.then_some(SECRET);
        let c = encode(FP, &key, secret);
        prop_assert!(url_safe(&c));
        let back = decode(&c, FP, &shape(), secret).unwrap();
        prop_assert!(same_position(&back, &key));
        prop_assert_eq!(encode(FP, &back, secret), c);
    }

    #[test]
    fn strings_are_equal_exactly_when_positions_are(
        a in random_key(),
        b in random_key(),
        sealed in any::<bool>(),
    ) {
        let secret = sealed.then_some(SECRET);
        prop_assert_eq!(
            encode(FP, &a, secret) == encode(FP, &b, secret),
            same_position(&a, &b)
        );
        prop_assert_eq!(encode(FP, &a, secret), encode(FP, &respelled(&a), secret));
    }
}

/// A check per lane: the shape above, each lane fixed to its own partition value.
fn lane_checks(ids: &[&str]) -> Vec<CursorCheck> {
    ids.iter()
        .map(|id| CursorCheck {
            shape: key_shapes(),
            partition: Some(("id", s(id))),
        })
        .collect()
}

fn key_in(id: &str) -> Item {
    let mut k = key();
    k.insert("id".to_owned(), s(id));
    k
}

#[test]
fn a_fan_out_cursor_round_trips_every_lane_state_plain_and_sealed() {
    let checks = lane_checks(&["a", "b", "c", "d"]);
    let refs: Vec<&CursorCheck> = checks.iter().collect();
    let lanes = vec![
        LanePosition::Start,
        LanePosition::After(key_in("b")),
        LanePosition::Done,
        LanePosition::After(key_in("d")),
    ];
    for secret in [None, Some(SECRET)] {
        let cursor = encode_lanes(FP, &lanes, secret);
        assert_eq!(
            decode_lanes(&cursor, FP, &refs, secret).expect("decodes"),
            lanes
        );
        assert_eq!(
            encode_lanes(FP, &lanes, secret),
            cursor,
            "one string per position"
        );
        let err = decode_lanes(&cursor, OTHER_FP, &refs, secret).expect_err("another query");
        assert!(err.to_string().contains("another query"), "{err}");
    }
}

#[test]
fn a_fan_out_cursor_is_checked_lane_by_lane() {
    let checks = lane_checks(&["a", "b"]);
    let refs: Vec<&CursorCheck> = checks.iter().collect();
    let outside = encode_lanes(
        FP,
        &[LanePosition::Start, LanePosition::After(key_in("a"))],
        None,
    );
    let err = decode_lanes(&outside, FP, &refs, None).expect_err("lane b holds a's key");
    assert!(err.to_string().contains("another value"), "{err}");

    let short = encode_lanes(FP, &[LanePosition::Start], None);
    let err = decode_lanes(&short, FP, &refs, None).expect_err("one lane missing");
    assert!(err.to_string().contains("truncated"), "{err}");

    let three = encode_lanes(
        FP,
        &[LanePosition::Start, LanePosition::Done, LanePosition::Done],
        None,
    );
    let err = decode_lanes(&three, FP, &refs, None).expect_err("one lane too many");
    assert!(err.to_string().contains("trailing"), "{err}");

    let mut bytes = vec![0x01];
    bytes.extend(fingerprint_bytes(FP));
    bytes.extend(b"sx");
    let bad_tag = Cursor(B64.encode(&bytes));
    let err = decode_lanes(&bad_tag, FP, &refs, None).expect_err("unknown tag");
    assert!(err.to_string().contains("unknown partition state"), "{err}");

    let mut bytes = vec![0x01];
    bytes.extend(fingerprint_bytes(FP));
    bytes.extend(b"sk\0\0\0\x40");
    let cut = Cursor(B64.encode(&bytes));
    let err = decode_lanes(&cut, FP, &refs, None).expect_err("length beyond the payload");
    assert!(err.to_string().contains("truncated"), "{err}");
}

proptest! {
    #[test]
    fn a_fan_out_cursor_never_decodes_after_any_change(flip in 0usize..200, bit in 0u8..8) {
        let checks = lane_checks(&["a", "b"]);
        let refs: Vec<&CursorCheck> = checks.iter().collect();
        let lanes = [LanePosition::After(key_in("a")), LanePosition::Start];
        let cursor = encode_lanes(FP, &lanes, Some(SECRET));
        let mut bytes = B64.decode(cursor.as_str()).expect("base64");
        let i = flip % bytes.len();
        bytes[i] ^= 1 << bit;
        let altered = Cursor(B64.encode(&bytes));
        prop_assert!(decode_lanes(&altered, FP, &refs, Some(SECRET)).is_err());
    }
}
