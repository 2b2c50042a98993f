//! The request pipeline: every request runs through [`Client::execute_settled`] (the one
//! attempts loop in the crate; [`Client::execute`] is it for requests answered in one piece),
//! single-item writes through [`Client::run_write`] on top of it.
//!
//! ```text
//! span → attempts loop (errors: retry rule by error kind and repeat safety; batch remainders:
//!        unprocessed items and keys sent again; one count reset by progress; the policy's time
//!        budget; the client's retry budget) → typed error mapping
//!      → (writes) cache invalidation → (single-item writes) resolution of lost answers and
//!        explanation of failed conditions
//! ```
//!
//! Builders describe a request as a [`Target`] and a closure that sends one attempt; they do no
//! I/O of their own.

use std::future::Future;

use futures::future::Either;

use aws_sdk_dynamodb::error::SdkError;
use tracing::Instrument;

use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValue};

use crate::metrics;
use crate::retry::{after_failure, AfterFailure, Attempts, Repeat};
use crate::sdk::{CapacityOutput, HttpResponse, OperationError, WriteOutput};
use crate::stats::RequestFigures;
use crate::write::{CompiledWrite, WriteBody, WriteRequestParts};
use crate::{Client, Error, ErrorKind, Item, Operation, Result, RetryPolicy, TableSchema};

/// Where a request goes and how it may be repeated: for the span, the retry rule and error
/// context.
pub(crate) struct Target<'a> {
    pub operation: Operation,
    pub table: &'a str,
    pub entity: &'static str,
    /// A per-call policy; the client's otherwise.
    pub retry: Option<&'a RetryPolicy>,
    /// Whether the request may be sent again after a lost answer.
    pub repeat: Repeat,
    /// The key of the item a single-item write is on, for `OutcomeUnknown`.
    pub key: Option<&'a Item>,
    /// A find's plan, for the slow-operation log.
    pub plan: Option<&'a crate::Plan>,
    /// Items the request writes when it succeeds, for [`Client::stats`] (batch writes count
    /// theirs apart: a request may write part of them).
    pub items_written: u64,
}

impl<'a> Target<'a> {
    /// A request that may always be sent again (reads, table operations); other requests
    /// set `repeat` on top of it.
    pub(crate) fn safe(
        operation: Operation,
        table: &'a str,
        entity: &'static str,
        retry: Option<&'a RetryPolicy>,
    ) -> Self {
        Target {
            operation,
            table,
            entity,
            retry,
            repeat: Repeat::Safe,
            key: None,
            plan: None,
            items_written: 0,
        }
    }

    /// The same request, made for a find planned as `plan`.
    pub(crate) fn with_plan(self, plan: &'a crate::Plan) -> Self {
        Target {
            plan: Some(plan),
            ..self
        }
    }

    /// A single-item write on `key` (`None`: filled in by the caller when the outcome is
    /// unknown).
    pub(crate) fn write(
        operation: Operation,
        table: &'a str,
        entity: &'static str,
        retry: Option<&'a RetryPolicy>,
        key: Option<&'a Item>,
        repeat: Repeat,
    ) -> Self {
        Target {
            repeat,
            key,
            items_written: 1,
            ..Target::safe(operation, table, entity, retry)
        }
    }

    fn outcome_unknown(&self, source: Error) -> Error {
        Error::OutcomeUnknown {
            operation: self.operation,
            table: self.table.to_owned(),
            key: self.key.cloned().unwrap_or_default(),
            source: source.into(),
        }
    }
}

