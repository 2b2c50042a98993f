//! [`TestDb`]: a dynamite client on the test server, with tables of its own.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Credentials, Region};

use super::fault::FaultProxy;
use super::{http, wire, LocalDynamoDb, SetupError};
use crate::pipeline::Target;
use crate::{Client, ClientBuilder, Entity, Result};

/// A test's view of the DynamoDB server: a [`Client`] whose table names carry a prefix unique
/// to this `TestDb` (process id, a counter, the time), the tables it created, and clients
/// through a [`FaultProxy`].
///
/// The client is configured as dynamite configures any client: the SDK's own retries off,
/// [`RetryPolicy::standard`](crate::RetryPolicy::standard) instead. Credentials come from
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) when both are set,
/// else `test` / `test`; the region from `AWS_REGION` or `AWS_DEFAULT_REGION`, else
/// `us-east-1`. (DynamoDB Local keeps one database per access key and region: code under test
/// that builds its own client must use the same pair to see these tables.)
///
/// [`cleanup`](Self::cleanup) deletes the tables this `TestDb` created. If it is dropped
/// without one (a test panicked, say), it deletes them with a blocking request to the server
/// on a best-effort basis, for `http://` endpoints; errors are logged, never raised.
///
/// ```no_run
/// use dynamite::testing::TestDb;
/// use dynamite::Entity;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// # #[dynamite(table = "users")]
/// # struct User { #[dynamite(partition_key)] id: String }
/// # #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// # #[dynamite(table = "orders")]
/// # struct Order { #[dynamite(partition_key)] id: String }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let db = TestDb::new().await?;
/// db.create_table::<User>().await?.create_table::<Order>().await?;
/// User { id: "u1".into() }.put(db.client()).await?;
/// db.cleanup().await?;
/// # Ok(()) }
/// ```
pub struct TestDb {
    client: Client,
    sdk_config: aws_sdk_dynamodb::Config,
    endpoint: String,
    access_key: String,
    region: String,
    tables: Mutex<Vec<Created>>,
}

/// A table a [`TestDb`] created (or tried to).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Created {
    table: String,
    entity: &'static str,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl fmt::Debug for TestDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDb")
            .field("endpoint", &self.endpoint)
            .field("table_prefix", &self.table_prefix())
            .field("tables", &self.tables())
            .finish_non_exhaustive()
    }
}

impl TestDb {
    /// A `TestDb` on the process's shared server ([`LocalDynamoDb::shared`]).
    pub async fn new() -> Result<TestDb, SetupError> {
        let server = LocalDynamoDb::shared().await?;
        Ok(TestDb::with_endpoint(server.endpoint()).await)
    }

