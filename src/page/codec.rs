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
