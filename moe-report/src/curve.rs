//! Time-to-loss and speedup on validation curves (Switch Transformer §3, Fig. 4/5 in
//! miniature: "speedup to reach the dense model's quality").

use serde::{Deserialize, Serialize};

use crate::types::Point;

/// The x-axis a curve is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    /// Optimizer steps ([`Point::step`]).
    Steps,
    /// Training tokens ([`Point::tokens`]).
    Tokens,
    /// Wall-clock seconds of training ([`Point::wall_s`]).
    WallClock,
    /// Training FLOPs ([`Point::flops`]).
    Flops,
}

impl Axis {
    /// Every axis, in report order.
    pub const ALL: [Axis; 4] = [Axis::Steps, Axis::Tokens, Axis::WallClock, Axis::Flops];

    /// The point's coordinate on this axis.
    pub fn value(self, point: &Point) -> f64 {
        match self {
            Axis::Steps => point.step as f64,
            Axis::Tokens => point.tokens as f64,
            Axis::WallClock => point.wall_s,
            Axis::Flops => point.flops,
        }
    }

    /// Short name used in file names and CSV columns: `steps`, `tokens`, `wallclock`, `flops`.
    pub fn slug(self) -> &'static str {
        match self {
            Axis::Steps => "steps",
            Axis::Tokens => "tokens",
            Axis::WallClock => "wallclock",
            Axis::Flops => "flops",
        }
    }

    /// Axis label with its unit, as printed on plots.
    pub fn label(self) -> &'static str {
        match self {
            Axis::Steps => "training steps",
            Axis::Tokens => "training tokens",
            Axis::WallClock => "wall-clock training time (s)",
            Axis::Flops => "training FLOPs",
        }
    }
}

/// x-value at which `curve` first reaches `target` loss (`val_loss <= target`), by linear
/// interpolation between the two evaluation points that bracket it (in the axis' units);
/// `None` if never reached.
///
/// Details: the first point at or below the target is found in curve order (a non-monotone
/// curve counts its first crossing); a point exactly at the target gives its own x. When that
/// point is the curve's first, or the point before it has a non-finite loss, there is no
/// bracket and its own x is returned. NaN losses never reach a target; a NaN target is never
/// reached.
pub fn time_to_loss(curve: &[Point], target: f64, axis: Axis) -> Option<f64> {
    let hit = curve.iter().position(|p| p.val_loss <= target)?;
    let (x1, y1) = (axis.value(&curve[hit]), curve[hit].val_loss);
    if y1 == target || hit == 0 || !curve[hit - 1].val_loss.is_finite() {
        return Some(x1);
    }
    // curve[hit - 1] is above the target (it did not reach it), curve[hit] is below.
    let (x0, y0) = (axis.value(&curve[hit - 1]), curve[hit - 1].val_loss);
    let fraction = (y0 - target) / (y0 - y1);
    Some(x0 + fraction * (x1 - x0))
}

