//! Item reads through the cache: hits and per-layer stats, what bypasses the cache, entities
//! that opt out, negative entries, time to live, and batch reads of the misses only.

use super::*;

#[tokio::test]
async fn get_is_served_from_the_cache_after_the_first_read_with_per_layer_stats() {
    let base = setup::<Doc>().await;
    let tiered = Tiered::new()
        .layer(MokaLayer::new(MB))
        .layer(MokaLayer::new(MB));
    let db = with_cache(&base, tiered.clone(), moka_config());
    let a = doc("a", 1, "one");
    a.put(&db).await.unwrap();
    let s = db.cache_stats();
    assert_eq!(s.layers.len(), 2, "{s:?}");
    assert!(s.layers.iter().all(|(name, _)| name == "moka"), "{s:?}");
    // The put dropped the item's scope, its partition's query scope and the table's query
    // scope, in both layers.
    assert_eq!(stats(&db, 0).invalidations, 3);
    assert_eq!(stats(&db, 1).invalidations, 3);

    let gets = requests(&db, "GetItem");
    for _ in 0..2 {
        assert_eq!(
            Doc::get(&db, Doc::key("a", 1)).await.unwrap(),
            Some(a.clone())
        );
    }
    assert_eq!(requests(&db, "GetItem") - gets, 1, "two gets, one request");
    let (l1, l2) = (stats(&db, 0), stats(&db, 1));
    assert_eq!((l1.hits, l1.misses), (1, 1), "{l1:?}");
    assert_eq!((l2.hits, l2.misses), (0, 1), "{l2:?}");
    assert_eq!(l1.hit_rate(), 0.5);
    assert_eq!(l2.hit_rate(), 0.0);
    assert_eq!(LayerStats::default().hit_rate(), 0.0, "no lookups");

    // L1 loses the entry: L2 answers and refills L1; still no request.
    tiered.layers()[0].clear().await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            Doc::get(&db, Doc::key("a", 1)).await.unwrap(),
            Some(a.clone())
        );
    }
    assert_eq!(requests(&db, "GetItem") - gets, 1);
    let (l1, l2) = (stats(&db, 0), stats(&db, 1));
    assert_eq!((l1.hits, l1.misses), (2, 2), "{l1:?}");
    assert_eq!((l2.hits, l2.misses), (1, 1), "{l2:?}");
    assert_eq!(l2.hit_rate(), 0.5);
    assert_eq!(db.cache_stats().corrupt_entries, 0);

    // A single MokaLayer reports itself by name.
    let single = with_cache(&base, MokaLayer::new(MB), moka_config());
    Doc::get(&single, Doc::key("a", 1)).await.unwrap();
    Doc::get(&single, Doc::key("a", 1)).await.unwrap();
    Doc::get(&single, Doc::key("a", 1)).await.unwrap();
    let s = single.cache_stats();
    let moka = s.layer("moka").expect("a moka layer");
    assert_eq!((moka.hits, moka.misses), (2, 1));
    assert!((moka.hit_rate() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(moka.faults, 0);
    // No cache: empty stats.
    assert!(base.cache_stats().layers.is_empty());
}

#[tokio::test]
async fn consistent_reads_and_no_cache_bypass_the_cache() {
    let base = setup::<Doc>().await;
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    doc("a", 1, "one").put(&db).await.unwrap();
    assert_eq!(
        Doc::get(&db, Doc::key("a", 1)).await.unwrap().unwrap().body,
        "one"
    );
    // Another program changes the item: the client's cache cannot know (until the TTL).
    doc("a", 1, "two").put(&base).await.unwrap();
    let gets = requests(&db, "GetItem");
    let lookups = |db: &Client| {
        let s = stats(db, 0);
        s.hits + s.misses
    };
    let looked = lookups(&db);
    assert_eq!(
        Doc::get(&db, Doc::key("a", 1)).await.unwrap().unwrap().body,
        "one",
        "served from the cache"
    );
    assert_eq!(requests(&db, "GetItem"), gets);
    assert_eq!(
        Doc::get(&db, Doc::key("a", 1))
            .consistent()
            .await
            .unwrap()
            .unwrap()
            .body,
        "two"
    );
    assert_eq!(
        Doc::get(&db, Doc::key("a", 1))
            .no_cache()
            .await
            .unwrap()
            .unwrap()
            .body,
        "two"
    );
    assert_eq!(requests(&db, "GetItem"), gets + 2);
    // Neither looked at nor filled the cache.
    assert_eq!(lookups(&db), looked + 1);
    assert_eq!(
        Doc::get(&db, Doc::key("a", 1)).await.unwrap().unwrap().body,
        "one"
    );
    assert_eq!(requests(&db, "GetItem"), gets + 2);

    // The same for batch_get.
    let batches = requests(&db, "BatchGetItem");
    let got = Doc::batch_get(&db, [Doc::key("a", 1)])
        .consistent()
        .await
        .unwrap();
    assert_eq!(got.items[0].body, "two");
    let got = Doc::batch_get(&db, [Doc::key("a", 1)])
        .no_cache()
        .await
        .unwrap();
    assert_eq!(got.items[0].body, "two");
    assert_eq!(requests(&db, "BatchGetItem"), batches + 2);
    let got = Doc::batch_get(&db, [Doc::key("a", 1)]).await.unwrap();
    assert_eq!(got.items[0].body, "one", "served from the cache");
    assert_eq!(got.stats.requests, 0);
    assert_eq!(requests(&db, "BatchGetItem"), batches + 2);
}

#[tokio::test]
async fn cache_off_entities_are_never_cached() {
    let base = setup::<Off>().await;
    let db = with_cache(
        &base,
        MokaLayer::new(MB),
        CacheConfig::default().negative_ttl(Duration::from_secs(60)),
    );
    let item = Off {
        id: "a".into(),
        body: "one".into(),
    };
    item.put(&db).await.unwrap();
    let (gets, batches, queries) = (
        requests(&db, "GetItem"),
        requests(&db, "BatchGetItem"),
        requests(&db, "Query"),
    );
    for _ in 0..2 {
        assert_eq!(
            Off::get(&db, Off::key("a")).await.unwrap(),
            Some(item.clone())
        );
        assert_eq!(Off::get(&db, Off::key("none")).await.unwrap(), None);
        let got = Off::batch_get(&db, [Off::key("a"), Off::key("none")])
            .await
            .unwrap();
        assert_eq!(got.items, vec![item.clone()]);
        let found = Off::find(&db)
            .filter(Off::ID.eq("a"))
            .cached()
            .all()
            .await
            .unwrap();
        assert_eq!(found, vec![item.clone()]);
    }
    assert_eq!(db.warm([Off::key("a")]).await.unwrap(), 1);
    assert_eq!(Off::get(&db, Off::key("a")).await.unwrap(), Some(item));
    // find() on the whole key is planned as a GetItem (no sort key): 2 + 2 + 2 + 1.
    let reads = requests(&db, "GetItem") - gets + requests(&db, "Query") - queries;
    assert_eq!(reads, 7);
    assert_eq!(requests(&db, "BatchGetItem") - batches, 3);
    let s = stats(&db, 0);
    assert_eq!((s.hits, s.misses), (0, 0), "never looked up: {s:?}");
}

#[tokio::test]
async fn negative_entries_only_when_configured_with_their_own_ttl() {
    install();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    Neg::create_table(&base).await.unwrap();
    let db = with_cache(&base, MokaLayer::new(MB), CacheConfig::default());
    let gets = || requests(&db, "GetItem");

    // No negative TTL anywhere: a miss is not cached.
    let g = gets();
    assert_eq!(Doc::get(&db, Doc::key("none", 1)).await.unwrap(), None);
    assert_eq!(Doc::get(&db, Doc::key("none", 1)).await.unwrap(), None);
    assert_eq!(gets() - g, 2);

    // The entity's negative_ttl: cached, for that long.
    let g = gets();
    assert_eq!(Neg::get(&db, Neg::key("n")).await.unwrap(), None);
    assert_eq!(Neg::get(&db, Neg::key("n")).await.unwrap(), None);
    assert_eq!(gets() - g, 1, "the absence is cached");
    let got = Neg::batch_get(&db, [Neg::key("n")]).await.unwrap();
    assert_eq!(got.missing.len(), 1);
    assert_eq!(
        got.stats.requests, 0,
        "batch_get uses the negative entry too"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(Neg::get(&db, Neg::key("n")).await.unwrap(), None);
    assert_eq!(gets() - g, 2, "the negative entry expired");
    assert_eq!(Neg::get(&db, Neg::key("n")).await.unwrap(), None);
    assert_eq!(gets() - g, 2, "and was cached again");
    // A write through the client drops it at once.
    let item = Neg {
        id: "n".into(),
        body: "now".into(),
    };
    item.put(&db).await.unwrap();
    assert_eq!(Neg::get(&db, Neg::key("n")).await.unwrap(), Some(item));
    // Another program creating the item: visible once the negative TTL has passed.
    assert_eq!(Neg::get(&db, Neg::key("m")).await.unwrap(), None);
    Neg {
        id: "m".into(),
        body: "outside".into(),
    }
    .put(&base)
    .await
    .unwrap();
    assert_eq!(Neg::get(&db, Neg::key("m")).await.unwrap(), None, "cached");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        Neg::get(&db, Neg::key("m")).await.unwrap().unwrap().body,
        "outside"
    );

    // CacheConfig::negative_ttl for entities without their own.
    let db2 = with_cache(
        &base,
        MokaLayer::new(MB),
        CacheConfig::default().negative_ttl(Duration::from_millis(200)),
    );
    let g = requests(&db2, "GetItem");
    assert_eq!(Doc::get(&db2, Doc::key("none", 2)).await.unwrap(), None);
    assert_eq!(Doc::get(&db2, Doc::key("none", 2)).await.unwrap(), None);
    assert_eq!(requests(&db2, "GetItem") - g, 1);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(Doc::get(&db2, Doc::key("none", 2)).await.unwrap(), None);
    assert_eq!(requests(&db2, "GetItem") - g, 2);

    // The entity's setting wins over the client's.
    let db3 = with_cache(
        &base,
        MokaLayer::new(MB),
        CacheConfig::default().negative_ttl(Duration::from_secs(600)),
    );
    let g = requests(&db3, "GetItem");
    assert_eq!(Neg::get(&db3, Neg::key("x")).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(Neg::get(&db3, Neg::key("x")).await.unwrap(), None);
    assert_eq!(
        requests(&db3, "GetItem") - g,
        2,
        "entity negative_ttl (200ms) applies"
    );
}

#[tokio::test]
async fn item_entries_live_for_their_ttl() {
    install();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    Short::create_table(&base).await.unwrap();
    // The entity's ttl wins over the client's.
    let db = with_cache(
        &base,
        MokaLayer::new(MB),
        CacheConfig::default().item_ttl(Duration::from_secs(600)),
    );
    let short = |body: &str| Short {
        id: "s".into(),
        body: body.into(),
    };
    short("old").put(&db).await.unwrap();
    assert_eq!(
        Short::get(&db, Short::key("s"))
            .await
            .unwrap()
            .unwrap()
            .body,
        "old"
    );
    short("new").put(&base).await.unwrap(); // not through the cached client
    assert_eq!(
        Short::get(&db, Short::key("s"))
            .await
            .unwrap()
            .unwrap()
            .body,
        "old"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        Short::get(&db, Short::key("s"))
            .await
            .unwrap()
            .unwrap()
            .body,
        "new"
    );
    // Documents under the client's long TTL stay.
    doc("d", 1, "old").put(&db).await.unwrap();
    Doc::get(&db, Doc::key("d", 1)).await.unwrap();
    doc("d", 1, "new").put(&base).await.unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        Doc::get(&db, Doc::key("d", 1)).await.unwrap().unwrap().body,
        "old"
    );

    // CacheConfig::item_ttl for entities without their own.
    let db2 = with_cache(
        &base,
        MokaLayer::new(MB),
        CacheConfig::default().item_ttl(Duration::from_millis(200)),
    );
    assert_eq!(
        Doc::get(&db2, Doc::key("d", 1))
            .await
            .unwrap()
            .unwrap()
            .body,
        "new"
    );
    doc("d", 1, "newer").put(&base).await.unwrap();
    assert_eq!(
        Doc::get(&db2, Doc::key("d", 1))
            .await
            .unwrap()
            .unwrap()
            .body,
        "new"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        Doc::get(&db2, Doc::key("d", 1))
            .await
            .unwrap()
            .unwrap()
            .body,
        "newer"
    );
}

#[tokio::test]
async fn batch_get_reads_only_the_misses_and_warm_preloads() {
    let base = setup::<Doc>().await;
    let keys = BatchKeys::default();
    let db = with_cache_and_keys(&base, MokaLayer::new(MB), moka_config(), &keys);
    let docs: Vec<Doc> = (0..10).map(|i| doc(&format!("b{i}"), 1, "v0")).collect();
    base.batch_write().put_all(&docs).await.unwrap();
    let key = |i: usize| Doc::key(format!("b{i}"), 1);
    let want = |ids: &[&str]| -> Vec<Vec<String>> {
        let mut v: Vec<String> = ids.iter().map(|id| format!("{id}/1")).collect();
        v.sort();
        vec![v]
    };
    keys.take();

    // warm: one batch read of the keys not cached yet.
    assert_eq!(db.warm((0..5).map(key)).await.unwrap(), 5);
    assert_eq!(keys.take(), want(&["b0", "b1", "b2", "b3", "b4"]));
    let gets = requests(&db, "GetItem");
    assert_eq!(Doc::get(&db, key(3)).await.unwrap(), Some(docs[3].clone()));
    assert_eq!(requests(&db, "GetItem"), gets, "warmed");
    assert_eq!(db.warm((0..5).map(key)).await.unwrap(), 5);
    assert!(keys.take().is_empty(), "all were cached: no request");

    // batch_get: only the misses go to DynamoDB.
    let all_keys = || (0..10).map(key).chain([Doc::key("nope", 1)]);
    let before = stats(&db, 0);
    let got = Doc::batch_get(&db, all_keys()).await.unwrap();
    assert_eq!(got.items, docs);
    assert_eq!(got.missing, vec![Doc::key("nope", 1)]);
    assert_eq!(got.stats.requests, 1);
    assert_eq!(keys.take(), want(&["b5", "b6", "b7", "b8", "b9", "nope"]));
    let after = stats(&db, 0);
    assert_eq!(after.hits - before.hits, 5);
    assert_eq!(after.misses - before.misses, 6);

    // Again: only the missing key (no negative caching configured).
    let got = Doc::batch_get(&db, all_keys()).await.unwrap();
    assert_eq!(got.items, docs);
    assert_eq!(keys.take(), want(&["nope"]));

    // A write drops one entry: it is read again, with its new value.
    Doc::update(&db, key(2)).set(Doc::BODY, "v1").await.unwrap();
    let got = Doc::batch_get(&db, all_keys()).await.unwrap();
    assert_eq!(got.items[2].body, "v1");
    assert_eq!(keys.take(), want(&["b2", "nope"]));

    // Duplicated keys are read once; a projection has its own entries.
    let got = Doc::batch_get(&db, [key(7), key(7), key(8)])
        .select([Doc::BODY])
        .await
        .unwrap();
    assert_eq!(got.items.len(), 2);
    assert_eq!(got.items[0].note, "", "projected: no note");
    assert_eq!(keys.take(), want(&["b7", "b8"]));
    let got = Doc::batch_get(&db, [key(7), key(8)])
        .select([Doc::BODY])
        .await
        .unwrap();
    assert_eq!(got.items[1].body, "v0");
    assert!(keys.take().is_empty());
}
