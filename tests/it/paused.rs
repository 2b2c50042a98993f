//! Retry back-off on tokio's paused clock (`start_paused`: each test's own runtime, so the
//! rest of the harness runs on real time): the waits chosen and the client's retry budget,
//! against an endpoint that refuses connections.

use std::time::Duration;

use dynamite::{Client, Entity, ErrorKind, RetryBudget, RetryPolicy};

use crate::support;
use crate::support::fixtures::Thing;
use crate::support::trace::Capture;

/// Connection refused on every attempt; no SDK timers (timeouts, stalled-stream checks) that
/// paused time could jump to.
async fn unreachable(policy: RetryPolicy) -> Client {
    unreachable_with(policy, RetryBudget::unlimited()).await
}

async fn unreachable_with(policy: RetryPolicy, budget: RetryBudget) -> Client {
    support::unreachable_builder()
        .await
        .retry_policy(policy)
        .retry_budget(budget)
        .build()
}

#[tokio::test(start_paused = true)]
async fn backoff_runs_on_tokio_time() {
    let delays = Capture::default();
    let _guard = delays.install();

    // Long delays cost nothing under paused time.
    let p = RetryPolicy::standard()
        .max_attempts(8)
        .base_delay(Duration::from_millis(100))
        .max_delay(Duration::from_secs(2))
        .no_budget();
    let db = unreachable(p.clone()).await;
    let start = tokio::time::Instant::now();
    let err = Thing::get(&db, Thing::key("x")).await.unwrap_err();
    let elapsed = start.elapsed();
    // Connection refused: nothing reached the server.
    assert_eq!(err.kind(), Some(ErrorKind::NotSent), "{err:?}");
    let chosen = delays.delays();
    assert_eq!(chosen.len(), 7);
    for (i, d) in chosen.iter().enumerate() {
        assert!(*d <= p.delay_ceiling(i as u32 + 1));
    }
    let sum: Duration = chosen.iter().sum();
    // Paused time advances by exactly the sleeps (each rounded up to tokio's 1 ms tick).
    assert!(elapsed >= sum, "{elapsed:?} < {sum:?}");
    assert!(
        elapsed <= sum + Duration::from_millis(chosen.len() as u64 + 1),
        "{elapsed:?} vs {sum:?}"
    );

    // A budget: under paused time the elapsed time is the waits only, so they fit in it.
    delays.clear();
    let budget = Duration::from_millis(700);
    let p = RetryPolicy::standard()
        .max_attempts(100)
        .base_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(400))
        .budget(budget);
    let db = unreachable(p).await;
    let start = tokio::time::Instant::now();
    Thing::get(&db, Thing::key("x")).await.unwrap_err();
    let elapsed = start.elapsed();
    let chosen = delays.delays();
    assert!(chosen.len() < 99, "{chosen:?}");
    let sum: Duration = chosen.iter().sum();
    assert!(sum <= budget, "{sum:?}");
    assert!(
        elapsed >= sum && elapsed <= budget + Duration::from_millis(100),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn sustained_failures_drain_the_client_retry_budget() {
    let delays = Capture::default();
    let _guard = delays.install();
    let policy = RetryPolicy::standard().max_attempts(10).no_budget();
    // 5 tokens per retry: 23 tokens pay for 4 retries across all requests of the client.
    let db = unreachable_with(policy, RetryBudget::standard().capacity(23)).await;
    assert_eq!(db.retry_tokens_available(), Some(23));

    Thing::get(&db, Thing::key("x")).await.unwrap_err();
    assert_eq!(
        delays.delays().len(),
        4,
        "4 retries, then the budget is spent"
    );
    assert_eq!(db.retry_tokens_available(), Some(3));

    // Later requests of the same client try once: the load does not multiply.
    for _ in 0..3 {
        let err = Thing::get(&db, Thing::key("x")).await.unwrap_err();
        assert_eq!(err.kind(), Some(ErrorKind::NotSent));
    }
    assert_eq!(delays.delays().len(), 4);

    // Another client has its own budget; an unlimited one is bounded by its policy only.
    delays.clear();
    let policy = RetryPolicy::standard().max_attempts(10).no_budget();
    let free = unreachable_with(policy, RetryBudget::unlimited()).await;
    Thing::get(&free, Thing::key("x")).await.unwrap_err();
    assert_eq!(delays.delays().len(), 9);
    assert_eq!(free.retry_tokens_available(), None);
}
