//! The harmful-content filter: a user-supplied list of words and phrases.
//!
//! One entry per line; blank lines and lines starting with `#` are ignored. Entries and
//! documents are compared as normalised words ([`crate::text`]): case and punctuation do not
//! matter, and an entry only matches whole words (`ass` does not match `class`). No list ships
//! with switchyard; the filter is off unless one is given.

use std::path::Path;

use crate::error::DataError;
use crate::hash::{hash_words, IdSet};
use crate::text::normalized_word_hashes;

/// A loaded block list: the hashes of its entries, grouped by length in words.
#[derive(Debug, Clone, Default)]
pub struct BlockList {
    /// `(words per entry, entry hashes)`, shortest first.
    by_len: Vec<(usize, IdSet<u64>)>,
    entries: usize,
}

impl BlockList {
    /// Reads a list file (UTF-8, one entry per line).
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::BlockList {
            path: path.into(),
            message: format!("cannot read it as UTF-8 text: {e}"),
        })?;
        let list = Self::from_entries(text.lines());
        if list.is_empty() {
            return Err(DataError::BlockList {
                path: path.into(),
                message: "holds no entries (one word or phrase per line; # starts a comment)"
                    .into(),
            });
        }
        Ok(list)
    }

    /// A list from entries (comment and blank lines skipped).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Self {
        let mut list = Self::default();
        let mut words = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            normalized_word_hashes(entry, &mut words);
            if words.is_empty() {
                continue;
            }
            let n = words.len();
            let slot = match list.by_len.iter().position(|(len, _)| *len == n) {
                Some(slot) => slot,
                None => {
                    list.by_len.push((n, IdSet::default()));
                    list.by_len.len() - 1
                }
            };
            list.entries += usize::from(list.by_len[slot].1.insert(hash_words(&words)));
        }
        list.by_len.sort_by_key(|(len, _)| *len);
        list
    }

    /// Distinct entries.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Occurrences of any entry among a document's normalised word hashes (overlapping
    /// occurrences each count).
    pub fn count_matches(&self, word_hashes: &[u64]) -> usize {
        self.by_len
            .iter()
            .map(|(n, set)| {
                word_hashes
                    .windows(*n)
                    .filter(|w| set.contains(&hash_words(w)))
                    .count()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(list: &BlockList, text: &str) -> usize {
        let mut words = Vec::new();
        normalized_word_hashes(text, &mut words);
        list.count_matches(&words)
    }

    #[test]
    fn words_and_phrases_match_whole_words_only() {
        let list = BlockList::from_entries(["# comment", "", "badword", "Very Bad Phrase"]);
        assert_eq!(list.len(), 2);
        assert_eq!(matches(&list, "a BADWORD here, and badword."), 2);
        assert_eq!(matches(&list, "badwords and notbadword"), 0);
        assert_eq!(matches(&list, "this is very bad, phrase!"), 1);
        assert_eq!(matches(&list, "very bad"), 0);
    }
}
