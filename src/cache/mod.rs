//! Cache layers in front of DynamoDB.
//!
//! A [`CacheLayer`] stores encoded items (and query results) under string keys. Built in:
//! [`MokaLayer`] (in-process L1, bounded in bytes), `RedisLayer` (shared L2, feature `redis`),
//! and [`Tiered`], which composes any number of layers.
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
//! processes drop their own L1 entries ([`CacheLayer::remote_invalidations`]).
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

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

/// Where an entry lives and what invalidates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The entry's key: table, entity and schema fingerprint, the item key or query hash, the
    /// projection.
    pub entry: String,
    /// The invalidation scope: the item's key for item entries, the table for query entries.
    pub scope: String,
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

/// A cache layer failed (the request goes on to DynamoDB).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The backend did not answer in time.
    #[error("cache layer {layer} timed out after {after:?}")]
    Timeout {
        /// The layer's name.
        layer: String,
        /// The timeout.
        after: Duration,
    },
    /// The backend failed.
    #[error("cache layer {layer} failed")]
    Backend {
        /// The layer's name.
        layer: String,
        /// What failed.
        #[source]
        source: crate::BoxError,
    },
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

/// Atomic counters behind [`LayerStats`], for layer implementations.
#[derive(Debug, Default)]
pub struct StatsCounter {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    corrupt: AtomicU64,
    faults: AtomicU64,
    invalidations: AtomicU64,
}

impl StatsCounter {
    /// Counts a hit.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a miss.
    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts an eviction.
    pub fn eviction(&self) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a corrupt entry.
    pub fn corrupt(&self) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a fault.
    pub fn fault(&self) {
        self.faults.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts an invalidation.
    pub fn invalidation(&self) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
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

    /// Invalidations made by other processes (pub/sub), for the layers above this one.
    fn remote_invalidations(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }

    /// Called by [`Tiered`] when another process invalidated `scope`: drop local entries
    /// without telling anyone.
    async fn invalidate_local(&self, scope: &str) -> Result<(), CacheError> {
        self.invalidate(scope).await
    }
}

pub(crate) use keys::{key_text, key_text_of};

/// Generations of invalidation scopes, kept in stripes: invalidating a scope bumps its stripe,
/// so (rarely) other scopes of the same stripe lose their entries too. Correct, and bounded in
/// memory. Used by the in-process layers.
pub(crate) struct Generations {
    stripes: Box<[AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Generations {
    const STRIPES: usize = 4096;

    pub(crate) fn new() -> Self {
        Generations {
            stripes: (0..Self::STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: Default::default(),
        }
    }

    pub(crate) fn stripe(&self, scope: &str) -> usize {
        use std::hash::BuildHasher;
        (self.hasher.hash_one(scope) as usize) % Self::STRIPES
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
