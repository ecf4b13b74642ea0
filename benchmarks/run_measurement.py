"""What measuring a run's checkpoints in one job costs beyond the measurement itself.

K Pythia-70m-shaped GPT-NeoX checkpoints (6 layers, d 512, V 50,304 head rows; random weights,
one seed each, fp16 safetensors as the hub stores them, no tokenizer files: the tokenizer check
passes where a checkpoint has none) are written under a temporary results folder with their
manifest (`<results>/harvest/bench/manifest.csv`), then:

1. `analyze_run` measures them all in this process, as the `analyze_run` job does. Each checkpoint's
   forward passes (`measure_loss_and_anisotropy`) and head SVD (`spectra.singular_values`) are timed
   by wrapping those functions; its total is the `seconds` of its line in the job's event log
   (fingerprint, store lookup, sha256 check of the weights, head read, model load, forward, SVD,
   record written). Overhead = total − forward − SVD. Three parts of it are timed the same way:
   the sha256 check (`verify_entry`), the model load (`load_measured_model`) and the head read
   (`read_head_matrix`). The modules are imported before the run (once per job); the held-out
   windows are built inside the first checkpoint's time.
2. `analyze_run` again on the same store: every record reused, no weights read.
3. The old way, one job per checkpoint: a fresh `python -c` per checkpoint that imports torch,
   checks the checkpoint's sha256 against the manifest and calls `analyze_checkpoint`, timed from
   outside (interpreter start, imports and teardown included). Its records must equal (1)'s.

Default size (≈ 1.5 min on a 2-core CPU): K = 4, 8,192 held-out tokens in windows of 2,048 (four
windows of Pythia's context, as benchmarks/suite_checkpoint.py), batch 4, 2 threads
(torch.set_num_threads, also in the subprocesses; numpy's SVD uses its BLAS's own threads).

    python benchmarks/run_measurement.py [--checkpoints 4] [--val-tokens 8192] [--seq-len 2048]
                                         [--threads 2] [--device cpu]

Target (issue): overhead ≤ 10 % of forward + SVD per checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from suite_checkpoint import build_checkpoint, write_tokens  # benchmarks/: this script's folder

STEP_SPACING = 1000  # the manifest's steps: 0, 1000, 2000, …
TOKENS_PER_STEP = 1024 * 2048

# One checkpoint as the old per-checkpoint job measured it (workflow/scripts/analyze_checkpoint.py,
# removed): its weights checked against the manifest, then analysed on their own.
OLD_JOB = """
import sys
from pathlib import Path
import torch
from saturation.checkpoints import verified_checkpoint
from saturation.measure.analysis import analyze_checkpoint
manifest, step, val_bin, seq_len, val_tokens, batch_size, out, threads, device = sys.argv[1:]
torch.set_num_threads(int(threads))
analyze_checkpoint(verified_checkpoint(manifest, int(step)), Path(val_bin), int(seq_len),
                   int(val_tokens), int(batch_size), Path(out) / "metrics.json",
                   Path(out) / "sigma.npy", device=device)
"""


class Stopwatch:
    """Wall seconds of every call of the functions it wraps, per label, in call order."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label].append(time.perf_counter() - started)

        return timed


def build_run(results: Path, k: int) -> tuple[Path, int]:
    """K checkpoints under `results/checkpoints/step{N}` and their manifest: (manifest, params)."""
    from saturation.checkpoints import CheckpointEntry, weight_files, write_manifest
    from saturation.io import sha256_file

    entries, parameters = [], 0
    for i in range(k):
        step = i * STEP_SPACING
        folder = results / "checkpoints" / f"step{step}"
        parameters = build_checkpoint(folder, "70m", seed=i)
        digest = sha256_file(weight_files(folder)[0])
        entries.append(CheckpointEntry(step, step * TOKENS_PER_STEP, str(folder), digest))
    manifest = results / "harvest" / "bench" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    write_manifest(manifest, entries)
    return manifest, parameters


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def timed_run(manifest: Path, val_bin: Path, recipe: dict[str, Any], results: Path,
              events: Path, device: str, watch: Stopwatch | None) -> tuple[float, dict[int, Path]]:  # fmt: skip
    """`analyze_run` over the manifest, the measurement's parts timed when `watch` is given."""
    import saturation.measure.series as series
    import saturation.model.heads as heads
    import saturation.model.hf_forward as hf_forward
    from saturation.measure import analysis, spectra

    with ExitStack() as patches:
        if watch is not None:
            for owner, name, label in (
                (analysis, "measure_loss_and_anisotropy", "forward"),
                (spectra, "singular_values", "svd"),
                (series, "verify_entry", "sha256"),
                (hf_forward, "load_measured_model", "load"),
                (heads, "read_head_matrix", "head"),
            ):
                patches.enter_context(
                    mock.patch.object(owner, name, watch.wrap(label, getattr(owner, name)))
                )
        started = time.perf_counter()
        records = analysis.analyze_run(manifest, val_bin, recipe, results, events, device)
        return time.perf_counter() - started, records


