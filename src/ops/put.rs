//! PutItem.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};

use super::returns;
use crate::expr::Placeholders;
use crate::pipeline::{Landed, Target};
use crate::retry::Repeat;
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
    _returns: PhantomData<R>,
}

impl<'a, E: Entity> PutItem<'a, E, returns::Nothing> {
    pub(crate) fn new(client: &'a Client, entity: &'a E) -> Self {
        PutItem {
            client,
            entity,
            condition: None,
            retry: None,
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

    async fn execute(self, return_old: bool) -> Result<Option<Item>> {
        let schema = E::schema();
        let mut item = self.entity.to_item()?;
        let expected_version = schema.version.map(|attr| {
            let current = self.entity.version();
            item.insert(
                attr.to_owned(),
                AttributeValue::N((current.unwrap_or(0) + 1).to_string()),
            );
            current
        });
        super::validate_item::<E>(&item)?;
        let table = self.client.table_name(schema.table);
        let mut ph = Placeholders::default();
        let cond = super::write_condition(&mut ph, self.condition.as_ref(), expected_version)?;
        let (names, values) = (ph.names(), ph.values());
        // A put sent twice leaves the same item, but returning the old item would then return
        // this put's own item.
        let (repeat, landed) = if return_old {
            (Repeat::Never, Landed::Unknowable)
        } else {
            let landed = Landed::Put {
                written: &item,
                expected_version: cond.expected_version,
            };
            (Repeat::SameState, landed)
        };
        let key = schema.primary_key_of(&item);
        let target = Target::write(
            Operation::PutItem,
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
                    .put_item()
                    .table_name(&table)
                    .set_item(Some(item.clone()))
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

    fn with_returns<R2>(self) -> PutItem<'a, E, R2> {
        PutItem {
            client: self.client,
            entity: self.entity,
            condition: self.condition,
            retry: self.retry,
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
