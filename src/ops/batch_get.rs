//! BatchGetItem: any number of keys, deduplicated, in chunks of 100, a bounded number of
//! requests in flight, unprocessed keys retried with the retry policy, results in input order.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use futures::{Stream, StreamExt, TryStreamExt};

use crate::attr::Path;
use crate::cache::stack::{ClientCache, Found};
use crate::key::{decode_key_values, encode_item_key, KeyTexts};
use crate::{Attr, Client, Entity, Error, Item, Key, Operation, Result, RetryPolicy};

pub use crate::batch::BatchStats;
use crate::batch::{
    table_read, table_read_owned, TableRead, DEFAULT_CONCURRENCY, MAX_KEYS_PER_REQUEST,
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// Keys with what was found for them.
type KeyedItems<E> = Vec<(Key<E>, Option<E>)>;
/// Turns one entity's aligned answers into its typed output.
type Finish = fn(Vec<Item>, Vec<Option<Item>>, BatchStats) -> Result<Box<dyn Any + Send>>;

/// What a batch get found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BatchGetOutput<E> {
    /// The items found, in the order of the input keys (each key once).
    pub items: Vec<E>,
    /// The keys with no item, in input order. Read through DynamoDB (not the cache), they are
    /// rebuilt from the crate's canonical key encoding: a number key comes back as the plain
    /// decimal of the same value (`1.50` as `1.5`), strings and binaries as given.
    pub missing: Vec<Key<E>>,
    /// Requests made and unprocessed-key retries.
    pub stats: BatchStats,
}

/// Reads many items of `E` by key. Built by [`Entity::batch_get`].
///
/// ```no_run
/// # use dynamite::Entity;
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "users")]
/// # struct User { #[dynamite(partition_key)] id: String, name: String }
/// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
/// let keys = (0..1000).map(|i| User::key(format!("u{i}")));
/// let found = User::batch_get(db, keys).await?;
/// println!("{} found, {} missing", found.items.len(), found.missing.len());
/// # Ok(()) }
/// ```
#[must_use = "a BatchGet does nothing until awaited"]
pub struct BatchGet<'a, E: Entity> {
    client: &'a Client,
    keys: Box<dyn Iterator<Item = Key<E>> + Send + 'a>,
    consistent: bool,
    projection: Vec<Path>,
    concurrency: usize,
    retry: Option<RetryPolicy>,
    use_cache: bool,
}

impl<E: Entity> std::fmt::Debug for BatchGet<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchGet")
            .field("entity", &E::schema().entity)
            .finish_non_exhaustive()
    }
}

impl<'a, E: Entity> BatchGet<'a, E> {
    pub(crate) fn new<I>(client: &'a Client, keys: I) -> Self
    where
        I: IntoIterator<Item = Key<E>>,
        I::IntoIter: Send + 'a,
    {
        BatchGet {
            client,
            keys: Box::new(keys.into_iter()),
            consistent: false,
            projection: Vec::new(),
            concurrency: DEFAULT_CONCURRENCY,
            retry: None,
            use_cache: true,
        }
    }

    /// Reads DynamoDB directly, not the client's cache.
    pub fn no_cache(mut self) -> Self {
        self.use_cache = false;
        self
    }

    /// Strongly consistent reads.
    pub fn consistent(mut self) -> Self {
        self.consistent = true;
        self
    }

    /// Read only these attributes (the keys are always read). The entity must still be
    /// readable from them.
    pub fn select<T>(mut self, attrs: impl IntoIterator<Item = Attr<E, T>>) -> Self {
        self.projection.extend(attrs.into_iter().map(|a| a.path()));
        self
    }

    /// Requests in flight at once (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    fn table_read(&self) -> TableRead<'_> {
        table_read::<E>(
            self.client,
            &self.projection,
            self.consistent,
            self.retry.as_ref(),
        )
    }

