//! Loading model configs from TOML files.

use std::path::{Path, PathBuf};

use moe_core::model::SwitchTransformerConfig;
use moe_core::SwitchConfig;

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
    /// A required field is missing.
    #[error("config {path}: missing required key `{key}`")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// Dotted key.
        key: String,
    },
    /// A key the config does not have (a typo would otherwise be silently ignored).
    #[error("config {path}: unknown key `{key}`; see moe-core/src/model/config.rs for the fields")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// Dotted key, e.g. `switch.num_expert`.
        key: String,
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

/// Fields a config file must give. `switch.d_model` and `switch.d_ff` may be left out: they
/// default to the model's `d_model` and `d_ff`.
const REQUIRED: [&str; 7] = [
    "vocab_size",
    "d_model",
    "n_layers",
    "n_heads",
    "d_ff",
    "max_seq_len",
    "switch.num_experts",
];

/// Reads, parses and validates a model config. Fields left out take the defaults documented
/// in `moe-core/src/model/config.rs`; unknown keys are errors. A run config's `[train]` and
/// `[data]` tables (see [`crate::run_config`]) are ignored here.
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

/// Builds and validates a model config from parsed TOML; errors name `path`.
pub fn model_config_from_table(
    mut given: toml::Table,
    path: &Path,
) -> Result<SwitchTransformerConfig, ConfigFileError> {
    let parse_error = |source| ConfigFileError::Parse {
        path: path.into(),
        source,
    };
    for key in REQUIRED {
        if lookup(&given, key).is_none() {
            return Err(ConfigFileError::MissingKey {
                path: path.into(),
                key: key.to_string(),
            });
        }
    }
    // The switch layer's widths are the model's unless given.
    let widths = ["d_model", "d_ff"].map(|key| (key, given[key].clone()));
    if let Some(toml::Value::Table(switch)) = given.get_mut("switch") {
        for (key, value) in widths {
            switch.entry(key).or_insert(value);
        }
    }
    // Every field with its default (the required ones are all given, so the placeholders
    // below are always overwritten).
    let mut merged = toml::Table::try_from(SwitchTransformerConfig::new(
        0,
        0,
        0,
        0,
        0,
        0,
        SwitchConfig::new(0, 0, 0),
    ))
    .expect("a config serialises to TOML");
    merge(&mut merged, given, "").map_err(|key| ConfigFileError::UnknownKey {
        path: path.into(),
        key,
    })?;
    let config: SwitchTransformerConfig = merged.try_into().map_err(parse_error)?;
    config
        .validate()
        .map_err(|source| ConfigFileError::Invalid {
            path: path.into(),
            source,
        })?;
    Ok(config)
}

/// The value at a dotted key.
fn lookup<'a>(table: &'a toml::Table, dotted: &str) -> Option<&'a toml::Value> {
    let (head, rest) = match dotted.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (dotted, None),
    };
    match (table.get(head)?, rest) {
        (value, None) => Some(value),
        (toml::Value::Table(inner), Some(rest)) => lookup(inner, rest),
        _ => None,
    }
}

/// Writes `given` over `defaults`; returns the first dotted key `defaults` does not know.
fn merge(defaults: &mut toml::Table, given: toml::Table, prefix: &str) -> Result<(), String> {
    for (key, value) in given {
        let dotted = format!("{prefix}{key}");
        match (defaults.get_mut(&key), value) {
            (Some(toml::Value::Table(d)), toml::Value::Table(g)) => {
                merge(d, g, &format!("{dotted}."))?
            }
            (Some(slot), value) => *slot = value,
            // Optional fields whose default is `None` do not serialise; they are still known.
            (None, value) if OPTIONAL.contains(&dotted.as_str()) => {
                defaults.insert(key, value);
            }
            (None, _) => return Err(dotted),
        }
    }
    Ok(())
}

/// Keys whose default (`None`) is absent from the serialised config.
const OPTIONAL: [&str; 1] = ["switch.group_size"];

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
        assert_eq!(
            (config.switch.d_model, config.switch.d_ff),
            (8, 16),
            "switch widths from the model"
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
