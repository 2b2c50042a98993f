//! [`RedisLayer`]: a shared L2 on Redis or Redis Cluster (features `redis`, `redis-cluster`),
//! with pub/sub invalidation and a heartbeat that bounds staleness across instances.
//!
//! # Layout in Redis
//!
//! Under the key prefix (`dynamite:` by default), for a scope whose hash is `h` (16 hex digits):
//! - `{h}e:<entry>`: 8 bytes of the scope generation the value was filled at, then the value
//!   (which carries its own key and checksum, see `codec.rs`);
//! - `{h}g:<scope>`: the scope's generation: a random number when first needed, incremented
//!   by every invalidation.
//!
//! The `{h}` hash tag puts an item's entries and its generation in one Redis Cluster slot, so
//! every command below touches one slot. A lookup is one script that reads the entry, its TTL
//! and the generation (creating it, or repairing it when it holds garbage); an entry counts only
//! at its scope's current generation. A fill is a script that stores the value only if the
//! generation is still the one seen at the miss, so a slow reader never puts back data a writer
//! already invalidated. An invalidation is a script that moves the generation (repairing it
//! when needed) and publishes the scope on `<prefix>{invalidate}`, in one round trip (on a
//! cluster, the publish is a second command, see `write_invalidation`). Random
//! starting generations mean a Redis restart (which forgets every generation) can never make an
//! old fill token match again.
//!
//! # Faults
//!
//! Faults never fail a request: every command is bounded by a timeout, failures are counted and
//! logged, and after one the request path skips the layer (no network) until a retry interval
//! has passed. Invalidations that could not be written are kept, one per scope, and written
//! by a background task as soon as Redis answers, before this instance serves anything from
//! Redis again. Past `max_pending` scopes they are forgotten and, instead, every generation
//! under the prefix is moved and every instance told to clear its L1.
//!
//! # Staleness across instances
//!
//! The same background task publishes a heartbeat on `<prefix>{invalidate}alive:<instance>`
//! every fifth of the staleness bound; the subscription hears it back after every invalidation
//! published before it (on a cluster, both channels hash to one slot, so they are published
//! through one node and relayed in order). See [the module docs](super#staleness-across-processes) for the bound this gives.

mod connection;
mod scripts;
mod shared;
mod tasks;

use self::connection::Connection;
use self::scripts::{fresh_generation, glob_escape, Scripts};
use self::shared::{Health, Shared};
use self::tasks::{beat, listen};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use tokio::sync::broadcast;

use super::{
    CacheEntry, CacheError, CacheKey, CacheLayer, Contact, FillToken, Heartbeat, LayerStats,
    Lookup, RemoteEvent, StatsCounter,
};

/// Builds a [`RedisLayer`].
#[must_use]
#[derive(Debug, Clone)]
pub struct RedisLayerBuilder {
    urls: Vec<String>,
    cluster: bool,
    prefix: String,
    timeout: Duration,
    retry_interval: Duration,
    generation_ttl: Duration,
    staleness_bound: Duration,
    recovery_grace: Duration,
    max_pending: usize,
}

impl RedisLayerBuilder {
    /// Prefix of every key and of the pub/sub channels (`dynamite:` by default). It may not
    /// contain `{` or `}` (Redis Cluster hash tags).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bound on every Redis command (50 ms by default); slower answers count as faults.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// After a fault, how long requests skip the layer before trying Redis again (1 s). The
    /// background task keeps trying every heartbeat meanwhile.
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// How long scope generations are kept (1 day); must exceed every entry's time to live.
    pub fn generation_ttl(mut self, ttl: Duration) -> Self {
        self.generation_ttl = ttl;
        self
    }

    /// The staleness bound across instances (250 ms by default, at least 10 ms): how long
    /// after a write acknowledged by another instance this instance may still serve the old
    /// value from its cache. A heartbeat goes through Redis every fifth of it; the recovery
    /// grace after an outage is [`recovery_grace`](Self::recovery_grace). See the [`cache`](super) module docs.
    pub fn staleness_bound(mut self, bound: Duration) -> Self {
        self.staleness_bound = bound;
        self
    }

