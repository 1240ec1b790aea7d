//! The Switch decoder-only causal language model.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor};

use super::block::{Block, FeedForward, Norm};
use super::config::{PositionKind, SwitchTransformerConfig};
use crate::config::Mode;
use crate::init::Init;
use crate::stats::RoutingStats;

/// Routing statistics of one sparse block.
#[derive(Debug, Clone)]
pub struct LayerRouting {
    /// 0-based block index.
    pub layer: usize,
    /// The block's routing statistics.
    pub stats: RoutingStats,
}

/// Logits and the auxiliary terms of one forward call.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// `[batch_size, seq_len, vocab_size]`.
    pub logits: Tensor<3>,
    /// Σ over sparse layers of the unscaled balance loss, `[1]` (0 for a dense model).
    pub balance_loss: Tensor<1>,
    /// Σ over sparse layers of the unscaled router z-loss, `[1]` (0 for a dense model).
    pub z_loss: Tensor<1>,
    /// Per sparse layer routing statistics.
    pub routing: Vec<LayerRouting>,
    /// The last block's FFN input after its norm, `[batch_size, seq_len, d_model]` (for a
    /// sparse last block, its router's input); only from
    /// [`SwitchTransformer::forward_with_last_ffn_input`], `None` otherwise.
    pub last_ffn_input: Option<Tensor<3>>,
}

/// The training loss and its parts, kept apart for logging.
#[derive(Debug, Clone)]
pub struct LossOutput {
    /// `ce + balance_coef · balance_loss + z_loss_coef · z_loss`, `[1]`.
    pub loss: Tensor<1>,
    /// Mean next-token cross-entropy (nats), `[1]` — the only term of evaluation perplexity.
    pub ce: Tensor<1>,
    /// Σ over sparse layers of the unscaled balance loss, `[1]`.
    pub balance_loss: Tensor<1>,
    /// Σ over sparse layers of the unscaled z-loss, `[1]`.
    pub z_loss: Tensor<1>,
    /// Per sparse layer routing statistics.
    pub routing: Vec<LayerRouting>,
}

/// Decoder-only causal LM: token embedding (+ learned positions) → pre-norm blocks (causal
/// self-attention; dense or Switch FFN) → final norm → LM head (tied to the embedding by
/// default).
#[derive(Module, Debug)]
pub struct SwitchTransformer {
    /// Token embedding, `[vocab_size, d_model]`.
    pub embedding: Param<Tensor<2>>,
    /// Learned positions, `[max_seq_len, d_model]` (`None` with RoPE).
    pub positions: Option<Param<Tensor<2>>>,
    /// Transformer blocks.
    pub blocks: Vec<Block>,
    /// Norm before the LM head.
    pub final_norm: Norm,
    /// Untied LM head, `[d_model, vocab_size]` (`None`: tied to the embedding).
    pub lm_head: Option<Param<Tensor<2>>>,
    /// Balance-loss coefficient α.
    pub balance_coef: f64,
    /// z-loss coefficient.
    pub z_loss_coef: f64,
}

impl SwitchTransformerConfig {
    /// Builds the model, every parameter drawn from the stream of `(seed, its weight-file
    /// name)` on the host ([`Init`]), so a seed gives the same weights on every backend and
    /// variants share the values of the parameters they have in common. Assumes
    /// [`SwitchTransformerConfig::validate`] passed.
    pub fn init(&self, seed: u64, device: &Device) -> SwitchTransformer {
        self.init_with(&Init::new(seed), device)
    }

    /// [`SwitchTransformerConfig::init`] from any [`Init`] (e.g. [`Init::skeleton`] before
    /// loading weights).
    pub fn init_with(&self, init: &Init, device: &Device) -> SwitchTransformer {
        let d = self.d_model;
        let s = self.init_scale;
        SwitchTransformer {
            embedding: init.truncated_normal(
                "embedding.weight",
                [self.vocab_size, d],
                d,
                s,
                device,
            ),
            positions: (self.positions == PositionKind::Learned).then(|| {
                init.truncated_normal("positions.weight", [self.max_seq_len, d], d, s, device)
            }),
            blocks: (0..self.n_layers)
                .map(|layer| Block::init(self, layer, init, device))
                .collect(),
            final_norm: Norm::init(self.norm, d, device),
            lm_head: (!self.tie_embeddings).then(|| {
                init.truncated_normal("lm_head.weight", [d, self.vocab_size], d, s, device)
            }),
            balance_coef: self.balance_coef,
            z_loss_coef: self.z_loss_coef,
        }
    }
}

impl SwitchTransformer {
    /// # Shapes
    /// - `tokens`: `[batch_size, seq_len]`
    /// - logits: `[batch_size, seq_len, vocab_size]`
    pub fn forward(&self, tokens: Tensor<2, Int>, mode: Mode) -> ModelOutput {
        self.forward_with(tokens, mode, None)
    }

