//! dynamite's integration tests: one test binary, one module per topic, run against the local
//! server that `scripts/with-services` starts (DynamoDB Local or moto) and, for `cache_redis`,
//! a real Redis. `support/` holds the shared set-up: clients and servers, cache helpers, the
//! tracing capture, and entities used by several topics.
//!
//! Every test uses its own table prefix (and Redis key prefix), so tests run in parallel and
//! never share state. Modules that need a feature are compiled with it only; the suite runs with
//! `--all-features` (`scripts/test`).
//!
//! Separate binaries: `testing_selftest` (starts its own servers, runs once), see README.

mod support;

mod advice;
mod batch;
mod cache;
#[cfg(feature = "redis")]
mod cache_redis;
#[cfg(feature = "testing")]
mod coalesce;
mod conformance;
mod cursor_prop;
mod derive_full_entity;
#[cfg(feature = "testing")]
mod fault_proxy;
#[cfg(feature = "testing")]
mod faults;
#[cfg(feature = "testing")]
mod http;
mod items;
#[cfg(all(feature = "metrics", feature = "testing"))]
mod metrics;
mod paused;
mod query;
mod readme;
mod roundtrip;
mod stats;
#[cfg(all(feature = "streams", feature = "testing"))]
mod streams;
#[cfg(feature = "testing")]
mod testing_kit;
mod tracing;
mod transact;
#[cfg(feature = "testing")]
mod write_safety;
