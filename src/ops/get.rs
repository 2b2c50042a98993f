//! GetItem.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};

use crate::attr::Path;
use crate::batch::CoalescedGet;
use crate::cache::stack::{self, entity_in, ClientCache, LoadItem, Probed};
use crate::cache::{CacheEntry, CacheKey};
use crate::entity::checked_key_item;
use crate::expr::{self, Placeholders};
use crate::pipeline::Target;
use crate::{Attr, Client, Entity, Item, Key, Operation, Result, RetryPolicy, TableSchema};

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
    coalesce: Option<bool>,
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
            coalesce: None,
        }
    }

    /// Coalesce this get with concurrent gets of its table into one BatchGetItem (`true`), or
    /// send it alone (`false`), whatever the client's choice
    /// ([`ClientBuilder::coalesce_gets`](crate::ClientBuilder::coalesce_gets), which explains
    /// what coalescing does). A get with its own [`retry`](Self::retry) policy is sent alone.
    pub fn coalesce(mut self, on: bool) -> Self {
        self.coalesce = Some(on);
        self
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
        self.run(None).await
    }

    /// The cache a synchronous probe may answer from: a cached read of the whole item (a
    /// selection has its own entries; its key is left to the full path) with a valid key.
    fn probe_cache(&self) -> Option<&'a ClientCache> {
        if !self.projection.is_empty() || self.key.check().is_err() {
            return None;
        }
        let client: &'a Client = self.client;
        client.read_cache(E::schema(), self.consistent, self.use_cache)
    }

    /// The whole read; `corrupt`: a probe found this entry corrupt (why), so the lookup is
    /// done already and the entry is handled as corrupt. Only the decoding is generic: the
    /// request is described as an [`ItemRequest`] and read by its non-generic path.
    async fn run(self, mut corrupt: Option<String>) -> Result<Option<E>> {
        let request = self.into_request()?;
        loop {
            match request.read(corrupt.as_deref()).await? {
                ItemRead::Loaded(item) => return super::decode_optional(item),
                ItemRead::Cached(entry, key) => match entity_in::<E>(&entry, &key.entry) {
                    Ok(value) => return Ok(value),
                    // Read again, the entry handled as corrupt: this time it loads.
                    Err(why) => corrupt = Some(why),
                },
            }
        }
    }

    /// The read as data, its key checked.
    fn into_request(self) -> Result<ItemRequest<'a>> {
        let schema = E::schema();
        self.key.check()?;
        let client: &'a Client = self.client;
        let cache = client.read_cache(schema, self.consistent, self.use_cache);
        let coalesce = self.retry.is_none()
            && self
                .coalesce
                .unwrap_or_else(|| client.coalesces_gets_of::<E>());
        let (partition, sort) = self.key.into_parts();
        Ok(ItemRequest {
            coalesce,
            ..ItemRequest::new(
                client,
                schema,
                (partition, sort),
                &self.projection,
                self.consistent,
                self.retry,
                cache,
            )
        })
    }
}

/// A GetItem without its entity type: what is sent (its key values checked against the
/// schema), and the cache it is read through.
struct ItemRequest<'a> {
    client: &'a Client,
    schema: &'static TableSchema,
    table: Cow<'a, str>,
    partition: AttributeValue,
    sort: Option<AttributeValue>,
    consistent: bool,
    projection: Option<String>,
    names: Option<HashMap<String, String>>,
    retry: Option<RetryPolicy>,
    cache: Option<&'a ClientCache>,
    /// Whether the load may share a BatchGetItem with concurrent gets
    /// ([`Coalescer`](crate::batch::Coalescer)).
    coalesce: bool,
}

/// What an [`ItemRequest`] read: the item DynamoDB returned, or a cache entry (with its key)
/// to decode.
enum ItemRead {
    Loaded(Option<Item>),
    Cached(CacheEntry, CacheKey),
}

impl<'a> ItemRequest<'a> {
    fn new(
        client: &'a Client,
        schema: &'static TableSchema,
        (partition, sort): (AttributeValue, Option<AttributeValue>),
        selection: &[Path],
        consistent: bool,
        retry: Option<RetryPolicy>,
        cache: Option<&'a ClientCache>,
    ) -> Self {
        let mut ph = Placeholders::default();
        // A selection still reads the key, so the item can be decoded and cached as itself.
        let paths = if selection.is_empty() {
            Vec::new()
        } else {
            expr::with_keys(selection, &schema.primary_key_names())
        };
        let projection = expr::projection(&mut ph, &paths);
        ItemRequest {
            client,
            schema,
            table: client.full_table_name(schema.table),
            partition,
            sort,
            consistent,
            projection,
            names: ph.names(),
            retry,
            cache,
            coalesce: false,
        }
    }

