//! BatchWriteItem: puts and deletes of any entities, any count, chunks of 25, bounded
//! concurrency, everything validated before the first request, unprocessed items retried, and
//! whatever could not be applied handed back in [`Error::Unprocessed`].

use std::collections::{HashMap, HashSet};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, ReturnConsumedCapacity, WriteRequest};
use futures::StreamExt;

use super::batch_get::BatchStats;
use crate::pipeline::{Settle, Target};
use crate::retry::Repeat;
use crate::write::{WriteKind, WriteOp};
use crate::{Cause, Client, Entity, Error, Item, Key, Operation, Result, RetryPolicy};

/// DynamoDB's limit of operations per BatchWriteItem request.
pub const MAX_WRITES_PER_REQUEST: usize = 25;

impl WriteOp {
    fn request(&self) -> WriteRequest {
        match &self.kind {
            WriteKind::Put(item) => WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .expect("item is set"),
                )
                .build(),
            WriteKind::Delete => WriteRequest::builder()
                .delete_request(
                    DeleteRequest::builder()
                        .set_key(Some(self.key.clone()))
                        .build()
                        .expect("key is set"),
                )
                .build(),
        }
    }

    fn id(&self) -> String {
        write_id(&self.table, &self.key)
    }
}

/// What a batch write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchWriteOutput {
    /// Puts applied.
    pub puts: usize,
    /// Deletes applied.
    pub deletes: usize,
    /// Operations dropped because a later operation in the same call wrote the same key.
    pub superseded: usize,
    /// Requests made and unprocessed-item retries.
    pub stats: BatchStats,
}

/// Puts and deletes, on one or several entities. Built by [`Entity::batch_write`] or
/// [`Client::batch_write`].
///
/// Two operations on the same key in one call: **the last one wins** (the earlier one is not
/// sent, and counted in [`BatchWriteOutput::superseded`]) — DynamoDB would reject the whole
/// request instead. Batch writes cannot carry conditions, so version attributes are written as
/// the next version but not checked.
///
/// ```no_run
/// # use dynamite::Entity;
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "users")]
/// # struct User { #[dynamite(partition_key)] id: String }
/// # async fn demo(db: &dynamite::Client, users: Vec<User>) -> dynamite::Result<()> {
/// let out = User::batch_write(db).put_all(&users).delete(User::key("gone")).await?;
/// println!("{} puts, {} requests", out.puts, out.stats.requests);
/// # Ok(()) }
/// ```
#[must_use = "a BatchWrite does nothing until awaited"]
pub struct BatchWrite<'a> {
    client: &'a Client,
    ops: Vec<WriteOp>,
    error: Option<Error>,
    concurrency: usize,
    retry: Option<RetryPolicy>,
}

