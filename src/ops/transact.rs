//! Transactions: TransactWriteItems (put, update, delete, condition check on any entities) and
//! TransactGetItems, with cancellation reasons mapped back to the operation they belong to.

use std::any::TypeId;
use std::collections::HashSet;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use aws_sdk_dynamodb::types::{Get, ReturnConsumedCapacity, TransactGetItem, TransactWriteItem};

use crate::pipeline::Target;
use crate::retry::Repeat;
use crate::write::{CancellationReason, CompiledWrite, TransactAction};
use crate::{Client, Condition, Entity, Error, Item, Key, Operation, Result, RetryPolicy, Update};

/// DynamoDB's limit of operations per transaction.
pub(super) const MAX_TRANSACTION_ITEMS: usize = 100;

struct TxOp {
    operation: TransactAction,
    table: String,
    key: Item,
    /// The key in cache-key form, for invalidation.
    key_text: String,
    item: TransactWriteItem,
}

/// A write transaction: all operations apply, or none. Built by [`Client::transact_write`].
///
/// ```no_run
/// # use dynamite::Update;
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "accounts")]
/// # struct Account { #[dynamite(partition_key)] id: String, balance: i64 }
/// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
/// db.transact_write()
///     .update_if(Account::key("a"), Update::new().add(Account::BALANCE, -10), Account::BALANCE.ge(10))
///     .update(Account::key("b"), Update::new().add(Account::BALANCE, 10))
///     .idempotency_token("transfer-42")
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a TransactWrite does nothing until awaited"]
pub struct TransactWrite<'a> {
    client: &'a Client,
    ops: Vec<TxOp>,
    token: Option<String>,
    error: Option<Error>,
    retry: Option<RetryPolicy>,
}

impl std::fmt::Debug for TransactWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactWrite").finish_non_exhaustive()
    }
}

impl<'a> TransactWrite<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        TransactWrite {
            client,
            ops: Vec::new(),
            token: None,
            error: None,
            retry: None,
        }
    }

    fn push(mut self, op: Result<TxOp>) -> Self {
        match op {
            Ok(op) => self.ops.push(op),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Puts `entity` (optimistic-locked through its version attribute, like [`Entity::put`]).
    pub fn put<E: Entity>(self, entity: &E) -> Self {
        let op = tx_op(
            &entity.primary_key(),
            CompiledWrite::put(self.client, entity, None),
        );
        self.push(op)
    }

    /// Puts `entity` if `condition` holds.
    pub fn put_if<E: Entity>(self, entity: &E, condition: Condition<E>) -> Self {
        let op = tx_op(
            &entity.primary_key(),
            CompiledWrite::put(self.client, entity, Some(&condition)),
        );
        self.push(op)
    }

    /// Applies `update` to the existing item with `key` (the version attribute, if any, is
    /// bumped); a missing item cancels the transaction (reason `ConditionalCheckFailed`).
    pub fn update<E: Entity>(self, key: Key<E>, update: Update<E>) -> Self {
        let op = tx_op(
            &key,
            CompiledWrite::update(self.client, &key, &update, None, None, true),
        );
        self.push(op)
    }

    /// Applies `update` to the item with `key`, creating it when missing.
    pub fn upsert<E: Entity>(self, key: Key<E>, update: Update<E>) -> Self {
        let op = tx_op(
            &key,
            CompiledWrite::update(self.client, &key, &update, None, None, false),
        );
        self.push(op)
    }

    /// Applies `update` to the existing item with `key` if `condition` holds.
    pub fn update_if<E: Entity>(
        self,
        key: Key<E>,
        update: Update<E>,
        condition: Condition<E>,
    ) -> Self {
        let op = tx_op(
            &key,
            CompiledWrite::update(self.client, &key, &update, Some(&condition), None, true),
        );
        self.push(op)
    }

    /// Deletes the item with `key`.
    pub fn delete<E: Entity>(self, key: Key<E>) -> Self {
        let op = tx_op(&key, CompiledWrite::delete(self.client, &key, None, None));
        self.push(op)
    }

    /// Deletes the item with `key` if `condition` holds.
    pub fn delete_if<E: Entity>(self, key: Key<E>, condition: Condition<E>) -> Self {
        let op = tx_op(
            &key,
            CompiledWrite::delete(self.client, &key, Some(&condition), None),
        );
        self.push(op)
    }

    /// Requires `condition` to hold on the item with `key`, without writing it.
    pub fn condition_check<E: Entity>(self, key: Key<E>, condition: Condition<E>) -> Self {
        let op = tx_op(&key, CompiledWrite::check(self.client, &key, &condition));
        self.push(op)
    }

    /// The idempotency token: the same transaction sent again with the same token within 10
    /// minutes is applied once.
    pub fn idempotency_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Runs it.
    pub async fn send(self) -> Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        check_transaction(
            self.ops.iter().map(|op| (op.table.as_str(), &op.key)),
            self.ops.len(),
        )?;
        let items: Vec<TransactWriteItem> = self.ops.iter().map(|op| op.item.clone()).collect();
        // One token for every attempt: a retried transaction whose first answer was lost is
        // then applied once (the SDK would make a new token per send).
        let token = self
            .token
            .clone()
            .unwrap_or_else(crate::write::request_token);
        let label = self
            .ops
            .first()
            .map(|op| op.table.clone())
            .unwrap_or_default();
        // Every attempt carries the same token: DynamoDB applies the transaction once.
        let writes = self.ops.iter();
        let writes = writes.filter(|op| op.operation != TransactAction::ConditionCheck);
        let target = Target {
            repeat: Repeat::Token,
            items_written: writes.count() as u64,
            ..Target::safe(
                Operation::TransactWriteItems,
                &label,
                "(transaction)",
                self.retry.as_ref(),
            )
        };
        let result = self
            .client
            .execute(target, || {
                self.client
                    .sdk()
                    .transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    .client_request_token(&token)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            })
            .await;
        let written = self
            .ops
            .iter()
            .filter(|op| op.operation != TransactAction::ConditionCheck)
            .map(|op| (op.table.as_str(), op.key_text.as_str()));
        self.client.invalidate_written(written).await;
        match result {
            Ok(_) => Ok(()),
            Err(Error::TransactionCanceled { reasons }) => Err(Error::TransactionCanceled {
                reasons: attribute(
                    reasons,
                    self.ops
                        .iter()
                        .map(|op| (op.operation, op.table.as_str(), &op.key)),
                ),
            }),
            Err(e) => Err(e),
        }
    }
}

