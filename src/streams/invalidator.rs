//! [`CacheInvalidator`]: keeps a client's cache fresh after writes from any writer, by
//! consuming the table's stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::KeyType;

use super::consumer::{StartPosition, StreamConsumerBuilder};
use super::{Checkpoints, StreamConsumer};
use crate::pipeline::Target;
use crate::retry::backoff::full_jitter;
use crate::{Client, Error, Operation, Result};

/// Drops the cache entries of every item the table's stream reports changed — the item's
/// entry, its partition's cached query results and the table's other cached query results, in
/// every layer of the client's cache — so that writes made by anyone (another service, the
/// console, a Lambda function) stop being served from cache within the stream's lag.
///
/// It needs only the table's key attributes (read from the table's description) and each
/// record's keys, which every stream view type carries: it serves every entity of the table.
/// It reads from `LATEST` by default (the cache holds nothing older worth dropping).
///
/// It runs until stopped: [`spawn`](CacheInvalidatorBuilder::spawn) gives a handle that stops
/// it when dropped. It never fails or panics: a failed read is logged and counted, and
/// reading goes on (after a growing, jittered wait) right after the last record handed out,
/// so no change is skipped. When the stream lost records the invalidator had not read
/// ([`Error::StreamTrimmed`]), the changes in between are unknown: the whole cache is cleared
/// and reading starts again from `LATEST`. When the table or its stream is gone, they are
/// looked up again. Cache faults are logged by the cache and never stop it.
///
/// ```no_run
/// use dynamite::cache::MokaLayer;
/// use dynamite::streams::CacheInvalidator;
///
/// # async fn demo(sdk: aws_sdk_dynamodb::Client) {
/// let db = dynamite::Client::builder(sdk)
///     .cache(MokaLayer::new(16 << 20))
///     .build();
/// // Runs beside the client until `invalidator` is dropped.
/// let invalidator = CacheInvalidator::builder(&db, "users").spawn();
/// # }
/// ```
#[derive(Debug)]
pub struct CacheInvalidator {
    _private: (),
}

impl CacheInvalidator {
    /// An invalidator for `client`'s cache, fed by the stream of `table` (its name without
    /// the client's prefix).
    pub fn builder(client: &Client, table: &str) -> CacheInvalidatorBuilder {
        CacheInvalidatorBuilder {
            consumer: StreamConsumer::builder(client, table)
                .start(StartPosition::Latest)
                .idle_backoff(Duration::from_millis(20), Duration::from_millis(300)),
            client: client.clone(),
            restart: (Duration::from_millis(200), Duration::from_secs(30)),
        }
    }
}

/// Builds a [`CacheInvalidator`] task. See [`CacheInvalidator::builder`].
#[must_use]
pub struct CacheInvalidatorBuilder {
    consumer: StreamConsumerBuilder,
    client: Client,
    restart: (Duration, Duration),
}

