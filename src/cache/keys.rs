//! Cache keys. An entry key holds the client's cache namespace (which DynamoDB endpoint and
//! region, or the user's choice), the table (with the client's prefix), the entity and its
//! schema fingerprint, the kind (`i` item, `q` query), the projection and the item key or query
//! hash, so entries of two endpoints, two tables, two entities (or two versions of one) or two
//! projections never collide. Namespaces are fixed-width hex and table names cannot contain
//! `|`; the user-controlled parts come last or hashed.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::TableSchema;

/// `namespace|table|i|key`: the scope of every entry of one item.
pub(crate) fn item_scope(ns: &str, table: &str, key: &str) -> String {
    let mut s = String::with_capacity(ns.len() + table.len() + key.len() + 4);
    push_namespace(&mut s, ns);
    s.push_str(table);
    s.push_str("|i|");
    s.push_str(key);
    s
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
    push_namespace(&mut s, ns);
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
