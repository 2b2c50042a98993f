//! Write safety when answers are lost: a fault proxy drops 30% of the answers AFTER the server
//! applied the request, and every write must still be applied at most once, and never be
//! reported as a failed condition when it was its own write that landed. Each test prints its
//! figures (run with `--nocapture` to see them).

use std::collections::BTreeSet;
use std::time::Duration;

use dynamite::testing::{Fault, FaultProxy, Match, TestDb};
use dynamite::{Client, Entity, Operation, RetryBudget, RetryPolicy};
use serde::{Deserialize, Serialize};

use crate::support;
use crate::support::fixtures::Thing;

const CALLS: usize = 200;
const LOST: f64 = 0.3;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "counters")]
struct Counter {
    #[dynamite(partition_key)]
    id: String,
    count: i64,
    /// One tag per call that landed: tells exactly which calls were applied.
    #[serde(default)]
    seen: BTreeSet<String>,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "docs")]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
    body: String,
    #[dynamite(version)]
    version: u64,
}

fn thing(i: usize) -> Thing {
    Thing {
        id: format!("t{i}"),
        n: i as i64,
    }
}

/// Thing `t{i}` as stored, read consistently from the server directly.
async fn stored_thing(direct: &Client, i: usize) -> Option<Thing> {
    Thing::get(direct, Thing::key(format!("t{i}")))
        .consistent()
        .await
        .unwrap()
}

/// Fast retries, and enough of them that a call whose every attempt loses its answer (30%
/// each) is out of the question: 0.3^20 per call. These tests count outcomes, not retries.
fn fast() -> RetryPolicy {
    RetryPolicy::standard()
        .max_attempts(20)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
}

struct Fx {
    db: TestDb,
    proxy: FaultProxy,
    client: Client,
}

async fn setup() -> Fx {
    let db = TestDb::new().await.expect("a DynamoDB server for tests");
    db.create_table::<Counter>().await.unwrap();
    db.create_table::<Doc>().await.unwrap();
    db.create_table::<Thing>().await.unwrap();
    let proxy = db.fault_proxy().await;
    let client = db
        .client_builder_through(&proxy)
        .retry_policy(fast())
        .retry_budget(RetryBudget::unlimited())
        .build();
    Fx { db, proxy, client }
}

/// Every error must be `OutcomeUnknown`; returns how many there were.
fn only_unknown<T: std::fmt::Debug>(results: &[dynamite::Result<T>], what: &str) -> usize {
    for r in results {
        if let Err(e) = r {
            assert!(
                e.is_outcome_unknown(),
                "{what}: an error other than OutcomeUnknown: {e:?}"
            );
        }
    }
    results.iter().filter(|r| r.is_err()).count()
}

/// Stores counter `id` at 0, directly; the direct client.
async fn new_counter<'f>(fx: &'f Fx, id: &str) -> &'f Client {
    let direct = fx.db.client();
    Counter {
        id: id.into(),
        count: 0,
        seen: BTreeSet::new(),
    }
    .put(direct)
    .await
    .unwrap();
    direct
}

