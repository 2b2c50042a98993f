//! How the client uses its cache: lookups with single flight, fills, invalidation on writes.
//! The only place operations talk to the cache.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::codec::{self, Cached};
use super::keys;
use super::{CacheConfig, CacheEntry, CacheKey, CacheLayer, FillToken, Lookup, ProbeKey};
use crate::{Entity, Item, Key, Result, TableSchema};

/// One load shared by concurrent misses of an entry: an item (or its absence) or a page.
type Flight = Arc<tokio::sync::OnceCell<Cached>>;

/// Removes a flight from the map when the last caller interested in it leaves.
struct FlightGuard<'m> {
    map: &'m Mutex<HashMap<(String, u64), Flight>>,
    key: (String, u64),
    cell: Flight,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().expect("inflight map");
        // The map's copy and ours: nobody else waits on this flight.
        if map
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell))
            && Arc::strong_count(&self.cell) <= 2
        {
            map.remove(&self.key);
        }
    }
}

/// The client's cache: its layer (often a [`Tiered`](super::Tiered)) and settings.
pub(crate) struct ClientCache {
    layer: Arc<dyn CacheLayer>,
    pub(crate) config: CacheConfig,
    /// Loads in flight, by entry key and write epoch.
    inflight: Mutex<HashMap<(String, u64), Flight>>,
    /// Bumped by every write through this client: a load started before a write is never
    /// joined by a read that starts after it.
    epoch: AtomicU64,
    /// Corrupt entries seen (decoding failed), across layers.
    corrupt: AtomicU64,
    /// Which database the entries come from ([`keys::namespace`]).
    namespace: String,
}

/// What a synchronous probe found ([`ClientCache::probe_item`]).
pub(crate) enum Probed<T> {
    /// Answered by the in-process layer (counted there as a hit).
    Hit(T),
    /// Not answered now: do the whole lookup.
    Miss,
    /// The entry found cannot be read (counted as a hit by its layer): a miss, whose scope is
    /// invalidated and which is not filled ([`ClientCache::get_item_after_corrupt`]).
    Corrupt(String),
}

/// What a lookup found.
pub(crate) enum Found<T> {
    /// Answered by the cache.
    Hit(T),
    /// Not cached; fill with the token (`None`: the cache failed, do not fill).
    Miss(Option<FillToken>),
}

/// What [`ClientCache::read_item`] read.
pub(crate) enum ItemRead {
    /// The cache's entry, to decode with [`entity_in`].
    Cached(CacheEntry),
    /// The item DynamoDB returned (`None`: no such item).
    Loaded(Option<Item>),
}

/// The load of an item on a cache miss.
pub(crate) type LoadItem<'a> = Pin<Box<dyn Future<Output = Result<Option<Item>>> + Send + 'a>>;

/// The entity decoded already and attached to `entry`, cloned.
fn attached<E: Entity>(entry: &CacheEntry) -> Option<E> {
    entry
        .decoded()?
        .downcast_ref::<E>()
        .and_then(E::__clone_for_cache)
}

/// The entity (or its cached absence) in what the codec read from an entry, the decoded copy
/// attached to the entry; `Err`: why the entry cannot be read as an `E`.
fn decode_cached<E: Entity>(
    entry: &CacheEntry,
    cached: Option<Cached>,
) -> std::result::Result<Option<E>, String> {
    match cached {
        Some(Cached::Absent) => Ok(None),
        Some(Cached::Item(item)) => {
            let entity = E::from_item(item).map_err(|e| e.to_string())?;
            if let Some(copy) = entity.__clone_for_cache() {
                entry.attach(Arc::new(copy));
            }
            Ok(Some(entity))
        }
        _ => Err("not a cache entry of this format and schema".to_owned()),
    }
}

/// The entity (or its cached absence) in the item entry `entry` found under the entry key
/// `key`: the decoded copy attached to it, cloned, or its bytes decoded (and the result
/// attached). `Err`: why the entry cannot be read as an `E`.
pub(crate) fn entity_in<E: Entity>(
    entry: &CacheEntry,
    key: &str,
) -> std::result::Result<Option<E>, String> {
    if let Some(entity) = attached::<E>(entry) {
        return Ok(Some(entity));
    }
    decode_cached::<E>(
        entry,
        codec::decode(E::schema().fingerprint, key, entry.bytes()),
    )
}

