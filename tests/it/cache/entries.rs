//! Cache entries: corrupt or foreign entries, the layer contract, capacity, time to live across
//! layers, nested paths, cooperative hits, moved entries; the LFU layer end to end.

use dynamite::cache::LfuLayer;

use super::*;

/// The entry key of a whole `Doc` item, as `src/cache/keys.rs` builds it (checked by the test
/// that uses it).
fn doc_cache_key(db: &Client, id: &str, n: u32) -> CacheKey {
    let schema = Doc::schema();
    let table = db.table_name(schema.table);
    // The canonical key encoding (src/key.rs): typed, length-prefixed components, numbers
    // normalised (`1` is `1e0`).
    let digits = n.to_string();
    let number = if n == 0 {
        "0".to_owned()
    } else {
        format!("{}e{}", digits.trim_end_matches('0'), digits.len() - 1)
    };
    let key = format!("s{}:{id}n{}:{number}", id.len(), number.len());
    let ns = db.cache_namespace().expect("a cache");
    CacheKey {
        entry: format!(
            "{ns}|{table}|{}:{:016x}|i|{:016x}|{key}",
            schema.entity, schema.fingerprint, 0u64
        ),
        scope: format!("{ns}|{table}|i|{key}"),
    }
}

#[tokio::test]
async fn corrupt_or_foreign_entries_are_misses() {
    install();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    Alpha::create_table(&base).await.unwrap();
    let moka = Tiered::new().layer(MokaLayer::new(MB));
    let layer = moka.layers()[0].clone();
    let db = with_cache(&base, moka, moka_config());
    let a = doc("a", 1, "one");
    a.put(&db).await.unwrap();
    assert_eq!(
        Doc::get(&db, Doc::key("a", 1)).await.unwrap(),
        Some(a.clone())
    );
    let key = doc_cache_key(&db, "a", 1);
    let Lookup::Hit(good) = layer.get(&key).await.unwrap() else {
        panic!("the entry key format changed; update doc_cache_key");
    };
    assert!(good.bytes().starts_with(b"DYN"));

    // Overwrite the entry (with a valid token) and read through the client.
    async fn plant(layer: &Arc<dyn CacheLayer>, key: &CacheKey, bytes: Vec<u8>) {
        layer.invalidate(&key.scope).await.unwrap();
        let Lookup::Miss(token) = layer.get(key).await.unwrap() else {
            panic!("invalidated");
        };
        layer
            .put(
                key,
                CacheEntry::from_bytes(bytes),
                Duration::from_secs(60),
                &token,
            )
            .await
            .unwrap();
    }
    // A value of the same format under another schema fingerprint: Alpha's entry.
    Alpha {
        id: "z".into(),
        n: 1,
        label: "z".into(),
    }
    .put(&db)
    .await
    .unwrap();
    Alpha::get(&db, Alpha::key("z", 1)).await.unwrap();
    let alpha_schema = Alpha::schema();
    let ns = db.cache_namespace().unwrap();
    let alpha_key = CacheKey {
        entry: format!(
            "{ns}|{}|{}:{:016x}|i|{:016x}|s1:zn3:1e0",
            db.table_name(alpha_schema.table),
            alpha_schema.entity,
            alpha_schema.fingerprint,
            0u64
        ),
        scope: format!("{ns}|{}|i|s1:zn3:1e0", db.table_name(alpha_schema.table)),
    };
    let Lookup::Hit(foreign) = layer.get(&alpha_key).await.unwrap() else {
        panic!("Alpha's entry not found");
    };
    let mut wrong_version = good.bytes().to_vec();
    wrong_version[3] = wrong_version[3].wrapping_add(1);
    let mut truncated = good.bytes().to_vec();
    truncated.truncate(truncated.len() - 3);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"garbage".to_vec()),
        ("empty", Vec::new()),
        ("another schema fingerprint", foreign.bytes().to_vec()),
        ("another format version", wrong_version),
        ("truncated", truncated),
    ];
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        let counted = i as u64;
        plant(&layer, &key, bytes).await;
        let gets = requests(&db, "GetItem");
        let got = Doc::get(&db, Doc::key("a", 1)).await.unwrap();
        assert_eq!(got, Some(a.clone()), "{what}: read from DynamoDB");
        assert_eq!(requests(&db, "GetItem") - gets, 1, "{what}");
        assert_eq!(
            db.cache_stats().corrupt_entries,
            counted + 1,
            "{what}: counted"
        );
        // The corrupt entry's scope was invalidated: the next read is a plain miss that
        // fills the cache again, and the one after is served from it.
        let got = Doc::batch_get(&db, [Doc::key("a", 1)]).await.unwrap();
        assert_eq!(got.items, vec![a.clone()], "{what}: batch_get");
        assert_eq!(got.stats.requests, 1, "{what}: batch_get read DynamoDB");
        assert_eq!(db.cache_stats().corrupt_entries, counted + 1, "{what}");
        let gets = requests(&db, "GetItem");
        assert_eq!(
            Doc::get(&db, Doc::key("a", 1)).await.unwrap(),
            Some(a.clone()),
            "{what}"
        );
        assert_eq!(
            requests(&db, "GetItem") - gets,
            0,
            "{what}: refilled and served from the cache"
        );
    }
    // A write replaces the corrupt entry; then it is served again.
    Doc::update(&db, Doc::key("a", 1))
        .set(Doc::BODY, "uno")
        .await
        .unwrap();
    let gets = requests(&db, "GetItem");
    for _ in 0..2 {
        assert_eq!(
            Doc::get(&db, Doc::key("a", 1)).await.unwrap().unwrap().body,
            "uno"
        );
    }
    assert_eq!(requests(&db, "GetItem") - gets, 1);
}

