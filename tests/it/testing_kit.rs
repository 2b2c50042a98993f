//! How to test your own code with `dynamite::testing` (feature `testing`). Written against the
//! public API only, as a user would: copy it into your crate's `tests/` as a start.
//!
//! The tests need a DynamoDB server. With `AWS_ENDPOINT_URL_DYNAMODB` set, they use that one;
//! else the kit starts DynamoDB Local (or moto) once for the whole test binary, and stops it
//! when the binary exits. `LocalDynamoDb`'s documentation says how to install either.

use dynamite::testing::{Fault, Match, TestDb};
use dynamite::{Entity, Operation, RetryPolicy};
use serde::{Deserialize, Serialize};

/// The entity under test.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "accounts")]
struct Account {
    #[dynamite(partition_key)]
    id: String,
    owner: String,
    balance: i64,
}

fn account(id: &str, balance: i64) -> Account {
    Account {
        id: id.to_owned(),
        owner: "Ada".to_owned(),
        balance,
    }
}

/// What every test starts with: the binary's shared server, and the `accounts` table under a
/// table-name prefix no other test uses, so tests run in parallel.
async fn setup() -> TestDb {
    let db = TestDb::new().await.expect("a DynamoDB server for tests");
    db.create_table::<Account>()
        .await
        .expect("create the accounts table");
    db
}

/// The account as stored, read straight from the server (not through a proxy).
async fn stored(db: &TestDb, id: &str) -> Option<Account> {
    Account::get(db.client(), Account::key(id))
        .consistent()
        .await
        .expect("read the account")
}

#[tokio::test]
async fn a_put_succeeds_after_two_throttled_attempts() {
    let db = setup().await;

    // A proxy in front of the server, and a client whose requests go through it. The client
    // retries as every dynamite client does (`RetryPolicy::standard()`).
    let proxy = db.fault_proxy().await;
    let client = db.client_through(&proxy);

    // The next two PutItem requests are throttled; the third one reaches the server.
    proxy.script(Match::Operation(Operation::PutItem), Fault::Throttling, 2);
    account("a1", 100)
        .put(&client)
        .await
        .expect("the put succeeds after two retries");

    // The proxy saw three attempts: two throttled, one forwarded.
    assert_eq!(proxy.count("PutItem"), 3);
    let faults: Vec<Option<String>> = proxy.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(
        faults,
        [Some("Throttling".into()), Some("Throttling".into()), None]
    );
    assert_eq!(stored(&db, "a1").await, Some(account("a1", 100)));

    db.cleanup().await.expect("delete the test's tables");
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_has_still_landed() {
    let db = setup().await;
    let proxy = db.fault_proxy().await;
    let client = db.client_through(&proxy);
    account("a2", 50)
        .put(db.client())
        .await
        .expect("the account");

    // The server applies the next UpdateItem, but its answer never reaches the client.
    proxy.script(
        Match::Operation(Operation::UpdateItem),
        Fault::DropAfterApplied,
        1,
    );
    let err = Account::update(&client, Account::key("a2"))
        .add(Account::BALANCE, 25)
        .await
        .expect_err("the client gets no answer");

    // An increment sent again could be applied twice, so dynamite did not send it again: the
    // outcome is unknown to the client ...
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert_eq!(proxy.count("UpdateItem"), 1);
    // ... and here it had landed. The caller decides (read the item, or reconcile later).
    assert_eq!(stored(&db, "a2").await, Some(account("a2", 75)));

    // A put leaves the same item however often it is applied: it is sent again, and the
    // caller sees a success.
    proxy.script(
        Match::Operation(Operation::PutItem),
        Fault::DropAfterApplied,
        1,
    );
    account("a2", 80)
        .put(&client)
        .await
        .expect("the retried put succeeds");
    assert_eq!(proxy.count("PutItem"), 2);
    assert_eq!(stored(&db, "a2").await, Some(account("a2", 80)));

    // Even without retries, a lost put is resolved by reading the item back: it is what the
    // put wrote, so the put landed.
    let no_retries = db
        .client_builder_through(&proxy)
        .retry_policy(RetryPolicy::none())
        .build();
    proxy.script(
        Match::Operation(Operation::PutItem),
        Fault::DropAfterApplied,
        1,
    );
    account("a2", 90)
        .put(&no_retries)
        .await
        .expect("the put is known to have landed");
    assert_eq!(stored(&db, "a2").await, Some(account("a2", 90)));

    db.cleanup().await.expect("delete the test's tables");
}
