//! DynamoDB Streams against the local server: typed change records from a consumer, the same
//! records from a Lambda event, and the cache invalidator making a write of another writer
//! (the raw SDK) visible through a cached client.
//!
//! `scripts/with-services -- cargo run --features streams --example streams`

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamite::cache::MokaLayer;
use dynamite::streams::{CacheInvalidator, Change, InMemoryCheckpoints, StreamConsumer};
use dynamite::{Client, Entity};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "streams-example-users", stream = "new_and_old_images")]
struct User {
    #[dynamite(partition_key)]
    id: String,
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sdk = aws_sdk_dynamodb::Client::new(&config);
    let prefix = format!("ex{}-", std::process::id());
    let db = Client::builder(sdk.clone()).table_prefix(&prefix).build();
    User::create_table(&db).await?;

    // 1. Typed change records, resumable from checkpoints.
    let checkpoints = InMemoryCheckpoints::new();
    let mut consumer = StreamConsumer::builder(&db, "streams-example-users")
        .checkpoints(checkpoints.clone())
        .build();
    let ada = User {
        id: "u1".into(),
        name: "Ada".into(),
    };
    ada.put(&db).await?;
    User::update(&db, User::key("u1"))
        .set(User::NAME, "Ada Lovelace")
        .await?;
    User::delete(&db, User::key("u1")).await?;
    let mut seen = 0;
    while seen < 3 {
        let batch = consumer.next_batch().await?;
        for record in batch.records.iter().cloned() {
            seen += 1;
            match record.decode::<User>()?.change {
                Change::Insert(new) => println!("insert: {}", new.name),
                Change::Modify(old, new) => println!("modify: {} -> {}", old.name, new.name),
                Change::Remove(old) => println!("remove: {}", old.name),
            }
        }
        consumer.commit(&batch).await?;
    }
    let stream = consumer.stream_arn().await?;
    println!("checkpoints saved: {} (stream {stream})", checkpoints.len());

    // 2. The cache invalidator: a cached client sees a write made without dynamite.
    let cached = Client::builder(sdk.clone())
        .table_prefix(&prefix)
        .cache(MokaLayer::new(16 << 20))
        .build();
    let invalidator = CacheInvalidator::builder(&cached, "streams-example-users").spawn();
    invalidator.started().await;
    User {
        id: "u2".into(),
        name: "Grace".into(),
    }
    .put(&db)
    .await?;
    // (Its own record reaches the invalidator first; only then is the item cached.)
    while invalidator.stats().records == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cached_name = User::get(&cached, User::key("u2")).await?.map(|u| u.name);
    println!("cached read: {cached_name:?}");
    sdk.update_item()
        .table_name(db.table_name("streams-example-users"))
        .key("id", AttributeValue::S("u2".into()))
        .update_expression("SET #n = :n")
        .expression_attribute_names("#n", "name")
        .expression_attribute_values(":n", AttributeValue::S("Grace Hopper".into()))
        .send()
        .await?;
    let written = Instant::now();
    loop {
        let user = User::get(&cached, User::key("u2")).await?;
        if user.is_some_and(|u| u.name == "Grace Hopper") {
            println!("fresh after an external write: {:?}", written.elapsed());
            break;
        }
        if written.elapsed() > Duration::from_secs(30) {
            return Err("the cached read stayed stale".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("invalidator: {:?}", invalidator.stats());
    invalidator.stop();

    User::delete_table(&db).await?;
    Ok(())
}
