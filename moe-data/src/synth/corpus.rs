//! A generated mixed corpus on disk, with known plants, for the benchmark and the large test.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;

use super::{replace_words, Rng, Vocab};

/// What a generated corpus holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Planted {
    /// Documents written.
    pub documents: u64,
    /// Exact copies (spacing and punctuation changed) of earlier documents.
    pub exact: u64,
    /// Copies of earlier documents with 1.5 % of their words replaced.
    pub near: u64,
    /// Documents made of one repeated sentence (fail the Gopher repetition rules).
    pub low_quality: u64,
    /// Documents ending with 20 words of an evaluation document.
    pub contaminated: u64,
    /// Bytes of document text.
    pub text_bytes: u64,
}

/// Where a generated corpus is.
#[derive(Debug, Clone)]
pub struct MixedCorpus {
    /// The input directory: `jsonl/` (every third shard gzipped), `txt/`, `html/`.
    pub input: PathBuf,
    /// `eval.jsonl`: 200 evaluation documents.
    pub eval: PathBuf,
    /// The counts.
    pub planted: Planted,
}

struct Generator {
    rng: Rng,
    vocab: Vocab,
    recent: Vec<String>,
    eval: Vec<String>,
    planted: Planted,
}

impl Generator {
    /// The next document: fresh (89 %), or an exact copy (4 %), a near copy (4 %), a
    /// low-quality document (3 %) or a contaminated one (0.5 %).
    fn next_doc(&mut self) -> String {
        let roll = self.rng.unit();
        let text = if roll < 0.04 && !self.recent.is_empty() {
            self.planted.exact += 1;
            let original = &self.recent[self.rng.below(self.recent.len())];
            original.replace(". ", ".  ").replace(',', " ,")
        } else if roll < 0.08 && !self.recent.is_empty() {
            self.planted.near += 1;
            let original = self.recent[self.rng.below(self.recent.len())].clone();
            let n = original.split(' ').count();
            replace_words(&mut self.rng, &original, n * 15 / 1000, &self.vocab)
        } else if roll < 0.11 {
            self.planted.low_quality += 1;
            let line = self.vocab.sentence(&mut self.rng, 6);
            vec![line; self.rng.range(10, 40)].join("\n")
        } else if roll < 0.115 {
            self.planted.contaminated += 1;
            let doc = self.vocab.document(&mut self.rng, 300);
            let eval = &self.eval[self.rng.below(self.eval.len())];
            let words: Vec<&str> = eval.split(' ').collect();
            format!("{doc} {}", words[10..30].join(" "))
        } else {
            let words = self.rng.range(150, 1500);
            let doc = self.vocab.document(&mut self.rng, words);
            if self.recent.len() < 4000 {
                self.recent.push(doc.clone());
            } else {
                let i = self.rng.below(self.recent.len());
                self.recent[i] = doc.clone();
            }
            doc
        };
        self.planted.documents += 1;
        self.planted.text_bytes += text.len() as u64;
        text
    }
}

/// A web page around `text`: title, style, script and a navigation list, one `<p>` (or
/// `<div>`) per paragraph, a footer with entities.
pub fn html_page(rng: &mut Rng, text: &str) -> String {
    let mut page = String::from(
        "<!DOCTYPE html><html><head><title>Page</title><style>p { margin: 0 }</style>\
         <script>var tracker = '<p>not text</p>';</script></head><body>\
         <nav><ul><li><a href=\"/\">Home</a></li><li><a href=\"/a\">About</a></li></ul></nav>\n",
    );
    for paragraph in text.split("\n\n") {
        let tag = if rng.chance(0.1) { "div" } else { "p" };
        let escaped = paragraph.replace('&', "&amp;").replace('<', "&lt;");
        page.push_str(&format!("<{tag}>{escaped}</{tag}>\n"));
    }
    page.push_str("<footer>&copy; 2024 &mdash; all rights reserved</footer></body></html>\n");
    page
}

fn create(path: &Path, gzip: bool) -> io::Result<Box<dyn Write>> {
    let file = BufWriter::new(File::create(path)?);
    Ok(if gzip {
        Box::new(GzEncoder::new(file, flate2::Compression::fast()))
    } else {
        Box::new(file)
    })
}

fn write_json_line(out: &mut dyn Write, value: &serde_json::Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Writes at least `mb` MB (10^6 bytes) of document text under `root`: about half of the
/// documents in JSONL shards of ~8 MB (every third gzipped), a fifth as `.txt` files and the
/// rest as `.html` pages, plus `eval.jsonl`. Deterministic for a given `seed`.
pub fn write_mixed_corpus(root: &Path, mb: u64, seed: u64) -> io::Result<MixedCorpus> {
    let mut rng = Rng::new(seed);
    let vocab = Vocab::new(30_000, seed);
    let eval: Vec<String> = (0..200).map(|_| vocab.document(&mut rng, 120)).collect();
    let eval_path = root.join("eval.jsonl");
    let mut eval_file = create(&eval_path, false)?;
    for doc in &eval {
        write_json_line(&mut eval_file, &serde_json::json!({ "text": doc }))?;
    }
    eval_file.flush()?;
    let input = root.join("corpus");
    for sub in ["jsonl", "txt", "html"] {
        fs::create_dir_all(input.join(sub))?;
    }
    let mut g = Generator {
        rng: Rng::new(seed.wrapping_add(1)),
        vocab,
        recent: Vec::new(),
        eval,
        planted: Planted::default(),
    };
    let target = mb * 1_000_000;
    let (mut part, mut doc_no) = (0, 0);
    while g.planted.text_bytes < target {
        let gzip = part % 3 == 2;
        let ext = if gzip { "jsonl.gz" } else { "jsonl" };
        let mut shard = create(&input.join(format!("jsonl/part-{part:03}.{ext}")), gzip)?;
        let shard_end = (g.planted.text_bytes + 8_000_000).min(target);
        while g.planted.text_bytes < shard_end {
            let doc = g.next_doc();
            match g.rng.below(10) {
                0..=4 => {
                    let line = serde_json::json!({ "id": doc_no, "text": doc });
                    write_json_line(&mut shard, &line)?;
                }
                5 | 6 => fs::write(input.join(format!("txt/doc-{doc_no:06}.txt")), doc)?,
                _ => {
                    let page = html_page(&mut g.rng, &doc);
                    fs::write(input.join(format!("html/page-{doc_no:06}.html")), page)?;
                }
            }
            doc_no += 1;
        }
        shard.flush()?;
        drop(shard);
        part += 1;
    }
    Ok(MixedCorpus {
        input,
        eval: eval_path,
        planted: g.planted,
    })
}
