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

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
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
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "things")]
struct Thing {
    #[dynamite(partition_key)]
    id: String,
    n: i64,
}

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
// Capturing what the retry layer did
// ---------------------------------------------------------------------------------------------

/// One `dynamite::retry` event: a wait the retry layer chose before another attempt.
#[derive(Debug, Clone)]
struct RetryEvent {
    operation: String,
    retry: u32,
    delay: Duration,
    reason: String,
    /// The `dynamite` span (index into `Captured::spans`) the wait ran in, if any.
    span: Option<usize>,
}

/// A point in a call's life, in the order they happened on the (single) test thread: the
/// `usize` is the call's `dynamite` span (index into `Captured::spans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// The SDK started an attempt (its per-operation span, `DynamoDB.<Operation>`, opened).
    Attempt(usize),
    /// The retry layer started a wait (its `dynamite::retry` event).
    Wait(usize),
}

#[derive(Default)]
struct Captured {
    events: Vec<RetryEvent>,
    marks: Vec<Mark>,
    /// Fields of every `dynamite` span, including those recorded later.
    spans: Vec<HashMap<String, String>>,
    /// Spans before this index were created before the last `clear`.
    since: usize,
    /// Open `dynamite` spans: span id -> index into `spans`.
    open: HashMap<u64, usize>,
    open_per_operation: HashMap<String, usize>,
    max_open_per_operation: HashMap<String, usize>,
}

/// A `Layer` recording the `dynamite::retry` events and the `dynamite` spans, and how many
/// `dynamite` spans of each operation were open at once.
#[derive(Clone, Default)]
struct Capture {
    state: Arc<Mutex<Captured>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name().starts_with("DynamoDB.") {
            // The SDK's span of one operation invocation (one attempt of dynamite's loop).
            let parent = ctx
                .span(id)
                .and_then(|s| s.parent())
                .map(|p| p.id().into_u64());
            let mut state = self.lock();
            if let Some(&call) = parent.and_then(|p| state.open.get(&p)) {
                state.marks.push(Mark::Attempt(call));
            }
            return;
        }
        if attrs.metadata().name() != "dynamite" {
            return;
        }
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let operation = fields.get("operation").cloned().unwrap_or_default();
        let mut state = self.lock();
        state.spans.push(fields);
        let index = state.spans.len() - 1;
        state.open.insert(id.into_u64(), index);
        let open = state
            .open_per_operation
            .entry(operation.clone())
            .or_default();
        *open += 1;
        let open = *open;
        let max = state.max_open_per_operation.entry(operation).or_default();
        *max = (*max).max(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut state = self.lock();
        if let Some(&index) = state.open.get(&id.into_u64()) {
            values.record(&mut Fields(&mut state.spans[index]));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut state = self.lock();
        if let Some(index) = state.open.remove(&id.into_u64()) {
            let operation = state.spans[index]
                .get("operation")
                .cloned()
                .unwrap_or_default();
            if let Some(open) = state.open_per_operation.get_mut(&operation) {
                *open -= 1;
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "dynamite::retry" {
            return;
        }
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let span_id = ctx.event_span(event).map(|span| span.id().into_u64());
        let mut state = self.lock();
        let span = span_id.and_then(|id| state.open.get(&id).copied());
        if let Some(call) = span {
            state.marks.push(Mark::Wait(call));
        }
        let number = |name: &str| -> u64 {
            fields
                .get(name)
                .unwrap_or_else(|| panic!("retry event without {name}: {fields:?}"))
                .parse()
                .unwrap_or_else(|_| panic!("retry event with a bad {name}: {fields:?}"))
        };
        let retry = number("retry") as u32;
        let delay = Duration::from_micros(number("delay_us"));
        state.events.push(RetryEvent {
            operation: fields.get("operation").cloned().unwrap_or_default(),
            retry,
            delay,
            reason: fields.get("reason").cloned().unwrap_or_default(),
            span,
        });
    }
}

impl Capture {
    fn lock(&self) -> MutexGuard<'_, Captured> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the events, the spans made so far and the in-flight maxima.
    fn clear(&self) {
        let mut state = self.lock();
        state.events.clear();
        state.marks.clear();
        state.since = state.spans.len();
        state.max_open_per_operation.clear();
    }

    fn marks(&self) -> Vec<Mark> {
        self.lock().marks.clone()
    }

    fn events(&self) -> Vec<RetryEvent> {
        self.lock().events.clone()
    }

    fn events_of(&self, operation: &str) -> Vec<RetryEvent> {
        self.lock()
            .events
            .iter()
            .filter(|e| e.operation == operation)
            .cloned()
            .collect()
    }

    /// (index, fields) of the `dynamite` spans of `operation` since the last `clear`.
    fn spans_of(&self, operation: &str) -> Vec<(usize, HashMap<String, String>)> {
        let state = self.lock();
        state
            .spans
            .iter()
            .enumerate()
            .skip(state.since)
            .filter(|(_, s)| s.get("operation").map(String::as_str) == Some(operation))
            .map(|(i, s)| (i, s.clone()))
            .collect()
    }

    /// The most `dynamite` spans of `operation` open at once since the last `clear`.
    fn max_open(&self, operation: &str) -> usize {
        self.lock()
            .max_open_per_operation
            .get(operation)
            .copied()
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------------------------

fn upstream() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .expect(
            "the fault tests need a DynamoDB endpoint: run them through \
             `scripts/with-services -- cargo test --test faults`",
        )
}

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
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
        let direct = common::client().await;
        let proxy = FaultProxy::start(&upstream()).await;
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

// ---------------------------------------------------------------------------------------------
// Single operations
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn single_item_operations_retry_throttling_until_they_succeed() {
    let p = policy(6);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;

    // PutItem: 3 × ProvisionedThroughputExceeded, then the server.
    let fault = Fault::ProvisionedThroughputExceeded;
    fx.proxy
        .script(Match::Operation(Operation::PutItem), fault.clone(), 3);
    thing(1).put(&fx.db).await.unwrap();
    assert_eq!(fx.proxy.count("PutItem"), 4);
    fx.assert_retried(&p, "PutItem", &[fault.code().unwrap(); 3]);
    assert_eq!(stored(&fx).await.get(&id(1)), Some(&1));

    // GetItem: 3 × Throttling.
    fx.reset();
    fx.proxy
        .script(Match::Operation(Operation::GetItem), Fault::Throttling, 3);
    let got = Thing::get(&fx.db, key(1)).await.unwrap();
    assert_eq!(got, Some(thing(1)));
    assert_eq!(fx.proxy.count("GetItem"), 4);
    fx.assert_retried(&p, "GetItem", &["ThrottlingException"; 3]);

    // UpdateItem: 3 × RequestLimitExceeded; the throttled attempts never reached the server, so
    // the increment is applied exactly once.
    fx.reset();
    let fault = Fault::RequestLimitExceeded;
    fx.proxy
        .script(Match::Operation(Operation::UpdateItem), fault.clone(), 3);
    Thing::update(&fx.db, key(1))
        .add(Thing::N, 10)
        .await
        .unwrap();
    assert_eq!(fx.proxy.count("UpdateItem"), 4);
    fx.assert_retried(&p, "UpdateItem", &[fault.code().unwrap(); 3]);
    assert_eq!(stored(&fx).await.get(&id(1)), Some(&11));

    // DeleteItem: 3 × Throttling.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::DeleteItem),
        Fault::Throttling,
        3,
    );
    Thing::delete(&fx.db, key(1)).await.unwrap();
    assert_eq!(fx.proxy.count("DeleteItem"), 4);
    fx.assert_retried(&p, "DeleteItem", &["ThrottlingException"; 3]);
    assert_eq!(stored(&fx).await.get(&id(1)), None);

    // A call that needed no retry records none.
    fx.reset();
    thing(2).put(&fx.db).await.unwrap();
    assert_eq!(fx.proxy.count("PutItem"), 1);
    fx.assert_retried(&p, "PutItem", &[]);
    assert_eq!(fx.proxy.pending(), 0, "every scripted fault was used");
}

#[tokio::test]
async fn finds_retry_their_query_scan_and_get_requests() {
    let p = policy(5);
    let fx = Fx::start(p.clone()).await;
    create::<Row>(&fx).await;
    let rows: Vec<Row> = (0..10).map(row).collect();
    Row::batch_write(&fx.direct).put_all(&rows).await.unwrap();

    // A find served by a Query.
    fx.proxy
        .script(Match::Operation(Operation::Query), Fault::Throttling, 2);
    let all = Row::find(&fx.db)
        .filter(Row::GRP.eq("g"))
        .all()
        .await
        .unwrap();
    assert_eq!(all, rows);
    assert_eq!(fx.proxy.count("Query"), 3);
    fx.assert_retried(&p, "Query", &["ThrottlingException"; 2]);

    // A find served by a GetItem.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::InternalServerError,
        2,
    );
    let one = Row::find(&fx.db)
        .filter(Row::GRP.eq("g"))
        .filter(Row::SEQ.eq(3))
        .all()
        .await
        .unwrap();
    assert_eq!(one, vec![row(3)]);
    assert_eq!(fx.proxy.count("GetItem"), 3);
    fx.assert_retried(&p, "GetItem", &["InternalServerError"; 2]);

    // Pages: the first one clean, the second one retried; the cursor still resumes correctly.
    fx.reset();
    let first = Row::find(&fx.db)
        .filter(Row::GRP.eq("g"))
        .limit(4)
        .page(None)
        .await
        .unwrap();
    assert_eq!(first.items, rows[..4]);
    assert!(first.next.is_some());
    assert_eq!(fx.proxy.count("Query"), 1);
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::Query),
        Fault::ServiceUnavailable,
        2,
    );
    let second = Row::find(&fx.db)
        .filter(Row::GRP.eq("g"))
        .limit(4)
        .page(first.next.clone())
        .await
        .unwrap();
    assert_eq!(second.items, rows[4..8]);
    assert_eq!(fx.proxy.count("Query"), 3);
    fx.assert_retried(&p, "Query", &["ServiceUnavailable"; 2]);

