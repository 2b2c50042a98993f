//! HTTP tuning (`ClientBuilder::http`, `HttpSettings`): an attempt timeout fires and is
//! retried only when repeating is safe, the operation timeout ends the whole call, and the
//! pool settings reach the SDK's HTTP client. Delays come from the fault proxy; nothing here
//! asserts how long anything took.

use std::time::Duration;

use dynamite::testing::{Fault, FaultProxy, Match};
use dynamite::{Client, Entity, Error, ErrorKind, HttpSettings, Operation};

use crate::support;
use crate::support::fixtures::Thing;
use crate::support::trace::Capture;

/// A proxy in front of the local server, and a client through it with `http` and a table of
/// `Thing` holding `t1`.
async fn through_proxy(http: HttpSettings) -> (FaultProxy, Client) {
    support::thing_through_proxy(|b| b.http(http)).await
}

fn delay(proxy: &FaultProxy, operation: Operation, by: Duration, times: usize) {
    proxy.script(Match::Operation(operation), Fault::Delay(by), times);
}

#[tokio::test]
async fn a_timed_out_attempt_of_a_read_is_sent_again() {
    let http = HttpSettings::new().attempt_timeout(Duration::from_millis(300));
    let (proxy, db) = through_proxy(http).await;
    delay(&proxy, Operation::GetItem, Duration::from_secs(3), 1);
    let got = Thing::get(&db, Thing::key("t1")).await.unwrap();
    assert_eq!(got.map(|t| t.n), Some(1));
    assert_eq!(proxy.count("GetItem"), 2, "the first attempt timed out");
}

#[tokio::test]
async fn a_timed_out_attempt_of_a_write_that_would_apply_twice_is_outcome_unknown() {
    let http = HttpSettings::new().attempt_timeout(Duration::from_millis(300));
    let (proxy, db) = through_proxy(http).await;
    delay(&proxy, Operation::UpdateItem, Duration::from_secs(3), 1);
    let err = Thing::update(&db, Thing::key("t1"))
        .add(Thing::N, 1)
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert_eq!(proxy.count("UpdateItem"), 1, "never sent again");
}

#[tokio::test]
async fn the_operation_timeout_ends_the_call_and_starts_no_retry() {
    let http = HttpSettings::new().operation_timeout(Duration::from_millis(300));
    let (proxy, db) = through_proxy(http).await;
    delay(&proxy, Operation::GetItem, Duration::from_secs(5), 3);
    let err = Thing::get(&db, Thing::key("t1")).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::OutcomeUnknown), "{err:?}");
    let source = std::error::Error::source(&err)
        .expect("a source")
        .to_string();
    assert!(source.contains("operation timeout"), "{source}");
    assert!(matches!(
        err,
        Error::Sdk {
            operation: Operation::GetItem,
            ..
        }
    ));
    assert_eq!(proxy.count("GetItem"), 1);
    // A write cut short by it may have been applied.
    delay(&proxy, Operation::UpdateItem, Duration::from_secs(5), 1);
    let err = Thing::update(&db, Thing::key("t1"))
        .add(Thing::N, 1)
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
}

#[tokio::test]
async fn the_pool_settings_reach_the_http_client() {
    // No idle connection kept: every request opens its own.
    let (proxy, db) = through_proxy(HttpSettings::new().pool_max_idle_per_host(0)).await;
    for _ in 0..4 {
        Thing::get(&db, Thing::key("t1")).await.unwrap();
    }
    assert_eq!(proxy.connections(), 4);
    // By default one connection serves them all.
    let (proxy, db) = through_proxy(HttpSettings::new()).await;
    for _ in 0..4 {
        Thing::get(&db, Thing::key("t1")).await.unwrap();
    }
    assert_eq!(proxy.connections(), 1);
}

#[tokio::test]
async fn requests_over_the_slow_operation_threshold_are_logged_with_their_plan() {
    let capture = Capture::default();
    let _guard = capture.install();
    let (proxy, db) =
        support::thing_through_proxy(|b| b.slow_operation_log(Duration::from_millis(200))).await;
    // Fast: not logged.
    Thing::get(&db, Thing::key("t1")).await.unwrap();
    assert!(capture.slow().is_empty(), "{:?}", capture.slow());
    // A find whose request is held 500 ms: logged once, with its plan.
    delay(&proxy, Operation::GetItem, Duration::from_millis(500), 1);
    let found = Thing::find(&db)
        .filter(Thing::ID.eq("t1"))
        .all()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let slow = capture.slow();
    assert_eq!(slow.len(), 1, "{slow:?}");
    let event = &slow[0];
    assert_eq!(event["operation"], "GetItem");
    assert_eq!(event["table"], db.table_name("things"));
    assert_eq!(event["entity"], "Thing");
    assert_eq!(event["attempts"], "1");
    assert!(event["plan"].starts_with("GetItem on"), "{event:?}");
    let elapsed: f64 = event["elapsed_ms"].parse().unwrap();
    assert!(elapsed >= 200.0, "{event:?}");
    assert!(event.contains_key("consumed_capacity"), "{event:?}");
    assert!(!event.contains_key("error"), "{event:?}");
}
