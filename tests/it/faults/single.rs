//! Single operations (item reads and writes, finds) retry throttling, transport and server
//! faults; a consistent find reads its base items consistently; concurrent cached reads.

use super::*;

// ---------------------------------------------------------------------------------------------
// Single operations
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn single_item_operations_retry_throttling_until_they_succeed() {
    let p = policy(6);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;

    // PutItem: 3 × ProvisionedThroughputExceeded, then the server.
    let fault = Fault::ProvisionedThroughputExceeded;
    fx.proxy
        .script(Match::Operation(Operation::PutItem), fault.clone(), 3);
    thing(1).put(&fx.db).await.unwrap();
    assert_eq!(fx.proxy.count("PutItem"), 4);
    fx.assert_retried(&p, "PutItem", &[fault.code().unwrap(); 3]);
    assert_eq!(stored(&fx).await.get(&id(1)), Some(&1));

    // GetItem: 3 × Throttling.
    fx.reset();
    fx.proxy
        .script(Match::Operation(Operation::GetItem), Fault::Throttling, 3);
    let got = Thing::get(&fx.db, key(1)).await.unwrap();
    assert_eq!(got, Some(thing(1)));
    assert_eq!(fx.proxy.count("GetItem"), 4);
    fx.assert_retried(&p, "GetItem", &["ThrottlingException"; 3]);

    // UpdateItem: 3 × RequestLimitExceeded; the throttled attempts never reached the server, so
    // the increment is applied exactly once.
    fx.reset();
    let fault = Fault::RequestLimitExceeded;
    fx.proxy
        .script(Match::Operation(Operation::UpdateItem), fault.clone(), 3);
    Thing::update(&fx.db, key(1))
        .add(Thing::N, 10)
        .await
        .unwrap();
    assert_eq!(fx.proxy.count("UpdateItem"), 4);
    fx.assert_retried(&p, "UpdateItem", &[fault.code().unwrap(); 3]);
    assert_eq!(stored(&fx).await.get(&id(1)), Some(&11));

    // DeleteItem: 3 × Throttling.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::DeleteItem),
        Fault::Throttling,
        3,
    );
    Thing::delete(&fx.db, key(1)).await.unwrap();
    assert_eq!(fx.proxy.count("DeleteItem"), 4);
    fx.assert_retried(&p, "DeleteItem", &["ThrottlingException"; 3]);
    assert_eq!(stored(&fx).await.get(&id(1)), None);

    // A call that needed no retry records none.
    fx.reset();
    thing(2).put(&fx.db).await.unwrap();
    assert_eq!(fx.proxy.count("PutItem"), 1);
    fx.assert_retried(&p, "PutItem", &[]);
    assert_eq!(fx.proxy.pending(), 0, "every scripted fault was used");
}

#[tokio::test]
async fn finds_retry_their_query_scan_and_get_requests() {
    let p = policy(5);
    let fx = Fx::start(p.clone()).await;
    create::<Row>(&fx).await;
    let rows: Vec<Row> = (0..10).map(row).collect();
    Row::batch_write(&fx.direct).put_all(&rows).await.unwrap();

    // A find served by a Query.
    fx.proxy
        .script(Match::Operation(Operation::Query), Fault::Throttling, 2);
    let all = Row::find(&fx.db)
        .filter(Row::GRP.eq("g"))
        .all()
        .await
        .unwrap();
    assert_eq!(all, rows);
    assert_eq!(fx.proxy.count("Query"), 3);
    fx.assert_retried(&p, "Query", &["ThrottlingException"; 2]);

    // A find served by a GetItem.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::InternalServerError,
        2,
    );
    let one = Row::find(&fx.db)
        .filter(Row::GRP.eq("g"))
        .filter(Row::SEQ.eq(3))
        .all()
        .await
        .unwrap();
    assert_eq!(one, vec![row(3)]);
    assert_eq!(fx.proxy.count("GetItem"), 3);
    fx.assert_retried(&p, "GetItem", &["InternalServerError"; 2]);

    // Pages: the first one clean, the second one retried; the cursor still resumes correctly.
    fx.reset();
    let first = Row::find(&fx.db)
        .filter(Row::GRP.eq("g"))
        .limit(4)
        .page(None)
        .await
        .unwrap();
    assert_eq!(first.items, rows[..4]);
    assert!(first.next.is_some());
    assert_eq!(fx.proxy.count("Query"), 1);
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::Query),
        Fault::ServiceUnavailable,
        2,
    );
    let second = Row::find(&fx.db)
        .filter(Row::GRP.eq("g"))
        .limit(4)
        .page(first.next.clone())
        .await
        .unwrap();
    assert_eq!(second.items, rows[4..8]);
    assert_eq!(fx.proxy.count("Query"), 3);
    fx.assert_retried(&p, "Query", &["ServiceUnavailable"; 2]);

    // A scan.
    fx.reset();
    fx.proxy
        .script(Match::Operation(Operation::Scan), Fault::Throttling, 1);
    let scanned = Row::scan(&fx.db).unbounded().all().await.unwrap();
    assert_eq!(
        sorted(scanned.iter().map(|r| r.seq).collect()),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(fx.proxy.count("Scan"), 2);
    fx.assert_retried(&p, "Scan", &["ThrottlingException"]);
}

