//! UpdateItem.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValue};

use super::returns;
use crate::attr::{Attr, Value};
use crate::expr::Update;
use crate::expr::{Addable, Removable};
use crate::pipeline::WriteCall;
use crate::value::{NumberValue, ToAttributeValue};
use crate::write::{request_parts, CompiledWrite, WriteBody};
use crate::{Client, Condition, Entity, Error, Item, Key, Operation, Result, RetryPolicy};

/// Changes attributes of one item in place. Built by [`Entity::update`].
///
/// [`Entity::update`] changes an existing item only (a missing one is
/// [`Error::NotFound`](crate::Error::NotFound)); [`Entity::upsert`] creates it when missing, as
/// DynamoDB's UpdateItem does. With a version attribute, every update increments it;
/// [`expect_version`](Self::expect_version) makes the update optimistic-locked.
///
/// ```no_run
/// # use dynamite::Entity;
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "users")]
/// # struct User { #[dynamite(partition_key)] id: String, name: String, status: String, logins: u64 }
/// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
/// let user: User = User::update(db, User::key("u1"))
///     .set(User::NAME, "Ada")
///     .add(User::LOGINS, 1)
///     .condition(User::STATUS.eq("active"))
///     .return_new()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "an UpdateItem does nothing until awaited"]
pub struct UpdateItem<'a, E: Entity, R = returns::Nothing> {
    client: &'a Client,
    key: Key<E>,
    /// `update()` (the item must exist), not `upsert()`.
    must_exist: bool,
    update: Update<E>,
    condition: Option<Condition<E>>,
    expected_version: Option<u64>,
    retry: Option<RetryPolicy>,
    idempotent: Option<bool>,
    _returns: PhantomData<R>,
}

impl<E: Entity, R> std::fmt::Debug for UpdateItem<'_, E, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateItem")
            .field("entity", &E::schema().entity)
            .finish_non_exhaustive()
    }
}

impl<'a, E: Entity> UpdateItem<'a, E, returns::Nothing> {
    pub(crate) fn new(client: &'a Client, key: Key<E>, must_exist: bool) -> Self {
        UpdateItem {
            client,
            key,
            must_exist,
            update: Update::new(),
            condition: None,
            expected_version: None,
            retry: None,
            idempotent: None,
            _returns: PhantomData,
        }
    }

    /// Return the whole item as it is after the update.
    pub fn return_new(self) -> UpdateItem<'a, E, returns::New> {
        self.with_returns()
    }

    /// Return the whole item as it was before the update (`None` if it did not exist).
    pub fn return_old(self) -> UpdateItem<'a, E, returns::Old> {
        self.with_returns()
    }

    /// Runs the request.
    pub async fn send(self) -> Result<()> {
        self.execute(ReturnValue::None).await.map(drop)
    }
}

impl<'a, E: Entity> UpdateItem<'a, E, returns::New> {
    /// Runs the request; the item after the update.
    pub async fn send(self) -> Result<E> {
        let entity = E::schema().entity;
        let item = self
            .with_returns::<returns::Nothing>()
            .execute(ReturnValue::AllNew)
            .await?;
        match item {
            Some(item) => E::from_item(item),
            None => Err(Error::Conversion {
                entity: entity.to_owned(),
                attribute: "(item)".to_owned(),
                reason: "the update returned no item".to_owned(),
            }),
        }
    }
}

impl<'a, E: Entity> UpdateItem<'a, E, returns::Old> {
    /// Runs the request; the item before the update, if it existed.
    pub async fn send(self) -> Result<Option<E>> {
        let item = self
            .with_returns::<returns::Nothing>()
            .execute(ReturnValue::AllOld)
            .await?;
        super::decode_optional(item)
    }
}

impl<'a, E: Entity, R> UpdateItem<'a, E, R> {
    /// `SET attr = value`; setting an `Option` attribute to `None` removes it.
    pub fn set<T: ToAttributeValue, V: Value<T>>(mut self, attr: Attr<E, T>, value: V) -> Self {
        self.update = self.update.set(attr, value);
        self
    }

    /// `SET attr = if_not_exists(attr, value)`.
    pub fn set_if_not_exists<T, V: Value<T>>(mut self, attr: Attr<E, T>, value: V) -> Self {
        self.update = self.update.set_if_not_exists(attr, value);
        self
    }

    /// `ADD attr value`: add to a number, or add elements to a set.
    pub fn add<T: Addable, V: Value<T>>(mut self, attr: Attr<E, T>, value: V) -> Self {
        self.update = self.update.add(attr, value);
        self
    }

