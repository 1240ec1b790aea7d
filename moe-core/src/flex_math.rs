//! Row primitives of the flex kernels: maximum, and `exp(x − shift)` with its sum, written so
//! that LLVM vectorises them (eight independent accumulators, no libm calls, no float → int
//! conversion): libm's `expf` is one call per element and a plain `f32` sum is a serial chain.
//! Also the kernels' one way of reading a tensor's values in logical order, and their GEMM call.

use std::borrow::Cow;

use burn::backend::flex::FlexTensor;
use burn::tensor::DType;

/// The values of an `f32` tensor in logical (row-major) order: borrowed when its layout is
/// contiguous, else copied out.
pub(crate) fn contiguous_f32(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.to_contiguous().storage::<f32>().to_vec()),
    }
}

/// The values of an integer tensor in logical order, as `i64`; `None` for a dtype other than
/// `i64` and `i32` (burn-flex's int tensors are one of these two).
pub(crate) fn int_values(t: &FlexTensor) -> Option<Vec<i64>> {
    let t = t.to_contiguous();
    match t.dtype() {
        DType::I64 => Some(t.as_slice::<i64>()?.to_vec()),
        DType::I32 => Some(t.as_slice::<i32>()?.iter().map(|&x| x as i64).collect()),
        _ => None,
    }
}

/// `dst (m × n) = beta · lhs (m × k) · rhs (k × n)`, each operand given by a pointer and its
/// (row, column) strides in elements; single-threaded (the kernels parallelise around it).
///
/// # Safety
/// Every pointer must be valid for the rows and columns its strides address.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (isize, isize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (isize, isize),
    beta: f32,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs,
            false,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            0.0,
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// An operand of [`matmul`]: a row-major matrix as stored in its slice (`N`), or the transpose
/// of the row-major matrix stored there (`T`).
#[derive(Clone, Copy)]
pub(crate) enum Operand<'a> {
    N(&'a [f32]),
    T(&'a [f32]),
}

impl Operand<'_> {
    /// Pointer and (row, column) strides of the operand read as a `rows × cols` matrix.
    ///
    /// # Panics
    /// When the slice holds fewer than `rows · cols` values.
    fn view(self, rows: usize, cols: usize) -> (*const f32, (isize, isize)) {
        let (data, strides) = match self {
            Operand::N(data) => (data, (cols as isize, 1)),
            Operand::T(data) => (data, (1, rows as isize)),
        };
        assert!(
            data.len() >= rows * cols,
            "a {rows} × {cols} operand in {} values",
            data.len()
        );
        (data.as_ptr(), strides)
    }
}

/// `dst (m × n) = lhs (m × k) · rhs (k × n)`, `dst` row-major, on the calling thread;
/// `(m, k, n)` names the three sizes.
///
/// # Panics
/// When `dst` or an operand is shorter than its matrix.
pub(crate) fn matmul(
    dst: &mut [f32],
    (m, k, n): (usize, usize, usize),
    lhs: Operand,
    rhs: Operand,
) {
    assert!(
        dst.len() >= m * n,
        "a {m} × {n} product into {} values",
        dst.len()
    );
    let (lhs, lhs_strides) = lhs.view(m, k);
    let (rhs, rhs_strides) = rhs.view(k, n);
    // SAFETY: the asserts above and in `view` bound every element the strides address.
    unsafe {
        product(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            n as isize,
            lhs,
            lhs_strides,
            rhs,
            rhs_strides,
            1.0,
        );
    }
}

/// Lanes of the accumulators: independent partial results the compiler keeps in one vector.
const LANES: usize = 8;

/// `Σ a[i]·b[i]` over equal-length slices, in eight independent lanes (vectorised).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((acc, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `eˣ` for `x ≤ 0` (softmax rows after their max is subtracted). `eˣ = 2ⁿ·eʳ` with
/// `n = round(x·log₂e)`, `r = x − n·ln 2` (ln 2 split in two for precision) and `eʳ` by its
/// degree-7 Taylor polynomial on `|r| ≤ ln2/2`: relative error below 2e-7 (`exp_matches_libm`).
/// The rounding adds and subtracts `1.5·2²³`, which leaves `n` in the low mantissa bits, so
/// `2ⁿ` comes from integer arithmetic on those bits. `x` is clamped at −87 (e⁻⁸⁷ ≈ 1.6e-38,
/// the normal range's edge), so `−∞` gives ≈ 0, never NaN.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³
    let x = if x > -87.0 { x } else { -87.0 };
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n ∈ [−126, 0]: the biased exponent n + 127 stays in the normal range.
    let biased = t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

/// `max(row)` (−∞ for an empty row).
pub(crate) fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    tail.iter()
        .chain(&acc)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// `Σ exp(x − shift)` over the row (`shift ≥ max(row)`).
pub(crate) fn exp_sum(row: &[f32], shift: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += exp_nonpositive(x - shift);
        }
    }
    tail.iter()
        .map(|&x| exp_nonpositive(x - shift))
        .sum::<f32>()
        + acc.iter().sum::<f32>()
}

/// Replaces every `x` of the row by `exp(x − shift)` and returns their sum (`shift ≥ max(row)`).
pub(crate) fn exp_shifted_in_place(row: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *x = exp_nonpositive(*x - shift);
            *a += *x;
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for x in chunks.into_remainder() {
        *x = exp_nonpositive(*x - shift);
        sum += *x;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2e-7, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(f32::NEG_INFINITY) < 1e-37);
        assert!(exp_nonpositive(-1000.0) < 1e-37);
    }

    #[test]
    fn row_helpers_match_plain_loops() {
        for len in [0usize, 1, 7, 8, 9, 33] {
            let row: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.7)
                .collect();
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            assert_eq!(row_max(&row), max, "len {len}");
            let want: f64 = row.iter().map(|&x| ((x - max) as f64).exp()).sum();
            let got = exp_sum(&row, max) as f64;
            assert!(
                (got - want).abs() <= 1e-6 * want.max(1.0),
                "len {len}: {got} vs {want}"
            );
            let mut inplace = row.clone();
            let sum = exp_shifted_in_place(&mut inplace, max) as f64;
            assert!((sum - want).abs() <= 1e-6 * want.max(1.0), "len {len}");
            for (y, &x) in inplace.iter().zip(&row) {
                assert!((*y as f64 - ((x - max) as f64).exp()).abs() <= 2e-7);
            }
        }
    }
}
