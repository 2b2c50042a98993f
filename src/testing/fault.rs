//! The fault-injection proxy: [`FaultProxy`], scripted with [`Match`] and [`Fault`], logging
//! [`Seen`] requests.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::http::{authority, forward, read_request, write_response, Request, Response, Upstream};

/// Which requests a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Match {
    /// Every request (but see [`Fault::UnprocessedHalf`] / [`Fault::UnprocessedAll`], which only
    /// ever match batch operations).
    Any,
    /// Requests for one of dynamite's operations (`Operation::BatchWriteItem`).
    Operation(crate::Operation),
    /// Requests for any operation, by its name in `X-Amz-Target` after the dot (for SDK calls
    /// dynamite does not make itself, e.g. `"ListTables"`).
    Named(&'static str),
}

impl Match {
    fn matches(&self, operation: &str) -> bool {
        match self {
            Match::Any => true,
            Match::Operation(op) => op.name() == operation,
            Match::Named(name) => *name == operation,
        }
    }
}

/// What the proxy does to a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// 400 `ThrottlingException` (retryable, throttling).
    Throttling,
    /// 400 `ProvisionedThroughputExceededException` (retryable, throttling).
    ProvisionedThroughputExceeded,
    /// 400 `RequestLimitExceeded` (retryable, throttling).
    RequestLimitExceeded,
    /// 500 `InternalServerError` (retryable, transient).
    InternalServerError,
    /// 503 `ServiceUnavailable` (retryable, transient).
    ServiceUnavailable,
    /// 400 `ValidationException` (not retryable).
    ValidationError,
    /// 400 `AccessDeniedException` (not retryable).
    AccessDenied,
    /// 400 `ExpiredIteratorException`, as DynamoDB Streams answers `GetRecords` with an iterator
    /// older than 15 minutes (not retryable: a new iterator is needed).
    ExpiredIterator,
    /// 400 `TrimmedDataAccessException`, as DynamoDB Streams answers a read of records past
    /// its 24-hour retention (not retryable).
    TrimmedDataAccess,
    /// 400 `LimitExceededException`, DynamoDB Streams' throttling answer (retryable).
    StreamLimitExceeded,
    /// Sleep (real time), then forward unchanged.
    Delay(Duration),
    /// Read the request, then close the client's connection without answering: the request
    /// never reaches the server. The SDK sees a transport error.
    DropBeforeForwarding,
    /// Forward the request, read the server's whole answer (so the server has applied it), then
    /// close the client's connection without answering: the answer is lost after the write
    /// happened. The SDK sees a transport error; a retry repeats an applied request.
    DropAfterApplied,
    /// `BatchWriteItem` / `BatchGetItem` only: forward only the first half (rounded up) of each
    /// table's items / keys, in order, and answer with the upstream response plus the other half
    /// appended to `UnprocessedItems` / `UnprocessedKeys`.
    UnprocessedHalf,
    /// `BatchWriteItem` / `BatchGetItem` only: answer 200 with every item / key unprocessed,
    /// forwarding nothing.
    UnprocessedAll,
}

