//! Which reader a file needs, from its extension.

use std::path::Path;

/// How a file's documents are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.txt`: the whole file is one document.
    Text,
    /// `.jsonl`: one JSON object per line, the text in a configurable field.
    Jsonl,
    /// `.html` / `.htm`: the whole file is one document, converted to text.
    Html,
}

/// A file's format and whether it is gzip-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputKind {
    /// The document layout.
    pub format: Format,
    /// `true` for a `.gz` suffix.
    pub gzip: bool,
}

/// The kind of `path` from its (case-insensitive) extension: `.txt`, `.jsonl`, `.html`, `.htm`,
/// each optionally followed by `.gz`. `None` for anything else.
pub fn input_kind(path: &Path) -> Option<InputKind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (name.as_str(), false),
    };
    let format = match stem.rsplit_once('.')?.1 {
        "txt" => Format::Text,
        "jsonl" => Format::Jsonl,
        "html" | "htm" => Format::Html,
        _ => return None,
    };
    Some(InputKind { format, gzip })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_extensions() {
        let cases = [
            ("a.txt", Some((Format::Text, false))),
            ("dir.v2/a.JSONL", Some((Format::Jsonl, false))),
            ("a.html.gz", Some((Format::Html, true))),
            ("a.htm", Some((Format::Html, false))),
            ("a.txt.GZ", Some((Format::Text, true))),
            ("a.json", None),
            ("a.gz", None),
            ("txt", None),
            ("a.tar.gz", None),
        ];
        for (path, expected) in cases {
            let got = input_kind(Path::new(path)).map(|k| (k.format, k.gzip));
            assert_eq!(got, expected, "{path}");
        }
    }
}
