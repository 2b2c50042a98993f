mod common;

use dynamite::{Entity, Error, Update};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "accounts")]
struct Account {
    #[dynamite(partition_key)]
    id: String,
    balance: i64,
}

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
    let db = common::unreachable_client().await;
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
async fn smoke() {
    let db = common::client().await;
    Account::create_table(&db).await.unwrap();
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
    db.transact_write()
        .update_if(
            Account::key("a10"),
            Update::new().add(Account::BALANCE, -5),
            Account::BALANCE.ge(5),
        )
        .update(Account::key("a11"), Update::new().add(Account::BALANCE, 5))
        .await
        .unwrap();
    let err = db
        .transact_write()
        .update_if(
            Account::key("a1"),
            Update::new().add(Account::BALANCE, -5),
            Account::BALANCE.ge(5),
        )
        .update(Account::key("a2"), Update::new().add(Account::BALANCE, 5))
        .await
        .unwrap_err();
    println!("{err}");
    match err {
        Error::TransactionCanceled { reasons } => {
            assert!(reasons[0].is_condition_failed());
            assert!(!reasons[1].is_condition_failed());
        }
        other => panic!("{other:?}"),
    }
    let out = db
        .transact_get()
        .get(Account::key("a10"))
        .get(Account::key("nope"))
        .await
        .unwrap();
    assert_eq!(out.get::<Account>(0).unwrap().unwrap().balance, 5);
    assert_eq!(out.get::<Account>(1).unwrap(), None);
}
