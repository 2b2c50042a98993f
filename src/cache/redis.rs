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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::broadcast;

use super::{
    CacheEntry, CacheError, CacheKey, CacheLayer, Contact, FillToken, Heartbeat, LayerStats,
    Lookup, RemoteEvent, StatsCounter,
};

/// The checks a generation must pass to be incremented: digits only, short enough that INCR
/// never overflows. Anything else (garbage, another type) is replaced by a fresh random value.
const VALID_GENERATION: &str = r"
local function valid(g)
  return type(g) == 'string' and #g <= 18 and string.match(g, '^%d+$') ~= nil
end
";

/// KEYS: entry, generation. ARGV: a fresh generation, generation TTL (ms).
/// Returns {generation, value or nil, entry TTL (ms), 1 if the generation was repaired}.
const LOOKUP_SCRIPT: &str = r"
local g = redis.pcall('GET', KEYS[2])
local repaired = 0
if not valid(g) then
  if g then repaired = 1 end
  g = ARGV[1]
  redis.call('SET', KEYS[2], g, 'PX', ARGV[2])
end
local v = redis.call('GET', KEYS[1])
local ttl = -2
if v then ttl = redis.call('PTTL', KEYS[1]) end
return {g, v, ttl, repaired}
";

/// KEYS: entry, generation. ARGV: generation seen at the miss, value, TTL (ms).
const FILL_SCRIPT: &str = r"
if redis.pcall('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// KEYS: generation. ARGV: a fresh generation, generation TTL (ms), channel, message ('' for
/// none). Returns 1 if the generation was repaired.
const INVALIDATE_SCRIPT: &str = r"
local g = redis.pcall('GET', KEYS[1])
local repaired = 0
if valid(g) then
  redis.call('INCR', KEYS[1])
else
  if g then repaired = 1 end
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return repaired
";

/// A fresh generation: random, so that nothing issued before Redis forgot a generation can
/// match the new one; far below i64::MAX, so INCR never overflows.
fn fresh_generation() -> u64 {
    fastrand::u64(1..100_000_000_000_000_000)
}

/// `text` matched literally in a SCAN pattern.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

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
    /// grace after an outage is four heartbeats. See the [`cache`](super) module docs.
    pub fn staleness_bound(mut self, bound: Duration) -> Self {
        self.staleness_bound = bound;
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
        let heartbeat = Heartbeat::new(self.staleness_bound, self.staleness_bound * 4 / 5);
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
            stats: StatsCounter::default(),
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
        let wait = Duration::from_secs(2).max(heartbeat.recovery_grace * 3);
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

/// The command connection: one server, or a cluster.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

struct Scripts {
    lookup: redis::Script,
    fill: redis::Script,
    invalidate: redis::Script,
}

impl Scripts {
    fn new() -> Self {
        let with_checks = |body: &str| redis::Script::new(&format!("{VALID_GENERATION}{body}"));
        Scripts {
            lookup: with_checks(LOOKUP_SCRIPT),
            fill: redis::Script::new(FILL_SCRIPT),
            invalidate: with_checks(INVALIDATE_SCRIPT),
        }
    }
}

#[derive(Default)]
struct Health {
    /// Requests skip Redis until then (after a fault).
    down_until: Option<Instant>,
    /// Scopes whose invalidation is not written yet, each with the sequence number of its
    /// latest hold (a scope held again while being written is written again).
    pending: HashMap<String, u64>,
    /// Sequence of holds.
    holds: u64,
    /// More than `max_pending` scopes were pending: move every generation.
    overflowed: bool,
    /// Overflows so far (one that happens while writing is not cleared by that write).
    overflows: u64,
    /// Pending invalidations are being written: nobody else uses Redis meanwhile.
    replaying: bool,
}

/// What the layer and its two background tasks share.
struct Shared {
    conn: Connection,
    prefix: String,
    channel: String,
    alive_channel: String,
    instance: String,
    timeout: Duration,
    retry_interval: Duration,
    generation_ttl: Duration,
    max_pending: usize,
    stats: StatsCounter,
    tx: broadcast::Sender<RemoteEvent>,
    /// Heartbeats heard back by the subscription.
    contact: Contact,
    /// Heartbeats sent and not heard yet: sequence number, when.
    sent: Mutex<VecDeque<(u64, Instant)>>,
    health: Mutex<Health>,
    healthy: AtomicBool,
    scripts: Scripts,
}

/// The shared cache layer on Redis or Redis Cluster: entries checked against per-scope
/// generations, fills that only land if the generation is unchanged, pub/sub invalidation, a
/// heartbeat that bounds staleness across instances, and fault tolerance (see `cache/redis.rs`
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

/// Hears invalidations published by other instances and this instance's heartbeats; reconnects
/// (trying each URL in turn) when the connection drops, and then tells the layers above to drop
/// everything (messages may have been missed).
async fn listen(
    shared: Arc<Shared>,
    urls: Vec<String>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut first = true;
    let mut subscribed = Some(subscribed);
    let pause = shared.contact.policy().staleness_bound / 5;
    for url in urls.iter().cycle() {
        if let Ok(mut pubsub) = subscribe(&shared, url).await {
            if !first {
                let _ = shared.tx.send(RemoteEvent::Cleared);
            }
            first = false;
            if let Some(s) = subscribed.take() {
                let _ = s.send(());
            }
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                shared.heard(msg.get_channel_name(), msg.get_payload_bytes());
            }
        }
        tokio::time::sleep(pause).await;
    }
}

async fn subscribe(shared: &Shared, url: &str) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = redis::Client::open(url)?.get_async_pubsub().await?;
    pubsub.subscribe(&shared.channel).await?;
    pubsub.subscribe(&shared.alive_channel).await?;
    Ok(pubsub)
}

