//! Planned reads (`find()` / `scan()`) against the local server: every planner branch (its
//! `explain()` and its results), every filter operator (also on nested paths and list
//! elements), attribute names that are reserved words or hold `.`, `#`, `:` and unicode, errors
//! caught before any request, exact limits, cursors, pages, streams, index projections, counts
//! and parallel scans.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use dynamite::ops::Find;
use dynamite::{
    Attr, AttributeType, Client, Condition, Cursor, Entity, Error, Operation, RetryPolicy,
};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::support::trace::Capture;
use crate::support::{self, setup};

mod cursors;
mod fanout;
mod filters;
mod indexes;
mod keys;
mod names;
mod pagination;
mod projections;
mod scans;
mod validation;

// ---------------------------------------------------------------------------------------------
// Set-up helpers
// ---------------------------------------------------------------------------------------------

/// Writes `items` with plain puts, 16 at a time.
async fn put_all<E: Entity>(db: &Client, items: &[E]) {
    futures::stream::iter(items)
        .for_each_concurrent(16, |item| async move {
            item.put(db).await.expect("put");
        })
        .await;
}

/// Writes many `items` with BatchWriteItem (25 per request): a dozen times faster against
/// moto than one put per item, for the large set-ups.
async fn batch_put<E: Entity>(db: &Client, items: &[E]) {
    let out = E::batch_write(db)
        .put_all(items)
        .await
        .expect("batch write");
    assert_eq!(out.puts, items.len());
}

/// A local endpoint that accepts connections and closes them at once, counting them: a request
/// sent through a client of it fails (`Error::Sdk`), and `connections()` says whether any
/// request was sent at all. (Like `support::unreachable_client()`, but countable.)
struct Trap {
    endpoint: String,
    connections: Arc<AtomicUsize>,
}

impl Trap {
    async fn new() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Trap {
            endpoint,
            connections,
        }
    }

    /// A client of this endpoint with `prefix` (cursor fingerprints include the prefixed table
    /// name) and, optionally, a cursor key.
    async fn client(&self, prefix: &str, cursor_key: Option<&[u8]>) -> Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        let mut builder = Client::builder(aws_sdk_dynamodb::Client::new(&config))
            .table_prefix(prefix.to_owned())
            .retry_policy(RetryPolicy::none());
        if let Some(key) = cursor_key {
            builder = builder.cursor_key(key.to_vec());
        }
        builder.build()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Runs `find`, which must pass every check and send a request (then fail as
    /// `Error::Sdk`, or still be retrying after a while).
    async fn sends<E: Entity, O: Debug + Send + 'static>(&self, find: Find<'_, E, O>) {
        let before = self.connections();
        let run = tokio::time::timeout(std::time::Duration::from_millis(500), find.page(None));
        match run.await {
            Ok(Err(Error::Sdk { .. })) | Err(_) => {}
            Ok(other) => panic!("expected a failed request, got {other:?}"),
        }
        assert!(self.connections() > before, "no request was sent");
    }
}

/// Every page of `build().limit(k)`, following `next` until it is `None`; checks that every
/// page but the last is full.
async fn page_loop<'a, E: Entity, O: Send + 'static>(
    k: usize,
    build: impl Fn() -> Find<'a, E, O>,
) -> Vec<O> {
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    for _ in 0..100_000 {
        let page = build().limit(k).page(cursor.take()).await.expect("page");
        assert!(page.items.len() <= k, "page over the limit");
        let len = page.items.len();
        out.extend(page.items);
        match page.next {
            Some(next) => {
                assert_eq!(len, k, "a page with a next cursor must be full");
                cursor = Some(next);
            }
            None => return out,
        }
    }
    panic!("paging did not end");
}

