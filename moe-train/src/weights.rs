//! Model weights as safetensors, one tensor per named matrix, experts stored one by one so
//! other tools can read them. Names and layouts: `docs/weights.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::{LayerNorm, RmsNorm};
use burn::tensor::{Device, Tensor, TensorData};
use moe_core::model::{FeedForward, Norm, SwitchTransformer, SwitchTransformerConfig};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// Metadata key holding the model config (JSON) in exported files.
pub const CONFIG_KEY: &str = "switchyard.config";

/// Weight-file errors, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a safetensors file, or a tensor is malformed.
    #[error("{path}: not a valid safetensors file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A tensor the config needs is absent or has the wrong shape.
    #[error("{path}: tensor `{name}`: {message}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// What was wrong.
        message: String,
    },
}

/// Whether every weight of `model` is finite (one device read-back for the whole model).
pub fn is_finite<M: burn::module::Module>(model: &M) -> bool {
    struct Check {
        sum: Option<Tensor<1>>,
    }
    impl burn::module::ModuleVisitor for Check {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            // x · 0 is 0 for finite x and NaN for NaN or ±∞.
            let probe = param.val().detach().mul_scalar(0.0).sum(); // [1]
            self.sum = Some(match self.sum.take() {
                Some(s) => s + probe,
                None => probe,
            });
        }
    }
    let mut check = Check { sum: None };
    model.visit(&mut check);
    check.sum.is_none_or(|s| {
        s.into_data()
            .try_into_vec_as::<f32>()
            .is_ok_and(|v| v[0] == 0.0)
    })
}

/// Every weight of `model` under its exported name, experts split one per tensor.
pub fn named_tensors(model: &SwitchTransformer) -> Vec<(String, TensorData)> {
    let mut out = Vec::new();
    let mut put = |name: String, data: TensorData| out.push((name, data));
    put("embedding.weight".into(), model.embedding.val().into_data());
    if let Some(p) = &model.positions {
        put("positions.weight".into(), p.val().into_data());
    }
    for (l, block) in model.blocks.iter().enumerate() {
        norm_tensors(&block.attn_norm, &format!("layers.{l}.attn_norm"), &mut put);
        for (n, w) in [
            ("wq", &block.attn.wq),
            ("wk", &block.attn.wk),
            ("wv", &block.attn.wv),
            ("wo", &block.attn.wo),
        ] {
            put(format!("layers.{l}.attn.{n}"), w.val().into_data());
        }
        norm_tensors(&block.ffn_norm, &format!("layers.{l}.ffn_norm"), &mut put);
        match &block.ffn {
            FeedForward::Dense(ffn) => {
                put(format!("layers.{l}.ffn.w1"), ffn.w1.val().into_data());
                if let Some(w3) = &ffn.w3 {
                    put(format!("layers.{l}.ffn.w3"), w3.val().into_data());
                }
                put(format!("layers.{l}.ffn.w2"), ffn.w2.val().into_data());
            }
            FeedForward::Switch(layer) => {
                put(
                    format!("layers.{l}.ffn.router.weight"),
                    layer.router.weight.val().into_data(),
                );
                if let Some(bias) = &layer.router.bias {
                    put(
                        format!("layers.{l}.ffn.router.bias"),
                        bias.val().into_data(),
                    );
                }
                if let Some(shared) = &layer.shared {
                    put(
                        format!("layers.{l}.ffn.shared.w1"),
                        shared.w1.val().into_data(),
                    );
                    if let Some(w3) = &shared.w3 {
                        put(format!("layers.{l}.ffn.shared.w3"), w3.val().into_data());
                    }
                    put(
                        format!("layers.{l}.ffn.shared.w2"),
                        shared.w2.val().into_data(),
                    );
                }
                let ex = &layer.experts;
                let stacks = [
                    ("w1", Some(&ex.w1)),
                    ("w3", ex.w3.as_ref()),
                    ("w2", Some(&ex.w2)),
                ];
                for (n, stack) in stacks {
                    let Some(stack) = stack else { continue };
                    for (e, w) in stack.val().iter_dim(0).enumerate() {
                        put(
                            format!("layers.{l}.ffn.experts.{e}.{n}"),
                            w.squeeze_dim::<2>(0).into_data(),
                        );
                    }
                }
            }
        }
    }
    norm_tensors(&model.final_norm, "final_norm", &mut put);
    if let Some(head) = &model.lm_head {
        put("lm_head.weight".into(), head.val().into_data());
    }
    out
}

