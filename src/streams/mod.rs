//! DynamoDB Streams (feature `streams`): typed change records, a resumable consumer, Lambda
//! events, and a cache invalidator that keeps a client's cache fresh after writes from any
//! writer.
//!
//! - [`Record`]: one change (insert, modify, remove) with the item's key, the images the
//!   stream's view type includes, its sequence number and approximate creation time;
//!   [`Record::decode`] makes it a typed [`ChangeRecord`] of an [`Entity`](crate::Entity) (or
//!   any [`FromImage`]).
//! - [`StreamConsumer`]: lists shards, reads parents before children, resumes each shard after
//!   its checkpoint ([`Checkpoints`], stored by the caller; [`InMemoryCheckpoints`]), backs off
//!   on empty reads and throttling, and survives expired shard iterators.
//! - [`records_from_lambda`]: Lambda's DynamoDB stream events as the same [`Record`]s.
//! - [`CacheInvalidator`]: consumes the stream beside a cached client and drops the cache
//!   entries of every item changed, whoever changed it.
//!
//! Values of the DynamoDB Streams SDK and of Lambda events are converted into
//! `aws_sdk_dynamodb`'s `AttributeValue` in one place, so images are ordinary [`Item`](crate::Item)s.
//!
//! A stream is enabled by the entity (`#[dynamite(stream = "new_and_old_images")]`) or by
//! [`CreateTable::stream`](crate::table::CreateTable::stream) when the table is created.

mod checkpoint;
mod consumer;
mod convert;
mod invalidator;
mod lambda;
mod record;
mod shards;

pub use checkpoint::{Checkpoints, InMemoryCheckpoints};
pub use consumer::{Batch, ConsumerStats, StartPosition, StreamConsumer, StreamConsumerBuilder};
pub use invalidator::{
    CacheInvalidator, CacheInvalidatorBuilder, InvalidatorHandle, InvalidatorStats,
};
pub use lambda::{record_from_lambda, records_from_lambda};
pub use record::{Change, ChangeKind, ChangeRecord, FromImage, Record};

/// Re-exported: the Lambda event types [`records_from_lambda`] reads.
pub use aws_lambda_events;
/// Re-exported: the DynamoDB Streams SDK, for [`StreamConsumerBuilder::streams_client`].
pub use aws_sdk_dynamodbstreams;
