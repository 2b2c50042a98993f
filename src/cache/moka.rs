//! [`MokaLayer`]: the in-process L1, on `moka::sync::Cache`, bounded in bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::notification::RemovalCause;

use super::keys::hash_str;
use super::{
    CacheEntry, CacheError, CacheKey, CacheLayer, FillToken, Generations, LayerStats, Lookup,
    PassThrough, ProbeKey, StatsCounter,
};

/// Entries are keyed by [`hash_str`] of their key and hold the full key, checked on every
/// lookup: two keys of one hash never answer for each other (they take turns in the slot).
#[derive(Clone)]
struct Stored {
    text: Arc<str>,
    entry: CacheEntry,
    stamp: u64,
    ttl: Duration,
    expires_at: Instant,
}

struct PerEntryTtl;

impl moka::Expiry<u64, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _key: &u64, value: &Stored, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    // A refill replaces the entry: it gets its own time to live, not the old one's rest.
    fn expire_after_update(
        &self,
        _key: &u64,
        value: &Stored,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The in-process cache layer: capacity in bytes (a weigher), per-entry time to live, optional
/// time to idle. Entries keep their decoded value, so a hit returns a clone of the entity
/// without decoding.
///
/// ```
/// let l1 = dynamite::cache::MokaLayer::builder()
///     .max_bytes(64 * 1024 * 1024)
///     .time_to_idle(std::time::Duration::from_secs(120))
///     .build();
/// ```
pub struct MokaLayer {
    cache: moka::sync::Cache<u64, Stored, PassThrough>,
    generations: Generations,
    stats: Arc<StatsCounter>,
}

impl std::fmt::Debug for MokaLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaLayer")
            .field("entries", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .finish()
    }
}

/// Builds a [`MokaLayer`].
#[must_use]
#[derive(Debug, Clone)]
pub struct MokaLayerBuilder {
    capacity: Capacity,
    time_to_idle: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
enum Capacity {
    Bytes(u64),
    Entries(u64),
}

impl MokaLayerBuilder {
    /// Capacity in bytes of keys and encoded values (64 MiB by default).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.capacity = Capacity::Bytes(bytes);
        self
    }

    /// Bound by number of entries instead of bytes. Moka's frequency-based admission keeps
    /// more of a skewed workload's hot set when entries are not weighed (see the README's
    /// hit-rate figures); use it when entries are of similar size.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.capacity = Capacity::Entries(entries);
        self
    }

    /// Drop entries not read for this long.
    pub fn time_to_idle(mut self, d: Duration) -> Self {
        self.time_to_idle = Some(d);
        self
    }

    /// The layer.
    pub fn build(self) -> MokaLayer {
        let stats = Arc::new(StatsCounter::default());
        let evictions = stats.clone();
        let mut builder = moka::sync::Cache::builder();
        builder = match self.capacity {
            Capacity::Bytes(bytes) => builder.max_capacity(bytes).weigher(|_: &u64, v: &Stored| {
                u32::try_from(v.text.len() + v.entry.size()).unwrap_or(u32::MAX)
            }),
            Capacity::Entries(entries) => builder.max_capacity(entries),
        };
        let mut builder =
            builder
                .expire_after(PerEntryTtl)
                .eviction_listener(move |_k, _v, cause| {
                    if cause == RemovalCause::Size {
                        evictions.eviction();
                    }
                });
        if let Some(tti) = self.time_to_idle {
            builder = builder.time_to_idle(tti);
        }
        MokaLayer {
            cache: builder.build_with_hasher(PassThrough),
            generations: Generations::new(),
            stats,
        }
    }
}

impl MokaLayer {
    /// A layer holding at most `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        Self::builder().max_bytes(max_bytes).build()
    }

    /// A builder.
    pub fn builder() -> MokaLayerBuilder {
        MokaLayerBuilder {
            capacity: Capacity::Bytes(64 * 1024 * 1024),
            time_to_idle: None,
        }
    }

    /// Runs pending maintenance (evictions), for tests and measurements.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    /// Entries held (approximate until maintenance ran).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Synchronous lookup (the async trait method calls this).
    pub fn get_now(&self, key: &CacheKey) -> Lookup {
        let generation = self.generations.current(&key.scope);
        match self.cache.get(&hash_str(&key.entry)) {
            Some(stored) if stored.stamp == generation && *stored.text == *key.entry => {
                self.stats.hit();
                let left = stored.expires_at.saturating_duration_since(Instant::now());
                Lookup::Hit(stored.entry.expiring_in(left))
            }
            _ => {
                self.stats.miss();
                Lookup::Miss(FillToken::new(generation))
            }
        }
    }
}

#[async_trait]
impl CacheLayer for MokaLayer {
    fn name(&self) -> String {
        "moka".to_owned()
    }

    async fn get(&self, key: &CacheKey) -> Result<Lookup, CacheError> {
        Ok(self.get_now(key))
    }

    /// A hit counts as [`get_now`](MokaLayer::get_now) counts it; anything else counts nothing
    /// here (moka itself sees the read, as it sees every read).
    fn probe(&self, key: &ProbeKey<'_>) -> Option<CacheEntry> {
        let generation = self
            .generations
            .at(Generations::stripe_of(key.scope_hash()));
        let stored = self.cache.get(&key.entry_hash())?;
        if stored.stamp != generation || !key.is_entry(&stored.text) {
            return None;
        }
        self.stats.hit();
        let left = stored.expires_at.saturating_duration_since(Instant::now());
        Some(stored.entry.expiring_in(left))
    }

    async fn put(
        &self,
        key: &CacheKey,
        entry: CacheEntry,
        ttl: Duration,
        token: &FillToken,
    ) -> Result<(), CacheError> {
        let generation = self.generations.current(&key.scope);
        if generation != token.generation() {
            return Ok(()); // invalidated while the value was being read
        }
        self.cache.insert(
            hash_str(&key.entry),
            Stored {
                text: key.entry.as_str().into(),
                entry,
                stamp: generation,
                ttl,
                expires_at: Instant::now() + ttl,
            },
        );
        Ok(())
    }

    async fn invalidate(&self, scope: &str) -> Result<(), CacheError> {
        self.generations.bump(scope);
        self.stats.invalidation();
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        self.generations.bump_all();
        self.cache.invalidate_all();
        Ok(())
    }

    fn stats(&self) -> Vec<(String, LayerStats)> {
        vec![(self.name(), self.stats.snapshot())]
    }
}
