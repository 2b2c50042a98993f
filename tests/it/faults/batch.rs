//! Batches: unprocessed items and keys, exact leftovers, whole-request faults, stats and
//! concurrency.

use super::*;

// ---------------------------------------------------------------------------------------------
// Batch writes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn batch_write_with_unprocessed_items_writes_every_item_exactly_once() {
    let p = policy(4);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;
    let doomed: Vec<Thing> = (200..210).map(thing).collect();
    Thing::batch_write(&fx.direct)
        .put_all(&doomed)
        .await
        .unwrap();

    // 110 puts (one key put twice: the last one wins) and 10 deletes: 120 operations, 5 chunks.
    let things: Vec<Thing> = (0..110).map(thing).collect();
    let superseded = Thing { id: id(7), n: -7 };
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedHalf,
        8,
    );
    let out = Thing::batch_write(&fx.db)
        .put(&superseded)
        .put_all(&things)
        .delete_all((200..210).map(key))
        .await
        .unwrap();
    assert_eq!((out.puts, out.deletes, out.superseded), (110, 10, 1));

    let seen = fx.proxy.requests();
    assert_eq!(out.stats.requests, fx.proxy.count(BATCH_WRITE));
    assert_eq!(
        out.stats.unprocessed_retries,
        real_half_splits(&seen, BATCH_WRITE)
    );
    assert!(out.stats.unprocessed_retries > 0);
    assert!(out.stats.requests > 5);
    // Every operation reached the server exactly once.
    let expected: Vec<String> = (0..110).chain(200..210).map(id).collect();
    assert_eq!(sorted(forwarded(&seen, BATCH_WRITE)), expected);
    // And the server holds exactly the puts, with the last value of the duplicated key.
    let want: BTreeMap<String, i64> = things.iter().map(|t| (t.id.clone(), t.n)).collect();
    assert_eq!(stored(&fx).await, want);

    let events = fx.capture.events_of(BATCH_WRITE);
    assert_eq!(events.len(), out.stats.unprocessed_retries, "{events:?}");
    for e in &events {
        assert_eq!(e.reason, "UnprocessedItems");
        assert!(e.delay <= ceiling(&p, e.retry), "{e:?}");
    }

    // A round that makes progress starts the attempt count (and the back-off) again: with two
    // attempts per policy, a chunk halved five times over still gets written.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedHalf,
        FOREVER,
    );
    let more: Vec<Thing> = (300..325).map(thing).collect();
    let tight = policy(2);
    let out = Thing::batch_write(&fx.db)
        .put_all(&more)
        .retry(tight.clone())
        .await
        .unwrap();
    assert_eq!(out.puts, 25);
    assert_eq!(out.stats.requests, halving_requests(25));
    assert_eq!(out.stats.unprocessed_retries, halving_requests(25) - 1);
    assert_eq!(fx.proxy.count(BATCH_WRITE), halving_requests(25));
    let events = fx.capture.events_of(BATCH_WRITE);
    assert_eq!(events.len(), halving_requests(25) - 1);
    assert!(
        events.iter().all(|e| e.delay <= tight.get_base_delay()),
        "every wait is a first retry's: {events:?}"
    );
    let stored = stored(&fx).await;
    assert!((300..325).all(|i| stored.get(&id(i)) == Some(&(i as i64))));
}

