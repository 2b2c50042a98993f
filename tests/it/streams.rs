//! DynamoDB Streams (`dynamite::streams`) on the local server: every change kind decoded with
//! its images, a consumer resumed from its checkpoints (nothing read twice, nothing missed),
//! an expired shard iterator survived, trimmed records and throttling reported and backed off
//! (through the fault proxy), Lambda events decoded into the same records, and the cache
//! invalidator making writes of another writer (the raw SDK) visible through a cached client,
//! in the in-process layer and in Redis.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamite::cache::{CacheConfig, MokaLayer};
use dynamite::streams::{
    Batch, CacheInvalidator, Change, ChangeKind, InMemoryCheckpoints, StartPosition, StreamConsumer,
};
use dynamite::testing::{Fault, FaultProxy, Match};
use dynamite::{Client, Entity, Operation, RetryPolicy, StreamView};
use serde::{Deserialize, Serialize};

use crate::support;
use crate::support::cache::{eventually, with_cache};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "notes", stream = "new_and_old_images")]
struct Note {
    #[dynamite(partition_key)]
    owner: String,
    #[dynamite(sort_key)]
    id: String,
    text: String,
}

fn note(owner: &str, id: &str, text: &str) -> Note {
    Note {
        owner: owner.into(),
        id: id.into(),
        text: text.into(),
    }
}

/// `records` decode into the insert of note n1 ("first"), its change to "second", and its
/// removal: what both the stream and the sample Lambda event hold.
fn assert_insert_modify_remove(records: Vec<dynamite::streams::Record>) {
    let changes: Vec<Change<Note>> = records
        .into_iter()
        .map(|r| r.decode::<Note>().expect("decode").change)
        .collect();
    assert_eq!(
        changes,
        [
            Change::Insert(note("ada", "n1", "first")),
            Change::Modify(note("ada", "n1", "first"), note("ada", "n1", "second")),
            Change::Remove(note("ada", "n1", "second")),
        ]
    );
}

/// Sequence numbers compare as decimal numbers.
fn seq_key(seq: &str) -> (usize, &str) {
    let digits = seq.trim_start_matches('0');
    (digits.len(), digits)
}

/// Batches from `consumer` (each committed) until `n` records were read; fails after 30 s.
async fn read_records(consumer: &mut StreamConsumer, n: usize) -> Vec<dynamite::streams::Record> {
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while records.len() < n {
        let batch: Batch = tokio::time::timeout_at(deadline, consumer.next_batch())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records within 30 s", records.len()))
            .expect("next batch");
        consumer.commit(&batch).await.expect("commit");
        records.extend(batch.records);
    }
    records
}

/// The ids of records' keys, in order.
fn ids(records: &[dynamite::streams::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.keys["id"].as_s().unwrap().clone())
        .collect()
}

/// The view type of `table`'s stream, when it has one enabled, and whether it has a stream ARN.
async fn stream_of(db: &Client, table: &str) -> (Option<String>, bool) {
    let description = db
        .sdk()
        .describe_table()
        .table_name(db.table_name(table))
        .send()
        .await
        .expect("DescribeTable");
    let table = description.table().expect("a table");
    let view = table
        .stream_specification()
        .filter(|s| s.stream_enabled())
        .and_then(|s| s.stream_view_type())
        .map(|v| v.as_str().to_owned());
    (view, table.latest_stream_arn().is_some())
}

#[tokio::test]
async fn create_table_enables_the_entitys_stream() {
    let db = support::setup::<Note>().await;
    let (view, arn) = stream_of(&db, "notes").await;
    assert_eq!(view.as_deref(), Some("NEW_AND_OLD_IMAGES"));
    assert!(arn);
    // ensure_table accepts the table as it is; another view type is refused.
    Note::ensure_table(&db).await.expect("ensure_table");
    let err = Note::ensure_table(&db)
        .stream(StreamView::KeysOnly)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("view type"), "{err}");
}

#[tokio::test]
async fn ensure_table_enables_a_stream_on_an_existing_table() {
    let db = support::setup::<support::fixtures::Thing>().await;
    assert_eq!(stream_of(&db, "things").await, (None, false));
    support::fixtures::Thing::ensure_table(&db)
        .stream(StreamView::KeysOnly)
        .await
        .expect("enable the stream");
    assert_eq!(
        stream_of(&db, "things").await,
        (Some("KEYS_ONLY".into()), true)
    );
}

