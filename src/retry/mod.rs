//! Retries: [`RetryPolicy`] (attempts, exponential backoff with full jitter, time budget per
//! request), [`RetryBudget`] (a token bucket shared by every request of a client), and the rules
//! that decide whether a failed request is sent again.
//!
//! # What is retried
//!
//! Every failure has an [`ErrorKind`] read from the SDK error's variant and
//! DynamoDB's error code. Throttling, server errors (HTTP 503) and connections that never
//! reached DynamoDB are retried for every request: nothing was applied. A failure whose
//! outcome is unknown (the connection was lost or timed out after sending, HTTP 500) may follow
//! an applied request, so it is retried only when sending the request again is safe:
//!
//! - reads, and transactions (every attempt carries the same client request token, so DynamoDB
//!   applies a transaction once however often it is sent): retried;
//! - writes that leave the same state when applied twice (a whole-item put, a delete, an update
//!   that only sets or removes attributes, a version-checked update), returning nothing: retried,
//!   but a failure after a lost answer is never reported as a failed condition (the condition
//!   may have failed because the first attempt landed): a put then reads back what it wrote,
//!   and otherwise the call returns [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown);
//! - writes that would change the state again (`add`, `increment`, `append`, `prepend`,
//!   deleting set elements, an unchecked version bump) or whose answer would change (returning
//!   the old item): never sent again; the call returns `Error::OutcomeUnknown`. Idempotent mode
//!   (`.idempotent()`) sends such a write as a one-item transaction with a token, which can be
//!   retried safely.
//!
//! # How it layers with the SDK's retries
//!
//! The AWS SDK retries on its own (standard mode: 3 attempts). Two retry loops stacked would
//! multiply attempts (3 × 3 = 9) and hide throttling from the caller's policy. So
//! [`ClientBuilder::build`](crate::ClientBuilder::build) turns the SDK client's retries off
//! (`RetryConfig::disabled()`) and dynamite's policy is the only retry loop: a request is sent
//! at most `max_attempts` times, whatever the SDK configuration said. (Call
//! [`ClientBuilder::keep_sdk_retries`](crate::ClientBuilder::keep_sdk_retries) to keep the SDK's
//! loop instead; then set dynamite's policy to [`RetryPolicy::none`].)
//!
//! Unprocessed items of BatchGetItem / BatchWriteItem are retried with the same policy: each
//! round that makes no progress counts as an attempt; a round that makes progress starts the
//! count (and the backoff) again.
//!
//! All delays go through `tokio::time`, so tests can run with paused time.

pub(crate) mod backoff;
mod budget;

pub use budget::RetryBudget;
pub(crate) use budget::RetryTokens;

use crate::ErrorKind;

use std::time::Duration;

/// When and how often to retry a failed request.
///
/// ```
/// use std::time::Duration;
/// use dynamite::RetryPolicy;
///
/// let policy = RetryPolicy::standard()
///     .max_attempts(5)
///     .base_delay(Duration::from_millis(25))
///     .max_delay(Duration::from_secs(2))
///     .budget(Duration::from_secs(10));
/// assert_eq!(policy.get_max_attempts(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    budget: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::standard()
    }
}

