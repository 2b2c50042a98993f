//! Read-after-write through the client under every kind of write, and under concurrency;
//! single flight for concurrent misses.

use super::*;

/// What each read path returns for the items of partition "p" (n = 1, 2).
async fn check_reads(db: &Client, model: &BTreeMap<u32, String>, what: &str) {
    for n in [1, 2] {
        let got = QDoc::get(db, QDoc::key("p", n)).await.unwrap();
        assert_eq!(
            got.map(|d| d.body),
            model.get(&n).cloned(),
            "get n={n} after {what}"
        );
    }
    let got = QDoc::batch_get(db, [QDoc::key("p", 1), QDoc::key("p", 2)])
        .await
        .unwrap();
    let bodies: BTreeMap<u32, String> = got.items.into_iter().map(|d| (d.n, d.body)).collect();
    assert_eq!(&bodies, model, "batch_get after {what}");
    let found: BTreeMap<u32, String> = QDoc::find(db)
        .filter(QDoc::ID.eq("p"))
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.n, d.body))
        .collect();
    assert_eq!(&found, model, "find().all() after {what}");
    let page: BTreeMap<u32, String> = QDoc::find(db)
        .filter(QDoc::ID.eq("p"))
        .page(None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| (d.n, d.body))
        .collect();
    assert_eq!(&page, model, "find().page() after {what}");
}

fn total_requests(db: &Client) -> usize {
    ["GetItem", "BatchGetItem", "Query", "Scan"]
        .iter()
        .map(|op| requests(db, op))
        .sum()
}

#[tokio::test]
async fn read_after_write_through_the_client_is_never_stale() {
    let base = setup::<QDoc>().await;
    let db = with_cache(
        &base,
        Tiered::new()
            .layer(MokaLayer::new(MB))
            .layer(MokaLayer::new(MB)),
        CacheConfig::default().negative_ttl(Duration::from_secs(60)),
    );
    let mut model: BTreeMap<u32, String> = BTreeMap::new();
    let upd = |n: u32, body: &str| {
        (
            QDoc::key("p", n),
            Update::<QDoc>::new().set(QDoc::BODY, body.to_owned()),
        )
    };
    for step in 0..9 {
        // Everything cached (twice: the second round must not reach DynamoDB).
        check_reads(&db, &model, "the previous step").await;
        let before = total_requests(&db);
        check_reads(&db, &model, "the previous step (cached)").await;
        assert_eq!(
            total_requests(&db),
            before,
            "step {step}: reads were cached"
        );
        let what = match step {
            0 => {
                qdoc("p", 1, "put").put(&db).await.unwrap();
                model.insert(1, "put".into());
                "put"
            }
            1 => {
                QDoc::update(&db, QDoc::key("p", 1))
                    .set(QDoc::BODY, "update")
                    .await
                    .unwrap();
                model.insert(1, "update".into());
                "update"
            }
            2 => {
                QDoc::batch_write(&db)
                    .put(&qdoc("p", 1, "batch put 1"))
                    .put(&qdoc("p", 2, "batch put 2"))
                    .await
                    .unwrap();
                model.insert(1, "batch put 1".into());
                model.insert(2, "batch put 2".into());
                "batch_write put"
            }
            3 => {
                let (k, u) = upd(2, "transact update");
                db.transact_write()
                    .put(&qdoc("p", 1, "transact put"))
                    .update(k, u)
                    .await
                    .unwrap();
                model.insert(1, "transact put".into());
                model.insert(2, "transact update".into());
                "transact_write put+update"
            }
            4 => {
                QDoc::delete(&db, QDoc::key("p", 1)).await.unwrap();
                model.remove(&1);
                "delete"
            }
            5 => {
                QDoc::batch_write(&db)
                    .delete(QDoc::key("p", 2))
                    .put(&qdoc("p", 1, "back"))
                    .await
                    .unwrap();
                model.remove(&2);
                model.insert(1, "back".into());
                "batch_write delete+put"
            }
            6 => {
                db.transact_write()
                    .delete(QDoc::key("p", 1))
                    .put(&qdoc("p", 2, "two"))
                    .await
                    .unwrap();
                model.remove(&1);
                model.insert(2, "two".into());
                "transact_write delete+put"
            }
            7 => {
                // A write to another item of the table drops the query results.
                qdoc("other", 1, "x").put(&db).await.unwrap();
                QDoc::update(&db, QDoc::key("p", 2))
                    .set(QDoc::BODY, "two'")
                    .return_new()
                    .await
                    .unwrap();
                model.insert(2, "two'".into());
                "update return_new"
            }
            _ => {
                // A failed conditional write still drops the entries (it may have applied).
                let err = qdoc("p", 2, "never")
                    .put(&db)
                    .if_not_exists()
                    .await
                    .unwrap_err();
                assert!(err.is_condition_failed(), "{err:?}");
                "failed conditional put"
            }
        };
        check_reads(&db, &model, what).await;
    }
}

