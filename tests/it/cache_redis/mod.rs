//! The Redis L2 (`RedisLayer`) against the local DynamoDB and a real Redis: two instances
//! sharing it (pub/sub invalidation of each other's L1, never a stale L2), read-after-write
//! under concurrency, corrupt and foreign entries, faults (Redis killed, restarted, paused,
//! slow) and stats. Needs `DYNAMITE_REDIS_URL` (set by `scripts/with-services --redis`); the
//! fault tests start their own `redis-server` on a free port. Every test uses its own key
//! prefix, so tests can share one Redis.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::cache::{
    clear_does_not_undo_invalidations, eventually, install, layer_contract, plain, requests,
    with_cache,
};
use dynamite::cache::{CacheConfig, LayerStats, MokaLayer, RedisLayer, Tiered};
use dynamite::{Client, Entity, Update};
use serde::{Deserialize, Serialize};

mod bookkeeping;
#[cfg(feature = "redis-cluster")]
mod cluster;
mod entries;
mod instances;
mod outages;

const MB: u64 = 1 << 20;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "docs")]
#[dynamite(cache(queries))]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    n: u32,
    body: String,
    #[serde(default)]
    v: u64,
}

fn doc(id: &str, n: u32, body: &str) -> Doc {
    Doc {
        id: id.into(),
        n,
        body: body.into(),
        v: 0,
    }
}

/// Another entity on another table, for a foreign entry.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "others")]
struct Other {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    n: u32,
    body: String,
}

