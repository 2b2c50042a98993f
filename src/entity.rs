//! The [`Entity`] trait and the static table metadata `#[derive(Entity)]` records.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::ops::{BatchGet, BatchWrite, DeleteItem, Find, GetItem, PutItem, UpdateItem};
use crate::table::{CreateTable, DeleteTable};
use crate::value::ScalarType;
use crate::{Client, Error, Item, Result};

/// A struct stored as items of one DynamoDB table. Implement it with `#[derive(Entity)]`.
///
/// The derive also generates, on the struct itself: `key(...)` (the typed primary key),
/// one [`Attr`](crate::Attr) constant per field (`User::STATUS`) and one
/// [`IndexHandle`](crate::IndexHandle) per index (`User::STATUS_INDEX`).
pub trait Entity: Sized + Send + Sync + 'static {
    /// The table's shape, recorded at compile time.
    fn schema() -> &'static TableSchema;

    /// Converts the entity into a DynamoDB item.
    fn to_item(&self) -> Result<Item>;

    /// Reads an entity from a DynamoDB item.
    fn from_item(item: Item) -> Result<Self>;

    /// The primary key of this entity.
    fn primary_key(&self) -> Key<Self>;

    /// The stored version this entity was read at (optimistic locking); `None` when the entity
    /// has no version attribute or has not been stored yet.
    fn version(&self) -> Option<u64> {
        None
    }

    /// A clone, when the entity implements `Clone` (the derive fills this in); lets cache hits
    /// return entities without decoding.
    #[doc(hidden)]
    fn __clone_for_cache(&self) -> Option<Self> {
        None
    }

    /// Reads the item with `key`.
    fn get(client: &Client, key: Key<Self>) -> GetItem<'_, Self> {
        GetItem::new(client, key)
    }

    /// Writes this entity (replacing any item with its key).
    fn put<'a>(&'a self, client: &'a Client) -> PutItem<'a, Self> {
        PutItem::new(client, self)
    }

    /// Changes attributes of the existing item with `key`; when there is none, the update
    /// fails with [`Error::NotFound`](crate::Error::NotFound) and creates nothing (a partial
    /// item would fail every later read). [`upsert`](Entity::upsert) creates it.
    fn update(client: &Client, key: Key<Self>) -> UpdateItem<'_, Self> {
        UpdateItem::new(client, key, true)
    }

    /// Changes attributes of the item with `key`, creating it when there is none (DynamoDB's
    /// own UpdateItem). The update must then set every attribute the entity needs to be read.
    fn upsert(client: &Client, key: Key<Self>) -> UpdateItem<'_, Self> {
        UpdateItem::new(client, key, false)
    }

    /// Deletes the item with `key`.
    fn delete(client: &Client, key: Key<Self>) -> DeleteItem<'_, Self> {
        DeleteItem::new(client, key)
    }

    /// A planned read of many items: GetItem, or Query on the table or the index the
    /// conditions cover. Never scans unless `.allow_scan()` is called.
    fn find(client: &Client) -> Find<'_, Self> {
        Find::new(client, false)
    }

    /// A scan of the table (or, with `.index(..)`, of an index), with optional filters.
    fn scan(client: &Client) -> Find<'_, Self> {
        Find::new(client, true)
    }

    /// Reads many items by key: deduplicated, in chunks of 100 with bounded concurrency,
    /// unprocessed keys retried; items in input order, missing keys reported.
    fn batch_get<'a, I>(client: &'a Client, keys: I) -> BatchGet<'a, Self>
    where
        I: IntoIterator<Item = Key<Self>>,
        I::IntoIter: Send + 'a,
    {
        BatchGet::new(client, keys)
    }

    /// Puts and deletes in batches of 25 (any entity can be added, not only this one).
    fn batch_write(client: &Client) -> BatchWrite<'_> {
        BatchWrite::new(client)
    }

    /// Creates the entity's table from its metadata and waits until it is ACTIVE.
    fn create_table(client: &Client) -> CreateTable<'_, Self> {
        CreateTable::new(client, false)
    }

    /// Creates the entity's table if it does not exist; waits until it is ACTIVE either way.
    fn ensure_table(client: &Client) -> CreateTable<'_, Self> {
        CreateTable::new(client, true)
    }

    /// Deletes the entity's table.
    fn delete_table(client: &Client) -> DeleteTable<'_, Self> {
        DeleteTable::new(client)
    }
}

