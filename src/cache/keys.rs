//! Cache keys. An entry key holds the table (with the client's prefix), the entity and its
//! schema fingerprint, the kind (`i` item, `q` query), the projection and the item key or
//! query hash, so entries of two tables, two entities (or two versions of one) or two
//! projections never collide. Table names cannot contain `|`; the user-controlled parts come
//! last or hashed.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::TableSchema;

/// `table|i|key`: the scope of every entry of one item.
pub(crate) fn item_scope(table: &str, key: &str) -> String {
    let mut s = String::with_capacity(table.len() + key.len() + 3);
    s.push_str(table);
    s.push_str("|i|");
    s.push_str(key);
    s
}

/// `table|t`: the scope of every query entry of one table.
pub(crate) fn table_scope(table: &str) -> String {
    let mut s = String::with_capacity(table.len() + 2);
    s.push_str(table);
    s.push_str("|t");
    s
}

/// `table|Entity:fingerprint|i|projection-hash|key`.
pub(crate) fn item_entry(table: &str, schema: &TableSchema, projection: u64, key: &str) -> String {
    let mut s = String::with_capacity(table.len() + schema.entity.len() + key.len() + 40);
    s.push_str(table);
    s.push('|');
    s.push_str(schema.entity);
    s.push(':');
    push_hex(&mut s, schema.fingerprint);
    s.push_str("|i|");
    push_hex(&mut s, projection);
    s.push('|');
    s.push_str(key);
    s
}

/// `table|Entity:fingerprint|q|query-hash`.
pub(crate) fn query_entry(table: &str, schema: &TableSchema, query: &str) -> String {
    let mut s = String::with_capacity(table.len() + schema.entity.len() + 60);
    s.push_str(table);
    s.push('|');
    s.push_str(schema.entity);
    s.push(':');
    push_hex(&mut s, schema.fingerprint);
    s.push_str("|q|");
    s.push_str(query);
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