    /// Runs it: every key read once, items in input order, missing keys reported.
    pub async fn send(mut self) -> Result<BatchGetOutput<E>> {
        if let Some(cache) = self
            .client
            .read_cache(E::schema(), self.consistent, self.use_cache)
        {
            let mut seen = HashSet::new();
            let mut keys: Vec<Key<E>> = Vec::new();
            let mut items: Vec<Item> = Vec::new();
            for key in self.keys.by_ref() {
                let item = key.to_item()?;
                if seen.insert(encode_item_key(&item)) {
                    keys.push(key);
                    items.push(item);
                }
            }
            let read = self.table_read();
            return send_cached(self.client, self.concurrency, cache, &read, keys, items).await;
        }
        // Every key checked before any request; each distinct key once, moved into the request
        // (a missing one is given back from its canonical text).
        let mut texts = KeyTexts::default();
        let mut keys: Vec<Key<E>> = Vec::new();
        for key in self.keys.by_ref() {
            key.check()?;
            texts.push(key.partition(), key.sort());
            keys.push(key);
        }
        let (texts, keys) = distinct(texts, keys);
        let items = keys
            .into_iter()
            .map(Key::into_item)
            .collect::<Result<Vec<Item>>>()?;
        let read = self.table_read();
        // Items are decoded as their request is answered, not all held until the end.
        let mut decoded: Vec<Option<E>> = Vec::with_capacity(items.len());
        decoded.resize_with(items.len(), || None);
        let stats = match read
            .read_keyed(
                self.client,
                items,
                &texts,
                self.concurrency,
                &mut |i, item| {
                    decoded[i] = Some(E::from_item(item)?);
                    Ok(())
                },
            )
            .await
        {
            Ok(stats) => stats,
            // The items read and decoded go into the error with the rest, encoded again.
            Err(err) => {
                let read_items = decoded
                    .iter()
                    .flatten()
                    .map(|entity| Ok((read.table.clone(), entity.to_item()?)))
                    .collect::<Result<Vec<_>>>()?;
                return Err(crate::batch::with_read_items(err, read_items));
            }
        };
        let mut out = BatchGetOutput {
            items: Vec::with_capacity(decoded.len()),
            missing: Vec::new(),
            stats,
        };
        for (i, entity) in decoded.into_iter().enumerate() {
            match entity {
                Some(entity) => out.items.push(entity),
                None => {
                    let (partition, sort) = decode_key_values(texts.get(i)).map_err(|e| {
                        Error::validation(E::schema().entity, "key", format!("bad key text: {e}"))
                    })?;
                    out.missing.push(Key::from_values(partition, sort));
                }
            }
        }
        Ok(out)
    }

    /// Reads lazily, chunk by chunk (keys are pulled from the iterator as needed), for key
    /// sets too large to hold: each key once, in input order, with `None` for a missing item.
    /// At most `concurrency` chunks are in flight or buffered.
    ///
    /// Bypasses the item cache: a stream is for sweeping key sets too large to hold, which
    /// would only evict what the cache holds for serving traffic. Awaiting the builder (or
    /// [`send`](Self::send)) reads through the cache.
    pub fn stream(self) -> impl Stream<Item = Result<(Key<E>, Option<E>)>> + Send + 'a {
        let BatchGet {
            client,
            keys,
            consistent,
            projection,
            concurrency,
            retry,
            use_cache: _,
        } = self;
        let read = std::sync::Arc::new(table_read_owned::<E>(
            client,
            &projection,
            consistent,
            retry,
        ));
        let mut seen = HashSet::new();
        let chunks = futures::stream::iter(keys)
            .filter_map(move |key| {
                let r = key
                    .to_item()
                    .map(|item| seen.insert(encode_item_key(&item)).then_some((key, item)));
                futures::future::ready(r.transpose())
            })
            .chunks(MAX_KEYS_PER_REQUEST);
        chunks
            .map(move |chunk: Vec<Result<(Key<E>, Item)>>| {
                let read = read.clone();
                let fut: BoxFuture<'a, Result<KeyedItems<E>>> = Box::pin(async move {
                    let chunk: Vec<(Key<E>, Item)> = chunk.into_iter().collect::<Result<_>>()?;
                    let (keys, items): (Vec<Key<E>>, Vec<Item>) = chunk.into_iter().unzip();
                    let (found, _) = read.as_read().read_all(client, items, 1).await?;
                    keys.into_iter()
                        .zip(found)
                        .map(|(k, item)| Ok((k, item.map(E::from_item).transpose()?)))
                        .collect()
                });
                fut
            })
            .buffered(concurrency)
            .map_ok(|chunk| futures::stream::iter(chunk.into_iter().map(Ok)))
            .try_flatten()
    }
}

