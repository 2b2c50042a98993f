//! HTTP tuning: [`HttpSettings`], set with [`ClientBuilder::http`](crate::ClientBuilder::http).
//!
//! Timeouts and the connection pool of the SDK's HTTP client, without SDK boilerplate. What is
//! left unset keeps the SDK client's own setting.
//!
//! | setting | what it bounds | unset |
//! |---|---|---|
//! | `connect_timeout` | making a TCP (and TLS) connection | the SDK's: 3.1 s |
//! | `read_timeout` | the wait for the first byte of an answer | none |
//! | `attempt_timeout` | one attempt, sending to the last byte read | none |
//! | `operation_timeout` | the whole call: every attempt and the waits between them | none (the retry policy's budget still stops retries) |
//! | `pool_idle_timeout` | how long an idle connection is kept | hyper's: 90 s |
//! | `pool_max_idle_per_host` | idle connections kept per endpoint | unbounded |
//!
//! Suggested for a service in the table's region: `connect_timeout` 1 s, `attempt_timeout`
//! 1–2 s for item operations (DynamoDB answers in milliseconds; a stuck connection then costs a
//! retry, not the caller's whole deadline), `operation_timeout` the caller's own deadline.
//! Queries that read large pages and table operations take longer: give those clients (or a
//! client of their own) more room.
//!
//! An answer that does not come in time may follow a request DynamoDB applied, so a timed-out
//! attempt is [`ErrorKind::OutcomeUnknown`](crate::ErrorKind::OutcomeUnknown): reads are sent
//! again, writes only when that is safe (see [`crate::retry`]); a write stopped by the
//! operation timeout after it may have been sent ends as
//! [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown).
//!
//! A pool setting makes the client use an HTTP client of the SDK's default kind (hyper 1,
//! rustls with aws-lc, proxy settings from the environment) built with it, in place of the one
//! in the SDK config; leave the pool settings unset to keep an HTTP client of your own.
//!
//! TCP keep-alive probes are not exposed by the SDK's HTTP client (hyper's connector behind it
//! is built inside the SDK), so there is no setting for them; `pool_idle_timeout` closes idle
//! connections before a middlebox drops them silently.

use std::time::Duration;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;

/// Timeouts and connection-pool settings for a [`Client`](crate::Client).
///
/// ```
/// use std::time::Duration;
/// use dynamite::HttpSettings;
///
/// let http = HttpSettings::new()
///     .connect_timeout(Duration::from_secs(1))
///     .attempt_timeout(Duration::from_millis(1500))
///     .operation_timeout(Duration::from_secs(5))
///     .pool_idle_timeout(Duration::from_secs(20));
/// # let _ = http;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct HttpSettings {
    /// Time to make a connection.
    pub connect_timeout: Option<Duration>,
    /// Time to the first byte of an answer.
    pub read_timeout: Option<Duration>,
    /// Time for one attempt.
    pub attempt_timeout: Option<Duration>,
    /// Time for the whole call, retries included.
    pub operation_timeout: Option<Duration>,
    /// Time an idle connection is kept in the pool.
    pub pool_idle_timeout: Option<Duration>,
    /// Idle connections kept per endpoint.
    pub pool_max_idle_per_host: Option<usize>,
}

impl HttpSettings {
    /// Nothing set: the SDK client's settings.
    pub const fn new() -> Self {
        HttpSettings {
            connect_timeout: None,
            read_timeout: None,
            attempt_timeout: None,
            operation_timeout: None,
            pool_idle_timeout: None,
            pool_max_idle_per_host: None,
        }
    }

    /// Time to make a TCP (and TLS) connection.
    pub const fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Time from sending a request to the first byte of its answer.
    pub const fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Time for one attempt, from sending to the last byte of the answer. A timed-out attempt
    /// is retried by the retry policy when repeating it is safe.
    pub const fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Time for the whole call: every attempt and the waits between them. When it runs out the
    /// attempt in flight is abandoned and the call fails (a write that may have been applied
    /// with [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown)); no retry starts that
    /// could not finish in time either.
    pub const fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// Time an idle connection is kept before it is closed.
    pub const fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = Some(timeout);
        self
    }

    /// Idle connections kept per endpoint (0: a connection per request).
    pub const fn pool_max_idle_per_host(mut self, connections: usize) -> Self {
        self.pool_max_idle_per_host = Some(connections);
        self
    }

    /// `config` (a builder of `current`) with these settings: the timeouts merged over the
    /// current ones, and, when a pool setting is given, an HTTP client of the SDK's default
    /// kind built with it.
    pub(crate) fn apply(
        &self,
        current: &aws_sdk_dynamodb::Config,
        mut config: aws_sdk_dynamodb::config::Builder,
    ) -> aws_sdk_dynamodb::config::Builder {
        let given = [
            self.connect_timeout,
            self.read_timeout,
            self.attempt_timeout,
        ];
        if given.iter().any(Option::is_some) {
            let mut timeouts = current
                .timeout_config()
                .map_or_else(TimeoutConfig::builder, TimeoutConfig::to_builder);
            if let Some(t) = self.connect_timeout {
                timeouts = timeouts.connect_timeout(t);
            }
            if let Some(t) = self.read_timeout {
                timeouts = timeouts.read_timeout(t);
            }
            // The SDK's own retries are off (one SDK operation is one attempt), so both
            // bound an attempt.
            if let Some(t) = self.attempt_timeout {
                timeouts = timeouts.operation_attempt_timeout(t).operation_timeout(t);
            }
            config = config.timeout_config(timeouts.build());
        }
        if self.pool_idle_timeout.is_some() || self.pool_max_idle_per_host.is_some() {
            config = config.http_client(self.http_client());
        }
        config
    }

    /// The SDK's default HTTPS client (hyper 1, rustls with aws-lc, proxy settings from the
    /// environment), with this pool.
    fn http_client(&self) -> aws_sdk_dynamodb::config::SharedHttpClient {
        use aws_smithy_http_client::proxy::ProxyConfig;
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        use aws_smithy_http_client::{Builder, ConnectorBuilder};

        let settings = *self;
        // The pool is the connector's (`Builder`'s own pool settings do not reach a connector
        // made by a function).
        Builder::new().build_with_connector_fn(move |connector_settings, components| {
            let mut connector =
                ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
            connector.set_pool_idle_timeout(settings.pool_idle_timeout.map(Some));
            connector.set_pool_max_idle_per_host(settings.pool_max_idle_per_host);
            connector.set_connector_settings(connector_settings.cloned());
            if let Some(components) = components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.build()
        })
    }
}
