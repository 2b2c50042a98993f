//! Entries in Redis: corrupt or foreign entries are misses; the layer contract; clear() never
//! undoes an invalidation.

use super::*;

/// The Redis key of the one item entry under `prefix` whose key contains `needle`.
async fn entry_key(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    needle: &str,
) -> String {
    let found: Vec<String> = keys(conn, &format!("{prefix}{{*}}e:*"))
        .await
        .into_iter()
        .filter(|k| k.contains(needle))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().unwrap()
}

#[tokio::test]
async fn corrupt_or_foreign_entries_in_redis_are_misses() {
    install();
    let url = redis_url();
    let prefix = unique_prefix();
    let _cleanup = cleanup(&url, &prefix);
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    Other::create_table(&base).await.unwrap();
    let db = with_cache(&base, layer(&url, &prefix).await, CacheConfig::default());
    // Moka over the same Redis; its L1 is emptied before each of its reads below.
    let stack = Tiered::new()
        .layer(MokaLayer::new(MB))
        .layer(layer(&url, &prefix).await);
    let l1 = stack.layers()[0].clone();
    let tiered = with_cache(&base, stack, CacheConfig::default());
    let mut conn = raw(&url).await;
    let a = doc("a", 1, "one");
    a.put(&db).await.unwrap();
    Other {
        id: "o".into(),
        n: 1,
        body: "other".into(),
    }
    .put(&db)
    .await
    .unwrap();
    assert_eq!(
        Doc::get(&db, Doc::key("a", 1)).await.unwrap(),
        Some(a.clone())
    );
    Other::get(&db, Other::key("o", 1)).await.unwrap();
    let all = keys(&mut conn, &format!("{prefix}{{*}}e:*")).await;
    assert_eq!(all.len(), 2, "one entry per item: {all:?}");
    let key = entry_key(&mut conn, &prefix, "|Doc:").await;
    let other_key = entry_key(&mut conn, &prefix, "|Other:").await;
    let good: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let foreign: Vec<u8> = redis::cmd("GET")
        .arg(&other_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let stamp = good[..8].to_vec();
    assert!(good[8..].starts_with(b"DYN"), "value after the generation");
    let with_stamp = |tail: &[u8]| [stamp.as_slice(), tail].concat();
    let mut wrong_version = good.clone();
    wrong_version[8 + 3] = wrong_version[8 + 3].wrapping_add(1);

    // (what, value, counted by the redis layer (too short to hold a generation) or by the
    // client (decoding failed))
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("shorter than a generation", b"xyz".to_vec(), true),
        ("empty", Vec::new(), true),
        ("generation + garbage", with_stamp(b"garbage"), false),
        ("generation only", stamp.clone(), false),
        (
            "generation + an entry of another entity (fingerprint)",
            with_stamp(&foreign[8..]),
            false,
        ),
        ("generation + another format version", wrong_version, false),
        (
            "generation + truncated entry",
            good[..good.len() - 2].to_vec(),
            false,
        ),
    ];
    // A corrupt entry's scope is invalidated when it is found (so the next read refills it):
    // every planted value carries the scope's generation of the moment.
    let generation_key = {
        let scope = format!("|{}|i|s1:an3:1e0", db.table_name(Doc::schema().table));
        let found: Vec<String> = keys(&mut conn, &format!("{prefix}{{*}}g:*"))
            .await
            .into_iter()
            .filter(|k| k.ends_with(&scope))
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        found.into_iter().next().unwrap()
    };
    let restamp = |value: &[u8], generation: u64, by_layer: bool| -> Vec<u8> {
        if by_layer || value.len() < 8 {
            value.to_vec()
        } else {
            [&generation.to_le_bytes()[..], &value[8..]].concat()
        }
    };
    for (what, value, by_layer) in cases {
        for db in [&db, &tiered] {
            l1.clear().await.unwrap();
            let generation: Option<u64> = redis::cmd("GET")
                .arg(&generation_key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(restamp(&value, generation.unwrap_or(0), by_layer))
                .query_async(&mut conn)
                .await
                .unwrap();
            let before = db.cache_stats();
            let layer_before = layer_stats(db, "redis").corrupt;
            let gets = requests(db, "GetItem");
            assert_eq!(
                Doc::get(db, Doc::key("a", 1)).await.unwrap(),
                Some(a.clone()),
                "{what}: correct data"
            );
            assert_eq!(requests(db, "GetItem") - gets, 1, "{what}: read DynamoDB");
            let after = db.cache_stats();
            if by_layer {
                assert_eq!(layer_stats(db, "redis").corrupt, layer_before + 1, "{what}");
                assert_eq!(after.corrupt_entries, before.corrupt_entries, "{what}");
            } else {
                assert_eq!(
                    after.corrupt_entries,
                    before.corrupt_entries + 1,
                    "{what}: counted as corrupt"
                );
            }
        }
        // batch_get too.
        let generation: Option<u64> = redis::cmd("GET")
            .arg(&generation_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(restamp(&value, generation.unwrap_or(0), by_layer))
            .query_async(&mut conn)
            .await
            .unwrap();
        let got = Doc::batch_get(&db, [Doc::key("a", 1)]).await.unwrap();
        assert_eq!(got.items, vec![a.clone()], "{what}: batch_get");
        assert_eq!(got.stats.requests, 1, "{what}");
    }
    // An entry of an older generation is a plain miss, filled over at once.
    let generation: Option<u64> = redis::cmd("GET")
        .arg(&generation_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let old = [
        &generation.unwrap_or(0).wrapping_sub(1).to_le_bytes()[..],
        &good[8..],
    ]
    .concat();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(old)
        .query_async(&mut conn)
        .await
        .unwrap();
    let corrupt = db.cache_stats().corrupt_entries;
    let layer_corrupt = layer_stats(&db, "redis").corrupt;
    let gets = requests(&db, "GetItem");
    for _ in 0..2 {
        assert_eq!(
            Doc::get(&db, Doc::key("a", 1)).await.unwrap(),
            Some(a.clone())
        );
    }
    assert_eq!(
        requests(&db, "GetItem") - gets,
        1,
        "refilled after the miss"
    );
    assert_eq!(db.cache_stats().corrupt_entries, corrupt);
    assert_eq!(layer_stats(&db, "redis").corrupt, layer_corrupt);
    // A corrupt entry is replaced after a write.
    let generation: Option<u64> = redis::cmd("GET")
        .arg(&generation_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(restamp(
            &with_stamp(b"garbage"),
            generation.unwrap_or(0),
            false,
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    Doc::update(&db, Doc::key("a", 1))
        .set(Doc::BODY, "uno")
        .await
        .unwrap();
    let gets = requests(&db, "GetItem");
    for _ in 0..2 {
        assert_eq!(body(&db, "a").await.as_deref(), Some("uno"));
    }
    assert_eq!(requests(&db, "GetItem") - gets, 1);
    let gens = keys(&mut conn, &format!("{prefix}{{*}}g:*")).await;
    assert!(
        !gens.is_empty(),
        "generations are kept under {prefix}{{tag}}g:"
    );
}

#[tokio::test]
async fn redis_layer_honours_the_contract() {
    let url = redis_url();
    let l = layer(&url, &unique_prefix()).await;
    layer_contract(&l, "redis").await;
    let stack = Tiered::new()
        .layer(MokaLayer::new(MB))
        .layer(layer(&url, &unique_prefix()).await);
    layer_contract(&stack, "tiered(moka > redis)").await;
    // A layer whose Redis cannot be reached does not connect.
    let port = free_port();
    let err = RedisLayer::builder(format!("redis://127.0.0.1:{port}"))
        .connect()
        .await
        .unwrap_err();
    println!("{err}");
}

#[tokio::test]
async fn redis_clear_does_not_undo_invalidations() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let _cleanup = cleanup(&url, &prefix);
    let l = layer(&url, &prefix).await;
    clear_does_not_undo_invalidations(&l, "redis").await;
}