/// Speedup of `variant` over `baseline` to reach the baseline's final validation loss:
/// baseline's x at its last point divided by the variant's [`time_to_loss`] of that loss
/// (Switch Transformer Fig. 4/5 in miniature). `None` if never reached, if `baseline` is
/// empty, or if the variant's time is not positive (the ratio is undefined).
pub fn speedup(baseline: &[Point], variant: &[Point], axis: Axis) -> Option<f64> {
    let last = baseline.last()?;
    let time = time_to_loss(variant, last.val_loss, axis)?;
    (time > 0.0).then(|| axis.value(last) / time)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point whose four x-coordinates differ, so a wrong axis gives a wrong answer:
    /// tokens = 100 · step, wall_s = 0.5 · step + 1, flops = 1e6 · step.
    fn pt(step: usize, val_loss: f64) -> Point {
        Point {
            step,
            tokens: 100 * step as u64,
            wall_s: 0.5 * step as f64 + 1.0,
            flops: 1e6 * step as f64,
            val_loss,
            ..Point::default()
        }
    }

    fn curve(points: &[(usize, f64)]) -> Vec<Point> {
        points.iter().map(|&(s, l)| pt(s, l)).collect()
    }

    /// (case, curve, target, axis, expected time).
    type TimeCase<'a> = (&'a str, &'a [Point], f64, Axis, Option<f64>);
    /// (case, baseline, variant, axis, expected speedup).
    type SpeedupCase<'a> = (&'a str, &'a [Point], &'a [Point], Axis, Option<f64>);

    fn assert_close(got: Option<f64>, want: Option<f64>, case: &str) {
        match (got, want) {
            (Some(g), Some(w)) => {
                assert!(
                    (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                    "{case}: got {g}, want {w}"
                )
            }
            _ => assert_eq!(got, want, "{case}"),
        }
    }

    #[test]
    fn time_to_loss_hand_computed_cases() {
        let falling = curve(&[(0, 4.0), (10, 3.0), (20, 2.5), (30, 2.0)]);
        // Non-monotone: crosses 2.8 between steps 10 and 20, rises above it, then again.
        let bumpy = curve(&[(0, 4.0), (10, 3.0), (20, 2.6), (30, 3.2), (40, 2.0)]);
        let nan_before = curve(&[(0, 4.0), (10, f64::NAN), (20, 2.0)]);
        #[rustfmt::skip]
        let cases: [TimeCase; 15] = [
            ("exact point", &falling, 3.0, Axis::Steps, Some(10.0)),
            ("exact last point", &falling, 2.0, Axis::Steps, Some(30.0)),
            // 2.75 is halfway between 3.0 (step 10) and 2.5 (step 20).
            ("between points", &falling, 2.75, Axis::Steps, Some(15.0)),
            // 3.8 is 1/5 of the way from 4.0 (step 0) to 3.0 (step 10).
            ("first bracket", &falling, 3.8, Axis::Steps, Some(2.0)),
            ("never reached", &falling, 1.9, Axis::Steps, None),
            ("reached at first point", &falling, 4.5, Axis::Steps, Some(0.0)),
            ("empty curve", &[], 3.0, Axis::Steps, None),
            ("NaN target", &falling, f64::NAN, Axis::Steps, None),
            // 2.8: (3.0 - 2.8) / (3.0 - 2.6) = 1/2 of steps 10..20, not the later 30..40 crossing.
            ("first crossing of non-monotone", &bumpy, 2.8, Axis::Steps, Some(15.0)),
            // 2.5: only the 30 -> 40 segment brackets it: (3.2 - 2.5) / (3.2 - 2.0) = 7/12.
            ("later crossing of non-monotone", &bumpy, 2.5, Axis::Steps, Some(30.0 + 70.0 / 12.0)),
            ("no bracket after NaN", &nan_before, 3.0, Axis::Steps, Some(20.0)),
            // Step 15 on the other axes: tokens 1500, wall 0.5·15 + 1 = 8.5 s, flops 1.5e7.
            ("tokens axis", &falling, 2.75, Axis::Tokens, Some(1500.0)),
            ("wall-clock axis", &falling, 2.75, Axis::WallClock, Some(8.5)),
            ("flops axis", &falling, 2.75, Axis::Flops, Some(1.5e7)),
            ("wall-clock exact", &falling, 2.5, Axis::WallClock, Some(11.0)),
        ];
        for (case, points, target, axis, want) in cases {
            assert_close(time_to_loss(points, target, axis), want, case);
        }
    }

    #[test]
    fn speedup_hand_computed_cases() {
        // Baseline ends at step 40 with loss 2.0 (tokens 4000, wall 21 s, flops 4e7).
        let baseline = curve(&[(0, 4.0), (20, 3.0), (40, 2.0)]);
        // Reaches 2.0 halfway between steps 10 (2.5) and 20 (1.5): step 15, wall 8.5 s.
        let fast = curve(&[(0, 4.0), (10, 2.5), (20, 1.5), (40, 1.2)]);
        let slow = curve(&[(0, 4.0), (40, 2.5), (80, 2.0)]);
        let never = curve(&[(0, 4.0), (40, 2.1)]);
        let instant = curve(&[(0, 1.0)]);
        #[rustfmt::skip]
        let cases: [SpeedupCase; 9] = [
            ("faster in steps", &baseline, &fast, Axis::Steps, Some(40.0 / 15.0)),
            ("faster in tokens", &baseline, &fast, Axis::Tokens, Some(4000.0 / 1500.0)),
            ("faster in wall-clock", &baseline, &fast, Axis::WallClock, Some(21.0 / 8.5)),
            ("faster in flops", &baseline, &fast, Axis::Flops, Some(4e7 / 1.5e7)),
            ("slower", &baseline, &slow, Axis::Steps, Some(0.5)),
            ("baseline against itself", &baseline, &baseline, Axis::WallClock, Some(1.0)),
            ("never reached", &baseline, &never, Axis::Steps, None),
            ("empty baseline", &[], &fast, Axis::Steps, None),
            ("reached at x = 0", &baseline, &instant, Axis::Steps, None),
        ];
        for (case, base, variant, axis, want) in cases {
            assert_close(speedup(base, variant, axis), want, case);
        }
    }

    #[test]
    fn axis_slugs_are_distinct_and_serde_lowercase() {
        let slugs: Vec<_> = Axis::ALL.iter().map(|a| a.slug()).collect();
        assert_eq!(slugs, ["steps", "tokens", "wallclock", "flops"]);
        for axis in Axis::ALL {
            let json = serde_json::to_string(&axis).unwrap();
            assert_eq!(json, format!("\"{}\"", axis.slug()));
        }
    }
}
