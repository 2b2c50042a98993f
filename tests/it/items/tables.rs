//! `ensure_table` on a table that exists: drift from the entity is an error naming each
//! difference; `migrate()` adds missing global indexes, which then serve queries.

use dynamite::table::SchemaDrift;
use dynamite::{Entity, Error, IndexKind};
use serde::{Deserialize, Serialize};

use crate::support;

/// The table as first deployed: no index.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "drift_orders")]
struct OrderV1 {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    id: u32,
    status: String,
}

/// The next version of the service: orders by status, through a global index.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "drift_orders")]
#[dynamite(global_index(name = "ByStatus", projection = keys_only))]
struct OrderV2 {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    id: u32,
    #[dynamite(index_key(index = "ByStatus", partition))]
    status: String,
}

/// A mistaken version: the sort key is a string, under another name.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "drift_orders")]
struct OrderWrongKey {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    order_id: String,
}

#[tokio::test]
async fn drift_is_reported_and_a_missing_global_index_migrated() {
    let db = support::setup::<OrderV1>().await;
    for id in 0..4 {
        let status = if id % 2 == 0 { "open" } else { "shipped" };
        OrderV1 {
            customer: "c1".into(),
            id,
            status: status.into(),
        }
        .put(&db)
        .await
        .unwrap();
    }

    let err = OrderV2::ensure_table(&db).await.unwrap_err();
    assert!(err.is_schema_drift(), "{err:?}");
    let Error::SchemaDrift {
        table,
        entity,
        differences,
    } = &err
    else {
        unreachable!()
    };
    assert_eq!(
        (table.as_str(), *entity),
        (db.table_name("drift_orders").as_str(), "OrderV2")
    );
    assert_eq!(
        differences,
        &[SchemaDrift::MissingIndex {
            index: "ByStatus".into(),
            kind: IndexKind::Global
        }]
    );
    let message = err.to_string();
    assert!(
        message.contains("global index `ByStatus` is missing"),
        "{message}"
    );
    assert!(message.contains("migrate()"), "{message}");

    let err = OrderWrongKey::ensure_table(&db).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("primary key is (customer, id), the entity declares (customer, order_id)"),
        "{message}"
    );

    // The migration adds the index (and waits until DynamoDB backfilled it); it then serves.
    OrderV2::ensure_table(&db).migrate().await.unwrap();
    OrderV2::ensure_table(&db).await.unwrap();
    let open = OrderV2::find(&db)
        .filter(OrderV2::STATUS.eq("open"))
        .project::<Keys>()
        .all()
        .await
        .unwrap();
    assert_eq!(open.len(), 2);
    // Key drift is not migrated.
    let err = OrderWrongKey::ensure_table(&db)
        .migrate()
        .await
        .unwrap_err();
    assert!(err.is_schema_drift(), "{err:?}");
}

#[derive(Deserialize, Debug)]
#[allow(dead_code)]
struct Keys {
    customer: String,
    id: u32,
}

/// A later version with new fields: a default, an option, and one with neither.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "drift_orders")]
struct OrderV3 {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    id: u32,
    status: String,
    #[serde(default)]
    note: String,
    gift: Option<bool>,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "drift_orders")]
struct OrderV4 {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    id: u32,
    status: String,
    priority: u8,
}

#[tokio::test]
async fn items_written_before_a_new_field_read_as_its_default() {
    let db = support::setup::<OrderV1>().await;
    OrderV1 {
        customer: "c1".into(),
        id: 1,
        status: "open".into(),
    }
    .put(&db)
    .await
    .unwrap();
    let v3 = OrderV3::get(&db, OrderV3::key("c1", 1))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    assert_eq!((v3.note.as_str(), v3.gift), ("", None));
    let err = OrderV4::get(&db, OrderV4::key("c1", 1))
        .consistent()
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("priority") && message.contains("missing"),
        "{message}"
    );
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn a_migration_whose_answer_is_lost_still_succeeds() {
    use dynamite::testing::{Fault, FaultProxy, Match};
    use dynamite::{Client, Operation};

    let direct = support::setup::<OrderV1>().await;
    let proxy = FaultProxy::start(&support::endpoint()).await;
    let db = Client::builder(support::sdk_at(&proxy.endpoint()).await)
        .table_prefix(direct.table_prefix())
        .build();
    // DynamoDB adds the index; its answer never arrives, so the UpdateTable is sent again and
    // refused as a second creation of the index.
    proxy.script(
        Match::Operation(Operation::UpdateTable),
        Fault::DropAfterApplied,
        1,
    );
    OrderV2::ensure_table(&db).migrate().await.unwrap();
    OrderV2::ensure_table(&direct).await.unwrap();
}
