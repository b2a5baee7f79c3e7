//! The run chart of the HTML report: throughput and latency over time, with the faults the
//! history records (`nemesis` lines) shaded, as Jepsen draws them.
//!
//! Drawn with `plotters` into an inline SVG (no external resources, like the rest of the
//! page). Times are the events' `time` fields, read as microseconds (what `jepsen test` and the
//! simulator record); a history without times has no chart. One series of completed calls per
//! second (`ok` and `fail`: the system answered), and the median and 99th percentile latency
//! of the calls completed in each slice, on the right axis; one shaded band per fault, from its
//! start to its stop (a fault at one instant, such as a crash, gets a thin band).

use crate::history::{History, Kind};
use plotters::prelude::*;

/// The colour of fault bands; [`svg`]'s output marks each band with it (tests count them).
pub const BAND: RGBColor = RGBColor(150, 150, 150);

/// How many time slices the series have.
const SLICES: usize = 80;

/// The chart as an SVG element, or `None` if the history records no times or no calls.
pub fn svg(history: &History) -> Option<String> {
    let series = Series::of(history)?;
    let mut out = String::new();
    draw(&series, &mut out).ok()?;
    // Inline SVG in HTML needs no namespace; without it the page names no URL at all.
    Some(out.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1))
}

/// What the chart shows, in seconds and milliseconds.
struct Series {
    /// The end of the time axis.
    end: f64,
    /// (slice start, completed calls per second).
    throughput: Vec<(f64, f64)>,
    /// (slice start, median latency ms) and (slice start, p99 latency ms), slices with calls.
    p50: Vec<(f64, f64)>,
    p99: Vec<(f64, f64)>,
    /// (start, stop) of each fault.
    faults: Vec<(f64, f64)>,
}

impl Series {
    fn of(history: &History) -> Option<Series> {
        let seconds =
            |index: usize| -> Option<f64> { Some(history.events.get(index)?.time? as f64 / 1e6) };
        let end = history.events.iter().filter_map(|e| e.time).max()? as f64 / 1e6;
        let end = end.max(1e-3);
        let slice = end / SLICES as f64;
        let mut calls = vec![0u64; SLICES];
        let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); SLICES];
        for op in history.ops() {
            let Some(done) = op.complete else { continue };
            let kind = history.events[done].kind;
            let (Some(from), Some(to)) = (seconds(op.invoke), seconds(done)) else { continue };
            if !matches!(kind, Some(Kind::Ok | Kind::Fail)) {
                continue;
            }
            let at = ((to / slice) as usize).min(SLICES - 1);
            calls[at] += 1;
            latencies[at].push((to - from).max(0.0) * 1e3);
        }
        if calls.iter().all(|&c| c == 0) {
            return None;
        }
        let start = |i: usize| i as f64 * slice;
        let throughput = (0..SLICES).map(|i| (start(i), calls[i] as f64 / slice)).collect();
        let (mut p50, mut p99) = (Vec::new(), Vec::new());
        for (i, mut l) in latencies.into_iter().enumerate() {
            if l.is_empty() {
                continue;
            }
            l.sort_by(f64::total_cmp);
            let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
            p50.push((start(i), at(0.5)));
            p99.push((start(i), at(0.99)));
        }
        // An instant fault is drawn a little wide, so that it shows.
        let thin = end / 400.0;
        let faults = (history.faults().iter())
            .filter_map(|f| {
                let (a, b) = (seconds(f.from)?, seconds(f.to)?);
                Some((a, b.max(a + thin)))
            })
            .collect();
        Some(Series { end, throughput, p50, p99, faults })
    }
}

fn draw(s: &Series, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(out, (960, 320)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = s.throughput.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let slowest = s.p99.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "completed calls per second (blue), latency p50 / p99 in ms (orange / red)",
            ("sans-serif", 14),
        )
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .right_y_label_area_size(50)
        .build_cartesian_2d(0f64..s.end, 0f64..top)?
        .set_secondary_coord(0f64..s.end, 0f64..slowest);
    chart.configure_mesh().x_desc("seconds").y_desc("calls/s").draw()?;
    chart.configure_secondary_axes().y_desc("ms").draw()?;
    chart.draw_series(
        (s.faults.iter())
            .map(|&(a, b)| Rectangle::new([(a, 0.0), (b, top)], BAND.mix(0.35).filled())),
    )?;
    chart.draw_series(LineSeries::new(s.throughput.iter().copied(), BLUE.stroke_width(2)))?;
    chart.draw_secondary_series(LineSeries::new(s.p50.iter().copied(), RGBColor(230, 140, 0)))?;
    chart.draw_secondary_series(LineSeries::new(s.p99.iter().copied(), RED))?;
    root.present()?;
    Ok(())
}