/// Readers hammer one item (get, batch_get and the cached query) while a writer writes it in
/// every way; after each write returns, the writer's reads see it, and any read started after
/// that sees it or something newer.
async fn hammer(db: Client, writes: u64) {
    Ctr::create_table(&db).await.unwrap();
    Ctr {
        id: "c".into(),
        n: 1,
        v: 0,
    }
    .put(&db)
    .await
    .unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for r in 0..3u64 {
        let (db, acked, stop, reads) = (db.clone(), acked.clone(), stop.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut i = r;
            while !stop.load(Ordering::SeqCst) {
                let floor = acked.load(Ordering::SeqCst);
                let v = match i % 3 {
                    0 => Ctr::get(&db, Ctr::key("c", 1)).await.unwrap().unwrap().v,
                    1 => Ctr::batch_get(&db, [Ctr::key("c", 1)]).await.unwrap().items[0].v,
                    _ => Ctr::find(&db).filter(Ctr::ID.eq("c")).all().await.unwrap()[0].v,
                };
                assert!(
                    v >= floor,
                    "reader {r} read v={v} after the write of {floor} was acknowledged"
                );
                reads.fetch_add(1, Ordering::Relaxed);
                i += 1;
                tokio::task::yield_now().await;
            }
        }));
    }
    for v in 1..=writes {
        match v % 4 {
            0 => Ctr {
                id: "c".into(),
                n: 1,
                v,
            }
            .put(&db)
            .await
            .unwrap(),
            1 => {
                Ctr::update(&db, Ctr::key("c", 1))
                    .set(Ctr::V, v)
                    .await
                    .unwrap();
            }
            2 => {
                Ctr::batch_write(&db)
                    .put(&Ctr {
                        id: "c".into(),
                        n: 1,
                        v,
                    })
                    .await
                    .unwrap();
            }
            _ => db
                .transact_write()
                .update(Ctr::key("c", 1), Update::new().set(Ctr::V, v))
                .await
                .unwrap(),
        }
        acked.store(v, Ordering::SeqCst);
        let got = Ctr::get(&db, Ctr::key("c", 1)).await.unwrap().unwrap().v;
        assert_eq!(got, v, "get right after write {v}");
        let got = Ctr::batch_get(&db, [Ctr::key("c", 1)]).await.unwrap().items[0].v;
        assert_eq!(got, v, "batch_get right after write {v}");
        let got = Ctr::find(&db).filter(Ctr::ID.eq("c")).all().await.unwrap()[0].v;
        assert_eq!(got, v, "find right after write {v}");
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.await.expect("a reader failed");
    }
    let s = db.cache_stats();
    let reads = reads.load(Ordering::Relaxed);
    println!("{reads} concurrent reads, {s:?}");
    assert!(reads > writes, "the readers ran ({reads})");
    assert!(s.layers[0].1.hits > 0, "the cache served reads: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_never_make_a_write_look_undone_moka() {
    install();
    let base = plain().await;
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    hammer(db, 120).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_never_make_a_write_look_undone_tiered() {
    install();
    let base = plain().await;
    let db = with_cache(
        &base,
        Tiered::new()
            .layer(MokaLayer::new(MB))
            .layer(MokaLayer::new(MB)),
        moka_config(),
    );
    hammer(db, 120).await;
}

#[tokio::test]
async fn concurrent_misses_of_one_item_make_one_request() {
    let base = setup::<Doc>().await;
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    let a = doc("a", 1, "one");
    a.put(&db).await.unwrap();
    let gets = requests(&db, "GetItem");
    let all =
        futures::future::join_all((0..100).map(|_| Doc::get(&db, Doc::key("a", 1)).send())).await;
    assert!(all.into_iter().all(|r| r.unwrap() == Some(a.clone())));
    assert_eq!(requests(&db, "GetItem") - gets, 1, "single flight");

    // A missing item (no negative caching): one request for the concurrent misses, and
    // nothing cached afterwards.
    let gets = requests(&db, "GetItem");
    let all =
        futures::future::join_all((0..100).map(|_| Doc::get(&db, Doc::key("none", 1)).send()))
            .await;
    assert!(all.into_iter().all(|r| r.unwrap().is_none()));
    assert_eq!(
        requests(&db, "GetItem") - gets,
        1,
        "single flight for a miss"
    );
    Doc::get(&db, Doc::key("none", 1)).await.unwrap();
    assert_eq!(requests(&db, "GetItem") - gets, 2, "absence not cached");

    // Different projections are different loads.
    let gets = requests(&db, "GetItem");
    db.clear_cache().await;
    let full = (0..50).map(|_| Doc::get(&db, Doc::key("a", 1)).send());
    let projected = (0..50).map(|_| {
        Doc::get(&db, Doc::key("a", 1))
            .select([Doc::ID, Doc::BODY])
            .select_attr(Doc::N)
            .send()
    });
    let (full, projected) = futures::future::join(
        futures::future::join_all(full),
        futures::future::join_all(projected),
    )
    .await;
    assert!(full.into_iter().all(|r| r.unwrap() == Some(a.clone())));
    assert!(projected
        .into_iter()
        .all(|r| r.unwrap().map(|d| d.note) == Some(String::new())));
    assert_eq!(requests(&db, "GetItem") - gets, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_across_threads_make_one_request() {
    let base = setup::<Doc>().await;
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    let a = doc("a", 1, "one");
    a.put(&db).await.unwrap();
    let gets = requests(&db, "GetItem");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { Doc::get(&db, Doc::key("a", 1)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Some(a.clone()));
    }
    assert_eq!(requests(&db, "GetItem") - gets, 1);
}
