//! The batch read engine: one table's keys read with BatchGetItem, in chunks of 100, a bounded
//! number of requests in flight, unprocessed keys sent again by the pipeline's attempts loop,
//! results aligned with the keys. Used by `batch_get`, by finds that read full items after an
//! index read, and by `warm`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnConsumedCapacity};
use futures::StreamExt;

use super::{BatchStats, MAX_KEYS_PER_REQUEST};
use crate::attr::Path;
use crate::expr::{self, Placeholders};
use crate::key::{item_key_text, KeyTexts};
use crate::pipeline::{Settle, Target};
use crate::replay::{self, BodySlot};
use crate::{Cause, Client, Entity, Error, Item, Operation, Result, RetryPolicy};

/// One table's part of a batch read, with everything a request needs.
#[derive(Clone)]
pub(crate) struct TableRead<'a> {
    pub table: String,
    pub entity: &'static str,
    /// The table's key attribute names, to match answers to keys.
    pub key_names: Vec<&'static str>,
    pub projection: Option<String>,
    pub names: Option<HashMap<String, String>>,
    pub consistent: bool,
    pub retry: Option<&'a RetryPolicy>,
}

impl<'a> TableRead<'a> {
    /// Reads one chunk of at most 100 distinct keys; the items found (any order).
    ///
    /// The keys move into the request (a client whose SDK config has interceptors of its own
    /// sends copies, see [`Client::batch_moves`]); unprocessed keys come back in the answer,
    /// and a failed attempt's keys are read back from the body it sent ([`crate::replay`]).
    pub(crate) async fn read_chunk(
        &self,
        client: &Client,
        keys: Vec<Item>,
    ) -> Result<(Vec<Item>, BatchStats)> {
        let moves = client.batch_moves();
        let slot = BodySlot::default();
        let state = Mutex::new(ReadState {
            found: Vec::with_capacity(keys.len()),
            pending: Some(keys),
            in_flight: 0,
            stats: BatchStats::default(),
        });
        let lock = || state.lock().unwrap_or_else(PoisonError::into_inner);
        let target = Target::safe(
            Operation::BatchGetItem,
            &self.table,
            self.entity,
            self.retry,
        );
        let sent = client
            .execute_settled(
                target,
                |remainder| {
                    let mut st = lock();
                    st.stats.requests += 1;
                    if remainder {
                        st.stats.unprocessed_retries += 1;
                    }
                    if st.pending.is_none() {
                        // The last attempt failed: its keys are sent again.
                        st.pending = self.read_back(&slot);
                    }
                    st.in_flight = st.pending.as_ref().map_or(0, Vec::len);
                    let keys = if moves {
                        st.pending.take()
                    } else {
                        st.pending.clone()
                    };
                    drop(st);
                    let request = KeysAndAttributes::builder()
                        .set_keys(keys)
                        .set_projection_expression(self.projection.clone())
                        .set_expression_attribute_names(self.names.clone())
                        .consistent_read(self.consistent)
                        .build()
                        .expect("keys are set");
                    let send = client
                        .sdk()
                        .batch_get_item()
                        .request_items(&self.table, request)
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send();
                    replay::keeping_body(&slot, send)
                },
                |out| {
                    let mut st = lock();
                    slot.take();
                    if let Some(mut responses) = out.responses {
                        st.found
                            .extend(responses.remove(&self.table).unwrap_or_default());
                    }
                    let unprocessed = out
                        .unprocessed_keys
                        .and_then(|mut u| u.remove(&self.table))
                        .map(|k| k.keys)
                        .unwrap_or_default();
                    let progressed = unprocessed.len() < st.in_flight;
                    st.pending = Some(unprocessed);
                    if st.pending.as_ref().is_some_and(Vec::is_empty) {
                        Settle::Done(())
                    } else {
                        Settle::Again {
                            progressed,
                            exhausted: (),
                            reason: "UnprocessedKeys",
                        }
                    }
                },
            )
            .await;
        let ReadState {
            pending,
            found,
            stats,
            ..
        } = state.into_inner().unwrap_or_else(PoisonError::into_inner);
        let pending = match pending {
            Some(pending) => pending,
            None => self.read_back(&slot).unwrap_or_default(),
        };
        match sent {
            Ok(()) if pending.is_empty() => Ok((found, stats)),
            Ok(()) => Err(self.incomplete(pending, found, None)),
            Err(e) => Err(self.incomplete(pending, found, Some(e))),
        }
    }

    /// The keys a failed attempt sent, read back from its body.
    fn read_back(&self, slot: &BodySlot) -> Option<Vec<Item>> {
        let body = slot.take()?;
        match replay::batch_keys(&body, &self.table) {
            Ok(keys) => Some(keys),
            Err(e) => {
                tracing::error!(reason = %e.0, "could not read back a batch read to resend it");
                None
            }
        }
    }

    /// Reads distinct `keys` with `concurrency` requests in flight; answers aligned with
    /// `keys` (`None`: no such item).
    pub(crate) async fn read_all(
        &self,
        client: &Client,
        keys: Vec<Item>,
        concurrency: usize,
    ) -> Result<(Vec<Option<Item>>, BatchStats)> {
        let texts = KeyTexts::of_items(&keys, &self.key_names);
        let mut aligned: Vec<Option<Item>> = Vec::with_capacity(keys.len());
        aligned.resize_with(keys.len(), || None);
        let read = self
            .read_keyed(client, keys, &texts, concurrency, &mut |i, item| {
                aligned[i] = Some(item);
                Ok(())
            })
            .await;
        match read {
            Ok(stats) => Ok((aligned, stats)),
            // The items already handed over go into the error with the rest.
            Err(err) => Err(super::with_read_items(
                err,
                aligned
                    .into_iter()
                    .flatten()
                    .map(|item| (self.table.clone(), item)),
            )),
        }
    }

