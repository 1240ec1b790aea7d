//! switchyard weights ↔ Qwen2-MoE tensors (names, layouts and the three value changes that
//! keep the computation identical). Table: `docs/weights.md`, "Hugging Face export".
//!
//! - Every matrix is transposed: switchyard multiplies `x · W` with `W: [in, out]`, PyTorch's
//!   `nn.Linear.weight` is `[out, in]`.
//! - Query and key projections are permuted within each head: switchyard's RoPE rotates the
//!   adjacent dimensions `(2i, 2i+1)`, transformers' `rotate_half` rotates `(i, i + d_head/2)`
//!   with the same frequency `θ_i`; putting switchyard's dimension `2i` at `i` and `2i+1` at
//!   `i + d_head/2` in both `q` and `k` turns one rotation into the other and leaves `q·k`
//!   unchanged.
//! - Qwen2-MoE multiplies the shared expert by `sigmoid(shared_expert_gate(x))`; switchyard's
//!   shared experts are always on. The gate is exported as zeros (`sigmoid(0) = 0.5` exactly)
//!   and the shared `down_proj` doubled, which is exact in floating point.

use std::collections::HashMap;

use super::config::HfConfig;

/// A host tensor: values (row-major) and shape.
pub type HostTensor = (Vec<f32>, Vec<usize>);

/// How a switchyard tensor's values become the transformers tensor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Copied as is (embeddings, norm scales).
    Same,
    /// `[in, out]` → `[out, in]`.
    Transpose,
    /// Transposed, then the output rows reordered per head from the adjacent-pair RoPE
    /// convention to the half-split one (`q_proj`, `k_proj`).
    TransposeRope,
    /// Transposed and doubled (the shared expert's `down_proj`, see the module doc).
    TransposeDouble,
}

/// The transformers name and transform of switchyard tensor `name` (docs/weights.md names);
/// `None` for tensors Qwen2-MoE has no place for (learned positions, LayerNorm biases, the
/// selection bias), which the config check refuses first.
pub fn hf_name(name: &str) -> Option<(String, Transform)> {
    use Transform::*;
    let parts: Vec<&str> = name.split('.').collect();
    let mapped = match parts.as_slice() {
        ["embedding", "weight"] => ("model.embed_tokens.weight".into(), Same),
        ["final_norm", "weight"] => ("model.norm.weight".into(), Same),
        ["lm_head", "weight"] => ("lm_head.weight".into(), Transpose),
        ["layers", l, rest @ ..] => {
            let (tail, transform) = layer_tensor(rest)?;
            (format!("model.layers.{l}.{tail}"), transform)
        }
        _ => return None,
    };
    Some(mapped)
}

fn layer_tensor(rest: &[&str]) -> Option<(String, Transform)> {
    use Transform::*;
    let proj = |w: &str| match w {
        "w1" => Some("gate_proj"),
        "w3" => Some("up_proj"),
        "w2" => Some("down_proj"),
        _ => None,
    };
    Some(match rest {
        ["attn_norm", "weight"] => ("input_layernorm.weight".into(), Same),
        ["ffn_norm", "weight"] => ("post_attention_layernorm.weight".into(), Same),
        ["attn", w] => {
            let (hf, t) = match *w {
                "wq" => ("q_proj", TransposeRope),
                "wk" => ("k_proj", TransposeRope),
                "wv" => ("v_proj", Transpose),
                "wo" => ("o_proj", Transpose),
                _ => return None,
            };
            (format!("self_attn.{hf}.weight"), t)
        }
        ["ffn", "router", "weight"] => ("mlp.gate.weight".into(), Transpose),
        ["ffn", "shared", w] => {
            let t = if *w == "w2" {
                TransposeDouble
            } else {
                Transpose
            };
            (format!("mlp.shared_expert.{}.weight", proj(w)?), t)
        }
        ["ffn", "experts", e, w] => (format!("mlp.experts.{e}.{}.weight", proj(w)?), Transpose),
        ["ffn", w] => (format!("mlp.{}.weight", proj(w)?), Transpose),
        _ => return None,
    })
}

