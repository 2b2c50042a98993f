//! [`StreamConsumer`]: reads a table's stream shard by shard, parents before children, and
//! resumes from caller-stored [`Checkpoints`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use tokio::time::Instant;

use super::checkpoint::{Checkpoints, InMemoryCheckpoints, SavesOnly};
use super::record::{self, Record};
use super::shards::{Listed, Position, Shard, Shards};
use crate::pipeline::Target;
use crate::retry::backoff::{ceiling, full_jitter};
use crate::{BoxError, Client, Error, Operation, Result};

/// Where a consumer starts reading a shard it has no checkpoint for, on its very first start
/// (no checkpoint for any shard of the stream). Every shard it meets later, and every shard
/// without a checkpoint when others have one, is read from its oldest record, so nothing is
/// missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartPosition {
    /// The oldest record each shard still holds (up to 24 hours back): the default.
    #[default]
    TrimHorizon,
    /// Only changes made from now on (closed shards are skipped).
    Latest,
}

/// Records read from one shard, in the shard's order. Commit it
/// ([`StreamConsumer::commit`]) once handled.
///
/// ```
/// fn handle(batch: &dynamite::streams::Batch) {
///     for record in &batch.records {
///         println!("{} {} in shard {}", record.kind, record.sequence_number, batch.shard_id);
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Batch {
    /// The shard the records come from.
    pub shard_id: String,
    /// At least one record, oldest first.
    pub records: Vec<Record>,
}

impl Batch {
    /// The sequence number of the batch's last record: what [`StreamConsumer::commit`] saves.
    pub fn last_sequence_number(&self) -> &str {
        self.records
            .last()
            .map_or("", |r| r.sequence_number.as_str())
    }
}

/// Counters of a consumer, from [`StreamConsumer::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Records handed out.
    pub records: u64,
    /// GetRecords answers without records.
    pub empty_reads: u64,
    /// Reads refused as throttled (after the client's retries), or failed transiently.
    pub transient_errors: u64,
    /// Shard iterators that expired and were taken again from the last record handed out.
    pub expired_iterators: u64,
    /// Shards read to their end.
    pub shards_finished: u64,
}

/// Builds a [`StreamConsumer`]. See [`StreamConsumer::builder`]. Cloning it shares the
/// checkpoint store.
#[must_use]
#[derive(Clone)]
pub struct StreamConsumerBuilder {
    client: Client,
    streams: Option<aws_sdk_dynamodbstreams::Client>,
    settings: Settings,
}

/// What a consumer is set up with.
#[derive(Clone, Debug)]
struct Settings {
    /// With the client's prefix.
    table: String,
    stream_arn: Option<String>,
    checkpoints: Arc<dyn Checkpoints>,
    start: StartPosition,
    batch_size: Option<i32>,
    /// Base and cap of the wait after an empty round.
    idle: (Duration, Duration),
    /// Base and cap of the wait after a transient failure.
    errors: (Duration, Duration),
    refresh_interval: Duration,
}

impl std::fmt::Debug for StreamConsumerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConsumerBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl StreamConsumerBuilder {
    /// Where progress is kept ([`InMemoryCheckpoints`] by default: lost with the process).
    pub fn checkpoints(mut self, checkpoints: impl Checkpoints) -> Self {
        self.settings.checkpoints = Arc::new(checkpoints);
        self
    }

    /// Where a first start begins ([`StartPosition::TrimHorizon`] by default).
    pub fn start(mut self, start: StartPosition) -> Self {
        self.settings.start = start;
        self
    }

    /// At most this many records per GetRecords (1 to 1,000; DynamoDB's default, 1,000, when
    /// unset).
    pub fn batch_size(mut self, records: u32) -> Self {
        self.settings.batch_size = Some(records.clamp(1, 1000) as i32);
        self
    }