    /// After an outage (heartbeats resume from a gap), how long the layer and the layers above
    /// it serve nothing (2 s): the time other instances have to write the invalidations they
    /// held back. The staleness bound holds for writers that reach Redis within it; a longer
    /// grace only costs hits after an outage.
    pub fn recovery_grace(mut self, grace: Duration) -> Self {
        self.recovery_grace = grace;
        self
    }

    /// Most invalidations kept, one per scope, while Redis cannot be written (10,000). Past
    /// it, every generation under the prefix is moved when Redis answers again.
    pub fn max_pending(mut self, scopes: usize) -> Self {
        self.max_pending = scopes;
        self
    }

    fn config_error(reason: &'static str) -> CacheError {
        CacheError::Unavailable {
            layer: "redis".into(),
            reason,
        }
    }

    fn check(&self) -> Result<(), CacheError> {
        if self.prefix.contains(['{', '}']) {
            return Err(Self::config_error(
                "the key prefix may not contain `{` or `}` (Redis Cluster hash tags)",
            ));
        }
        if self.urls.is_empty() {
            return Err(Self::config_error("no Redis URL given"));
        }
        if self.staleness_bound < Duration::from_millis(10) {
            return Err(Self::config_error(
                "the staleness bound must be at least 10 ms",
            ));
        }
        if self.max_pending == 0 {
            return Err(Self::config_error("max_pending must be at least 1"));
        }
        Ok(())
    }

    async fn open(&self) -> Result<Connection, CacheError> {
        let backend = |e: redis::RedisError| CacheError::Backend {
            layer: "redis".into(),
            source: Box::new(e),
        };
        let connect_timeout = self.timeout.max(Duration::from_millis(200));
        let wait = self.timeout.max(Duration::from_secs(2));
        let timed_out = || CacheError::Timeout {
            layer: "redis".into(),
            after: wait,
        };
        if self.cluster {
            #[cfg(feature = "redis-cluster")]
            {
                let client = redis::cluster::ClusterClient::builder(self.urls.clone())
                    .connection_timeout(connect_timeout)
                    .response_timeout(self.timeout)
                    .retries(1)
                    .build()
                    .map_err(backend)?;
                let conn = tokio::time::timeout(wait, client.get_async_connection())
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(backend)?;
                return Ok(Connection::Cluster(conn));
            }
            #[cfg(not(feature = "redis-cluster"))]
            return Err(Self::config_error(
                "Redis Cluster needs the `redis-cluster` feature",
            ));
        }
        let client = redis::Client::open(self.urls[0].as_str()).map_err(backend)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(wait, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| timed_out())?
            .map_err(backend)?;
        Ok(Connection::Single(conn))
    }