impl Client {
    /// The one request path: a span per operation (table, entity, operation, consumed
    /// capacity, retries), the attempts loop, and the mapping of SDK errors into [`Error`].
    ///
    /// `send` builds and sends the request; it is called once per attempt. A failure is retried
    /// by the rule of [`after_failure`] (its kind, and whether the request may be repeated),
    /// within the policy's attempts and time budget and the client's retry budget. A request
    /// that is not [`Repeat::Safe`] and fails after an attempt whose answer was lost returns
    /// [`Error::OutcomeUnknown`] (whatever the last attempt said: a failed condition may be the
    /// first attempt's doing).
    pub(crate) async fn execute<O, E, F, Fut>(&self, target: Target<'_>, mut send: F) -> Result<O>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<O, SdkError<E, HttpResponse>>>,
        O: CapacityOutput,
        E: OperationError,
    {
        self.execute_settled(target, |_| send(), Settle::Done).await
    }

    /// [`execute`](Self::execute) for requests that may be answered in part (BatchGetItem's
    /// unprocessed keys, BatchWriteItem's unprocessed items): `settle` takes each answer and
    /// says whether the request is done or what is left is sent again. Errors and remainders
    /// share the one attempts loop: one count (reset by an answer that made progress), one
    /// time budget, the client's retry budget (an answer without progress costs a retry).
    /// `send` is told whether it sends a remainder.
    pub(crate) async fn execute_settled<O, E, F, Fut, S, R>(
        &self,
        target: Target<'_>,
        mut send: F,
        mut settle: S,
    ) -> Result<R>
    where
        F: FnMut(bool) -> Fut,
        Fut: Future<Output = std::result::Result<O, SdkError<E, HttpResponse>>>,
        O: CapacityOutput,
        E: OperationError,
        S: FnMut(O) -> Settle<R>,
    {
        // Stats, metrics and the slow-operation log time the whole request, retries included.
        let started = tokio::time::Instant::now();
        let labels = metrics::RequestLabels {
            operation: target.operation,
            table: target.table,
            entity: target.entity,
        };
        let slot = self.stats_registry().slot(labels);
        let series = metrics::ENABLED.then_some(&slot.series);
        let mut consumed_capacity = 0.0;
        let mut items_read = 0;
        let mut throttles = 0;
        let span = tracing::info_span!(
            "dynamite",
            operation = target.operation.name(),
            table = target.table,
            entity = target.entity,
            consumed_capacity = tracing::field::Empty,
            retries = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let policy = target.retry.unwrap_or_else(|| self.retry_policy());
        let mut attempts =
            Attempts::new(policy, self.retry_tokens()).with_timeout(self.operation_timeout());
        let mut answer_lost = false;
        let mut remainder = false;
        let result = async {
            loop {
                // The SDK's request future is large (kilobytes); boxed, the futures of every layer
                // above it stay small, so moving them is cheap (one allocation per attempt against
                // a copy of the whole request future at every layer).
                let attempt_started = series.map(|s| (s, tokio::time::Instant::now()));
                let request = Box::pin(send(remainder)).instrument(span.clone());
                // `None`: the operation timeout ran out first (the attempt is abandoned).
                let answer = match attempts.deadline() {
                    None => Some(request.await),
                    Some(deadline) => tokio::time::timeout_at(deadline, request).await.ok(),
                };
                let err = match answer {
                    None => operation_timed_out(&target, self.operation_timeout()),
                    Some(Ok(output)) => {
                        if let Some((series, at)) = attempt_started {
                            metrics::attempt(labels, series, at.elapsed(), None);
                        }
                        if let Some(units) = output.capacity_units() {
                            span.record("consumed_capacity", units);
                            consumed_capacity += units;
                        }
                        items_read += output.items_read();
                        let exhausted = match settle(output) {
                            Settle::Done(result) => {
                                if attempts.total_retries > 0 {
                                    span.record("retries", attempts.total_retries);
                                }
                                attempts.succeeded();
                                return Ok(result);
                            }
                            Settle::Again {
                                progressed,
                                exhausted,
                                reason,
                            } => {
                                if progressed {
                                    attempts.progressed();
                                }
                                let spend = (!progressed).then_some(ErrorKind::Throttled);
                                if let Some(delay) = attempts.next_delay(spend) {
                                    wait_to_retry(&attempts, delay, labels, reason, &span).await;
                                    remainder = true;
                                    continue;
                                }
                                exhausted
                            }
                        };
                        span.record("retries", attempts.total_retries);
                        return Ok(exhausted);
                    }
                    Some(Err(err)) => crate::sdk::map_error(target.operation, target.table, err),
                };
                if let Some((series, at)) = attempt_started {
                    metrics::attempt(labels, series, at.elapsed(), Some(&err));
                }
                let kind = err.kind();
                throttles += u32::from(kind == Some(ErrorKind::Throttled));
                let lost = kind == Some(ErrorKind::OutcomeUnknown);
                let decision = after_failure(kind, target.repeat);
                if decision == AfterFailure::Retry {
                    if let Some(delay) = attempts.next_delay(kind) {
                        answer_lost |= lost;
                        // DynamoDB's code when it answered, else the kind.
                        let reason = err
                            .code()
                            .or_else(|| kind.map(ErrorKind::name))
                            .unwrap_or_default();
                        wait_to_retry(&attempts, delay, labels, reason, &span).await;
                        remainder = false;
                        continue;
                    }
                }
                let after_lost_answer = answer_lost || lost;
                let unknown = decision == AfterFailure::OutcomeUnknown
                    || match target.repeat {
                        Repeat::Safe => false,
                        // A definitive answer to the token settles it; a transient one does not.
                        Repeat::Token => {
                            after_lost_answer && kind.is_some_and(ErrorKind::is_transient)
                        }
                        Repeat::SameState | Repeat::Never => after_lost_answer,
                    };
                let error = if unknown {
                    target.outcome_unknown(err)
                } else {
                    err
                };
                span.record("retries", attempts.total_retries);
                span.record("error", tracing::field::display(&error));
                return Err(error);
            }
        }
        .await;
        let elapsed = started.elapsed();
        let error = result.as_ref().err();
        let figures = RequestFigures {
            elapsed,
            failed: error.is_some(),
            retries: attempts.total_retries,
            throttles,
            consumed_capacity,
            items_read,
            items_written: if error.is_none() {
                target.items_written
            } else {
                0
            },
        };
        slot.request(&figures);
        if let Some(series) = series {
            metrics::request(labels, series, &figures, error);
        }
        if self
            .slow_operation_threshold()
            .is_some_and(|threshold| elapsed >= threshold)
        {
            let attempts = attempts.total_retries + 1;
            log_slow(&target, elapsed, attempts, consumed_capacity, error);
        }
        result
    }
}

/// Logs a request that took `elapsed`, at least the client's slow-operation threshold: a
/// warning (target `dynamite::slow`) with its operation, table, entity, time, attempts,
/// consumed capacity, a find's plan, and its error if it failed.
fn log_slow(
    target: &Target<'_>,
    elapsed: std::time::Duration,
    attempts: u32,
    consumed_capacity: f64,
    error: Option<&Error>,
) {
    tracing::warn!(
        target: "dynamite::slow",
        operation = target.operation.name(),
        table = target.table,
        entity = target.entity,
        elapsed_ms = elapsed.as_secs_f64() * 1e3,
        attempts,
        consumed_capacity,
        plan = target.plan.map(tracing::field::display),
        error = error.map(tracing::field::display),
        "slow DynamoDB request"
    );
}

/// The error of an attempt abandoned when the operation timeout ran out: its answer may have
/// been on its way, so its outcome is unknown.
fn operation_timed_out(target: &Target<'_>, timeout: Option<std::time::Duration>) -> Error {
    let why = format!(
        "no answer within the operation timeout ({:?})",
        timeout.unwrap_or_default()
    );
    Error::Sdk {
        operation: target.operation,
        table: target.table.to_owned(),
        kind: ErrorKind::OutcomeUnknown,
        code: None,
        message: Some(why.clone()),
        status: None,
        source: Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, why)),
    }
}

