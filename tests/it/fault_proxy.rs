//! Self-test of the fault-injection proxy `dynamite::testing::FaultProxy`: the raw
//! `aws_sdk_dynamodb` client, with its own retries off, talks to the local server through the
//! proxy, and every fault is checked from the SDK's side (and, for batches, against the server
//! directly).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    PutRequest, ScalarAttributeType, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use dynamite::testing::{Fault, FaultProxy, Match};
use dynamite::Operation;

type Item = HashMap<String, AttributeValue>;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn upstream() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .expect(
            "the fault proxy self-test needs a DynamoDB endpoint: run it through \
             `scripts/with-services -- cargo test`, or set AWS_ENDPOINT_URL_DYNAMODB",
        )
}

fn unique_table(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "fp-{what}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A proxy in front of the local server, a client through it (no SDK retries), a client
/// straight to the server, and `tables` fresh tables created through the proxy.
struct Fixture {
    proxy: FaultProxy,
    via_proxy: Client,
    direct: Client,
    tables: Vec<String>,
}

impl Fixture {
    async fn new(what: &str, tables: usize) -> Fixture {
        let upstream = upstream();
        let proxy = FaultProxy::start(&upstream).await;
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(proxy.endpoint())
            .load()
            .await;
        // No SDK retries: each call is exactly one request through the proxy.
        let via_proxy = Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&shared)
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        let direct_config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(upstream)
            .load()
            .await;
        let direct = Client::new(&direct_config);

        let mut names = Vec::new();
        for _ in 0..tables {
            let table = unique_table(what);
            via_proxy
                .create_table()
                .table_name(&table)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("pk")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .unwrap(),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("pk")
                        .key_type(KeyType::Hash)
                        .build()
                        .unwrap(),
                )
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .expect("create table through the proxy");
            names.push(table);
        }
        assert_eq!(
            proxy.count("CreateTable"),
            tables,
            "the client must go through the proxy"
        );
        proxy.clear();
        Fixture {
            proxy,
            via_proxy,
            direct,
            tables: names,
        }
    }

    fn table(&self) -> &str {
        &self.tables[0]
    }

    /// Keys of every item in `table`, read from the server directly, sorted.
    async fn stored_keys(&self, table: &str) -> Vec<String> {
        let out = self
            .direct
            .scan()
            .table_name(table)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = out.items().iter().map(pk).collect();
        keys.sort();
        keys
    }

    async fn put_direct(&self, table: &str, keys: &[String]) {
        for key in keys {
            self.direct
                .put_item()
                .table_name(table)
                .set_item(Some(item(key)))
                .send()
                .await
                .unwrap();
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Item>, String> {
        self.via_proxy
            .get_item()
            .table_name(self.table())
            .key("pk", AttributeValue::S(key.into()))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item().cloned())
            .map_err(|err| format!("{:?}", err.into_service_error().meta().code()))
    }

    async fn finish(self) {
        for table in &self.tables {
            self.direct
                .delete_table()
                .table_name(table)
                .send()
                .await
                .expect("delete test table");
        }
    }
}

fn item(key: &str) -> Item {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(key.to_string())),
        (
            "payload".to_string(),
            AttributeValue::S(format!("value of {key}")),
        ),
    ])
}

fn key_of(key: &str) -> Item {
    HashMap::from([("pk".to_string(), AttributeValue::S(key.to_string()))])
}

fn pk(item: &Item) -> String {
    item["pk"].as_s().unwrap().clone()
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

fn puts(keys: &[String]) -> Vec<WriteRequest> {
    keys.iter()
        .map(|key| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item(key)))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect()
}

fn put_keys(writes: &[WriteRequest]) -> Vec<String> {
    writes
        .iter()
        .map(|w| pk(w.put_request().unwrap().item()))
        .collect()
}

fn faults(proxy: &FaultProxy) -> Vec<(String, Option<String>)> {
    proxy
        .requests()
        .into_iter()
        .map(|seen| (seen.operation, seen.fault))
        .collect()
}

#[tokio::test]
async fn passes_requests_through_untouched() {
    let fx = Fixture::new("pass", 1).await;

    fx.via_proxy
        .put_item()
        .table_name(fx.table())
        .set_item(Some(item("a")))
        .send()
        .await
        .unwrap();
    let got = fx.get("a").await.unwrap().expect("item through the proxy");
    assert_eq!(got, item("a"));
    assert_eq!(fx.stored_keys(fx.table()).await, vec!["a".to_string()]);

    assert_eq!(fx.proxy.count("PutItem"), 1);
    assert_eq!(fx.proxy.count("GetItem"), 1);
    let seen = fx.proxy.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].operation, "PutItem");
    assert_eq!(seen[0].fault, None);
    assert_eq!(seen[0].body["TableName"], fx.table());
    assert_eq!(seen[0].body["Item"]["pk"]["S"], "a");
    assert!(seen[0].at <= seen[1].at);

    fx.finish().await;
}

