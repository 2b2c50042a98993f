//! Hit rate of the L1 (`MokaLayer`) on a Zipf(1.0) workload over 100,000 keys, with the layer
//! sized to hold 10% of them. No network: the layer is driven directly, a miss fills it the way
//! the client does.
//!
//! `cargo run --release --example cache_hit_rate`

use std::time::Duration;

use dynamite::cache::{CacheEntry, CacheKey, CacheLayer, LfuLayer, Lookup, MokaLayer};

const KEYS: usize = 100_000;
const REQUESTS: usize = 2_000_000;
const VALUE_BYTES: usize = 200;

/// Zipf(s) over ranks 1..=n by inverse CDF (binary search over the cumulative weights).
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let u = rng.f64();
        self.cdf.partition_point(|c| *c < u)
    }
}

fn key(i: usize) -> CacheKey {
    CacheKey {
        entry: format!("users|User:0|i|0|Su{i}"),
        scope: format!("users|i|Su{i}"),
    }
}

#[tokio::main]
async fn main() {
    let entry = CacheEntry::from_bytes(vec![7u8; VALUE_BYTES]);
    // What one entry weighs in the layer: key + value (+ the layer's fixed overhead).
    let weight = key(KEYS).entry.len() + entry.size();
    let bytes = (KEYS / 10 * weight) as u64;
    let entries = (KEYS / 10) as u64;
    // Perfect LFU keeps the 10% most frequent keys: the best any policy can do here.
    let harmonic = |n: usize| (1..=n).map(|k| 1.0 / k as f64).sum::<f64>();
    println!(
        "Zipf(1.0) over {KEYS} keys, L1 holding 10% ({} entries), {REQUESTS} requests after a warm-up of {}; optimum (perfect LFU) {:.1}%",
        KEYS / 10,
        REQUESTS / 4,
        100.0 * harmonic(KEYS / 10) / harmonic(KEYS)
    );
    let layers: Vec<(&str, Box<dyn CacheLayer>)> = vec![
        (
            "LfuLayer,  bounded by bytes  ",
            Box::new(LfuLayer::builder().max_bytes(bytes).build()),
        ),
        (
            "LfuLayer,  bounded by entries",
            Box::new(LfuLayer::builder().max_entries(entries).build()),
        ),
        (
            "MokaLayer, bounded by bytes  ",
            Box::new(MokaLayer::builder().max_bytes(bytes).build()),
        ),
        (
            "MokaLayer, bounded by entries",
            Box::new(MokaLayer::builder().max_entries(entries).build()),
        ),
    ];
    for (name, l1) in layers {
        run(name, l1.as_ref(), &entry).await;
    }
}

async fn run(name: &str, l1: &dyn CacheLayer, entry: &CacheEntry) {
    let zipf = Zipf::new(KEYS, 1.0);
    let mut rng = fastrand::Rng::with_seed(42);

    // Warm-up: one pass so the admission policy has seen the workload.
    for _ in 0..REQUESTS / 4 {
        let k = key(zipf.sample(&mut rng));
        if let Lookup::Miss(token) = l1.get(&k).await.unwrap() {
            l1.put(&k, entry.clone(), Duration::from_secs(3600), &token)
                .await
                .unwrap();
        }
    }
    let before = l1.stats()[0].1;
    for _ in 0..REQUESTS {
        let k = key(zipf.sample(&mut rng));
        if let Lookup::Miss(token) = l1.get(&k).await.unwrap() {
            l1.put(&k, entry.clone(), Duration::from_secs(3600), &token)
                .await
                .unwrap();
        }
    }
    let after = l1.stats()[0].1;
    let hits = after.hits - before.hits;
    let misses = after.misses - before.misses;
    println!(
        "  {name}: hit rate {:.1}% ({hits} hits, {misses} misses, {} evictions)",
        100.0 * hits as f64 / (hits + misses) as f64,
        after.evictions
    );
}
