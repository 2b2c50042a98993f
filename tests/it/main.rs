//! dynamite's integration tests: one test binary, one module per topic, run against the local
//! server that `scripts/with-services` starts (DynamoDB Local or moto). `support/` holds the
//! shared set-up: clients and servers, the tracing capture, entities of several topics.
//! Modules that need the `testing` feature are compiled with it only; the suite runs with
//! `--all-features` (`scripts/test`).
//!
//! Every test uses its own table prefix, so tests run in parallel and never share state.

mod support;

mod conformance;
mod cursor_prop;
mod derive_full_entity;
#[cfg(feature = "testing")]
mod fault_proxy;
#[cfg(feature = "testing")]
mod faults;
mod items;
mod paused;
mod query;
mod readme;
mod roundtrip;
#[cfg(feature = "testing")]
mod testing_kit;
mod tracing;
#[cfg(feature = "testing")]
mod write_safety;
