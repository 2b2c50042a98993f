//! The SVG chart: latency per second (p50, p99), throughput per second, and the latency
//! histogram, under a header with the run's figures.

use std::time::Duration;

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::{self, Summary};

/// Chart size in pixels.
const SIZE: (u32, u32) = (1200, 1060);
/// Bars of the latency histogram (few enough that the narrowest, near the fastest
/// operations, are wider than the histogram's 1 µs resolution there).
const BINS: usize = 40;
/// Font family of every text.
const FONT: &str = "sans-serif";
/// The p50 line and the histogram's bars.
const P50: RGBColor = RGBColor(31, 119, 180);
/// The p99 line.
const P99: RGBColor = RGBColor(214, 39, 40);
/// The throughput line.
const THROUGHPUT: RGBColor = RGBColor(44, 160, 44);

/// Error of drawing the chart.
type DrawResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The chart of `summary` as an SVG document.
pub(crate) fn render(summary: &Summary) -> DrawResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, rest) = root.split_vertically(80);
        header(&top, summary)?;
        let panels = rest.split_evenly((3, 1));
        latency_panel(&panels[0], summary)?;
        throughput_panel(&panels[1], summary)?;
        histogram_panel(&panels[2], summary)?;
        root.present()?;
    }
    Ok(svg)
}

/// Title (the run) and a line of its figures.
fn header(area: &DrawingArea<SVGBackend<'_>, Shift>, s: &Summary) -> DrawResult {
    let r = &s.recorder;
    let title = format!("dynamite-load: {}", s.info.title);
    area.draw(&Text::new(title, (20, 14), (FONT, 20).into_font()))?;
    let mut figures = format!(
        "{} ops in {:.1} s ({} ops/s), {} failed",
        report::count(r.ops()),
        s.elapsed.as_secs_f64(),
        report::count(report::per_second(r.ops(), s.elapsed).round() as u64),
        report::count(r.failed),
    );
    if !r.total.is_empty() {
        figures += &format!(
            "; latency p50 {}, p95 {}, p99 {}, max {}",
            report::micros(r.total.value_at_quantile(0.5)),
            report::micros(r.total.value_at_quantile(0.95)),
            report::micros(r.total.value_at_quantile(0.99)),
            report::micros(r.total.max()),
        );
    }
    if let Some(rate) = s.cache.as_deref().and_then(report::cache_hit_rate) {
        figures += &format!("; cache hit rate {:.1}%", rate * 100.0);
    }
    area.draw(&Text::new(figures, (20, 46), (FONT, 16).into_font()))?;
    Ok(())
}

/// Per second: p50 and p99 latency in ms, and operations per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Timeline {
    /// (second, p50 in ms), at the middle of each second.
    pub(crate) p50: Vec<(f64, f64)>,
    /// (second, p99 in ms).
    pub(crate) p99: Vec<(f64, f64)>,
    /// (second, operations per second).
    pub(crate) throughput: Vec<(f64, f64)>,
}

/// The timeline of a run of `duration`: seconds without operations have no latency point;
/// the last second's throughput is over its own length when the run ends within it.
pub(crate) fn timeline(s: &Summary, duration: Duration) -> Timeline {
    let mut t = Timeline::default();
    let secs = duration.as_secs_f64();
    for (i, second) in s.recorder.timeline.iter().enumerate() {
        let from = i as f64;
        let width = (secs - from).clamp(0.001, 1.0);
        let x = from + width / 2.0;
        let h = &second.latency;
        t.throughput.push((x, h.len() as f64 / width));
        if !h.is_empty() {
            t.p50.push((x, ms(h.value_at_quantile(0.5))));
            t.p99.push((x, ms(h.value_at_quantile(0.99))));
        }
    }
    t
}

/// An axis label in ms, with the decimals its size needs (log axes span decades).
fn ms_label(v: f64) -> String {
    match v.abs() {
        x if x >= 10.0 => format!("{v:.0}"),
        x if x >= 1.0 => format!("{v:.1}"),
        x if x >= 0.1 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// A log axis covering `values` (ms) in whole decades (so each end has a label), never
/// below 1 µs.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        return (0.001, 1.0);
    }
    let lo = 10f64.powf(lo.max(0.001).log10().floor());
    let hi = 10f64.powf((hi * 1.05).log10().ceil()).max(lo * 10.0);
    (lo, hi)
}

/// µs as ms.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The time the timeline covers: the measured time, within the timeline's seconds (the
/// last of which may be partial).
fn run_seconds(s: &Summary) -> Duration {
    let buckets = s.recorder.timeline.len() as f64;
    Duration::from_secs_f64(s.elapsed.as_secs_f64().min(buckets).max(0.001))
}