/// Through the cache: hits answer, only the misses are read from DynamoDB (and cached).
async fn send_cached<E: Entity>(
    client: &Client,
    concurrency: usize,
    cache: &ClientCache,
    read: &TableRead<'_>,
    keys: Vec<Key<E>>,
    items: Vec<Item>,
) -> Result<BatchGetOutput<E>> {
    let projection = read
        .projection
        .as_deref()
        .map_or(0, |p| crate::cache::projection_hash(p, read.names.as_ref()));
    let cache_keys: Vec<_> = keys
        .iter()
        .map(|k| {
            cache.item_key(
                &read.table,
                E::schema(),
                k.partition(),
                k.sort(),
                projection,
            )
        })
        .collect();
    let mut lookups: Vec<Found<Option<E>>> = Vec::with_capacity(cache_keys.len());
    for chunk in cache_keys.chunks(32) {
        let mut pending = Vec::with_capacity(chunk.len());
        for ck in chunk {
            pending.push(cache.lookup_item::<E>(ck));
        }
        lookups.extend(futures::future::join_all(pending).await);
    }
    let mut answers: Vec<Option<Option<E>>> = Vec::with_capacity(keys.len());
    let mut misses = Vec::new();
    for (i, found) in lookups.into_iter().enumerate() {
        match found {
            Found::Hit(value) => answers.push(Some(value)),
            Found::Miss(token) => {
                answers.push(None);
                misses.push((i, token));
            }
        }
    }
    let labels = crate::metrics::RequestLabels {
        operation: Operation::BatchGetItem,
        table: &read.table,
        entity: E::schema().entity,
    };
    client.stats_registry().slot(labels).cache_lookups(
        (keys.len() - misses.len()) as u64,
        misses.len() as u64,
        None,
    );
    let miss_items: Vec<Item> = misses.iter().map(|(i, _)| items[*i].clone()).collect();
    let (found, stats) = match read.read_all(client, miss_items, concurrency).await {
        Ok(found) => found,
        // The cache hits were read too: they go into the error with the rest.
        Err(err) => {
            let hits = answers
                .iter()
                .flatten()
                .flatten()
                .map(|hit| Ok((read.table.clone(), hit.to_item()?)))
                .collect::<Result<Vec<_>>>()?;
            return Err(crate::batch::with_read_items(err, hits));
        }
    };
    for ((i, token), item) in misses.into_iter().zip(found) {
        if let Some(token) = token {
            cache
                .fill_item(E::schema(), &cache_keys[i], item.as_ref(), &token)
                .await;
        }
        answers[i] = Some(item.map(E::from_item).transpose()?);
    }
    let mut out = BatchGetOutput {
        items: Vec::with_capacity(keys.len()),
        missing: Vec::new(),
        stats,
    };
    for (key, answer) in keys.into_iter().zip(answers) {
        match answer.flatten() {
            Some(entity) => out.items.push(entity),
            None => out.missing.push(key),
        }
    }
    Ok(out)
}

/// The first of each distinct key, with its text (`texts` aligned with `keys`).
fn distinct<E: Entity>(texts: KeyTexts, keys: Vec<Key<E>>) -> (KeyTexts, Vec<Key<E>>) {
    let mut seen: HashSet<&str> = HashSet::with_capacity(keys.len());
    let first: Vec<bool> = (0..keys.len()).map(|i| seen.insert(texts.get(i))).collect();
    if seen.len() == keys.len() {
        return (texts, keys);
    }
    let mut kept = KeyTexts::with_capacity(seen.len());
    let mut distinct = Vec::with_capacity(seen.len());
    for ((key, first), i) in keys.into_iter().zip(first).zip(0..) {
        if first {
            kept.push_text(texts.get(i));
            distinct.push(key);
        }
    }
    (kept, distinct)
}

impl<'a, E: Entity> IntoFuture for BatchGet<'a, E> {
    type Output = Result<BatchGetOutput<E>>;
    type IntoFuture = BoxFuture<'a, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// Reads items of several entities (tables) in one call. Built by [`Client::batch_get`].
///
/// Reads DynamoDB directly, not the item cache (one `E::batch_get` per entity reads through
/// it): the entities' cache settings differ, and their keys are read together.
///
/// ```no_run
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "users")]
/// # struct User { #[dynamite(partition_key)] id: String }
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "orders")]
/// # struct Order { #[dynamite(partition_key)] id: String }
/// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
/// let mut out = db.batch_get()
///     .add::<User>([User::key("u1"), User::key("u2")])
///     .add::<Order>([Order::key("o1")])
///     .await?;
/// let users = out.take::<User>()?;
/// let orders = out.take::<Order>()?;
/// # Ok(()) }
/// ```
#[must_use = "a MultiBatchGet does nothing until awaited"]
pub struct MultiBatchGet<'a> {
    client: &'a Client,
    parts: Vec<Part>,
    concurrency: usize,
    retry: Option<RetryPolicy>,
    error: Option<Error>,
}

impl std::fmt::Debug for MultiBatchGet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiBatchGet").finish_non_exhaustive()
    }
}

struct Part {
    type_id: TypeId,
    read: TableRead<'static>,
    keys: Vec<Item>,
    /// The canonical texts of `keys`, to add each key once.
    seen: HashSet<String>,
    /// Decodes the aligned answers into a `BatchGetOutput<E>`.
    finish: Finish,
}

