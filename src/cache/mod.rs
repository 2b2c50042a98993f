//! Cache layers in front of DynamoDB.
//!
//! A [`CacheLayer`] stores encoded items (and query results) under string keys. Built in:
//! [`MokaLayer`] (in-process L1, bounded in bytes), [`LfuLayer`] (in-process L1, bounded in
//! entries, LFU eviction), `RedisLayer` (shared L2 on Redis or Redis Cluster, features `redis`
//! and `redis-cluster`), and [`Tiered`], which composes any number of layers.
//!
//! Files: `mod.rs` (the trait, entries, fill tokens, stats, [`Contact`]), `keys.rs` (entry keys
//! and scopes), `codec.rs` (the entry format), `stack.rs` (how the client uses its cache:
//! lookups, single flight, fills, invalidation), `moka.rs`, `lfu.rs`, `redis/`, `tiered.rs`.
//!
//! # Order of composition
//!
//! `Tiered::new().layer(l1).layer(l2)` reads L1, then L2, then DynamoDB, and on the way back
//! fills every layer above the one that answered. Writes through the client invalidate every
//! layer, top to bottom, before the write returns. Put the fastest, smallest, per-process layer
//! first and shared layers after it.
//!
//! # Consistency with writes
//!
//! Every entry belongs to an invalidation *scope*: an item's entries (one per projection) to the
//! item's key, a query's entries to the table. Each layer keeps a generation per scope: an entry
//! is only valid at the generation it was filled at, and a fill is refused when the scope was
//! invalidated while the value was being read from DynamoDB (the [`FillToken`] carries the
//! generation seen at the miss). So a read never fills a cache with data older than a write that
//! finished while the read was in flight, and a read through a client never returns data older
//! than a write that client acknowledged. Shared layers publish invalidations so that other
//! processes drop their own L1 entries ([`CacheLayer::remote_events`]).
//!
//! # Staleness across processes
//!
//! A shared layer that publishes invalidations can also vouch for how fresh the layers above it
//! are ([`CacheLayer::contact`]): `RedisLayer` sends itself a heartbeat through Redis every
//! fifth of its staleness bound. Redis delivers messages in order, so when a heartbeat sent at
//! `t` comes back, every invalidation published before `t` has come back before it. While the
//! last heartbeat to come back was sent more than the bound ago (Redis stalled, down,
//! restarting, or the network between), the layers above it serve nothing, and so does the
//! shared layer itself; reads go to DynamoDB. When heartbeats resume after a gap, the layers
//! above it are emptied (a writer may hold back invalidations that concern them), and nothing
//! is served for a recovery grace (2 s by default), the time every other instance needs to
//! write the invalidations it held back during the outage (a new instance waits four
//! heartbeats). So an entry served by any instance is never
//! older than a write acknowledged by any other instance more than the bound (250 ms by
//! default) earlier, provided the writer reaches Redis again within the grace of the reader.
//!
//! # Faults
//!
//! A cache fault (Redis down, slow past its timeout, garbage in an entry) never fails a request:
//! it is counted in the layer's [`LayerStats`], logged, and the read goes to DynamoDB.

mod codec;
mod keys;
mod lfu;
mod moka;
#[cfg(feature = "redis")]
mod redis;
pub(crate) mod stack;
mod tiered;

pub use self::lfu::{LfuLayer, LfuLayerBuilder};
pub use self::moka::{MokaLayer, MokaLayerBuilder};
#[cfg(feature = "redis")]
pub use self::redis::{RedisLayer, RedisLayerBuilder};
pub use self::tiered::Tiered;
pub use crate::error::CacheError;

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::metrics::{LayerEvent, LayerMetrics};

/// Where an entry lives and what invalidates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The entry's key: table, entity and schema fingerprint, the item key or query hash, the
    /// projection.
    pub entry: String,
    /// The invalidation scope: the item's key for item entries, the table for query entries.
    pub scope: String,
}

/// The key of an item entry given by its parts (namespace, table, entity, projection, key
/// values), for [`CacheLayer::probe`]: it is hashed once when made and rendered as text only
/// when asked ([`entry`](Self::entry), [`scope`](Self::scope)), so an in-process layer can answer
/// without allocating. Its text is always that of the [`CacheKey`] of the same entry.
#[derive(Debug, Clone, Copy)]
pub struct ProbeKey<'a> {
    parts: keys::ItemParts<'a>,
}

