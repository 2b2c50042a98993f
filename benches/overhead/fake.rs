//! A fake DynamoDB on loopback with canned answers, on a thread and runtime of its own, so its
//! CPU time is not the client's. It answers instantly: what the benchmark measures is the
//! client's own cost.
//!
//! GetItem returns one item, Query returns `QUERY_ITEMS` items in one page, BatchGetItem
//! returns an item for every key asked (the key's attributes plus the canned ones), and writes
//! return only their consumed capacity.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Items in the one page a Query returns.
pub(crate) const QUERY_ITEMS: usize = 100;

/// The attributes every returned item has besides its key: a realistic user record.
fn canned_attributes() -> Map<String, Value> {
    let value = json!({
        "name": {"S": "Ada Lovelace"},
        "email": {"S": "ada.lovelace@example.com"},
        "age": {"N": "36"},
        "score": {"N": "1234.5678"},
        "active": {"BOOL": true},
        "created_at": {"N": "1732147200"},
        "tags": {"L": [{"S": "admin"}, {"S": "beta"}, {"S": "math"}]},
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

fn item(account: &str, id: &str) -> Value {
    let mut item = canned_attributes();
    item.insert("account".into(), json!({"S": account}));
    item.insert("id".into(), json!({"S": id}));
    Value::Object(item)
}

fn capacity(table: &str) -> Value {
    json!({"TableName": table, "CapacityUnits": 1.0})
}

/// The canned bodies, serialized once.
struct Canned {
    get: Vec<u8>,
    query: Vec<u8>,
    write: Vec<u8>,
    batch_write: Vec<u8>,
}

impl Canned {
    fn new(table: &str) -> Self {
        let items: Vec<Value> = (0..QUERY_ITEMS)
            .map(|i| item("acct-1", &format!("id-{i:05}")))
            .collect();
        Canned {
            get: body(
                &json!({"Item": item("acct-1", "id-00000"), "ConsumedCapacity": capacity(table)}),
            ),
            query: body(&json!({
                "Items": items,
                "Count": QUERY_ITEMS,
                "ScannedCount": QUERY_ITEMS,
                "ConsumedCapacity": capacity(table),
            })),
            write: body(&json!({"ConsumedCapacity": capacity(table)})),
            batch_write: body(
                &json!({"UnprocessedItems": {}, "ConsumedCapacity": [capacity(table)]}),
            ),
        }
    }
}

fn body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("json")
}

/// An item for every key of a BatchGetItem.
fn batch_get_answer(request: &[u8]) -> Vec<u8> {
    let request: Value = serde_json::from_slice(request).expect("a JSON request");
    let mut responses = Map::new();
    let mut consumed = Vec::new();
    for (table, asked) in request["RequestItems"].as_object().expect("RequestItems") {
        let items: Vec<Value> = asked["Keys"]
            .as_array()
            .expect("Keys")
            .iter()
            .map(|key| {
                let mut item = canned_attributes();
                for (name, value) in key.as_object().expect("a key") {
                    item.insert(name.clone(), value.clone());
                }
                Value::Object(item)
            })
            .collect();
        responses.insert(table.clone(), Value::Array(items));
        consumed.push(capacity(table));
    }
    body(&json!({"Responses": responses, "UnprocessedKeys": {}, "ConsumedCapacity": consumed}))
}

/// The running server.
pub(crate) struct FakeDynamo {
    pub(crate) endpoint: String,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl FakeDynamo {
    /// Starts it on a thread of its own.
    pub(crate) fn start(table: &str) -> Self {
        Self::start_with_delay(table, Duration::ZERO)
    }

    /// Starts one that waits `delay` before each answer (an added round trip).
    pub(crate) fn start_with_delay(table: &str, delay: Duration) -> Self {
        let canned = Arc::new(Canned::new(table));
        let requests = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let counter = requests.clone();
        let connections = Arc::new(AtomicU64::new(0));
        let accepted = connections.clone();
        std::thread::Builder::new()
            .name("fake-dynamodb".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    tx.send(listener.local_addr().expect("addr")).expect("send");
                    loop {
                        let (stream, _) = listener.accept().await.expect("accept");
                        stream.set_nodelay(true).ok();
                        accepted.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(serve(stream, canned.clone(), counter.clone(), delay));
                    }
                });
            })
            .expect("thread");
        let addr: SocketAddr = rx.recv().expect("the fake server's address");
        FakeDynamo {
            endpoint: format!("http://{addr}"),
            requests,
            connections,
        }
    }

    /// Requests answered so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Connections accepted so far (the client keeps them alive: a handful, not one per
    /// request).
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// One connection: requests answered in turn until the client closes it.
async fn serve(
    mut stream: TcpStream,
    canned: Arc<Canned>,
    requests: Arc<AtomicU64>,
    delay: Duration,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        // The head.
        let head_end = loop {
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
            if read_more(&mut stream, &mut buf).await == 0 {
                return;
            }
        };
        let head = std::str::from_utf8(&buf[..head_end]).expect("an ASCII head");
        let mut length = 0;
        let mut operation = String::new();
        for line in head.split("\r\n") {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("a length");
                } else if name.eq_ignore_ascii_case("x-amz-target") {
                    operation = value.trim().rsplit('.').next().unwrap_or("").to_owned();
                }
            }
        }
        while buf.len() < head_end + length {
            if read_more(&mut stream, &mut buf).await == 0 {
                return;
            }
        }
        let request = &buf[head_end..head_end + length];
        if std::env::var_os("OVERHEAD_DUMP").is_some() {
            eprintln!("{operation}: {}", String::from_utf8_lossy(request));
        }
        let answer: std::borrow::Cow<'_, [u8]> = match operation.as_str() {
            "GetItem" => canned.get.as_slice().into(),
            "Query" => canned.query.as_slice().into(),
            "PutItem" | "UpdateItem" | "DeleteItem" => canned.write.as_slice().into(),
            "BatchWriteItem" => canned.batch_write.as_slice().into(),
            "BatchGetItem" => batch_get_answer(request).into(),
            other => panic!("the fake DynamoDB has no answer for {other:?}"),
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
             x-amzn-requestid: fake\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        let mut out = Vec::with_capacity(head.len() + answer.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&answer);
        if stream.write_all(&out).await.is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        buf.drain(..head_end + length);
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            n
        }
        Err(_) => 0,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
