//! [`Client`]: the entry point, wrapping an `aws_sdk_dynamodb::Client`.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

use crate::advice::{Advisor, IndexAdvice};
use crate::batch::Coalescer;
use crate::cache::stack::ClientCache;
use crate::cache::{CacheConfig, CacheLayer, LayerStats};
use crate::retry::RetryTokens;
use crate::stats::{Registry, Stats};
use crate::{Entity, HttpSettings, Key, RetryBudget, RetryPolicy};

/// The dynamite client: an SDK client plus dynamite's settings.
///
/// Cheap to clone (one `Arc`), `Send + Sync`: build one at start-up and share it across tasks.
///
/// ```no_run
/// # async fn demo() -> dynamite::Result<()> {
/// // Region, credentials and endpoint from the environment (AWS_ENDPOINT_URL_DYNAMODB works).
/// let db = dynamite::Client::from_env().await;
///
/// // Or from an SDK client you already have, with a table-name prefix per stage.
/// let sdk = aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await);
/// let staging = dynamite::Client::builder(sdk).table_prefix("staging-").build();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    sdk: aws_sdk_dynamodb::Client,
    table_prefix: String,
    cursor_key: Option<Vec<u8>>,
    retry: RetryPolicy,
    retry_tokens: RetryTokens,
    idempotent_writes: bool,
    /// Whether batch requests move their items into the SDK's input and read a failed
    /// attempt's body back to resend it (`crate::replay`), or keep a copy: a copy when the
    /// SDK config has interceptors of its own, which may rewrite items before serialization
    /// (client-side encryption, say) and must not see their own output again.
    batch_moves: bool,
    cache: Option<Arc<ClientCache>>,
    coalescing: Coalescing,
    coalescer: Coalescer,
    /// A deadline for every call ([`HttpSettings::operation_timeout`]).
    operation_timeout: Option<std::time::Duration>,
    /// Requests at least this slow are logged ([`ClientBuilder::slow_operation_log`]).
    slow_operation_threshold: Option<std::time::Duration>,
    /// What [`Client::stats`] reports.
    stats: Registry,
    /// What [`Client::index_advice`] reports.
    advisor: Advisor,
}

/// Which gets are coalesced, and how ([`ClientBuilder::coalesce_gets`]).
#[derive(Debug, Clone)]
struct Coalescing {
    /// The client-wide choice.
    all: bool,
    /// Per-entity choices, overriding `all`.
    entities: HashMap<TypeId, bool>,
    /// Requests of one group in flight before further gets wait for a batch.
    max_in_flight: usize,
}

impl Default for Coalescing {
    fn default() -> Self {
        Coalescing {
            all: false,
            entities: HashMap::new(),
            max_in_flight: DEFAULT_COALESCE_IN_FLIGHT,
        }
    }
}

