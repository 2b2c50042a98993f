//! BatchWriteItem: puts and deletes of any entities, any count, chunks of 25, bounded
//! concurrency, everything validated before the first request, unprocessed items retried, and
//! whatever could not be applied handed back in [`Error::Unprocessed`].

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;

use crate::batch::BatchStats;
use crate::write::{KeyNames, WriteOp};
use crate::{Cause, Client, Entity, Error, Key, Result, RetryPolicy};

use crate::batch::{write_chunk, ChunkResult, MAX_WRITES_PER_REQUEST};

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
    /// Each entity's table name (with the client's prefix), shared by its operations.
    tables: Vec<(&'static str, Arc<str>)>,
    error: Option<Error>,
    concurrency: usize,
    retry: Option<RetryPolicy>,
}

impl std::fmt::Debug for BatchWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWrite")
            .field("operations", &self.len())
            .finish_non_exhaustive()
    }
}

impl<'a> BatchWrite<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        BatchWrite {
            client,
            ops: Vec::new(),
            tables: Vec::new(),
            error: None,
            concurrency: crate::batch::DEFAULT_CONCURRENCY,
            retry: None,
        }
    }

    /// Puts `entity` (checked now: conversion, key, item size; the first problem is returned
    /// by `send` before any request).
    pub fn put<E: Entity>(mut self, entity: &E) -> Self {
        let table = self.table::<E>();
        match prepare_put(table, entity) {
            Ok(op) => self.ops.push(op),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// `E`'s table name, shared by all of its operations.
    fn table<E: Entity>(&mut self) -> Arc<str> {
        let name = E::schema().table;
        if let Some((_, table)) = self.tables.iter().find(|(n, _)| *n == name) {
            return table.clone();
        }
        let table: Arc<str> = self.client.table_name(name).into();
        self.tables.push((name, table.clone()));
        table
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
        let schema = E::schema();
        let table = self.table::<E>();
        match key.into_item() {
            Ok(item) => self.ops.push(WriteOp::delete(
                table,
                schema.entity,
                KeyNames::of(schema),
                item,
            )),
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
        let total = self.ops.len();
        let ops = last_per_key(self.ops);
        let superseded = total - ops.len();

        let client = self.client;
        let retry = self.retry.as_ref();
        let mut ops = ops.into_iter().peekable();
        let mut chunks: Vec<Vec<WriteOp>> = Vec::new();
        while ops.peek().is_some() {
            chunks.push(ops.by_ref().take(MAX_WRITES_PER_REQUEST).collect());
        }
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

fn prepare_put<E: Entity>(table: Arc<str>, entity: &E) -> Result<WriteOp> {
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
    let mut item = entity.to_item()?;
    crate::write::stamp_put(schema, &mut item);
    crate::write::validate_item(E::schema(), &item)?;
    Ok(WriteOp::put(
        table,
        schema.entity,
        KeyNames::of(schema),
        item,
    ))
}

/// Last one wins: each key's last operation, in the order of those last operations. Keys are
/// told apart by table and canonical key text, written into one buffer.
fn last_per_key(ops: Vec<WriteOp>) -> Vec<WriteOp> {
    let mut texts = String::with_capacity(ops.len() * 48);
    let mut spans = Vec::with_capacity(ops.len());
    for op in &ops {
        let start = texts.len();
        texts.push_str(&op.table);
        // Table names cannot hold `\u{1}`.
        texts.push('\u{1}');
        // Every op's item holds its key: puts are validated, deletes are keys.
        op.key_names.push_key_text(op.body(), &mut texts);
        spans.push(start..texts.len());
    }
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(ops.len());
    for (i, span) in spans.iter().enumerate() {
        last.insert(&texts[span.clone()], i);
    }
    if last.len() == ops.len() {
        return ops;
    }
    ops.into_iter()
        .zip(&spans)
        .enumerate()
        .filter(|(i, (_, span))| last.get(&texts[(*span).clone()]) == Some(i))
        .map(|(_, (op, _))| op)
        .collect()
}

impl<'a> IntoFuture for BatchWrite<'a> {
    type Output = Result<BatchWriteOutput>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
