//! Cursors and pages.
//!
//! A [`Cursor`] is an opaque, URL-safe string: where a paged read resumes. It holds the key of
//! the last item returned (its table and index keys, so it resumes exactly after that item even
//! when a page was cut short by a limit) and a fingerprint of the query that produced it.
//!
//! # Rules
//!
//! - **Bound to its query.** A cursor of another query (another table, index, condition,
//!   projection or order) is refused.
//! - **Shape-checked.** Before any request, the key inside a cursor is checked against the
//!   query's key schema: exactly the key attributes the query resumes on (the table's partition
//!   and sort key, plus the index's when the find reads an index), each of its declared type
//!   (`S`, `N` or `B`), numbers that DynamoDB accepts, no empty strings or binaries, and sizes
//!   within DynamoDB's key limits (2048 bytes for a partition key, 1024 for a sort key). For a
//!   Query, the partition key must hold the value the query reads. So a forged cursor never
//!   reaches the server, with or without a cursor key.
//! - **Canonical.** One position has one cursor string: the key attributes are written in name
//!   order in the crate's one canonical key encoding (`crate::key`), numbers normalised by value
//!   (`1`, `1.0` and `10E-1` are one position), and encryption (below) is deterministic. Decoding
//!   refuses any other spelling of a position, so every accepted cursor is the canonical one.
//! - **Confidential and tamper-proof with a cursor key.** With
//!   [`ClientBuilder::cursor_key`](crate::ClientBuilder::cursor_key), cursors are encrypted
//!   with authenticated encryption: no key value can be read from them, and any alteration is
//!   detected. A client with a cursor key refuses plain cursors, and a client without one
//!   refuses encrypted cursors.
//!
//! Any cursor that breaks a rule is [`Error::InvalidCursor`], naming what is wrong, before any
//! request is sent. The empty string is refused too (`"empty cursor"`): pass `None` to start at
//! the first page. A cursor that silently restarted at page one could make a paging loop that
//! feeds cursors back never end.
//!
//! # Format
//!
//! A cursor is the URL-safe base64 (no padding) of one format byte and a body:
//!
//! - `0x01`, plain: the payload as it is.
//! - `0x02`, encrypted: AES-SIV (RFC 5297, `AES-256-SIV`) of the payload, with the format byte as
//!   associated data: a 16-byte synthetic IV, then the ciphertext.
//!
//! The payload is the query fingerprint (12 bytes), then the key in the canonical key encoding
//! (attributes in name order; each a length-prefixed name and a typed, length-prefixed value;
//! numbers normalised; binaries in hex).
//!
//! **Why AES-SIV.** A cursor must be one string per position, so the encryption has to be
//! deterministic; AES-SIV is the standard deterministic AEAD (its IV is a MAC of the plaintext),
//! misuse-resistant by design, and needs no nonce to store or manage. Deterministic encryption
//! reveals only whether two cursors are equal, which the canonical plain encoding shows anyway.
//! The 64-byte AES-SIV key is derived from the user's cursor key (any length) with HKDF-SHA256
//! under a dynamite-specific label, so the same secret used elsewhere yields an unrelated key.