impl<'a> ProbeKey<'a> {
    pub(crate) fn new(parts: keys::ItemParts<'a>) -> Self {
        ProbeKey { parts }
    }

    /// Whether `entry` is this key's [`CacheKey::entry`], compared piece by piece without
    /// rendering it.
    pub fn is_entry(&self, entry: &str) -> bool {
        self.parts.is_entry(entry)
    }

    /// The entry key as text ([`CacheKey::entry`]); allocates.
    pub fn entry(&self) -> String {
        self.parts.entry()
    }

    /// The invalidation scope as text ([`CacheKey::scope`]); allocates.
    pub fn scope(&self) -> String {
        self.parts.scope()
    }

    /// The same key as a [`CacheKey`]; allocates.
    pub fn to_cache_key(&self) -> CacheKey {
        CacheKey {
            entry: self.entry(),
            scope: self.scope(),
        }
    }

    /// The in-process hash of the entry key: [`keys::hash_str`] of its text.
    pub(crate) fn entry_hash(&self) -> u64 {
        self.parts.entry_hash()
    }

    /// The in-process hash of the scope: [`keys::hash_str`] of its text.
    pub(crate) fn scope_hash(&self) -> u64 {
        self.parts.scope_hash()
    }
}

/// An encoded cache value, plus (in-process) the value already decoded.
#[derive(Clone)]
pub struct CacheEntry {
    bytes: Arc<[u8]>,
    decoded: Arc<OnceLock<Arc<dyn Any + Send + Sync>>>,
    expires_in: Option<Duration>,
}

impl CacheEntry {
    /// An entry from its encoded bytes.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Self {
        CacheEntry {
            bytes: bytes.into(),
            decoded: Arc::new(OnceLock::new()),
            expires_in: None,
        }
    }

    /// The same entry, known to expire in `left` (set by a layer on a hit, so that copies into
    /// upper layers do not outlive it).
    pub fn expiring_in(mut self, left: Duration) -> Self {
        self.expires_in = Some(left);
        self
    }

    /// How long the layer that returned it will still keep it, when known.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// The encoded value (what a shared layer stores).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The size counted against a layer's capacity.
    pub fn size(&self) -> usize {
        self.bytes.len() + 64
    }

    /// The decoded value attached by the client, shared by every in-process copy.
    pub(crate) fn decoded(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.decoded.get()
    }

    /// Attaches the decoded value (first one wins).
    pub(crate) fn attach(&self, value: Arc<dyn Any + Send + Sync>) {
        let _ = self.decoded.set(value);
    }
}

impl fmt::Debug for CacheEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheEntry")
            .field("bytes", &self.bytes.len())
            .field("decoded", &self.decoded.get().is_some())
            .finish()
    }
}

/// What a miss hands back so the fill can be checked: the scope's generation at the time of
/// the miss, per layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FillToken {
    generation: u64,
    parts: Vec<FillToken>,
}

impl FillToken {
    /// A token for a layer that tracks `generation` for the entry's scope.
    pub fn new(generation: u64) -> Self {
        FillToken {
            generation,
            parts: Vec::new(),
        }
    }

    /// The generation this token was issued at.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A token made of one token per inner layer (used by [`Tiered`]).
    pub fn composite(parts: Vec<FillToken>) -> Self {
        FillToken {
            generation: 0,
            parts,
        }
    }

    /// The inner layers' tokens.
    pub fn parts(&self) -> &[FillToken] {
        &self.parts
    }
}

/// The answer of a layer to a lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A valid entry.
    Hit(CacheEntry),
    /// No valid entry; fill with this token.
    Miss(FillToken),
}

/// Counters of one layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// Lookups answered.
    pub hits: u64,
    /// Lookups not answered.
    pub misses: u64,
    /// Entries evicted for capacity (not expiry or invalidation).
    pub evictions: u64,
    /// Entries that could not be read (corrupt, foreign format) and were treated as misses.
    pub corrupt: u64,
    /// Faults of the backend (errors, timeouts).
    pub faults: u64,
    /// Invalidations applied.
    pub invalidations: u64,
    /// Lookups not made because the layer could not vouch for its freshness (a shared layer out
    /// of contact with its server, or a layer above it); they read DynamoDB.
    pub skipped: u64,
    /// Damaged bookkeeping repaired in the backend (a generation key holding garbage).
    pub repaired: u64,
    /// Invalidations held back now (not a counter): written when the backend answers again.
    pub held_back: u64,
}

