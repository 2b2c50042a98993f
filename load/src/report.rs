//! The final text report.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::cpu::CpuTime;
use crate::dynamo::RequestStats;
use crate::record::Recorder;

/// What the run was, for the report's header and the chart's title.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RunInfo {
    /// One line: workload, keys, load and cache.
    pub(crate) title: String,
    /// Label and value lines under the title (table, endpoint, seeding, ...).
    pub(crate) details: Vec<(String, String)>,
}

/// The open loop's schedule against what was started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Schedule {
    /// Target operations per second.
    pub(crate) rate: f64,
    /// Operations scheduled to start within the run.
    pub(crate) scheduled: u64,
    /// Operations started.
    pub(crate) started: u64,
}

/// One cache layer's counters during the measured run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheLine {
    /// The layer's name (`moka`, `lfu`, `redis`).
    pub(crate) layer: String,
    /// Lookups answered.
    pub(crate) hits: u64,
    /// Lookups not answered.
    pub(crate) misses: u64,
    /// Lookups skipped (the layer could not vouch for its freshness).
    pub(crate) skipped: u64,
    /// Backend faults.
    pub(crate) faults: u64,
}

/// Everything the report and the chart show.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// What was run.
    pub(crate) info: RunInfo,
    /// The measurements.
    pub(crate) recorder: Recorder,
    /// Wall time of the measured run, from its start until the last operation ended.
    pub(crate) elapsed: Duration,
    /// The open loop's schedule; `None` for a closed loop.
    pub(crate) schedule: Option<Schedule>,
    /// Cache layers, top first; `None` without a cache.
    pub(crate) cache: Option<Vec<CacheLine>>,
    /// The client's request statistics (`Client::stats()`) during the run.
    pub(crate) requests: RequestStats,
    /// The process's CPU time during the measured run.
    pub(crate) cpu: CpuTime,
}

/// The report as text.
pub(crate) fn render(s: &Summary) -> String {
    let mut out = String::new();
    header(&mut out, &s.info);
    totals(&mut out, s);
    by_operation(&mut out, &s.recorder);
    errors(&mut out, &s.recorder);
    cache(&mut out, s.cache.as_deref());
    requests(&mut out, &s.requests, s.elapsed);
    cpu(&mut out, s.cpu, s.recorder.ops(), s.elapsed);
    out
}

/// Title and details.
fn header(out: &mut String, info: &RunInfo) {
    let _ = writeln!(out, "dynamite-load: {}", info.title);
    for (label, value) in &info.details {
        let _ = writeln!(out, "  {label:<12} {value}");
    }
}

/// Operations, throughput, the schedule, and overall latency.
fn totals(out: &mut String, s: &Summary) {
    let r = &s.recorder;
    let ops = r.ops();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "operations   {} in {:.1} s: {} ok, {} failed  ->  {} ops/s",
        count(ops),
        s.elapsed.as_secs_f64(),
        count(ops - r.failed),
        count(r.failed),
        count(per_second(ops, s.elapsed).round() as u64),
    );
    if let Some(schedule) = &s.schedule {
        let _ = writeln!(
            out,
            "schedule     {} ops/s target: {} scheduled, {} started, {} not started (behind schedule)",
            count(schedule.rate.round() as u64),
            count(schedule.scheduled),
            count(schedule.started),
            count(schedule.scheduled.saturating_sub(schedule.started)),
        );
    }
    let _ = writeln!(out, "latency      {}", percentiles(&r.total));
    let note = if s.schedule.is_some() {
        "from each operation's scheduled start (open loop: queueing behind a stall counts)"
    } else {
        "from each operation's start (closed loop)"
    };
    let _ = writeln!(out, "             {note}, failed operations included");
}

/// `p50 1.23 ms  p95 …  p99 …  max …  (mean …)`.
fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no operations".into();
    }
    format!(
        "p50 {}  p95 {}  p99 {}  max {}  (mean {})",
        micros(h.value_at_quantile(0.50)),
        micros(h.value_at_quantile(0.95)),
        micros(h.value_at_quantile(0.99)),
        micros(h.max()),
        micros(h.mean().round() as u64),
    )
}

