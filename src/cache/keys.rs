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
    /// Text written by [`crate::key::write_key_values`] into a [`KeyText`] (valid UTF-8: only
    /// whole `str`s and ASCII were written).
    Rendered(&'a [u8]),
}

impl ItemKey<'_> {
    fn write<S: KeySink + ?Sized>(&self, s: &mut S) {
        match *self {
            ItemKey::Text(text) => s.push_str(text),
            ItemKey::Values(partition, sort) => crate::key::write_key_values(s, partition, sort),
            ItemKey::Rendered(text) => s.push_ascii(text),
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

/// The scope of the query results of one partition of a table's base key: `namespace|table|p|`
/// then the partition key's canonical text ([`crate::key`]). A write to an item of that
/// partition invalidates it; writes to other partitions do not.
pub(crate) fn partition_scope(ns: &str, table: &str, partition: &str) -> String {
    let mut s = String::with_capacity(ns.len() + table.len() + partition.len() + 4);
    push_namespace(&mut s, ns);
    s.push_str(table);
    s.push_str("|p|");
    s.push_str(partition);
    s
}

/// The partition scope of the item whose key text is `key` ([`key_text`]).
pub(crate) fn partition_scope_of(ns: &str, table: &str, key: &str) -> Option<String> {
    let (partition, _) = crate::key::decode_key_values(key).ok()?;
    let text = crate::key::encode_key_values(&partition, None);
    Some(partition_scope(ns, table, &text))
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

/// A streaming hash of bytes (a folded multiply per 8-byte little-endian word, the last word
/// zero-padded): the result depends on the bytes written, not on how they were split between
/// calls. Bytes short of a word wait in `pending`; nothing is copied to a buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyHasher {
    state: u64,
    key: u64,
    /// Up to 7 bytes not yet folded in, the first in the lowest byte.
    pending: u64,
    /// How many bytes `pending` holds.
    filled: usize,
    len: u64,
}

impl KeyHasher {
    pub(crate) fn new() -> Self {
        let [key, state] = seed();
        KeyHasher {
            state,
            key,
            pending: 0,
            filled: 0,
            len: 0,
        }
    }

    #[inline]
    fn word(&mut self, w: u64) {
        self.state = fold(self.state ^ w, self.key ^ MUL).rotate_left(23);
    }

    /// Up to 7 bytes as the low bytes of a word.
    #[inline]
    fn partial(bytes: &[u8]) -> u64 {
        debug_assert!(bytes.len() < 8);
        let mut w = 0u64;
        let mut rest = bytes;
        let mut shift = 0;
        if rest.len() >= 4 {
            w = u64::from(u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")));
            rest = &rest[4..];
            shift = 32;
        }
        if rest.len() >= 2 {
            w |= u64::from(u16::from_le_bytes(rest[..2].try_into().expect("2 bytes"))) << shift;
            rest = &rest[2..];
            shift += 16;
        }
        if let Some(b) = rest.first() {
            w |= u64::from(*b) << shift;
        }
        w
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u64);
        let mut rest = bytes;
        if self.filled != 0 {
            let take = (8 - self.filled).min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.pending |= Self::partial(head) << (8 * self.filled);
            self.filled += take;
            rest = tail;
            if self.filled < 8 {
                return;
            }
            let w = self.pending;
            self.word(w);
            self.pending = 0;
            self.filled = 0;
        }
        let mut words = rest.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let tail = words.remainder();
        self.pending = Self::partial(tail);
        self.filled = tail.len();
    }

    pub(crate) fn finish(&self) -> u64 {
        let x = fold(
            self.state ^ self.pending,
            self.key ^ MUL ^ self.len.rotate_left(32),
        );
        fold(x, MUL ^ self.key.rotate_left(17))
    }
}

impl KeySink for KeyHasher {
    #[inline]
    fn push_str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    #[inline]
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
    #[inline]
    fn push_str(&mut self, text: &str) {
        self.push_ascii(text.as_bytes());
    }

    #[inline]
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
    #[inline]
    fn push_str(&mut self, text: &str) {
        self.0.push_str(text);
        self.1.push_str(text);
    }

    #[inline]
    fn push_ascii(&mut self, ascii: &[u8]) {
        self.0.push_ascii(ascii);
        self.1.push_ascii(ascii);
    }
}

/// Room for a key's text on the stack: most keys fit (two short strings or numbers).
const KEY_TEXT: usize = 128;

/// Room for an entry key's constant part, `namespace|table|Entity:fingerprint|i|projection|`.
const PREFIX_TEXT: usize = 160;

/// Text rendered on the stack, so that it is hashed and compared as one piece; `None` from
/// [`Text::render`] when it does not fit (then it is written piece by piece).
#[derive(Clone, Copy)]
pub(crate) struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
    fits: bool,
}

/// An item key's text ([`crate::key::write_key_values`]).
pub(crate) type KeyText = Text<KEY_TEXT>;

impl<const N: usize> std::fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Text")
            .field(&String::from_utf8_lossy(self.bytes()))
            .finish()
    }
}