/// Every `interval`: writes pending invalidations, then sends a heartbeat.
async fn beat(shared: Arc<Shared>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sequence = 0u64;
    loop {
        ticks.tick().await;
        if shared.has_pending() {
            let _ = shared.write_pending().await;
        }
        sequence += 1;
        {
            let mut sent = shared.sent.lock().expect("heartbeats");
            sent.push_back((sequence, Instant::now()));
            while sent.len() > 256 {
                sent.pop_front();
            }
        }
        let mut conn = shared.conn.clone();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&shared.alive_channel).arg(sequence);
        let publish = publish.query_async::<()>(&mut conn);
        if let Ok(Err(e)) = tokio::time::timeout(shared.timeout, publish).await {
            tracing::debug!(error = %e, "redis heartbeat not sent");
        }
    }
}

impl Shared {
    /// The hash tag of a scope: its entries and generation share a Cluster slot.
    fn tag(scope: &str) -> String {
        format!("{{{:016x}}}", super::keys::fnv1a(scope.as_bytes()))
    }

    fn entry_key(&self, key: &CacheKey) -> String {
        format!("{}{}e:{}", self.prefix, Self::tag(&key.scope), key.entry)
    }

    fn generation_key(&self, scope: &str) -> String {
        format!("{}{}g:{scope}", self.prefix, Self::tag(scope))
    }

    fn down() -> CacheError {
        CacheError::Unavailable {
            layer: "redis".into(),
            reason: "skipped after a recent fault, or while writing held-back invalidations",
        }
    }

    /// A message from the subscription.
    fn heard(&self, channel: &str, payload: &[u8]) {
        if channel == self.alive_channel {
            let Some(sequence) = std::str::from_utf8(payload)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                return;
            };
            let sent_at = {
                let mut sent = self.sent.lock().expect("heartbeats");
                let at = sent.iter().find(|(s, _)| *s == sequence).map(|(_, at)| *at);
                sent.retain(|(s, _)| *s > sequence);
                at
            };
            if let Some(sent) = sent_at {
                self.contact.heard(sent, Instant::now());
                let _ = self.tx.send(RemoteEvent::Heartbeat { sent });
            }
            return;
        }
        let Ok(payload) = std::str::from_utf8(payload) else {
            return;
        };
        if let Some((from, scope)) = payload.split_once('|') {
            if from != self.instance {
                let _ = self.tx.send(if scope == "*" {
                    RemoteEvent::Cleared
                } else {
                    RemoteEvent::Invalidated(scope.to_owned())
                });
            }
        }
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

