//! Client overhead against the raw SDK: every operation run by dynamite and by hand-written
//! `aws-sdk-dynamodb` + `serde_dynamo` code (what a user writes instead), through the same SDK
//! client and HTTP stack, against a fake DynamoDB on loopback that answers instantly
//! (`fake.rs`, on its own thread). The difference is the client's own cost.
//!
//! ```text
//! cargo bench --bench overhead              # full run (about 5 minutes)
//! cargo bench --bench overhead -- --quick   # a quick look (about 20 seconds)
//! ```
//!
//! The client runs on a current-thread runtime on the main thread, so the thread's CPU time
//! (`getrusage(RUSAGE_THREAD)`) and its allocations (a counting allocator, per thread) are the
//! client's alone. Rounds interleave the two sides, alternating which goes first. Reported per
//! operation: client CPU (median over rounds), allocations, latency p50 and p99 (over every
//! call), and the ratios dynamite ÷ raw; the CPU ratio is the median of each round's ratio,
//! so that drift between rounds on a shared machine cancels out.

use std::future::Future;
use std::time::Instant;

use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, ReturnConsumedCapacity, ReturnValue,
    ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use dynamite::cache::{LfuLayer, MokaLayer};
use dynamite::{Client, Entity, Item};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

mod fake;
mod measure;

use fake::FakeDynamo;
use measure::{Meter, Sample};

const TABLE: &str = "bench-records";
const ACCOUNT: &str = "acct-1";

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "bench-records")]
struct Record {
    #[dynamite(partition_key)]
    account: String,
    #[dynamite(sort_key)]
    id: String,
    name: String,
    email: String,
    age: u32,
    score: f64,
    active: bool,
    created_at: i64,
    tags: Vec<String>,
}

fn record(i: usize) -> Record {
    Record {
        account: ACCOUNT.to_owned(),
        id: format!("id-{i:05}"),
        name: "Ada Lovelace".to_owned(),
        email: "ada.lovelace@example.com".to_owned(),
        age: 36,
        score: 1234.5678,
        active: true,
        created_at: 1_732_147_200,
        tags: vec!["admin".to_owned(), "beta".to_owned(), "math".to_owned()],
    }
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("id-{i:05}")).collect()
}

/// How much work a run does.
#[derive(Clone, Copy)]
struct Plan {
    rounds: usize,
    /// Calls per round of a single-item operation; batch operations scale it down.
    calls: usize,
    /// Run one side only (`--side raw|dynamite`), to profile it or count its instructions
    /// under `valgrind --tool=callgrind`; no report then.
    only: Option<Side>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Raw,
    Dynamite,
}

/// One line of the report: an operation measured on both sides.
struct Line {
    name: String,
    items: usize,
    raw: Sample,
    dynamite: Sample,
    baseline: &'static str,
}

/// The hand-written side: the same requests dynamite sends (checked with `OVERHEAD_DUMP=1`,
/// which prints every request body the fake server receives).
mod raw {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    pub(crate) async fn get(sdk: &aws_sdk_dynamodb::Client, id: &str) -> Option<Record> {
        let out = sdk
            .get_item()
            .table_name(TABLE)
            .key("account", s(ACCOUNT))
            .key("id", s(id))
            .consistent_read(false)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .expect("GetItem");
        out.item
            .map(|item| serde_dynamo::from_item(item).expect("decode"))
    }

    pub(crate) async fn put(sdk: &aws_sdk_dynamodb::Client, record: &Record) {
        let item: Item = serde_dynamo::to_item(record).expect("encode");
        sdk.put_item()
            .table_name(TABLE)
            .set_item(Some(item))
            .return_values(ReturnValue::None)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .expect("PutItem");
    }

    /// The same request dynamite sends for `.set(NAME, ..).add(AGE, 1)`: an update, not an
    /// upsert, so the item must exist.
    pub(crate) async fn update(sdk: &aws_sdk_dynamodb::Client, id: &str, name: &str) {
        sdk.update_item()
            .table_name(TABLE)
            .key("account", s(ACCOUNT))
            .key("id", s(id))
            .update_expression("SET #n0 = :v0 ADD #n1 :v1")
            .condition_expression("attribute_exists(#n2)")
            .expression_attribute_names("#n0", "name")
            .expression_attribute_names("#n1", "age")
            .expression_attribute_names("#n2", "account")
            .expression_attribute_values(":v0", s(name))
            .expression_attribute_values(":v1", AttributeValue::N("1".to_owned()))
            .return_values(ReturnValue::None)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .expect("UpdateItem");
    }

