#!/usr/bin/env python3
"""The switchyard decoder in plain PyTorch eager, timed per training step: the reference that
`moe-train bench step` is compared against (issue #15). Opt-in, not run by CI.

Same model as a switchyard preset: token embedding tied to the LM head, pre-norm blocks with
RMSNorm (eps 1e-5), causal multi-head attention without biases and RoPE on adjacent pairs
(theta 10000), dense ReLU/GELU/SwiGLU FFNs and top-1 Switch layers on every `moe_every`-th
block (router softmax in float32, capacity ceil(cf * T / E) with min 4, first-come-first-served
positions, index dispatch into an [E, C, d] buffer, one batched matmul, gather back times the
gate), loss = CE + 0.01 * sum balance + 0.001 * sum z-loss; AdamW (betas 0.9/0.95, eps 1e-8,
weight decay 0.1 on matrices only) after global-norm clipping at 1.0. Attention uses
`torch.nn.functional.scaled_dot_product_attention(is_causal=True)`, what a PyTorch user writes.

Usage (a venv with torch; 2 threads to match the 2-core machine):
    python benches/torch_step.py --preset tiny [--dense] [--threads 2] [--warmup 3] [--iters 10]
    python benches/torch_step.py --config configs/small.toml --json
Prints the median step time and tokens/s (one JSON object per model with --json).
"""
import argparse
import json
import math
import statistics
import time
import tomllib
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent


def load_config(path):
    cfg = tomllib.loads(Path(path).read_text())
    sw = cfg.get("switch", {})
    train = cfg.get("train", {})
    return {
        "vocab": cfg["vocab_size"], "d": cfg["d_model"], "layers": cfg["n_layers"],
        "heads": cfg["n_heads"], "d_ff": cfg["d_ff"], "max_seq": cfg["max_seq_len"],
        "experts": sw["num_experts"], "moe_every": cfg.get("moe_every", 2),
        "act": sw.get("activation", "relu"), "cf": sw.get("capacity_factor_train", 1.25),
        "min_cap": sw.get("min_capacity", 4),
        "batch": train.get("batch_size", 16), "seq": train.get("seq_len", 128),
    }


class Ffn(torch.nn.Module):
    """Dense FFN, or `experts` stacked FFNs (weights [E, d, f])."""

    def __init__(self, d, f, act, experts=None):
        super().__init__()
        shape = (experts, d, f) if experts else (d, f)
        shape_out = (experts, f, d) if experts else (f, d)
        self.act = act
        self.w1 = torch.nn.Parameter(torch.randn(*shape) * math.sqrt(0.1 / d))
        self.w2 = torch.nn.Parameter(torch.randn(*shape_out) * math.sqrt(0.1 / f))
        self.w3 = torch.nn.Parameter(torch.randn(*shape) * math.sqrt(0.1 / d)) if act == "swiglu" else None

    def forward(self, x):
        h = x @ self.w1
        if self.act == "relu":
            h = F.relu(h)
        elif self.act == "gelu":
            h = F.gelu(h)
        else:
            h = F.silu(h) * (x @ self.w3)
        return h @ self.w2


class Switch(torch.nn.Module):
    def __init__(self, d, f, act, experts, cf, min_cap):
        super().__init__()
        self.router = torch.nn.Parameter(torch.randn(d, experts) * math.sqrt(0.1 / d))
        self.experts = Ffn(d, f, act, experts)
        self.e, self.cf, self.min_cap = experts, cf, min_cap

    def forward(self, x):
        b, t, d = x.shape
        tokens = x.reshape(b * t, d)
        n = tokens.shape[0]
        logits = tokens.float() @ self.router.float()
        probs = logits.softmax(-1)
        gate, expert = probs.max(-1)
        capacity = min(n, max(self.min_cap, math.ceil(self.cf * n / self.e - 1e-9)))
        one_hot = F.one_hot(expert, self.e)
        position = (one_hot.cumsum(0) * one_hot).sum(-1) - 1
        keep = position < capacity
        slot = expert * capacity + position
        kept_slot = slot[keep]
        buffer = tokens.new_zeros(self.e * capacity, d)
        buffer[kept_slot] = tokens[keep]
        out = self.experts(buffer.view(self.e, capacity, d)).view(self.e * capacity, d)
        y = tokens.new_zeros(n, d)
        y[keep] = out[kept_slot] * gate[keep].unsqueeze(-1)
        counts = one_hot.float().mean(0)
        balance = self.e * (counts * probs.mean(0)).sum()
        z = torch.logsumexp(logits, -1).square().mean()
        return y.view(b, t, d), balance, z


