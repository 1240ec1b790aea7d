//! Token streams for training and validation, from the built-in corpus or real text.

use serde::Serialize;
use tokenizers::Tokenizer;

use super::corpus::{self, Domain};
use super::{text, tokenizer};
use crate::run_config::DataConfig;

/// One split as a token stream (documents joined, `<eos>` after each).
#[derive(Debug, Clone, Default)]
pub struct TokenSplit {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// Built-in corpus only: `-ln p` of each token under the generator.
    pub neg_log_prob: Option<Vec<f32>>,
    /// Built-in corpus only: each token's domain.
    pub domains: Option<Vec<Domain>>,
}

impl TokenSplit {
    /// Number of training windows of `seq_len + 1` tokens, stride `seq_len`.
    pub fn num_windows(&self, seq_len: usize) -> usize {
        self.tokens.len().saturating_sub(1) / seq_len
    }
}

/// What was loaded, for the run summary.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    /// `builtin` or `text`.
    pub source: String,
    /// Files read (real text).
    pub files: usize,
    /// Documents kept.
    pub documents: usize,
    /// Exact duplicate documents removed.
    pub duplicates_removed: usize,
    /// Empty documents skipped.
    pub empty_skipped: usize,
    /// Tokens in the train split.
    pub train_tokens: usize,
    /// Tokens in the validation split.
    pub val_tokens: usize,
    /// Tokenizer vocabulary size (with special tokens).
    pub vocab_size: usize,
    /// `builtin word-level`, `byte-level BPE trained on the train split`, or the given file.
    pub tokenizer: String,
    /// Built-in corpus: the validation stream's entropy floor (nats/token).
    pub val_floor: Option<f64>,
}

/// Train and validation streams with their tokenizer.
pub struct Dataset {
    /// Train split.
    pub train: TokenSplit,
    /// Validation split.
    pub val: TokenSplit,
    /// The tokenizer that produced them.
    pub tokenizer: Tokenizer,
    /// Summary.
    pub info: DatasetInfo,
}

impl Dataset {
    /// Loads the data `config` names. `tokenizer` (e.g. a resumed run's) is used as is;
    /// otherwise the built-in vocabulary, `config.tokenizer`, or a BPE of `vocab_size`
    /// trained on the train split.
    pub fn load(
        config: &DataConfig,
        vocab_size: usize,
        tokenizer: Option<Tokenizer>,
    ) -> anyhow::Result<Self> {
        let given = match (tokenizer, config.tokenizer.as_str()) {
            (Some(t), _) => Some((t, "from the run directory".to_string())),
            (None, "") => None,
            (None, path) => Some((tokenizer::load(path.as_ref())?, path.to_string())),
        };
        let dataset = if config.paths.is_empty() {
            Self::builtin(config, given)
        } else {
            Self::text(config, vocab_size, given)?
        };
        let have = dataset.tokenizer.get_vocab_size(true);
        anyhow::ensure!(
            have <= vocab_size,
            "the tokenizer has {have} tokens but the model's vocab_size is {vocab_size}: \
             raise vocab_size (e.g. --set vocab_size={have}) or use a smaller tokenizer"
        );
        Ok(dataset)
    }

    fn builtin(config: &DataConfig, given: Option<(Tokenizer, String)>) -> Self {
        let train = corpus::generate(config.corpus_seed, config.builtin_train_tokens);
        let val = corpus::generate(config.corpus_seed + 1, config.builtin_val_tokens);
        let (tokenizer, name) =
            given.unwrap_or_else(|| (tokenizer::builtin(), "builtin word-level".into()));
        let documents = [&train, &val]
            .iter()
            .map(|s| s.tokens.iter().filter(|&&t| t == 0).count())
            .sum();
        let split = |s: corpus::Stream| TokenSplit {
            tokens: s.tokens,
            neg_log_prob: Some(s.neg_log_prob),
            domains: Some(s.domains),
        };
        let info = DatasetInfo {
            source: "builtin".into(),
            files: 0,
            documents,
            duplicates_removed: 0,
            empty_skipped: 0,
            train_tokens: train.tokens.len(),
            val_tokens: val.tokens.len(),
            vocab_size: tokenizer.get_vocab_size(true),
            tokenizer: name,
            val_floor: Some(val.floor()),
        };
        Self {
            train: split(train),
            val: split(val),
            tokenizer,
            info,
        }
    }

    fn text(
        config: &DataConfig,
        vocab_size: usize,
        given: Option<(Tokenizer, String)>,
    ) -> anyhow::Result<Self> {
        let docs = text::read_documents(&config.paths, &config.text_field)?;
        let (train_texts, val_texts) = text::split(&docs.texts, config.val_fraction);
        let (tokenizer, name) = match given {
            Some(given) => given,
            None => (
                tokenizer::train_bpe(&train_texts, vocab_size)?,
                "byte-level BPE trained on the train split".into(),
            ),
        };
        let train = tokenizer::encode_documents(&tokenizer, &train_texts)?;
        let val = tokenizer::encode_documents(&tokenizer, &val_texts)?;
        let info = DatasetInfo {
            source: "text".into(),
            files: docs.files.len(),
            documents: docs.texts.len(),
            duplicates_removed: docs.duplicates_removed,
            empty_skipped: docs.empty_skipped,
            train_tokens: train.len(),
            val_tokens: val.len(),
            vocab_size: tokenizer.get_vocab_size(true),
            tokenizer: name,
            val_floor: None,
        };
        let split = |tokens| TokenSplit {
            tokens,
            neg_log_prob: None,
            domains: None,
        };
        Ok(Self {
            train: split(train),
            val: split(val),
            tokenizer,
            info,
        })
    }

    /// Checks the streams are long enough for `seq_len` and `batch_size`.
    pub fn check_sizes(&self, seq_len: usize, batch_size: usize) -> anyhow::Result<()> {
        let train = self.train.num_windows(seq_len);
        let val = self.val.num_windows(seq_len);
        anyhow::ensure!(
            train >= batch_size && val >= 1,
            "the data is too small: {} train tokens make {train} sequences of {seq_len} (a batch \
             needs {batch_size}), {} validation tokens make {val}; add text, lower \
             train.seq_len / train.batch_size, or raise data.val_fraction",
            self.train.tokens.len(),
            self.val.tokens.len()
        );
        Ok(())
    }
}
