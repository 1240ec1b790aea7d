//! What a datastore was built from: the checkpoint's weights, model config and tokenizer,
//! each as a 64-bit FNV-1a hash of its bytes, so a datastore is only searched with the model
//! whose hidden states it holds.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Loaded;

/// The model a datastore's keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFingerprint {
    /// The checkpoint folder, as it was found (for messages only; not compared).
    pub checkpoint: String,
    /// Optimizer steps of the checkpoint.
    pub step: usize,
    /// FNV-1a 64 of the checkpoint's `model.safetensors`, 16 hex digits.
    pub weights_hash: String,
    /// FNV-1a 64 of the model part of the config as TOML (`RunConfig::model_toml`).
    pub config_hash: String,
    /// FNV-1a 64 of the checkpoint's `tokenizer.json`.
    pub tokenizer_hash: String,
}

impl ModelFingerprint {
    /// The fingerprint of a loaded checkpoint (reads its weight and tokenizer files).
    pub fn of(loaded: &Loaded) -> anyhow::Result<Self> {
        Ok(Self {
            checkpoint: loaded.dir.display().to_string(),
            step: loaded.state.step,
            weights_hash: hash_file(&loaded.dir.join("model.safetensors"))?,
            config_hash: hex(fnv1a64(loaded.config.model_toml().as_bytes())),
            tokenizer_hash: hash_file(&loaded.dir.join("tokenizer.json"))?,
        })
    }

    /// The parts that differ from `other`'s, named (empty: the same model).
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let mut out = Vec::new();
        if self.config_hash != other.config_hash {
            out.push(format!(
                "model config ({} vs {})",
                self.config_hash, other.config_hash
            ));
        }
        if self.weights_hash != other.weights_hash {
            out.push(format!(
                "weights (step {}, {} vs step {}, {})",
                self.step, self.weights_hash, other.step, other.weights_hash
            ));
        }
        if self.tokenizer_hash != other.tokenizer_hash {
            out.push(format!(
                "tokenizer ({} vs {})",
                self.tokenizer_hash, other.tokenizer_hash
            ));
        }
        out
    }
}

/// 64-bit FNV-1a (Fowler–Noll–Vo): offset basis 0xcbf29ce484222325, prime 0x100000001b3.
/// Stable across platforms and Rust releases, unlike `DefaultHasher`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn hex(h: u64) -> String {
    format!("{h:016x}")
}

fn hash_file(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex(fnv1a64(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values of the FNV specification's test suite (draft-eastlake-fnv).
    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn differences_name_each_part() {
        let a = ModelFingerprint {
            checkpoint: "a".into(),
            step: 10,
            weights_hash: "1".into(),
            config_hash: "2".into(),
            tokenizer_hash: "3".into(),
        };
        let same_elsewhere = ModelFingerprint {
            checkpoint: "copied/a".into(),
            ..a.clone()
        };
        assert!(
            a.differences(&same_elsewhere).is_empty(),
            "the path is not compared"
        );
        let b = ModelFingerprint {
            step: 20,
            weights_hash: "9".into(),
            ..a.clone()
        };
        let d = a.differences(&b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].contains("weights") && d[0].contains("step 20"),
            "{d:?}"
        );
    }
}
