//! `report.md`: the meta, the results table, times to the target loss, the method, the plots,
//! then the scaling-law, calibration and emergence sections (`markdown_sections.rs`).

use std::fmt::Write;

use crate::format::{percent, si, speedup, thousands, NOT_REACHED};
use crate::markdown_sections::{write_calibration, write_emergence, write_scaling};
use crate::plot::{PlotKind, PLOTS};
use crate::report::Figure;
use crate::summary::Report;
use crate::types::ReportMeta;

/// The whole `report.md` text; `figures` are the extra plots written next to it.
pub(crate) fn render(report: &Report, figures: &[Figure]) -> String {
    let mut md = String::new();
    write_meta(&mut md, &report.meta);
    write_results(&mut md, report);
    write_times(&mut md, report);
    write_plots(&mut md, report);
    write_scaling(&mut md, report, figures);
    write_calibration(&mut md, report, figures);
    write_emergence(&mut md, report, figures);
    md
}

fn write_meta(md: &mut String, meta: &ReportMeta) {
    let title = if meta.title.trim().is_empty() {
        "Dense vs sparse compute curves"
    } else {
        meta.title.trim()
    };
    let _ = writeln!(md, "# {}\n", one_line(title));
    for (label, value) in [
        ("Machine", &meta.machine),
        ("Data", &meta.data),
        ("Budget", &meta.budget),
    ] {
        let _ = writeln!(md, "- **{label}:** {}", indent_continuation(value));
    }
    for note in &meta.notes {
        let _ = writeln!(md, "- {}", indent_continuation(note));
    }
    let fence = code_fence(&meta.command);
    let _ = writeln!(
        md,
        "\nCommand:\n\n{fence}text\n{}\n{fence}\n",
        meta.command.trim_end()
    );
}

fn write_results(md: &mut String, report: &Report) {
    let _ = writeln!(
        md,
        "## Results\n\nBaseline: the dense twin `{}`, final validation loss **{:.4}** nats/token. \
         Speedups are to reach that loss.\n",
        report.baseline, report.target_loss
    );
    md.push_str(
        "| variant | kind | experts | capacity factor | balance coef | final val loss | \
         speedup (steps) | speedup (wall-clock) | speedup (FLOPs) | drop rate | load CV | \
         total params | active params | train FLOPs/token | tokens/s |\n",
    );
    md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for v in &report.variants {
        let r = &v.result;
        let cf = r
            .capacity_factor
            .map_or_else(|| NOT_REACHED.to_string(), |c| c.to_string());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {cf} | {} | {:.4} | {} | {} | {} | {} | {:.3} | {} | {} | {} | {} |",
            cell(&r.name),
            r.kind.as_str(),
            r.num_experts,
            r.balance_coef,
            r.final_val_loss,
            speedup(v.speedup_steps),
            speedup(v.speedup_wallclock),
            speedup(v.speedup_flops),
            percent(r.drop_rate),
            r.load_cv,
            thousands(r.total_params),
            thousands(r.active_params),
            thousands(r.train_flops_per_token),
            thousands(r.tokens_per_s.round().max(0.0) as u64),
        );
    }
    let _ = writeln!(md, "\n{}\n", report.interpolation);
    let _ = write!(md, "FLOP figures count {}.", report.flops_basis.describe());
    if !report.flops_fallback.is_empty() {
        let _ = write!(
            md,
            " Executed FLOPs were asked for, but {} lack `executed_train_flops_per_token`.",
            report.flops_fallback.join(", ")
        );
    }
    md.push_str("\n\n");
}

fn write_times(md: &mut String, report: &Report) {
    let _ = writeln!(
        md,
        "### Time to the dense twin's final loss ({:.4})\n\n\
         | variant | steps | tokens | wall-clock (s) | FLOPs |\n|---|---:|---:|---:|---:|",
        report.target_loss
    );
    let time = |x: Option<f64>, fmt: fn(f64) -> String| x.map_or(NOT_REACHED.to_string(), fmt);
    for v in &report.variants {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            cell(&v.result.name),
            time(v.steps_to_target, |x| format!("{x:.1}")),
            time(v.tokens_to_target, si),
            time(v.wall_s_to_target, |x| format!("{x:.1}")),
            time(v.flops_to_target, si),
        );
    }
    md.push('\n');
}

fn write_plots(md: &mut String, report: &Report) {
    md.push_str("## Plots\n\n");
    for plot in PLOTS {
        let caption = match plot {
            PlotKind::Loss(axis) => format!("Validation loss against {}.", axis.label()),
            PlotKind::SpeedupVsExperts => speedup_caption(report),
        };
        let name = plot.file_stem();
        let _ = writeln!(md, "{caption} ([SVG]({name}.svg))\n\n![]({name}.png)\n");
    }
}

fn speedup_caption(report: &Report) -> String {
    let shown = report.speedup_variants();
    let cf = report
        .default_capacity_factor
        .map_or_else(|| "none".to_string(), |c| c.to_string());
    let missing: Vec<&str> = shown
        .iter()
        .filter(|v| v.speedup_steps.is_none() || v.speedup_wallclock.is_none())
        .map(|v| v.result.name.as_str())
        .collect();
    let mut caption = format!(
        "Speedup to the dense twin's final loss, in steps and in wall-clock time, against the \
         number of experts: {} switch variants with capacity factor {cf} and the balance loss \
         on; the dashed line at 1× is the dense twin.",
        shown.len()
    );
    if !missing.is_empty() {
        let _ = write!(
            caption,
            " Never reached (no point): {}.",
            missing.join(", ")
        );
    }
    caption
}

/// A table cell: no line breaks, `|` escaped.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Continuation lines of a list item, indented so they stay inside it.
fn indent_continuation(text: &str) -> String {
    text.trim().lines().collect::<Vec<_>>().join("\n  ")
}

/// A backtick fence longer than any backtick run in `text` (at least three).
fn code_fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_and_cells() {
        assert_eq!(code_fence("cargo run"), "```");
        assert_eq!(code_fence("echo ```x```"), "````");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(
            indent_continuation("line one\nline two\n"),
            "line one\n  line two"
        );
    }
}
