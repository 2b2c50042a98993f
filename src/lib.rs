//! # dynamite
//!
//! A typed, ORM-style library for Amazon DynamoDB over `aws-sdk-dynamodb`.
//!
//! Structs get `#[derive(Entity)]`, which records the table's shape (table name, partition and
//! sort key, global and local secondary indexes with their projections, TTL and version
//! attributes) as static metadata, and generates item conversion, a typed key constructor and
//! typed attribute and index handles. The [`Client`] runs typed item operations on them.
//!
//! ```no_run
//! use dynamite::{Client, Entity};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[dynamite(table = "users")]
//! #[dynamite(global_index(name = "StatusIndex", projection = include(name)))]
//! pub struct User {
//!     #[dynamite(partition_key)]
//!     pub id: String,
//!     #[dynamite(index_key(index = "StatusIndex", partition))]
//!     pub status: String,
//!     #[dynamite(index_key(index = "StatusIndex", sort))]
//!     pub created_at: i64,
//!     #[serde(rename = "display_name")]
//!     pub name: String,
//!     pub logins: u64,
//!     #[dynamite(ttl)]
//!     pub expires_at: Option<i64>,
//!     #[dynamite(version)]
//!     pub version: u64,
//! }
//!
//! # async fn demo() -> dynamite::Result<()> {
//! let db = Client::from_env().await;
//! User::ensure_table(&db).await?;
//!
//! let ada = User { id: "u1".into(), status: "active".into(), created_at: 1, name: "Ada".into(),
//!                  logins: 0, expires_at: None, version: 0 };
//! ada.put(&db).await?;                                   // version 0 -> stored as 1
//!
//! let user = User::get(&db, User::key("u1")).consistent().await?;
//! User::update(&db, User::key("u1"))
//!     .set(User::NAME, "Ada Lovelace")
//!     .add(User::LOGINS, 1)
//!     .condition(User::STATUS.eq("active"))
//!     .await?;
//! User::delete(&db, User::key("u1")).await?;
//! # Ok(()) }
//! ```
//!
//! ## Attributes
//!
//! On the struct: `table = "..."` (required), `global_index(name = "...", projection = ...)`
//! (alias `index`) and `local_index(name = "...", projection = ...)`, where the projection is
//! `all` (default), `keys_only` or `include(field, ...)`.
//!
//! On fields: `partition_key`, `sort_key`, `index_key(index = "...", partition | sort)` (a field
//! may key several indexes), `ttl`, `version`, `created_at` and `updated_at` (epoch
//! milliseconds stamped by writes; see [`TimestampAttribute`]).
//!
//! Attribute names are what serde writes: `#[serde(rename)]`, `rename_all`, `alias`, `default`,
//! `skip` and `skip_serializing_if` are honoured; serde attributes that would change the item's
//! shape in ways the derive cannot follow (`flatten`, `with`, `tag`, ...) are compile errors.
//!
//! ## Item conversion
//!
//! See [`value`]: fields of common types are converted directly (no intermediate form), any
//! other serde type through `serde_dynamo`. `None` and empty sets are not written; sets are
//! DynamoDB sets.
//!
//! `#[derive(Value)]` makes a type of one's own a value like those: a unit-only enum is stored
//! as a string, each variant under serde's name for it (`#[serde(rename_all)]` and
//! `#[serde(rename)]` are honoured, so it agrees with serde); a newtype is stored as its inner
//! value. Such types can then be keys and index keys (enums, and newtypes of strings, integers
//! or [`Binary`]), filter values and update values (newtypes of numbers can be added to).
//!
//! ```
//! use dynamite::Value;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Value, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
//! #[serde(rename_all = "snake_case")]
//! enum Status { Active, OutOfStock }
//!
//! #[derive(Value, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! struct Sku(String);
//!
//! assert_eq!(Status::OutOfStock.as_stored_str(), "out_of_stock");
//! ```
//!
//! ## Beyond single items
//!
//! - Queries: [`Entity::find`] plans onto GetItem / Query / the covering index and never scans by
//!   accident ([`plan`], [`ops::Find`], [`Cursor`], [`Page`]); a list of partition keys
//!   (`is_in`) runs as parallel Queries merged into one result with one cursor;
//!   [`Entity::scan`] asks for a scan.
//! - Batches and transactions: [`Entity::batch_get`], [`Entity::batch_write`],
//!   [`Client::batch_get`], [`Client::transact_write`], [`Client::transact_get`].
//! - Retries and write safety: [`RetryPolicy`], [`RetryBudget`] and [`retry`] (what is retried,
//!   how it layers with the SDK's own retries). A write whose answer is lost is never applied
//!   twice: it is retried only when that is safe, resolved by reading back where it can be, and
//!   otherwise reported as [`Error::OutcomeUnknown`]; idempotent mode
//!   ([`ClientBuilder::idempotent_writes`]) makes every single-item write safe to retry.
//! - Caching: [`cache`] (`MokaLayer`, `LfuLayer`, `RedisLayer` with the `redis` feature,
//!   `Tiered`), set with [`ClientBuilder::cache`].
//! - Timeouts and the connection pool: [`HttpSettings`], set with [`ClientBuilder::http`].
//! - Request coalescing: concurrent gets of one table share BatchGetItem requests, with no
//!   added delay ([`ClientBuilder::coalesce_gets`]; off by default, since it needs the
//!   `dynamodb:BatchGetItem` permission).
//!
//! ## Features
//!
//! - `redis`: the Redis L2 cache layer (`cache::RedisLayer`). Off by default.
//! - `metrics`: metrics of every request through the `metrics` facade ([`metrics`] lists
//!   them). Off by default.
//! - `streams`: DynamoDB Streams ([`streams`]: typed change records, a resumable consumer,
//!   Lambda events, and a cache invalidator fed by the stream, so writes from any writer stop
//!   being served from cache). Off by default.
//! - `testing`: a kit for your own tests (`dynamite::testing`: a local DynamoDB server, per-test
//!   tables, a fault-injection proxy). Off by default; meant for `[dev-dependencies]`.
//!
//! ## Layout
//!
//! [`Client`] holds the SDK client and settings; builders in [`ops`] and [`table`] describe a
//! request and do no I/O until awaited; single-item writes are compiled in one place (validation,
//! version stamping, rendering) and every request goes through one internal pipeline (tracing
//! span per operation with table, entity, operation and consumed capacity; the attempts loop;
//! typed error mapping; cache invalidation after writes). The pipeline also records every
//! request in the client's [`Stats`] ([`Client::stats`]) and, with the feature, in
//! [`metrics`]; finds the keys did not serve feed the index advisor ([`Client::index_advice`]).
//!
//! Generic code stays at the two ends: a typed builder turns its input into an untyped request
//! (items, keys, the table's [`TableSchema`]) and decodes what comes back; everything between
//! (the cache, the pipeline, paging, streams, lost answers) is compiled once, not once per
//! entity, so a service with many entities builds about as fast as the same service on the raw
//! SDK.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]
#![warn(missing_docs)]

