"""The workflow on a real single-node SLURM through `snakemake --profile profiles/slurm`, the profile
as users get it: every job goes through sbatch, a rerun does nothing, one width's change reruns its
subtree only, and a pretraining job cancelled with `scancel` resumes from its last checkpoint.

The cluster (munge, slurmctld, slurmd, slurmdbd + MariaDB for a real sacct, two fake GPUs) comes up
once per session from Debian packages (tests/slurm/up.sh) and is purged at the end. The tests skip
only where SLURM cannot run: not root, no apt-get, packages that do not install, or
SATURATION_SKIP_SLURM=1 (SATURATION_KEEP_SLURM=1 leaves the cluster up afterwards).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import DRAWN_FIGURES, MICRO, SNAKEFILE, write_config
from tests.slurm.cluster import DOWN, PROFILE, UNAVAILABLE, UP, cluster_env, profile_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# On top of configs/micro.yaml, for time: 2 checkpoints a run instead of 6, one task, evaluated at
# the final checkpoint only (no lowest-loss step to wait for, so evaluation runs beside the
# analysis). On SLURM every dependency level costs a status poll (the plugin waits 2, 12, 22 … s
# between polls until a job ends).
FAST = {
    "train": {"checkpoints": {"log_until": 0, "every": 40}},
    "evaluation": {
        "tasks": ["sat_wordperplexity"],  # all five figures still apply
        "checkpoints": {"every_k": None, "last_n": None, "include": ["final"]},
    },
}
STEPS = [0, 40]
LOCAL = {"all"}  # the Snakefile's localrules in this DAG
LOCK = Path("/tmp/saturation-slurm.lock")

SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
TOP_LEVEL_JOB = re.compile(r"^(local)?(?:rule|checkpoint) (\w+):$", re.M)
GROUP_JOB = re.compile(r"\] Group job (\S+) \(jobs in lexicogr\. order\):$", re.M)
ANY_JOB = re.compile(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):$", re.M)  # group members too


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    if os.environ.get("SATURATION_SKIP_SLURM") == "1":
        pytest.skip("SATURATION_SKIP_SLURM=1")
    if os.geteuid() != 0:
        pytest.skip("a test SLURM needs root (tests/slurm/up.sh installs and starts daemons)")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("no SLURM installed and no apt-get to install it")
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one test cluster per machine: a second session waits
        env = os.environ | cluster_env()
        try:
            up = subprocess.run(
                ["bash", str(UP)], env=env, capture_output=True, text=True, timeout=900
            )
            output = up.stdout + up.stderr
            if up.returncode == UNAVAILABLE:
                pytest.skip(f"SLURM cannot run here: {output.strip().splitlines()[-1]}")
            assert up.returncode == 0, f"tests/slurm/up.sh failed ({up.returncode}):\n{output}"
            yield
        finally:
            if os.environ.get("SATURATION_KEEP_SLURM") != "1":
                subprocess.run(["bash", str(DOWN), "--purge"], capture_output=True, timeout=300)


def start(workdir: Path, *args: str, name: str) -> subprocess.Popen:
    """`snakemake --profile profiles/slurm` in `workdir`, its output in `workdir/<name>.log`.
    The one flag beyond the profile: the first status poll 2 s after a submission, not 40 s."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir), "--profile", str(PROFILE),
        "--slurm-init-seconds-before-status-checks", "2", "--nocolor", *args,
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with (workdir / f"{name}.log").open("w") as log:
        return subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop(job: subprocess.Popen) -> None:
    """Ctrl-C, as a user would (Snakemake then cancels its SLURM jobs); SIGKILL if that hangs."""
    if job.poll() is None:
        job.send_signal(signal.SIGINT)
        try:
            job.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()


def tail(workdir: Path, name: str, lines: int = 120) -> str:
    return "\n".join((workdir / f"{name}.log").read_text().splitlines()[-lines:])


def run(workdir: Path, *args: str, name: str, timeout: float = 420) -> str:
    """Run to the end (the plugin polls forever if SLURM stops answering: a deadline, then
    Ctrl-C); the log, or an AssertionError with its tail."""
    job = start(workdir, *args, name=name)
    try:
        returncode = job.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(job)
        raise AssertionError(f"{name}: no end after {timeout} s\n{tail(workdir, name)}") from None
    assert returncode == 0, f"{name}: snakemake failed ({returncode})\n{tail(workdir, name)}"
    return (workdir / f"{name}.log").read_text()


def jobs_run(log: str) -> Counter[str]:
    return Counter(ANY_JOB.findall(log))


