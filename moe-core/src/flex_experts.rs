//! The experts of a top-1 switch layer for burn-flex as one CPU kernel: dispatch, both expert
//! GEMMs, the relu and the gated combine in the forward, and the closed-form backward, on the
//! kept tokens only ([`crate::fused::expert_ffn_top1`]).
//!
//! Built from burn ops (`dispatch_fast` → `Experts::forward` → `combine_fast`), every expert
//! computes all `G·C` rows of its capacity buffer (1.25× the tokens at capacity factor 1.25,
//! empty slots included), the batched `[E, G·C, ·]` products run slower than 2-D ones
//! (docs/performance.md "Limits"), and dispatch, combine and their backward passes each write a
//! full-size buffer. Here each expert is one task on rayon's pool: it gathers its kept tokens
//! (in slot order) into one block, runs 2-D GEMMs of exactly that many rows, and the combine
//! writes each token's gated row once.
//!
//! Expert `e` with kept tokens `X` (`n_e × d`, rows in slot order) and gates `g`:
//! - forward: `H = X·W1_e`, `A = relu(H)`, `Y = A·W2_e`, `out[t] = g_t·Y[t]`; a dropped token's
//!   row is 0 (it rides the residual).
//! - backward from `dout`: `dY[t] = g_t·dout[t]`, `dg_t = ⟨Y[t], dout[t]⟩`,
//!   `dH = (dY·W2_eᵀ) ⊙ 1[H > 0]`, `dW2_e = Aᵀ·dY`, `dW1_e = Xᵀ·dH`, `dX = dH·W1_eᵀ`; dropped
//!   tokens get zero gradients.
//!
//! Same functions as the generic path (summation order differs: equal to float rounding,
//! `tests/fused_ops.rs`).

use std::borrow::Cow;

use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, TensorData};
use rayon::prelude::*;

use crate::flex_math::{
    contiguous_f32, dot, int_values, matmul,
    Operand::{N, T},
};

/// The kept decisions, grouped by expert in slot order.
struct Rows {
    /// Token of each kept row: expert 0's rows first, slots ascending within an expert.
    token: Vec<usize>,
    /// Expert `e`'s rows are `offset[e]..offset[e + 1]`.
    offset: Vec<usize>,
    /// Row of each token, `None` when its decision was dropped.
    row_of: Vec<Option<usize>>,
}

impl Rows {
    /// From each token's slot (`experts · rows_per_expert` marks a dropped decision).
    ///
    /// # Panics
    /// On a slot outside `0..=experts · rows_per_expert` or two tokens in one slot: a plan
    /// never makes either.
    fn new(slot: &[i64], experts: usize, rows_per_expert: usize) -> Rows {
        let trash = experts * rows_per_expert;
        let mut kept: Vec<(usize, usize)> = Vec::with_capacity(slot.len());
        for (t, &s) in slot.iter().enumerate() {
            let s = usize::try_from(s)
                .ok()
                .filter(|&s| s <= trash)
                .unwrap_or_else(|| panic!("slot {s} of token {t} outside 0..={trash}"));
            if s < trash {
                kept.push((s, t));
            }
        }
        kept.sort_unstable();
        let mut offset = vec![0; experts + 1];
        for pair in kept.windows(2) {
            assert_ne!(pair[0].0, pair[1].0, "two tokens in slot {}", pair[0].0);
        }
        for &(s, _) in &kept {
            offset[s / rows_per_expert + 1] += 1;
        }
        for e in 0..experts {
            offset[e + 1] += offset[e];
        }
        let mut row_of = vec![None; slot.len()];
        let token: Vec<usize> = kept.into_iter().map(|(_, t)| t).collect();
        for (r, &t) in token.iter().enumerate() {
            row_of[t] = Some(r);
        }
        Rows {
            token,
            offset,
            row_of,
        }
    }

    fn experts(&self) -> usize {
        self.offset.len() - 1
    }

    /// Expert `e`'s tokens and its first row.
    fn of(&self, e: usize) -> (&[usize], usize) {
        let (start, end) = (self.offset[e], self.offset[e + 1]);
        (&self.token[start..end], start)
    }

