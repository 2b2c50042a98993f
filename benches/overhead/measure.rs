//! What is measured, and the report: the thread's CPU time, its allocations (a counting global
//! allocator with per-thread counters, so the fake server's thread is not counted), latency.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use super::Line;

/// The system allocator, counting allocations per thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down has no counter left; its allocations don't matter.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialized thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_THREAD reports the calling thread.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Measures one run of `calls` calls.
pub(crate) struct Meter {
    calls: usize,
    cpu: Duration,
    allocations: u64,
    wall: Instant,
    latencies: Vec<Duration>,
}

impl Meter {
    pub(crate) fn start(calls: usize) -> Self {
        let latencies = Vec::with_capacity(calls);
        Meter {
            calls,
            cpu: thread_cpu(),
            allocations: allocations(),
            wall: Instant::now(),
            latencies,
        }
    }

    pub(crate) fn latency(&mut self, latency: Duration) {
        self.latencies.push(latency);
    }

    pub(crate) fn finish(self) -> Sample {
        let wall = self.wall.elapsed();
        let cpu = thread_cpu() - self.cpu;
        // The latency vector was allocated before counting started; nothing else in the loop
        // allocates on the measuring side.
        let allocations = allocations() - self.allocations;
        let calls = self.calls as f64;
        Sample {
            cpu_per_call: vec![cpu.as_secs_f64() / calls],
            allocations_per_call: vec![allocations as f64 / calls],
            calls: self.calls,
            wall,
            latencies: self.latencies,
        }
    }
}

/// Runs of one side of one operation.
#[derive(Default)]
pub(crate) struct Sample {
    /// Seconds of client CPU per call, one entry per run.
    cpu_per_call: Vec<f64>,
    allocations_per_call: Vec<f64>,
    calls: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Sample {
    pub(crate) fn merge(&mut self, other: Sample) {
        self.cpu_per_call.extend(other.cpu_per_call);
        self.allocations_per_call.extend(other.allocations_per_call);
        self.calls += other.calls;
        self.wall += other.wall;
        self.latencies.extend(other.latencies);
    }

    fn cpu(&self) -> f64 {
        median(&self.cpu_per_call)
    }

    fn allocations(&self) -> f64 {
        median(&self.allocations_per_call)
    }

    fn latency(&self, quantile: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
        sorted.get(at).copied().unwrap_or_default()
    }

    /// Calls per second of wall time.
    fn throughput(&self, items: usize) -> f64 {
        (self.calls * items) as f64 / self.wall.as_secs_f64()
    }
}

/// The median over rounds of `dynamite ÷ baseline` client CPU, each round's two runs side by
/// side: what drifts between rounds (other load on the machine, frequency) cancels out.
fn paired_ratio(baseline: &Sample, dynamite: &Sample) -> f64 {
    let ratios: Vec<f64> = baseline
        .cpu_per_call
        .iter()
        .zip(&dynamite.cpu_per_call)
        .map(|(b, d)| d / b)
        .collect();
    median(&ratios)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn time(seconds: f64) -> String {
    if seconds < 10e-6 {
        format!("{:.0} ns", seconds * 1e9)
    } else if seconds < 10e-3 {
        format!("{:.1} µs", seconds * 1e6)
    } else {
        format!("{:.2} ms", seconds * 1e3)
    }
}

fn duration(d: Duration) -> String {
    time(d.as_secs_f64())
}

/// The main table.
pub(crate) fn report(lines: &[Line]) {
    println!(
        "| operation | baseline | client CPU per call: baseline | dynamite | ratio (paired) | \
         allocations per call: baseline | dynamite | ratio | p50 baseline / dynamite | \
         p99 baseline / dynamite |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for line in lines {
        let (raw, dynamite) = (&line.raw, &line.dynamite);
        println!(
            "| {} | {} | {} | {} | **{:.2}** | {:.0} | {:.0} | {:.2} | {} / {} | {} / {} |",
            line.name,
            line.baseline,
            time(raw.cpu()),
            time(dynamite.cpu()),
            paired_ratio(raw, dynamite),
            raw.allocations(),
            dynamite.allocations(),
            dynamite.allocations() / raw.allocations(),
            duration(raw.latency(0.5)),
            duration(dynamite.latency(0.5)),
            duration(raw.latency(0.99)),
            duration(dynamite.latency(0.99)),
        );
    }
    for line in lines.iter().filter(|l| l.name.contains("in flight")) {
        println!(
            "\n{}: {:.0} gets/s {baseline}, {:.0} gets/s dynamite; client CPU per get {} \
             {baseline}, {} dynamite",
            line.name,
            line.raw.throughput(line.items),
            line.dynamite.throughput(line.items),
            time(line.raw.cpu() / line.items as f64),
            time(line.dynamite.cpu() / line.items as f64),
            baseline = line.baseline,
        );
    }
}

/// Per-item figures of the batch operations at several sizes.
pub(crate) fn report_scaling(lines: &[Line]) {
    println!(
        "| operation | CPU per item: raw | dynamite | ratio | allocations per item: raw | \
         dynamite |"
    );
    println!("|---|---|---|---|---|---|");
    for line in lines {
        let items = line.items as f64;
        println!(
            "| {} | {} | {} | {:.2} | {:.1} | {:.1} |",
            line.name,
            time(line.raw.cpu() / items),
            time(line.dynamite.cpu() / items),
            paired_ratio(&line.raw, &line.dynamite),
            line.raw.allocations() / items,
            line.dynamite.allocations() / items,
        );
    }
}
