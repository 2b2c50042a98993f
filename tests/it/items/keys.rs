//! Item keys: values that held earlier encodings' separators, and numbers as one key by value.

use super::*;

/// Key values that held the separators of earlier key encodings: distinct items, never one.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "pairs")]
struct Pair {
    #[dynamite(partition_key)]
    pk: String,
    #[dynamite(sort_key)]
    sk: String,
    n: i64,
}

#[tokio::test]
async fn keys_holding_separators_never_collide() {
    let direct = support::setup::<Pair>().await;
    let db = Client::builder(direct.sdk().clone())
        .table_prefix(direct.table_prefix())
        .cache(dynamite::cache::MokaLayer::new(1 << 20))
        .build();
    let pairs = [
        // Collided in the batch key strings (NUL and `=` as separators).
        Pair {
            pk: "x\u{0}sk=Sy".into(),
            sk: "z".into(),
            n: 1,
        },
        Pair {
            pk: "x".into(),
            sk: "y\u{0}sk=Sz".into(),
            n: 2,
        },
        // Collided in the cache key texts (`\u{1f}` as separator).
        Pair {
            pk: "a\u{1f}Sb".into(),
            sk: "c".into(),
            n: 3,
        },
        Pair {
            pk: "a".into(),
            sk: "b\u{1f}Sc".into(),
            n: 4,
        },
    ];
    let out = Pair::batch_write(&db).put_all(&pairs).await.unwrap();
    assert_eq!((out.puts, out.superseded), (4, 0), "{out:?}");
    let keys = || pairs.iter().map(|p| Pair::key(p.pk.clone(), p.sk.clone()));
    let got = Pair::batch_get(&db, keys()).await.unwrap();
    assert_eq!(got.items, pairs.to_vec());
    assert!(got.missing.is_empty());
    // Through the cache, each key reads its own item (the second read of each is a hit).
    for _ in 0..2 {
        for p in &pairs {
            let read = Pair::get(&db, Pair::key(p.pk.clone(), p.sk.clone()))
                .await
                .unwrap();
            assert_eq!(read.as_ref(), Some(p));
        }
    }
    // One transaction may write both items of a formerly colliding pair.
    db.transact_write()
        .delete(Pair::key("x\u{0}sk=Sy", "z"))
        .delete(Pair::key("x", "y\u{0}sk=Sz"))
        .await
        .unwrap();
}

#[tokio::test]
async fn number_keys_are_one_key_by_value() {
    #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[dynamite(table = "counters")]
    struct Slot {
        #[dynamite(partition_key)]
        n: i64,
        label: String,
    }
    let db = support::setup::<Slot>().await;
    Slot {
        n: 1,
        label: "one".into(),
    }
    .put(&db)
    .await
    .unwrap();
    // "1.0" is the key 1 for DynamoDB: batch_get finds it (and reports it found, not missing).
    let key = Key::<Slot>::from_values(AttributeValue::N("1.0".into()), None);
    let got = Slot::batch_get(&db, [key, Slot::key(1)]).await.unwrap();
    assert_eq!(got.items.len(), 1, "{got:?}");
    assert!(got.missing.is_empty(), "{got:?}");
}
