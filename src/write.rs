//! The write compiler: the one place where a single-item write (put, update, delete, condition
//! check) is validated, version-stamped and rendered. Item writes, transactions and idempotent
//! mode send what it compiles; batch writes validate items with it. No I/O.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update as SdkUpdate,
};

use crate::attr::Path;
use crate::entity::key_item;
use crate::expr::condition::Node;
use crate::expr::update::{render_actions, Action};
use crate::expr::Placeholders;
use crate::{Client, Condition, Entity, Error, Item, Key, Result, TableSchema, Update};

/// The kind of one operation of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransactAction {
    /// Write a whole item.
    Put,
    /// Change attributes of an item.
    Update,
    /// Delete an item.
    Delete,
    /// Check a condition on an item without writing it.
    ConditionCheck,
    /// Read an item (TransactGetItems).
    Get,
}

impl TransactAction {
    /// The name DynamoDB gives the operation (`"ConditionCheck"`).
    pub const fn name(self) -> &'static str {
        match self {
            TransactAction::Put => "Put",
            TransactAction::Update => "Update",
            TransactAction::Delete => "Delete",
            TransactAction::ConditionCheck => "ConditionCheck",
            TransactAction::Get => "Get",
        }
    }
}

impl std::fmt::Display for TransactAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Sets the parts every write request shares on an SDK builder (a fluent PutItem/UpdateItem/
/// DeleteItem builder or a transaction part's): table, condition, names, values, and the item
/// returned when the condition fails. The builders are distinct types with the same setters.
macro_rules! write_parts {
    ($builder:expr, $write:expr) => {
        $builder
            .table_name(&$write.table)
            .set_condition_expression($write.condition.clone())
            .set_expression_attribute_names($write.names.clone())
            .set_expression_attribute_values($write.values.clone())
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
    };
}

/// Why one operation of a cancelled transaction failed (or `code == Some("None")`: it did not).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CancellationReason {
    /// The operation's position in the transaction (0-based, in the order added).
    pub index: usize,
    /// What the operation was.
    pub operation: TransactAction,
    /// The table (with prefix).
    pub table: String,
    /// The key of the item the operation is on.
    pub key: Item,
    /// DynamoDB's code: `ConditionalCheckFailed`, `TransactionConflict`, `None`, ...
    pub code: Option<String>,
    /// DynamoDB's message.
    pub message: Option<String>,
    /// The item as it was, for failed conditions.
    pub item: Option<Item>,
}

impl CancellationReason {
    /// `true` when this operation's condition failed.
    pub fn is_condition_failed(&self) -> bool {
        self.code.as_deref() == Some("ConditionalCheckFailed")
    }
}

/// One put or delete of a batch write, on its table.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOp {
    pub(crate) table: Arc<str>,
    pub(crate) entity: &'static str,
    /// The names of the table's key attributes (partition, sort).
    pub(crate) key_names: KeyNames,
    pub(crate) kind: WriteKind,
    /// A delete's key (a put's key is in its item); empty for puts.
    pub(crate) delete_key: Item,
}

/// The names of a table's primary key attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyNames {
    pub(crate) partition: &'static str,
    pub(crate) sort: Option<&'static str>,
}

impl KeyNames {
    pub(crate) fn of(schema: &crate::TableSchema) -> Self {
        KeyNames {
            partition: schema.partition_key.name,
            sort: schema.sort_key.map(|k| k.name),
        }
    }

    /// The key attributes of `item`, copied.
    pub(crate) fn key_of(&self, item: &Item) -> Item {
        std::iter::once(self.partition)
            .chain(self.sort)
            .filter_map(|name| item.get(name).map(|v| (name.to_owned(), v.clone())))
            .collect()
    }

    /// Appends the canonical text of `item`'s key ([`crate::key`]) to `out`; `false` (and
    /// nothing appended) when a key attribute is missing.
    pub(crate) fn push_key_text(&self, item: &Item, out: &mut String) -> bool {
        let Some(partition) = item.get(self.partition) else {
            return false;
        };
        let sort = match self.sort {
            Some(name) => match item.get(name) {
                Some(v) => Some(v),
                None => return false,
            },
            None => None,
        };
        crate::key::write_key_values(out, partition, sort);
        true
    }
}

/// What a [`WriteOp`] does.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteKind {
    /// Put this item.
    Put(Item),
    /// Delete the item with the op's key.
    Delete,
}

