//! DeleteItem.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValue};

use super::returns;
use crate::pipeline::WriteCall;
use crate::write::{request_parts, CompiledWrite};
use crate::{Client, Condition, Entity, Item, Key, Operation, Result, RetryPolicy};

/// Deletes one item by primary key. Built by [`Entity::delete`]. Deleting a missing item
/// succeeds (as in DynamoDB) unless a condition says otherwise.
///
/// ```no_run
/// # use dynamite::Entity;
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "users")]
/// # struct User { #[dynamite(partition_key)] id: String, name: String }
/// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
/// let removed: Option<User> = User::delete(db, User::key("u1"))
///     .condition(User::NAME.eq("Ada"))
///     .return_old()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a DeleteItem does nothing until awaited"]
pub struct DeleteItem<'a, E: Entity, R = returns::Nothing> {
    client: &'a Client,
    key: Key<E>,
    condition: Option<Condition<E>>,
    expected_version: Option<u64>,
    retry: Option<RetryPolicy>,
    idempotent: Option<bool>,
    _returns: PhantomData<R>,
}

impl<E: Entity, R> std::fmt::Debug for DeleteItem<'_, E, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeleteItem")
            .field("entity", &E::schema().entity)
            .finish_non_exhaustive()
    }
}

impl<'a, E: Entity> DeleteItem<'a, E, returns::Nothing> {
    pub(crate) fn new(client: &'a Client, key: Key<E>) -> Self {
        DeleteItem {
            client,
            key,
            condition: None,
            expected_version: None,
            retry: None,
            idempotent: None,
            _returns: PhantomData,
        }
    }

    /// Return the deleted item, if there was one.
    pub fn return_old(self) -> DeleteItem<'a, E, returns::Old> {
        self.with_returns()
    }

    /// Runs the request.
    pub async fn send(self) -> Result<()> {
        self.execute(false).await.map(drop)
    }
}

impl<'a, E: Entity> DeleteItem<'a, E, returns::Old> {
    /// Runs the request; the deleted item, if any.
    pub async fn send(self) -> Result<Option<E>> {
        let old = self
            .with_returns::<returns::Nothing>()
            .execute(true)
            .await?;
        super::decode_optional(old)
    }
}

impl<'a, E: Entity, R> DeleteItem<'a, E, R> {
    /// Delete only if `condition` holds; otherwise [`Error::ConditionFailed`](crate::Error::ConditionFailed). Several calls
    /// are ANDed.
    pub fn condition(mut self, condition: Condition<E>) -> Self {
        self.condition = Some(Condition::and_maybe(self.condition.take(), condition));
        self
    }

    /// Delete only if the stored version is `version`; otherwise
    /// [`Error::VersionConflict`](crate::Error::VersionConflict).
    /// The entity must have a version attribute.
    pub fn expect_version(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    fn with_returns<R2>(self) -> DeleteItem<'a, E, R2> {
        DeleteItem {
            client: self.client,
            key: self.key,
            condition: self.condition,
            expected_version: self.expected_version,
            retry: self.retry,
            idempotent: self.idempotent,
            _returns: PhantomData,
        }
    }

    /// Sends the delete in idempotent mode (`true`: a one-item transaction with a client
    /// request token, which may be retried safely after a lost answer; twice the write units)
    /// or not (`false`), whatever the client's default
    /// ([`ClientBuilder::idempotent_writes`](crate::ClientBuilder::idempotent_writes)).
    /// Cannot be combined with [`return_old`](DeleteItem::return_old).
    pub fn idempotent(mut self, on: bool) -> Self {
        self.idempotent = Some(on);
        self
    }

    async fn execute(self, return_old: bool) -> Result<Option<Item>> {
        let compile = || {
            CompiledWrite::delete(
                self.client,
                &self.key,
                self.condition.as_ref(),
                self.expected_version,
            )
        };
        let returns = if return_old {
            ReturnValue::AllOld
        } else {
            ReturnValue::None
        };
        let call = WriteCall {
            schema: E::schema(),
            compile: &compile,
            operation: Operation::DeleteItem,
            returns,
            idempotent: self.idempotent,
            retry: self.retry.as_ref(),
        };
        send_delete(self.client, call).await
    }
}

impl<'a, E: Entity> IntoFuture for DeleteItem<'a, E, returns::Nothing> {
    type Output = Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl<'a, E: Entity> IntoFuture for DeleteItem<'a, E, returns::Old> {
    type Output = Result<Option<E>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// The DeleteItem path without the entity type (compiled once, not once per entity): the
/// write `compile` makes, sent through [`Client::run_write`].
async fn send_delete(client: &Client, call: WriteCall<'_>) -> Result<Option<Item>> {
    let sdk = client.sdk();
    let returns = call.returns.clone();
    client
        .run_write(call, |write, parts| {
            let request = sdk.delete_item().set_key(Some(parts.key));
            request_parts!(request, &write.table, parts)
                .return_values(returns.clone())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
}
