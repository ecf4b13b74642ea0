"""Integrity through the real `snakemake` on configs/micro.yaml: a byte flipped in a harvested
checkpoint or in the held-out token file stops the run before any job, naming the file, and every
finished result stays as it was; a second workflow on a results folder in use is refused."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MICRO, SNAKEFILE, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_workflows(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """A micro run, and while it runs a second workflow from another working directory on the
    same results folder: (the first's workdir, the first's run, the second's)."""
    workdir, other = tmp_path_factory.mktemp("integrity"), tmp_path_factory.mktemp("other")
    first = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
         str(workdir), "--cores", "2", "--nocolor", "--configfile", str(MICRO)],
        cwd=workdir, env=os.environ | {"HF_HUB_OFFLINE": "1"}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    lock = workdir / "results" / ".lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lock.exists(), "the first workflow never took the results folder"
    results = f"results={workdir / 'results'}"
    second = snakemake(other, "--configfile", str(MICRO), "--config", results, check=False)
    out, err = first.communicate(timeout=600)
    done = subprocess.CompletedProcess(first.args, first.returncode, out, err)
    assert first.returncode == 0, err
    return workdir, done, second


@pytest.fixture(scope="module")
def finished(two_workflows: tuple) -> Path:
    return two_workflows[0]


def test_a_second_workflow_on_one_results_folder_is_refused(two_workflows: tuple) -> None:
    workdir, _, second = two_workflows
    assert second.returncode != 0
    errors = [line for line in second.stderr.splitlines() if line.startswith("lock error: ")]
    assert len(errors) == 1, second.stderr
    assert f"results folder {workdir / 'results'} is in use" in errors[0]
    assert "rule " not in second.stderr  # not one job of its own
    assert not (workdir / "results" / ".lock").exists()  # given back when the first ended
    done = snakemake(workdir, "-n", "--configfile", str(MICRO))
    assert "Nothing to be done" in done.stdout + done.stderr  # the first's results all there


def test_a_stale_lock_is_taken_over(finished: Path, tmp_path: Path) -> None:
    from saturation.lock import ResultsLockedError, acquire, release

    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"pid": 2**22 + 7, "host": socket.gethostname()}))  # no such pid
    assert acquire(tmp_path) == lock and json.loads(lock.read_text())["pid"] == os.getpid()
    release(tmp_path)
    assert not lock.exists()
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "today"}))
    with pytest.raises(ResultsLockedError, match=f"pid 1 on elsewhere .*delete {lock}"):
        acquire(tmp_path)
    release(tmp_path)  # not ours: left alone
    assert lock.exists()


def results_digest(results: Path) -> dict[Path, str]:
    """Every result file's sha256 (logs and the index are bookkeeping)."""
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in results.rglob("*")
        if p.is_file() and "logs" not in p.parts and p.name != "index.csv"
        and "pretrain" not in p.parts and "tokens" not in p.parts
    }  # fmt: skip


def flip_one_byte(path: Path) -> bytes:
    """Change one byte in the middle (the size stays): what no size check sees. Returns the
    original content."""
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return original


def refused(done: subprocess.CompletedProcess[str], named: Path) -> str:
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("input error: ")]
    assert len(errors) == 1, done.stderr
    assert named.name in errors[0] and "sha256" in errors[0]
    assert "rule analyze_run" not in done.stderr  # no job started
    return errors[0]


def test_a_copied_results_folder_is_measured_in_place(finished: Path, tmp_path: Path) -> None:
    """`cp -a results elsewhere` + `--config results=elsewhere`: nothing to redo, and what the
    copy's jobs read are the copy's files (a byte flipped there is refused, naming the copy).
    First of the tests on `finished`: the others rewrite its files in place."""
    copy = tmp_path / "moved"
    subprocess.run(["cp", "-a", str(finished / "results"), str(copy)], check=True)
    moved = ("--configfile", str(MICRO), "--config", f"results={copy}")
    done = snakemake(finished, "-n", *moved)
    assert "Nothing to be done" in done.stdout + done.stderr, done.stdout
    path = sorted(copy.glob("pretrain/*/checkpoints/step20/model.safetensors"))[0]
    flip_one_byte(path)
    line = refused(snakemake(finished, *moved, check=False), path)
    assert str(copy) in line
    original = finished / "results" / path.relative_to(copy)
    assert snakemake(finished, "-n", "--configfile", str(MICRO)).returncode == 0
    assert original.read_bytes() != path.read_bytes()  # the original was never touched


@pytest.mark.parametrize("target", ["checkpoint", "held-out tokens"])
def test_a_modified_input_is_refused_and_nothing_is_lost(finished: Path, target: str) -> None:
    results = finished / "results"
    if target == "checkpoint":
        path = sorted(results.glob("pretrain/*/checkpoints/step20/model.safetensors"))[0]
    else:
        (path,) = results.glob("tokens/*/val.bin")
    before = results_digest(results)
    original = flip_one_byte(path)
    try:
        line = refused(snakemake(finished, "--configfile", str(MICRO), check=False), path)
        assert results_digest(results) == before, line
    finally:
        path.write_bytes(original)
    # restored (but newer than the results): verified, then measured again, to the same numbers
    snakemake(finished, "--configfile", str(MICRO))
    after = results_digest(results)
    measured = {p: d for p, d in before.items() if p.name in ("record.json", "metrics.csv")}
    assert {p: after[p] for p in measured} == measured


def test_redrawn_figures_are_byte_identical_and_a_garbage_index_is_rebuilt(finished: Path) -> None:
    results = finished / "results"
    figures = {p: p.read_bytes() for p in results.glob("figures/*/*.p*") if p.suffix != ".json"}
    assert any(p.suffix == ".pdf" for p in figures)
    (results / "index.csv").write_bytes(b"\xff\xfe garbage, not a table\n")
    done = snakemake(finished, "--configfile", str(MICRO), "--forcerun", "plot_figure")
    assert {p: p.read_bytes() for p in figures} == figures  # PDFs carry no creation time
    assert "index.csv is unreadable" in done.stderr
    header = (results / "index.csv").read_text().splitlines()[0]
    assert header == "stage,id,name,path"


def test_a_context_longer_than_the_held_out_split_is_refused_before_training(
    tmp_path: Path,
) -> None:
    """The case that once hung at step 0: `train.seq_len: 100000` on the micro corpus."""
    done = snakemake(tmp_path, "--configfile", str(MICRO), "--config", "train={seq_len: 100000}",
                     check=False)  # fmt: skip
    assert done.returncode != 0
    assert "the val split has" in done.stderr and "fewer than seq_len + 1 = 100,001" in done.stderr
    assert not list(tmp_path.glob("results/pretrain/*/checkpoints/step*"))  # nothing trained