/// Tensors Qwen2-MoE has and switchyard does not, all zeros: q/k/v biases (`qkv_bias`), each
/// sparse block's `shared_expert_gate` (`[1, hidden_size]`), and without shared experts a
/// zero-width shared expert (`[0, hidden_size]`, `[hidden_size, 0]`: it adds exactly 0).
pub fn zero_tensors(h: &HfConfig) -> Vec<(String, Vec<usize>)> {
    let d = h.hidden_size;
    let mut out = Vec::new();
    for l in 0..h.num_hidden_layers {
        let prefix = format!("model.layers.{l}");
        if h.qkv_bias {
            for p in ["q_proj", "k_proj", "v_proj"] {
                out.push((format!("{prefix}.self_attn.{p}.bias"), vec![d]));
            }
        }
        if !h.is_sparse(l) {
            continue;
        }
        out.push((
            format!("{prefix}.mlp.shared_expert_gate.weight"),
            vec![1, d],
        ));
        if h.shared_expert_intermediate_size == 0 {
            let shared = format!("{prefix}.mlp.shared_expert");
            out.push((format!("{shared}.gate_proj.weight"), vec![0, d]));
            out.push((format!("{shared}.up_proj.weight"), vec![0, d]));
            out.push((format!("{shared}.down_proj.weight"), vec![d, 0]));
        }
    }
    out
}

/// Applies `transform` to a switchyard tensor (`[in, out]` for matrices), giving the
/// transformers tensor. `n_heads` orders the RoPE rows.
pub fn export_tensor(t: HostTensor, transform: Transform, n_heads: usize) -> HostTensor {
    let (values, shape) = t;
    match transform {
        Transform::Same => (values, shape),
        Transform::Transpose => transpose(&values, &shape),
        Transform::TransposeDouble => {
            let (v, s) = transpose(&values, &shape);
            (v.into_iter().map(|x| x * 2.0).collect(), s)
        }
        Transform::TransposeRope => {
            let (v, s) = transpose(&values, &shape);
            let order = rope_order(s[0], n_heads);
            let cols = s[1];
            let rows: Vec<f32> = order
                .iter()
                .flat_map(|&src| v[src * cols..(src + 1) * cols].iter().copied())
                .collect();
            (rows, s)
        }
    }
}

/// The inverse of [`export_tensor`]: a transformers tensor back to switchyard's layout.
pub fn import_tensor(t: HostTensor, transform: Transform, n_heads: usize) -> HostTensor {
    let (values, shape) = t;
    match transform {
        Transform::Same => (values, shape),
        Transform::Transpose => transpose(&values, &shape),
        Transform::TransposeDouble => {
            let (v, s) = transpose(&values, &shape);
            (v.into_iter().map(|x| x * 0.5).collect(), s)
        }
        Transform::TransposeRope => {
            let cols = shape[1];
            let mut rows = vec![0.0; values.len()];
            for (dst, &src) in rope_order(shape[0], n_heads).iter().enumerate() {
                rows[src * cols..(src + 1) * cols]
                    .copy_from_slice(&values[dst * cols..(dst + 1) * cols]);
            }
            transpose(&rows, &shape)
        }
    }
}

/// For each output row `o = h · d_head + j` of a half-split (transformers) projection, the
/// switchyard column it comes from: `h · d_head + 2j` for `j < d_head / 2`, else
/// `h · d_head + 2(j − d_head/2) + 1`. `[d_model]`.
pub fn rope_order(d_model: usize, n_heads: usize) -> Vec<usize> {
    let d_head = d_model / n_heads;
    let half = d_head / 2;
    (0..d_model)
        .map(|o| {
            let (h, j) = (o / d_head, o % d_head);
            h * d_head + if j < half { 2 * j } else { 2 * (j - half) + 1 }
        })
        .collect()
}

/// `[r, c]` → `[c, r]`.
fn transpose(values: &[f32], shape: &[usize]) -> HostTensor {
    let [r, c] = [shape[0], shape[1]];
    let mut out = vec![0.0; values.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = values[i * c + j];
        }
    }
    (out, vec![c, r])
}

