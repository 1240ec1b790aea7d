//! Streaming documents out of one file.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::format::{input_kind, Format};
use crate::error::DataError;
use crate::html::html_to_text;

/// One document: its text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// `file` for whole-file documents (`.txt`, `.html`), `file:line` for JSONL lines.
    pub source: String,
    /// The text (for HTML: after [`html_to_text`]).
    pub text: String,
}

/// How files are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderOptions {
    /// The JSONL field holding the text. Default `"text"`.
    pub text_field: String,
    /// Largest document (a whole `.txt`/`.html` file, or one JSONL line), in bytes after
    /// decompression; larger ones come back as [`DataError::TooLarge`] without being held in
    /// memory. Default 64 MiB.
    pub max_document_bytes: u64,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            text_field: "text".into(),
            max_document_bytes: 64 << 20,
        }
    }
}

/// A document as read, before HTML conversion (so that the pipeline can convert in parallel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line for JSONL, `None` for whole-file documents.
    pub line: Option<u64>,
    /// The text, or the HTML source when `is_html`.
    pub body: String,
    /// `body` is HTML and still needs [`html_to_text`].
    pub is_html: bool,
    /// Bytes this record took in the (decompressed) input, newline included.
    pub input_bytes: u64,
}

/// Streams [`Record`]s from one file; per-record problems (invalid UTF-8, malformed JSON,
/// missing field, too large) come back as `Err` and reading continues with the next record;
/// after an I/O error ([`DataError::Io`]) the iterator ends.
pub struct RecordReader {
    path: PathBuf,
    format: Format,
    reader: Box<dyn BufRead + Send>,
    options: ReaderOptions,
    line: u64,
    done: bool,
    buf: Vec<u8>,
    consumed: u64,
}

