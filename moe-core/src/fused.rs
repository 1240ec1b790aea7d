//! Fused training ops with hand-written backward passes, as a burn backend extension.
//!
//! Under autodiff, burn builds attention and cross-entropy from many small tracked ops (the
//! softmax alone is max, sub, exp, sum, div, each with its own backward node and full-size
//! intermediate). These two ops compute the same functions on the inner backend's primitives
//! — the forward with the backend's fused softmax (burn-flex has a one-pass row kernel) — and
//! register one backward step each, whose gradients are the closed forms below. On burn-flex
//! the attention's forward and backward are one hand-written CPU kernel per (batch, head)
//! instead (`flex_attention.rs`, through [`FusedKernels`]): the score tile stays in cache
//! and the blocks above the diagonal are skipped; the cross-entropy is two row-parallel loops
//! (`flex_cross_entropy.rs`). Measured effect: `docs/performance.md`.
//!
//! - [`rope_causal_attention`]: `O = softmax(rope(Q)·rope(K)ᵀ·s + M)·V` with RoPE on adjacent
//!   pairs (docs/model.md) and the causal bias `M` (0 on and below the diagonal, −∞ above).
//!   Backward (`P` the probabilities, saved): `dV = Pᵀ·dO`, `dP = dO·Vᵀ`,
//!   `dS = P ⊙ (dP − rowsum(dO ⊙ O))`, `dQ = rope⁻¹(s·dS·K̃)`, `dK = rope⁻¹(dSᵀ·s·Q̃)` with
//!   `Q̃ = rope(Q)`, `K̃ = rope(K)`; `rope⁻¹` rotates by `−θ`.
//! - [`cross_entropy_mean`]: `mean_n (logsumexp(x_n) − x_n[t_n])`; backward
//!   `dx = (softmax(x) − onehot(t)) · g / N`.
//! - [`expert_ffn_top1`]: a top-1 switch layer's experts with relu, dispatch and gated combine
//!   included, on the kept tokens only; burn-flex only (`flex_experts.rs` has the formulas),
//!   other backends run `dispatch_fast` → `Experts::forward` → `combine_fast`
//!   ([`expert_ffn_top1_supported`] says which).
// The `NdArray` selector and impl name burn 0.22's deprecated ndarray backend, which
// switchyard still offers.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Scalar, TensorMetadata};
use burn::tensor::{IndexingUpdateOp, Int, Shape, Tensor};

/// The fused ops. Every backend uses the default bodies (built from the backend's own ops);
/// `Autodiff<B, C>` overrides them with a single tracked op and its closed-form backward.
#[backend_extension(
    Autodiff,
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(feature = "wgpu")
)]
pub trait FusedOps: Backend {
    /// Causal attention with RoPE, see the module docs.
    ///
    /// # Shapes
    /// - `q`, `k`, `v`: `[batch_size, n_heads, seq_len, d_head]`
    /// - `cos`, `sin`: `[seq_len, d_head]` (RoPE tables, [`rope_tables`])
    /// - `bias`: `[seq_len, seq_len]` (0 / −∞ causal mask)
    /// - output: `[batch_size, n_heads, seq_len, d_head]`
    fn rope_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        attention_forward::<Self>(q, k, v, &cos, &sin, bias, scale).output
    }

    /// Mean next-token cross-entropy, see the module docs.
    ///
    /// # Shapes
    /// - `logits`: `[num_tokens, vocab_size]`, `targets`: `[num_tokens, 1]`
    /// - output: `[1]`
    fn cross_entropy_mean(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        cross_entropy_forward::<Self>(logits, targets)
    }

    /// A top-1 switch layer's experts (relu FFNs), dispatch and gated combine included: token
    /// `t` gets `gate[t] · relu(x_t · W1_e) · W2_e` for the expert `e` its slot belongs to, or
    /// zeros when its decision was dropped. burn-flex only: other backends panic, and
    /// [`expert_ffn_top1_supported`] keeps callers off them.
    ///
    /// # Shapes
    /// - `tokens`: `[num_tokens, d_model]`, `w1`: `[E, d_model, d_ff]`, `w2`: `[E, d_ff, d_model]`
    /// - `gate`, `slot`: `[num_tokens]`; slot `(e · G + g) · C + c` with `G · C = rows_per_expert`,
    ///   `E · rows_per_expert` for a dropped decision ([`crate::plan::Assignments`])
    /// - output: `[num_tokens, d_model]`
    fn expert_ffn_top1(
        tokens: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        slot: IntTensor<Self>,
        rows_per_expert: usize,
    ) -> FloatTensor<Self> {
        let _ = (tokens, w1, w2, gate, slot, rows_per_expert);
        flex_only()
    }
}

