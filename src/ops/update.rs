//! UpdateItem.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};

use super::returns;
use crate::attr::{Attr, Value};
use crate::expr::{update::Action, Placeholders, Update};
use crate::expr::{Addable, Removable};
use crate::pipeline::{Landed, Target};
use crate::retry::Repeat;
use crate::value::{NumberValue, ToAttributeValue};
use crate::{Client, Condition, Entity, Error, Item, Key, Operation, Result, RetryPolicy};

/// Changes attributes of one item in place. Built by [`Entity::update`].
///
/// Creates the item if it does not exist (as DynamoDB does); add
/// `.condition(E::ID.exists())` (any key attribute) to update existing items only. With a version
/// attribute, every update increments it; [`expect_version`](Self::expect_version) makes the
/// update optimistic-locked.
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
    update: Update<E>,
    condition: Option<Condition<E>>,
    expected_version: Option<u64>,
    retry: Option<RetryPolicy>,
    _returns: PhantomData<R>,
}

impl<'a, E: Entity> UpdateItem<'a, E, returns::Nothing> {
    pub(crate) fn new(client: &'a Client, key: Key<E>) -> Self {
        UpdateItem {
            client,
            key,
            update: Update::new(),
            condition: None,
            expected_version: None,
            retry: None,
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
            update: self.update,
            condition: self.condition,
            expected_version: self.expected_version,
            retry: self.retry,
            _returns: PhantomData,
        }
    }

    async fn execute(self, return_values: ReturnValue) -> Result<Option<Item>> {
        let schema = E::schema();
        let key = self.key.to_item()?;
        let expected_version = super::expected_version::<E>(self.expected_version)?;
        let table = self.client.table_name(schema.table);
        let mut ph = Placeholders::default();
        let expression = render_update(&mut ph, &self.update)?;
        let cond = super::write_condition(&mut ph, self.condition.as_ref(), expected_version)?;
        let (names, values) = (ph.names(), ph.values());
        let repeat = update_repeat(
            &self.update,
            schema.version.is_some(),
            expected_version.is_some(),
            return_values == ReturnValue::AllOld,
        );
        let target = Target::write(
            Operation::UpdateItem,
            &table,
            schema.entity,
            self.retry.as_ref(),
            &key,
            repeat,
        );
        self.client
            .write_item::<E, _, _, _, _>(target, cond.expected_version, Landed::Unknowable, || {
                self.client
                    .sdk()
                    .update_item()
                    .table_name(&table)
                    .set_key(Some(key.clone()))
                    .update_expression(&expression)
                    .set_condition_expression(cond.expression.clone())
                    .set_expression_attribute_names(names.clone())
                    .set_expression_attribute_values(values.clone())
                    .return_values(return_values.clone())
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            })
            .await
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

/// Whether an update may be sent again after a lost answer. Returning the old item never: a
/// repeat would return the first attempt's result. A version-checked update may: its condition
/// lets only one attempt apply. Otherwise only updates that set and remove attributes, on an
/// entity without a version attribute (every update bumps it).
fn update_repeat<E: Entity>(
    update: &Update<E>,
    versioned: bool,
    version_checked: bool,
    returns_old: bool,
) -> Repeat {
    if returns_old {
        Repeat::Never
    } else if version_checked || (!versioned && update.actions.iter().all(Action::is_idempotent)) {
        Repeat::SameState
    } else {
        Repeat::Never
    }
}

/// Checks an update (no key or version attribute touched, no path twice, index keys valid)
/// and renders it, with the version bump when the entity has a version attribute.
pub(crate) fn render_update<E: Entity>(
    ph: &mut Placeholders,
    update: &Update<E>,
) -> Result<String> {
    let schema = E::schema();
    if update.is_empty() {
        return Err(Error::validation(
            schema.entity,
            "update",
            "the update has no actions",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for action in &update.actions {
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
        if !seen.insert(path.to_string()) {
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
    let mut expression = update
        .render(ph)
        .map_err(|(path, e)| Error::validation(schema.entity, path.to_string(), e))?;
    if let Some(version) = schema.version {
        let v = ph.name(version);
        let zero = ph.value(AttributeValue::N("0".into()));
        let one = ph.value(AttributeValue::N("1".into()));
        let bump = format!("{v} = if_not_exists({v}, {zero}) + {one}");
        expression = match expression.strip_prefix("SET ") {
            Some(rest) => format!("SET {bump}, {rest}"),
            None => format!("SET {bump} {expression}"),
        };
    }
    Ok(expression)
}
