//! Poisoned bookkeeping, held-back invalidations, namespaces, and the staleness bound.

use super::*;

// ---------------------------------------------------------------------------------------------
// Poisoned bookkeeping, held-back invalidations, namespaces, and the staleness bound.

/// The Redis key of the generation of the item `Doc::key(id, 1)`.
async fn item_generation_key(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    db: &Client,
    id: &str,
) -> String {
    let suffix = format!(
        "|{}|i|s{}:{id}n3:1e0",
        db.table_name(Doc::schema().table),
        id.len()
    );
    let found: Vec<String> = keys(conn, &format!("{prefix}{{*}}g:*"))
        .await
        .into_iter()
        .filter(|k| k.ends_with(&suffix))
        .collect();
    assert_eq!(found.len(), 1, "{suffix} in {found:?}");
    found.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_generation_key_is_repaired_and_never_serves_stale_data() {
    install();
    let i = instances(CacheConfig::default()).await;
    let (a, b) = (&i.a, &i.b);
    let mut conn = raw(&i.url).await;
    doc("p", 1, "v0").put(a).await.unwrap();
    assert_eq!(body(b, "p").await.as_deref(), Some("v0"));
    assert_eq!(body(b, "p").await.as_deref(), Some("v0"));
    let generation = item_generation_key(&mut conn, &i.prefix, &i.base, "p").await;
    let poisons: [(&str, redis::Cmd); 3] = [
        (
            "a string",
            redis::cmd("SET").arg(&generation).arg("garbage").clone(),
        ),
        (
            "too large to increment",
            redis::cmd("SET").arg(&generation).arg(i64::MAX).clone(),
        ),
        (
            "another type",
            redis::cmd("RPUSH").arg(&generation).arg("x").clone(),
        ),
    ];
    let mut stale = Vec::new();
    let mut version = 0;
    for (what, poison) in poisons {
        let _: () = redis::cmd("DEL")
            .arg(&generation)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = poison.query_async(&mut conn).await.unwrap();
        let repaired = layer_stats(a, "redis").repaired + layer_stats(b, "redis").repaired;
        // The writer meets the poison first (its invalidation repairs it) ...
        for _ in 0..20 {
            version += 1;
            let want = format!("v{version}");
            Doc::update(a, Doc::key("p", 1))
                .set(Doc::BODY, want.clone())
                .await
                .unwrap();
            // The writer and C (no L1) are fresh at once; B's L1 within the staleness bound.
            for reader in [a, &i.c] {
                let got = body(reader, "p").await;
                if got.as_deref() != Some(want.as_str()) {
                    stale.push(format!("{what}: {got:?} instead of {want}"));
                }
            }
            let fresh = eventually(Duration::from_millis(250), || async {
                body(b, "p").await.as_deref() == Some(want.as_str())
            });
            if !fresh.await {
                stale.push(format!("{what}: B still stale 250 ms after {want}"));
            }
        }
        assert!(
            layer_stats(a, "redis").repaired + layer_stats(b, "redis").repaired > repaired,
            "{what}: repaired and counted"
        );
        assert_eq!(
            layer_stats(a, "redis").held_back,
            0,
            "{what}: nothing held back"
        );
    }
    // ... or a reader does (its lookup repairs it, and reads DynamoDB).
    let _: () = redis::cmd("SET")
        .arg(&generation)
        .arg("garbage")
        .query_async(&mut conn)
        .await
        .unwrap();
    let repaired = layer_stats(&i.c, "redis").repaired;
    assert_eq!(body(&i.c, "p").await, Some(format!("v{version}")));
    assert_eq!(layer_stats(&i.c, "redis").repaired, repaired + 1);
    Doc::update(a, Doc::key("p", 1))
        .set(Doc::BODY, "last")
        .await
        .unwrap();
    for reader in [a, &i.c] {
        assert_eq!(body(reader, "p").await.as_deref(), Some("last"));
    }
    assert!(
        eventually(Duration::from_millis(250), || async {
            body(b, "p").await.as_deref() == Some("last")
        })
        .await
    );
    assert!(stale.is_empty(), "{} stale reads: {stale:?}", stale.len());
}

#[tokio::test]
async fn clients_on_different_databases_sharing_one_redis_never_read_each_others_entries() {
    install();
    // DynamoDB Local and moto keep one database per region: two regions on one endpoint are
    // two databases with the same table names. The namespace tells them apart.
    let url = redis_url();
    let prefix = unique_prefix();
    let _cleanup = cleanup(&url, &prefix);
    let base_a = Client::builder(support::sdk(Some("us-east-1")).await)
        .table_prefix(plain().await.table_prefix())
        .build();
    let base_b = Client::builder(support::sdk(Some("eu-west-1")).await)
        .table_prefix(base_a.table_prefix())
        .build();
    Doc::create_table(&base_a).await.unwrap();
    Doc::create_table(&base_b).await.unwrap();
    let a = with_cache(&base_a, layer(&url, &prefix).await, CacheConfig::default());
    let b = with_cache(&base_b, layer(&url, &prefix).await, CacheConfig::default());
    doc("same", 1, "in A").put(&a).await.unwrap();
    doc("same", 1, "in B").put(&b).await.unwrap();
    for _ in 0..2 {
        assert_eq!(body(&a, "same").await.as_deref(), Some("in A"));
        assert_eq!(body(&b, "same").await.as_deref(), Some("in B"));
    }
    assert!(layer_stats(&a, "redis").hits > 0 && layer_stats(&b, "redis").hits > 0);
    // One explicit namespace shares entries (the user says it is one database).
    let shared_a = dynamite::Client::builder(base_a.sdk().clone())
        .table_prefix(base_a.table_prefix())
        .cache(layer(&url, &prefix).await)
        .cache_namespace("one")
        .build();
    let shared_b = dynamite::Client::builder(base_b.sdk().clone())
        .table_prefix(base_b.table_prefix())
        .cache(layer(&url, &prefix).await)
        .cache_namespace("one")
        .build();
    assert_eq!(body(&shared_a, "same").await.as_deref(), Some("in A"));
    assert_eq!(
        body(&shared_b, "same").await.as_deref(),
        Some("in A"),
        "same namespace: B was served A's entry, as asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_back_invalidations_are_coalesced_bounded_and_still_applied() {
    install();
    let server = OwnRedis::start();
    let url = server.url();
    let prefix = unique_prefix();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    let writer_layer = |max: usize| {
        RedisLayer::builder(&url)
            .prefix(&prefix)
            .timeout(Duration::from_millis(50))
            .retry_interval(Duration::from_millis(100))
            .max_pending(max)
            .connect()
    };
    let stack = |l2: RedisLayer| Tiered::new().layer(MokaLayer::new(MB)).layer(l2);
    let a = with_cache(
        &base,
        stack(writer_layer(10_000).await.unwrap()),
        CacheConfig::default(),
    );
    let small = with_cache(
        &base,
        stack(writer_layer(8).await.unwrap()),
        CacheConfig::default(),
    );
    let reader = with_cache(
        &base,
        stack(fragile_layer(&url, &prefix).await),
        CacheConfig::default(),
    );
    let n = 20;
    let mut expected: Vec<String> = (0..n).map(|i| format!("old-{i}")).collect();
    for (i, e) in expected.iter().enumerate() {
        doc(&format!("k{i}"), 1, e).put(&a).await.unwrap();
    }
    // Cached in Redis and in the reader's L1.
    let cache_hits = |db: &Client| layer_stats(db, "moka").hits + layer_stats(db, "redis").hits;
    assert!(
        eventually(Duration::from_secs(5), || async {
            check_keys(&reader, &expected, 0..n, "filling").await;
            cache_hits(&reader) >= n as u64
        })
        .await
    );

    // Coalesced: one held-back invalidation per scope, however many writes.
    server.pause();
    for round in 0..10 {
        let new = format!("a-{round}");
        Doc::update(&a, Doc::key("k0", 1))
            .set(Doc::BODY, new.clone())
            .await
            .unwrap();
        expected[0] = new;
    }
    assert_eq!(
        layer_stats(&a, "redis").held_back,
        3,
        "the item's scope, its partition's and its table's, once each"
    );
    // Bounded: past max_pending, every generation moves when Redis is back.
    for (i, e) in expected.iter_mut().enumerate() {
        let new = format!("small-{i}");
        Doc::update(&small, Doc::key(format!("k{i}"), 1))
            .set(Doc::BODY, new.clone())
            .await
            .unwrap();
        *e = new;
    }
    assert_eq!(
        layer_stats(&small, "redis").held_back,
        9,
        "overflowed: max_pending + 1"
    );
    server.resume();
    let hits_before = cache_hits(&reader);
    // Every read is fresh from now on, whoever serves it. (The window outlasts the 2 s
    // recovery grace with room for a loaded machine, where reads from the server are slow.)
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stale_reads = Vec::new();
    while Instant::now() < deadline {
        for (i, want) in expected.iter().enumerate() {
            let got = body(&reader, &format!("k{i}")).await;
            if got.as_deref() != Some(want.as_str()) {
                stale_reads.push(format!("k{i}: {got:?} instead of {want}"));
            }
        }
    }
    assert!(
        stale_reads.is_empty(),
        "{} stale: {:?}",
        stale_reads.len(),
        &stale_reads[..stale_reads.len().min(5)]
    );
    assert_eq!(layer_stats(&a, "redis").held_back, 0);
    assert_eq!(layer_stats(&small, "redis").held_back, 0);
    assert!(
        cache_hits(&reader) > hits_before + n as u64,
        "served from the cache again"
    );
}

/// What one read saw: when it started, the key, the version it returned.
struct Read {
    started: Instant,
    key: usize,
    version: u64,
}

/// Two clients sharing Redis, 4 tasks, 20 s of mixed reads and writes; Redis frozen (SIGSTOP)
/// for 3 s, then killed and restarted 2 s later. Every read is checked against the writes
/// acknowledged before it started, by either client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staleness_across_instances_stays_within_the_bound_through_stalls_and_restarts() {
    install();
    let mut server = OwnRedis::start();
    let url = server.url();
    let prefix = unique_prefix();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    let bound = Duration::from_millis(250);
    let client = || async {
        let l2 = RedisLayer::builder(&url)
            .prefix(&prefix)
            .timeout(Duration::from_millis(50))
            .retry_interval(Duration::from_millis(200))
            .staleness_bound(bound)
            .connect()
            .await
            .unwrap();
        with_cache(
            &base,
            Tiered::new().layer(MokaLayer::new(MB)).layer(l2),
            CacheConfig::default(),
        )
    };
    let clients = [client().await, client().await];
    const KEYS: usize = 6;
    for k in 0..KEYS {
        doc(&format!("s{k}"), 1, "0")
            .put(&clients[0])
            .await
            .unwrap();
    }
    // Per key: writes one at a time (so versions are acknowledged in order), and when each
    // version was acknowledged.
    let writers: Arc<Vec<tokio::sync::Mutex<u64>>> =
        Arc::new((0..KEYS).map(|_| tokio::sync::Mutex::new(0)).collect());
    let acked: Arc<std::sync::Mutex<Vec<Vec<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![vec![Instant::now()]; KEYS]));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let db = clients[t % 2].clone();
        let (writers, acked, stop) = (writers.clone(), acked.clone(), stop.clone());
        let (failures, writes) = (failures.clone(), writes.clone());
        tasks.push(tokio::spawn(async move {
            let mut reads = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let key = fastrand::usize(..KEYS);
                let id = format!("s{key}");
                if fastrand::u8(..10) < 3 {
                    let mut version = writers[key].lock().await;
                    let next = *version + 1;
                    match doc(&id, 1, &next.to_string()).put(&db).await {
                        Ok(()) => {
                            *version = next;
                            acked.lock().unwrap()[key].push(Instant::now());
                            writes.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("write failed: {e}");
                            failures.fetch_add(1, Ordering::Relaxed);
                            // Unknown whether it applied: this test's accounting cannot go on.
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                } else {
                    let started = Instant::now();
                    match Doc::get(&db, Doc::key(id, 1)).await {
                        Ok(Some(d)) => reads.push(Read {
                            started,
                            key,
                            version: d.body.parse().unwrap(),
                        }),
                        Ok(None) => panic!("s{key} vanished"),
                        Err(e) => {
                            eprintln!("read failed: {e}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            reads
        }));
    }
    let phase = |secs: u64| tokio::time::sleep(Duration::from_secs(secs));
    phase(5).await;
    server.pause();
    phase(3).await;
    server.resume();
    phase(3).await;
    server.kill();
    phase(2).await;
    server.spawn();
    phase(7).await;
    stop.store(true, Ordering::Relaxed);
    let mut reads = Vec::new();
    for task in tasks {
        reads.extend(task.await.unwrap());
    }
    // A read that returned version v is stale by (its start - when v + 1 was acknowledged),
    // when v + 1 was acknowledged before it started.
    let acked = acked.lock().unwrap();
    let mut staleness: Vec<Duration> = reads
        .iter()
        .filter_map(|r| {
            let next = acked[r.key].get(r.version as usize + 1)?;
            (*next < r.started).then(|| r.started - *next)
        })
        .collect();
    staleness.sort();
    let hits: u64 = clients
        .iter()
        .map(|c| layer_stats(c, "moka").hits + layer_stats(c, "redis").hits)
        .sum();
    let skipped: u64 = clients
        .iter()
        .map(|c| layer_stats(c, "redis").skipped)
        .sum();
    let worst = staleness.last().copied().unwrap_or_default();
    eprintln!(
        "staleness run: {} reads ({hits} from cache, {skipped} Redis lookups skipped out of \
         contact), {} writes, {} failed requests; {} reads older than a write acknowledged \
         before they started, the oldest by {worst:?} (bound {bound:?})",
        reads.len(),
        writes.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
        staleness.len(),
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "failed requests");
    assert!(
        hits > reads.len() as u64 / 4,
        "the cache served reads ({hits})"
    );
    assert!(
        worst < bound,
        "a read was {worst:?} stale, past the bound of {bound:?}"
    );
}