/// One line per kind of operation, when there is more than one.
fn by_operation(out: &mut String, r: &Recorder) {
    if r.by_op.len() < 2 {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<12} {:>10} {:>7} {:>10} {:>10} {:>10} {:>10}",
        "operation", "count", "share", "p50", "p95", "p99", "max"
    );
    for (op, h) in &r.by_op {
        let _ = writeln!(
            out,
            "  {:<12} {:>10} {:>6.1}% {:>10} {:>10} {:>10} {:>10}",
            op.name(),
            count(h.len()),
            100.0 * h.len() as f64 / r.ops().max(1) as f64,
            micros(h.value_at_quantile(0.50)),
            micros(h.value_at_quantile(0.95)),
            micros(h.value_at_quantile(0.99)),
            micros(h.max()),
        );
    }
}

/// Failures by kind, with the first message of each.
fn errors(out: &mut String, r: &Recorder) {
    let _ = writeln!(out);
    if r.errors.is_empty() {
        let _ = writeln!(out, "errors       none");
        return;
    }
    let _ = writeln!(out, "errors by kind");
    let _ = writeln!(out, "  {:<16} {:>10}  first message", "kind", "count");
    let mut kinds: Vec<_> = r.errors.iter().collect();
    kinds.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    for (kind, tally) in kinds {
        let _ = writeln!(
            out,
            "  {:<16} {:>10}  {}",
            kind,
            count(tally.count),
            shorten(&tally.example, 100)
        );
    }
}

/// Each layer's hit rate, and how many lookups any layer answered.
fn cache(out: &mut String, layers: Option<&[CacheLine]>) {
    let Some(layers) = layers else {
        let _ = writeln!(out, "cache        none");
        return;
    };
    for (i, l) in layers.iter().enumerate() {
        let label = if i == 0 { "cache" } else { "" };
        let _ = writeln!(
            out,
            "{label:<12} L{} {:<6} hits {:>10}  misses {:>10}  hit rate {}{}",
            i + 1,
            l.layer,
            count(l.hits),
            count(l.misses),
            percent(l.hits, l.hits + l.misses),
            extra_cache_counters(l),
        );
    }
    let (hits, lookups) = cache_totals(layers);
    let _ = writeln!(
        out,
        "{:<12} {} of {} lookups answered by a cache layer ({} reads went to DynamoDB)",
        "",
        percent(hits, lookups),
        count(lookups),
        count(lookups.saturating_sub(hits)),
    );
}

/// Lookups answered by any layer, and lookups made: the top layer's hits and misses, plus
/// the lookups a shared layer skipped while out of contact (the layers above it are not
/// asked then, so those lookups show only in its `skipped`).
fn cache_totals(layers: &[CacheLine]) -> (u64, u64) {
    let Some(top) = layers.first() else {
        return (0, 0);
    };
    let skipped: u64 = layers[1..].iter().map(|l| l.skipped).sum();
    let hits = layers.iter().map(|l| l.hits).sum();
    (hits, top.hits + top.misses + top.skipped + skipped)
}

/// The share of cache lookups any layer answered; `None` without lookups.
pub(crate) fn cache_hit_rate(layers: &[CacheLine]) -> Option<f64> {
    let (hits, lookups) = cache_totals(layers);
    (lookups > 0).then(|| hits as f64 / lookups as f64)
}

/// `, skipped N, faults N` when they are not zero.
fn extra_cache_counters(l: &CacheLine) -> String {
    let mut s = String::new();
    if l.skipped > 0 {
        let _ = write!(s, "  skipped {} (out of contact)", count(l.skipped));
    }
    if l.faults > 0 {
        let _ = write!(s, "  faults {}", count(l.faults));
    }
    s
}

/// Consumed capacity and the per-operation request table.
fn requests(out: &mut String, stats: &RequestStats, elapsed: Duration) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "capacity     {} units consumed ({} units/s)",
        units(stats.total_capacity),
        units(stats.total_capacity / elapsed.as_secs_f64().max(1e-9)),
    );
    if stats.rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "DynamoDB requests during the run (Client::stats())");
    let _ = writeln!(
        out,
        "  {:<16} {:>10} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10} {:>12}",
        "operation",
        "requests",
        "errors",
        "retries",
        "throttles",
        "cache hits",
        "p50",
        "p99",
        "capacity"
    );
    for r in &stats.rows {
        let _ = writeln!(
            out,
            "  {:<16} {:>10} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10} {:>12}",
            r.operation,
            count(r.requests),
            count(r.errors),
            count(r.retries),
            count(r.throttles),
            count(r.cache_hits),
            micros(r.p50.as_micros() as u64),
            micros(r.p99.as_micros() as u64),
            units(r.capacity),
        );
    }
}