    // A scan.
    fx.reset();
    fx.proxy
        .script(Match::Operation(Operation::Scan), Fault::Throttling, 1);
    let scanned = Row::scan(&fx.db).unbounded().all().await.unwrap();
    assert_eq!(
        sorted(scanned.iter().map(|r| r.seq).collect()),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(fx.proxy.count("Scan"), 2);
    fx.assert_retried(&p, "Scan", &["ThrottlingException"]);
}

#[tokio::test]
async fn transport_and_server_faults_are_retried() {
    let p = policy(5);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;
    thing(1).put(&fx.direct).await.unwrap();

    // The connection dropped after the request was read: for the client the outcome is
    // unknown (it cannot tell whether the server got it); a read is retried.
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::DropBeforeForwarding,
        1,
    );
    let got = Thing::get(&fx.db, key(1)).await.unwrap();
    assert_eq!(got, Some(thing(1)));
    assert_eq!(fx.proxy.count("GetItem"), 2);
    fx.assert_retried(&p, "GetItem", &["OutcomeUnknown"]);

    // 500 InternalServerError, twice.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::PutItem),
        Fault::InternalServerError,
        2,
    );
    thing(2).put(&fx.db).await.unwrap();
    assert_eq!(fx.proxy.count("PutItem"), 3);
    fx.assert_retried(&p, "PutItem", &["InternalServerError"; 2]);

    // 503 ServiceUnavailable, twice.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::DeleteItem),
        Fault::ServiceUnavailable,
        2,
    );
    Thing::delete(&fx.db, key(2)).await.unwrap();
    assert_eq!(fx.proxy.count("DeleteItem"), 3);
    fx.assert_retried(&p, "DeleteItem", &["ServiceUnavailable"; 2]);

    // A dropped connection under a batch write: the request never reached the server, the
    // retry writes everything once.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::DropBeforeForwarding,
        2,
    );
    let things: Vec<Thing> = (10..15).map(thing).collect();
    let out = Thing::batch_write(&fx.db).put_all(&things).await.unwrap();
    assert_eq!(out.puts, 5);
    assert_eq!(fx.proxy.count(BATCH_WRITE), 3);
    assert_eq!(
        sorted(forwarded(&fx.proxy.requests(), BATCH_WRITE)),
        (10..15).map(id).collect::<Vec<_>>()
    );
    let stored = stored(&fx).await;
    assert!(
        (10..15).all(|i| stored.get(&id(i)) == Some(&(i as i64))),
        "{stored:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits: attempts, budget, the SDK's own loop
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn always_failing_requests_stop_after_max_attempts() {
    let p = policy(4);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;

    // A single item operation.
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Throttling,
        FOREVER,
    );
    let err = Thing::get(&fx.db, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("GetItem", Some("ThrottlingException")));
    assert_eq!(err.kind(), Some(ErrorKind::Throttled));
    assert!(err.is_throttled());
    assert_eq!(fx.proxy.count("GetItem"), 4);
    fx.assert_retried(&p, "GetItem", &["ThrottlingException"; 3]);
    let (_, span) = &fx.capture.spans_of("GetItem")[0];
    assert!(
        span.contains_key("error"),
        "the span records the error: {span:?}"
    );

    // A per-call policy overrides the client's.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::UpdateItem),
        Fault::Throttling,
        FOREVER,
    );
    let err = Thing::update(&fx.db, key(1))
        .add(Thing::N, 1)
        .retry(policy(2))
        .await
        .unwrap_err();
    assert_eq!(sdk_error(&err), ("UpdateItem", Some("ThrottlingException")));
    assert_eq!(fx.proxy.count("UpdateItem"), 2);

    // A batch write whose every request is throttled: one chunk, max_attempts requests, every
    // operation handed back, the throttling error as the cause.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::Throttling,
        FOREVER,
    );
    let things: Vec<Thing> = (0..10).map(thing).collect();
    let err = Thing::batch_write(&fx.db)
        .put_all(&things)
        .await
        .unwrap_err();
    assert_eq!(fx.proxy.count(BATCH_WRITE), 4);
    match &err {
        Error::Unprocessed {
            operations,
            unknown,
            applied,
            cause,
        } => {
            assert_eq!(*applied, 0);
            assert!(unknown.is_empty(), "throttled requests were not applied");
            assert_eq!(
                sorted(operations.iter().map(op_id).collect()),
                (0..10).map(id).collect::<Vec<_>>()
            );
            let cause = cause.as_deref().expect("the throttling error is the cause");
            assert_eq!(sdk_error(cause), (BATCH_WRITE, Some("ThrottlingException")));
        }
        other => panic!("{other:?}"),
    }

    // A batch write whose every request comes back all unprocessed.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_write(&fx.db)
        .put_all(&things)
        .await
        .unwrap_err();
    assert_eq!(fx.proxy.count(BATCH_WRITE), 4);
    match &err {
        Error::Unprocessed {
            operations,
            unknown,
            applied: 0,
            cause: None,
        } => {
            assert_eq!(operations.len(), 10);
            assert!(unknown.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let events = fx.capture.events_of(BATCH_WRITE);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.retry, e.reason.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (1, "UnprocessedItems"),
            (2, "UnprocessedItems"),
            (3, "UnprocessedItems")
        ]
    );
    assert!(
        events.iter().all(|e| e.delay <= ceiling(&p, e.retry)),
        "{events:?}"
    );

    // The same for batch gets.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::Throttling,
        FOREVER,
    );
    let err = Thing::batch_get(&fx.db, (0..10).map(key))
        .await
        .unwrap_err();
    assert_eq!(fx.proxy.count(BATCH_GET), 4);
    match &err {
        Error::UnprocessedKeys { keys, cause, .. } => {
            assert_eq!(keys.len(), 10);
            let cause = cause.as_deref().expect("the throttling error is the cause");
            assert_eq!(sdk_error(cause), (BATCH_GET, Some("ThrottlingException")));
        }
        other => panic!("{other:?}"),
    }
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_get(&fx.db, (0..10).map(key))
        .await
        .unwrap_err();
    assert_eq!(fx.proxy.count(BATCH_GET), 4);
    assert!(
        matches!(&err, Error::UnprocessedKeys { keys, cause: None, .. } if keys.len() == 10),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_budget_smaller_than_the_delays_stops_retrying_early() {
    let budget = Duration::from_millis(30);
    let p = RetryPolicy::standard()
        .max_attempts(100)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(40))
        .budget(budget);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;

    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Throttling,
        FOREVER,
    );
    let err = Thing::get(&fx.db, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("GetItem", Some("ThrottlingException")));
    let requests = fx.proxy.count("GetItem");
    let events = fx.capture.events_of("GetItem");
    assert!(
        requests < 100,
        "the budget, not max_attempts, stopped it: {requests}"
    );
    assert_eq!(requests, events.len() + 1);
    // No retry started whose delay would end past the budget, so the waits fit in it.
    let waited: Duration = events.iter().map(|e| e.delay).sum();
    assert!(waited <= budget, "{waited:?} > {budget:?}: {events:?}");
    assert!(
        events.iter().all(|e| e.delay <= ceiling(&p, e.retry)),
        "{events:?}"
    );

    // Unprocessed rounds of a batch read obey the budget too.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_get(&fx.db, (0..5).map(key)).await.unwrap_err();
    assert!(
        matches!(&err, Error::UnprocessedKeys { keys, cause: None, .. } if keys.len() == 5),
        "{err:?}"
    );
    let requests = fx.proxy.count(BATCH_GET);
    let events = fx.capture.events_of(BATCH_GET);
    assert!(requests < 100, "{requests}");
    assert_eq!(requests, events.len() + 1);
    let waited: Duration = events.iter().map(|e| e.delay).sum();
    assert!(waited <= budget, "{waited:?} > {budget:?}: {events:?}");
}