/// The default of [`ClientBuilder::coalesce_max_in_flight`].
const DEFAULT_COALESCE_IN_FLIGHT: usize = 4;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("table_prefix", &self.inner.table_prefix)
            .field("encrypted_cursors", &self.inner.cursor_key.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client over `sdk` with default settings.
    pub fn new(sdk: aws_sdk_dynamodb::Client) -> Self {
        Self::builder(sdk).build()
    }

    /// A builder over `sdk`.
    pub fn builder(sdk: aws_sdk_dynamodb::Client) -> ClientBuilder {
        ClientBuilder {
            sdk,
            table_prefix: String::new(),
            cursor_key: None,
            retry: RetryPolicy::standard(),
            retry_budget: RetryBudget::standard(),
            idempotent_writes: false,
            keep_sdk_retries: false,
            cache: None,
            cache_config: CacheConfig::default(),
            cache_namespace: None,
            coalescing: Coalescing::default(),
            http: HttpSettings::new(),
            slow_operation_threshold: None,
        }
    }

    /// A client configured from the environment, as `aws_config::load_defaults` reads it
    /// (region, credentials, and the `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL`
    /// endpoint override).
    pub async fn from_env() -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(aws_sdk_dynamodb::Client::new(&config))
    }

    /// The underlying SDK client, for anything dynamite does not cover.
    pub fn sdk(&self) -> &aws_sdk_dynamodb::Client {
        &self.inner.sdk
    }

    /// The table-name prefix (empty by default).
    pub fn table_prefix(&self) -> &str {
        &self.inner.table_prefix
    }

    /// The retry policy of this client (per-call `.retry(..)` overrides it).
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// Tokens left in the client's [`RetryBudget`] (`None` when unlimited).
    pub fn retry_tokens_available(&self) -> Option<u32> {
        self.inner.retry_tokens.available()
    }

    /// Whether gets of `E` are coalesced unless a call says otherwise
    /// ([`ClientBuilder::coalesce_gets`], [`ClientBuilder::coalesce_gets_of`]).
    pub fn coalesces_gets_of<E: Entity>(&self) -> bool {
        let coalescing = &self.inner.coalescing;
        if coalescing.entities.is_empty() {
            return coalescing.all;
        }
        coalescing
            .entities
            .get(&TypeId::of::<E>())
            .copied()
            .unwrap_or(coalescing.all)
    }

    /// The deadline of every call ([`HttpSettings::operation_timeout`]).
    pub(crate) fn operation_timeout(&self) -> Option<std::time::Duration> {
        self.inner.operation_timeout
    }

    /// Requests at least this slow are logged ([`ClientBuilder::slow_operation_log`]).
    pub(crate) fn slow_operation_threshold(&self) -> Option<std::time::Duration> {
        self.inner.slow_operation_threshold
    }

    /// Figures of every operation since the client was built (or [reset](Self::reset_stats)),
    /// per operation, table and entity: requests, errors, retries, throttles, latency
    /// quantiles, consumed capacity, items read and written, and cache hits. Recorded in
    /// process at a cost of a few atomic additions per request; clones of a client share them.
    ///
    /// ```
    /// # async fn demo(db: &dynamite::Client) {
    /// let stats = db.stats();
    /// println!("{stats}");
    /// println!("{} capacity units", stats.total_consumed_capacity());
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// Sets every figure of [`stats`](Self::stats) back to zero (after a warm-up, say).
    pub fn reset_stats(&self) {
        self.inner.stats.reset();
    }

    /// Global secondary indexes that would serve the finds this client could not serve by
    /// key (refused with [`Error::ScanRequired`](crate::Error::ScanRequired), scans, queries
    /// whose filter dropped items), best first: the declaration to add, how often such finds
    /// were seen, and the read units the index would have saved. See [`IndexAdvice`].
    ///
    /// ```
    /// # fn demo(db: &dynamite::Client) {
    /// for advice in db.index_advice() {
    ///     println!("{advice}");
    /// }
    /// # }
    /// ```
    pub fn index_advice(&self) -> Vec<IndexAdvice> {
        self.inner.advisor.advice()
    }

    pub(crate) fn advisor(&self) -> &Advisor {
        &self.inner.advisor
    }

    pub(crate) fn stats_registry(&self) -> &Registry {
        &self.inner.stats
    }

    pub(crate) fn coalescer(&self) -> &Coalescer {
        &self.inner.coalescer
    }

    pub(crate) fn retry_tokens(&self) -> &RetryTokens {
        &self.inner.retry_tokens
    }

    /// Whether batch requests move their items into the request (see `Inner::batch_moves`).
    pub(crate) fn batch_moves(&self) -> bool {
        self.inner.batch_moves
    }

    /// `true` when single-item writes that could otherwise end in
    /// [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown) are sent in idempotent mode
    /// (see [`ClientBuilder::idempotent_writes`]).
    pub fn idempotent_writes(&self) -> bool {
        self.inner.idempotent_writes
    }

    /// A batch read across several entities: `db.batch_get().add::<User>(keys).add::<Order>(keys)`.
    /// It bypasses the item cache (see [`MultiBatchGet`](crate::ops::MultiBatchGet)).
    pub fn batch_get(&self) -> crate::ops::MultiBatchGet<'_> {
        crate::ops::MultiBatchGet::new(self)
    }

    /// A batch write across several entities: `db.batch_write().put(&user).delete(Order::key(..))`.
    pub fn batch_write(&self) -> crate::ops::BatchWrite<'_> {
        crate::ops::BatchWrite::new(self)
    }

    /// A write transaction across any entities (up to 100 operations).
    pub fn transact_write(&self) -> crate::ops::TransactWrite<'_> {
        crate::ops::TransactWrite::new(self)
    }

    /// A read transaction across any entities (up to 100 items).
    pub fn transact_get(&self) -> crate::ops::TransactGet<'_> {
        crate::ops::TransactGet::new(self)
    }

    /// The namespace this client's cache entries live in (`None` without a cache): 16 hex
    /// digits, a hash of the region and endpoint, or of
    /// [`ClientBuilder::cache_namespace`]. Every cache key starts with it.
    pub fn cache_namespace(&self) -> Option<&str> {
        self.inner.cache.as_deref().map(|c| c.namespace())
    }

    /// The cache, when the client has one.
    pub(crate) fn cache(&self) -> Option<&ClientCache> {
        self.inner.cache.as_deref()
    }

    /// Hits, misses, evictions and faults of each cache layer (top first), and the number of
    /// corrupt entries read (treated as misses).
    pub fn cache_stats(&self) -> CacheStats {
        match self.cache() {
            Some(cache) => CacheStats {
                layers: cache.layer().stats(),
                corrupt_entries: cache.corrupt_entries(),
            },
            None => CacheStats::default(),
        }
    }

    /// Drops every cache entry, in every layer.
    pub async fn clear_cache(&self) {
        if let Some(cache) = self.cache() {
            if let Err(e) = cache.layer().clear().await {
                tracing::warn!(error = %e, "cache clear failed");
            }
        }
    }

    /// Loads the items with `keys` into the cache ahead of traffic (one batch read for the
    /// keys not cached yet); how many were loaded or already cached.
    pub async fn warm<E: Entity>(
        &self,
        keys: impl IntoIterator<Item = Key<E>>,
    ) -> crate::Result<usize> {
        let keys: Vec<Key<E>> = keys.into_iter().collect();
        let out = E::batch_get(self, keys).send().await?;
        Ok(out.items.len())
    }

    /// The secret cursors are encrypted under, if any (the encryption key is derived from it).
    pub(crate) fn cursor_key(&self) -> Option<&[u8]> {
        self.inner.cursor_key.as_deref()
    }

    /// The full name of table `table`: the prefix followed by the name.
    pub fn table_name(&self, table: &str) -> String {
        self.full_table_name(table).into_owned()
    }

    /// [`table_name`](Self::table_name), borrowed when there is no prefix (no allocation).
    pub(crate) fn full_table_name<'s>(&'s self, table: &'s str) -> std::borrow::Cow<'s, str> {
        if self.inner.table_prefix.is_empty() {
            return std::borrow::Cow::Borrowed(table);
        }
        let mut name = String::with_capacity(self.inner.table_prefix.len() + table.len());
        name.push_str(&self.inner.table_prefix);
        name.push_str(table);
        std::borrow::Cow::Owned(name)
    }
}