impl WriteOp {
    /// A put of `item` (which holds its key) into `table`.
    pub(crate) fn put(
        table: Arc<str>,
        entity: &'static str,
        key_names: KeyNames,
        item: Item,
    ) -> Self {
        WriteOp {
            table,
            entity,
            key_names,
            kind: WriteKind::Put(item),
            delete_key: Item::new(),
        }
    }

    /// A delete of the item with `key` from `table`.
    pub(crate) fn delete(
        table: Arc<str>,
        entity: &'static str,
        key_names: KeyNames,
        key: Item,
    ) -> Self {
        WriteOp {
            table,
            entity,
            key_names,
            kind: WriteKind::Delete,
            delete_key: key,
        }
    }

    /// The table (with the client's prefix).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The entity type name.
    pub fn entity(&self) -> &'static str {
        self.entity
    }

    /// The primary key the operation writes (a copy of the key attributes).
    pub fn key(&self) -> Item {
        match &self.kind {
            WriteKind::Put(item) => self.key_names.key_of(item),
            WriteKind::Delete => self.delete_key.clone(),
        }
    }

    /// Put or delete.
    pub fn kind(&self) -> &WriteKind {
        &self.kind
    }

    /// The item a put writes, or the key a delete deletes: what its request carries.
    pub(crate) fn body(&self) -> &Item {
        match &self.kind {
            WriteKind::Put(item) => item,
            WriteKind::Delete => &self.delete_key,
        }
    }
}

/// A new client request token for a TransactWriteItems: 36 random alphanumerics (DynamoDB
/// allows 1 to 36 characters). Every attempt of one call carries the same token, so DynamoDB
/// applies the transaction once however often it is sent (within 10 minutes).
pub(crate) fn request_token() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(36)
        .collect()
}

/// What a compiled write does to its item.
#[derive(Debug, Clone)]
pub(crate) enum WriteBody {
    /// Write this whole item (version stamped).
    Put(Item),
    /// Apply this update expression.
    Update(String),
    /// Delete the item.
    Delete,
    /// Check the condition only.
    Check,
}

/// What one request of a single-item write carries besides its table and key
/// ([`CompiledWrite::take_request`]).
#[derive(Debug)]
pub(crate) struct WriteRequestParts {
    pub body: WriteBody,
    /// The item's key (empty for a put: its key is in its item).
    pub key: Item,
    pub condition: Option<String>,
    pub names: Option<HashMap<String, String>>,
    pub values: Option<HashMap<String, AttributeValue>>,
}

/// Sets a request's table, condition and placeholders from a [`WriteRequestParts`], moved in.
macro_rules! request_parts {
    ($builder:expr, $table:expr, $parts:expr) => {
        $builder
            .table_name($table)
            .set_condition_expression($parts.condition)
            .set_expression_attribute_names($parts.names)
            .set_expression_attribute_values($parts.values)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
    };
}
pub(crate) use request_parts;

/// A single-item write, validated and rendered, ready to be sent on its own or in a
/// transaction.
#[derive(Debug, Clone)]
pub(crate) struct CompiledWrite {
    /// The table, with the client's prefix.
    pub table: String,
    /// The item's primary key, as an update, delete or check sends it; empty for a put, whose
    /// key is in its item ([`key`](Self::key) gives it either way).
    pub key: Item,
    /// The names of the table's key attributes.
    pub key_names: KeyNames,
    pub body: WriteBody,
    /// The caller's condition AND the version check.
    pub condition: Option<String>,
    /// Whether the write has a condition (still known after [`take_request`](Self::take_request)).
    pub conditional: bool,
    pub names: Option<HashMap<String, String>>,
    pub values: Option<HashMap<String, AttributeValue>>,
    /// The version the write expects (`Some(None)`: no item), when version-checked.
    pub expected_version: Option<Option<u64>>,
    /// The item must exist (`update()`, not `upsert()`): its condition checks that.
    pub must_exist: bool,
    /// Applying it twice leaves what applying it once does: puts, deletes and checks; updates
    /// that only set and remove attributes of an entity without a version attribute (every
    /// update bumps it), or that are version-checked (only one attempt can pass the check).
    pub repeatable: bool,
}

impl CompiledWrite {
    /// A put of `entity`: with a version attribute, stamped `v + 1` and checked against `v`.
    pub(crate) fn put<E: Entity>(
        client: &Client,
        entity: &E,
        condition: Option<&Condition<E>>,
    ) -> Result<Self> {
        let item = entity.to_item()?;
        let node = condition.map(|c| &c.node);
        Self::put_item(client, E::schema(), item, entity.version(), node)
    }

