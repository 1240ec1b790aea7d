#!/usr/bin/env python3
"""BPE training time on text without whitespace, with and without switchyard's pre-token cap
(issue #17, docs/training.md "What happens on failure"). Opt-in, not run by CI.

Trains the tokenizer `moe-train` trains for `--data` (512 entries, min frequency 2, byte-level
alphabet, `<eos>`; pre-tokenizer ByteLevel(add_prefix_space=False, use_regex=True), then
FixedLength(64) when capped) with the Python binding of Hugging Face `tokenizers`, whose Rust
core `moe-train` uses, on files of random A/C/G/T (one "word" each).

Usage: python benches/bpe_cap.py FILE… [--uncapped-max-bytes 700000]
"""
import argparse
import os
import time

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def train(text: str, capped: bool) -> float:
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok = Tokenizer(models.BPE())
    steps = [byte_level] + ([pre_tokenizers.FixedLength(length=64)] if capped else [])
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        min_frequency=2,
        show_progress=False,
        special_tokens=["<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    start = time.perf_counter()
    tok.train_from_iterator([text], trainer=trainer)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--uncapped-max-bytes", type=int, default=700_000)
    args = ap.parse_args()
    print("| file | bytes | uncapped s | capped (64 B) s |")
    print("|---|---:|---:|---:|")
    for path in args.files:
        text = open(path).read()
        capped = train(text, True)
        uncapped = (
            f"{train(text, False):.2f}"
            if len(text) <= args.uncapped_max_bytes
            else "not run"
        )
        print(f"| {os.path.basename(path)} | {len(text):,} | {uncapped} | {capped:.2f} |")


if __name__ == "__main__":
    main()