fn redis_url() -> String {
    std::env::var("DYNAMITE_REDIS_URL").expect(
        "the Redis cache tests need DYNAMITE_REDIS_URL: run them through \
         `scripts/with-services --redis -- cargo test --all-features`",
    )
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A key prefix of this test alone.
fn unique_prefix() -> String {
    format!(
        "dynamite-test:{}:{}:{:08x}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

/// A layer with a generous timeout (the machine may be busy; these tests are not about faults).
async fn layer(url: &str, prefix: &str) -> RedisLayer {
    RedisLayer::builder(url)
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .retry_interval(Duration::from_millis(100))
        .connect()
        .await
        .expect("connect to Redis")
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("raw Redis connection")
}

async fn keys(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// Waits until `n` connections subscribe to the prefix's invalidation channel (the layers'
/// listeners subscribe in the background after `connect()` returns).
async fn wait_for_subscribers(url: &str, prefix: &str, n: i64) {
    let conn = raw(url).await;
    let channel = format!("{prefix}{{invalidate}}");
    let subscribed = eventually(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        let channel = channel.clone();
        async move {
            let (_, count): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query_async(&mut conn)
                .await
                .unwrap();
            count >= n
        }
    })
    .await;
    assert!(subscribed, "{n} listeners did not subscribe to {channel}");
}

/// Deletes a test's keys from the shared Redis when dropped (even after a panic).
struct Cleanup {
    url: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

fn cleanup(url: &str, prefix: &str) -> Cleanup {
    Cleanup {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
    }
}

fn layer_stats(db: &Client, name: &str) -> LayerStats {
    *db.cache_stats()
        .layer(name)
        .unwrap_or_else(|| panic!("no {name} layer"))
}

/// Two instances (A and B), each with its own L1 over one Redis (same prefix), and C reading
/// Redis only (B's view of L2 without B's L1).
struct Instances {
    cleanup: Cleanup,
    base: Client,
    url: String,
    prefix: String,
    a: Client,
    b: Client,
    c: Client,
}

async fn instances(config: CacheConfig) -> Instances {
    let url = redis_url();
    let prefix = unique_prefix();
    let base = plain().await;
    Doc::create_table(&base).await.unwrap();
    let stack = |l2: RedisLayer| Tiered::new().layer(MokaLayer::new(MB)).layer(l2);
    let a = with_cache(&base, stack(layer(&url, &prefix).await), config.clone());
    let b = with_cache(&base, stack(layer(&url, &prefix).await), config.clone());
    let c = with_cache(&base, layer(&url, &prefix).await, config);
    wait_for_subscribers(&url, &prefix, 3).await;
    Instances {
        cleanup: cleanup(&url, &prefix),
        base,
        url,
        prefix,
        a,
        b,
        c,
    }
}

async fn body(db: &Client, id: &str) -> Option<String> {
    Doc::get(db, Doc::key(id, 1)).await.unwrap().map(|d| d.body)
}

async fn query_bodies(db: &Client, id: &str) -> Vec<String> {
    Doc::find(db)
        .filter(Doc::ID.eq(id))
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.body)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Faults, on a redis-server of the test's own.

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` child process, killed (and its directory removed) when dropped, even when
/// the test panics.
struct OwnRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Extra `redis-server` arguments (cluster mode).
    extra: Vec<String>,
}

impl OwnRedis {
    fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// A Redis Cluster node (not yet part of a cluster): its `nodes.conf` lives in its own
    /// directory, so a restarted node rejoins with its slots.
    #[cfg(feature = "redis-cluster")]
    fn start_cluster_node() -> Self {
        Self::start_with(
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
            ]
            .map(String::from)
            .to_vec(),
        )
    }

    fn start_with(extra: Vec<String>) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "dynamite-redis-{}",
            unique_prefix().replace(':', "-")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = OwnRedis {
            port: free_port(),
            dir,
            child: None,
            extra,
        };
        redis.spawn();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "yes"])
            .args(&self.extra)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).unwrap();
        loop {
            if let Ok(mut conn) = client.get_connection() {
                if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no chance to save or say goodbye).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers, data is kept.
    fn pause(&self) {
        self.signal("-STOP");
    }

    fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal("-CONT");
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A layer with a short timeout and retry interval, on `url`.
async fn fragile_layer(url: &str, prefix: &str) -> RedisLayer {
    RedisLayer::builder(url)
        .prefix(prefix)
        .timeout(Duration::from_millis(50))
        .retry_interval(Duration::from_millis(100))
        .connect()
        .await
        .expect("connect")
}

/// Whether every key `k{i}` reads its expected body now.
async fn all_fresh(db: &Client, expected: &[String]) -> bool {
    let mut fresh = true;
    for (i, want) in expected.iter().enumerate() {
        fresh &= body(db, &format!("k{i}")).await.as_deref() == Some(want.as_str());
    }
    fresh
}

/// Keys `k{i}` for `i` in `range` read their expected body.
async fn check_keys(db: &Client, expected: &[String], range: std::ops::Range<usize>, what: &str) {
    for i in range {
        let got = body(db, &format!("k{i}")).await;
        assert_eq!(got.as_deref(), Some(expected[i].as_str()), "k{i} {what}");
    }
}

/// Every key reads its expected body with get and batch_get (a failed request or a stale value
/// fails the test).
async fn check_all(db: &Client, expected: &[String], what: &str) {
    check_keys(db, expected, 0..expected.len(), what).await;
    let got = Doc::batch_get(
        db,
        (0..expected.len()).map(|i| Doc::key(format!("k{i}"), 1)),
    )
    .await
    .unwrap();
    let bodies: Vec<String> = got.items.into_iter().map(|d| d.body).collect();
    assert_eq!(bodies, expected, "batch_get {what}");
}

/// After an outage: reads every key one at a time (each must be fresh) until the Redis layer
/// answers hits again; whether it did within `within`.
///
/// One read at a time: the first read that reaches Redis writes the pending invalidations
/// before its lookup. (Concurrent lookups, as in a batch_get, can overtake that replay: see
/// `lookups_racing_the_replay_of_pending_invalidations_never_serve_stale_data`.)
async fn recover(db: &Client, expected: &[String], within: Duration) -> bool {
    let hits = layer_stats(db, "redis").hits;
    eventually(within, || async {
        check_keys(db, expected, 0..expected.len(), "recovering").await;
        layer_stats(db, "redis").hits >= hits + expected.len() as u64
    })
    .await
}