def fresh_processes(manifest: Path, val_bin: Path, args: argparse.Namespace,
                    steps: list[int], scratch: Path) -> dict[int, tuple[float, Path]]:  # fmt: skip
    """The old way: a fresh Python per checkpoint; {step: (wall s, its metrics.json)}."""
    done = {}
    for step in steps:
        out = scratch / f"step{step}"
        out.mkdir(parents=True)
        command = [sys.executable, "-c", OLD_JOB, str(manifest), str(step), str(val_bin),
                   str(args.seq_len), str(args.val_tokens), str(args.batch_size), str(out),
                   str(args.threads), args.device]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
        done[step] = (time.perf_counter() - started, out / "metrics.json")
    return done


def main() -> None:
    from saturation.plan.suites import PYTHIA_HEAD_ROWS
    from saturation.tokens import read_header

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--val-tokens", type=int, default=8192)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = {"harvest": "bench", "tokens": "bench", "seq_len": args.seq_len,
              "val_tokens": args.val_tokens, "batch_size": args.batch_size}  # fmt: skip

    load_before = os.getloadavg()[0]  # other processes on the machine skew every time below
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = root / "results"
        started = time.perf_counter()
        manifest, parameters = build_run(results, args.checkpoints)
        val_bin = root / "val.bin"
        write_tokens(val_bin, max(args.val_tokens * 2, args.seq_len * 4))
        built = time.perf_counter() - started

        watch = Stopwatch()
        run_s, records = timed_run(manifest, val_bin, recipe, results, root / "first.jsonl",
                                   args.device, watch)  # fmt: skip
        first = read_events(root / "first.jsonl")
        again_s, _ = timed_run(manifest, val_bin, recipe, results, root / "again.jsonl",
                               args.device, None)  # fmt: skip
        again = {event["step"]: event for event in read_events(root / "again.jsonl")}
        steps = [event["step"] for event in first]
        fresh = fresh_processes(manifest, val_bin, args, steps, root / "old")

        assert all(event["measured"] == ["analysis"] for event in first), first
        assert all(event["reused"] == ["analysis"] for event in again.values()), again
        assert all(len(watch.seconds[label]) == len(steps) for label in watch.seconds), watch
        differences = [
            abs(json.loads(records[step].read_text())["metrics"]["val_loss"]
                - json.loads(path.read_text())["metrics"]["val_loss"])
            for step, (_, path) in fresh.items()
        ]  # fmt: skip
        record = json.loads(records[steps[0]].read_text())
        vocab = read_header(val_bin.with_suffix(".json")).vocab_size

    parts = ("forward", "svd", "sha256", "load", "head")
    rows = []
    for i, event in enumerate(first):
        row = {part: watch.seconds[part][i] for part in parts}
        row |= {"step": event["step"], "total": event["seconds"],
                "fresh": fresh[event["step"]][0], "reused": again[event["step"]]["seconds"]}  # fmt: skip
        row["compute"] = row["forward"] + row["svd"]
        row["overhead"] = row["total"] - row["compute"]
        rows.append(row)
    mean = {key: sum(row[key] for row in rows) / len(rows) for key in rows[0] if key != "step"}

    print(
        f"{args.checkpoints} Pythia-70m-shaped checkpoints ({parameters:,} parameters, fp16 "
        f"{parameters * 2 / 1e6:,.0f} MB each, head {PYTHIA_HEAD_ROWS:,} × "
        f"{record['info']['head_dim']}, its first {vocab:,} rows measured), "
        f"{record['info']['scored_tokens']:,} held-out tokens in windows of {args.seq_len}, "
        f"batch {args.batch_size}, {args.device}, {torch.get_num_threads()} threads; "
        f"built in {built:.0f} s; 1-min load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs"
    )
    print(
        "\n| step | forward s | SVD s | overhead s | overhead % of forward + SVD | of which "
        "sha256 / model load / head read s | one process: total s | fresh process per "
        "checkpoint s | all reused s |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for row in [*rows, {"step": "**mean**", **mean}]:
        share = 100 * row["overhead"] / row["compute"]
        bold = "**" if row["step"] == "**mean**" else ""
        print(
            f"| {row['step']} | {row['forward']:.2f} | {row['svd']:.2f} | {row['overhead']:.2f} "
            f"| {bold}{share:.1f} %{bold} | {row['sha256']:.2f} / {row['load']:.2f} / "
            f"{row['head']:.2f} | {row['total']:.2f} | {row['fresh']:.2f} | {row['reused']:.3f} |"
        )
    fresh_total = sum(seconds for seconds, _ in fresh.values())
    print(
        f"\nanalyze_run call: {run_s:.2f} s for {len(rows)} checkpoints ({run_s - sum(r['total'] for r in rows):.2f} s "
        f"outside the per-checkpoint times); all reused: {again_s:.3f} s; fresh process per "
        f"checkpoint: {fresh_total:.2f} s in all ({fresh_total / run_s:.2f}× the one-process "
        f"run); max |Δ val_loss| one process vs fresh processes: {max(differences):.1e}"
    )  # fmt: skip
    if not math.isfinite(max(differences)) or max(differences) > 1e-6:
        raise SystemExit("the one-process records differ from the per-checkpoint jobs' records")


if __name__ == "__main__":
    main()
