//! Refusing models that cannot fit in memory before anything is allocated (a failed
//! allocation aborts the process instead of returning an error).

use moe_core::model::SwitchTransformerConfig;

/// Bytes of host memory the kernel says are available (`MemAvailable` of `/proc/meminfo`);
/// `None` where that file does not exist.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Estimated bytes a training run needs: f32 weights, gradients and AdamW's two moments
/// (4 × parameters) plus the activations of one batch (`docs/accounting.md`).
pub fn training_bytes(model: &SwitchTransformerConfig, batch_size: usize, seq_len: usize) -> f64 {
    let a = model.accounting(batch_size, seq_len);
    16.0 * a.total_params as f64 + a.activation_bytes as f64
}

/// Estimated bytes evaluation or generation needs: the weights plus the activations of a
/// batch (an overestimate: nothing is kept for a backward pass).
pub fn inference_bytes(model: &SwitchTransformerConfig, batch_size: usize, seq_len: usize) -> f64 {
    let a = model.accounting(batch_size, seq_len);
    4.0 * a.total_params as f64 + a.activation_bytes as f64
}

/// Refuses a model whose `needed` bytes exceed the available memory, with both figures.
pub fn check_fits(needed: f64, what: &str) -> anyhow::Result<()> {
    let Some(available) = available_bytes() else {
        return Ok(());
    };
    let gib = |b: f64| b / f64::from(1u32 << 30);
    anyhow::ensure!(
        needed <= available as f64,
        "{what} needs about {:.2} GiB of memory (weights, optimizer state and activations, \
         docs/accounting.md) but {:.2} GiB are available; make the model smaller (d_model, \
         d_ff, n_layers, switch.num_experts, vocab_size) or train.batch_size / train.seq_len",
        gib(needed),
        gib(available as f64)
    );
    Ok(())
}

/// [`check_fits`] for training `model` on `batch_size × seq_len` batches.
pub fn check_training_fits(
    model: &SwitchTransformerConfig,
    batch_size: usize,
    seq_len: usize,
) -> anyhow::Result<()> {
    check_fits(
        training_bytes(model, batch_size, seq_len),
        "training this model",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use moe_core::SwitchConfig;

    #[test]
    fn a_huge_model_is_refused_with_both_figures() {
        let switch = SwitchConfig::new(8);
        let model = SwitchTransformerConfig::new(512, 65536, 8, 4, 262144, 128, switch);
        assert!(
            training_bytes(&model, 16, 128) > 1e13,
            "about 1.4e12 parameters"
        );
        if available_bytes().is_some() {
            let err = check_training_fits(&model, 16, 128)
                .unwrap_err()
                .to_string();
            assert!(err.contains("GiB") && err.contains("available"), "{err}");
        }
        let tiny = SwitchTransformerConfig::new(16, 8, 1, 1, 16, 8, SwitchConfig::new(2));
        check_training_fits(&tiny, 1, 8).expect("a tiny model fits");
    }
}
