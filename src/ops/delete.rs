//! DeleteItem.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use aws_sdk_dynamodb::types::{
    ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};

use super::returns;
use crate::expr::Placeholders;
use crate::pipeline::{Landed, Target};
use crate::retry::Repeat;
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
    _returns: PhantomData<R>,
}

impl<'a, E: Entity> DeleteItem<'a, E, returns::Nothing> {
    pub(crate) fn new(client: &'a Client, key: Key<E>) -> Self {
        DeleteItem {
            client,
            key,
            condition: None,
            expected_version: None,
            retry: None,
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
            _returns: PhantomData,
        }
    }

    async fn execute(self, return_old: bool) -> Result<Option<Item>> {
        let schema = E::schema();
        let key = self.key.to_item()?;
        let expected_version = super::expected_version::<E>(self.expected_version)?;
        let table = self.client.table_name(schema.table);
        let mut ph = Placeholders::default();
        let cond = super::write_condition(&mut ph, self.condition.as_ref(), expected_version)?;
        let (names, values) = (ph.names(), ph.values());
        // A delete sent twice leaves no item, but returning the old item would then return
        // nothing; a conditional delete cannot tell its own landing from someone else's.
        let (repeat, landed) = match (return_old, &cond.expression) {
            (true, _) => (Repeat::Never, Landed::Unknowable),
            (false, Some(_)) => (Repeat::SameState, Landed::Unknowable),
            (false, None) => (Repeat::SameState, Landed::Delete),
        };
        let target = Target::write(
            Operation::DeleteItem,
            &table,
            schema.entity,
            self.retry.as_ref(),
            &key,
            repeat,
        );
        self.client
            .write_item::<E, _, _, _, _>(target, cond.expected_version, landed, || {
                self.client
                    .sdk()
                    .delete_item()
                    .table_name(&table)
                    .set_key(Some(key.clone()))
                    .set_condition_expression(cond.expression.clone())
                    .set_expression_attribute_names(names.clone())
                    .set_expression_attribute_values(values.clone())
                    .return_values(if return_old {
                        ReturnValue::AllOld
                    } else {
                        ReturnValue::None
                    })
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            })
            .await
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
