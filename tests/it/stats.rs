//! `Client::stats()`: what a client records in process, per operation, table and entity, for
//! real requests to the local server: requests, errors, latency, consumed capacity, items read
//! and written, retries and throttles, and reads answered by the cache.

use std::time::Duration;

use dynamite::cache::{CacheConfig, MokaLayer};
use dynamite::{Entity, Operation, OperationStats, Stats};
use serde::{Deserialize, Serialize};

use crate::support;
use crate::support::fixtures::Thing;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "orders")]
struct Order {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    id: u32,
    status: String,
}

fn order(customer: &str, id: u32, status: &str) -> Order {
    Order {
        customer: customer.into(),
        id,
        status: status.into(),
    }
}

fn row<'s>(stats: &'s Stats, operation: Operation, table: &str) -> &'s OperationStats {
    stats
        .get(operation, table)
        .unwrap_or_else(|| panic!("no {operation} row for {table} in\n{stats}"))
}

#[tokio::test]
async fn requests_items_capacity_latency_and_errors_are_recorded_per_operation() {
    let db = support::setup::<Order>().await;
    let orders: Vec<Order> = (0..10)
        .map(|i| order("c1", i, if i < 3 { "open" } else { "shipped" }))
        .chain((0..10).map(|i| order("c2", i, "open")))
        .collect();
    db.batch_write().put_all(&orders).await.unwrap();
    order("c3", 1, "open").put(&db).await.unwrap();
    Order::update(&db, Order::key("c3", 1))
        .set(Order::STATUS, "shipped")
        .await
        .unwrap();
    Order::delete(&db, Order::key("c3", 1)).await.unwrap();
    let open: Vec<Order> = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .filter(Order::STATUS.eq("open"))
        .all()
        .await
        .unwrap();
    assert_eq!(open.len(), 3);
    assert!(Order::get(&db, Order::key("c1", 1))
        .await
        .unwrap()
        .is_some());
    assert!(Order::get(&db, Order::key("c9", 1))
        .await
        .unwrap()
        .is_none());
    // No table for Thing: a failed request.
    Thing::get(&db, Thing::key("t1")).await.unwrap_err();

    let stats = db.stats();
    let orders = db.table_name("orders");
    let batch = row(&stats, Operation::BatchWriteItem, &orders);
    assert_eq!((batch.items_written, batch.errors), (20, 0));
    for op in [
        Operation::PutItem,
        Operation::UpdateItem,
        Operation::DeleteItem,
    ] {
        let r = row(&stats, op, &orders);
        assert_eq!((r.requests, r.items_written, r.errors), (1, 1, 0), "{op}");
    }
    let query = row(&stats, Operation::Query, &orders);
    assert_eq!(query.requests, 1);
    assert_eq!(
        query.items_read, 10,
        "the partition's items, before the filter"
    );
    let gets = row(&stats, Operation::GetItem, &orders);
    assert_eq!((gets.requests, gets.items_read, gets.errors), (2, 1, 0));
    assert!(gets.consumed_capacity > 0.0, "{gets:?}");
    let l = gets.latency;
    assert_eq!(l.count, 2);
    assert!(
        Duration::ZERO < l.p50 && l.p50 <= l.p99 && l.p99 <= l.max,
        "{l:?}"
    );
    assert_eq!(gets.cache_hit_rate(), None, "no cache");
    let failed = row(&stats, Operation::GetItem, &db.table_name("things"));
    assert_eq!((failed.requests, failed.errors), (1, 1));
    assert_eq!(failed.entity, "Thing");
    assert_eq!(stats.total_errors(), 1);
    assert!(stats.total_consumed_capacity() >= gets.consumed_capacity);
    let table = stats.to_string();
    assert!(
        table.contains("BatchWriteItem") && table.contains(&orders),
        "{table}"
    );

    // Clones share the figures; a reset starts them again.
    let clone = db.clone();
    assert_eq!(clone.stats().total_requests(), stats.total_requests());
    clone.reset_stats();
    assert_eq!(db.stats().total_requests(), 0);
}

#[tokio::test]
async fn reads_answered_by_the_cache_count_as_hits_of_their_operation() {
    let base = support::setup::<Order>().await;
    order("c1", 1, "open").put(&base).await.unwrap();
    let db = support::cache::with_cache(&base, MokaLayer::new(1 << 20), CacheConfig::default());
    for _ in 0..3 {
        assert!(Order::get(&db, Order::key("c1", 1))
            .await
            .unwrap()
            .is_some());
    }
    for _ in 0..2 {
        let found = Order::find(&db)
            .filter(Order::CUSTOMER.eq("c1"))
            .cached()
            .all()
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
    }
    let keys = [Order::key("c1", 1), Order::key("c1", 2)];
    Order::batch_get(&db, keys).await.unwrap();

    let stats = db.stats();
    let orders = db.table_name("orders");
    let gets = row(&stats, Operation::GetItem, &orders);
    assert_eq!(
        (gets.requests, gets.cache_hits, gets.cache_misses),
        (1, 2, 1)
    );
    assert_eq!(gets.calls(), 3);
    assert!((gets.cache_hit_rate().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    let queries = row(&stats, Operation::Query, &orders);
    assert_eq!(
        (queries.requests, queries.cache_hits, queries.cache_misses),
        (1, 1, 1)
    );
    // c1/1 is cached by the gets, c1/2 is not: one of each.
    let batch = row(&stats, Operation::BatchGetItem, &orders);
    assert_eq!((batch.cache_hits, batch.cache_misses), (1, 1));
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn retries_and_throttles_are_counted_with_their_request() {
    use dynamite::testing::{Fault, Match};

    let (proxy, db) = support::thing_through_proxy(|b| b).await;
    proxy.script(Match::Operation(Operation::GetItem), Fault::Throttling, 2);
    Thing::get(&db, Thing::key("t1")).await.unwrap();
    let stats = db.stats();
    let gets = row(&stats, Operation::GetItem, &db.table_name("things"));
    assert_eq!(
        (gets.requests, gets.errors, gets.retries, gets.throttles),
        (1, 0, 2, 2)
    );
}