/// The fused expert FFN's answer on a backend without its kernel.
fn flex_only() -> ! {
    panic!(
        "expert_ffn_top1 runs on burn-flex only; SwitchLayer checks expert_ffn_top1_supported \
         and uses dispatch_fast/Experts::forward/combine_fast elsewhere"
    )
}

/// The generic [`FusedOps::cross_entropy_mean`]: logsumexp and the target pick from the
/// backend's ops.
fn cross_entropy_forward<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
) -> FloatTensor<B> {
    let n = logits.shape().dims::<2>()[0];
    let dtype = logits.dtype();
    let max = B::float_max_dim(logits.clone(), 1); // [n, 1]
    let shifted = B::float_sub(logits, max.clone());
    let lse = B::float_log(B::float_sum_dim(B::float_exp(shifted.clone()), 1)); // [n, 1]
    let picked = B::float_gather(1, shifted, targets); // [n, 1]
    let nll = B::float_sub(lse, picked);
    B::float_div_scalar(B::float_sum(nll), Scalar::new(n as f64, &dtype))
}

/// The generic cross-entropy gradient `dx = (softmax(x) − onehot(t)) · g / N` (`grad`: `[1]`).
fn cross_entropy_backward<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let [n, _] = logits.shape().dims::<2>();
    let probs = B::softmax(logits, 1); // [n, vocab]
                                       // −1 at each target: a [n, 1] tensor of the probabilities' dtype and device.
    let picked = B::float_gather(1, probs.clone(), targets.clone());
    let minus_one = B::float_add_scalar(
        B::float_mul_scalar(picked, scalar::<B>(&probs, 0.0)),
        scalar::<B>(&probs, -1.0),
    );
    let d = B::float_scatter(1, probs, targets, minus_one, IndexingUpdateOp::Add);
    let factor = B::float_div_scalar(grad, scalar::<B>(&d, n as f64)); // [1]
    let factor = B::float_reshape(factor, Shape::new([1, 1]));
    B::float_mul(d, factor)
}

#[cfg(feature = "flex")]
impl FusedOps for burn::backend::Flex {
    fn rope_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        <Self as FusedKernels>::attention_forward(q, k, v, &cos, &sin, bias, scale).output
    }

    fn cross_entropy_mean(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        crate::flex_cross_entropy::forward(&logits, &targets)
            .unwrap_or_else(|| cross_entropy_forward::<Self>(logits, targets))
    }

    fn expert_ffn_top1(
        tokens: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        slot: IntTensor<Self>,
        rows_per_expert: usize,
    ) -> FloatTensor<Self> {
        crate::flex_experts::forward(&tokens, &w1, &w2, &gate, &slot, rows_per_expert).0
    }
}
#[cfg(feature = "ndarray")]
impl FusedOps for burn::backend::NdArray {}
#[cfg(feature = "wgpu")]
impl FusedOps for burn::backend::Cube {}

