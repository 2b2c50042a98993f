mod common;

use dynamite::cache::{LfuLayer, MokaLayer, Tiered};
use dynamite::{Client, Entity};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "cached")]
#[dynamite(cache(queries))]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    n: u32,
    body: String,
}

#[tokio::test]
async fn smoke_moka() {
    run(Tiered::new().layer(MokaLayer::new(1 << 20)), "moka").await;
}

#[tokio::test]
async fn smoke_lfu() {
    run(Tiered::new().layer(LfuLayer::new(1 << 20)), "lfu").await;
}

async fn run(cache: Tiered, layer: &str) {
    let base = common::client().await;
    let db = Client::builder(base.sdk().clone())
        .table_prefix(base.table_prefix())
        .cache(cache)
        .build();
    Doc::create_table(&db).await.unwrap();
    Doc {
        id: "a".into(),
        n: 1,
        body: "one".into(),
    }
    .put(&db)
    .await
    .unwrap();
    assert_eq!(
        Doc::get(&db, Doc::key("a", 1)).await.unwrap().unwrap().body,
        "one"
    );
    assert_eq!(
        Doc::get(&db, Doc::key("a", 1)).await.unwrap().unwrap().body,
        "one"
    );
    let s = db.cache_stats();
    println!("{s:?}");
    assert_eq!(s.layer(layer).unwrap().hits, 1);
    Doc::update(&db, Doc::key("a", 1))
        .set(Doc::BODY, "uno")
        .await
        .unwrap();
    assert_eq!(
        Doc::get(&db, Doc::key("a", 1)).await.unwrap().unwrap().body,
        "uno"
    );
    let q = || Doc::find(&db).filter(Doc::ID.eq("a"));
    assert_eq!(q().all().await.unwrap().len(), 1);
    assert_eq!(q().all().await.unwrap().len(), 1);
    Doc {
        id: "a".into(),
        n: 2,
        body: "two".into(),
    }
    .put(&db)
    .await
    .unwrap();
    assert_eq!(q().all().await.unwrap().len(), 2);
    let got = Doc::batch_get(&db, [Doc::key("a", 1), Doc::key("a", 2), Doc::key("a", 3)])
        .await
        .unwrap();
    assert_eq!(got.items.len(), 2);
    let got = Doc::batch_get(&db, [Doc::key("a", 1), Doc::key("a", 2), Doc::key("a", 3)])
        .await
        .unwrap();
    assert_eq!(got.stats.requests, 1, "only the missing key is read again");
    println!("{:?}", db.cache_stats());
}
