"""Held-out loss and the per-checkpoint record, against a manual forward pass of the checkpoint."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file
from transformers import GPTNeoXForCausalLM

from saturation.measure.analysis import analyze_checkpoint
from saturation.measure.heldout import (
    heldout_windows,
    measure_loss_and_anisotropy,
    token_cross_entropy,
)
from saturation.model.heads import LinearHead
from saturation.model.weights import load_fast_neox
from saturation.tokens import open_tokens


def test_windows_are_fixed_and_spread() -> None:
    tokens = np.arange(10_000)
    windows = heldout_windows(tokens, seq_len=16, n_tokens=320)
    assert windows.shape == (20, 17)
    np.testing.assert_array_equal(windows, heldout_windows(tokens, 16, 320))
    assert windows[0, 0] == 0 and windows[-1, -1] == len(tokens) - 1
    with pytest.raises(ValueError, match="fewer than seq_len"):
        heldout_windows(np.arange(5), 16, 320)


def test_default_sample_is_pinned() -> None:
    """The default config (54,819 val tokens, seq_len 128, 16,384 tokens): 128 windows at
    round(i · 54690 / 127), as every stored result of it was scored."""
    windows = heldout_windows(np.arange(54_819), seq_len=128, n_tokens=16_384)
    starts = windows[:, 0]
    assert len(starts) == 128 and list(starts[:4]) == [0, 431, 861, 1292] and starts[-1] == 54_690
    np.testing.assert_array_equal(starts, np.round(np.arange(128) * 54_690 / 127))


def test_a_short_split_is_never_scored_twice(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="saturation.measure.heldout"):
        windows = heldout_windows(np.arange(300), seq_len=128, n_tokens=16_384)
    # 299 scorable tokens hold two 128-token windows; they used to be 128 overlapping ones
    assert windows.shape == (2, 129)
    assert len(np.unique(windows[:, 1:])) == windows[:, 1:].size == 256
    assert windows[0, 0] == 0 and windows[-1, -1] == 299
    assert "scoring 256 tokens, not the 16384 requested" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="saturation.measure.heldout"):
        windows = heldout_windows(np.arange(10_000), seq_len=128, n_tokens=100)
    assert windows.shape == (1, 129) and "scoring 128 tokens, not the 100 requested" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="saturation.measure.heldout"):
        heldout_windows(np.arange(10_000), seq_len=128, n_tokens=1280)
    assert caplog.text == ""  # a request the split holds is not warned about


def test_record_counts_the_tokens_actually_scored(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    n_val = len(open_tokens(tiny_data["val"]))
    record = analyze_checkpoint(
        tiny_run / "checkpoints" / "step2", tiny_data["val"], seq_len=16, val_tokens=10**7,
        batch_size=64, metrics_out=tmp_path / "metrics.json", sigma_out=tmp_path / "sigma.npy",
    )  # fmt: skip
    assert record["info"]["scored_tokens"] == (n_val - 1) // 16 * 16 < 10**7


def test_chunked_loss_equals_cross_entropy_of_the_full_logits(
    tiny_run: Path, tiny_data: dict
) -> None:
    model = load_fast_neox(tiny_run / "checkpoints" / "step12")
    windows = heldout_windows(open_tokens(tiny_data["val"]), seq_len=16, n_tokens=160)
    model.loss_chunk = 7  # chunks that split windows and leave a ragged last one
    measured = measure_loss_and_anisotropy(model, windows, batch_size=3)
    ids = torch.from_numpy(windows)
    with torch.no_grad():
        logits = model.logits(ids[:, :-1])  # (B, T, V) at once, as the analysis used to
    full = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).item()
    assert measured.loss == pytest.approx(full, rel=1e-6) and measured.scored_tokens == 160
    rng = torch.Generator().manual_seed(0)
    hidden, head = torch.randn(50, 8, generator=rng), torch.nn.Linear(8, 1000, bias=False)
    targets = torch.randint(0, 1000, (50,), generator=rng)
    with torch.no_grad():
        expected = F.cross_entropy(head(hidden), targets, reduction="none")
        torch.testing.assert_close(token_cross_entropy(hidden, head, targets, 16), expected)
    # the standard error over the 10 windows of 16 tokens, written out
    per_token = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
    means = per_token.view(10, 16).mean(dim=1).double().numpy()
    assert measured.loss_stderr == pytest.approx(means.std(ddof=1) / np.sqrt(10), rel=1e-5)


@pytest.mark.parametrize(
    ("row", "value", "error"),
    [
        # a real row (< 300): unguarded, an inf read as collapse
        (5, np.inf, "{weights}: LM head embed_out.weight has 1 non-finite"),
        # a padded row: outside the spectrum but inside the softmax, so every normaliser was NaN
        # and metrics.json recorded val_loss NaN without a word
        (-1, np.nan, "{checkpoint}: held-out loss is nan"),
    ],
)
def test_a_diverged_head_fails_naming_its_file(
    tiny_run: Path, tiny_data: dict, tmp_path: Path, row: int, value: float, error: str
):
    checkpoint = shutil.copytree(tiny_run / "checkpoints" / "step12", tmp_path / "step12")
    weights = next(checkpoint.glob("*.safetensors"))
    state = load_file(weights)
    assert state["embed_out.weight"].shape[0] > 300  # the tiny vocabulary is padded
    state["embed_out.weight"][row, 3] = value
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=error.format(weights=weights, checkpoint=checkpoint)):
        analyze_checkpoint(
            checkpoint, tiny_data["val"], seq_len=16, val_tokens=64, batch_size=3,
            metrics_out=tmp_path / "metrics.json", sigma_out=tmp_path / "sigma.npy",
        )  # fmt: skip
    assert not (tmp_path / "metrics.json").exists()


def test_analyze_matches_a_manual_forward_pass(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    checkpoint = tiny_run / "checkpoints" / "step12"
    record = analyze_checkpoint(
        checkpoint, tiny_data["val"], seq_len=16, val_tokens=256, batch_size=3,
        metrics_out=tmp_path / "metrics.json", sigma_out=tmp_path / "sigma.npy",
    )  # fmt: skip
    windows = torch.from_numpy(heldout_windows(open_tokens(tiny_data["val"]), 16, 256))
    model = GPTNeoXForCausalLM.from_pretrained(checkpoint).eval()
    with torch.no_grad():  # HF's own shifted loss over the whole sample at once
        manual = model(input_ids=windows, labels=windows).loss.item()
    metrics = record["metrics"]
    assert metrics["val_loss"] == pytest.approx(manual, rel=1e-5)
    assert json.loads((tmp_path / "metrics.json").read_text()) == record
    sigma = np.load(tmp_path / "sigma.npy")
    head = LinearHead.read_matrix(checkpoint)
    real_rows = record["info"]["head_rows"]
    assert head.shape[0] == 384 and real_rows == 300  # padded rows sliced away before the SVD
    # the saved spectrum is the head's real rows', not the padded head's
    reference = np.linalg.svd(head[:300].astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(sigma, reference, rtol=1e-12)
    assert not np.allclose(sigma, np.linalg.svd(head.astype(np.float64), compute_uv=False))
    p = reference / reference.sum()  # SCIENCE-NOTES' formulas written out
    assert metrics["singular_entropy"] == pytest.approx(np.sum(p * np.log(16 * p)), rel=1e-10)
    e = reference**2 / np.sum(reference**2)  # the σ² convention
    assert metrics["singular_entropy_sq"] == pytest.approx(np.sum(e * np.log(16 * e)), rel=1e-10)
    assert metrics["effective_rank"] == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-10)
    assert metrics["sigma_max"] == pytest.approx(reference[0], rel=1e-12)
    assert 0 <= metrics["singular_entropy"] <= np.log(16)
    rows = head[:300].astype(np.float64)  # the row-centred head, written out
    centred = np.linalg.svd(rows - rows.mean(axis=0), compute_uv=False)
    q = centred / centred.sum()
    assert metrics["singular_entropy_centred"] == pytest.approx(
        np.sum(q * np.log(16 * q)), rel=1e-10
    )
    assert metrics["effective_rank_centred"] == pytest.approx(
        np.exp(-np.sum(q * np.log(q))), rel=1e-10
    )
    assert metrics["sigma_max_centred"] == pytest.approx(centred[0], rel=1e-12)
    mean = rows.mean(axis=0)
    share = np.sum((rows @ mean) ** 2) / np.sum(mean**2) / np.sum(rows**2)
    assert metrics["mean_row_share"] == pytest.approx(share, rel=1e-10)


def test_a_meter_sees_every_state_of_the_one_pass(tiny_run: Path, tiny_data: dict) -> None:
    """The held-out pass is where a measurement that needs the hidden states plugs in: a meter
    gets each batch's final states (the head's input) and targets, and each depth as tapped."""
    from saturation.measure.heldout import Meter, heldout_pass

    class Keep(Meter):
        def __init__(self) -> None:
            self.final_states, self.targets, self.depths = [], [], set()

        def tap(self, depth: int, states: torch.Tensor) -> None:
            self.depths.add(depth)

        def final(self, hidden: torch.Tensor, targets: torch.Tensor) -> None:
            self.final_states.append(hidden.clone())
            self.targets.append(targets.clone())

    model = load_fast_neox(tiny_run / "checkpoints" / "step12")
    windows = heldout_windows(open_tokens(tiny_data["val"]), seq_len=16, n_tokens=112)
    kept = Keep()
    heldout_pass(model, windows, batch_size=3, meters=[kept])
    ids = torch.from_numpy(windows)
    with torch.no_grad():
        expected = model.hidden_states(ids[:, :-1]).flatten(0, 1)
    torch.testing.assert_close(torch.cat(kept.final_states), expected)
    assert torch.equal(torch.cat(kept.targets), ids[:, 1:].flatten())
    assert kept.depths == set(range(len(model.model.gpt_neox.layers) + 2))


def test_the_cpu_device_changes_no_number(tiny_run: Path, tiny_data: dict, tmp_path: Path) -> None:
    """device="cpu" is the default and the pass the analysis always ran: the same floats."""
    checkpoint = tiny_run / "checkpoints" / "step12"

    def analyze(tag: str, **device: str) -> dict:
        return analyze_checkpoint(
            checkpoint, tiny_data["val"], seq_len=16, val_tokens=256, batch_size=3,
            metrics_out=tmp_path / f"{tag}.json", sigma_out=tmp_path / f"{tag}.npy", **device,
        )  # fmt: skip

    record = analyze("cpu", device="cpu")
    assert record == analyze("default")
    windows = heldout_windows(open_tokens(tiny_data["val"]), seq_len=16, n_tokens=256)
    measured = measure_loss_and_anisotropy(load_fast_neox(checkpoint), windows, batch_size=3)
    assert record["metrics"]["val_loss"] == measured.loss
    anisotropy = {
        int(k[-2:]): v for k, v in record["metrics"].items() if k.startswith("anisotropy_d")
    }
    assert anisotropy == measured.anisotropy


def test_a_modified_token_file_is_never_measured(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    val = shutil.copy(tiny_data["val"], tmp_path / "val.bin")
    shutil.copy(tiny_data["val"].with_suffix(".json"), tmp_path / "val.json")
    data = bytearray(val.read_bytes())
    data[100] ^= 0x01  # one id changed, the size unchanged
    val.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"val.bin: sha256 .* does not match its header"):
        analyze_checkpoint(
            tiny_run / "checkpoints" / "step12", val, seq_len=16, val_tokens=64, batch_size=3,
            metrics_out=tmp_path / "metrics.json", sigma_out=tmp_path / "sigma.npy",
        )  # fmt: skip
    assert not (tmp_path / "metrics.json").exists()
