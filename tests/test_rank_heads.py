"""Cached hidden states and rank-constrained heads on them (paper §5: Fig. 6, 8, 9)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saturation.checkpoints import verify_checkpoint, write_manifest
from saturation.measure.analysis import HeldoutSample
from saturation.measure.head_sweep import sweep_run, sweep_tables
from saturation.measure.heldout import heldout_windows
from saturation.measure.rank_heads import (
    FULL_RANK,
    LOW_RANK,
    OWN,
    FactorisedHead,
    HeadConfig,
    HeadTraining,
    SweepData,
    ranks_for,
    sweep_configs,
    train_head,
)
from saturation.measure.states import (
    OWN_HITS,
    OWN_NLL,
    OWN_SIGMA,
    HiddenStates,
    extract_states,
    states_array,
    targets_array,
)
from saturation.model.heads import LinearHead
from saturation.model.weights import load_fast_neox
from saturation.tokens import open_tokens

TRAINING = {"steps": 30, "batch_tokens": 64, "warmup_fraction": 0.1, "min_lr_ratio": 0.1,
            "weight_decay": 0.0, "eval_every": 10, "seed": 0}  # fmt: skip
# a heads stage's recipe, its ranks as the plan resolves them for d = 16 (ranks_for)
STAGE_RECIPE = {
    "harvest": "h0",
    "tokens": "t0",
    "seq_len": 16,
    "states": {"fit_tokens": 256, "heldout_tokens": 128, "batch_size": 4},
    "ranks": [2, 4, 16],
    "inits": ["scaled"],
    "lrs": [1e-2, 3e-2],
    "train": TRAINING,
}  # fmt: skip


def test_states_are_the_heads_input_rounded_and_the_own_head_scores_them(
    tiny_run: Path, tiny_data: dict
) -> None:
    checkpoint = tiny_run / "checkpoints" / "step12"
    samples = {
        "fit": HeldoutSample.load(tiny_data["train"], 16, 256),
        "heldout": HeldoutSample.load(tiny_data["val"], 16, 128),
    }
    record, arrays = extract_states(checkpoint, samples, batch_size=3)
    model = load_fast_neox(checkpoint)
    for name, n_tokens, split in (("fit", 256, "train"), ("heldout", 128, "val")):
        windows = torch.from_numpy(heldout_windows(open_tokens(tiny_data[split]), 16, n_tokens))
        with torch.no_grad():
            expected = model.hidden_states(windows[:, :-1]).flatten(0, 1)
        assert arrays[states_array(name)].dtype == np.float16
        np.testing.assert_array_equal(arrays[states_array(name)], expected.half().numpy())
        np.testing.assert_array_equal(arrays[targets_array(name)], windows[:, 1:].flatten())
    # the own head on the rounded states, its padded rows (384 > 300 ids) left out
    rounded = torch.from_numpy(arrays[states_array("heldout")]).float()
    with torch.no_grad():
        logits = model.head.logits(rounded)[:, :300]
    targets = torch.from_numpy(arrays[targets_array("heldout")]).long()
    nll = F.cross_entropy(logits, targets, reduction="none")
    np.testing.assert_allclose(arrays[OWN_NLL], nll.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(arrays[OWN_HITS], (logits.argmax(-1) == targets).numpy())
    assert record["own"]["loss"] == pytest.approx(float(nll.mean()), rel=1e-6)
    head = LinearHead.read_matrix(checkpoint)[:300].astype(np.float64)
    np.testing.assert_allclose(arrays[OWN_SIGMA], np.linalg.svd(head, compute_uv=False), rtol=1e-10)
    assert record["info"] == {"width": 16, "vocab": 300, "window": 16, "fit_tokens": 256,
                              "heldout_tokens": 128}  # fmt: skip


@pytest.mark.parametrize("rank", [3, None])
def test_the_fused_training_loss_is_the_plain_one(rank: int | None) -> None:
    generator = torch.Generator().manual_seed(0)
    head = FactorisedHead(HeadConfig(rank, "scaled", 1e-2), vocab=50, width=8, generator=generator)
    hidden = torch.randn(37, 8, generator=generator)
    targets = torch.randint(50, (37,), generator=generator)
    fused = head.loss(hidden, targets, chunk=5)
    fused.backward()
    fused_grads = [p.grad.clone() for p in head.parameters()]
    for p in head.parameters():
        p.grad = None
    plain = F.cross_entropy(head.logits(hidden), targets)
    plain.backward()
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    for got, want in zip(fused_grads, [p.grad for p in head.parameters()], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_inits_the_paper_s_and_the_scaled_one() -> None:
    generator = torch.Generator().manual_seed(0)
    normal = FactorisedHead(HeadConfig(16, "normal", 1e-3), 4000, 64, generator)
    scaled = FactorisedHead(HeadConfig(16, "scaled", 1e-3), 4000, 64, generator)
    assert normal.a.std().item() == pytest.approx(1, rel=0.02)
    assert normal.b.std().item() == pytest.approx(1, rel=0.05)
    assert scaled.a.std().item() == pytest.approx(1 / 4, rel=0.02)
    assert scaled.b.std().item() == pytest.approx(1 / 8, rel=0.05)
    hidden = torch.randn(2000, 64, generator=generator)  # unit-variance states: logits var ≈ 1
    assert scaled.logits(hidden).std().item() == pytest.approx(1, rel=0.1)
    with pytest.raises(ValueError, match="init 'xavier'"):
        FactorisedHead(HeadConfig(2, "xavier", 1e-3), 10, 4, generator)


def _rank_limited_data(tmp_path: Path, rank: int = 4, width: int = 8, vocab: int = 32) -> Path:
    """States h ~ N(0, I) and targets drawn from softmax(3 · U Vᵀ h), logits of rank `rank`,
    stored as a states record is."""
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((vocab, rank)), rng.standard_normal((width, rank))
    folder = tmp_path / "states"
    folder.mkdir()
    for name, n in (("fit", 8192), ("heldout", 4096)):
        h = rng.standard_normal((n, width))
        z = 3 * h @ v @ u.T / math.sqrt(rank * width)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        targets = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1).astype(np.int32)
        np.save(folder / f"{states_array(name)}.npy", h.astype(np.float16))
        np.save(folder / f"{targets_array(name)}.npy", targets)
    info = {"width": width, "vocab": vocab, "window": 16}
    (folder / "record.json").write_text(json.dumps({"info": info}))
    return folder


def test_a_head_below_the_data_s_rank_loses_and_one_at_it_does_not(tmp_path: Path) -> None:
    data = SweepData.load(HiddenStates.open(_rank_limited_data(tmp_path)), torch.device("cpu"))
    training = HeadTraining.of(TRAINING | {"steps": 300, "batch_tokens": 256, "eval_every": 100})
    loss = {r: train_head(data, HeadConfig(r, "scaled", 3e-2), training, chunk=128).loss
            for r in (1, 4, None)}  # fmt: skip
    assert loss[1] > loss[4] + 0.1  # rank 1 cannot express rank-4 logits
    assert loss[4] == pytest.approx(loss[None], abs=0.03)  # rank 4 does what full rank does
    assert loss[None] < math.log(32) - 0.3
    trained = train_head(data, HeadConfig(4, "scaled", 3e-2), training, chunk=128)
    assert trained.loss == loss[4]  # seeded: the same draws, the same head
    assert trained.curve.shape == (3, 3) and list(trained.curve[:, 0]) == [100, 200, 300]


def test_grids() -> None:
    assert ranks_for(32, None) == [1, 2, 4, 8, 16, 32]
    assert ranks_for(48, None) == [1, 2, 4, 8, 16, 32, 48]
    assert ranks_for(16, [2, 4, 8, 16, 32, 64]) == [2, 4, 8, 16]
    configs = sweep_configs([4, 2], ["normal"], [1e-3, 1e-2])
    assert [(c.rank, c.lr) for c in configs] == [
        (2, 1e-3), (2, 1e-2), (4, 1e-3), (4, 1e-2), (None, 1e-3), (None, 1e-2),
    ]  # fmt: skip
    assert {c.head for c in configs} == {LOW_RANK, FULL_RANK}


def _manifest(tmp_path: Path, run_dir: Path, steps: list[int]) -> Path:
    path = tmp_path / "manifest.csv"
    folders = [run_dir / "checkpoints" / f"step{s}" for s in steps]
    write_manifest(path, [verify_checkpoint(folder) for folder in folders])
    return path


def test_a_sweep_caches_states_once_and_trains_only_new_heads(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path, tiny_run, [8, 12])
    results, log = tmp_path / "results", tmp_path / "events.jsonl"

    def sweep(recipe: dict) -> dict:
        return sweep_run(manifest, [12], recipe, tiny_data["val"], tiny_data["train"], results, log)

    swept = sweep(STAGE_RECIPE)
    (step,) = swept
    assert step == 12 and len(swept[12][1]) == 4 * 2  # ranks 2, 4, 16 (= d) and full: × 2 lrs
    heads, curves = sweep_tables(swept, {"run": "w16-s0", "width": 16, "seed": 0})
    assert len(heads) == 1 + 8 and set(heads["head"]) == {OWN, LOW_RANK, FULL_RANK}
    chosen = heads[heads["chosen"] & (heads["head"] != OWN)]
    assert sorted(chosen["rank"]) == [2, 4, 16, 16]  # one learning rate per (rank, init)
    for _, row in chosen.iterrows():
        same = heads[(heads["head"] == row["head"]) & (heads["rank"] == row["rank"])]
        assert row["select_loss"] == same["select_loss"].min()
    low = heads[heads["head"] == LOW_RANK].set_index(["rank", "lr"])
    assert low.loc[(16, 1e-2), "w_error"] == 0 and low.loc[(2, 1e-2), "w_error"] > 0
    assert len(curves) == 8 * 3 and curves["update"].max() == 30
    # a rank added to the grid: the states and the other heads are reused, one rank trained
    lines = len(log.read_text().splitlines())
    again = sweep(STAGE_RECIPE | {"ranks": [2, 4, 8, 16]})
    new = [json.loads(line) for line in log.read_text().splitlines()[lines:]]
    assert [e.get("rank") for e in new if "rank" in e] == [8, 8]
    assert [e["reused"] for e in new if "reused" in e] == [["states"]]
    assert (
        again[12][1][HeadConfig(2, "scaled", 1e-2)] == swept[12][1][HeadConfig(2, "scaled", 1e-2)]
    )
    # trained afresh into another store, the tables are the same to the byte (no wall time in them)
    fresh = sweep_run(manifest, [12], STAGE_RECIPE, tiny_data["val"], tiny_data["train"],
                      tmp_path / "fresh", tmp_path / "fresh.jsonl")  # fmt: skip
    run = {"run": "w16-s0", "width": 16, "seed": 0}
    for table, remade in zip((heads, curves), sweep_tables(fresh, run), strict=True):
        assert remade.to_csv(index=False) == table.to_csv(index=False)
