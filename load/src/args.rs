//! Command-line arguments: parsing, defaults and validation.
//!
//! Hand-rolled rather than clap, to keep the tool's build small. Every option takes
//! `--name value` or `--name=value`; a bad value is an [`ArgError`] naming the option, the value
//! and what is allowed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::workload::Workload;

/// The usage text printed by `--help`.
pub(crate) const USAGE: &str = "\
dynamite-load: load-test dynamite against a DynamoDB endpoint

USAGE:
    dynamite-load [OPTIONS]
    scripts/load [OPTIONS]        (starts DynamoDB Local and Redis, builds in release)

WORKLOAD:
    --workload <get|put|query|batch|mix>   what each operation does          [default: mix]
    --read-ratio <0..1>          mix: share of gets, the rest are puts        [default: 0.9]
    --batch-size <1..1000>       batch: keys per batch_get / items per batch_write,
                                 the two alternating                          [default: 25]
    --keys <uniform|zipf>        how keys are drawn                           [default: zipf]
    --zipf-s <s>                 Zipf exponent, > 0 (1.1: a few keys are hot) [default: 1.1]
    --key-count <n>              items seeded and addressed                   [default: 10000]
    --partition-size <n>         items per partition key (a query reads one
                                 partition)                                   [default: 10]
    --payload-bytes <n>          size of each item's payload attribute        [default: 256]

LOAD:
    --concurrency <n>            operations in flight (workers)               [default: 32]
    --rate <ops/s>               open loop: start operations at this rate, latency measured
                                 from each operation's scheduled start; without it,
                                 closed loop (each worker starts its next operation as
                                 soon as the last one ends)
    --duration <d>               measured time, e.g. 20s, 500ms, 2m           [default: 20s]
    --warmup <d>                 unmeasured time before it                    [default: 0s]
    --seed <n>                   random seed, for a repeatable key sequence

CACHE:
    --cache <none|l1|l1-redis>   dynamite's cache in front of DynamoDB: none, the
                                 in-process L1, or L1 over Redis (DYNAMITE_REDIS_URL)
                                                                              [default: none]
    --l1 <moka|lfu>              which in-process layer (MokaLayer or LfuLayer) [default: moka]
    --cache-mb <n>               L1 size in MiB                               [default: 64]

TABLE AND OUTPUT:
    --table-prefix <p>           table name prefix (the table is <p>items)
                                                         [default: dynamite-load-<pid>-<time>-]
    --keep-table                 do not delete the table at the end
    --report-dir <dir>           where report.txt and load-report.svg go
                                                                 [default: target/load-report]
    --allow-remote               run without AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL set,
                                 i.e. against AWS itself (costs money; refused otherwise)
    -h, --help                   this text
";

/// How keys are drawn from `0..key_count`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum KeyChoice {
    /// Every key equally likely.
    Uniform,
    /// Zipf with exponent `s`: key rank `k` (from 0) has weight `1 / (k + 1)^s`.
    Zipf {
        /// The exponent.
        s: f64,
    },
}

/// Which cache the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheMode {
    /// No cache: every read goes to DynamoDB.
    None,
    /// dynamite's in-process layer only.
    L1,
    /// The in-process layer over a Redis layer (`DYNAMITE_REDIS_URL`).
    L1Redis,
}

impl CacheMode {
    /// The name used on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            CacheMode::None => "none",
            CacheMode::L1 => "l1",
            CacheMode::L1Redis => "l1-redis",
        }
    }
}

