use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use dynamite::{Client, Entity, ErrorKind, RetryBudget, RetryPolicy};
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "things")]
struct Thing {
    #[dynamite(partition_key)]
    id: String,
}

/// The `delay_us` of every `dynamite::retry` event.
#[derive(Clone, Default)]
struct Delays(Arc<Mutex<Vec<Duration>>>);

struct DelayUs(Option<u64>);
impl Visit for DelayUs {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "delay_us" {
            self.0 = Some(value);
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S: Subscriber> Layer<S> for Delays {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "dynamite::retry" {
            let mut v = DelayUs(None);
            event.record(&mut v);
            self.0
                .lock()
                .unwrap()
                .push(Duration::from_micros(v.0.expect("delay_us")));
        }
    }
}

/// Connection refused on every attempt; no SDK timers (timeouts, stalled-stream checks) that
/// paused time could jump to.
async fn unreachable(policy: RetryPolicy) -> Client {
    unreachable_with(policy, RetryBudget::unlimited()).await
}

async fn unreachable_with(policy: RetryPolicy, budget: RetryBudget) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "paused",
        ))
        .timeout_config(aws_config::timeout::TimeoutConfig::disabled())
        .stalled_stream_protection(
            aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled(),
        )
        .load()
        .await;
    Client::builder(aws_sdk_dynamodb::Client::new(&config))
        .retry_policy(policy)
        .retry_budget(budget)
        .build()
}

#[tokio::test(start_paused = true)]
async fn backoff_runs_on_tokio_time() {
    let delays = Delays::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(delays.clone()));

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
    let chosen = delays.0.lock().unwrap().clone();
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
    delays.0.lock().unwrap().clear();
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
    let chosen = delays.0.lock().unwrap().clone();
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
    let delays = Delays::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(delays.clone()));
    let policy = RetryPolicy::standard().max_attempts(10).no_budget();
    // 5 tokens per retry: 23 tokens pay for 4 retries across all requests of the client.
    let db = unreachable_with(policy, RetryBudget::standard().capacity(23)).await;
    assert_eq!(db.retry_tokens_available(), Some(23));

    Thing::get(&db, Thing::key("x")).await.unwrap_err();
    assert_eq!(
        delays.0.lock().unwrap().len(),
        4,
        "4 retries, then the budget is spent"
    );
    assert_eq!(db.retry_tokens_available(), Some(3));

    // Later requests of the same client try once: the load does not multiply.
    for _ in 0..3 {
        let err = Thing::get(&db, Thing::key("x")).await.unwrap_err();
        assert_eq!(err.kind(), Some(ErrorKind::NotSent));
    }
    assert_eq!(delays.0.lock().unwrap().len(), 4);

    // Another client has its own budget; an unlimited one is bounded by its policy only.
    delays.0.lock().unwrap().clear();
    let policy = RetryPolicy::standard().max_attempts(10).no_budget();
    let free = unreachable_with(policy, RetryBudget::unlimited()).await;
    Thing::get(&free, Thing::key("x")).await.unwrap_err();
    assert_eq!(delays.0.lock().unwrap().len(), 9);
    assert_eq!(free.retry_tokens_available(), None);
}