    /// `buf` (`width` values per row) cut into each expert's rows.
    fn split<'a>(&self, mut buf: &'a mut [f32], width: usize) -> Vec<&'a mut [f32]> {
        let mut parts = Vec::with_capacity(self.experts());
        for e in 0..self.experts() {
            let len = (self.offset[e + 1] - self.offset[e]) * width;
            let (head, tail) = std::mem::take(&mut buf).split_at_mut(len);
            parts.push(head);
            buf = tail;
        }
        parts
    }

    /// `[num_tokens, width]`: each kept token's row of `per_row` (`[kept, width]`), zeros for
    /// dropped tokens.
    fn scatter(&self, per_row: &[f32], width: usize, scale: Option<&[f32]>) -> Vec<f32> {
        let mut out = vec![0f32; self.row_of.len() * width];
        out.par_chunks_mut(width)
            .zip(self.row_of.par_iter())
            .enumerate()
            .for_each(|(t, (o, row))| {
                if let Some(r) = *row {
                    let src = &per_row[r * width..(r + 1) * width];
                    let g = scale.map_or(1.0, |s| s[t]);
                    for (o, &v) in o.iter_mut().zip(src) {
                        *o = g * v;
                    }
                }
            });
        out
    }
}

/// Rows `tokens` of the row-major `x` (`width` wide), stacked.
fn gather(x: &[f32], tokens: &[usize], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(tokens.len() * width);
    for &t in tokens {
        out.extend_from_slice(&x[t * width..(t + 1) * width]);
    }
    out
}

fn tensor<const D: usize>(data: Vec<f32>, dims: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, Shape::new(dims)))
}

/// The op's inputs as row-major values, their sizes and the kept rows.
struct Inputs<'a> {
    /// Tokens, model width, experts, hidden width.
    n: usize,
    d: usize,
    e: usize,
    f: usize,
    x: Cow<'a, [f32]>,
    w1: Cow<'a, [f32]>,
    w2: Cow<'a, [f32]>,
    gate: Cow<'a, [f32]>,
    rows: Rows,
}

impl<'a> Inputs<'a> {
    fn read(
        tokens: &'a FlexTensor,
        w1: &'a FlexTensor,
        w2: &'a FlexTensor,
        gate: &'a FlexTensor,
        slot: &FlexTensor,
        rows_per_expert: usize,
    ) -> Self {
        let [n, d] = tokens.layout().shape().dims();
        let [e, _, f] = w1.layout().shape().dims();
        let slot = int_values(slot).expect("slots are an i64 or i32 tensor");
        Inputs {
            n,
            d,
            e,
            f,
            x: contiguous_f32(tokens),
            w1: contiguous_f32(w1),
            w2: contiguous_f32(w2),
            gate: contiguous_f32(gate),
            rows: Rows::new(&slot, e, rows_per_expert),
        }
    }
}

/// Forward: the output and what the backward needs, `(out, act, y)`: `act = relu(H)` and `Y`
/// of the kept rows, `[kept, d_ff]` and `[kept, d_model]`, experts in order.
///
/// # Shapes
/// - `tokens`: `[num_tokens, d_model]`, `w1`: `[E, d_model, d_ff]`, `w2`: `[E, d_ff, d_model]`
/// - `gate`, `slot`: `[num_tokens]`
/// - output: `[num_tokens, d_model]`
pub(crate) fn forward(
    tokens: &FlexTensor,
    w1: &FlexTensor,
    w2: &FlexTensor,
    gate: &FlexTensor,
    slot: &FlexTensor,
    rows_per_expert: usize,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let Inputs {
        n,
        d,
        e: _,
        f,
        x,
        w1,
        w2,
        gate,
        rows,
    } = Inputs::read(tokens, w1, w2, gate, slot, rows_per_expert);
    let kept = rows.token.len();
    let mut act = vec![0f32; kept * f];
    let mut y = vec![0f32; kept * d];
    rows.split(&mut act, f)
        .into_par_iter()
        .zip(rows.split(&mut y, d))
        .enumerate()
        .for_each(|(ex, (a, y))| {
            let (toks, _) = rows.of(ex);
            let m = toks.len();
            if m == 0 {
                return;
            }
            let xe = gather(&x, toks, d);
            matmul(a, (m, d, f), N(&xe), N(&w1[ex * d * f..]));
            // An unconditional store of a select: vectorised and branch-free (a branch on the
            // sign of random pre-activations mispredicts half the time).
            for v in a.iter_mut() {
                *v = if *v < 0.0 { 0.0 } else { *v };
            }
            matmul(y, (m, f, d), N(a), N(&w2[ex * f * d..]));
        });
    let out = rows.scatter(&y, d, Some(&gate));
    debug_assert_eq!(out.len(), n * d);
    (
        tensor(out, [n, d]),
        tensor(act, [kept, f]),
        tensor(y, [kept, d]),
    )
}