/// Waits `delay` before the next attempt, for `reason`: the retry event (in `span`) and its
/// metric.
async fn wait_to_retry(
    attempts: &Attempts<'_>,
    delay: std::time::Duration,
    labels: metrics::RequestLabels<'_>,
    reason: &str,
    span: &tracing::Span,
) {
    metrics::retry(labels, reason);
    attempts
        .wait(delay, labels.operation, reason)
        .instrument(span.clone())
        .await;
}

/// What an answer to a request that may be answered in part leaves to do.
pub(crate) enum Settle<R> {
    /// Finished, with this result.
    Done(R),
    /// Part is left and is sent again. `progressed`: this answer did part of the work (the
    /// attempt count and backoff start again); `exhausted`: the result when no attempt is left;
    /// `reason`: for the retry event (`"UnprocessedKeys"`).
    Again {
        progressed: bool,
        exhausted: R,
        reason: &'static str,
    },
}

/// A single-item write as a typed builder hands it to [`Client::run_write`], without its entity
/// type.
pub(crate) struct WriteCall<'a> {
    pub schema: &'static TableSchema,
    /// Compiles the write: once before the first attempt, again for another attempt or to
    /// explain the outcome (it compiles the same every time).
    pub compile: &'a (dyn Fn() -> Result<CompiledWrite> + Sync),
    pub operation: Operation,
    /// What the write returns (`ReturnValues`).
    pub returns: ReturnValue,
    /// The call's choice of idempotent mode (`None`: the client's).
    pub idempotent: Option<bool>,
    /// A per-call retry policy (`None`: the client's).
    pub retry: Option<&'a RetryPolicy>,
}

/// How a single-item write is sent: plainly (repeat rule and resolution of lost answers), or in
/// idempotent mode as a one-item transaction.
struct WritePlan {
    pub repeat: Repeat,
    pub landed: Landed,
    pub transaction: bool,
}