/// Which in-process cache layer is the L1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum L1Kind {
    /// `dynamite::cache::MokaLayer`.
    Moka,
    /// `dynamite::cache::LfuLayer`.
    Lfu,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    /// What each operation does.
    pub(crate) workload: Workload,
    /// Mix only: the share of reads.
    pub(crate) read_ratio: f64,
    /// Batch only: keys or items per batch call.
    pub(crate) batch_size: usize,
    /// Key distribution.
    pub(crate) keys: KeyChoice,
    /// Items seeded and addressed.
    pub(crate) key_count: u64,
    /// Items per partition key.
    pub(crate) partition_size: u64,
    /// Bytes of each item's payload attribute.
    pub(crate) payload_bytes: usize,
    /// Workers, i.e. the most operations in flight.
    pub(crate) concurrency: usize,
    /// Open-loop target rate in operations per second; `None` for a closed loop.
    pub(crate) rate: Option<f64>,
    /// Measured time.
    pub(crate) duration: Duration,
    /// Unmeasured time before the measured run.
    pub(crate) warmup: Duration,
    /// Random seed.
    pub(crate) seed: Option<u64>,
    /// Cache in front of DynamoDB.
    pub(crate) cache: CacheMode,
    /// Which layer is the L1.
    pub(crate) l1: L1Kind,
    /// L1 capacity in MiB.
    pub(crate) cache_mb: u64,
    /// Table-name prefix; `None` for a unique one.
    pub(crate) table_prefix: Option<String>,
    /// Leave the table in place at the end.
    pub(crate) keep_table: bool,
    /// Where the report files go.
    pub(crate) report_dir: PathBuf,
    /// Allow a run without a local endpoint in the environment.
    pub(crate) allow_remote: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workload: Workload::Mix,
            read_ratio: 0.9,
            batch_size: 25,
            keys: KeyChoice::Zipf { s: 1.1 },
            key_count: 10_000,
            partition_size: 10,
            payload_bytes: 256,
            concurrency: 32,
            rate: None,
            duration: Duration::from_secs(20),
            warmup: Duration::ZERO,
            seed: None,
            cache: CacheMode::None,
            l1: L1Kind::Moka,
            cache_mb: 64,
            table_prefix: None,
            keep_table: false,
            report_dir: PathBuf::from("target/load-report"),
            allow_remote: false,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Run a load test.
    Run(Box<Config>),
    /// Print the usage text.
    Help,
}

/// A command line that cannot be run, with a message saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgError(pub(crate) String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// An error for option `name` given `value`: `--name <value>: why`.
fn bad(name: &str, value: &str, why: impl fmt::Display) -> ArgError {
    ArgError(format!("--{name} {value:?}: {why}"))
}

/// Options that take no value.
const FLAGS: &[&str] = &["keep-table", "allow-remote", "help"];

/// Options given explicitly, so that options which do not apply can be refused.
#[derive(Debug, Default)]
struct Given {
    read_ratio: bool,
    batch_size: bool,
    zipf_s: bool,
    keys: bool,
}

/// Parses the arguments after the program name.
pub(crate) fn parse<I, S>(args: I) -> Result<Command, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut config = Config::default();
    let mut given = Given::default();
    let mut zipf_s = 1.1;
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        if arg == "-h" {
            return Ok(Command::Help);
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(ArgError(format!(
                "unexpected argument {arg:?} (options start with --; see --help)"
            )));
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (body.to_owned(), None),
        };
        if FLAGS.contains(&name.as_str()) {
            if let Some(value) = inline {
                return Err(bad(&name, &value, "takes no value"));
            }
            match name.as_str() {
                "help" => return Ok(Command::Help),
                "keep-table" => config.keep_table = true,
                _ => config.allow_remote = true,
            }
            continue;
        }
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| ArgError(format!("--{name} needs a value (see --help)")))?,
        };
        apply(&mut config, &mut given, &mut zipf_s, &name, &value)?;
    }
    if let KeyChoice::Zipf { s } = &mut config.keys {
        *s = zipf_s;
    }
    validate(&config, &given)?;
    Ok(Command::Run(Box::new(config)))
}

