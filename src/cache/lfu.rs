//! [`LfuLayer`]: an in-process L1 with frequency-based eviction, for skewed workloads.
//!
//! Every lookup counts the key in a frequency sketch (count-min, 4 rows of 16-bit counters,
//! halved every `aging` × capacity lookups so that old popularity fades). When the layer is
//! full, a fill is admitted only if its key is more frequent than the least frequent of a few
//! sampled resident entries, which it then replaces ("sampled LFU", as Redis's `allkeys-lfu`).
//! On a Zipf(1.0) workload this keeps close to the most frequent keys, the best a cache of that
//! size can hold (see the README's hit-rate figures); moka's TinyLFU halves its sketch faster
//! and evicts by recency, which suits shifting workloads better.
//!
//! Entries are kept in shards (a mutex each), bounded in bytes or entries, with a time to
//! live per entry; scopes and fill tokens work as in every layer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::keys::hash_str;
use super::{
    CacheEntry, CacheError, CacheKey, CacheLayer, FillToken, Generations, LayerStats, Lookup,
    PassThrough, ProbeKey, StatsCounter,
};

const SHARDS: usize = 16;
const ROWS: usize = 4;

/// Builds an [`LfuLayer`].
#[must_use]
#[derive(Debug, Clone)]
pub struct LfuLayerBuilder {
    capacity: u64,
    by_bytes: bool,
    samples: usize,
    aging: u64,
}

impl LfuLayerBuilder {
    /// Capacity in bytes of keys and encoded values (the default, 64 MiB).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.capacity = bytes;
        self.by_bytes = true;
        self
    }

    /// Capacity in entries.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.capacity = entries;
        self.by_bytes = false;
        self
    }

    /// Resident entries sampled to find a victim (8 by default).
    pub fn samples(mut self, n: usize) -> Self {
        self.samples = n.max(1);
        self
    }

    /// Frequencies are halved every `factor` × (entries held) lookups (64 by default): lower
    /// adapts faster to a changing workload, higher keeps a stable hot set better.
    pub fn aging(mut self, factor: u64) -> Self {
        self.aging = factor.max(1);
        self
    }

    /// The layer.
    pub fn build(self) -> LfuLayer {
        let per_shard = (self.capacity / SHARDS as u64).max(1);
        LfuLayer {
            shards: (0..SHARDS)
                .map(|i| {
                    Mutex::new(Shard {
                        map: HashMap::default(),
                        keys: Vec::new(),
                        used: 0,
                        sketch: Sketch::new(),
                        rng: fastrand::Rng::with_seed(0x5eed + i as u64),
                    })
                })
                .collect(),
            per_shard,
            by_bytes: self.by_bytes,
            samples: self.samples,
            aging: self.aging,
            generations: Generations::new(),
            stats: Arc::new(StatsCounter::named("lfu")),
        }
    }
}

/// The frequency-based in-process layer: sampled-LFU eviction over a slowly aged frequency
/// sketch (see the source of `cache/lfu.rs` for the details).
///
/// ```
/// let l1 = dynamite::cache::LfuLayer::builder().max_bytes(64 << 20).build();
/// ```
pub struct LfuLayer {
    shards: Box<[Mutex<Shard>]>,
    per_shard: u64,
    by_bytes: bool,
    samples: usize,
    aging: u64,
    generations: Generations,
    stats: Arc<StatsCounter>,
}

impl std::fmt::Debug for LfuLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LfuLayer")
            .field("entries", &self.entry_count())
            .field("capacity_per_shard", &self.per_shard)
            .field("by_bytes", &self.by_bytes)
            .finish()
    }
}

struct Slot {
    /// The entry key ([`CacheKey::entry`]): the map is keyed by its hash, so a lookup checks it.
    text: Box<str>,
    entry: CacheEntry,
    stamp: u64,
    /// The generation stripe of the entry's scope.
    stripe: usize,
    expires_at: Instant,
    weight: u64,
    /// Position in `Shard::keys`.
    pos: usize,
}

/// Entries by [`hash_str`] of their key; each slot holds its full key, checked on every lookup,
/// so two keys of one hash never answer for each other (they take turns in the slot).
struct Shard {
    map: HashMap<u64, Slot, PassThrough>,
    /// The hashes in `map`, for sampling.
    keys: Vec<u64>,
    used: u64,
    sketch: Sketch,
    rng: fastrand::Rng,
}

impl Shard {
    fn remove(&mut self, hash: u64) -> Option<Slot> {
        let slot = self.map.remove(&hash)?;
        self.keys.swap_remove(slot.pos);
        if let Some(moved) = self.keys.get(slot.pos) {
            self.map.get_mut(moved).expect("indexed").pos = slot.pos;
        }
        self.used -= slot.weight;
        Some(slot)
    }
}

/// Count-min sketch with 16-bit counters.
struct Sketch {
    counters: Vec<u16>,
    mask: usize,
    additions: u64,
}

