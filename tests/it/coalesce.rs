//! Request coalescing (`ClientBuilder::coalesce_gets`): concurrent gets share BatchGetItem
//! requests, and each caller still gets what a GetItem would have given it — its own item or
//! `None`, its own validation error, the failure of its own request — through throttling,
//! unprocessed keys and callers that stop waiting. Requests are counted by the fault proxy.

use std::future::IntoFuture;
use std::time::Duration;

use dynamite::testing::{Fault, FaultProxy, Match};
use dynamite::{Client, Entity, Error, Operation, RetryPolicy};
use futures::future::join_all;
use serde::{Deserialize, Serialize};

use crate::support;
use crate::support::fixtures::{Account, Thing};
use crate::support::trace::Capture;

/// A third entity, with a composite key (a number sort key).
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "order_lines")]
struct OrderLine {
    #[dynamite(partition_key)]
    order: String,
    #[dynamite(sort_key)]
    line: u32,
    qty: i64,
}

/// A client that coalesces gets, through a fault proxy, over tables of `Thing`, `Account` and
/// `OrderLine` holding 120 items each (keys 0..120; keys 120.. are missing).
struct Fx {
    proxy: FaultProxy,
    db: Client,
}

const STORED: usize = 120;

impl Fx {
    async fn start() -> Fx {
        Fx::start_with(|b| b).await
    }

    async fn start_with(
        configure: impl FnOnce(dynamite::ClientBuilder) -> dynamite::ClientBuilder,
    ) -> Fx {
        let direct = support::client().await;
        Thing::create_table(&direct).await.unwrap();
        Account::create_table(&direct).await.unwrap();
        OrderLine::create_table(&direct).await.unwrap();
        let things: Vec<Thing> = (0..STORED).map(thing).collect();
        let accounts: Vec<Account> = (0..STORED).map(account).collect();
        let lines: Vec<OrderLine> = (0..STORED).map(order_line).collect();
        direct
            .batch_write()
            .put_all(&things)
            .put_all(&accounts)
            .put_all(&lines)
            .await
            .unwrap();
        let proxy = FaultProxy::start(&support::endpoint()).await;
        let sdk = support::sdk_at(&proxy.endpoint()).await;
        let builder = Client::builder(sdk)
            .table_prefix(direct.table_prefix())
            .retry_policy(fast_policy())
            .coalesce_gets(true)
            // One request in flight: the gets made while it is held all wait for one batch.
            .coalesce_max_in_flight(1);
        let db = configure(builder).build();
        Fx { proxy, db }
    }

    /// Asserts that one GetItem and one BatchGetItem were sent; the keys in the batch.
    fn one_batch_after_one_get(&self) -> usize {
        assert_eq!(self.proxy.count("GetItem"), 1);
        assert_eq!(self.proxy.count("BatchGetItem"), 1);
        let requests = self.proxy.requests();
        let batch = requests
            .iter()
            .find(|seen| seen.operation == "BatchGetItem")
            .expect("a BatchGetItem");
        let tables = batch.body["RequestItems"]
            .as_object()
            .expect("RequestItems");
        assert_eq!(tables.len(), 1, "{}", batch.body);
        tables
            .values()
            .map(|t| t["Keys"].as_array().expect("Keys").len())
            .sum()
    }