    /// [`put`](Self::put) of an entity already converted: `item`, whose version is `current`.
    fn put_item(
        client: &Client,
        schema: &'static TableSchema,
        mut item: Item,
        current: Option<u64>,
        condition: Option<&Node>,
    ) -> Result<Self> {
        stamp_put(schema, &mut item);
        let expected_version = schema.version.map(|attr| {
            item.insert(
                attr.to_owned(),
                AttributeValue::N((current.unwrap_or(0) + 1).to_string()),
            );
            current
        });
        validate_item(schema, &item)?;
        let mut ph = Placeholders::default();
        let condition = write_condition(schema, &mut ph, condition, expected_version, false)?;
        let (names, values) = ph.into_maps();
        Ok(CompiledWrite {
            table: client.table_name(schema.table),
            key: Item::new(),
            key_names: KeyNames::of(schema),
            body: WriteBody::Put(item),
            conditional: condition.is_some(),
            condition,
            names,
            values,
            expected_version,
            must_exist: false,
            repeatable: true,
        })
    }

    /// An update of the item at `key`; `expect_version` makes it version-checked, `must_exist`
    /// adds a check that the item exists (`update()`; `upsert()` creates it).
    pub(crate) fn update<E: Entity>(
        client: &Client,
        key: &Key<E>,
        update: &Update<E>,
        condition: Option<&Condition<E>>,
        expect_version: Option<u64>,
        must_exist: bool,
    ) -> Result<Self> {
        Self::update_item(
            client,
            E::schema(),
            (key.partition(), key.sort()),
            &update.actions,
            condition.map(|c| &c.node),
            expect_version,
            must_exist,
        )
    }

    /// [`update`](Self::update) without the entity type.
    fn update_item(
        client: &Client,
        schema: &'static TableSchema,
        (partition, sort): (&AttributeValue, Option<&AttributeValue>),
        actions: &[Action],
        condition: Option<&Node>,
        expect_version: Option<u64>,
        must_exist: bool,
    ) -> Result<Self> {
        let expected_version = expected_version(schema, expect_version)?;
        let key = key_item(schema, partition.clone(), sort.cloned())?;
        let stamped: Vec<Action>;
        let actions = match timestamp_actions(schema, actions) {
            extra if extra.is_empty() => actions,
            extra => {
                stamped = [actions, &extra].concat();
                &stamped
            }
        };
        let mut ph = Placeholders::default();
        let expression = render_update(schema, &mut ph, actions)?;
        check_update_size(schema, &key, &ph)?;
        // Decrements of unsigned numbers bring their floor (`attr >= n`), ANDed in.
        let guards = crate::expr::update::guards(actions);
        let guarded = (!guards.is_empty()).then(|| {
            let mut all: Vec<Node> = condition.cloned().into_iter().chain(guards).collect();
            // One node stands alone: DynamoDB refuses redundant parentheses.
            match all.len() {
                1 => all.pop().expect("one node"),
                _ => Node::And(all),
            }
        });
        let condition = guarded.as_ref().or(condition);
        let condition = write_condition(schema, &mut ph, condition, expected_version, must_exist)?;
        let (names, values) = ph.into_maps();
        Ok(CompiledWrite {
            table: client.table_name(schema.table),
            key,
            key_names: KeyNames::of(schema),
            body: WriteBody::Update(expression),
            conditional: condition.is_some(),
            condition,
            names,
            values,
            expected_version,
            must_exist,
            repeatable: expected_version.is_some()
                || (schema.version.is_none() && actions.iter().all(Action::is_idempotent)),
        })
    }

    /// A delete of the item at `key`; `expect_version` makes it version-checked.
    pub(crate) fn delete<E: Entity>(
        client: &Client,
        key: &Key<E>,
        condition: Option<&Condition<E>>,
        expect_version: Option<u64>,
    ) -> Result<Self> {
        Self::delete_item(
            client,
            E::schema(),
            (key.partition(), key.sort()),
            condition.map(|c| &c.node),
            expect_version,
        )
    }

