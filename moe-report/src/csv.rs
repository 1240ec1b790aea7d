//! `results.csv`: one row per variant (RFC 4180 quoting; empty field = not reached / none).

use std::borrow::Cow;

use crate::summary::{Report, VariantReport};

/// The CSV header, in column order.
pub const CSV_COLUMNS: [&str; 17] = [
    "name",
    "kind",
    "num_experts",
    "capacity_factor",
    "balance_coef",
    "final_val_loss",
    "drop_rate",
    "load_cv",
    "total_params",
    "active_params",
    "train_flops_per_token",
    "tokens_per_s",
    "speedup_steps",
    "speedup_wallclock",
    "speedup_flops",
    "non_embedding_params",
    "executed_train_flops_per_token",
];

/// The whole `results.csv` text, `\n` line ends.
pub(crate) fn render(report: &Report) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for variant in &report.variants {
        out.push_str(&row(variant).join(","));
        out.push('\n');
    }
    out
}

fn row(variant: &VariantReport) -> Vec<String> {
    let r = &variant.result;
    let opt = |x: Option<f64>| x.map_or_else(String::new, |v| v.to_string());
    vec![
        field(&r.name).into_owned(),
        r.kind.as_str().to_string(),
        r.num_experts.to_string(),
        opt(r.capacity_factor),
        r.balance_coef.to_string(),
        r.final_val_loss.to_string(),
        r.drop_rate.to_string(),
        r.load_cv.to_string(),
        r.total_params.to_string(),
        r.active_params.to_string(),
        r.train_flops_per_token.to_string(),
        r.tokens_per_s.to_string(),
        opt(variant.speedup_steps),
        opt(variant.speedup_wallclock),
        opt(variant.speedup_flops),
        r.non_embedding_params
            .map_or_else(String::new, |n| n.to_string()),
        r.executed_train_flops_per_token
            .map_or_else(String::new, |n| n.to_string()),
    ]
}

/// Quotes a field that holds a comma, quote or line break, doubling its quotes.
fn field(text: &str) -> Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(field("switch-e8"), "switch-e8");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }
}