#[tokio::test]
async fn error_faults_reach_the_sdk_with_their_codes() {
    let fx = Fixture::new("errors", 1).await;
    fx.put_direct(fx.table(), &["a".to_string()]).await;

    let cases = [
        (Fault::Throttling, 400, "ThrottlingException"),
        (
            Fault::ProvisionedThroughputExceeded,
            400,
            "ProvisionedThroughputExceededException",
        ),
        (Fault::RequestLimitExceeded, 400, "RequestLimitExceeded"),
        (Fault::InternalServerError, 500, "InternalServerError"),
        (Fault::ServiceUnavailable, 503, "ServiceUnavailable"),
        (Fault::ValidationError, 400, "ValidationException"),
        (Fault::AccessDenied, 400, "AccessDeniedException"),
    ];
    for (n, (fault, status, code)) in cases.iter().enumerate() {
        assert_eq!(fault.code(), Some(*code));
        fx.proxy
            .script(Match::Operation(Operation::GetItem), fault.clone(), 1);
        let err = fx
            .via_proxy
            .get_item()
            .table_name(fx.table())
            .key("pk", AttributeValue::S("a".into()))
            .send()
            .await
            .expect_err("the fault must surface as an error");
        let raw_status = err.raw_response().map(|r| r.status().as_u16());
        assert_eq!(raw_status, Some(*status), "{fault:?}");
        let service = err.into_service_error();
        assert_eq!(service.meta().code(), Some(*code), "{fault:?}: {service:?}");
        assert!(
            service
                .meta()
                .message()
                .unwrap()
                .contains("injected by fault proxy"),
            "{fault:?}: {service:?}"
        );
        // The modeled errors come back as their own variants, not as "unhandled".
        match fault {
            Fault::Throttling => assert!(service.is_throttling_exception()),
            Fault::ProvisionedThroughputExceeded => {
                assert!(service.is_provisioned_throughput_exceeded_exception())
            }
            Fault::RequestLimitExceeded => assert!(service.is_request_limit_exceeded()),
            Fault::InternalServerError => assert!(service.is_internal_server_error()),
            _ => {}
        }
        // Used up: the next request goes through.
        assert_eq!(fx.get("a").await.unwrap().unwrap(), item("a"));
        assert_eq!(fx.proxy.count("GetItem"), 2 * (n + 1));
    }
    let faulted: Vec<Option<String>> = fx
        .proxy
        .requests()
        .into_iter()
        .map(|seen| seen.fault)
        .collect();
    let mut expected = Vec::new();
    for (fault, _, _) in &cases {
        expected.push(Some(fault.name().to_string()));
        expected.push(None);
    }
    assert_eq!(faulted, expected);
    assert_eq!(fx.proxy.pending(), 0);

    fx.finish().await;
}

#[tokio::test]
async fn delay_forwards_after_sleeping() {
    let fx = Fixture::new("delay", 1).await;
    fx.put_direct(fx.table(), &["a".to_string()]).await;

    let delay = Duration::from_millis(400);
    fx.proxy
        .script(Match::Operation(Operation::GetItem), Fault::Delay(delay), 1);
    let started = Instant::now();
    assert_eq!(fx.get("a").await.unwrap().unwrap(), item("a"));
    assert!(started.elapsed() >= delay, "took {:?}", started.elapsed());

    let started = Instant::now();
    assert_eq!(fx.get("a").await.unwrap().unwrap(), item("a"));
    assert!(started.elapsed() < delay, "took {:?}", started.elapsed());
    assert_eq!(
        faults(&fx.proxy),
        vec![
            ("GetItem".to_string(), Some("Delay".to_string())),
            ("GetItem".to_string(), None),
        ]
    );

    fx.finish().await;
}