// ---------------------------------------------------------------------------------------------
// Planner: an entity with a sort key, three global indexes and a local one
// ---------------------------------------------------------------------------------------------

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "orders")]
#[dynamite(global_index(name = "ByStatus", projection = all))]
#[dynamite(global_index(name = "ByStatusTotal", projection = all))]
#[dynamite(global_index(name = "ByRegion", projection = all))]
#[dynamite(local_index(name = "ByTotalLocal", projection = all))]
struct Order {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    day: String,
    #[dynamite(index_key(index = "ByStatus", partition))]
    #[dynamite(index_key(index = "ByStatusTotal", partition))]
    status: String,
    #[dynamite(index_key(index = "ByStatus", sort))]
    placed: i64,
    #[dynamite(index_key(index = "ByStatusTotal", sort))]
    #[dynamite(index_key(index = "ByTotalLocal", sort))]
    total: i64,
    #[dynamite(index_key(index = "ByRegion", partition))]
    region: String,
    note: String,
}

const STATUSES: [&str; 3] = ["open", "shipped", "closed"];

/// c1: 30 orders d000..d029; c2: 10 orders. Totals and placed times are unique.
fn orders() -> Vec<Order> {
    let mut v = Vec::new();
    for i in 0..30u32 {
        v.push(Order {
            customer: "c1".into(),
            day: format!("d{i:03}"),
            status: STATUSES[i as usize % 3].into(),
            placed: 1000 + i as i64,
            total: ((i * 37) % 100) as i64,
            region: if i % 2 == 0 { "eu" } else { "us" }.into(),
            note: format!("note {i}"),
        });
    }
    for i in 0..10u32 {
        v.push(Order {
            customer: "c2".into(),
            day: format!("d{i:03}"),
            status: STATUSES[i as usize % 3].into(),
            placed: 2000 + i as i64,
            total: 200 + i as i64,
            region: "ap".into(),
            note: format!("other {i}"),
        });
    }
    v
}

async fn order_db() -> (Client, Vec<Order>) {
    let db = setup::<Order>().await;
    let data = orders();
    put_all(&db, &data).await;
    (db, data)
}

fn keys(orders: &[Order]) -> Vec<(String, String)> {
    orders
        .iter()
        .map(|o| (o.customer.clone(), o.day.clone()))
        .collect()
}

/// The expected orders: those matching `pred`, sorted by `sort`.
fn expect<K: Ord>(
    data: &[Order],
    pred: impl Fn(&Order) -> bool,
    sort: impl Fn(&Order) -> K,
) -> Vec<(String, String)> {
    let mut v: Vec<Order> = data.iter().filter(|o| pred(o)).cloned().collect();
    v.sort_by_key(|o| sort(o));
    keys(&v)
}

// ---------------------------------------------------------------------------------------------
// Rows in partitions: pagination and scans
// ---------------------------------------------------------------------------------------------

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "rows")]
struct Row {
    #[dynamite(partition_key)]
    part: String,
    #[dynamite(sort_key)]
    n: u32,
    v: u32,
}

fn rows(part: &str, count: u32) -> Vec<Row> {
    (0..count)
        .map(|n| Row {
            part: part.into(),
            n,
            v: (n * 7) % 10,
        })
        .collect()
}

fn ns(v: &[Row]) -> Vec<u32> {
    v.iter().map(|r| r.n).collect()
}

// ---------------------------------------------------------------------------------------------
// Entities of more than one query topic
// ---------------------------------------------------------------------------------------------

/// A projection of `Order` (scans, cursors).
#[derive(Deserialize, Debug, PartialEq)]
struct OrderTotal {
    customer: String,
    day: String,
    total: i64,
}

/// Products with a keys-only and an include-projected index (projections, validation).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Dims {
    w: u32,
    h: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Details {
    color: String,
    dims: Dims,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "products")]
#[dynamite(global_index(name = "ByCategory", projection = keys_only))]
#[dynamite(global_index(name = "ByBrand", projection = include(title)))]
struct Product {
    #[dynamite(partition_key)]
    sku: String,
    #[dynamite(index_key(index = "ByCategory", partition))]
    category: String,
    #[dynamite(index_key(index = "ByCategory", sort))]
    rank: u32,
    #[dynamite(index_key(index = "ByBrand", partition))]
    brand: String,
    #[dynamite(index_key(index = "ByBrand", sort))]
    price: u32,
    title: String,
    details: Details,
    stock: u32,
}
