"""Pretraining throughput: this project's training step against plain transformers, side by side.

Every (width, implementation) cell runs in a fresh subprocess on the same device, one after the
other, from the same initial weights and the same random tokens: full training steps (forward,
backward, global-norm clip, AdamW) of saturation.train.optimizer_step, timed after warm-up (which
includes torch.compile's compilation, reported apart). Implementations:

  hf-eager         transformers GPTNeoXForCausalLM, eager attention, full logits, unfused loss
  hf-sdpa          the same with SDPA attention
  hf-sdpa-compile  hf-sdpa under torch.compile
  ours             saturation.fast_neox.FastGPTNeoX (what the pretrain stage runs)
  ours-compile     ours under torch.compile (what the pretrain stage runs on a GPU)

MFU counts 6·(L·12d² + V·d) + 12·L·T·d FLOPs per token (matmuls incl. the LM head, attention
scores) against the peak of a large matmul measured in the same run (fp32 on CPU, bf16 on GPU).

    python benchmarks/train_throughput.py                      # CPU: the default config's shapes
    python benchmarks/train_throughput.py --preset gpu         # Pythia shapes, seq 2048, V 50304
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

PRESETS = {
    # the default config.yaml: 2 layers, head_dim 32, batch 16 × 128, V 4096, 1 thread per job
    "cpu": {"widths": "32,64,128,256", "layers": "2", "seq_len": 128, "batch": 16,
            "vocab": 4096, "steps": 20, "warmup": 3,
            "impls": "hf-eager,hf-sdpa,hf-sdpa-compile,ours,ours-compile"},
    # Pythia 14M, 70M, 160M, 410M
    "gpu": {"widths": "128,512,768,1024", "layers": "6,6,12,24", "seq_len": 2048, "batch": 8,
            "vocab": 50304, "steps": 30, "warmup": 5,
            "impls": "hf-sdpa,hf-sdpa-compile,ours-compile"},
}  # fmt: skip
HEAD_DIM = {"cpu": 32, "gpu": 64}
BASELINE = {"cpu": "hf-eager", "gpu": "hf-sdpa-compile"}


def flops_per_token(width: int, layers: int, vocab: int, seq_len: int) -> int:
    return 6 * (layers * 12 * width**2 + vocab * width) + 12 * layers * seq_len * width


def measure_peak(device: str, dtype: str) -> float:
    """FLOP/s of a large square matmul, best of 5 trials: the roof MFU is measured against."""
    import torch

    n = 4096 if device == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=getattr(torch, dtype))
    b = torch.randn(n, n, device=device, dtype=getattr(torch, dtype))
    reps = 50 if device == "cuda" else 3
    a @ b
    best = float("inf")
    for _ in range(5):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * reps / best


def run_cell(args: argparse.Namespace) -> dict:
    """One implementation at one width, in this (fresh) process."""
    import torch

    from saturation.fast_neox import FastGPTNeoX, TransformersLoss, loss_chunk_for
    from saturation.model import ModelShape, build_model
    from saturation.train import TrainConfig, choose_speed_path, make_optimizer, optimizer_step

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shape = ModelShape(args.width, int(args.layers), args.width // args.head_dim, args.vocab,
                       args.seq_len)  # fmt: skip
    model = build_model(shape, seed=0)
    if args.impl.startswith("hf"):
        model.config._attn_implementation = "eager" if args.impl == "hf-eager" else "sdpa"
        step_fn = TransformersLoss(model)
    else:
        step_fn = FastGPTNeoX(model, loss_chunk_for(device))
    step_fn.to(device).train()
    cfg = TrainConfig(seed=0, steps=args.steps, batch_size=args.batch, seq_len=args.seq_len,
                      lr=1e-4, min_lr_ratio=0.1, warmup_steps=0, betas=(0.9, 0.95), eps=1e-8,
                      weight_decay=0.1, grad_clip=1.0, checkpoint_steps=())  # fmt: skip
    speed = choose_speed_path(cfg, device, args.threads)
    optimizer = make_optimizer(model, cfg, fused=speed.fused_adamw)
    if args.impl.endswith("compile"):
        step_fn = torch.compile(step_fn)
    tokens = torch.randint(0, args.vocab, (args.warmup + args.steps, args.batch, args.seq_len + 1),
                           generator=torch.Generator().manual_seed(0)).to(device)  # fmt: skip

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    started = time.perf_counter()
    for i in range(args.warmup):
        optimizer_step(step_fn, optimizer, tokens[i], cfg.grad_clip, speed.autocast_dtype)
    sync()
    warmup_s = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        loss, _ = optimizer_step(step_fn, optimizer, tokens[i], cfg.grad_clip, speed.autocast_dtype)
    sync()
    elapsed = time.perf_counter() - started
    if device.type == "cuda":
        peak_mem = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB, whole process
    return {"tokens_per_s": args.steps * args.batch * args.seq_len / elapsed,
            "warmup_s": warmup_s, "peak_mem_mib": peak_mem, "final_loss": float(loss)}  # fmt: skip


def versions(device: str) -> dict[str, str]:
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "cpu": platform.processor() or "?"}  # fmt: skip
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--widths")
    parser.add_argument("--layers", help="one value, or one per width")
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--vocab", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--impls")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--cell", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--head-dim", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        print(json.dumps(run_cell(args)))
        return

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    preset_name = args.preset or ("gpu" if device == "cuda" else "cpu")
    preset = PRESETS[preset_name]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    widths = [int(w) for w in args.widths.split(",")]
    layers = [int(x) for x in str(args.layers).split(",")]
    layers = layers * len(widths) if len(layers) == 1 else layers
    impls = args.impls.split(",")
    baseline = BASELINE[preset_name]
    torch.set_num_threads(args.threads)  # the cells' thread count: one roof for all of them
    peak = measure_peak(device, "bfloat16" if device == "cuda" else "float32")
    print(f"# device {device}; {json.dumps(versions(device))}")
    print(f"# peak matmul {peak / 1e12:.3f} TFLOP/s; seq {args.seq_len}, batch {args.batch}, "
          f"V {args.vocab}, {args.steps} timed steps after {args.warmup} warm-up, "
          f"{args.threads} thread(s)")  # fmt: skip
    rows = []
    for width, n_layers in zip(widths, layers, strict=True):
        for impl in impls:
            command = [
                sys.executable, __file__, "--cell", "--device", device, "--width", str(width),
                "--layers", str(n_layers), "--impl", impl, "--head-dim", str(HEAD_DIM[preset_name]),
                "--seq-len", str(args.seq_len), "--batch", str(args.batch), "--vocab",
                str(args.vocab), "--steps", str(args.steps), "--warmup", str(args.warmup),
                "--threads", str(args.threads),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            row = {"width": width, "layers": n_layers, "impl": impl}
            if done.returncode != 0:
                reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
                row |= {"error": reason[:80]}
            else:
                row |= json.loads(done.stdout.strip().splitlines()[-1])
                fpt = flops_per_token(width, n_layers, args.vocab, args.seq_len)
                row["mfu"] = fpt * row["tokens_per_s"] / peak
            rows.append(row)
            print(f"  {width:>5} {impl:<16} {row.get('tokens_per_s', float('nan')):>10.0f} tok/s",
                  file=sys.stderr, flush=True)  # fmt: skip
    print_table(rows, baseline)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": device, "peak_flops": peak, "args": vars(args), "rows": rows},
                      handle, indent=1)  # fmt: skip


def print_table(rows: list[dict], baseline: str) -> None:
    base = {r["width"]: r.get("tokens_per_s") for r in rows if r["impl"] == baseline}
    print(
        f"\n| width | layers | implementation | tokens/s | MFU | warm-up s | peak MiB | ÷ {baseline} |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['width']} | {r['layers']} | {r['impl']} | – | – | – | – | {r['error']} |")
            continue
        ratio = r["tokens_per_s"] / base[r["width"]] if base.get(r["width"]) else float("nan")
        print(f"| {r['width']} | {r['layers']} | {r['impl']} | {r['tokens_per_s']:,.0f} | "
              f"{100 * r['mfu']:.1f} % | {r['warmup_s']:.1f} | {r['peak_mem_mib']:,.0f} | "
              f"{ratio:.2f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