/// Latency per second, p50 and p99, in ms.
fn latency_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, s: &Summary) -> DrawResult {
    let duration = run_seconds(s);
    let t = timeline(s, duration);
    let (y_min, y_max) = log_range(t.p50.iter().chain(&t.p99).map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption("Latency per second (log scale)", (FONT, 18))
        .margin(12)
        .margin_right(32)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..duration.as_secs_f64(), (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .y_label_formatter(&|v| ms_label(*v))
        .draw()?;
    chart
        .draw_series(LineSeries::new(t.p50, P50.stroke_width(2)))?
        .label("p50")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], P50.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(t.p99, P99.stroke_width(2)))?
        .label("p99")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], P99.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Operations per second.
fn throughput_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, s: &Summary) -> DrawResult {
    let duration = run_seconds(s);
    let t = timeline(s, duration);
    let target = s.schedule.map_or(0.0, |sch| sch.rate);
    let y_max = t
        .throughput
        .iter()
        .map(|p| p.1)
        .fold(target, f64::max)
        .max(1.0)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption("Throughput per second", (FONT, 18))
        .margin(12)
        .margin_right(32)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..duration.as_secs_f64(), 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("operations/s")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .y_label_formatter(&|v| report::count(v.max(0.0).round() as u64))
        .draw()?;
    chart
        .draw_series(LineSeries::new(t.throughput, THROUGHPUT.stroke_width(2)))?
        .label("completed")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], THROUGHPUT.stroke_width(2)));
    if let Some(schedule) = &s.schedule {
        let line = [
            (0.0, schedule.rate),
            (duration.as_secs_f64(), schedule.rate),
        ];
        chart
            .draw_series(DashedLineSeries::new(line, 8, 5, BLACK.stroke_width(1)))?
            .label("target rate")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The latency histogram from the fastest operation to p99.9, in bars of equal width on a log
/// scale (each bar's upper edge a fixed multiple of its lower one), in ms.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bins {
    /// The bars' edges in ms, `counts.len() + 1` of them, increasing.
    pub(crate) edges_ms: Vec<f64>,
    /// Operations per bar.
    pub(crate) counts: Vec<u64>,
    /// Operations slower than p99.9, not in any bar.
    pub(crate) above: u64,
}

/// `bins` log-spaced bars from the fastest latency of `h` to its p99.9.
pub(crate) fn bins(h: &Histogram<u64>, bins: usize) -> Bins {
    let upper_us = h.value_at_quantile(0.999).max(1);
    let lo = h.min().max(1) as f64;
    let hi = (upper_us as f64).max(lo * 2.0) * 1.001;
    let step = (hi / lo).ln() / bins as f64;
    let edges_ms = (0..=bins)
        .map(|i| lo * (step * i as f64).exp() / 1000.0)
        .collect();
    let mut counts = vec![0u64; bins];
    let mut above = 0;
    for v in h.iter_recorded() {
        // Both sides are highest-equivalent values, as value_at_quantile returns.
        if v.value_iterated_to() > upper_us {
            above += v.count_at_value();
            continue;
        }
        let value = h.median_equivalent(v.value_iterated_to()) as f64;
        let bin = ((value.max(lo) / lo).ln() / step) as usize;
        counts[bin.min(bins - 1)] += v.count_at_value();
    }
    Bins {
        edges_ms,
        counts,
        above,
    }
}

