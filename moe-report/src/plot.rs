//! The plots: validation loss against each [`Axis`], and speedup against the number of experts.
//! Each is described once as a [`Chart`] and drawn by the same code on the SVG and PNG backends;
//! a figure of several charts side by side (the fit and evaluation plots, `plot_fits.rs` and
//! `plot_eval.rs`) is drawn by [`write_figure`].

use std::ops::Range;
use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::curve::Axis;
use crate::error::ReportError;
use crate::font::{ensure_registered, FAMILY};
use crate::format::{decimals_for_span, si};
use crate::fs::{commit, temp_sibling, write_atomic};
use crate::summary::Report;
use crate::types::VariantKind;

/// Size of every plot, pixels (SVG user units).
pub(crate) const PLOT_SIZE: (u32, u32) = (1024, 640);

/// Line colours (matplotlib's `tab10`); the dense twin is drawn in black.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Curves with at most this many points get a marker on each point.
pub(crate) const MAX_MARKED_POINTS: usize = 30;

/// A chart with more labelled lines than this draws no legend (it would cover the plot);
/// its caption in `report.md` points to the table instead.
pub(crate) const MAX_LEGEND_ENTRIES: usize = 12;

/// One plot of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlotKind {
    /// Validation loss against an axis, one line per variant.
    Loss(Axis),
    /// Speedup in steps and wall-clock against the number of experts.
    SpeedupVsExperts,
}

/// Every plot, in report order.
pub(crate) const PLOTS: [PlotKind; 5] = [
    PlotKind::Loss(Axis::Steps),
    PlotKind::Loss(Axis::Tokens),
    PlotKind::Loss(Axis::WallClock),
    PlotKind::Loss(Axis::Flops),
    PlotKind::SpeedupVsExperts,
];

impl PlotKind {
    /// File name without extension: `loss_vs_steps`, …, `speedup_vs_experts`.
    pub(crate) fn file_stem(self) -> String {
        match self {
            PlotKind::Loss(axis) => format!("loss_vs_{}", axis.slug()),
            PlotKind::SpeedupVsExperts => "speedup_vs_experts".to_string(),
        }
    }
}

/// How x tick labels are written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum XTicks {
    /// SI suffixes (`1.5k`, `2.4T`).
    Si,
    /// x is log2 of the value: integer ticks labelled `2^x`, others blank.
    Pow2,
    /// x is log10 of the value, labelled with SI suffixes (`10^x`); over two decades or more
    /// only whole decades are labelled.
    Pow10,
}

/// A polyline (or, with `connect: false`, a set of markers) with a legend entry; an empty
/// label leaves it out of the legend.
pub(crate) struct Line {
    pub(crate) label: String,
    pub(crate) color: RGBColor,
    pub(crate) width: u32,
    pub(crate) dashed: bool,
    pub(crate) markers: bool,
    /// Draw the polyline; `false` = markers only (a scatter).
    pub(crate) connect: bool,
    /// Finite points only.
    pub(crate) points: Vec<(f64, f64)>,
}

/// Everything drawn on one plot.
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) x_desc: String,
    pub(crate) y_desc: String,
    pub(crate) x_ticks: XTicks,
    pub(crate) x_range: Range<f64>,
    pub(crate) y_range: Range<f64>,
    pub(crate) legend: SeriesLabelPosition,
    pub(crate) lines: Vec<Line>,
    /// Printed in the middle when no solid line has a point (dashed lines are references).
    pub(crate) empty_note: String,
}

/// Writes every plot of `report` into `dir` as `.svg` and `.png`.
pub(crate) fn write_plots(dir: &Path, report: &Report) -> Result<(), ReportError> {
    ensure_registered()?;
    for plot in PLOTS {
        let chart = match plot {
            PlotKind::Loss(axis) => loss_chart(report, axis),
            PlotKind::SpeedupVsExperts => speedup_chart(report),
        };
        write_figure(dir, &plot.file_stem(), std::slice::from_ref(&chart))?;
    }
    Ok(())
}

/// Writes `dir/stem.svg` and `dir/stem.png`: one chart at [`PLOT_SIZE`], or several side by
/// side, two per row.
pub(crate) fn write_figure(dir: &Path, stem: &str, charts: &[Chart]) -> Result<(), ReportError> {
    ensure_registered()?;
    let svg_path = dir.join(format!("{stem}.svg"));
    let svg = render_svg(charts).map_err(|message| plot_error(&svg_path, message))?;
    write_atomic(&svg_path, svg.as_bytes())?;
    write_png(charts, &dir.join(format!("{stem}.png")))
}

