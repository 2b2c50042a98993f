//! Cache keys. An entry key holds the client's cache namespace (which DynamoDB endpoint and
//! region, or the user's choice), the table (with the client's prefix), the entity and its
//! schema fingerprint, the kind (`i` item, `q` query), the projection and the item key or query
//! hash, so entries of two endpoints, two tables, two entities (or two versions of one) or two
//! projections never collide. Namespaces are fixed-width hex and table names cannot contain
//! `|`; the user-controlled parts come last or hashed.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::key::KeySink;
use crate::TableSchema;

/// `namespace|table|i|key`: the scope of every entry of one item.
pub(crate) fn item_scope(ns: &str, table: &str, key: &str) -> String {
    let mut s = String::with_capacity(ns.len() + table.len() + key.len() + 4);
    write_item_scope(&mut s, ns, table, ItemKey::Text(key));
    s
}

/// An item's key, as its canonical text or as its values (written in the same encoding).
#[derive(Debug, Clone, Copy)]
pub(crate) enum ItemKey<'a> {
    /// Text from [`key_text`].
    Text(&'a str),
    /// The partition and sort key values.
    Values(&'a AttributeValue, Option<&'a AttributeValue>),
}

impl ItemKey<'_> {
    fn write<S: KeySink + ?Sized>(&self, s: &mut S) {
        match *self {
            ItemKey::Text(text) => s.push_str(text),
            ItemKey::Values(partition, sort) => crate::key::write_key_values(s, partition, sort),
        }
    }
}

/// Writes [`item_scope`].
fn write_item_scope<S: KeySink + ?Sized>(s: &mut S, ns: &str, table: &str, key: ItemKey<'_>) {
    s.push_str(ns);
    s.push_str("|");
    s.push_str(table);
    s.push_str("|i|");
    key.write(s);
}

/// Writes the part of [`item_entry`] after `namespace|table|` and before the key.
fn write_item_entry_middle<S: KeySink + ?Sized>(s: &mut S, schema: &TableSchema, projection: u64) {
    s.push_str(schema.entity);
    s.push_ascii(b":");
    s.push_ascii(&hex(schema.fingerprint));
    s.push_ascii(b"|i|");
    s.push_ascii(&hex(projection));
    s.push_ascii(b"|");
}

/// Writes [`item_entry`].
fn write_item_entry<S: KeySink + ?Sized>(
    s: &mut S,
    ns: &str,
    table: &str,
    schema: &TableSchema,
    projection: u64,
    key: ItemKey<'_>,
) {
    s.push_str(ns);
    s.push_str("|");
    s.push_str(table);
    s.push_str("|");
    write_item_entry_middle(s, schema, projection);
    key.write(s);
}

/// 16 lower-case hex digits, on the stack.
fn hex(v: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = HEX[((v >> ((15 - i) * 4)) & 0xf) as usize];
    }
    out
}

/// `namespace|table|t`: the scope of every query entry of one table.
pub(crate) fn table_scope(ns: &str, table: &str) -> String {
    let mut s = String::with_capacity(ns.len() + table.len() + 3);
    push_namespace(&mut s, ns);
    s.push_str(table);
    s.push_str("|t");
    s
}

/// `namespace|table|Entity:fingerprint|i|projection-hash|key`.
pub(crate) fn item_entry(
    ns: &str,
    table: &str,
    schema: &TableSchema,
    projection: u64,
    key: &str,
) -> String {
    let mut s =
        String::with_capacity(ns.len() + table.len() + schema.entity.len() + key.len() + 40);
    write_item_entry(&mut s, ns, table, schema, projection, ItemKey::Text(key));
    s
}

/// `namespace|table|Entity:fingerprint|q|query-hash`.
pub(crate) fn query_entry(ns: &str, table: &str, schema: &TableSchema, query: &str) -> String {
    let mut s = String::with_capacity(ns.len() + table.len() + schema.entity.len() + 60);
    push_namespace(&mut s, ns);
    s.push_str(table);
    s.push('|');
    s.push_str(schema.entity);
    s.push(':');
    push_hex(&mut s, schema.fingerprint);
    s.push_str("|q|");
    s.push_str(query);
    s
}

fn push_namespace(s: &mut String, ns: &str) {
    s.push_str(ns);
    s.push('|');
}