/// The latency histogram.
fn histogram_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, s: &Summary) -> DrawResult {
    let h = &s.recorder.total;
    let b = bins(h, BINS);
    let x_min = b.edges_ms[0];
    let x_max = b.edges_ms[BINS];
    let y_max = b.counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
    let caption = format!(
        "Latency histogram (log scale, to p99.9 = {}; {} slower not shown)",
        report::micros(h.value_at_quantile(0.999)),
        report::count(b.above)
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(12)
        .margin_right(32)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("latency (ms)")
        .x_label_formatter(&|v| ms_label(*v))
        .y_desc("operations")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .y_label_formatter(&|v| report::count(v.max(0.0).round() as u64))
        .draw()?;
    chart.draw_series(b.counts.iter().enumerate().map(|(i, &c)| {
        let (x0, x1) = (b.edges_ms[i], b.edges_ms[i + 1]);
        Rectangle::new([(x0, 0.0), (x1, c as f64)], P50.filled())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuTime;
    use crate::record::{new_histogram, Recorder};
    use crate::report::RunInfo;
    use crate::workload::OpKind;

    fn summary(duration: Duration) -> Summary {
        let mut r = Recorder::new(duration);
        for i in 0..300u64 {
            let latency = Duration::from_micros(500 + (i % 10) * 100);
            r.record(OpKind::Get, latency, Duration::from_millis(i * 10), None);
        }
        Summary {
            info: RunInfo {
                title: "get, uniform over 10 keys".into(),
                details: vec![],
            },
            recorder: r,
            elapsed: duration,
            schedule: None,
            cache: None,
            requests: crate::dynamo::RequestStats::default(),
            cpu: CpuTime::default(),
        }
    }

    #[test]
    fn the_timeline_has_a_point_per_second() {
        let s = summary(Duration::from_secs(3));
        let t = timeline(&s, Duration::from_secs(3));
        assert_eq!(t.throughput, [(0.5, 100.0), (1.5, 100.0), (2.5, 100.0)]);
        assert_eq!(t.p50.len(), 3);
        assert!((t.p50[0].1 - 0.9).abs() < 0.011, "{:?}", t.p50);
        assert!((t.p99[0].1 - 1.4).abs() < 0.015, "{:?}", t.p99);
    }

    #[test]
    fn a_partial_last_second_counts_over_its_own_length() {
        let s = summary(Duration::from_millis(2500));
        let t = timeline(&s, Duration::from_millis(2500));
        assert_eq!(t.throughput.len(), 3);
        assert_eq!(t.throughput[2].0, 2.25);
        // The ops from 2.0 s to 2.99 s (100 of them) landed in the last bucket.
        assert_eq!(t.throughput[2].1, 200.0);
    }

    #[test]
    fn histogram_bins_cover_everything_up_to_p999_on_a_log_scale() {
        let mut h = new_histogram();
        // 1,000 operations at 10 µs, 1,000 at 1 ms (two decades apart), one outlier of 10 s.
        for _ in 0..1000 {
            h.record(10).expect("in range");
            h.record(1000).expect("in range");
        }
        h.record(10_000_000).expect("in range");
        let b = bins(&h, 20);
        assert_eq!((b.counts.len(), b.edges_ms.len()), (20, 21));
        assert_eq!(b.counts.iter().sum::<u64>() + b.above, 2001);
        assert_eq!(b.above, 1, "only the outlier is above p99.9");
        assert!((b.edges_ms[0] - 0.010).abs() < 1e-9);
        assert!(b.edges_ms[20] >= 1.0);
        // Equal ratios between edges.
        let ratio = b.edges_ms[1] / b.edges_ms[0];
        assert!(b
            .edges_ms
            .windows(2)
            .all(|w| (w[1] / w[0] - ratio).abs() < 1e-9));
        // The two modes land in the first and the last bar.
        assert_eq!((b.counts[0], b.counts[19]), (1000, 1000));
    }

    #[test]
    fn log_axes_span_whole_decades() {
        let close = |(a, b): (f64, f64), (x, y): (f64, f64)| {
            assert!((a - x).abs() < 1e-9 && (b - y).abs() < 1e-9, "{a}..{b}");
        };
        close(log_range([].into_iter()), (0.001, 1.0));
        close(log_range([0.011, 300.0].into_iter()), (0.01, 1000.0));
        close(log_range([2.0, 2.5].into_iter()), (1.0, 10.0));
        close(log_range([0.0001, 98.0].into_iter()), (0.001, 1000.0));
        assert_eq!(ms_label(250.0), "250");
        assert_eq!(ms_label(2.5), "2.5");
        assert_eq!(ms_label(0.25), "0.25");
        assert_eq!(ms_label(0.011), "0.011");
    }

    #[test]
    fn the_svg_has_titles_axes_and_series() {
        let svg = render(&summary(Duration::from_secs(3))).expect("drawn");
        assert!(svg.starts_with("<svg"));
        for text in [
            "dynamite-load: get, uniform over 10 keys",
            "Latency per second (log scale)",
            "latency (ms)",
            "time (s)",
            "Throughput per second",
            "operations/s",
            "Latency histogram",
            "p50",
            "p99",
            "300 ops in 3.0 s (100 ops/s), 0 failed",
        ] {
            assert!(svg.contains(text), "{text:?} missing");
        }
        assert!(svg.contains("<polyline"));
        assert!(svg.contains("<rect"));
        assert!(!svg.contains("target rate"));
    }

    #[test]
    fn an_open_loop_chart_shows_the_target_rate() {
        let mut s = summary(Duration::from_secs(3));
        s.schedule = Some(crate::report::Schedule {
            rate: 150.0,
            scheduled: 450,
            started: 300,
        });
        let svg = render(&s).expect("drawn");
        assert!(svg.contains("target rate"));
    }
}