#[tokio::test]
async fn batch_write_hands_back_exactly_the_operations_not_applied() {
    let fx = Fx::start(policy(3)).await;
    create::<Thing>(&fx).await;
    let things: Vec<Thing> = (0..120).map(thing).collect();
    let all_ids: Vec<String> = (0..120).map(id).collect();

    // Some halves get through, then nothing does.
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedHalf,
        5,
    );
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_write(&fx.db)
        .put_all(&things)
        .await
        .unwrap_err();
    let Error::Unprocessed {
        operations,
        applied,
        cause,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert!(cause.is_none(), "only unprocessed items: {cause:?}");
    assert_eq!(applied + operations.len(), 120);
    assert!(
        applied >= 5,
        "each half that got through applied something: {applied}"
    );
    assert!(!operations.is_empty());

    // The operations are the original puts, once each.
    let left: Vec<String> = sorted(operations.iter().map(op_id).collect());
    assert_eq!(
        left.iter().collect::<HashSet<_>>().len(),
        left.len(),
        "no duplicates"
    );
    for op in &operations {
        let i: usize = op_id(op)[1..].parse().unwrap();
        assert_eq!(op.table(), fx.db.table_name("things"));
        assert_eq!(op.entity(), "Thing");
        match op.kind() {
            WriteKind::Put(item) => {
                assert_eq!(item, &things[i].to_item().unwrap());
                assert_eq!(item_id(item), id(i));
            }
            WriteKind::Delete => panic!("{op:?}"),
        }
    }

    // Exactly those are missing from the server; everything else is there.
    let seen = fx.proxy.requests();
    let sent = sorted(forwarded(&seen, BATCH_WRITE));
    assert_eq!(sent.len(), applied, "each applied operation was sent once");
    let stored_ids: Vec<String> = stored(&fx).await.keys().cloned().collect();
    assert_eq!(stored_ids, sent);
    let mut union: Vec<String> = stored_ids.iter().chain(&left).cloned().collect();
    union.sort();
    assert_eq!(union, all_ids, "stored and handed back partition the batch");

    // Resumed on a healthy proxy, they are all written.
    fx.reset();
    let out = fx
        .db
        .batch_write()
        .resume(operations.clone())
        .await
        .unwrap();
    assert_eq!(out.puts, operations.len());
    assert_eq!(out.stats.requests, operations.len().div_ceil(25));
    let want: BTreeMap<String, i64> = things.iter().map(|t| (t.id.clone(), t.n)).collect();
    assert_eq!(stored(&fx).await, want);
}

// ---------------------------------------------------------------------------------------------
// Batch gets
// ---------------------------------------------------------------------------------------------

/// 250 distinct keys (k000..k249, of which k230.. are not stored) in a scrambled order, with
/// 25 of them repeated; and the distinct keys in first-occurrence order.
fn scrambled_keys() -> (Vec<usize>, Vec<usize>) {
    let mut input = Vec::new();
    for i in 0..250usize {
        let k = (i * 37 + 11) % 250; // a permutation of 0..250
        input.push(k);
        if i % 10 == 3 {
            input.push((k * 7) % 250); // a repeat (or a first occurrence, seen again later)
        }
    }
    let mut seen = HashSet::new();
    let distinct: Vec<usize> = input.iter().copied().filter(|k| seen.insert(*k)).collect();
    assert_eq!(distinct.len(), 250);
    assert!(input.len() > distinct.len());
    (input, distinct)
}

const STORED: usize = 230;

