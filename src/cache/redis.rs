//! [`RedisLayer`]: a shared L2 on Redis (feature `redis`), with pub/sub invalidation.
//!
//! Layout in Redis, under the key prefix (`dynamite:` by default):
//! - `e:<entry>`: 8 bytes of the scope generation the value was filled at, then the value;
//! - `g:<scope>`: the scope's generation, incremented by every invalidation.
//!
//! A lookup reads both in one `MGET`; an entry counts only at its scope's current generation.
//! A fill is a small Lua script that stores the value only if the generation is still the one
//! seen at the miss, so a slow reader can never put back data a writer already invalidated.
//! Invalidations are published on a channel; every other process's `RedisLayer` forwards them
//! to the layers above it (its L1).
//!
//! Faults never fail a request: every command is bounded by a timeout, failures are counted and
//! logged, and after one the layer is skipped (no network) until a retry interval has passed;
//! then it is tried again, and used again as soon as it answers. Invalidations that could not
//! be written are kept and written first when Redis answers again, before any entry is served.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::broadcast;

use super::{
    CacheEntry, CacheError, CacheKey, CacheLayer, FillToken, LayerStats, Lookup, StatsCounter,
};

const FILL_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[2])
if (current or '0') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Builds a [`RedisLayer`].
#[must_use]
#[derive(Debug, Clone)]
pub struct RedisLayerBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    retry_interval: Duration,
    generation_ttl: Duration,
}

impl RedisLayerBuilder {
    /// Prefix of every key and of the pub/sub channel (`dynamite:` by default).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bound on every Redis command (50 ms by default); slower answers count as faults.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// After a fault, how long the layer is skipped before Redis is tried again (1 s).
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// How long scope generations are kept (1 day); must exceed every entry's time to live.
    pub fn generation_ttl(mut self, ttl: Duration) -> Self {
        self.generation_ttl = ttl;
        self
    }

    /// Connects (and subscribes to invalidations). Fails if Redis cannot be reached now;
    /// later outages are handled without failing requests.
    pub async fn connect(self) -> Result<RedisLayer, CacheError> {
        let backend = |e: redis::RedisError| CacheError::Backend {
            layer: "redis".into(),
            source: Box::new(e),
        };
        let client = redis::Client::open(self.url.as_str()).map_err(backend)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            self.timeout.max(Duration::from_secs(2)),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| CacheError::Timeout {
            layer: "redis".into(),
            after: self.timeout.max(Duration::from_secs(2)),
        })?
        .map_err(backend)?;
        let (tx, _) = broadcast::channel(1024);
        let instance = format!("{:016x}", fastrand::u64(..));
        let channel = format!("{}invalidate", self.prefix);
        let (subscribed, on_subscribed) = tokio::sync::oneshot::channel();
        let listener = tokio::spawn(listen(
            client,
            channel.clone(),
            instance.clone(),
            tx.clone(),
            subscribed,
        ));
        // Invalidations published before the subscription would be missed: wait for it.
        let wait = self.timeout.max(Duration::from_secs(2));
        if tokio::time::timeout(wait, on_subscribed).await.is_err() {
            tracing::warn!("redis pub/sub not subscribed after {wait:?}; other instances' invalidations may be missed until it is");
        }
        Ok(RedisLayer {
            conn,
            prefix: self.prefix,
            channel,
            instance,
            timeout: self.timeout,
            retry_interval: self.retry_interval,
            generation_ttl: self.generation_ttl,
            stats: Arc::new(StatsCounter::default()),
            tx,
            health: Mutex::new(Health {
                down_until: None,
                pending: Vec::new(),
                replaying: false,
            }),
            healthy: AtomicBool::new(true),
            listener,
            script: redis::Script::new(FILL_SCRIPT),
        })
    }
}

struct Health {
    /// Skip Redis until then (after a fault).
    down_until: Option<Instant>,
    /// Invalidations not yet written.
    pending: Vec<String>,
    /// Pending invalidations are being written: nobody else uses Redis meanwhile.
    replaying: bool,
}