#[tokio::test]
async fn the_sdk_retry_loop_is_off_unless_kept() {
    // Default build over an SDK config with standard retries: dynamite's loop only.
    let fx = Fx::start(policy(4)).await;
    create::<Thing>(&fx).await;
    let sdk_retry = fx.db.sdk().config().retry_config().cloned();
    assert_eq!(
        sdk_retry.map(|r| r.max_attempts()),
        Some(1),
        "build() disables the SDK's retries"
    );
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::InternalServerError,
        FOREVER,
    );
    let err = Thing::get(&fx.db, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("GetItem", Some("InternalServerError")));
    assert_eq!(
        fx.proxy.count("GetItem"),
        4,
        "max_attempts, not max_attempts × 3"
    );

    // keep_sdk_retries + RetryPolicy::none(): the SDK's standard loop (3 attempts) is in charge.
    fx.reset();
    let kept = fx
        .another_client(sdk_standard_retries(), |b| {
            b.keep_sdk_retries().retry_policy(RetryPolicy::none())
        })
        .await;
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::InternalServerError,
        FOREVER,
    );
    let err = Thing::get(&kept, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("GetItem", Some("InternalServerError")));
    assert_eq!(
        fx.proxy.count("GetItem"),
        3,
        "the SDK's standard 3 attempts"
    );
    assert!(fx.capture.events().is_empty(), "dynamite did not retry");

    // Both loops kept: attempts multiply (which is why build() turns the SDK's off).
    fx.reset();
    let both = fx
        .another_client(sdk_standard_retries(), |b| {
            b.keep_sdk_retries().retry_policy(policy(2))
        })
        .await;
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::InternalServerError,
        FOREVER,
    );
    Thing::get(&both, key(1)).await.unwrap_err();
    assert_eq!(
        fx.proxy.count("GetItem"),
        6,
        "2 dynamite attempts × 3 SDK attempts"
    );
}