use std::fmt;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit as _;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::entity::{IndexSchema, TableSchema};
use crate::value::ScalarType;
use crate::{Error, Item, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The format byte of a plain cursor.
const PLAIN: u8 = 0x01;
/// The format byte of an encrypted cursor.
const SEALED: u8 = 0x02;
/// Bytes of query fingerprint in a payload.
const FINGERPRINT_LEN: usize = 12;
/// The longest cursor string decoded. The largest real cursor (two 2048-byte binary partition
/// keys, two 1024-byte binary sort keys, long names) is well under half of it.
const MAX_CURSOR_LEN: usize = 32 * 1024;
/// HKDF labels of the cursor encryption key.
const KDF_SALT: &[u8] = b"dynamite cursor key";
const KDF_INFO: &[u8] = b"dynamite/cursor/aes-256-siv/v1";

/// Where a paged read resumes: an opaque, URL-safe string (see [the module docs](crate::page) for
/// what it holds and how it is checked).
///
/// Serialised (with serde) as the plain string. A cursor received back — from a query string,
/// say, or deserialised — is checked when it is used: a cursor of another query, a malformed,
/// altered or forged one, and the empty string are [`Error::InvalidCursor`] before any request.
/// To start at the first page, pass `None`, never an empty cursor.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// The cursor as a string, to hand to a client of your API.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A cursor received back (from a query string, say). It is checked when used; an empty
    /// string is refused then (pass `None` to start at the first page).
    pub fn parse(s: impl Into<String>) -> Self {
        Cursor(s.into())
    }

    /// The cursor as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({})", self.0)
    }
}

impl std::str::FromStr for Cursor {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Cursor(s.to_owned()))
    }
}

impl From<String> for Cursor {
    fn from(s: String) -> Self {
        Cursor(s)
    }
}

impl From<&str> for Cursor {
    fn from(s: &str) -> Self {
        Cursor(s.to_owned())
    }
}

impl From<Cursor> for String {
    fn from(c: Cursor) -> Self {
        c.0
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Cursor)
    }
}

/// One page of results, and the cursor of the next one (`None`: no more items).
///
/// Serialised (with serde) as `{"items": [...], "next": "..."}`, `next` being `null` on the
/// last page: ready to return from an API handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items, in order.
    pub items: Vec<T>,
    /// Where the next page starts, when there may be more items.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// The same page with each item mapped by `f` (to an API representation, say); the cursor
    /// is kept.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }

    /// The items and the next page's cursor.
    pub fn into_parts(self) -> (Vec<T>, Option<Cursor>) {
        (self.items, self.next)
    }

    /// `true` when there is no next page (`next` is `None`).
    pub fn is_last(&self) -> bool {
        self.next.is_none()
    }
}

/// A stable fingerprint of a query's normalised form: 24 hex digits.
pub(crate) fn fingerprint(normalised: &str) -> String {
    let digest = Sha256::digest(normalised.as_bytes());
    digest[..FINGERPRINT_LEN]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes of a fingerprint's hex text.
fn fingerprint_bytes(fingerprint: &str) -> Vec<u8> {
    fingerprint
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .expect("a fingerprint is hex text")
        })
        .collect()
}

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

/// The AES-SIV cipher of cursor key `secret`.
fn cipher(secret: &[u8]) -> Aes256Siv {
    let kdf = hkdf::Hkdf::<Sha256>::new(Some(KDF_SALT), secret);
    let mut okm = [0u8; 64];
    kdf.expand(KDF_INFO, &mut okm)
        .expect("64 bytes is a valid HKDF-SHA256 output length");
    Aes256Siv::new_from_slice(&okm).expect("AES-256-SIV takes a 64-byte key")
}

/// The plain payload: fingerprint, then the canonical key text.
fn payload(fingerprint: &str, key: &Item) -> Vec<u8> {
    let mut out = fingerprint_bytes(fingerprint);
    out.extend_from_slice(crate::key::encode_item_key(key).as_bytes());
    out
}

/// Builds the cursor for resuming after `key`, encrypted under `secret` when there is one.
pub(crate) fn encode(fingerprint: &str, key: &Item, secret: Option<&[u8]>) -> Cursor {
    let body = payload(fingerprint, key);
    let mut bytes = Vec::with_capacity(body.len() + 17);
    match secret {
        None => {
            bytes.push(PLAIN);
            bytes.extend_from_slice(&body);
        }
        Some(secret) => {
            bytes.push(SEALED);
            let sealed = cipher(secret)
                .encrypt([[SEALED]], &body)
                .expect("AES-SIV encrypts any payload with one header");
            bytes.extend_from_slice(&sealed);
        }
    }
    Cursor(B64.encode(bytes))
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidCursor {
        reason: reason.into(),
    }
}