#[tokio::test]
async fn moka_and_tiered_layers_honour_the_contract() {
    let tiered = || {
        Tiered::new()
            .layer(MokaLayer::new(MB))
            .layer(MokaLayer::new(MB))
    };
    layer_contract(&MokaLayer::new(MB), "moka").await;
    layer_contract(&tiered(), "tiered(moka > moka)").await;
    clear_does_not_undo_invalidations(&MokaLayer::new(MB), "moka").await;
    clear_does_not_undo_invalidations(&tiered(), "tiered(moka > moka)").await;
}

#[tokio::test]
async fn capacity_evictions_are_counted() {
    let layer = MokaLayer::new(4 * 1024);
    let token = FillToken::new(0);
    for i in 0..64 {
        let key = CacheKey {
            entry: format!("e{i}"),
            scope: format!("s{i}"),
        };
        layer
            .put(
                &key,
                CacheEntry::from_bytes(vec![0u8; 512]),
                Duration::from_secs(60),
                &token,
            )
            .await
            .unwrap();
    }
    layer.run_pending_tasks();
    let s = layer.stats()[0].1;
    assert!(s.evictions > 0, "{s:?}");
    assert!(layer.entry_count() <= 8, "{}", layer.entry_count());
}

#[tokio::test]
async fn entries_copied_into_upper_layers_keep_their_ttl() {
    install();
    let base = plain().await;
    Short::create_table(&base).await.unwrap();
    // Two instances, each with its own L1, over one shared L2 (as with Redis).
    let l2 = Tiered::new().layer(MokaLayer::new(MB));
    let a = with_cache(
        &base,
        Tiered::new().layer(MokaLayer::new(MB)).layer(l2.clone()),
        moka_config(),
    );
    let b = with_cache(
        &base,
        Tiered::new().layer(MokaLayer::new(MB)).layer(l2),
        moka_config(),
    );
    Short {
        id: "s".into(),
        body: "old".into(),
    }
    .put(&a)
    .await
    .unwrap();
    // A fills L1a and L2 for 200 ms (an item and an absence).
    Short::get(&a, Short::key("s")).await.unwrap();
    assert_eq!(Short::get(&a, Short::key("none")).await.unwrap(), None);
    // B finds both in L2 and copies them into its L1.
    Short::get(&b, Short::key("s")).await.unwrap();
    Short::get(&b, Short::key("none")).await.unwrap();
    assert_eq!(stats(&b, 1).hits, 2, "B read L2");
    // Another program writes both items.
    for (id, body) in [("s", "new"), ("none", "created")] {
        Short {
            id: id.into(),
            body: body.into(),
        }
        .put(&base)
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let s = Short::get(&b, Short::key("s")).await.unwrap().unwrap();
    let none = Short::get(&b, Short::key("none")).await.unwrap();
    assert_eq!(
        (s.body.as_str(), none.map(|n| n.body)),
        ("new", Some("created".to_owned())),
        "entries outlived the entity's 200 ms ttl / negative_ttl"
    );
}

#[tokio::test]
async fn a_refilled_entry_gets_its_own_ttl() {
    let base = setup::<Neg>().await;
    let db = with_cache(&base, MokaLayer::new(MB), CacheConfig::default());
    let item = Neg {
        id: "n".into(),
        body: "first".into(),
    };
    item.put(&db).await.unwrap();
    assert_eq!(Neg::get(&db, Neg::key("n")).await.unwrap(), Some(item)); // cached for 300 s
    Neg::delete(&db, Neg::key("n")).await.unwrap();
    assert_eq!(Neg::get(&db, Neg::key("n")).await.unwrap(), None); // negative: 200 ms
                                                                   // Another program creates the item again.
    Neg {
        id: "n".into(),
        body: "again".into(),
    }
    .put(&base)
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        Neg::get(&db, Neg::key("n")).await.unwrap().map(|n| n.body),
        Some("again".to_owned()),
        "the negative entry outlived its 200 ms"
    );
}

/// A map attribute `m` and a top-level attribute whose name is `m.c`.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "dotted", cache(queries))]
struct Dotted {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    n: u32,
    #[serde(default)]
    m: BTreeMap<String, String>,
    #[serde(rename = "m.c", default)]
    mc: Option<String>,
}

