//! How long a write made without dynamite (the raw SDK) stays served from a cached client's
//! cache when the stream invalidator runs: N times, cache an item, leave the stream idle for a
//! random 0 to 800 ms, update the item with the raw SDK, and poll the cached read every
//! millisecond until it returns the new value. Prints p50, p99 and the maximum.
//!
//! `scripts/with-services -- cargo run --release --features streams --example streams_lag [N]`

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamite::cache::MokaLayer;
use dynamite::streams::CacheInvalidator;
use dynamite::{Client, Entity};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "streams-lag", stream = "keys_only")]
struct Counter {
    #[dynamite(partition_key)]
    id: String,
    value: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(60), |a| a.parse())?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sdk = aws_sdk_dynamodb::Client::new(&config);
    let prefix = format!("lag{}-", std::process::id());
    let db = Client::builder(sdk.clone()).table_prefix(&prefix).build();
    Counter::create_table(&db).await?;
    let cached = Client::builder(sdk.clone())
        .table_prefix(&prefix)
        .cache(MokaLayer::new(16 << 20))
        .build();
    let invalidator = CacheInvalidator::builder(&cached, "streams-lag").spawn();
    invalidator.started().await;
    let table = db.table_name("streams-lag");

    let mut lags = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("c{}", i % 10);
        // The reset's own record must reach the invalidator before the item is cached, or
        // it would drop the entry after the read below, and the measured write would find
        // nothing cached.
        let seen = invalidator.stats().records;
        Counter {
            id: id.clone(),
            value: 0,
        }
        .put(&db)
        .await?;
        while invalidator.stats().records == seen {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let cached_value = Counter::get(&cached, Counter::key(&id))
            .await?
            .map(|c| c.value);
        assert_eq!(cached_value, Some(0));
        // An idle stream for a while (0 to 800 ms), as between the writes of a real table:
        // the invalidator's polling has slowed down (up to its 250 ms cap) when the write comes.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..800))).await;
        sdk.update_item()
            .table_name(&table)
            .key("id", AttributeValue::S(id.clone()))
            .update_expression("SET #v = :v")
            .expression_attribute_names("#v", "value")
            .expression_attribute_values(":v", AttributeValue::N((i + 1).to_string()))
            .send()
            .await?;
        let written = Instant::now();
        loop {
            let read = Counter::get(&cached, Counter::key(&id)).await?;
            if read.is_some_and(|c| c.value == (i + 1) as u64) {
                lags.push(written.elapsed());
                break;
            }
            if written.elapsed() > Duration::from_secs(60) {
                return Err(format!("write {i} still stale after 60 s").into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    lags.sort();
    let server = std::env::var("DYNAMITE_TEST_SERVER").unwrap_or_else(|_| "external".into());
    println!(
        "server {server}: {n} external writes; fresh through the cache after p50 {:?}, p99 {:?}, max {:?}",
        percentile(&lags, 50.0),
        percentile(&lags, 99.0),
        lags[lags.len() - 1],
    );
    println!("invalidator: {:?}", invalidator.stats());
    invalidator.stop();
    Counter::delete_table(&db).await?;
    Ok(())
}