impl RetryPolicy {
    /// The default: 8 attempts, 25 ms base delay, 5 s cap, full jitter, 30 s budget.
    pub fn standard() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(5),
            budget: Some(Duration::from_secs(30)),
        }
    }

    /// Patient retries for bulk jobs under throttling: 15 attempts, 50 ms base, 20 s cap,
    /// 5 minute budget.
    pub fn patient() -> Self {
        RetryPolicy {
            max_attempts: 15,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(20),
            budget: Some(Duration::from_secs(300)),
        }
    }

    /// No retries: one attempt.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::standard()
        }
    }

    /// Total attempts, the first included (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The delay scale: retry `n` waits a random time in `[0, min(max_delay, base * 2^(n-1))]`.
    pub fn base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }

    /// The cap of one delay.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// The total time a request may take with its retries; no retry starts whose delay would
    /// end past it.
    pub fn budget(mut self, d: Duration) -> Self {
        self.budget = Some(d);
        self
    }

    /// No total time limit (only `max_attempts` bounds the retries).
    pub fn no_budget(mut self) -> Self {
        self.budget = None;
        self
    }

    /// Total attempts.
    pub fn get_max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The base delay.
    pub fn get_base_delay(&self) -> Duration {
        self.base_delay
    }

    /// The delay cap.
    pub fn get_max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The time budget.
    pub fn get_budget(&self) -> Option<Duration> {
        self.budget
    }

    /// The delay before retry number `retry` (1 for the first retry): full jitter, uniform in
    /// `[0, min(max_delay, base_delay * 2^(retry-1))]`.
    pub fn delay(&self, retry: u32) -> Duration {
        backoff::full_jitter(self.base_delay, self.max_delay, retry)
    }

    /// The upper bound of [`delay`](Self::delay) for retry number `retry`.
    pub fn delay_ceiling(&self, retry: u32) -> Duration {
        backoff::ceiling(self.base_delay, self.max_delay, retry)
    }
}

/// Whether a request may be sent again after an attempt whose outcome is unknown (see the
/// module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Sending it twice gives the same state and the same answer: reads.
    Safe,
    /// The request carries a client request token: DynamoDB applies it once and answers a
    /// repeat as it answered the first (transactions). Retried; a failure after a lost answer
    /// is `OutcomeUnknown` unless DynamoDB's last answer was definitive.
    Token,
    /// Sending it twice gives the same state, but the answer to a repeat may be about the first
    /// attempt (a condition failing because the first attempt landed): retried, and a failure
    /// after a lost answer becomes `OutcomeUnknown`.
    SameState,
    /// A second application could change the state or the answer: never sent again after a
    /// lost answer.
    Never,
}

/// What the attempts loop does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Send it again (if attempts, time and the client's budget allow).
    Retry,
    /// Return the error.
    Fail,
    /// Return `OutcomeUnknown`: the request may have been applied and must not be sent again.
    OutcomeUnknown,
}

/// The retry rule: what to do after a failure of `kind` (`None`: not a request failure) for a
/// request that repeats as `repeat`.
pub(crate) fn after_failure(kind: Option<ErrorKind>, repeat: Repeat) -> AfterFailure {
    match (kind, repeat) {
        (Some(ErrorKind::OutcomeUnknown), Repeat::Never) => AfterFailure::OutcomeUnknown,
        (Some(kind), _) if kind.is_transient() => AfterFailure::Retry,
        _ => AfterFailure::Fail,
    }
}

/// Tracks one request's attempts against its policy and the client's retry budget.
pub(crate) struct Attempts<'p> {
    policy: &'p RetryPolicy,
    tokens: &'p RetryTokens,
    started: tokio::time::Instant,
    /// Attempts that count against `max_attempts` (reset by progress in batches).
    counted: u32,
    /// Every retry made, for the span.
    pub total_retries: u32,
    /// What the last retry took from the budget.
    last_cost: Option<u32>,
    /// When the call must have ended ([`HttpSettings::operation_timeout`](crate::HttpSettings)).
    deadline: Option<tokio::time::Instant>,
}

impl<'p> Attempts<'p> {
    pub(crate) fn new(policy: &'p RetryPolicy, tokens: &'p RetryTokens) -> Self {
        Attempts {
            policy,
            tokens,
            started: tokio::time::Instant::now(),
            counted: 1,
            total_retries: 0,
            last_cost: None,
            deadline: None,
        }
    }

