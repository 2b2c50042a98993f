//! The batch write engine: at most 25 puts and deletes per BatchWriteItem, unprocessed items
//! sent again by the pipeline's attempts loop, and an account of what was certainly not
//! applied and what may have been (a lost answer).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, ReturnConsumedCapacity, WriteRequest};

use super::BatchStats;
use crate::pipeline::{Settle, Target};
use crate::retry::Repeat;
use crate::write::{WriteKind, WriteOp};
use crate::{Client, Error, Item, Operation, RetryPolicy};

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

    pub(crate) fn id(&self) -> String {
        write_id(&self.table, &self.key)
    }
}

pub(crate) struct ChunkResult {
    pub(crate) puts: usize,
    pub(crate) deletes: usize,
    pub(crate) stats: BatchStats,
    /// Certainly not applied.
    pub(crate) not_applied: Vec<WriteOp>,
    /// Sent in a request whose answer was lost: maybe applied.
    pub(crate) unknown: Vec<WriteOp>,
    pub(crate) error: Option<Error>,
}

/// Writes at most 25 operations; unprocessed ones are sent again by the pipeline's attempts
/// loop.
pub(crate) async fn write_chunk(
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
pub(crate) fn write_id(table: &str, key: &Item) -> String {
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
