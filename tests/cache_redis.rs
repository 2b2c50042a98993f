//! The Redis L2 (`RedisLayer`) against the local DynamoDB and a real Redis: two instances
//! sharing it (pub/sub invalidation of each other's L1, never a stale L2), read-after-write
//! under concurrency, corrupt and foreign entries, faults (Redis killed, restarted, paused,
//! slow) and stats. Needs `DYNAMITE_REDIS_URL` (set by `scripts/with-services --redis`); the
//! fault tests start their own `redis-server` on a free port. Every test uses its own key
//! prefix, so tests can share one Redis.
#![cfg(feature = "redis")]

mod common;
#[path = "support/cache_support.rs"]
mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamite::cache::{CacheConfig, LayerStats, MokaLayer, RedisLayer, Tiered};
use dynamite::{Client, Entity, Update};
use serde::{Deserialize, Serialize};
use support::{
    clear_does_not_undo_invalidations, eventually, install, layer_contract, plain, requests,
    with_cache,
};

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
        r0.invalidations, 2,
        "the put invalidated the item and the table"
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
    let base_a = Client::builder(common::sdk(Some("us-east-1")).await)
        .table_prefix(plain().await.table_prefix())
        .build();
    let base_b = Client::builder(common::sdk(Some("eu-west-1")).await)
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
        2,
        "the item's scope and its table's, once each"
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
    // Every read is fresh from now on, whoever serves it.
    let deadline = Instant::now() + Duration::from_secs(3);
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