impl Sketch {
    fn new() -> Self {
        let width = 1 << 13;
        Sketch {
            counters: vec![0; width * ROWS],
            mask: width - 1,
            additions: 0,
        }
    }

    fn index(&self, hash: u64, row: usize) -> usize {
        let h = hash.wrapping_mul(
            [
                0x9e37_79b9_7f4a_7c15,
                0xc2b2_ae3d_27d4_eb4f,
                0x1656_67b1_9e37_79f9,
                0x27d4_eb2f_1656_67c5,
            ][row],
        );
        row * (self.mask + 1) + ((h >> 32) as usize & self.mask)
    }

    fn increment(&mut self, hash: u64, age_after: u64) {
        for row in 0..ROWS {
            let i = self.index(hash, row);
            self.counters[i] = self.counters[i].saturating_add(1);
        }
        self.additions += 1;
        if self.additions >= age_after {
            self.counters.iter_mut().for_each(|c| *c /= 2);
            self.additions = 0;
        }
    }

    fn estimate(&self, hash: u64) -> u16 {
        (0..ROWS)
            .map(|row| self.counters[self.index(hash, row)])
            .min()
            .unwrap_or(0)
    }
}

impl LfuLayer {
    /// A builder (64 MiB, 8 samples, aging 64).
    pub fn builder() -> LfuLayerBuilder {
        LfuLayerBuilder {
            capacity: 64 * 1024 * 1024,
            by_bytes: true,
            samples: 8,
            aging: 64,
        }
    }

    /// A layer holding at most `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        Self::builder().max_bytes(max_bytes).build()
    }

    /// Entries held.
    pub fn entry_count(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().expect("shard").map.len() as u64)
            .sum()
    }

    /// Bits the map does not use for its buckets or tags.
    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        &self.shards[((hash >> 32) as usize) % SHARDS]
    }

    fn age_after(&self, shard: &Shard) -> u64 {
        self.aging * (shard.map.len() as u64).max(64)
    }

    /// Synchronous lookup (the async trait method calls this).
    pub fn get_now(&self, key: &CacheKey) -> Lookup {
        let generation = self.generations.current(&key.scope);
        let hash = hash_str(&key.entry);
        let mut shard = self.shard(hash).lock().expect("shard");
        let age_after = self.age_after(&shard);
        shard.sketch.increment(hash, age_after);
        let now = Instant::now();
        match shard.map.get(&hash) {
            Some(slot) if *slot.text != *key.entry => {
                self.stats.miss();
                Lookup::Miss(FillToken::new(generation))
            }
            Some(slot) if slot.stamp == generation && now < slot.expires_at => {
                self.stats.hit();
                let left = slot.expires_at - now;
                Lookup::Hit(slot.entry.clone().expiring_in(left))
            }
            Some(_) => {
                // Expired or invalidated: free the room now.
                shard.remove(hash);
                self.stats.miss();
                Lookup::Miss(FillToken::new(generation))
            }
            None => {
                self.stats.miss();
                Lookup::Miss(FillToken::new(generation))
            }
        }
    }

    /// [`CacheLayer::probe`]: a hit counts as [`get_now`](Self::get_now) counts it (stats and
    /// frequency); anything else leaves no trace, for `get` to do the real lookup.
    fn probe_now(&self, key: &ProbeKey<'_>) -> Option<CacheEntry> {
        let generation = self
            .generations
            .at(Generations::stripe_of(key.scope_hash()));
        let hash = key.entry_hash();
        let mut shard = self.shard(hash).lock().expect("shard");
        let slot = shard.map.get(&hash)?;
        if slot.stamp != generation {
            return None;
        }
        let now = Instant::now();
        let left = slot.expires_at.checked_duration_since(now)?;
        if left.is_zero() || !key.is_entry(&slot.text) {
            return None;
        }
        let entry = slot.entry.clone().expiring_in(left);
        let age_after = self.age_after(&shard);
        shard.sketch.increment(hash, age_after);
        self.stats.hit();
        Some(entry)
    }

    fn put_now(&self, key: &CacheKey, entry: CacheEntry, ttl: Duration, token: &FillToken) {
        let stripe = self.generations.stripe(&key.scope);
        let generation = self.generations.at(stripe);
        if generation != token.generation() {
            return; // invalidated while the value was being read
        }
        let weight = if self.by_bytes {
            (key.entry.len() + entry.size()) as u64
        } else {
            1
        };
        if weight > self.per_shard {
            return;
        }
        let hash = hash_str(&key.entry);
        let mut shard = self.shard(hash).lock().expect("shard");
        // Whatever held the slot (this key, or rarely another of the same hash) gives way.
        shard.remove(hash);
        let now = Instant::now();
        let frequency = shard.sketch.estimate(hash);
        while shard.used + weight > self.per_shard {
            // The least frequent of a few sampled residents (expired ones first).
            let mut victim: Option<(usize, u16)> = None;
            for _ in 0..self.samples.min(shard.keys.len()) {
                let len = shard.keys.len();
                let pos = shard.rng.usize(..len);
                let name = shard.keys[pos];
                let slot = &shard.map[&name];
                let f = if slot.expires_at <= now || slot.stamp != self.generations.at(slot.stripe)
                {
                    0
                } else {
                    shard.sketch.estimate(name)
                };
                if victim.is_none_or(|(_, vf)| f < vf) {
                    victim = Some((pos, f));
                }
            }
            let Some((pos, victim_frequency)) = victim else {
                return;
            };
            if victim_frequency >= frequency && victim_frequency > 0 {
                return; // not admitted: what is held is used more
            }
            let name = shard.keys[pos];
            shard.remove(name);
            self.stats.eviction();
        }
        let pos = shard.keys.len();
        shard.keys.push(hash);
        shard.used += weight;
        shard.map.insert(
            hash,
            Slot {
                text: key.entry.as_str().into(),
                entry,
                stamp: generation,
                stripe,
                expires_at: now + ttl,
                weight,
                pos,
            },
        );
    }
}