def rope_tables(seq, head_dim, device):
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.arange(seq, device=device).float()[:, None] * inv[None, :]
    return angles.cos(), angles.sin()


def rope(x, cos, sin):
    # Adjacent pairs (2i, 2i+1) rotate together, as in switchyard.
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self, c, sparse):
        super().__init__()
        d = c["d"]
        self.heads = c["heads"]
        self.norm1 = torch.nn.RMSNorm(d, eps=1e-5)
        self.norm2 = torch.nn.RMSNorm(d, eps=1e-5)
        self.wqkv = torch.nn.Parameter(torch.randn(d, 3 * d) / math.sqrt(d))
        self.wo = torch.nn.Parameter(torch.randn(d, d) / math.sqrt(d))
        self.ffn = (Switch(d, c["d_ff"], c["act"], c["experts"], c["cf"], c["min_cap"]) if sparse
                    else Ffn(d, c["d_ff"], c["act"]))

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        hd = d // self.heads
        q, k, v = (self.norm1(x) @ self.wqkv).split(d, -1)
        q, k, v = (y.view(b, t, self.heads, hd).transpose(1, 2) for y in (q, k, v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + a.transpose(1, 2).reshape(b, t, d) @ self.wo
        out = self.ffn(self.norm2(x))
        if isinstance(out, tuple):
            h, bal, z = out
            return x + h, bal, z
        return x + out, None, None


class Model(torch.nn.Module):
    def __init__(self, c, dense):
        super().__init__()
        self.emb = torch.nn.Parameter(torch.randn(c["vocab"], c["d"]) / math.sqrt(c["d"]))
        every = c["moe_every"]
        self.blocks = torch.nn.ModuleList(
            Block(c, (not dense) and every > 0 and (i + 1) % every == 0) for i in range(c["layers"]))
        self.norm = torch.nn.RMSNorm(c["d"], eps=1e-5)
        self.cos, self.sin = rope_tables(c["seq"], c["d"] // c["heads"], "cpu")

    def forward(self, tokens, targets):
        x = self.emb[tokens]
        balance = z = 0.0
        for block in self.blocks:
            x, bal, zl = block(x, self.cos, self.sin)
            if bal is not None:
                balance, z = balance + bal, z + zl
        logits = self.norm(x) @ self.emb.t()
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))
        return ce + 0.01 * balance + 0.001 * z


def time_steps(c, dense, warmup, iters):
    torch.manual_seed(0)
    model = Model(c, dense)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                               {"params": other, "weight_decay": 0.0}],
                              lr=2e-3, betas=(0.9, 0.95), eps=1e-8)
    data = torch.randint(0, c["vocab"], (c["batch"], c["seq"] + 1))
    inputs, targets = data[:, :-1], data[:, 1:]
    samples = []
    for i in range(warmup + iters):
        start = time.perf_counter()
        loss = model(inputs, targets)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        loss.item()
        if i >= warmup:
            samples.append(time.perf_counter() - start)
    return samples


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--config", help="a switchyard config TOML (default: configs/<preset>.toml)")
    p.add_argument("--dense", action="store_true", help="only the dense twin")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    c = load_config(a.config or ROOT / "configs" / f"{a.preset}.toml")
    tokens = c["batch"] * c["seq"]
    for name, dense in ([("dense-twin", True)] if a.dense else [("switch", False), ("dense-twin", True)]):
        s = time_steps(c, dense, a.warmup, a.iters)
        med = statistics.median(s)
        row = {"model": name, "impl": "pytorch", "torch": torch.__version__, "threads": a.threads,
               "tokens_per_step": tokens, "median_s": med, "min_s": min(s), "tokens_per_s": tokens / med}
        print(json.dumps(row) if a.json else
              f"pytorch {name}: median {med * 1e3:.1f} ms, min {min(s) * 1e3:.1f} ms, {tokens / med:.0f} tokens/s")


if __name__ == "__main__":
    main()