impl fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// Counts bytes read from disk, for the progress bar.
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl RecordReader {
    /// Opens `path`; its extension picks the format ([`super::input_kind`]).
    pub fn open(path: &Path, options: &ReaderOptions) -> Result<Self, DataError> {
        Self::open_counting(path, options, Arc::new(AtomicU64::new(0)))
    }

    /// Like [`Self::open`], adding every byte read from disk to `counter`.
    pub fn open_counting(
        path: &Path,
        options: &ReaderOptions,
        counter: Arc<AtomicU64>,
    ) -> Result<Self, DataError> {
        let kind =
            input_kind(path).ok_or_else(|| DataError::UnknownExtension { path: path.into() })?;
        let file = File::open(path).map_err(|source| DataError::Io {
            path: path.into(),
            source,
        })?;
        let file = Counting {
            inner: file,
            counter,
        };
        const BUFFER: usize = 256 << 10;
        let reader: Box<dyn BufRead + Send> = if kind.gzip {
            let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(BUFFER, file));
            Box::new(BufReader::with_capacity(BUFFER, gz))
        } else {
            Box::new(BufReader::with_capacity(BUFFER, file))
        };
        Ok(Self {
            path: path.into(),
            format: kind.format,
            reader,
            options: options.clone(),
            line: 0,
            done: false,
            buf: Vec::new(),
            consumed: 0,
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decompressed bytes consumed so far (records, blank lines and skipped lines).
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    fn location(&self, line: Option<u64>) -> String {
        match line {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    fn io_error(&self, source: io::Error) -> DataError {
        DataError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The whole file as one record.
    fn read_whole(&mut self) -> Result<Record, DataError> {
        let limit = self.options.max_document_bytes;
        let mut bytes = Vec::new();
        let read = (&mut self.reader)
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes);
        read.map_err(|e| self.io_error(e))?;
        let input_bytes = bytes.len() as u64;
        self.consumed += input_bytes;
        if input_bytes > limit {
            return Err(DataError::TooLarge {
                location: self.location(None),
                bytes: input_bytes,
                limit,
            });
        }
        let body = decode_utf8(bytes, || self.location(None))?;
        Ok(Record {
            line: None,
            body,
            is_html: self.format == Format::Html,
            input_bytes,
        })
    }

    /// The next non-blank JSONL line as a record; `None` at the end of the file.
    fn read_jsonl(&mut self) -> Option<Result<Record, DataError>> {
        loop {
            self.buf.clear();
            self.line += 1;
            let limit = self.options.max_document_bytes;
            let read = read_line_limited(&mut *self.reader, &mut self.buf, limit);
            let line = Some(self.line);
            self.consumed += match read {
                Ok(LineRead::TooLong(bytes)) => bytes + 1,
                _ => self.buf.len() as u64,
            };
            match read {
                Err(e) => return Some(Err(self.io_error(e))),
                Ok(LineRead::Eof) => return None,
                Ok(LineRead::TooLong(bytes)) => {
                    return Some(Err(DataError::TooLarge {
                        location: self.location(line),
                        bytes,
                        limit,
                    }))
                }
                Ok(LineRead::Line) => {}
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let input_bytes = self.buf.len() as u64;
            let text = match std::str::from_utf8(&self.buf) {
                Ok(text) => text,
                Err(e) => {
                    return Some(Err(DataError::InvalidUtf8 {
                        location: self.location(line),
                        valid_up_to: e.valid_up_to(),
                    }))
                }
            };
            let body = match extract_field(text, &self.options.text_field) {
                Ok(Some(body)) => body,
                Ok(None) => {
                    return Some(Err(DataError::MissingField {
                        location: self.location(line),
                        field: self.options.text_field.clone(),
                    }))
                }
                Err(e) => {
                    return Some(Err(DataError::MalformedJson {
                        location: self.location(line),
                        message: e.to_string(),
                    }))
                }
            };
            return Some(Ok(Record {
                line,
                body,
                is_html: false,
                input_bytes,
            }));
        }
    }
}

impl Iterator for RecordReader {
    type Item = Result<Record, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.format {
            Format::Jsonl => self.read_jsonl(),
            Format::Text | Format::Html => {
                self.done = true;
                Some(self.read_whole())
            }
        };
        if matches!(item, None | Some(Err(DataError::Io { .. }))) {
            self.done = true;
        }
        item
    }
}

/// Streams [`Document`]s from one file: [`RecordReader`] plus HTML-to-text and `source`.
#[derive(Debug)]
pub struct DocumentReader {
    records: RecordReader,
}

impl DocumentReader {
    /// Opens `path`; its extension picks the format ([`super::input_kind`]).
    pub fn open(path: &Path, options: &ReaderOptions) -> Result<Self, DataError> {
        Ok(Self {
            records: RecordReader::open(path, options)?,
        })
    }
}

impl Iterator for DocumentReader {
    type Item = Result<Document, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let record = match self.records.next()? {
            Ok(record) => record,
            Err(e) => return Some(Err(e)),
        };
        let source = self.records.location(record.line);
        let text = if record.is_html {
            html_to_text(&record.body)
        } else {
            record.body
        };
        Some(Ok(Document { source, text }))
    }
}

fn decode_utf8(bytes: Vec<u8>, location: impl Fn() -> String) -> Result<String, DataError> {
    let mut text = String::from_utf8(bytes).map_err(|e| DataError::InvalidUtf8 {
        location: location(),
        valid_up_to: e.utf8_error().valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

enum LineRead {
    Eof,
    Line,
    /// The line was longer than the limit; it was skipped. Bytes seen.
    TooLong(u64),
}

/// Reads one line (newline included) into `buf`, holding at most `limit + 1` bytes; a longer
/// line is consumed up to its newline and reported as [`LineRead::TooLong`].
fn read_line_limited(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    limit: u64,
) -> io::Result<LineRead> {
    let n = (&mut *reader)
        .take(limit.saturating_add(1))
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(LineRead::Eof);
    }
    let content = buf.len() as u64 - u64::from(buf.ends_with(b"\n"));
    if content <= limit {
        return Ok(LineRead::Line);
    }
    let mut seen = buf.len() as u64;
    buf.clear();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                seen += pos as u64;
                reader.consume(pos + 1);
                break;
            }
            None => {
                let len = available.len();
                seen += len as u64;
                reader.consume(len);
            }
        }
    }
    Ok(LineRead::TooLong(seen))
}

/// The string in `field` of the JSON object `line`, skipping the other fields unparsed;
/// `Ok(None)` when the field is absent or `null`.
fn extract_field(line: &str, field: &str) -> Result<Option<String>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(line);
    let value = FieldSeed(field).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct FieldSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object with a string field `{}`", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is_field) = map.next_key_seed(KeyIs(self.0))? {
            if is_field && found.is_none() {
                found = map.next_value::<Option<String>>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Deserializes a map key into "is it this name?" without allocating.
struct KeyIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_field_cases() {
        let ok = |line: &str, field: &str| extract_field(line, field).expect(line);
        assert_eq!(ok(r#"{"text": "a\nb"}"#, "text").as_deref(), Some("a\nb"));
        assert_eq!(
            ok(
                r#"{"id": 3, "meta": {"text": 1}, "content": "x"}"#,
                "content"
            )
            .as_deref(),
            Some("x")
        );
        assert_eq!(ok(r#"{"id": 3}"#, "text"), None);
        assert_eq!(ok(r#"{"text": null}"#, "text"), None);
        for bad in [
            r#"{"text": 5}"#,
            "[1, 2]",
            r#"{"text": "a""#,
            r#"{"text": "a"} x"#,
        ] {
            assert!(
                extract_field(bad, "text").is_err(),
                "{bad} should be malformed"
            );
        }
    }

    #[test]
    fn long_lines_are_skipped_up_to_their_newline() {
        let data = b"short\nthis line is long\nok\n";
        let mut reader: &[u8] = data;
        let mut buf = Vec::new();
        let mut results = Vec::new();
        loop {
            buf.clear();
            match read_line_limited(&mut reader, &mut buf, 6).expect("in-memory read") {
                LineRead::Eof => break,
                LineRead::Line => results.push(String::from_utf8(buf.clone()).expect("ascii")),
                LineRead::TooLong(n) => results.push(format!("too long: {n}")),
            }
        }
        assert_eq!(results, ["short\n", "too long: 17", "ok\n"]);
    }
}
