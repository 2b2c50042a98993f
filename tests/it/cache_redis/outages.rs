//! Faults, on a redis-server of the test's own: killed and restarted, slow or frozen, and
//! lookups racing the replay of pending invalidations.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_never_fails_a_request_nor_serves_stale_data() {
    install();
    let mut server = OwnRedis::start();
    let url = server.url();
    let prefix = unique_prefix();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    let db = with_cache(
        &base,
        fragile_layer(&url, &prefix).await,
        CacheConfig::default(),
    );
    let tiered = Tiered::new()
        .layer(MokaLayer::new(MB))
        .layer(fragile_layer(&url, &prefix).await);
    let t = with_cache(&base, tiered, CacheConfig::default());
    wait_for_subscribers(&url, &prefix, 2).await;
    let mut expected: Vec<String> = (0..5).map(|i| format!("v0-{i}")).collect();
    for (i, body) in expected.iter().enumerate() {
        doc(&format!("k{i}"), 1, body).put(&db).await.unwrap();
    }
    check_all(&db, &expected, "filling").await;
    check_all(&db, &expected, "cached").await;
    check_all(&t, &expected, "tiered").await;
    let s = layer_stats(&db, "redis");
    assert!(s.hits >= 5, "{s:?}");
    assert_eq!(s.faults, 0, "{s:?}");
    // The entries (with the old bodies) are saved, so the restarted server has them again.
    let mut conn = raw(&url).await;
    let _: () = redis::cmd("SAVE").query_async(&mut conn).await.unwrap();
    drop(conn);

    server.kill();
    for round in 0..8 {
        // Every read and write succeeds, with the data of the writes just made.
        check_all(&db, &expected, &format!("while down, round {round}")).await;
        // t (another instance: no channel reaches it while Redis is down) reads the items
        // nobody writes.
        check_keys(&t, &expected, 2..5, &format!("t while down, round {round}")).await;
        assert_eq!(body(&t, "nope").await, None); // an L1 miss: t tries Redis
        for k in [0, 1] {
            let new = format!("down-{round}-{k}");
            Doc::update(&db, Doc::key(format!("k{k}"), 1))
                .set(Doc::BODY, new.clone())
                .await
                .unwrap();
            expected[k] = new;
        }
        check_all(
            &db,
            &expected,
            &format!("after writes while down, round {round}"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let s = layer_stats(&db, "redis");
    assert!(s.faults > 0, "faults counted: {s:?}");
    assert!(layer_stats(&t, "redis").faults > 0);
    let hits_while_down = s.hits;

    // Back, with the old entries of k0 and k1 (saved before the writes): db's pending
    // invalidations are written before it reads Redis again, so it never serves them.
    server.spawn();
    let mut conn = raw(&url).await;
    let restored = keys(&mut conn, &format!("{prefix}{{*}}e:*")).await;
    assert!(
        restored.len() >= 5,
        "the saved entries are back: {restored:?}"
    );
    assert!(
        recover(&db, &expected, Duration::from_secs(10)).await,
        "the layer was not used again: {:?}",
        layer_stats(&db, "redis")
    );
    assert!(layer_stats(&db, "redis").hits > hits_while_down);
    check_all(&db, &expected, "after the restart").await;
    // t's listener comes back and drops t's L1 ("*"); the replayed invalidations reach it too.
    // (t held k0 and k1 from before db's writes in its L1.)
    wait_for_subscribers(&url, &prefix, 2).await;
    assert!(
        eventually(Duration::from_secs(5), || all_fresh(&t, &expected)).await,
        "t's L1 still serves data older than db's writes: {:?}",
        t.cache_stats()
    );
    // And t's Redis layer answers again (an L1 miss that Redis answers: a counted miss).
    let t_misses = layer_stats(&t, "redis").misses;
    assert!(
        eventually(Duration::from_secs(5), || async {
            assert_eq!(body(&t, "nope").await, None);
            layer_stats(&t, "redis").misses > t_misses
        })
        .await,
        "t uses Redis again: {:?}",
        t.cache_stats()
    );
    println!("db {:?}\nt {:?}", db.cache_stats(), t.cache_stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_frozen_redis_never_fails_a_request_nor_serves_stale_data() {
    install();
    let server = OwnRedis::start();
    let url = server.url();
    let prefix = unique_prefix();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    let db = with_cache(
        &base,
        fragile_layer(&url, &prefix).await,
        CacheConfig::default(),
    );
    let mut expected: Vec<String> = (0..5).map(|i| format!("v0-{i}")).collect();
    for (i, body) in expected.iter().enumerate() {
        doc(&format!("k{i}"), 1, body).put(&db).await.unwrap();
    }
    check_all(&db, &expected, "filling").await;
    check_all(&db, &expected, "cached").await;

    // Slow: the server sleeps 1 s (DEBUG SLEEP blocks it for every client); requests made
    // meanwhile (for 400 ms) all succeed.
    let faults = layer_stats(&db, "redis").faults;
    let sleeper = {
        let url = url.clone();
        tokio::spawn(async move {
            let mut conn = redis::Client::open(url)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            // (The answer may come after the connection's own response timeout.)
            let _: redis::RedisResult<()> = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg("1")
                .query_async(&mut conn)
                .await;
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_millis(400) {
        check_all(&db, &expected, &format!("slow, round {round}")).await;
        let new = format!("slow-{round}");
        Doc::update(&db, Doc::key("k2", 1))
            .set(Doc::BODY, new.clone())
            .await
            .unwrap();
        expected[2] = new;
        check_all(&db, &expected, &format!("slow, after write {round}")).await;
        round += 1;
    }
    sleeper.await.unwrap();
    let s = layer_stats(&db, "redis");
    assert!(s.faults > faults, "timeouts counted as faults: {s:?}");
    assert!(
        recover(&db, &expected, Duration::from_secs(5)).await,
        "Redis used again: {:?}",
        layer_stats(&db, "redis")
    );
    check_all(&db, &expected, "after the sleep").await;

    // Frozen (SIGSTOP): the entries stay in Redis; writes made meanwhile are replayed as
    // invalidations before anything is served again.
    check_all(&db, &expected, "cached again").await;
    let faults = layer_stats(&db, "redis").faults;
    server.pause();
    for round in 0..5 {
        let new = format!("frozen-{round}");
        Doc::update(&db, Doc::key(format!("k{round}"), 1))
            .set(Doc::BODY, new.clone())
            .await
            .unwrap();
        expected[round] = new;
        check_all(&db, &expected, &format!("frozen, round {round}")).await;
    }
    assert!(layer_stats(&db, "redis").faults > faults);
    server.resume();
    assert!(
        recover(&db, &expected, Duration::from_secs(5)).await,
        "Redis used again: {:?}",
        layer_stats(&db, "redis")
    );
    check_all(&db, &expected, "after the freeze").await;
    println!("{:?}", db.cache_stats());
}

/// Items `k0..k{n}` cached in Redis with their old bodies, then rewritten through the client
/// while Redis is frozen (their invalidations wait in the layer), then Redis back and the retry
/// interval over: the client that made the writes, and the new bodies.
/// With `l1`, the client reads through a `MokaLayer` over Redis.
async fn written_during_an_outage(server: &OwnRedis, n: usize, l1: bool) -> (Client, Vec<String>) {
    let url = server.url();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    let redis = RedisLayer::builder(&url)
        .prefix(unique_prefix())
        .timeout(Duration::from_millis(100))
        .retry_interval(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let db = if l1 {
        let stack = Tiered::new().layer(MokaLayer::new(MB)).layer(redis);
        with_cache(&base, stack, CacheConfig::default())
    } else {
        with_cache(&base, redis, CacheConfig::default())
    };
    let mut expected: Vec<String> = (0..n).map(|i| format!("old-{i}")).collect();
    for (i, body) in expected.iter().enumerate() {
        doc(&format!("k{i}"), 1, body).put(&db).await.unwrap();
    }
    check_keys(&db, &expected, 0..n, "filling").await;
    check_keys(&db, &expected, 0..n, "cached").await;
    server.pause();
    for (i, e) in expected.iter_mut().enumerate() {
        let new = format!("new-{i}");
        Doc::update(&db, Doc::key(format!("k{i}"), 1))
            .set(Doc::BODY, new.clone())
            .await
            .unwrap();
        *e = new;
    }
    server.resume();
    tokio::time::sleep(Duration::from_millis(400)).await; // past the retry interval
    (db, expected)
}

fn stale(got: &[Option<String>], expected: &[String]) -> Vec<String> {
    got.iter()
        .zip(expected)
        .filter(|(got, want)| got.as_deref() != Some(want.as_str()))
        .map(|(got, want)| format!("{got:?} instead of {want:?}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_racing_the_replay_of_pending_invalidations_never_serve_stale_data() {
    install();
    let n = 10;
    // One batch_get (its lookups run concurrently) as the first request after the outage.
    let server = OwnRedis::start();
    let (db, expected) = written_during_an_outage(&server, n, false).await;
    let got = Doc::batch_get(&db, (0..n).map(|i| Doc::key(format!("k{i}"), 1)))
        .await
        .unwrap();
    let by_batch: Vec<Option<String>> = got.items.into_iter().map(|d| Some(d.body)).collect();
    let stale_batch = stale(&by_batch, &expected);
    drop(server);
    // Concurrent gets as the first requests after the outage.
    let server = OwnRedis::start();
    let (db, expected) = written_during_an_outage(&server, n, false).await;
    let ids: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let by_gets = futures::future::join_all(ids.iter().map(|id| body(&db, id))).await;
    let stale_gets = stale(&by_gets, &expected);
    drop(server);
    // With an L1 above Redis, the stale entries are copied into it, where nothing drops them
    // (the replayed invalidations are published to the other instances only): still stale a
    // second later, one read at a time.
    let server = OwnRedis::start();
    let (db, expected) = written_during_an_outage(&server, n, true).await;
    Doc::batch_get(&db, (0..n).map(|i| Doc::key(format!("k{i}"), 1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut later = Vec::new();
    for id in &ids {
        later.push(body(&db, id).await);
    }
    let stale_later = stale(&later, &expected);
    assert!(
        stale_batch.is_empty() && stale_gets.is_empty() && stale_later.is_empty(),
        "stale after the outage: batch_get {stale_batch:?}; concurrent gets {stale_gets:?}; \
         with an L1, one by one, a second later: {stale_later:?}"
    );
}