// ---------------------------------------------------------------------------------------------
// What is not retried
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn non_retryable_errors_fail_at_once() {
    let fx = Fx::start(policy(5)).await;
    create::<Thing>(&fx).await;
    thing(1).put(&fx.direct).await.unwrap();

    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::ValidationError,
        1,
    );
    let err = Thing::get(&fx.db, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("GetItem", Some("ValidationException")));
    assert_eq!(fx.proxy.count("GetItem"), 1);

    fx.proxy
        .script(Match::Operation(Operation::PutItem), Fault::AccessDenied, 1);
    let err = thing(2).put(&fx.db).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("PutItem", Some("AccessDeniedException")));
    assert_eq!(fx.proxy.count("PutItem"), 1);

    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::AccessDenied,
        1,
    );
    let err = Thing::batch_get(&fx.db, (0..10).map(key))
        .await
        .unwrap_err();
    match &err {
        Error::UnprocessedKeys { keys, cause, .. } => {
            assert_eq!(keys.len(), 10);
            let cause = cause.as_deref().expect("cause");
            assert_eq!(sdk_error(cause), (BATCH_GET, Some("AccessDeniedException")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fx.proxy.count(BATCH_GET), 1);

    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::ValidationError,
        1,
    );
    let err = Thing::batch_write(&fx.db).put(&thing(3)).await.unwrap_err();
    match &err {
        Error::Unprocessed {
            operations,
            applied: 0,
            cause: Some(cause),
            ..
        } => {
            assert_eq!(operations.len(), 1);
            assert_eq!(sdk_error(cause), (BATCH_WRITE, Some("ValidationException")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fx.proxy.count(BATCH_WRITE), 1);

    // Failed conditions, from the real server.
    let err = thing(1).put(&fx.db).if_not_exists().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConditionFailed {
                operation: dynamite::Operation::PutItem,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fx.proxy.count("PutItem"), 2);
    let err = Thing::update(&fx.db, key(1))
        .add(Thing::N, 1)
        .condition(Thing::N.eq(999))
        .await
        .unwrap_err();
    assert!(err.is_condition_failed(), "{err:?}");
    assert_eq!(fx.proxy.count("UpdateItem"), 1);
    let err = Thing::delete(&fx.db, key(1))
        .condition(Thing::N.eq(999))
        .await
        .unwrap_err();
    assert!(err.is_condition_failed(), "{err:?}");
    assert_eq!(fx.proxy.count("DeleteItem"), 1);
    let err = fx
        .db
        .transact_write()
        .update_if(key(1), Update::new().add(Thing::N, 1), Thing::N.eq(999))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TransactionCanceled { .. }), "{err:?}");
    assert_eq!(fx.proxy.count("TransactWriteItems"), 1);

    assert!(fx.capture.events().is_empty(), "{:?}", fx.capture.events());
    assert_eq!(fx.proxy.pending(), 0);
    assert_eq!(
        stored(&fx).await.get(&id(1)),
        Some(&1),
        "nothing was applied"
    );
}

#[tokio::test]
async fn server_errors_with_an_unlisted_code_are_retried() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    // A proxy whose upstream is down answers every request `502 FaultProxyUpstreamError`.
    let proxy = FaultProxy::start("http://127.0.0.1:9").await;
    let sdk = sdk_via(&proxy.endpoint(), sdk_standard_retries()).await;
    let db = Client::builder(sdk).retry_policy(policy(3)).build();
    let err = Thing::get(&db, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err).1, Some("FaultProxyUpstreamError"));
    assert_eq!(
        proxy.count("GetItem"),
        3,
        "a 502 is a server error, retried like 500 and 503: {err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn transactions_retry_throttling_with_the_same_token() {
    let p = policy(5);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;
    thing(1).put(&fx.direct).await.unwrap();

    fx.proxy.script(
        Match::Operation(Operation::TransactWriteItems),
        Fault::Throttling,
        2,
    );
    fx.db
        .transact_write()
        .update(key(1), Update::new().add(Thing::N, 10))
        .idempotency_token("faults-token-1")
        .await
        .unwrap();
    assert_eq!(fx.proxy.count("TransactWriteItems"), 3);
    fx.assert_retried(&p, "TransactWriteItems", &["ThrottlingException"; 2]);
    let tokens: Vec<Value> = fx
        .proxy
        .requests()
        .iter()
        .map(|s| s.body["ClientRequestToken"].clone())
        .collect();
    assert_eq!(tokens, vec![Value::from("faults-token-1"); 3]);
    assert_eq!(stored(&fx).await.get(&id(1)), Some(&11));

    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::TransactGetItems),
        Fault::InternalServerError,
        2,
    );
    let out = fx.db.transact_get().get(key(1)).await.unwrap();
    assert_eq!(out.get::<Thing>(0).unwrap().map(|t| t.n), Some(11));
    assert_eq!(fx.proxy.count("TransactGetItems"), 3);
    fx.assert_retried(&p, "TransactGetItems", &["InternalServerError"; 2]);
}

#[tokio::test]
async fn transaction_retries_reuse_one_client_request_token() {
    let fx = Fx::start(policy(5)).await;
    create::<Thing>(&fx).await;
    thing(1).put(&fx.direct).await.unwrap();

    fx.proxy.script(
        Match::Operation(Operation::TransactWriteItems),
        Fault::DropBeforeForwarding,
        1,
    );
    fx.db
        .transact_write()
        .update(key(1), Update::new().add(Thing::N, 10))
        .await
        .unwrap();
    let tokens: Vec<Value> = fx
        .proxy
        .requests()
        .iter()
        .filter(|s| s.operation == "TransactWriteItems")
        .map(|s| s.body["ClientRequestToken"].clone())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert!(tokens[0].is_string(), "{tokens:?}");
    assert_eq!(
        tokens[0], tokens[1],
        "a retry of a transaction that may have been applied must carry the same token"
    );
}

/// A transaction whose answer is lost after DynamoDB applied it is retried with the same token,
/// and DynamoDB applies it once: the caller gets Ok and the increment lands once.
#[tokio::test]
async fn transaction_whose_answer_was_lost_is_applied_once() {
    if common::skip_on_moto(
        "transaction_whose_answer_was_lost_is_applied_once",
        "ClientRequestToken makes TransactWriteItems idempotent (moto ignores the token)",
    ) {
        return;
    }
    let fx = Fx::start(policy(5)).await;
    create::<Thing>(&fx).await;
    thing(1).put(&fx.direct).await.unwrap();

    fx.proxy.script(
        Match::Operation(Operation::TransactWriteItems),
        Fault::DropAfterApplied,
        1,
    );
    fx.db
        .transact_write()
        .update(key(1), Update::new().add(Thing::N, 10))
        .await
        .unwrap();
    assert_eq!(fx.proxy.count("TransactWriteItems"), 2);
    let stored = Thing::get(&fx.direct, key(1))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.n, 11,
        "the lost-answer transaction was applied twice"
    );
}

// ---------------------------------------------------------------------------------------------
// Batch writes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn batch_write_with_unprocessed_items_writes_every_item_exactly_once() {
    let p = policy(4);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;
    let doomed: Vec<Thing> = (200..210).map(thing).collect();
    Thing::batch_write(&fx.direct)
        .put_all(&doomed)
        .await
        .unwrap();

    // 110 puts (one key put twice: the last one wins) and 10 deletes: 120 operations, 5 chunks.
    let things: Vec<Thing> = (0..110).map(thing).collect();
    let superseded = Thing { id: id(7), n: -7 };
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedHalf,
        8,
    );
    let out = Thing::batch_write(&fx.db)
        .put(&superseded)
        .put_all(&things)
        .delete_all((200..210).map(key))
        .await
        .unwrap();
    assert_eq!((out.puts, out.deletes, out.superseded), (110, 10, 1));

    let seen = fx.proxy.requests();
    assert_eq!(out.stats.requests, fx.proxy.count(BATCH_WRITE));
    assert_eq!(
        out.stats.unprocessed_retries,
        real_half_splits(&seen, BATCH_WRITE)
    );
    assert!(out.stats.unprocessed_retries > 0);
    assert!(out.stats.requests > 5);
    // Every operation reached the server exactly once.
    let expected: Vec<String> = (0..110).chain(200..210).map(id).collect();
    assert_eq!(sorted(forwarded(&seen, BATCH_WRITE)), expected);
    // And the server holds exactly the puts, with the last value of the duplicated key.
    let want: BTreeMap<String, i64> = things.iter().map(|t| (t.id.clone(), t.n)).collect();
    assert_eq!(stored(&fx).await, want);

    let events = fx.capture.events_of(BATCH_WRITE);
    assert_eq!(events.len(), out.stats.unprocessed_retries, "{events:?}");
    for e in &events {
        assert_eq!(e.reason, "UnprocessedItems");
        assert!(e.delay <= ceiling(&p, e.retry), "{e:?}");
    }

    // A round that makes progress starts the attempt count (and the back-off) again: with two
    // attempts per policy, a chunk halved five times over still gets written.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedHalf,
        FOREVER,
    );
    let more: Vec<Thing> = (300..325).map(thing).collect();
    let tight = policy(2);
    let out = Thing::batch_write(&fx.db)
        .put_all(&more)
        .retry(tight.clone())
        .await
        .unwrap();
    assert_eq!(out.puts, 25);
    assert_eq!(out.stats.requests, halving_requests(25));
    assert_eq!(out.stats.unprocessed_retries, halving_requests(25) - 1);
    assert_eq!(fx.proxy.count(BATCH_WRITE), halving_requests(25));
    let events = fx.capture.events_of(BATCH_WRITE);
    assert_eq!(events.len(), halving_requests(25) - 1);
    assert!(
        events.iter().all(|e| e.delay <= tight.get_base_delay()),
        "every wait is a first retry's: {events:?}"
    );
    let stored = stored(&fx).await;
    assert!((300..325).all(|i| stored.get(&id(i)) == Some(&(i as i64))));
}

