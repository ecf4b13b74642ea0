"""What the paper's §5 measurements cost: a head sweep against a trunk forward, and the n-gram
stage against corpus size.

1. Head sweep. A GPT-NeoX checkpoint (random weights, saved as the pipeline's checkpoints are;
   `--width`, `--layers`, `--vocab`; default the shape of the default run's w64) and random
   token files are written to a temporary folder; then `sweep_run` (the `sweep_heads` job's code)
   runs once on it. Reported side by side: the trunk's one forward over the cached samples (the
   states pass, `extract_states`), the sweep's head training (every head of the grid), and what
   re-running the trunk for every head would cost instead: one forward over the tokens a head's
   training reads (steps × batch tokens), timed once and multiplied by the number of heads.
   Target (issue 15): the sweep's cost is dominated by head training, not by the trunk.
2. The n-gram stage (saturation.measure.ngram.dimensionality) on prefixes of a real token file
   (`--tokens`, e.g. results/tokens/<id>/train.bin; without it the embedded corpus is built and
   tokenized here, about a minute), each size in a fresh process: tokens, C, nnz, seconds per
   step, the peak of what the stage allocates (tracemalloc) and the process's peak RSS.

    python benchmarks/head_sweep.py [--width 64] [--layers 2] [--vocab 4096] [--threads 2]
                                    [--tokens results/tokens/<id>/train.bin] [--device cpu]

Default size: about 3 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from suite_checkpoint import write_token_file  # benchmarks/: this script's folder

# numpy and scipy report their buffers to tracemalloc: its peak is the stage's own memory, where
# the process's peak RSS is mostly the imported libraries'
NGRAM_CHILD = """
import json, sys, tracemalloc
from saturation.measure.ngram import dimensionality
tracemalloc.start()
table, info = dimensionality(sys.argv[1], 5, 1, 0.01, [64, 256, 1024])
peak = tracemalloc.get_traced_memory()[1] / 2**20
curve = {f"{row.kind}@{row.d}": round(row.w_error, 4) for row in table.itertuples()}
print(json.dumps(info | {"w_error": curve, "traced_peak_mib": round(peak)}))
"""


def build_checkpoint(folder: Path, width: int, layers: int, vocab: int) -> None:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=vocab, hidden_size=width, num_hidden_layers=layers,
        num_attention_heads=max(1, width // 64), intermediate_size=4 * width,
        max_position_embeddings=2048, rotary_pct=0.25, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    GPTNeoXForCausalLM(config).save_pretrained(folder)


def head_sweep(args: argparse.Namespace, root: Path) -> None:
    from saturation.checkpoints import CheckpointEntry, weight_files, write_manifest
    from saturation.io import sha256_file
    from saturation.measure.analysis import HeldoutSample
    from saturation.measure.head_sweep import sweep_run
    from saturation.measure.heldout import heldout_pass
    from saturation.measure.rank_heads import ranks_for
    from saturation.model.hf_forward import load_measured_model

    checkpoint = root / "checkpoints" / "step1000"
    build_checkpoint(checkpoint, args.width, args.layers, args.vocab)
    manifest = root / "manifest.csv"
    digest = sha256_file(weight_files(checkpoint)[0])
    write_manifest(manifest, [CheckpointEntry(1000, 0, str(checkpoint), digest)])
    rng = np.random.default_rng(0)
    for split, n in (("train", 4 * args.fit_tokens), ("val", 4 * args.heldout_tokens)):
        write_token_file(root / f"{split}.bin", rng.integers(1, args.vocab, n), args.vocab)
    train = {"steps": args.steps, "batch_tokens": args.batch_tokens, "warmup_fraction": 0.1,
             "min_lr_ratio": 0.1, "weight_decay": 0.0, "eval_every": 50, "seed": 0}  # fmt: skip
    recipe = {
        "harvest": "bench", "tokens": "bench", "seq_len": args.seq_len,
        "states": {"fit_tokens": args.fit_tokens, "heldout_tokens": args.heldout_tokens,
                   "batch_size": 16},
        "ranks": ranks_for(args.width, args.ranks), "inits": ["scaled"], "lrs": args.lrs, "train": train,
    }  # fmt: skip
    events = root / "events.jsonl"
    started = time.perf_counter()
    swept = sweep_run(manifest, [1000], recipe, root / "val.bin", root / "train.bin",
                      root / "results", events, device=args.device)  # fmt: skip
    total = time.perf_counter() - started
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    states = sum(line["seconds"] for line in lines if "measured" in line)
    heads = [line for line in lines if "rank" in line]
    training = sum(line["seconds"] for line in heads)
    # the trunk over one head's training tokens, as a design without the cache would pay per head
    model = load_measured_model(checkpoint, args.device)
    per_head_tokens = args.steps * args.batch_tokens
    windows = HeldoutSample.load(root / "train.bin", args.seq_len, per_head_tokens).windows
    forward_started = time.perf_counter()
    heldout_pass(model, windows, 16, [])
    forward = time.perf_counter() - forward_started
    (_, configs), = swept.values()  # fmt: skip
    print(f"\n## Head sweep: width {args.width}, {args.layers} layers, V {args.vocab}, "
          f"{args.device}, {torch.get_num_threads()} threads\n")  # fmt: skip
    print(f"grid: ranks {sorted({c.rank or args.width for c in configs})} (+ full rank), "
          f"{len(args.lrs)} learning rates, 1 init: {len(configs)} heads, {args.steps} updates "
          f"of {args.batch_tokens} states each\n")  # fmt: skip
    print("| part | seconds | share of the sweep |")
    print("|---|---:|---:|")
    print(f"| states pass: trunk forward over {args.fit_tokens + args.heldout_tokens:,} tokens, "
          f"once | {states:.1f} | {states / total:.1%} |")  # fmt: skip
    print(f"| head training, {len(heads)} heads | {training:.1f} | {training / total:.1%} |")
    print(f"| the whole sweep (`sweep_run`) | {total:.1f} | 100 % |")
    print(f"| without the cache: trunk forward over each head's {per_head_tokens:,} tokens × "
          f"{len(heads)} heads | {forward * len(heads):.1f} | "
          f"{forward * len(heads) / total:.0%} more |")  # fmt: skip


def ngram_sizes(args: argparse.Namespace, root: Path) -> None:
    from saturation.tokens import open_tokens, read_header

    source = Path(args.tokens) if args.tokens else embedded_tokens(root)
    header = read_header(source.with_suffix(".json"))
    tokens = np.asarray(open_tokens(source))
    print(f"\n## n-gram stage (n 5) on prefixes of {source}\n")
    print("| tokens | C | nnz | count s | probabilities s | logits s | allocated peak MiB | "
          "process peak RSS MiB | W-error probs d64/256/1024 | logits d64/256/1024 |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for fraction in (0.25, 0.5, 1.0):
        prefix = root / f"prefix{fraction}.bin"
        ids = tokens[: int(len(tokens) * fraction)]
        write_token_file(prefix, ids, header.vocab_size, header.eos_id)
        out = subprocess.run([sys.executable, "-c", NGRAM_CHILD, str(prefix)], check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
        info = json.loads(out.strip().splitlines()[-1])
        seconds, curve = info["seconds"], info["w_error"]
        probs = "/".join(f"{curve[f'probabilities@{d}']:.3f}" for d in (64, 256, 1024))
        logits = "/".join(f"{curve[f'logits@{d}']:.3f}" for d in (64, 256, 1024))
        print(f"| {info['tokens']:,} | {info['contexts']:,} | {info['nnz']:,} | "
              f"{seconds['count']} | {seconds['probabilities']} | {seconds['logits']} | "
              f"{info['traced_peak_mib']} | {info['peak_rss_mib']} | {probs} | {logits} |")  # fmt: skip


def embedded_tokens(root: Path) -> Path:
    """The embedded default's train split, tokenized with a 4,096-id BPE, as `make run` does."""
    from saturation.corpus import build_corpus
    from saturation.tokenizer import train_bpe_tokenizer
    from saturation.tokens import tokenize_split

    build_corpus([{"builtin": "kjv"}, {"builtin": "shakespeare"}], root / "corpus",
                 val_fraction=0.05, test_fraction=0.05)  # fmt: skip
    train_bpe_tokenizer(root / "corpus" / "train.jsonl", root / "tokenizer", vocab_size=4096)
    out = root / "train.bin"
    tokenize_split(root / "corpus" / "train.jsonl", root / "tokenizer", out, root / "train.json",
                   threads=2)  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--fit-tokens", type=int, default=65536)
    parser.add_argument("--heldout-tokens", type=int, default=16384)
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-2, 5e-2, 2e-1])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokens", help="a token file for the n-gram part (default: built here)")
    parser.add_argument("--skip-ngram", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        head_sweep(args, Path(tmp))
        if not args.skip_ngram:
            ngram_sizes(args, Path(tmp))


if __name__ == "__main__":
    main()
