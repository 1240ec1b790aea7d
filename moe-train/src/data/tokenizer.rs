//! Tokenizers, all through the `tokenizers` crate and saved as `tokenizer.json` in the run
//! directory: the built-in corpus's word-level vocabulary, a byte-level BPE trained on the
//! train split of real text, or a given `tokenizer.json`.

use std::path::{Path, PathBuf};

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::fixed_length::FixedLength;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

use super::corpus::{self, EOS};

/// Tokenizer errors, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// `tokenizer.json` could not be read or parsed.
    #[error("cannot load tokenizer {path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The tokenizer has no `<eos>` token, which the trainer uses between documents.
    #[error("tokenizer {path} has no `<eos>` token; add it as a special token")]
    NoEos {
        /// The file.
        path: PathBuf,
    },
    /// Training or saving failed.
    #[error("tokenizer: {0}")]
    Other(String),
}

/// The word-level tokenizer of the built-in corpus: one id per word of
/// [`corpus::vocabulary`], split on whitespace.
pub fn builtin() -> Tokenizer {
    let vocab: serde_json::Map<String, serde_json::Value> = corpus::vocabulary()
        .into_iter()
        .enumerate()
        .map(|(id, word)| (word.to_string(), id.into()))
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "added_tokens": [{
            "id": 0, "content": EOS, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true
        }],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": corpus::UNK},
    });
    json.to_string()
        .parse()
        .expect("the built-in tokenizer JSON is valid")
}

/// Longest pre-token (in bytes) the BPE trainer sees. Text without whitespace (DNA, base64,
/// minified code) is otherwise one giant "word", and BPE training on it grows about
/// quadratically with its length; chunks of 64 bytes keep it linear and leave ordinary words
/// (far shorter) untouched.
pub const MAX_PRE_TOKEN_BYTES: usize = 64;

/// Trains a byte-level BPE with `vocab_size` entries (including `<eos>`) on `texts`, showing
/// a spinner with the elapsed time on a terminal.
pub fn train_bpe(texts: &[String], vocab_size: usize) -> Result<Tokenizer, TokenizerError> {
    // No prefix space, so decoding gives back exactly the text that was encoded.
    let byte_level = ByteLevel::new(false, true, true);
    let pre_tokenizer = Sequence::new(vec![
        PreTokenizerWrapper::ByteLevel(byte_level),
        PreTokenizerWrapper::FixedLength(FixedLength::new(MAX_PRE_TOKEN_BYTES)),
    ]);
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer
        .with_pre_tokenizer(Some(pre_tokenizer))
        .with_decoder(Some(byte_level));
    let bytes: usize = texts.iter().map(String::len).sum();
    let spinner = indicatif::ProgressBar::new_spinner().with_message(format!(
        "training a {vocab_size}-entry byte-level BPE on {:.1} MB of text",
        bytes as f64 / 1e6
    ));
    spinner.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .expect("the template is valid"),
    );
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(EOS, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build(),
    );
    let trained = tokenizer
        .train(&mut trainer, texts.iter())
        .map(|_| ())
        .map_err(|e| TokenizerError::Other(format!("BPE training failed: {e}")));
    spinner.finish_and_clear();
    trained?;
    Ok(tokenizer)
}

/// Loads a `tokenizer.json`; it must have an `<eos>` token.
pub fn load(path: &Path) -> Result<Tokenizer, TokenizerError> {
    let tokenizer = Tokenizer::from_file(path).map_err(|e| TokenizerError::Load {
        path: path.into(),
        message: e.to_string(),
    })?;
    if tokenizer.token_to_id(EOS).is_none() {
        return Err(TokenizerError::NoEos { path: path.into() });
    }
    Ok(tokenizer)
}

/// Id of `<eos>`.
pub fn eos_id(tokenizer: &Tokenizer) -> u32 {
    tokenizer
        .token_to_id(EOS)
        .expect("every switchyard tokenizer has <eos> (checked at load)")
}

/// Saves `tokenizer` to `path` atomically (temporary file, then rename).
pub fn save(tokenizer: &Tokenizer, path: &Path) -> Result<(), TokenizerError> {
    let json = tokenizer
        .to_string(true)
        .map_err(|e| TokenizerError::Other(e.to_string()))?;
    crate::fsutil::write_atomic(path, json.as_bytes())
        .map_err(|e| TokenizerError::Other(format!("cannot write {}: {e}", path.display())))
}

/// Encodes `texts` (in parallel) and joins them into one stream, `<eos>` after each.
pub fn encode_documents(
    tokenizer: &Tokenizer,
    texts: &[String],
) -> Result<Vec<u32>, TokenizerError> {
    let eos = eos_id(tokenizer);
    let encodings = tokenizer
        .encode_batch(texts.to_vec(), false)
        .map_err(|e| TokenizerError::Other(format!("encoding failed: {e}")))?;
    let mut stream = Vec::new();
    for encoding in encodings {
        stream.extend_from_slice(encoding.get_ids());
        stream.push(eos);
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tokenizer_round_trips_the_generated_corpus() {
        let stream = corpus::generate(5, 2_000);
        let tokenizer = builtin();
        let encoded = tokenizer.encode(stream.render(), false).expect("encodes");
        assert_eq!(encoded.get_ids(), stream.tokens.as_slice());
        assert_eq!(
            tokenizer.get_vocab_size(true),
            corpus::vocabulary().len(),
            "no extra tokens"
        );
    }

    #[test]
    fn bpe_learns_merges_and_decodes_bytes_exactly() {
        let texts: Vec<String> = (0..200)
            .map(|i| format!("the quick brown fox {i} jumps over the lazy dog; naïve café\n"))
            .collect();
        let tokenizer = train_bpe(&texts, 300).expect("trains");
        assert!(tokenizer.get_vocab_size(true) <= 300);
        let ids = tokenizer.encode(texts[7].as_str(), false).unwrap();
        assert!(ids.len() < texts[7].len() / 2, "merges shorten the text");
        assert_eq!(tokenizer.decode(ids.get_ids(), false).unwrap(), texts[7]);
        assert!(tokenizer.token_to_id(EOS).is_some());
    }

    /// A long run without whitespace is cut into pre-tokens of at most 64 bytes (what keeps
    /// BPE training linear in its length) and still round-trips.
    #[test]
    fn long_words_are_chunked_and_round_trip() {
        let dna: String = (0..5000)
            .map(|i| ['A', 'C', 'G', 'T'][(i * 7 + i / 3) % 4])
            .collect();
        let texts = vec![dna.clone(), "plain words stay whole".to_string()];
        let tokenizer = train_bpe(&texts, 300).expect("trains");
        use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};
        let mut split = PreTokenizedString::from(dna.as_str());
        tokenizer
            .get_pre_tokenizer()
            .expect("a pre-tokenizer")
            .pre_tokenize(&mut split)
            .expect("pre-tokenizes");
        let pieces: Vec<usize> = split
            .get_splits(OffsetReferential::Original, OffsetType::Byte)
            .iter()
            .map(|(_, (start, end), _)| end - start)
            .collect();
        assert!(
            pieces.iter().all(|&n| n <= MAX_PRE_TOKEN_BYTES),
            "{pieces:?}"
        );
        assert_eq!(pieces.iter().sum::<usize>(), dna.len());
        let ids = tokenizer.encode(dna.as_str(), false).unwrap();
        assert_eq!(tokenizer.decode(ids.get_ids(), false).unwrap(), dna);
    }
}
