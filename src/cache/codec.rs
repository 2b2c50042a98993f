//! The versioned format of cached values: `DYN` + format version + the entity's schema
//! fingerprint + the entry's own key + a kind byte + the payload + a checksum (FNV-1a, 64 bits,
//! of everything before it). A value of another format version or another schema fingerprint is
//! refused (a miss), so two releases or two versions of an entity never misread each other's
//! entries; so is a value stored under another key (an entry copied or moved) and a value
//! whose bytes were damaged.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::Item;

const MAGIC: &[u8; 3] = b"DYN";
const FORMAT: u8 = 2;

/// The checksum's size at the end of every value.
const CHECKSUM: usize = 8;

const KIND_ITEM: u8 = 1;
const KIND_ABSENT: u8 = 2;
const KIND_PAGE: u8 = 3;

/// A decoded cache value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cached {
    /// An item.
    Item(Item),
    /// Negative cache entry: no such item.
    Absent,
    /// Query results: the items and the key to resume after.
    Page(Vec<Item>, Option<Item>),
}

/// Encodes `value` for the entry `key` (the cache key it is stored under).
pub(crate) fn encode(fingerprint: u64, key: &str, value: &Cached) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + key.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&fingerprint.to_le_bytes());
    put_str(&mut out, key.as_bytes());
    match value {
        Cached::Item(item) => {
            out.push(KIND_ITEM);
            put_item(&mut out, item);
        }
        Cached::Absent => out.push(KIND_ABSENT),
        Cached::Page(items, resume) => {
            out.push(KIND_PAGE);
            put_len(&mut out, items.len());
            for item in items {
                put_item(&mut out, item);
            }
            match resume {
                Some(k) => {
                    out.push(1);
                    put_item(&mut out, k);
                }
                None => out.push(0),
            }
        }
    }
    let checksum = super::keys::fnv1a(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// Decodes the value stored under `key`; `None` for anything malformed or damaged, of another
/// format or schema, or written for another key.
pub(crate) fn decode(fingerprint: u64, key: &str, bytes: &[u8]) -> Option<Cached> {
    let body_len = bytes.len().checked_sub(CHECKSUM)?;
    let (body, checksum) = bytes.split_at(body_len);
    if u64::from_le_bytes(checksum.try_into().ok()?) != super::keys::fnv1a(body) {
        return None;
    }
    let bytes = body;
    let mut r = Reader { bytes, pos: 0 };
    if r.take(3)? != MAGIC || r.byte()? != FORMAT {
        return None;
    }
    let fp = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    if fp != fingerprint || r.raw()? != key.as_bytes() {
        return None;
    }
    let value = match r.byte()? {
        KIND_ITEM => Cached::Item(r.item(0)?),
        KIND_ABSENT => Cached::Absent,
        KIND_PAGE => {
            let n = r.len()?;
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(r.item(0)?);
            }
            let resume = match r.byte()? {
                0 => None,
                1 => Some(r.item(0)?),
                _ => return None,
            };
            Cached::Page(items, resume)
        }
        _ => return None,
    };
    (r.pos == bytes.len()).then_some(value)
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    // LEB128
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len());
    out.extend_from_slice(s);
}

fn put_item(out: &mut Vec<u8>, item: &Item) {
    put_len(out, item.len());
    for (name, value) in item {
        put_str(out, name.as_bytes());
        put_value(out, value);
    }
}

