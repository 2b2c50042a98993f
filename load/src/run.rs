//! A run: the clients, the table and its seed, the workers (closed or open loop), live
//! progress, and the summary the report is made from.

use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dynamite::cache::{LfuLayer, MokaLayer, RedisLayer, Tiered};
use dynamite::{CacheStats, Client, Entity};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use crate::args::{CacheMode, Config, KeyChoice, L1Kind};
use crate::cpu::{self, CpuTime};
use crate::dynamo::{self, RequestStats};
use crate::record::Recorder;
use crate::report::{self, CacheLine, RunInfo, Schedule, Summary};
use crate::workload::{self, Driver, LoadItem};

/// Boxed error of a run.
pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

/// Runs the load test `config` describes and returns what it measured. The table is deleted
/// at the end (unless `--keep-table`), also when the run fails or is interrupted.
pub(crate) async fn run(config: &Config) -> Result<Summary, BoxError> {
    let endpoint = endpoint(config.allow_remote)?;
    let prefix = config.table_prefix.clone().unwrap_or_else(unique_prefix);
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sdk = aws_sdk_dynamodb::Client::new(&sdk_config);
    // Table set-up and seeding go through a client of their own, so the measured client's
    // statistics and cache start with the workload.
    let admin = Client::builder(sdk.clone()).table_prefix(&prefix).build();
    let table = admin.table_name(LoadItem::schema().table);
    let stop = stop_on_ctrl_c();
    eprintln!("dynamite-load: creating table {table} on {endpoint}");
    LoadItem::ensure_table(&admin).await?;
    let outcome = async {
        let db = measured_client(sdk, &prefix, config).await?;
        seed_and_measure(&admin, db, config, &table, &endpoint, &stop).await
    }
    .await;
    if config.keep_table {
        eprintln!("dynamite-load: table {table} kept (--keep-table)");
    } else if let Err(e) = LoadItem::delete_table(&admin).await {
        eprintln!("dynamite-load: could not delete table {table}: {e}");
    } else {
        eprintln!("dynamite-load: table {table} deleted");
    }
    outcome
}

/// The DynamoDB endpoint from the environment; without one, refused unless `allow_remote`.
fn endpoint(allow_remote: bool) -> Result<String, BoxError> {
    let from_env = ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    match from_env {
        Some(url) => Ok(url),
        None if allow_remote => Ok("AWS (no endpoint override)".into()),
        None => Err(
            "no AWS_ENDPOINT_URL_DYNAMODB (or AWS_ENDPOINT_URL) in the environment: \
                     run through scripts/load (DynamoDB Local on loopback), set one, or pass \
                     --allow-remote to load DynamoDB itself (this costs money)"
                .into(),
        ),
    }
}

/// `dynamite-load-<pid>-<unix seconds>-`: unique per run on one machine.
fn unique_prefix() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("dynamite-load-{}-{secs}-", std::process::id())
}

/// A flag set by Ctrl-C: seeding or the workers stop, the table is deleted and the report
/// printed. A second Ctrl-C exits at once.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ndynamite-load: interrupted; stopping (Ctrl-C again to quit at once)");
            flag.store(true, Ordering::Relaxed);
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ndynamite-load: quit; the table is left in place");
            std::process::exit(130);
        }
    });
    stop
}

/// The client the workload runs through, with the cache `config` asks for.
async fn measured_client(
    sdk: aws_sdk_dynamodb::Client,
    prefix: &str,
    config: &Config,
) -> Result<Client, BoxError> {
    let builder = Client::builder(sdk).table_prefix(prefix);
    Ok(match config.cache {
        CacheMode::None => builder.build(),
        CacheMode::L1 => builder.cache(l1(config)).build(),
        CacheMode::L1Redis => builder
            .cache(l1(config).layer(redis(prefix).await?))
            .build(),
    })
}

/// The in-process layer `config` asks for, of `--cache-mb` MiB.
fn l1(config: &Config) -> Tiered {
    let bytes = config.cache_mb << 20;
    match config.l1 {
        L1Kind::Moka => Tiered::new().layer(MokaLayer::new(bytes)),
        L1Kind::Lfu => Tiered::new().layer(LfuLayer::new(bytes)),
    }
}

/// The Redis layer on `DYNAMITE_REDIS_URL`, its keys under the table prefix.
async fn redis(prefix: &str) -> Result<RedisLayer, BoxError> {
    let url = std::env::var("DYNAMITE_REDIS_URL").map_err(|_| {
        "--cache l1-redis needs DYNAMITE_REDIS_URL (scripts/load starts a local Redis)"
    })?;
    let layer = RedisLayer::builder(url.as_str())
        .prefix(format!("{prefix}cache:"))
        .connect()
        .await
        .map_err(|e| format!("Redis at {url}: {e}"))?;
    Ok(layer)
}