impl LayerStats {
    /// `hits / (hits + misses)`, 0 when there were no lookups.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// Atomic counters behind [`LayerStats`], for layer implementations. With the `metrics`
/// feature, every count is also recorded as a metric labelled with the layer's name (see
/// [`crate::metrics`]).
///
/// ```
/// use dynamite::cache::StatsCounter;
///
/// let stats = StatsCounter::named("my-layer");
/// stats.hit();
/// stats.miss();
/// assert_eq!(stats.snapshot().hit_rate(), 0.5);
/// ```
#[derive(Debug, Default)]
pub struct StatsCounter {
    metrics: LayerMetrics,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    corrupt: AtomicU64,
    faults: AtomicU64,
    invalidations: AtomicU64,
    skipped: AtomicU64,
    repaired: AtomicU64,
}

impl StatsCounter {
    /// Counters of the layer called `layer` (its metrics are labelled with it; a
    /// [`Default`] counter's are labelled `custom`).
    pub fn named(layer: impl Into<String>) -> Self {
        StatsCounter {
            metrics: LayerMetrics::named(layer.into()),
            ..StatsCounter::default()
        }
    }
    fn count(&self, counter: &AtomicU64, event: LayerEvent) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.metrics.count(event);
    }
    /// Counts a hit.
    pub fn hit(&self) {
        self.count(&self.hits, LayerEvent::Hit);
    }
    /// Counts a miss.
    pub fn miss(&self) {
        self.count(&self.misses, LayerEvent::Miss);
    }
    /// Counts an eviction.
    pub fn eviction(&self) {
        self.count(&self.evictions, LayerEvent::Eviction);
    }
    /// Counts a corrupt entry.
    pub fn corrupt(&self) {
        self.count(&self.corrupt, LayerEvent::Corrupt);
    }
    /// Counts a fault.
    pub fn fault(&self) {
        self.count(&self.faults, LayerEvent::Fault);
    }
    /// Counts an invalidation.
    pub fn invalidation(&self) {
        self.count(&self.invalidations, LayerEvent::Invalidation);
    }
    /// Counts a lookup skipped because the layer could not vouch for its freshness.
    pub fn skipped(&self) {
        self.count(&self.skipped, LayerEvent::Skipped);
    }
    /// Records how long a message of the layer's own took to come back through its pub/sub
    /// (a metric only: [`PUBSUB_DELAY`](crate::metrics::PUBSUB_DELAY)).
    pub fn pubsub_delay(&self, delay: Duration) {
        self.metrics.pubsub_delay(delay);
    }
    /// Counts a repair of damaged bookkeeping.
    pub fn repaired(&self) {
        self.repaired.fetch_add(1, Ordering::Relaxed);
    }
    /// A snapshot.
    pub fn snapshot(&self) -> LayerStats {
        LayerStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            faults: self.faults.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            repaired: self.repaired.load(Ordering::Relaxed),
            held_back: 0,
        }
    }
}

/// A cache in front of DynamoDB. Implement it to plug in any store.
///
/// Layers must honour scopes: after `invalidate(scope)`, no entry of that scope filled before
/// the call may be returned, and a `put` whose [`FillToken`] predates the invalidation must be
/// dropped.
#[async_trait]
pub trait CacheLayer: Send + Sync + 'static {
    /// A short name for stats and logs (`"moka"`, `"redis"`).
    fn name(&self) -> String;

    /// Looks up an entry.
    async fn get(&self, key: &CacheKey) -> Result<Lookup, CacheError>;

    /// Answers a lookup at once when it can, without waiting and without counting a miss:
    /// `Some` is a hit (counted as one, exactly as [`get`](Self::get) would), `None` means "ask
    /// [`get`](Self::get)", which then does the real lookup (and counts the miss). In-process
    /// layers implement it so that a cached read needs neither a boxed future nor a rendered
    /// key; a layer that only answers asynchronously keeps the default, `None`. A probe must
    /// honour everything [`get`](Self::get) honours: scopes, generations, time to live.
    fn probe(&self, key: &ProbeKey<'_>) -> Option<CacheEntry> {
        let _ = key;
        None
    }

    /// Stores an entry for `ttl`, unless its scope was invalidated since `token` was issued.
    async fn put(
        &self,
        key: &CacheKey,
        entry: CacheEntry,
        ttl: Duration,
        token: &FillToken,
    ) -> Result<(), CacheError>;

    /// Drops every entry of `scope`.
    async fn invalidate(&self, scope: &str) -> Result<(), CacheError>;

    /// Drops everything.
    async fn clear(&self) -> Result<(), CacheError>;

    /// Counters, per layer (a composite layer reports its layers in order).
    fn stats(&self) -> Vec<(String, LayerStats)>;

    /// What other processes did (invalidations, clears) and, for a layer with a
    /// [`contact`](Self::contact), its heartbeats, in the order the server delivered them:
    /// for the layers above this one.
    fn remote_events(&self) -> Option<tokio::sync::broadcast::Receiver<RemoteEvent>> {
        None
    }

    /// When this layer's [`remote_events`](Self::remote_events) carry heartbeats: its own
    /// [`Contact`] (whether it may serve now). [`Tiered`] holds the layers above it to the same
    /// bound, from the heartbeats its forwarding task hears, starting from this state.
    fn contact(&self) -> Option<&Contact> {
        None
    }

    /// Called by [`Tiered`] when another process invalidated `scope`: drop local entries
    /// without telling anyone.
    async fn invalidate_local(&self, scope: &str) -> Result<(), CacheError> {
        self.invalidate(scope).await
    }
}