#[tokio::test]
async fn dropped_connection_is_a_dispatch_error_and_the_next_request_works() {
    let fx = Fixture::new("drop", 1).await;
    fx.put_direct(fx.table(), &["a".to_string()]).await;

    // Warm the connection pool so the drop hits a reused keep-alive connection.
    assert_eq!(fx.get("a").await.unwrap().unwrap(), item("a"));
    let connections = fx.proxy.connections();

    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::DropBeforeForwarding,
        1,
    );
    let err = fx
        .via_proxy
        .get_item()
        .table_name(fx.table())
        .key("pk", AttributeValue::S("a".into()))
        .send()
        .await
        .expect_err("a dropped connection must fail the call");
    // hyper's IncompleteMessage, which the SDK files as a transient (retryable) dispatch failure.
    match &err {
        SdkError::DispatchFailure(failure) => assert_eq!(
            failure.as_other(),
            Some(aws_smithy_types::retry::ErrorKind::TransientError),
            "{err:?}"
        ),
        other => panic!("expected a dispatch failure, got {other:?}"),
    }

    assert_eq!(fx.proxy.connections(), connections, "no new connection yet");
    assert_eq!(fx.get("a").await.unwrap().unwrap(), item("a"));
    assert_eq!(
        fx.proxy.connections(),
        connections + 1,
        "the SDK reconnected"
    );
    assert_eq!(fx.proxy.count("GetItem"), 3);
    assert_eq!(
        faults(&fx.proxy)[1],
        (
            "GetItem".to_string(),
            Some("DropBeforeForwarding".to_string())
        )
    );

    fx.finish().await;
}

#[tokio::test]
async fn drop_after_applied_loses_the_answer_of_an_applied_write() {
    let fx = Fixture::new("dropapplied", 1).await;

    fx.proxy.script(
        Match::Operation(Operation::PutItem),
        Fault::DropAfterApplied,
        1,
    );
    let err = fx
        .via_proxy
        .put_item()
        .table_name(fx.table())
        .set_item(Some(item("a")))
        .send()
        .await
        .expect_err("the client never gets an answer");
    // A transport error, as for a connection dropped before forwarding ...
    match &err {
        SdkError::DispatchFailure(failure) => assert_eq!(
            failure.as_other(),
            Some(aws_smithy_types::retry::ErrorKind::TransientError),
            "{err:?}"
        ),
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
    // ... but the server applied the write.
    assert_eq!(fx.stored_keys(fx.table()).await, vec!["a".to_string()]);
    assert_eq!(
        faults(&fx.proxy),
        vec![("PutItem".to_string(), Some("DropAfterApplied".to_string()))]
    );
    assert_eq!(fx.proxy.pending(), 0);

    // The rule is used up: the next request is answered.
    assert_eq!(fx.get("a").await.unwrap().unwrap(), item("a"));

    fx.finish().await;
}

#[tokio::test]
async fn unprocessed_half_on_batch_write_forwards_the_first_half() {
    let fx = Fixture::new("bwhalf", 2).await;
    let (big, small) = (fx.tables[0].clone(), fx.tables[1].clone());
    let ten = keys("k", 10);
    let three = keys("s", 3);

    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedHalf,
        1,
    );
    let out = fx
        .via_proxy
        .batch_write_item()
        .request_items(&big, puts(&ten))
        .request_items(&small, puts(&three))
        .send()
        .await
        .unwrap();

    // What reached the server: the first half of each table, rounded up.
    assert_eq!(fx.stored_keys(&big).await, ten[..5].to_vec());
    assert_eq!(fx.stored_keys(&small).await, three[..2].to_vec());
    // What came back: the rest, in order.
    let unprocessed = out.unprocessed_items().unwrap();
    assert_eq!(unprocessed.len(), 2);
    assert_eq!(put_keys(&unprocessed[&big]), ten[5..].to_vec());
    assert_eq!(put_keys(&unprocessed[&small]), three[2..].to_vec());
    assert_eq!(
        unprocessed[&big][0].put_request().unwrap().item(),
        &item("k05")
    );

    // The log keeps the request as the client sent it.
    let seen = fx.proxy.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].fault.as_deref(), Some("UnprocessedHalf"));
    assert_eq!(
        seen[0].body["RequestItems"][big.as_str()]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    // Resending the rest through the (now transparent) proxy completes the batch.
    let out = fx
        .via_proxy
        .batch_write_item()
        .set_request_items(Some(unprocessed.clone()))
        .send()
        .await
        .unwrap();
    assert!(out.unprocessed_items().is_none_or(HashMap::is_empty));
    assert_eq!(fx.stored_keys(&big).await, ten);
    assert_eq!(fx.stored_keys(&small).await, three);
    assert_eq!(fx.proxy.count("BatchWriteItem"), 2);

    fx.finish().await;
}

