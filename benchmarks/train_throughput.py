"""Pretraining throughput: this project's training step against plain transformers, side by side.

Every (width, implementation) cell runs in a fresh subprocess on the same device, one after the
other, from the same initial weights and the same random tokens: full training steps (forward,
backward, global-norm clip, AdamW) of saturation.train.step.optimizer_step, timed after warm-up (which
includes torch.compile's compilation, reported apart). Implementations:

  hf-eager         transformers GPTNeoXForCausalLM, eager attention, full logits, unfused loss
  hf-sdpa          the same with SDPA attention
  hf-sdpa-compile  hf-sdpa under torch.compile
  ours             saturation.model.neox.FastGPTNeoX (the pretrain stage with `compile: off`)
  ours-compile     ours under torch.compile (what the pretrain stage runs: `compile: auto`)
  ours-ckpt[-compile]  ours with runtime.activation_checkpointing (each layer recomputed)

MFU counts 6·(L·12d² + V·d) + 12·L·T·d FLOPs per token (matmuls incl. the LM head, attention
scores) against the peak of a large matmul measured in the same run (fp32 on CPU, bf16 on GPU).

    python benchmarks/train_throughput.py                      # CPU: the default config's shapes
    python benchmarks/train_throughput.py --preset gpu         # Pythia shapes, seq 2048, V 50304

`--profile-widths 512` adds a torch.profiler breakdown of 3 more steps of every cell at that width
(device time by kernel family: GEMM, attention, compiled fusions, optimizer, the rest), which is how
a gap to a target is explained. `--deadline S` skips the cells that would start after S seconds, so
a run on a lent machine returns a table rather than nothing. `--rounds N` runs every cell N times,
round by round, and reports each cell's median run with every round's tokens/s beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

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
# the targets: CPU vs HF eager; GPU vs HF sdpa (width 128) and sdpa + compile (512, 768)
BASELINES = {"cpu": ("hf-eager",), "gpu": ("hf-sdpa", "hf-sdpa-compile")}


def flops_per_token(width: int, layers: int, vocab: int, seq_len: int) -> int:
    return 6 * (layers * 12 * width**2 + vocab * width) + 12 * layers * seq_len * width


def measure_peak(device: str, dtype: str) -> float:
    """FLOP/s of a large square matmul, best of 5 trials: the roof MFU is measured against."""
    import torch

    n = 8192 if device == "cuda" else 2048  # 8192³ bf16 is the size a GPU's roof is quoted at
    a = torch.randn(n, n, device=device, dtype=getattr(torch, dtype))
    b = torch.randn(n, n, device=device, dtype=getattr(torch, dtype))
    reps = 20 if device == "cuda" else 3
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
    from baselines import TransformersLoss  # beside this script

    from saturation.model.losses import loss_chunk_for
    from saturation.model.neox import FastGPTNeoX
    from saturation.model.shape import ModelShape, build_model
    from saturation.train.recipe import TrainConfig
    from saturation.train.speed import choose_speed_path
    from saturation.train.step import make_optimizer, optimizer_step

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shape = ModelShape(args.width, int(args.layers), args.width // args.head_dim, args.vocab,
                       args.seq_len)  # fmt: skip
    model = build_model(shape, seed=0)
    if args.impl.startswith("hf"):
        model.config._attn_implementation = "eager" if args.impl == "hf-eager" else "sdpa"
        step_fn = TransformersLoss(model)
    else:
        step_fn = FastGPTNeoX(model, loss_chunk_for(device), "ckpt" in args.impl)
    step_fn.to(device).train()
    cfg = TrainConfig(seed=0, steps=args.steps, batch_size=args.batch, seq_len=args.seq_len,
                      lr=1e-4, min_lr_ratio=0.1, warmup_steps=0, betas=(0.9, 0.95), eps=1e-8,
                      weight_decay=0.1, grad_clip=1.0, checkpoint_steps=(),
                      compile="off")  # fmt: skip
    # compile "off" here: the cell compiles itself below, and a compiler error must fail the cell
    # rather than fall back to eager (pretrain's auto) and be timed as if compiled
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
    if args.steps == 0:  # --precompile: this cell only fills the compiler caches
        return {"warmup_s": warmup_s}
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
    row = {"tokens_per_s": args.steps * args.batch * args.seq_len / elapsed,
           "warmup_s": warmup_s, "peak_mem_mib": peak_mem, "final_loss": float(loss)}  # fmt: skip
    if args.profile:
        steps = [tokens[i % len(tokens)] for i in range(3)]
        row["profile"] = profile_steps(
            lambda batch: optimizer_step(step_fn, optimizer, batch, cfg.grad_clip,
                                         speed.autocast_dtype),
            steps, device,
        )  # fmt: skip
    return row


KERNEL_FAMILIES = (  # (family, substrings of a kernel or op name), first match wins
    ("attention", ("flash", "fmha", "attention", "sdpa")),
    ("optimizer", ("adam", "multi_tensor_apply", "foreach", "clip_grad")),
    ("compiled fusion", ("triton_",)),
    ("gemm", ("gemm", "nvjet", "cutlass", "xmma", "sm90_", "sm80_", "mm", "matmul")),
)


def kernel_family(name: str) -> str:
    lowered = name.lower()
    for family, needles in KERNEL_FAMILIES:
        if any(needle in lowered for needle in needles):
            return family
    return "other"


def profile_steps(step, batches: list, device) -> dict:
    """Device time of `step` per kernel family and the top kernels, over len(batches) steps."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for batch in batches:
            step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
    events = prof.key_averages()
    if device.type == "cuda":
        # kernels only: CPU-side ops carry their kernels' time, and GPU-side annotation ranges
        # (Optimizer.step#…) span kernels already listed; either would count them twice
        kernel_events = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA
                         and not getattr(e, "is_user_annotation", False)]  # fmt: skip
        timed = [(e, e.self_device_time_total) for e in kernel_events or events]
    else:
        timed = [(e, e.self_cpu_time_total) for e in events]
    kernels = [(e.key, us / len(batches), e.count // len(batches)) for e, us in timed if us > 0]
    total = sum(us for _, us, _ in kernels)
    families: dict[str, float] = {}
    for name, us, _ in kernels:
        family = kernel_family(name)
        families[family] = families.get(family, 0.0) + us
    top = sorted(kernels, key=lambda k: -k[1])[:15]
    return {"step_device_ms": total / 1e3,
            "families_ms": {k: v / 1e3 for k, v in sorted(families.items(), key=lambda kv: -kv[1])},
            "top": [{"name": name[:90], "ms": us / 1e3, "calls": calls} for name, us, calls in top]}  # fmt: skip


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
    parser.add_argument("--json", help="also write the rows here (rewritten after every cell)")
    parser.add_argument("--profile-widths", default="", help="profile every cell at these widths")
    parser.add_argument("--deadline", type=float, help="start no cell after this many seconds")
    parser.add_argument("--cell-timeout", type=float, default=900, help="seconds per cell")
    parser.add_argument(
        "--precompile", type=int, default=0, metavar="N",
        help="first compile the compiled cells N at a time (one warm-up step each, into the "
        "on-disk inductor caches), so the timed cells start warm: less wall time on a lent GPU",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="run every cell this many times, round by round, and report each cell's median "
        "(single cells on a shared 2-core VM move by up to a third between runs)",
    )  # fmt: skip
    parser.add_argument("--cell", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--head-dim", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
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
    cells = [(w, n, impl) for w, n in zip(widths, layers, strict=True) for impl in impls]
    profiled = {int(w) for w in args.profile_widths.split(",") if w}
    started = time.perf_counter()
    torch.set_num_threads(args.threads)  # the cells' thread count: one roof for all of them
    peak = measure_peak(device, "bfloat16" if device == "cuda" else "float32")
    info = versions(device)
    print(f"# device {device}; {json.dumps(info)}")
    print(f"# peak matmul {peak / 1e12:.3f} TFLOP/s; seq {args.seq_len}, batch {args.batch}, "
          f"V {args.vocab}, {args.steps} timed steps after {args.warmup} warm-up, "
          f"{args.threads} thread(s)")  # fmt: skip

    def command(width: int, n_layers: int, impl: str, **overrides: object) -> list[str]:
        options = {"device": device, "width": width, "layers": n_layers, "impl": impl,
                   "head-dim": HEAD_DIM[preset_name], "seq-len": args.seq_len,
                   "batch": args.batch, "vocab": args.vocab, "steps": args.steps,
                   "warmup": args.warmup, "threads": args.threads} | overrides  # fmt: skip
        flags = [f"--{key}={value}" for key, value in options.items()]
        return [sys.executable, __file__, "--cell", *flags]

    if args.precompile:
        compiled = [c for c in cells if c[2].endswith("compile")]
        with ThreadPoolExecutor(args.precompile) as pool:
            list(pool.map(lambda c: run_command(command(*c, steps=0, warmup=1), args.cell_timeout),
                          compiled))  # fmt: skip
        print(f"# precompiled {len(compiled)} cells, {args.precompile} at a time, in "
              f"{time.perf_counter() - started:.0f} s: warm-up s below is with warm caches")  # fmt: skip

    measured: dict[tuple[int, int, str], list[dict]] = {cell: [] for cell in cells}
    for round_ in range(args.rounds):
        for width, n_layers, impl in cells:
            if args.deadline and time.perf_counter() - started > args.deadline:
                break  # the cells left have no result: "skipped: past --deadline"
            extra = ["--profile"] if width in profiled and round_ == 0 else []
            result = run_command(command(width, n_layers, impl) + extra, args.cell_timeout)
            if "tokens_per_s" in result:
                fpt = flops_per_token(width, n_layers, args.vocab, args.seq_len)
                result["mfu"] = fpt * result["tokens_per_s"] / peak
            measured[width, n_layers, impl].append(result)
            print(f"  round {round_ + 1}/{args.rounds} {width:>5} {impl:<16} "
                  f"{result.get('tokens_per_s', float('nan')):>10.0f} tok/s",
                  file=sys.stderr, flush=True)  # fmt: skip
            if args.json:
                with open(args.json, "w") as handle:
                    json.dump({"device": device, "versions": info, "peak_flops": peak,
                               "args": vars(args),
                               "rows": summarise({c: r for c, r in measured.items() if r})},
                              handle, indent=1)  # fmt: skip
    rows = summarise(measured)
    print_table(rows, BASELINES[preset_name], args.rounds)
    print_profiles(rows)


def summarise(measured: dict[tuple[int, int, str], list[dict]]) -> list[dict]:
    """One row per cell: its median round (the lower one of an even count), so tokens/s, MFU
    and memory come from one real run; every round's tokens/s beside it, and a profile (taken
    in the first round) kept."""
    rows = []
    for (width, n_layers, impl), results in measured.items():
        row = {"width": width, "layers": n_layers, "impl": impl}
        timed = [r for r in results if "tokens_per_s" in r]
        if not timed:
            rows.append(row | (results[0] if results else {"error": "skipped: past --deadline"}))
            continue
        median_low = sorted(timed, key=lambda r: r["tokens_per_s"])[(len(timed) - 1) // 2]
        row |= median_low | {"rounds_tokens_per_s": [r["tokens_per_s"] for r in timed],
                             "failed_rounds": len(results) - len(timed)}  # fmt: skip
        if "profile" in results[0]:  # taken in the first round only
            row["profile"] = results[0]["profile"]
        rows.append(row)
    return rows


def run_command(command: list[str], timeout: float) -> dict:
    """One cell in a fresh process: its JSON row, or {"error": the last line it printed}."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        lines = done.stderr.strip().splitlines()
        return {"error": (lines[-1] if lines else f"exit code {done.returncode}")[:80]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict], baselines: tuple[str, ...], rounds: int) -> None:
    base = {(r["impl"], r["width"]): r.get("tokens_per_s") for r in rows}
    ratios = " | ".join(f"÷ {b}" for b in baselines)
    spread = " tokens/s by round |" if rounds > 1 else ""
    median = " (median)" if rounds > 1 else ""
    print(f"\n| width | layers | implementation | tokens/s{median} | MFU | warm-up s | peak MiB | "
          f"{ratios} |{spread}")  # fmt: skip
    print("|---:|---:|---|---:|---:|---:|---:|" + "---:|" * len(baselines) + "---|" * (rounds > 1))
    for r in rows:
        if "error" in r:
            blanks = " – |" * (len(baselines) - 1 + (rounds > 1))  # the error fills a ratio column
            print(
                f"| {r['width']} | {r['layers']} | {r['impl']} | – | – | – | – | {r['error']} |{blanks}"
            )
            continue
        cells = " | ".join(
            f"{r['tokens_per_s'] / base[b, r['width']]:.2f}×" if base.get((b, r["width"])) else "–"
            for b in baselines
        )
        each = " / ".join(f"{t:,.0f}" for t in r["rounds_tokens_per_s"])
        failed = f" ({r['failed_rounds']} failed)" if r["failed_rounds"] else ""
        print(f"| {r['width']} | {r['layers']} | {r['impl']} | {r['tokens_per_s']:,.0f} | "
              f"{100 * r['mfu']:.1f} % | {r['warmup_s']:.1f} | {r['peak_mem_mib']:,.0f} | "
              f"{cells} |" + (f" {each}{failed} |" if rounds > 1 else ""))  # fmt: skip


def print_profiles(rows: list[dict]) -> None:
    for r in rows:
        if "profile" not in r:
            continue
        prof = r["profile"]
        shares = ", ".join(f"{family} {ms:.2f} ms ({100 * ms / prof['step_device_ms']:.0f} %)"
                           for family, ms in prof["families_ms"].items())  # fmt: skip
        print(f"\n## profile: width {r['width']}, {r['impl']}: {prof['step_device_ms']:.2f} ms "
              f"of kernels per step; {shares}")  # fmt: skip
        for k in prof["top"]:
            print(f"  {k['ms']:8.3f} ms  ×{k['calls']:<4} {k['name']}")


if __name__ == "__main__":
    main()
