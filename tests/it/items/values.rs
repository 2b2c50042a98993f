//! `#[derive(Value)]`: an enum and newtypes of one's own as keys, index keys, filter values and
//! update values, stored as serde would store them.

use aws_sdk_dynamodb::types::AttributeValue;
use dynamite::{Entity, FromAttributeValue, ToAttributeValue, Value};
use serde::{Deserialize, Serialize};

use crate::support;

#[derive(Value, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Status {
    Active,
    OutOfStock,
    #[serde(rename = "gone")]
    Discontinued,
}

#[derive(Value, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Sku(String);

#[derive(Value, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Quantity(u32);

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "value_products")]
#[dynamite(global_index(name = "ByStatus", projection = all))]
struct Product {
    #[dynamite(partition_key)]
    sku: Sku,
    #[dynamite(index_key(index = "ByStatus", partition))]
    status: Status,
    stock: Quantity,
}

#[test]
fn values_are_stored_under_serdes_names() {
    let stored = |s: Status| s.to_attribute_value().unwrap();
    assert_eq!(
        stored(Status::OutOfStock),
        AttributeValue::S("out_of_stock".into())
    );
    assert_eq!(
        stored(Status::Discontinued),
        AttributeValue::S("gone".into())
    );
    for s in [Status::Active, Status::OutOfStock, Status::Discontinued] {
        let serde = serde_dynamo::to_attribute_value::<_, AttributeValue>(s).unwrap();
        assert_eq!(stored(s), serde, "{s:?}");
        assert_eq!(Status::from_attribute_value(stored(s)).unwrap(), s);
    }
    let err = Status::from_attribute_value(AttributeValue::S("lost".into())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"lost\" is not a Status: expected one of \"active\", \"out_of_stock\", \"gone\""
    );
    assert_eq!(Status::OutOfStock.as_stored_str(), "out_of_stock");
    assert_eq!(
        Quantity(7).to_attribute_value().unwrap(),
        AttributeValue::N("7".into())
    );
    assert_eq!(
        Sku::from_attribute_value(AttributeValue::S("a".into())).unwrap(),
        Sku("a".into())
    );
}

#[tokio::test]
async fn derived_values_are_keys_index_keys_filters_and_updates() {
    let db = support::setup::<Product>().await;
    for (sku, status, stock) in [
        ("a", Status::Active, 3),
        ("b", Status::OutOfStock, 0),
        ("c", Status::OutOfStock, 0),
    ] {
        Product {
            sku: Sku(sku.into()),
            status,
            stock: Quantity(stock),
        }
        .put(&db)
        .await
        .unwrap();
    }
    let a = Product::get(&db, Product::key(Sku("a".into())))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.status, a.stock), (Status::Active, Quantity(3)));

    // The raw item holds serde's names.
    let raw = db
        .sdk()
        .get_item()
        .table_name(db.table_name("value_products"))
        .key("sku", AttributeValue::S("b".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = raw.item.unwrap();
    assert_eq!(item["status"], AttributeValue::S("out_of_stock".into()));

    // An index keyed by the enum; a filter on the newtype.
    let out = Product::find(&db)
        .filter(Product::STATUS.eq(Status::OutOfStock))
        .all()
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
    let plan = Product::find(&db)
        .filter(Product::STATUS.eq(Status::OutOfStock))
        .explain()
        .unwrap();
    assert_eq!(plan.index, Some("ByStatus"));
    let in_stock = Product::scan(&db)
        .filter(Product::STOCK.gt(Quantity(0)))
        .unbounded()
        .all()
        .await
        .unwrap();
    assert_eq!(in_stock.len(), 1);

    // Updates: set the enum, add to the newtype number.
    Product::update(&db, Product::key(Sku("b".into())))
        .set(Product::STATUS, Status::Active)
        .add(Product::STOCK, Quantity(5))
        .condition(Product::STATUS.eq(Status::OutOfStock))
        .await
        .unwrap();
    let b = Product::get(&db, Product::key(Sku("b".into())))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b.status, b.stock), (Status::Active, Quantity(5)));
}

#[tokio::test]
async fn an_unsigned_decrement_never_goes_below_zero() {
    let db = support::setup::<Product>().await;
    Product {
        sku: Sku("a".into()),
        status: Status::Active,
        stock: Quantity(3),
    }
    .put(&db)
    .await
    .unwrap();
    let key = || Product::key(Sku("a".into()));
    Product::update(&db, key())
        .decrement(Product::STOCK, Quantity(2))
        .await
        .unwrap();
    // 1 left: taking 2 more is refused, nothing written.
    let err = Product::update(&db, key())
        .decrement(Product::STOCK, Quantity(2))
        .await
        .unwrap_err();
    assert!(err.is_condition_failed(), "{err:?}");
    // With a condition of the caller's, both must hold.
    Product::update(&db, key())
        .decrement(Product::STOCK, Quantity(1))
        .condition(Product::STATUS.eq(Status::Active))
        .await
        .unwrap();
    let a = Product::get(&db, key())
        .consistent()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.stock, Quantity(0));
}