impl<'a> IntoFuture for TransactWrite<'a> {
    type Output = Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// At most 100 operations, at least one, and no item twice.
fn check_transaction<'k>(
    keys: impl Iterator<Item = (&'k str, &'k Item)>,
    len: usize,
) -> Result<()> {
    if len == 0 {
        return Err(Error::validation(
            "transaction",
            "operations",
            "a transaction needs at least one operation",
        ));
    }
    if len > MAX_TRANSACTION_ITEMS {
        return Err(Error::validation(
            "transaction",
            "operations",
            format!("{len} operations, over DynamoDB's limit of {MAX_TRANSACTION_ITEMS} per transaction"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, (table, key)) in keys.enumerate() {
        if !seen.insert((table.to_owned(), crate::key::encode_item_key(key))) {
            return Err(Error::validation(
                "transaction",
                format!("operations[{i}]"),
                format!("a second operation on the same item of {table} ({key:?}); DynamoDB allows one per item"),
            ));
        }
    }
    Ok(())
}

/// Fills in which operation each cancellation reason belongs to.
fn attribute<'k>(
    reasons: Vec<CancellationReason>,
    ops: impl Iterator<Item = (TransactAction, &'k str, &'k Item)>,
) -> Vec<CancellationReason> {
    reasons
        .into_iter()
        .zip(ops)
        .enumerate()
        .map(
            |(index, (reason, (operation, table, key)))| CancellationReason {
                index,
                operation,
                table: table.to_owned(),
                key: key.clone(),
                ..reason
            },
        )
        .collect()
}

/// A transaction part: the compiled write and its cache key.
fn tx_op<E: Entity>(key: &Key<E>, write: Result<CompiledWrite>) -> Result<TxOp> {
    let write = write?;
    Ok(TxOp {
        operation: write.action(),
        key_text: crate::cache::key_text(key.partition(), key.sort()),
        table: write.table.clone(),
        key: write.key().into_owned(),
        item: write.to_transact_item(),
    })
}

/// A read transaction: a consistent snapshot of up to 100 items of any entities. Built by
/// [`Client::transact_get`].
///
/// ```no_run
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "accounts")]
/// # struct Account { #[dynamite(partition_key)] id: String, balance: i64 }
/// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
/// let out = db.transact_get().get(Account::key("a")).get(Account::key("b")).await?;
/// let a: Option<Account> = out.get(0)?;
/// let both: Vec<Option<Account>> = out.all()?;
/// # Ok(()) }
/// ```
#[must_use = "a TransactGet does nothing until awaited"]
pub struct TransactGet<'a> {
    client: &'a Client,
    gets: Vec<(TypeId, &'static str, String, Item)>,
    error: Option<Error>,
    retry: Option<RetryPolicy>,
}

