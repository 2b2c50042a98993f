//! # dynamite-load
//!
//! A load-test tool for dynamite. It creates a table of its own (`<prefix>items`: a partition
//! key, a sort key and a payload of configurable size), seeds it with `batch_write`, then runs
//! a workload through dynamite's typed API for a fixed time and reports what the client saw:
//!
//! - workloads: `get`, `put`, `query` (a `find` of one partition), `batch` (`batch_get` of N
//!   keys and `batch_write` of N items, alternating) and `mix` (gets and puts,
//!   `--read-ratio` of them gets); keys drawn uniformly or from a Zipf distribution;
//! - load: a closed loop of `--concurrency` workers, or an open loop at `--rate` operations per
//!   second, whose latency is measured from each operation's scheduled start so that a stall
//!   is not hidden by the operations it delayed (no coordinated omission);
//! - with or without dynamite's cache: none, the in-process L1, or L1 over Redis;
//! - live progress, then a text report: operations, throughput, latency percentiles (HDR
//!   histogram), errors by kind, cache hit rates, consumed capacity and DynamoDB requests
//!   (`Client::stats()`), and the process's CPU time per operation; and an SVG chart of
//!   latency and throughput per second and of the latency histogram. Both are written to
//!   `--report-dir` (default `target/load-report/`: `report.txt`, `load-report.svg`).
//!
//! The table is deleted at the end unless `--keep-table` (also after a failure or Ctrl-C).
//!
//! ## Running it
//!
//! `scripts/load [OPTIONS]` starts DynamoDB Local and Redis on loopback, builds the tool in
//! release mode and runs it; without options it runs a 20 s mix (90% gets) over 10,000
//! Zipf-distributed keys with 32 workers and the L1 cache. By hand:
//!
//! ```sh
//! scripts/with-services --dynamodb-local --redis -- \
//!     cargo run --release -p dynamite-load -- --workload get --cache l1-redis --duration 10s
//! ```
//!
//! `--help` lists every option. The tool refuses to run without `AWS_ENDPOINT_URL_DYNAMODB`
//! (or `AWS_ENDPOINT_URL`) in the environment unless given `--allow-remote`, so that a stray
//! run never loads a real AWS account.
#![deny(unsafe_code)]

mod args;
mod chart;
mod cpu;
mod dynamo;
mod keys;
mod record;
mod report;
mod run;
mod workload;

use std::path::Path;
use std::process::ExitCode;

use args::{Command, Config};

fn main() -> ExitCode {
    let config = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("dynamite-load: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dynamite-load: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(&config)) {
        Ok(summary) => publish(&summary, &config),
        Err(e) => {
            eprintln!("dynamite-load: {}", error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}

/// Prints the report and writes it and the chart into the report directory.
fn publish(summary: &report::Summary, config: &Config) -> ExitCode {
    let text = report::render(summary);
    println!("{text}");
    match write_files(summary, &text, &config.report_dir) {
        Ok(()) => {
            eprintln!(
                "dynamite-load: wrote {} and {}",
                config.report_dir.join("report.txt").display(),
                config.report_dir.join("load-report.svg").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "dynamite-load: cannot write the report into {}: {e}",
                config.report_dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Writes `report.txt` and `load-report.svg` into `dir`, creating it.
fn write_files(
    summary: &report::Summary,
    text: &str,
    dir: &Path,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.txt"), text)?;
    std::fs::write(dir.join("load-report.svg"), chart::render(summary)?)?;
    Ok(())
}

/// An error with its sources: `outer: inner: innermost`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}