    /// [`delete`](Self::delete) without the entity type.
    fn delete_item(
        client: &Client,
        schema: &'static TableSchema,
        (partition, sort): (&AttributeValue, Option<&AttributeValue>),
        condition: Option<&Node>,
        expect_version: Option<u64>,
    ) -> Result<Self> {
        let expected_version = expected_version(schema, expect_version)?;
        let mut ph = Placeholders::default();
        let condition = write_condition(schema, &mut ph, condition, expected_version, false)?;
        let (names, values) = ph.into_maps();
        Ok(CompiledWrite {
            table: client.table_name(schema.table),
            key: key_item(schema, partition.clone(), sort.cloned())?,
            key_names: KeyNames::of(schema),
            body: WriteBody::Delete,
            conditional: condition.is_some(),
            condition,
            names,
            values,
            expected_version,
            must_exist: false,
            repeatable: true,
        })
    }

    /// A condition check on the item at `key` (transactions only).
    pub(crate) fn check<E: Entity>(
        client: &Client,
        key: &Key<E>,
        condition: &Condition<E>,
    ) -> Result<Self> {
        let schema = E::schema();
        let mut ph = Placeholders::default();
        let mut expression = String::new();
        render_condition(schema, &mut ph, &condition.node, &mut expression)?;
        let (names, values) = ph.into_maps();
        Ok(CompiledWrite {
            table: client.table_name(schema.table),
            key: key.to_item()?,
            key_names: KeyNames::of(schema),
            body: WriteBody::Check,
            conditional: true,
            condition: Some(expression),
            names,
            values,
            expected_version: None,
            must_exist: false,
            repeatable: true,
        })
    }

    /// What a request sends of this write, moved out: the item or update expression, the
    /// condition and the placeholders. The write keeps its table, key and what the request path
    /// needs to settle it; a second request compiles the write again.
    pub(crate) fn take_request(&mut self) -> WriteRequestParts {
        let body = match &mut self.body {
            WriteBody::Put(item) => WriteBody::Put(std::mem::take(item)),
            WriteBody::Update(expression) => WriteBody::Update(std::mem::take(expression)),
            WriteBody::Delete => WriteBody::Delete,
            WriteBody::Check => WriteBody::Check,
        };
        WriteRequestParts {
            body,
            key: std::mem::take(&mut self.key),
            condition: self.condition.take(),
            names: self.names.take(),
            values: self.values.take(),
        }
    }

    /// The item's primary key (taken from a put's item). Not for after
    /// [`take_request`](Self::take_request), which moves both out.
    pub(crate) fn key(&self) -> std::borrow::Cow<'_, Item> {
        match &self.body {
            WriteBody::Put(item) => std::borrow::Cow::Owned(self.key_names.key_of(item)),
            _ => std::borrow::Cow::Borrowed(&self.key),
        }
    }

    /// The item, or the key, that holds the write's key attributes: read without copying them.
    pub(crate) fn keyed_item(&self) -> &Item {
        match &self.body {
            WriteBody::Put(item) => item,
            _ => &self.key,
        }
    }

    /// What kind of transaction part this write is.
    pub(crate) fn action(&self) -> TransactAction {
        match self.body {
            WriteBody::Put(_) => TransactAction::Put,
            WriteBody::Update(_) => TransactAction::Update,
            WriteBody::Delete => TransactAction::Delete,
            WriteBody::Check => TransactAction::ConditionCheck,
        }
    }

    /// The write as one part of a TransactWriteItems (a failed condition returns the item).
    pub(crate) fn to_transact_item(&self) -> TransactWriteItem {
        let item = TransactWriteItem::builder();
        match &self.body {
            WriteBody::Put(put) => item.put(
                write_parts!(Put::builder().set_item(Some(put.clone())), self)
                    .build()
                    .expect("table and item are set"),
            ),
            WriteBody::Update(expression) => item.update(
                write_parts!(
                    SdkUpdate::builder()
                        .set_key(Some(self.key.clone()))
                        .update_expression(expression),
                    self
                )
                .build()
                .expect("table, key and expression are set"),
            ),
            WriteBody::Delete => item.delete(
                write_parts!(Delete::builder().set_key(Some(self.key.clone())), self)
                    .build()
                    .expect("table and key are set"),
            ),
            WriteBody::Check => item.condition_check(
                write_parts!(
                    ConditionCheck::builder().set_key(Some(self.key.clone())),
                    self
                )
                .build()
                .expect("table, key and condition are set"),
            ),
        }
        .build()
    }
}