def expected_submissions(log: str) -> int:
    """What must have gone through sbatch: every job Snakemake started outside a group and not
    locally, plus every group job."""
    top_level = [local for local, _ in TOP_LEVEL_JOB.findall(log) if not local]
    return len(top_level) + len(GROUP_JOB.findall(log))


def local_rules(log: str) -> set[str]:
    return {rule for local, rule in TOP_LEVEL_JOB.findall(log) if local}


def sacct(*args: str) -> list[dict[str, str]]:
    fields = ["JobIDRaw", "State", "Partition", "AllocTRES"]
    done = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-1days", f"--format={','.join(fields)}", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [dict(zip(fields, line.split("|"), strict=True)) for line in done.stdout.splitlines()]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def snapshot(results: Path) -> dict[Path, int]:
    return {
        p: p.stat().st_mtime_ns
        for p in results.rglob("*")
        if p.is_file() and "logs" not in p.parts and p.name != "index.csv"
    }


def digests(folder: Path) -> dict[Path, tuple[int, str]]:
    return {
        p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def micro_slurm(slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("slurm")
    write_config(workdir / "fast.yaml", FAST)
    return workdir, run(workdir, *micro_args(workdir), name="full")


def micro_args(workdir: Path, *more: Path) -> list[str]:
    return ["--configfile", str(MICRO), str(workdir / "fast.yaml"), *map(str, more)]


def test_every_job_goes_through_sbatch(micro_slurm: tuple[Path, str]) -> None:
    workdir, log = micro_slurm
    results = workdir / "results"
    runs = len(yaml.safe_load(MICRO.read_text())["widths"])
    submitted = SUBMITTED.findall(log)
    assert len(submitted) == expected_submissions(log)
    assert local_rules(log) == LOCAL

    ran = jobs_run(log)
    # one SLURM job per run for each stage, its checkpoints measured one after another
    assert ran["pretrain"] == ran["harvest"] == ran["analyze_run"] == ran["evaluate_run"] == runs
    assert ran["plot_figure"] == len(DRAWN_FIGURES) and ran["tidy_table"] == 1
    assert not GROUP_JOB.findall(log)
    data = {"build_corpus": 1, "train_tokenizer": 1, "tokenize": 3, "build_eval_tasks": 1}
    swept = len(yaml.safe_load(MICRO.read_text())["heads"]["widths"])  # one sweep_heads each
    singles = (
        sum(data.values()) + 4 * runs + swept + 3 + len(DRAWN_FIGURES)
    )  # + tables, summary, ngram
    assert len(submitted) == singles

    # SLURM's own accounting of this run: every submission, all completed
    (run_id,) = set(re.findall(r"SLURM run ID: (\S+)", log))
    jobs = sacct("--name", run_id)
    assert sorted(job["JobIDRaw"] for job in jobs) == sorted(submitted)
    assert {job["State"] for job in jobs} == {"COMPLETED"}
    gpu_partition = profile_config()["set-resources"]["pretrain"]["slurm_partition"]
    on_gpu_partition = [job for job in jobs if job["Partition"] == gpu_partition]
    assert len(on_gpu_partition) == runs  # the pretraining jobs, and only they
    gpus = re.findall(r"^rule pretrain:\n(?:    .*\n)*?    resources: .*\bgpu=(\d+)", log, re.M)
    for job in on_gpu_partition:  # where the rule asks for GPUs, the fake ones were allocated
        if gpus and int(gpus[0]) > 0:
            assert f"gres/gpu={gpus[0]}" in job["AllocTRES"]

    (tables,) = (results / "tables").iterdir()
    metrics = pd.read_parquet(tables / "metrics.parquet")
    assert len(metrics[metrics.metric == "val_loss"]) == runs * len(STEPS)
    assert set(metrics.metric) >= {"sat_wordperplexity/word_perplexity"}
    assert (tables / "spectra.parquet").stat().st_size > 0
    (summary,) = (results / "summary").iterdir()
    for name in ("summary.csv", "benchmarks.csv"):
        assert (summary / name).stat().st_size > 0
    (figures,) = (results / "figures").iterdir()
    assert {p.stem for p in figures.glob("*.png")} == set(DRAWN_FIGURES)


def test_rerun_submits_nothing(micro_slurm: tuple[Path, str]) -> None:
    workdir, _ = micro_slurm
    log = run(workdir, *micro_args(workdir), name="noop", timeout=120)
    assert "Nothing to be done" in log
    assert not SUBMITTED.findall(log)


def test_one_width_change_reruns_only_its_subtree(micro_slurm: tuple[Path, str]) -> None:
    workdir, _ = micro_slurm
    results = workdir / "results"
    before = snapshot(results)
    index = pd.read_csv(results / "index.csv")
    widths = yaml.safe_load(MICRO.read_text())["widths"]
    kept, changed = widths[0], widths[1]
    untouched_ids = set(index[index.name.str.startswith(f"w{kept['width']}-")].id)
    widths[1] = changed | {"lr": 5e-4}
    lr = write_config(workdir / "lr.yaml", {"widths": widths})

    log = run(workdir, *micro_args(workdir, lr), name="lr")
    ran = jobs_run(log)
    assert ran == Counter(
        pretrain=1, harvest=1, analyze_run=1, evaluate_run=1, tidy_table=1,
        saturation_summary=1, plot_figure=len(DRAWN_FIGURES), all=1,
    )  # fmt: skip
    submitted = SUBMITTED.findall(log)
    assert len(submitted) == expected_submissions(log) == 1 + 1 + 1 + 1 + 2 + len(DRAWN_FIGURES)
    assert local_rules(log) == LOCAL
    produced = [
        line for line in log.splitlines() if line.strip().startswith(("output:", "wildcards:"))
    ]
    assert untouched_ids and not [i for i in untouched_ids if i in "\n".join(produced)], (
        "other width"
    )
    after = snapshot(results)
    assert not [p for p, mtime in before.items() if after.get(p) != mtime], "results rewritten"


def test_scancel_then_rerun_resumes_from_the_last_checkpoint(
    micro_slurm: tuple[Path, str],
) -> None:
    workdir, _ = micro_slurm
    results = workdir / "results"
    long = write_config(
        workdir / "long.yaml",
        {
            "widths": [{"width": 16, "layers": 1, "heads": 2}],
            "train": {"steps": 3000, "checkpoints": {"log_until": 4, "every": 100}},
            "runtime": {"log_every": 50},
        },
    )
    args = ["--configfile", str(MICRO), str(long), "--until", "pretrain"]
    trained = set(results.glob("pretrain/*"))

    job = start(workdir, *args, name="cancelled")
    try:

        def first_checkpoint() -> list[Path]:
            assert job.poll() is None, f"snakemake ended early\n{tail(workdir, 'cancelled')}"
            return [
                p.parents[2]
                for p in results.glob("pretrain/*/checkpoints/step100/checkpoint.json")
                if p.parents[2] not in trained
            ]

        wait_until(lambda: bool(first_checkpoint()), 240, "checkpoint step100")
        (run_dir,) = first_checkpoint()
        (slurm_id,) = SUBMITTED.findall((workdir / "cancelled.log").read_text())
        assert not (run_dir / "checkpoints" / "step3000").exists(), "trained too fast to cancel"
        subprocess.run(["scancel", slurm_id], check=True)  # SIGTERM, SIGKILL after KillWait
        wait_until(
            lambda: sacct("-j", slurm_id)[0]["State"].startswith("CANCELLED"), 60, "CANCELLED"
        )
    finally:
        # plugin 2.8.0 reads sacct's "CANCELLED by <uid>" as still running and would wait forever:
        # the user stops Snakemake and reruns (README, "Running on SLURM")
        stop(job)

    train_log = results / "logs" / "pretrain" / f"{run_dir.name}.log"
    stopped = re.search(r"training stopped at step (\d+)", train_log.read_text())
    assert "received SIGTERM" in train_log.read_text() and stopped, "SIGTERM missed training"
    steps = sorted(int(p.name.removeprefix("step")) for p in run_dir.glob("checkpoints/step*"))
    assert steps[-1] == int(stopped.group(1)) > 0  # a checkpoint at the step it was on
    kept = digests(run_dir / "checkpoints")

    # Ctrl-C may not reach a Snakemake asleep between status polls within stop()'s minute; then it
    # was killed and left its lock: what the README tells users for a killed run, --unlock
    run(workdir, *args, "--unlock", name="unlock", timeout=120)
    log = run(workdir, *args, name="resumed", timeout=300)
    assert len(SUBMITTED.findall(log)) == 1 and jobs_run(log) == Counter(pretrain=1)
    summary = json.loads((run_dir / "train.json").read_text())
    assert summary["resumed_from"] == steps[-1] and summary["steps"] == 3000
    assert re.search(rf"resuming from \S+ \(step {steps[-1]}\)", train_log.read_text())
    now = digests(run_dir / "checkpoints")
    assert all(now[p] == digest for p, digest in kept.items()), "a checkpoint was rewritten"
    assert (run_dir / "checkpoints" / "step3000").is_dir()
