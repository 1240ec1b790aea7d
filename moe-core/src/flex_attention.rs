//! Causal RoPE attention for burn-flex as one CPU kernel per (batch, head): the forward and
//! the closed-form backward of [`crate::fused`], computed on plain `f32` slices with `gemm`
//! calls on the lower triangle only.
//!
//! Built from burn ops (the generic path in `fused.rs`), one attention call is a dozen
//! full-size passes over `[batch, heads, seq, seq]` tensors (RoPE's flip/mul/add, the score
//! matmul, the bias add, the softmax, the transposes and element-wise products of the
//! backward), each allocating its result and half of them computing entries the causal mask
//! throws away. Here each (batch, head) pair is one task on rayon's pool: its `seq × seq`
//! score tile stays in cache between the score product, the softmax and the mixing product,
//! and the products skip the blocks above the diagonal. Measured effect: docs/performance.md.
//!
//! Same functions as the generic path (summation order differs: equal to float rounding,
//! `tests/fused_ops.rs`). The causal bias is implied: the kernel never reads a bias tensor.

use std::borrow::Cow;

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::{DType, Shape};
use rayon::prelude::*;

use crate::flex_math::{contiguous_f32, exp_shifted_in_place, product, row_max};
use crate::fused::AttentionSaved;

/// Rows (and columns) per block of the triangular products. With 32, a 128-token sequence
/// computes 10 of 16 score blocks.
const BLOCK: usize = 32;

/// A 4-D `f32` tensor read through its strides: `(b, h, i, c)` is at
/// `data[b·s0 + h·s1 + i·s2 + c·s3]`.
struct View<'a> {
    data: Cow<'a, [f32]>,
    dims: [usize; 4],
    strides: [usize; 4],
}

impl<'a> View<'a> {
    fn new(t: &'a FlexTensor) -> Self {
        let layout = t.layout();
        let dims: [usize; 4] = layout.shape().dims();
        if layout.has_positive_strides() {
            let s = layout.strides();
            let storage: &[f32] = t.storage();
            View {
                data: Cow::Borrowed(&storage[layout.start_offset()..]),
                dims,
                strides: [s[0] as usize, s[1] as usize, s[2] as usize, s[3] as usize],
            }
        } else {
            let [_, h, n, d] = dims;
            View {
                data: contiguous_f32(t),
                dims,
                strides: [h * n * d, n * d, d, 1],
            }
        }
    }

    /// Pointer to `(b, h, 0, 0)` and the (row, column) strides of that `seq × d` matrix.
    fn matrix(&self, b: usize, h: usize) -> (*const f32, isize, isize) {
        let off = b * self.strides[0] + h * self.strides[1];
        (
            self.data[off..].as_ptr(),
            self.strides[2] as isize,
            self.strides[3] as isize,
        )
    }

    fn at(&self, b: usize, h: usize, i: usize, c: usize) -> f32 {
        self.data
            [b * self.strides[0] + h * self.strides[1] + i * self.strides[2] + c * self.strides[3]]
    }
}

fn tensor(data: Vec<f32>, dims: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(burn::tensor::TensorData::new(data, Shape::new(dims)))
}

/// Whether the kernel takes these inputs: `f32`, 4-D, matching shapes, even head size.
pub(crate) fn supports(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor) -> bool {
    let f32s = [q, k, v].iter().all(|t| t.dtype() == DType::F32);
    let shape = q.layout().shape();
    f32s && shape.num_dims() == 4
        && k.layout().shape() == shape
        && v.layout().shape() == shape
        && shape[3].is_multiple_of(2)
}

/// `out[c] = rope_±θ(x)[c] · mult` for one row: pairs `(2p, 2p+1)` become
/// `(a·cos + b·sin'₀, b·cos + a·sin'₁)` with the signed table `sin'` ([`crate::fused::rope_tables`]),
/// negated for the inverse rotation.
#[inline]
fn rope_row(
    x: impl Fn(usize) -> f32,
    cos: &[f32],
    sin: &[f32],
    inverse: bool,
    mult: f32,
    out: &mut [f32],
) {
    let sign = if inverse { -mult } else { mult };
    for p in 0..out.len() / 2 {
        let (a, b) = (x(2 * p), x(2 * p + 1));
        out[2 * p] = a * cos[2 * p] * mult + b * sin[2 * p] * sign;
        out[2 * p + 1] = b * cos[2 * p + 1] * mult + a * sin[2 * p + 1] * sign;
    }
}

/// Row blocks `(start, len)` of a `seq`-row matrix.
fn blocks(seq: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..seq)
        .step_by(BLOCK)
        .map(move |r| (r, BLOCK.min(seq - r)))
}