/// Sets the option `name` to `value`.
fn apply(
    config: &mut Config,
    given: &mut Given,
    zipf_s: &mut f64,
    name: &str,
    value: &str,
) -> Result<(), ArgError> {
    match name {
        "workload" => config.workload = parse_workload(value)?,
        "read-ratio" => {
            config.read_ratio = parse_ratio(name, value)?;
            given.read_ratio = true;
        }
        "batch-size" => {
            config.batch_size = parse_int(name, value, 1, 1000)? as usize;
            given.batch_size = true;
        }
        "keys" => {
            config.keys = parse_keys(value)?;
            given.keys = true;
        }
        "zipf-s" => {
            *zipf_s = parse_zipf_s(value)?;
            given.zipf_s = true;
        }
        "key-count" => config.key_count = parse_int(name, value, 1, 5_000_000)?,
        "partition-size" => config.partition_size = parse_int(name, value, 1, 1000)?,
        "payload-bytes" => config.payload_bytes = parse_int(name, value, 0, 350_000)? as usize,
        "concurrency" => config.concurrency = parse_int(name, value, 1, 10_000)? as usize,
        "rate" => config.rate = Some(parse_rate(value)?),
        "duration" => config.duration = parse_positive_duration(name, value)?,
        "warmup" => config.warmup = parse_duration(value).map_err(|e| bad(name, value, e))?,
        "seed" => config.seed = Some(parse_int(name, value, 0, u64::MAX)?),
        "cache" => config.cache = parse_cache(value)?,
        "l1" => config.l1 = parse_l1(value)?,
        "cache-mb" => config.cache_mb = parse_int(name, value, 1, 65_536)?,
        "table-prefix" => config.table_prefix = Some(parse_table_prefix(value)?),
        "report-dir" => {
            if value.is_empty() {
                return Err(bad(name, value, "must not be empty"));
            }
            config.report_dir = PathBuf::from(value);
        }
        _ => return Err(ArgError(format!("unknown option --{name} (see --help)"))),
    }
    Ok(())
}

/// Refuses combinations that would be ignored silently.
fn validate(config: &Config, given: &Given) -> Result<(), ArgError> {
    if given.read_ratio && config.workload != Workload::Mix {
        return Err(ArgError(format!(
            "--read-ratio applies to the mix workload only (this is {})",
            config.workload.name()
        )));
    }
    if given.batch_size && config.workload != Workload::Batch {
        return Err(ArgError(format!(
            "--batch-size applies to the batch workload only (this is {})",
            config.workload.name()
        )));
    }
    if given.zipf_s && config.keys == KeyChoice::Uniform {
        return Err(ArgError(
            "--zipf-s applies to --keys zipf only (keys are uniform)".into(),
        ));
    }
    if config.partition_size > config.key_count {
        return Err(ArgError(format!(
            "--partition-size {} is more than --key-count {}",
            config.partition_size, config.key_count
        )));
    }
    Ok(())
}

/// `get`, `put`, `query`, `batch` or `mix`.
fn parse_workload(value: &str) -> Result<Workload, ArgError> {
    Workload::ALL
        .into_iter()
        .find(|w| w.name() == value)
        .ok_or_else(|| {
            bad(
                "workload",
                value,
                "expected one of get, put, query, batch, mix",
            )
        })
}

/// `uniform` or `zipf` (its exponent comes from `--zipf-s`).
fn parse_keys(value: &str) -> Result<KeyChoice, ArgError> {
    match value {
        "uniform" => Ok(KeyChoice::Uniform),
        "zipf" => Ok(KeyChoice::Zipf { s: 1.1 }),
        _ => Err(bad("keys", value, "expected uniform or zipf")),
    }
}

/// `none`, `l1` or `l1-redis`.
fn parse_cache(value: &str) -> Result<CacheMode, ArgError> {
    [CacheMode::None, CacheMode::L1, CacheMode::L1Redis]
        .into_iter()
        .find(|c| c.name() == value)
        .ok_or_else(|| bad("cache", value, "expected none, l1 or l1-redis"))
}

/// `moka` or `lfu`.
fn parse_l1(value: &str) -> Result<L1Kind, ArgError> {
    match value {
        "moka" => Ok(L1Kind::Moka),
        "lfu" => Ok(L1Kind::Lfu),
        _ => Err(bad("l1", value, "expected moka or lfu")),
    }
}

/// An integer in `min..=max`.
fn parse_int(name: &str, value: &str, min: u64, max: u64) -> Result<u64, ArgError> {
    let n: u64 = value
        .replace('_', "")
        .parse()
        .map_err(|_| bad(name, value, "expected a whole number"))?;
    if n < min || n > max {
        return Err(bad(name, value, format!("must be within {min}..={max}")));
    }
    Ok(n)
}

/// A finite number.
fn parse_f64(name: &str, value: &str) -> Result<f64, ArgError> {
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(bad(name, value, "expected a number")),
    }
}