/// A table's shape: keys, indexes and special attributes.
#[derive(Debug)]
pub struct TableSchema {
    /// The Rust type name of the entity.
    pub entity: &'static str,
    /// The table name, without the client's prefix.
    pub table: &'static str,
    /// The partition (hash) key.
    pub partition_key: KeySchema,
    /// The sort (range) key, if the table has one.
    pub sort_key: Option<KeySchema>,
    /// Global and local secondary indexes.
    pub indexes: &'static [IndexSchema],
    /// The TTL attribute, if any.
    pub ttl: Option<&'static str>,
    /// The version attribute used for optimistic locking, if any.
    pub version: Option<&'static str>,
    /// `#[dynamite(created_at)]`: set (epoch ms) by writes that create the item.
    pub created_at: Option<&'static str>,
    /// `#[dynamite(updated_at)]`: set (epoch ms) by every write.
    pub updated_at: Option<&'static str>,
    /// Every attribute name the entity writes, in field order.
    pub attributes: &'static [&'static str],
    /// A fingerprint of the item shape (attribute names, types, keys), carried by cached
    /// values so that another version of the entity never misreads them.
    pub fingerprint: u64,
    /// `#[dynamite(cache(...))]`, when given.
    pub cache: Option<CacheSettings>,
    /// `#[dynamite(stream = "...")]`: the stream `create_table` / `ensure_table` enable.
    pub stream: Option<StreamView>,
}

/// What a table's stream records of each changed item:
/// `#[dynamite(stream = "keys_only" | "new_image" | "old_image" | "new_and_old_images")]` on
/// the entity, or [`CreateTable::stream`](crate::table::CreateTable::stream).
///
/// ```
/// use dynamite::{Entity, StreamView};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Entity, Serialize, Deserialize)]
/// #[dynamite(table = "orders", stream = "new_and_old_images")]
/// struct Order {
///     #[dynamite(partition_key)]
///     id: String,
/// }
///
/// assert_eq!(Order::schema().stream, Some(StreamView::NewAndOldImages));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamView {
    /// Only the key attributes (enough for the cache invalidator).
    KeysOnly,
    /// The item after the change.
    NewImage,
    /// The item before the change.
    OldImage,
    /// Both: what typed change records need.
    NewAndOldImages,
}

impl StreamView {
    /// DynamoDB's name of the view type (`"NEW_AND_OLD_IMAGES"`).
    pub const fn name(self) -> &'static str {
        match self {
            StreamView::KeysOnly => "KEYS_ONLY",
            StreamView::NewImage => "NEW_IMAGE",
            StreamView::OldImage => "OLD_IMAGE",
            StreamView::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }
}

/// Per-entity cache settings: `#[dynamite(cache(ttl = "30s", negative_ttl = "5s", queries))]`,
/// or `cache(off)` to never cache the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// `false` for `cache(off)`.
    pub enabled: bool,
    /// Time to live of this entity's item entries, in ms (the client's default otherwise).
    pub ttl_ms: Option<u64>,
    /// Cache "not found" for this long, in ms.
    pub negative_ttl_ms: Option<u64>,
    /// Cache query results of `find` (opt-in).
    pub queries: bool,
}

#[cfg(test)]
impl TableSchema {
    /// For unit tests: entity `E`'s table `t`, keyed by the string `pk` (and `sort_key`), with
    /// nothing else.
    pub(crate) const fn for_tests(sort_key: Option<KeySchema>, fingerprint: u64) -> TableSchema {
        TableSchema {
            entity: "E",
            table: "t",
            partition_key: KeySchema {
                name: "pk",
                scalar: crate::ScalarType::String,
            },
            sort_key,
            indexes: &[],
            ttl: None,
            version: None,
            created_at: None,
            updated_at: None,
            attributes: &[],
            fingerprint,
            cache: None,
            stream: None,
        }
    }
}

impl TableSchema {
    /// The index called `name`.
    pub fn index(&self, name: &str) -> Option<&'static IndexSchema> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// `true` if `attribute` is the table's partition or sort key.
    pub fn is_key_attribute(&self, attribute: &str) -> bool {
        self.partition_key.name == attribute || self.sort_key.is_some_and(|k| k.name == attribute)
    }