#[tokio::test]
async fn batch_get_with_unprocessed_keys_reads_every_key_once_in_input_order() {
    let p = policy(3);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;
    let things: Vec<Thing> = (0..STORED).map(thing).collect();
    Thing::batch_write(&fx.direct)
        .put_all(&things)
        .await
        .unwrap();
    let (input, distinct) = scrambled_keys();
    let want_items: Vec<Thing> = distinct
        .iter()
        .filter(|k| **k < STORED)
        .map(|k| thing(*k))
        .collect();
    let want_missing: Vec<Key<Thing>> = distinct
        .iter()
        .filter(|k| **k >= STORED)
        .map(|k| key(*k))
        .collect();
    let want_sent: Vec<String> = sorted(distinct.iter().map(|k| id(*k)).collect());

    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        6,
    );
    let out = Thing::batch_get(&fx.db, input.iter().map(|k| key(*k)))
        .await
        .unwrap();
    assert_eq!(out.items, want_items);
    assert_eq!(out.missing, want_missing);
    let seen = fx.proxy.requests();
    assert_eq!(
        sorted(forwarded(&seen, BATCH_GET)),
        want_sent,
        "each key read once"
    );
    assert_eq!(out.stats.requests, fx.proxy.count(BATCH_GET));
    assert_eq!(
        out.stats.unprocessed_retries,
        real_half_splits(&seen, BATCH_GET)
    );
    assert!(out.stats.unprocessed_retries > 0);
    let events = fx.capture.events_of(BATCH_GET);
    assert_eq!(events.len(), out.stats.unprocessed_retries);
    for e in &events {
        assert_eq!(e.reason, "UnprocessedKeys");
        assert!(e.delay <= ceiling(&p, e.retry), "{e:?}");
    }

    // The lazy stream: the same, chunk by chunk.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        6,
    );
    let streamed: Vec<(Key<Thing>, Option<Thing>)> =
        Thing::batch_get(&fx.db, input.iter().map(|k| key(*k)))
            .concurrency(2)
            .stream()
            .try_collect()
            .await
            .unwrap();
    let want_streamed: Vec<(Key<Thing>, Option<Thing>)> = distinct
        .iter()
        .map(|k| (key(*k), (*k < STORED).then(|| thing(*k))))
        .collect();
    assert_eq!(streamed, want_streamed);
    assert_eq!(
        sorted(forwarded(&fx.proxy.requests(), BATCH_GET)),
        want_sent
    );
    assert!(fx.proxy.requests().iter().any(|s| s.fault.is_some()));

    // Several entities in one call.
    fx.reset();
    create::<Row>(&fx).await;
    let rows: Vec<Row> = (0..40).map(row).collect();
    Row::batch_write(&fx.direct).put_all(&rows).await.unwrap();
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        6,
    );
    let mut out = fx
        .db
        .batch_get()
        .add::<Thing>((220..240).map(key))
        .add::<Row>((30..50).map(|s| Row::key("g", s)))
        .add::<Thing>((225..235).map(key))
        .await
        .unwrap();
    let got_things = out.take::<Thing>().unwrap();
    let got_rows = out.take::<Row>().unwrap();
    assert_eq!(
        got_things.items,
        (220..STORED).map(thing).collect::<Vec<_>>()
    );
    assert_eq!(
        got_things.missing,
        (STORED..240).map(key).collect::<Vec<_>>()
    );
    assert_eq!(got_rows.items, (30..40).map(row).collect::<Vec<_>>());
    assert_eq!(
        got_rows.missing,
        (40..50).map(|s| Row::key("g", s)).collect::<Vec<_>>()
    );
    let mut want: Vec<String> = (220..240).map(id).collect();
    want.extend((30..50).map(|s| format!("g/{s}")));
    assert_eq!(
        sorted(forwarded(&fx.proxy.requests(), BATCH_GET)),
        sorted(want)
    );

    // Progress starts the attempt count again: 100 keys halved down to one, with a policy of
    // two attempts.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        FOREVER,
    );
    let tight = policy(2);
    let out = Thing::batch_get(&fx.db, (0..100).map(key))
        .retry(tight.clone())
        .await
        .unwrap();
    assert_eq!(out.items, (0..100).map(thing).collect::<Vec<_>>());
    assert_eq!(out.stats.requests, halving_requests(100));
    assert_eq!(out.stats.unprocessed_retries, halving_requests(100) - 1);
    let events = fx.capture.events_of(BATCH_GET);
    assert!(
        events.iter().all(|e| e.delay <= tight.get_base_delay()),
        "{events:?}"
    );
}

#[tokio::test]
async fn batch_get_out_of_retries_reports_exactly_the_unread_keys() {
    let fx = Fx::start(policy(3)).await;
    create::<Thing>(&fx).await;
    let things: Vec<Thing> = (0..60).map(thing).collect();
    Thing::batch_write(&fx.direct)
        .put_all(&things)
        .await
        .unwrap();

    // 70 distinct keys (10 of them not stored), 10 repeated: one chunk.
    let input: Vec<usize> = (0..70).chain(0..10).collect();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        2,
    );
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_get(&fx.db, input.iter().map(|k| key(*k)))
        .await
        .unwrap_err();
    let Error::UnprocessedKeys { keys, read, cause } = err else {
        panic!("{err:?}");
    };
    assert!(cause.is_none(), "{cause:?}");
    // Nothing already read is lost: the error holds every stored item of the keys it read.
    let attr = |item: &Item| item["id"].as_s().unwrap().clone();
    let unread: HashSet<String> = keys.iter().map(|(_, k)| attr(k)).collect();
    let read: HashSet<String> = read.iter().map(|(_, item)| attr(item)).collect();
    let expected: HashSet<String> = (0..60).map(id).filter(|i| !unread.contains(i)).collect();
    assert_eq!(read, expected);
    // 70 -> 35 sent, 35 left -> 18 sent, 17 left -> nothing twice: out of attempts.
    assert_eq!(fx.proxy.count(BATCH_GET), 4);
    assert_eq!(keys.len(), 17);
    let table = fx.db.table_name("things");
    assert!(keys.iter().all(|(t, _)| *t == table));
    let unread: Vec<String> = sorted(keys.iter().map(|(_, k)| item_id(k)).collect());
    let sent: HashSet<String> = forwarded(&fx.proxy.requests(), BATCH_GET)
        .into_iter()
        .collect();
    let want: Vec<String> = sorted((0..70).map(id).filter(|k| !sent.contains(k)).collect());
    assert_eq!(unread, want);
    assert!(keys.iter().all(|(_, k)| k.len() == 1), "keys, not items");
}

