//! Measures, against the same server in one run: `batch_get` of 1,000 keys, 1,000 sequential
//! `get`s, and a hand-written raw-SDK loop of 100-key BatchGetItem calls (unprocessed keys
//! re-sent). Prints medians over several rounds and the ratios.
//!
//! `scripts/with-services -- cargo run --release --features testing --example batch_bench`
//!
//! It runs twice: straight to the server on loopback, and through a loopback proxy that adds a
//! fixed delay to every request (5 ms by default, `SIMULATED_RTT_MS`), standing in for the round
//! trip to a real DynamoDB endpoint. On loopback, moto handles one request at a time, so the
//! server's own per-key work bounds every client; the delayed run shows what batching and
//! concurrency buy when the round trip dominates, as it does against DynamoDB.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use dynamite::testing::FaultProxy;
use dynamite::{Client, Entity, Item};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "batch-bench-items")]
struct Thing {
    #[dynamite(partition_key)]
    id: String,
    name: String,
    size: u32,
}

const KEYS: usize = 1_000;
const ROUNDS: usize = 3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn raw_sdk_batch_get(sdk: &aws_sdk_dynamodb::Client, table: &str, ids: &[String]) -> usize {
    let mut found = 0;
    for chunk in ids.chunks(100) {
        let mut keys: Vec<Item> = chunk
            .iter()
            .map(|id| [("id".to_string(), AttributeValue::S(id.clone()))].into())
            .collect();
        while !keys.is_empty() {
            let out = sdk
                .batch_get_item()
                .request_items(
                    table,
                    KeysAndAttributes::builder()
                        .set_keys(Some(keys))
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            found += out
                .responses
                .as_ref()
                .and_then(|r| r.get(table))
                .map_or(0, Vec::len);
            keys = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
    }
    found
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let setup = Client::from_env().await;
    Thing::ensure_table(&setup).await?;
    let things: Vec<Thing> = (0..KEYS)
        .map(|i| Thing {
            id: format!("t{i:05}"),
            name: format!("thing {i}"),
            size: i as u32,
        })
        .collect();
    Thing::batch_write(&setup).put_all(&things).await?;
    let ids: Vec<String> = things.iter().map(|t| t.id.clone()).collect();
    // Requests in flight for batch_get (the library's default is 8).
    let concurrency: usize = std::env::var("BATCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);

    println!("{KEYS} keys, median of {ROUNDS} rounds, same server, one run:");
    measure("loopback", &setup, &ids, concurrency).await?;

    let rtt: u64 = std::env::var("SIMULATED_RTT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")?;
    let proxy = FaultProxy::with_round_trip(&upstream, Duration::from_millis(rtt)).await;
    let delayed = proxy.client().await;
    measure(
        &format!("+{rtt} ms per request"),
        &delayed,
        &ids,
        concurrency,
    )
    .await?;

    Thing::delete_table(&setup).await?;
    Ok(())
}

async fn measure(
    label: &str,
    db: &Client,
    ids: &[String],
    concurrency: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let table = db.table_name(Thing::schema().table);
    let (mut batch, mut sequential, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let out = Thing::batch_get(db, ids.iter().map(Thing::key))
            .concurrency(concurrency)
            .await?;
        batch.push(start.elapsed());
        assert_eq!(out.items.len(), KEYS);

        let start = Instant::now();
        let mut n = 0;
        for id in ids {
            n += usize::from(Thing::get(db, Thing::key(id)).await?.is_some());
        }
        sequential.push(start.elapsed());
        assert_eq!(n, KEYS);

        let start = Instant::now();
        let n = raw_sdk_batch_get(db.sdk(), &table, ids).await;
        raw.push(start.elapsed());
        assert_eq!(n, KEYS);
    }
    let (b, s, r) = (median(batch), median(sequential), median(raw));
    println!("{label}:");
    println!("  dynamite batch_get        {b:>10.2?}   (concurrency {concurrency})");
    println!(
        "  {KEYS} sequential gets     {s:>10.2?}   ({:.1}x the batch_get time)",
        s.as_secs_f64() / b.as_secs_f64()
    );
    println!(
        "  raw SDK 100-key loop      {r:>10.2?}   ({:.2}x the batch_get time)",
        r.as_secs_f64() / b.as_secs_f64()
    );
    Ok(())
}