/// Decides how to send `write`, which returns `returns`. `idempotent` is the call's choice
/// (`None`: the client's). Idempotent mode sends the write as a one-item TransactWriteItems
/// with a client request token, which can be retried after a lost answer without applying
/// twice; asked for per call it is used for every write, as the client's default only for
/// writes that could otherwise end in `OutcomeUnknown` and return nothing.
fn plan_write(
    entity: &'static str,
    write: &CompiledWrite,
    returns: ReturnValue,
    idempotent: Option<bool>,
    client_idempotent: bool,
) -> Result<WritePlan> {
    let returns_item = returns != ReturnValue::None;
    let returns_old = returns == ReturnValue::AllOld;
    // A repeat of a write returning the old item would return the first attempt's result.
    let repeat = match (write.repeatable, returns_old) {
        (true, false) => Repeat::SameState,
        _ => Repeat::Never,
    };
    let landed = match (&write.body, returns_item) {
        (WriteBody::Put(_), false) => Landed::Put {
            expected_version: write.expected_version,
        },
        (WriteBody::Delete, false) if !write.conditional => Landed::Delete,
        _ => Landed::Unknowable,
    };
    let transaction = match idempotent {
        Some(true) if returns_item => {
            return Err(Error::validation(
                entity,
                "idempotent",
                "idempotent mode sends the write as a transaction, which returns no item: \
                 drop return_old()/return_new(), or read the item afterwards",
            ))
        }
        Some(chosen) => chosen,
        None => client_idempotent && !returns_item && matches!(landed, Landed::Unknowable),
    };
    Ok(WritePlan {
        repeat,
        landed,
        transaction,
    })
}

/// How a single-item write can tell, after a lost answer, whether it landed.
pub(crate) enum Landed {
    /// It cannot: the outcome stays unknown.
    Unknowable,
    /// A put without returned values: it landed when the stored item is the one it wrote.
    Put {
        expected_version: Option<Option<u64>>,
    },
    /// An unconditional delete without returned values: it landed when no item is stored.
    Delete,
}

impl Client {
    /// A failed condition, explained from the stored item (read consistently when DynamoDB
    /// did not return it): [`Error::NotFound`] for an update of a missing item,
    /// [`Error::VersionConflict`] when the stored version is not the expected one, else the
    /// caller's condition failed.
    async fn explain_condition_failure(
        &self,
        schema: &'static TableSchema,
        err: Error,
        write: &CompiledWrite,
        retry: Option<&RetryPolicy>,
    ) -> Error {
        let Error::ConditionFailed {
            operation,
            table,
            current,
        } = err
        else {
            return err;
        };
        let current = match current {
            Some(item) => Some(item),
            None => match self
                .read_stored(schema.entity, &table, &write.key(), retry)
                .await
            {
                Ok(stored) => stored.map(Box::new),
                Err(_) => None,
            },
        };
        if write.must_exist && current.is_none() {
            return Error::NotFound {
                operation,
                table,
                key: write.key().into_owned(),
            };
        }
        let failed = Error::ConditionFailed {
            operation,
            table,
            current,
        };
        refine_condition_error(schema, failed, write.expected_version)
    }

    /// The item as stored, read consistently.
    async fn read_stored(
        &self,
        entity: &'static str,
        table: &str,
        key: &Item,
        retry: Option<&RetryPolicy>,
    ) -> Result<Option<Item>> {
        let target = Target::safe(Operation::GetItem, table, entity, retry);
        let read = self
            .execute(target, || {
                self.sdk()
                    .get_item()
                    .table_name(table)
                    .set_key(Some(key.clone()))
                    .consistent_read(true)
                    .send()
            })
            .await?;
        Ok(read.item)
    }