#[tokio::test]
async fn batch_write_hands_back_exactly_the_operations_not_applied() {
    let fx = Fx::start(policy(3)).await;
    create::<Thing>(&fx).await;
    let things: Vec<Thing> = (0..120).map(thing).collect();
    let all_ids: Vec<String> = (0..120).map(id).collect();

    // Some halves get through, then nothing does.
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedHalf,
        5,
    );
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_write(&fx.db)
        .put_all(&things)
        .await
        .unwrap_err();
    let Error::Unprocessed {
        operations,
        applied,
        cause,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert!(cause.is_none(), "only unprocessed items: {cause:?}");
    assert_eq!(applied + operations.len(), 120);
    assert!(
        applied >= 5,
        "each half that got through applied something: {applied}"
    );
    assert!(!operations.is_empty());

    // The operations are the original puts, once each.
    let left: Vec<String> = sorted(operations.iter().map(op_id).collect());
    assert_eq!(
        left.iter().collect::<HashSet<_>>().len(),
        left.len(),
        "no duplicates"
    );
    for op in &operations {
        let i: usize = op_id(op)[1..].parse().unwrap();
        assert_eq!(op.table(), fx.db.table_name("things"));
        assert_eq!(op.entity(), "Thing");
        match op.kind() {
            WriteKind::Put(item) => {
                assert_eq!(item, &things[i].to_item().unwrap());
                assert_eq!(item_id(item), id(i));
            }
            WriteKind::Delete => panic!("{op:?}"),
        }
    }

    // Exactly those are missing from the server; everything else is there.
    let seen = fx.proxy.requests();
    let sent = sorted(forwarded(&seen, BATCH_WRITE));
    assert_eq!(sent.len(), applied, "each applied operation was sent once");
    let stored_ids: Vec<String> = stored(&fx).await.keys().cloned().collect();
    assert_eq!(stored_ids, sent);
    let mut union: Vec<String> = stored_ids.iter().chain(&left).cloned().collect();
    union.sort();
    assert_eq!(union, all_ids, "stored and handed back partition the batch");

    // Resumed on a healthy proxy, they are all written.
    fx.reset();
    let out = fx
        .db
        .batch_write()
        .resume(operations.clone())
        .await
        .unwrap();
    assert_eq!(out.puts, operations.len());
    assert_eq!(out.stats.requests, operations.len().div_ceil(25));
    let want: BTreeMap<String, i64> = things.iter().map(|t| (t.id.clone(), t.n)).collect();
    assert_eq!(stored(&fx).await, want);
}

// ---------------------------------------------------------------------------------------------
// Batch gets
// ---------------------------------------------------------------------------------------------

/// 250 distinct keys (k000..k249, of which k230.. are not stored) in a scrambled order, with
/// 25 of them repeated; and the distinct keys in first-occurrence order.
fn scrambled_keys() -> (Vec<usize>, Vec<usize>) {
    let mut input = Vec::new();
    for i in 0..250usize {
        let k = (i * 37 + 11) % 250; // a permutation of 0..250
        input.push(k);
        if i % 10 == 3 {
            input.push((k * 7) % 250); // a repeat (or a first occurrence, seen again later)
        }
    }
    let mut seen = HashSet::new();
    let distinct: Vec<usize> = input.iter().copied().filter(|k| seen.insert(*k)).collect();
    assert_eq!(distinct.len(), 250);
    assert!(input.len() > distinct.len());
    (input, distinct)
}

const STORED: usize = 230;

#[tokio::test]
async fn batch_get_with_unprocessed_keys_reads_every_key_once_in_input_order() {
    let p = policy(3);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;
    let things: Vec<Thing> = (0..STORED).map(thing).collect();
    Thing::batch_write(&fx.direct)
        .put_all(&things)
        .await
        .unwrap();
    let (input, distinct) = scrambled_keys();
    let want_items: Vec<Thing> = distinct
        .iter()
        .filter(|k| **k < STORED)
        .map(|k| thing(*k))
        .collect();
    let want_missing: Vec<Key<Thing>> = distinct
        .iter()
        .filter(|k| **k >= STORED)
        .map(|k| key(*k))
        .collect();
    let want_sent: Vec<String> = sorted(distinct.iter().map(|k| id(*k)).collect());

    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        6,
    );
    let out = Thing::batch_get(&fx.db, input.iter().map(|k| key(*k)))
        .await
        .unwrap();
    assert_eq!(out.items, want_items);
    assert_eq!(out.missing, want_missing);
    let seen = fx.proxy.requests();
    assert_eq!(
        sorted(forwarded(&seen, BATCH_GET)),
        want_sent,
        "each key read once"
    );
    assert_eq!(out.stats.requests, fx.proxy.count(BATCH_GET));
    assert_eq!(
        out.stats.unprocessed_retries,
        real_half_splits(&seen, BATCH_GET)
    );
    assert!(out.stats.unprocessed_retries > 0);
    let events = fx.capture.events_of(BATCH_GET);
    assert_eq!(events.len(), out.stats.unprocessed_retries);
    for e in &events {
        assert_eq!(e.reason, "UnprocessedKeys");
        assert!(e.delay <= ceiling(&p, e.retry), "{e:?}");
    }

    // The lazy stream: the same, chunk by chunk.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        6,
    );
    let streamed: Vec<(Key<Thing>, Option<Thing>)> =
        Thing::batch_get(&fx.db, input.iter().map(|k| key(*k)))
            .concurrency(2)
            .stream()
            .try_collect()
            .await
            .unwrap();
    let want_streamed: Vec<(Key<Thing>, Option<Thing>)> = distinct
        .iter()
        .map(|k| (key(*k), (*k < STORED).then(|| thing(*k))))
        .collect();
    assert_eq!(streamed, want_streamed);
    assert_eq!(
        sorted(forwarded(&fx.proxy.requests(), BATCH_GET)),
        want_sent
    );
    assert!(fx.proxy.requests().iter().any(|s| s.fault.is_some()));

    // Several entities in one call.
    fx.reset();
    create::<Row>(&fx).await;
    let rows: Vec<Row> = (0..40).map(row).collect();
    Row::batch_write(&fx.direct).put_all(&rows).await.unwrap();
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        6,
    );
    let mut out = fx
        .db
        .batch_get()
        .add::<Thing>((220..240).map(key))
        .add::<Row>((30..50).map(|s| Row::key("g", s)))
        .add::<Thing>((225..235).map(key))
        .await
        .unwrap();
    let got_things = out.take::<Thing>().unwrap();
    let got_rows = out.take::<Row>().unwrap();
    assert_eq!(
        got_things.items,
        (220..STORED).map(thing).collect::<Vec<_>>()
    );
    assert_eq!(
        got_things.missing,
        (STORED..240).map(key).collect::<Vec<_>>()
    );
    assert_eq!(got_rows.items, (30..40).map(row).collect::<Vec<_>>());
    assert_eq!(
        got_rows.missing,
        (40..50).map(|s| Row::key("g", s)).collect::<Vec<_>>()
    );
    let mut want: Vec<String> = (220..240).map(id).collect();
    want.extend((30..50).map(|s| format!("g/{s}")));
    assert_eq!(
        sorted(forwarded(&fx.proxy.requests(), BATCH_GET)),
        sorted(want)
    );

    // Progress starts the attempt count again: 100 keys halved down to one, with a policy of
    // two attempts.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        FOREVER,
    );
    let tight = policy(2);
    let out = Thing::batch_get(&fx.db, (0..100).map(key))
        .retry(tight.clone())
        .await
        .unwrap();
    assert_eq!(out.items, (0..100).map(thing).collect::<Vec<_>>());
    assert_eq!(out.stats.requests, halving_requests(100));
    assert_eq!(out.stats.unprocessed_retries, halving_requests(100) - 1);
    let events = fx.capture.events_of(BATCH_GET);
    assert!(
        events.iter().all(|e| e.delay <= tight.get_base_delay()),
        "{events:?}"
    );
}