    /// `SET attr = if_not_exists(attr, 0) + by`.
    pub fn increment<T: NumberValue, V: Value<T>>(mut self, attr: Attr<E, T>, by: V) -> Self {
        self.update = self.update.increment(attr, by);
        self
    }

    /// `SET attr = attr - by`; for an unsigned type the update also requires `attr >= by`, so
    /// it never goes below zero (see [`Update::decrement`](crate::Update::decrement)).
    pub fn decrement<T: NumberValue, V: Value<T>>(mut self, attr: Attr<E, T>, by: V) -> Self {
        self.update = self.update.decrement(attr, by);
        self
    }

    /// `DELETE attr elements`: remove elements from a set.
    pub fn delete_elements<T: Addable + ToAttributeValue>(
        mut self,
        attr: Attr<E, T>,
        elements: T,
    ) -> Self {
        self.update = self.update.delete_elements(attr, elements);
        self
    }

    /// `REMOVE attr` (for `Option` and set attributes).
    pub fn remove<T: Removable>(mut self, attr: Attr<E, T>) -> Self {
        self.update = self.update.remove(attr);
        self
    }

    /// Append to a list attribute.
    pub fn append<T: ToAttributeValue>(mut self, attr: Attr<E, Vec<T>>, items: Vec<T>) -> Self {
        self.update = self.update.append(attr, items);
        self
    }

    /// Prepend to a list attribute.
    pub fn prepend<T: ToAttributeValue>(mut self, attr: Attr<E, Vec<T>>, items: Vec<T>) -> Self {
        self.update = self.update.prepend(attr, items);
        self
    }

    /// Replaces the actions with a prepared [`Update`].
    pub fn actions(mut self, update: Update<E>) -> Self {
        self.update = update;
        self
    }

    /// Update only if `condition` holds; otherwise
    /// [`Error::ConditionFailed`](crate::Error::ConditionFailed). Several calls are ANDed.
    pub fn condition(mut self, condition: Condition<E>) -> Self {
        self.condition = Some(Condition::and_maybe(self.condition.take(), condition));
        self
    }

    /// Update only if the stored version is `version`; otherwise
    /// [`Error::VersionConflict`](crate::Error::VersionConflict).
    pub fn expect_version(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    fn with_returns<R2>(self) -> UpdateItem<'a, E, R2> {
        UpdateItem {
            client: self.client,
            key: self.key,
            must_exist: self.must_exist,
            update: self.update,
            condition: self.condition,
            expected_version: self.expected_version,
            retry: self.retry,
            idempotent: self.idempotent,
            _returns: PhantomData,
        }
    }

    /// Sends the update in idempotent mode (`true`: a one-item transaction with a client
    /// request token, which may be retried safely after a lost answer, so an `add` is never
    /// applied twice nor left unknown; twice the write units) or not (`false`), whatever the
    /// client's default ([`ClientBuilder::idempotent_writes`](crate::ClientBuilder::idempotent_writes)).
    /// Cannot be combined with `return_new()` / `return_old()`.
    pub fn idempotent(mut self, on: bool) -> Self {
        self.idempotent = Some(on);
        self
    }

    async fn execute(self, returns: ReturnValue) -> Result<Option<Item>> {
        let compile = || {
            CompiledWrite::update(
                self.client,
                &self.key,
                &self.update,
                self.condition.as_ref(),
                self.expected_version,
                self.must_exist,
            )
        };
        let call = WriteCall {
            schema: E::schema(),
            compile: &compile,
            operation: Operation::UpdateItem,
            returns,
            idempotent: self.idempotent,
            retry: self.retry.as_ref(),
        };
        send_update(self.client, call).await
    }
}

macro_rules! into_future {
    ($r:ty, $out:ty) => {
        impl<'a, E: Entity> IntoFuture for UpdateItem<'a, E, $r> {
            type Output = Result<$out>;
            type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
            fn into_future(self) -> Self::IntoFuture {
                Box::pin(self.send())
            }
        }
    };
}
into_future!(returns::Nothing, ());
into_future!(returns::New, E);
into_future!(returns::Old, Option<E>);

/// The UpdateItem path without the entity type (compiled once, not once per entity): the
/// write `compile` makes, sent through [`Client::run_write`].
async fn send_update(client: &Client, call: WriteCall<'_>) -> Result<Option<Item>> {
    let sdk = client.sdk();
    let returns = call.returns.clone();
    client
        .run_write(call, |write, parts| {
            let WriteBody::Update(expression) = parts.body else {
                unreachable!("an update compiles to an update")
            };
            let request = sdk
                .update_item()
                .set_key(Some(parts.key))
                .update_expression(expression);
            request_parts!(request, &write.table, parts)
                .return_values(returns.clone())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
}
