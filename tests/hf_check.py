#!/usr/bin/env python3
"""Opt-in check (not run by cargo or CI): a switchyard model exported with
`moe-train export --format hf` loads offline in Hugging Face transformers and computes the
logits `moe-train logits --dropless` computes; greedy continuations are identical; a folder
re-saved by transformers imports back (`moe-train import --format hf`) bit-exactly.

Needs Python with torch and transformers (`pip install torch transformers`). Run from the
repository root, after `cargo build --release -p moe-train` (or pass --moe-train):

    python tests/hf_check.py --run runs/RUN [--run runs/OTHER ...]

Prints one line per run and sequence and exits 1 when a dropless logit differs by more than
--tol (1e-4), a greedy continuation differs, AutoTokenizer encodes a prompt differently from
switchyard, or the transformers-saved folder does not import back to identical logits. The
logits at switchyard's evaluation capacity factor (not dropless) are reported, not checked:
they match only where switchyard drops nothing.
"""

import argparse
import copy
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything must load from the folder alone
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

PROMPTS = ["<arith> 4 7 +", "<text> the cat", "hello world"]


def sh(cmd):
    """Runs a command, failing loudly with its output."""
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(map(str, cmd))}\n{done.stderr}")
    return done.stdout


def switchyard_logits(bin_, run, out, seqs, prompts, greedy, dropless):
    cmd = [bin_, "logits", "--run", run, "--greedy", greedy, "--out", out]
    cmd += [a for s in seqs for a in ("--ids", ",".join(map(str, s)))]
    cmd += [a for p in prompts for a in ("--prompt", p)]
    if dropless:
        cmd.append("--dropless")
    sh(cmd)
    return json.loads(Path(out).read_text())


def sequences(vocab, max_len, greedy, count, seed):
    """`count` random token sequences: lengths up to max_len - greedy, the first one full."""
    rng = random.Random(seed)
    lengths = [max_len - greedy] + [rng.randint(2, max_len - greedy) for _ in range(count - 1)]
    return [[rng.randrange(vocab) for _ in range(n)] for n in lengths]


def greedy_config(model, tokens):
    """The export's generation config (greedy), `tokens` new tokens, not stopping at <eos>
    (switchyard's `logits --greedy` does not stop either)."""
    config = copy.deepcopy(model.generation_config)
    config.do_sample, config.max_new_tokens, config.eos_token_id = False, tokens, []
    return config


def check_run(args, run, work):
    name = Path(run).name
    hf_dir, resaved, imported = work / f"{name}-hf", work / f"{name}-resaved", work / f"{name}-imported"
    export_log = sh([args.moe_train, "export", "--run", run, "--format", "hf", "--out", hf_dir, "--force"])
    drops = [line.strip() for line in export_log.splitlines() if "drops" in line or "dropless" in line]
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(hf_dir)
    assert model.generation_config.do_sample is False, "generation_config.json is greedy"
    seqs = sequences(len(tok), model.config.max_position_embeddings, args.greedy, args.seqs, args.seed)
    ours = switchyard_logits(args.moe_train, run, work / f"{name}-dropless.json", seqs, PROMPTS, args.greedy, True)
    capped = switchyard_logits(args.moe_train, run, work / f"{name}-capacity.json", seqs, PROMPTS, 0, False)
    ok, worst, worst_capped, greedy_same = True, 0.0, 0.0, 0
    for i, (s, c) in enumerate(zip(ours["sequences"], capped["sequences"])):
        ids = torch.tensor([s["ids"]])
        if i >= len(seqs):  # a prompt: AutoTokenizer must encode it as switchyard does
            hf_ids = tok(PROMPTS[i - len(seqs)], add_special_tokens=True)["input_ids"]
            if hf_ids != s["ids"]:
                print(f"  prompt {PROMPTS[i - len(seqs)]!r}: AutoTokenizer {hf_ids} != switchyard {s['ids']}")
                ok = False
        with torch.no_grad():
            logits = model(ids).logits[0]
            # An explicit mask: with <eos> disabled, transformers would otherwise take the
            # padding id (<eos>, the document separator) in the input for padding.
            mask = torch.ones_like(ids)
            new = model.generate(ids, attention_mask=mask, generation_config=greedy_config(model, args.greedy))
            new = new[0, ids.shape[1]:].tolist()
        diff = (logits - torch.tensor(s["logits"])).abs().max().item()
        diff_capped = (logits - torch.tensor(c["logits"])).abs().max().item()
        same = new == s["greedy"]
        worst, worst_capped = max(worst, diff), max(worst_capped, diff_capped)
        greedy_same += same
        ok &= diff <= args.tol and same
        print(f"  seq {i}: {ids.shape[1]:3d} tokens, max |Δlogit| {diff:.3e} (dropless), "
              f"{diff_capped:.3e} (capacity, dropped {max(c['dropped_fraction'] or [0]):.3f}), "
              f"greedy {'identical' if same else 'DIFFERENT'} ({len(new)} tokens)")
    # transformers' own save_pretrained output (no switchyard metadata) imports back exactly.
    model.save_pretrained(resaved)
    tok.save_pretrained(resaved)
    shutil.rmtree(imported, ignore_errors=True)
    sh([args.moe_train, "import", "--format", "hf", resaved, "--out", imported])
    back = switchyard_logits(args.moe_train, imported, work / f"{name}-imported.json", seqs, [], 0, True)
    round_trip = max(
        (torch.tensor(b["logits"]) - torch.tensor(s["logits"])).abs().max().item()
        for b, s in zip(back["sequences"], ours["sequences"])
    )
    ok &= round_trip == 0.0
    print(f"{'PASS' if ok else 'FAIL'} {run}: {len(ours['sequences'])} sequences, max |Δlogit| "
          f"{worst:.3e} dropless (tol {args.tol:g}), {worst_capped:.3e} at capacity_factor_eval "
          f"{ours['capacity_factor_eval']}; greedy identical {greedy_same}/{len(ours['sequences'])}; "
          f"save_pretrained → import round trip max |Δlogit| {round_trip:g}")
    for line in drops:
        print(f"  export: {line}")
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, help="switchyard run directory (repeatable)")
    p.add_argument("--moe-train", default="target/release/moe-train", help="the moe-train binary")
    p.add_argument("--work", default="target/hf-check", help="folder for exports and JSON")
    p.add_argument("--greedy", type=int, default=24, help="greedy tokens to compare")
    p.add_argument("--seqs", type=int, default=4, help="random token sequences per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-4, help="max |Δlogit| allowed (dropless)")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {__import__('transformers').__version__}")
    results = [check_run(args, run, work) for run in args.run]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
