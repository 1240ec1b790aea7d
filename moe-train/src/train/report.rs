//! The summary printed at the end of a session.

use std::io::Write;

use super::args::TrainSummary;

pub(super) fn print_summary(s: &TrainSummary, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "\n== summary ==")?;
    writeln!(
        out,
        "steps {}{}, {:.2} M tokens in {:.0} s ({:.0} tokens/s this session)",
        s.steps,
        if s.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        s.tokens as f64 / 1e6,
        s.elapsed_s,
        s.tokens_per_s
    )?;
    if let Some(r) = &s.last_train {
        writeln!(
            out,
            "train: ce {:.4}, balance {:.4}, z {:.3}, grad norm {:.3}, MFU {:.1}% of {:.1} GFLOP/s",
            r.ce,
            r.balance_loss,
            r.z_loss,
            r.grad_norm,
            r.mfu * 100.0,
            s.peak_flops / 1e9
        )?;
        for l in &r.layers {
            let load: Vec<String> = l.load.iter().map(|x| format!("{:.2}", x)).collect();
            writeln!(
                out,
                "  layer {}: dropped {:.1}%, load [{}], dead {}",
                l.layer,
                l.dropped_fraction * 100.0,
                load.join(" "),
                l.dead_experts
            )?;
        }
    }
    if let Some(e) = &s.last_eval {
        let first = s.first_eval.as_ref().filter(|f| f.step != e.step);
        writeln!(
            out,
            "val: ce {:.4} (ppl {:.2}){}, accuracy {:.3}, ECE {:.3}{}",
            e.ce,
            e.perplexity,
            first
                .map(|f| format!(" from {:.4} at step {}", f.ce, f.step))
                .unwrap_or_default(),
            e.accuracy,
            e.ece,
            e.floor
                .map(|f| format!(", entropy floor {f:.4} (gap {:.4})", e.ce - f))
                .unwrap_or_default()
        )?;
        for d in &e.domains {
            writeln!(
                out,
                "  {:<10} ce {:.4}  floor {:.4}  accuracy {:.3}  ({} tokens)",
                d.domain, d.ce, d.floor, d.accuracy, d.tokens
            )?;
        }
        for r in &e.routing {
            if r.counts.is_empty() {
                continue;
            }
            writeln!(
                out,
                "  layer {} top expert per domain (share of the domain's tokens):",
                r.layer
            )?;
            for (d, counts) in e.domains.iter().zip(&r.counts) {
                let total: u64 = counts.iter().sum();
                let (best, n) = counts
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, c)| **c)
                    .unwrap_or((0, &0));
                writeln!(
                    out,
                    "    {:<10} expert {best} ({:.0}%)",
                    d.domain,
                    *n as f64 * 100.0 / total.max(1) as f64
                )?;
            }
        }
    }
    writeln!(out, "run directory: {}", s.run_dir.display())?;
    if !s.stopped_early {
        writeln!(
            out,
            "next: moe-train eval --run {0}   |   moe-train generate --run {0} --prompt \"…\"",
            s.run_dir.display()
        )?;
    }
    Ok(())
}