fn finish<E: Entity>(
    keys: Vec<Item>,
    found: Vec<Option<Item>>,
    stats: BatchStats,
) -> Result<Box<dyn Any + Send>> {
    let schema = E::schema();
    let mut out = BatchGetOutput::<E> {
        items: Vec::new(),
        missing: Vec::new(),
        stats,
    };
    for (key, item) in keys.into_iter().zip(found) {
        match item {
            Some(item) => out.items.push(E::from_item(item)?),
            None => {
                let pk = key
                    .get(schema.partition_key.name)
                    .cloned()
                    .expect("key has its partition key");
                let sk = schema.sort_key.and_then(|k| key.get(k.name).cloned());
                out.missing.push(Key::from_values(pk, sk));
            }
        }
    }
    Ok(Box::new(out))
}

impl<'a> MultiBatchGet<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        MultiBatchGet {
            client,
            parts: Vec::new(),
            concurrency: DEFAULT_CONCURRENCY,
            retry: None,
            error: None,
        }
    }

    /// Adds keys of entity `E` (deduplicated with the ones already added for `E`).
    #[allow(clippy::should_implement_trait)]
    pub fn add<E: Entity>(mut self, keys: impl IntoIterator<Item = Key<E>>) -> Self {
        let position = match self
            .parts
            .iter()
            .position(|p| p.type_id == TypeId::of::<E>())
        {
            Some(i) => i,
            None => {
                self.parts.push(Part {
                    type_id: TypeId::of::<E>(),
                    read: table_read::<E>(self.client, &[], false, None),
                    keys: Vec::new(),
                    seen: HashSet::new(),
                    finish: finish::<E>,
                });
                self.parts.len() - 1
            }
        };
        for key in keys {
            match key.to_item() {
                Ok(item) => {
                    let part = &mut self.parts[position];
                    if part.seen.insert(encode_item_key(&item)) {
                        part.keys.push(item);
                    }
                }
                Err(e) => {
                    self.error.get_or_insert(e);
                }
            }
        }
        self
    }

    /// Requests in flight at once per table (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Runs it.
    pub async fn send(self) -> Result<MultiBatchGetOutput> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let client = self.client;
        let concurrency = self.concurrency;
        let retry = self.retry.as_ref();
        let outcomes = futures::future::join_all(self.parts.into_iter().map(|part| async move {
            let read = TableRead {
                retry,
                ..part.read.clone()
            };
            let result = read.read_all(client, part.keys.clone(), concurrency).await;
            (part, result)
        }))
        .await;
        // Every table ran to its end: on a failure, the error holds every key not read and
        // every item read, across tables.
        if outcomes.iter().any(|(_, result)| result.is_err()) {
            let (mut keys, mut read, mut first_cause) = (Vec::new(), Vec::new(), None);
            for (part, result) in outcomes {
                match result {
                    Ok((found, _)) => read.extend(
                        found
                            .into_iter()
                            .flatten()
                            .map(|item| (part.read.table.clone(), item)),
                    ),
                    Err(Error::UnprocessedKeys {
                        keys: unread,
                        read: got,
                        cause,
                    }) => {
                        keys.extend(unread);
                        read.extend(got);
                        if first_cause.is_none() {
                            first_cause = cause;
                        }
                    }
                    Err(other) => return Err(other),
                }
            }
            return Err(Error::UnprocessedKeys {
                keys,
                read,
                cause: first_cause,
            });
        }
        let mut parts = HashMap::new();
        for (part, result) in outcomes {
            let (found, stats) = result?;
            parts.insert(part.type_id, (part.finish)(part.keys, found, stats)?);
        }
        Ok(MultiBatchGetOutput { parts })
    }
}

impl<'a> IntoFuture for MultiBatchGet<'a> {
    type Output = Result<MultiBatchGetOutput>;
    type IntoFuture = BoxFuture<'a, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// The results of a [`MultiBatchGet`], typed per entity.
pub struct MultiBatchGetOutput {
    parts: HashMap<TypeId, Box<dyn Any + Send>>,
}

impl std::fmt::Debug for MultiBatchGetOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiBatchGetOutput")
            .field("entities", &self.parts.len())
            .finish()
    }
}

impl MultiBatchGetOutput {
    /// Takes the results for entity `E`; an error if no keys of `E` were added (or they were
    /// taken already).
    pub fn take<E: Entity>(&mut self) -> Result<BatchGetOutput<E>> {
        self.parts
            .remove(&TypeId::of::<E>())
            .and_then(|b| b.downcast::<BatchGetOutput<E>>().ok())
            .map(|b| *b)
            .ok_or_else(|| {
                Error::validation(
                    E::schema().entity,
                    "take",
                    "no keys of this entity were added to the batch (or its results were taken already)",
                )
            })
    }
}
