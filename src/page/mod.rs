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
//! Any cursor that breaks a rule is [`Error::InvalidCursor`](crate::Error::InvalidCursor), naming what is wrong, before any
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
//! A fan-out find (one Query per listed partition, see [`Find`](crate::ops::Find)) has one
//! cursor for all its partitions: the fingerprint of the whole fan-out (every partition's query
//! and the merge order), then one entry per partition in the order listed: `s` (not started),
//! `d` (read to its end), or `k`, a 4-byte big-endian length and the key, as above, to resume
//! after. Each key is checked against its own partition's query, as for a single query.
//!
//! **Why AES-SIV.** A cursor must be one string per position, so the encryption has to be
//! deterministic; AES-SIV is the standard deterministic AEAD (its IV is a MAC of the plaintext),
//! misuse-resistant by design, and needs no nonce to store or manage. Deterministic encryption
//! reveals only whether two cursors are equal, which the canonical plain encoding shows anyway.
//! The 64-byte AES-SIV key is derived from the user's cursor key (any length) with HKDF-SHA256
//! under a dynamite-specific label, so the same secret used elsewhere yields an unrelated key.

//!
//! Layout: this module holds the public types; `codec.rs` encodes and decodes (format,
//! encryption, canonical check); `shape.rs` checks a cursor's key against the query's key
//! schema.

mod codec;
mod shape;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub(crate) use self::codec::{
    decode, decode_lanes, encode, encode_lanes, fingerprint, LanePosition,
};
pub(crate) use self::shape::{key_shape, CursorCheck};

/// Where a paged read resumes: an opaque, URL-safe string (see [the module docs](crate::page) for
/// what it holds and how it is checked).
///
/// Serialised (with serde) as the plain string. A cursor received back — from a query string,
/// say, or deserialised — is checked when it is used: a cursor of another query, a malformed,
/// altered or forged one, and the empty string are [`Error::InvalidCursor`](crate::Error::InvalidCursor) before any request.
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