/// Where a backend computes the attention forward (with what its backward needs) and
/// backward, and the cross-entropy gradient: by default from the backend's own ops
/// ([`attention_forward`], [`attention_backward`], [`cross_entropy_backward`]); burn-flex runs
/// its own CPU kernels instead (`flex_attention.rs`: one task per (batch, head);
/// `flex_cross_entropy.rs`: row-parallel loops). An implementation detail of [`FusedOps`],
/// public only because the autodiff implementation names it in a bound.
#[doc(hidden)]
pub trait FusedKernels: Backend {
    /// See [`FusedOps::rope_causal_attention`]; returns the output and the saved tensors.
    fn attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        cos: &FloatTensor<Self>,
        sin: &FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f64,
    ) -> AttentionSaved<Self> {
        attention_forward::<Self>(q, k, v, cos, sin, bias, scale)
    }

    /// Gradients of `q`, `k`, `v` from the output gradient `grad`.
    fn attention_backward(
        s: AttentionSaved<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        attention_backward::<Self>(s, grad)
    }

    /// Gradient of [`FusedOps::cross_entropy_mean`] with respect to the logits, from the
    /// output gradient `grad` (`[1]`).
    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        cross_entropy_backward::<Self>(logits, targets, grad)
    }

    /// See [`FusedOps::expert_ffn_top1`]; returns the output and the saved tensors.
    fn experts_forward(
        tokens: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        slot: IntTensor<Self>,
        rows_per_expert: usize,
    ) -> ExpertsSaved<Self> {
        let _ = (tokens, w1, w2, gate, slot, rows_per_expert);
        flex_only()
    }

    /// Gradients of `tokens`, `w1`, `w2`, `gate` from the output gradient `grad`.
    fn experts_backward(s: ExpertsSaved<Self>, grad: FloatTensor<Self>) -> [FloatTensor<Self>; 4] {
        let _ = (s, grad);
        flex_only()
    }
}

#[cfg(feature = "ndarray")]
impl FusedKernels for burn::backend::NdArray {}
#[cfg(feature = "wgpu")]
impl FusedKernels for burn::backend::Cube {}

#[cfg(feature = "flex")]
impl FusedKernels for burn::backend::Flex {
    fn attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        cos: &FloatTensor<Self>,
        sin: &FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f64,
    ) -> AttentionSaved<Self> {
        if !crate::flex_attention::supports(&q, &k, &v) {
            return attention_forward::<Self>(q, k, v, cos, sin, bias, scale);
        }
        crate::flex_attention::forward(&q, &k, v, cos, sin, scale)
    }

    fn attention_backward(
        s: AttentionSaved<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        match crate::flex_attention::backward(&s, &grad) {
            Some(grads) => grads,
            None => attention_backward::<Self>(s, grad),
        }
    }

    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        crate::flex_cross_entropy::backward(&logits, &targets, &grad)
            .unwrap_or_else(|| cross_entropy_backward::<Self>(logits, targets, grad))
    }

    fn experts_forward(
        tokens: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        slot: IntTensor<Self>,
        rows_per_expert: usize,
    ) -> ExpertsSaved<Self> {
        let (output, act, y) =
            crate::flex_experts::forward(&tokens, &w1, &w2, &gate, &slot, rows_per_expert);
        ExpertsSaved {
            tokens,
            w1,
            w2,
            gate,
            slot,
            rows_per_expert,
            act,
            y,
            output,
        }
    }

    fn experts_backward(s: ExpertsSaved<Self>, grad: FloatTensor<Self>) -> [FloatTensor<Self>; 4] {
        crate::flex_experts::backward(
            &s.tokens,
            &s.w1,
            &s.w2,
            &s.gate,
            &s.slot,
            s.rows_per_expert,
            &s.act,
            &s.y,
            &grad,
        )
    }
}