/// An update whose values alone would make the item larger than DynamoDB allows can never
/// succeed: refused before sending.
fn check_update_size(schema: &TableSchema, key: &Item, ph: &Placeholders) -> Result<()> {
    let size = crate::value::item_size(key) + ph.values_size();
    if size > crate::value::MAX_ITEM_SIZE {
        return Err(Error::validation(
            schema.entity,
            "(update)",
            format!(
                "the update's values are {size} bytes with the key, over DynamoDB's item limit of \
                 {} bytes (400 KB)",
                crate::value::MAX_ITEM_SIZE
            ),
        ));
    }
    Ok(())
}

/// Renders `condition` AND the version check (if any) AND, when `must_exist`, a check that the
/// item exists, into `ph`.
/// Milliseconds since the Unix epoch, as a DynamoDB number.
fn now_millis() -> AttributeValue {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    AttributeValue::N(now.map_or(0, |d| d.as_millis()).to_string())
}

/// Stamps a put's item: `updated_at` now, `created_at` now unless the entity holds one already
/// (a non-zero number: an entity read and written back keeps its creation time).
pub(crate) fn stamp_put(schema: &TableSchema, item: &mut Item) {
    if schema.created_at.is_none() && schema.updated_at.is_none() {
        return;
    }
    let now = now_millis();
    if let Some(attr) = schema.created_at {
        let held = matches!(item.get(attr), Some(AttributeValue::N(n)) if n != "0");
        if !held {
            item.insert(attr.to_owned(), now.clone());
        }
    }
    if let Some(attr) = schema.updated_at {
        item.insert(attr.to_owned(), now);
    }
}

/// What an update adds for the entity's timestamps, unless its own actions write them:
/// `updated_at = now`, `created_at = if_not_exists(created_at, now)` (an upsert creating the
/// item stamps its creation).
fn timestamp_actions(schema: &TableSchema, actions: &[Action]) -> Vec<Action> {
    let untouched = |attr: &str| !actions.iter().any(|a| a.path().root() == attr);
    let mut extra = Vec::new();
    if schema.created_at.is_none() && schema.updated_at.is_none() {
        return extra;
    }
    let now = now_millis();
    if let Some(attr) = schema.updated_at.filter(|a| untouched(a)) {
        extra.push(Action::Set(Path::top(attr), Ok(now.clone())));
    }
    if let Some(attr) = schema.created_at.filter(|a| untouched(a)) {
        extra.push(Action::SetIfNotExists(Path::top(attr), Ok(now)));
    }
    extra
}

fn write_condition(
    schema: &TableSchema,
    ph: &mut Placeholders,
    condition: Option<&Node>,
    expected_version: Option<Option<u64>>,
    must_exist: bool,
) -> Result<Option<String>> {
    let parts = usize::from(condition.is_some())
        + usize::from(expected_version.is_some())
        + usize::from(must_exist);
    if parts == 0 {
        return Ok(None);
    }
    let mut out = String::with_capacity(32 * parts);
    // Each part in parentheses when there are several, joined by AND.
    let part = |out: &mut String, render: &mut dyn FnMut(&mut String) -> Result<()>| {
        if parts == 1 {
            return render(out);
        }
        if !out.is_empty() {
            out.push_str(" AND ");
        }
        out.push('(');
        render(out)?;
        out.push(')');
        Ok(())
    };
    if must_exist {
        part(&mut out, &mut |out| {
            out.push_str("attribute_exists(");
            ph.push_name(out, schema.partition_key.name);
            out.push(')');
            Ok(())
        })?;
    }
    if let Some(cond) = condition {
        part(&mut out, &mut |out| render_condition(schema, ph, cond, out))?;
    }
    match expected_version {
        None => {}
        Some(None) => part(&mut out, &mut |out| {
            out.push_str("attribute_not_exists(");
            ph.push_name(out, schema.partition_key.name);
            out.push(')');
            Ok(())
        })?,
        Some(Some(v)) => part(&mut out, &mut |out| {
            let version = schema
                .version
                .expect("version-checked entities have a version attribute");
            ph.push_name(out, version);
            out.push_str(" = ");
            ph.push_value(out, AttributeValue::N(v.to_string()));
            Ok(())
        })?,
    }
    Ok(Some(out))
}

/// Renders a condition, turning a value that could not be converted into a validation error.
fn render_condition(
    schema: &TableSchema,
    ph: &mut Placeholders,
    cond: &Node,
    out: &mut String,
) -> Result<()> {
    cond.render(ph, out)
        .map_err(|(path, e)| Error::validation(schema.entity, path.to_string(), e))
}