    /// The wait after a round of reads that found no record in any shard: its ceiling grows
    /// from `base` (doubled after each empty round) up to `max`, and the wait is between half
    /// the ceiling and the ceiling (jittered, never near zero, so an idle consumer stays under
    /// a known request rate). 50 ms and 1 s by default: a change is seen within about a
    /// second even when the stream is idle, at under 3 GetRecords per second per shard
    /// (DynamoDB Streams allows 5 per shard; keep `max` above 200 ms).
    pub fn idle_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.settings.idle = (base, max.max(base));
        self
    }

    /// The wait after a read throttled through the client's retries, or failed for a passing
    /// reason (growing, with full jitter, up to `max`). 100 ms and 5 s by default.
    pub fn error_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.settings.errors = (base, max.max(base));
        self
    }

    /// How often the shard list is read again (60 s by default); it is also read whenever a
    /// shard ends, which is when new shards appear.
    pub fn shard_refresh_interval(mut self, every: Duration) -> Self {
        self.settings.refresh_interval = every;
        self
    }

    /// The stream's ARN, when known (by default it is read from the table's description).
    pub fn stream_arn(mut self, arn: impl Into<String>) -> Self {
        self.settings.stream_arn = Some(arn.into());
        self
    }

    /// A DynamoDB Streams client of one's own. By default one is made on first use from the
    /// dynamite client's SDK config (its region, HTTP client, timeouts, retry settings and
    /// endpoint URL) with credentials from the default chain, as `aws_config::load_defaults`
    /// finds them: the SDK does not let a client's credentials provider be read back, so give
    /// a client here when the DynamoDB client was built with credentials of its own.
    pub fn streams_client(mut self, client: aws_sdk_dynamodbstreams::Client) -> Self {
        self.streams = Some(client);
        self
    }

    /// A first start from `LATEST` whatever the store holds, still saving commits to it (the
    /// cache invalidator after a gap in the stream).
    pub(crate) fn restart_at_latest(mut self) -> Self {
        self.settings.checkpoints = Arc::new(SavesOnly(self.settings.checkpoints));
        self.settings.start = StartPosition::Latest;
        self
    }

    /// The consumer. No request is sent until it is used.
    pub fn build(self) -> StreamConsumer {
        StreamConsumer {
            client: self.client,
            streams: self.streams,
            settings: self.settings,
            shards: Shards::default(),
            refreshed: None,
            refresh_now: true,
            idle_rounds: 0,
            error_streak: 0,
            stats: ConsumerStats::default(),
        }
    }
}

/// The wait after `rounds` empty rounds: between half the ceiling and the ceiling.
fn idle_delay(base: Duration, cap: Duration, rounds: u32) -> Duration {
    let ceiling = ceiling(base, cap, rounds);
    ceiling / 2 + full_jitter(ceiling / 2, ceiling / 2, 1)
}

/// A DynamoDB Streams client on the DynamoDB client's config: same region, HTTP client, sleep
/// and time sources, timeouts and retry settings, and the same endpoint URL when one was given
/// (local servers serve both APIs on it); credentials from the default chain.
async fn streams_client(config: &aws_sdk_dynamodb::Config) -> aws_sdk_dynamodbstreams::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(&shared);
    // Only what the DynamoDB client has: unsetting a default would break the client.
    if let Some(region) = config.region() {
        builder.set_region(Some(region.clone()));
    }
    if let Some(http) = config.http_client() {
        builder.set_http_client(Some(http));
    }
    if let Some(sleep) = config.sleep_impl() {
        builder.set_sleep_impl(Some(sleep));
    }
    if let Some(time) = config.time_source() {
        builder.set_time_source(Some(time));
    }
    if let Some(timeouts) = config.timeout_config() {
        builder.set_timeout_config(Some(timeouts.clone()));
    }
    if let Some(retry) = config.retry_config() {
        builder.set_retry_config(Some(retry.clone()));
    }
    if let Some(stalled) = config.stalled_stream_protection() {
        builder.set_stalled_stream_protection(Some(stalled.clone()));
    }
    if let Some(url) = crate::client::endpoint_url(config) {
        builder.set_endpoint_url(Some(url));
    }
    aws_sdk_dynamodbstreams::Client::from_conf(builder.build())
}

