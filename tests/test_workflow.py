"""End to end: the whole DAG on configs/micro.yaml through the real `snakemake`, and the promises of
content addressing (no-op reruns, exact partial reruns, kill-and-resume) checked on disk."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmarks.stage_costs import read_job_costs, stage_costs, to_markdown
from saturation.config import load_config
from saturation.evaluate.tasks import SAMPLES_DIR
from saturation.measure.store import MEASUREMENTS
from saturation.plan import FORMAT_VERSIONS, make_plan
from tests.conftest import DRAWN_FIGURES, MICRO, ROOT, SNAKEFILE, snakemake, write_config

pytestmark = pytest.mark.slow


def jobs_run(done: subprocess.CompletedProcess[str]) -> Counter[str]:
    """Rules of the jobs a snakemake run executed, from its own job log."""
    pattern = r"^(?:local)?(?:rule|checkpoint) (\w+):$"
    return Counter(re.findall(pattern, done.stderr + done.stdout, re.M))


def snapshot(results: Path) -> dict[Path, int]:
    """Every result file and its mtime (logs and the index are bookkeeping, not results)."""
    return {
        p: p.stat().st_mtime_ns
        for p in results.rglob("*")
        if p.is_file() and "logs" not in p.parts and p.name != "index.csv"
    }


def records(results: Path, kind: str) -> set[str]:
    """The keys of the per-checkpoint records stored (saturation.measure.store)."""
    folder = results / MEASUREMENTS / kind
    return (
        {p.name for p in folder.iterdir() if not p.name.startswith(".")}
        if folder.exists()
        else set()
    )


def stage_ids(results: Path, stage: str) -> set[str]:
    return {p.name for p in (results / stage).iterdir()} if (results / stage).exists() else set()


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    workdir = tmp_path_factory.mktemp("micro")
    return workdir, snakemake(workdir, "--configfile", str(MICRO))


def test_whole_dag(micro: tuple[Path, subprocess.CompletedProcess]) -> None:
    workdir, done = micro
    results = workdir / "results"
    config = yaml.safe_load(MICRO.read_text())
    n_runs, n_steps = len(config["widths"]), 6  # schedule 0,1,2,4,20,40
    ran = jobs_run(done)
    assert ran["pretrain"] == n_runs and ran["harvest"] == n_runs
    # one analysis and one evaluation job per run, one record per checkpoint (× task)
    assert ran["analyze_run"] == ran["evaluate_run"] == n_runs and ran["tidy_table"] == 1
    assert len(records(results, "analysis")) == n_runs * n_steps
    assert ran["saturation_summary"] == 1
    # every 3rd harvested checkpoint (0, 4) plus best = final = 40, for each of the 2 tasks
    assert ran["build_eval_tasks"] == 1
    assert len(records(results, "evaluation")) == n_runs * 2 * 3
    assert ran["plot_figure"] == len(DRAWN_FIGURES)
    (tables,) = (results / "tables").iterdir()
    table = pd.read_parquet(tables / "metrics.parquet")
    assert list(table.columns) == [
        "run",
        "width",
        "seed",
        "step",
        "tokens",
        "metric",
        "value",
        "stderr",
    ]
    assert set(table.metric) >= {"val_loss", "singular_entropy", "effective_rank"}
    loss = table[table.metric == "val_loss"]
    assert len(loss) == n_runs * n_steps and loss.value.notna().all()
    for _, run in loss.groupby("run"):  # training on real text lowers the held-out loss
        assert run.sort_values("step").value.iloc[-1] < run.sort_values("step").value.iloc[0]
    assert set(table.metric) >= {"anisotropy_last", "anisotropy_d00", "anisotropy_d02"}
    cloze = table[table.metric == "sat_cloze/acc"]
    assert list(cloze.step) == [0, 4, 40] * n_runs and cloze.stderr.notna().all()
    assert (table[table.metric == "sat_wordperplexity/word_perplexity"].value > 1).all()
    spectra = pd.read_parquet(tables / "spectra.parquet")
    assert len(spectra) == 16 * n_steps + 32 * n_steps  # every singular value of both heads
    # the width-16 run's final checkpoint swept: states cached once, ranks 2, 4, 16 and a
    # full-rank head at one learning rate and init, and its own head
    assert ran["sweep_heads"] == 1
    assert len(records(results, "states")) == 1 and len(records(results, "heads")) == 4
    heads = pd.read_parquet(tables / "heads.parquet")
    assert sorted(zip(heads["head"], heads["rank"], strict=True)) == [
        ("full_rank", 16), ("low_rank", 2), ("low_rank", 4), ("low_rank", 16), ("own", 16)
    ]  # fmt: skip
    assert heads.chosen.all() and (heads.step == 40).all() and heads.loss.notna().all()
    curves = pd.read_parquet(tables / "head_curves.parquet")
    assert sorted(curves["update"].unique()) == [10, 20]
    (summaries,) = (results / "summary").iterdir()  # its own stage: its settings rerun it alone
    assert len(pd.read_csv(summaries / "benchmarks.csv")) == n_runs * 5  # acc, ppl, 3 rolling
    assert (pd.read_csv(summaries / "benchmarks.csv").best_step == 40).all()
    summary = pd.read_csv(summaries / "summary.csv")
    assert list(summary.width) == [16, 32]
    assert (summary.final_loss >= summary.best_loss).all()
    assert "| run | width |" in (summaries / "summary.md").read_text()
    (figures,) = (results / "figures").iterdir()
    for name in DRAWN_FIGURES:
        assert (figures / f"{name}.png").stat().st_size > 10_000
        assert (figures / f"{name}.pdf").stat().st_size > 5_000
    index = pd.read_csv(results / "index.csv")
    # every stage run is indexed (scaling and the synthetic stages are off here)
    assert set(index.stage) == set(FORMAT_VERSIONS) - {"scaling", "language", "oracle"}
    for row in index.itertuples():
        assert yaml.safe_load((workdir / row.path / "recipe.json").read_text())["id"] == row.id


def test_every_job_records_its_cost(micro: tuple[Path, subprocess.CompletedProcess]) -> None:
    """Each job leaves Snakemake's benchmark file; summed per rule, they are the stage costs."""
    workdir, done = micro
    results = workdir / "results"
    plan = make_plan(load_config(MICRO) | {"results": str(results)})
    jobs = read_job_costs(results / "logs", (stage.id for stage in plan.stages()))
    ran = jobs_run(done)
    del ran["all"], ran["figures"]  # target rules: no job runs
    assert Counter(jobs.rule) == ran
    assert (jobs.wall_s > 0).all()
    costs = stage_costs(jobs)
    assert costs.share.sum() == pytest.approx(1.0)
    assert costs.set_index("rule").jobs.to_dict() == dict(ran)
    pretrain = jobs[jobs.rule == "pretrain"]
    assert pretrain.max_rss_mib.notna().all() and (pretrain.max_rss_mib > 100).all()  # torch
    assert "| pretrain | 2 |" in to_markdown(costs)
    assert read_job_costs(results / "logs", ["0" * 12]).empty  # another config's jobs: none