#[tokio::test]
async fn every_change_kind_is_decoded_with_its_images() {
    let db = support::setup::<Note>().await;
    let mut consumer = StreamConsumer::builder(&db, "notes").build();
    note("ada", "n1", "first").put(&db).await.unwrap();
    Note::update(&db, Note::key("ada", "n1"))
        .set(Note::TEXT, "second")
        .await
        .unwrap();
    Note::delete(&db, Note::key("ada", "n1")).await.unwrap();

    let records = read_records(&mut consumer, 3).await;
    assert_eq!(records.len(), 3);
    let kinds: Vec<ChangeKind> = records.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [ChangeKind::Insert, ChangeKind::Modify, ChangeKind::Remove]
    );
    for pair in records.windows(2) {
        assert!(seq_key(&pair[0].sequence_number) < seq_key(&pair[1].sequence_number));
    }
    for record in &records {
        assert_eq!(record.keys.len(), 2, "the key: {:?}", record.keys);
        assert_eq!(record.keys["owner"], AttributeValue::S("ada".into()));
        let created = record.approximate_creation_time.expect("a creation time");
        let age = std::time::SystemTime::now()
            .duration_since(created)
            .unwrap_or_default();
        assert!(age < Duration::from_secs(300), "created {age:?} ago");
    }
    assert_insert_modify_remove(records);
}

#[tokio::test]
async fn a_resumed_consumer_reads_nothing_twice_and_misses_nothing() {
    let db = support::setup::<Note>().await;
    let checkpoints = InMemoryCheckpoints::new();
    let id = |i: usize| format!("n{i:02}");
    for i in 0..10 {
        note("ada", &id(i), "x").put(&db).await.unwrap();
    }
    let builder = StreamConsumer::builder(&db, "notes")
        .checkpoints(checkpoints.clone())
        .batch_size(3);
    // The first consumer handles two batches, commits them, and stops.
    let mut first = builder.clone().build();
    let mut read = read_records(&mut first, 5).await;
    assert_eq!(read.len(), 6, "two batches of three");
    drop(first);
    for i in 10..20 {
        note("ada", &id(i), "x").put(&db).await.unwrap();
    }
    // The second resumes right after the last committed record, even from `Latest`.
    let mut second = builder.start(StartPosition::Latest).build();
    read.extend(read_records(&mut second, 14).await);
    let expected: Vec<String> = (0..20).map(id).collect();
    assert_eq!(ids(&read), expected);
    // And nothing else comes.
    let more = tokio::time::timeout(Duration::from_millis(1500), second.next_batch()).await;
    assert!(more.is_err(), "no record after the last: {more:?}");
    assert_eq!(checkpoints.len(), 1, "one shard");
}

#[tokio::test]
async fn a_fresh_consumer_from_latest_reads_only_later_changes() {
    let db = support::setup::<Note>().await;
    note("ada", "before", "x").put(&db).await.unwrap();
    let mut consumer = StreamConsumer::builder(&db, "notes")
        .start(StartPosition::Latest)
        .build();
    consumer.start().await.expect("start");
    note("ada", "after", "x").put(&db).await.unwrap();
    let records = read_records(&mut consumer, 1).await;
    assert_eq!(ids(&records), ["after"]);
}