fn put_value(out: &mut Vec<u8>, value: &AttributeValue) {
    match value {
        AttributeValue::S(s) => {
            out.push(b'S');
            put_str(out, s.as_bytes());
        }
        AttributeValue::N(n) => {
            out.push(b'N');
            put_str(out, n.as_bytes());
        }
        AttributeValue::B(b) => {
            out.push(b'B');
            put_str(out, b.as_ref());
        }
        AttributeValue::Bool(b) => out.push(if *b { b'T' } else { b'F' }),
        AttributeValue::Null(_) => out.push(b'0'),
        AttributeValue::L(l) => {
            out.push(b'L');
            put_len(out, l.len());
            l.iter().for_each(|v| put_value(out, v));
        }
        AttributeValue::M(m) => {
            out.push(b'M');
            put_item(out, m);
        }
        AttributeValue::Ss(v) => {
            out.push(b's');
            put_len(out, v.len());
            v.iter().for_each(|s| put_str(out, s.as_bytes()));
        }
        AttributeValue::Ns(v) => {
            out.push(b'n');
            put_len(out, v.len());
            v.iter().for_each(|s| put_str(out, s.as_bytes()));
        }
        AttributeValue::Bs(v) => {
            out.push(b'b');
            put_len(out, v.len());
            v.iter().for_each(|b| put_str(out, b.as_ref()));
        }
        // Unknown future variants are stored as null.
        _ => out.push(b'0'),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Nesting deeper than DynamoDB allows (32 levels of maps and lists below an attribute) means
/// garbage. Each map or list counts one level.
const MAX_DEPTH: usize = 34;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn len(&mut self) -> Option<usize> {
        let mut n: usize = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= ((b & 0x7f) as usize).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return (n <= self.bytes.len()).then_some(n);
            }
        }
        None
    }
    fn string(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn raw(&mut self) -> Option<Vec<u8>> {
        let n = self.len()?;
        self.take(n).map(<[u8]>::to_vec)
    }
    fn item(&mut self, depth: usize) -> Option<Item> {
        let n = self.len()?;
        let mut item = Item::with_capacity(n.min(256));
        for _ in 0..n {
            let name = self.string()?;
            let value = self.value(depth + 1)?;
            item.insert(name, value);
        }
        Some(item)
    }
    fn value(&mut self, depth: usize) -> Option<AttributeValue> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match self.byte()? {
            b'S' => AttributeValue::S(self.string()?),
            b'N' => AttributeValue::N(self.string()?),
            b'B' => AttributeValue::B(Blob::new(self.raw()?)),
            b'T' => AttributeValue::Bool(true),
            b'F' => AttributeValue::Bool(false),
            b'0' => AttributeValue::Null(true),
            b'L' => {
                let n = self.len()?;
                let mut l = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    l.push(self.value(depth + 1)?);
                }
                AttributeValue::L(l)
            }
            // The map's values are one level below it (item() adds it).
            b'M' => AttributeValue::M(self.item(depth)?),
            b's' => {
                let n = self.len()?;
                AttributeValue::Ss((0..n).map(|_| self.string()).collect::<Option<_>>()?)
            }
            b'n' => {
                let n = self.len()?;
                AttributeValue::Ns((0..n).map(|_| self.string()).collect::<Option<_>>()?)
            }
            b'b' => {
                let n = self.len()?;
                AttributeValue::Bs(
                    (0..n)
                        .map(|_| self.raw().map(Blob::new))
                        .collect::<Option<_>>()?,
                )
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        let nested: Item = [(
            "k".to_string(),
            AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null(true)]),
        )]
        .into();
        [
            ("s".to_string(), AttributeValue::S("héllo".into())),
            ("n".to_string(), AttributeValue::N("-1.5E+3".into())),
            ("b".to_string(), AttributeValue::B(Blob::new(vec![0, 255]))),
            ("m".to_string(), AttributeValue::M(nested)),
            (
                "ss".to_string(),
                AttributeValue::Ss(vec!["a".into(), "b".into()]),
            ),
            ("ns".to_string(), AttributeValue::Ns(vec!["1".into()])),
            (
                "bs".to_string(),
                AttributeValue::Bs(vec![Blob::new(vec![1])]),
            ),
        ]
        .into()
    }

    #[test]
    fn round_trips() {
        for value in [
            Cached::Item(item()),
            Cached::Absent,
            Cached::Page(vec![item(), Item::new()], Some(item())),
        ] {
            let bytes = encode(7, "k", &value);
            assert_eq!(decode(7, "k", &bytes), Some(value));
        }
    }

    /// `levels` maps and lists, alternating, around a string.
    fn nested(levels: usize) -> AttributeValue {
        (0..levels).fold(AttributeValue::S("deep".into()), |inner, level| {
            if level % 2 == 0 {
                AttributeValue::M([("k".to_string(), inner)].into())
            } else {
                AttributeValue::L(vec![inner])
            }
        })
    }

    #[test]
    fn items_nested_as_deep_as_dynamodb_allows_round_trip() {
        let item: Item = [("a".to_string(), nested(32))].into();
        let value = Cached::Item(item);
        assert_eq!(decode(7, "k", &encode(7, "k", &value)), Some(value));
        // Far deeper than DynamoDB allows: garbage, refused (and no stack overflow).
        let item: Item = [("a".to_string(), nested(200))].into();
        assert_eq!(decode(7, "k", &encode(7, "k", &Cached::Item(item))), None);
    }

    #[test]
    fn other_schema_or_garbage_is_refused() {
        let bytes = encode(7, "k", &Cached::Item(item()));
        assert_eq!(decode(8, "k", &bytes), None, "another schema fingerprint");
        for cut in 0..bytes.len() {
            assert_eq!(decode(7, "k", &bytes[..cut]), None, "truncated at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[3] = 9;
        assert_eq!(decode(7, "k", &flipped), None, "another format version");
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert_eq!(decode(7, "k", &damaged), None, "byte {i} flipped");
        }
        assert_eq!(
            decode(7, "other", &bytes),
            None,
            "an entry copied onto another key"
        );
        assert_eq!(decode(7, "k", b"garbage"), None);
        let mut long = bytes;
        long.push(0);
        assert_eq!(decode(7, "k", &long), None, "trailing bytes");
    }
}
