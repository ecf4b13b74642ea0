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

A run's measurement jobs (`analyze_run`, `evaluate_run`) also log one JSON line per checkpoint
(`<job>.jsonl` beside the benchmark file: step, measured or reused records, seconds). A second
table splits their time: checkpoints measured and reused, seconds spent on them, per measured
checkpoint, and the rest of the job (interpreter start, imports, tables written).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from saturation.config import load_config
from saturation.plan import make_plan

BENCHMARK_SUFFIX = ".benchmark.tsv"
EVENTS_SUFFIX = ".jsonl"  # a measurement job's per-checkpoint event log


def job_files(
    logs: str | Path, suffix: str, stage_ids: Iterable[str]
) -> Iterator[tuple[Path, str]]:
    """(file, job) for every `logs/<rule>/<job><suffix>` of the given stages' jobs: jobs are
    named after their stage's id, so files left by other configs in the same results folder
    are skipped."""
    ids = tuple(stage_ids)
    for path in sorted(Path(logs).glob(f"*/*{suffix}")):
        job = path.name.removesuffix(suffix)
        if job.startswith(ids):
            yield path, job


def read_job_costs(logs: str | Path, stage_ids: Iterable[str]) -> pd.DataFrame:
    """One row per job of the given stages (rule, job, wall_s, max_rss_mib, cpu_s); a job's
    latest run is the one on disk."""
    rows = []
    for path, job in job_files(logs, BENCHMARK_SUFFIX, stage_ids):
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


def read_checkpoint_events(logs: str | Path, stage_ids: Iterable[str]) -> pd.DataFrame:
    """One row per checkpoint of the given stages' measurement jobs (rule, job, step, measured,
    reused, seconds): the job's latest line for each step, as the event log is appended to
    by every run of the job. A head sweep's log also has a line per trained head: left out,
    its checkpoints' lines are the states pass (the head training is outside them)."""
    rows = []
    for path, job in job_files(logs, EVENTS_SUFFIX, stage_ids):
        latest = {}
        for line in path.read_text().splitlines():
            if line.strip() and "measured" in (event := json.loads(line)):
                latest[event["step"]] = event
        rows += [
            {"rule": path.parent.name, "job": job, "step": step, "measured": len(event["measured"]),
             "reused": len(event["reused"]), "seconds": float(event["seconds"])}
            for step, event in sorted(latest.items())
        ]  # fmt: skip
    return pd.DataFrame(rows, columns=["rule", "job", "step", "measured", "reused", "seconds"])


def checkpoint_costs(jobs: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Per measurement rule: its jobs, checkpoints (any record measured / all reused), records
    measured and reused, seconds on checkpoints (all, and per checkpoint that measured), and the
    job wall time outside them (Snakemake's benchmark files less the checkpoints' seconds)."""
    measuring = events.measured > 0
    events = events.assign(measuring=measuring, measuring_s=events.seconds.where(measuring, 0.0))
    per_rule = events.groupby("rule").agg(
        jobs=("job", "nunique"),
        checkpoints=("step", "count"),
        measuring=("measuring", "sum"),
        measured=("measured", "sum"),
        reused=("reused", "sum"),
        checkpoint_s=("seconds", "sum"),
        measuring_s=("measuring_s", "sum"),
    )
    per_rule["per_measured_s"] = per_rule.measuring_s / per_rule.measuring.where(
        per_rule.measuring > 0
    )
    job_wall = jobs[jobs.job.isin(events.job)].groupby("rule").wall_s.sum()
    per_rule["job_s"] = job_wall.reindex(per_rule.index)
    per_rule["outside_s"] = per_rule.job_s - per_rule.checkpoint_s
    return per_rule.sort_values("job_s", ascending=False).reset_index()


def checkpoints_markdown(costs: pd.DataFrame) -> str:
    lines = [
        "| rule | jobs | checkpoints (measuring / all reused) | records measured / reused | "
        "s on checkpoints | s per measuring checkpoint | job wall s | s outside checkpoints |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in costs.itertuples():
        per = "–" if pd.isna(row.per_measured_s) else f"{row.per_measured_s:,.2f}"
        wall, outside = ("–", "–") if pd.isna(row.job_s) else (f"{row.job_s:,.1f}", f"{row.outside_s:,.1f}")  # fmt: skip
        lines.append(
            f"| {row.rule} | {row.jobs} | {row.checkpoints} ({row.measuring} / "
            f"{row.checkpoints - row.measuring}) | {row.measured} / {row.reused} | "
            f"{row.checkpoint_s:,.1f} | {per} | {wall} | {outside} |"
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
    events = read_checkpoint_events(args.results / "logs", (stage.id for stage in plan.stages()))
    if not events.empty:
        print("\n" + checkpoints_markdown(checkpoint_costs(jobs, events)))


if __name__ == "__main__":
    main()
