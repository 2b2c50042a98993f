//! The README's code blocks, compiled and run against the local server. Each ```rust block of
//! README.md appears below verbatim (indentation aside), with the set-up it needs around it;
//! `every_readme_block_is_here` fails when a block is edited in one place and not the other.

// The blocks are the README's, verbatim: their `pub` stays.
#![allow(unreachable_pub)]

use std::collections::HashSet;

use crate::support;
use dynamite::{Client, Cursor, Entity, RetryPolicy, Update};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// The README's ```rust blocks, each as trimmed lines.
fn readme_blocks() -> Vec<Vec<String>> {
    let readme = include_str!("../../README.md");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```rust") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().expect("in a block")),
            (Some(block), _) => block.push(line.trim().to_owned()),
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_readme_block_is_here() {
    let here: Vec<String> = include_str!("readme.rs")
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    let blocks = readme_blocks();
    assert!(blocks.len() >= 4, "README blocks found: {}", blocks.len());
    for block in blocks {
        let found = here
            .windows(block.len())
            .any(|window| window == block.as_slice());
        assert!(
            found,
            "this README block is not in tests/it/readme.rs (copy it there, with what it needs \
             around it):\n{}",
            block.join("\n")
        );
    }
}

/// A client for the test server whose tables live under a prefix of their own: the README's
/// `Client::from_env()` with the prefix the other tests use.
async fn from_env() -> Client {
    support::client().await
}

#[rustfmt::skip] // the README's layout, kept verbatim
#[tokio::test]
async fn readme_items_and_queries() -> dynamite::Result<()> {
    // Set-up for the introduction (items in a block are visible before their declaration).
    let user = User {
        id: "u1".into(),
        status: "active".into(),
        created_at: 5,
        name: "Ada".into(),
        email: "ada@example.com".into(),
        logins: 0,
        expires_at: None,
        version: 0,
    };
    // The README's own client has no table prefix, so the table is "users" itself (no other
    // test uses it); a leftover from an earlier run against the same server goes first.
    User::delete_table(&Client::from_env().await).if_exists().await?;

    // README: the introduction.
    use dynamite::{Client, Entity};
    use serde::{Deserialize, Serialize};

    #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[dynamite(table = "users")]
    #[dynamite(global_index(name = "StatusIndex", projection = include(name, email, logins)))]
    pub struct User {
        #[dynamite(partition_key)]
        pub id: String,
        #[dynamite(index_key(index = "StatusIndex", partition))]
        pub status: String,
        #[dynamite(index_key(index = "StatusIndex", sort))]
        pub created_at: i64,
        pub name: String,
        #[serde(rename = "mail")]
        pub email: String,
        pub logins: u64,
        #[dynamite(ttl)]
        pub expires_at: Option<i64>,
        #[dynamite(version)]
        pub version: u64,
    }

    let db = Client::from_env().await;                 // AWS_ENDPOINT_URL_DYNAMODB is honoured
    User::ensure_table(&db).await?;                    // from the metadata; idempotent, waits for ACTIVE
    user.put(&db).await?;                              // version attribute => optimistic lock
    let u: Option<User> = User::get(&db, User::key("u1")).consistent().await?;
    User::update(&db, User::key("u1"))
        .set(User::NAME, "Ada")
        .add(User::LOGINS, 1)
        .condition(User::STATUS.eq("active"))
        .await?;
    User::delete(&db, User::key("u1")).await?;

    assert_eq!(u.map(|u| u.version), Some(1));

    // README: Queries.
    for i in 0..30u64 {
        User {
            id: format!("u{i}"),
            name: if i % 2 == 0 { "Ann" } else { "Bob" }.into(),
            logins: i,
            created_at: i as i64,
            ..user.clone()
        }
        .put(&db)
        .await?;
    }
    let (t0, t1) = (0, 100);
    let cursor: Option<Cursor> = None;
    let active: Vec<User> = User::find(&db)
        .filter(User::STATUS.eq("active"))               // typed: a number here is a compile error
        .filter(User::CREATED_AT.between(t0, t1))
        .filter(User::NAME.begins_with("A").or(User::LOGINS.gt(10)))
        .limit(50)                                       // 50 *matching* items, across pages
        .all().await?;

    println!("{}", User::find(&db).filter(User::STATUS.eq("active")).explain()?);
    // Query on StatusIndex key [status = "active"] + BatchGetItem per page for the full items (...)

    let page = User::find(&db).filter(User::ID.eq("u1")).limit(20).page(cursor).await?;  // Page { items, next }
    let mut stream = User::find(&db).filter(User::STATUS.eq("active")).stream();          // one page of read-ahead
    let n = User::find(&db).filter(User::STATUS.eq("active")).count().await?;
    let all = User::scan(&db).segments(4).stream();                                        // parallel scan

    // What the README promises of them.
    let expected: HashSet<String> = (0..30)
        .filter(|i| i % 2 == 0 || *i > 10)
        .map(|i| format!("u{i}"))
        .collect();
    assert_eq!(
        active.iter().map(|u| u.id.clone()).collect::<HashSet<_>>(),
        expected
    );
    assert_eq!(page.items.len(), 1);
    assert!(stream.next().await.transpose()?.is_some());
    assert_eq!(n, 30);
    assert_eq!(all.count().await, 30);

    // README: Several partitions at once (fan-out).
    User { id: "u40".into(), status: "invited".into(), created_at: 40, ..user.clone() }.put(&db).await?;
    // Several partitions at once: one Query per id, 8 at a time, in the order listed.
    let some: Vec<User> = User::find(&db).filter(User::ID.is_in(["u1", "u2", "u3"])).all().await?;
    // Newest first across two partitions of the index (a k-way merge on its sort key), 20 in all:
    let recent = User::find(&db)
        .filter(User::STATUS.is_in(["active", "invited"]))
        .sorted()
        .descending()
        .limit(20);
    println!("{}", recent.explain()?);
    let page = recent.page(None).await?;             // page.next resumes every partition exactly

    // What the README promises of them.
    assert_eq!(some.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["u1", "u2", "u3"]);
    let times: Vec<i64> = page.items.iter().map(|u| u.created_at).collect();
    assert_eq!(times, [40].into_iter().chain((11..30).rev()).collect::<Vec<_>>(), "newest first, both statuses");
    assert!(page.next.is_some(), "11 more");
    let shown = User::find(&db)
        .filter(User::STATUS.is_in(["active", "invited"]))
        .sorted()
        .descending()
        .limit(20)
        .explain()?
        .to_string();
    assert!(include_str!("../../README.md").contains(&shown), "the README shows: {shown}");
    {
    use dynamite::Operation;
    let stats = db.stats();
    if let Some(gets) = stats.get(Operation::GetItem, &db.table_name("users")) {
        println!("{} gets, p99 {:?}, hit rate {:?}", gets.calls(), gets.latency.p99, gets.cache_hit_rate());
    }
    println!("{} capacity units in all", stats.total_consumed_capacity());
    assert!(stats.get(Operation::GetItem, &db.table_name("users")).is_some());
    }
    User::delete_table(&db).await?;
    Ok(())
}

#[rustfmt::skip] // the README's layout, kept verbatim
#[tokio::test]
async fn readme_cursors() -> dynamite::Result<()> {
    #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[dynamite(table = "users")]
    #[dynamite(global_index(name = "StatusIndex", projection = all))]
    struct User {
        #[dynamite(partition_key)]
        id: String,
        #[dynamite(index_key(index = "StatusIndex", partition))]
        status: String,
        #[dynamite(index_key(index = "StatusIndex", sort))]
        created_at: i64,
        name: String,
    }
    let base = from_env().await;
    User::create_table(&base).await?;
    for i in 0..25i64 {
        let name = if i % 2 == 0 { "Ann" } else { "Bob" };
        User { id: format!("u{i}"), status: "active".into(), created_at: i, name: name.into() }
            .put(&base)
            .await?;
    }
    let (sdk, prefix) = (base.sdk().clone(), base.table_prefix().to_owned());
    let secret = b"32 random bytes from a secret st".to_vec();
    let mut params: std::collections::HashMap<&str, String> = std::collections::HashMap::new();

    // README: Limits and cursors.
    // GET /users?cursor=...: the cursor comes in as a string and goes out in the JSON body.
    let db = Client::builder(sdk).table_prefix(prefix).cursor_key(secret).build(); // encrypted cursors
    let cursor = params.get("cursor").map(Cursor::parse);                   // "" is refused, not page one
    let page = User::find(&db).filter(User::STATUS.eq("active")).limit(20).page(cursor).await?;
    let body = serde_json::to_string(&page.map(|u| u.name)).expect("strings serialise");
    // {"items":["Ann","Bob",...],"next":"AuPz..."}                     ("next":null on the last page)

    // What the README promises of it.
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["items"].as_array().unwrap().len(), 20);
    assert_eq!(json["items"][0], "Ann");
    let next = json["next"].as_str().expect("a next cursor").to_owned();
    params.insert("cursor", next);
    let cursor = params.get("cursor").map(Cursor::parse);
    let last = User::find(&db).filter(User::STATUS.eq("active")).limit(20).page(cursor).await?;
    assert_eq!(last.items.len(), 5);
    let last = serde_json::to_value(last.map(|u| u.created_at)).expect("json");
    assert_eq!(last, serde_json::json!({"items": [20, 21, 22, 23, 24], "next": null}));
    params.insert("cursor", String::new());
    let cursor = params.get("cursor").map(Cursor::parse);
    let empty = User::find(&db).filter(User::STATUS.eq("active")).limit(20).page(cursor).await;
    assert!(matches!(empty, Err(dynamite::Error::InvalidCursor { .. })), "{empty:?}");
    User::delete_table(&db).await?;
    Ok(())
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "orders")]
struct Order {
    #[dynamite(partition_key)]
    id: String,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "accounts")]
struct Account {
    #[dynamite(partition_key)]
    id: String,
    balance: i64,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "people")]
struct User {
    #[dynamite(partition_key)]
    id: String,
}

#[rustfmt::skip] // the README's layout, kept verbatim
#[tokio::test]
async fn readme_batches_transactions_retries() -> dynamite::Result<()> {
    let db = from_env().await;
    User::create_table(&db).await?;
    Order::create_table(&db).await?;
    Account::create_table(&db).await?;
    for (id, balance) in [("a", 20), ("b", 0)] {
        Account {
            id: id.into(),
            balance,
        }
        .put(&db)
        .await?;
    }
    let orders: Vec<Order> = (0..60).map(|i| Order { id: format!("o{i}") }).collect();
    let keys: Vec<_> = (0..70).map(|i| Order::key(format!("o{i}"))).collect();
    for i in 0..3 {
        User { id: format!("u{i}") }.put(&db).await?;
    }
    let user_keys: Vec<_> = (0..3).map(|i| User::key(format!("u{i}"))).collect();
    let order_keys = vec![Order::key("o1")];
    let sdk = db.sdk().clone();

    // README: Batches, transactions, retries.
    let out = Order::batch_write(&db).put_all(&orders).delete(Order::key("gone")).await?; // chunks of 25
    let got = Order::batch_get(&db, keys).await?;           // chunks of 100; got.items in input order, got.missing
    let mut both = db.batch_get().add::<User>(user_keys).add::<Order>(order_keys).await?;
    let users = both.take::<User>()?;
    db.transact_write()
        .update_if(Account::key("a"), Update::new().add(Account::BALANCE, -10), Account::BALANCE.ge(10))
        .update(Account::key("b"), Update::new().add(Account::BALANCE, 10))
        .idempotency_token("transfer-42")
        .await?;
    let db = Client::builder(sdk).retry_policy(RetryPolicy::standard().max_attempts(5)).build();

    assert_eq!(out.puts, 60);
    assert_eq!(got.items.len(), 60);
    assert_eq!(got.missing.len(), 10);
    assert_eq!(users.items.len(), 3);
    assert_eq!(db.retry_policy().get_max_attempts(), 5);
    Ok(())
}

#[rustfmt::skip] // the README's layout, kept verbatim
#[tokio::test]
async fn readme_request_coalescing() -> dynamite::Result<()> {
    let base = from_env().await;
    Order::create_table(&base).await?;
    for i in 0..30 {
        Order { id: format!("o{i}") }.put(&base).await?;
    }
    let ids: Vec<String> = (0..40).map(|i| format!("o{i}")).collect();
    let (sdk, prefix) = (base.sdk().clone(), base.table_prefix().to_owned());

    // README: Request coalescing.
    // Gets of one table issued while one of its requests is in flight go as one BatchGetItem.
    let db = Client::builder(sdk).table_prefix(prefix).coalesce_gets(true).build();
    let orders = futures::future::try_join_all(ids.iter().map(|id| Order::get(&db, Order::key(id.as_str())).send())).await?;
    let alone = Order::get(&db, Order::key("o1")).coalesce(false).await?; // per call; per entity: coalesce_gets_of::<E>(on)

    assert_eq!(orders.iter().filter(|o| o.is_some()).count(), 30);
    assert_eq!(orders[7], Some(Order { id: "o7".into() }));
    assert_eq!(alone, Some(Order { id: "o1".into() }));
    Ok(())
}

#[cfg(feature = "redis")]
#[rustfmt::skip] // the README's layout, kept verbatim
#[tokio::test]
async fn readme_cache_layers() -> dynamite::Result<()> {
    let sdk = from_env().await.sdk().clone();
    let url = std::env::var("DYNAMITE_REDIS_URL").expect(
        "the README's cache block needs DYNAMITE_REDIS_URL: run the tests through \
         `scripts/with-services --redis`",
    );

    // README: Cache layers.
    use dynamite::cache::{MokaLayer, RedisLayer, Tiered};

    let db = Client::builder(sdk)
        .cache(
            Tiered::new()
                .layer(MokaLayer::new(64 << 20))                                    // L1: per process, 64 MiB
                .layer(RedisLayer::builder(url).prefix("myapp:").connect().await?), // L2: shared (feature "redis")
        )
        .build();

    #[derive(Entity, Serialize, Deserialize, Clone)]
    #[dynamite(table = "products", cache(ttl = "5m", negative_ttl = "10s", queries))]
    struct Product {
        #[dynamite(partition_key)]
        sku: String,
        price_cents: u64,
    }

    // The cache serves the second read.
    let db = Client::builder(db.sdk().clone())
        .table_prefix(from_env().await.table_prefix())
        .cache(MokaLayer::new(1 << 20))
        .build();
    Product::create_table(&db).await?;
    Product {
        sku: "p1".into(),
        price_cents: 250,
    }
    .put(&db)
    .await?;
    for _ in 0..2 {
        let got = Product::get(&db, Product::key("p1")).await?;
        assert_eq!(got.map(|p| p.price_cents), Some(250));
    }
    assert!(db.cache_stats().layers.iter().any(|(_, l)| l.hits >= 1));
    Ok(())
}

#[rustfmt::skip] // the README's layout, kept verbatim
#[tokio::test]
async fn readme_enums_and_newtypes() -> dynamite::Result<()> {
    use dynamite::Value;
    let db = from_env().await;
    Product::create_table(&db).await?;
    Product { sku: Sku("p1".into()), status: Status::OutOfStock, stock: 0 }.put(&db).await?;

    #[derive(Value, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Status { Active, OutOfStock }

    #[derive(Value, Serialize, Deserialize, Clone, Debug, PartialEq)]
    struct Sku(String);

    #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[dynamite(table = "products", global_index(name = "ByStatus", projection = all))]
    struct Product {
        #[dynamite(partition_key)]
        sku: Sku,
        #[dynamite(index_key(index = "ByStatus", partition))]
        status: Status,                                  // stored as "active" / "out_of_stock"
        stock: u32,
    }

    let sold_out = Product::find(&db).filter(Product::STATUS.eq(Status::OutOfStock)).all().await?;
    Product::update(&db, Product::key(Sku("p1".into()))).set(Product::STATUS, Status::Active).await?;

    assert_eq!(sold_out.len(), 1);
    let p1 = Product::get(&db, Product::key(Sku("p1".into()))).consistent().await?;
    assert_eq!(p1.map(|p| p.status), Some(Status::Active));
    Product::delete_table(&db).await?;
    Ok(())
}

#[cfg(feature = "streams")]
#[rustfmt::skip] // the README's layout, kept verbatim
#[tokio::test]
async fn readme_streams() -> dynamite::Result<()> {
    let base = from_env().await;
    // `db`: a client with a cache.
    let db = Client::builder(base.sdk().clone())
        .table_prefix(base.table_prefix())
        .cache(dynamite::cache::MokaLayer::new(1 << 20))
        .build();
    User::create_table(&db).await?;
    User { id: "u1".into(), name: "Ada".into() }.put(&db).await?;
    let event: dynamite::streams::aws_lambda_events::dynamodb::Event = serde_json::from_str(
        r#"{"Records": [{"eventID": "1", "eventName": "REMOVE", "awsRegion": "us-east-1",
            "dynamodb": {"Keys": {"id": {"S": "u1"}}, "OldImage": {"id": {"S": "u1"}, "name": {"S": "Ada"}},
            "SequenceNumber": "1", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}}]}"#,
    ).expect("an event");

    // README: Streams.
    use dynamite::streams::{records_from_lambda, CacheInvalidator, Change, InMemoryCheckpoints, StreamConsumer};

    #[derive(Entity, Serialize, Deserialize, Clone, Debug)]
    #[dynamite(table = "users", stream = "new_and_old_images")] // create_table enables the stream
    struct User {
        #[dynamite(partition_key)]
        id: String,
        name: String,
    }

    // Typed change records: shards in order, resumed after the checkpoints the caller keeps.
    let mut consumer = StreamConsumer::builder(&db, "users")
        .checkpoints(InMemoryCheckpoints::new()) // or your own `Checkpoints` (DynamoDB, Redis, ...)
        .build();
    let batch = consumer.next_batch().await?;
    for record in batch.records.iter().cloned() {
        match record.decode::<User>()?.change {
            Change::Insert(new) => println!("insert {}", new.name),
            Change::Modify(old, new) => println!("{} -> {}", old.name, new.name),
            Change::Remove(old) => println!("remove {}", old.name),
        }
    }
    consumer.commit(&batch).await?; // after handling: a restarted consumer resumes after it

    // Lambda: the same records from the event Lambda hands the function.
    let records = records_from_lambda(event)?;

    // The invalidator: writes from any writer (other services, the console, Lambda) drop the
    // cache entries of `db` (a client with a cache) within the stream's lag.
    let invalidator = CacheInvalidator::builder(&db, "users").spawn(); // stops when dropped

    assert_eq!(batch.records.len(), 1);
    assert!(matches!(records[0].clone().decode::<User>()?.change, Change::Remove(_)));
    tokio::time::timeout(std::time::Duration::from_secs(30), invalidator.started())
        .await
        .expect("the invalidator starts");
    Ok(())
}