    /// [`SwitchTransformer::forward`] that also returns the last block's FFN input after
    /// `ffn_norm` in [`ModelOutput::last_ffn_input`]: the key of kNN-LM, "the input to the final
    /// layer's FFN, after layer norm" (Khandelwal et al. 2020, Table 5). Logits, losses and
    /// statistics are those of `forward`.
    ///
    /// # Shapes
    /// - `tokens`: `[batch_size, seq_len]`
    /// - `last_ffn_input`: `[batch_size, seq_len, d_model]`
    pub fn forward_with_last_ffn_input(&self, tokens: Tensor<2, Int>, mode: Mode) -> ModelOutput {
        self.forward_keeping(tokens, mode, None, true)
    }

    /// [`SwitchTransformer::forward`] with the optimizer step's expert fractions of each
    /// sparse layer, in block order (`global_batch` balance scope; `[num_experts]` each).
    pub fn forward_with(
        &self,
        tokens: Tensor<2, Int>,
        mode: Mode,
        step_fractions: Option<&[Tensor<1>]>,
    ) -> ModelOutput {
        self.forward_keeping(tokens, mode, step_fractions, false)
    }

    /// The forward pass; `keep_last_ffn_input`: also return the last block's normed FFN input.
    fn forward_keeping(
        &self,
        tokens: Tensor<2, Int>,
        mode: Mode,
        step_fractions: Option<&[Tensor<1>]>,
        keep_last_ffn_input: bool,
    ) -> ModelOutput {
        let [batch_size, seq_len] = tokens.dims();
        let [_, d_model] = self.embedding.dims();
        let device = tokens.device();
        let mut x = self
            .embedding
            .val()
            .select(0, tokens.reshape([batch_size * seq_len])) // [batch_size · seq_len, d_model]
            .reshape([batch_size, seq_len, d_model]);
        if let Some(pos) = &self.positions {
            x = x + pos.val().narrow(0, 0, seq_len).unsqueeze_dim(0); // [1, seq_len, d_model]
        }
        let mut balance_loss = Tensor::<1>::zeros([1], &device);
        let mut z_loss = Tensor::<1>::zeros([1], &device);
        let mut routing = Vec::new();
        let mut fractions = step_fractions.map(|f| f.iter().cloned());
        let mut last_ffn_input = None;
        let last = self.blocks.len().saturating_sub(1);
        for (layer, block) in self.blocks.iter().enumerate() {
            let given = match (&block.ffn, fractions.as_mut()) {
                (FeedForward::Switch(_), Some(f)) => f.next(),
                _ => None,
            };
            let (next, switch) = if keep_last_ffn_input && layer == last {
                let (next, switch, ffn_input) = block.forward_with_ffn_input(x, mode, given);
                last_ffn_input = Some(ffn_input); // [batch_size, seq_len, d_model]
                (next, switch)
            } else {
                block.forward(x, mode, given)
            };
            x = next;
            if let Some(out) = switch {
                balance_loss = balance_loss + out.balance_loss;
                z_loss = z_loss + out.z_loss;
                routing.push(LayerRouting {
                    layer,
                    stats: out.stats,
                });
            }
        }
        let h = self.final_norm.forward(x); // [batch_size, seq_len, d_model]
        ModelOutput {
            logits: self.lm_logits(h),
            balance_loss,
            z_loss,
            routing,
            last_ffn_input,
        }
    }

    /// The LM head: logits of the final-normed hidden states, against the tied embedding's
    /// transpose or the untied `lm_head`.
    ///
    /// # Shapes
    /// - `h`: `[batch_size, seq_len, d_model]` → `[batch_size, seq_len, vocab_size]`
    pub fn lm_logits(&self, h: Tensor<3>) -> Tensor<3> {
        let head = match &self.lm_head {
            Some(w) => w.val(),
            None => self.embedding.val().transpose(), // [d_model, vocab_size]
        };
        super::project(h, head)
    }

    /// Next-token loss: `loss = CE + α · Σ balance + c_z · Σ z` (Switch eq. 4 summed over
    /// sparse layers; ST-MoE eq. 5), each term also returned alone.
    ///
    /// # Shapes
    /// - `tokens`, `targets`: `[batch_size, seq_len]`
    pub fn forward_loss(
        &self,
        tokens: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        mode: Mode,
    ) -> LossOutput {
        self.forward_loss_with(tokens, targets, mode, None)
    }

