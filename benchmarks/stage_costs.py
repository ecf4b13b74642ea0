"""Where a workflow run's time went, per rule, from the jobs' own Snakemake benchmark files.

Every rule writes `results/logs/<rule>/<job>.benchmark.tsv`; this sums the jobs of the stages
`--config` plans (not those other configs left in the same results folder):

    make run && python benchmarks/stage_costs.py [--results results] [--configfile FILE …]

(`--configfile` as given to snakemake: on top of the embedded config.yaml.)

Each job's file holds its wall time and, once it runs for more than about a second, its peak
memory and CPU time (Snakemake samples the job's process tree every 0.5 s for 30 s, then every
30 s): summed per rule, where the time goes and what a cluster job needs to request.

"Share of job time" is of the summed job wall times: jobs run side by side, so the shares say
where the cores went, not how long the workflow took (Snakemake's `Elapsed time` says that).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from saturation.config import load_config
from saturation.plan import make_plan

BENCHMARK_SUFFIX = ".benchmark.tsv"


def read_job_costs(logs: str | Path, stage_ids: Iterable[str]) -> pd.DataFrame:
    """One row per job of the given stages (rule, job, wall_s, max_rss_mib, cpu_s).

    Jobs are named after their stage's id, so logs left by other configs in the same results
    folder are skipped. A job's latest run is the one on disk.
    """
    ids = tuple(stage_ids)
    rows = []
    for path in sorted(Path(logs).glob(f"*/*{BENCHMARK_SUFFIX}")):
        job = path.name.removesuffix(BENCHMARK_SUFFIX)
        if not job.startswith(ids):
            continue
        record = pd.read_csv(path, sep="\t").iloc[-1]  # one row per repeat; none are asked for
        rows.append({
            "rule": path.parent.name,
            "job": job,
            "wall_s": float(record["s"]),
            "max_rss_mib": pd.to_numeric(record.get("max_rss"), errors="coerce"),
            "cpu_s": pd.to_numeric(record.get("cpu_time"), errors="coerce"),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["rule", "job", "wall_s", "max_rss_mib", "cpu_s"])


def stage_costs(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule, costliest first: jobs, total / mean / max wall seconds, share of all job time,
    peak memory over its jobs, and total CPU seconds."""
    per_rule = jobs.groupby("rule").agg(
        jobs=("job", "count"),
        total_s=("wall_s", "sum"),
        mean_s=("wall_s", "mean"),
        max_s=("wall_s", "max"),
        peak_rss_mib=("max_rss_mib", "max"),
        cpu_s=("cpu_s", lambda cpu: cpu.sum(min_count=1)),
    )
    per_rule["share"] = per_rule.total_s / per_rule.total_s.sum()
    return per_rule.sort_values("total_s", ascending=False).reset_index()


def to_markdown(costs: pd.DataFrame) -> str:
    lines = [
        "| rule | jobs | wall s, all jobs | mean | max | share of job time | peak RSS MiB | CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in costs.itertuples():
        rss = "–" if pd.isna(row.peak_rss_mib) else f"{row.peak_rss_mib:,.0f}"
        cpu = "–" if pd.isna(row.cpu_s) else f"{row.cpu_s:,.1f}"
        lines.append(
            f"| {row.rule} | {row.jobs} | {row.total_s:,.1f} | {row.mean_s:,.2f} | "
            f"{row.max_s:,.2f} | {100 * row.share:.1f} % | {rss} | {cpu} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--configfile", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    config = load_config(*args.configfile)
    plan = make_plan(config | {"results": str(args.results)})
    jobs = read_job_costs(args.results / "logs", (stage.id for stage in plan.stages()))
    if jobs.empty:
        raise SystemExit(f"{args.results}/logs: no job benchmark files of this config's stages")
    print(to_markdown(stage_costs(jobs)))
    print(f"\n{len(jobs)} jobs, {jobs.wall_s.sum():,.0f} s of job wall time in all")


if __name__ == "__main__":
    main()