def test_second_run_does_nothing(micro: tuple[Path, subprocess.CompletedProcess]) -> None:
    workdir, _ = micro
    done = snakemake(workdir, "--configfile", str(MICRO))
    assert "Nothing to be done" in done.stdout + done.stderr
    assert not jobs_run(done)


def test_an_edited_script_reruns_nothing(micro: tuple[Path, subprocess.CompletedProcess]) -> None:
    """A result is its stage's recipe and format version: a script newer than the results (an
    edit, a checkout) reruns nothing, because the workflow profile leaves out Snakemake's `code`
    trigger, which alone would rerun every job of that rule."""
    workdir, _ = micro
    script = ROOT / "workflow" / "scripts" / "plot_figure.py"
    times = script.stat()
    os.utime(script, (times.st_atime, time.time() + 60))
    try:
        done = snakemake(workdir, "-n", "--configfile", str(MICRO))
        assert "Nothing to be done" in done.stdout + done.stderr
        triggers = ("--rerun-triggers", "code", "mtime", "params", "input", "software-env")
        with_code = snakemake(workdir, "-n", "--configfile", str(MICRO), *triggers)
        assert jobs_run(with_code)["plot_figure"] == len(DRAWN_FIGURES)
    finally:
        os.utime(script, ns=(times.st_atime_ns, times.st_mtime_ns))


