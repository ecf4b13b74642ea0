"""The cost of the stages around pretraining, measured on the results of `make run`.

- tokenization: MB/s of corpus text through the BPE tokenizer into token files, 1 and 2 threads;
- per-checkpoint analysis (held-out loss + anisotropy at every depth + LM-head spectrum), as a
  fraction of the run's training time: the computation alone (the model loaded, in this process)
  and the whole job as Snakemake runs it (a fresh Python: imports included), side by side with
  the same job when it also loads transformers and the checkpoint through `from_pretrained`
  (what the job did before it read checkpoints itself).

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

JOB = """
import sys
from pathlib import Path
import torch
if sys.argv[7] == "transformers":
    from transformers import GPTNeoXForCausalLM
    GPTNeoXForCausalLM.from_pretrained(sys.argv[1])
from saturation.measure.analysis import analyze_checkpoint
torch.set_num_threads(1)
analyze_checkpoint(checkpoint_dir=Path(sys.argv[1]), val_bin=Path(sys.argv[2]),
                   seq_len=int(sys.argv[3]), val_tokens=int(sys.argv[4]),
                   batch_size=int(sys.argv[5]), metrics_out=Path(sys.argv[6]) / "m.json",
                   sigma_out=Path(sys.argv[6]) / "s.npy")
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


def analysis(plan, config: dict) -> list[dict]:
    from saturation.measure.analysis import analyze_checkpoint

    tokens = Path(plan.tokens.dir)
    analyze_cfg = config["analysis"]
    rows = []
    for name, run in plan.runs.items():
        run_dir = Path(run.pretrain.dir)
        summary = json.loads((run_dir / "train.json").read_text())
        recipe = json.loads((run_dir / "recipe.json").read_text())["recipe"]
        folder = run_dir / summary["checkpoints"][-1]["path"]
        args = [str(folder), str(tokens / "val.bin"), str(recipe["train"]["seq_len"]),
                str(analyze_cfg["val_tokens"]), str(analyze_cfg["batch_size"])]  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            analyze_checkpoint(folder, Path(args[1]), int(args[2]), int(args[3]), int(args[4]),
                               Path(tmp) / "m.json", Path(tmp) / "s.npy")  # warm  # fmt: skip
            start = time.perf_counter()
            analyze_checkpoint(folder, Path(args[1]), int(args[2]), int(args[3]), int(args[4]),
                               Path(tmp) / "m.json", Path(tmp) / "s.npy")  # fmt: skip
            compute = time.perf_counter() - start
            jobs = {}
            for loader in ("ours", "transformers"):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", JOB, *args, tmp, loader], check=True)
                jobs[loader] = time.perf_counter() - start
        rows.append({"run": name, "train_s": summary["wall_s"],
                     "checkpoints": len(summary["checkpoints"]), "compute_s": compute,
                     "job_s": jobs["ours"], "job_transformers_s": jobs["transformers"]})  # fmt: skip
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

    print("\n| run | training s | checkpoints | analysis s (compute) | job s | "
          "job s, via transformers | one checkpoint ÷ training (compute / job / via transformers) "
          "| all checkpoints ÷ training (job) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in analysis(plan, config):
        share = {key: 100 * r[key] / r["train_s"] for key in ("compute_s", "job_s", "job_transformers_s")}  # fmt: skip
        print(f"| {r['run']} | {r['train_s']:.0f} | {r['checkpoints']} | {r['compute_s']:.2f} | "
              f"{r['job_s']:.2f} | {r['job_transformers_s']:.2f} | {share['compute_s']:.2f} % / "
              f"**{share['job_s']:.2f} %** / {share['job_transformers_s']:.2f} % | "
              f"{r['checkpoints'] * share['job_s']:.0f} % |")  # fmt: skip


if __name__ == "__main__":
    main()
