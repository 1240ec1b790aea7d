//! Calibration and per-domain accuracy as the report reads them from the curves: ECE
//! (Guo et al. 2017; Kadavath et al. 2022 use it for model-size trends) and the reliability
//! diagram's bins at each variant's last evaluation that measured them.

use crate::summary::Report;
use crate::types::{ReliabilityBin, VariantResult};

/// Expected calibration error from reliability bins:
/// `ECE = Σ_bins (count / total) · |accuracy − mean_confidence|` (empty bins ignored).
/// `None` when the bins hold no prediction.
pub fn ece_from_bins(bins: &[ReliabilityBin]) -> Option<f64> {
    let total: u64 = bins.iter().map(|b| b.count).sum();
    if total == 0 {
        return None;
    }
    Some(
        bins.iter()
            .filter(|b| b.count > 0)
            .map(|b| b.count as f64 / total as f64 * (b.accuracy - b.mean_confidence).abs())
            .sum(),
    )
}

/// A variant's calibration at its last evaluation that measured it.
pub(crate) struct FinalCalibration<'a> {
    /// Index into `report.variants` (for colours).
    pub index: usize,
    pub variant: &'a VariantResult,
    pub step: usize,
    /// The point's ECE, or the one computed from its bins.
    pub ece: Option<f64>,
    pub bins: &'a [ReliabilityBin],
}

/// One entry per variant that has calibration data, in report order.
pub(crate) fn final_calibration(report: &Report) -> Vec<FinalCalibration<'_>> {
    report
        .variants
        .iter()
        .enumerate()
        .filter_map(|(index, v)| {
            let point = v
                .result
                .curve
                .iter()
                .rev()
                .find(|p| p.ece.is_some() || !p.reliability.is_empty())?;
            Some(FinalCalibration {
                index,
                variant: &v.result,
                step: point.step,
                ece: point.ece.or_else(|| ece_from_bins(&point.reliability)),
                bins: &point.reliability,
            })
        })
        .collect()
}

/// Every evaluation domain named in any curve, sorted.
pub(crate) fn domains(report: &Report) -> Vec<String> {
    let mut names: Vec<String> = report
        .variants
        .iter()
        .flat_map(|v| v.result.curve.iter())
        .flat_map(|p| p.domain_accuracy.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_weights_bins_by_count() {
        let bin = |count, mean_confidence, accuracy| ReliabilityBin {
            count,
            mean_confidence,
            accuracy,
        };
        // 30 predictions at 0.9 confidence, 80 % right; 10 at 0.5, 50 % right; one empty bin
        // with garbage values: (30·0.1 + 10·0) / 40 = 0.075.
        let bins = [bin(30, 0.9, 0.8), bin(10, 0.5, 0.5), bin(0, f64::NAN, 7.0)];
        assert!((ece_from_bins(&bins).unwrap() - 0.075).abs() < 1e-12);
        assert_eq!(ece_from_bins(&[bin(0, 0.5, 0.5)]), None);
        assert_eq!(ece_from_bins(&[]), None);
    }
}