/// Seeds the table, warms up, runs the measured phase and summarises it.
async fn seed_and_measure(
    admin: &Client,
    db: Client,
    config: &Config,
    table: &str,
    endpoint: &str,
    stop: &Arc<AtomicBool>,
) -> Result<Summary, BoxError> {
    let mut rng = config
        .seed
        .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
    let seeded = seed(admin, config, &mut rng, stop).await?;
    db.clear_cache().await;
    let driver = Arc::new(Driver::new(db, config));
    if !config.warmup.is_zero() && !stop.load(Ordering::Relaxed) {
        drive(&driver, config, config.warmup, "warm-up", &mut rng, stop).await;
    }
    // The client's request statistics cover the measured run only (percentiles included).
    driver.db.reset_stats();
    let before = Snapshot::take(&driver.db, table);
    let measured = drive(&driver, config, config.duration, "run", &mut rng, stop).await;
    let after = Snapshot::take(&driver.db, table);
    let info = run_info(config, table, endpoint, seeded);
    Ok(summarise(info, measured, &before, &after))
}

/// Seeds the table with a progress bar; how long it took.
async fn seed(
    admin: &Client,
    config: &Config,
    rng: &mut fastrand::Rng,
    stop: &AtomicBool,
) -> Result<Duration, BoxError> {
    let bar = progress_bar(
        config.key_count,
        "seeding",
        "{prefix:>8} [{bar:30}] {pos}/{len} items {elapsed}",
    );
    let start = Instant::now();
    let written = workload::seed(admin, config, rng, |done| {
        bar.set_position(done);
        !stop.load(Ordering::Relaxed)
    })
    .await?;
    bar.finish_and_clear();
    if written < config.key_count {
        return Err(format!(
            "interrupted while seeding ({} of {} items written)",
            report::count(written),
            report::count(config.key_count)
        )
        .into());
    }
    let took = start.elapsed();
    eprintln!(
        "dynamite-load: seeded {} items in {:.1} s",
        report::count(config.key_count),
        took.as_secs_f64()
    );
    Ok(took)
}

/// What one phase (warm-up or the measured run) measured.
#[derive(Debug)]
struct Measured {
    /// The measurements.
    recorder: Recorder,
    /// From the phase's start until its last operation ended.
    elapsed: Duration,
    /// The open loop's schedule.
    schedule: Option<Schedule>,
}

/// Everything read from the client and the process at one moment.
#[derive(Debug)]
struct Snapshot {
    /// Cache counters.
    cache: CacheStats,
    /// The client's request statistics.
    requests: RequestStats,
    /// The process's CPU time.
    cpu: CpuTime,
}

impl Snapshot {
    /// Reads them now.
    fn take(db: &Client, table: &str) -> Self {
        Snapshot {
            cache: db.cache_stats(),
            requests: dynamo::snapshot(db, table),
            cpu: cpu::process_cpu(),
        }
    }
}

/// Shared by the workers of a phase.
#[derive(Debug)]
struct Phase {
    /// Sends the operations.
    driver: Arc<Driver>,
    /// The measurements, recorded by every worker.
    recorder: Mutex<Recorder>,
    /// When the phase started.
    start: Instant,
    /// When it ends: no operation starts at or after it.
    end: Instant,
    /// Number of workers.
    workers: u64,
    /// Open-loop rate, operations per second.
    rate: Option<f64>,
    /// Set by Ctrl-C.
    stop: Arc<AtomicBool>,
}

/// Runs `config.concurrency` workers for `duration` with live progress.
async fn drive(
    driver: &Arc<Driver>,
    config: &Config,
    duration: Duration,
    label: &'static str,
    rng: &mut fastrand::Rng,
    stop: &Arc<AtomicBool>,
) -> Measured {
    let start = Instant::now();
    let phase = Arc::new(Phase {
        driver: driver.clone(),
        recorder: Mutex::new(Recorder::new(duration)),
        start,
        end: start + duration,
        workers: config.concurrency as u64,
        rate: config.rate,
        stop: stop.clone(),
    });
    let progress = tokio::spawn(show_progress(phase.clone(), duration, label));
    let workers: Vec<_> = (0..phase.workers)
        .map(|w| tokio::spawn(worker(phase.clone(), w, rng.fork())))
        .collect();
    let mut started = 0;
    for w in workers {
        started += w.await.unwrap_or(0);
    }
    let elapsed = start.elapsed();
    progress.abort();
    let _ = progress.await;
    let schedule = config.rate.map(|rate| Schedule {
        rate,
        scheduled: scheduled_ops(elapsed.min(duration), rate),
        started,
    });
    let recorder = Arc::try_unwrap(phase)
        .map(|p| {
            p.recorder
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
        })
        .unwrap_or_else(|p| lock(&p.recorder).clone());
    Measured {
        recorder,
        elapsed,
        schedule,
    }
}