impl<const N: usize> Text<N> {
    fn render(write: impl FnOnce(&mut Self)) -> Option<Self> {
        let mut text = Text {
            buf: [0; N],
            len: 0,
            fits: true,
        };
        write(&mut text);
        text.fits.then_some(text)
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> KeySink for Text<N> {
    #[inline]
    fn push_str(&mut self, text: &str) {
        self.push_ascii(text.as_bytes());
    }

    #[inline]
    fn push_ascii(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(room) if self.fits => {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            _ => self.fits = false,
        }
    }
}

/// The constant part of an item entry's key and scope for one namespace, table, entity and
/// projection, rendered and hashed: the hasher states after `ns|table|Entity:fp|i|proj|` (the
/// entry) and after `ns|table|i|` (the scope). Kept per thread for the last few asked for, so
/// that a read hashes only its key values.
#[derive(Debug, Clone, Copy)]
struct Prefix {
    /// `ns|table|Entity:fp|i|proj|`.
    text: Text<PREFIX_TEXT>,
    /// Unique in the process: a prefix kept under this stamp is this one.
    stamp: u64,
    ns_len: usize,
    table_len: usize,
    fingerprint: u64,
    projection: u64,
    entry: KeyHasher,
    scope: KeyHasher,
}

impl Prefix {
    const SLOTS: usize = 4;

    fn slot(table: &str, schema: &TableSchema, projection: u64) -> usize {
        ((schema.fingerprint ^ projection ^ table.len() as u64) as usize) % Self::SLOTS
    }

    fn new(ns: &str, table: &str, schema: &TableSchema, projection: u64) -> Option<Self> {
        let text = Text::render(|t| {
            t.push_str(ns);
            t.push_ascii(b"|");
            t.push_str(table);
            t.push_ascii(b"|");
            write_item_entry_middle(t, schema, projection);
        })?;
        let mut entry = KeyHasher::new();
        entry.push_ascii(text.bytes());
        let mut scope = KeyHasher::new();
        scope.push_ascii(&text.bytes()[..ns.len() + table.len() + 2]);
        scope.push_ascii(b"i|");
        static STAMPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Some(Prefix {
            text,
            stamp: STAMPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ns_len: ns.len(),
            table_len: table.len(),
            fingerprint: schema.fingerprint,
            projection,
            entry,
            scope,
        })
    }

    /// Whether this is the prefix of these parts: every piece of its text is compared (the
    /// two hex fields by their numbers).
    fn is_for(&self, ns: &str, table: &str, schema: &TableSchema, projection: u64) -> bool {
        let text = self.text.bytes();
        let entity_at = self.ns_len + self.table_len + 2;
        self.projection == projection
            && self.fingerprint == schema.fingerprint
            && self.ns_len == ns.len()
            && self.table_len == table.len()
            && text.len() == entity_at + schema.entity.len() + 37
            && text[..self.ns_len] == *ns.as_bytes()
            && text[self.ns_len + 1..entity_at - 1] == *table.as_bytes()
            && text[entity_at..entity_at + schema.entity.len()] == *schema.entity.as_bytes()
    }

    /// Runs `f` on the prefix of these parts, from this thread's last few or made (and kept)
    /// now, without copying it; `None` when the prefix does not fit on the stack. `stamp`: the
    /// prefix's stamp when it was seen before, which spares comparing its text again.
    fn with<R>(
        ns: &str,
        table: &str,
        schema: &TableSchema,
        projection: u64,
        stamp: Option<u64>,
        f: impl FnOnce(&Prefix) -> R,
    ) -> Option<R> {
        use std::cell::RefCell;
        thread_local! {
            static PREFIXES: RefCell<[Option<Prefix>; Prefix::SLOTS]> =
                const { RefCell::new([None; Prefix::SLOTS]) };
        }
        let slot = Self::slot(table, schema, projection);
        let mut f = Some(f);
        let kept = PREFIXES.try_with(|prefixes| {
            let mut prefixes = prefixes.try_borrow_mut().ok()?;
            let hit = matches!(&prefixes[slot], Some(p)
                if Some(p.stamp) == stamp || p.is_for(ns, table, schema, projection));
            if !hit {
                let Some(made) = Prefix::new(ns, table, schema, projection) else {
                    f = None; // does not fit: no need to try again below
                    return None;
                };
                prefixes[slot] = Some(made);
            }
            let f = f.take().expect("called once");
            prefixes[slot].as_ref().map(f)
        });
        match (kept, f) {
            (Ok(Some(result)), _) => Some(result),
            // No thread-local (the thread is ending), or in use: made for this call only.
            (_, Some(f)) => Prefix::new(ns, table, schema, projection).map(|p| f(&p)),
            (_, None) => None,
        }
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
    /// The key's text, when it fits on the stack.
    text: Option<KeyText>,
    /// The stamp of the constant part as this thread keeps it, when it fits on the stack.
    prefix_stamp: Option<u64>,
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
        // key ends both (rendered once, when it fits on the stack). The constant parts are
        // hashed once per thread (`Prefix`), when they fit on the stack.
        let text = KeyText::render(|t| key.write(t));
        let kept = Prefix::with(ns, table, schema, projection, None, |p| {
            (p.entry, p.scope, p.stamp)
        });
        let prefix_stamp = kept.map(|(_, _, stamp)| stamp);
        let (mut entry, mut scope) = match kept {
            Some((entry, scope, _)) => (entry, scope),
            None => {
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
                (entry, scope)
            }
        };
        match &text {
            Some(text) => ItemKey::Rendered(text.bytes()).write(&mut Both(&mut entry, &mut scope)),
            None => key.write(&mut Both(&mut entry, &mut scope)),
        }
        ItemParts {
            ns,
            table,
            schema,
            projection,
            key,
            text,
            prefix_stamp,
            entry_hash: entry.finish(),
            scope_hash: scope.finish(),
        }
    }

    /// The key, as rendered text when it fits on the stack.
    fn key(&self) -> ItemKey<'_> {
        match &self.text {
            Some(text) => ItemKey::Rendered(text.bytes()),
            None => self.key,
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

    /// Whether `text` is this entry key (compared piece by piece, or as two pieces when both
    /// fit on the stack: the constant part as this thread keeps it, and the key).
    pub(crate) fn is_entry(&self, text: &str) -> bool {
        let mut m = Matcher {
            rest: text.as_bytes(),
            same: true,
        };
        let (ns, table, schema) = (self.ns, self.table, self.schema);
        let kept = Prefix::with(ns, table, schema, self.projection, self.prefix_stamp, |p| {
            m.push_ascii(p.text.bytes())
        });
        match kept {
            Some(()) => {}
            None => {
                m.push_str(self.ns);
                m.push_ascii(b"|");
                m.push_str(self.table);
                m.push_ascii(b"|");
                write_item_entry_middle(&mut m, self.schema, self.projection);
            }
        }
        self.key().write(&mut m);
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
            ..TableSchema::for_tests(None, fingerprint)
        }))
    }

