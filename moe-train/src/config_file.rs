//! Loading model configs from TOML files.

use std::path::{Path, PathBuf};

use moe_core::model::SwitchTransformerConfig;

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown/mistyped fields.
    #[error("config {path} is not a valid model config: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (names the line and field).
        source: toml::de::Error,
    },
    /// A key is unknown, missing, or has the wrong type (a typo would otherwise be silently
    /// ignored); the message lists the expected keys.
    #[error("config {path}: {}{message}; the keys are documented in docs/training.md and moe-core/src/model/config.rs", if key.is_empty() { String::new() } else { format!("`{key}`: ") })]
    Field {
        /// The file.
        path: PathBuf,
        /// Dotted key where it happened, e.g. `switch.num_expert` (empty: the top level).
        key: String,
        /// What serde said (names the unknown or missing field).
        message: String,
    },
    /// The values are inconsistent.
    #[error("config {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every offending field.
        source: moe_core::ConfigError,
    },
}

/// Reads, parses and validates a model config. Fields left out take the defaults documented
/// in `moe-core/src/model/config.rs` and `moe-core/src/config.rs`; missing required fields and
/// unknown keys are errors naming the dotted key. A run config's `[train]` and `[data]` tables
/// (see [`crate::run_config`]) are ignored here.
pub fn load_model_config(path: &Path) -> Result<SwitchTransformerConfig, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.into(),
        source,
    })?;
    let mut given: toml::Table =
        toml::from_str(&text).map_err(|source| ConfigFileError::Parse {
            path: path.into(),
            source,
        })?;
    given.remove("train");
    given.remove("data");
    model_config_from_table(given, path)
}

/// Builds and validates a model config from parsed TOML; errors name `path` and the key.
pub fn model_config_from_table(
    given: toml::Table,
    path: &Path,
) -> Result<SwitchTransformerConfig, ConfigFileError> {
    let config: SwitchTransformerConfig =
        deserialize_table(given, "").map_err(|(key, message)| ConfigFileError::Field {
            path: path.into(),
            key,
            message,
        })?;
    config
        .validate()
        .map_err(|source| ConfigFileError::Invalid {
            path: path.into(),
            source,
        })?;
    Ok(config)
}

/// Deserialises `table` into `T` (serde defaults fill fields left out; the struct's
/// `deny_unknown_fields` rejects unknown keys). On failure returns the dotted key where it
/// happened (prefixed by `prefix`, e.g. `"train."`; `""` for the table itself) and the message.
pub fn deserialize_table<T: serde::de::DeserializeOwned>(
    table: toml::Table,
    prefix: &str,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let at = e.path().to_string();
        let key = match (prefix.trim_end_matches('.'), at.as_str()) {
            (p, ".") => p.to_string(),
            ("", at) => at.to_string(),
            (p, at) => format!("{p}.{at}"),
        };
        (key, e.into_inner().message().trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("switchyard-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const GOOD: &str = "vocab_size = 16\nd_model = 8\nn_layers = 2\nn_heads = 2\nd_ff = 16\nmax_seq_len = 8\n\n[switch]\nnum_experts = 4\n";

    #[test]
    fn loads_defaults_and_rejects_bad_files_by_name() {
        let config = load_model_config(&write("good.toml", GOOD)).expect("valid");
        assert_eq!(
            (config.moe_every, config.switch.capacity_factor_train),
            (2, 1.25),
            "defaults filled in"
        );

        let missing = write("missing.toml", &GOOD.replace("vocab_size = 16\n", ""));
        let err = load_model_config(&missing).unwrap_err().to_string();
        assert!(
            err.contains("vocab_size") && err.contains("missing.toml"),
            "{err}"
        );

        let grouped = write("grouped.toml", &format!("{GOOD}group_size = 8\n"));
        assert_eq!(
            load_model_config(&grouped)
                .expect("valid")
                .switch
                .group_size,
            Some(8)
        );

        let err = load_model_config(Path::new("/no/such/file.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/file.toml"), "{err}");

        let typo = write(
            "typo.toml",
            &GOOD.replace("num_experts", "num_expert = 4\nnum_experts"),
        );
        let err = load_model_config(&typo).unwrap_err().to_string();
        assert!(
            err.contains("switch.num_expert") && err.contains("typo.toml"),
            "{err}"
        );

        let wrong_type = write(
            "type.toml",
            &GOOD.replace("n_layers = 2", "n_layers = \"two\""),
        );
        let err = load_model_config(&wrong_type).unwrap_err().to_string();
        assert!(
            err.contains("type.toml") && err.contains("n_layers"),
            "{err}"
        );

        let invalid = write("invalid.toml", &GOOD.replace("n_heads = 2", "n_heads = 3"));
        let err = load_model_config(&invalid).unwrap_err().to_string();
        assert!(
            err.contains("invalid.toml") && err.contains("n_heads"),
            "{err}"
        );
    }
}