/// The process's CPU time, in all and per operation.
fn cpu(out: &mut String, cpu: CpuTime, ops: u64, elapsed: Duration) {
    let total = cpu.total();
    let _ = writeln!(
        out,
        "client CPU   {:.2} s user + {:.2} s sys = {:.2} s ({:.0}% of one core), {} per operation\n             (the whole process: dynamite, the SDK, and the tool's own bookkeeping)",
        cpu.user.as_secs_f64(),
        cpu.system.as_secs_f64(),
        total.as_secs_f64(),
        100.0 * total.as_secs_f64() / elapsed.as_secs_f64().max(1e-9),
        if ops == 0 {
            "-".to_owned()
        } else {
            format!("{:.1} µs", total.as_secs_f64() * 1e6 / ops as f64)
        },
    );
}

/// `n` per second of `elapsed`.
pub(crate) fn per_second(n: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        n as f64 / elapsed.as_secs_f64()
    }
}

/// A whole number with thousands separators: `12,345`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in µs, in the unit that reads best: `850 µs`, `1.23 ms`, `12.3 ms`, `1.50 s`.
pub(crate) fn micros(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=9_999 => format!("{ms:.2} ms"),
        10_000..=999_999 => format!("{ms:.1} ms"),
        _ => format!("{:.2} s", ms / 1000.0),
    }
}

/// Capacity units, to one decimal with thousands separators.
fn units(x: f64) -> String {
    let text = format!("{:.1}", x.max(0.0));
    match text.split_once('.') {
        Some((whole, tenths)) => match whole.parse() {
            Ok(whole) => format!("{}.{tenths}", count(whole)),
            Err(_) => text,
        },
        None => text,
    }
}

/// `part / whole` as a percentage to one decimal; `-` when `whole` is 0.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