    /// Holds the next GetItem for `delay`, so the gets started meanwhile wait for a batch.
    fn hold_next_get(&self, delay: Duration) {
        self.proxy
            .script(Match::Operation(Operation::GetItem), Fault::Delay(delay), 1);
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy::standard()
        .max_attempts(6)
        .base_delay(Duration::from_millis(2))
        .max_delay(Duration::from_millis(20))
}

fn thing(i: usize) -> Thing {
    Thing {
        id: format!("t{i}"),
        n: i as i64,
    }
}

fn account(i: usize) -> Account {
    Account {
        id: format!("a{i}"),
        balance: 10 * i as i64,
    }
}

fn order_line(i: usize) -> OrderLine {
    OrderLine {
        order: format!("o{}", i % 7),
        line: i as u32,
        qty: i as i64 + 1,
    }
}

/// What one get of the mixed workload read, to compare with what is stored.
#[derive(Debug, PartialEq)]
enum Read {
    Thing(Option<Thing>),
    Account(Option<Account>),
    Line(Option<OrderLine>),
}

/// The get number `n` of the mixed workload (entity by `n % 3`, keys past the stored ones
/// missing), and what it must read.
async fn mixed_get(db: &Client, n: usize) -> (Read, Read) {
    let i = (n * 7) % (STORED + 40);
    let expected = |stored: bool| stored && i < STORED;
    match n % 3 {
        0 => (
            Read::Thing(Thing::get(db, Thing::key(format!("t{i}"))).await.unwrap()),
            Read::Thing(expected(true).then(|| thing(i))),
        ),
        1 => (
            Read::Account(
                Account::get(db, Account::key(format!("a{i}")))
                    .await
                    .unwrap(),
            ),
            Read::Account(expected(true).then(|| account(i))),
        ),
        _ => (
            Read::Line(
                OrderLine::get(db, OrderLine::key(format!("o{}", i % 7), i as u32))
                    .await
                    .unwrap(),
            ),
            Read::Line(expected(true).then(|| order_line(i))),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_gets_across_three_entities_each_read_their_own_item() {
    // The default number of requests in flight per table.
    let fx = Fx::start_with(|b| b.coalesce_max_in_flight(4)).await;
    let reads = join_all((0..1_000).map(|n| mixed_get(&fx.db, n))).await;
    let mut missing = 0;
    for (n, (read, expected)) in reads.iter().enumerate() {
        assert_eq!(read, expected, "get {n}");
        missing += matches!(
            read,
            Read::Thing(None) | Read::Account(None) | Read::Line(None)
        ) as usize;
    }
    assert!(
        missing > 100,
        "the workload reads missing keys too: {missing}"
    );
    let gets = fx.proxy.count("GetItem");
    let batches = fx.proxy.count("BatchGetItem");
    eprintln!("1,000 gets: {gets} GetItem and {batches} BatchGetItem requests");
    assert!(batches > 0, "no BatchGetItem");
    // 1,000 gets in at most 10 batches of 100 per table, plus four GetItem per table.
    assert!(
        gets + batches <= 60,
        "{gets} GetItem and {batches} BatchGetItem requests for 1,000 gets"
    );
}

#[tokio::test]
async fn gets_of_one_key_share_it_and_a_missing_key_is_none_only_for_its_callers() {
    let fx = Fx::start().await;
    let capture = Capture::default();
    let _guard = capture.install();
    fx.hold_next_get(Duration::from_millis(300));
    let keys = ["t1", "t1", "t999", "t2", "t1", "t999", "t3"];
    let reads = join_all(
        keys.iter()
            .map(|id| Thing::get(&fx.db, Thing::key(id.to_string())).into_future()),
    )
    .await;
    for (id, read) in keys.iter().zip(reads) {
        let read = read.unwrap();
        match *id {
            "t999" => assert_eq!(read, None),
            id => assert_eq!(read.map(|t| t.id), Some(id.to_owned())),
        }
    }
    // The first get went alone; the rest, four distinct keys, in one batch.
    assert_eq!(fx.one_batch_after_one_get(), 4, "each key once");
    // Tracing shows each logical get (six coalesced into a batch of six) and the one request.
    let gets = capture.spans_of("GetItem");
    assert_eq!(gets.len(), 7, "{gets:?}");
    let coalesced: Vec<_> = gets
        .iter()
        .filter(|(_, fields)| fields.get("coalesced").map(String::as_str) == Some("true"))
        .collect();
    assert_eq!(coalesced.len(), 6, "{gets:?}");
    for (_, fields) in coalesced {
        assert_eq!(fields.get("batch_size").map(String::as_str), Some("6"));
    }
    assert_eq!(capture.spans_of("BatchGetItem").len(), 1);
}

#[tokio::test]
async fn gets_go_alone_while_fewer_than_max_in_flight_requests_are_out() {
    let fx = Fx::start_with(|b| b.coalesce_max_in_flight(3)).await;
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Delay(Duration::from_millis(300)),
        3,
    );
    let reads =
        join_all((0..12).map(|i| Thing::get(&fx.db, Thing::key(format!("t{i}"))).into_future()))
            .await;
    for (i, read) in reads.into_iter().enumerate() {
        assert_eq!(read.unwrap(), Some(thing(i)), "get {i}");
    }
    // Three sent alone at once; the nine made while they were out, in one batch.
    assert_eq!(fx.proxy.count("GetItem"), 3);
    assert_eq!(fx.proxy.count("BatchGetItem"), 1);
}

#[tokio::test]
async fn throttled_requests_and_unprocessed_keys_are_sent_again() {
    let fx = Fx::start().await;
    fx.hold_next_get(Duration::from_millis(300));
    let batch = Match::Operation(Operation::BatchGetItem);
    fx.proxy.script(batch.clone(), Fault::Throttling, 2);
    fx.proxy.script(batch.clone(), Fault::UnprocessedHalf, 2);
    let reads = join_all(
        (0..60).map(|i| Account::get(&fx.db, Account::key(format!("a{i}"))).into_future()),
    )
    .await;
    for (i, read) in reads.into_iter().enumerate() {
        assert_eq!(read.unwrap(), Some(account(i)), "get {i}");
    }
    // Two throttled attempts, two halves left unprocessed, then the rest.
    assert!(
        fx.proxy.count("BatchGetItem") >= 5,
        "{} BatchGetItem",
        fx.proxy.count("BatchGetItem")
    );
}

#[tokio::test]
async fn projections_and_consistency_make_separate_batches_and_lost_answers_are_sent_again() {
    let fx = Fx::start().await;
    // Two answers lost after the server read the batch: reads are sent again.
    let batch = Match::Operation(Operation::BatchGetItem);
    fx.proxy.script(batch.clone(), Fault::DropAfterApplied, 1);
    fx.proxy.script(batch, Fault::DropBeforeForwarding, 1);
    let get = |i: usize| Thing::get(&fx.db, Thing::key(format!("t{i}")));
    // Polled together, each group's first get leads and the other four wait for it.
    let plain = join_all((0..5).map(|i| get(i).into_future()));
    let consistent = join_all((5..10).map(|i| get(i).consistent().into_future()));
    let selected = join_all((10..15).map(|i| get(i).select([Thing::N]).into_future()));
    let (plain, consistent, selected) = tokio::join!(plain, consistent, selected);
    let reads = plain.into_iter().chain(consistent).chain(selected);
    for (i, read) in reads.enumerate() {
        assert_eq!(read.unwrap(), Some(thing(i)), "get {i}");
    }
    assert_eq!(fx.proxy.count("GetItem"), 3);
    let batches: Vec<_> = fx
        .proxy
        .requests()
        .into_iter()
        .filter(|seen| seen.operation == "BatchGetItem" && seen.fault.is_none())
        .map(|seen| {
            seen.body["RequestItems"]
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(
        batches.len(),
        3,
        "one batch per group once answered: {batches:?}"
    );
    assert_eq!(
        batches
            .iter()
            .filter(|b| b["ConsistentRead"] == true)
            .count(),
        1,
        "{batches:?}"
    );
    assert_eq!(
        batches
            .iter()
            .filter(|b| b.get("ProjectionExpression").is_some())
            .count(),
        1,
        "{batches:?}"
    );
    assert!(batches
        .iter()
        .all(|b| b["Keys"].as_array().unwrap().len() == 4));
}

#[tokio::test]
async fn a_refused_batch_fails_each_of_its_gets_with_its_error() {
    let fx = Fx::start().await;
    fx.hold_next_get(Duration::from_millis(300));
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::AccessDenied,
        1,
    );
    let reads =
        join_all((0..10).map(|i| Thing::get(&fx.db, Thing::key(format!("t{i}"))).into_future()))
            .await;
    let mut refused = 0;
    for (i, read) in reads.into_iter().enumerate() {
        match read {
            Ok(found) => assert_eq!(found, Some(thing(i)), "get {i}"),
            Err(err) => {
                assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
                assert!(matches!(err, Error::Sdk { .. }), "{err:?}");
                // Display names the request; the source chain reaches the SDK's error.
                assert!(err.to_string().contains("BatchGetItem"), "{err}");
                assert!(std::error::Error::source(&err).is_some());
                refused += 1;
            }
        }
    }
    // The first get (sent alone) read its item; the nine in the refused batch failed.
    assert_eq!(refused, 9);
}

#[tokio::test]
async fn an_invalid_key_fails_only_its_own_get_before_it_joins_a_batch() {
    let fx = Fx::start().await;
    fx.hold_next_get(Duration::from_millis(300));
    let ids = ["t1", "t2", "", "t3"];
    let reads = join_all(
        ids.iter()
            .map(|id| Thing::get(&fx.db, Thing::key(id.to_string())).into_future()),
    )
    .await;
    for (id, read) in ids.iter().zip(reads) {
        if id.is_empty() {
            let err = read.unwrap_err();
            assert!(err.is_validation(), "{err:?}");
        } else {
            assert_eq!(read.unwrap().map(|t| t.id), Some(id.to_string()));
        }
    }
    let sent: usize = fx
        .proxy
        .requests()
        .iter()
        .map(|seen| seen.body.to_string().matches("\"S\":\"\"").count())
        .sum();
    assert_eq!(sent, 0, "the empty key was never sent");
}

#[tokio::test]
async fn callers_that_stop_waiting_take_no_one_elses_answer() {
    let fx = Fx::start().await;
    // The first get leads with a slow GetItem; its caller gives up while 20 gets wait.
    fx.hold_next_get(Duration::from_millis(400));
    let leader = tokio::spawn({
        let db = fx.db.clone();
        async move { Thing::get(&db, Thing::key("t0")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The batch these join is slow too; five of them give up while it is in flight.
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::Delay(Duration::from_millis(300)),
        1,
    );
    let waiters: Vec<_> = (1..=20)
        .map(|i| {
            let db = fx.db.clone();
            tokio::spawn(async move { (i, Thing::get(&db, Thing::key(format!("t{i}"))).await) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    // The leader's GetItem is dropped: the batch goes out now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for waiter in &waiters[..5] {
        waiter.abort();
    }
    let mut answered = 0;
    for waiter in waiters {
        match waiter.await {
            Ok((i, read)) => {
                assert_eq!(read.unwrap(), Some(thing(i)), "get {i}");
                answered += 1;
            }
            Err(join) => assert!(join.is_cancelled()),
        }
    }
    assert_eq!(answered, 15);
    assert_eq!(fx.proxy.count("BatchGetItem"), 1);
    // The group is idle again: the next get is sent alone, at once.
    fx.proxy.clear();
    assert_eq!(
        Thing::get(&fx.db, Thing::key("t7")).await.unwrap(),
        Some(thing(7))
    );
    assert_eq!(fx.proxy.count("GetItem"), 1);
}

#[tokio::test]
async fn the_choice_per_entity_and_per_call_and_gets_answered_by_the_cache() {
    let fx = Fx::start_with(|b| {
        b.coalesce_gets_of::<Account>(false)
            .cache(dynamite::cache::MokaLayer::new(10_000))
    })
    .await;
    assert!(fx.db.coalesces_gets_of::<Thing>());
    assert!(!fx.db.coalesces_gets_of::<Account>());
    // Accounts are not coalesced: every get is a GetItem.
    fx.hold_next_get(Duration::from_millis(200));
    let reads =
        join_all((0..5).map(|i| Account::get(&fx.db, Account::key(format!("a{i}"))).into_future()))
            .await;
    assert!(reads.into_iter().all(|r| r.unwrap().is_some()));
    assert_eq!(fx.proxy.count("GetItem"), 5);
    assert_eq!(fx.proxy.count("BatchGetItem"), 0);
    // Per call, off: a GetItem each, although the client coalesces Things.
    fx.proxy.clear();
    fx.hold_next_get(Duration::from_millis(200));
    let reads = join_all((0..5).map(|i| {
        Thing::get(&fx.db, Thing::key(format!("t{i}")))
            .coalesce(false)
            .into_future()
    }))
    .await;
    assert!(reads.into_iter().all(|r| r.unwrap().is_some()));
    assert_eq!(fx.proxy.count("GetItem"), 5);
    // Cached now: gets answered by the cache never join a batch (no request at all); the
    // misses among them are coalesced.
    fx.proxy.clear();
    fx.hold_next_get(Duration::from_millis(200));
    let reads =
        join_all((0..10).map(|i| Thing::get(&fx.db, Thing::key(format!("t{i}"))).into_future()))
            .await;
    for (i, read) in reads.into_iter().enumerate() {
        assert_eq!(read.unwrap(), Some(thing(i)));
    }
    assert_eq!(
        fx.one_batch_after_one_get(),
        4,
        "only the four misses after the lead"
    );
}