impl ClientCache {
    /// A cache for a client whose database is told apart by `identity` (region and endpoint,
    /// or the namespace the user chose).
    pub(crate) fn new(layer: Arc<dyn CacheLayer>, config: CacheConfig, identity: &str) -> Self {
        ClientCache {
            layer,
            config,
            namespace: keys::namespace(identity),
            inflight: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
        }
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn layer(&self) -> &Arc<dyn CacheLayer> {
        &self.layer
    }

    pub(crate) fn corrupt_entries(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Whether the items of `schema`'s entity are cached at all.
    pub(crate) fn enabled_for(schema: &TableSchema) -> bool {
        schema.cache.is_none_or(|c| c.enabled)
    }

    fn item_ttl(&self, schema: &TableSchema) -> Duration {
        schema
            .cache
            .and_then(|c| c.ttl_ms)
            .map_or(self.config.item_ttl, Duration::from_millis)
    }

    fn negative_ttl(&self, schema: &TableSchema) -> Option<Duration> {
        schema
            .cache
            .and_then(|c| c.negative_ttl_ms)
            .map(Duration::from_millis)
            .or(self.config.negative_ttl)
    }

    /// The key of the entry of the item with these key values, read with `projection` (0:
    /// the whole item).
    pub(crate) fn item_key(
        &self,
        table: &str,
        schema: &TableSchema,
        partition: &AttributeValue,
        sort: Option<&AttributeValue>,
        projection: u64,
    ) -> CacheKey {
        let text = keys::key_text(partition, sort);
        let ns = &self.namespace;
        CacheKey {
            entry: keys::item_entry(ns, table, schema, projection, &text),
            scope: keys::item_scope(ns, table, &text),
        }
    }

    /// The key of `key`'s entry with `projection` (0: whole item), by its parts (see
    /// [`ProbeKey`]): hashed once, not rendered.
    pub(crate) fn probe_key<'k, E: Entity>(
        &'k self,
        table: &'k str,
        key: &'k Key<E>,
        projection: u64,
    ) -> ProbeKey<'k> {
        ProbeKey::new(keys::ItemParts::new(
            &self.namespace,
            table,
            E::schema(),
            projection,
            keys::ItemKey::Values(key.partition(), key.sort()),
        ))
    }

    /// Answers from an in-process layer without waiting, when it can ([`CacheLayer::probe`]):
    /// the decoded entity attached to the entry is cloned, or the entry is decoded (once: the
    /// result is attached). Counts nothing on a miss.
    pub(crate) fn probe_item<E: Entity>(&self, key: &ProbeKey<'_>) -> Probed<Option<E>> {
        let Some(entry) = self.layer.probe(key) else {
            return Probed::Miss;
        };
        if let Some(entity) = attached::<E>(&entry) {
            return Probed::Hit(Some(entity));
        }
        let cached = codec::decode(E::schema().fingerprint, &key.entry(), entry.bytes());
        match decode_cached::<E>(&entry, cached) {
            Ok(value) => Probed::Hit(value),
            Err(why) => Probed::Corrupt(why),
        }
    }

    /// Looks up an item entry. Faults are misses (without a fill token).
    async fn lookup_entry(&self, key: &CacheKey) -> Found<CacheEntry> {
        // An in-process hit never waits, so a loop of hits would never yield: each lookup
        // spends a unit of tokio's cooperative budget, and yields when it is used up.
        tokio::task::coop::consume_budget().await;
        match self.layer.get(key).await {
            Ok(Lookup::Hit(entry)) => Found::Hit(entry),
            Ok(Lookup::Miss(token)) => Found::Miss(Some(token)),
            Err(e) => {
                tracing::warn!(error = %e, "cache lookup failed; reading DynamoDB");
                Found::Miss(None)
            }
        }
    }

