"""The throwaway test cluster, shaped after profiles/slurm: the partitions, account and GPU type the
profile names exist on it, so the profile runs against it unmodified (even once edited for a real
cluster), and the node is advertised large enough for the profile's production-sized requests.

    python tests/slurm/cluster.py up     # tests/slurm/up.sh with that shape (make slurm-up)
    python tests/slurm/cluster.py down   # tests/slurm/down.sh --purge (make slurm-down)

SLURM_CI_* variables already set in the environment win over the derived ones.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROFILE = ROOT / "profiles" / "slurm"
UP, DOWN = HERE / "up.sh", HERE / "down.sh"
UNAVAILABLE = 77  # up.sh: SLURM cannot run on this machine (not an error of the project)


def profile_config(profile: Path = PROFILE) -> dict:
    return yaml.safe_load((profile / "config.yaml").read_text())


def cluster_env(profile: Path = PROFILE) -> dict[str, str]:
    config = profile_config(profile)
    resources = [config.get("default-resources") or {}]
    resources += list((config.get("set-resources") or {}).values())
    partitions = [str(r["slurm_partition"]) for r in resources if r.get("slurm_partition")]
    accounts = {str(r["slurm_account"]) for r in resources if r.get("slurm_account")}
    gpu_types = [str(r["gpu_model"]) for r in resources if r.get("gpu_model")]
    return {
        # the first one is the cluster's default partition
        "SLURM_CI_PARTITIONS": " ".join(dict.fromkeys(partitions)) or "debug",
        "SLURM_CI_ACCOUNTS": " ".join(sorted(accounts)),
        # fake gres/gpu devices: two runs of the micro config train at once, one GPU each
        "SLURM_CI_GPUS": "2",
        "SLURM_CI_GPU_TYPE": gpu_types[0] if gpu_types else "a100",
        "SLURM_CI_CPUS": "32",
        "SLURM_CI_MEM_MB": "256000",
        "SLURM_CI_ACCOUNTING": "1",
    }


def main(argv: list[str]) -> int:
    if argv == ["up"]:
        env = cluster_env() | dict(os.environ)
        os.execvpe("bash", ["bash", str(UP)], env)
    if argv == ["down"]:
        os.execvp("bash", ["bash", str(DOWN), "--purge"])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