fn norm_tensors(norm: &Norm, prefix: &str, put: &mut impl FnMut(String, TensorData)) {
    match norm {
        Norm::Rms(RmsNorm { gamma, .. }) => {
            put(format!("{prefix}.weight"), gamma.val().into_data())
        }
        Norm::Layer(LayerNorm { gamma, beta, .. }) => {
            put(format!("{prefix}.weight"), gamma.val().into_data());
            if let Some(beta) = beta {
                put(format!("{prefix}.bias"), beta.val().into_data());
            }
        }
    }
}

/// Writes `model` (and `config` as metadata) to `path` atomically: a temporary file in the
/// same folder, flushed to disk, then renamed over `path`.
pub fn save_safetensors(
    model: &SwitchTransformer,
    config: &SwitchTransformerConfig,
    path: &Path,
) -> Result<(), WeightsError> {
    let metadata = HashMap::from([(
        CONFIG_KEY.to_string(),
        serde_json::to_string(config).expect("config is JSON"),
    )]);
    write_f32_tensors(path, named_tensors(model), metadata)
}

/// Writes named f32 tensors (and string metadata) to a safetensors file atomically.
pub fn write_f32_tensors(
    path: &Path,
    tensors: Vec<(String, TensorData)>,
    metadata: HashMap<String, String>,
) -> Result<(), WeightsError> {
    let tensors: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .into_iter()
        .map(|(name, data)| {
            let shape = data.shape().to_vec();
            let values = data.try_into_vec_as::<f32>().expect("weights are float");
            (
                name,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                shape,
            )
        })
        .collect();
    let views = tensors.iter().map(|(name, bytes, shape)| {
        (
            name.as_str(),
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .expect("shape matches the byte count"),
        )
    });
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| WeightsError::Format {
            path: path.into(),
            message: e.to_string(),
        })?;
    crate::fsutil::write_atomic(path, &bytes).map_err(|source| WeightsError::Io {
        path: path.into(),
        source,
    })
}

/// Reads every f32 tensor of a safetensors file: name → (values, shape), and the metadata.
pub fn read_f32_tensors(path: &Path) -> Result<F32Tensors, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.into(),
        source,
    })?;
    let format = |message: String| WeightsError::Format {
        path: path.into(),
        message,
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format(e.to_string()))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let mut tensors = HashMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format(format!(
                "tensor `{name}` is {:?}, expected F32",
                view.dtype()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name, (values, view.shape().to_vec()));
    }
    Ok(F32Tensors {
        tensors,
        metadata: header.metadata().clone().unwrap_or_default(),
    })
}

/// Contents of a safetensors file of f32 tensors.
#[derive(Debug, Clone, Default)]
pub struct F32Tensors {
    /// Name → (values, shape).
    pub tensors: HashMap<String, (Vec<f32>, Vec<usize>)>,
    /// String metadata.
    pub metadata: HashMap<String, String>,
}

/// Builds the model of `config` on `device` with the weights stored in `path`.
pub fn load_safetensors(
    config: &SwitchTransformerConfig,
    path: &Path,
    device: &Device,
) -> Result<SwitchTransformer, WeightsError> {
    let file = read_f32_tensors(path)?;
    model_from_tensors(config, file.tensors, device).map_err(|(name, message)| {
        WeightsError::Tensor {
            path: path.into(),
            name,
            message,
        }
    })
}

/// Builds the model of `config` on `device` from named f32 tensors (`name → (values, shape)`,
/// the names of [`named_tensors`]). Errors give the offending tensor's name and what is wrong.
pub fn model_from_tensors(
    config: &SwitchTransformerConfig,
    mut tensors: HashMap<String, (Vec<f32>, Vec<usize>)>,
    device: &Device,
) -> Result<SwitchTransformer, (String, String)> {
    let mut model = config.init_with(&moe_core::Init::skeleton(), device);
    let expected = named_tensors(&model);
    let mut loaded: HashMap<String, Tensor<1>> = HashMap::new();
    for (name, want) in &expected {
        let bad = |message: String| (name.clone(), message);
        let (values, shape) = tensors
            .remove(name)
            .ok_or_else(|| bad("missing from the file".into()))?;
        if shape != want.shape().as_slice() {
            return Err(bad(format!(
                "is {shape:?}, the config needs {:?}",
                want.shape()
            )));
        }
        let n = values.len();
        loaded.insert(
            name.clone(),
            Tensor::from_data(TensorData::new(values, [n]), device),
        );
    }
    if let Some(extra) = tensors.keys().min() {
        return Err((
            extra.clone(),
            "is not a weight of this config (a file of another model?)".into(),
        ));
    }
    let mut take = |name: String, shape: Vec<usize>| -> Tensor<1> {
        let t = loaded
            .remove(&name)
            .expect("every expected tensor was loaded above");
        assert_eq!(t.dims()[0], shape.iter().product::<usize>(), "{name}");
        t
    };
    assign_all(&mut model, &mut take);
    Ok(model)
}