/// Checks a whole item before it is written: key attributes, index keys, numbers, size.
pub(crate) fn validate_item(schema: &TableSchema, item: &Item) -> Result<()> {
    crate::entity::check_key_value(
        schema,
        &schema.partition_key,
        item.get(schema.partition_key.name),
    )?;
    if let Some(sk) = &schema.sort_key {
        crate::entity::check_key_value(schema, sk, item.get(sk.name))?;
    }
    for index in schema.indexes {
        for key in std::iter::once(&index.partition_key).chain(index.sort_key.as_ref()) {
            // Absent index keys are fine (sparse index); present ones must be valid.
            if let Some(value) = item.get(key.name) {
                crate::entity::check_key_value(schema, key, Some(value)).map_err(|e| match e {
                    Error::Validation {
                        entity,
                        attribute,
                        reason,
                    } => Error::Validation {
                        entity,
                        attribute,
                        reason: format!("{reason} (it is a key of index {})", index.name),
                    },
                    other => other,
                })?;
            }
        }
    }
    for (name, value) in item {
        check_numbers(value).map_err(|e| Error::validation(schema.entity, name.as_str(), e))?;
    }
    let size = crate::value::item_size(item);
    if size > crate::value::MAX_ITEM_SIZE {
        return Err(Error::validation(
            schema.entity,
            "(item)",
            format!(
                "item is {size} bytes, over DynamoDB's limit of {} bytes (400 KB)",
                crate::value::MAX_ITEM_SIZE
            ),
        ));
    }
    Ok(())
}

fn check_numbers(value: &AttributeValue) -> std::result::Result<(), crate::value::ConvertError> {
    match value {
        AttributeValue::N(n) => crate::value::check_number_text(n),
        AttributeValue::Ns(ns) => ns
            .iter()
            .try_for_each(|n| crate::value::check_number_text(n)),
        AttributeValue::L(l) => l.iter().try_for_each(check_numbers),
        AttributeValue::M(m) => m.values().try_for_each(check_numbers),
        _ => Ok(()),
    }
}

/// The version a write expects, checked against the schema.
fn expected_version(schema: &TableSchema, version: Option<u64>) -> Result<Option<Option<u64>>> {
    match version {
        None => Ok(None),
        Some(_) if schema.version.is_none() => Err(Error::validation(
            schema.entity,
            "expect_version",
            "the entity has no #[dynamite(version)] attribute",
        )),
        Some(v) => Ok(Some(Some(v))),
    }
}
/// Checks an update (no key or version attribute touched, no path twice, index keys valid)
/// and renders it, with the version bump when the entity has a version attribute.
fn render_update(
    schema: &TableSchema,
    ph: &mut Placeholders,
    actions: &[Action],
) -> Result<String> {
    if actions.is_empty() {
        return Err(Error::validation(
            schema.entity,
            "update",
            "the update has no actions",
        ));
    }
    for (i, action) in actions.iter().enumerate() {
        let path = action.path();
        let root = path.root();
        if schema.is_key_attribute(root) {
            return Err(Error::validation(
                schema.entity,
                root,
                "key attributes cannot be updated; delete and put the item instead",
            ));
        }
        if schema.version == Some(root) {
            return Err(Error::validation(
                schema.entity,
                root,
                "the version attribute is managed by dynamite and cannot be updated directly",
            ));
        }
        if actions[..i].iter().any(|a| a.path() == path) {
            return Err(Error::validation(
                schema.entity,
                path.to_string(),
                "the update changes this attribute twice; DynamoDB rejects overlapping paths",
            ));
        }
        if let (Action::Set(_, Ok(value)), 1) = (action, path.segments().len()) {
            let index_key = schema
                .indexes
                .iter()
                .flat_map(|i| std::iter::once(&i.partition_key).chain(i.sort_key.as_ref()))
                .find(|k| k.name == root);
            if let Some(key) = index_key {
                crate::entity::check_key_value(schema, key, Some(value))?;
            }
        }
    }
    // The version bump: `SET #v = if_not_exists(#v, :0) + :1`.
    let bump = schema
        .version
        .map(|version| Action::Increment(Path::top(version), Ok(AttributeValue::N("1".into()))));
    render_actions(actions, ph, bump.as_ref())
        .map_err(|(path, e)| Error::validation(schema.entity, path.to_string(), e))
}