    /// The names of the table's key attributes (partition key, and sort key if any).
    pub(crate) fn primary_key_names(&self) -> Vec<&'static str> {
        std::iter::once(self.partition_key.name)
            .chain(self.sort_key.map(|k| k.name))
            .collect()
    }

    /// The table's key attributes followed by each index's, without repeats.
    pub fn all_key_attributes(&self) -> Vec<KeySchema> {
        let mut keys: Vec<KeySchema> = Vec::new();
        let candidates = std::iter::once(self.partition_key)
            .chain(self.sort_key)
            .chain(
                self.indexes
                    .iter()
                    .flat_map(|i| std::iter::once(i.partition_key).chain(i.sort_key)),
            );
        for key in candidates {
            if !keys.iter().any(|k| k.name == key.name) {
                keys.push(key);
            }
        }
        keys
    }
}

/// A key attribute: its name and DynamoDB type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchema {
    /// Attribute name.
    pub name: &'static str,
    /// `S`, `N` or `B`.
    pub scalar: ScalarType,
}

/// A secondary index.
#[derive(Debug)]
pub struct IndexSchema {
    /// Index name.
    pub name: &'static str,
    /// Global or local.
    pub kind: IndexKind,
    /// The index's partition key (for a local index, the table's).
    pub partition_key: KeySchema,
    /// The index's sort key.
    pub sort_key: Option<KeySchema>,
    /// Which attributes the index holds.
    pub projection: Projection,
}

/// Global or local secondary index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// A global secondary index: its own partition key, eventually consistent reads only.
    Global,
    /// A local secondary index: the table's partition key, another sort key.
    Local,
}

/// The attributes an index holds besides the table and index keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// Every attribute.
    All,
    /// Only the key attributes.
    KeysOnly,
    /// The keys and these attributes.
    Include(&'static [&'static str]),
}