/// Backward: gradients of `tokens`, `w1`, `w2` and `gate` from the output gradient `grad`
/// (`[num_tokens, d_model]`), with `act` and `y` from [`forward`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    tokens: &FlexTensor,
    w1: &FlexTensor,
    w2: &FlexTensor,
    gate: &FlexTensor,
    slot: &FlexTensor,
    rows_per_expert: usize,
    act: &FlexTensor,
    y: &FlexTensor,
    grad: &FlexTensor,
) -> [FlexTensor; 4] {
    let Inputs {
        n,
        d,
        e,
        f,
        x,
        w1,
        w2,
        gate,
        rows,
    } = Inputs::read(tokens, w1, w2, gate, slot, rows_per_expert);
    let (act, y, dout) = (contiguous_f32(act), contiguous_f32(y), contiguous_f32(grad));
    let kept = rows.token.len();
    let mut dw1 = vec![0f32; e * d * f];
    let mut dw2 = vec![0f32; e * f * d];
    let mut dx = vec![0f32; kept * d];
    let mut dg = vec![0f32; kept];
    dw1.par_chunks_mut(d * f)
        .zip(dw2.par_chunks_mut(f * d))
        .zip(rows.split(&mut dx, d))
        .zip(rows.split(&mut dg, 1))
        .enumerate()
        .for_each(|(ex, (((dw1, dw2), dx), dg))| {
            let (toks, first) = rows.of(ex);
            let m = toks.len();
            if m == 0 {
                return;
            }
            let a = &act[first * f..(first + m) * f];
            let ye = &y[first * d..(first + m) * d];
            let mut dy = vec![0f32; m * d];
            for (r, &t) in toks.iter().enumerate() {
                let go = &dout[t * d..(t + 1) * d];
                let yr = &ye[r * d..(r + 1) * d];
                dg[r] = dot(yr, go);
                for (o, &v) in dy[r * d..(r + 1) * d].iter_mut().zip(go) {
                    *o = gate[t] * v;
                }
            }
            let (w1e, w2e) = (&w1[ex * d * f..], &w2[ex * f * d..]);
            let mut dh = vec![0f32; m * f];
            // dH = dY · W2ᵀ, then the relu mask, branch-free like the forward's relu; a NaN
            // activation passes its gradient on, as burn-flex's `relu_backward` does.
            matmul(&mut dh, (m, d, f), N(&dy), T(w2e));
            for (g, &a) in dh.iter_mut().zip(a) {
                *g = if a > 0.0 || a.is_nan() { *g } else { 0.0 };
            }
            // dW2 = Aᵀ · dY, dW1 = Xᵀ · dH, dX = dH · W1ᵀ.
            matmul(dw2, (f, m, d), T(a), N(&dy));
            let xe = gather(&x, toks, d);
            matmul(dw1, (d, m, f), T(&xe), N(&dh));
            matmul(dx, (m, f, d), N(&dh), T(w1e));
        });
    [
        tensor(rows.scatter(&dx, d, None), [n, d]),
        tensor(dw1, [e, d, f]),
        tensor(dw2, [e, f, d]),
        tensor(rows.scatter(&dg, 1, None), [n]),
    ]
}
