//! The client's cache without Redis (a `MokaLayer`, or a `Tiered` stack of them) against the
//! local DynamoDB: what is served from the cache, what bypasses it, time to live, negative
//! entries, batch reads of misses only, read-after-write under concurrency, single flight, the
//! query cache, key separation and corrupt entries. DynamoDB requests are counted from the
//! `dynamite` spans (one per request), per test by table prefix.

mod common;
#[path = "support/cache_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dynamite::cache::{
    CacheConfig, CacheEntry, CacheKey, CacheLayer, FillToken, LayerStats, Lookup, MokaLayer, Tiered,
};
use dynamite::{Binary, Client, Entity, Update};
use serde::{Deserialize, Serialize};
use support::{
    clear_does_not_undo_invalidations, install, layer_contract, plain, requests, with_cache,
    with_cache_and_keys, BatchKeys,
};

const MB: u64 = 1 << 20;

/// No cache settings: items cached with the client's defaults, queries only with `.cached()`.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "docs")]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    n: u32,
    #[serde(default)]
    body: String,
    #[serde(default)]
    note: String,
}

fn doc(id: &str, n: u32, body: &str) -> Doc {
    Doc {
        id: id.into(),
        n,
        body: body.into(),
        note: format!("note of {id}/{n}"),
    }
}

/// Query results cached by default.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "qdocs")]
#[dynamite(cache(queries))]
struct QDoc {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    n: u32,
    #[serde(default)]
    body: String,
    #[serde(default)]
    note: String,
}

fn qdoc(id: &str, n: u32, body: &str) -> QDoc {
    QDoc {
        id: id.into(),
        n,
        body: body.into(),
        note: format!("note of {id}/{n}"),
    }
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "offs")]
#[dynamite(cache(off))]
struct Off {
    #[dynamite(partition_key)]
    id: String,
    body: String,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "negs")]
#[dynamite(cache(negative_ttl = "200ms"))]
struct Neg {
    #[dynamite(partition_key)]
    id: String,
    body: String,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "shorts")]
#[dynamite(cache(ttl = "200ms", negative_ttl = "200ms"))]
struct Short {
    #[dynamite(partition_key)]
    id: String,
    body: String,
}

/// Two entities on one table, reading the same items.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "shared")]
#[dynamite(cache(queries))]
struct Alpha {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    n: u32,
    label: String,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "shared")]
#[dynamite(cache(queries))]
struct Beta {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    n: u32,
    label: String,
    #[serde(default)]
    size: u32,
}

/// One counter, for the concurrency tests.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "counters")]
#[dynamite(cache(queries))]
struct Ctr {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    n: u32,
    v: u64,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "events")]
#[dynamite(cache(queries))]
struct Event {
    #[dynamite(partition_key)]
    stream: Binary,
    #[dynamite(sort_key)]
    seq: u64,
    payload: String,
}

fn stats(db: &Client, i: usize) -> LayerStats {
    db.cache_stats().layers[i].1
}

fn moka_config() -> CacheConfig {
    CacheConfig::default()
}

/// A base client (fresh table prefix, no cache) with `E`'s table.
async fn setup<E: Entity>() -> Client {
    install();
    let base = plain().await;
    E::create_table(&base).await.unwrap();
    base
}

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
    // The put dropped the item's scope and the table's query scope, in both layers.
    assert_eq!(stats(&db, 0).invalidations, 2);
    assert_eq!(stats(&db, 1).invalidations, 2);

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

