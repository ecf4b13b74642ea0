"""Where a workflow run's time went, per rule, from the jobs' own Snakemake benchmark files.

Every rule writes `results/logs/<rule>/<job>.benchmark.tsv`; this sums the jobs of the stages
`--config` plans (not those other configs left in the same results folder):

    make run && python benchmarks/stage_costs.py [--results results] [--configfile FILE …]

(`--configfile` as given to snakemake: on top of the embedded config.yaml.)

"Share of job time" is of the summed job wall times: jobs run side by side, so the shares say
where the cores went, not how long the workflow took (Snakemake's `Elapsed time` says that).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from saturation.config import load_config
from saturation.jobcosts import read_job_costs, stage_costs, to_markdown
from saturation.plan import make_plan


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