    /// Looks up an item; decodes it (or clones the decoded copy). Faults and corrupt entries
    /// are misses.
    pub(crate) async fn lookup_item<E: Entity>(&self, key: &CacheKey) -> Found<Option<E>> {
        match self.lookup_entry(key).await {
            Found::Hit(entry) => match entity_in::<E>(&entry, &key.entry) {
                Ok(value) => Found::Hit(value),
                Err(why) => self.corrupt_entry(key, &why).await,
            },
            Found::Miss(token) => Found::Miss(token),
        }
    }

    /// A corrupt entry is a miss; its scope is invalidated so the next read fills it again
    /// (this read does not: its token predates the invalidation).
    async fn corrupt_entry<T>(&self, key: &CacheKey, why: &str) -> Found<T> {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(entry = %key.entry, why, "corrupt cache entry treated as a miss");
        if let Err(e) = self.layer.invalidate(&key.scope).await {
            tracing::warn!(error = %e, "cache invalidation of a corrupt entry failed");
        }
        Found::Miss(None)
    }

    /// Stores an item (or its absence, when negative caching is on).
    pub(crate) async fn fill_item(
        &self,
        schema: &TableSchema,
        key: &CacheKey,
        item: Option<&Item>,
        token: &FillToken,
    ) {
        let (value, ttl) = match item {
            Some(item) => (Cached::Item(item.clone()), self.item_ttl(schema)),
            None => match self.negative_ttl(schema) {
                Some(ttl) => (Cached::Absent, ttl),
                None => return,
            },
        };
        let entry = CacheEntry::from_bytes(codec::encode(schema.fingerprint, &key.entry, &value));
        if let Err(e) = self.layer.put(key, entry, ttl, token).await {
            tracing::warn!(error = %e, "cache fill failed");
        }
    }

    /// Reads an item of `schema`'s entity through the cache: a hit is returned as the entry
    /// found, to decode ([`entity_in`]); a miss runs `load` once for all concurrent callers of
    /// the same entry (single flight) and fills the cache. `corrupt`: the caller found the
    /// entry corrupt (why), so it is handled as such (counted, its scope invalidated) and read
    /// without a fill. Not generic: compiled once for every entity.
    pub(crate) async fn read_item<'l>(
        &self,
        schema: &TableSchema,
        key: &CacheKey,
        corrupt: Option<&str>,
        load: &(dyn Fn() -> LoadItem<'l> + Sync),
    ) -> Result<ItemRead> {
        let found = match corrupt {
            Some(why) => self.corrupt_entry(key, why).await,
            None => self.lookup_entry(key).await,
        };
        let token = match found {
            Found::Hit(entry) => return Ok(ItemRead::Cached(entry)),
            Found::Miss(token) => token,
        };
        let loaded = self
            .single_flight(key, || async {
                let item = load().await?;
                if let Some(token) = &token {
                    self.fill_item(schema, key, item.as_ref(), token).await;
                }
                Ok(item.map_or(Cached::Absent, Cached::Item))
            })
            .await?;
        match loaded {
            Cached::Item(item) => Ok(ItemRead::Loaded(Some(item))),
            _ => Ok(ItemRead::Loaded(None)),
        }
    }