/// The forward's outputs a backward pass needs.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct AttentionSaved<B: Backend> {
    /// `rope(Q) · s`, `rope(K)`, `V`.
    pub(crate) qs: FloatTensor<B>,
    pub(crate) kr: FloatTensor<B>,
    pub(crate) v: FloatTensor<B>,
    /// Attention probabilities `[batch, heads, seq, seq]`.
    pub(crate) probs: FloatTensor<B>,
    /// The output.
    pub(crate) output: FloatTensor<B>,
    pub(crate) cos: FloatTensor<B>,
    pub(crate) sin: FloatTensor<B>,
    pub(crate) scale: f64,
}

/// What the expert FFN's backward needs: its inputs, and per kept row (experts in order,
/// slots ascending) `relu(H)` (`[kept, d_ff]`) and the expert output `Y` (`[kept, d_model]`).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct ExpertsSaved<B: Backend> {
    pub(crate) tokens: FloatTensor<B>,
    pub(crate) w1: FloatTensor<B>,
    pub(crate) w2: FloatTensor<B>,
    pub(crate) gate: FloatTensor<B>,
    pub(crate) slot: IntTensor<B>,
    pub(crate) rows_per_expert: usize,
    pub(crate) act: FloatTensor<B>,
    pub(crate) y: FloatTensor<B>,
    /// The output, `[num_tokens, d_model]`.
    pub(crate) output: FloatTensor<B>,
}

fn scalar<B: Backend>(x: &FloatTensor<B>, v: f64) -> Scalar {
    Scalar::new(v, &x.dtype())
}

/// `[seq, d]` → `[1, 1, seq, d]`.
fn lift<B: Backend>(t: &FloatTensor<B>) -> FloatTensor<B> {
    let [s, d] = t.shape().dims::<2>();
    B::float_reshape(t.clone(), Shape::new([1, 1, s, d]))
}

/// Rotates adjacent pairs `(2i, 2i+1)` of the last axis by `±θ`: `x·cos + swap(x)·sin'`, with
/// `swap` exchanging the two members of every pair and `sin' = (−sin, +sin)` per pair for `+θ`
/// (`(+sin, −sin)` for `−θ`).
fn rotate<B: Backend>(
    x: FloatTensor<B>,
    cos: &FloatTensor<B>,
    sin: &FloatTensor<B>,
    inverse: bool,
) -> FloatTensor<B> {
    let shape = x.shape();
    let dims = shape.dims::<4>();
    let pairs = B::float_reshape(
        x.clone(),
        Shape::new([dims[0], dims[1], dims[2], dims[3] / 2, 2]),
    );
    let swapped = B::float_reshape(B::float_flip(pairs, &[4]), shape);
    let sin = if inverse {
        B::float_neg(sin.clone())
    } else {
        sin.clone()
    };
    B::float_add(
        B::float_mul(x, lift::<B>(cos)),
        B::float_mul(swapped, lift::<B>(&sin)),
    )
}

fn attention_forward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    cos: &FloatTensor<B>,
    sin: &FloatTensor<B>,
    bias: FloatTensor<B>,
    scale: f64,
) -> AttentionSaved<B> {
    let qr = rotate::<B>(q, cos, sin, false);
    let qs = B::float_mul_scalar(qr.clone(), scalar::<B>(&qr, scale)); // [b, h, t, d]
    let kr = rotate::<B>(k, cos, sin, false); // [b, h, t, d]
    let scores = B::float_matmul(qs.clone(), B::float_swap_dims(kr.clone(), 2, 3)); // [b, h, t, t]
    let [t, _] = bias.shape().dims::<2>();
    let bias = B::float_reshape(bias, Shape::new([1, 1, t, t]));
    let probs = B::softmax(B::float_add(scores, bias), 3); // [b, h, t, t]
    let output = B::float_matmul(probs.clone(), v.clone()); // [b, h, t, d]
    AttentionSaved {
        qs,
        kr,
        v,
        probs,
        output,
        cos: cos.clone(),
        sin: sin.clone(),
        scale,
    }
}