#[tokio::test]
async fn batch_get_out_of_retries_reports_the_unread_keys_of_every_chunk() {
    let fx = Fx::start(policy(2)).await;
    create::<Thing>(&fx).await;
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_get(&fx.db, (0..250).map(key))
        .await
        .unwrap_err();
    let Error::UnprocessedKeys { keys, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(keys.len(), 250, "no key was read, so every key is unread");
}

// ---------------------------------------------------------------------------------------------
// Batches under whole-request faults, and their concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn batches_recover_from_throttled_and_failed_requests() {
    let p = policy(5);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;

    let things: Vec<Thing> = (0..120).map(thing).collect();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::Throttling,
        3,
    );
    let out = Thing::batch_write(&fx.db).put_all(&things).await.unwrap();
    assert_eq!(out.puts, 120);
    assert_eq!(fx.proxy.count(BATCH_WRITE), 5 + 3);
    let events = fx.capture.events_of(BATCH_WRITE);
    assert_eq!(events.len(), 3);
    for e in &events {
        assert_eq!(e.reason, "ThrottlingException");
        assert!(e.delay <= ceiling(&p, e.retry), "{e:?}");
        assert!(
            e.span.is_some(),
            "execute-level waits run in the request's span"
        );
    }
    let recorded: usize = fx
        .capture
        .spans_of(BATCH_WRITE)
        .iter()
        .filter_map(|(_, s)| s.get("retries").map(|r| r.parse::<usize>().unwrap()))
        .sum();
    assert_eq!(recorded, 3, "the spans record the retries");
    assert_eq!(
        sorted(forwarded(&fx.proxy.requests(), BATCH_WRITE)),
        (0..120).map(id).collect::<Vec<_>>()
    );
    let want: BTreeMap<String, i64> = things.iter().map(|t| (t.id.clone(), t.n)).collect();
    assert_eq!(stored(&fx).await, want);

    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::Throttling,
        2,
    );
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::InternalServerError,
        1,
    );
    let out = Thing::batch_get(&fx.db, (0..250).map(key)).await.unwrap();
    assert_eq!(out.items, things);
    assert_eq!(out.missing, (120..250).map(key).collect::<Vec<_>>());
    assert_eq!(fx.proxy.count(BATCH_GET), 3 + 3);
    let reasons = sorted(
        fx.capture
            .events_of(BATCH_GET)
            .into_iter()
            .map(|e| e.reason)
            .collect(),
    );
    assert_eq!(
        reasons,
        [
            "InternalServerError",
            "ThrottlingException",
            "ThrottlingException"
        ]
    );
}

#[tokio::test]
async fn batch_stats_count_every_request_sent() {
    let fx = Fx::start(policy(5)).await;
    create::<Thing>(&fx).await;
    let things: Vec<Thing> = (0..120).map(thing).collect();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::Throttling,
        3,
    );
    let out = Thing::batch_write(&fx.db).put_all(&things).await.unwrap();
    assert_eq!(out.stats.requests, fx.proxy.count(BATCH_WRITE));
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::Throttling,
        3,
    );
    let out = Thing::batch_get(&fx.db, (0..120).map(key)).await.unwrap();
    assert_eq!(out.stats.requests, fx.proxy.count(BATCH_GET));
}

