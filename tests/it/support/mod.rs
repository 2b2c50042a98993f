//! Set-up shared by the whole harness: a client for the local DynamoDB-compatible server that
//! `scripts/with-services` started (or the one `AWS_ENDPOINT_URL_DYNAMODB` names), with a table
//! prefix unique to each test so tests run in parallel and never share tables; which server
//! that is; and the helpers several topics use (`cache`, `trace`).

pub(crate) mod cache;
pub(crate) mod fixtures;
pub(crate) mod trace;

use std::sync::atomic::{AtomicU32, Ordering};

use dynamite::{Client, ClientBuilder, Entity};

/// The DynamoDB implementation the tests run against, from `DYNAMITE_TEST_SERVER` (set by
/// `scripts/with-services`). Anything else is treated as DynamoDB itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Server {
    /// AWS's DynamoDB Local: the reference; nothing is skipped on it.
    DynamoDbLocal,
    /// moto's server mode, which deviates from DynamoDB in known ways.
    Moto,
    /// An endpoint given in the environment (DynamoDB itself or another compatible server).
    External,
}

/// The server under test.
pub(crate) fn server() -> Server {
    match std::env::var("DYNAMITE_TEST_SERVER").as_deref() {
        Ok("moto") => Server::Moto,
        Ok("dynamodb-local") => Server::DynamoDbLocal,
        _ => Server::External,
    }
}

/// `true` (after saying so on stderr) when the tests run on moto, for a test that cannot hold
/// there because moto breaks `rule` of DynamoDB. Every such test is listed in the README's
/// testing section; nothing is ever skipped on DynamoDB Local.
pub(crate) fn skip_on_moto(test: &str, rule: &str) -> bool {
    let skip = server() == Server::Moto;
    if skip {
        eprintln!("skipped on moto: {test}: moto deviates from DynamoDB: {rule}");
    }
    skip
}

/// The local endpoint from the environment. Refuses to run without one, so a stray
/// `cargo test` never touches a real AWS account.
pub(crate) fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .expect(
            "integration tests need a DynamoDB endpoint: run them through `scripts/test` or \
             `scripts/with-services -- cargo test --test it`, or set AWS_ENDPOINT_URL_DYNAMODB",
        )
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh table prefix, unique to this process and call.
fn table_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t{}-{}-{}-",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// A client of the local server with a unique table prefix.
pub(crate) async fn client() -> Client {
    let sdk = sdk(None).await;
    Client::builder(sdk).table_prefix(table_prefix()).build()
}

/// A client with a unique table prefix and the table of `E` created.
pub(crate) async fn setup<E: Entity>() -> Client {
    let db = client().await;
    E::create_table(&db).await.expect("create table");
    db
}

/// An SDK client for the local endpoint, in `region` (default: the environment's). Local
/// servers keep one database per region.
pub(crate) async fn sdk(region: Option<&'static str>) -> aws_sdk_dynamodb::Client {
    let mut config =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(endpoint());
    if let Some(region) = region {
        config = config.region(aws_config::Region::new(region));
    }
    aws_sdk_dynamodb::Client::new(&config.load().await)
}

/// An SDK client for `endpoint` (a fault proxy in front of the local server, say), configured
/// from the environment otherwise.
#[cfg_attr(not(feature = "testing"), allow(dead_code))] // used with the fault proxy
pub(crate) async fn sdk_at(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// A table of [`fixtures::Thing`] holding `t1` (`n` = 1), a fault proxy in front of the local
/// server, and a client through the proxy (with the table's prefix and a fast retry policy,
/// then `configure`).
#[cfg(feature = "testing")]
pub(crate) async fn thing_through_proxy(
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> (dynamite::testing::FaultProxy, Client) {
    let direct = setup::<fixtures::Thing>().await;
    let t1 = fixtures::Thing {
        id: "t1".into(),
        n: 1,
    };
    t1.put(&direct).await.expect("put t1");
    let proxy = dynamite::testing::FaultProxy::start(&endpoint()).await;
    let policy = dynamite::RetryPolicy::standard()
        .max_attempts(3)
        .base_delay(std::time::Duration::from_millis(2));
    let builder = Client::builder(sdk_at(&proxy.endpoint()).await)
        .table_prefix(direct.table_prefix())
        .retry_policy(policy);
    (proxy, configure(builder).build())
}

/// A client builder whose endpoint accepts no connections: every attempt fails at once as a
/// transport error (nothing is sent). Fixed credentials, and no SDK timers (timeouts,
/// stalled-stream checks) that paused time could jump to.
pub(crate) async fn unreachable_builder() -> ClientBuilder {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "unreachable",
        ))
        .timeout_config(aws_config::timeout::TimeoutConfig::disabled())
        .stalled_stream_protection(
            aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled(),
        )
        .load()
        .await;
    Client::builder(aws_sdk_dynamodb::Client::new(&config))
}

/// A client whose endpoint accepts no connections: any request sent fails as a dispatch
/// failure, so an `Error::Validation` from it proves the problem was caught before sending.
pub(crate) async fn unreachable_client() -> Client {
    unreachable_builder().await.build()
}
