//! Cursors and pages.
//!
//! A [`Cursor`] is an opaque, URL-safe string. It holds the key of the last item returned
//! (its table and index keys, so it resumes exactly after that item even when a page was cut
//! short by a limit) and a fingerprint of the query that produced it; when the client has a
//! cursor key ([`ClientBuilder::cursor_key`](crate::ClientBuilder::cursor_key)), it is also
//! signed with HMAC-SHA256. A cursor from another query, a malformed one, or a tampered one is
//! [`Error::InvalidCursor`] before any request.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Item, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const VERSION: u8 = 1;

/// Where a paged read resumes: an opaque, URL-safe string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// The cursor as a string, to hand to a client of your API.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A cursor received back (from a query string, say). It is checked when used.
    pub fn parse(s: impl Into<String>) -> Self {
        Cursor(s.into())
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

/// One page of results, and the cursor of the next one (`None`: no more items).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items, in order.
    pub items: Vec<T>,
    /// Where the next page starts, when there may be more items.
    pub next: Option<Cursor>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    q: String,
    k: HashMap<String, KeyValue>,
}

#[derive(Serialize, Deserialize)]
enum KeyValue {
    S(String),
    N(String),
    B(String),
}

/// A stable fingerprint of a query's normalised form.
pub(crate) fn fingerprint(normalised: &str) -> String {
    let digest = Sha256::digest(normalised.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn sign(key: &[u8], payload: &str) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size");
    mac.update(payload.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// Builds the cursor for resuming after `key`.
pub(crate) fn encode(fingerprint: &str, key: &Item, signing_key: Option<&[u8]>) -> Cursor {
    let k = key
        .iter()
        .filter_map(|(name, v)| {
            let value = match v {
                AttributeValue::S(s) => KeyValue::S(s.clone()),
                AttributeValue::N(n) => KeyValue::N(n.clone()),
                AttributeValue::B(b) => KeyValue::B(B64.encode(b.as_ref())),
                _ => return None,
            };
            Some((name.clone(), value))
        })
        .collect();
    let payload = Payload {
        v: VERSION,
        q: fingerprint.to_owned(),
        k,
    };
    let json = serde_json::to_string(&payload).expect("a map of strings serialises");
    let body = B64.encode(json);
    match signing_key {
        Some(secret) => {
            let sig = sign(secret, &body);
            Cursor(format!("{body}.{sig}"))
        }
        None => Cursor(body),
    }
}

/// Reads a cursor back: the key to resume after, if it belongs to the query `fingerprint`.
pub(crate) fn decode(
    cursor: &Cursor,
    fingerprint: &str,
    signing_key: Option<&[u8]>,
) -> Result<Item> {
    let invalid = |reason: &str| Error::InvalidCursor {
        reason: reason.to_owned(),
    };
    let (body, sig) = match cursor.0.split_once('.') {
        Some((body, sig)) => (body, Some(sig)),
        None => (cursor.0.as_str(), None),
    };
    match (signing_key, sig) {
        (Some(secret), Some(sig)) => {
            let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).expect("any key size");
            mac.update(body.as_bytes());
            let sig = B64
                .decode(sig)
                .map_err(|_| invalid("malformed signature"))?;
            mac.verify_slice(&sig).map_err(|_| {
                invalid(
                    "signature does not match: the cursor was altered or signed with another key",
                )
            })?;
        }
        (Some(_), None) => {
            return Err(invalid(
                "the cursor is not signed, and this client requires signed cursors",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "the cursor is signed, but this client has no cursor key",
            ))
        }
        (None, None) => {}
    }
    let json = B64
        .decode(body)
        .map_err(|_| invalid("not a cursor (bad encoding)"))?;
    let payload: Payload =
        serde_json::from_slice(&json).map_err(|_| invalid("not a cursor (bad content)"))?;
    if payload.v != VERSION {
        return Err(invalid("cursor from an incompatible version"));
    }
    if payload.q != fingerprint {
        return Err(invalid("the cursor belongs to another query"));
    }
    if payload.k.is_empty() {
        return Err(invalid("the cursor holds no key"));
    }
    payload
        .k
        .into_iter()
        .map(|(name, v)| {
            let value = match v {
                KeyValue::S(s) => AttributeValue::S(s),
                KeyValue::N(n) => AttributeValue::N(n),
                KeyValue::B(b) => AttributeValue::B(Blob::new(
                    B64.decode(b).map_err(|_| invalid("bad binary key"))?,
                )),
            };
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Item {
        [
            ("id".to_string(), AttributeValue::S("u/1?&=".into())),
            ("n".to_string(), AttributeValue::N("5".into())),
        ]
        .into()
    }

    #[test]
    fn round_trip_and_url_safe() {
        let c = encode("abc", &key(), None);
        assert!(c
            .as_str()
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'));
        assert_eq!(decode(&c, "abc", None).unwrap(), key());
        assert!(matches!(
            decode(&c, "other", None),
            Err(Error::InvalidCursor { .. })
        ));
        assert!(matches!(
            decode(&Cursor::parse("%%%"), "abc", None),
            Err(Error::InvalidCursor { .. })
        ));
    }

    #[test]
    fn signed_cursors_detect_tampering() {
        let c = encode("abc", &key(), Some(b"secret"));
        assert_eq!(decode(&c, "abc", Some(b"secret")).unwrap(), key());
        assert!(decode(&c, "abc", Some(b"other")).is_err());
        assert!(decode(&c, "abc", None).is_err());
        let forged = encode(
            "abc",
            &[("id".to_string(), AttributeValue::S("x".into()))].into(),
            None,
        );
        let (body, _) = forged
            .as_str()
            .split_once('.')
            .unwrap_or((forged.as_str(), ""));
        let (_, sig) = c.as_str().split_once('.').unwrap();
        let tampered = Cursor::parse(format!("{body}.{sig}"));
        assert!(decode(&tampered, "abc", Some(b"secret")).is_err());
    }
}