    /// Every page of a partition.
    pub(crate) async fn query(sdk: &aws_sdk_dynamodb::Client, account: &str) -> Vec<Record> {
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = sdk
                .query()
                .table_name(TABLE)
                .key_condition_expression("#n0 = :v0")
                .expression_attribute_names("#n0", "account")
                .expression_attribute_values(":v0", s(account))
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .expect("Query");
            let items = out.items.unwrap_or_default();
            records.reserve(items.len());
            for item in items {
                records.push(serde_dynamo::from_item(item).expect("decode"));
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return records,
            }
        }
    }

    /// Chunks of 100 keys, 8 requests in flight, unprocessed keys sent again.
    pub(crate) async fn batch_get(sdk: &aws_sdk_dynamodb::Client, ids: &[String]) -> Vec<Record> {
        let chunks = ids.chunks(100).map(|chunk| {
            chunk
                .iter()
                .map(|id| {
                    Item::from([("account".to_owned(), s(ACCOUNT)), ("id".to_owned(), s(id))])
                })
                .collect::<Vec<Item>>()
        });
        let results: Vec<Vec<Record>> = futures::stream::iter(chunks)
            .map(|mut keys| async move {
                let mut records = Vec::with_capacity(keys.len());
                while !keys.is_empty() {
                    let out = sdk
                        .batch_get_item()
                        .request_items(
                            TABLE,
                            KeysAndAttributes::builder()
                                .set_keys(Some(std::mem::take(&mut keys)))
                                .build()
                                .expect("keys"),
                        )
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send()
                        .await
                        .expect("BatchGetItem");
                    for (_, items) in out.responses.unwrap_or_default() {
                        for item in items {
                            records.push(serde_dynamo::from_item(item).expect("decode"));
                        }
                    }
                    if let Some(mut left) = out.unprocessed_keys {
                        if let Some(left) = left.remove(TABLE) {
                            keys = left.keys;
                        }
                    }
                }
                records
            })
            .buffer_unordered(8)
            .collect()
            .await;
        results.into_iter().flatten().collect()
    }

    /// Chunks of 25, 8 requests in flight, unprocessed items sent again.
    pub(crate) async fn batch_write(sdk: &aws_sdk_dynamodb::Client, records: &[Record]) {
        let chunks = records.chunks(25).map(|chunk| {
            chunk
                .iter()
                .map(|r| {
                    let item: Item = serde_dynamo::to_item(r).expect("encode");
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item))
                                .build()
                                .expect("item"),
                        )
                        .build()
                })
                .collect::<Vec<WriteRequest>>()
        });
        futures::stream::iter(chunks)
            .for_each_concurrent(8, |mut requests| async move {
                while !requests.is_empty() {
                    let out = sdk
                        .batch_write_item()
                        .request_items(TABLE, std::mem::take(&mut requests))
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send()
                        .await
                        .expect("BatchWriteItem");
                    if let Some(mut left) = out.unprocessed_items {
                        requests = left.remove(TABLE).unwrap_or_default();
                    }
                }
            })
            .await;
    }
}

/// Runs `call` `calls` times and measures it.
async fn run<F, Fut>(calls: usize, mut call: F) -> Sample
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let meter = Meter::start(calls);
    let mut meter = meter;
    for i in 0..calls {
        let started = Instant::now();
        call(i).await;
        meter.latency(started.elapsed());
    }
    meter.finish()
}

/// Measures both sides over interleaved rounds; the first round of each warms up.
async fn compare<R, RF, D, DF>(
    plan: Plan,
    calls: usize,
    mut raw_side: R,
    mut dynamite_side: D,
) -> (Sample, Sample)
where
    R: FnMut(usize) -> RF,
    RF: Future<Output = ()>,
    D: FnMut(usize) -> DF,
    DF: Future<Output = ()>,
{
    if let Some(side) = plan.only {
        for _ in 0..plan.rounds {
            match side {
                Side::Raw => run(calls, &mut raw_side).await,
                Side::Dynamite => run(calls, &mut dynamite_side).await,
            };
        }
        return (Sample::default(), Sample::default());
    }
    run((calls / 4).max(1), &mut raw_side).await;
    run((calls / 4).max(1), &mut dynamite_side).await;
    let mut raw = Sample::default();
    let mut dynamite = Sample::default();
    for round in 0..plan.rounds {
        if round % 2 == 0 {
            raw.merge(run(calls, &mut raw_side).await);
            dynamite.merge(run(calls, &mut dynamite_side).await);
        } else {
            dynamite.merge(run(calls, &mut dynamite_side).await);
            raw.merge(run(calls, &mut raw_side).await);
        }
    }
    (raw, dynamite)
}

