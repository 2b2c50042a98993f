//! Shared set-up for the integration tests: a client for the local DynamoDB-compatible server
//! that `scripts/with-services` started (or the one `AWS_ENDPOINT_URL_DYNAMODB` names), with a
//! table prefix unique to each test so tests run in parallel and never share tables.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use dynamite::Client;

/// The DynamoDB implementation the tests run against, from `DYNAMITE_TEST_SERVER` (set by
/// `scripts/with-services`). Anything else is treated as DynamoDB itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// AWS's DynamoDB Local: the reference; nothing is skipped on it.
    DynamoDbLocal,
    /// moto's server mode, which deviates from DynamoDB in known ways.
    Moto,
    /// An endpoint given in the environment (DynamoDB itself or another compatible server).
    External,
}

/// The server under test.
pub fn server() -> Server {
    match std::env::var("DYNAMITE_TEST_SERVER").as_deref() {
        Ok("moto") => Server::Moto,
        Ok("dynamodb-local") => Server::DynamoDbLocal,
        _ => Server::External,
    }
}

/// `true` (after saying so on stderr) when the tests run on moto, for a test that cannot hold
/// there because moto breaks `rule` of DynamoDB. Every such test is listed in the README's
/// testing section; nothing is ever skipped on DynamoDB Local.
pub fn skip_on_moto(test: &str, rule: &str) -> bool {
    let skip = server() == Server::Moto;
    if skip {
        eprintln!("skipped on moto: {test}: moto deviates from DynamoDB: {rule}");
    }
    skip
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A client with a unique table prefix. Refuses to run without a local endpoint, so a stray
/// `cargo test` never touches a real AWS account.
pub async fn client() -> Client {
    let sdk = sdk(None).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!(
        "t{}-{}-{}-",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    Client::builder(sdk).table_prefix(prefix).build()
}

/// An SDK client for the local endpoint, in `region` (default: the environment's). Local
/// servers keep one database per region.
pub async fn sdk(region: Option<&'static str>) -> aws_sdk_dynamodb::Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .expect(
            "integration tests need a DynamoDB endpoint: run them through `scripts/test` or \
             `scripts/with-services -- cargo test`, or set AWS_ENDPOINT_URL_DYNAMODB",
        );
    let mut config =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(endpoint);
    if let Some(region) = region {
        config = config.region(aws_config::Region::new(region));
    }
    aws_sdk_dynamodb::Client::new(&config.load().await)
}

/// A client whose endpoint accepts no connections: any request sent fails as a dispatch
/// failure, so an `Error::Validation` from it proves the problem was caught before sending.
pub async fn unreachable_client() -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    Client::new(aws_sdk_dynamodb::Client::new(&config))
}
