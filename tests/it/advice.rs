//! The index advisor against the local server: a workload with an obvious missing index (orders
//! looked up by status, which no key serves) gets that index recommended, ranked first, with its
//! declaration; a filtered query gets its sort key.

use dynamite::{Entity, ScalarType};
use serde::{Deserialize, Serialize};

use crate::support;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "advised_orders")]
struct Order {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    id: u32,
    status: String,
    total: u32,
}

#[tokio::test]
async fn a_workload_by_status_gets_a_status_index_recommended() {
    let db = support::setup::<Order>().await;
    let orders: Vec<Order> = (0..3)
        .flat_map(|c| {
            (0..20).map(move |i| Order {
                customer: format!("c{c}"),
                id: i,
                status: if i < 2 { "open" } else { "shipped" }.into(),
                total: i * 50,
            })
        })
        .collect();
    db.batch_write().put_all(&orders).await.unwrap();

    // Scans by status: 60 items read for 6 returned, each time.
    for _ in 0..5 {
        let open = Order::scan(&db)
            .filter(Order::STATUS.eq("open"))
            .unbounded()
            .all()
            .await
            .unwrap();
        assert_eq!(open.len(), 6);
    }
    // The same, refused: no key serves it.
    for _ in 0..3 {
        let err = Order::find(&db)
            .filter(Order::STATUS.eq("open"))
            .all()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("scan"), "{err}");
    }
    // A query whose filter drops most of the partition.
    for _ in 0..2 {
        let big = Order::find(&db)
            .filter(Order::CUSTOMER.eq("c1"))
            .filter(Order::TOTAL.ge(900))
            .all()
            .await
            .unwrap();
        assert_eq!(big.len(), 2);
    }
    // Served by key: not recorded.
    Order::find(&db)
        .filter(Order::CUSTOMER.eq("c2"))
        .all()
        .await
        .unwrap();

    let advice = db.index_advice();
    assert_eq!(advice.len(), 2, "{advice:#?}");
    let status = &advice[0];
    assert_eq!(status.entity, "Order");
    assert_eq!(status.table, db.table_name("advised_orders"));
    assert_eq!(
        status.partition_key,
        ("status".to_owned(), ScalarType::String)
    );
    assert_eq!(status.sort_key, None);
    assert_eq!(status.index_name, "StatusIndex");
    assert_eq!((status.seen, status.refused), (8, 3));
    assert_eq!((status.items_read, status.items_returned), (300, 30));
    assert_eq!(status.projection, None, "whole items were read");
    if status.consumed_capacity > 0.0 {
        let saved = status.consumed_capacity * 0.9;
        assert!((status.read_units_saved - saved).abs() < 1e-6, "{status:?}");
    }
    assert!(status
        .declaration()
        .contains("#[dynamite(global_index(name = \"StatusIndex\", projection = all))]"));
    assert!(status.example.starts_with("Scan on the table"), "{status}");

    let by_total = &advice[1];
    assert_eq!(by_total.partition_key.0, "customer");
    assert_eq!(
        by_total.sort_key,
        Some(("total".to_owned(), ScalarType::Number))
    );
    assert_eq!((by_total.items_read, by_total.items_returned), (40, 4));
    println!("{status}\n\n{by_total}");
}
