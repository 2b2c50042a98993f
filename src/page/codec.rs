//! Encoding and decoding cursors: the format byte, the payload (query fingerprint and the key
//! in the canonical key encoding), AES-SIV under the cursor key, and the canonical check.

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit as _;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::shape::{check_shape, CursorCheck};
use super::Cursor;
use crate::{Error, Item, Result};

pub(super) const B64: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The format byte of a plain cursor.
pub(super) const PLAIN: u8 = 0x01;
/// The format byte of an encrypted cursor.
pub(super) const SEALED: u8 = 0x02;
/// Bytes of query fingerprint in a payload.
pub(super) const FINGERPRINT_LEN: usize = 12;
/// The longest cursor string decoded. The largest real cursor (two 2048-byte binary partition
/// keys, two 1024-byte binary sort keys, long names) is well under half of it.
pub(super) const MAX_CURSOR_LEN: usize = 32 * 1024;
/// HKDF labels of the cursor encryption key.
const KDF_SALT: &[u8] = b"dynamite cursor key";
const KDF_INFO: &[u8] = b"dynamite/cursor/aes-256-siv/v1";

/// A stable fingerprint of a query's normalised form: 24 hex digits.
pub(crate) fn fingerprint(normalised: &str) -> String {
    let digest = Sha256::digest(normalised.as_bytes());
    digest[..FINGERPRINT_LEN]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes of a fingerprint's hex text.
pub(super) fn fingerprint_bytes(fingerprint: &str) -> Vec<u8> {
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

/// The AES-SIV cipher of cursor key `secret`.
fn cipher(secret: &[u8]) -> Aes256Siv {
    let kdf = hkdf::Hkdf::<Sha256>::new(Some(KDF_SALT), secret);
    let mut okm = [0u8; 64];
    kdf.expand(KDF_INFO, &mut okm)
        .expect("64 bytes is a valid HKDF-SHA256 output length");
    Aes256Siv::new_from_slice(&okm).expect("AES-256-SIV takes a 64-byte key")
}

/// The plain payload: fingerprint, then the canonical key text.
pub(super) fn payload(fingerprint: &str, key: &Item) -> Vec<u8> {
    let mut out = fingerprint_bytes(fingerprint);
    out.extend_from_slice(crate::key::encode_item_key(key).as_bytes());
    out
}

/// Builds the cursor for resuming after `key`, encrypted under `secret` when there is one.
pub(crate) fn encode(fingerprint: &str, key: &Item, secret: Option<&[u8]>) -> Cursor {
    seal(&payload(fingerprint, key), secret)
}

/// Where one partition of a fan-out stands, as its cursor records it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LanePosition {
    /// Nothing of it returned yet: it is read from its beginning.
    Start,
    /// Resumes after the item with this key.
    After(Item),
    /// Read to its end.
    Done,
}

/// Lane tags in a fan-out cursor's payload.
const LANE_START: u8 = b's';
const LANE_AFTER: u8 = b'k';
const LANE_DONE: u8 = b'd';

/// The cursor of a fan-out: the fingerprint, then one entry per partition, in the order the
/// find lists them: `s` (from the start), `d` (done), or `k`, a 4-byte big-endian length and
/// the canonical key text.
pub(crate) fn encode_lanes(
    fingerprint: &str,
    lanes: &[LanePosition],
    secret: Option<&[u8]>,
) -> Cursor {
    let mut body = fingerprint_bytes(fingerprint);
    for lane in lanes {
        match lane {
            LanePosition::Start => body.push(LANE_START),
            LanePosition::Done => body.push(LANE_DONE),
            LanePosition::After(key) => {
                let text = crate::key::encode_item_key(key);
                body.push(LANE_AFTER);
                let len = u32::try_from(text.len()).expect("a key text is far below 4 GiB");
                body.extend_from_slice(&len.to_be_bytes());
                body.extend_from_slice(text.as_bytes());
            }
        }
    }
    seal(&body, secret)
}

/// The format byte and body (encrypted under `secret` when there is one), in URL-safe base64.
fn seal(body: &[u8], secret: Option<&[u8]>) -> Cursor {
    let mut bytes = Vec::with_capacity(body.len() + 17);
    match secret {
        None => {
            bytes.push(PLAIN);
            bytes.extend_from_slice(body);
        }
        Some(secret) => {
            bytes.push(SEALED);
            let sealed = cipher(secret)
                .encrypt([[SEALED]], body)
                .expect("AES-SIV encrypts any payload with one header");
            bytes.extend_from_slice(&sealed);
        }
    }
    Cursor(B64.encode(bytes))
}

pub(super) fn invalid(reason: impl Into<String>) -> Error {
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
    let plain = open(cursor, secret, MAX_CURSOR_LEN)?;
    let key_bytes = of_query(&plain, fingerprint)?;
    let key_text = std::str::from_utf8(key_bytes)
        .map_err(|_| invalid("not a cursor (bad content: the key is not text)"))?;
    read_key(key_text, check)
}

/// Reads a fan-out's cursor back: one position per partition (`checks`, in the find's order),
/// under the same rules as [`decode`] for each key.
pub(crate) fn decode_lanes(
    cursor: &Cursor,
    fingerprint: &str,
    checks: &[&CursorCheck],
    secret: Option<&[u8]>,
) -> Result<Vec<LanePosition>> {
    let plain = open(cursor, secret, MAX_CURSOR_LEN * checks.len().max(1))?;
    let mut rest = of_query(&plain, fingerprint)?;
    let truncated = || invalid("not a cursor (bad content: truncated)");
    let mut lanes = Vec::with_capacity(checks.len());
    for check in checks {
        let (&tag, after) = rest.split_first().ok_or_else(truncated)?;
        rest = after;
        lanes.push(match tag {
            LANE_START => LanePosition::Start,
            LANE_DONE => LanePosition::Done,
            LANE_AFTER => {
                let (len, after) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
                let len = u32::from_be_bytes(*len) as usize;
                if after.len() < len {
                    return Err(truncated());
                }
                let (text, after) = after.split_at(len);
                rest = after;
                let text = std::str::from_utf8(text)
                    .map_err(|_| invalid("not a cursor (bad content: a key is not text)"))?;
                LanePosition::After(read_key(text, check)?)
            }
            _ => {
                return Err(invalid(
                    "not a cursor (bad content: unknown partition state)",
                ))
            }
        });
    }
    if !rest.is_empty() {
        return Err(invalid("not a cursor (bad content: trailing bytes)"));
    }
    Ok(lanes)
}

/// The payload of a cursor string: checked for length and canonical base64, then opened
/// (decrypted when the client has a cursor key; refused when the format does not match).
fn open(cursor: &Cursor, secret: Option<&[u8]>, max_len: usize) -> Result<Vec<u8>> {
    let text = cursor.as_str();
    if text.is_empty() {
        return Err(invalid(
            "empty cursor: pass None to start at the first page",
        ));
    }
    if text.len() > max_len {
        return Err(invalid(format!(
            "not a cursor (too long: {} characters, the limit is {max_len})",
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
    match (format, secret) {
        (PLAIN, None) => Ok(body.to_vec()),
        (SEALED, Some(secret)) => cipher(secret).decrypt([[SEALED]], body).map_err(|_| {
            invalid("the cursor does not decrypt: it was altered, or made with another cursor key")
        }),
        (PLAIN, Some(_)) => Err(invalid(
            "the cursor is not encrypted, and this client (which has a cursor key) accepts \
             only encrypted cursors",
        )),
        (SEALED, None) => Err(invalid(
            "the cursor is encrypted, but this client has no cursor key to read it",
        )),
        _ => Err(invalid(
            "not a cursor (bad content, or a cursor of an incompatible version)",
        )),
    }
}

/// What follows the fingerprint, if the payload belongs to the query `fingerprint`.
fn of_query<'p>(plain: &'p [u8], fingerprint: &str) -> Result<&'p [u8]> {
    if plain.len() < FINGERPRINT_LEN {
        return Err(invalid("not a cursor (bad content: too short)"));
    }
    let (query, rest) = plain.split_at(FINGERPRINT_LEN);
    if query != fingerprint_bytes(fingerprint) {
        return Err(invalid("the cursor belongs to another query"));
    }
    Ok(rest)
}

/// A cursor's key from its text: decoded, shape-checked, in the query's partition, canonical.
fn read_key(key_text: &str, check: &CursorCheck) -> Result<Item> {
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
