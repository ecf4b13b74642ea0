"""The cost of the stages around pretraining, measured on the results of `make run`.

- tokenization: MB/s of corpus text through the BPE tokenizer into token files, 1 and 2 threads;
- the analysis (held-out loss + anisotropy at every depth + LM-head spectrum), as a fraction of
  the run's training time: one checkpoint's computation alone (the model loaded, in this
  process), and the run's `analyze_run` job as Snakemake runs it (a fresh Python, imports
  included, every checkpoint of the run's manifest measured into an empty measurement store),
  per checkpoint and for the run; then the same job again on that store, every record reused
  (what a rerun with nothing new costs).

    make run && python benchmarks/stages.py [--results results] [--configfile FILE …]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The analyze_run job (workflow/scripts/analyze_run.py) without Snakemake: its store in a temporary
# results folder, so the real one is left as it is.
JOB = """
import json
import sys
import torch
from saturation.measure.analysis import analyze_run
from saturation.tables import RunMeasurements, run_metrics, run_spectra, write_csv
manifest, val, recipe, run, results, events = sys.argv[1:]
torch.set_num_threads(1)
records = analyze_run(manifest, val, json.loads(recipe), results=results, events=events)
run = RunMeasurements(**json.loads(run), manifest=manifest, metrics=records)
write_csv(run_metrics(run), f"{results}/metrics.csv")
write_csv(run_spectra(run), f"{results}/spectra.csv")
"""


def current_plan(config: dict, results: Path):
    """The stages of `config` (its ids, not whatever else results/ holds from older configs)."""
    from saturation.plan import make_plan

    return make_plan(config | {"results": str(results)})


def tokenization(plan) -> list[dict]:
    from saturation.tokens import tokenize_split

    corpus, tokenizer = Path(plan.corpus.dir), Path(plan.tokenizer.file("tokenizer"))
    text = corpus / "train.jsonl"
    lines = text.read_text().splitlines()
    megabytes = sum(len(json.loads(line)["text"].encode()) for line in lines) / 1e6
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 2):
            start = time.perf_counter()
            tokenize_split(text, tokenizer, Path(tmp) / "t.bin", Path(tmp) / "t.json",
                           threads=threads)  # fmt: skip
            seconds = time.perf_counter() - start
            rows.append({"threads": threads, "MB": megabytes, "s": seconds})
    return rows


def analysis(plan) -> list[dict]:
    from saturation.measure.analysis import analyze_checkpoint

    rows = []
    for name, run in plan.runs.items():
        if not hasattr(run, "pretrain"):  # a published suite: no training time to compare with
            continue
        run_dir = Path(run.pretrain.dir)
        summary = json.loads((run_dir / "train.json").read_text())
        folder = run_dir / summary["checkpoints"][-1]["path"]
        recipe = run.analyze.recipe
        manifest, val = run.harvest.file("manifest"), run.tokens.file("bin", split="val")
        columns = {"run": run.name, "width": run.width, "seed": run.seed}
        with tempfile.TemporaryDirectory() as tmp:
            one = [folder, Path(val), recipe["seq_len"], recipe["val_tokens"],
                   recipe["batch_size"], Path(tmp) / "m.json", Path(tmp) / "s.npy"]  # fmt: skip
            analyze_checkpoint(*one)  # warm
            start = time.perf_counter()
            analyze_checkpoint(*one)
            compute = time.perf_counter() - start
            job = [sys.executable, "-c", JOB, str(manifest), str(val), json.dumps(recipe),
                   json.dumps(columns), str(Path(tmp) / "results")]  # fmt: skip
            jobs = {}
            for attempt in ("measured", "reused"):
                start = time.perf_counter()
                subprocess.run([*job, str(Path(tmp) / f"{attempt}.jsonl")], check=True)
                jobs[attempt] = time.perf_counter() - start
            events = (Path(tmp) / "measured.jsonl").read_text().splitlines()
            measured = sum(1 for line in events if json.loads(line)["measured"])
        rows.append({"run": name, "train_s": summary["wall_s"], "checkpoints": len(events),
                     "measured": measured, "compute_s": compute, "job_s": jobs["measured"],
                     "rerun_s": jobs["reused"]})  # fmt: skip
    return rows


def main() -> None:
    import torch

    from saturation.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--configfile", type=Path, nargs="*", default=[])  # as for snakemake
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(*args.configfile)

    print("\n| tokenization | threads | MB of text | seconds | MB/s |")
    print("|---|---:|---:|---:|---:|")
    plan = current_plan(config, args.results)
    for r in tokenization(plan):
        print(f"| train split | {r['threads']} | {r['MB']:.2f} | {r['s']:.2f} | {r['MB'] / r['s']:.2f} |")  # fmt: skip

    print("\n| run | training s | checkpoints | one checkpoint s (compute) | analyze_run job s "
          "(all measured) | job s per checkpoint | job s, all reused | one checkpoint ÷ training "
          "(compute / job per checkpoint) | all checkpoints ÷ training (job) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in analysis(plan):
        per_checkpoint = r["job_s"] / r["checkpoints"]
        print(f"| {r['run']} | {r['train_s']:.0f} | {r['checkpoints']} | {r['compute_s']:.2f} | "
              f"{r['job_s']:.2f} | {per_checkpoint:.2f} | {r['rerun_s']:.2f} | "
              f"{100 * r['compute_s'] / r['train_s']:.2f} % / "
              f"**{100 * per_checkpoint / r['train_s']:.2f} %** | "
              f"{100 * r['job_s'] / r['train_s']:.0f} % |")  # fmt: skip
        if r["measured"] != r["checkpoints"]:
            raise SystemExit(f"{r['run']}: {r['measured']} of {r['checkpoints']} measured")


if __name__ == "__main__":
    main()
