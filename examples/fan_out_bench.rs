//! Measures, against the same server in one run: one fan-out find over 20 partitions
//! (`is_in` on the partition key, Queries run 8 at a time), the same 20 finds one after
//! another, and the 20 finds through `Find::all_of` (8 at a time). Prints medians over
//! several rounds and the ratios.
//!
//! `scripts/with-services -- cargo run --release --features testing --example fan_out_bench`
//!
//! It runs twice: straight to the server on loopback, and through a loopback proxy that adds a
//! fixed delay to every request (5 ms by default, `SIMULATED_RTT_MS`), standing in for the round
//! trip to a real DynamoDB endpoint, where a fan-out's concurrency pays.

use std::time::{Duration, Instant};

use dynamite::ops::Find;
use dynamite::testing::FaultProxy;
use dynamite::{Client, Entity};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "fan-out-bench-orders")]
struct Order {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    placed: u32,
    total: u32,
}

const PARTITIONS: usize = 20;
const PER_PARTITION: usize = 25;
const ROUNDS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn customers() -> Vec<String> {
    (0..PARTITIONS).map(|i| format!("c{i:02}")).collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let setup = Client::from_env().await;
    Order::ensure_table(&setup).await?;
    let orders: Vec<Order> = customers()
        .iter()
        .flat_map(|c| {
            (0..PER_PARTITION).map(move |n| Order {
                customer: c.clone(),
                placed: n as u32,
                total: (n * 13 % 100) as u32,
            })
        })
        .collect();
    Order::batch_write(&setup).put_all(&orders).await?;

    println!(
        "{PARTITIONS} partitions of {PER_PARTITION} items, median of {ROUNDS} rounds, same server, one run:"
    );
    measure("loopback", &setup).await?;

    let rtt: u64 = std::env::var("SIMULATED_RTT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")?;
    let proxy = FaultProxy::with_round_trip(&upstream, Duration::from_millis(rtt)).await;
    let delayed = proxy.client().await;
    measure(&format!("+{rtt} ms per request"), &delayed).await?;

    Order::delete_table(&setup).await?;
    Ok(())
}

async fn measure(label: &str, db: &Client) -> Result<(), Box<dyn std::error::Error>> {
    let all = customers();
    let expected = PARTITIONS * PER_PARTITION;
    let (mut fan_out, mut sequential, mut joined) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let found = Order::find(db)
            .filter(Order::CUSTOMER.is_in(all.clone()))
            .all()
            .await?;
        fan_out.push(start.elapsed());
        assert_eq!(found.len(), expected);

        let start = Instant::now();
        let mut n = 0;
        for c in &all {
            n += Order::find(db)
                .filter(Order::CUSTOMER.eq(c.clone()))
                .all()
                .await?
                .len();
        }
        sequential.push(start.elapsed());
        assert_eq!(n, expected);

        let start = Instant::now();
        let finds = all
            .iter()
            .map(|c| Order::find(db).filter(Order::CUSTOMER.eq(c.clone())));
        let n: usize = Find::all_of(finds, 8).await?.iter().map(Vec::len).sum();
        joined.push(start.elapsed());
        assert_eq!(n, expected);
    }
    let (f, s, j) = (median(fan_out), median(sequential), median(joined));
    println!("{label}:");
    println!("  fan-out find (8 at a time)   {f:>10.2?}");
    println!(
        "  {PARTITIONS} sequential finds          {s:>10.2?}   ({:.1}x the fan-out time)",
        s.as_secs_f64() / f.as_secs_f64()
    );
    println!(
        "  Find::all_of (8 at a time)   {j:>10.2?}   ({:.2}x the fan-out time)",
        j.as_secs_f64() / f.as_secs_f64()
    );
    Ok(())
}
