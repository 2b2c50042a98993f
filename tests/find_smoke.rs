mod common;

use dynamite::{Entity, Error, Operation};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "orders")]
#[dynamite(global_index(name = "StatusIndex", projection = keys_only))]
struct Order {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    seq: u32,
    #[dynamite(index_key(index = "StatusIndex", partition))]
    status: String,
    total: i64,
}

#[tokio::test]
async fn smoke() {
    let db = common::client().await;
    Order::create_table(&db).await.unwrap();
    for i in 0..50u32 {
        Order {
            customer: "c1".into(),
            seq: i,
            status: if i % 3 == 0 {
                "open".into()
            } else {
                "done".into()
            },
            total: i as i64,
        }
        .put(&db)
        .await
        .unwrap();
    }
    let plan = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .filter(Order::SEQ.eq(3))
        .explain()
        .unwrap();
    assert_eq!(plan.operation, Operation::GetItem);
    let one = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .filter(Order::SEQ.eq(3))
        .all()
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let q = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .filter(Order::TOTAL.gt(10))
        .limit(7);
    println!("{}", q.explain().unwrap());
    let page = q.page(None).await.unwrap();
    assert_eq!(
        page.items.iter().map(|o| o.seq).collect::<Vec<_>>(),
        (11..18).collect::<Vec<_>>()
    );
    let next = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .filter(Order::TOTAL.gt(10))
        .limit(7)
        .page(page.next.clone())
        .await
        .unwrap();
    assert_eq!(next.items[0].seq, 18);
    let open = Order::find(&db)
        .filter(Order::STATUS.eq("open"))
        .all()
        .await
        .unwrap();
    println!(
        "{}",
        Order::find(&db)
            .filter(Order::STATUS.eq("open"))
            .explain()
            .unwrap()
    );
    assert_eq!(open.len(), 17);
    let err = Order::find(&db)
        .filter(Order::TOTAL.gt(1))
        .all()
        .await
        .unwrap_err();
    println!("{err}");
    assert!(matches!(err, Error::ScanRequired { .. }));
    let all: Vec<_> = Order::scan(&db).segments(3).stream().collect().await;
    assert_eq!(all.len(), 50);
    let n = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .filter(Order::TOTAL.gt(10))
        .count()
        .await
        .unwrap();
    assert_eq!(n, 39);
    let s: Vec<_> = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .page_size(4)
        .descending()
        .stream()
        .collect()
        .await;
    assert_eq!(s.len(), 50);
    assert_eq!(s[0].as_ref().unwrap().seq, 49);
}