/// Gradients of `q`, `k`, `v` from the output gradient `grad`.
fn attention_backward<B: Backend>(
    s: AttentionSaved<B>,
    grad: FloatTensor<B>,
) -> [FloatTensor<B>; 3] {
    let d_v = B::float_matmul(B::float_swap_dims(s.probs.clone(), 2, 3), grad.clone()); // [b, h, t, d]
    let d_p = B::float_matmul(grad.clone(), B::float_swap_dims(s.v, 2, 3)); // [b, h, t, t]
    let row = B::float_sum_dim(B::float_mul(grad, s.output), 3); // [b, h, t, 1]
    let d_s = B::float_mul(s.probs, B::float_sub(d_p, row)); // [b, h, t, t]
    let d_qr = B::float_matmul(d_s.clone(), s.kr); // [b, h, t, d]
    let d_qr = B::float_mul_scalar(d_qr.clone(), scalar::<B>(&d_qr, s.scale));
    let d_kr = B::float_matmul(B::float_swap_dims(d_s, 2, 3), s.qs); // [b, h, t, d]
    let d_q = rotate::<B>(d_qr, &s.cos, &s.sin, true);
    let d_k = rotate::<B>(d_kr, &s.cos, &s.sin, true);
    [d_q, d_k, d_v]
}