    fn has_pending(&self) -> bool {
        let health = self.health.lock().expect("health");
        !health.pending.is_empty() || health.overflowed
    }

    /// Keeps an invalidation that could not be written (coalesced per scope, bounded).
    fn hold(&self, scope: &str) {
        let mut health = self.health.lock().expect("health");
        health.holds += 1;
        let hold = health.holds;
        health.pending.insert(scope.to_owned(), hold);
        if health.pending.len() > self.max_pending {
            tracing::warn!(
                max = self.max_pending,
                "more redis invalidations held back than max_pending: every generation under the prefix will move"
            );
            health.pending.clear();
            health.overflowed = true;
            health.overflows += 1;
        }
    }

    /// The request path's gate: fails fast while Redis is considered down or invalidations
    /// are held back (writing them first when Redis may be back). Until they are all written,
    /// every caller is told the layer is down, so no entry they invalidate can be served.
    async fn ready(&self) -> Result<(), CacheError> {
        {
            let mut health = self.health.lock().expect("health");
            if health.replaying
                || health
                    .down_until
                    .is_some_and(|until| Instant::now() < until)
            {
                return Err(Self::down());
            }
            if health.pending.is_empty() && !health.overflowed {
                health.down_until = None;
                return Ok(());
            }
            if health.overflowed {
                // Moving every generation is the background task's job, not a request's.
                return Err(Self::down());
            }
        }
        self.write_pending().await
    }

    /// Writes the held-back invalidations (one writer at a time). Each stays held until it
    /// is written; one held again meanwhile stays for the next round.
    async fn write_pending(&self) -> Result<(), CacheError> {
        let (scopes, overflowed, overflows) = {
            let mut health = self.health.lock().expect("health");
            if health.replaying {
                return Err(Self::down());
            }
            health.replaying = true;
            let scopes: Vec<(String, u64)> = health
                .pending
                .iter()
                .map(|(s, h)| (s.clone(), *h))
                .collect();
            (scopes, health.overflowed, health.overflows)
        };
        let result = self.write_all(&scopes, overflowed).await;
        let mut health = self.health.lock().expect("health");
        health.replaying = false;
        let written = match &result {
            Ok(()) => scopes.len(),
            Err((written, _)) => *written,
        };
        for (scope, hold) in &scopes[..written] {
            if health.pending.get(scope) == Some(hold) {
                health.pending.remove(scope);
            }
        }
        if overflowed && health.overflows == overflows && result.is_ok() {
            health.overflowed = false;
        }
        match result {
            Ok(()) => {
                health.down_until = None;
                Ok(())
            }
            Err((_, e)) => Err(e),
        }
    }

