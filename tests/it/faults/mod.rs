//! Fault injection: dynamite's retry layer against the local server, seen through the
//! fault-injection proxy `dynamite::testing::FaultProxy`.
//!
//! Every test builds a dynamite client whose endpoint is a fresh proxy in front of the local
//! server, scripts faults into the proxy, and checks
//! - how many requests reached the proxy (`FaultProxy::count`, `FaultProxy::requests`),
//! - the delays the retry layer *chose*, read from its `dynamite::retry` tracing events (never
//!   wall-clock durations, except as lower bounds),
//! - the `retries` the `dynamite` span recorded,
//! - and, for batches, what the server really holds, read straight from it (not through the
//!   proxy).
//!
//! Tables are created through a second client that talks to the server directly, with the same
//! table prefix, so the proxy's log only holds the requests under test. The SDK configuration
//! under the proxied client always has the SDK's standard retries switched on: a test that saw
//! `3 ×` the expected requests would mean `ClientBuilder::build` stopped disabling them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use dynamite::ops::{WriteKind, WriteOp};
use dynamite::testing::{Fault, FaultProxy, Match, Seen};
use dynamite::{
    Client, ClientBuilder, Entity, Error, ErrorKind, Item, Key, Operation, RetryBudget,
    RetryPolicy, Update,
};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::support;
use crate::support::fixtures::Thing;
use crate::support::trace::{Capture, Mark, RetryEvent};

mod batch;
mod delays;
mod limits;
mod single;
mod transact;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "rows")]
struct Row {
    #[dynamite(partition_key)]
    grp: String,
    #[dynamite(sort_key)]
    seq: u32,
    body: String,
}

const BATCH_GET: &str = "BatchGetItem";
const BATCH_WRITE: &str = "BatchWriteItem";
const FOREVER: usize = usize::MAX;

// ---------------------------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------------------------

/// The SDK's standard retry mode (3 attempts) with a tiny back-off, so that if the SDK's loop
/// ever ran it would show in the request counts without slowing the tests down.
fn sdk_standard_retries() -> RetryConfig {
    RetryConfig::standard()
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

/// An SDK client whose endpoint is `endpoint`, with the SDK's retry configuration `retry`.
async fn sdk_via(endpoint: &str, retry: RetryConfig) -> aws_sdk_dynamodb::Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    let config = aws_sdk_dynamodb::config::Builder::from(&shared)
        .retry_config(retry)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A fast policy: `max_attempts` attempts, 2 ms base delay, 20 ms cap, no budget.
fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::standard()
        .max_attempts(max_attempts)
        .base_delay(Duration::from_millis(2))
        .max_delay(Duration::from_millis(20))
        .no_budget()
}

/// The ceiling of retry `retry`'s delay, computed here rather than asked of the library:
/// `min(max_delay, base_delay * 2^(retry-1))`.
fn ceiling(policy: &RetryPolicy, retry: u32) -> Duration {
    assert!(retry >= 1, "retries are numbered from 1");
    let doubled = policy
        .get_base_delay()
        .saturating_mul(1u32 << (retry - 1).min(31));
    doubled.min(policy.get_max_delay())
}