async fn item_operations(
    plan: Plan,
    db: &Client,
    wants: impl Fn(&str) -> bool,
    lines: &mut Vec<Line>,
) {
    let sdk = db.sdk();
    let calls = plan.calls;

    if wants("get") {
        let (raw, dynamite) = compare(
            plan,
            calls,
            |_| async {
                std::hint::black_box(raw::get(sdk, "id-00000").await);
            },
            |_| async {
                let got = Record::get(db, Record::key(ACCOUNT.to_owned(), "id-00000".to_owned()))
                    .await
                    .expect("get");
                std::hint::black_box(got);
            },
        )
        .await;
        lines.push(Line::new("get", 1, raw, dynamite));
    }

    if wants("put") {
        let records: Vec<Record> = (0..calls).map(record).collect();
        let records = &records;
        let (raw, dynamite) = compare(
            plan,
            calls,
            |i| raw::put(sdk, &records[i]),
            |i| async move { records[i].put(db).await.expect("put") },
        )
        .await;
        lines.push(Line::new("put", 1, raw, dynamite));
    }

    if wants("update") {
        let (raw, dynamite) = compare(
            plan,
            calls,
            |_| raw::update(sdk, "id-00000", "Ada King"),
            |_| async {
                Record::update(db, Record::key(ACCOUNT.to_owned(), "id-00000".to_owned()))
                    .set(Record::NAME, "Ada King")
                    .add(Record::AGE, 1)
                    .await
                    .expect("update")
            },
        )
        .await;
        lines.push(Line::new("update", 1, raw, dynamite));
    }
}

async fn query(plan: Plan, db: &Client, lines: &mut Vec<Line>) {
    let sdk = db.sdk();
    let calls = (plan.calls / 20).max(2);
    let (raw, dynamite) = compare(
        plan,
        calls,
        |_| async {
            let got = raw::query(sdk, ACCOUNT).await;
            assert_eq!(got.len(), fake::QUERY_ITEMS);
        },
        |_| async {
            let got = Record::find(db)
                .filter(Record::ACCOUNT.eq(ACCOUNT))
                .all()
                .await
                .expect("find");
            assert_eq!(got.len(), fake::QUERY_ITEMS);
        },
    )
    .await;
    lines.push(Line::new(
        &format!("query, {} items", fake::QUERY_ITEMS),
        fake::QUERY_ITEMS,
        raw,
        dynamite,
    ));
}

async fn batch_get(plan: Plan, db: &Client, n: usize, lines: &mut Vec<Line>) {
    let sdk = db.sdk();
    let ids = ids(n);
    let calls = (plan.calls * 4 / n).max(2);
    let (raw, dynamite) = compare(
        plan,
        calls,
        |_| async {
            let got = raw::batch_get(sdk, &ids).await;
            assert_eq!(got.len(), n);
        },
        |_| async {
            let keys = ids
                .iter()
                .map(|id| Record::key(ACCOUNT.to_owned(), id.clone()));
            let got = Record::batch_get(db, keys).await.expect("batch_get");
            assert_eq!(got.items.len(), n);
        },
    )
    .await;
    lines.push(Line::new(&format!("batch_get, {n} keys"), n, raw, dynamite));
}

async fn batch_write(plan: Plan, db: &Client, n: usize, lines: &mut Vec<Line>) {
    let sdk = db.sdk();
    let records: Vec<Record> = (0..n).map(record).collect();
    let calls = (plan.calls * 4 / n).max(2);
    let (raw, dynamite) = compare(
        plan,
        calls,
        |_| raw::batch_write(sdk, &records),
        |_| async {
            let out = Record::batch_write(db)
                .put_all(&records)
                .await
                .expect("batch_write");
            assert_eq!(out.puts, n);
        },
    )
    .await;
    lines.push(Line::new(
        &format!("batch_write, {n} items"),
        n,
        raw,
        dynamite,
    ));
}

