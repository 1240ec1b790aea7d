//! Decontamination removes the planted overlaps (a 13-word run of an evaluation document,
//! whatever its case and punctuation) and nothing else: 12-word runs, runs with one word
//! changed and unrelated documents stay.

mod common;

use std::collections::BTreeSet;

use common::{jsonl, prepare, read_shards, write};
use moe_data::synth::{Rng, Vocab};

#[test]
fn planted_overlaps_are_removed_and_nothing_else() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(9);
    let vocab = Vocab::new(30_000, 9);
    // Evaluation documents of distinct words (so that any 13-gram is specific to one of them).
    let eval_docs: Vec<Vec<String>> = (0..20)
        .map(|d| {
            (0..80)
                .map(|w| format!("{}q{d}w{w}", vocab.sample(&mut rng)))
                .collect()
        })
        .collect();
    let mut train = Vec::new();
    let mut planted = BTreeSet::new();
    for i in 0..300 {
        let mut doc = vocab.document(&mut rng, 120);
        let eval = &eval_docs[rng.below(eval_docs.len())];
        let start = rng.below(eval.len() - 13);
        match i % 6 {
            0 => {
                // A 13-word run, shouted and punctuated differently: must be removed.
                let run: Vec<String> = eval[start..start + 13]
                    .iter()
                    .map(|w| w.to_uppercase() + ",")
                    .collect();
                doc = format!("{doc} {}", run.join("  "));
                planted.insert(i + 1);
            }
            1 => doc = format!("{doc} {}", eval[start..start + 12].join(" ")), // 12 words: kept
            2 => {
                // 13 words with the middle one changed: kept.
                let mut run = eval[start..start + 13].to_vec();
                run[6] = "changed".into();
                doc = format!("{doc} {}", run.join(" "));
            }
            3 => {
                // Two 7-word pieces of different places: kept.
                let other = (start + 30) % (eval.len() - 7);
                doc = format!(
                    "{} {} {doc}",
                    eval[start..start + 7].join(" "),
                    eval[other..other + 7].join(" ")
                );
            }
            _ => {} // unrelated
        }
        train.push(doc);
    }
    let train_path = root.path().join("train.jsonl");
    write(&train_path, jsonl(&train));
    let eval_path = root.path().join("eval.jsonl");
    let mut eval_texts: Vec<String> = eval_docs.iter().map(|d| d.join(" ")).collect();
    eval_texts.push("only four words here".into());
    write(&eval_path, jsonl(&eval_texts));
    let out = root.path().join("out");
    let config = "[quality]\nenabled = false\n[dedup]\nexact = false\nnear = false\n[output]\nexamples_per_rule = 1000\n";
    let report = prepare(&[&train_path], &out, &[&eval_path], config).expect("runs");

    let train_file = train_path.display().to_string();
    let dropped: BTreeSet<usize> = report.removed["decontamination"]
        .examples
        .iter()
        .map(|e| {
            e.source
                .strip_prefix(&format!("{train_file}:"))
                .expect("line")
                .parse()
                .expect("number")
        })
        .collect();
    assert_eq!(dropped, planted, "exactly the planted documents (by line)");
    assert_eq!(
        report.documents_removed(),
        planted.len() as u64,
        "nothing else removed"
    );
    let kept: Vec<String> = train
        .iter()
        .enumerate()
        .filter(|(i, _)| !planted.contains(&(i + 1)))
        .map(|(_, d)| d.clone())
        .collect();
    assert_eq!(read_shards(&out), kept);
    let c = report.contamination.expect("--eval given");
    assert_eq!((c.ngram, c.eval_documents, c.eval_too_short), (13, 21, 1));
    assert_eq!(c.documents_dropped, planted.len() as u64);
    assert_eq!(
        c.hits.iter().map(|h| h.training_documents).sum::<u64>(),
        planted.len() as u64
    );
    assert!(c
        .examples
        .iter()
        .all(|e| e.shared_ngrams == 1 && e.ngram.split(' ').count() == 13));
}