/// Reads a table's stream: lists its shards (DescribeStream, paginated), reads each shard in
/// order, a child shard only once its parent is read to its end, and resumes each shard right
/// after its checkpoint.
///
/// - Empty reads back off (growing, jittered, bounded: [`idle_backoff`](StreamConsumerBuilder::idle_backoff));
///   throttling is retried by the client's [`RetryPolicy`](crate::RetryPolicy), then backs
///   off too ([`error_backoff`](StreamConsumerBuilder::error_backoff)) and reads on.
/// - An expired shard iterator (`ExpiredIteratorException`, 15 minutes after it was taken) is
///   taken again right after the last record handed out: nothing is skipped or handed out
///   twice.
/// - Records the stream no longer holds (`TrimmedDataAccessException`) end the read with
///   [`Error::StreamTrimmed`].
/// - Every request goes through the client's request path (retries, tracing span, stats,
///   metrics), as operations `DescribeStream`, `GetShardIterator` and `GetRecords`.
///
/// Delivery: [`next_batch`](Self::next_batch) hands out each record once per consumer;
/// [`commit`](Self::commit) saves the batch's checkpoint. A consumer started again (another
/// process, after a crash) resumes after the last committed batch, so a batch handed out but
/// not committed is handed out again: at least once across restarts, exactly once when every
/// batch is committed after it was handled. [`run`](Self::run) does this for a handler.
///
/// ```no_run
/// use dynamite::streams::{InMemoryCheckpoints, StartPosition, StreamConsumer};
///
/// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
/// let mut consumer = StreamConsumer::builder(db, "users")
///     .checkpoints(InMemoryCheckpoints::new())
///     .start(StartPosition::TrimHorizon)
///     .build();
/// loop {
///     let batch = consumer.next_batch().await?;
///     for record in &batch.records {
///         println!("{} {:?}", record.kind, record.keys);
///     }
///     consumer.commit(&batch).await?;
/// }
/// # }
/// ```
pub struct StreamConsumer {
    client: Client,
    /// Made on first use when not given.
    streams: Option<aws_sdk_dynamodbstreams::Client>,
    settings: Settings,
    shards: Shards,
    refreshed: Option<Instant>,
    refresh_now: bool,
    idle_rounds: u32,
    error_streak: u32,
    stats: ConsumerStats,
}

impl std::fmt::Debug for StreamConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConsumer")
            .field("settings", &self.settings)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What one read of a shard came to.
enum Read {
    Records(Batch),
    Empty,
}

impl StreamConsumer {
    /// A consumer of the stream of `table` (its name without the client's prefix, as
    /// entities declare it).
    pub fn builder(client: &Client, table: &str) -> StreamConsumerBuilder {
        StreamConsumerBuilder {
            client: client.clone(),
            streams: None,
            settings: Settings {
                table: client.table_name(table),
                stream_arn: None,
                checkpoints: Arc::new(InMemoryCheckpoints::new()),
                start: StartPosition::default(),
                batch_size: None,
                idle: (Duration::from_millis(50), Duration::from_secs(1)),
                errors: (Duration::from_millis(100), Duration::from_secs(5)),
                refresh_interval: Duration::from_secs(60),
            },
        }
    }

    /// The table read, with the client's prefix.
    pub fn table(&self) -> &str {
        &self.settings.table
    }

    /// What the consumer has done so far.
    pub fn stats(&self) -> ConsumerStats {
        self.stats
    }

