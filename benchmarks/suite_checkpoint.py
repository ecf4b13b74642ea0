"""What one published checkpoint costs to measure: a Pythia-shaped checkpoint (random weights, fp16
safetensors as the hub stores them, V = 50,304 head rows) through the suite harvest's hashing and the
analysis (held-out loss + anisotropy at every depth + the head's spectrum), beside transformers'
own forward over the same windows (`from_pretrained` + `output_hidden_states`) as the baseline.

    python benchmarks/suite_checkpoint.py [--size 70m] [--val-tokens 8192] [--device cpu]

Prints one table; times are wall seconds of this process (imports excluded).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

PYTHIA_TOKENS = 50_277


def build_checkpoint(folder: Path, size: str, seed: int = 0) -> int:
    """A randomly initialised Pythia-`size` saved as the hub stores it; returns its parameters."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from saturation.plan.suites import PYTHIA_CONTEXT, PYTHIA_HEAD_ROWS, PYTHIA_SHAPES

    layers, width, heads = PYTHIA_SHAPES[size]
    config = GPTNeoXConfig(
        vocab_size=PYTHIA_HEAD_ROWS, hidden_size=width, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=4 * width,
        max_position_embeddings=PYTHIA_CONTEXT, rotary_pct=0.25, use_parallel_residual=True,
        tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config).half()
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def write_token_file(path: Path, ids: np.ndarray, vocab: int, eos_id: int = 0) -> None:
    """`ids` in the pipeline's token-file format (uint32), with its header."""
    from saturation.io import write_json_atomic
    from saturation.tokens import FORMAT_VERSION, TokenHeader

    data = ids.astype(np.uint32).tobytes()
    path.write_bytes(data)
    header = TokenHeader(tokens=len(ids), dtype="uint32", vocab_size=vocab, eos_id=eos_id,
                         documents=1, sha256=hashlib.sha256(data).hexdigest(),
                         format_version=FORMAT_VERSION)  # fmt: skip
    write_json_atomic(path.with_suffix(".json"), asdict(header))


def write_tokens(path: Path, n_tokens: int) -> None:
    """Random ids of Pythia's vocabulary in the pipeline's token-file format."""
    ids = np.random.default_rng(0).integers(0, PYTHIA_TOKENS, n_tokens, dtype=np.uint32)
    write_token_file(path, ids, PYTHIA_TOKENS)


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def transformers_pass(folder: Path, windows: np.ndarray, batch_size: int, device: str) -> float:
    """The baseline: the stock model's forward with every depth's states, and its loss."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[start : start + batch_size]).to(device)
            out = model(batch[:, :-1], labels=batch[:, :-1], output_hidden_states=True)
            total += out.loss.item()
    return total


def main() -> None:
    from saturation.hub import hash_weights
    from saturation.measure import spectra
    from saturation.measure.analysis import analyze_checkpoint
    from saturation.measure.heldout import heldout_windows
    from saturation.model.heads import read_head_matrix
    from saturation.tokens import open_tokens

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="70m")
    parser.add_argument("--val-tokens", type=int, default=8192)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        parameters = build_checkpoint(root / "ckpt", args.size)
        write_tokens(root / "val.bin", max(args.val_tokens * 2, args.seq_len * 4))
        hashing, _ = timed(hash_weights, root / "ckpt")
        spectrum, _ = timed(lambda: spectra.singular_values(read_head_matrix(root / "ckpt",
                                                                            PYTHIA_TOKENS)))  # fmt: skip
        ours, record = timed(
            analyze_checkpoint, root / "ckpt", root / "val.bin", args.seq_len, args.val_tokens,
            args.batch_size, root / "m.json", root / "s.npy", device=args.device,
        )  # fmt: skip
        windows = heldout_windows(open_tokens(root / "val.bin"), args.seq_len, args.val_tokens)
        baseline, _ = timed(transformers_pass, root / "ckpt", windows, args.batch_size,
                            args.device)  # fmt: skip
    scored = record["info"]["scored_tokens"]
    size_mb = parameters * 2 / 1e6
    print(f"Pythia-{args.size}-shaped checkpoint ({parameters:,} parameters, fp16 ≈ {size_mb:,.0f} MB), "
          f"{scored:,} held-out tokens of context {args.seq_len}, {args.device}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print("| step | seconds |\n|---|---:|")
    print(f"| sha256 of the weights (harvest) | {hashing:.2f} |")
    print(f"| head read + SVD (50,277 × d) | {spectrum:.2f} |")
    print(f"| analysis (ours: spectrum + loss + anisotropy, every depth) | {ours:.2f} |")
    print(f"| transformers forward with hidden states (baseline, loss only) | {baseline:.2f} |")
    print(f"| ours per 1k held-out tokens | {ours / scored * 1000:.3f} |")


if __name__ == "__main__":
    main()