/// Reads a cursor back: the key to resume after, if the cursor belongs to the query
/// `fingerprint`, holds a key that passes `check`, is in canonical form, and is encrypted
/// exactly when the client has a cursor key (`secret`).
pub(crate) fn decode(
    cursor: &Cursor,
    fingerprint: &str,
    check: &CursorCheck,
    secret: Option<&[u8]>,
) -> Result<Item> {
    let text = cursor.as_str();
    if text.is_empty() {
        return Err(invalid(
            "empty cursor: pass None to start at the first page",
        ));
    }
    if text.len() > MAX_CURSOR_LEN {
        return Err(invalid(format!(
            "not a cursor (too long: {} characters, the limit is {MAX_CURSOR_LEN})",
            text.len()
        )));
    }
    let bytes = B64
        .decode(text)
        .map_err(|_| invalid("not a cursor (bad encoding: not URL-safe base64)"))?;
    if B64.encode(&bytes) != text {
        return Err(invalid("not a cursor (non-canonical encoding)"));
    }
    let (&format, body) = bytes
        .split_first()
        .ok_or_else(|| invalid("not a cursor (bad content)"))?;
    let plain = match (format, secret) {
        (PLAIN, None) => body.to_vec(),
        (SEALED, Some(secret)) => cipher(secret).decrypt([[SEALED]], body).map_err(|_| {
            invalid("the cursor does not decrypt: it was altered, or made with another cursor key")
        })?,
        (PLAIN, Some(_)) => {
            return Err(invalid(
                "the cursor is not encrypted, and this client (which has a cursor key) accepts \
                 only encrypted cursors",
            ))
        }
        (SEALED, None) => {
            return Err(invalid(
                "the cursor is encrypted, but this client has no cursor key to read it",
            ))
        }
        _ => {
            return Err(invalid(
                "not a cursor (bad content, or a cursor of an incompatible version)",
            ))
        }
    };
    if plain.len() < FINGERPRINT_LEN {
        return Err(invalid("not a cursor (bad content: too short)"));
    }
    let (query, key_bytes) = plain.split_at(FINGERPRINT_LEN);
    if query != fingerprint_bytes(fingerprint) {
        return Err(invalid("the cursor belongs to another query"));
    }
    let key_text = std::str::from_utf8(key_bytes)
        .map_err(|_| invalid("not a cursor (bad content: the key is not text)"))?;
    let key = crate::key::decode_item_key(key_text)
        .map_err(|e| invalid(format!("not a cursor (bad key: {e})")))?;
    check_shape(&key, &check.shape)?;
    if let Some((name, value)) = &check.partition {
        let same = key.get(*name).is_some_and(|v| {
            crate::key::encode_key_values(v, None) == crate::key::encode_key_values(value, None)
        });
        if !same {
            return Err(invalid(format!(
                "the cursor's partition key `{name}` holds another value than the query's: the \
                 cursor starts outside this query"
            )));
        }
    }
    if crate::key::encode_item_key(&key) != key_text {
        return Err(invalid(
            "not a cursor (non-canonical key encoding: attributes out of order, or a value \
             written another way)",
        ));
    }
    Ok(key)
}

/// Checks a cursor's key against the query's key schema: the names, types and values DynamoDB
/// accepts as an `ExclusiveStartKey`.
fn check_shape(key: &Item, shape: &[KeyShape]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;
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
        let schema = TableSchema {
            entity: "E",
            table: "t",
            partition_key: k("pk", ScalarType::String),
            sort_key: Some(k("sk", ScalarType::Number)),
            indexes: &[],
            ttl: None,
            version: None,
            attributes: &[],
            fingerprint: 0,
            cache: None,
        };
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
        let back: Page<String> =
            serde_json::from_str(&serde_json::to_string(&real).unwrap()).unwrap();
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
}
