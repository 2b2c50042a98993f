//! `#[dynamite(created_at)]` and `#[dynamite(updated_at)]`: stamped in epoch milliseconds by
//! puts, updates, upserts, batch writes and transactions; a creation time the entity holds is
//! kept.

use dynamite::Entity;
use serde::{Deserialize, Serialize};

use crate::support;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "stamped_notes")]
struct Note {
    #[dynamite(partition_key)]
    id: String,
    text: String,
    #[dynamite(created_at)]
    created_at: u64,
    #[dynamite(updated_at)]
    updated_at: Option<i64>,
}

fn now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_millis() as u64
}

async fn read(db: &dynamite::Client, id: &str) -> Note {
    Note::get(db, Note::key(id))
        .consistent()
        .await
        .unwrap()
        .unwrap()
}

fn note(id: &str) -> Note {
    Note {
        id: id.into(),
        text: "hello".into(),
        created_at: 0,
        updated_at: None,
    }
}

#[tokio::test]
async fn writes_stamp_creation_and_update_times() {
    let db = support::setup::<Note>().await;
    let before = now_ms();
    note("a").put(&db).await.unwrap();
    let a = read(&db, "a").await;
    let after = now_ms();
    assert!((before..=after).contains(&a.created_at), "{a:?}");
    assert_eq!(a.updated_at, Some(a.created_at as i64));

    // Written back, the entity keeps its creation time; the update time moves.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    a.clone().put(&db).await.unwrap();
    let again = read(&db, "a").await;
    assert_eq!(again.created_at, a.created_at);
    assert!(again.updated_at > a.updated_at, "{again:?}");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    Note::update(&db, Note::key("a"))
        .set(Note::TEXT, "edited")
        .await
        .unwrap();
    let edited = read(&db, "a").await;
    assert_eq!(edited.created_at, a.created_at);
    assert!(edited.updated_at > again.updated_at, "{edited:?}");

    // An upsert that creates the item stamps its creation too.
    Note::upsert(&db, Note::key("b"))
        .set(Note::TEXT, "new")
        .await
        .unwrap();
    let b = read(&db, "b").await;
    assert!(
        b.created_at >= before && b.updated_at == Some(b.created_at as i64),
        "{b:?}"
    );

    // Batches and transactions stamp their puts.
    db.batch_write().put(&note("c")).await.unwrap();
    db.transact_write().put(&note("d")).await.unwrap();
    for id in ["c", "d"] {
        let n = read(&db, id).await;
        assert!(n.created_at >= before, "{n:?}");
        assert_eq!(n.updated_at, Some(n.created_at as i64));
    }
}