    /// The ARN of the table's latest stream (read once from the table's description, unless
    /// given to the builder). A table without a stream is an [`Error::Config`].
    pub async fn stream_arn(&mut self) -> Result<String> {
        if let Some(arn) = &self.settings.stream_arn {
            return Ok(arn.clone());
        }
        let table = self.settings.table.as_str();
        let target = Target::safe(Operation::DescribeTable, table, "", None);
        let sdk = self.client.sdk();
        let out = self
            .client
            .execute(target, || sdk.describe_table().table_name(table).send())
            .await?;
        let arn = out.table.and_then(|t| t.latest_stream_arn).ok_or_else(|| {
            Error::Config(format!(
                "table {table} has no stream: enable it with #[dynamite(stream = \"...\")] \
                     on its entity or CreateTable::stream, or in the console"
            ))
        })?;
        self.settings.stream_arn = Some(arn.clone());
        Ok(arn)
    }

    /// Lists the shards and takes an iterator for each shard that can be read now, so that a
    /// consumer starting at [`StartPosition::Latest`] reads every change made after this
    /// returns. [`next_batch`](Self::next_batch) does this itself when needed; call it to know
    /// when the consumer is in place.
    pub async fn start(&mut self) -> Result<()> {
        self.refresh().await?;
        for shard in self.shards.ready() {
            if self
                .shards
                .get(&shard)
                .is_some_and(|s| s.iterator.is_none())
            {
                self.take_iterator(&shard).await?;
            }
        }
        Ok(())
    }