#[tokio::test]
async fn batch_get_out_of_retries_reports_exactly_the_unread_keys() {
    let fx = Fx::start(policy(3)).await;
    create::<Thing>(&fx).await;
    let things: Vec<Thing> = (0..60).map(thing).collect();
    Thing::batch_write(&fx.direct)
        .put_all(&things)
        .await
        .unwrap();

    // 70 distinct keys (10 of them not stored), 10 repeated: one chunk.
    let input: Vec<usize> = (0..70).chain(0..10).collect();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        2,
    );
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_get(&fx.db, input.iter().map(|k| key(*k)))
        .await
        .unwrap_err();
    let Error::UnprocessedKeys { keys, read, cause } = err else {
        panic!("{err:?}");
    };
    assert!(cause.is_none(), "{cause:?}");
    // Nothing already read is lost: the error holds every stored item of the keys it read.
    let attr = |item: &Item| item["id"].as_s().unwrap().clone();
    let unread: HashSet<String> = keys.iter().map(|(_, k)| attr(k)).collect();
    let read: HashSet<String> = read.iter().map(|(_, item)| attr(item)).collect();
    let expected: HashSet<String> = (0..60).map(id).filter(|i| !unread.contains(i)).collect();
    assert_eq!(read, expected);
    // 70 -> 35 sent, 35 left -> 18 sent, 17 left -> nothing twice: out of attempts.
    assert_eq!(fx.proxy.count(BATCH_GET), 4);
    assert_eq!(keys.len(), 17);
    let table = fx.db.table_name("things");
    assert!(keys.iter().all(|(t, _)| *t == table));
    let unread: Vec<String> = sorted(keys.iter().map(|(_, k)| item_id(k)).collect());
    let sent: HashSet<String> = forwarded(&fx.proxy.requests(), BATCH_GET)
        .into_iter()
        .collect();
    let want: Vec<String> = sorted((0..70).map(id).filter(|k| !sent.contains(k)).collect());
    assert_eq!(unread, want);
    assert!(keys.iter().all(|(_, k)| k.len() == 1), "keys, not items");
}

#[tokio::test]
async fn batch_get_out_of_retries_reports_the_unread_keys_of_every_chunk() {
    let fx = Fx::start(policy(2)).await;
    create::<Thing>(&fx).await;
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_get(&fx.db, (0..250).map(key))
        .await
        .unwrap_err();
    let Error::UnprocessedKeys { keys, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(keys.len(), 250, "no key was read, so every key is unread");
}

// ---------------------------------------------------------------------------------------------
// Batches under whole-request faults, and their concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn batches_recover_from_throttled_and_failed_requests() {
    let p = policy(5);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;

    let things: Vec<Thing> = (0..120).map(thing).collect();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::Throttling,
        3,
    );
    let out = Thing::batch_write(&fx.db).put_all(&things).await.unwrap();
    assert_eq!(out.puts, 120);
    assert_eq!(fx.proxy.count(BATCH_WRITE), 5 + 3);
    let events = fx.capture.events_of(BATCH_WRITE);
    assert_eq!(events.len(), 3);
    for e in &events {
        assert_eq!(e.reason, "ThrottlingException");
        assert!(e.delay <= ceiling(&p, e.retry), "{e:?}");
        assert!(
            e.span.is_some(),
            "execute-level waits run in the request's span"
        );
    }
    let recorded: usize = fx
        .capture
        .spans_of(BATCH_WRITE)
        .iter()
        .filter_map(|(_, s)| s.get("retries").map(|r| r.parse::<usize>().unwrap()))
        .sum();
    assert_eq!(recorded, 3, "the spans record the retries");
    assert_eq!(
        sorted(forwarded(&fx.proxy.requests(), BATCH_WRITE)),
        (0..120).map(id).collect::<Vec<_>>()
    );
    let want: BTreeMap<String, i64> = things.iter().map(|t| (t.id.clone(), t.n)).collect();
    assert_eq!(stored(&fx).await, want);

    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::Throttling,
        2,
    );
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::InternalServerError,
        1,
    );
    let out = Thing::batch_get(&fx.db, (0..250).map(key)).await.unwrap();
    assert_eq!(out.items, things);
    assert_eq!(out.missing, (120..250).map(key).collect::<Vec<_>>());
    assert_eq!(fx.proxy.count(BATCH_GET), 3 + 3);
    let reasons = sorted(
        fx.capture
            .events_of(BATCH_GET)
            .into_iter()
            .map(|e| e.reason)
            .collect(),
    );
    assert_eq!(
        reasons,
        [
            "InternalServerError",
            "ThrottlingException",
            "ThrottlingException"
        ]
    );
}

#[tokio::test]
async fn batch_stats_count_every_request_sent() {
    let fx = Fx::start(policy(5)).await;
    create::<Thing>(&fx).await;
    let things: Vec<Thing> = (0..120).map(thing).collect();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::Throttling,
        3,
    );
    let out = Thing::batch_write(&fx.db).put_all(&things).await.unwrap();
    assert_eq!(out.stats.requests, fx.proxy.count(BATCH_WRITE));
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::Throttling,
        3,
    );
    let out = Thing::batch_get(&fx.db, (0..120).map(key)).await.unwrap();
    assert_eq!(out.stats.requests, fx.proxy.count(BATCH_GET));
}