impl Fault {
    /// A short name, as recorded in [`Seen::fault`]: `"Throttling"`, `"Delay"`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Throttling => "Throttling",
            Fault::ProvisionedThroughputExceeded => "ProvisionedThroughputExceeded",
            Fault::RequestLimitExceeded => "RequestLimitExceeded",
            Fault::InternalServerError => "InternalServerError",
            Fault::ServiceUnavailable => "ServiceUnavailable",
            Fault::ValidationError => "ValidationError",
            Fault::AccessDenied => "AccessDenied",
            Fault::ExpiredIterator => "ExpiredIterator",
            Fault::TrimmedDataAccess => "TrimmedDataAccess",
            Fault::StreamLimitExceeded => "StreamLimitExceeded",
            Fault::Delay(_) => "Delay",
            Fault::DropBeforeForwarding => "DropBeforeForwarding",
            Fault::DropAfterApplied => "DropAfterApplied",
            Fault::UnprocessedHalf => "UnprocessedHalf",
            Fault::UnprocessedAll => "UnprocessedAll",
        }
    }

    /// For the error faults: the error code the SDK reports (`meta().code()`), e.g.
    /// `"ThrottlingException"`. `None` for the others.
    pub fn code(&self) -> Option<&'static str> {
        self.error()
            .map(|(_, type_, _)| type_.rsplit('#').next().unwrap_or(type_))
    }

    /// For the error faults: the HTTP status the synthetic response carries.
    pub fn status(&self) -> Option<u16> {
        self.error().map(|(status, _, _)| status)
    }

    /// (status, `__type`, message) of the synthetic error response, as DynamoDB words them.
    fn error(&self) -> Option<(u16, &'static str, &'static str)> {
        Some(match self {
            Fault::Throttling => (
                400,
                "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                "Throughput exceeds the current capacity for one or more global secondary indexes. (injected by fault proxy)",
            ),
            Fault::ProvisionedThroughputExceeded => (
                400,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded. (injected by fault proxy)",
            ),
            Fault::RequestLimitExceeded => (
                400,
                "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded",
                "Throughput exceeds the current throughput limit for your account. (injected by fault proxy)",
            ),
            Fault::InternalServerError => (
                500,
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "Internal server error (injected by fault proxy)",
            ),
            Fault::ServiceUnavailable => (
                503,
                "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
                "The service is currently unavailable or busy. (injected by fault proxy)",
            ),
            Fault::ValidationError => (
                400,
                "com.amazon.coral.validate#ValidationException",
                "One or more parameter values were invalid (injected by fault proxy)",
            ),
            Fault::AccessDenied => (
                400,
                "com.amazon.coral.service#AccessDeniedException",
                "User is not authorized to perform this action (injected by fault proxy)",
            ),
            Fault::ExpiredIterator => (
                400,
                "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException",
                "Iterator expired. The iterator was created more than 15 minutes ago. (injected by fault proxy)",
            ),
            Fault::TrimmedDataAccess => (
                400,
                "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException",
                "The operation attempted to read past the oldest stream record in a shard. (injected by fault proxy)",
            ),
            Fault::StreamLimitExceeded => (
                400,
                "com.amazonaws.dynamodb.v20120810#LimitExceededException",
                "Rate exceeded for shard (injected by fault proxy)",
            ),
            _ => return None,
        })
    }

    /// Whether the fault can apply to a request for `operation`; rules whose fault cannot are
    /// skipped (and not used up).
    fn applies_to(&self, operation: &str) -> bool {
        match self {
            Fault::UnprocessedHalf | Fault::UnprocessedAll => {
                operation == BATCH_WRITE || operation == BATCH_GET
            }
            _ => true,
        }
    }
}

const BATCH_WRITE: &str = "BatchWriteItem";
const BATCH_GET: &str = "BatchGetItem";

/// One request the proxy received, from [`FaultProxy::requests`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Seen {
    /// The operation from `X-Amz-Target` (`"PutItem"`), or `""` when the header is missing.
    pub operation: String,
    /// [`Fault::name`] of the fault applied, `None` when forwarded untouched.
    pub fault: Option<String>,
    /// When the request had been read in full.
    pub at: Instant,
    /// The request body as the client sent it (`Value::Null` when not JSON).
    pub body: Value,
}

struct Rule {
    on: Match,
    fault: Fault,
    left: usize,
    /// The chance that a matching request gets the fault (1.0: every one).
    rate: f64,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
    connections: usize,
}

