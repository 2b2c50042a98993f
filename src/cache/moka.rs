//! [`MokaLayer`]: the in-process L1, on `moka::sync::Cache`, bounded in bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::notification::RemovalCause;
use moka::ops::compute::Op;

use super::keys::hash_str;
use super::{
    CacheEntry, CacheError, CacheKey, CacheLayer, FillToken, Generations, LayerStats, Lookup,
    PassThrough, ProbeKey, StatsCounter,
};

/// Entries are keyed by [`hash_str`] of their key and hold the full key, checked on every
/// lookup: two keys of one hash never answer for each other (they take turns in the slot).
/// Shared, so that a read clones one `Arc`.
struct Stored {
    text: Box<str>,
    entry: CacheEntry,
    stamp: u64,
    /// Checked on every read: an entry past it is never served.
    expires_at: Instant,
}

/// The in-process cache layer: capacity in bytes (a weigher), per-entry time to live, optional
/// time to idle. Entries keep their decoded value, so a hit returns a clone of the entity
/// without decoding.
///
/// # Expiry
///
/// Each entry carries its own expiry time, checked by the layer on every lookup: an expired
/// entry is never served; it is a miss, and the lookup removes it. Moka itself is not given
/// per-entry expiry (its expiry policy costs every read a timer-wheel and queue update), so an
/// expired entry that is never looked up again stays in memory until the capacity bound evicts
/// it, like any cold entry; the memory held is bounded by the capacity either way. To also
/// drop such entries on a timer, set [`MokaLayerBuilder::time_to_live`] (an upper bound for
/// every entry, whatever its own time to live) or [`MokaLayerBuilder::time_to_idle`].
///
/// ```
/// let l1 = dynamite::cache::MokaLayer::builder()
///     .max_bytes(64 * 1024 * 1024)
///     .time_to_idle(std::time::Duration::from_secs(120))
///     .build();
/// ```
pub struct MokaLayer {
    cache: moka::sync::Cache<u64, Arc<Stored>, PassThrough>,
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
    time_to_live: Option<Duration>,
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

    /// Drop every entry this long after it was stored, even one whose own time to live is
    /// longer (none by default). Entries past their own time to live are never served anyway
    /// (see [`MokaLayer`]'s expiry); this bounds how long one that is never read again stays in
    /// memory when the capacity bound does not push it out first.
    pub fn time_to_live(mut self, d: Duration) -> Self {
        self.time_to_live = Some(d);
        self
    }