#[tokio::test]
async fn unprocessed_half_on_batch_get_returns_the_first_half() {
    let fx = Fixture::new("bghalf", 1).await;
    let table = fx.table().to_string();
    let ten = keys("k", 10);
    fx.put_direct(&table, &ten).await;

    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedHalf,
        1,
    );
    let request = KeysAndAttributes::builder()
        .set_keys(Some(ten.iter().map(|k| key_of(k)).collect()))
        .consistent_read(true)
        .projection_expression("pk, payload")
        .build()
        .unwrap();
    let out = fx
        .via_proxy
        .batch_get_item()
        .request_items(&table, request)
        .send()
        .await
        .unwrap();

    let mut got: Vec<String> = out.responses().unwrap()[&table].iter().map(pk).collect();
    got.sort();
    assert_eq!(got, ten[..5].to_vec());
    let unprocessed = &out.unprocessed_keys().unwrap()[&table];
    let rest: Vec<String> = unprocessed.keys().iter().map(pk).collect();
    assert_eq!(rest, ten[5..].to_vec());
    // The rest keeps the table's read options, ready to resend.
    assert_eq!(unprocessed.consistent_read(), Some(true));
    assert_eq!(unprocessed.projection_expression(), Some("pk, payload"));
    assert_eq!(
        fx.proxy.requests()[0].body["RequestItems"][table.as_str()]["Keys"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    let out = fx
        .via_proxy
        .batch_get_item()
        .set_request_items(out.unprocessed_keys().cloned())
        .send()
        .await
        .unwrap();
    let mut got: Vec<String> = out.responses().unwrap()[&table].iter().map(pk).collect();
    got.sort();
    assert_eq!(got, ten[5..].to_vec());
    assert_eq!(fx.proxy.count("BatchGetItem"), 2);

    fx.finish().await;
}

#[tokio::test]
async fn unprocessed_all_forwards_nothing() {
    let fx = Fixture::new("all", 1).await;
    let table = fx.table().to_string();
    let four = keys("k", 4);

    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedAll,
        1,
    );
    let out = fx
        .via_proxy
        .batch_write_item()
        .request_items(&table, puts(&four))
        .send()
        .await
        .unwrap();
    assert_eq!(put_keys(&out.unprocessed_items().unwrap()[&table]), four);
    assert!(fx.stored_keys(&table).await.is_empty());

    fx.put_direct(&table, &four).await;
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        1,
    );
    let out = fx
        .via_proxy
        .batch_get_item()
        .request_items(
            &table,
            KeysAndAttributes::builder()
                .set_keys(Some(four.iter().map(|k| key_of(k)).collect()))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.responses().unwrap()[&table].is_empty());
    let rest: Vec<String> = out.unprocessed_keys().unwrap()[&table]
        .keys()
        .iter()
        .map(pk)
        .collect();
    assert_eq!(rest, four);
    assert_eq!(
        faults(&fx.proxy),
        vec![
            (
                "BatchWriteItem".to_string(),
                Some("UnprocessedAll".to_string())
            ),
            (
                "BatchGetItem".to_string(),
                Some("UnprocessedAll".to_string())
            ),
        ]
    );

    fx.finish().await;
}