    /// The next records, from whichever shard has some (shards take turns). Waits, with
    /// backoff, until a record arrives. Cancel-safe: dropping the future loses no record.
    pub async fn next_batch(&mut self) -> Result<Batch> {
        loop {
            let due = self
                .refreshed
                .is_none_or(|at| at.elapsed() >= self.settings.refresh_interval);
            if self.refresh_now || due {
                self.refresh().await?;
            }
            let ready = self.shards.ready();
            if ready.is_empty() {
                // Every shard read to its end: new shards appear as the stream goes on.
                self.refresh_now = true;
            }
            for shard in ready {
                match self.read(&shard).await {
                    Ok(Read::Records(batch)) => {
                        self.shards.rotate_past(&shard);
                        self.idle_rounds = 0;
                        self.error_streak = 0;
                        return Ok(batch);
                    }
                    Ok(Read::Empty) => {}
                    Err(e) if e.kind().is_some_and(|k| k.is_transient()) => {
                        self.stats.transient_errors += 1;
                        self.error_streak = self.error_streak.saturating_add(1);
                        let delay = full_jitter(
                            self.settings.errors.0,
                            self.settings.errors.1,
                            self.error_streak,
                        );
                        tracing::warn!(error = %e, table = %self.settings.table, shard = %shard, ?delay,
                            "stream read failed; backing off");
                        tokio::time::sleep(delay).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            self.idle_rounds = self.idle_rounds.saturating_add(1);
            let (base, cap) = self.settings.idle;
            tokio::time::sleep(idle_delay(base, cap, self.idle_rounds)).await;
        }
    }

    /// Saves `batch`'s checkpoint (its last sequence number, for its shard): a consumer
    /// started later resumes right after it.
    pub async fn commit(&mut self, batch: &Batch) -> Result<()> {
        let arn = self.stream_arn().await?;
        self.settings
            .checkpoints
            .save(&arn, &batch.shard_id, batch.last_sequence_number())
            .await
            .map_err(|source| Error::Checkpoint {
                stream: arn,
                shard: batch.shard_id.clone(),
                source,
            })
    }

    /// Reads forever, handing each batch to `handler` and saving its checkpoint once the
    /// handler returned `Ok`. Returns the first error: the handler's
    /// ([`Error::StreamHandler`]; that batch's checkpoint is not saved, so a consumer started
    /// again reads it again), the checkpoint store's, or a read's that retrying cannot fix.
    ///
    /// ```no_run
    /// use dynamite::streams::{Change, StreamConsumer};
    /// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize, Debug)]
    /// # #[dynamite(table = "users")]
    /// # struct User { #[dynamite(partition_key)] id: String, name: String }
    ///
    /// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
    /// StreamConsumer::builder(db, "users")
    ///     .build()
    ///     .run(|batch| async move {
    ///         for record in batch.records {
    ///             if let Change::Insert(user) = record.decode::<User>()?.change {
    ///                 println!("new user {}", user.name);
    ///             }
    ///         }
    ///         Ok(())
    ///     })
    ///     .await
    /// # }
    /// ```
    pub async fn run<F, Fut>(mut self, mut handler: F) -> Result<()>
    where
        F: FnMut(Batch) -> Fut,
        Fut: Future<Output = std::result::Result<(), BoxError>>,
    {
        loop {
            let batch = self.next_batch().await?;
            let done = Batch {
                shard_id: batch.shard_id.clone(),
                records: batch.records.last().cloned().into_iter().collect(),
            };
            handler(batch)
                .await
                .map_err(|source| Error::StreamHandler {
                    shard: done.shard_id.clone(),
                    source,
                })?;
            self.commit(&done).await?;
        }
    }

    /// The DynamoDB Streams client (made on first use).
    async fn streams(&mut self) -> aws_sdk_dynamodbstreams::Client {
        if self.streams.is_none() {
            self.streams = Some(streams_client(self.client.sdk().config()).await);
        }
        self.streams.clone().expect("set above")
    }

    /// Lists the stream's shards (every page) and takes in the new ones with their
    /// checkpoints.
    async fn refresh(&mut self) -> Result<()> {
        let arn = self.stream_arn().await?;
        let streams = self.streams().await;
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let target = Target::safe(Operation::DescribeStream, &self.settings.table, "", None);
            let out = self
                .client
                .execute(target, || {
                    streams
                        .describe_stream()
                        .stream_arn(&arn)
                        .set_exclusive_start_shard_id(after.clone())
                        .send()
                })
                .await?;
            let Some(description) = out.stream_description else {
                break;
            };
            for shard in description.shards.unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                listed.push(Listed {
                    id,
                    parent: shard.parent_shard_id,
                    closed: shard
                        .sequence_number_range
                        .is_some_and(|r| r.ending_sequence_number.is_some()),
                });
            }
            after = description.last_evaluated_shard_id;
            if after.is_none() {
                break;
            }
        }
        let mut new = Vec::new();
        for shard in self.shards.unknown(&listed) {
            let checkpoint = self
                .settings
                .checkpoints
                .load(&arn, &shard.id)
                .await
                .map_err(|source| Error::Checkpoint {
                    stream: arn.clone(),
                    shard: shard.id.clone(),
                    source,
                })?;
            new.push((shard.clone(), checkpoint));
        }
        self.shards.add(&listed, new, self.settings.start);
        self.refreshed = Some(Instant::now());
        self.refresh_now = false;
        Ok(())
    }

    /// One GetRecords on `shard` (taking an iterator first when it has none, or when its
    /// iterator expired).
    async fn read(&mut self, shard: &str) -> Result<Read> {
        let streams = self.streams().await;
        let mut expired_once = false;
        let mut from_horizon = false;
        loop {
            let iterator = match self.shards.get(shard).and_then(|s| s.iterator.clone()) {
                Some(iterator) => iterator,
                None => self.take_iterator(shard).await?,
            };
            let target = Target::safe(Operation::GetRecords, &self.settings.table, "", None);
            let limit = self.settings.batch_size;
            let answer = self
                .client
                .execute(target, || {
                    streams
                        .get_records()
                        .shard_iterator(&iterator)
                        .set_limit(limit)
                        .send()
                })
                .await;
            let out = match answer {
                Ok(out) => out,
                Err(e) if e.code() == Some("ExpiredIteratorException") && !expired_once => {
                    // Taken again right after the last record handed out.
                    expired_once = true;
                    self.stats.expired_iterators += 1;
                    tracing::info!(table = %self.settings.table, shard, "shard iterator expired; taking a new one");
                    if let Some(s) = self.shards.get_mut(shard) {
                        s.iterator = None;
                    }
                    continue;
                }
                Err(e)
                    if e.code() == Some("TrimmedDataAccessException")
                        && !from_horizon
                        && self
                            .shards
                            .get(shard)
                            .is_some_and(Shard::nothing_handed_out) =>
                {
                    // Nothing was handed out from this shard yet, from an iterator at LATEST or
                    // TRIM_HORIZON: no record this consumer answers for can have been trimmed
                    // (on DynamoDB, only a race with trimming answers this). DynamoDB Local
                    // answers it for a LATEST iterator of an empty shard once any table of the
                    // server has written (its sequence numbers are server-wide). Read the shard
                    // from its oldest record.
                    from_horizon = true;
                    tracing::info!(table = %self.settings.table, shard, "trimmed answer before any record; reading the shard from TRIM_HORIZON");
                    if let Some(s) = self.shards.get_mut(shard) {
                        s.start = Position::TrimHorizon;
                        s.iterator = None;
                    }
                    continue;
                }
                Err(e) => return Err(self.trimmed(shard, e)),
            };
            let records = out
                .records
                .unwrap_or_default()
                .into_iter()
                .map(record::from_sdk)
                .collect::<Result<Vec<Record>>>()?;
            let s = self.shards.get_mut(shard).expect("a known shard");
            s.iterator = out.next_shard_iterator;
            if s.iterator.is_none() {
                s.done = true;
                self.stats.shards_finished += 1;
                self.refresh_now = true;
            }
            let Some(last) = records.last() else {
                self.stats.empty_reads += 1;
                return Ok(Read::Empty);
            };
            s.last = Some(last.sequence_number.clone());
            self.stats.records += records.len() as u64;
            return Ok(Read::Records(Batch {
                shard_id: shard.to_owned(),
                records,
            }));
        }
    }

    /// A new iterator for `shard`, at its position (after its last record handed out).
    async fn take_iterator(&mut self, shard: &str) -> Result<String> {
        let arn = self.stream_arn().await?;
        let position = self.shards.get(shard).expect("a known shard").position();
        let (kind, sequence) = match &position {
            Position::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            Position::Latest => (ShardIteratorType::Latest, None),
            Position::After(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
        };
        let streams = self.streams().await;
        let target = Target::safe(Operation::GetShardIterator, &self.settings.table, "", None);
        let answer = self
            .client
            .execute(target, || {
                streams
                    .get_shard_iterator()
                    .stream_arn(&arn)
                    .shard_id(shard)
                    .shard_iterator_type(kind.clone())
                    .set_sequence_number(sequence.clone())
                    .send()
            })
            .await;
        let iterator = answer
            .map_err(|e| self.trimmed(shard, e))?
            .shard_iterator
            .ok_or_else(|| Error::Config(format!("no iterator for shard {shard}")))?;
        if let Some(s) = self.shards.get_mut(shard) {
            s.iterator = Some(iterator.clone());
        }
        Ok(iterator)
    }

    /// `err`, or [`Error::StreamTrimmed`] when it says the shard no longer holds the records
    /// asked for.
    fn trimmed(&self, shard: &str, err: Error) -> Error {
        if err.code() != Some("TrimmedDataAccessException") {
            return err;
        }
        Error::StreamTrimmed {
            table: self.settings.table.clone(),
            shard: shard.to_owned(),
            position: self.shards.get(shard).and_then(|s| match s.position() {
                Position::After(seq) => Some(seq),
                _ => None,
            }),
            source: err.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_waits_stay_between_half_the_ceiling_and_the_ceiling() {
        let (base, cap) = (Duration::from_millis(20), Duration::from_millis(300));
        for rounds in 1..10 {
            let ceiling = ceiling(base, cap, rounds);
            for _ in 0..100 {
                let d = idle_delay(base, cap, rounds);
                assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} for {ceiling:?}");
            }
        }
        assert_eq!(ceiling(base, cap, 9), cap);
    }
}