#[tokio::test]
async fn transport_and_server_faults_are_retried() {
    let p = policy(5);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;
    thing(1).put(&fx.direct).await.unwrap();

    // The connection dropped after the request was read: for the client the outcome is
    // unknown (it cannot tell whether the server got it); a read is retried.
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::DropBeforeForwarding,
        1,
    );
    let got = Thing::get(&fx.db, key(1)).await.unwrap();
    assert_eq!(got, Some(thing(1)));
    assert_eq!(fx.proxy.count("GetItem"), 2);
    fx.assert_retried(&p, "GetItem", &["OutcomeUnknown"]);

    // 500 InternalServerError, twice.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::PutItem),
        Fault::InternalServerError,
        2,
    );
    thing(2).put(&fx.db).await.unwrap();
    assert_eq!(fx.proxy.count("PutItem"), 3);
    fx.assert_retried(&p, "PutItem", &["InternalServerError"; 2]);

    // 503 ServiceUnavailable, twice.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::DeleteItem),
        Fault::ServiceUnavailable,
        2,
    );
    Thing::delete(&fx.db, key(2)).await.unwrap();
    assert_eq!(fx.proxy.count("DeleteItem"), 3);
    fx.assert_retried(&p, "DeleteItem", &["ServiceUnavailable"; 2]);

    // A dropped connection under a batch write: the request never reached the server, the
    // retry writes everything once.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::DropBeforeForwarding,
        2,
    );
    let things: Vec<Thing> = (10..15).map(thing).collect();
    let out = Thing::batch_write(&fx.db).put_all(&things).await.unwrap();
    assert_eq!(out.puts, 5);
    assert_eq!(fx.proxy.count(BATCH_WRITE), 3);
    assert_eq!(
        sorted(forwarded(&fx.proxy.requests(), BATCH_WRITE)),
        (10..15).map(id).collect::<Vec<_>>()
    );
    let stored = stored(&fx).await;
    assert!(
        (10..15).all(|i| stored.get(&id(i)) == Some(&(i as i64))),
        "{stored:?}"
    );
}

/// A keys-only local index: a find of whole entities reads the base items after the index.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "threads")]
#[dynamite(local_index(name = "ByVotes", projection = keys_only))]
struct Thread {
    #[dynamite(partition_key)]
    forum: String,
    #[dynamite(sort_key)]
    id: u32,
    #[dynamite(index_key(index = "ByVotes", sort))]
    votes: u32,
    body: String,
}

#[tokio::test]
async fn a_consistent_find_reads_its_base_items_consistently() {
    let fx = Fx::start(policy(3)).await;
    create::<Thread>(&fx).await;
    for i in 0..3u32 {
        Thread {
            forum: "f".into(),
            id: i,
            votes: 10 - i,
            body: format!("post {i}"),
        }
        .put(&fx.direct)
        .await
        .unwrap();
    }
    for consistent in [false, true] {
        fx.reset();
        let find = Thread::find(&fx.db)
            .index(Thread::BY_VOTES)
            .filter(Thread::FORUM.eq("f"));
        let find = if consistent { find.consistent() } else { find };
        assert_eq!(find.all().await.unwrap().len(), 3);
        let seen = fx.proxy.requests();
        let query = seen.iter().find(|s| s.operation == "Query").unwrap();
        let batch = seen.iter().find(|s| s.operation == BATCH_GET).unwrap();
        let read_consistently = |body: &Value| {
            body.get("ConsistentRead") == Some(&Value::Bool(true))
                || body["RequestItems"]
                    .as_object()
                    .into_iter()
                    .flat_map(|tables| tables.values())
                    .any(|t| t.get("ConsistentRead") == Some(&Value::Bool(true)))
        };
        assert_eq!(
            read_consistently(&query.body),
            consistent,
            "{:?}",
            query.body
        );
        assert_eq!(
            read_consistently(&batch.body),
            consistent,
            "{:?}",
            batch.body
        );
    }
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "feeds", cache(queries))]
struct Feed {
    #[dynamite(partition_key)]
    owner: String,
    #[dynamite(sort_key)]
    seq: u32,
}

#[tokio::test]
async fn concurrent_cached_reads_make_one_request_each() {
    let fx = Fx::start_with(sdk_standard_retries(), |b| {
        b.retry_policy(policy(3))
            .cache(dynamite::cache::MokaLayer::new(1 << 20))
    })
    .await;
    create::<Feed>(&fx).await;
    create::<Thing>(&fx).await;
    for seq in 0..5 {
        Feed {
            owner: "o".into(),
            seq,
        }
        .put(&fx.direct)
        .await
        .unwrap();
    }
    thing(1).put(&fx.direct).await.unwrap();
    // Slow answers, so that every caller misses while the first read is in flight.
    fx.proxy.script(
        Match::Operation(Operation::Query),
        Fault::Delay(Duration::from_millis(200)),
        FOREVER,
    );
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Delay(Duration::from_millis(200)),
        FOREVER,
    );

    // Ten identical cached queries at once: one Query (single flight), ten answers.
    let pages = futures::future::join_all(
        (0..10).map(|_| Feed::find(&fx.db).filter(Feed::OWNER.eq("o")).all()),
    )
    .await;
    assert!(pages
        .iter()
        .all(|p| p.as_ref().map(Vec::len).ok() == Some(5)));
    assert_eq!(fx.proxy.count("Query"), 1);

    // The same for gets of one item.
    let got = futures::future::join_all((0..10).map(|_| Thing::get(&fx.db, key(1)).send())).await;
    assert!(got
        .iter()
        .all(|g| matches!(g, Ok(Some(t)) if *t == thing(1))));
    assert_eq!(fx.proxy.count("GetItem"), 1);
}
