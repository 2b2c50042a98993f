//! Transactions: retried with the same client request token; a lost answer applied once.

use super::*;

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn transactions_retry_throttling_with_the_same_token() {
    let p = policy(5);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;
    thing(1).put(&fx.direct).await.unwrap();

    fx.proxy.script(
        Match::Operation(Operation::TransactWriteItems),
        Fault::Throttling,
        2,
    );
    fx.db
        .transact_write()
        .update(key(1), Update::new().add(Thing::N, 10))
        .idempotency_token("faults-token-1")
        .await
        .unwrap();
    assert_eq!(fx.proxy.count("TransactWriteItems"), 3);
    fx.assert_retried(&p, "TransactWriteItems", &["ThrottlingException"; 2]);
    let tokens: Vec<Value> = fx
        .proxy
        .requests()
        .iter()
        .map(|s| s.body["ClientRequestToken"].clone())
        .collect();
    assert_eq!(tokens, vec![Value::from("faults-token-1"); 3]);
    assert_eq!(stored(&fx).await.get(&id(1)), Some(&11));

    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::TransactGetItems),
        Fault::InternalServerError,
        2,
    );
    let out = fx.db.transact_get().get(key(1)).await.unwrap();
    assert_eq!(out.get::<Thing>(0).unwrap().map(|t| t.n), Some(11));
    assert_eq!(fx.proxy.count("TransactGetItems"), 3);
    fx.assert_retried(&p, "TransactGetItems", &["InternalServerError"; 2]);
}

#[tokio::test]
async fn transaction_retries_reuse_one_client_request_token() {
    let fx = Fx::start(policy(5)).await;
    create::<Thing>(&fx).await;
    thing(1).put(&fx.direct).await.unwrap();

    fx.proxy.script(
        Match::Operation(Operation::TransactWriteItems),
        Fault::DropBeforeForwarding,
        1,
    );
    fx.db
        .transact_write()
        .update(key(1), Update::new().add(Thing::N, 10))
        .await
        .unwrap();
    let tokens: Vec<Value> = fx
        .proxy
        .requests()
        .iter()
        .filter(|s| s.operation == "TransactWriteItems")
        .map(|s| s.body["ClientRequestToken"].clone())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert!(tokens[0].is_string(), "{tokens:?}");
    assert_eq!(
        tokens[0], tokens[1],
        "a retry of a transaction that may have been applied must carry the same token"
    );
}

/// A transaction whose answer is lost after DynamoDB applied it is retried with the same token,
/// and DynamoDB applies it once: the caller gets Ok and the increment lands once.
#[tokio::test]
async fn transaction_whose_answer_was_lost_is_applied_once() {
    if support::skip_on_moto(
        "transaction_whose_answer_was_lost_is_applied_once",
        "ClientRequestToken makes TransactWriteItems idempotent (moto ignores the token)",
    ) {
        return;
    }
    let fx = Fx::start(policy(5)).await;
    create::<Thing>(&fx).await;
    thing(1).put(&fx.direct).await.unwrap();

    fx.proxy.script(
        Match::Operation(Operation::TransactWriteItems),
        Fault::DropAfterApplied,
        1,
    );
    fx.db
        .transact_write()
        .update(key(1), Update::new().add(Thing::N, 10))
        .await
        .unwrap();
    assert_eq!(fx.proxy.count("TransactWriteItems"), 2);
    let stored = Thing::get(&fx.direct, key(1))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.n, 11,
        "the lost-answer transaction was applied twice"
    );
}
