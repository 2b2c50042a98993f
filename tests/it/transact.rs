//! TransactWriteItems and TransactGetItems through a plain client: conditions, the reasons of a
//! cancelled transaction, missing items. Transactions under faults are in `faults` and
//! `write_safety`; DynamoDB's own rules (tokens, 100 items) in `conformance`.

use dynamite::{Entity, Error, Update};

use crate::support;
use crate::support::fixtures::Account;

#[tokio::test]
async fn conditional_transactions_apply_or_report_each_reason() {
    let db = support::setup::<Account>().await;
    Account::batch_write(&db)
        .put_all(&[1, 2, 10, 11].map(|i| Account {
            id: format!("a{i}"),
            balance: i,
        }))
        .await
        .unwrap();
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
