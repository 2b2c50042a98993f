//! Two instances sharing Redis: writes in one never served stale by the other, under
//! concurrency too; per-layer stats and hit rate.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_one_instance_is_never_served_stale_by_another() {
    install();
    // Absences are cached too (for a minute): they must be dropped like items.
    let config = CacheConfig::default().negative_ttl(Duration::from_secs(60));
    let Instances {
        a,
        b,
        c,
        cleanup: _cleanup,
        ..
    } = instances(config).await;
    doc("k", 1, "v0").put(&a).await.unwrap();
    let mut current: Option<String> = Some("v0".into());
    for round in 1..=10u32 {
        // B holds the item and the query result in its L1 (the second reads are L1 hits); C
        // reads (and fills) Redis.
        for _ in 0..2 {
            assert_eq!(body(&b, "k").await, current, "round {round}: B before");
            assert_eq!(query_bodies(&b, "k").await, Vec::from_iter(current.clone()));
        }
        assert_eq!(body(&c, "k").await, current);
        assert_eq!(query_bodies(&c, "k").await, Vec::from_iter(current.clone()));
        let b_l1 = b.cache_stats().layers[0].1;
        let c_gets = requests(&c, "GetItem");
        assert_eq!(body(&b, "k").await, current);
        assert_eq!(
            b.cache_stats().layers[0].1.hits,
            b_l1.hits + 1,
            "round {round}: B's read is an L1 hit"
        );
        assert_eq!(body(&c, "k").await, current);
        assert_eq!(requests(&c, "GetItem"), c_gets, "C's read is a Redis hit");

        // A writes (every kind of write in turn).
        let new = format!("v{round}");
        current = match round % 5 {
            0 => {
                doc("k", 1, &new).put(&a).await.unwrap();
                Some(new)
            }
            1 => {
                Doc::update(&a, Doc::key("k", 1))
                    .set(Doc::BODY, new.clone())
                    .set(Doc::V, u64::from(round))
                    .await
                    .unwrap();
                Some(new)
            }
            2 => {
                Doc::batch_write(&a).put(&doc("k", 1, &new)).await.unwrap();
                Some(new)
            }
            3 => {
                a.transact_write()
                    .update(Doc::key("k", 1), Update::new().set(Doc::BODY, new.clone()))
                    .await
                    .unwrap();
                Some(new)
            }
            _ => {
                Doc::delete(&a, Doc::key("k", 1)).await.unwrap();
                None
            }
        };
        // A's own reads and C's (Redis, no L1) see the write as soon as it returned.
        assert_eq!(body(&a, "k").await, current, "round {round}: A after");
        assert_eq!(body(&c, "k").await, current, "round {round}: Redis stale");
        assert_eq!(
            query_bodies(&c, "k").await,
            Vec::from_iter(current.clone()),
            "round {round}: Redis query result stale"
        );
        // B's L1 entries are dropped by the published invalidation, soon.
        let fresh = eventually(Duration::from_secs(2), || async {
            body(&b, "k").await == current
                && query_bodies(&b, "k").await == Vec::from_iter(current.clone())
        })
        .await;
        assert!(
            fresh,
            "round {round}: B still serves the old value after 2 s"
        );
    }
    let b_stats = b.cache_stats();
    assert!(
        b_stats.layers[0].1.invalidations >= 20,
        "B's L1 was invalidated remotely: {b_stats:?}"
    );
    // B writes too: A's L1 follows.
    doc("k", 1, "from B").put(&b).await.unwrap();
    assert_eq!(body(&c, "k").await.as_deref(), Some("from B"));
    assert!(
        eventually(Duration::from_secs(2), || async {
            body(&a, "k").await.as_deref() == Some("from B")
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_in_two_instances_never_see_an_acknowledged_write_undone() {
    install();
    let Instances {
        cleanup: _cleanup,
        base,
        url,
        prefix,
        a,
        b,
        c,
    } = instances(CacheConfig::default()).await;
    // Redis as seen by a client with no L1 and nothing else in flight.
    let l2 = with_cache(&base, layer(&url, &prefix).await, CacheConfig::default());
    let item = |v: u64| Doc {
        id: "c".into(),
        n: 1,
        body: format!("v{v}"),
        v,
    };
    item(0).put(&a).await.unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let behind = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    // A's readers (the writer's client) must never go below the last acknowledged write. B's
    // (L1 updated by pub/sub) and C's (Redis only) hammer the same item, filling L1s and Redis
    // concurrently with the writes; their reads older than the last acknowledged write are
    // counted (a load started before A's write may still answer them: another client).
    for (name, db, strict) in [
        ("A", a.clone(), true),
        ("A2", a.clone(), true),
        ("B", b.clone(), false),
        ("C", c.clone(), false),
    ] {
        let (acked, stop, behind) = (acked.clone(), stop.clone(), behind.clone());
        readers.push(tokio::spawn(async move {
            let mut i = 0u64;
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let floor = acked.load(Ordering::SeqCst);
                let v = match i % 3 {
                    0 => Doc::get(&db, Doc::key("c", 1)).await.unwrap().unwrap().v,
                    1 => Doc::batch_get(&db, [Doc::key("c", 1)]).await.unwrap().items[0].v,
                    _ => Doc::find(&db).filter(Doc::ID.eq("c")).all().await.unwrap()[0].v,
                };
                if strict {
                    assert!(v >= floor, "{name} read {v} after write {floor} returned");
                } else if v < floor && name == "C" {
                    behind.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        }));
    }
    let writes = 80u64;
    for v in 1..=writes {
        match v % 4 {
            0 => item(v).put(&a).await.unwrap(),
            1 => {
                Doc::update(&a, Doc::key("c", 1))
                    .set(Doc::V, v)
                    .set(Doc::BODY, format!("v{v}"))
                    .await
                    .unwrap();
            }
            2 => {
                Doc::batch_write(&a).put(&item(v)).await.unwrap();
            }
            _ => a.transact_write().put(&item(v)).await.unwrap(),
        }
        acked.store(v, Ordering::SeqCst);
        assert_eq!(
            Doc::get(&a, Doc::key("c", 1)).await.unwrap().unwrap().v,
            v,
            "A right after write {v}"
        );
        assert_eq!(
            Doc::get(&l2, Doc::key("c", 1)).await.unwrap().unwrap().v,
            v,
            "Redis right after write {v}"
        );
        let found = Doc::find(&l2).filter(Doc::ID.eq("c")).all().await.unwrap();
        assert_eq!(found[0].v, v, "Redis query result right after write {v}");
        let found = Doc::find(&a).filter(Doc::ID.eq("c")).all().await.unwrap();
        assert_eq!(found[0].v, v, "A's query right after write {v}");
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for r in readers {
        total += r.await.expect("a reader failed");
    }
    for db in [&b, &c] {
        assert!(
            eventually(Duration::from_secs(2), || async {
                Doc::get(db, Doc::key("c", 1)).await.unwrap().unwrap().v == writes
            })
            .await,
            "B and C caught up"
        );
    }
    println!(
        "{total} concurrent reads ({} of C's older than the last acknowledged write); \
         A {:?}; B {:?}; C {:?}",
        behind.load(Ordering::Relaxed),
        a.cache_stats(),
        b.cache_stats(),
        c.cache_stats()
    );
    let s = a.cache_stats();
    assert!(s.layer("moka").unwrap().hits > 0 && s.layer("redis").unwrap().misses > 0);
    assert!(c.cache_stats().layer("redis").unwrap().hits > 0);
}

#[tokio::test]
async fn tiered_stats_per_layer_and_hit_rate() {
    install();
    let Instances {
        a,
        b,
        c,
        cleanup: _cleanup,
        ..
    } = instances(CacheConfig::default()).await;
    doc("s", 1, "x").put(&a).await.unwrap();
    let names: Vec<String> = a.cache_stats().layers.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["moka", "redis"]);
    let (m0, r0) = (layer_stats(&a, "moka"), layer_stats(&a, "redis"));
    assert_eq!((m0.hits, m0.misses, r0.hits, r0.misses), (0, 0, 0, 0));
    assert_eq!(
        r0.invalidations, 3,
        "the put invalidated the item, its partition and the table"
    );
    body(&a, "s").await; // moka miss, redis miss, DynamoDB
    body(&a, "s").await; // moka hit
    body(&b, "s").await; // B: moka miss, redis hit
    body(&b, "s").await; // B: moka hit
    body(&c, "s").await; // redis hit
    let (m, r) = (layer_stats(&a, "moka"), layer_stats(&a, "redis"));
    assert_eq!((m.hits, m.misses), (1, 1));
    assert_eq!((r.hits, r.misses), (0, 1));
    assert_eq!(m.hit_rate(), 0.5);
    assert_eq!(r.hit_rate(), 0.0);
    let (m, r) = (layer_stats(&b, "moka"), layer_stats(&b, "redis"));
    assert_eq!((m.hits, m.misses, r.hits, r.misses), (1, 1, 1, 0));
    assert_eq!(r.hit_rate(), 1.0);
    let r = layer_stats(&c, "redis");
    assert_eq!((r.hits, r.misses, r.faults, r.corrupt), (1, 0, 0, 0));
    assert_eq!(
        requests(&a, "GetItem"),
        1,
        "one DynamoDB read for five gets"
    );
    // clear_cache() empties Redis for everyone (and tells the other instances' L1s).
    a.clear_cache().await;
    body(&c, "s").await;
    assert_eq!(requests(&a, "GetItem"), 2, "Redis was cleared");
    let b_misses = layer_stats(&b, "moka").misses;
    assert!(
        eventually(Duration::from_secs(2), || async {
            body(&b, "s").await;
            layer_stats(&b, "moka").misses > b_misses
        })
        .await,
        "B's L1 was cleared by the published \"*\""
    );
}