/// The first `max` characters of `s`, with `...` when cut.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::RequestRow;
    use crate::workload::OpKind;

    /// A run of 10 s: 99 gets of 1 ms and one put of 100 ms; two of the gets failed.
    fn summary() -> Summary {
        let mut r = Recorder::new(Duration::from_secs(10));
        let failure = dynamite::Error::Config("boom".into());
        for i in 0..99u64 {
            let error = (i < 2).then_some(&failure);
            r.record(
                OpKind::Get,
                Duration::from_millis(1),
                Duration::from_millis(i * 100),
                error,
            );
        }
        r.record(
            OpKind::Put,
            Duration::from_millis(100),
            Duration::from_secs(9),
            None,
        );
        Summary {
            info: RunInfo {
                title: "mix 90% reads".into(),
                details: vec![("table".into(), "t-items".into())],
            },
            recorder: r,
            elapsed: Duration::from_secs(10),
            schedule: None,
            cache: Some(vec![
                CacheLine {
                    layer: "moka".into(),
                    hits: 60,
                    misses: 40,
                    skipped: 0,
                    faults: 0,
                },
                CacheLine {
                    layer: "redis".into(),
                    hits: 10,
                    misses: 30,
                    skipped: 0,
                    faults: 2,
                },
            ]),
            requests: RequestStats {
                total_capacity: 1234.5,
                rows: vec![RequestRow {
                    operation: "GetItem".into(),
                    requests: 30,
                    errors: 2,
                    retries: 1,
                    throttles: 0,
                    cache_hits: 70,
                    p50: Duration::from_micros(800),
                    p99: Duration::from_micros(2500),
                    capacity: 15.0,
                }],
            },
            cpu: CpuTime {
                user: Duration::from_millis(150),
                system: Duration::from_millis(50),
            },
        }
    }

    fn line<'a>(report: &'a str, start: &str) -> &'a str {
        report
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{report}"))
    }

    #[test]
    fn the_report_shows_totals_and_percentiles_from_the_histogram() {
        let report = render(&summary());
        assert_eq!(
            line(&report, "dynamite-load:"),
            "dynamite-load: mix 90% reads"
        );
        assert_eq!(line(&report, "  table"), "  table        t-items");
        assert_eq!(
            line(&report, "operations"),
            "operations   100 in 10.0 s: 98 ok, 2 failed  ->  10 ops/s"
        );
        // 99 of 100 at 1 ms: p50, p95 and p99 are 1 ms; the max is the 100 ms put.
        assert_eq!(
            line(&report, "latency"),
            "latency      p50 1.00 ms  p95 1.00 ms  p99 1.00 ms  max 100.0 ms  (mean 1.99 ms)"
        );
        assert!(!report.contains("schedule"));
    }

    #[test]
    fn the_report_breaks_down_operations_errors_cache_requests_and_cpu() {
        let report = render(&summary());
        assert_eq!(
            line(&report, "  get "),
            "  get                  99   99.0%    1.00 ms    1.00 ms    1.00 ms    1.00 ms"
        );
        assert_eq!(
            line(&report, "  put "),
            "  put                   1    1.0%   100.0 ms   100.0 ms   100.0 ms   100.0 ms"
        );
        assert_eq!(
            line(&report, "  Config"),
            "  Config                    2  configuration: boom"
        );
        assert_eq!(
            line(&report, "cache"),
            "cache        L1 moka   hits         60  misses         40  hit rate 60.0%"
        );
        assert!(report.contains(
            "             L2 redis  hits         10  misses         30  hit rate 25.0%  faults 2"
        ));
        assert!(report.contains(
            "70.0% of 100 lookups answered by a cache layer (30 reads went to DynamoDB)"
        ));
        assert_eq!(
            line(&report, "capacity"),
            "capacity     1,234.5 units consumed (123.5 units/s)"
        );
        assert_eq!(
            line(&report, "  GetItem"),
            "  GetItem                  30        2        1         0         70     800 µs    2.50 ms         15.0"
        );
        assert_eq!(
            line(&report, "client CPU"),
            "client CPU   0.15 s user + 0.05 s sys = 0.20 s (2% of one core), 2000.0 µs per operation"
        );
    }

    #[test]
    fn an_open_loop_reports_its_schedule() {
        let mut s = summary();
        s.schedule = Some(Schedule {
            rate: 2000.0,
            scheduled: 20_000,
            started: 19_500,
        });
        let report = render(&s);
        assert_eq!(
            line(&report, "schedule"),
            "schedule     2,000 ops/s target: 20,000 scheduled, 19,500 started, 500 not started (behind schedule)"
        );
        assert!(report.contains("from each operation's scheduled start"));
    }

    #[test]
    fn missing_parts_are_said_so() {
        let mut s = summary();
        s.cache = None;
        s.requests = RequestStats::default();
        s.recorder = Recorder::new(Duration::from_secs(1));
        let report = render(&s);
        assert!(report.contains("cache        none"));
        assert!(report.contains("errors       none"));
        assert!(report.contains("capacity     0.0 units consumed (0.0 units/s)"));
        assert!(!report.contains("DynamoDB requests"));
        assert!(report.contains("latency      no operations"));
        assert!(report.contains("-  per operation") || report.contains(", - per operation"));
    }

    #[test]
    fn lookups_skipped_by_a_shared_layer_count_as_lookups_not_answered() {
        let mut s = summary();
        let layers = s.cache.as_mut().expect("cache");
        layers[1].skipped = 50;
        let report = render(&s);
        assert!(report
            .contains("misses         30  hit rate 25.0%  skipped 50 (out of contact)  faults 2"));
        assert!(report.contains(
            "46.7% of 150 lookups answered by a cache layer (80 reads went to DynamoDB)"
        ));
        assert_eq!(
            cache_hit_rate(s.cache.as_deref().expect("cache")),
            Some(70.0 / 150.0)
        );
        assert_eq!(cache_hit_rate(&[]), None);
    }

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(1234), "1.23 ms");
        assert_eq!(micros(12_345), "12.3 ms");
        assert_eq!(micros(1_500_000), "1.50 s");
        assert_eq!(units(0.05), "0.1");
        assert_eq!(units(12.0), "12.0");
        assert_eq!(units(0.96), "1.0");
        assert_eq!(units(12_345.67), "12,345.7");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(0, 0), "-");
        assert_eq!(shorten("abcdef", 3), "abc...");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
