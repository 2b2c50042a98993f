//! DynamoDB rules that moto breaks, checked where they hold: on DynamoDB Local (AWS's own
//! engine). Each test names the rule it checks; on moto the ones moto cannot pass are skipped
//! (listed in the README's testing section).

use crate::support;
use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use dynamite::{Entity, Error, Update};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "products")]
struct Product {
    #[dynamite(partition_key)]
    id: String,
    stock: i64,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "blobs")]
struct Blob {
    #[dynamite(partition_key)]
    id: String,
    data: String,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "sessions")]
struct Session {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(ttl)]
    expires_at: Option<i64>,
}

fn restock(db: &dynamite::Client) -> impl std::future::Future<Output = dynamite::Result<()>> + '_ {
    db.transact_write()
        .update_if(
            Product::key("p1"),
            Update::new().add(Product::STOCK, 10),
            Product::STOCK.eq(0),
        )
        .send()
}

/// Transactions are isolated: of several concurrent transactions that each restock a product
/// only while its stock is 0, exactly one applies; each other one is cancelled with its reason.
#[tokio::test]
async fn concurrent_conditional_transactions_apply_once() {
    if support::skip_on_moto(
        "concurrent_conditional_transactions_apply_once",
        "concurrent transactions are isolated (moto has applied two conditional transactions \
         on one item, both checking the condition before either wrote)",
    ) {
        return;
    }
    let db = support::client().await;
    Product::create_table(&db).await.unwrap();
    let product = Product {
        id: "p1".into(),
        stock: 0,
    };
    for round in 0..5 {
        product.put(&db).await.unwrap();
        let results = futures::future::join_all((0..8).map(|_| restock(&db))).await;
        let applied = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(applied, 1, "round {round}: {results:?}");
        for result in results.into_iter().filter_map(|r| r.err()) {
            let Error::TransactionCanceled { reasons } = &result else {
                panic!("round {round}: expected a cancelled transaction, got {result:?}");
            };
            assert_eq!(reasons.len(), 1, "{reasons:?}");
            let code = reasons[0].code.as_deref();
            assert!(
                matches!(code, Some("ConditionalCheckFailed" | "TransactionConflict")),
                "round {round}: reason {code:?}"
            );
            assert_eq!(reasons[0].index, 0);
            assert_eq!(reasons[0].operation, dynamite::ops::TransactAction::Update);
        }
        let stored = Product::get(&db, Product::key("p1"))
            .consistent()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.stock, 10, "round {round}: restocked more than once");
    }
}

/// A transaction sent again with the same client request token (within ten minutes) is
/// applied once: the second call succeeds without applying anything.
#[tokio::test]
async fn transaction_with_the_same_token_applies_once() {
    if support::skip_on_moto(
        "transaction_with_the_same_token_applies_once",
        "ClientRequestToken makes TransactWriteItems idempotent (moto ignores the token)",
    ) {
        return;
    }
    let db = support::client().await;
    Product::create_table(&db).await.unwrap();
    Product {
        id: "p1".into(),
        stock: 0,
    }
    .put(&db)
    .await
    .unwrap();
    let add_one = || {
        db.transact_write()
            .update(Product::key("p1"), Update::new().add(Product::STOCK, 1))
            .idempotency_token("restock-p1-once")
    };
    add_one().await.unwrap();
    add_one().await.unwrap();
    let stored = Product::get(&db, Product::key("p1"))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.stock, 1,
        "the repeated transaction was applied twice"
    );

    // A different token is a different transaction.
    db.transact_write()
        .update(Product::key("p1"), Update::new().add(Product::STOCK, 1))
        .idempotency_token("restock-p1-again")
        .await
        .unwrap();
    let stored = Product::get(&db, Product::key("p1"))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.stock, 2);
}

/// A blob whose item size (attribute names plus values, as DynamoDB counts it) is `size`.
fn blob_of_size(size: usize) -> Blob {
    let overhead = "id".len() + "b1".len() + "data".len();
    Blob {
        id: "b1".into(),
        data: "x".repeat(size - overhead),
    }
}