/// One worker: sends operations one after another until the phase ends; how many it started.
///
/// Closed loop: the next operation starts when the last one ended, latency from its start.
/// Open loop: worker `w` of `n` starts the global operations `w, w + n, w + 2n, ...` at their
/// scheduled times ([`intended_offset`]); when it falls behind it starts them at once, and
/// latency is measured from the scheduled time, so a stall shows in full (no coordinated
/// omission).
async fn worker(phase: Arc<Phase>, index: u64, mut rng: fastrand::Rng) -> u64 {
    let mut seq = 0;
    while !phase.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= phase.end {
            break;
        }
        let intended = match phase.rate {
            None => now,
            Some(rate) => phase.start + intended_offset(index, phase.workers, seq, rate),
        };
        if intended >= phase.end {
            break;
        }
        if intended > now {
            tokio::time::sleep_until(intended).await;
        }
        let op = phase.driver.next_op(seq, &mut rng);
        let result = phase.driver.execute(op, &mut rng).await;
        let ended = Instant::now();
        lock(&phase.recorder).record(
            op,
            ended - intended,
            ended - phase.start,
            result.as_ref().err(),
        );
        seq += 1;
    }
    seq
}

/// The scheduled start of operation `seq` of worker `worker` of `workers`, from the start of
/// the run, at `rate` operations per second overall: global operation `i = seq * workers +
/// worker` starts at `i / rate` seconds.
pub(crate) fn intended_offset(worker: u64, workers: u64, seq: u64, rate: f64) -> Duration {
    let i = seq * workers + worker;
    Duration::from_secs_f64(i as f64 / rate)
}

/// How many operations are scheduled to start within `duration` at `rate` per second: those
/// with `i / rate < duration`.
pub(crate) fn scheduled_ops(duration: Duration, rate: f64) -> u64 {
    (duration.as_secs_f64() * rate).ceil() as u64
}