#[tokio::test]
async fn batches_keep_at_most_concurrency_requests_in_flight() {
    let delay = Duration::from_millis(60);
    let fx = Fx::start(policy(3)).await;
    create::<Thing>(&fx).await;

    // 1000 keys: 10 chunks, 3 at a time, each answered 60 ms late.
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::Delay(delay),
        FOREVER,
    );
    let out = Thing::batch_get(&fx.db, (0..1000).map(key))
        .concurrency(3)
        .await
        .unwrap();
    assert_eq!(out.missing.len(), 1000);
    assert_eq!(out.stats.requests, 10);
    assert_eq!(
        fx.capture.max_open(BATCH_GET),
        3,
        "3 requests in flight, never more"
    );
    assert_in_flight_at_most(&fx.proxy.requests(), BATCH_GET, 3, delay);

    // 120 puts: 5 chunks, 2 at a time.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::Delay(delay),
        FOREVER,
    );
    let things: Vec<Thing> = (0..120).map(thing).collect();
    let out = Thing::batch_write(&fx.db)
        .put_all(&things)
        .concurrency(2)
        .await
        .unwrap();
    assert_eq!(out.puts, 120);
    assert_eq!(fx.capture.max_open(BATCH_WRITE), 2);
    assert_in_flight_at_most(&fx.proxy.requests(), BATCH_WRITE, 2, delay);
}

/// Each request was held `delay` by the proxy after it arrived, so if `limit + 1` requests had
/// arrived within `delay` of each other, `limit + 1` would have been in flight at once.
fn assert_in_flight_at_most(seen: &[Seen], operation: &str, limit: usize, delay: Duration) {
    let mut arrivals: Vec<std::time::Instant> = seen
        .iter()
        .filter(|s| s.operation == operation)
        .map(|s| s.at)
        .collect();
    arrivals.sort();
    for window in arrivals.windows(limit + 1) {
        let spread = window[limit] - window[0];
        assert!(
            spread >= delay,
            "{} {operation} requests arrived within {spread:?}",
            limit + 1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The delays chosen
// ---------------------------------------------------------------------------------------------

/// Checks many delays of retries `1..=max_retry` against full jitter with doubling ceilings:
/// every delay within its ceiling; for each retry number, some delay in the upper half of its
/// range (so the ceiling really doubled, then stayed at the cap) and some in the lower half
/// (full jitter, not equal jitter); and hardly any two delays alike.
fn assert_full_jitter(
    policy: &RetryPolicy,
    events: &[RetryEvent],
    max_retry: u32,
    per_retry: usize,
) {
    let mut by_retry: BTreeMap<u32, Vec<Duration>> = BTreeMap::new();
    for e in events {
        by_retry.entry(e.retry).or_default().push(e.delay);
    }
    assert_eq!(
        by_retry.keys().copied().collect::<Vec<_>>(),
        (1..=max_retry).collect::<Vec<_>>()
    );
    for (&n, delays) in &by_retry {
        let ceiling = ceiling(policy, n);
        let max = *delays.iter().max().unwrap();
        let min = *delays.iter().min().unwrap();
        assert_eq!(delays.len(), per_retry, "retry {n}");
        assert!(max <= ceiling, "retry {n}: {max:?} > {ceiling:?}");
        // With 30 uniform samples each of these fails with probability 2^-30.
        assert!(
            max > ceiling / 2,
            "retry {n}: all of {delays:?} under {:?}",
            ceiling / 2
        );
        assert!(
            min < ceiling / 2,
            "retry {n}: all of {delays:?} over {:?}",
            ceiling / 2
        );
        if n > 1 {
            let previous = self::ceiling(policy, n - 1);
            if ceiling > previous {
                assert_eq!(ceiling, previous * 2, "the ceiling doubles");
                assert!(
                    max > previous,
                    "retry {n} waited longer than retry {} could",
                    n - 1
                );
            }
        }
    }
    let distinct: HashSet<Duration> = events.iter().map(|e| e.delay).collect();
    assert!(
        distinct.len() > events.len() * 9 / 10,
        "delays vary: {distinct:?}"
    );
}

#[tokio::test]
async fn delays_double_up_to_the_cap_with_full_jitter() {
    const CALLS: usize = 30;
    // Ceilings 1, 2, 4, 8, 16, 16, 16 ms for retries 1..=7.
    let p = RetryPolicy::standard()
        .max_attempts(8)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(16))
        .no_budget();
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;

    // Single item operations, throttled forever, 30 at once.
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Throttling,
        FOREVER,
    );
    let results =
        futures::future::join_all((0..CALLS).map(|i| Thing::get(&fx.db, key(i)).send())).await;
    assert!(results.iter().all(|r| r.is_err()));
    assert_eq!(fx.proxy.count("GetItem"), CALLS * 8);
    let events = fx.capture.events_of("GetItem");
    assert_full_jitter(&p, &events, 7, CALLS);
    // Within each call, the retries are consecutive: 1, 2, ..., 7.
    let mut per_call: HashMap<usize, Vec<u32>> = HashMap::new();
    for e in &events {
        per_call
            .entry(e.span.expect("in a span"))
            .or_default()
            .push(e.retry);
    }
    assert_eq!(per_call.len(), CALLS);
    assert!(per_call.values().all(|r| *r == (1..=7).collect::<Vec<_>>()));

    // Unprocessed rounds of batch gets that never make progress back off the same way.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let results =
        futures::future::join_all((0..CALLS).map(|i| Thing::batch_get(&fx.db, [key(i)]).send()))
            .await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::UnprocessedKeys { .. }))));
    assert_eq!(fx.proxy.count(BATCH_GET), CALLS * 8);
    assert_full_jitter(&p, &fx.capture.events_of(BATCH_GET), 7, CALLS);

    // And so do batch writes.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let things: Vec<Thing> = (0..CALLS).map(thing).collect();
    let results = futures::future::join_all(
        things
            .iter()
            .map(|t| Thing::batch_write(&fx.db).put(t).send()),
    )
    .await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::Unprocessed { .. }))));
    assert_eq!(fx.proxy.count(BATCH_WRITE), CALLS * 8);
    assert_full_jitter(&p, &fx.capture.events_of(BATCH_WRITE), 7, CALLS);
}

#[test]
fn policy_delays_are_uniform_under_doubling_ceilings() {
    let p = RetryPolicy::standard()
        .base_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(100));
    let want = [10u64, 20, 40, 80, 100, 100, 100];
    for (i, &ceiling_ms) in want.iter().enumerate() {
        let n = i as u32 + 1;
        let ceiling = Duration::from_millis(ceiling_ms);
        assert_eq!(p.delay_ceiling(n), ceiling);
        assert_eq!(self::ceiling(&p, n), ceiling);
        let samples: Vec<Duration> = (0..2000).map(|_| p.delay(n)).collect();
        assert!(samples.iter().all(|d| *d <= ceiling), "retry {n}");
        let max = *samples.iter().max().unwrap();
        let min = *samples.iter().min().unwrap();
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        assert!(max > ceiling * 9 / 10, "retry {n}: max {max:?}");
        assert!(min < ceiling / 10, "retry {n}: min {min:?}");
        // Uniform on [0, c]: the mean is c/2 (its standard error here is under c/150).
        assert!(
            mean > ceiling * 4 / 10 && mean < ceiling * 6 / 10,
            "retry {n}: mean {mean:?}"
        );
    }
    // Far retries stay at the cap, without overflowing.
    assert_eq!(p.delay_ceiling(1000), Duration::from_millis(100));
    let huge = RetryPolicy::standard()
        .base_delay(Duration::from_secs(3600))
        .max_delay(Duration::MAX);
    assert!(huge.delay_ceiling(u32::MAX) >= Duration::from_secs(3600));
    assert!(huge.delay(64) <= huge.delay_ceiling(64));
}