    fn value() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            "[a-z|:0-9]{0,12}".prop_map(AttributeValue::S),
            // Longer than fits on the stack (written piece by piece).
            "[a-zé|:0-9]{100,140}".prop_map(AttributeValue::S),
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
            // Long names do not fit the stack buffers: written piece by piece.
            prop_oneof![4 => "[a-z_.-]{1,6}", 1 => "[a-z]{150,200}"],
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

    #[test]
    fn an_items_partition_scope_is_its_partitions_whatever_the_sort_key() {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let n = |v: &str| AttributeValue::N(v.to_owned());
        let of = |pk: &AttributeValue, sk: Option<&AttributeValue>| {
            partition_scope_of("ns", "t", &key_text(pk, sk)).expect("a key text")
        };
        let query_scope =
            partition_scope("ns", "t", &crate::key::encode_key_values(&s("c|1"), None));
        assert_eq!(of(&s("c|1"), Some(&n("1"))), query_scope);
        assert_eq!(of(&s("c|1"), Some(&n("2"))), query_scope);
        assert_eq!(of(&s("c|1"), None), query_scope);
        assert_ne!(of(&s("c|2"), Some(&n("1"))), query_scope);
        assert_ne!(query_scope, table_scope("ns", "t"));
        assert_ne!(
            query_scope,
            item_scope("ns", "t", &key_text(&s("c|1"), None))
        );
    }

    #[test]
    fn prefixes_kept_per_thread_never_answer_for_other_parts() {
        // Parts that differ in one piece each, several sharing a slot, asked for in turn.
        let pk = AttributeValue::S("u1".to_owned());
        let schemas = [schema("User", 7), schema("Uses", 7), schema("User", 8)];
        let long_table = "t".repeat(200);
        let mut previous = String::new();
        for _ in 0..3 {
            for ns in ["0123456789abcdef", "0123456789abcdee"] {
                for table in ["users", "usera", "user", long_table.as_str()] {
                    for s in schemas {
                        for projection in [0, 1, 4, 5] {
                            let p = ItemParts::new(
                                ns,
                                table,
                                s,
                                projection,
                                ItemKey::Values(&pk, None),
                            );
                            let text = item_entry(ns, table, s, projection, &key_text(&pk, None));
                            assert_eq!(p.entry(), text);
                            assert_eq!(p.entry_hash(), hash_str(&text));
                            assert_eq!(p.scope_hash(), hash_str(&p.scope()));
                            assert!(p.is_entry(&text));
                            assert!(!p.is_entry(&previous));
                            previous = text;
                        }
                    }
                }
            }
        }
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
            let last = ea.char_indices().last().map_or(0, |(i, _)| i);
            prop_assert!(!pa.is_entry(&ea[..last]));
            let longer = format!("{ea}s0:");
            prop_assert!(!pa.is_entry(&longer));
            // Other tables read in between take the thread's kept prefixes: still the same.
            for t in 0..(2 * Prefix::SLOTS) {
                let other = Parts { table: format!("t{t}"), ..a.clone() };
                let _ = item_parts(&other);
            }
            prop_assert!(pa.is_entry(&ea));
            prop_assert_eq!(pa.is_entry(&eb), ea == eb);
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
