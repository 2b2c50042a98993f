//! Shared set-up for the integration tests: a client for the local DynamoDB-compatible server
//! that `scripts/with-services` started (or the one `AWS_ENDPOINT_URL_DYNAMODB` names), with a
//! table prefix unique to each test so tests run in parallel and never share tables.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use dynamite::Client;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A client with a unique table prefix. Refuses to run without a local endpoint, so a stray
/// `cargo test` never touches a real AWS account.
pub async fn client() -> Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .expect(
            "integration tests need a DynamoDB endpoint: run them through `scripts/test` or \
             `scripts/with-services -- cargo test`, or set AWS_ENDPOINT_URL_DYNAMODB",
        );
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    let sdk = aws_sdk_dynamodb::Client::new(&config);
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