mod advice;
mod attr;
mod batch;
pub mod cache;
mod client;
mod entity;
mod error;
pub mod expr;
pub mod http;
mod key;
pub mod metrics;
mod operation;
pub mod ops;
mod query;
mod replay;
pub use query::plan;
pub mod page;
mod pipeline;
pub mod retry;
mod sdk;
mod stats;
#[cfg(feature = "streams")]
pub mod streams;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
pub mod value;
mod write;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use advice::IndexAdvice;
pub use attr::{Attr, IndexHandle, Path, PathSegment, Value};
pub use client::{CacheStats, Client, ClientBuilder};
pub use dynamite_derive::{Entity, Value};
pub use entity::{
    CacheSettings, Entity, IndexKind, IndexSchema, Key, KeySchema, Projection, StreamView,
    TableSchema,
};
pub use error::{BoxError, Cause, Error, ErrorKind, Result};
pub use expr::{AttributeType, Condition, Update};
pub use http::HttpSettings;
pub use operation::Operation;
pub use page::{Cursor, Page};
pub use query::plan::Plan;
pub use retry::{RetryBudget, RetryPolicy};
pub use stats::{LatencySummary, OperationStats, Stats};
pub use table::BillingMode;
pub use value::{
    Binary, FromAttributeValue, IndexKeyAttribute, KeyAttribute, ScalarType, TimestampAttribute,
    ToAttributeValue, TtlAttribute, VersionAttribute,
};

/// A DynamoDB item: attribute names to values.
pub type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// Re-exported so generated code and users name the same SDK types.
pub use aws_sdk_dynamodb;