    /// Reads distinct `keys`, whose texts are `texts` (aligned with `keys`), with `concurrency`
    /// requests in flight, and hands each item found to `found` with its key's position as
    /// soon as its request is answered: the caller decodes them while the rest are read, so
    /// the items of the whole read are never held at once. A key without an item is never
    /// handed over. When some keys could not be read ([`Error::UnprocessedKeys`]), the error's
    /// `read` holds only the items not handed over: the caller adds those it was given.
    pub(crate) async fn read_keyed(
        &self,
        client: &Client,
        keys: Vec<Item>,
        texts: &KeyTexts,
        concurrency: usize,
        found: &mut (dyn FnMut(usize, Item) -> Result<()> + Send),
    ) -> Result<BatchStats> {
        debug_assert_eq!(keys.len(), texts.len());
        let count = keys.len();
        let mut keys = keys.into_iter().peekable();
        let mut chunks: Vec<Vec<Item>> = Vec::with_capacity(count.div_ceil(MAX_KEYS_PER_REQUEST));
        while keys.peek().is_some() {
            chunks.push(keys.by_ref().take(MAX_KEYS_PER_REQUEST).collect());
        }
        // Each item goes where its key is: matched by canonical key text, one buffer reused.
        let position: HashMap<&str, usize> = (0..count).map(|i| (texts.get(i), i)).collect();
        let mut text = String::with_capacity(64);
        let mut hand_over = |items: Vec<Item>| -> Result<()> {
            for item in items {
                text.clear();
                if item_key_text(&mut text, &item, &self.key_names) {
                    if let Some(&i) = position.get(text.as_str()) {
                        found(i, item)?;
                    }
                }
            }
            Ok(())
        };
        // Every chunk runs to its end, so a failure reports all the keys not read.
        let mut outcomes = futures::stream::iter(chunks)
            .map(|chunk| self.read_chunk(client, chunk))
            .buffer_unordered(concurrency.max(1));
        let mut stats = BatchStats::default();
        let mut unread: Vec<Item> = Vec::new();
        let mut read_before_failing: Vec<Item> = Vec::new();
        let mut first_cause: Option<Cause> = None;
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Ok((items, s)) => {
                    stats.requests += s.requests;
                    stats.unprocessed_retries += s.unprocessed_retries;
                    hand_over(items)?;
                }
                Err(Error::UnprocessedKeys { keys, read, cause }) => {
                    unread.extend(keys.into_iter().map(|(_, k)| k));
                    read_before_failing.extend(read.into_iter().map(|(_, item)| item));
                    if first_cause.is_none() {
                        first_cause = cause;
                    }
                }
                Err(other) => return Err(other),
            }
        }
        if !unread.is_empty() {
            let mut err = self.incomplete(unread, read_before_failing, None);
            if let Error::UnprocessedKeys { cause, .. } = &mut err {
                *cause = first_cause;
            }
            return Err(err);
        }
        Ok(stats)
    }

    /// The error of a read that did not get every key: exactly the keys not read, every item
    /// read, and what stopped it.
    fn incomplete(&self, unread: Vec<Item>, read: Vec<Item>, cause: Option<Error>) -> Error {
        let table = |item| (self.table.clone(), item);
        Error::UnprocessedKeys {
            keys: unread.into_iter().map(table).collect(),
            read: read.into_iter().map(table).collect(),
            cause: cause.map(Cause::from),
        }
    }
}

/// A chunk being read: the keys left, the items found, the requests made.
struct ReadState {
    /// The keys the next attempt sends; `None` while an attempt holds them.
    pending: Option<Vec<Item>>,
    /// Keys in the request of the attempt in flight.
    in_flight: usize,
    found: Vec<Item>,
    stats: BatchStats,
}

/// A `TableRead` that owns its retry policy (for 'static-ish streams).
pub(crate) struct OwnedTableRead {
    read: TableRead<'static>,
    retry: Option<RetryPolicy>,
}

impl OwnedTableRead {
    pub(crate) fn as_read(&self) -> TableRead<'_> {
        TableRead {
            retry: self.retry.as_ref(),
            ..self.read.clone()
        }
    }
}

pub(crate) fn table_read_owned<E: Entity>(
    client: &Client,
    projection: &[Path],
    consistent: bool,
    retry: Option<RetryPolicy>,
) -> OwnedTableRead {
    let read = table_read::<E>(client, projection, consistent, None);
    OwnedTableRead {
        read: TableRead {
            retry: None,
            ..read
        },
        retry,
    }
}

pub(crate) fn table_read<'r, E: Entity>(
    client: &Client,
    projection: &[Path],
    consistent: bool,
    retry: Option<&'r RetryPolicy>,
) -> TableRead<'r> {
    let schema = E::schema();
    let key_names = schema.primary_key_names();
    let (projection, names) = if projection.is_empty() {
        (None, None)
    } else {
        let mut ph = Placeholders::default();
        let paths = expr::with_keys(projection, &key_names);
        (expr::projection(&mut ph, &paths), ph.names())
    };
    TableRead {
        table: client.table_name(schema.table),
        entity: schema.entity,
        key_names,
        projection,
        names,
        consistent,
        retry,
    }
}