async fn counter_test(fx: &Fx, id: &str, increment: bool) {
    let direct = new_counter(fx, id).await;
    fx.proxy.script_rate(
        Match::Operation(Operation::UpdateItem),
        Fault::DropAfterApplied,
        LOST,
    );
    let mut ok = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for i in 0..CALLS {
        let tag = format!("{i:03}");
        let update = Counter::update(&fx.client, Counter::key(id));
        let update = if increment {
            update.increment(Counter::COUNT, 1)
        } else {
            update.add(Counter::COUNT, 1)
        };
        let result = update
            .add(Counter::SEEN, BTreeSet::from([tag.clone()]))
            .send()
            .await;
        match result {
            Ok(()) => ok.insert(tag),
            Err(e) if e.is_outcome_unknown() => unknown.insert(tag),
            Err(e) => panic!("call {i}: {e:?}"),
        };
    }
    fx.proxy.clear();
    let stored = Counter::get(direct, Counter::key(id))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    let landed_unknown = unknown.intersection(&stored.seen).count();
    eprintln!(
        "{} x{CALLS}, {:.0}% of answers lost: {} Ok, {} OutcomeUnknown ({} of them landed), \
         {} increments landed",
        if increment { "increment(1)" } else { "add(1)" },
        LOST * 100.0,
        ok.len(),
        unknown.len(),
        landed_unknown,
        stored.count,
    );
    // Every Ok call landed ...
    assert!(ok.is_subset(&stored.seen), "an Ok call did not land");
    // ... and nothing landed twice: one increment per landed call.
    assert_eq!(
        stored.count as usize,
        stored.seen.len(),
        "a call was applied twice"
    );
    assert_eq!(stored.count as usize, ok.len() + landed_unknown);
    assert_eq!(ok.len() + unknown.len(), CALLS);
    assert!(!unknown.is_empty(), "the fault was injected");
}

#[tokio::test]
async fn counters_under_lost_answers_never_count_twice() {
    let fx = setup().await;
    counter_test(&fx, "add", false).await;
    counter_test(&fx, "increment", true).await;
    fx.db.cleanup().await.unwrap();
}

#[tokio::test]
async fn version_checked_puts_never_report_their_own_write_as_a_conflict() {
    let fx = setup().await;
    let direct = fx.db.client();
    let mut doc = Doc {
        id: "d".into(),
        body: "start".into(),
        version: 0,
    };
    doc.put(direct).await.unwrap();
    fx.proxy.script_rate(
        Match::Operation(Operation::PutItem),
        Fault::DropAfterApplied,
        LOST,
    );
    let mut results = Vec::new();
    for i in 0..CALLS {
        // Always from the stored state: no other writer, so no conflict is ever genuine.
        doc = Doc::get(direct, Doc::key("d"))
            .consistent()
            .await
            .unwrap()
            .unwrap();
        doc.body = format!("body {i}");
        let result = doc.put(&fx.client).await;
        if result.is_ok() {
            let stored = Doc::get(direct, Doc::key("d"))
                .consistent()
                .await
                .unwrap()
                .unwrap();
            assert_eq!(stored.body, doc.body, "an Ok put landed");
            assert_eq!(stored.version, doc.version + 1);
        }
        results.push(result);
    }
    let lost = fx
        .proxy
        .requests()
        .iter()
        .filter(|r| r.fault.is_some())
        .count();
    fx.proxy.clear();
    let unknown = only_unknown(&results, "version-checked put");
    assert!(lost > 0, "the fault was injected");
    eprintln!(
        "version-checked put x{CALLS}, {:.0}% of answers lost ({lost} lost): {} Ok, \
         {unknown} OutcomeUnknown, 0 conflicts",
        LOST * 100.0,
        CALLS - unknown,
    );
    fx.db.cleanup().await.unwrap();
}