/// The endpoint URL an SDK config was given, if any. The SDK stores it in its config layer and
/// offers no getter; its `Debug` output shows it as `EndpointUrl("...")` (a unit test pins
/// this, so an SDK upgrade that changes it fails the tests rather than the cache).
pub(crate) fn endpoint_url(config: &aws_sdk_dynamodb::Config) -> Option<String> {
    let debug = format!("{config:?}");
    let start = debug.find("EndpointUrl(\"")? + "EndpointUrl(\"".len();
    let end = debug[start..].find('"')?;
    Some(debug[start..start + end].to_owned())
}

/// Builds a [`Client`]. No I/O happens until the client is used.
#[must_use]
pub struct ClientBuilder {
    sdk: aws_sdk_dynamodb::Client,
    table_prefix: String,
    cursor_key: Option<Vec<u8>>,
    retry: RetryPolicy,
    retry_budget: RetryBudget,
    idempotent_writes: bool,
    keep_sdk_retries: bool,
    cache: Option<Arc<dyn CacheLayer>>,
    cache_config: CacheConfig,
    cache_namespace: Option<String>,
    coalescing: Coalescing,
    http: HttpSettings,
    slow_operation_threshold: Option<std::time::Duration>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cursor key is a secret: say whether there is one, never what it is.
        f.debug_struct("ClientBuilder")
            .field("table_prefix", &self.table_prefix)
            .field("encrypted_cursors", &self.cursor_key.is_some())
            .field("retry", &self.retry)
            .field("retry_budget", &self.retry_budget)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The retry policy for every request ([`RetryPolicy::standard`] by default).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Idempotent mode for every single-item write that could otherwise end in
    /// [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown) after a lost answer (updates
    /// that add, increment or append, conditional deletes, ...), except writes that return an
    /// item: each is sent as a one-item TransactWriteItems with a client request token, which
    /// DynamoDB applies once however often it is sent, so it can be retried safely. A
    /// transactional write costs twice the write capacity units of a plain one. Off by default;
    /// per call, `.idempotent(true)` / `.idempotent(false)` decides.
    pub fn idempotent_writes(mut self, on: bool) -> Self {
        self.idempotent_writes = on;
        self
    }