/// A get answered by the in-process layer, against its floor: moka's sync `get` of the same
/// owned struct under a key built the same way (two owned strings).
/// `which` picks the layers: `cached_lfu`, `cached_moka`, or both.
async fn cached_get(
    plan: Plan,
    sdk: &aws_sdk_dynamodb::Client,
    which: impl Fn(&str) -> bool,
    lines: &mut Vec<Line>,
) {
    let floor: moka::sync::Cache<(String, String), Record> = moka::sync::Cache::new(10_000);
    floor.insert((ACCOUNT.to_owned(), "id-00000".to_owned()), record(0));
    let layers = [
        ("cached_lfu", "cached get (LfuLayer)", {
            let sdk = sdk.clone();
            Box::new(move || Client::builder(sdk).cache(LfuLayer::new(64 << 20)).build())
                as Box<dyn FnOnce() -> Client>
        }),
        ("cached_moka", "cached get (MokaLayer)", {
            let sdk = sdk.clone();
            Box::new(move || Client::builder(sdk).cache(MokaLayer::new(64 << 20)).build())
        }),
    ];
    for (section, name, build) in layers {
        if !which(section) {
            continue;
        }
        let db = build();
        Record::get(&db, Record::key(ACCOUNT.to_owned(), "id-00000".to_owned()))
            .await
            .expect("fill");
        let (raw, dynamite) = compare(
            plan,
            plan.calls * 50,
            |_| {
                let got = floor.get(&(ACCOUNT.to_owned(), "id-00000".to_owned()));
                std::hint::black_box(got);
                std::future::ready(())
            },
            |_| {
                let db = &db;
                async move {
                    let got =
                        Record::get(db, Record::key(ACCOUNT.to_owned(), "id-00000".to_owned()))
                            .await
                            .expect("cached get");
                    std::hint::black_box(got);
                }
            },
        )
        .await;
        lines.push(Line {
            baseline: "floor",
            ..Line::new(name, 1, raw, dynamite)
        });
    }
}

/// Gets with `width` in flight, each of its own key (of 1,000), `per_round` gets a round, by
/// the raw SDK (through `db`'s SDK client) and by `db`: throughput and CPU per get.
async fn gets_in_flight(
    plan: Plan,
    db: &Client,
    width: usize,
    per_round: usize,
    name: &str,
    lines: &mut Vec<Line>,
) {
    let sdk = db.sdk();
    let ids = ids(1_000);
    let ids = &ids;
    let (raw, dynamite) = compare(
        Plan { calls: 1, ..plan },
        1,
        |_| async move {
            futures::stream::iter(0..per_round)
                .for_each_concurrent(width, |i| async move {
                    std::hint::black_box(raw::get(sdk, &ids[i % ids.len()]).await);
                })
                .await;
        },
        |_| async move {
            futures::stream::iter(0..per_round)
                .for_each_concurrent(width, |i| get_one(db, &ids[i % ids.len()]))
                .await;
        },
    )
    .await;
    lines.push(Line::new(name, per_round, raw, dynamite));
}

async fn get_one(db: &Client, id: &str) {
    let got = Record::get(db, Record::key(ACCOUNT.to_owned(), id.to_owned()))
        .await
        .expect("get");
    std::hint::black_box(got);
}

/// Request coalescing: each get's latency one at a time, coalescing on against off; then CPU
/// per get and throughput at 1, 8 and 64 in flight, without and with coalescing, against the
/// raw SDK. `per_round`: gets per round of the in-flight lines.
async fn coalescing(
    plan: Plan,
    db: &Client,
    per_round: usize,
    max_in_flight: Option<usize>,
    label: &str,
    lines: &mut Vec<Line>,
) {
    let mut coalescing = Client::builder(db.sdk().clone()).coalesce_gets(true);
    if let Some(requests) = max_in_flight {
        coalescing = coalescing.coalesce_max_in_flight(requests);
    }
    let coalescing = coalescing.build();
    let coalescing = &coalescing;
    let ids = ids(1_000);
    let ids = &ids;
    let (plain, coalesced) = compare(
        Plan {
            calls: per_round,
            ..plan
        },
        per_round,
        |i| get_one(db, &ids[i % ids.len()]),
        |i| get_one(coalescing, &ids[i % ids.len()]),
    )
    .await;
    lines.push(Line {
        baseline: "uncoalesced",
        ..Line::new(
            &format!("get{label}, coalescing on, one at a time"),
            1,
            plain,
            coalesced,
        )
    });
    for width in [1, 8, 64] {
        let name = format!("get{label}, {width} in flight");
        gets_in_flight(plan, db, width, per_round, &name, lines).await;
        let name = format!("get{label}, {width} in flight, coalesced");
        gets_in_flight(plan, coalescing, width, per_round, &name, lines).await;
    }
}

impl Line {
    fn new(name: &str, items: usize, raw: Sample, dynamite: Sample) -> Self {
        Line {
            name: name.to_owned(),
            items,
            raw,
            dynamite,
            baseline: "raw",
        }
    }
}

/// The SDK configuration of a client of the fake server at `endpoint`.
fn sdk_config(endpoint: &str) -> aws_sdk_dynamodb::Config {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .build()
}