impl std::fmt::Debug for CacheInvalidatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheInvalidatorBuilder")
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl CacheInvalidatorBuilder {
    /// Where reading starts when the checkpoint store has nothing ([`StartPosition::Latest`]
    /// by default).
    pub fn start(mut self, start: StartPosition) -> Self {
        self.consumer = self.consumer.start(start);
        self
    }

    /// Keep the invalidator's progress in `checkpoints` (in memory by default), so that one
    /// started again after a restart of the process catches up on the changes it missed.
    pub fn checkpoints(mut self, checkpoints: impl Checkpoints) -> Self {
        self.consumer = self.consumer.checkpoints(checkpoints);
        self
    }

    /// The wait between reads of an idle stream (20 ms growing to 300 ms by default: the
    /// longest time a change waits in the stream before this invalidator reads it, beyond the
    /// stream's own lag; under 5 GetRecords per second per shard, DynamoDB Streams' limit).
    /// See [`StreamConsumerBuilder::idle_backoff`].
    pub fn idle_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.consumer = self.consumer.idle_backoff(base, max);
        self
    }

    /// The wait before reading starts again after a failure (200 ms growing to 30 s by
    /// default, with jitter).
    pub fn restart_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.restart = (base, max.max(base));
        self
    }

    /// The consumer's own settings, for anything not set above.
    pub fn consumer(
        mut self,
        configure: impl FnOnce(StreamConsumerBuilder) -> StreamConsumerBuilder,
    ) -> Self {
        self.consumer = configure(self.consumer);
        self
    }

    /// Runs it on the current Tokio runtime until the handle is dropped or
    /// [stopped](InvalidatorHandle::stop).
    pub fn spawn(self) -> InvalidatorHandle {
        let stats = Arc::new(Counters::default());
        let task = tokio::spawn(self.run_with(stats.clone()));
        InvalidatorHandle { task, stats }
    }

    /// Runs it in the calling task, forever (for callers that manage their own tasks).
    pub async fn run(self) {
        self.run_with(Arc::new(Counters::default())).await
    }

    async fn run_with(self, stats: Arc<Counters>) {
        if self.client.cache().is_none() {
            tracing::warn!("cache invalidator on a client without a cache: nothing to invalidate");
        }
        let mut failures = 0u32;
        let mut reader = Reader {
            consumer: None,
            keys: None,
            after_gap: false,
        };
        loop {
            let err = self.invalidate(&mut reader, &stats, &mut failures).await;
            failures = failures.saturating_add(1);
            let delay = full_jitter(self.restart.0, self.restart.1, failures);
            if err.is_stream_trimmed() {
                // What changed in between is unknown, and the saved positions point into the
                // gap: read again from `LATEST`, then clear the cache (see `invalidate`).
                tracing::error!(error = %err, "cache invalidator missed changes; the cache will be cleared");
                stats.is_started.store(false, Ordering::Release);
                reader = Reader {
                    consumer: None,
                    keys: None,
                    after_gap: true,
                };
            } else if err.is_resource_not_found() {
                // The table or its stream is gone (deleted, or the stream disabled and enabled
                // again): find them again.
                tracing::warn!(error = %err, ?delay, "cache invalidator lost its stream; starting over");
                reader.consumer = None;
                reader.keys = None;
            } else {
                // The consumer keeps its place: reading goes on right after the last record
                // handed out, so nothing is skipped.
                tracing::warn!(error = %err, ?delay, "cache invalidator failed; reading on");
            }
            stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }

    /// Reads and invalidates until a failure, which it returns.
    async fn invalidate(&self, reader: &mut Reader, stats: &Counters, failures: &mut u32) -> Error {
        if reader.consumer.is_none() {
            let builder = self.consumer.clone();
            let builder = if reader.after_gap {
                builder.restart_at_latest()
            } else {
                builder
            };
            let mut consumer = builder.build();
            if let Err(e) = consumer.start().await {
                return e;
            }
            if reader.after_gap {
                // Only now that every change from here on is read: nothing cached before can
                // be vouched for.
                self.client.clear_cache().await;
            }
            reader.consumer = Some(consumer);
            reader.after_gap = false;
            stats.is_started.store(true, Ordering::Release);
            stats.started.notify_waiters();
        }
        let consumer = reader.consumer.as_mut().expect("set above");
        if reader.keys.is_none() {
            match key_names(&self.client, consumer.table()).await {
                Ok(keys) => reader.keys = Some(keys),
                Err(e) => return e,
            }
        }
        let keys = reader.keys.as_ref().expect("set above");
        let table = consumer.table().to_owned();
        loop {
            let batch = match consumer.next_batch().await {
                Ok(batch) => batch,
                Err(e) => return e,
            };
            let texts: Vec<String> = batch
                .records
                .iter()
                .filter_map(|r| {
                    let pk = r.keys.get(&keys.0)?;
                    let sk = match &keys.1 {
                        Some(name) => Some(r.keys.get(name)?),
                        None => None,
                    };
                    Some(crate::cache::key_text(pk, sk))
                })
                .collect();
            self.client
                .invalidate_written(texts.iter().map(|t| (table.as_str(), t.as_str())))
                .await;
            if let Some(age) = batch.records.last().and_then(|r| r.age()) {
                stats
                    .lag_ms
                    .store(age.as_millis() as u64, Ordering::Relaxed);
            }
            stats
                .records
                .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
            if let Err(e) = consumer.commit(&batch).await {
                return e;
            }
            *failures = 0;
        }
    }
}

