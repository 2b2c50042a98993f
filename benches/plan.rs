//! Building and planning a query: no network. `cargo bench --bench plan`.

use criterion::{criterion_group, criterion_main, Criterion};
use dynamite::{Client, Entity};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "StatusIndex", projection = include(name, email)))]
#[dynamite(global_index(name = "EmailIndex", projection = keys_only))]
#[dynamite(local_index(name = "ByScore"))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    region: String,
    #[dynamite(index_key(index = "StatusIndex", partition))]
    status: String,
    #[dynamite(index_key(index = "StatusIndex", sort))]
    created_at: i64,
    #[dynamite(index_key(index = "ByScore", sort))]
    score: u32,
    #[dynamite(index_key(index = "EmailIndex", partition))]
    email: String,
    name: String,
    age: u32,
}

fn client() -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .build();
    Client::new(aws_sdk_dynamodb::Client::from_conf(config))
}

fn bench(c: &mut Criterion) {
    let db = client();
    let mut group = c.benchmark_group("plan");
    group.bench_function("get_item", |b| {
        b.iter(|| {
            User::find(&db)
                .filter(User::ID.eq(black_box("u1")))
                .filter(User::REGION.eq("eu"))
                .explain()
                .unwrap()
        })
    });
    group.bench_function("query_table_sort_and_filter", |b| {
        b.iter(|| {
            User::find(&db)
                .filter(User::ID.eq(black_box("u1")))
                .filter(User::REGION.begins_with("eu-"))
                .filter(User::AGE.gt(30).and(User::NAME.ne("x")))
                .limit(50)
                .explain()
                .unwrap()
        })
    });
    group.bench_function("query_auto_gsi", |b| {
        b.iter(|| {
            User::find(&db)
                .filter(User::STATUS.eq(black_box("active")))
                .filter(User::CREATED_AT.between(1_000, 2_000))
                .select([User::NAME, User::EMAIL])
                .explain()
                .unwrap()
        })
    });
    group.bench_function("scan_required_error", |b| {
        b.iter(|| {
            User::find(&db)
                .filter(User::AGE.gt(black_box(30)))
                .explain()
                .unwrap_err()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