/// A client whose endpoint refuses connections: every attempt is a transport error.
async fn unreachable(policy: RetryPolicy) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "faults",
        ))
        .load()
        .await;
    Client::builder(aws_sdk_dynamodb::Client::new(&config))
        .retry_policy(policy)
        .build()
}

/// The waits are tokio sleeps, not blocking ones: they last at least the delay chosen, and
/// while one call waits, another call on the same single-threaded runtime keeps running. (A
/// blocking sleep would run from the retry event to the next attempt within one poll, so no
/// other call could do anything in between.)
///
/// With paused time (`#[tokio::test(start_paused = true)]`) the elapsed time would equal the sum
/// of the delays exactly; that needs tokio's `test-util` feature, which the dev-dependencies do
/// not enable.
#[tokio::test]
async fn backoff_waits_are_async_sleeps_of_the_chosen_length() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let p = RetryPolicy::standard()
        .max_attempts(8)
        .base_delay(Duration::from_millis(2))
        .max_delay(Duration::from_millis(16))
        .no_budget();
    let db = unreachable(p.clone()).await;

    let start = tokio::time::Instant::now();
    let (a, b) = tokio::join!(
        Thing::get(&db, key(1)).send(),
        Thing::get(&db, key(2)).send()
    );
    let elapsed = start.elapsed();

    let mut waited = HashMap::new();
    for err in [a.unwrap_err(), b.unwrap_err()] {
        assert_eq!(err.kind(), Some(ErrorKind::NotSent), "{err:?}");
        // No invented codes: the service never answered.
        assert_eq!(sdk_error(&err).1, None, "{err:?}");
    }
    let events = capture.events();
    assert_eq!(events.len(), 2 * 7, "{events:?}");
    for e in &events {
        assert_eq!(e.reason, "NotSent");
        assert!(e.delay <= ceiling(&p, e.retry), "{e:?}");
        *waited.entry(e.span.unwrap()).or_insert(Duration::ZERO) += e.delay;
    }
    assert_eq!(waited.len(), 2);
    // Each call slept at least its own delays (and both slept at the same time, below).
    let longest = *waited.values().max().unwrap();
    assert!(elapsed >= longest, "{elapsed:?} < {longest:?}");

    // Each call: attempt, wait, attempt, ..., attempt.
    let marks = capture.marks();
    for &call in waited.keys() {
        let own: Vec<Mark> = marks
            .iter()
            .copied()
            .filter(|m| matches!(m, Mark::Attempt(c) | Mark::Wait(c) if *c == call))
            .collect();
        let want: Vec<Mark> = (0..15)
            .map(|i| {
                if i % 2 == 0 {
                    Mark::Attempt(call)
                } else {
                    Mark::Wait(call)
                }
            })
            .collect();
        assert_eq!(own, want);
    }
    // Some wait of one call has the other call's doings inside it: a wait from its event to its
    // call's next attempt that is not one uninterrupted step.
    let interleaved = marks
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match m {
            Mark::Wait(call) => Some((i, *call)),
            Mark::Attempt(_) => None,
        })
        .filter(|&(i, call)| {
            let end = marks[i + 1..]
                .iter()
                .position(|m| *m == Mark::Attempt(call))
                .expect("an attempt follows every wait")
                + i
                + 1;
            marks[i + 1..end]
                .iter()
                .any(|m| !matches!(m, Mark::Attempt(c) | Mark::Wait(c) if *c == call))
        })
        .count();
    assert!(
        interleaved > 0,
        "the calls never ran during each other's waits: {marks:?}"
    );
}

/// A keys-only local index: a find of whole entities reads the base items after the index.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "threads")]
#[dynamite(local_index(name = "ByVotes", projection = keys_only))]
struct Thread {
    #[dynamite(partition_key)]
    forum: String,
    #[dynamite(sort_key)]
    id: u32,
    #[dynamite(index_key(index = "ByVotes", sort))]
    votes: u32,
    body: String,
}

#[tokio::test]
async fn a_consistent_find_reads_its_base_items_consistently() {
    let fx = Fx::start(policy(3)).await;
    create::<Thread>(&fx).await;
    for i in 0..3u32 {
        Thread {
            forum: "f".into(),
            id: i,
            votes: 10 - i,
            body: format!("post {i}"),
        }
        .put(&fx.direct)
        .await
        .unwrap();
    }
    for consistent in [false, true] {
        fx.reset();
        let find = Thread::find(&fx.db)
            .index(Thread::BY_VOTES)
            .filter(Thread::FORUM.eq("f"));
        let find = if consistent { find.consistent() } else { find };
        assert_eq!(find.all().await.unwrap().len(), 3);
        let seen = fx.proxy.requests();
        let query = seen.iter().find(|s| s.operation == "Query").unwrap();
        let batch = seen.iter().find(|s| s.operation == BATCH_GET).unwrap();
        let read_consistently = |body: &Value| {
            body.get("ConsistentRead") == Some(&Value::Bool(true))
                || body["RequestItems"]
                    .as_object()
                    .into_iter()
                    .flat_map(|tables| tables.values())
                    .any(|t| t.get("ConsistentRead") == Some(&Value::Bool(true)))
        };
        assert_eq!(
            read_consistently(&query.body),
            consistent,
            "{:?}",
            query.body
        );
        assert_eq!(
            read_consistently(&batch.body),
            consistent,
            "{:?}",
            batch.body
        );
    }
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "feeds", cache(queries))]
struct Feed {
    #[dynamite(partition_key)]
    owner: String,
    #[dynamite(sort_key)]
    seq: u32,
}

#[tokio::test]
async fn concurrent_cached_reads_make_one_request_each() {
    let fx = Fx::start_with(sdk_standard_retries(), |b| {
        b.retry_policy(policy(3))
            .cache(dynamite::cache::MokaLayer::new(1 << 20))
    })
    .await;
    create::<Feed>(&fx).await;
    create::<Thing>(&fx).await;
    for seq in 0..5 {
        Feed {
            owner: "o".into(),
            seq,
        }
        .put(&fx.direct)
        .await
        .unwrap();
    }
    thing(1).put(&fx.direct).await.unwrap();
    // Slow answers, so that every caller misses while the first read is in flight.
    fx.proxy.script(
        Match::Operation(Operation::Query),
        Fault::Delay(Duration::from_millis(200)),
        FOREVER,
    );
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Delay(Duration::from_millis(200)),
        FOREVER,
    );

    // Ten identical cached queries at once: one Query (single flight), ten answers.
    let pages = futures::future::join_all(
        (0..10).map(|_| Feed::find(&fx.db).filter(Feed::OWNER.eq("o")).all()),
    )
    .await;
    assert!(pages
        .iter()
        .all(|p| p.as_ref().map(Vec::len).ok() == Some(5)));
    assert_eq!(fx.proxy.count("Query"), 1);

    // The same for gets of one item.
    let got = futures::future::join_all((0..10).map(|_| Thing::get(&fx.db, key(1)).send())).await;
    assert!(got
        .iter()
        .all(|g| matches!(g, Ok(Some(t)) if *t == thing(1))));
    assert_eq!(fx.proxy.count("GetItem"), 1);
}