def test_restated_defaults_plan_nothing(
    micro: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    """Each job's params are its stage's recipe, not a config section (whose text, which
    Snakemake compares, follows the order keys arrive in): restating what is in effect, in another
    order or spelling (1 for 1.0), plans nothing, even with params as the only rerun trigger."""
    workdir, _ = micro
    restated = write_config(
        tmp_path / "restated.yaml",
        {
            "corpus": {"min_chars": 200, "test_fraction": 0.05},
            "tokenizer": {"min_frequency": 2, "pretrained": None},
            "model": {"rotary_pct": 0.25, "head_dim": 32},
            "train": {"grad_clip": 1, "weight_decay": 0.1, "betas": [0.9, 0.95]},
            "analysis": {"batch_size": 8},
            "evaluation": {"seed": 0, "batch_size": 16},
            "summary": {"anisotropy_onset": 0.5},
        },
    )
    for triggers in ([], ["--rerun-triggers", "params"]):
        done = snakemake(workdir, "-n", "--configfile", str(MICRO), str(restated), *triggers)
        assert "Nothing to be done" in done.stdout + done.stderr, done.stdout + done.stderr


def test_a_summary_setting_reruns_only_the_summary(
    micro: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    workdir, _ = micro
    changed = write_config(tmp_path / "summary.yaml", {"summary": {"collapse_kl_fraction": 0.3}})
    done = snakemake(workdir, "-n", "--configfile", str(MICRO), str(changed))
    assert jobs_run(done) == Counter({"saturation_summary": 1, "all": 1})


def test_the_scaling_law_on_own_runs(
    micro: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    """`scaling.enabled` adds the extrapolation and its figure, and recomputes nothing else. The
    micro runs' losses (≈ 6 nats after 10k tokens) lie far below Chinchilla's B/T^β + E, so the
    law is fitted here with B = E = 0: L = A/N^α through both runs."""
    from saturation.checkpoints import count_parameters, read_manifest

    workdir, _ = micro
    results = workdir / "results"
    before = snapshot(results)
    extra = write_config(
        tmp_path / "scaling.yaml",
        {"scaling": {"enabled": True, "min_width": 16, "B": 0, "E": 0, "bootstrap": 50}},
    )
    done = snakemake(workdir, "--configfile", str(MICRO), str(extra))
    assert jobs_run(done) == Counter(
        {"fit_scaling": 1, "plot_figure": len(DRAWN_FIGURES) + 1, "all": 1}
    )  # the figures' folder follows the scaling stage it draws
    assert all(snapshot(results).get(p) == t for p, t in before.items())
    (stage,) = results.glob("scaling/*")
    fit = json.loads((stage / "fit.json").read_text())
    assert fit["fitted_runs"] == ["w16-s0", "w32-s0"] and fit["alpha"] > 0
    table = pd.read_csv(stage / "scaling.csv")
    assert sorted(zip(table.run, table.kind, strict=True)) == [
        ("w16-s0", "best"), ("w16-s0", "final"), ("w32-s0", "best"), ("w32-s0", "final")
    ]  # fmt: skip
    final = table[table.kind == "final"]
    assert list(final.excess) == pytest.approx([0, 0], abs=1e-9)  # two points, two parameters
    assert set(final.tokens) == {40 * 8 * 32}  # step 40 of batch 8 × 32 tokens
    manifests = results.glob("harvest/*/manifest.csv")
    counted = {count_parameters(workdir / read_manifest(m)[-1].path) for m in manifests}
    assert set(final.parameters) == counted and len(counted) == 2
    (figures,) = {p.parent for p in results.glob("figures/*/scaling_law.png")}
    assert (figures / "scaling_law.pdf").stat().st_size > 5_000


def test_figures_redraw_without_recomputing(
    micro: tuple[Path, subprocess.CompletedProcess],
) -> None:
    workdir, _ = micro
    results = workdir / "results"
    measured = {p: t for p, t in snapshot(results).items() if "figures" not in p.parts}
    done = snakemake(workdir, "--configfile", str(MICRO), "--forcerun", "plot_figure")
    assert jobs_run(done) == Counter({"plot_figure": len(DRAWN_FIGURES), "all": 1})
    assert {p: t for p, t in snapshot(results).items() if "figures" not in p.parts} == measured


def test_report_is_self_contained(micro: tuple[Path, subprocess.CompletedProcess]) -> None:
    workdir, _ = micro
    snakemake(workdir, "--configfile", str(MICRO), "--report", "results/report.html")
    html = (workdir / "results" / "report.html").read_text()
    assert "Held-out loss along training" in html and "Saturation summary per run" in html
    assert "Anisotropy by depth" in html and "LM-head spectrum along training" in html


def test_one_learning_rate_change_reruns_one_subtree(
    micro: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    workdir, _ = micro
    results = workdir / "results"
    before = snapshot(results)
    old_ids = {stage: stage_ids(results, stage) for stage in ("pretrain", "harvest", "analyze")}
    old_records = {kind: records(results, kind) for kind in ("analysis", "evaluation")}
    widths = yaml.safe_load(MICRO.read_text())["widths"]
    # gpus: 2 trains it data parallel (torchrun, 2 CPU processes here); how it runs is no recipe
    widths[1] = widths[1] | {"lr": 5e-4, "gpus": 2}
    changed = write_config(tmp_path / "lr.yaml", {"widths": widths})

    done = snakemake(workdir, "--configfile", str(MICRO), str(changed))
    ran = jobs_run(done)
    assert ran["pretrain"] == 1 and ran["harvest"] == 1
    assert ran["analyze_run"] == ran["evaluate_run"] == 1 and "build_eval_tasks" not in ran
    # step 0 is the same initialisation whatever the learning rate: its records are reused
    new = {kind: records(results, kind) - keys for kind, keys in old_records.items()}
    assert len(new["analysis"]) == 6 - 1 and len(new["evaluation"]) == 2 * (3 - 1)
    assert ran["plot_figure"] == len(DRAWN_FIGURES)
    assert {"build_corpus", "train_tokenizer", "tokenize"}.isdisjoint(ran)
    for stage, ids in old_ids.items():
        assert len(stage_ids(results, stage) - ids) == 1, f"{stage}: exactly one new id"
    (new_run,) = stage_ids(results, "pretrain") - old_ids["pretrain"]
    summary = json.loads((results / "pretrain" / new_run / "train.json").read_text())
    assert "data parallel over 2 processes" in summary["speed_path"]["notes"]
    after = snapshot(results)
    touched = [p for p, mtime in before.items() if after.get(p) != mtime]
    assert not touched, f"finished results were rewritten: {touched[:5]}"

    widths = yaml.safe_load(MICRO.read_text())["widths"]
    widths[1] = widths[1] | {"gpus": 2}  # the old lr: the old ids, however many GPUs
    reverted_lr = write_config(tmp_path / "reverted.yaml", {"widths": widths})
    reverted = snakemake(workdir, "--configfile", str(MICRO), str(reverted_lr))
    assert "Nothing to be done" in reverted.stdout + reverted.stderr


def test_a_new_task_runs_only_its_own_jobs(
    micro: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    """sciq from local files in the hub's schema (the samples shipped for this purpose)."""
    workdir, _ = micro
    results = workdir / "results"
    before = snapshot(results)
    old_records = records(results, "evaluation")
    extra = write_config(
        tmp_path / "sciq.yaml",
        {
            "evaluation": {
                "tasks": ["sat_cloze", "sat_wordperplexity", "sciq"],
                "local_data": {"sciq": {"test": str(SAMPLES_DIR / "sciq.jsonl")}},
            }
        },
    )
    done = snakemake(workdir, "--configfile", str(MICRO), str(extra))
    ran = jobs_run(done)
    assert ran["build_eval_tasks"] == 1 and ran["evaluate_run"] == 2
    assert {"pretrain", "harvest", "analyze_run"}.isdisjoint(ran)
    # sciq alone evaluated: 2 runs × 3 selected checkpoints
    assert len(records(results, "evaluation") - old_records) == 2 * 3
    assert all(snapshot(results).get(p) == t for p, t in before.items())
    (table,) = [
        pd.read_parquet(p)
        for p in results.glob("tables/*/metrics.parquet")
        if p.stat().st_mtime_ns not in before.values()
    ]
    assert set(table[table.metric.str.startswith("sciq/")].metric) == {"sciq/acc", "sciq/acc_norm"}
    again = snakemake(workdir, "--configfile", str(MICRO), str(extra))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_rank_added_trains_only_its_heads(
    micro: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    """The sweep's job reruns (its recipe changed); the cached states and every head already
    trained are reused: one new head, nothing upstream."""
    workdir, _ = micro
    results = workdir / "results"
    states, heads = records(results, "states"), records(results, "heads")
    extra = write_config(tmp_path / "rank.yaml", {"heads": {"ranks": [2, 4, 8]}})
    ran = jobs_run(snakemake(workdir, "--configfile", str(MICRO), str(extra)))
    assert ran["sweep_heads"] == 1
    assert {"pretrain", "harvest", "analyze_run", "evaluate_run"}.isdisjoint(ran)
    assert records(results, "states") == states and len(records(results, "heads") - heads) == 1


def kill_test_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "kill.yaml",
        {
            "widths": [{"width": 16, "layers": 1, "heads": 2}],
            "train": {"steps": 1500, "checkpoints": {"log_until": 4, "every": 100}},
            "runtime": {"log_every": 50},
        },
    )


def test_forcerun_remeasures_to_the_same_tables(
    micro: tuple[Path, subprocess.CompletedProcess],
) -> None:
    """`--forcerun analyze_run` reruns each run's analysis job (and what reads it); with
    `runtime.remeasure: [analysis]` it measures every checkpoint again and replaces its record,
    and the numbers are the same to the byte."""
    workdir, _ = micro
    results = workdir / "results"
    tables = {p: p.read_bytes() for p in results.glob("tables/*/*.csv")}
    analysed = {p: p.stat().st_mtime_ns for p in results.glob("measurements/analysis/*/*.json")}
    evaluated = {p: p.stat().st_mtime_ns for p in results.glob("measurements/evaluation/*/*")}
    done = snakemake(workdir, "--configfile", str(MICRO), "--forcerun", "analyze_run",
                     "--config", "runtime={remeasure: [analysis]}")  # fmt: skip
    n_runs = len(yaml.safe_load(MICRO.read_text())["widths"])
    assert jobs_run(done)["analyze_run"] == n_runs
    # this config's checkpoints measured anew (other configs' records, earlier tests', are kept)
    anew = [p for p, t in analysed.items() if p.stat().st_mtime_ns > t]
    assert len(anew) == n_runs * 6
    assert {p: p.stat().st_mtime_ns for p in evaluated} == evaluated  # evaluation: reused
    assert {p: p.read_bytes() for p in tables} == tables


def test_sigkill_then_resume_is_bit_identical(tmp_path: Path) -> None:
    extra = kill_test_config(tmp_path)
    args = ("--configfile", str(MICRO), str(extra), "--until", "pretrain")
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir()
    killed.mkdir()
    snakemake(reference, *args)

    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
               "--directory", str(killed), "--cores", "2", *args]  # fmt: skip
    job = subprocess.Popen(
        command, cwd=killed, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(killed.glob("results/pretrain/*/checkpoints/step100/checkpoint.json")):
        assert job.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    (run_dir,) = killed.glob("results/pretrain/*")
    assert not (run_dir / "checkpoints" / "step1500").exists(), "killed too late to test"
    kept = snapshot(run_dir / "checkpoints")

    snakemake(killed, "--unlock", *args)
    snakemake(killed, "--rerun-incomplete", *args)
    log = next(killed.glob("results/logs/pretrain/*.log")).read_text()
    assert re.search(r"resuming from .*step(\d+)", log)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items()), "a checkpoint was rewritten"
    (reference_run,) = reference.glob("results/pretrain/*")
    assert reference_run.name == run_dir.name  # same recipe, same id
    for step in (100, 1000, 1500):
        ours = run_dir / f"checkpoints/step{step}/model.safetensors"
        theirs = reference_run / f"checkpoints/step{step}/model.safetensors"
        assert ours.read_bytes() == theirs.read_bytes(), f"step {step} differs after resume"

    # a checkpoint truncated after the fact is caught by harvest, which names the file
    victim = run_dir / "checkpoints" / "step2" / "model.safetensors"
    victim.write_bytes(victim.read_bytes()[:-64])
    harvest_args = ("--configfile", str(MICRO), str(extra), "--until", "harvest")
    failed = snakemake(killed, *harvest_args, check=False)
    assert failed.returncode != 0
    harvest_log = next(killed.glob("results/logs/harvest/*.log")).read_text()
    assert str(victim.relative_to(killed)) in harvest_log
    assert "sha256" in harvest_log
    assert not list(killed.glob("results/harvest/*/manifest.csv"))


def test_a_synthetic_language_adds_its_runs_alone(
    micro: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    """A synthetic language in the config: its tokens and its oracle in one job each, one run
    per width, trained and analysed like a text run but not evaluated; nothing of the text runs
    is recomputed, and the runs' tokens are the language's."""
    workdir, _ = micro
    results = workdir / "results"
    before = {p: t for p, t in snapshot(results).items() if "measurements" in p.parts}
    extra = write_config(
        tmp_path / "synthetic.yaml",
        {
            "synthetic": {
                "languages": [{"name": "r2", "vocab": 16, "rank": 2, "entropy": 1.5}],
                "widths": [
                    {"width": 8, "layers": 1, "heads": 1},
                    {"width": 4, "layers": 1, "heads": 1,
                     "head": {"mixture_of_softmaxes": {"components": 2}}},
                ],
                "val_tokens": 512, "test_tokens": 64, "document_length": 255,
            }
        },
    )  # fmt: skip
    done = snakemake(workdir, "--configfile", str(MICRO), str(extra))
    ran = jobs_run(done)
    assert {rule: ran[rule] for rule in ("synthetic_language", "synthetic_oracle", "pretrain",
            "analyze_run", "evaluate_run", "build_corpus")} == {
        "synthetic_language": 1, "synthetic_oracle": 1, "pretrain": 2, "analyze_run": 2,
        "evaluate_run": 0, "build_corpus": 0,
    }  # fmt: skip
    assert all(snapshot(results).get(p) == t for p, t in before.items())  # text records kept
    (oracle,) = results.glob("oracle/*/oracle.csv")
    table = pd.read_csv(oracle)
    assert list(table.d) == [1, 2, 3, 4, 8]  # r* − 2 … r* + 2 and the width
    assert table.best_rank_loss.iloc[-1] == pytest.approx(1.5, abs=1e-4)  # d ≥ r* + 1: H*
    (language,) = results.glob("language/*/language.json")
    assert json.loads(language.read_text())["entropy"] == pytest.approx(1.5)
    summary = pd.read_csv(sorted(results.glob("summary/*/summary.csv"), key=os.path.getmtime)[-1])
    (row,) = summary[summary.run == "r2-w8-s0"].itertuples()
    assert row.late_rise == "none" and row.final_epochs <= 1  # a fresh stream: never repeated
    tables = sorted(results.glob("tables/*/metrics.parquet"), key=os.path.getmtime)[-1]
    loss = pd.read_parquet(tables).query("run == 'r2-w8-s0' and metric == 'val_loss'")
    assert row.final_loss < loss.sort_values("step").value.iloc[0]  # it learns the language
    bottleneck = pd.read_parquet(tables.with_name("bottleneck.parquet"))
    trained = bottleneck[bottleneck.kind == "trained"].set_index("run")
    assert trained.loc["r2-w8-s0", "loss"] == row.final_loss
    assert trained["head"].to_dict() == {"r2-w8-s0": "linear", "r2-w4-mos2-s0": "MoS k=2"}
    mixture = summary[summary.run == "r2-w4-mos2-s0"]  # measured like any run: its W's spectrum
    assert mixture.final_loss.iloc[0] < loss.sort_values("step").value.iloc[0]
    assert mixture.final_effective_rank.iloc[0] > 1
    assert set(bottleneck.kind) == {"trained", "best_rank", "head_family", "svd_bound"}
    figure = sorted(results.glob("figures/*/bottleneck.png"), key=os.path.getmtime)[-1]
    assert figure.stat().st_size > 10_000