/// Canvas size and `(rows, cols)` for `n` charts: one at [`PLOT_SIZE`], more two per row,
/// each 720 × 480.
pub(crate) fn layout(n: usize) -> ((u32, u32), (usize, usize)) {
    if n <= 1 {
        return (PLOT_SIZE, (1, 1));
    }
    let rows = n.div_ceil(2);
    ((1440, 480 * rows as u32), (rows, 2))
}

fn plot_error(path: &Path, message: String) -> ReportError {
    ReportError::Plot {
        path: path.to_path_buf(),
        message,
    }
}

fn render_svg(charts: &[Chart]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, layout(charts.len()).0).into_drawing_area();
        draw_all(&root, charts).map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// plotters encodes PNGs only into a named file, so the temporary file is drawn and renamed.
fn write_png(charts: &[Chart], path: &Path) -> Result<(), ReportError> {
    let tmp = temp_sibling(path);
    let drawn = {
        let root = BitMapBackend::new(&tmp, layout(charts.len()).0).into_drawing_area();
        draw_all(&root, charts).map_err(|e| e.to_string())
    };
    if let Err(message) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(plot_error(path, message));
    }
    commit(&tmp, path)
}

/// Draws `chart` on `root` and presents it (for a file backend: writes the file).
#[cfg(test)]
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    draw_all(root, std::slice::from_ref(chart))
}

/// Draws `charts` on `root` in the grid of [`layout`] and presents it.
fn draw_all<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    charts: &[Chart],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (_, grid) = layout(charts.len());
    for (area, chart) in root.split_evenly(grid).iter().zip(charts) {
        draw_panel(area, chart)?;
    }
    root.present()
}

/// Draws one chart on `area` (no fill, no present).
fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut ctx = ChartBuilder::on(root)
        .caption(&chart.title, (FAMILY, 24))
        .margin(18)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(chart.x_range.clone(), chart.y_range.clone())?;
    let x_ticks = chart.x_ticks;
    let whole_decades = chart.x_range.end - chart.x_range.start >= 2.0;
    let x_fmt = move |x: &f64| match x_ticks {
        XTicks::Si => si(*x),
        XTicks::Pow2 if (x - x.round()).abs() < 1e-6 => format!("{}", 2f64.powf(x.round())),
        XTicks::Pow2 => String::new(),
        XTicks::Pow10 if !whole_decades => si(10f64.powf(*x)),
        XTicks::Pow10 if (x - x.round()).abs() < 1e-6 => si(10f64.powf(x.round())),
        XTicks::Pow10 => String::new(),
    };
    let y_decimals = decimals_for_span(chart.y_range.end - chart.y_range.start);
    let y_fmt = move |y: &f64| format!("{y:.y_decimals$}");
    let whole_ticks = (chart.x_range.end.floor() - chart.x_range.start.ceil()) as usize + 1;
    let x_labels = match x_ticks {
        XTicks::Si => 10,
        XTicks::Pow10 if !whole_decades => 6,
        XTicks::Pow2 | XTicks::Pow10 => whole_ticks,
    };
    ctx.configure_mesh()
        .x_desc(&chart.x_desc)
        .y_desc(&chart.y_desc)
        .axis_desc_style((FAMILY, 18))
        .label_style((FAMILY, 15))
        .x_labels(x_labels)
        .y_labels(10)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()?;
    for line in &chart.lines {
        draw_line(&mut ctx, line)?;
    }
    let labelled = chart.lines.iter().filter(|l| !l.label.is_empty()).count();
    if (1..=MAX_LEGEND_ENTRIES).contains(&labelled) {
        ctx.configure_series_labels()
            .position(chart.legend.clone())
            .label_font((FAMILY, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.5))
            .draw()?;
    }
    if chart
        .lines
        .iter()
        .filter(|l| !l.dashed)
        .all(|l| l.points.is_empty())
    {
        let (w, h) = root.dim_in_pixel();
        let style =
            TextStyle::from((FAMILY, 20).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw_text(&chart.empty_note, &style, (w as i32 / 2, h as i32 / 2))?;
    }
    Ok(())
}

fn draw_line<DB: DrawingBackend>(
    ctx: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    line: &Line,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = line.color.stroke_width(line.width);
    let legend_style = style;
    if !line.connect {
        let radius = line.width + 2;
        let color = line.color;
        let series = ctx.draw_series(
            line.points
                .iter()
                .map(|&p| Circle::new(p, radius, color.filled())),
        )?;
        if !line.label.is_empty() {
            series
                .label(&line.label)
                .legend(move |(x, y)| Circle::new((x + 12, y), radius, color.filled()));
        }
        return Ok(());
    }
    let series = if line.dashed {
        ctx.draw_series(DashedLineSeries::new(
            line.points.iter().copied(),
            10,
            6,
            style,
        ))?
    } else {
        ctx.draw_series(LineSeries::new(line.points.iter().copied(), style))?
    };
    if !line.label.is_empty() {
        series
            .label(&line.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], legend_style));
    }
    if line.markers {
        let radius = line.width + 2;
        ctx.draw_series(
            line.points
                .iter()
                .map(|&p| Circle::new(p, radius, line.color.filled())),
        )?;
    }
    Ok(())
}