    /// Connects, subscribes and waits (up to 2 s) until the layer is current: its heartbeat
    /// came back and the recovery grace passed. Fails if Redis cannot be reached now or the
    /// settings are invalid; later outages are handled without failing requests.
    pub async fn connect(self) -> Result<RedisLayer, CacheError> {
        self.check()?;
        let conn = self.open().await?;
        let heartbeat = Heartbeat::new(self.staleness_bound, self.recovery_grace)
            .with_startup_grace(self.staleness_bound * 4 / 5);
        let (tx, _) = broadcast::channel(4096);
        let instance = format!("{:016x}", fastrand::u64(..));
        let shared = Arc::new(Shared {
            conn,
            // One hash tag: on a cluster both channels are published through the same node,
            // so a heartbeat is relayed after every invalidation published before it.
            channel: format!("{}{{invalidate}}", self.prefix),
            alive_channel: format!("{}{{invalidate}}alive:{instance}", self.prefix),
            prefix: self.prefix,
            instance,
            timeout: self.timeout,
            retry_interval: self.retry_interval,
            generation_ttl: self.generation_ttl,
            max_pending: self.max_pending,
            stats: StatsCounter::named("redis"),
            tx,
            contact: Contact::new(heartbeat),
            sent: Mutex::new(VecDeque::new()),
            health: Mutex::new(Health::default()),
            healthy: AtomicBool::new(true),
            scripts: Scripts::new(),
        });
        let (subscribed, on_subscribed) = tokio::sync::oneshot::channel();
        let listener = tokio::spawn(listen(shared.clone(), self.urls.clone(), subscribed));
        let beat = tokio::spawn(beat(shared.clone(), self.staleness_bound / 5));
        let layer = RedisLayer {
            shared,
            tasks: [listener, beat],
        };
        // Invalidations published before the subscription would be missed: wait for it, and
        // for the layer to be current, so a new instance serves from the start.
        let wait = Duration::from_secs(2).max(heartbeat.startup_grace * 3);
        let ready = async {
            let _ = on_subscribed.await;
            while !layer.shared.contact.is_current(Instant::now()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        if tokio::time::timeout(wait, ready).await.is_err() {
            tracing::warn!("redis layer not current after {wait:?}: it serves nothing until its heartbeat comes back");
        }
        Ok(layer)
    }
}

/// The shared cache layer on Redis or Redis Cluster: entries checked against per-scope
/// generations, fills that only land if the generation is unchanged, pub/sub invalidation, a
/// heartbeat that bounds staleness across instances, and fault tolerance (see `cache/redis/mod.rs`
/// for the layout in Redis).
///
/// ```no_run
/// # async fn demo() -> Result<(), dynamite::cache::CacheError> {
/// use dynamite::cache::{MokaLayer, RedisLayer, Tiered};
/// let cache = Tiered::new()
///     .layer(MokaLayer::new(64 << 20))
///     .layer(RedisLayer::builder("redis://127.0.0.1:6379").prefix("myapp:").connect().await?);
/// # Ok(()) }
/// ```
pub struct RedisLayer {
    shared: Arc<Shared>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for RedisLayer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for RedisLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLayer")
            .field("prefix", &self.shared.prefix)
            .field("healthy", &self.is_healthy())
            .field("current", &self.is_current())
            .finish_non_exhaustive()
    }
}

impl RedisLayer {
    /// A builder for the server at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisLayerBuilder {
        RedisLayerBuilder {
            urls: vec![url.into()],
            cluster: false,
            prefix: "dynamite:".into(),
            timeout: Duration::from_millis(50),
            retry_interval: Duration::from_secs(1),
            generation_ttl: Duration::from_secs(24 * 3600),
            staleness_bound: Duration::from_millis(250),
            recovery_grace: Duration::from_secs(2),
            max_pending: 10_000,
        }
    }

    /// A builder for a Redis Cluster (ElastiCache or Valkey in cluster mode, serverless
    /// included), from one or more of its nodes (feature `redis-cluster`). Invalidations are
    /// published with classic pub/sub, which a cluster delivers to every node; the subscription
    /// goes to the first node that answers.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), dynamite::cache::CacheError> {
    /// use dynamite::cache::RedisLayer;
    /// let l2 = RedisLayer::cluster(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis-cluster")]
    pub fn cluster<I, S>(urls: I) -> RedisLayerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        RedisLayerBuilder {
            cluster: true,
            ..Self::builder(String::new())
        }
        .urls(urls)
    }

    /// Connects to one server with the default settings.
    pub async fn connect(url: impl Into<String>) -> Result<RedisLayer, CacheError> {
        Self::builder(url).connect().await
    }

    /// Whether the last command succeeded.
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// Whether the layer serves now: its heartbeat came back within the staleness bound, and
    /// not during a recovery grace.
    pub fn is_current(&self) -> bool {
        self.shared.contact.is_current(Instant::now())
    }

    /// How many invalidations are held back (not yet written to Redis); after an overflow,
    /// `max_pending + 1` until every generation has moved.
    pub fn pending_invalidations(&self) -> usize {
        let health = self.shared.health.lock().expect("health");
        if health.overflowed {
            self.shared.max_pending + 1
        } else {
            health.pending.len()
        }
    }
}

impl RedisLayerBuilder {
    #[cfg(feature = "redis-cluster")]
    fn urls(mut self, urls: Vec<String>) -> Self {
        self.urls = urls;
        self
    }
}

#[async_trait]
impl CacheLayer for RedisLayer {
    fn name(&self) -> String {
        "redis".to_owned()
    }