/// Replaces every parameter of `model` by `take(name, shape)` reshaped (experts stacked).
fn assign_all(
    model: &mut SwitchTransformer,
    take: &mut impl FnMut(String, Vec<usize>) -> Tensor<1>,
) {
    fn set<const D: usize>(
        p: &mut Param<Tensor<D>>,
        name: String,
        take: &mut impl FnMut(String, Vec<usize>) -> Tensor<1>,
    ) {
        let dims = p.dims();
        *p = Param::from_tensor(take(name, dims.to_vec()).reshape(dims));
    }
    fn set_norm(
        norm: &mut Norm,
        prefix: &str,
        take: &mut impl FnMut(String, Vec<usize>) -> Tensor<1>,
    ) {
        match norm {
            Norm::Rms(n) => set(&mut n.gamma, format!("{prefix}.weight"), take),
            Norm::Layer(n) => {
                set(&mut n.gamma, format!("{prefix}.weight"), take);
                if let Some(beta) = &mut n.beta {
                    set(beta, format!("{prefix}.bias"), take);
                }
            }
        }
    }
    set(&mut model.embedding, "embedding.weight".into(), take);
    if let Some(p) = &mut model.positions {
        set(p, "positions.weight".into(), take);
    }
    for (l, block) in model.blocks.iter_mut().enumerate() {
        set_norm(&mut block.attn_norm, &format!("layers.{l}.attn_norm"), take);
        let a = &mut block.attn;
        for (n, w) in [
            ("wq", &mut a.wq),
            ("wk", &mut a.wk),
            ("wv", &mut a.wv),
            ("wo", &mut a.wo),
        ] {
            set(w, format!("layers.{l}.attn.{n}"), take);
        }
        set_norm(&mut block.ffn_norm, &format!("layers.{l}.ffn_norm"), take);
        match &mut block.ffn {
            FeedForward::Dense(ffn) => {
                set(&mut ffn.w1, format!("layers.{l}.ffn.w1"), take);
                if let Some(w3) = &mut ffn.w3 {
                    set(w3, format!("layers.{l}.ffn.w3"), take);
                }
                set(&mut ffn.w2, format!("layers.{l}.ffn.w2"), take);
            }
            FeedForward::Switch(layer) => {
                set(
                    &mut layer.router.weight,
                    format!("layers.{l}.ffn.router.weight"),
                    take,
                );
                if let Some(bias) = &mut layer.router.bias {
                    set(bias, format!("layers.{l}.ffn.router.bias"), take);
                    *bias = Param::from_tensor(bias.val()).set_require_grad(false);
                }
                if let Some(shared) = &mut layer.shared {
                    set(&mut shared.w1, format!("layers.{l}.ffn.shared.w1"), take);
                    if let Some(w3) = &mut shared.w3 {
                        set(w3, format!("layers.{l}.ffn.shared.w3"), take);
                    }
                    set(&mut shared.w2, format!("layers.{l}.ffn.shared.w2"), take);
                }
                let ex = &mut layer.experts;
                let stacks = [
                    ("w1", Some(&mut ex.w1)),
                    ("w3", ex.w3.as_mut()),
                    ("w2", Some(&mut ex.w2)),
                ];
                for (n, stack) in stacks {
                    let Some(stack) = stack else { continue };
                    let [num_experts, rows, cols] = stack.dims();
                    let experts: Vec<Tensor<2>> = (0..num_experts)
                        .map(|e| {
                            take(format!("layers.{l}.ffn.experts.{e}.{n}"), vec![rows, cols])
                                .reshape([rows, cols])
                        })
                        .collect();
                    *stack = Param::from_tensor(Tensor::stack(experts, 0));
                }
            }
        }
    }
    set_norm(&mut model.final_norm, "final_norm", take);
    if let Some(head) = &mut model.lm_head {
        set(head, "lm_head.weight".into(), take);
    }
}