#[tokio::test]
async fn rules_are_consumed_in_order() {
    let fx = Fixture::new("rules", 1).await;
    fx.put_direct(fx.table(), &["a".to_string()]).await;
    let put = || {
        fx.via_proxy
            .put_item()
            .table_name(fx.table())
            .set_item(Some(item("b")))
            .send()
    };

    fx.proxy
        .script(Match::Operation(Operation::GetItem), Fault::Throttling, 2);
    fx.proxy.script(Match::Any, Fault::InternalServerError, 1);
    fx.proxy.script(
        Match::Operation(Operation::PutItem),
        Fault::ValidationError,
        1,
    );
    // Batch-only faults never match other operations, and are not used up by them.
    fx.proxy.script(Match::Any, Fault::UnprocessedAll, 1);
    assert_eq!(fx.proxy.pending(), 4);

    let throttled = Err("Some(\"ThrottlingException\")".to_string());
    assert_eq!(fx.get("a").await, throttled);
    assert_eq!(fx.get("a").await, throttled);
    assert_eq!(fx.proxy.pending(), 3);
    assert_eq!(
        fx.get("a").await,
        Err("Some(\"InternalServerError\")".to_string())
    );
    let err = put().await.unwrap_err().into_service_error();
    assert_eq!(err.meta().code(), Some("ValidationException"));
    assert_eq!(fx.proxy.pending(), 1);
    assert_eq!(fx.get("a").await.unwrap().unwrap(), item("a"));
    put().await.unwrap();
    let out = fx
        .via_proxy
        .batch_write_item()
        .request_items(fx.table(), puts(&["c".to_string()]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.unprocessed_items().unwrap()[fx.table()].len(), 1);
    assert_eq!(fx.proxy.pending(), 0);

    let name = |s: &str| Some(s.to_string());
    assert_eq!(
        faults(&fx.proxy),
        vec![
            ("GetItem".to_string(), name("Throttling")),
            ("GetItem".to_string(), name("Throttling")),
            ("GetItem".to_string(), name("InternalServerError")),
            ("PutItem".to_string(), name("ValidationError")),
            ("GetItem".to_string(), None),
            ("PutItem".to_string(), None),
            ("BatchWriteItem".to_string(), name("UnprocessedAll")),
        ]
    );
    assert_eq!(fx.proxy.count("GetItem"), 4);
    assert_eq!(fx.proxy.count("PutItem"), 2);
    assert_eq!(fx.proxy.count("BatchWriteItem"), 1);
    assert_eq!(fx.proxy.count("Query"), 0);
    assert_eq!(fx.stored_keys(fx.table()).await, vec!["a", "b"]);

    // `times == 0` adds nothing; clear() forgets rules and the log.
    fx.proxy.script(Match::Any, Fault::Throttling, 0);
    assert_eq!(fx.proxy.pending(), 0);
    fx.proxy.script(Match::Any, Fault::Throttling, 5);
    fx.proxy.clear();
    assert_eq!(fx.proxy.pending(), 0);
    assert!(fx.proxy.requests().is_empty());
    assert_eq!(fx.get("a").await.unwrap().unwrap(), item("a"));
    assert_eq!(fx.proxy.count("GetItem"), 1);

    fx.finish().await;
}

/// Reads one HTTP response (Content-Length framed) from `stream`, keeping any bytes of the
/// next one in `buf`. Returns (head, body).
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                buf.drain(..end + 4 + len);
                return (head, body);
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// What the SDK never sends but the proxy accepts anyway, spoken by hand: `Expect:
/// 100-continue`, a chunked request body, pipelined requests, `Connection: close`.
#[tokio::test]
async fn speaks_enough_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let fx = Fixture::new("http", 1).await;
    fx.put_direct(fx.table(), &["a".to_string()]).await;
    let get = format!(
        r#"{{"TableName":"{}","Key":{{"pk":{{"S":"a"}}}},"ConsistentRead":true}}"#,
        fx.table()
    );
    let describe = format!(r#"{{"TableName":"{}"}}"#, fx.table());
    let head = |operation: &str, extra: &str| {
        format!(
            "POST / HTTP/1.1\r\nhost: whatever\r\nx-amz-target: DynamoDB_20120810.{operation}\r\n\
             content-type: application/x-amz-json-1.0\r\n\
             authorization: AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host, Signature=0\r\n{extra}\r\n"
        )
    };
    let addr = fx
        .proxy
        .endpoint()
        .trim_start_matches("http://")
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();

    // Expect: 100-continue: the body goes only after the interim response.
    let extra = format!("Expect: 100-continue\r\nContent-Length: {}\r\n", get.len());
    stream
        .write_all(head("GetItem", &extra).as_bytes())
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(get.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut stream, &mut buf).await;
    assert!(status.starts_with("HTTP/1.1 200 OK\r\n"), "{status}");
    assert!(body.contains("value of a"), "{body}");

    // Two pipelined requests in one write: a chunked GetItem, then a DescribeTable that asks to
    // close the connection and is throttled.
    fx.proxy.script(
        Match::Operation(Operation::DescribeTable),
        Fault::Throttling,
        1,
    );
    let (first, second) = get.split_at(10);
    let both = format!(
        "{}{:x}\r\n{first}\r\n{:X};ext=1\r\n{second}\r\n0\r\n\r\n{}{describe}",
        head("GetItem", "Transfer-Encoding: chunked\r\n"),
        first.len(),
        second.len(),
        head(
            "DescribeTable",
            &format!(
                "Connection: close\r\nContent-Length: {}\r\n",
                describe.len()
            )
        ),
    );
    stream.write_all(both.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut stream, &mut buf).await;
    assert!(status.starts_with("HTTP/1.1 200 OK\r\n"), "{status}");
    assert!(body.contains("value of a"), "{body}");
    let (status, body) = read_response(&mut stream, &mut buf).await;
    assert!(
        status.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{status}"
    );
    assert!(
        status.to_ascii_lowercase().contains("connection: close"),
        "{status}"
    );
    assert!(body.contains("#ThrottlingException"), "{body}");
    // ... and the proxy closes it.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty() && buf.is_empty());

    assert_eq!(fx.proxy.count("GetItem"), 2);
    assert_eq!(fx.proxy.count("DescribeTable"), 1);

    fx.finish().await;
}