    /// Reads query results through the cache: a hit answers; a miss runs `load` once for all
    /// concurrent callers of the same query (single flight) and fills the cache. Says whether
    /// the cache answered.
    pub(crate) async fn get_page<F, Fut>(
        &self,
        schema: &TableSchema,
        key: CacheKey,
        load: F,
    ) -> Result<((Vec<Item>, Option<Item>), bool)>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Vec<Item>, Option<Item>)>>,
    {
        let token = match self.lookup_page(schema, &key).await {
            Found::Hit(page) => return Ok((page, true)),
            Found::Miss(token) => token,
        };
        let loaded = self
            .single_flight(&key, || async {
                let (items, resume) = load().await?;
                if let Some(token) = &token {
                    self.fill_page(schema, &key, &items, resume.as_ref(), token)
                        .await;
                }
                Ok(Cached::Page(items, resume))
            })
            .await?;
        match loaded {
            Cached::Page(items, resume) => Ok(((items, resume), false)),
            _ => Ok(((Vec::new(), None), false)),
        }
    }

    /// Runs `load` once for all concurrent callers of the entry `key`; a read that starts
    /// after a write (a later epoch) never joins a load that started before it.
    async fn single_flight<F, Fut>(&self, key: &CacheKey, load: F) -> Result<Cached>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached>>,
    {
        let flight_key = (key.entry.clone(), self.epoch.load(Ordering::Acquire));
        let cell: Flight = self
            .inflight
            .lock()
            .expect("inflight map")
            .entry(flight_key.clone())
            .or_default()
            .clone();
        // Whoever leaves last (done, failed or dropped) removes the flight from the map.
        let guard = FlightGuard {
            map: &self.inflight,
            key: flight_key,
            cell,
        };
        // Boxed: the load is a whole read path, too large to nest in the caller's future.
        guard
            .cell
            .get_or_try_init(|| Box::pin(load()))
            .await
            .cloned()
    }

    /// After a write on `table` of the items with these key texts ([`keys::key_text`]): drop
    /// their entries, the query results of their partitions, and the table's other query
    /// results (index queries and scans, which any write may change), in every layer, before
    /// the write returns.
    pub(crate) async fn invalidate_keys<'k>(
        &self,
        table: &str,
        texts: impl Iterator<Item = &'k str>,
    ) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut scopes = Vec::new();
        for text in texts {
            scopes.push(keys::item_scope(&self.namespace, table, text));
            if let Some(partition) = keys::partition_scope_of(&self.namespace, table, text) {
                if !scopes.contains(&partition) {
                    scopes.push(partition);
                }
            }
        }
        scopes.push(keys::table_scope(&self.namespace, table));
        for scope in &scopes {
            if let Err(e) = self.layer.invalidate(scope).await {
                tracing::warn!(error = %e, "cache invalidation failed");
            }
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The key of a query result entry: scoped to its partition when it reads one partition
    /// of the table's own key (`partition`: that key's value), else to the table.
    pub(crate) fn query_key(
        &self,
        table: &str,
        schema: &TableSchema,
        query: &str,
        partition: Option<&AttributeValue>,
    ) -> CacheKey {
        let scope = match partition {
            Some(value) => {
                let text = crate::key::encode_key_values(value, None);
                keys::partition_scope(&self.namespace, table, &text)
            }
            None => keys::table_scope(&self.namespace, table),
        };
        CacheKey {
            entry: keys::query_entry(&self.namespace, table, schema, query),
            scope,
        }
    }

    /// A cached query result: raw items and the key to resume after.
    async fn lookup_page(
        &self,
        schema: &TableSchema,
        key: &CacheKey,
    ) -> Found<(Vec<Item>, Option<Item>)> {
        tokio::task::coop::consume_budget().await;
        match self.layer.get(key).await {
            Ok(Lookup::Hit(entry)) => {
                match codec::decode(schema.fingerprint, &key.entry, entry.bytes()) {
                    Some(Cached::Page(items, resume)) => Found::Hit((items, resume)),
                    _ => {
                        self.corrupt_entry(key, "not a query entry of this format and schema")
                            .await
                    }
                }
            }
            Ok(Lookup::Miss(token)) => Found::Miss(Some(token)),
            Err(e) => {
                tracing::warn!(error = %e, "cache lookup failed; reading DynamoDB");
                Found::Miss(None)
            }
        }
    }

    /// Stores a query result.
    async fn fill_page(
        &self,
        schema: &TableSchema,
        key: &CacheKey,
        items: &[Item],
        resume: Option<&Item>,
        token: &FillToken,
    ) {
        let value = Cached::Page(items.to_vec(), resume.cloned());
        let entry = CacheEntry::from_bytes(codec::encode(schema.fingerprint, &key.entry, &value));
        if let Err(e) = self
            .layer
            .put(key, entry, self.config.query_ttl, token)
            .await
        {
            tracing::warn!(error = %e, "cache fill failed");
        }
    }
}