    /// The call must have ended `timeout` after it started: no retry starts that would wait
    /// past it.
    pub(crate) fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.deadline = timeout.map(|t| self.started + t);
        self
    }

    /// When the call must have ended, if it has a timeout.
    pub(crate) fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    /// The delay before the next attempt, or `None` when attempts, the time budget or the
    /// client's retry budget are used up. `spend` is the failure being retried, which costs
    /// tokens; `None` (a batch round that made progress) costs none.
    pub(crate) fn next_delay(&mut self, spend: Option<ErrorKind>) -> Option<Duration> {
        if self.counted >= self.policy.max_attempts {
            return None;
        }
        let delay = self.policy.delay(self.counted);
        if let Some(budget) = self.policy.budget {
            if self.started.elapsed() + delay > budget {
                return None;
            }
        }
        if self
            .deadline
            .is_some_and(|deadline| tokio::time::Instant::now() + delay >= deadline)
        {
            return None;
        }
        if let Some(kind) = spend {
            match self.tokens.withdraw(kind) {
                Some(cost) => self.last_cost = Some(cost),
                None => {
                    tracing::debug!(
                        target: "dynamite::retry_budget",
                        "the client's retry budget is empty: not retrying"
                    );
                    return None;
                }
            }
        }
        self.counted += 1;
        self.total_retries += 1;
        Some(delay)
    }

    /// A batch round made progress: the count and the backoff start again.
    pub(crate) fn progressed(&mut self) {
        self.counted = 1;
    }

    /// The request succeeded: the budget gets tokens back.
    pub(crate) fn succeeded(&self) {
        self.tokens.succeeded(self.last_cost);
    }

    /// Waits `delay`, announcing it as a `dynamite::retry` event.
    pub(crate) async fn wait(&self, delay: Duration, operation: crate::Operation, reason: &str) {
        tracing::debug!(
            target: "dynamite::retry",
            operation = operation.name(),
            retry = self.total_retries,
            delay_us = delay.as_micros() as u64,
            reason,
            "retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_answers_are_retried_only_when_repeating_is_safe() {
        let unknown = Some(ErrorKind::OutcomeUnknown);
        assert_eq!(after_failure(unknown, Repeat::Safe), AfterFailure::Retry);
        assert_eq!(
            after_failure(unknown, Repeat::SameState),
            AfterFailure::Retry
        );
        assert_eq!(
            after_failure(unknown, Repeat::Never),
            AfterFailure::OutcomeUnknown
        );
    }

    #[test]
    fn failures_that_applied_nothing_are_retried_for_every_request() {
        for kind in [
            ErrorKind::Throttled,
            ErrorKind::ServerError,
            ErrorKind::NotSent,
        ] {
            for repeat in [Repeat::Safe, Repeat::SameState, Repeat::Never] {
                assert_eq!(after_failure(Some(kind), repeat), AfterFailure::Retry);
            }
        }
    }

    #[test]
    fn client_errors_and_other_errors_fail_at_once() {
        for repeat in [
            Repeat::Safe,
            Repeat::Token,
            Repeat::SameState,
            Repeat::Never,
        ] {
            assert_eq!(
                after_failure(Some(ErrorKind::Client), repeat),
                AfterFailure::Fail
            );
            assert_eq!(after_failure(None, repeat), AfterFailure::Fail);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_budget_stops_retries_before_max_attempts() {
        let policy = RetryPolicy::standard().max_attempts(100).no_budget();
        let tokens = RetryTokens::new(RetryBudget::standard().capacity(12));
        let mut attempts = Attempts::new(&policy, &tokens);
        assert!(attempts.next_delay(Some(ErrorKind::Throttled)).is_some());
        assert!(attempts.next_delay(Some(ErrorKind::Throttled)).is_some());
        assert!(attempts.next_delay(Some(ErrorKind::Throttled)).is_none());
        // Progress rounds of a batch cost nothing.
        assert!(attempts.next_delay(None).is_some());
        attempts.succeeded();
        assert_eq!(tokens.available(), Some(7));
    }
}