/// A fault-injection HTTP proxy between an SDK client and a local DynamoDB server.
///
/// Retries, back-off and unprocessed-item handling are hard to test against a server that
/// never fails. The proxy sits between the client and the server and, per a script of rules
/// ([`script`](Self::script)), forwards a request unchanged, forwards it late or trimmed,
/// answers it with a synthetic DynamoDB error, or drops the connection before or after the
/// server applied it ([`Fault`]). It logs every request it sees ([`Seen`]), so a test can
/// assert how many attempts a call took and what each one carried.
///
/// ```no_run
/// use dynamite::testing::{Fault, FaultProxy, Match, TestDb};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let db = TestDb::new().await?;
/// let proxy = FaultProxy::start(db.endpoint()).await; // or db.fault_proxy().await
/// let client = db.client_through(&proxy); // a dynamite::Client whose requests go through it
///
/// // The next ListTables request is throttled; later ones go through.
/// proxy.script(Match::Named("ListTables"), Fault::Throttling, 1);
/// // (A raw SDK call: dynamite's retries do not apply, and it turned the SDK's off.)
/// let err = client.sdk().list_tables().send().await.unwrap_err();
/// assert_eq!(err.into_service_error().meta().code(), Some("ThrottlingException"));
/// client.sdk().list_tables().send().await?;
/// assert_eq!(proxy.count("ListTables"), 2);
/// assert_eq!(proxy.requests()[0].fault.as_deref(), Some("Throttling"));
/// # Ok(()) }
/// ```
///
/// The proxy speaks just enough HTTP/1.1 for the SDK: request line, headers (case-insensitive),
/// a `Content-Length` or chunked body, `Expect: 100-continue`, and keep-alive (many requests
/// per client connection). Every forwarded request goes to the upstream on a fresh connection
/// with `Connection: close`; the upstream response (`Content-Length`, chunked, or read to EOF)
/// is relayed back with a `Content-Length`. Requests are not re-signed: the Host header and,
/// for [`Fault::UnprocessedHalf`], the body change under the SigV4 signature, which DynamoDB
/// Local and moto do not check (a real AWS endpoint would). Plain `http://` upstreams only.
///
/// Dropping the proxy stops accepting and closes every connection it holds.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Binds `127.0.0.1:0` and starts serving in the current Tokio runtime. `upstream` is the real
    /// server, `http://host:port` (plain HTTP only).
    ///
    /// # Panics
    ///
    /// When [`try_start`](Self::try_start) fails: an `https://` or empty upstream, or no free
    /// local port.
    pub async fn start(upstream: &str) -> FaultProxy {
        match FaultProxy::try_start(upstream).await {
            Ok(proxy) => proxy,
            Err(err) => panic!("fault proxy for {upstream:?}: {err}"),
        }
    }

    /// [`start`](Self::start), returning the error instead of panicking.
    pub async fn try_start(upstream: &str) -> io::Result<FaultProxy> {
        let upstream = Arc::new(Upstream {
            authority: authority(upstream)?,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let accept = tokio::spawn(accept_loop(listener, upstream, state.clone()));
        Ok(FaultProxy {
            addr,
            state,
            accept,
        })
    }

    /// A proxy that delays every request by `delay`: a stand-in for the round trip to
    /// DynamoDB when benchmarking against a server on loopback.
    pub async fn with_round_trip(upstream: &str, delay: std::time::Duration) -> FaultProxy {
        let proxy = FaultProxy::start(upstream).await;
        proxy.script(Match::Any, Fault::Delay(delay), usize::MAX);
        proxy
    }

    /// The URL to give the SDK: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client with default settings whose requests go through this proxy (credentials and
    /// region from the environment, as [`Client::from_env`](crate::Client::from_env)).
    pub async fn client(&self) -> crate::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .load()
            .await;
        crate::Client::new(aws_sdk_dynamodb::Client::new(&config))
    }

    /// Appends a rule: the next `times` requests it matches get `fault`, then it is used up.
    /// Rules are tried in the order they were added; the first live one that matches wins.
    /// `times == 0` adds nothing; `usize::MAX` is as good as forever.
    pub fn script(&self, on: Match, fault: Fault, times: usize) {
        if times > 0 {
            self.lock().rules.push(Rule {
                on,
                fault,
                left: times,
                rate: 1.0,
            });
        }
    }

    /// Appends a rule that gives `fault` to each request it matches with probability `rate`
    /// (0.0 to 1.0), until [`clear`](Self::clear): random faults for soak tests, e.g. 30% of
    /// answers lost with `script_rate(Match::Any, Fault::DropAfterApplied, 0.3)`. A request the
    /// draw spares goes on to the next rule.
    pub fn script_rate(&self, on: Match, fault: Fault, rate: f64) {
        self.lock().rules.push(Rule {
            on,
            fault,
            left: usize::MAX,
            rate: rate.clamp(0.0, 1.0),
        });
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// How many requests for `operation` (`"BatchWriteItem"`) were seen, faulted or not.
    pub fn count(&self, operation: &str) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|seen| seen.operation == operation)
            .count()
    }

    /// How many client connections the proxy has accepted (the SDK pools and reuses them).
    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    /// How many rules are not used up yet.
    pub fn pending(&self) -> usize {
        self.lock().rules.len()
    }

    /// Forgets every rule and the request log (the connection count stays).
    pub fn clear(&self) {
        let mut state = self.lock();
        state.rules.clear();
        state.seen.clear();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks (a JoinSet), so this ends them too.
        self.accept.abort();
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking test thread must not turn every later call into a second panic.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(listener: TcpListener, upstream: Arc<Upstream>, state: Arc<Mutex<State>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    lock(&state).connections += 1;
                    connections.spawn(serve(stream, upstream.clone(), state.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One client connection
// ---------------------------------------------------------------------------------------------

async fn serve(mut stream: TcpStream, upstream: Arc<Upstream>, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    loop {
        let request = match read_request(&mut stream, &mut buf).await {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => return,
        };
        let operation = request.operation();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);

        let fault = {
            let mut state = lock(&state);
            let fault = take_fault(&mut state.rules, &operation);
            state.seen.push(Seen {
                operation: operation.clone(),
                fault: fault.as_ref().map(|f| f.name().to_string()),
                at: Instant::now(),
                body: body.clone(),
            });
            fault
        };

        let response = match fault {
            None => forward_or_502(&upstream, &request, &request.body).await,
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                forward_or_502(&upstream, &request, &request.body).await
            }
            Some(Fault::DropBeforeForwarding) => return,
            Some(Fault::DropAfterApplied) => {
                if let Err(err) = forward(&upstream, &request, &request.body).await {
                    tracing::warn!(
                        target: "dynamite::testing",
                        upstream = %upstream.authority,
                        error = %err,
                        "fault proxy: forwarding a request to drop after it was applied failed"
                    );
                }
                return;
            }
            Some(Fault::UnprocessedHalf) => {
                unprocessed_half(&upstream, &request, &operation, &body).await
            }
            Some(Fault::UnprocessedAll) => unprocessed_all(&operation, &body),
            Some(error) => {
                let (status, type_, message) = error.error().expect("error fault");
                synthetic(status, &json!({ "__type": type_, "message": message }))
            }
        };

        let close = request.wants_close();
        if write_response(&mut stream, &response, close).await.is_err() || close {
            return;
        }
    }
}

/// The fault of the first live rule that matches, using one application of it up.
fn take_fault(rules: &mut Vec<Rule>, operation: &str) -> Option<Fault> {
    let index = rules.iter().position(|rule| {
        rule.left > 0
            && rule.on.matches(operation)
            && rule.fault.applies_to(operation)
            && (rule.rate >= 1.0 || fastrand::f64() < rule.rate)
    })?;
    let rule = &mut rules[index];
    rule.left -= 1;
    let fault = rule.fault.clone();
    if rule.left == 0 {
        rules.remove(index);
    }
    Some(fault)
}

async fn forward_or_502(upstream: &Upstream, request: &Request, body: &[u8]) -> Response {
    match forward(upstream, request, body).await {
        Ok(response) => response,
        Err(err) => {
            tracing::warn!(
                target: "dynamite::testing",
                upstream = %upstream.authority,
                error = %err,
                "fault proxy: forwarding failed; answering 502"
            );
            synthetic(
                502,
                &json!({
                    "__type": "FaultProxyUpstreamError",
                    "message": format!("fault proxy could not reach {}: {err}", upstream.authority),
                }),
            )
        }
    }
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// A response made up by the proxy, shaped like DynamoDB's.
fn synthetic(status: u16, body: &Value) -> Response {
    let id = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
    Response {
        status,
        reason: reason(status).to_string(),
        headers: vec![
            ("Content-Type".into(), "application/x-amz-json-1.0".into()),
            ("x-amzn-RequestId".into(), format!("FAULTPROXY{id:026}")),
        ],
        body: serde_json::to_vec(body).expect("json"),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// Batch faults
// ---------------------------------------------------------------------------------------------

/// Splits a batch request's `RequestItems` per table into the first half (rounded up), which is
/// forwarded, and the rest. Returns (request body to forward, the rest as a `RequestItems` map).
fn split_half(operation: &str, body: &Value) -> Option<(Value, Map<String, Value>)> {
    let items = body.get("RequestItems")?.as_object()?;
    let mut forwarded = Map::new();
    let mut rest = Map::new();
    for (table, entry) in items {
        match operation {
            BATCH_WRITE => {
                let writes = entry.as_array()?;
                let keep = writes.len().div_ceil(2);
                forwarded.insert(table.clone(), Value::Array(writes[..keep].to_vec()));
                if keep < writes.len() {
                    rest.insert(table.clone(), Value::Array(writes[keep..].to_vec()));
                }
            }
            BATCH_GET => {
                let keys = entry.get("Keys")?.as_array()?;
                let keep = keys.len().div_ceil(2);
                let mut first = entry.clone();
                first["Keys"] = Value::Array(keys[..keep].to_vec());
                forwarded.insert(table.clone(), first);
                if keep < keys.len() {
                    let mut second = entry.clone();
                    second["Keys"] = Value::Array(keys[keep..].to_vec());
                    rest.insert(table.clone(), second);
                }
            }
            _ => return None,
        }
    }
    let mut forward = body.clone();
    forward["RequestItems"] = Value::Object(forwarded);
    Some((forward, rest))
}

async fn unprocessed_half(
    upstream: &Upstream,
    request: &Request,
    operation: &str,
    body: &Value,
) -> Response {
    let Some((forward_body, rest)) = split_half(operation, body) else {
        // Not a well-formed batch request: let the server say what is wrong with it.
        return forward_or_502(upstream, request, &request.body).await;
    };
    let forward_bytes = serde_json::to_vec(&forward_body).expect("json");
    let mut response = forward_or_502(upstream, request, &forward_bytes).await;
    if response.status != 200 {
        return response;
    }
    let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(&response.body) else {
        return response;
    };
    let field = if operation == BATCH_WRITE {
        "UnprocessedItems"
    } else {
        "UnprocessedKeys"
    };
    let unprocessed = answer
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !unprocessed.is_object() {
        *unprocessed = Value::Object(Map::new());
    }
    let unprocessed = unprocessed.as_object_mut().expect("object");
    for (table, extra) in rest {
        match (operation, unprocessed.get_mut(&table)) {
            (BATCH_WRITE, Some(Value::Array(existing))) => {
                existing.extend(extra.as_array().cloned().unwrap_or_default());
            }
            (BATCH_GET, Some(existing)) if existing.get("Keys").is_some_and(Value::is_array) => {
                let keys = existing["Keys"].as_array_mut().expect("array");
                keys.extend(extra["Keys"].as_array().cloned().unwrap_or_default());
            }
            _ => {
                unprocessed.insert(table, extra);
            }
        }
    }
    response.body = serde_json::to_vec(&Value::Object(answer)).expect("json");
    // The body changed: a checksum of the old one would be a lie.
    response
        .headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case("x-amz-crc32"));
    response
}

fn unprocessed_all(operation: &str, body: &Value) -> Response {
    let items = body
        .get("RequestItems")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let answer = if operation == BATCH_WRITE {
        json!({ "UnprocessedItems": items })
    } else {
        let responses: Map<String, Value> = items
            .as_object()
            .map(|tables| tables.keys().map(|t| (t.clone(), json!([]))).collect())
            .unwrap_or_default();
        json!({ "Responses": responses, "UnprocessedKeys": items })
    };
    synthetic(200, &answer)
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1, by hand
// ---------------------------------------------------------------------------------------------
