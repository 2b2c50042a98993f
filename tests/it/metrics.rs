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

#[tokio::test]
async fn items_and_reads_answered_by_the_cache_are_recorded() {
    use dynamite::cache::{CacheConfig, MokaLayer};

    recorder();
    let base = support::setup::<Thing>().await;
    let db = support::cache::with_cache(&base, MokaLayer::new(1 << 20), CacheConfig::default());
    Thing {
        id: "t1".into(),
        n: 1,
    }
    .put(&db)
    .await
    .unwrap();
    for _ in 0..3 {
        Thing::get(&db, Thing::key("t1")).await.unwrap();
    }
    let lines = series(&db.table_name("things"));
    let get = "db_operation_name=\"GetItem\"";
    let put = "db_operation_name=\"PutItem\"";
    assert_eq!(value(&lines, "dynamite_items_written", &[put]), 1.0);
    assert_eq!(value(&lines, "dynamite_items_read", &[get]), 1.0);
    let hit = "result=\"hit\"";
    let miss = "result=\"miss\"";
    assert_eq!(value(&lines, "dynamite_cache_reads", &[get, hit]), 2.0);
    assert_eq!(value(&lines, "dynamite_cache_reads", &[get, miss]), 1.0);
    let cached = "dynamite_cache=\"hit\"";
    let count = "db_client_operation_duration_count";
    assert_eq!(value(&lines, count, &[get, cached]), 2.0);
    // The request the miss made, without the label.
    let requested: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(count) && l.contains(get) && !l.contains(cached))
        .collect();
    assert_eq!(requested.len(), 1, "{lines:#?}");
    assert!(requested[0].ends_with(" 1"), "{requested:?}");
    // The layer's own series (shared by every moka layer of the test binary).
    let scrape = recorder().render();
    let layer_hits = scrape
        .lines()
        .find(|l| {
            l.starts_with("dynamite_cache_layer_lookups{")
                && l.contains("dynamite_cache_layer=\"moka\"")
                && l.contains(hit)
        })
        .unwrap_or_else(|| panic!("no moka hits in {scrape}"));
    let n: f64 = layer_hits.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2.0, "{layer_hits}");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_layer_records_its_pubsub_delay() {
    use dynamite::cache::RedisLayer;

    recorder();
    let url =
        std::env::var("DYNAMITE_REDIS_URL").expect("run through scripts/with-services --redis");
    let prefix = format!(
        "dynamite-test:metrics:{}:{:08x}:",
        std::process::id(),
        fastrand::u32(..)
    );
    // `connect` returns once the layer's first heartbeat came back through pub/sub.
    let layer = RedisLayer::builder(&url)
        .prefix(prefix)
        .connect()
        .await
        .expect("connect to Redis");
    let scrape = recorder().render();
    let delay = scrape
        .lines()
        .find(|l| {
            l.starts_with("dynamite_cache_pubsub_delay_count{")
                && l.contains("dynamite_cache_layer=\"redis\"")
        })
        .unwrap_or_else(|| panic!("no pub/sub delay in {scrape}"));
    let n: f64 = delay.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{delay}");
    drop(layer);
}