    /// Writes `scopes` (after moving every generation, if `overflowed`); on failure, how many
    /// were written.
    async fn write_all(
        &self,
        scopes: &[(String, u64)],
        overflowed: bool,
    ) -> Result<(), (usize, CacheError)> {
        if overflowed {
            self.move_every_generation().await.map_err(|e| (0, e))?;
        }
        const CONCURRENT: usize = 64;
        for (i, chunk) in scopes.chunks(CONCURRENT).enumerate() {
            let results =
                futures::future::join_all(chunk.iter().map(|(s, _)| self.write_invalidation(s)))
                    .await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                // The whole chunk again: moving a generation twice only costs a refill.
                return Err((i * CONCURRENT, e));
            }
        }
        Ok(())
    }

    /// Moves one scope's generation and publishes it: in one round trip on a single server.
    /// On a cluster the scope's node may not be the one that relays heartbeats, so the
    /// message goes through the channel's node after the move, and is sent even when the move
    /// failed (its node is down): other instances' L1s must not wait for that node.
    async fn write_invalidation(&self, scope: &str) -> Result<(), CacheError> {
        let message = format!("{}|{scope}", self.instance);
        let generation = self.generation_key(scope);
        match &self.conn {
            Connection::Single(_) => self.move_generation(&generation, &message).await,
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(_) => {
                let moved = self.move_generation(&generation, "").await;
                let published = self.publish(&message).await;
                moved.and(published)
            }
        }
    }

    async fn move_generation(&self, generation_key: &str, message: &str) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts.invalidate.prepare_invoke();
        invocation
            .key(generation_key)
            .arg(fresh_generation())
            .arg(self.generation_ttl.as_millis().max(1) as u64)
            .arg(&self.channel)
            .arg(message);
        let repaired: i64 = self
            .run("invalidate", invocation.invoke_async(&mut conn))
            .await?;
        if repaired == 1 {
            self.stats.repaired();
            tracing::warn!(
                key = generation_key,
                "repaired a damaged redis generation key"
            );
        }
        Ok(())
    }

    /// After too many held-back invalidations: moves every generation under the prefix, then
    /// tells every instance to clear its L1.
    async fn move_every_generation(&self) -> Result<(), CacheError> {
        let pattern = format!("{}{{*}}g:*", glob_escape(&self.prefix));
        for key in self.scan(&pattern).await? {
            self.move_generation(&key, "").await?;
        }
        self.publish_clear().await
    }

    async fn publish_clear(&self) -> Result<(), CacheError> {
        self.publish(&format!("{}|*", self.instance)).await
    }

    async fn publish(&self, message: &str) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        self.run(
            "publish",
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(message)
                .query_async::<()>(&mut conn),
        )
        .await
    }

    /// Every key matching `pattern`, on every primary (SCAN, never KEYS).
    async fn scan(&self, pattern: &str) -> Result<Vec<String>, CacheError> {
        let mut keys = Vec::new();
        match &self.conn {
            Connection::Single(conn) => {
                self.scan_node(pattern, &mut keys, |cmd| {
                    let mut conn = conn.clone();
                    async move { cmd.query_async::<(u64, Vec<String>)>(&mut conn).await }
                })
                .await?;
            }
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(conn) => {
                for (host, port) in self.primaries(conn.clone()).await? {
                    let conn = conn.clone();
                    self.scan_node(pattern, &mut keys, |cmd| {
                        let mut conn = conn.clone();
                        let host = host.clone();
                        async move {
                            use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                            let routing =
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                    host,
                                    port,
                                });
                            let value = conn.route_command(cmd, routing).await?;
                            Ok(redis::from_redis_value(value)?)
                        }
                    })
                    .await?;
                }
            }
        }
        Ok(keys)
    }

    async fn scan_node<F, Fut>(
        &self,
        pattern: &str,
        keys: &mut Vec<String>,
        send: F,
    ) -> Result<(), CacheError>
    where
        F: Fn(redis::Cmd) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<(u64, Vec<String>)>>,
    {
        let mut cursor = 0u64;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, mut found) = self.run("scan", send(cmd)).await?;
            keys.append(&mut found);
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The cluster's primaries, from `CLUSTER NODES`.
    #[cfg(feature = "redis-cluster")]
    async fn primaries(
        &self,
        mut conn: redis::cluster_async::ClusterConnection,
    ) -> Result<Vec<(String, u16)>, CacheError> {
        let text: String = self
            .run(
                "cluster nodes",
                redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn),
            )
            .await?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = *fields.get(2)?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let address = fields.get(1)?.split(['@', ',']).next()?;
                let (host, port) = address.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect())
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
        // Held-back invalidations first; if Redis is not ready, this one joins them.
        let written = match shared.ready().await {
            Ok(()) => shared.write_invalidation(scope).await,
            Err(e) => Err(e),
        };
        match written {
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