#[tokio::test]
async fn batches_keep_at_most_concurrency_requests_in_flight() {
    let delay = Duration::from_millis(60);
    let fx = Fx::start(policy(3)).await;
    create::<Thing>(&fx).await;

    // 1000 keys: 10 chunks, 3 at a time, each answered 60 ms late.
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::Delay(delay),
        FOREVER,
    );
    let out = Thing::batch_get(&fx.db, (0..1000).map(key))
        .concurrency(3)
        .await
        .unwrap();
    assert_eq!(out.missing.len(), 1000);
    assert_eq!(out.stats.requests, 10);
    assert_eq!(
        fx.capture.max_open(BATCH_GET),
        3,
        "3 requests in flight, never more"
    );
    assert_in_flight_at_most(&fx.proxy.requests(), BATCH_GET, 3, delay);

    // 120 puts: 5 chunks, 2 at a time.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::Delay(delay),
        FOREVER,
    );
    let things: Vec<Thing> = (0..120).map(thing).collect();
    let out = Thing::batch_write(&fx.db)
        .put_all(&things)
        .concurrency(2)
        .await
        .unwrap();
    assert_eq!(out.puts, 120);
    assert_eq!(fx.capture.max_open(BATCH_WRITE), 2);
    assert_in_flight_at_most(&fx.proxy.requests(), BATCH_WRITE, 2, delay);
}

/// Each request was held `delay` by the proxy after it arrived, so if `limit + 1` requests had
/// arrived within `delay` of each other, `limit + 1` would have been in flight at once.
fn assert_in_flight_at_most(seen: &[Seen], operation: &str, limit: usize, delay: Duration) {
    let mut arrivals: Vec<std::time::Instant> = seen
        .iter()
        .filter(|s| s.operation == operation)
        .map(|s| s.at)
        .collect();
    arrivals.sort();
    for window in arrivals.windows(limit + 1) {
        let spread = window[limit] - window[0];
        assert!(
            spread >= delay,
            "{} {operation} requests arrived within {spread:?}",
            limit + 1
        );
    }
}

/// Adds 1,000 to `n` in every item a BatchWriteItem puts, before serialization: an interceptor
/// that rewrites items, as client-side encryption does.
#[derive(Debug)]
struct AddThousand;

impl aws_sdk_dynamodb::config::Intercept for AddThousand {
    fn name(&self) -> &'static str {
        "AddThousand"
    }

    fn modify_before_serialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextMut<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
        use aws_sdk_dynamodb::types::AttributeValue;
        let Some(input) = context.input_mut().downcast_mut::<BatchWriteItemInput>() else {
            return Ok(());
        };
        for request in input
            .request_items
            .iter_mut()
            .flat_map(|t| t.values_mut())
            .flatten()
        {
            if let Some(put) = &mut request.put_request {
                if let Some(AttributeValue::N(n)) = put.item.get_mut("n") {
                    *n = (n.parse::<i64>().unwrap() + 1_000).to_string();
                }
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_client_with_interceptors_resends_the_original_items() {
    // Items are moved into requests and read back from a failed attempt's body, unless the SDK
    // config has interceptors of its own: those must see the original items again, never their
    // own output (which they would rewrite twice).
    let fx = Fx::start(policy(8)).await;
    create::<Thing>(&fx).await;
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(fx.proxy.endpoint())
        .load()
        .await;
    let sdk = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&shared)
            .interceptor(AddThousand)
            .build(),
    );
    let db = Client::builder(sdk)
        .table_prefix(fx.direct.table_prefix())
        .retry_policy(policy(8))
        .retry_budget(RetryBudget::unlimited())
        .build();
    let things: Vec<Thing> = (0..60).map(thing).collect();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::Throttling,
        2,
    );
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::InternalServerError,
        1,
    );
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedHalf,
        3,
    );
    let out = Thing::batch_write(&db).put_all(&things).await.unwrap();
    assert_eq!(out.puts, 60);
    let want: BTreeMap<String, i64> = things.iter().map(|t| (t.id.clone(), t.n + 1_000)).collect();
    assert_eq!(stored(&fx).await, want, "each item rewritten exactly once");
}
