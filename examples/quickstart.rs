//! Quickstart: define an entity with a GSI, create its table, put, get, update with a
//! condition, delete, and print what happened.
//!
//! Run against the local server: `scripts/with-services -- cargo run --example quickstart`.

use dynamite::{Client, Entity, Error};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "quickstart-users")]
#[dynamite(global_index(name = "StatusIndex", projection = include(name, email)))]
pub struct User {
    #[dynamite(partition_key)]
    pub id: String,
    #[dynamite(index_key(index = "StatusIndex", partition))]
    pub status: String,
    #[dynamite(index_key(index = "StatusIndex", sort))]
    pub created_at: i64,
    pub name: String,
    #[serde(rename = "mail")]
    pub email: String,
    pub logins: u64,
    #[dynamite(ttl)]
    pub expires_at: Option<i64>,
    #[dynamite(version)]
    pub version: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Client::from_env().await;
    let schema = User::schema();
    println!(
        "entity {} -> table {:?}, partition key {:?}, index {:?}",
        schema.entity,
        db.table_name(schema.table),
        schema.partition_key.name,
        schema.indexes.iter().map(|i| i.name).collect::<Vec<_>>()
    );

    User::ensure_table(&db).await?;
    println!("table is ACTIVE (TTL on `expires_at`)");

    let ada = User {
        id: "u1".into(),
        status: "active".into(),
        created_at: 1_700_000_000,
        name: "Ada".into(),
        email: "ada@example.com".into(),
        logins: 0,
        expires_at: None,
        version: 0,
    };
    ada.put(&db).await?;
    println!("put {} (version 0 -> stored as 1)", ada.id);

    match ada.put(&db).await {
        Err(Error::VersionConflict {
            expected, actual, ..
        }) => {
            println!("second put of the stale copy: version conflict (expected {expected:?}, stored {actual:?})")
        }
        other => println!("unexpected: {other:?}"),
    }

    let stored = User::get(&db, User::key("u1")).consistent().await?;
    println!("get -> {stored:?}");

    let updated = User::update(&db, User::key("u1"))
        .set(User::NAME, "Ada Lovelace")
        .add(User::LOGINS, 1)
        .condition(User::STATUS.eq("active"))
        .return_new()
        .await?;
    println!(
        "update (status = active) -> name {:?}, logins {}, version {}",
        updated.name, updated.logins, updated.version
    );

    match User::update(&db, User::key("u1"))
        .set(User::NAME, "nobody")
        .condition(User::STATUS.eq("banned"))
        .await
    {
        Err(e @ Error::ConditionFailed { .. }) => println!("update (status = banned) -> {e}"),
        other => println!("unexpected: {other:?}"),
    }

    let removed = User::delete(&db, User::key("u1")).return_old().await?;
    println!("delete -> removed {:?}", removed.map(|u| u.name));
    println!(
        "get after delete -> {:?}",
        User::get(&db, User::key("u1")).await?
    );

    User::delete_table(&db).await?;
    println!("table deleted");
    Ok(())
}