/// The namespace of a client's cache entries: a hash of what tells DynamoDB databases apart
/// (region and endpoint), or of the name the user chose.
pub(crate) fn namespace(identity: &str) -> String {
    let mut s = String::with_capacity(16);
    push_hex(&mut s, fnv1a(identity.as_bytes()));
    s
}

fn push_hex(s: &mut String, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        s.push(HEX[((v >> (shift * 4)) & 0xf) as usize] as char);
    }
}

/// FNV-1a, for stable short hashes of projections.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The text of a primary key, the same for a `Key<E>` and for the key attributes of an item:
/// the crate's canonical key encoding ([`crate::key`]) of its values in key-schema order.
pub(crate) fn key_text(partition: &AttributeValue, sort: Option<&AttributeValue>) -> String {
    crate::key::encode_key_values(partition, sort)
}

/// The key text of an item, from its key attributes.
pub(crate) fn key_text_of(schema: &TableSchema, item: &crate::Item) -> Option<String> {
    let pk = item.get(schema.partition_key.name)?;
    let sk = match schema.sort_key {
        Some(k) => Some(item.get(k.name)?),
        None => None,
    };
    Some(key_text(pk, sk))
}

/// The hash of cache keys and scopes in the in-process layers: the same for a key's text
/// ([`hash_str`]) and for the key written piece by piece ([`KeyHasher`]), however the pieces
/// are cut. Seeded once per process, so that nobody outside can aim keys at one slot; a
/// collision never crosses two keys anyway (layers compare the full key), it only costs a miss.
pub(crate) fn hash_str(text: &str) -> u64 {
    let mut h = KeyHasher::new();
    h.push_str(text);
    h.finish()
}

fn seed() -> [u64; 2] {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<[u64; 2]> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let state = std::collections::hash_map::RandomState::new();
        [state.hash_one(1u64) | 1, state.hash_one(2u64)]
    })
}

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

fn fold(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// A streaming hash of bytes (a folded multiply per 8 bytes, gathered in a block on the
/// stack): the result depends on the bytes written, not on how they were split between calls.
#[derive(Debug, Clone)]
pub(crate) struct KeyHasher {
    state: u64,
    key: u64,
    block: [u8; BLOCK],
    filled: usize,
    len: u64,
}

const BLOCK: usize = 64;

impl KeyHasher {
    pub(crate) fn new() -> Self {
        let [key, state] = seed();
        KeyHasher {
            state,
            key,
            block: [0; BLOCK],
            filled: 0,
            len: 0,
        }
    }

    fn words(&mut self, bytes: &[u8]) {
        let mut state = self.state;
        let k = self.key ^ MUL;
        for w in bytes.chunks_exact(8) {
            let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            state = fold(state ^ w, k).rotate_left(23);
        }
        self.state = state;
    }

    fn bytes(&mut self, mut bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u64);
        loop {
            let room = BLOCK - self.filled;
            if bytes.len() < room {
                self.block[self.filled..self.filled + bytes.len()].copy_from_slice(bytes);
                self.filled += bytes.len();
                return;
            }
            self.block[self.filled..].copy_from_slice(&bytes[..room]);
            let block = self.block;
            self.words(&block);
            self.filled = 0;
            bytes = &bytes[room..];
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        let mut h = self.clone();
        let whole = h.filled / 8 * 8;
        let block = h.block;
        h.words(&block[..whole]);
        let mut last = [0u8; 8];
        last[..h.filled - whole].copy_from_slice(&block[whole..h.filled]);
        let x = fold(
            h.state ^ u64::from_le_bytes(last),
            h.key ^ MUL ^ h.len.rotate_left(32),
        );
        fold(x, MUL ^ h.key.rotate_left(17))
    }
}

impl KeySink for KeyHasher {
    fn push_str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn push_ascii(&mut self, ascii: &[u8]) {
        self.bytes(ascii);
    }
}

/// Compares written pieces with a stored text, without rendering them.
struct Matcher<'s> {
    rest: &'s [u8],
    same: bool,
}

impl KeySink for Matcher<'_> {
    fn push_str(&mut self, text: &str) {
        self.push_ascii(text.as_bytes());
    }

    fn push_ascii(&mut self, bytes: &[u8]) {
        if self.same {
            match self.rest.strip_prefix(bytes) {
                Some(rest) => self.rest = rest,
                None => self.same = false,
            }
        }
    }
}