#[async_trait]
impl CacheLayer for LfuLayer {
    fn name(&self) -> String {
        "lfu".to_owned()
    }

    async fn get(&self, key: &CacheKey) -> Result<Lookup, CacheError> {
        Ok(self.get_now(key))
    }

    fn probe(&self, key: &ProbeKey<'_>) -> Option<CacheEntry> {
        self.probe_now(key)
    }

    async fn put(
        &self,
        key: &CacheKey,
        entry: CacheEntry,
        ttl: Duration,
        token: &FillToken,
    ) -> Result<(), CacheError> {
        self.put_now(key, entry, ttl, token);
        Ok(())
    }

    async fn invalidate(&self, scope: &str) -> Result<(), CacheError> {
        self.generations.bump(scope);
        self.stats.invalidation();
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        self.generations.bump_all();
        for shard in self.shards.iter() {
            let mut shard = shard.lock().expect("shard");
            shard.map.clear();
            shard.keys.clear();
            shard.used = 0;
        }
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

    fn fill(l: &LfuLayer, k: &CacheKey, ttl: Duration) {
        if let Lookup::Miss(token) = l.get_now(k) {
            l.put_now(k, CacheEntry::from_bytes(vec![1u8; 10]), ttl, &token);
        }
    }

    #[test]
    fn hit_after_fill_and_invalidation_and_stale_tokens() {
        let l = LfuLayer::builder().max_entries(1000).build();
        let k = key(1);
        let Lookup::Miss(stale) = l.get_now(&k) else {
            panic!("empty layer")
        };
        fill(&l, &k, Duration::from_secs(60));
        assert!(matches!(l.get_now(&k), Lookup::Hit(_)));
        l.generations.bump(&k.scope);
        assert!(matches!(l.get_now(&k), Lookup::Miss(_)), "invalidated");
        l.put_now(
            &k,
            CacheEntry::from_bytes(vec![2]),
            Duration::from_secs(60),
            &stale,
        );
        assert!(
            matches!(l.get_now(&k), Lookup::Miss(_)),
            "a fill with a token from before the invalidation is refused"
        );
    }

    #[test]
    fn entries_expire() {
        let l = LfuLayer::builder().max_entries(1000).build();
        let k = key(1);
        fill(&l, &k, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(l.get_now(&k), Lookup::Miss(_)));
        assert_eq!(l.entry_count(), 0, "the expired entry was dropped");
    }

    #[test]
    fn capacity_is_a_bound_and_frequent_keys_stay() {
        let l = LfuLayer::builder().max_entries(SHARDS as u64 * 10).build();
        // Key 0..10 are read often; then a flood of one-off keys must not push them out.
        for _ in 0..50 {
            for i in 0..10 {
                fill(&l, &key(i), Duration::from_secs(60));
            }
        }
        for i in 1000..5000 {
            fill(&l, &key(i), Duration::from_secs(60));
        }
        assert!(l.entry_count() <= SHARDS as u64 * 10);
        let hot_held = (0..10)
            .filter(|i| matches!(l.get_now(&key(*i)), Lookup::Hit(_)))
            .count();
        assert_eq!(hot_held, 10, "one-off keys never displace frequent ones");
    }

    #[test]
    fn bytes_bound_counts_key_and_value() {
        let l = LfuLayer::builder().max_bytes(SHARDS as u64 * 500).build();
        for i in 0..10_000 {
            fill(&l, &key(i), Duration::from_secs(60));
        }
        let used: u64 = l.shards.iter().map(|s| s.lock().unwrap().used).sum();
        assert!(used <= SHARDS as u64 * 500, "{used}");
    }
}