/// The primary key of an entity `E`: its partition key value and, if the table has one, its
/// sort key value. Built by the derive's `E::key(...)` or [`Entity::primary_key`].
pub struct Key<E> {
    partition: AttributeValue,
    sort: Option<AttributeValue>,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> Key<E> {
    /// A key from its attribute values; prefer the derive's `E::key(...)`.
    pub fn from_values(partition: AttributeValue, sort: Option<AttributeValue>) -> Self {
        Key {
            partition,
            sort,
            _entity: PhantomData,
        }
    }

    /// The partition key value.
    pub fn partition(&self) -> &AttributeValue {
        &self.partition
    }

    /// The sort key value.
    pub fn sort(&self) -> Option<&AttributeValue> {
        self.sort.as_ref()
    }

    /// The key as an item (`{pk: .., sk: ..}`), after checking it against the schema: both
    /// parts present as the table needs, of the right type, and not empty.
    pub fn to_item(&self) -> Result<Item> {
        key_item(E::schema(), self.partition.clone(), self.sort.clone())
    }

    /// [`to_item`](Self::to_item), moving the values instead of copying them.
    pub fn into_item(self) -> Result<Item> {
        key_item(E::schema(), self.partition, self.sort)
    }

    /// Checks the key against the schema (no allocation).
    pub fn check(&self) -> Result<()> {
        check_key(E::schema(), &self.partition, self.sort.as_ref())
    }

    /// The partition and sort key values, without the entity type.
    pub(crate) fn into_parts(self) -> (AttributeValue, Option<AttributeValue>) {
        (self.partition, self.sort)
    }
}

/// A key of `schema`'s table as an item, after [`check_key`].
pub(crate) fn key_item(
    schema: &TableSchema,
    partition: AttributeValue,
    sort: Option<AttributeValue>,
) -> Result<Item> {
    check_key(schema, &partition, sort.as_ref())?;
    Ok(checked_key_item(schema, partition, sort))
}

/// [`key_item`] of values [`check_key`] accepted already.
pub(crate) fn checked_key_item(
    schema: &TableSchema,
    partition: AttributeValue,
    sort: Option<AttributeValue>,
) -> Item {
    let mut item = Item::with_capacity(2);
    item.insert(schema.partition_key.name.to_owned(), partition);
    if let (Some(sk), Some(value)) = (&schema.sort_key, sort) {
        item.insert(sk.name.to_owned(), value);
    }
    item
}

/// Checks key values against `schema`: both parts present as the table needs, of the right
/// type, and not empty (no allocation).
pub(crate) fn check_key(
    schema: &TableSchema,
    partition: &AttributeValue,
    sort: Option<&AttributeValue>,
) -> Result<()> {
    check_key_value(schema, &schema.partition_key, Some(partition))?;
    match (&schema.sort_key, sort) {
        (Some(sk), value) => check_key_value(schema, sk, value)?,
        (None, Some(_)) => {
            return Err(Error::validation(
                schema.entity,
                "key",
                format!(
                    "table {} has no sort key, but the key has a sort key value",
                    schema.table
                ),
            ))
        }
        (None, None) => {}
    }
    Ok(())
}

/// Checks one key attribute value: present, of the key's type, not empty.
pub(crate) fn check_key_value(
    schema: &TableSchema,
    key: &KeySchema,
    value: Option<&AttributeValue>,
) -> Result<()> {
    let fail = |reason: String| Err(Error::validation(schema.entity, key.name, reason));
    match (key.scalar, value) {
        (_, None) => fail("key attribute is missing".into()),
        (ScalarType::String, Some(AttributeValue::S(s))) if s.is_empty() => {
            fail("key attributes cannot be empty strings".into())
        }
        (ScalarType::String, Some(AttributeValue::S(s))) if too_long(schema, key, s.len()) => {
            fail(over_limit(schema, key, s.len()))
        }
        (ScalarType::Binary, Some(AttributeValue::B(b))) if b.as_ref().is_empty() => {
            fail("key attributes cannot be empty binary".into())
        }
        (ScalarType::Binary, Some(AttributeValue::B(b)))
            if too_long(schema, key, b.as_ref().len()) =>
        {
            fail(over_limit(schema, key, b.as_ref().len()))
        }
        (ScalarType::Number, Some(AttributeValue::N(n))) => {
            crate::value::check_number_text(n).or_else(|e| fail(e.to_string()))
        }
        (ScalarType::String, Some(AttributeValue::S(_)))
        | (ScalarType::Binary, Some(AttributeValue::B(_))) => Ok(()),
        (scalar, Some(other)) => fail(format!(
            "key attribute must be of type {}, found {}",
            scalar.code(),
            crate::value::type_name(other)
        )),
    }
}

/// Whether a key value of `len` bytes is over its limit (the common case, within the smaller
/// limit, decided without looking the key up).
fn too_long(schema: &TableSchema, key: &KeySchema, len: usize) -> bool {
    len > 1024 && len > max_key_len(schema, key)
}

fn over_limit(schema: &TableSchema, key: &KeySchema, len: usize) -> String {
    format!(
        "key value is {len} bytes, over DynamoDB's limit of {}",
        max_key_len(schema, key)
    )
}

/// Partition keys hold up to 2048 bytes, sort keys up to 1024.
fn max_key_len(schema: &TableSchema, key: &KeySchema) -> usize {
    let is_partition = schema.partition_key.name == key.name
        || schema
            .indexes
            .iter()
            .any(|i| i.partition_key.name == key.name);
    if is_partition {
        2048
    } else {
        1024
    }
}

impl<E> Clone for Key<E> {
    fn clone(&self) -> Self {
        Key {
            partition: self.partition.clone(),
            sort: self.sort.clone(),
            _entity: PhantomData,
        }
    }
}

impl<E> PartialEq for Key<E> {
    fn eq(&self, other: &Self) -> bool {
        self.partition == other.partition && self.sort == other.sort
    }
}
impl<E> Eq for Key<E> {}

impl<E> Hash for Key<E> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_scalar(&self.partition, state);
        if let Some(sort) = &self.sort {
            hash_scalar(sort, state);
        }
    }
}

fn hash_scalar<H: Hasher>(value: &AttributeValue, state: &mut H) {
    match value {
        AttributeValue::S(s) => (0u8, s.as_str()).hash(state),
        AttributeValue::N(n) => (1u8, n.as_str()).hash(state),
        AttributeValue::B(b) => (2u8, b.as_ref()).hash(state),
        _ => 3u8.hash(state),
    }
}

impl<E> fmt::Debug for Key<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut t = f.debug_tuple("Key");
        t.field(&self.partition);
        if let Some(sort) = &self.sort {
            t.field(sort);
        }
        t.finish()
    }
}