/// Feeds two sinks at once.
struct Both<'x, A, B>(&'x mut A, &'x mut B);

impl<A: KeySink, B: KeySink> KeySink for Both<'_, A, B> {
    fn push_str(&mut self, text: &str) {
        self.0.push_str(text);
        self.1.push_str(text);
    }

    fn push_ascii(&mut self, ascii: &[u8]) {
        self.0.push_ascii(ascii);
        self.1.push_ascii(ascii);
    }
}

/// An item entry's key by its parts, hashed in one pass: what an in-process layer needs to
/// answer a lookup without the key being rendered as text (see [`crate::cache::ProbeKey`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemParts<'a> {
    ns: &'a str,
    table: &'a str,
    schema: &'a TableSchema,
    projection: u64,
    key: ItemKey<'a>,
    entry_hash: u64,
    scope_hash: u64,
}

impl<'a> ItemParts<'a> {
    pub(crate) fn new(
        ns: &'a str,
        table: &'a str,
        schema: &'a TableSchema,
        projection: u64,
        key: ItemKey<'a>,
    ) -> Self {
        // `ns|table|` is shared; then the entry has `Entity:fp|i|proj|`, the scope `i|`; the
        // key ends both.
        let mut entry = KeyHasher::new();
        let mut scope = KeyHasher::new();
        {
            let mut both = Both(&mut entry, &mut scope);
            both.push_str(ns);
            both.push_ascii(b"|");
            both.push_str(table);
            both.push_ascii(b"|");
        }
        write_item_entry_middle(&mut entry, schema, projection);
        scope.push_ascii(b"i|");
        key.write(&mut Both(&mut entry, &mut scope));
        ItemParts {
            ns,
            table,
            schema,
            projection,
            key,
            entry_hash: entry.finish(),
            scope_hash: scope.finish(),
        }
    }

    /// [`hash_str`] of the entry key.
    pub(crate) fn entry_hash(&self) -> u64 {
        self.entry_hash
    }

    /// [`hash_str`] of the scope.
    pub(crate) fn scope_hash(&self) -> u64 {
        self.scope_hash
    }

    /// Whether `text` is this entry key (compared piece by piece).
    pub(crate) fn is_entry(&self, text: &str) -> bool {
        let mut m = Matcher {
            rest: text.as_bytes(),
            same: true,
        };
        write_item_entry(
            &mut m,
            self.ns,
            self.table,
            self.schema,
            self.projection,
            self.key,
        );
        m.same && m.rest.is_empty()
    }

    /// The entry key as text.
    pub(crate) fn entry(&self) -> String {
        let mut s = String::with_capacity(self.ns.len() + self.table.len() + 96);
        write_item_entry(
            &mut s,
            self.ns,
            self.table,
            self.schema,
            self.projection,
            self.key,
        );
        s
    }