/// A share in `0..=1`.
fn parse_ratio(name: &str, value: &str) -> Result<f64, ArgError> {
    let x = parse_f64(name, value)?;
    if !(0.0..=1.0).contains(&x) {
        return Err(bad(
            name,
            value,
            "must be between 0 and 1 (0.9 = 90% reads)",
        ));
    }
    Ok(x)
}

/// A Zipf exponent: more than 0, at most 10.
fn parse_zipf_s(value: &str) -> Result<f64, ArgError> {
    let s = parse_f64("zipf-s", value)?;
    if s <= 0.0 || s > 10.0 {
        return Err(bad(
            "zipf-s",
            value,
            "must be more than 0 and at most 10 (1.0-1.2 is typical)",
        ));
    }
    Ok(s)
}

/// A target rate: more than 0 operations per second, at most 1,000,000.
fn parse_rate(value: &str) -> Result<f64, ArgError> {
    let r = parse_f64("rate", value.trim_end_matches("/s"))?;
    if r <= 0.0 || r > 1_000_000.0 {
        return Err(bad(
            "rate",
            value,
            "must be more than 0 and at most 1000000 operations per second",
        ));
    }
    Ok(r)
}

/// A table-name prefix: DynamoDB's table-name characters, leaving room for `items`.
fn parse_table_prefix(value: &str) -> Result<String, ArgError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !value.chars().all(ok_char) {
        return Err(bad(
            "table-prefix",
            value,
            "may hold only letters, digits, '_', '-' and '.'",
        ));
    }
    if value.len() > 200 {
        return Err(bad("table-prefix", value, "must be at most 200 characters"));
    }
    Ok(value.to_owned())
}

/// A duration of more than zero.
fn parse_positive_duration(name: &str, value: &str) -> Result<Duration, ArgError> {
    let d = parse_duration(value).map_err(|e| bad(name, value, e))?;
    if d.is_zero() {
        return Err(bad(name, value, "must be more than 0"));
    }
    Ok(d)
}