#[tokio::test]
async fn conditional_puts_and_deletes_never_report_their_own_write_as_failed() {
    let fx = setup().await;
    let direct = fx.db.client();

    // Create-only puts of new items: every one succeeds (or stays unknown), none "exists".
    fx.proxy.script_rate(
        Match::Operation(Operation::PutItem),
        Fault::DropAfterApplied,
        LOST,
    );
    let mut results = Vec::new();
    for i in 0..CALLS {
        results.push(thing(i).put(&fx.client).if_not_exists().await);
    }
    fx.proxy.clear();
    let unknown = only_unknown(&results, "if_not_exists put");
    for (i, r) in results.iter().enumerate() {
        let stored = stored_thing(direct, i).await;
        if r.is_ok() {
            assert_eq!(stored, Some(thing(i)), "an Ok put landed");
        }
    }
    eprintln!(
        "if_not_exists put x{CALLS}, {:.0}% of answers lost: {} Ok, {unknown} OutcomeUnknown, \
         0 ConditionFailed",
        LOST * 100.0,
        CALLS - unknown
    );

    // Conditional deletes of items that match: none fails its condition.
    for i in 0..CALLS {
        thing(i).put(direct).await.unwrap();
    }
    fx.proxy.script_rate(
        Match::Operation(Operation::DeleteItem),
        Fault::DropAfterApplied,
        LOST,
    );
    let mut results = Vec::new();
    for i in 0..CALLS {
        let delete = Thing::delete(&fx.client, Thing::key(format!("t{i}")))
            .condition(Thing::N.eq(i as i64))
            .await;
        results.push(delete);
    }
    fx.proxy.clear();
    let unknown = only_unknown(&results, "conditional delete");
    for (i, r) in results.iter().enumerate() {
        let stored = stored_thing(direct, i).await;
        // Every delete landed here: the proxy only drops answers of applied requests.
        assert_eq!(stored, None, "delete {i} ({r:?}) landed");
    }
    eprintln!(
        "conditional delete x{CALLS}, {:.0}% of answers lost: {} Ok, {unknown} OutcomeUnknown, \
         0 ConditionFailed",
        LOST * 100.0,
        CALLS - unknown
    );
    fx.db.cleanup().await.unwrap();
}

#[tokio::test]
async fn writes_returning_the_old_item_never_return_a_wrong_one() {
    let fx = setup().await;
    let direct = fx.db.client();
    for i in 0..CALLS {
        thing(i).put(direct).await.unwrap();
    }

    // put().return_old(): the old item is the one stored before, never the put's own.
    fx.proxy.script_rate(
        Match::Operation(Operation::PutItem),
        Fault::DropAfterApplied,
        LOST,
    );
    let mut results = Vec::new();
    for i in 0..CALLS {
        let new = Thing {
            id: format!("t{i}"),
            n: -(i as i64),
        };
        let old = new.put(&fx.client).return_old().await;
        if let Ok(old) = &old {
            assert_eq!(
                old.as_ref(),
                Some(&thing(i)),
                "put {i} returned a wrong old item"
            );
        }
        results.push(old);
    }
    fx.proxy.clear();
    let put_unknown = only_unknown(&results, "put().return_old()");

    // delete().return_old(): the deleted item, never None for an item that was there.
    fx.proxy.script_rate(
        Match::Operation(Operation::DeleteItem),
        Fault::DropAfterApplied,
        LOST,
    );
    let mut results = Vec::new();
    for i in 0..CALLS {
        let old = Thing::delete(&fx.client, Thing::key(format!("t{i}")))
            .return_old()
            .await;
        if let Ok(old) = &old {
            let expected = Thing {
                id: format!("t{i}"),
                n: -(i as i64),
            };
            // The put above may have stayed unknown: then it landed (the proxy only drops
            // answers of applied requests), so the stored item is the new one either way.
            assert_eq!(
                old.as_ref(),
                Some(&expected),
                "delete {i} returned a wrong old item"
            );
        }
        results.push(old);
    }
    fx.proxy.clear();
    let delete_unknown = only_unknown(&results, "delete().return_old()");
    eprintln!(
        "put().return_old() x{CALLS}: {} right, {put_unknown} OutcomeUnknown, 0 wrong; \
         delete().return_old() x{CALLS}: {} right, {delete_unknown} OutcomeUnknown, 0 wrong",
        CALLS - put_unknown,
        CALLS - delete_unknown
    );
    fx.db.cleanup().await.unwrap();
}

