//! The client's cache without Redis (a `MokaLayer`, or a `Tiered` stack of them) against the
//! local DynamoDB: what is served from the cache, what bypasses it, time to live, negative
//! entries, batch reads of misses only, read-after-write under concurrency, single flight, the
//! query cache, key separation and corrupt entries. DynamoDB requests are counted from the
//! `dynamite` spans (one per request), per test by table prefix.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::cache::{
    clear_does_not_undo_invalidations, install, layer_contract, plain, requests, with_cache,
    with_cache_and_keys, BatchKeys,
};
use dynamite::cache::{
    CacheConfig, CacheEntry, CacheKey, CacheLayer, FillToken, LayerStats, Lookup, MokaLayer, Tiered,
};
use dynamite::{Binary, Client, Entity, Update};
use serde::{Deserialize, Serialize};

mod consistency;
mod entries;
mod items;
mod queries;

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
