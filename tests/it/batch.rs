//! BatchWriteItem and BatchGetItem through a plain client: past the per-request limits (25
//! writes, 100 keys), duplicates, missing keys, input order, and what batches refuse. Batches
//! under faults are in `faults`; with a cache, in `cache`.

use dynamite::{Entity, Error};
use serde::{Deserialize, Serialize};

use crate::support;
use crate::support::fixtures::Account;

/// Versioned: batch writes cannot check versions, so they refuse it.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "ledgers")]
struct Ledger {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(version)]
    version: u64,
}

#[tokio::test]
async fn batch_writes_refuse_versioned_entities_before_sending() {
    let db = support::unreachable_client().await;
    let ledger = Ledger {
        id: "l1".into(),
        version: 3,
    };
    let err = Ledger::batch_write(&db).put(&ledger).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, .. } if attribute == "version"),
        "{err:?}"
    );
}

#[tokio::test]
async fn batches_past_the_request_limits_with_duplicates_and_missing_keys() {
    let db = support::setup::<Account>().await;
    let accounts: Vec<Account> = (0..260)
        .map(|i| Account {
            id: format!("a{i}"),
            balance: i,
        })
        .collect();
    let out = Account::batch_write(&db)
        .put_all(&accounts)
        .put(&accounts[0])
        .await
        .unwrap();
    assert_eq!(out.puts, 260);
    assert_eq!(out.superseded, 1);
    let keys: Vec<_> = (0..300)
        .rev()
        .map(|i| Account::key(format!("a{i}")))
        .chain([Account::key("a5")])
        .collect();
    let got = Account::batch_get(&db, keys).await.unwrap();
    assert_eq!(got.items.len(), 260);
    assert_eq!(got.missing.len(), 40);
    assert_eq!(got.items[0].id, "a259");
}