pub(crate) use keys::{key_text, key_text_of};

/// What a shared layer tells the layers above it, in the order its server delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteEvent {
    /// Another process invalidated this scope.
    Invalidated(String),
    /// Drop everything: another process cleared the cache, or messages may have been missed.
    Cleared,
    /// The layer's heartbeat sent at `sent` came back: every invalidation published before then
    /// was delivered before this event.
    Heartbeat {
        /// When the heartbeat was sent.
        sent: Instant,
    },
}

/// How long layers above a shared layer may go without hearing from it (see
/// [`CacheLayer::contact`] and [`Contact`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Heartbeat {
    /// Serve nothing once the last heartbeat to come back was sent longer ago than this.
    pub staleness_bound: Duration,
    /// After heartbeats resume from a gap, serve nothing for this long (other instances write
    /// the invalidations they held back meanwhile).
    pub recovery_grace: Duration,
    /// After the very first heartbeat, serve nothing for this long.
    pub startup_grace: Duration,
}

impl Heartbeat {
    /// A heartbeat policy (the startup grace is the recovery grace).
    pub const fn new(staleness_bound: Duration, recovery_grace: Duration) -> Self {
        Heartbeat {
            staleness_bound,
            recovery_grace,
            startup_grace: recovery_grace,
        }
    }

    /// The same policy with a startup grace of its own (usually shorter than the recovery
    /// grace: a new instance has seen no outage).
    pub const fn with_startup_grace(mut self, grace: Duration) -> Self {
        self.startup_grace = grace;
        self
    }
}

/// Whether a layer may serve, from the heartbeats heard through a shared layer: the pure logic
/// behind the staleness bound. Heartbeats are fed by one task; lookups read it lock-free.
///
/// A heartbeat proves that every invalidation the server handled before it was delivered, so
/// serving is allowed until the bound has passed since the last heartbeat heard was *sent*. A
/// gap longer than the bound, between two heartbeats' sending or their *arrival* (a stalled
/// server delivers the heartbeats it queued all at once), starts a new run, and nothing is
/// served until the recovery grace has passed since that run's first heartbeat arrived.
#[derive(Debug)]
pub struct Contact {
    policy: Heartbeat,
    origin: Instant,
    /// Nanoseconds after `origin` (+1; 0: never) when the latest heartbeat heard was sent.
    last_sent: AtomicU64,
    /// When it arrived (same encoding).
    last_heard: AtomicU64,
    /// When the current unbroken run of heartbeats began to arrive, plus its grace: nothing is
    /// served before then (same encoding).
    serve_from: AtomicU64,
}

impl Contact {
    /// No heartbeat heard yet: not current.
    pub fn new(policy: Heartbeat) -> Self {
        Contact {
            policy,
            origin: Instant::now(),
            last_sent: AtomicU64::new(0),
            last_heard: AtomicU64::new(0),
            serve_from: AtomicU64::new(0),
        }
    }

    /// A contact that starts where `other` is now (for layers above a shared layer that is
    /// current: they start empty, so no event before now concerns them).
    pub fn following(other: &Contact) -> Self {
        Contact {
            policy: other.policy,
            origin: other.origin,
            last_sent: AtomicU64::new(other.last_sent.load(Ordering::Acquire)),
            last_heard: AtomicU64::new(other.last_heard.load(Ordering::Acquire)),
            serve_from: AtomicU64::new(other.serve_from.load(Ordering::Acquire)),
        }
    }