/// Validation loss against `axis`, one line per variant; the dense twin black and thicker.
fn loss_chart(report: &Report, axis: Axis) -> Chart {
    let lines: Vec<Line> = report
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let points: Vec<(f64, f64)> = v
                .result
                .curve
                .iter()
                // The untrained model's loss (step 0) would squeeze the curves' tail into a
                // few pixels; it is left out when there are later points.
                .filter(|p| p.step > 0 || v.result.curve.len() == 1)
                .map(|p| (axis.value(p), p.val_loss))
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            let dense = v.result.kind == VariantKind::Dense;
            Line {
                label: v.result.name.clone(),
                color: if dense {
                    BLACK
                } else {
                    PALETTE[i % PALETTE.len()]
                },
                width: if dense { 3 } else { 2 },
                dashed: false,
                markers: points.len() <= MAX_MARKED_POINTS,
                connect: true,
                points,
            }
        })
        .collect();
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    Chart {
        title: format!("Validation loss vs {}", axis.label()),
        x_desc: axis.label().to_string(),
        y_desc: "validation loss (nats/token)".to_string(),
        x_ticks: XTicks::Si,
        x_range: padded_range(xs, 0.0),
        y_range: padded_range(ys, 0.04),
        legend: SeriesLabelPosition::UpperRight,
        lines,
        empty_note: "no finite validation loss to plot".to_string(),
    }
}