    /// Reads through the cache when there is one (see [`ClientCache::read_item`]), else from
    /// DynamoDB.
    async fn read(&self, corrupt: Option<&str>) -> Result<ItemRead> {
        let Some(cache) = self.cache else {
            return Ok(ItemRead::Loaded(self.load().await?));
        };
        let projection_hash = self
            .projection
            .as_deref()
            .map_or(0, |p| crate::cache::projection_hash(p, self.names.as_ref()));
        let key = cache.item_key(
            &self.table,
            self.schema,
            &self.partition,
            self.sort.as_ref(),
            projection_hash,
        );
        let load = || -> LoadItem<'_> { Box::pin(self.load()) };
        let started = crate::metrics::clock();
        let read = cache.read_item(self.schema, &key, corrupt, &load).await;
        let hit = matches!(read, Ok(stack::ItemRead::Cached(_)));
        let labels = get_labels(&self.table, self.schema);
        let stats = self.client.stats_registry();
        stats.cache_lookup(labels, hit, started);
        Ok(match read? {
            stack::ItemRead::Cached(entry) => ItemRead::Cached(entry, key),
            stack::ItemRead::Loaded(item) => ItemRead::Loaded(item),
        })
    }

    /// Reads the item from DynamoDB: with a GetItem of its own, or coalesced with concurrent
    /// gets.
    async fn load(&self) -> Result<Option<Item>> {
        // Checked when the request was made (`GetItem::into_request`).
        let key = checked_key_item(self.schema, self.partition.clone(), self.sort.clone());
        if !self.coalesce {
            return self.load_alone(key).await;
        }
        let get = CoalescedGet {
            schema: self.schema,
            table: &self.table,
            key,
            projection: self.projection.as_deref(),
            names: self.names.as_ref(),
            consistent: self.consistent,
        };
        self.client
            .coalescer()
            .get(self.client, get, |key| self.load_alone(key))
            .await
    }

    /// Reads the item with a GetItem.
    async fn load_alone(&self, key: Item) -> Result<Option<Item>> {
        let table = &*self.table;
        let target = Target::safe(
            Operation::GetItem,
            table,
            self.schema.entity,
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
                    .set_projection_expression(self.projection.clone())
                    .set_expression_attribute_names(self.names.clone())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            })
            .await?;
        Ok(output.item.filter(|i| !i.is_empty()))
    }
}

/// What a get of `schema`'s entity on `table` is counted under.
fn get_labels<'t>(
    table: &'t str,
    schema: &'static TableSchema,
) -> crate::metrics::RequestLabels<'t> {
    crate::metrics::RequestLabels {
        operation: Operation::GetItem,
        table,
        entity: schema.entity,
    }
}

impl<'a, E: Entity> IntoFuture for GetItem<'a, E> {
    type Output = Result<Option<E>>;
    type IntoFuture = GetItemFuture<'a, E>;

    fn into_future(self) -> Self::IntoFuture {
        GetItemFuture {
            state: State::Start(self),
        }
    }
}

/// The future of an awaited [`GetItem`].
///
/// Its first poll asks the client's in-process cache layer synchronously
/// ([`CacheLayer::probe`](crate::cache::CacheLayer::probe)): a hit is returned right away,
/// without a boxed future, a rendered cache key or a table name being allocated. Anything else
/// (no cache, a consistent read, a selection, a miss, a layer that answers asynchronously)
/// runs [`GetItem::send`], boxed. Hits spend Tokio's cooperative budget, so a loop of them
/// still yields to the scheduler.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct GetItemFuture<'a, E: Entity> {
    state: State<'a, E>,
}

enum State<'a, E: Entity> {
    Start(GetItem<'a, E>),
    Running(Pin<Box<dyn Future<Output = Result<Option<E>>> + Send + 'a>>),
    Done,
}

// Nothing is pinned in place: the request is moved out on the first poll, the read path is
// boxed.
impl<E: Entity> Unpin for GetItemFuture<'_, E> {}

impl<E: Entity> std::fmt::Debug for GetItemFuture<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Start(_) => "start",
            State::Running(_) => "running",
            State::Done => "done",
        };
        f.debug_struct("GetItemFuture")
            .field("entity", &E::schema().entity)
            .field("state", &state)
            .finish()
    }
}

impl<E: Entity> Future for GetItemFuture<'_, E> {
    type Output = Result<Option<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Start(get) = &this.state {
            let mut corrupt = None;
            if let Some(cache) = get.probe_cache() {
                // As `consume_budget` in the full path: an exhausted budget yields first.
                let coop = ready!(tokio::task::coop::poll_proceed(cx));
                let started = crate::metrics::clock();
                let table = get.client.full_table_name(E::schema().table);
                match cache.probe_item::<E>(&cache.probe_key(&table, &get.key, 0)) {
                    Probed::Hit(value) => {
                        coop.made_progress();
                        let labels = get_labels(&table, E::schema());
                        let stats = get.client.stats_registry();
                        stats.cache_lookup(labels, true, started);
                        this.state = State::Done;
                        return Poll::Ready(Ok(value));
                    }
                    // The budget unit is given back (dropping `coop`): the full path spends one.
                    Probed::Miss => {}
                    Probed::Corrupt(why) => corrupt = Some(why),
                }
            }
            let State::Start(get) = std::mem::replace(&mut this.state, State::Done) else {
                unreachable!("checked above");
            };
            this.state = State::Running(Box::pin(get.run(corrupt)));
        }
        match &mut this.state {
            State::Running(fut) => {
                let out = ready!(fut.as_mut().poll(cx));
                this.state = State::Done;
                Poll::Ready(out)
            }
            _ => panic!("GetItemFuture polled after completion"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    fn the_future_is_send<E: Entity>(get: GetItem<'_, E>) -> impl Send + '_ {
        get.into_future()
    }
}