    /// A `TestDb` on the server at `endpoint` (`http://127.0.0.1:8000`, say).
    pub async fn with_endpoint(endpoint: &str) -> TestDb {
        let (access_key, credentials) = credentials();
        let region = region();
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(region.clone()))
            .credentials_provider(credentials)
            .load()
            .await;
        let sdk_config = aws_sdk_dynamodb::Config::from(&shared);
        let client = Client::builder(aws_sdk_dynamodb::Client::from_conf(sdk_config.clone()))
            .table_prefix(unique_prefix())
            .build();
        TestDb {
            client,
            sdk_config,
            endpoint: endpoint.to_owned(),
            access_key,
            region,
            tables: Mutex::new(Vec::new()),
        }
    }

    /// The client: straight to the server, with this `TestDb`'s table prefix.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A builder for another client like [`client`](Self::client) (same server, same prefix),
    /// to set a retry policy, a cache, ...
    pub fn client_builder(&self) -> ClientBuilder {
        self.builder_for(self.sdk_config.clone())
    }

    /// The server's endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The table-name prefix of this `TestDb`'s clients.
    pub fn table_prefix(&self) -> &str {
        self.client.table_prefix()
    }

    /// Creates the table of `E` (with this `TestDb`'s prefix) and waits until it is ACTIVE, as
    /// [`Entity::create_table`] does. Returns `self`, so calls chain:
    /// `db.create_table::<A>().await?.create_table::<B>().await?`.
    pub async fn create_table<E: Entity>(&self) -> Result<&Self> {
        let schema = E::schema();
        // Remembered first: a table created by a call that then failed is still cleaned up.
        self.remember(Created {
            table: self.client.table_name(schema.table),
            entity: schema.entity,
        });
        E::create_table(&self.client).await?;
        Ok(self)
    }

    /// The full names of the tables this `TestDb` created and has not deleted yet.
    pub fn tables(&self) -> Vec<String> {
        self.lock().iter().map(|c| c.table.clone()).collect()
    }

    /// A fresh [`FaultProxy`] in front of the server.
    ///
    /// # Panics
    ///
    /// When the endpoint is not a plain `http://` URL (see [`FaultProxy::start`]).
    pub async fn fault_proxy(&self) -> FaultProxy {
        FaultProxy::start(&self.endpoint).await
    }

    /// A client like [`client`](Self::client) whose requests go through `proxy`.
    pub fn client_through(&self, proxy: &FaultProxy) -> Client {
        self.client_builder_through(proxy).build()
    }

    /// A builder for a client whose requests go through `proxy` (same prefix), to set a retry
    /// policy, a cache, ...
    pub fn client_builder_through(&self, proxy: &FaultProxy) -> ClientBuilder {
        let config = self
            .sdk_config
            .to_builder()
            .endpoint_url(proxy.endpoint())
            .build();
        self.builder_for(config)
    }

    /// Deletes the tables this `TestDb` created (those already gone are fine). On an error the
    /// others are still deleted, and the first error is returned.
    pub async fn cleanup(self) -> Result<()> {
        let created = std::mem::take(&mut *self.lock());
        let mut first_error = None;
        let mut left = Vec::new();
        for table in created {
            if let Err(e) = delete_table(&self.client, &table).await {
                first_error.get_or_insert(e);
                left.push(table);
            }
        }
        // Drop tries these once more.
        *self.lock() = left;
        first_error.map_or(Ok(()), Err)
    }

    fn builder_for(&self, config: aws_sdk_dynamodb::Config) -> ClientBuilder {
        Client::builder(aws_sdk_dynamodb::Client::from_conf(config))
            .table_prefix(self.table_prefix())
    }

    fn remember(&self, created: Created) {
        let mut tables = self.lock();
        if !tables.contains(&created) {
            tables.push(created);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Created>> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let created = std::mem::take(&mut *self.lock());
        if created.is_empty() {
            return;
        }
        let Ok(authority) = http::authority(&self.endpoint) else {
            tracing::warn!(
                target: "dynamite::testing",
                endpoint = %self.endpoint,
                tables = ?created,
                "TestDb dropped without cleanup(); tables left behind"
            );
            return;
        };
        let identity = (self.access_key.as_str(), self.region.as_str());
        for Created { table, .. } in created {
            let deleted =
                wire::delete_table_blocking(&authority, &table, identity, Duration::from_secs(5));
            if let Err(e) = deleted {
                tracing::warn!(
                    target: "dynamite::testing",
                    %table,
                    error = %e,
                    "cannot delete a test table"
                );
            }
        }
    }
}

/// Deletes one table; a table that is gone already is fine.
async fn delete_table(client: &Client, created: &Created) -> Result<()> {
    let target = Target::safe(
        crate::Operation::DeleteTable,
        &created.table,
        created.entity,
        None,
    );
    let deleted = client
        .execute(target, || {
            client
                .sdk()
                .delete_table()
                .table_name(&created.table)
                .send()
        })
        .await;
    match deleted {
        Err(e) if !e.is_resource_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// (access key, provider): the environment's keys when both are set, else `test` / `test`.
fn credentials() -> (String, Credentials) {
    let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(key), Some(secret)) => {
            let token = var("AWS_SESSION_TOKEN");
            let credentials = Credentials::new(&key, secret, token, None, "environment");
            (key, credentials)
        }
        _ => (
            "test".to_owned(),
            Credentials::new("test", "test", None, None, "dynamite-testing"),
        ),
    }
}

fn region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty())
        .unwrap_or_else(|| "us-east-1".to_owned())
}

/// `t<pid>-<counter>-<milliseconds since the epoch, hex>-`: unique per `TestDb` in a process,
/// and across runs that reuse a process id.
fn unique_prefix() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!(
        "t{}-{}-{millis:x}-",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_valid_table_name_characters() {
        let (a, b) = (unique_prefix(), unique_prefix());
        assert_ne!(a, b);
        for prefix in [a, b] {
            assert!(prefix.starts_with(&format!("t{}-", std::process::id())));
            assert!(prefix
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-'));
        }
    }
}
