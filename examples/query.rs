//! Queries: `begins_with` and `between` on a sort key, a filter, a global secondary index
//! chosen by the planner, a projection that reads the index alone, and `explain()` for each.
//!
//! Run against the local server: `scripts/with-services -- cargo run --example query`.

use dynamite::{Client, Entity, Error};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "example-query-orders")]
#[dynamite(global_index(name = "ByStatus", projection = include(total)))]
pub struct Order {
    #[dynamite(partition_key)]
    pub customer: String,
    /// `2024-03-05#0007`: the date first, so date ranges and prefixes are key conditions.
    #[dynamite(sort_key)]
    pub placed: String,
    #[dynamite(index_key(index = "ByStatus", partition))]
    pub status: String,
    pub total: u32,
    pub items: Vec<String>,
}

/// What the `ByStatus` index holds: the keys and `total`.
#[derive(Deserialize, Debug)]
pub struct StatusRow {
    pub customer: String,
    pub placed: String,
    pub status: String,
    pub total: u32,
}

fn sample() -> Vec<Order> {
    let customers = ["ada", "grace", "linus"];
    let goods = ["book", "pen", "lamp", "mug"];
    (0..36u32)
        .map(|i| Order {
            customer: customers[i as usize % 3].to_owned(),
            placed: format!("2024-{:02}-{:02}#{i:04}", 1 + i % 4, 1 + (i * 7) % 28),
            status: ["open", "shipped", "delivered"][(i / 3) as usize % 3].to_owned(),
            total: 20 + (i * 37) % 200,
            items: vec![
                goods[i as usize % 4].to_owned(),
                goods[(i as usize + 1) % 4].to_owned(),
            ],
        })
        .collect()
}

fn show(orders: &[Order]) {
    for o in orders {
        println!(
            "    {:<6} {}  {:<9} {:>4}  {:?}",
            o.customer, o.placed, o.status, o.total, o.items
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Client::from_env().await;
    Order::ensure_table(&db).await?;
    let table = db.table_name(Order::schema().table);
    println!("table {table} is ACTIVE");

    let orders = sample();
    futures::stream::iter(&orders)
        .for_each_concurrent(16, |o| {
            let db = &db;
            async move { o.put(db).await.expect("put") }
        })
        .await;
    println!("put {} orders for 3 customers\n", orders.len());

    // 1. begins_with on the sort key: ada's orders of March.
    let march = Order::find(&db)
        .filter(Order::CUSTOMER.eq("ada"))
        .filter(Order::PLACED.begins_with("2024-03"));
    println!("1. ada's orders in March\n   plan: {}", march.explain()?);
    show(&march.all().await?);

    // 2. between on the sort key, plus a filter on other attributes: grace's February orders
    //    over 100 that include a book. The key condition narrows the read; the filter is
    //    applied to what was read.
    let feb = Order::find(&db)
        .filter(Order::CUSTOMER.eq("grace"))
        .filter(Order::PLACED.between("2024-02-01", "2024-02-29~"))
        .filter(Order::TOTAL.gt(100))
        .filter(
            Order::ITEMS
                .contains("book")
                .or(Order::ITEMS.contains("lamp")),
        );
    println!(
        "\n2. grace's February orders over 100 with a book or a lamp\n   plan: {}",
        feb.explain()?
    );
    show(&feb.all().await?);

    // 3. No customer given: the planner picks the global index keyed by `status`. It holds
    //    only the keys and `total`, so whole orders are read from the table, a page at a time.
    let open = Order::find(&db)
        .filter(Order::STATUS.eq("open"))
        .filter(Order::TOTAL.ge(150));
    let plan = open.explain()?;
    println!(
        "\n3. open orders of 150 or more, any customer\n   plan: {plan}\n   \
         index: {:?}, reads base items: {}",
        plan.index, plan.fetches_base_items
    );
    show(&open.all().await?);

    // 4. The same through a projection type: what the index holds is enough, no table read.
    let rows = Order::find(&db)
        .filter(Order::STATUS.eq("open"))
        .filter(Order::TOTAL.ge(150))
        .project::<StatusRow>();
    let plan = rows.explain()?;
    println!(
        "\n4. the same as StatusRow\n   plan: {plan}\n   reads base items: {}",
        plan.fetches_base_items
    );
    for r in rows.all().await? {
        println!(
            "    {:<6} {}  {:<9} {:>4}",
            r.customer, r.placed, r.status, r.total
        );
    }

    // 5. A selection: only some attributes (plus the keys) are read.
    #[derive(Deserialize, Debug)]
    struct Totals {
        placed: String,
        total: u32,
    }
    let totals = Order::find(&db)
        .filter(Order::CUSTOMER.eq("linus"))
        .project::<Totals>()
        .select([Order::TOTAL]);
    println!("\n5. linus's totals\n   plan: {}", totals.explain()?);
    for t in totals.limit(5).all().await? {
        println!("    {}  {:>4}", t.placed, t.total);
    }

    // 6. The whole key: a GetItem.
    let one = Order::find(&db)
        .filter(Order::CUSTOMER.eq("ada"))
        .filter(Order::PLACED.eq(orders[0].placed.as_str()));
    println!("\n6. one order\n   plan: {}", one.explain()?);
    println!("    {:?}", one.first().await?);

    // 7. Nothing to query by: refused before any request, naming what would serve.
    let err = Order::find(&db)
        .filter(Order::TOTAL.gt(190))
        .explain()
        .unwrap_err();
    assert!(matches!(err, Error::ScanRequired { .. }));
    println!("\n7. totals over 190, anywhere\n   refused: {err}");
    let scan = Order::find(&db)
        .filter(Order::TOTAL.gt(190))
        .allow_scan()
        .limit(10);
    println!("   with allow_scan(): {}", scan.explain()?);
    println!("    {} found", scan.all().await?.len());

    Order::delete_table(&db).await?;
    println!("\ndeleted table {table}");
    Ok(())
}