#[tokio::test]
async fn query_results_are_cached_until_a_write_to_the_table() {
    install();
    let base = plain().await;
    QDoc::create_table(&base).await.unwrap();
    Doc::create_table(&base).await.unwrap();
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    let mut items: Vec<QDoc> = (1..=5).map(|n| qdoc("p", n, &format!("p{n}"))).collect();
    items.extend((1..=3).map(|n| qdoc("q", n, &format!("q{n}"))));
    base.batch_write().put_all(&items).await.unwrap();
    let queries = || requests(&db, "Query");
    let p = || QDoc::find(&db).filter(QDoc::ID.eq("p"));
    let bodies = |v: &[QDoc]| v.iter().map(|d| d.body.clone()).collect::<Vec<_>>();

    // The second identical query is served without a request.
    let q0 = queries();
    let first = p().all().await.unwrap();
    assert_eq!(bodies(&first), ["p1", "p2", "p3", "p4", "p5"]);
    assert_eq!(p().all().await.unwrap(), first);
    assert_eq!(queries() - q0, 1);

    // Variants never share an entry: each returns its own result, cached on its own.
    let page1 = p().limit(2).page(None).await.unwrap();
    let page2 = p().limit(2).page(page1.next.clone()).await.unwrap();
    let variants: Vec<(&str, Vec<String>)> = vec![
        ("limit 2", bodies(&p().limit(2).all().await.unwrap())),
        ("limit 3", bodies(&p().limit(3).all().await.unwrap())),
        (
            "first",
            bodies(&p().first().await.unwrap().into_iter().collect::<Vec<_>>()),
        ),
        ("page 1", bodies(&page1.items)),
        ("page 2", bodies(&page2.items)),
        ("descending", bodies(&p().descending().all().await.unwrap())),
        (
            "n >= 4",
            bodies(&p().filter(QDoc::N.ge(4)).all().await.unwrap()),
        ),
        (
            "body filter",
            bodies(&p().filter(QDoc::BODY.eq("p2")).all().await.unwrap()),
        ),
        (
            "other partition",
            bodies(
                &QDoc::find(&db)
                    .filter(QDoc::ID.eq("q"))
                    .all()
                    .await
                    .unwrap(),
            ),
        ),
    ];
    let expected: Vec<Vec<&str>> = vec![
        vec!["p1", "p2"],
        vec!["p1", "p2", "p3"],
        vec!["p1"],
        vec!["p1", "p2"],
        vec!["p3", "p4"],
        vec!["p5", "p4", "p3", "p2", "p1"],
        vec!["p4", "p5"],
        vec!["p2"],
        vec!["q1", "q2", "q3"],
    ];
    for ((name, got), want) in variants.iter().zip(&expected) {
        assert_eq!(got, want, "{name}");
    }
    let projected = p().select([QDoc::BODY]).all().await.unwrap();
    assert!(projected.iter().all(|d| d.note.is_empty()), "{projected:?}");
    assert_eq!(bodies(&projected), bodies(&first));
    let projected_note = p().select([QDoc::NOTE]).all().await.unwrap();
    assert!(projected_note
        .iter()
        .all(|d| d.body.is_empty() && !d.note.is_empty()));
    let q1 = queries();
    // Every variant again: all from the cache, same answers.
    let again = p().limit(2).page(None).await.unwrap();
    assert_eq!(again.items, page1.items);
    let again2 = p().limit(2).page(again.next.clone()).await.unwrap();
    assert_eq!(again2.items, page2.items);
    assert_eq!(bodies(&p().limit(2).all().await.unwrap()), expected[0]);
    assert_eq!(bodies(&p().limit(3).all().await.unwrap()), expected[1]);
    assert_eq!(bodies(&p().descending().all().await.unwrap()), expected[5]);
    assert_eq!(p().select([QDoc::BODY]).all().await.unwrap(), projected);
    assert_eq!(
        p().select([QDoc::NOTE]).all().await.unwrap(),
        projected_note
    );
    assert_eq!(queries(), q1, "all served from the query cache");

    // .no_cache() and consistent reads go to DynamoDB every time.
    assert_eq!(p().no_cache().all().await.unwrap(), first);
    assert_eq!(p().no_cache().all().await.unwrap(), first);
    assert_eq!(p().consistent().all().await.unwrap(), first);
    assert_eq!(queries() - q1, 3);

    // A write to any item of the table drops every query result of the table.
    qdoc("q", 9, "q9").put(&db).await.unwrap();
    let q2 = queries();
    assert_eq!(p().all().await.unwrap(), first);
    assert_eq!(queries() - q2, 1, "re-read after the write");
    assert_eq!(p().all().await.unwrap(), first);
    assert_eq!(queries() - q2, 1);
    let q = QDoc::find(&db)
        .filter(QDoc::ID.eq("q"))
        .all()
        .await
        .unwrap();
    assert_eq!(bodies(&q), ["q1", "q2", "q3", "q9"]);
    // And a write to a listed item shows in the next query.
    QDoc::update(&db, QDoc::key("p", 3))
        .set(QDoc::BODY, "p3'")
        .await
        .unwrap();
    assert_eq!(bodies(&p().all().await.unwrap())[2], "p3'");
    assert_eq!(bodies(&page2_of(&db).await)[0], "p3'");

    // Without the entity's opt-in: only with .cached().
    base.batch_write()
        .put(&doc("d", 1, "one"))
        .put(&doc("d", 2, "two"))
        .await
        .unwrap();
    let d = || Doc::find(&db).filter(Doc::ID.eq("d"));
    let q3 = queries();
    assert_eq!(d().all().await.unwrap().len(), 2);
    assert_eq!(d().all().await.unwrap().len(), 2);
    assert_eq!(queries() - q3, 2, "not cached by default");
    assert_eq!(d().cached().all().await.unwrap().len(), 2);
    assert_eq!(d().cached().all().await.unwrap().len(), 2);
    assert_eq!(queries() - q3, 3, "cached with .cached()");
    doc("d", 3, "three").put(&db).await.unwrap();
    assert_eq!(d().cached().all().await.unwrap().len(), 3);
}

