//! GetItem.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

use crate::attr::Path;

use crate::expr::{self, Placeholders};
use crate::pipeline::Target;
use crate::{Attr, Client, Entity, Key, Operation, Result, RetryPolicy};

/// Reads one item by primary key. Built by [`Entity::get`]; `.await` runs it.
///
/// ```no_run
/// # use dynamite::Entity;
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "users")]
/// # struct User { #[dynamite(partition_key)] id: String, name: String }
/// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
/// let user: Option<User> = User::get(db, User::key("u1")).consistent().await?;
/// # Ok(()) }
/// ```
#[must_use = "a GetItem does nothing until awaited"]
pub struct GetItem<'a, E: Entity> {
    client: &'a Client,
    key: Key<E>,
    consistent: bool,
    projection: Vec<Path>,
    retry: Option<RetryPolicy>,
    use_cache: bool,
}

impl<E: Entity> std::fmt::Debug for GetItem<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetItem")
            .field("entity", &E::schema().entity)
            .finish_non_exhaustive()
    }
}

impl<'a, E: Entity> GetItem<'a, E> {
    pub(crate) fn new(client: &'a Client, key: Key<E>) -> Self {
        GetItem {
            client,
            key,
            consistent: false,
            projection: Vec::new(),
            retry: None,
            use_cache: true,
        }
    }

    /// Reads DynamoDB directly, not the client's cache (the result is not cached either).
    pub fn no_cache(mut self) -> Self {
        self.use_cache = false;
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// A strongly consistent read.
    pub fn consistent(mut self) -> Self {
        self.consistent = true;
        self
    }

    /// Read only these attributes. The entity must still be readable from them: fields left
    /// out must be `Option`, sets, or `#[serde(default)]`, or the read fails with
    /// [`Error::Conversion`](crate::Error::Conversion) naming the missing attribute.
    pub fn select<T>(mut self, attrs: impl IntoIterator<Item = Attr<E, T>>) -> Self {
        self.projection.extend(attrs.into_iter().map(|a| a.path()));
        self
    }

    /// Adds one attribute (of any type) to the projection.
    pub fn select_attr<T>(mut self, attr: Attr<E, T>) -> Self {
        self.projection.push(attr.path());
        self
    }

    /// Runs the request.
    ///
    /// With a cache on the client, an eventually consistent read goes through it (consistent
    /// reads always read DynamoDB): concurrent misses of one item make one request.
    pub async fn send(self) -> Result<Option<E>> {
        let schema = E::schema();
        self.key.check()?;
        let table = self.client.table_name(schema.table);
        let mut ph = Placeholders::default();
        // A selection still reads the key, so the item can be decoded and cached as itself.
        let paths = if self.projection.is_empty() {
            Vec::new()
        } else {
            expr::with_keys(&self.projection, &schema.primary_key_names())
        };
        let projection = expr::projection(&mut ph, &paths);
        let names = ph.names();
        if let Some(cache) = self.client.read_cache::<E>(self.consistent, self.use_cache) {
            let projection_hash = projection
                .as_deref()
                .map_or(0, |p| crate::cache::projection_hash(p, names.as_ref()));
            let cache_key = cache.item_key(&table, &self.key, projection_hash);
            return cache
                .get_item::<E, _, _>(cache_key, || self.load(&table, projection, names))
                .await;
        }
        let item = self.load(&table, projection, names).await?;
        super::decode_optional(item)
    }

    async fn load(
        &self,
        table: &str,
        projection: Option<String>,
        names: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Option<crate::Item>> {
        let schema = E::schema();
        let key = self.key.to_item()?;
        let target = Target::safe(
            Operation::GetItem,
            table,
            schema.entity,
            self.retry.as_ref(),
        );
        let output = self
            .client
            .execute(target, || {
                self.client
                    .sdk()
                    .get_item()
                    .table_name(table)
                    .set_key(Some(key.clone()))
                    .consistent_read(self.consistent)
                    .set_projection_expression(projection.clone())
                    .set_expression_attribute_names(names.clone())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            })
            .await?;
        Ok(output.item.filter(|i| !i.is_empty()))
    }
}

impl<'a, E: Entity> IntoFuture for GetItem<'a, E> {
    type Output = Result<Option<E>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