/// The item size limit is 400 KB = 409,600 bytes: an item of exactly that size is stored, one
/// byte more is refused before sending — and DynamoDB itself refuses it too, so the client's
/// count matches the server's.
#[tokio::test]
async fn item_size_limit_is_409600_bytes() {
    if support::skip_on_moto(
        "item_size_limit_is_409600_bytes",
        "items may be 409,600 bytes (moto caps them at 405,000)",
    ) {
        return;
    }
    let db = support::client().await;
    Blob::create_table(&db).await.unwrap();

    let largest = blob_of_size(409_600);
    largest.put(&db).await.unwrap();
    let read = Blob::get(&db, Blob::key("b1")).consistent().await.unwrap();
    assert_eq!(
        read.as_ref().map(|b| b.data.len()),
        Some(largest.data.len())
    );

    let too_big = blob_of_size(409_601);
    let err = too_big.put(&db).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { .. }) && err.to_string().contains("409601 bytes"),
        "{err}"
    );

    // The client refuses it before any request: the same put through an unreachable endpoint
    // fails with the same validation error, not a connection error.
    let offline = support::unreachable_client().await;
    let err = too_big.put(&offline).await.unwrap_err();
    assert!(matches!(&err, Error::Validation { .. }), "{err}");

    // DynamoDB agrees: sent raw, one byte over is a ValidationException.
    let raw = db
        .sdk()
        .put_item()
        .table_name(db.table_name("blobs"))
        .item("id", AttributeValue::S(too_big.id.clone()))
        .item("data", AttributeValue::S(too_big.data.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        raw.as_service_error().and_then(|e| e.meta().code()),
        Some("ValidationException"),
        "{raw:?}"
    );
}

/// `ensure_table` enables TTL on the entity's TTL attribute, and doing it again is a no-op.
#[tokio::test]
async fn ensure_table_enables_ttl() {
    let db = support::client().await;
    Session::ensure_table(&db).await.unwrap();
    Session::ensure_table(&db).await.unwrap();
    let ttl = db
        .sdk()
        .describe_time_to_live()
        .table_name(db.table_name("sessions"))
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description().expect("a TTL description");
    assert_eq!(
        description.time_to_live_status(),
        Some(&TimeToLiveStatus::Enabled)
    );
    assert_eq!(description.attribute_name(), Some("expires_at"));

    // The same table declared with TTL on another attribute: DynamoDB allows one, so items
    // would not expire as declared. ensure_table says so instead of succeeding.
    #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[dynamite(table = "sessions")]
    struct OtherSession {
        #[dynamite(partition_key)]
        id: String,
        #[dynamite(ttl)]
        gone_at: Option<i64>,
    }
    let err = OtherSession::ensure_table(&db).await.unwrap_err();
    assert!(
        matches!(&err, dynamite::Error::Config(m) if m.contains("expires_at") && m.contains("gone_at")),
        "{err:?}"
    );
}

/// TransactGetItems reads up to 100 items (moto caps it at 25); 101 are refused before sending.
#[tokio::test]
async fn transact_get_reads_100_items() {
    if support::skip_on_moto(
        "transact_get_reads_100_items",
        "TransactGetItems takes up to 100 items (moto refuses more than 25)",
    ) {
        return;
    }
    let db = support::client().await;
    Product::create_table(&db).await.unwrap();
    let products: Vec<Product> = (0..100)
        .map(|i| Product {
            id: format!("p{i:03}"),
            stock: i,
        })
        .collect();
    db.batch_write().put_all(&products).await.unwrap();

    let read = products
        .iter()
        .fold(db.transact_get(), |tx, p| {
            tx.get(Product::key(p.id.clone()))
        })
        .await
        .unwrap();
    let read: Vec<Option<Product>> = read.all().unwrap();
    assert_eq!(read, products.iter().cloned().map(Some).collect::<Vec<_>>());

    let offline = support::unreachable_client().await;
    let err = (0..101)
        .fold(offline.transact_get(), |tx, i| {
            tx.get(Product::key(format!("p{i:03}")))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { .. }) && err.to_string().contains("101 operations"),
        "{err}"
    );
}