    /// The policy.
    pub fn policy(&self) -> Heartbeat {
        self.policy
    }

    fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX - 1)
            + 1
    }

    fn nanos(d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// A heartbeat sent at `sent` arrived at `heard`. Returns `true` when it begins a new run
    /// (the first heartbeat, or the first after a gap): invalidations may have been missed
    /// before it, so whatever the layers above hold should be dropped.
    pub fn heard(&self, sent: Instant, heard: Instant) -> bool {
        let (sent, heard) = (self.stamp(sent), self.stamp(heard));
        let last_sent = self.last_sent.load(Ordering::Acquire);
        if sent <= last_sent {
            return false;
        }
        let last_heard = self.last_heard.load(Ordering::Acquire);
        let bound = Self::nanos(self.policy.staleness_bound);
        let grace = if last_sent == 0 {
            Some(self.policy.startup_grace)
        } else if sent - last_sent > bound || heard.saturating_sub(last_heard) > bound {
            Some(self.policy.recovery_grace)
        } else {
            None
        };
        if let Some(grace) = grace {
            // First: a reader that sees the new `last_sent` also sees the new run.
            self.serve_from
                .store(heard.saturating_add(Self::nanos(grace)), Ordering::Release);
        }
        self.last_heard.store(heard, Ordering::Release);
        self.last_sent.store(sent, Ordering::Release);
        grace.is_some()
    }

    /// Entries may be served at `now`: the last heartbeat heard was sent less than the bound
    /// ago, and the run it belongs to began to arrive longer ago than its grace (the startup
    /// grace for the first run, the recovery grace after a gap).
    pub fn is_current(&self, now: Instant) -> bool {
        let last_sent = self.last_sent.load(Ordering::Acquire);
        let serve_from = self.serve_from.load(Ordering::Acquire);
        if last_sent == 0 {
            return false;
        }
        let now = self.stamp(now);
        now < last_sent.saturating_add(Self::nanos(self.policy.staleness_bound))
            && now >= serve_from
    }
}

/// Generations of invalidation scopes, kept in stripes: invalidating a scope bumps its stripe,
/// so (rarely) other scopes of the same stripe lose their entries too. Correct, and bounded in
/// memory. Used by the in-process layers. A scope's stripe comes from [`keys::hash_str`] of
/// its text, which a [`ProbeKey`] carries already computed.
pub(crate) struct Generations {
    stripes: Box<[AtomicU64]>,
}

impl Generations {
    const STRIPES: usize = 4096;