    /// The retry budget shared by every request of the client ([`RetryBudget::standard`] by
    /// default: under sustained failures the client stops retrying rather than multiplying
    /// the load it sends). [`RetryBudget::unlimited`] turns it off.
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.retry_budget = budget;
        self
    }

    /// Reads items (and, where opted in, query results) through `cache` — a
    /// [`MokaLayer`](crate::cache::MokaLayer), a `RedisLayer`, a [`Tiered`](crate::cache::Tiered)
    /// stack, or any [`CacheLayer`]. Writes through the client invalidate it.
    pub fn cache(mut self, cache: impl CacheLayer) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// The namespace of this client's cache entries. By default it is derived from the SDK
    /// client's region and endpoint URL, so clients on different DynamoDB endpoints (or in
    /// different regions) sharing one Redis never read each other's entries. Set it when that
    /// is not enough — clients of **different AWS accounts** sharing one Redis with the same
    /// table names must each set their own — or to share entries between clients that reach
    /// the same database through different endpoints.
    pub fn cache_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.cache_namespace = Some(namespace.into());
        self
    }

    /// Time-to-live settings of the cache.
    pub fn cache_config(mut self, config: CacheConfig) -> Self {
        self.cache_config = config;
        self
    }

    /// Coalesce gets: gets of one table (with the same projection and read consistency) that
    /// are issued while a request of theirs is in flight go together as one BatchGetItem, so a
    /// busy service pays the per-request cost (signing, serialization, HTTP) once per batch
    /// instead of once per get. Off by default; [`coalesce_gets_of`](Self::coalesce_gets_of)
    /// decides per entity and [`GetItem::coalesce`](crate::ops::GetItem::coalesce) per call.
    ///
    /// No get is delayed: a get of an idle table is sent at once as a GetItem; gets that arrive
    /// while it is in flight go as one BatchGetItem (up to 100 distinct keys) when it ends.
    /// Each caller gets what a GetItem would give it, its own item or `None`, or the failure
    /// of the request it was in; a key DynamoDB leaves unprocessed through every retry fails
    /// only its own get, with [`Error::UnprocessedKeys`](crate::Error::UnprocessedKeys).
    /// A get answered by the cache never joins a batch, and a get with its own
    /// [`retry`](crate::ops::GetItem::retry) policy is always sent alone.
    ///
    /// The role's IAM policy must allow `dynamodb:BatchGetItem` on the table, besides
    /// `dynamodb:GetItem`. See the README's "Request coalescing" for the figures.
    ///
    /// ```no_run
    /// # async fn demo(sdk: aws_sdk_dynamodb::Client) {
    /// let db = dynamite::Client::builder(sdk).coalesce_gets(true).build();
    /// # }
    /// ```
    pub fn coalesce_gets(mut self, on: bool) -> Self {
        self.coalescing.all = on;
        self
    }

    /// Coalesce gets of `E` (`on`), or never (`!on`), whatever
    /// [`coalesce_gets`](Self::coalesce_gets) says for the rest.
    pub fn coalesce_gets_of<E: Entity>(mut self, on: bool) -> Self {
        self.coalescing.entities.insert(TypeId::of::<E>(), on);
        self
    }

    /// How many requests of one group of coalesced gets (table, projection, consistency) may be
    /// in flight before further gets wait for a batch: gets are sent alone, at once, while
    /// fewer are in flight. 4 by default. Fewer puts more gets in each request (less client
    /// CPU per get) but makes a get wait longer for the request ahead of it when each round
    /// trip is long; more does the opposite. See the README's "Request coalescing" for both,
    /// measured.
    pub fn coalesce_max_in_flight(mut self, requests: usize) -> Self {
        self.coalescing.max_in_flight = requests.max(1);
        self
    }

    /// Timeouts and connection-pool settings ([`HttpSettings`]; see [`crate::http`] for what
    /// each bounds and suggested values). Unset ones keep the SDK client's.
    ///
    /// ```no_run
    /// # async fn demo(sdk: aws_sdk_dynamodb::Client) {
    /// use std::time::Duration;
    /// use dynamite::HttpSettings;
    ///
    /// let db = dynamite::Client::builder(sdk)
    ///     .http(
    ///         HttpSettings::new()
    ///             .connect_timeout(Duration::from_secs(1))
    ///             .attempt_timeout(Duration::from_millis(1500))
    ///             .operation_timeout(Duration::from_secs(5)),
    ///     )
    ///     .build();
    /// # }
    /// ```
    pub fn http(mut self, settings: HttpSettings) -> Self {
        self.http = settings;
        self
    }

    /// Log every request to DynamoDB that takes `threshold` or longer, retries included: a
    /// `tracing` warning (target `dynamite::slow`) with
    /// its operation, table, entity, time, attempts, consumed capacity, a find's plan (as
    /// [`explain`](crate::ops::Find::explain) gives it) and its error, if it failed. Off by
    /// default; timing a request costs two clock reads.
    ///
    /// ```no_run
    /// # async fn demo(sdk: aws_sdk_dynamodb::Client) {
    /// let db = dynamite::Client::builder(sdk)
    ///     .slow_operation_log(std::time::Duration::from_millis(100))
    ///     .build();
    /// # }
    /// ```
    pub fn slow_operation_log(mut self, threshold: std::time::Duration) -> Self {
        self.slow_operation_threshold = Some(threshold);
        self
    }

    /// Keep the SDK client's own retry loop. By default `build()` disables it so that
    /// dynamite's policy is the only one and attempts never multiply (see [`crate::retry`]).
    pub fn keep_sdk_retries(mut self) -> Self {
        self.keep_sdk_retries = true;
        self
    }

    /// Prefix every table name with `prefix` (e.g. `"dev-"`), so one code base serves several
    /// stages in one account.
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// Encrypt and authenticate pagination cursors under `key`, so that a cursor handed to an
    /// API client reveals no key value (an email address used as a key stays out of URLs and
    /// access logs) and cannot be altered or forged to read from other keys. Cursors are
    /// encrypted with AES-SIV, a deterministic authenticated encryption, so one position is
    /// still one cursor string; the encryption key is derived from `key` with HKDF-SHA256, so
    /// `key` may have any length. Use at least 32 random bytes, and keep it secret.
    ///
    /// A client with a cursor key refuses plain cursors and cursors made under another key; a
    /// client without one refuses encrypted cursors: each is
    /// [`Error::InvalidCursor`](crate::Error::InvalidCursor) before any request. Changing the key
    /// invalidates every cursor handed out before. See [`crate::page`].
    pub fn cursor_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.cursor_key = Some(key.into());
        self
    }

    /// The client.
    pub fn build(self) -> Client {
        // Every client's SDK config keeps the bodies of batch requests sent again after a
        // failed attempt (`crate::replay`); the SDK's own retries are off unless asked for.
        use aws_smithy_runtime_api::client::interceptors::Intercept as _;
        let batch_moves = self
            .sdk
            .config()
            .interceptors()
            .all(|i| i.name() == crate::replay::KeepSentBody::NAME);
        // An SDK client taken from another dynamite client has the interceptor already.
        let kept = self
            .sdk
            .config()
            .interceptors()
            .any(|i| i.name() == crate::replay::KeepSentBody::NAME);
        let mut config = self.sdk.config().to_builder();
        if !kept {
            config = config.interceptor(crate::replay::KeepSentBody);
        }
        if !self.keep_sdk_retries {
            config = config.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled());
        }
        config = self.http.apply(self.sdk.config(), config);
        let sdk = aws_sdk_dynamodb::Client::from_conf(config.build());
        let cache = self.cache.map(|layer| {
            let identity = match self.cache_namespace {
                Some(namespace) => format!("user|{namespace}"),
                None => format!(
                    "sdk|{}|{}",
                    sdk.config().region().map_or("", |r| r.as_ref()),
                    endpoint_url(sdk.config()).unwrap_or_default()
                ),
            };
            Arc::new(ClientCache::new(layer, self.cache_config, &identity))
        });
        Client {
            inner: Arc::new(Inner {
                sdk,
                retry: self.retry,
                retry_tokens: RetryTokens::new(self.retry_budget),
                idempotent_writes: self.idempotent_writes,
                batch_moves,
                cache,
                table_prefix: self.table_prefix,
                cursor_key: self.cursor_key,
                coalescer: Coalescer::new(self.coalescing.max_in_flight),
                operation_timeout: self.http.operation_timeout,
                slow_operation_threshold: self.slow_operation_threshold,
                coalescing: self.coalescing,
                stats: Registry::default(),
                advisor: Advisor::default(),
            }),
        }
    }
}