/// DynamoDB Local answers TrimmedDataAccessException to a LATEST iterator of an empty shard once
/// another table of the server has written (its sequence numbers are server-wide): the
/// consumer reads such a shard from its oldest record instead, so the first change is read.
#[tokio::test]
async fn a_latest_iterator_of_an_empty_shard_reads_the_first_change() {
    let db = support::setup::<Note>().await;
    let other = support::setup::<Note>().await;
    let noise = tokio::spawn(async move {
        for i in 0.. {
            note("bob", &format!("x{i}"), "x")
                .put(&other)
                .await
                .unwrap();
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut consumer = StreamConsumer::builder(&db, "notes")
        .start(StartPosition::Latest)
        .build();
    consumer.start().await.expect("start");
    tokio::time::sleep(Duration::from_millis(50)).await;
    note("ada", "first", "x").put(&db).await.unwrap();
    let records = read_records(&mut consumer, 1).await;
    noise.abort();
    assert_eq!(ids(&records), ["first"]);
}

/// A client of the local server through a fault proxy, with the table of `Note` created
/// (directly) and a fast retry policy.
async fn notes_through_proxy() -> (FaultProxy, Client, Client) {
    let direct = support::setup::<Note>().await;
    let proxy = FaultProxy::start(&support::endpoint()).await;
    let policy = RetryPolicy::standard()
        .max_attempts(3)
        .base_delay(Duration::from_millis(2));
    let proxied = Client::builder(support::sdk_at(&proxy.endpoint()).await)
        .table_prefix(direct.table_prefix())
        .retry_policy(policy)
        .build();
    (proxy, direct, proxied)
}

#[tokio::test]
async fn an_expired_iterator_is_taken_again_after_the_last_record() {
    let (proxy, db, proxied) = notes_through_proxy().await;
    let id = |i: usize| format!("n{i}");
    for i in 0..6 {
        note("ada", &id(i), "x").put(&db).await.unwrap();
    }
    let mut consumer = StreamConsumer::builder(&proxied, "notes")
        .batch_size(2)
        .build();
    let mut read = read_records(&mut consumer, 2).await;
    assert_eq!(proxy.count("GetShardIterator"), 1);
    // The next read finds its iterator expired (as after 15 minutes).
    proxy.script(
        Match::Operation(Operation::GetRecords),
        Fault::ExpiredIterator,
        1,
    );
    read.extend(read_records(&mut consumer, 4).await);
    assert_eq!(ids(&read), (0..6).map(id).collect::<Vec<_>>());
    assert_eq!(consumer.stats().expired_iterators, 1);
    assert_eq!(
        proxy.count("GetShardIterator"),
        2,
        "a new iterator was taken"
    );
}

#[tokio::test]
async fn trimmed_records_are_reported_and_throttled_reads_go_on() {
    let (proxy, db, proxied) = notes_through_proxy().await;
    note("ada", "n1", "x").put(&db).await.unwrap();
    let mut consumer = StreamConsumer::builder(&proxied, "notes")
        .error_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build();
    // Throttled beyond the client's three attempts: the consumer backs off and reads on.
    proxy.script(
        Match::Operation(Operation::GetRecords),
        Fault::StreamLimitExceeded,
        4,
    );
    let records = read_records(&mut consumer, 1).await;
    assert_eq!(ids(&records), ["n1"]);
    assert_eq!(consumer.stats().transient_errors, 1);
    proxy.script(
        Match::Operation(Operation::GetRecords),
        Fault::TrimmedDataAccess,
        1,
    );
    let err = consumer.next_batch().await.unwrap_err();
    assert!(err.is_stream_trimmed(), "{err:?}");
    let seq = records[0].sequence_number.as_str();
    assert!(err.to_string().contains(seq), "{err}");
}

#[tokio::test]
async fn run_saves_a_checkpoint_only_after_the_handler_succeeded() {
    let db = support::setup::<Note>().await;
    let checkpoints = InMemoryCheckpoints::new();
    note("ada", "n1", "x").put(&db).await.unwrap();
    let consumer = StreamConsumer::builder(&db, "notes")
        .checkpoints(checkpoints.clone())
        .build();
    let err = consumer
        .run(|_batch| async { Err("the handler failed".into()) })
        .await
        .unwrap_err();
    assert!(err.is_stream_handler(), "{err:?}");
    assert!(checkpoints.is_empty());
    // Run again: the record comes again, and its checkpoint is saved once handled.
    let consumer = StreamConsumer::builder(&db, "notes")
        .checkpoints(checkpoints.clone())
        .build();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(consumer.run(move |batch| {
        let tx = tx.clone();
        async move {
            tx.send(batch).unwrap();
            Ok(())
        }
    }));
    let batch = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a batch")
        .unwrap();
    assert_eq!(ids(&batch.records), ["n1"]);
    let saved = eventually(Duration::from_secs(5), || {
        let found = !checkpoints.is_empty();
        async move { found }
    })
    .await;
    task.abort();
    assert!(saved, "the checkpoint was saved");
}

/// A sample Lambda event as Lambda delivers it, for the table of `Note`.
const LAMBDA_EVENT: &str = r#"{
  "Records": [
    {
      "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1",
      "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
      "dynamodb": {
        "ApproximateCreationDateTime": 1700000000,
        "Keys": {"owner": {"S": "ada"}, "id": {"S": "n1"}},
        "NewImage": {"owner": {"S": "ada"}, "id": {"S": "n1"}, "text": {"S": "first"}},
        "SequenceNumber": "111", "SizeBytes": 26, "StreamViewType": "NEW_AND_OLD_IMAGES"
      },
      "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/notes/stream/2024-01-01T00:00:00.000"
    },
    {
      "eventID": "2", "eventName": "MODIFY", "eventVersion": "1.1",
      "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
      "dynamodb": {
        "ApproximateCreationDateTime": 1700000001,
        "Keys": {"owner": {"S": "ada"}, "id": {"S": "n1"}},
        "OldImage": {"owner": {"S": "ada"}, "id": {"S": "n1"}, "text": {"S": "first"}},
        "NewImage": {"owner": {"S": "ada"}, "id": {"S": "n1"}, "text": {"S": "second"}},
        "SequenceNumber": "222", "SizeBytes": 59, "StreamViewType": "NEW_AND_OLD_IMAGES"
      },
      "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/notes/stream/2024-01-01T00:00:00.000"
    },
    {
      "eventID": "3", "eventName": "REMOVE", "eventVersion": "1.1",
      "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
      "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
      "dynamodb": {
        "ApproximateCreationDateTime": 1700000002,
        "Keys": {"owner": {"S": "ada"}, "id": {"S": "n1"}},
        "OldImage": {"owner": {"S": "ada"}, "id": {"S": "n1"}, "text": {"S": "second"}},
        "SequenceNumber": "333", "SizeBytes": 33, "StreamViewType": "NEW_AND_OLD_IMAGES"
      },
      "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/notes/stream/2024-01-01T00:00:00.000"
    }
  ]
}"#;

#[test]
fn lambda_events_decode_into_the_same_records() {
    use dynamite::streams::aws_lambda_events::dynamodb::Event;
    let event: Event = serde_json::from_str(LAMBDA_EVENT).expect("a Lambda event");
    let records = dynamite::streams::records_from_lambda(event).expect("records");
    let seqs: Vec<&str> = records.iter().map(|r| r.sequence_number.as_str()).collect();
    assert_eq!(seqs, ["111", "222", "333"]);
    assert_eq!(
        records[0].approximate_creation_time,
        Some(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    );
    assert_eq!(records[0].old_image, None);
    assert_eq!(records[0].keys["id"], AttributeValue::S("n1".into()));
    assert!(!records[1].removed_by_ttl && records[2].removed_by_ttl);
    assert_insert_modify_remove(records);
}

/// `text` of the note `id` as the raw SDK writes it, bypassing dynamite.
async fn external_write(db: &Client, id: &str, text: &str) {
    db.sdk()
        .update_item()
        .table_name(db.table_name("notes"))
        .key("owner", AttributeValue::S("ada".into()))
        .key("id", AttributeValue::S(id.into()))
        .update_expression("SET #t = :t")
        .expression_attribute_names("#t", "text")
        .expression_attribute_values(":t", AttributeValue::S(text.into()))
        .send()
        .await
        .expect("raw UpdateItem");
}

/// Whether `cached` reads `text` for note `id` within 20 s.
async fn reads_fresh(cached: &Client, id: &str, text: &str) -> bool {
    eventually(Duration::from_secs(20), || async {
        let got = Note::get(cached, Note::key("ada", id)).await.unwrap();
        got.is_some_and(|n| n.text == text)
    })
    .await
}

/// An external write (raw SDK, so no dynamite invalidation) reaches a cached client through
/// the invalidator; without it, the cached item is served (the control).
async fn external_writes_are_invalidated(cached: Client, db: Client) {
    note("ada", "n1", "v1").put(&db).await.unwrap();
    note("ada", "n2", "v1").put(&db).await.unwrap();
    // Cached (and, for the control, a query result too).
    for id in ["n1", "n2"] {
        let got = Note::get(&cached, Note::key("ada", id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.text, "v1");
    }
    // Without the invalidator, the external write is not seen.
    external_write(&db, "n1", "v2").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stale = Note::get(&cached, Note::key("ada", "n1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale.text, "v1", "the control: served from cache");

    let invalidator = CacheInvalidator::builder(&cached, "notes").spawn();
    tokio::time::timeout(Duration::from_secs(30), invalidator.started())
        .await
        .expect("the invalidator starts");
    external_write(&db, "n2", "v2").await;
    assert!(reads_fresh(&cached, "n2", "v2").await, "n2 read fresh");
    // A delete, by a put of the raw SDK, then of dynamite's plain client (no cache).
    db.sdk()
        .delete_item()
        .table_name(db.table_name("notes"))
        .key("owner", AttributeValue::S("ada".into()))
        .key("id", AttributeValue::S("n2".into()))
        .send()
        .await
        .unwrap();
    let gone = eventually(Duration::from_secs(20), || async {
        Note::get(&cached, Note::key("ada", "n2"))
            .await
            .unwrap()
            .is_none()
    })
    .await;
    assert!(gone, "the delete is seen");
    assert!(
        invalidator.stats().records >= 2,
        "{:?}",
        invalidator.stats()
    );
    assert_eq!(invalidator.stats().errors, 0);
}

#[tokio::test]
async fn an_external_write_is_invalidated_in_the_in_process_cache() {
    let db = support::setup::<Note>().await;
    let cached = with_cache(
        &db,
        MokaLayer::new(16 << 20),
        CacheConfig::default().item_ttl(Duration::from_secs(600)),
    );
    external_writes_are_invalidated(cached, db).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn an_external_write_is_invalidated_in_redis() {
    let url = std::env::var("DYNAMITE_REDIS_URL").expect(
        "the Redis tests need DYNAMITE_REDIS_URL: run them through \
         `scripts/with-services --redis -- cargo test --all-features`",
    );
    let prefix = format!(
        "dynamite-test-streams:{}:{:08x}:",
        std::process::id(),
        fastrand::u32(..)
    );
    let redis = dynamite::cache::RedisLayer::builder(&url)
        .prefix(&prefix)
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to Redis");
    let db = support::setup::<Note>().await;
    let cached = with_cache(
        &db,
        redis,
        CacheConfig::default().item_ttl(Duration::from_secs(600)),
    );
    external_writes_are_invalidated(cached, db).await;
}

/// Misses of the cached client's (only) layer so far.
fn misses(cached: &Client) -> u64 {
    cached.cache_stats().layers[0].1.misses
}

#[tokio::test]
async fn after_a_gap_in_the_stream_the_invalidator_clears_the_cache_and_reads_on() {
    let (proxy, db, proxied) = notes_through_proxy().await;
    let cached = with_cache(
        &proxied,
        MokaLayer::new(16 << 20),
        CacheConfig::default().item_ttl(Duration::from_secs(600)),
    );
    let invalidator = CacheInvalidator::builder(&cached, "notes")
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .spawn();
    tokio::time::timeout(Duration::from_secs(30), invalidator.started())
        .await
        .expect("the invalidator starts");
    note("ada", "n1", "v1").put(&db).await.unwrap();
    let handled = |n: u64| {
        let stats = invalidator.stats();
        async move { stats.records >= n }
    };
    let seen = eventually(Duration::from_secs(20), || handled(1)).await;
    let ops: Vec<String> = proxy
        .requests()
        .iter()
        .map(|r| r.operation.clone())
        .collect();
    assert!(seen, "{:?} {ops:?}", invalidator.stats());
    // Cached: the second read is a hit.
    for _ in 0..2 {
        Note::get(&cached, Note::key("ada", "n1")).await.unwrap();
    }
    let before = misses(&cached);
    // The stream loses records the invalidator had not read.
    proxy.script(
        Match::Operation(Operation::GetRecords),
        Fault::TrimmedDataAccess,
        1,
    );
    let failed = eventually(Duration::from_secs(20), || {
        let errors = invalidator.stats().errors;
        async move { errors >= 1 }
    })
    .await;
    assert!(failed, "the gap was met");
    // Once it reads again (from `LATEST`), the whole cache was cleared: the next read goes to
    // DynamoDB.
    tokio::time::timeout(Duration::from_secs(30), invalidator.started())
        .await
        .unwrap();
    Note::get(&cached, Note::key("ada", "n1")).await.unwrap();
    assert_eq!(misses(&cached), before + 1, "cleared");
    // And it reads on: a later external write is invalidated.
    let records = invalidator.stats().records;
    note("ada", "n2", "v1").put(&db).await.unwrap();
    assert!(eventually(Duration::from_secs(20), || handled(records + 1)).await);
    Note::get(&cached, Note::key("ada", "n2")).await.unwrap();
    external_write(&db, "n2", "v2").await;
    assert!(
        reads_fresh(&cached, "n2", "v2").await,
        "n2 read fresh after the gap"
    );
    assert_eq!(invalidator.stats().errors, 1);
}