/// The shared cache layer on Redis: entries checked against per-scope generations, fills that
/// only land if the generation is unchanged, pub/sub invalidation, and fault tolerance (see
/// `cache/redis.rs` for the layout in Redis).
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
    conn: ConnectionManager,
    prefix: String,
    channel: String,
    instance: String,
    timeout: Duration,
    retry_interval: Duration,
    generation_ttl: Duration,
    stats: Arc<StatsCounter>,
    tx: broadcast::Sender<String>,
    health: Mutex<Health>,
    healthy: AtomicBool,
    listener: tokio::task::JoinHandle<()>,
    script: redis::Script,
}

impl Drop for RedisLayer {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for RedisLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLayer")
            .field("prefix", &self.prefix)
            .field("healthy", &self.healthy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Forwards invalidations published by other instances; reconnects when the connection drops,
/// and then asks the layers above to drop everything (messages may have been missed).
async fn listen(
    client: redis::Client,
    channel: String,
    instance: String,
    tx: broadcast::Sender<String>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut first = true;
    let mut subscribed = Some(subscribed);
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await {
            if pubsub.subscribe(&channel).await.is_ok() {
                if !first {
                    let _ = tx.send("*".to_owned());
                }
                first = false;
                if let Some(s) = subscribed.take() {
                    let _ = s.send(());
                }
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    if let Some((from, scope)) = payload.split_once('|') {
                        if from != instance {
                            let _ = tx.send(scope.to_owned());
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl RedisLayer {
    /// A builder for the server at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisLayerBuilder {
        RedisLayerBuilder {
            url: url.into(),
            prefix: "dynamite:".into(),
            timeout: Duration::from_millis(50),
            retry_interval: Duration::from_secs(1),
            generation_ttl: Duration::from_secs(24 * 3600),
        }
    }

    /// Connects with the default settings.
    pub async fn connect(url: impl Into<String>) -> Result<RedisLayer, CacheError> {
        Self::builder(url).connect().await
    }

    /// Whether the last command succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn entry_key(&self, entry: &str) -> String {
        format!("{}e:{entry}", self.prefix)
    }

    fn generation_key(&self, scope: &str) -> String {
        format!("{}g:{scope}", self.prefix)
    }

    /// Runs a command with the timeout; records health.
    async fn run<T, F>(&self, what: &'static str, fut: F) -> Result<T, CacheError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CacheError::Backend {
                layer: "redis".into(),
                source: Box::new(e),
            }),
            Err(_) => Err(CacheError::Timeout {
                layer: "redis".into(),
                after: self.timeout,
            }),
        };
        if let Err(e) = &result {
            self.stats.fault();
            self.healthy.store(false, Ordering::Relaxed);
            self.health.lock().expect("health").down_until =
                Some(Instant::now() + self.retry_interval);
            tracing::warn!(command = what, error = %e, "redis cache fault; reading DynamoDB");
        } else {
            self.healthy.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Fails fast while Redis is considered down; when it may be back, writes the pending
    /// invalidations first. Until they are all written, every other caller is told the layer
    /// is down, so no entry they invalidate can be served.
    async fn ready(&self) -> Result<(), CacheError> {
        let down = || CacheError::Timeout {
            layer: "redis".into(),
            after: Duration::ZERO,
        };
        let pending = {
            let mut health = self.health.lock().expect("health");
            if health.replaying
                || health
                    .down_until
                    .is_some_and(|until| Instant::now() < until)
            {
                return Err(down());
            }
            if health.pending.is_empty() {
                health.down_until = None;
                return Ok(());
            }
            health.replaying = true;
            std::mem::take(&mut health.pending)
        };
        for (i, scope) in pending.iter().enumerate() {
            if let Err(e) = self.write_invalidation(scope).await {
                let mut health = self.health.lock().expect("health");
                let mut rest = pending[i..].to_vec();
                rest.append(&mut health.pending);
                health.pending = rest;
                health.replaying = false;
                return Err(e);
            }
        }
        let mut health = self.health.lock().expect("health");
        health.replaying = false;
        health.down_until = None;
        Ok(())
    }

    async fn write_invalidation(&self, scope: &str) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .incr(self.generation_key(scope), 1)
            .ignore()
            .pexpire(
                self.generation_key(scope),
                self.generation_ttl.as_millis() as i64,
            )
            .ignore()
            .publish(&self.channel, format!("{}|{scope}", self.instance))
            .ignore();
        self.run("invalidate", pipe.query_async::<()>(&mut conn))
            .await
    }
}

#[async_trait]
impl CacheLayer for RedisLayer {
    fn name(&self) -> String {
        "redis".to_owned()
    }

    async fn get(&self, key: &CacheKey) -> Result<Lookup, CacheError> {
        self.ready().await?;
        let mut conn = self.conn.clone();
        let entry_key = self.entry_key(&key.entry);
        let mut pipe = redis::pipe();
        pipe.cmd("MGET")
            .arg(&entry_key)
            .arg(self.generation_key(&key.scope))
            .cmd("PTTL")
            .arg(&entry_key);
        let ((value, generation), ttl_ms): ((Option<Vec<u8>>, Option<u64>), i64) =
            self.run("get", pipe.query_async(&mut conn)).await?;
        let generation = generation.unwrap_or(0);
        match value {
            Some(bytes) if bytes.len() >= 8 => {
                let stamp = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
                if stamp == generation {
                    self.stats.hit();
                    let entry = CacheEntry::from_bytes(bytes[8..].to_vec());
                    Ok(Lookup::Hit(match u64::try_from(ttl_ms) {
                        Ok(ms) => entry.expiring_in(Duration::from_millis(ms)),
                        Err(_) => entry,
                    }))
                } else {
                    self.stats.miss();
                    Ok(Lookup::Miss(FillToken::new(generation)))
                }
            }
            Some(_) => {
                self.stats.corrupt();
                self.stats.miss();
                Ok(Lookup::Miss(FillToken::new(generation)))
            }
            None => {
                self.stats.miss();
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
        self.ready().await?;
        let mut value = Vec::with_capacity(entry.bytes().len() + 8);
        value.extend_from_slice(&token.generation().to_le_bytes());
        value.extend_from_slice(entry.bytes());
        let mut conn = self.conn.clone();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.entry_key(&key.entry))
            .key(self.generation_key(&key.scope))
            .arg(token.generation())
            .arg(value)
            .arg(ttl.as_millis().max(1) as u64);
        self.run("put", invocation.invoke_async::<i64>(&mut conn))
            .await
            .map(drop)
    }

    async fn invalidate(&self, scope: &str) -> Result<(), CacheError> {
        // Pending invalidations first, so the order of writes is kept.
        if let Err(e) = self.ready().await {
            self.health
                .lock()
                .expect("health")
                .pending
                .push(scope.to_owned());
            return Err(e);
        }
        match self.write_invalidation(scope).await {
            Ok(()) => {
                self.stats.invalidation();
                Ok(())
            }
            Err(e) => {
                self.health
                    .lock()
                    .expect("health")
                    .pending
                    .push(scope.to_owned());
                Err(e)
            }
        }
    }

    async fn invalidate_local(&self, _scope: &str) -> Result<(), CacheError> {
        // Redis is shared: the process that wrote already invalidated it.
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        self.ready().await?;
        let mut conn = self.conn.clone();
        // Entries only: generations stay, so a fill token taken before the clear can never
        // match a reset generation.
        let pattern = format!("{}e:*", self.prefix);
        let keys: Vec<String> = self
            .run(
                "clear",
                redis::cmd("KEYS").arg(&pattern).query_async(&mut conn),
            )
            .await?;
        for chunk in keys.chunks(500) {
            self.run(
                "clear",
                redis::cmd("DEL").arg(chunk).query_async::<()>(&mut conn),
            )
            .await?;
        }
        let _ = self
            .run(
                "clear",
                redis::cmd("PUBLISH")
                    .arg(&self.channel)
                    .arg(format!("{}|*", self.instance))
                    .query_async::<()>(&mut conn),
            )
            .await;
        Ok(())
    }

    fn stats(&self) -> Vec<(String, LayerStats)> {
        vec![(self.name(), self.stats.snapshot())]
    }

    fn remote_invalidations(&self) -> Option<broadcast::Receiver<String>> {
        Some(self.tx.subscribe())
    }
}