/// Forward: `O = softmax(rope(Q)·s·rope(K)ᵀ + M)·V` (see [`crate::fused`]), with the
/// tensors the backward needs: `qs`, `kr`, `probs` (zero above the diagonal) and `output`
/// contiguous, `v` as given (may be strided).
///
/// # Shapes
/// - `q`, `k`, `v`: `[batch, heads, seq, d_head]` (any non-negative strides)
/// - `cos`, `sin`: `[seq, d_head]`
pub(crate) fn forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: FlexTensor,
    cos: &FlexTensor,
    sin: &FlexTensor,
    scale: f64,
) -> AttentionSaved<Flex> {
    let (qv, kv, vv) = (View::new(q), View::new(k), View::new(&v));
    let [batch, heads, seq, d] = qv.dims;
    let (cos_t, sin_t) = (contiguous_f32(cos), contiguous_f32(sin));
    let scale_f32 = scale as f32;
    let (sd, ss) = (seq * d, seq * seq);
    let mut qs = vec![0f32; batch * heads * sd];
    let mut kr = vec![0f32; batch * heads * sd];
    let mut probs = vec![0f32; batch * heads * ss];
    let mut out = vec![0f32; batch * heads * sd];

    qs.par_chunks_mut(sd)
        .zip(kr.par_chunks_mut(sd))
        .zip(probs.par_chunks_mut(ss))
        .zip(out.par_chunks_mut(sd))
        .enumerate()
        .for_each(|(n, (((qs, kr), p), o))| {
            let (b, h) = (n / heads, n % heads);
            for i in 0..seq {
                let (cr, sr) = (&cos_t[i * d..(i + 1) * d], &sin_t[i * d..(i + 1) * d]);
                let row = i * d..(i + 1) * d;
                rope_row(
                    |c| qv.at(b, h, i, c),
                    cr,
                    sr,
                    false,
                    scale_f32,
                    &mut qs[row.clone()],
                );
                rope_row(|c| kv.at(b, h, i, c), cr, sr, false, 1.0, &mut kr[row]);
            }
            let (v_ptr, v_rs, v_cs) = vv.matrix(b, h);
            for (r0, m) in blocks(seq) {
                let cols = r0 + m;
                // SAFETY: rows r0..r0+m of `p` (seq wide), of `qs` (d wide), rows 0..cols of kr.
                unsafe {
                    product(
                        m,
                        cols,
                        d,
                        p[r0 * seq..].as_mut_ptr(),
                        seq as isize,
                        qs[r0 * d..].as_ptr(),
                        (d as isize, 1),
                        kr.as_ptr(),
                        (1, d as isize),
                        1.0,
                    );
                }
                for i in r0..cols {
                    softmax_causal(&mut p[i * seq..i * seq + cols], i);
                }
                // SAFETY: rows r0..r0+m of `o`; `p` rows r0.. columns 0..cols; V rows 0..cols.
                unsafe {
                    product(
                        m,
                        d,
                        cols,
                        o[r0 * d..].as_mut_ptr(),
                        d as isize,
                        p[r0 * seq..].as_ptr(),
                        (seq as isize, 1),
                        v_ptr,
                        (v_rs, v_cs),
                        1.0,
                    );
                }
            }
        });
    let dims = [batch, heads, seq, d];
    AttentionSaved {
        qs: tensor(qs, dims),
        kr: tensor(kr, dims),
        v,
        probs: tensor(probs, [batch, heads, seq, seq]),
        output: tensor(out, dims),
        cos: cos.clone(),
        sin: sin.clone(),
        scale,
    }
}

/// Row `i` of the scores in place: softmax over columns `0..=i`, zero after.
fn softmax_causal(row: &mut [f32], i: usize) {
    let (live, future) = row.split_at_mut(i + 1);
    let max = row_max(live);
    let inv = 1.0 / exp_shifted_in_place(live, max);
    live.iter_mut().for_each(|x| *x *= inv);
    future.fill(0.0);
}

