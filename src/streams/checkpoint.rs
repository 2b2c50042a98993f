//! Where a consumer's progress is kept: [`Checkpoints`], stored by the caller (in DynamoDB,
//! Redis, a file), and [`InMemoryCheckpoints`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::BoxError;

/// A store of per-shard checkpoints: for each shard of a stream, the sequence number of the
/// last record processed. A [`StreamConsumer`](super::StreamConsumer) loads a shard's
/// checkpoint when it first meets the shard and resumes right after it; it saves one only
/// when the caller commits a batch (with [`run`](super::StreamConsumer::run): after the
/// handler returned `Ok`).
///
/// Implement it over any store; keep a shard's checkpoint at least as long as the stream
/// keeps the shard (24 hours after it closes).
///
/// ```
/// use dynamite::streams::Checkpoints;
/// use dynamite::BoxError;
///
/// /// Checkpoints in a table of their own, through the raw SDK.
/// #[derive(Debug)]
/// struct TableCheckpoints(aws_sdk_dynamodb::Client);
///
/// #[async_trait::async_trait]
/// impl Checkpoints for TableCheckpoints {
///     async fn load(&self, stream: &str, shard: &str) -> Result<Option<String>, BoxError> {
///         use aws_sdk_dynamodb::types::AttributeValue::S;
///         let out = self.0.get_item().table_name("checkpoints").consistent_read(true)
///             .key("id", S(format!("{stream}/{shard}")))
///             .send().await?;
///         Ok(out.item.and_then(|i| i.get("seq")?.as_s().ok().cloned()))
///     }
///
///     async fn save(&self, stream: &str, shard: &str, sequence_number: &str) -> Result<(), BoxError> {
///         use aws_sdk_dynamodb::types::AttributeValue::S;
///         self.0.put_item().table_name("checkpoints")
///             .item("id", S(format!("{stream}/{shard}")))
///             .item("seq", S(sequence_number.to_owned()))
///             .send().await?;
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Checkpoints: Send + Sync + std::fmt::Debug + 'static {
    /// The sequence number of the last record processed in `shard` of the stream with ARN
    /// `stream`; `None` when none was.
    async fn load(&self, stream: &str, shard: &str) -> Result<Option<String>, BoxError>;

    /// Records that every record of `shard` up to `sequence_number` was processed.
    async fn save(&self, stream: &str, shard: &str, sequence_number: &str) -> Result<(), BoxError>;
}

/// Checkpoints kept in memory, shared by clones: for tests, and for consumers that start from
/// `LATEST` on every start anyway (the cache invalidator's default). Lost with the process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dynamite::streams::{Checkpoints, InMemoryCheckpoints};
///
/// let store = InMemoryCheckpoints::new();
/// store.save("arn:stream", "shard-1", "100").await.unwrap();
/// assert_eq!(store.get("arn:stream", "shard-1").as_deref(), Some("100"));
/// assert_eq!(store.load("arn:stream", "shard-2").await.unwrap(), None);
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemoryCheckpoints {
    saved: Arc<Mutex<HashMap<(String, String), String>>>,
}

impl InMemoryCheckpoints {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The checkpoint of `shard` of `stream`, if one was saved.
    pub fn get(&self, stream: &str, shard: &str) -> Option<String> {
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        saved.get(&(stream.to_owned(), shard.to_owned())).cloned()
    }

    /// How many shards have a checkpoint.
    pub fn len(&self) -> usize {
        self.saved.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// `true` when no checkpoint was saved.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl Checkpoints for InMemoryCheckpoints {
    async fn load(&self, stream: &str, shard: &str) -> Result<Option<String>, BoxError> {
        Ok(self.get(stream, shard))
    }

    async fn save(&self, stream: &str, shard: &str, sequence_number: &str) -> Result<(), BoxError> {
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        saved.insert(
            (stream.to_owned(), shard.to_owned()),
            sequence_number.to_owned(),
        );
        Ok(())
    }
}

/// A store whose saved checkpoints are not loaded (a fresh start) while new ones are still
/// saved to it.
#[derive(Debug)]
pub(crate) struct SavesOnly(pub(crate) Arc<dyn Checkpoints>);

#[async_trait::async_trait]
impl Checkpoints for SavesOnly {
    async fn load(&self, _stream: &str, _shard: &str) -> Result<Option<String>, BoxError> {
        Ok(None)
    }

    async fn save(&self, stream: &str, shard: &str, sequence_number: &str) -> Result<(), BoxError> {
        self.0.save(stream, shard, sequence_number).await
    }
}
