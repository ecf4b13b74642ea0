"""How long `snakemake -n` takes on a paper-sized sweep: 10 widths × Pythia's 154 checkpoints.

A run's analysis job (`analyze_run`, one per run) takes its checkpoints' weights as inputs, known
once the run is harvested (a checkpoint rule), so the sweep is first trained for real up to
`harvest` at micro shapes (the DAG does not depend on the model size): 10 runs × 154 checkpoints
(0, 1, 2, 4, … 512, then every 10 steps to 1430). Then the dry run plans every analysis,
evaluation, table and figure job: one `analyze_run` and one `evaluate_run` per run, the latter's
checkpoints (which include the lowest-loss one) chosen once its run's analysis has run
(`analyze_run` is a checkpoint rule).

    python benchmarks/dag_dry_run.py [--workdir /tmp/dag-sweep] [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SWEEP = {
    "corpus": {"max_documents": 400},
    "tokenizer": {"vocab_size": 512},
    "widths": [{"width": 16 * (i + 1), "layers": 1, "heads": 2} for i in range(10)],
    "train": {"steps": 1430, "batch_size": 4, "seq_len": 32,
              "checkpoints": {"log_until": 512, "every": 10}},
    "evaluation": {"checkpoints": {"every_k": 10}},
    "analysis": {"val_tokens": 1024, "batch_size": 8},
}  # fmt: skip


def snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(config), "--cores", "2",
               "--nocolor", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dag-sweep"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = args.workdir / "sweep.yaml"
    config.write_text(yaml.safe_dump(SWEEP))
    start = time.perf_counter()
    snakemake(args.workdir, config, "--until", "harvest", "--quiet")
    print(
        f"# trained and harvested 10 runs × 154 checkpoints in {time.perf_counter() - start:.0f} s"
    )
    timings = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        done = snakemake(args.workdir, config, "-n")
        timings.append(time.perf_counter() - start)
    total = re.search(r"^total\s+(\d+)", done.stdout, re.MULTILINE)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.MULTILINE))
    print("\n| dry run | jobs planned | analyze_run | evaluate_run | wall s (min of "
          f"{args.repeat}) | wall s (each) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|")
    print(f"| 10 widths × 154 checkpoints | {total.group(1) if total else '?'} | "
          f"{counts.get('analyze_run', '?')} | {counts.get('evaluate_run', '?')} | "
          f"{min(timings):.2f} | {', '.join(f'{t:.2f}' for t in timings)} |")  # fmt: skip


if __name__ == "__main__":
    main()