    pub(crate) fn new() -> Self {
        Generations {
            stripes: (0..Self::STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The stripe of the scope whose [`keys::hash_str`] is `hash`.
    pub(crate) fn stripe_of(hash: u64) -> usize {
        (hash as usize) % Self::STRIPES
    }

    pub(crate) fn stripe(&self, scope: &str) -> usize {
        Self::stripe_of(keys::hash_str(scope))
    }

    pub(crate) fn at(&self, stripe: usize) -> u64 {
        self.stripes[stripe].load(Ordering::Acquire)
    }

    pub(crate) fn current(&self, scope: &str) -> u64 {
        self.at(self.stripe(scope))
    }

    pub(crate) fn bump(&self, scope: &str) {
        self.stripes[self.stripe(scope)].fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn bump_all(&self) {
        for s in self.stripes.iter() {
            s.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// A `BuildHasher` for maps keyed by a hash computed already ([`keys::hash_str`]): the `u64`
/// key is its own hash.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PassThrough;

/// The hasher of [`PassThrough`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PassThroughHasher(u64);

impl std::hash::Hasher for PassThroughHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; anything else still gets a (slow, fine) hash.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl std::hash::BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

/// A short stable hash of a projection (expression and names), for entry keys.
pub(crate) fn projection_hash(
    expression: &str,
    names: Option<&std::collections::HashMap<String, String>>,
) -> u64 {
    let mut text = expression.to_owned();
    if let Some(names) = names {
        let mut pairs: Vec<_> = names.iter().collect();
        pairs.sort();
        for (k, v) in pairs {
            text.push('|');
            text.push_str(k);
            text.push('=');
            text.push_str(v);
        }
    }
    keys::fnv1a(text.as_bytes()) | 1
}

/// How the client uses its cache.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct CacheConfig {
    /// Time to live of item entries (get, batch_get).
    pub item_ttl: Duration,
    /// Time to live of query results, for entities and calls that opt in.
    pub query_ttl: Duration,
    /// Time to live of "no such item" entries; `None` (default) caches no misses.
    pub negative_ttl: Option<Duration>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            item_ttl: Duration::from_secs(300),
            query_ttl: Duration::from_secs(30),
            negative_ttl: None,
        }
    }
}

impl CacheConfig {
    /// Item time to live.
    pub fn item_ttl(mut self, ttl: Duration) -> Self {
        self.item_ttl = ttl;
        self
    }
    /// Query result time to live.
    pub fn query_ttl(mut self, ttl: Duration) -> Self {
        self.query_ttl = ttl;
        self
    }
    /// Cache "not found" for `ttl`.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn contact() -> (Contact, Instant) {
        let contact = Contact::new(Heartbeat::new(250 * MS, 200 * MS));
        (contact, Instant::now())
    }

    /// Heartbeats every 50 ms from `from` to `to` (ms after `t0`), each heard 1 ms later.
    fn beats(c: &Contact, t0: Instant, from: u64, to: u64) {
        for at in (from..=to).step_by(50) {
            let _ = c.heard(t0 + MS * at as u32, t0 + MS * (at as u32 + 1));
        }
    }

    #[test]
    fn not_current_before_the_first_heartbeat() {
        let (c, t0) = contact();
        assert!(!c.is_current(t0));
        assert!(!c.is_current(t0 + 10_000 * MS));
    }

    #[test]
    fn current_after_the_grace_of_the_first_run_until_the_bound_passes() {
        let (c, t0) = contact();
        beats(&c, t0, 0, 0);
        assert!(!c.is_current(t0 + 200 * MS), "in the recovery grace");
        beats(&c, t0, 50, 500);
        assert!(c.is_current(t0 + 501 * MS));
        assert!(c.is_current(t0 + 749 * MS));
        assert!(
            !c.is_current(t0 + 750 * MS),
            "last heartbeat sent 250 ms ago"
        );
    }

    #[test]
    fn a_gap_in_sending_starts_a_new_grace() {
        let (c, t0) = contact();
        beats(&c, t0, 0, 500);
        assert!(c.is_current(t0 + 510 * MS));
        // The sender was stuck for 2 s.
        assert!(
            c.heard(t0 + 2_500 * MS, t0 + 2_501 * MS),
            "the first heartbeat after a gap begins a new run"
        );
        assert!(!c.heard(t0 + 2_500 * MS, t0 + 2_502 * MS), "heard already");
        assert!(!c.is_current(t0 + 2_510 * MS));
        assert!(!c.is_current(t0 + 2_700 * MS));
        beats(&c, t0, 2_550, 2_700);
        assert!(c.is_current(t0 + 2_702 * MS));
    }

    #[test]
    fn heartbeats_queued_by_a_stalled_server_start_a_new_grace_when_they_arrive() {
        let (c, t0) = contact();
        beats(&c, t0, 0, 500);
        // Redis frozen from 520 ms to 3 s: the heartbeats sent meanwhile arrive together.
        for at in (550..3_000).step_by(50) {
            let _ = c.heard(t0 + MS * at, t0 + 3_000 * MS);
        }
        assert!(!c.is_current(t0 + 3_001 * MS), "recovering");
        beats(&c, t0, 3_000, 3_200);
        assert!(!c.is_current(t0 + 3_199 * MS));
        assert!(c.is_current(t0 + 3_201 * MS));
    }

    #[test]
    fn the_first_run_waits_the_startup_grace_later_runs_the_recovery_grace() {
        let c = Contact::new(Heartbeat::new(250 * MS, 2_000 * MS).with_startup_grace(200 * MS));
        let t0 = Instant::now();
        beats(&c, t0, 0, 300);
        assert!(c.is_current(t0 + 301 * MS), "startup grace of 200 ms");
        beats(&c, t0, 1_000, 1_000);
        beats(&c, t0, 1_050, 2_950);
        assert!(
            !c.is_current(t0 + 2_951 * MS),
            "2 s recovery grace after the gap"
        );
        beats(&c, t0, 3_000, 3_100);
        assert!(c.is_current(t0 + 3_101 * MS));
    }

    #[test]
    fn heartbeats_heard_out_of_order_never_move_time_back() {
        let (c, t0) = contact();
        beats(&c, t0, 0, 300);
        c.heard(t0 + 100 * MS, t0 + 320 * MS);
        assert!(c.is_current(t0 + 549 * MS));
        assert!(!c.is_current(t0 + 550 * MS));
    }
}