#[tokio::test]
async fn plain_puts_and_deletes_are_retried_and_resolved() {
    let fx = setup().await;
    let direct = fx.db.client();
    fx.proxy
        .script_rate(Match::Any, Fault::DropAfterApplied, LOST);
    for i in 0..CALLS / 2 {
        thing(i)
            .put(&fx.client)
            .await
            .expect("a plain put is sent again");
    }
    for i in 0..CALLS / 2 {
        Thing::delete(&fx.client, Thing::key(format!("t{i}")))
            .await
            .expect("a plain delete is sent again");
    }
    let lost = fx
        .proxy
        .requests()
        .iter()
        .filter(|r| r.fault.is_some())
        .count();
    fx.proxy.clear();
    assert!(lost > 0, "the fault was injected");
    for i in 0..CALLS / 2 {
        let stored = stored_thing(direct, i).await;
        assert_eq!(stored, None);
    }
    eprintln!("plain put + delete x{CALLS}: all Ok, {lost} answers lost on the way");
    fx.db.cleanup().await.unwrap();
}

#[tokio::test]
async fn sustained_throttling_spends_the_client_retry_budget_once() {
    let db = TestDb::new().await.expect("a DynamoDB server for tests");
    db.create_table::<Thing>().await.unwrap();
    let proxy = db.fault_proxy().await;
    // 50 tokens, 5 per retry: 10 retries for the whole client.
    let client = db
        .client_builder_through(&proxy)
        .retry_policy(fast().max_attempts(5))
        .retry_budget(RetryBudget::standard().capacity(50))
        .build();
    proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Throttling,
        usize::MAX,
    );
    let results = futures::future::join_all(
        (0..20).map(|i| Thing::get(&client, Thing::key(format!("t{i}"))).send()),
    )
    .await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(e) if e.is_throttled())));
    // Without the budget: 20 × 5 = 100 requests. With it: 20 first attempts + 10 retries.
    assert_eq!(proxy.count("GetItem"), 30);
    assert_eq!(client.retry_tokens_available(), Some(0));

    // Successes earn tokens back, one each.
    proxy.clear();
    for i in 0..10 {
        Thing::get(&client, Thing::key(format!("t{i}")))
            .await
            .unwrap();
    }
    assert_eq!(client.retry_tokens_available(), Some(10));
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn idempotent_mode_applies_every_counter_update_exactly_once() {
    if support::skip_on_moto(
        "idempotent_mode_applies_every_counter_update_exactly_once",
        "a transaction sent again with the same ClientRequestToken is applied once",
    ) {
        return;
    }
    let fx = setup().await;
    let direct = fx.db.client();
    let client = fx
        .db
        .client_builder_through(&fx.proxy)
        .retry_policy(fast())
        .retry_budget(RetryBudget::unlimited())
        .idempotent_writes(true)
        .build();
    new_counter(&fx, "c").await;
    // Idempotent mode sends the updates as one-item transactions.
    fx.proxy.script_rate(
        Match::Operation(Operation::TransactWriteItems),
        Fault::DropAfterApplied,
        LOST,
    );
    for i in 0..CALLS {
        Counter::update(&client, Counter::key("c"))
            .add(Counter::COUNT, 1)
            .add(Counter::SEEN, BTreeSet::from([format!("{i:03}")]))
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e:?}"));
    }
    let lost = fx
        .proxy
        .requests()
        .iter()
        .filter(|r| r.fault.is_some())
        .count();
    fx.proxy.clear();
    assert_eq!(fx.proxy.count("UpdateItem"), 0);
    let stored = Counter::get(direct, Counter::key("c"))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "idempotent add(1) x{CALLS}, {:.0}% of answers lost ({lost} lost): {CALLS} Ok, \
         {} increments landed",
        LOST * 100.0,
        stored.count
    );
    assert!(lost > 0, "the fault was injected");
    assert_eq!(stored.count as usize, CALLS);
    assert_eq!(stored.seen.len(), CALLS);
    fx.db.cleanup().await.unwrap();
}

