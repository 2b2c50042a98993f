//! A `get` served by the L1 (moka), by the L2 (Redis), and by DynamoDB, in one run.
//!
//! `scripts/with-services --redis -- cargo bench --features redis --bench cache`
//!
//! Needs the local DynamoDB (and, for the L2 case, Redis) that `scripts/with-services` starts.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use dynamite::cache::{MokaLayer, Tiered};
use dynamite::{Client, Entity};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "cache-bench-users")]
struct User {
    #[dynamite(partition_key)]
    id: String,
    name: String,
    email: String,
    age: u32,
    active: bool,
    tags: Vec<String>,
}

fn user() -> User {
    User {
        id: "u1".into(),
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        age: 36,
        active: true,
        tags: vec!["math".into(), "engines".into()],
    }
}

async fn sdk() -> aws_sdk_dynamodb::Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_dynamodb::Client::new(&config)
}

fn bench(c: &mut Criterion) {
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        eprintln!("cache bench: no AWS_ENDPOINT_URL_DYNAMODB; run it through scripts/with-services --redis");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let prefix = format!("bench{}-", std::process::id());
    let (direct, l1, lfu) = rt.block_on(async {
        let sdk = sdk().await;
        let direct = Client::builder(sdk.clone()).table_prefix(&prefix).build();
        User::ensure_table(&direct).await.unwrap();
        user().put(&direct).await.unwrap();
        let l1 = Client::builder(sdk.clone())
            .table_prefix(&prefix)
            .cache(Tiered::new().layer(MokaLayer::new(64 << 20)))
            .build();
        assert_eq!(
            User::get(&l1, User::key("u1")).await.unwrap(),
            Some(User { ..user() })
        );
        let lfu = Client::builder(sdk)
            .table_prefix(&prefix)
            .cache(dynamite::cache::LfuLayer::new(64 << 20))
            .build();
        User::get(&lfu, User::key("u1")).await.unwrap();
        (direct, l1, lfu)
    });

    let mut group = c.benchmark_group("get");
    group.bench_function("l1_moka", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(User::get(&l1, User::key("u1")).await.unwrap()) })
    });

    group.bench_function("l1_lfu", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(User::get(&lfu, User::key("u1")).await.unwrap()) })
    });

    #[cfg(feature = "redis")]
    if let Ok(url) = std::env::var("DYNAMITE_REDIS_URL") {
        let l2 = rt.block_on(async {
            let redis = dynamite::cache::RedisLayer::builder(url)
                .prefix(format!("{prefix}bench:"))
                .connect()
                .await
                .unwrap();
            let l2 = Client::builder(sdk().await)
                .table_prefix(&prefix)
                .cache(redis)
                .build();
            User::get(&l2, User::key("u1")).await.unwrap();
            l2
        });
        group.bench_function("l2_redis", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(User::get(&l2, User::key("u1")).await.unwrap()) })
        });
    }

    group.bench_function("dynamodb", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(User::get(&direct, User::key("u1")).await.unwrap()) })
    });
    group.finish();
    rt.block_on(async { User::delete_table(&direct).await.unwrap() });
}

criterion_group!(benches, bench);
criterion_main!(benches);
