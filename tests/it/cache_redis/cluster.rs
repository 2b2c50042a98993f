//! Redis Cluster: three local nodes, started by the test.

use super::*;

// ---------------------------------------------------------------------------------------------
// Redis Cluster: three local nodes, started by the test.

/// Three cluster nodes on loopback, joined with `redis-cli --cluster create` (no replicas).
#[cfg(feature = "redis-cluster")]
struct OwnCluster {
    nodes: Vec<OwnRedis>,
}

#[cfg(feature = "redis-cluster")]
impl OwnCluster {
    fn start() -> Self {
        let nodes: Vec<OwnRedis> = (0..3).map(|_| OwnRedis::start_cluster_node()).collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli is installed with redis-server");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = OwnCluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(OwnRedis::url).collect()
    }

    /// Every node says `cluster_state:ok`.
    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &self.nodes {
            loop {
                let info: String = redis::Client::open(node.url())
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query(&mut c))
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not come up");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// How many keys matching `pattern` each node holds.
    fn keys_per_node(&self, pattern: &str) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|node| {
                let mut conn = redis::Client::open(node.url())
                    .unwrap()
                    .get_connection()
                    .unwrap();
                let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut conn).unwrap();
                keys.len()
            })
            .collect()
    }
}

#[cfg(feature = "redis-cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_serves_invalidates_and_survives_a_node_restart() {
    install();
    let mut cluster = OwnCluster::start();
    let prefix = unique_prefix();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    let l2 = || {
        RedisLayer::cluster(cluster.urls())
            .prefix(&prefix)
            .timeout(Duration::from_millis(200))
            .retry_interval(Duration::from_millis(200))
            .connect()
    };
    let stack = |l2: RedisLayer| Tiered::new().layer(MokaLayer::new(MB)).layer(l2);
    let a = with_cache(&base, stack(l2().await.unwrap()), CacheConfig::default());
    let b = with_cache(&base, stack(l2().await.unwrap()), CacheConfig::default());
    let c = with_cache(&base, l2().await.unwrap(), CacheConfig::default());
    let n = 30;
    let mut expected: Vec<String> = (0..n).map(|i| format!("one-{i}")).collect();
    for (i, e) in expected.iter().enumerate() {
        doc(&format!("k{i}"), 1, e).put(&a).await.unwrap();
    }
    for db in [&b, &c, &b, &c] {
        check_keys(db, &expected, 0..n, "filling").await;
    }
    assert!(
        layer_stats(&c, "redis").hits >= n as u64,
        "C reads Redis only"
    );
    let spread = cluster.keys_per_node(&format!("{prefix}*"));
    assert!(
        spread.iter().filter(|&&k| k > 0).count() >= 2,
        "entries spread over the slots of several nodes: {spread:?}"
    );
    assert_eq!(
        layer_stats(&c, "redis").faults,
        0,
        "no CROSSSLOT or other error"
    );

    // Writes through A: C (no L1) fresh at once, B within the staleness bound.
    for (i, e) in expected.iter_mut().enumerate() {
        *e = format!("two-{i}");
        Doc::update(&a, Doc::key(format!("k{i}"), 1))
            .set(Doc::BODY, e.clone())
            .await
            .unwrap();
    }
    check_keys(&c, &expected, 0..n, "after writes, C").await;
    assert!(
        eventually(Duration::from_millis(250), || all_fresh(&b, &expected)).await,
        "B fresh within the bound"
    );

    // A node restarts (its slots' entries are lost): no request fails, nothing stale, and the
    // cache serves again afterwards.
    cluster.nodes[0].kill();
    for (i, e) in expected.iter_mut().enumerate() {
        *e = format!("three-{i}");
        Doc::update(&a, Doc::key(format!("k{i}"), 1))
            .set(Doc::BODY, e.clone())
            .await
            .unwrap();
    }
    for db in [&a, &b, &c] {
        check_keys(db, &expected, 0..n, "node down").await;
    }
    cluster.nodes[0].spawn();
    cluster.wait_until_ok();
    let hits = layer_stats(&c, "redis").hits;
    assert!(
        eventually(Duration::from_secs(20), || async {
            for db in [&a, &b, &c] {
                check_keys(db, &expected, 0..n, "node back").await;
            }
            layer_stats(&c, "redis").hits >= hits + n as u64
        })
        .await,
        "the cluster serves every slot again: {:?}",
        layer_stats(&c, "redis")
    );

    // clear() reaches every node.
    c.clear_cache().await;
    let entries: usize = cluster
        .keys_per_node(&format!("{prefix}{{*}}e:*"))
        .iter()
        .sum();
    let generations: usize = cluster
        .keys_per_node(&format!("{prefix}{{*}}g:*"))
        .iter()
        .sum();
    assert_eq!(entries, 0, "every node's entries are gone");
    assert!(generations > 0, "generations are kept");
}