fn main() {
    // `--quick`, `--side raw|dynamite`, and optionally the sections to run (items or get, put,
    // update; query, batch_get, batch_write, cached or cached_lfu, cached_moka; concurrent,
    // coalesce, coalesce_rtt, scaling); all by default.
    // Cargo adds `--bench`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = match args
        .iter()
        .position(|a| a == "--side")
        .map(|i| args.get(i + 1))
    {
        None => None,
        Some(Some(side)) if side == "raw" => Some(Side::Raw),
        Some(Some(side)) if side == "dynamite" => Some(Side::Dynamite),
        Some(other) => panic!("--side takes raw or dynamite, not {other:?}"),
    };
    // Values of flags are not sections.
    let values: Vec<usize> = ["--side", "--rounds", "--calls", "--coalesce-in-flight"]
        .iter()
        .filter_map(|flag| args.iter().position(|a| a == flag).map(|i| i + 1))
        .collect();
    let sections: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && !values.contains(i))
        .map(|(_, a)| a)
        .collect();
    let wants = |section: &str| sections.is_empty() || sections.iter().any(|s| *s == section);
    let mut plan = if quick {
        Plan {
            rounds: 3,
            calls: 300,
            only,
        }
    } else {
        Plan {
            rounds: 10,
            calls: 1_000,
            only,
        }
    };
    // `--rounds N` and `--calls N` override the plan (scripts/overhead-instructions).
    let number = |flag: &str| {
        let at = args.iter().position(|a| a == flag)?;
        let value = args.get(at + 1).and_then(|v| v.parse().ok());
        Some(value.unwrap_or_else(|| panic!("{flag} takes a number")))
    };
    if let Some(rounds) = number("--rounds") {
        plan.rounds = rounds;
    }
    if let Some(calls) = number("--calls") {
        plan.calls = calls;
    }
    // `--coalesce-in-flight N`: `ClientBuilder::coalesce_max_in_flight` of the coalescing
    // client (its default otherwise).
    let in_flight = number("--coalesce-in-flight");
    // `--prometheus`: dynamite's metrics (built with `--features metrics`) recorded into a
    // Prometheus recorder, to measure what recording costs.
    if args.iter().any(|a| a == "--prometheus") {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("a recorder");
    }
    let server = FakeDynamo::start(TABLE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let lines = runtime.block_on(async {
        let db = Client::new(aws_sdk_dynamodb::Client::from_conf(sdk_config(
            &server.endpoint,
        )));
        let mut lines = Vec::new();
        let mut scaling = Vec::new();
        if ["items", "get", "put", "update"].iter().any(|s| wants(s)) {
            let wants_item = |op: &str| wants("items") || wants(op);
            item_operations(plan, &db, wants_item, &mut lines).await;
        }
        if wants("query") {
            query(plan, &db, &mut lines).await;
        }
        if wants("batch_get") {
            batch_get(plan, &db, 1_000, &mut lines).await;
        }
        if wants("batch_write") {
            batch_write(plan, &db, 1_000, &mut lines).await;
        }
        if ["cached", "cached_lfu", "cached_moka"]
            .iter()
            .any(|s| wants(s))
        {
            let which = |layer: &str| wants("cached") || wants(layer);
            cached_get(plan, db.sdk(), which, &mut lines).await;
        }
        if wants("concurrent") {
            let per_round = plan.calls * 2;
            gets_in_flight(plan, &db, 64, per_round, "get, 64 in flight", &mut lines).await;
        }
        if wants("coalesce") {
            coalescing(plan, &db, plan.calls * 2, in_flight, "", &mut lines).await;
        }
        if wants("coalesce_rtt") {
            // The same against a server that answers after 2 ms, so latency shows.
            let slow = FakeDynamo::start_with_delay(TABLE, std::time::Duration::from_millis(2));
            let db = Client::new(aws_sdk_dynamodb::Client::from_conf(sdk_config(
                &slow.endpoint,
            )));
            let label = " (2 ms round trip)";
            coalescing(plan, &db, 200, in_flight, label, &mut lines).await;
        }
        if wants("scaling") {
            for n in [100, 1_000, 10_000] {
                batch_get(plan, &db, n, &mut scaling).await;
                batch_write(plan, &db, n, &mut scaling).await;
            }
        }
        (lines, scaling)
    });
    let (lines, scaling) = lines;
    if plan.only.is_some() {
        println!("ran one side only: no report");
        return;
    }
    println!(
        "{} rounds per operation; the fake server answered {} requests on {} connections\n",
        plan.rounds,
        server.requests(),
        server.connections()
    );
    measure::report(&lines);
    if !scaling.is_empty() {
        println!("\nScaling: client CPU and allocations per item as batches grow\n");
        measure::report_scaling(&scaling);
    }
}