    /// After a lost answer: reads the item back (consistently) and decides whether the write
    /// landed (`Ok`), certainly did not ([`Error::VersionConflict`]), or stays unknown.
    #[allow(clippy::too_many_arguments)]
    async fn resolve_lost_answer(
        &self,
        schema: &'static TableSchema,
        unknown: Error,
        table: &str,
        key: &Item,
        retry: Option<&RetryPolicy>,
        landed: Landed,
        written: Option<Item>,
    ) -> Result<Option<Item>> {
        if matches!(landed, Landed::Unknowable) {
            return Err(unknown);
        }
        let Ok(stored) = self.read_stored(schema.entity, table, key, retry).await else {
            return Err(unknown);
        };
        match landed {
            Landed::Unknowable => Err(unknown),
            Landed::Delete if stored.is_none() => Ok(None),
            Landed::Delete => Err(unknown),
            Landed::Put { expected_version } => {
                // The item the put wrote, compiled again (the request took the first copy).
                let Some(written) = written.as_ref() else {
                    return Err(unknown);
                };
                if stored.as_ref() == Some(written) {
                    return Ok(None);
                }
                // A version-checked put whose target version is held by a different item:
                // someone else's write took it, so this put can never land.
                let version = |item: &Item| -> Option<u64> {
                    item.get(schema.version?)?.as_n().ok()?.parse().ok()
                };
                match (expected_version, stored.as_ref().and_then(version)) {
                    (Some(expected), Some(actual)) if Some(actual) == version(written) => {
                        Err(Error::VersionConflict {
                            table: table.to_owned(),
                            expected,
                            actual: Some(actual),
                        })
                    }
                    _ => Err(unknown),
                }
            }
        }
    }

    /// The path of single-item writes (put, update, delete), as [`plan_write`] decides: in
    /// idempotent mode through [`write_in_transaction`](Self::write_in_transaction); else `send`
    /// (one plain PutItem / UpdateItem / DeleteItem attempt) through
    /// [`execute`](Self::execute), then — whatever the outcome, as a failed request may still
    /// have been applied — the item's cache entries and the table's query results dropped
    /// before the write returns; a lost answer resolved where it can be, and a failed
    /// condition explained (not found, version conflict, or the caller's condition).
    pub(crate) async fn run_write<O, Er, F, Fut>(
        &self,
        call: WriteCall<'_>,
        mut send: F,
    ) -> Result<Option<Item>>
    where
        F: FnMut(&CompiledWrite, WriteRequestParts) -> Fut,
        Fut: Future<Output = std::result::Result<O, SdkError<Er, HttpResponse>>>,
        O: CapacityOutput + WriteOutput,
        Er: OperationError,
    {
        let WriteCall {
            schema,
            compile,
            operation,
            returns,
            idempotent,
            retry,
        } = call;
        let mut write = compile()?;
        let plan = plan_write(
            schema.entity,
            &write,
            returns,
            idempotent,
            self.idempotent_writes(),
        )?;
        // The paths taken rarely (idempotent mode, a lost answer, a failed condition) are
        // boxed, so that the future of every write is not as large as theirs.
        if plan.transaction {
            return Box::pin(self.write_in_transaction(schema, &write, operation, retry)).await;
        }
        // The first attempt takes the key, item, expression and placeholders as compiled;
        // another attempt compiles the write again (it compiles the same) rather than keeping a
        // copy. What follows the request and needs the key (a cache, a lost answer, a failed
        // condition) reads it first or compiles the write again.
        let key_text = self
            .cache()
            .and_then(|_| crate::cache::key_text_of(schema, write.keyed_item()));
        let mut first = Some(write.take_request());
        let write = write;
        let table = write.table.as_str();
        let target = Target::write(operation, table, schema.entity, retry, None, plan.repeat);
        let result = self
            .execute(target, || {
                let parts = first
                    .take()
                    .or_else(|| compile().ok().map(|mut again| again.take_request()));
                match parts {
                    Some(parts) => Either::Left(send(&write, parts)),
                    None => Either::Right(std::future::ready(Err(SdkError::construction_failure(
                        "the write could not be compiled again",
                    )))),
                }
            })
            .await;
        if let Some(text) = &key_text {
            self.invalidate_written([(table, text.as_str())]).await;
        }
        match result {
            Ok(output) => Ok(output.into_attributes()),
            Err(Error::OutcomeUnknown {
                operation,
                table,
                source,
                ..
            }) => {
                // Compiled again for its key and, for a put, the item it wrote.
                let again = compile().ok();
                let key = again
                    .as_ref()
                    .map(|w| w.key().into_owned())
                    .unwrap_or_default();
                let written = match (&plan.landed, again) {
                    (Landed::Put { .. }, Some(mut again)) => match again.take_request().body {
                        WriteBody::Put(item) => Some(item),
                        _ => None,
                    },
                    _ => None,
                };
                let err = Error::OutcomeUnknown {
                    operation,
                    table: table.clone(),
                    key: key.clone(),
                    source,
                };
                Box::pin(self.resolve_lost_answer(
                    schema,
                    err,
                    &table,
                    &key,
                    retry,
                    plan.landed,
                    written,
                ))
                .await
            }
            Err(err @ Error::ConditionFailed { .. }) => match compile() {
                Ok(again) => {
                    Err(Box::pin(self.explain_condition_failure(schema, err, &again, retry)).await)
                }
                Err(_) => Err(err),
            },
            Err(err) => Err(err),
        }
    }