    /// The layer.
    pub fn build(self) -> MokaLayer {
        let stats = Arc::new(StatsCounter::named("moka"));
        let evictions = stats.clone();
        let mut builder = moka::sync::Cache::builder();
        builder = match self.capacity {
            Capacity::Bytes(bytes) => {
                builder
                    .max_capacity(bytes)
                    .weigher(|_: &u64, v: &Arc<Stored>| {
                        u32::try_from(v.text.len() + v.entry.size()).unwrap_or(u32::MAX)
                    })
            }
            Capacity::Entries(entries) => builder.max_capacity(entries),
        };
        let mut builder = builder.eviction_listener(move |_k, _v, cause| {
            if cause == RemovalCause::Size {
                evictions.eviction();
            }
        });
        if let Some(tti) = self.time_to_idle {
            builder = builder.time_to_idle(tti);
        }
        if let Some(ttl) = self.time_to_live {
            builder = builder.time_to_live(ttl);
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
            time_to_live: None,
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
        let hash = hash_str(&key.entry);
        let found = self.cache.get(&hash).and_then(|stored| {
            if stored.stamp != generation || *stored.text != *key.entry {
                return None;
            }
            self.live(hash, &stored)
        });
        match found {
            Some(entry) => {
                self.stats.hit();
                Lookup::Hit(entry)
            }
            None => {
                self.stats.miss();
                Lookup::Miss(FillToken::new(generation))
            }
        }
    }

    /// The entry of `stored` (found under `hash`) with the time it has left, or `None` when it
    /// expired: then it is removed, unless another entry replaced it meanwhile.
    fn live(&self, hash: u64, stored: &Arc<Stored>) -> Option<CacheEntry> {
        let now = Instant::now();
        if now < stored.expires_at {
            return Some(stored.entry.clone().expiring_in(stored.expires_at - now));
        }
        self.cache
            .entry(hash)
            .and_compute_with(|current| match current {
                Some(current) if Arc::ptr_eq(current.value(), stored) => Op::Remove,
                _ => Op::Nop,
            });
        None
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
        let hash = key.entry_hash();
        let stored = self.cache.get(&hash)?;
        if stored.stamp != generation || !key.is_entry(&stored.text) {
            return None;
        }
        let entry = self.live(hash, &stored)?;
        self.stats.hit();
        Some(entry)
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
            Arc::new(Stored {
                text: key.entry.as_str().into(),
                entry,
                stamp: generation,
                expires_at: Instant::now() + ttl,
            }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> CacheKey {
        CacheKey {
            entry: format!("t|E:0|i|0|S{i}"),
            scope: format!("t|i|S{i}"),
        }
    }

    fn fill(l: &MokaLayer, k: &CacheKey, ttl: Duration) {
        if let Lookup::Miss(token) = l.get_now(k) {
            futures::executor::block_on(l.put(
                k,
                CacheEntry::from_bytes(vec![1u8; 10]),
                ttl,
                &token,
            ))
            .expect("put");
        }
    }

    #[test]
    fn hit_after_fill_and_invalidation_and_stale_tokens() {
        let l = MokaLayer::builder().max_entries(1000).build();
        let k = key(1);
        let Lookup::Miss(stale) = l.get_now(&k) else {
            panic!("empty layer")
        };
        fill(&l, &k, Duration::from_secs(60));
        let Lookup::Hit(entry) = l.get_now(&k) else {
            panic!("filled")
        };
        assert!(entry
            .expires_in()
            .is_some_and(|left| left <= Duration::from_secs(60)));
        futures::executor::block_on(l.invalidate(&k.scope)).expect("invalidate");
        assert!(matches!(l.get_now(&k), Lookup::Miss(_)), "invalidated");
        futures::executor::block_on(l.put(
            &k,
            CacheEntry::from_bytes(vec![2]),
            Duration::from_secs(60),
            &stale,
        ))
        .expect("put");
        assert!(
            matches!(l.get_now(&k), Lookup::Miss(_)),
            "a fill with a token from before the invalidation is refused"
        );
        let stats = l.stats()[0].1;
        assert_eq!((stats.hits, stats.misses), (1, 4));
    }

    #[test]
    fn an_expired_entry_is_not_served_and_is_removed() {
        let l = MokaLayer::builder().max_entries(1000).build();
        let (short, long) = (key(1), key(2));
        fill(&l, &short, Duration::from_millis(1));
        fill(&l, &long, Duration::from_secs(60));
        l.run_pending_tasks();
        assert_eq!(l.entry_count(), 2);
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(l.get_now(&short), Lookup::Miss(_)), "expired");
        assert!(matches!(l.get_now(&long), Lookup::Hit(_)));
        l.run_pending_tasks();
        assert_eq!(l.entry_count(), 1, "the expired entry was removed");
        assert!(!l.cache.contains_key(&hash_str(&short.entry)));
    }

    #[test]
    fn an_expired_entry_is_not_served_by_a_probe() {
        let l = MokaLayer::builder().max_entries(1000).build();
        let k = key(1);
        fill(&l, &k, Duration::from_millis(1));
        let hash = hash_str(&k.entry);
        let stored = l.cache.get(&hash).expect("filled");
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.live(hash, &stored).is_none(), "expired");
        assert!(!l.cache.contains_key(&hash), "and removed");
    }

    #[test]
    fn removing_an_expired_entry_spares_a_newer_one() {
        let l = MokaLayer::builder().max_entries(1000).build();
        let k = key(1);
        fill(&l, &k, Duration::from_millis(1));
        let hash = hash_str(&k.entry);
        let old = l.cache.get(&hash).expect("filled");
        std::thread::sleep(Duration::from_millis(5));
        // Refilled by someone else between our read and our removal.
        fill(&l, &k, Duration::from_secs(60));
        assert!(l.live(hash, &old).is_none(), "the old one is expired");
        assert!(matches!(l.get_now(&k), Lookup::Hit(_)), "the new one stays");
    }

    #[test]
    fn a_global_time_to_live_bounds_every_entry() {
        let l = MokaLayer::builder()
            .max_entries(1000)
            .time_to_live(Duration::from_millis(1))
            .build();
        let k = key(1);
        fill(&l, &k, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(l.get_now(&k), Lookup::Miss(_)));
    }

    #[test]
    fn two_keys_of_one_hash_never_answer_for_each_other() {
        let l = MokaLayer::builder().max_entries(1000).build();
        let (a, b) = (key(1), key(2));
        fill(&l, &a, Duration::from_secs(60));
        // Plant `a`'s entry under `b`'s hash, as a collision would.
        let stored = l.cache.get(&hash_str(&a.entry)).expect("filled");
        l.cache.insert(hash_str(&b.entry), stored);
        assert!(matches!(l.get_now(&b), Lookup::Miss(_)));
    }
}
