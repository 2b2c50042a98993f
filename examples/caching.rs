//! L1 (moka) + L2 (Redis) in front of the local DynamoDB: hit rates, a write invalidating a
//! cached read, and a second client instance seeing the invalidation through Redis pub/sub.
//!
//! `scripts/with-services --redis -- cargo run --features redis --example caching`

use std::time::{Duration, Instant};

use dynamite::cache::{MokaLayer, RedisLayer, Tiered};
use dynamite::{Client, Entity};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "caching-example-products")]
#[dynamite(cache(ttl = "5m", queries))]
struct Product {
    #[dynamite(partition_key)]
    sku: String,
    name: String,
    price_cents: u64,
}

/// One "service instance": its own L1 over the shared Redis L2.
async fn instance(prefix: &str, redis_url: &str) -> Result<Client, Box<dyn std::error::Error>> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let l2 = RedisLayer::builder(redis_url)
        .prefix(format!("{prefix}cache:"))
        .connect()
        .await?;
    Ok(Client::builder(aws_sdk_dynamodb::Client::new(&config))
        .table_prefix(prefix)
        .cache(Tiered::new().layer(MokaLayer::new(16 << 20)).layer(l2))
        .build())
}

fn print_stats(label: &str, db: &Client) {
    for (layer, s) in db.cache_stats().layers {
        println!(
            "  {label} {layer:<5} hits {:>4} misses {:>4} hit rate {:>5.1}% faults {}",
            s.hits,
            s.misses,
            100.0 * s.hit_rate(),
            s.faults
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis_url =
        std::env::var("DYNAMITE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("example{}-", std::process::id());
    let a = instance(&prefix, &redis_url).await?;
    let b = instance(&prefix, &redis_url).await?;
    Product::ensure_table(&a).await?;

    let products: Vec<Product> = (0..50)
        .map(|i| Product {
            sku: format!("sku-{i}"),
            name: format!("Product {i}"),
            price_cents: 100 + i,
        })
        .collect();
    Product::batch_write(&a).put_all(&products).await?;

    // A skewed read pattern: a few products are read far more often.
    for round in 0..20u64 {
        for i in 0..(50 / (round + 1)) {
            Product::get(&a, Product::key(format!("sku-{i}"))).await?;
        }
    }
    println!("instance A after 20 rounds of skewed reads:");
    print_stats("A", &a);

    // B reads the same products: its L1 is empty, Redis (L2) answers.
    for i in 0..10 {
        Product::get(&b, Product::key(format!("sku-{i}"))).await?;
    }
    println!("instance B, first reads (served by the shared L2):");
    print_stats("B", &b);

    // A write through A invalidates A's entries before it returns...
    let before = Product::get(&a, Product::key("sku-1"))
        .await?
        .expect("stored");
    Product::update(&a, Product::key("sku-1"))
        .set(Product::PRICE_CENTS, 999)
        .await?;
    let after = Product::get(&a, Product::key("sku-1"))
        .await?
        .expect("stored");
    println!(
        "A: price before {} -> after the write, A reads {}",
        before.price_cents, after.price_cents
    );

    // ... and B's L1 learns of it through Redis pub/sub.
    let start = Instant::now();
    loop {
        let seen = Product::get(&b, Product::key("sku-1"))
            .await?
            .expect("stored");
        if seen.price_cents == 999 {
            println!(
                "B sees the new price {} after {:.1?}",
                seen.price_cents,
                start.elapsed()
            );
            break;
        }
        if start.elapsed() > Duration::from_secs(5) {
            println!("B still sees {} after 5 s", seen.price_cents);
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // Query results are cached too (the entity opts in), and dropped by any write to the table.
    let q = || {
        Product::scan(&a)
            .filter(Product::PRICE_CENTS.ge(140))
            .unbounded()
    };
    let first = q().all().await?.len();
    let second = q().all().await?.len();
    Product {
        sku: "sku-new".into(),
        name: "New".into(),
        price_cents: 500,
    }
    .put(&a)
    .await?;
    let third = q().all().await?.len();
    println!("scan price >= 140: {first} items; again: {second} (from the query cache); after a new product was put: {third}");

    println!("final:");
    print_stats("A", &a);
    print_stats("B", &b);
    a.clear_cache().await;
    Product::delete_table(&a).await?;
    Ok(())
}