/// `20s`, `500ms`, `1.5m`, `1h`; a bare number is seconds. At most 6 hours (the per-second
/// timeline takes about 13 KB a second).
pub(crate) fn parse_duration(value: &str) -> Result<Duration, String> {
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit {unit:?} (use ms, s, m or h)")),
    };
    let x: f64 = number
        .parse()
        .map_err(|_| "expected a duration such as 20s, 500ms or 2m".to_owned())?;
    let secs = x * scale;
    if !secs.is_finite() || secs > 6.0 * 3600.0 {
        return Err("must be at most 6h".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, ArgError> {
        match parse(args.iter().copied())? {
            Command::Run(config) => Ok(*config),
            Command::Help => panic!("help asked"),
        }
    }

    fn err(args: &[&str]) -> String {
        run(args).expect_err("refused").to_string()
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        assert_eq!(run(&[]).expect("valid"), Config::default());
    }

    #[test]
    fn every_option_is_read_in_both_spellings() {
        let c = run(&[
            "--workload=batch",
            "--batch-size",
            "50",
            "--keys",
            "zipf",
            "--zipf-s=0.8",
            "--key-count",
            "1_000",
            "--partition-size=5",
            "--payload-bytes",
            "1024",
            "--concurrency",
            "8",
            "--rate",
            "2000",
            "--duration",
            "1.5m",
            "--warmup",
            "500ms",
            "--seed",
            "7",
            "--cache",
            "l1-redis",
            "--l1",
            "lfu",
            "--cache-mb",
            "16",
            "--table-prefix",
            "mine-",
            "--keep-table",
            "--report-dir",
            "/tmp/r",
            "--allow-remote",
        ])
        .expect("valid");
        assert_eq!(c.workload, Workload::Batch);
        assert_eq!(c.batch_size, 50);
        assert_eq!(c.keys, KeyChoice::Zipf { s: 0.8 });
        assert_eq!(c.key_count, 1000);
        assert_eq!(c.partition_size, 5);
        assert_eq!(c.payload_bytes, 1024);
        assert_eq!(c.concurrency, 8);
        assert_eq!(c.rate, Some(2000.0));
        assert_eq!(c.duration, Duration::from_secs(90));
        assert_eq!(c.warmup, Duration::from_millis(500));
        assert_eq!(c.seed, Some(7));
        assert_eq!(c.cache, CacheMode::L1Redis);
        assert_eq!(c.l1, L1Kind::Lfu);
        assert_eq!(c.cache_mb, 16);
        assert_eq!(c.table_prefix.as_deref(), Some("mine-"));
        assert!(c.keep_table && c.allow_remote);
        assert_eq!(c.report_dir, PathBuf::from("/tmp/r"));
    }

    #[test]
    fn the_last_of_a_repeated_option_counts() {
        let c = run(&["--cache", "l1", "--warmup", "2s", "--cache", "none"]).expect("valid");
        assert_eq!(c.cache, CacheMode::None);
        assert_eq!(c.warmup, Duration::from_secs(2));
    }

    #[test]
    fn help_is_recognised() {
        assert_eq!(parse(["--help"]), Ok(Command::Help));
        assert_eq!(parse(["--duration", "5s", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn bad_values_are_refused_with_the_option_and_what_is_allowed() {
        assert_eq!(
            err(&["--read-ratio", "1.5"]),
            "--read-ratio \"1.5\": must be between 0 and 1 (0.9 = 90% reads)"
        );
        assert_eq!(
            err(&["--duration", "0s"]),
            "--duration \"0s\": must be more than 0"
        );
        assert_eq!(
            err(&["--duration", "5 parsecs"]),
            "--duration \"5 parsecs\": unknown unit \" parsecs\" (use ms, s, m or h)"
        );
        assert_eq!(
            err(&["--concurrency", "0"]),
            "--concurrency \"0\": must be within 1..=10000"
        );
        assert_eq!(
            err(&["--key-count", "ten"]),
            "--key-count \"ten\": expected a whole number"
        );
        assert_eq!(
            err(&["--workload", "scan"]),
            "--workload \"scan\": expected one of get, put, query, batch, mix"
        );
        assert_eq!(
            err(&["--cache", "l2"]),
            "--cache \"l2\": expected none, l1 or l1-redis"
        );
        assert!(err(&["--rate", "0"]).starts_with("--rate \"0\": must be more than 0"));
        assert!(err(&["--zipf-s", "-1"]).starts_with("--zipf-s \"-1\": must be more than 0"));
        assert!(err(&["--zipf-s", "NaN"]).contains("expected a number"));
        assert!(err(&["--table-prefix", "a b"]).contains("may hold only letters"));
    }

    #[test]
    fn malformed_command_lines_are_refused() {
        assert_eq!(
            err(&["--duration"]),
            "--duration needs a value (see --help)"
        );
        assert_eq!(
            err(&["--speed", "3"]),
            "unknown option --speed (see --help)"
        );
        assert_eq!(
            err(&["mix"]),
            "unexpected argument \"mix\" (options start with --; see --help)"
        );
        assert_eq!(
            err(&["--keep-table=yes"]),
            "--keep-table \"yes\": takes no value"
        );
    }

    #[test]
    fn options_that_would_be_ignored_are_refused() {
        assert_eq!(
            err(&["--workload", "get", "--read-ratio", "0.5"]),
            "--read-ratio applies to the mix workload only (this is get)"
        );
        assert_eq!(
            err(&["--batch-size", "10"]),
            "--batch-size applies to the batch workload only (this is mix)"
        );
        assert_eq!(
            err(&["--keys", "uniform", "--zipf-s", "1.2"]),
            "--zipf-s applies to --keys zipf only (keys are uniform)"
        );
        assert_eq!(
            err(&["--key-count", "5", "--partition-size", "10"]),
            "--partition-size 10 is more than --key-count 5"
        );
    }

    #[test]
    fn zipf_s_is_kept_whichever_comes_first() {
        let c = run(&["--zipf-s", "1.3", "--keys", "zipf"]).expect("valid");
        assert_eq!(c.keys, KeyChoice::Zipf { s: 1.3 });
        let c = run(&["--keys", "uniform"]).expect("valid");
        assert_eq!(c.keys, KeyChoice::Uniform);
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("7h").is_err());
    }
}
