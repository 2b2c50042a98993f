//! Pagination for an API: a handler returns one page of orders and an opaque, encrypted cursor
//! string; the caller sends the string back for the next page. Then a stream over a few
//! thousand orders, read a page at a time with one page of read-ahead.
//!
//! Run against the local server: `scripts/with-services -- cargo run --example pagination`.

use std::time::Instant;

use dynamite::{Client, Cursor, Entity, Error};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "example-pagination-orders")]
pub struct Order {
    #[dynamite(partition_key)]
    pub customer: String,
    #[dynamite(sort_key)]
    pub number: u32,
    pub total: u32,
    pub note: Option<String>,
}

/// Items per page of the API.
const PAGE_SIZE: usize = 7;

/// An API handler: `GET /customers/{customer}/orders?cursor=...`. The cursor is whatever the
/// previous response returned, as a string: opaque, URL-safe, and encrypted and authenticated
/// under the client's cursor key, so it shows no key value and cannot be altered to read
/// anything else.
async fn list_orders(
    db: &Client,
    customer: &str,
    cursor: Option<String>,
) -> dynamite::Result<(Vec<Order>, Option<String>)> {
    let page = Order::find(db)
        .filter(Order::CUSTOMER.eq(customer))
        .limit(PAGE_SIZE)
        .page(cursor.map(Cursor::parse))
        .await?;
    Ok((page.items, page.next.map(|c| c.to_string())))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A client that encrypts cursors. In a service, the key comes from a secret store: 32 random
    // bytes, the same on every instance (a cursor from one must work on the others).
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sdk = aws_sdk_dynamodb::Client::new(&config);
    let db = Client::builder(sdk)
        .cursor_key(b"example key: use 32 random bytes".to_vec())
        .build();
    Order::ensure_table(&db).await?;
    let table = db.table_name(Order::schema().table);
    println!("table {table} is ACTIVE");

    let small: Vec<Order> = (1..=24)
        .map(|n| Order {
            customer: "ada".into(),
            number: n,
            total: 10 * n,
            note: (n % 5 == 0).then(|| "gift".to_owned()),
        })
        .collect();
    Order::batch_write(&db).put_all(&small).await?;
    println!("put {} orders for ada\n", small.len());

    // The API's caller: follow the cursor until there is none.
    println!("pages of {PAGE_SIZE} through list_orders():");
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    let mut first_cursor = None;
    for request in 1.. {
        let (orders, next) = list_orders(&db, "ada", cursor.take()).await?;
        seen += orders.len();
        let numbers: Vec<u32> = orders.iter().map(|o| o.number).collect();
        println!(
            "  request {request}: {numbers:?}, next cursor: {}",
            match &next {
                Some(c) => format!("{}... ({} chars)", &c[..16.min(c.len())], c.len()),
                None => "none".to_owned(),
            }
        );
        if first_cursor.is_none() {
            first_cursor = next.clone();
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    println!("  {seen} orders in all");

    // A cursor that was tampered with (or comes from another query, or is not a cursor at all)
    // is refused before any request: a 400 for the API.
    let mut forged = first_cursor.expect("more than one page");
    let i = forged.len() / 3;
    let swapped = if forged.as_bytes()[i] == b'A' {
        "B"
    } else {
        "A"
    };
    forged.replace_range(i..=i, swapped);
    match list_orders(&db, "ada", Some(forged)).await {
        Err(Error::InvalidCursor { reason }) => println!("  a tampered cursor: refused ({reason})"),
        other => panic!("expected InvalidCursor, got {other:?}"),
    }
    match list_orders(&db, "grace", Some(String::new())).await {
        Err(Error::InvalidCursor { reason }) => println!("  an empty cursor: refused ({reason})"),
        other => panic!("expected InvalidCursor, got {other:?}"),
    }

    // A stream over a few thousand orders: pages of 250 are read one after the other, the next
    // one requested while the current one is consumed. Dropping the stream stops reading.
    let bulk: Vec<Order> = (1..=2_000)
        .map(|n| Order {
            customer: "bulk".into(),
            number: n,
            total: n % 97,
            note: None,
        })
        .collect();
    let start = Instant::now();
    let written = Order::batch_write(&db).put_all(&bulk).await?;
    println!(
        "\nput {} orders for bulk in {:.1?} ({} BatchWriteItem requests)",
        written.puts,
        start.elapsed(),
        written.stats.requests
    );
    let start = Instant::now();
    let (count, sum) = Order::find(&db)
        .filter(Order::CUSTOMER.eq("bulk"))
        .page_size(250)
        .stream()
        .try_fold((0usize, 0u64), |(n, s), o| async move {
            Ok((n + 1, s + o.total as u64))
        })
        .await?;
    println!(
        "streamed {count} orders (totals sum to {sum}) in {:.1?}",
        start.elapsed()
    );
    let big: Vec<u32> = Order::find(&db)
        .filter(Order::CUSTOMER.eq("bulk"))
        .filter(Order::TOTAL.ge(95))
        .stream()
        .map_ok(|o| o.number)
        .take(5)
        .try_collect()
        .await?;
    println!("the first 5 with a total of 95 or more: {big:?}");
    println!(
        "and how many there are: {}",
        Order::find(&db)
            .filter(Order::CUSTOMER.eq("bulk"))
            .filter(Order::TOTAL.ge(95))
            .count()
            .await?
    );

    Order::delete_table(&db).await?;
    println!("\ndeleted table {table}");
    Ok(())
}