    async fn get(&self, key: &CacheKey) -> Result<Lookup, CacheError> {
        let shared = &*self.shared;
        if !shared.contact.is_current(Instant::now()) {
            shared.stats.skipped();
            return Err(CacheError::Unavailable {
                layer: "redis".into(),
                reason: "out of contact: its heartbeat is overdue or recovering",
            });
        }
        shared.ready().await?;
        let mut conn = shared.conn.clone();
        let mut invocation = shared.scripts.lookup.prepare_invoke();
        invocation
            .key(shared.entry_key(key))
            .key(shared.generation_key(&key.scope))
            .arg(fresh_generation())
            .arg(shared.generation_ttl.as_millis().max(1) as u64);
        let (generation, value, ttl_ms, repaired): (String, Option<Vec<u8>>, i64, i64) = shared
            .run("get", invocation.invoke_async(&mut conn))
            .await?;
        if repaired == 1 {
            shared.stats.repaired();
            tracing::warn!(scope = %key.scope, "repaired a damaged redis generation key");
        }
        let Ok(generation) = generation.parse::<u64>() else {
            shared.stats.corrupt();
            return Err(CacheError::Unavailable {
                layer: "redis".into(),
                reason: "unreadable generation",
            });
        };
        match value {
            Some(bytes) if bytes.len() >= 8 => {
                let stamp = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
                if stamp == generation {
                    shared.stats.hit();
                    let entry = CacheEntry::from_bytes(bytes[8..].to_vec());
                    Ok(Lookup::Hit(match u64::try_from(ttl_ms) {
                        Ok(ms) => entry.expiring_in(Duration::from_millis(ms)),
                        Err(_) => entry,
                    }))
                } else {
                    shared.stats.miss();
                    Ok(Lookup::Miss(FillToken::new(generation)))
                }
            }
            Some(_) => {
                shared.stats.corrupt();
                shared.stats.miss();
                Ok(Lookup::Miss(FillToken::new(generation)))
            }
            None => {
                shared.stats.miss();
                Ok(Lookup::Miss(FillToken::new(generation)))
            }
        }
    }

    async fn put(
        &self,
        key: &CacheKey,
        entry: CacheEntry,
        ttl: Duration,
        token: &FillToken,
    ) -> Result<(), CacheError> {
        let shared = &*self.shared;
        shared.ready().await?;
        let mut value = Vec::with_capacity(entry.bytes().len() + 8);
        value.extend_from_slice(&token.generation().to_le_bytes());
        value.extend_from_slice(entry.bytes());
        let mut conn = shared.conn.clone();
        let mut invocation = shared.scripts.fill.prepare_invoke();
        invocation
            .key(shared.entry_key(key))
            .key(shared.generation_key(&key.scope))
            .arg(token.generation().to_string())
            .arg(value)
            .arg(ttl.as_millis().max(1) as u64);
        shared
            .run("put", invocation.invoke_async::<i64>(&mut conn))
            .await
            .map(drop)
    }

    async fn invalidate(&self, scope: &str) -> Result<(), CacheError> {
        let shared = &*self.shared;
        // Always tried, even in the retry interval after a fault: on a cluster this scope's
        // node may answer while another's does not, and an instance that reaches it must not
        // serve what this write replaced. (Held-back ones are the background task's.) During an
        // outage a write pays at most the command timeout for it.
        match shared.write_invalidation(scope).await {
            Ok(()) => {
                shared.stats.invalidation();
                Ok(())
            }
            Err(e) => {
                shared.hold(scope);
                Err(e)
            }
        }
    }

    async fn invalidate_local(&self, _scope: &str) -> Result<(), CacheError> {
        // Redis is shared: the process that wrote already invalidated it.
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        let shared = &*self.shared;
        shared.ready().await?;
        // Entries only: generations stay, so a fill token taken before the clear can never
        // match a reset generation.
        let keys = shared
            .scan(&format!("{}{{*}}e:*", glob_escape(&shared.prefix)))
            .await?;
        let mut conn = shared.conn.clone();
        for chunk in keys.chunks(500) {
            shared
                .run(
                    "clear",
                    redis::cmd("DEL").arg(chunk).query_async::<()>(&mut conn),
                )
                .await?;
        }
        let _ = shared.publish_clear().await;
        Ok(())
    }

    fn stats(&self) -> Vec<(String, LayerStats)> {
        let mut stats = self.shared.stats.snapshot();
        stats.held_back = self.pending_invalidations() as u64;
        vec![(self.name(), stats)]
    }

    fn remote_events(&self) -> Option<broadcast::Receiver<RemoteEvent>> {
        Some(self.shared.tx.subscribe())
    }

    fn contact(&self) -> Option<&Contact> {
        Some(&self.shared.contact)
    }
}