    /// Idempotent mode: sends `write` as a one-item TransactWriteItems whose every attempt
    /// carries the same client request token, so DynamoDB applies it once however often it is
    /// sent. A failed condition is reported as the plain write would report it
    /// ([`Error::ConditionFailed`] or [`Error::VersionConflict`]). Costs twice the write units.
    pub(crate) async fn write_in_transaction(
        &self,
        schema: &'static TableSchema,
        write: &CompiledWrite,
        operation: Operation,
        retry: Option<&RetryPolicy>,
    ) -> Result<Option<Item>> {
        let token = crate::write::request_token();
        let item = write.to_transact_item();
        let key = write.key();
        let target = Target::write(
            Operation::TransactWriteItems,
            &write.table,
            schema.entity,
            retry,
            Some(&key),
            Repeat::Token,
        );
        let result = self
            .execute(target, || {
                self.sdk()
                    .transact_write_items()
                    .transact_items(item.clone())
                    .client_request_token(&token)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            })
            .await;
        self.invalidate_after_write(schema, &write.table, &key)
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(Error::TransactionCanceled { reasons })
                if reasons.first().is_some_and(|r| r.is_condition_failed()) =>
            {
                let current = reasons.into_iter().next().and_then(|r| r.item);
                let failed = Error::ConditionFailed {
                    operation,
                    table: write.table.clone(),
                    current: current.map(Box::new),
                };
                Err(self
                    .explain_condition_failure(schema, failed, write, retry)
                    .await)
            }
            Err(e) => Err(e),
        }
    }

    /// The cache a read of `schema`'s entity goes through, decided in one place for every read path:
    /// `None` without a cache on the client, for consistent reads (they always read DynamoDB),
    /// when the call opted out (`no_cache()`), or when the entity's cache is off.
    pub(crate) fn read_cache(
        &self,
        schema: &TableSchema,
        consistent: bool,
        use_cache: bool,
    ) -> Option<&crate::cache::stack::ClientCache> {
        self.cache().filter(|_| {
            use_cache && !consistent && crate::cache::stack::ClientCache::enabled_for(schema)
        })
    }

    /// After a single-item write of `schema`'s entity: [`invalidate_written`](Self::invalidate_written) for
    /// the item with `key`.
    pub(crate) async fn invalidate_after_write(
        &self,
        schema: &TableSchema,
        table: &str,
        key: &Item,
    ) {
        if self.cache().is_some() {
            if let Some(text) = crate::cache::key_text_of(schema, key) {
                self.invalidate_written([(table, text.as_str())]).await;
            }
        }
    }

    /// The invalidation stage of every write (item writes, batch writes, transactions),
    /// whatever its outcome, as a failed request may still have been applied: the cache
    /// entries of the written items — `(table, key text)` — and the query results of their
    /// tables are dropped in every layer before the write returns. No-op without a cache.
    pub(crate) async fn invalidate_written<'k>(
        &self,
        written: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) {
        let Some(cache) = self.cache() else {
            return;
        };
        let mut by_table: Vec<(&str, Vec<&str>)> = Vec::new();
        for (table, text) in written {
            match by_table.iter_mut().find(|(t, _)| *t == table) {
                Some((_, texts)) => texts.push(text),
                None => by_table.push((table, vec![text])),
            }
        }
        for (table, texts) in by_table {
            cache.invalidate_keys(table, texts.into_iter()).await;
        }
    }
}

/// After a failed conditional write: a version conflict when the stored version is not the
/// expected one, otherwise the caller's condition failed.
fn refine_condition_error(
    schema: &TableSchema,
    err: Error,
    expected_version: Option<Option<u64>>,
) -> Error {
    let Some(expected) = expected_version else {
        return err;
    };
    let Error::ConditionFailed {
        table,
        current,
        operation,
    } = err
    else {
        return err;
    };
    let version_attr = schema.version.expect("version-checked");
    let actual = current
        .as_deref()
        .and_then(|item| item.get(version_attr))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok());
    let exists = current.is_some();
    let conflict = match expected {
        None => exists,
        Some(v) => actual != Some(v),
    };
    if conflict {
        Error::VersionConflict {
            table,
            expected,
            actual,
        }
    } else {
        Error::ConditionFailed {
            operation,
            table,
            current,
        }
    }
}