impl<B: Backend + FusedOps + FusedKernels, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn rope_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Attention;

        impl<B: Backend + FusedKernels> Backward<B, 3> for Attention {
            type State = AttentionSaved<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                let [d_q, d_k, d_v] = B::attention_backward(ops.state, grad);
                let [q, k, v] = ops.parents;
                for (parent, g) in [(q, d_q), (k, d_k), (v, d_v)] {
                    if let Some(node) = parent {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        let (q, q_node) = q.into_parts();
        let (k, k_node) = k.into_parts();
        let (v, v_node) = v.into_parts();
        let saved = B::attention_forward(
            q,
            k,
            v,
            cos.primitive(),
            sin.primitive(),
            bias.into_primitive(),
            scale,
        );
        let output = saved.output.clone();
        match Attention
            .prepare::<C>([q_node, k_node, v_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(saved, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn cross_entropy_mean(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct CrossEntropy;

        impl<B: Backend + FusedKernels> Backward<B, 1> for CrossEntropy {
            type State = (FloatTensor<B>, IntTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node); // [1]
                let [parent] = ops.parents;
                let Some(node) = parent else { return };
                let (logits, targets) = ops.state;
                grads.register::<B>(node.id, B::cross_entropy_backward(logits, targets, grad));
            }
        }

        let (logits, node) = logits.into_parts();
        let loss = B::cross_entropy_mean(logits.clone(), targets.clone());
        match CrossEntropy.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((logits, targets), loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        }
    }

    fn expert_ffn_top1(
        tokens: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        slot: IntTensor<Self>,
        rows_per_expert: usize,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ExpertFfn;

        impl<B: Backend + FusedKernels> Backward<B, 4> for ExpertFfn {
            type State = ExpertsSaved<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 4>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                let gradients = B::experts_backward(ops.state, grad);
                for (parent, g) in ops.parents.into_iter().zip(gradients) {
                    if let Some(node) = parent {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        let (tokens, tokens_node) = tokens.into_parts();
        let (w1, w1_node) = w1.into_parts();
        let (w2, w2_node) = w2.into_parts();
        let (gate, gate_node) = gate.into_parts();
        let prepared = ExpertFfn
            .prepare::<C>([tokens_node, w1_node, w2_node, gate_node])
            .compute_bound()
            .stateful();
        match prepared {
            OpsKind::Tracked(prep) => {
                let saved = B::experts_forward(tokens, w1, w2, gate, slot, rows_per_expert);
                let output = saved.output.clone();
                prep.finish(saved, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::expert_ffn_top1(
                tokens,
                w1,
                w2,
                gate,
                slot,
                rows_per_expert,
            )),
        }
    }
}

/// RoPE tables `cos`, `sin` of shape `[seq_len, d_head]` for positions `0..seq_len`: entry
/// `(p, 2i)` and `(p, 2i+1)` hold `cos(p·θ_i)`, and `sin'` is `−sin(p·θ_i)` at `2i` and
/// `+sin(p·θ_i)` at `2i+1`, with `θ_i = 10000^(−2i/d_head)` (docs/model.md).
pub fn rope_tables(
    seq_len: usize,
    d_head: usize,
    device: &burn::tensor::Device,
) -> (Tensor<2>, Tensor<2>) {
    let mut cos = Vec::with_capacity(seq_len * d_head);
    let mut sin = Vec::with_capacity(seq_len * d_head);
    for p in 0..seq_len {
        for i in 0..d_head / 2 {
            let theta = 10000f64.powf(-2.0 * i as f64 / d_head as f64);
            let angle = p as f64 * theta;
            cos.extend([angle.cos() as f32; 2]);
            sin.extend([-angle.sin() as f32, angle.sin() as f32]);
        }
    }
    let table = |v: Vec<f32>| {
        Tensor::from_data(burn::tensor::TensorData::new(v, [seq_len, d_head]), device)
    };
    (table(cos), table(sin))
}

/// [`FusedOps::rope_causal_attention`] on tensors (`cos`, `sin`: [`rope_tables`] rows
/// `0..seq_len`).
pub fn rope_causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    cos: Tensor<2>,
    sin: Tensor<2>,
    scale: f64,
) -> Tensor<4> {
    let [_, _, seq_len, _] = q.dims();
    let device = q.device();
    let future =
        burn::tensor::Tensor::<2, burn::tensor::Bool>::tril_mask([seq_len, seq_len], 0, &device);
    let bias = Tensor::<2>::zeros([seq_len, seq_len], &device).mask_fill(future, f32::NEG_INFINITY);
    Tensor::from_dispatch(<Dispatch as FusedOps>::rope_causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        cos.into_dispatch(),
        sin.into_dispatch(),
        bias.into_dispatch(),
        scale,
    ))
}

/// [`FusedOps::cross_entropy_mean`] on tensors.
///
/// # Shapes
/// - `logits`: `[num_tokens, vocab_size]`, `targets`: `[num_tokens]` → `[1]`
pub fn cross_entropy_mean(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n] = targets.dims();
    Tensor::from_dispatch(<Dispatch as FusedOps>::cross_entropy_mean(
        logits.into_dispatch(),
        targets.reshape([n, 1]).into_dispatch(),
    ))
}

/// Whether [`expert_ffn_top1`] runs on `device`: burn-flex (with or without autodiff).
pub fn expert_ffn_top1_supported(device: &burn::tensor::Device) -> bool {
    crate::device::is_flex(device)
}

/// [`FusedOps::expert_ffn_top1`] on tensors: a top-1 switch layer's relu experts with dispatch
/// and gated combine, on burn-flex ([`expert_ffn_top1_supported`]).
///
/// # Shapes
/// - `tokens`: `[num_tokens, d_model]`, `w1`: `[E, d_model, d_ff]`, `w2`: `[E, d_ff, d_model]`
/// - `gate`, `slot`: `[num_tokens]` (slot `E · rows_per_expert` for a dropped decision)
/// - output: `[num_tokens, d_model]`
pub fn expert_ffn_top1(
    tokens: Tensor<2>,
    w1: Tensor<3>,
    w2: Tensor<3>,
    gate: Tensor<1>,
    slot: Tensor<1, Int>,
    rows_per_expert: usize,
) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::expert_ffn_top1(
        tokens.into_dispatch(),
        w1.into_dispatch(),
        w2.into_dispatch(),
        gate.into_dispatch(),
        slot.into_dispatch(),
        rows_per_expert,
    ))
}