async fn page2_of(db: &Client) -> Vec<QDoc> {
    let p = || QDoc::find(db).filter(QDoc::ID.eq("p")).limit(2);
    let first = p().page(None).await.unwrap();
    p().page(first.next).await.unwrap().items
}

#[tokio::test]
async fn binary_key_queries_do_not_share_cache_entries() {
    let base = setup::<Event>().await;
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    for (stream, payload) in [(vec![1u8, 2], "one-two"), (vec![3u8, 4], "three-four")] {
        Event {
            stream: Binary(stream),
            seq: 1,
            payload: payload.into(),
        }
        .put(&db)
        .await
        .unwrap();
    }
    let read = |s: Vec<u8>| Event::find(&db).filter(Event::STREAM.eq(Binary(s))).all();
    let a = read(vec![1, 2]).await.unwrap();
    assert_eq!(a[0].payload, "one-two");
    let direct = Event::find(&db)
        .filter(Event::STREAM.eq(Binary(vec![3, 4])))
        .no_cache()
        .all()
        .await
        .unwrap();
    assert_eq!(direct[0].payload, "three-four");
    let b = read(vec![3, 4]).await.unwrap();
    assert_eq!(
        b, direct,
        "the query for stream [3, 4] got another query's cached result"
    );
}

#[tokio::test]
async fn keys_of_tables_entities_and_projections_never_collide() {
    install();
    // Two tables (two prefixes) with the same item key, over one shared cache.
    let shared = Tiered::new().layer(MokaLayer::new(MB));
    let base1 = plain().await;
    let base2 = plain().await;
    Doc::create_table(&base1).await.unwrap();
    Doc::create_table(&base2).await.unwrap();
    let db1 = with_cache(&base1, shared.clone(), moka_config());
    let db2 = with_cache(&base2, shared.clone(), moka_config());
    doc("k", 1, "table one").put(&db1).await.unwrap();
    doc("k", 1, "table two").put(&db2).await.unwrap();
    for _ in 0..2 {
        for (db, want) in [(&db1, "table one"), (&db2, "table two")] {
            let got = Doc::get(db, Doc::key("k", 1)).await.unwrap().unwrap();
            assert_eq!(got.body, want);
            let found = Doc::find(db)
                .filter(Doc::ID.eq("k"))
                .cached()
                .all()
                .await
                .unwrap();
            assert_eq!(found[0].body, want);
        }
    }
    assert_eq!(requests(&db1, "GetItem"), 1);
    assert_eq!(requests(&db2, "GetItem"), 1);
    assert_eq!(requests(&db1, "Query"), 1);
    assert_eq!(requests(&db2, "Query"), 1);
    // A write to one table leaves the other's entries alone.
    doc("k", 1, "table one'").put(&db1).await.unwrap();
    assert_eq!(
        Doc::get(&db2, Doc::key("k", 1))
            .await
            .unwrap()
            .unwrap()
            .body,
        "table two"
    );
    assert_eq!(requests(&db2, "GetItem"), 1);
    assert_eq!(
        Doc::get(&db1, Doc::key("k", 1))
            .await
            .unwrap()
            .unwrap()
            .body,
        "table one'"
    );

    // Two entities reading the same items of one table.
    let base = plain().await;
    Alpha::create_table(&base).await.unwrap();
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    let beta = Beta {
        id: "x".into(),
        n: 1,
        label: "b".into(),
        size: 7,
    };
    beta.put(&db).await.unwrap();
    let alpha = Alpha {
        id: "x".into(),
        n: 1,
        label: "b".into(),
    };
    for _ in 0..2 {
        assert_eq!(
            Alpha::get(&db, Alpha::key("x", 1)).await.unwrap(),
            Some(alpha.clone())
        );
        assert_eq!(
            Beta::get(&db, Beta::key("x", 1)).await.unwrap(),
            Some(beta.clone())
        );
        let a = Alpha::find(&db)
            .filter(Alpha::ID.eq("x"))
            .all()
            .await
            .unwrap();
        assert_eq!(a, vec![alpha.clone()]);
        let b = Beta::find(&db)
            .filter(Beta::ID.eq("x"))
            .all()
            .await
            .unwrap();
        assert_eq!(b, vec![beta.clone()]);
    }
    assert_eq!(requests(&db, "GetItem"), 2);
    assert_eq!(requests(&db, "Query"), 2);
    // A write through one entity drops the other's entries of the same item.
    Alpha::update(&db, Alpha::key("x", 1))
        .set(Alpha::LABEL, "a2")
        .await
        .unwrap();
    assert_eq!(
        Beta::get(&db, Beta::key("x", 1))
            .await
            .unwrap()
            .unwrap()
            .label,
        "a2"
    );
    let b = Beta::find(&db)
        .filter(Beta::ID.eq("x"))
        .all()
        .await
        .unwrap();
    assert_eq!(b[0].label, "a2");
    assert_eq!(b[0].size, 7);

    // Projections of one item.
    let a = doc("p", 1, "body");
    a.put(&db1).await.unwrap();
    let g = requests(&db1, "GetItem");
    for _ in 0..2 {
        let full = Doc::get(&db1, Doc::key("p", 1)).await.unwrap().unwrap();
        assert_eq!(full, a);
        let body = Doc::get(&db1, Doc::key("p", 1))
            .select([Doc::ID, Doc::BODY])
            .select_attr(Doc::N)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((body.body.as_str(), body.note.as_str()), ("body", ""));
        let note = Doc::get(&db1, Doc::key("p", 1))
            .select([Doc::ID, Doc::NOTE])
            .select_attr(Doc::N)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (note.body.as_str(), note.note.as_str()),
            ("", a.note.as_str())
        );
    }
    assert_eq!(
        requests(&db1, "GetItem") - g,
        3,
        "each projection cached on its own"
    );
    Doc::update(&db1, Doc::key("p", 1))
        .set(Doc::NOTE, "new note")
        .await
        .unwrap();
    let note = Doc::get(&db1, Doc::key("p", 1))
        .select([Doc::ID, Doc::NOTE])
        .select_attr(Doc::N)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        note.note, "new note",
        "every projection of the item was dropped"
    );
    let full = Doc::get(&db1, Doc::key("p", 1)).await.unwrap().unwrap();
    assert_eq!(full.note, "new note");
}

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