/// The transformers tensors of switchyard tensors `named` (`name → values, shape`), plus the
/// zero tensors of [`zero_tensors`], sorted by name.
pub fn to_hf_tensors(
    named: Vec<(String, HostTensor)>,
    h: &HfConfig,
) -> Result<Vec<(String, HostTensor)>, String> {
    let mut out = Vec::new();
    for (name, t) in named {
        let (hf, transform) = hf_name(&name)
            .ok_or_else(|| format!("tensor `{name}` has no Qwen2-MoE counterpart"))?;
        out.push((hf, export_tensor(t, transform, h.num_attention_heads)));
    }
    for (name, shape) in zero_tensors(h) {
        let n = shape.iter().product();
        out.push((name, (vec![0.0; n], shape)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// switchyard tensors (its names and layouts) from transformers tensors `file`, for the
/// switchyard tensors `expected` (`name → shape`, e.g. a skeleton model's). Errors give the
/// transformers tensor's name and what is wrong: missing, a shape other than the config's, a
/// non-zero value where switchyard has no weight, or a tensor the config has no place for.
pub fn from_hf_tensors(
    mut file: HashMap<String, HostTensor>,
    expected: &[(String, Vec<usize>)],
    h: &HfConfig,
) -> Result<HashMap<String, HostTensor>, (String, String)> {
    let mut take = |name: &str, want: &[usize]| -> Result<Vec<f32>, (String, String)> {
        let bad = |m: String| (name.to_string(), m);
        let (values, shape) = file
            .remove(name)
            .ok_or_else(|| bad("missing from the file".into()))?;
        if shape != want {
            return Err(bad(format!("is {shape:?}, the config needs {want:?}")));
        }
        Ok(values)
    };
    let mut out = HashMap::new();
    for (name, shape) in expected {
        let (hf, transform) = hf_name(name).ok_or_else(|| {
            (
                name.clone(),
                "switchyard tensor with no Qwen2-MoE counterpart".into(),
            )
        })?;
        let hf_shape = match transform {
            Transform::Same => shape.clone(),
            _ => vec![shape[1], shape[0]],
        };
        let values = take(&hf, &hf_shape)?;
        let t = import_tensor((values, hf_shape), transform, h.num_attention_heads);
        out.insert(name.clone(), t);
    }
    for (name, shape) in zero_tensors(h) {
        if take(&name, &shape)?.iter().any(|&v| v != 0.0) {
            return Err((name, zero_reason(&shape).into()));
        }
    }
    if let Some(name) = file.keys().min() {
        let message = if name == "lm_head.weight" {
            "is present although tie_word_embeddings is true; switchyard ties the head to \
             model.embed_tokens.weight"
        } else {
            "is not a tensor of this config (a checkpoint of another model?)"
        };
        return Err((name.clone(), message.into()));
    }
    Ok(out)
}

fn zero_reason(shape: &[usize]) -> &'static str {
    if shape.len() == 1 {
        "is not zero; switchyard's attention projections have no bias"
    } else {
        "is not zero; switchyard's shared experts are always on (gate sigmoid(0) = 0.5 with the \
         down projection doubled), it cannot compute a learned shared-expert gate"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_order_puts_adjacent_pairs_half_a_head_apart() {
        // Two heads of 4: switchyard pairs (0,1), (2,3) | (4,5), (6,7).
        assert_eq!(rope_order(8, 2), vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }

    #[test]
    fn every_transform_round_trips_bit_exactly() {
        let shape = vec![6, 8]; // [in, out]: 2 heads of 4
        let values: Vec<f32> = (0..48).map(|i| (i as f32 * 0.37).sin()).collect();
        for t in [
            Transform::Same,
            Transform::Transpose,
            Transform::TransposeRope,
            Transform::TransposeDouble,
        ] {
            let hf = export_tensor((values.clone(), shape.clone()), t, 2);
            let back = import_tensor(hf, t, 2);
            assert_eq!(back, (values.clone(), shape.clone()), "{t:?}");
        }
        // Row o of the exported q_proj is switchyard's column rope_order[o].
        let (hf, hf_shape) = export_tensor((values.clone(), shape), Transform::TransposeRope, 2);
        assert_eq!(hf_shape, vec![8, 6]);
        for (o, &src) in rope_order(8, 2).iter().enumerate() {
            for i in 0..6 {
                assert_eq!(hf[o * 6 + i], values[i * 8 + src], "row {o} input {i}");
            }
        }
    }

    #[test]
    fn names_follow_the_qwen2_moe_layout() {
        let cases = [
            ("embedding.weight", "model.embed_tokens.weight"),
            ("layers.3.attn.wq", "model.layers.3.self_attn.q_proj.weight"),
            ("layers.0.ffn.w3", "model.layers.0.mlp.up_proj.weight"),
            (
                "layers.1.ffn.router.weight",
                "model.layers.1.mlp.gate.weight",
            ),
            (
                "layers.1.ffn.experts.7.w2",
                "model.layers.1.mlp.experts.7.down_proj.weight",
            ),
            (
                "layers.1.ffn.shared.w1",
                "model.layers.1.mlp.shared_expert.gate_proj.weight",
            ),
            ("final_norm.weight", "model.norm.weight"),
        ];
        for (ours, theirs) in cases {
            assert_eq!(
                hf_name(ours).map(|m| m.0).as_deref(),
                Some(theirs),
                "{ours}"
            );
        }
        for unmapped in [
            "positions.weight",
            "layers.0.attn_norm.bias",
            "layers.1.ffn.router.bias",
        ] {
            assert!(hf_name(unmapped).is_none(), "{unmapped}");
        }
    }
}
