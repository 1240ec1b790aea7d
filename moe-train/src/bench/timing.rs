//! Small timing helpers shared by the benchmarks.

use std::time::{Duration, Instant};

/// Median of `samples` in seconds (mean of the two middle values for an even count).
///
/// # Panics
/// On an empty slice.
pub fn median(samples: &[f64]) -> f64 {
    assert!(!samples.is_empty(), "median of no samples");
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// A stopwatch that records named laps.
pub struct Laps {
    last: Instant,
}

impl Laps {
    /// Starts timing now.
    pub fn start() -> Self {
        Self {
            last: Instant::now(),
        }
    }

    /// Seconds since the previous lap (or the start).
    pub fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let elapsed: Duration = now - self.last;
        self.last = now;
        elapsed.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0]), 5.0);
    }
}
