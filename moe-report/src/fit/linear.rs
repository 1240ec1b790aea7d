//! Ordinary least squares for the log-linear fits (Kaplan's pure power law, Clark et al.'s
//! bilinear law): the normal equations `XᵀX β = Xᵀy` solved by Gaussian elimination with
//! partial pivoting. The designs here have 2–4 columns, so conditioning is checked, not
//! worked around.

/// Least-squares coefficients `β` minimising `Σ_i (rows_i · β − y_i)²`; `None` when the
/// design is (numerically) rank-deficient — e.g. every run has the same `x` — or any input
/// is not finite.
pub(crate) fn least_squares(rows: &[Vec<f64>], y: &[f64]) -> Option<Vec<f64>> {
    let k = rows.first()?.len();
    if rows.len() < k || rows.len() != y.len() || rows.iter().any(|r| r.len() != k) {
        return None;
    }
    if !rows.iter().flatten().chain(y).all(|v| v.is_finite()) {
        return None;
    }
    // Columns are scaled to unit RMS so the rank test below is scale-free.
    let scale: Vec<f64> = (0..k)
        .map(|j| {
            let ms = rows.iter().map(|r| r[j] * r[j]).sum::<f64>() / rows.len() as f64;
            if ms > 0.0 {
                ms.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    // Augmented normal equations [XᵀX | Xᵀy], [k, k + 1].
    let mut m = vec![vec![0.0; k + 1]; k];
    for (row, &yi) in rows.iter().zip(y) {
        for i in 0..k {
            let xi = row[i] / scale[i];
            for j in 0..k {
                m[i][j] += xi * row[j] / scale[j];
            }
            m[i][k] += xi * yi;
        }
    }
    let n = rows.len() as f64;
    for col in 0..k {
        let pivot = (col..k).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        // Relative to the unit-RMS columns' diagonal (= n): below this the design is singular.
        if m[pivot][col].abs() <= 1e-10 * n {
            return None;
        }
        m.swap(col, pivot);
        let pivot_row = m[col].clone();
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    Some((0..k).map(|i| m[i][k] / m[i][i] / scale[i]).collect())
}

/// Root-mean-square of `predicted − observed`.
pub(crate) fn rmse(predicted: impl Iterator<Item = f64>, observed: &[f64]) -> f64 {
    let sum: f64 = predicted.zip(observed).map(|(p, o)| (p - o).powi(2)).sum();
    (sum / observed.len().max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_plane_and_refuses_a_singular_design() {
        // y = 2 + 3·x1 − 0.5·x2 at five points (x1 and x2 not collinear).
        let xs = [(1.0, 0.0), (2.0, 1.0), (3.0, 5.0), (4.0, 2.0), (10.0, -3.0)];
        let rows: Vec<Vec<f64>> = xs.iter().map(|&(a, b)| vec![1.0, a, b]).collect();
        let y: Vec<f64> = xs.iter().map(|&(a, b)| 2.0 + 3.0 * a - 0.5 * b).collect();
        let beta = least_squares(&rows, &y).unwrap();
        for (got, want) in beta.iter().zip([2.0, 3.0, -0.5]) {
            assert!((got - want).abs() < 1e-9, "{beta:?}");
        }
        // x2 = 2·x1: rank 2 of 3.
        let collinear: Vec<Vec<f64>> = xs.iter().map(|&(a, _)| vec![1.0, a, 2.0 * a]).collect();
        assert_eq!(least_squares(&collinear, &y), None);
        assert_eq!(
            least_squares(&rows[..2], &y[..2]),
            None,
            "fewer rows than columns"
        );
    }

    #[test]
    fn least_squares_of_noisy_line_matches_the_textbook_formula() {
        let x = [0.0, 1.0, 2.0, 3.0];
        let y = [1.0, 2.9, 5.2, 6.8];
        let rows: Vec<Vec<f64>> = x.iter().map(|&v| vec![1.0, v]).collect();
        let beta = least_squares(&rows, &y).unwrap();
        // slope = Σ(x−x̄)(y−ȳ)/Σ(x−x̄)² = (−1.5·−2.975 − 0.5·−1.075 + 0.5·1.225 + 1.5·2.825)/5
        let slope = (1.5 * 2.975 + 0.5 * 1.075 + 0.5 * 1.225 + 1.5 * 2.825) / 5.0;
        assert!((beta[1] - slope).abs() < 1e-12, "{beta:?}");
        assert!((beta[0] - (3.975 - 1.5 * slope)).abs() < 1e-12, "{beta:?}");
    }
}