#[tokio::test]
async fn idempotent_mode_reports_conditions_as_plain_writes_do() {
    let fx = setup().await;
    let direct = fx.db.client();
    let doc = Doc {
        id: "d".into(),
        body: "v1".into(),
        version: 0,
    };
    doc.put(direct).await.unwrap();

    // A stale version: the same VersionConflict as a plain put.
    let err = doc.put(&fx.client).idempotent(true).await.unwrap_err();
    assert!(err.is_version_conflict(), "{err:?}");
    assert_eq!(fx.proxy.count("TransactWriteItems"), 1);
    assert_eq!(fx.proxy.count("PutItem"), 0);

    // An update of a missing item: NotFound, as for a plain update.
    let err = Thing::update(&fx.client, Thing::key("missing"))
        .set(Thing::N, 1)
        .idempotent(true)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    // A failed condition of an update: ConditionFailed, naming the update, with the item.
    thing(7).put(direct).await.unwrap();
    let err = Thing::update(&fx.client, Thing::key("t7"))
        .set(Thing::N, 1)
        .condition(Thing::N.eq(0))
        .idempotent(true)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            dynamite::Error::ConditionFailed {
                operation: dynamite::Operation::UpdateItem,
                current: Some(_),
                ..
            }
        ),
        "{err:?}"
    );

    // The current version succeeds, and is stamped as usual.
    let current = Doc::get(direct, Doc::key("d"))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    current.put(&fx.client).idempotent(true).await.unwrap();
    let stored = Doc::get(direct, Doc::key("d"))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, current.version + 1);

    // A transaction returns no item: asking for one is refused before sending.
    fx.proxy.clear();
    let err = Thing::update(&fx.client, Thing::key("t1"))
        .add(Thing::N, 1)
        .idempotent(true)
        .return_new()
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert!(fx.proxy.requests().is_empty());
    fx.db.cleanup().await.unwrap();
}

#[tokio::test]
async fn batch_leftovers_separate_the_unknown_from_the_not_applied() {
    let fx = setup().await;
    let direct = fx.db.client();
    let once = fx
        .db
        .client_builder_through(&fx.proxy)
        .retry_policy(RetryPolicy::none())
        .build();
    let things: Vec<Thing> = (0..60).map(thing).collect();

    // The first request's answer is lost (after it was applied), the second is refused.
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::DropAfterApplied,
        1,
    );
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::ValidationError,
        1,
    );
    let err = Thing::batch_write(&once)
        .concurrency(1)
        .put_all(&things)
        .await
        .unwrap_err();
    let dynamite::Error::Unprocessed {
        operations,
        unknown,
        applied,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    eprintln!(
        "batch_write of 60, one answer lost and one request refused: {applied} applied, {} \
         unknown, {} not applied",
        unknown.len(),
        operations.len()
    );
    assert_eq!(unknown.len(), 25, "the lost request's operations");
    assert_eq!(operations.len(), 25, "the refused request's operations");
    assert_eq!(applied, 10);
    let stored = |op: &dynamite::ops::WriteOp| {
        let id = op.key()["id"].as_s().unwrap().clone();
        async move {
            Thing::get(direct, Thing::key(id))
                .consistent()
                .await
                .unwrap()
        }
    };
    for op in &operations {
        assert_eq!(
            stored(op).await,
            None,
            "reported not applied, so not stored"
        );
    }
    for op in &unknown {
        // The proxy drops answers only after the server applied the request.
        assert!(stored(op).await.is_some());
    }
    fx.db.cleanup().await.unwrap();
}

#[tokio::test]
async fn batch_errors_keep_their_cause() {
    // No table created: DynamoDB's ResourceNotFoundException must show through.
    let db = TestDb::new().await.expect("a DynamoDB server for tests");
    let client = db.client();
    let err = Thing::batch_write(client).put(&thing(1)).await.unwrap_err();
    assert!(err.is_resource_not_found(), "{err:?}");
    let source = std::error::Error::source(&err).expect("the cause");
    assert!(source.downcast_ref::<dynamite::Error>().is_some());
    let err = Thing::batch_get(client, [Thing::key("t1")])
        .await
        .unwrap_err();
    assert!(err.is_resource_not_found(), "{err:?}");
}
