//! The client-wide retry budget: a token bucket shared by every request of a [`Client`]
//! (crate::Client), as in the AWS SDKs' standard retry mode. A retry spends tokens, a success
//! earns some back; when the bucket is empty, failures are returned instead of retried, so a
//! sustained outage or throttling does not multiply the load the client sends.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::ErrorKind;

/// How many retries a client may spend across all its requests.
///
/// Each retry takes `retry_cost` tokens (`timeout_cost` after a lost or timed-out answer); a
/// request that succeeds gives back what its last retry took, or `success_refill` when it
/// needed none. Tokens never exceed `capacity`. With the standard settings (500, 5, 10, 1) a
/// client that sees only failures stops retrying after 100 retries, and earns a retry back
/// for every 5 requests that succeed at once.
///
/// ```
/// use dynamite::RetryBudget;
///
/// let budget = RetryBudget::standard().capacity(1_000);
/// assert_eq!(budget.get_capacity(), Some(1_000));
/// assert_eq!(RetryBudget::unlimited().get_capacity(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct RetryBudget {
    capacity: Option<u32>,
    retry_cost: u32,
    timeout_cost: u32,
    success_refill: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::standard()
    }
}

impl RetryBudget {
    /// The AWS SDKs' standard mode: 500 tokens, 5 per retry, 10 per retry after a lost answer,
    /// 1 back per success.
    pub const fn standard() -> Self {
        RetryBudget {
            capacity: Some(500),
            retry_cost: 5,
            timeout_cost: 10,
            success_refill: 1,
        }
    }

    /// No client-wide limit: only each request's [`RetryPolicy`](crate::RetryPolicy) bounds
    /// its retries.
    pub const fn unlimited() -> Self {
        RetryBudget {
            capacity: None,
            ..Self::standard()
        }
    }

    /// The size of the bucket (it starts full).
    pub const fn capacity(mut self, tokens: u32) -> Self {
        self.capacity = Some(tokens);
        self
    }

    /// Tokens one retry takes (after throttling, a server error or a connection that failed).
    pub const fn retry_cost(mut self, tokens: u32) -> Self {
        self.retry_cost = tokens;
        self
    }

    /// Tokens one retry takes after a timed-out or lost answer.
    pub const fn timeout_cost(mut self, tokens: u32) -> Self {
        self.timeout_cost = tokens;
        self
    }

    /// Tokens a request that succeeds without retrying gives back.
    pub const fn success_refill(mut self, tokens: u32) -> Self {
        self.success_refill = tokens;
        self
    }

    /// The size of the bucket; `None` when unlimited.
    pub const fn get_capacity(&self) -> Option<u32> {
        self.capacity
    }

    fn cost(&self, kind: ErrorKind) -> u32 {
        match kind {
            ErrorKind::OutcomeUnknown => self.timeout_cost,
            _ => self.retry_cost,
        }
    }
}

/// The live bucket of one client.
#[derive(Debug)]
pub(crate) struct RetryTokens {
    budget: RetryBudget,
    available: AtomicU32,
}

impl RetryTokens {
    pub(crate) fn new(budget: RetryBudget) -> Self {
        RetryTokens {
            budget,
            available: AtomicU32::new(budget.capacity.unwrap_or(0)),
        }
    }

    /// Takes the cost of one retry after a failure of `kind`: `Some(cost)` when granted (0 when
    /// unlimited), `None` when the bucket cannot pay for it.
    pub(crate) fn withdraw(&self, kind: ErrorKind) -> Option<u32> {
        if self.budget.capacity.is_none() {
            return Some(0);
        }
        let cost = self.budget.cost(kind);
        self.available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_sub(cost)
            })
            .ok()
            .map(|_| cost)
    }

    /// A request succeeded: gives back `last_cost` (what its last retry took), or the success
    /// refill when it did not retry.
    pub(crate) fn succeeded(&self, last_cost: Option<u32>) {
        let Some(capacity) = self.budget.capacity else {
            return;
        };
        let refund = last_cost.unwrap_or(self.budget.success_refill);
        if refund == 0 {
            return;
        }
        let _ = self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < capacity).then(|| now.saturating_add(refund).min(capacity))
            });
    }

    /// Tokens left (`None`: unlimited).
    pub(crate) fn available(&self) -> Option<u32> {
        self.budget
            .capacity
            .map(|_| self.available.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_drain_the_bucket_and_successes_refill_it() {
        let tokens = RetryTokens::new(RetryBudget::standard().capacity(20));
        assert_eq!(tokens.withdraw(ErrorKind::Throttled), Some(5));
        assert_eq!(tokens.withdraw(ErrorKind::OutcomeUnknown), Some(10));
        assert_eq!(tokens.withdraw(ErrorKind::ServerError), Some(5));
        assert_eq!(tokens.available(), Some(0));
        assert_eq!(tokens.withdraw(ErrorKind::Throttled), None);
        tokens.succeeded(None);
        assert_eq!(tokens.available(), Some(1));
        tokens.succeeded(Some(5));
        assert_eq!(tokens.available(), Some(6));
        assert_eq!(tokens.withdraw(ErrorKind::Throttled), Some(5));
    }

    #[test]
    fn the_bucket_never_exceeds_its_capacity() {
        let tokens = RetryTokens::new(RetryBudget::standard().capacity(7));
        tokens.succeeded(Some(10));
        assert_eq!(tokens.available(), Some(7));
        assert_eq!(tokens.withdraw(ErrorKind::Throttled), Some(5));
        tokens.succeeded(Some(10));
        assert_eq!(tokens.available(), Some(7));
    }

    #[test]
    fn unlimited_never_refuses() {
        let tokens = RetryTokens::new(RetryBudget::unlimited());
        for _ in 0..10_000 {
            assert_eq!(tokens.withdraw(ErrorKind::OutcomeUnknown), Some(0));
        }
        assert_eq!(tokens.available(), None);
    }
}