/// A proxy, a dynamite client through it, a dynamite client straight to the server with the
/// same table prefix, and a capturing subscriber installed for this thread.
struct Fx {
    proxy: FaultProxy,
    db: Client,
    direct: Client,
    capture: Capture,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Fx {
    /// A client with `policy` and no client-wide retry budget: these tests count the retries
    /// of the policy (the budget has tests of its own).
    async fn start(policy: RetryPolicy) -> Fx {
        Fx::start_with(sdk_standard_retries(), |b| {
            b.retry_policy(policy)
                .retry_budget(RetryBudget::unlimited())
        })
        .await
    }

    async fn start_with(
        sdk_retry: RetryConfig,
        configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    ) -> Fx {
        let capture = Capture::default();
        let guard = capture.install();
        let direct = support::client().await;
        let proxy = FaultProxy::start(&support::endpoint()).await;
        let db = Fx::client_via(&proxy, &direct, sdk_retry, configure).await;
        Fx {
            proxy,
            db,
            direct,
            capture,
            _guard: guard,
        }
    }

    /// Another dynamite client through the same proxy, with the same table prefix.
    async fn another_client(
        &self,
        sdk_retry: RetryConfig,
        configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    ) -> Client {
        Fx::client_via(&self.proxy, &self.direct, sdk_retry, configure).await
    }

    async fn client_via(
        proxy: &FaultProxy,
        direct: &Client,
        sdk_retry: RetryConfig,
        configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    ) -> Client {
        let sdk = sdk_via(&proxy.endpoint(), sdk_retry).await;
        configure(Client::builder(sdk).table_prefix(direct.table_prefix())).build()
    }

    /// Forgets the proxy's rules and log and the captured events.
    fn reset(&self) {
        self.proxy.clear();
        self.capture.clear();
    }

    /// Asserts the retries of the one call of `operation` since the last reset: one event per
    /// retry, numbered 1, 2, ..., with these reasons, each delay within its ceiling, all inside
    /// that call's `dynamite` span, which recorded the number of retries.
    fn assert_retried(&self, policy: &RetryPolicy, operation: &str, reasons: &[&str]) {
        let spans = self.capture.spans_of(operation);
        assert_eq!(spans.len(), 1, "one {operation} call: {spans:?}");
        let (span, fields) = &spans[0];
        let events = self.capture.events_of(operation);
        assert_eq!(events.len(), reasons.len(), "{operation}: {events:?}");
        for (i, (event, reason)) in events.iter().zip(reasons).enumerate() {
            let n = i as u32 + 1;
            assert_eq!(event.retry, n, "{event:?}");
            assert_eq!(event.reason, *reason, "{event:?}");
            assert!(
                event.delay <= ceiling(policy, n),
                "retry {n} waited {:?}, over its ceiling {:?}",
                event.delay,
                ceiling(policy, n)
            );
            assert_eq!(event.span, Some(*span), "the wait runs in the call's span");
        }
        if reasons.is_empty() {
            assert_eq!(fields.get("retries"), None, "{fields:?}");
        } else {
            assert_eq!(
                fields.get("retries").map(String::as_str),
                Some(reasons.len().to_string().as_str()),
                "{fields:?}"
            );
        }
    }
}

async fn create<E: Entity>(fx: &Fx) {
    E::create_table(&fx.direct).await.unwrap();
}

fn id(i: usize) -> String {
    format!("k{i:03}")
}

fn thing(i: usize) -> Thing {
    Thing {
        id: id(i),
        n: i as i64,
    }
}

fn key(i: usize) -> Key<Thing> {
    Thing::key(id(i))
}

fn row(seq: u32) -> Row {
    Row {
        grp: "g".into(),
        seq,
        body: format!("row {seq}"),
    }
}

/// Every `Thing` in the server, read directly: id -> n.
async fn stored(fx: &Fx) -> BTreeMap<String, i64> {
    Thing::scan(&fx.direct)
        .consistent()
        .unbounded()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.n))
        .collect()
}

/// The `Error::Sdk` parts: (operation, code).
fn sdk_error(err: &Error) -> (&'static str, Option<&str>) {
    match err {
        Error::Sdk {
            operation, code, ..
        } => (operation.name(), code.as_deref()),
        other => panic!("expected Error::Sdk, got {other:?}"),
    }
}

/// The key of a write request or key object of a batch request body: `id`, or `grp/seq`.
fn json_key(value: &Value) -> String {
    let key = if let Some(put) = value.get("PutRequest") {
        &put["Item"]
    } else if let Some(delete) = value.get("DeleteRequest") {
        &delete["Key"]
    } else {
        value
    };
    ["id", "grp", "seq"]
        .iter()
        .filter_map(|name| key.get(*name))
        .map(|attr| {
            attr.get("S")
                .or_else(|| attr.get("N"))
                .and_then(Value::as_str)
                .expect("a string or number key")
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The keys / write requests of each table of a batch request body, in order.
fn batch_entries(operation: &str, body: &Value) -> Vec<Vec<Value>> {
    let Some(tables) = body.get("RequestItems").and_then(Value::as_object) else {
        return Vec::new();
    };
    tables
        .values()
        .map(|entry| {
            let list = if operation == BATCH_WRITE {
                entry.as_array()
            } else {
                entry.get("Keys").and_then(Value::as_array)
            };
            list.cloned().unwrap_or_default()
        })
        .collect()
}

/// The keys the proxy passed on to the server in `operation` requests, one entry per key per
/// request: all of them for an untouched (or delayed) request, the first half (rounded up) of
/// each table's for `UnprocessedHalf`, none for the other faults.
fn forwarded(seen: &[Seen], operation: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for request in seen.iter().filter(|s| s.operation == operation) {
        for list in batch_entries(operation, &request.body) {
            let passed = match request.fault.as_deref() {
                None | Some("Delay") => list.len(),
                Some("UnprocessedHalf") => list.len().div_ceil(2),
                Some(_) => 0,
            };
            keys.extend(list[..passed].iter().map(json_key));
        }
    }
    keys
}

/// How many `operation` requests got `UnprocessedHalf` while holding at least two keys or
/// writes (so that the answer really had unprocessed ones).
fn real_half_splits(seen: &[Seen], operation: &str) -> usize {
    seen.iter()
        .filter(|s| s.operation == operation && s.fault.as_deref() == Some("UnprocessedHalf"))
        .filter(|s| {
            batch_entries(operation, &s.body)
                .iter()
                .any(|l| l.len() >= 2)
        })
        .count()
}

/// Requests a batch of `n` makes when every request gets `UnprocessedHalf` (n, then the unsent
/// half, ... until one request holds a single item).
fn halving_requests(mut n: usize) -> usize {
    let mut requests = 0;
    while n > 0 {
        requests += 1;
        n -= n.div_ceil(2);
    }
    requests
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn op_id(op: &WriteOp) -> String {
    op.key()["id"].as_s().unwrap().clone()
}

fn item_id(item: &Item) -> String {
    item["id"].as_s().unwrap().clone()
}