/// Backward: gradients of `q`, `k`, `v` from the output gradient `grad`
/// (`[batch, heads, seq, d_head]`, any non-negative strides), by the closed forms of
/// [`crate::fused`]. `None` when a saved tensor is not contiguous `f32` (the generic path's,
/// say).
pub(crate) fn backward(s: &AttentionSaved<Flex>, grad: &FlexTensor) -> Option<[FlexTensor; 3]> {
    if grad.dtype() != DType::F32 || !supports(&s.qs, &s.kr, &s.v) {
        return None;
    }
    let (qs, kr) = (s.qs.as_slice::<f32>()?, s.kr.as_slice::<f32>()?);
    let (probs, out) = (s.probs.as_slice::<f32>()?, s.output.as_slice::<f32>()?);
    let gv = View::new(grad);
    let vv = View::new(&s.v);
    let [batch, heads, seq, d] = gv.dims;
    let (cos_t, sin_t) = (contiguous_f32(&s.cos), contiguous_f32(&s.sin));
    let scale = s.scale as f32;
    let (sd, ss) = (seq * d, seq * seq);
    let mut dq = vec![0f32; batch * heads * sd];
    let mut dk = vec![0f32; batch * heads * sd];
    let mut dv = vec![0f32; batch * heads * sd];

    dq.par_chunks_mut(sd)
        .zip(dk.par_chunks_mut(sd))
        .zip(dv.par_chunks_mut(sd))
        .enumerate()
        .for_each(|(n, ((dq, dk), dv))| {
            let (b, h) = (n / heads, n % heads);
            let qs = &qs[n * sd..(n + 1) * sd];
            let kr = &kr[n * sd..(n + 1) * sd];
            let p = &probs[n * ss..(n + 1) * ss];
            let o = &out[n * sd..(n + 1) * sd];
            let (g_ptr, g_rs, g_cs) = gv.matrix(b, h);
            let (v_ptr, v_rs, v_cs) = vv.matrix(b, h);
            let mut ds = vec![0f32; ss];
            for (r0, m) in blocks(seq) {
                let cols = r0 + m;
                // dP = dO·Vᵀ on rows r0..r0+m, columns 0..cols.
                // SAFETY: rows r0.. of dO and ds, rows 0..cols of V.
                unsafe {
                    product(
                        m,
                        cols,
                        d,
                        ds[r0 * seq..].as_mut_ptr(),
                        seq as isize,
                        g_ptr.offset(r0 as isize * g_rs),
                        (g_rs, g_cs),
                        v_ptr,
                        (v_cs, v_rs),
                        1.0,
                    );
                }
                // dS = P ⊙ (dP − rowsum(dO ⊙ O)), zero above the diagonal.
                for i in r0..cols {
                    let row: f32 = (0..d).map(|c| gv.at(b, h, i, c) * o[i * d + c]).sum();
                    let (live, future) = ds[i * seq..i * seq + cols].split_at_mut(i + 1);
                    for (x, &pij) in live.iter_mut().zip(&p[i * seq..=i * seq + i]) {
                        *x = pij * (*x - row);
                    }
                    future.fill(0.0);
                }
                // dQ̃ = s·dS·K̃ on rows r0..r0+m.
                // SAFETY: rows r0.. of ds (cols columns) and dq, rows 0..cols of kr.
                unsafe {
                    product(
                        m,
                        d,
                        cols,
                        dq[r0 * d..].as_mut_ptr(),
                        d as isize,
                        ds[r0 * seq..].as_ptr(),
                        (seq as isize, 1),
                        kr.as_ptr(),
                        (d as isize, 1),
                        scale,
                    );
                }
            }
            for (c0, m) in blocks(seq) {
                let rows = seq - c0;
                // dK̃ = dSᵀ·Q̃s and dV = Pᵀ·dO on rows c0..c0+m: only rows i ≥ c0 contribute.
                // SAFETY: the (rows × m) block of ds / p at (c0, c0), read transposed; rows
                // c0.. of qs and dO; rows c0..c0+m of dk and dv.
                unsafe {
                    product(
                        m,
                        d,
                        rows,
                        dk[c0 * d..].as_mut_ptr(),
                        d as isize,
                        ds[c0 * seq + c0..].as_ptr(),
                        (1, seq as isize),
                        qs[c0 * d..].as_ptr(),
                        (d as isize, 1),
                        1.0,
                    );
                    product(
                        m,
                        d,
                        rows,
                        dv[c0 * d..].as_mut_ptr(),
                        d as isize,
                        p[c0 * seq + c0..].as_ptr(),
                        (1, seq as isize),
                        g_ptr.offset(c0 as isize * g_rs),
                        (g_rs, g_cs),
                        1.0,
                    );
                }
            }
            let mut tmp = vec![0f32; d];
            for i in 0..seq {
                let (cr, sr) = (&cos_t[i * d..(i + 1) * d], &sin_t[i * d..(i + 1) * d]);
                for x in [&mut *dq, &mut *dk] {
                    let row = &mut x[i * d..(i + 1) * d];
                    tmp.copy_from_slice(row);
                    rope_row(|c| tmp[c], cr, sr, true, 1.0, row);
                }
            }
        });
    let dims = [batch, heads, seq, d];
    Some([tensor(dq, dims), tensor(dk, dims), tensor(dv, dims)])
}