/// Where an invalidator reads: kept across failures, so that it reads on from where it was.
struct Reader {
    consumer: Option<StreamConsumer>,
    /// The table's partition and sort key names.
    keys: Option<(String, Option<String>)>,
    /// The stream lost records this invalidator had not read: start again from `LATEST`.
    after_gap: bool,
}

/// The names of `table`'s partition and sort key, from its description.
async fn key_names(client: &Client, table: &str) -> Result<(String, Option<String>)> {
    let target = Target::safe(Operation::DescribeTable, table, "", None);
    let sdk = client.sdk();
    let out = client
        .execute(target, || sdk.describe_table().table_name(table).send())
        .await?;
    let schema = out
        .table
        .map(|t| t.key_schema.unwrap_or_default())
        .unwrap_or_default();
    let name = |kind: KeyType| {
        schema
            .iter()
            .find(|k| k.key_type == kind)
            .map(|k| k.attribute_name.clone())
    };
    let partition = name(KeyType::Hash)
        .ok_or_else(|| Error::Config(format!("table {table} has no partition key")))?;
    Ok((partition, name(KeyType::Range)))
}

#[derive(Debug, Default)]
struct Counters {
    records: AtomicU64,
    errors: AtomicU64,
    lag_ms: AtomicU64,
    /// Set once the invalidator holds an iterator of every shard it reads.
    started: tokio::sync::Notify,
    is_started: std::sync::atomic::AtomicBool,
}

/// A running [`CacheInvalidator`]; dropping it stops the invalidator.
///
/// ```no_run
/// # async fn demo(db: &dynamite::Client) {
/// let invalidator = dynamite::streams::CacheInvalidator::builder(db, "users").spawn();
/// // ...
/// println!("{:?}", invalidator.stats());
/// invalidator.stop();
/// # }
/// ```
#[derive(Debug)]
pub struct InvalidatorHandle {
    task: tokio::task::JoinHandle<()>,
    stats: Arc<Counters>,
}

impl InvalidatorHandle {
    /// What the invalidator has done so far.
    pub fn stats(&self) -> InvalidatorStats {
        InvalidatorStats {
            records: self.stats.records.load(Ordering::Relaxed),
            errors: self.stats.errors.load(Ordering::Relaxed),
            lag: Duration::from_millis(self.stats.lag_ms.load(Ordering::Relaxed)),
        }
    }

    /// Waits until the invalidator is in place: it holds an iterator of every shard it reads,
    /// so every change made after this returns reaches it (with the default
    /// [`StartPosition::Latest`], changes made before may not).
    pub async fn started(&self) {
        loop {
            let notified = self.stats.started.notified();
            if self.stats.is_started.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Stops the invalidator (as dropping the handle does).
    pub fn stop(self) {}
}

impl Drop for InvalidatorHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counters of a running invalidator, from [`InvalidatorHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidatorStats {
    /// Change records handled (their items' cache entries dropped).
    pub records: u64,
    /// Failures, each followed by a restart.
    pub errors: u64,
    /// The age of the last record handled when it was handled (the stream's lag plus the
    /// polling delay), to the precision of the record's creation time: DynamoDB Local's
    /// creation times are coarse (this read up to about a minute high there).
    pub lag: Duration,
}