    /// [`SwitchTransformer::forward_loss`] with the step's expert fractions per sparse layer
    /// (see [`SwitchTransformer::forward_with`]).
    pub fn forward_loss_with(
        &self,
        tokens: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        mode: Mode,
        step_fractions: Option<&[Tensor<1>]>,
    ) -> LossOutput {
        let out = self.forward_with(tokens, mode, step_fractions);
        let ce = cross_entropy(out.logits, targets);
        let loss = ce.clone()
            + out.balance_loss.clone().mul_scalar(self.balance_coef)
            + out.z_loss.clone().mul_scalar(self.z_loss_coef);
        LossOutput {
            loss,
            ce,
            balance_loss: out.balance_loss,
            z_loss: out.z_loss,
            routing: out.routing,
        }
    }
}

impl SwitchTransformer {
    /// The sparse layers, in block order.
    pub fn switch_layers(&self) -> impl Iterator<Item = &crate::switch::SwitchLayer> {
        self.blocks.iter().filter_map(|b| match &b.ffn {
            FeedForward::Switch(layer) => Some(layer),
            FeedForward::Dense(_) => None,
        })
    }

    /// After an optimizer step, each sparse layer's selection bias: loss-free balancing moves
    /// it by `bias_update_rate · sign(mean − load)`, Sinkhorn selection folds in the step's
    /// shift ([`crate::switch::SwitchLayer::update_bias`]). `loads`: decisions per expert of
    /// the step and the step's mean Sinkhorn shift, `[num_experts]` each, one pair per sparse
    /// layer in block order. Layers without a bias are left as they are.
    pub fn update_expert_biases(&mut self, loads: &[(Tensor<1>, Option<Tensor<1>>)]) {
        let layers = self.blocks.iter_mut().filter_map(|b| match &mut b.ffn {
            FeedForward::Switch(layer) => Some(layer),
            FeedForward::Dense(_) => None,
        });
        for (layer, (load, shift)) in layers.zip(loads) {
            layer.update_bias(load.clone(), shift.clone());
        }
    }

    /// Whether any sparse layer keeps a loss-free selection bias.
    pub fn has_selection_bias(&self) -> bool {
        self.switch_layers().any(|l| l.router.bias.is_some())
    }
}

/// Mean cross-entropy (nats) of `logits` `[batch_size, seq_len, vocab_size]` against
/// `targets` `[batch_size, seq_len]`, `[1]`.
///
/// One fused op with the closed-form backward `(softmax − onehot) / n`
/// ([`crate::fused::cross_entropy_mean`]).
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [batch_size, seq_len, vocab_size] = logits.dims();
    let n = batch_size * seq_len;
    crate::fused::cross_entropy_mean(logits.reshape([n, vocab_size]), targets.reshape([n]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SwitchConfig;
    use burn::tensor::TensorData;

    /// The returned key equals the last block's normed FFN input computed by hand from the
    /// blocks (first `n_layers − 1` blocks, then the last block's attention sublayer and
    /// `ffn_norm`), and the logits equal plain `forward`'s bit for bit.
    #[test]
    fn last_ffn_input_is_the_normed_input_of_the_last_ffn() {
        let (batch_size, seq_len, d_model, vocab_size) = (2, 5, 16, 32);
        let config =
            SwitchTransformerConfig::new(vocab_size, d_model, 3, 2, 32, 8, SwitchConfig::new(4))
                .with_moe_every(1);
        let device = crate::test_device();
        let model = config.init(7, &device);
        let ids: Vec<i64> = (0..batch_size * seq_len)
            .map(|i| (i * 7 % vocab_size) as i64)
            .collect();
        let tokens =
            Tensor::<2, Int>::from_data(TensorData::new(ids, [batch_size, seq_len]), &device);
        let plain = model.forward(tokens.clone(), Mode::Eval);
        assert!(
            plain.last_ffn_input.is_none(),
            "plain forward keeps nothing"
        );
        let kept = model.forward_with_last_ffn_input(tokens.clone(), Mode::Eval);
        let key = kept.last_ffn_input.expect("kept");
        assert_eq!(key.dims(), [batch_size, seq_len, d_model]);
        let floats = |t: Tensor<3>| t.into_data().try_into_vec_as::<f32>().expect("f32");
        assert_eq!(
            floats(plain.logits),
            floats(kept.logits),
            "logits change with the key kept"
        );

        let mut x = model
            .embedding
            .val()
            .select(0, tokens.reshape([batch_size * seq_len]))
            .reshape([batch_size, seq_len, d_model]);
        let (last, first) = model.blocks.split_last().expect("3 blocks");
        for block in first {
            x = block.forward(x, Mode::Eval, None).0;
        }
        let x = x.clone() + last.attn.forward(last.attn_norm.forward(x));
        let expected = last.ffn_norm.forward(x);
        let diff = (key - expected).abs().max().into_scalar::<f32>();
        assert!(
            diff == 0.0,
            "key differs from the hand computation by {diff}"
        );
    }
}