/// The recorder, even if a worker panicked while holding it.
fn lock(m: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(len: u64, prefix: &'static str, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix);
    bar
}

/// Shows the phase's progress until aborted: a bar on a terminal, else a line every 5 s.
async fn show_progress(phase: Arc<Phase>, duration: Duration, label: &'static str) {
    let total_ms = duration.as_millis() as u64;
    let bar = progress_bar(total_ms, label, "{prefix:>8} [{bar:30}] {msg}");
    let tick = Duration::from_millis(250);
    let mut last = (Instant::now(), 0u64);
    let mut next_line = Instant::now() + Duration::from_secs(5);
    loop {
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        let (ops, errors) = {
            let r = lock(&phase.recorder);
            (r.ops(), r.failed)
        };
        let rate = report::per_second(ops - last.1, now - last.0);
        last = (now, ops);
        let elapsed = (now - phase.start).min(duration);
        let msg = format!(
            "{:.1}/{:.0} s  {} ops/s  {} ops  {} errors",
            elapsed.as_secs_f64(),
            duration.as_secs_f64(),
            report::count(rate.round() as u64),
            report::count(ops),
            report::count(errors),
        );
        bar.set_position(elapsed.as_millis() as u64);
        if bar.is_hidden() && now >= next_line {
            eprintln!("dynamite-load: {label} {msg}");
            next_line += Duration::from_secs(5);
        }
        bar.set_message(msg);
        if elapsed >= duration {
            bar.finish_and_clear();
        }
    }
}

/// The header lines of the report.
fn run_info(config: &Config, table: &str, endpoint: &str, seeded: Duration) -> RunInfo {
    let workload = match config.workload {
        crate::workload::Workload::Mix => {
            format!(
                "mix ({:.0}% gets, the rest puts)",
                config.read_ratio * 100.0
            )
        }
        crate::workload::Workload::Batch => format!(
            "batch (batch_get of {n} keys / batch_write of {n} items, alternating)",
            n = config.batch_size
        ),
        w => w.name().to_owned(),
    };
    let keys = match config.keys {
        KeyChoice::Uniform => "uniform".to_owned(),
        KeyChoice::Zipf { s } => format!("zipf s={s}"),
    };
    let load = match config.rate {
        None => format!("closed loop, concurrency {}", config.concurrency),
        Some(rate) => format!(
            "open loop at {} ops/s, {} workers",
            report::count(rate.round() as u64),
            config.concurrency
        ),
    };
    let cache = match config.cache {
        CacheMode::None => "none".to_owned(),
        mode => format!(
            "{} ({} MiB {})",
            mode.name(),
            config.cache_mb,
            match config.l1 {
                L1Kind::Moka => "MokaLayer",
                L1Kind::Lfu => "LfuLayer",
            }
        ),
    };
    RunInfo {
        title: format!(
            "{workload}, {keys} over {} keys, {load}, cache {}",
            report::count(config.key_count),
            config.cache.name()
        ),
        details: vec![
            ("workload".into(), workload),
            (
                "keys".into(),
                format!(
                    "{keys}, {} items, {} per partition, payload {} B",
                    report::count(config.key_count),
                    config.partition_size,
                    config.payload_bytes
                ),
            ),
            ("load".into(), load),
            ("cache".into(), cache),
            (
                "duration".into(),
                format!(
                    "{:.1} s measured after {:.1} s warm-up",
                    config.duration.as_secs_f64(),
                    config.warmup.as_secs_f64()
                ),
            ),
            ("table".into(), table.to_owned()),
            ("endpoint".into(), endpoint.to_owned()),
            (
                "seeded".into(),
                format!(
                    "{} items with batch_write in {:.1} s",
                    report::count(config.key_count),
                    seeded.as_secs_f64()
                ),
            ),
        ],
    }
}

/// The summary of the measured phase, from the snapshots around it.
fn summarise(info: RunInfo, m: Measured, before: &Snapshot, after: &Snapshot) -> Summary {
    let cache = (!after.cache.layers.is_empty()).then(|| cache_lines(&before.cache, &after.cache));
    Summary {
        info,
        recorder: m.recorder,
        elapsed: m.elapsed,
        schedule: m.schedule,
        cache,
        requests: dynamo::between(&before.requests, &after.requests),
        cpu: after.cpu - before.cpu,
    }
}

/// Each layer's counters between two readings.
fn cache_lines(before: &CacheStats, after: &CacheStats) -> Vec<CacheLine> {
    after
        .layers
        .iter()
        .map(|(name, a)| {
            let b = before.layer(name);
            let sub =
                |f: fn(&dynamite::cache::LayerStats) -> u64| f(a).saturating_sub(b.map_or(0, f));
            CacheLine {
                layer: name.clone(),
                hits: sub(|s| s.hits),
                misses: sub(|s| s.misses),
                skipped: sub(|s| s.skipped),
                faults: sub(|s| s.faults),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_the_schedule_evenly_and_exactly() {
        let (workers, rate) = (4u64, 2000.0);
        let mut offsets: Vec<Duration> = (0..workers)
            .flat_map(|w| (0..250).map(move |k| intended_offset(w, workers, k, rate)))
            .collect();
        offsets.sort();
        // 1000 operations, one every 0.5 ms, none twice.
        for (i, d) in offsets.iter().enumerate() {
            assert_eq!(*d, Duration::from_secs_f64(i as f64 / rate));
        }
        assert_eq!(offsets[999], Duration::from_micros(499_500));
        // Each worker's own operations are `workers / rate` apart.
        assert_eq!(
            intended_offset(3, workers, 1, rate) - intended_offset(3, workers, 0, rate),
            Duration::from_millis(2)
        );
    }

    #[test]
    fn the_schedule_counts_operations_starting_before_the_end() {
        assert_eq!(scheduled_ops(Duration::from_secs(20), 2000.0), 40_000);
        assert_eq!(scheduled_ops(Duration::from_millis(1500), 3.0), 5); // 0, 1/3, ..., 4/3
        assert_eq!(scheduled_ops(Duration::from_secs(1), 0.5), 1);
        // The last scheduled operation starts before the end, the next one does not.
        let (d, rate) = (Duration::from_secs(2), 7.0);
        let n = scheduled_ops(d, rate);
        assert!(Duration::from_secs_f64((n - 1) as f64 / rate) < d);
        assert!(Duration::from_secs_f64(n as f64 / rate) >= d);
    }

    #[test]
    fn unique_prefixes_are_valid_table_names() {
        let p = unique_prefix();
        assert!(p.starts_with("dynamite-load-") && p.ends_with('-'));
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