impl<'a> BatchWrite<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        BatchWrite {
            client,
            ops: Vec::new(),
            error: None,
            concurrency: super::batch_get::DEFAULT_CONCURRENCY,
            retry: None,
        }
    }

    /// Puts `entity` (checked now: conversion, key, item size; the first problem is returned
    /// by `send` before any request).
    pub fn put<E: Entity>(mut self, entity: &E) -> Self {
        match prepare_put(self.client, entity) {
            Ok(op) => self.ops.push(op),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Puts every entity.
    pub fn put_all<'e, E: Entity>(mut self, entities: impl IntoIterator<Item = &'e E>) -> Self {
        for e in entities {
            self = self.put(e);
        }
        self
    }

    /// Deletes the item with `key`.
    pub fn delete<E: Entity>(mut self, key: Key<E>) -> Self {
        match key.to_item() {
            Ok(item) => self.ops.push(WriteOp {
                table: self.client.table_name(E::schema().table),
                entity: E::schema().entity,
                key_text: crate::cache::key_text(key.partition(), key.sort()),
                key: item,
                kind: WriteKind::Delete,
            }),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Deletes the items with these keys.
    pub fn delete_all<E: Entity>(mut self, keys: impl IntoIterator<Item = Key<E>>) -> Self {
        for k in keys {
            self = self.delete(k);
        }
        self
    }

    /// Adds operations handed back by [`Error::Unprocessed`], to try them again: its
    /// `operations` (certainly not applied), and its `unknown` ones too if the caller decides
    /// to (puts and deletes of whole items leave the same state when applied twice).
    pub fn resume(mut self, ops: impl IntoIterator<Item = WriteOp>) -> Self {
        self.ops.extend(ops);
        self
    }

    /// Requests in flight at once (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Number of operations added so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// `true` when no operation was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Runs it.
    pub async fn send(self) -> Result<BatchWriteOutput> {
        if let Some(e) = self.error {
            return Err(e);
        }
        // Last one wins: keep each key's last operation, in the order of those last operations.
        let total = self.ops.len();
        let mut last: HashMap<String, usize> = HashMap::with_capacity(total);
        for (i, op) in self.ops.iter().enumerate() {
            last.insert(op.id(), i);
        }
        let ops: Vec<WriteOp> = self
            .ops
            .into_iter()
            .enumerate()
            .filter(|(i, op)| last.get(&op.id()) == Some(i))
            .map(|(_, op)| op)
            .collect();
        let superseded = total - ops.len();

        let client = self.client;
        let retry = self.retry.as_ref();
        let chunks: Vec<Vec<WriteOp>> = ops
            .chunks(MAX_WRITES_PER_REQUEST)
            .map(<[WriteOp]>::to_vec)
            .collect();
        let results: Vec<ChunkResult> = futures::stream::iter(chunks)
            .map(|chunk| write_chunk(client, chunk, retry))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        let mut out = BatchWriteOutput {
            superseded,
            ..Default::default()
        };
        let mut failed: Vec<WriteOp> = Vec::new();
        let mut unknown: Vec<WriteOp> = Vec::new();
        let mut cause: Option<Error> = None;
        for r in results {
            out.puts += r.puts;
            out.deletes += r.deletes;
            out.stats.requests += r.stats.requests;
            out.stats.unprocessed_retries += r.stats.unprocessed_retries;
            failed.extend(r.not_applied);
            unknown.extend(r.unknown);
            if cause.is_none() {
                cause = r.error;
            }
        }
        if failed.is_empty() && unknown.is_empty() {
            Ok(out)
        } else {
            Err(Error::Unprocessed {
                operations: failed,
                unknown,
                applied: out.puts + out.deletes,
                cause: cause.map(Cause::from),
            })
        }
    }
}

fn prepare_put<E: Entity>(client: &Client, entity: &E) -> Result<WriteOp> {
    let schema = E::schema();
    if let Some(attr) = schema.version {
        // BatchWriteItem carries no conditions: a stamped version could not be checked, and
        // writing it over a newer item would move the stored version backwards.
        return Err(Error::validation(
            schema.entity,
            attr,
            "batch writes cannot check versions, and an unchecked version could move a stored \
             one backwards: write versioned entities with put() (or transact_write(), up to \
             100 version-checked writes at once)",
        ));
    }
    let item = entity.to_item()?;
    crate::write::validate_item::<E>(&item)?;
    let primary = entity.primary_key();
    let key = primary.to_item()?;
    Ok(WriteOp {
        table: client.table_name(schema.table),
        entity: schema.entity,
        key_text: crate::cache::key_text(primary.partition(), primary.sort()),
        key,
        kind: WriteKind::Put(item),
    })
}

struct ChunkResult {
    puts: usize,
    deletes: usize,
    stats: BatchStats,
    /// Certainly not applied.
    not_applied: Vec<WriteOp>,
    /// Sent in a request whose answer was lost: maybe applied.
    unknown: Vec<WriteOp>,
    error: Option<Error>,
}

/// Writes at most 25 operations; unprocessed ones are sent again by the pipeline's attempts
/// loop.
async fn write_chunk(
    client: &Client,
    chunk: Vec<WriteOp>,
    retry: Option<&RetryPolicy>,
) -> ChunkResult {
    let label = chunk
        .first()
        .map(|op| (op.table.clone(), op.entity))
        .unwrap_or_default();
    // What invalidation must cover: every item the chunk may write.
    let written: Vec<(String, String)> = chunk
        .iter()
        .map(|op| (op.table.clone(), op.key_text.clone()))
        .collect();
    let state = Mutex::new(ChunkState {
        pending: chunk,
        result: ChunkResult {
            puts: 0,
            deletes: 0,
            stats: BatchStats::default(),
            not_applied: Vec::new(),
            unknown: Vec::new(),
            error: None,
        },
    });
    // Puts and deletes of whole items, without conditions: they leave the same state when sent
    // again, but a request that fails after a lost answer may have been applied, so its
    // operations are reported apart (`Error::Unprocessed::unknown`).
    let target = Target {
        repeat: Repeat::SameState,
        ..Target::safe(Operation::BatchWriteItem, &label.0, label.1, retry)
    };
    let sent = client
        .execute_settled(
            target,
            |remainder| {
                let request = lock(&state).request(remainder);
                client
                    .sdk()
                    .batch_write_item()
                    .set_request_items(Some(request))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            },
            |out| lock(&state).settle(out),
        )
        .await;
    // Drop the cache entries of every item the chunk may have written, before returning.
    client
        .invalidate_written(written.iter().map(|(t, k)| (t.as_str(), k.as_str())))
        .await;
    let ChunkState {
        pending,
        mut result,
    } = state.into_inner().unwrap_or_else(PoisonError::into_inner);
    match sent {
        // Done (nothing pending), or out of attempts with `pending` unprocessed.
        Ok(()) => result.not_applied = pending,
        Err(Error::OutcomeUnknown { source, .. }) => {
            result.unknown = pending;
            result.error = Some(source.into_inner());
        }
        Err(e) => {
            result.not_applied = pending;
            result.error = Some(e);
        }
    }
    result
}

/// The identity of a write: its table and its key's canonical encoding (table names cannot
/// hold `\u{1}`).
fn write_id(table: &str, key: &Item) -> String {
    let mut id = String::with_capacity(table.len() + 32);
    id.push_str(table);
    id.push('\u{1}');
    id.push_str(&crate::key::encode_item_key(key));
    id
}

/// A chunk in flight: what is left to write, and what was done.
struct ChunkState {
    pending: Vec<WriteOp>,
    result: ChunkResult,
}

impl ChunkState {
    /// The request for what is pending (counted; `remainder`: sent for unprocessed items).
    fn request(&mut self, remainder: bool) -> HashMap<String, Vec<WriteRequest>> {
        self.result.stats.requests += 1;
        if remainder {
            self.result.stats.unprocessed_retries += 1;
        }
        let mut by_table: HashMap<String, Vec<WriteRequest>> = HashMap::new();
        for op in &self.pending {
            by_table
                .entry(op.table.clone())
                .or_default()
                .push(op.request());
        }
        by_table
    }

    /// Takes an answer: the operations applied are counted, the unprocessed ones stay pending.
    fn settle(&mut self, out: BatchWriteItemOutput) -> Settle<()> {
        // Match unprocessed requests back to their operations.
        let mut unprocessed_ids: HashSet<String> = HashSet::new();
        for (table, requests) in out.unprocessed_items.unwrap_or_default() {
            for request in requests {
                // Matched by key attributes, never by the whole item: an interceptor that
                // rewrites items (client-side encryption, say) must not make an unwritten item
                // look written.
                let key = match (&request.put_request, &request.delete_request) {
                    (Some(put), _) => self
                        .pending
                        .iter()
                        .find(|op| {
                            op.table == table
                                && op.key.iter().all(|(name, v)| put.item.get(name) == Some(v))
                        })
                        .map(|op| op.key.clone()),
                    (None, Some(del)) => Some(del.key.clone()),
                    (None, None) => None,
                };
                if let Some(key) = key {
                    unprocessed_ids.insert(write_id(&table, &key));
                }
            }
        }
        let before = self.pending.len();
        let (left, done): (Vec<WriteOp>, Vec<WriteOp>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|op| unprocessed_ids.contains(&op.id()));
        for op in &done {
            match op.kind {
                WriteKind::Put(_) => self.result.puts += 1,
                WriteKind::Delete => self.result.deletes += 1,
            }
        }
        let progressed = left.len() < before;
        self.pending = left;
        if self.pending.is_empty() {
            Settle::Done(())
        } else {
            Settle::Again {
                progressed,
                exhausted: (),
                reason: "UnprocessedItems",
            }
        }
    }
}

fn lock(state: &Mutex<ChunkState>) -> MutexGuard<'_, ChunkState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<'a> IntoFuture for BatchWrite<'a> {
    type Output = Result<BatchWriteOutput>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
