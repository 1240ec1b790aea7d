//! Words, lines, paragraphs and lengths of document text.
//!
//! Two notions of "word" are used:
//! - **raw words**: whitespace-separated tokens, as the Gopher rules count them;
//! - **normalised words**: maximal runs of alphanumeric characters, lowercased. Deduplication,
//!   decontamination and the block list compare these, so case, punctuation and spacing do
//!   not hide a match.

use crate::hash::hash_bytes;

/// Appends the hash of every normalised word of `text` to `out` (cleared first).
pub fn normalized_word_hashes(text: &str, out: &mut Vec<u64>) {
    out.clear();
    let mut word = Vec::with_capacity(32);
    for_each_normalized_word(text, &mut word, |w, _| out.push(hash_bytes(w)));
}

/// The normalised words of `text` with the byte range each came from.
pub fn normalized_words(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut words = Vec::new();
    let mut word = Vec::with_capacity(32);
    for_each_normalized_word(text, &mut word, |w, range| {
        words.push((String::from_utf8_lossy(w).into_owned(), range));
    });
    words
}

/// Calls `f(lowercased_word_bytes, byte_range)` for each run of alphanumeric characters.
fn for_each_normalized_word(
    text: &str,
    word: &mut Vec<u8>,
    mut f: impl FnMut(&[u8], std::ops::Range<usize>),
) {
    let mut start = None;
    let mut utf8 = [0u8; 4];
    for (i, c) in text.char_indices() {
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase() as u8);
        } else if !c.is_ascii() && c.is_alphanumeric() {
            for lower in c.to_lowercase() {
                word.extend_from_slice(lower.encode_utf8(&mut utf8).as_bytes());
            }
        } else {
            if let Some(s) = start.take() {
                f(word, s..i);
                word.clear();
            }
            continue;
        }
        start.get_or_insert(i);
    }
    if let Some(s) = start {
        f(word, s..text.len());
        word.clear();
    }
}

/// Number of characters (Unicode scalar values) in `s`, counting UTF-8 lead bytes.
#[inline]
pub fn char_len(s: &str) -> usize {
    s.bytes().filter(|&b| (b as i8) >= -0x40).count()
}

/// Non-blank lines of `text`, trimmed.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// Paragraphs of `text`: runs of non-blank lines separated by blank lines, trimmed.
pub fn paragraphs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                out.push(text[s..end].trim());
            }
        } else {
            start.get_or_insert(offset);
            end = offset + line.len();
        }
        offset += line.len();
    }
    if let Some(s) = start {
        out.push(text[s..end].trim());
    }
    out
}

/// The first `max_chars` characters of `text` on one line, with `…` when cut.
pub fn snippet(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(max_chars.min(text.len()) + 3);
    let mut pending_space = false;
    let mut n = 0;
    for c in text.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if n >= max_chars {
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            n += 1;
            pending_space = false;
        }
        out.push(c);
        n += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_words_lowercase_and_split_on_punctuation() {
        let words: Vec<String> = normalized_words("Hello, WORLD! Straße--ÉCOLE x2")
            .into_iter()
            .map(|(w, _)| w)
            .collect();
        assert_eq!(words, ["hello", "world", "straße", "école", "x2"]);
        let mut a = Vec::new();
        let mut b = Vec::new();
        normalized_word_hashes("The  cat.\nsat", &mut a);
        normalized_word_hashes("the cat sat!", &mut b);
        assert_eq!(a, b, "case, spacing and punctuation must not matter");
    }

    #[test]
    fn normalized_word_ranges_point_into_text() {
        let text = "a, École b";
        for (word, range) in normalized_words(text) {
            assert_eq!(text[range].to_lowercase(), word);
        }
    }

    #[test]
    fn char_len_counts_scalars() {
        assert_eq!(char_len(""), 0);
        assert_eq!(char_len("abc"), 3);
        assert_eq!(char_len("é…中😀"), 4);
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        let text = "a\nb\n\n  \nc\n\n\nd e\n";
        assert_eq!(paragraphs(text), ["a\nb", "c", "d e"]);
        assert_eq!(lines(text).collect::<Vec<_>>(), ["a", "b", "c", "d e"]);
    }

    #[test]
    fn snippet_collapses_whitespace_and_cuts() {
        assert_eq!(snippet("  a\n\n b  ", 10), "a b");
        assert_eq!(snippet("abcdef", 3), "abc…");
    }
}
