//! The batch write engine: at most 25 puts and deletes per BatchWriteItem, unprocessed items
//! sent again by the pipeline's attempts loop, and an account of what was certainly not
//! applied and what may have been (a lost answer).
//!
//! Items move into the request: no copy is made for the first attempt. What is sent again
//! comes from the answer (its unprocessed items) or, after a failed attempt, from the body the
//! failed attempt sent ([`crate::replay`]); a client whose SDK config has interceptors of its
//! own keeps a copy instead ([`Client::batch_moves`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, ReturnConsumedCapacity, WriteRequest};

use super::BatchStats;
use crate::pipeline::{Settle, Target};
use crate::replay::{self, BodySlot};
use crate::retry::Repeat;
use crate::write::{KeyNames, WriteKind, WriteOp};
use crate::{Client, Error, Operation, RetryPolicy};

/// A request's items, per table.
type Requests = HashMap<String, Vec<WriteRequest>>;

impl WriteOp {
    /// The op as a request, its item moved in.
    fn into_request(self) -> WriteRequest {
        match self.kind {
            WriteKind::Put(item) => WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .expect("item is set"),
                )
                .build(),
            WriteKind::Delete => WriteRequest::builder()
                .delete_request(
                    DeleteRequest::builder()
                        .set_key(Some(self.delete_key))
                        .build()
                        .expect("key is set"),
                )
                .build(),
        }
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

/// What a chunk's tables are, to turn requests back into [`WriteOp`]s.
struct TableInfo {
    table: Arc<str>,
    entity: &'static str,
    key_names: KeyNames,
}

/// Writes at most 25 operations; unprocessed ones are sent again by the pipeline's attempts
/// loop.
pub(crate) async fn write_chunk(
    client: &Client,
    chunk: Vec<WriteOp>,
    retry: Option<&RetryPolicy>,
) -> ChunkResult {
    let Some(first) = chunk.first() else {
        return ChunkResult::empty();
    };
    let label = (first.table.clone(), first.entity);
    // What invalidation must cover: every item the chunk may write (only with a cache).
    let written: Vec<(Arc<str>, String)> = if client.cache().is_some() {
        chunk
            .iter()
            .filter_map(|op| {
                let mut text = String::new();
                op.key_names
                    .push_key_text(op.body(), &mut text)
                    .then(|| (op.table.clone(), text))
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut tables: Vec<TableInfo> = Vec::new();
    let mut requests = Requests::new();
    let (mut puts, mut deletes) = (0, 0);
    for op in chunk {
        if !tables.iter().any(|t| t.table == op.table) {
            tables.push(TableInfo {
                table: op.table.clone(),
                entity: op.entity,
                key_names: op.key_names,
            });
        }
        match op.kind {
            WriteKind::Put(_) => puts += 1,
            WriteKind::Delete => deletes += 1,
        }
        let table = op.table.clone();
        let request = op.into_request();
        match requests.get_mut(&*table) {
            Some(list) => list.push(request),
            None => {
                requests.insert(table.to_string(), vec![request]);
            }
        }
    }
    let state = Mutex::new(ChunkState {
        pending: Some(requests),
        pending_counts: (puts, deletes),
        in_flight: (0, 0),
        moves: client.batch_moves(),
        slot: BodySlot::default(),
        tables,
        result: ChunkResult::empty(),
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
                let (request, slot) = lock(&state).next_request(remainder);
                let send = client
                    .sdk()
                    .batch_write_item()
                    .set_request_items(request)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send();
                replay::keeping_body(&slot, send)
            },
            |out| lock(&state).settle(out),
        )
        .await;
    // Drop the cache entries of every item the chunk may have written, before returning.
    client
        .invalidate_written(written.iter().map(|(t, k)| (&**t, k.as_str())))
        .await;
    let mut state = state.into_inner().unwrap_or_else(PoisonError::into_inner);
    let left = state.left();
    let mut result = state.result;
    let labels = crate::metrics::RequestLabels {
        operation: Operation::BatchWriteItem,
        table: &label.0,
        entity: label.1,
    };
    let written = result.puts + result.deletes;
    client.stats_registry().slot(labels).written(written as u64);
    match sent {
        // Done (nothing pending), or out of attempts with what is left unprocessed.
        Ok(()) => result.not_applied = left,
        Err(Error::OutcomeUnknown { source, .. }) => {
            result.unknown = left;
            result.error = Some(source.into_inner());
        }
        Err(e) => {
            result.not_applied = left;
            result.error = Some(e);
        }
    }
    result
}

impl ChunkResult {
    fn empty() -> Self {
        ChunkResult {
            puts: 0,
            deletes: 0,
            stats: BatchStats::default(),
            not_applied: Vec::new(),
            unknown: Vec::new(),
            error: None,
        }
    }
}

/// A chunk in flight: what is left to write, and what was done.
struct ChunkState {
    /// What the next attempt sends; `None` while an attempt holds it (and after one failed,
    /// until it is read back from the body it sent).
    pending: Option<Requests>,
    /// Puts and deletes in `pending`.
    pending_counts: (usize, usize),
    /// Puts and deletes in the request of the attempt in flight.
    in_flight: (usize, usize),
    /// Whether requests take `pending` (and a failed attempt's body is read back), or a copy.
    moves: bool,
    /// Where the SDK leaves the body of the attempt in flight.
    slot: BodySlot,
    tables: Vec<TableInfo>,
    result: ChunkResult,
}

impl ChunkState {
    /// The request for what is pending (counted; `remainder`: sent for unprocessed items),
    /// and the slot its body goes to.
    fn next_request(&mut self, remainder: bool) -> (Option<Requests>, BodySlot) {
        self.result.stats.requests += 1;
        if remainder {
            self.result.stats.unprocessed_retries += 1;
        }
        if self.pending.is_none() {
            // The last attempt failed: what it sent is sent again.
            self.pending = self.read_back();
        }
        self.in_flight = self.pending_counts;
        let request = if self.moves {
            self.pending.take()
        } else {
            self.pending.clone()
        };
        (request, self.slot.clone())
    }

    /// What the last attempt sent, read back from its body (`None` if it sent none: it
    /// failed before its request was serialized, which only an interceptor can make happen).
    fn read_back(&self) -> Option<Requests> {
        let body = self.slot.take()?;
        match replay::write_requests(&body) {
            Ok(tables) => Some(tables.into_iter().collect()),
            Err(e) => {
                tracing::error!(reason = %e.0, "could not read back a batch write to resend it");
                None
            }
        }
    }

    /// Takes an answer: the operations applied are counted, the unprocessed ones stay pending.
    fn settle(&mut self, out: BatchWriteItemOutput) -> Settle<()> {
        let mut unprocessed: Requests = out.unprocessed_items.unwrap_or_default();
        unprocessed.retain(|_, requests| !requests.is_empty());
        if !self.moves {
            unprocessed = self.originals_of(unprocessed);
        }
        let left = counts(&unprocessed);
        // An answer cannot hand back more than was sent; count conservatively if it did.
        let (sent_puts, sent_deletes) = self.in_flight;
        self.result.puts += sent_puts.saturating_sub(left.0);
        self.result.deletes += sent_deletes.saturating_sub(left.1);
        let progressed = left.0 + left.1 < sent_puts + sent_deletes;
        self.in_flight = (0, 0);
        // The body of an answered attempt is not needed again.
        self.slot.take();
        if unprocessed.is_empty() {
            self.pending = Some(unprocessed);
            self.pending_counts = (0, 0);
            Settle::Done(())
        } else {
            self.pending = Some(unprocessed);
            self.pending_counts = left;
            Settle::Again {
                progressed,
                exhausted: (),
                reason: "UnprocessedItems",
            }
        }
    }

    /// The pending requests that `unprocessed` hands back, matched by key attributes, never by
    /// the whole item: an interceptor may have rewritten the items it sent (client-side
    /// encryption, say), and must be given the originals again.
    fn originals_of(&mut self, unprocessed: Requests) -> Requests {
        let key_text = |names: &KeyNames, request: &WriteRequest| {
            let item = match (&request.put_request, &request.delete_request) {
                (Some(put), _) => &put.item,
                (None, Some(delete)) => &delete.key,
                (None, None) => return None,
            };
            let mut text = String::new();
            names.push_key_text(item, &mut text).then_some(text)
        };
        let mut originals = Requests::new();
        let Some(mut pending) = self.pending.take() else {
            return originals;
        };
        for (table, returned) in unprocessed {
            let (Some(info), Some(sent)) = (
                self.tables.iter().find(|t| *t.table == *table),
                pending.remove(&table),
            ) else {
                continue;
            };
            let wanted: std::collections::HashSet<String> = returned
                .iter()
                .filter_map(|r| key_text(&info.key_names, r))
                .collect();
            let kept: Vec<WriteRequest> = sent
                .into_iter()
                .filter(|r| key_text(&info.key_names, r).is_some_and(|k| wanted.contains(&k)))
                .collect();
            if !kept.is_empty() {
                originals.insert(table, kept);
            }
        }
        originals
    }

    /// What is left when the attempts loop ended, as operations: pending, or what the attempt
    /// in flight sent.
    fn left(&mut self) -> Vec<WriteOp> {
        let requests = match self.pending.take() {
            Some(requests) => requests,
            None => self.read_back().unwrap_or_default(),
        };
        let mut ops = Vec::new();
        for (table, list) in requests {
            let Some(info) = self.tables.iter().find(|t| *t.table == *table) else {
                continue;
            };
            for request in list {
                let op = match (request.put_request, request.delete_request) {
                    (Some(put), _) => {
                        WriteOp::put(info.table.clone(), info.entity, info.key_names, put.item)
                    }
                    (None, Some(delete)) => {
                        WriteOp::delete(info.table.clone(), info.entity, info.key_names, delete.key)
                    }
                    (None, None) => continue,
                };
                ops.push(op);
            }
        }
        ops
    }
}

/// Puts and deletes in `requests`.
fn counts(requests: &Requests) -> (usize, usize) {
    let (mut puts, mut deletes) = (0, 0);
    for request in requests.values().flatten() {
        if request.put_request.is_some() {
            puts += 1;
        } else if request.delete_request.is_some() {
            deletes += 1;
        }
    }
    (puts, deletes)
}

fn lock(state: &Mutex<ChunkState>) -> MutexGuard<'_, ChunkState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
