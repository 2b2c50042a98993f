//! Import 10,000 items with batch_write, read them back with batch_get, and print the
//! requests made, the retries, and the time taken.
//!
//! `scripts/with-services -- cargo run --release --example batch`

use std::time::Instant;

use dynamite::{Client, Entity};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "batch-example-readings")]
struct Reading {
    #[dynamite(partition_key)]
    sensor: String,
    #[dynamite(sort_key)]
    at: u64,
    celsius: f64,
    tags: Vec<String>,
}

const ITEMS: u64 = 10_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Client::from_env().await;
    Reading::ensure_table(&db).await?;

    let readings: Vec<Reading> = (0..ITEMS)
        .map(|i| Reading {
            sensor: format!("sensor-{}", i % 100),
            at: i,
            celsius: 20.0 + (i % 50) as f64 / 10.0,
            tags: vec!["import".into()],
        })
        .collect();

    let start = Instant::now();
    let written = Reading::batch_write(&db).put_all(&readings).await?;
    println!(
        "batch_write: {} puts in {} requests ({} unprocessed-item retries) in {:.2?}",
        written.puts,
        written.stats.requests,
        written.stats.unprocessed_retries,
        start.elapsed()
    );

    let start = Instant::now();
    let keys = readings.iter().map(|r| r.primary_key());
    let read = Reading::batch_get(&db, keys).await?;
    println!(
        "batch_get: {} found, {} missing, in {} requests ({} unprocessed-key retries) in {:.2?}",
        read.items.len(),
        read.missing.len(),
        read.stats.requests,
        read.stats.unprocessed_retries,
        start.elapsed()
    );
    assert_eq!(read.items, readings, "every item read back, in input order");
    println!("every item read back, in input order");

    Reading::delete_table(&db).await?;
    Ok(())
}