impl std::fmt::Debug for TransactGet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactGet").finish_non_exhaustive()
    }
}

impl<'a> TransactGet<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        TransactGet {
            client,
            gets: Vec::new(),
            error: None,
            retry: None,
        }
    }

    /// Reads the item with `key`; its result is at the position of this call.
    pub fn get<E: Entity>(mut self, key: Key<E>) -> Self {
        match key.to_item() {
            Ok(item) => self.gets.push((
                TypeId::of::<E>(),
                E::schema().entity,
                self.client.table_name(E::schema().table),
                item,
            )),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Runs it.
    pub async fn send(self) -> Result<TransactGetOutput> {
        if let Some(e) = self.error {
            return Err(e);
        }
        check_transaction(
            self.gets.iter().map(|(_, _, t, k)| (t.as_str(), k)),
            self.gets.len(),
        )?;
        let items: Vec<TransactGetItem> = self
            .gets
            .iter()
            .map(|(_, _, table, key)| {
                TransactGetItem::builder()
                    .get(
                        Get::builder()
                            .table_name(table)
                            .set_key(Some(key.clone()))
                            .build()
                            .expect("table and key"),
                    )
                    .build()
            })
            .collect();
        let label = self.gets[0].2.clone();
        let target = Target::safe(
            Operation::TransactGetItems,
            &label,
            "(transaction)",
            self.retry.as_ref(),
        );
        let result = self
            .client
            .execute(target, || {
                self.client
                    .sdk()
                    .transact_get_items()
                    .set_transact_items(Some(items.clone()))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            })
            .await;
        let out = match result {
            Ok(out) => out,
            Err(Error::TransactionCanceled { reasons }) => {
                return Err(Error::TransactionCanceled {
                    reasons: attribute(
                        reasons,
                        self.gets
                            .iter()
                            .map(|(_, _, t, k)| (TransactAction::Get, t.as_str(), k)),
                    ),
                })
            }
            Err(e) => return Err(e),
        };
        let responses = out.responses.unwrap_or_default();
        Ok(TransactGetOutput {
            items: self
                .gets
                .into_iter()
                .zip(
                    responses
                        .into_iter()
                        .map(|r| r.item)
                        .chain(std::iter::repeat(None)),
                )
                .map(|((type_id, entity, _, _), item)| {
                    (type_id, entity, item.filter(|i| !i.is_empty()))
                })
                .collect(),
        })
    }
}

impl<'a> IntoFuture for TransactGet<'a> {
    type Output = Result<TransactGetOutput>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// The items a [`TransactGet`] read, by position.
#[derive(Debug)]
#[non_exhaustive]
pub struct TransactGetOutput {
    items: Vec<(TypeId, &'static str, Option<Item>)>,
}

impl TransactGetOutput {
    /// The item read by the `index`-th `get` (0-based), as `E`; an error if that get was for
    /// another entity.
    pub fn get<E: Entity>(&self, index: usize) -> Result<Option<E>> {
        match self.items.get(index) {
            Some((type_id, _, item)) if *type_id == TypeId::of::<E>() => {
                item.clone().map(E::from_item).transpose()
            }
            Some((_, entity, _)) => Err(Error::validation(
                E::schema().entity,
                format!("get({index})"),
                format!("position {index} holds a {entity}"),
            )),
            None => Err(Error::validation(
                E::schema().entity,
                format!("get({index})"),
                format!("the transaction read {} items", self.items.len()),
            )),
        }
    }

    /// Every item read as `E`, in the order of the `get` calls for `E`.
    pub fn all<E: Entity>(&self) -> Result<Vec<Option<E>>> {
        self.items
            .iter()
            .filter(|(t, _, _)| *t == TypeId::of::<E>())
            .map(|(_, _, item)| item.clone().map(E::from_item).transpose())
            .collect()
    }

    /// Number of items asked for.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// `true` when nothing was asked for.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