#[tokio::test]
async fn a_nested_path_and_an_attribute_named_like_it_are_different_queries() {
    install();
    let base = plain().await;
    Dotted::create_table(&base).await.unwrap();
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    let nested = Dotted {
        id: "p".into(),
        n: 1,
        m: BTreeMap::from([("c".to_owned(), "x".to_owned())]),
        mc: None,
    };
    let dotted = Dotted {
        id: "p".into(),
        n: 2,
        m: BTreeMap::new(),
        mc: Some("x".into()),
    };
    nested.put(&db).await.unwrap();
    dotted.put(&db).await.unwrap();
    let by_nested_path = Dotted::find(&db)
        .filter(Dotted::ID.eq("p"))
        .filter(Dotted::M.at::<String>("c").eq("x"))
        .all()
        .await
        .unwrap();
    let by_dotted_name = Dotted::find(&db)
        .filter(Dotted::ID.eq("p"))
        .filter(Dotted::MC.retype::<String>().eq("x"))
        .all()
        .await
        .unwrap();
    assert_eq!(by_nested_path, vec![nested]);
    assert_eq!(
        by_dotted_name,
        vec![dotted],
        "served the other query's cached results"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_cache_hits_lets_other_tasks_run() {
    install();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    let a = doc("a", 1, "one");
    a.put(&db).await.unwrap();
    Doc::get(&db, Doc::key("a", 1)).await.unwrap(); // now cached
                                                    // Another task on the same (single) thread: it runs only when the loop below yields.
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
    for _ in 0..2_000 {
        let got = Doc::get(&db, Doc::key("a", 1)).await.unwrap();
        assert_eq!(got.as_ref(), Some(&a));
    }
    assert!(
        ran.load(Ordering::SeqCst),
        "2,000 cache hits in a row never yielded to the scheduler"
    );
}

#[tokio::test]
async fn an_entry_moved_to_another_key_is_a_miss() {
    install();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    let moka = Tiered::new().layer(MokaLayer::new(MB));
    let layer = moka.layers()[0].clone();
    let db = with_cache(&base, moka, moka_config());
    let (a, b) = (doc("a", 1, "one"), doc("b", 1, "two"));
    a.put(&db).await.unwrap();
    b.put(&db).await.unwrap();
    Doc::get(&db, Doc::key("a", 1)).await.unwrap();
    let Lookup::Hit(a_entry) = layer.get(&doc_cache_key(&db, "a", 1)).await.unwrap() else {
        panic!("a is cached");
    };
    // a's valid entry, copied under b's key (same table, same schema).
    let b_key = doc_cache_key(&db, "b", 1);
    layer.invalidate(&b_key.scope).await.unwrap();
    let Lookup::Miss(token) = layer.get(&b_key).await.unwrap() else {
        panic!("invalidated");
    };
    let copied = CacheEntry::from_bytes(a_entry.bytes().to_vec());
    layer
        .put(&b_key, copied, Duration::from_secs(60), &token)
        .await
        .unwrap();
    assert_eq!(Doc::get(&db, Doc::key("b", 1)).await.unwrap(), Some(b));
    assert_eq!(db.cache_stats().corrupt_entries, 1);
}

/// `LfuLayer` end to end through a client (its policy has unit tests; this is the wiring): item
/// hits, invalidation by an update, the query cache until a write, batch reads of the misses.
#[tokio::test]
async fn lfu_layer_serves_items_queries_and_batch_misses_until_a_write() {
    let base = setup::<QDoc>().await;
    let db = with_cache(
        &base,
        Tiered::new().layer(LfuLayer::new(MB)),
        CacheConfig::default(),
    );
    let cached = &db;
    let body = move |n: u32| async move {
        QDoc::get(cached, QDoc::key("a", n))
            .await
            .unwrap()
            .unwrap()
            .body
    };
    qdoc("a", 1, "one").put(&db).await.unwrap();
    assert_eq!(body(1).await, "one");
    assert_eq!(body(1).await, "one");
    assert_eq!(db.cache_stats().layer("lfu").unwrap().hits, 1);
    QDoc::update(&db, QDoc::key("a", 1))
        .set(QDoc::BODY, "uno")
        .await
        .unwrap();
    assert_eq!(body(1).await, "uno");
    let q = || QDoc::find(&db).filter(QDoc::ID.eq("a"));
    assert_eq!(q().all().await.unwrap().len(), 1);
    assert_eq!(q().all().await.unwrap().len(), 1);
    qdoc("a", 2, "two").put(&db).await.unwrap();
    assert_eq!(q().all().await.unwrap().len(), 2);
    let keys = || [QDoc::key("a", 1), QDoc::key("a", 2), QDoc::key("a", 3)];
    assert_eq!(QDoc::batch_get(&db, keys()).await.unwrap().items.len(), 2);
    let got = QDoc::batch_get(&db, keys()).await.unwrap();
    assert_eq!(got.items.len(), 2);
    assert_eq!(got.stats.requests, 1, "only the missing key is read again");
}