    /// The scope as text.
    pub(crate) fn scope(&self) -> String {
        let mut s = String::with_capacity(self.ns.len() + self.table.len() + 48);
        write_item_scope(&mut s, self.ns, self.table, self.key);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn schema(entity: &'static str, fingerprint: u64) -> &'static TableSchema {
        Box::leak(Box::new(TableSchema {
            entity,
            table: "t",
            partition_key: crate::KeySchema {
                name: "pk",
                scalar: crate::ScalarType::String,
            },
            sort_key: None,
            indexes: &[],
            ttl: None,
            version: None,
            attributes: &[],
            fingerprint,
            cache: None,
        }))
    }

    fn value() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            "[a-z|:0-9]{0,12}".prop_map(AttributeValue::S),
            (-1000i64..1000).prop_map(|n| AttributeValue::N(n.to_string())),
            "[0-9]{1,3}\\.[0-9]{0,3}".prop_map(AttributeValue::N),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| AttributeValue::B(aws_smithy_types::Blob::new(b))),
        ]
    }

    #[derive(Debug, Clone)]
    struct Parts {
        ns: String,
        table: String,
        entity: bool,
        projection: u64,
        partition: AttributeValue,
        sort: Option<AttributeValue>,
    }

    fn parts() -> impl Strategy<Value = Parts> {
        (
            prop_oneof![
                Just("0123456789abcdef".to_owned()),
                Just("fedcba9876543210".to_owned())
            ],
            "[a-z_.-]{1,6}",
            any::<bool>(),
            prop_oneof![Just(0u64), Just(1u64), any::<u64>()],
            value(),
            proptest::option::of(value()),
        )
            .prop_map(|(ns, table, entity, projection, partition, sort)| Parts {
                ns,
                table,
                entity,
                projection,
                partition,
                sort,
            })
    }

    fn item_parts(p: &Parts) -> ItemParts<'_> {
        let schema = if p.entity {
            schema("User", 7)
        } else {
            schema("Order", 7)
        };
        ItemParts::new(
            &p.ns,
            &p.table,
            schema,
            p.projection,
            ItemKey::Values(&p.partition, p.sort.as_ref()),
        )
    }

    #[test]
    fn rendered_keys_keep_their_format() {
        let pk = AttributeValue::S("u1".to_owned());
        let s = schema("User", 0xab);
        let p = ItemParts::new(
            "0123456789abcdef",
            "users",
            s,
            0,
            ItemKey::Values(&pk, None),
        );
        assert_eq!(
            p.entry(),
            "0123456789abcdef|users|User:00000000000000ab|i|0000000000000000|s2:u1"
        );
        assert_eq!(p.scope(), "0123456789abcdef|users|i|s2:u1");
        let text = key_text(&pk, None);
        assert_eq!(
            p.entry(),
            item_entry("0123456789abcdef", "users", s, 0, &text)
        );
        assert_eq!(p.scope(), item_scope("0123456789abcdef", "users", &text));
    }

    #[test]
    fn the_hash_does_not_depend_on_how_the_text_is_cut() {
        let text = "0123456789abcdef|users|User:00000000000000ab|i|0000000000000000|s2:u1";
        for cut in 0..text.len() {
            for cut2 in cut..text.len() {
                let mut h = KeyHasher::new();
                h.push_str(&text[..cut]);
                h.push_str(&text[cut..cut2]);
                h.push_str(&text[cut2..]);
                assert_eq!(h.finish(), hash_str(text), "{cut} {cut2}");
            }
        }
        let long = text.repeat(5);
        for cut in (0..long.len()).step_by(7) {
            let mut h = KeyHasher::new();
            h.push_str(&long[..cut]);
            h.push_str(&long[cut..]);
            assert_eq!(h.finish(), hash_str(&long), "{cut}");
        }
        assert_ne!(hash_str("a"), hash_str("a\0"));
        assert_ne!(hash_str(""), hash_str("\0"));
    }

    proptest! {
        #[test]
        fn parts_hash_and_compare_as_their_text(a in parts(), b in parts()) {
            let (pa, pb) = (item_parts(&a), item_parts(&b));
            let (ea, eb) = (pa.entry(), pb.entry());
            prop_assert_eq!(pa.entry_hash(), hash_str(&ea));
            prop_assert_eq!(pa.scope_hash(), hash_str(&pa.scope()));
            prop_assert!(pa.is_entry(&ea));
            // Distinct keys never compare equal; equal keys hash alike.
            prop_assert_eq!(pa.is_entry(&eb), ea == eb);
            prop_assert_eq!(pb.is_entry(&ea), ea == eb);
            if ea == eb {
                prop_assert_eq!(pa.entry_hash(), pb.entry_hash());
            }
            // A prefix or an extension of the text is another key.
            prop_assert!(!pa.is_entry(&ea[..ea.len() - 1]));
            let longer = format!("{ea}s0:");
            prop_assert!(!pa.is_entry(&longer));
        }

        #[test]
        fn equal_keys_by_value_are_one_entry(n in -1000i64..1000, sk in value()) {
            let ns = "0123456789abcdef";
            let s = schema("User", 1);
            let (a, b) = (AttributeValue::N(n.to_string()), AttributeValue::N(format!("{n}.000")));
            let pa = ItemParts::new(ns, "t", s, 0, ItemKey::Values(&a, Some(&sk)));
            let pb = ItemParts::new(ns, "t", s, 0, ItemKey::Values(&b, Some(&sk)));
            prop_assert_eq!(pa.entry_hash(), pb.entry_hash());
            prop_assert!(pa.is_entry(&pb.entry()));
        }
    }
}
