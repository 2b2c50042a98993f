//! dynamite's integration tests: one test binary, one module per topic, run against the local
//! server that `scripts/with-services` starts (DynamoDB Local or moto). `support/` holds the
//! shared set-up: clients and servers.
//!
//! Every test uses its own table prefix, so tests run in parallel and never share state.

mod support;

mod conformance;
mod cursor_prop;
mod derive_full_entity;
mod items;
mod readme;
mod roundtrip;