/// Cache counters, from [`Client::cache_stats`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Each layer's counters, top first.
    pub layers: Vec<(String, LayerStats)>,
    /// Entries that could not be decoded (treated as misses).
    pub corrupt_entries: u64,
}

impl CacheStats {
    /// The counters of the layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&LayerStats> {
        self.layers.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: Option<&str>) -> aws_sdk_dynamodb::Config {
        let mut builder = aws_sdk_dynamodb::Config::builder()
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest());
        if let Some(endpoint) = endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        builder.build()
    }

    #[test]
    fn the_endpoint_url_is_read_from_the_sdk_config() {
        assert_eq!(
            endpoint_url(&config(Some("http://127.0.0.1:8000"))).as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(endpoint_url(&config(None)), None);
        // Also after the client rebuilds the config (to turn the SDK's retries off).
        let rebuilt = config(Some("http://localhost:4566")).to_builder().build();
        assert_eq!(
            endpoint_url(&rebuilt).as_deref(),
            Some("http://localhost:4566")
        );
    }

    #[derive(Debug)]
    struct Noop;

    impl aws_sdk_dynamodb::config::Intercept for Noop {
        fn name(&self) -> &'static str {
            "Noop"
        }
    }

    #[tokio::test]
    async fn batches_move_their_items_unless_the_sdk_config_has_interceptors() {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .load()
            .await;
        let plain = Client::new(aws_sdk_dynamodb::Client::new(&shared));
        assert!(plain.batch_moves(), "aws-config adds no interceptor");
        // Over a dynamite client's SDK client, which carries dynamite's own interceptor.
        assert!(Client::new(plain.sdk().clone()).batch_moves());
        let intercepted = aws_sdk_dynamodb::config::Builder::from(&shared)
            .interceptor(Noop)
            .build();
        let copying = Client::new(aws_sdk_dynamodb::Client::from_conf(intercepted));
        assert!(!copying.batch_moves(), "a foreign interceptor gets copies");
    }
}
