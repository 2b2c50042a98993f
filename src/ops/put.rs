//! PutItem.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};

use super::returns;
use crate::pipeline::WriteCall;
use crate::write::{request_parts, CompiledWrite, WriteBody};
use crate::{Client, Condition, Entity, Item, Operation, Result, RetryPolicy};

/// Writes a whole item, replacing any item with the same key. Built by [`Entity::put`].
///
/// With a version attribute, the put is optimistic-locked: an entity at version `v` (0 or
/// `None` for new) is written as `v + 1` and only if the stored version is still `v` (or no
/// item exists); otherwise the put fails with [`Error::VersionConflict`](crate::Error::VersionConflict).
///
/// ```no_run
/// # use dynamite::Entity;
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "users")]
/// # struct User { #[dynamite(partition_key)] id: String, name: String }
/// # async fn demo(db: &dynamite::Client, user: User) -> dynamite::Result<()> {
/// user.put(db).if_not_exists().await?;                    // create only
/// let previous: Option<User> = user.put(db).return_old().await?;
/// # Ok(()) }
/// ```
#[must_use = "a PutItem does nothing until awaited"]
pub struct PutItem<'a, E: Entity, R = returns::Nothing> {
    client: &'a Client,
    entity: &'a E,
    condition: Option<Condition<E>>,
    retry: Option<RetryPolicy>,
    idempotent: Option<bool>,
    _returns: PhantomData<R>,
}

impl<E: Entity, R> std::fmt::Debug for PutItem<'_, E, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutItem")
            .field("entity", &E::schema().entity)
            .finish_non_exhaustive()
    }
}

impl<'a, E: Entity> PutItem<'a, E, returns::Nothing> {
    pub(crate) fn new(client: &'a Client, entity: &'a E) -> Self {
        PutItem {
            client,
            entity,
            condition: None,
            retry: None,
            idempotent: None,
            _returns: PhantomData,
        }
    }

    /// Return the item this put replaced, if there was one.
    pub fn return_old(self) -> PutItem<'a, E, returns::Old> {
        PutItem {
            client: self.client,
            entity: self.entity,
            condition: self.condition,
            retry: self.retry,
            idempotent: self.idempotent,
            _returns: PhantomData,
        }
    }
}

impl<'a, E: Entity, R> PutItem<'a, E, R> {
    /// Write only if `condition` holds for the stored item; otherwise
    /// [`Error::ConditionFailed`](crate::Error::ConditionFailed). Several calls are ANDed.
    pub fn condition(mut self, condition: Condition<E>) -> Self {
        self.condition = Some(Condition::and_maybe(self.condition.take(), condition));
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Write only if no item with this key exists.
    pub fn if_not_exists(self) -> Self {
        let pk = crate::Attr::<E, AttributeValue>::named(E::schema().partition_key.name);
        self.condition(pk.not_exists())
    }

    /// Sends the put in idempotent mode (`true`: a one-item transaction with a client request
    /// token, which may be retried safely after a lost answer; twice the write units) or not
    /// (`false`), whatever the client's default
    /// ([`ClientBuilder::idempotent_writes`](crate::ClientBuilder::idempotent_writes)).
    /// Cannot be combined with [`return_old`](PutItem::return_old).
    pub fn idempotent(mut self, on: bool) -> Self {
        self.idempotent = Some(on);
        self
    }

    async fn execute(self, return_old: bool) -> Result<Option<Item>> {
        let compile = || CompiledWrite::put(self.client, self.entity, self.condition.as_ref());
        let returns = if return_old {
            ReturnValue::AllOld
        } else {
            ReturnValue::None
        };
        let call = WriteCall {
            schema: E::schema(),
            compile: &compile,
            operation: Operation::PutItem,
            returns,
            idempotent: self.idempotent,
            retry: self.retry.as_ref(),
        };
        send_put(self.client, call).await
    }

    fn with_returns<R2>(self) -> PutItem<'a, E, R2> {
        PutItem {
            client: self.client,
            entity: self.entity,
            condition: self.condition,
            retry: self.retry,
            idempotent: self.idempotent,
            _returns: PhantomData,
        }
    }
}

impl<'a, E: Entity> PutItem<'a, E, returns::Nothing> {
    /// Runs the request.
    pub async fn send(self) -> Result<()> {
        self.execute(false).await.map(drop)
    }
}

impl<'a, E: Entity> PutItem<'a, E, returns::Old> {
    /// Runs the request; the replaced item, if any.
    pub async fn send(self) -> Result<Option<E>> {
        let old = self
            .with_returns::<returns::Nothing>()
            .execute(true)
            .await?;
        super::decode_optional(old)
    }
}

impl<'a, E: Entity> IntoFuture for PutItem<'a, E, returns::Nothing> {
    type Output = Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl<'a, E: Entity> IntoFuture for PutItem<'a, E, returns::Old> {
    type Output = Result<Option<E>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// The PutItem path without the entity type (compiled once, not once per entity): the write
/// `compile` makes, sent through [`Client::run_write`].
async fn send_put(client: &Client, call: WriteCall<'_>) -> Result<Option<Item>> {
    let sdk = client.sdk();
    let returns = call.returns.clone();
    client
        .run_write(call, |write, parts| {
            let WriteBody::Put(item) = parts.body else {
                unreachable!("a put compiles to a put")
            };
            request_parts!(sdk.put_item().set_item(Some(item)), &write.table, parts)
                .return_values(returns.clone())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
}
