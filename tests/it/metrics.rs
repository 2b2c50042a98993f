//! Metrics (feature `metrics`): the requests of a test, throttled and retried through the fault
//! proxy, appear in a Prometheus scrape under their table with the documented names and labels.
//! The recorder is global to the test binary, so each test reads only its own tables' series.

use std::sync::OnceLock;

use dynamite::testing::{Fault, Match};
use dynamite::{Client, Entity, Operation};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::support;
use crate::support::fixtures::Thing;

/// The binary's one recorder.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of the test binary")
    })
}

/// The scrape's lines about `table`.
fn series(table: &str) -> Vec<String> {
    let label = format!("db_collection_name=\"{table}\"");
    recorder()
        .render()
        .lines()
        .filter(|line| line.contains(&label))
        .map(str::to_owned)
        .collect()
}

/// The value of the one line starting with `name{` that has every label in `labels`.
fn value(lines: &[String], name: &str, labels: &[&str]) -> f64 {
    let found: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?} in {lines:#?}");
    found[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn requests_retries_throttles_and_capacity_are_recorded_per_table() {
    recorder();
    let (proxy, db) = support::thing_through_proxy(|b| b).await;
    proxy.script(Match::Operation(Operation::GetItem), Fault::Throttling, 2);
    for _ in 0..3 {
        Thing::get(&db, Thing::key("t1")).await.unwrap();
    }
    let missing = Client::builder(support::sdk_at(&proxy.endpoint()).await)
        .table_prefix(format!("{}absent-", db.table_prefix()))
        .build();
    Thing::get(&missing, Thing::key("t1")).await.unwrap_err();

    let table = db.table_name("things");
    let lines = series(&table);
    let get = "db_operation_name=\"GetItem\"";
    let ok = "outcome=\"ok\"";
    assert_eq!(value(&lines, "dynamite_requests", &[get, ok]), 3.0);
    assert_eq!(value(&lines, "dynamite_throttles", &[get]), 2.0);
    let reason = "reason=\"ThrottlingException\"";
    assert_eq!(value(&lines, "dynamite_retries", &[get, reason]), 2.0);
    assert_eq!(
        value(&lines, "dynamite_attempt_duration_count", &[get, ok]),
        3.0
    );
    let throttled = "outcome=\"error\"";
    assert_eq!(
        value(&lines, "dynamite_attempt_duration_count", &[get, throttled]),
        2.0
    );
    assert_eq!(
        value(&lines, "db_client_operation_duration_count", &[get, ok]),
        3.0
    );
    assert_eq!(
        value(&lines, "dynamite_consumed_capacity_count", &[get]),
        3.0
    );
    assert!(value(&lines, "dynamite_consumed_capacity_sum", &[get]) > 0.0);
    assert!(lines
        .iter()
        .all(|l| l.contains("db_system_name=\"aws.dynamodb\"")));
    assert!(lines
        .iter()
        .all(|l| l.contains("dynamite_entity=\"Thing\"")));
    // A failed request, by DynamoDB's error code.
    let lines = series(&missing.table_name("things"));
    let not_found = "error_type=\"ResourceNotFoundException\"";
    assert_eq!(value(&lines, "dynamite_requests", &[get, not_found]), 1.0);
}

#[tokio::test]
async fn coalesced_gets_record_their_batches() {
    recorder();
    let (proxy, db) =
        support::thing_through_proxy(|b| b.coalesce_gets(true).coalesce_max_in_flight(1)).await;
    // The first get is held; the four made meanwhile go as one batch.
    proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Delay(std::time::Duration::from_millis(300)),
        1,
    );
    let gets = (0..5).map(|_| Thing::get(&db, Thing::key("t1")).send());
    for got in futures::future::join_all(gets).await {
        assert_eq!(got.unwrap().map(|t| t.n), Some(1));
    }
    let lines = series(&db.table_name("things"));
    let batch = "db_operation_name=\"BatchGetItem\"";
    assert_eq!(
        value(&lines, "dynamite_coalesce_batch_size_count", &[batch]),
        1.0
    );
    assert_eq!(
        value(&lines, "dynamite_coalesce_batch_size_sum", &[batch]),
        4.0
    );
    let get = "db_operation_name=\"GetItem\"";
    assert_eq!(
        value(&lines, "dynamite_requests", &[get, "outcome=\"ok\""]),
        1.0
    );
}
