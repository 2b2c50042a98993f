//! Retries: [`RetryPolicy`] (attempts, exponential backoff with full jitter, time budget),
//! [`classify`] (which failures are worth another attempt), and the loop every request runs in.
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

mod backoff;
mod classify;

pub use classify::{classify, RetryKind};

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

/// Tracks one request's attempts against its policy.
pub(crate) struct Attempts<'p> {
    policy: &'p RetryPolicy,
    started: tokio::time::Instant,
    /// Attempts that count against `max_attempts` (reset by progress in batches).
    counted: u32,
    /// Every retry made, for the span.
    pub total_retries: u32,
}

impl<'p> Attempts<'p> {
    pub fn new(policy: &'p RetryPolicy) -> Self {
        Attempts {
            policy,
            started: tokio::time::Instant::now(),
            counted: 1,
            total_retries: 0,
        }
    }

    /// The delay before the next attempt, or `None` when attempts or budget are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.counted >= self.policy.max_attempts {
            return None;
        }
        let delay = self.policy.delay(self.counted);
        if let Some(budget) = self.policy.budget {
            if self.started.elapsed() + delay > budget {
                return None;
            }
        }
        self.counted += 1;
        self.total_retries += 1;
        Some(delay)
    }

    /// A batch round made progress: the count and the backoff start again.
    pub fn progressed(&mut self) {
        self.counted = 1;
    }

    /// Waits `delay`, announcing it as a `dynamite::retry` event.
    pub async fn wait(&self, delay: Duration, operation: &'static str, reason: &str) {
        tracing::debug!(
            target: "dynamite::retry",
            operation,
            retry = self.total_retries,
            delay_us = delay.as_micros() as u64,
            reason,
            "retrying"
        );
        tokio::time::sleep(delay).await;
    }
}