/// Speedup in steps and in wall-clock against log2(experts), with the dense twin's 1× line.
fn speedup_chart(report: &Report) -> Chart {
    let shown = report.speedup_variants();
    let series = |get: fn(&crate::summary::VariantReport) -> Option<f64>| -> Vec<(f64, f64)> {
        shown
            .iter()
            .filter_map(|v| Some(((v.result.num_experts as f64).log2(), get(v)?)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let steps = series(|v| v.speedup_steps);
    let wall = series(|v| v.speedup_wallclock);
    let log2_experts = shown.iter().map(|v| (v.result.num_experts as f64).log2());
    let x_range = match padded_range(log2_experts, 0.0) {
        r if r.start.is_finite() && !shown.is_empty() => (r.start - 0.3)..(r.end + 0.3),
        _ => 0.7..5.3,
    };
    let y_max = steps.iter().chain(&wall).map(|p| p.1).fold(1.0, f64::max);
    let cf = report
        .default_capacity_factor
        .map_or_else(|| "none".to_string(), |c| c.to_string());
    let line = |label: &str, color, points| Line {
        label: label.to_string(),
        color,
        width: 2,
        dashed: false,
        markers: true,
        connect: true,
        points,
    };
    Chart {
        title: format!(
            "Speedup to the dense twin's final loss (capacity factor {cf}, balance loss on)"
        ),
        x_desc: "experts per sparse layer (log scale)".to_string(),
        y_desc: "speedup over the dense twin (×)".to_string(),
        x_ticks: XTicks::Pow2,
        x_range: x_range.clone(),
        y_range: 0.0..y_max * 1.12,
        legend: SeriesLabelPosition::UpperLeft,
        lines: vec![
            Line {
                label: format!("dense twin {} (1×)", report.baseline),
                color: BLACK,
                width: 2,
                dashed: true,
                markers: false,
                connect: true,
                points: vec![(x_range.start, 1.0), (x_range.end, 1.0)],
            },
            line("speedup in steps", PALETTE[0], steps),
            line("speedup in wall-clock time", PALETTE[1], wall),
        ],
        empty_note: "no switch variant (balance loss on) reached the dense twin's final loss"
            .to_string(),
    }
}

/// `[min, max]` of the finite values, widened by `pad` × span on both sides; a single value or
/// none gets a unit-wide range.
pub(crate) fn padded_range(values: impl Iterator<Item = f64>, pad: f64) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return 0.0..1.0;
    }
    if lo == hi {
        let half = (lo.abs() * 0.05).max(0.5);
        return (lo - half)..(hi + half);
    }
    let margin = (hi - lo) * pad;
    (lo - margin)..(hi + margin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::summarize;
    use crate::types::{Point, ReportMeta, VariantResult};

    const WHITE_RGB: [u8; 3] = [255, 255, 255];

    fn report() -> Report {
        let variant = |name: &str, kind, experts: usize, rate: f64| VariantResult {
            name: name.to_string(),
            kind,
            num_experts: experts,
            capacity_factor: (kind == VariantKind::Switch).then_some(1.25),
            balance_coef: 0.01,
            total_params: 1000,
            active_params: 100,
            train_flops_per_token: 600,
            tokens_per_s: 1000.0,
            final_val_loss: 2.0,
            drop_rate: 0.0,
            load_cv: 0.0,
            curve: (0..=10)
                .map(|i| Point {
                    step: 100 * i,
                    tokens: 12_800 * i as u64,
                    // Slower steps with more experts, so the two speedup series differ.
                    wall_s: 3.0 * i as f64 * (1.0 + 0.1 * experts as f64),
                    flops: 7.7e9 * i as f64,
                    val_loss: 2.0 + 2.0 * (-(rate * i as f64) / 4.0).exp(),
                    ..Point::default()
                })
                .collect(),
            ..VariantResult::default()
        };
        let results = [
            variant("dense", VariantKind::Dense, 1, 1.0),
            variant("switch-e4", VariantKind::Switch, 4, 1.5),
            variant("switch-e16", VariantKind::Switch, 16, 2.0),
        ];
        summarize(&results, &ReportMeta::default()).unwrap()
    }

    /// Draws `chart` into an RGB buffer through the same code as the PNG file.
    fn render_rgb(chart: &Chart) -> Vec<[u8; 3]> {
        ensure_registered().unwrap();
        let (w, h) = PLOT_SIZE;
        let mut buf = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, PLOT_SIZE).into_drawing_area();
            draw(&root, chart).unwrap();
        }
        buf.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
    }

    fn count(pixels: &[[u8; 3]], pred: impl Fn(&[u8; 3]) -> bool) -> usize {
        pixels.iter().filter(|p| pred(p)).count()
    }

    #[test]
    fn loss_plot_pixels_show_every_line_and_the_title_text() {
        let report = report();
        let pixels = render_rgb(&loss_chart(&report, Axis::Steps));
        let non_white = count(&pixels, |p| *p != WHITE_RGB);
        assert!(
            non_white > pixels.len() / 100,
            "almost blank: {non_white} non-white pixels"
        );
        // Each switch variant's line colour (index 1 and 2 in the palette) and the black
        // dense line appear, more than a legend swatch's worth.
        for color in [PALETTE[1], PALETTE[2]] {
            let rgb = [color.0, color.1, color.2];
            let n = count(&pixels, |p| *p == rgb);
            assert!(n > 500, "colour {rgb:?}: only {n} pixels");
        }
        // The title sits in the top strip, above the plotting area: dark pixels there are
        // glyphs rasterised from the embedded font.
        let title_strip = &pixels[..(PLOT_SIZE.0 * 50) as usize];
        let dark = count(title_strip, |p| p.iter().all(|&c| c < 100));
        assert!(
            dark > 200,
            "title text missing: {dark} dark pixels in the top strip"
        );
    }

    #[test]
    fn speedup_plot_has_points_and_reference_line() {
        let report = report();
        let chart = speedup_chart(&report);
        assert_eq!(chart.lines.len(), 3);
        assert_eq!(
            chart.lines[1].points.len(),
            2,
            "e4 and e16 reach the dense loss"
        );
        assert_eq!(chart.lines[1].points[0].0, 2.0, "x is log2(experts)");
        assert!(chart.x_range.start < 2.0 && chart.x_range.end > 4.0);
        let pixels = render_rgb(&chart);
        let blue = [PALETTE[0].0, PALETTE[0].1, PALETTE[0].2];
        let orange = [PALETTE[1].0, PALETTE[1].1, PALETTE[1].2];
        for (series, rgb) in [("steps", blue), ("wall-clock", orange)] {
            let n = count(&pixels, |p| *p == rgb);
            assert!(n > 500, "{series} series not drawn: {n} pixels");
        }
    }

    #[test]
    fn empty_plot_says_why() {
        let mut report = report();
        for v in &mut report.variants {
            v.speedup_steps = None;
            v.speedup_wallclock = None;
        }
        let chart = speedup_chart(&report);
        ensure_registered().unwrap();
        let svg = render_svg(std::slice::from_ref(&chart)).unwrap();
        assert!(
            svg.contains("reached the dense twin"),
            "no note in the empty plot"
        );
    }

    #[test]
    fn padded_range_cases() {
        assert_eq!(padded_range([1.0, 3.0].into_iter(), 0.0), 1.0..3.0);
        assert_eq!(padded_range([1.0, 3.0].into_iter(), 0.5), 0.0..4.0);
        assert_eq!(padded_range([f64::NAN].into_iter(), 0.1), 0.0..1.0);
        assert_eq!(padded_range([2.0].into_iter(), 0.1), 1.5..2.5);
    }
}
