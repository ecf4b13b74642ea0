"""The fast training forward computes what transformers' GPTNeoXForCausalLM computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmarks.baselines import TransformersLoss
from saturation.model.losses import linear_cross_entropy
from saturation.model.neox import FastGPTNeoX
from saturation.model.shape import ModelShape, build_model, shape_from_recipe
from saturation.schedule import learning_rate
from saturation.tokens import open_tokens, read_header
from saturation.train.data import TokenBatches
from saturation.train.recipe import TrainConfig
from saturation.train.step import make_optimizer, optimizer_step
from tests.conftest import tiny_recipe, train_tiny

# fp32 on CPU, 200 steps from one init and one data order: only summation order differs (fused
# vs unfused softmax, chunked head). Measured max |Δloss| = 9.5e-7 (one fp32 ulp at loss ≈ 6).
CURVE_TOLERANCE = 1e-5


@pytest.mark.parametrize("chunk", [7, 64, 4096])
def test_linear_cross_entropy_matches_the_unfused_loss_and_gradients(chunk: int) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(100, 24, requires_grad=True)
    weight = torch.randn(300, 24, requires_grad=True)
    targets = torch.randint(0, 300, (100,))
    expected = F.cross_entropy(F.linear(hidden, weight), targets)
    want_h, want_w = torch.autograd.grad(expected * 3.0, (hidden, weight))
    got = linear_cross_entropy(hidden, weight, targets, chunk)
    got_h, got_w = torch.autograd.grad(got * 3.0, (hidden, weight))  # a scaled upstream gradient
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_h, want_h, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-7)


def test_bf16_gradients_of_confident_targets_are_as_exact_as_the_unfused_loss() -> None:
    """Under bf16 autocast the fused loss must form p − 1 before rounding: for targets predicted
    with p ≈ 0.99, rounding p to bf16 first left 1.4–2.2× the unfused loss's gradient error
    (against fp64). The unfused loss (bf16 logits, fp32 cross-entropy) is the bar."""
    torch.manual_seed(0)
    n, width, vocab = 256, 32, 500
    weight = torch.randn(vocab, width)
    targets = torch.randint(0, vocab, (n,))
    hidden = weight[targets] + 0.1 * torch.randn(n, width)  # the target's logit stands out
    probs = torch.softmax(hidden.double() @ weight.double().t(), dim=-1)
    assert probs[torch.arange(n), targets].mean() > 0.99

    h64, w64 = hidden.double().requires_grad_(), weight.double().requires_grad_()
    exact = torch.autograd.grad(F.cross_entropy(h64 @ w64.t(), targets), (h64, w64))

    def relative_errors(fused: bool) -> list[float]:
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if fused:
                loss = linear_cross_entropy(h, w, targets, chunk=64)
            else:
                loss = F.cross_entropy(F.linear(h, w).float(), targets)
        got = torch.autograd.grad(loss, (h, w))
        return [float((g.double() - e).norm() / e.norm()) for g, e in zip(got, exact, strict=True)]

    fused, unfused = relative_errors(fused=True), relative_errors(fused=False)
    for name, ours, bar in zip(("dhidden", "dweight"), fused, unfused, strict=True):
        assert ours <= 1.1 * bar, f"{name}: fused {ours:.2e} vs unfused {bar:.2e}"


def test_compiled_fused_loss_computes_what_eager_does() -> None:
    """The onehot is a scatter eager and an elementwise comparison compiled (each the fast form
    there); both must give the same loss and gradients, in fp32 and under bf16 autocast."""
    torch.manual_seed(0)
    weight = torch.randn(500, 32)
    targets = torch.randint(0, 500, (200,))  # 200 = 3 chunks of 64 and one of 8
    hidden = weight[targets] + 0.1 * torch.randn(200, 32)
    compiled = torch.compile(linear_cross_entropy, fullgraph=True)  # no silent eager fallback
    for bf16 in (False, True):
        results = []
        for fn in (linear_cross_entropy, compiled):
            h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = fn(h, w, targets, 64)
            results.append((loss, *torch.autograd.grad(loss, (h, w))))
        for eager, fused in zip(*results, strict=True):
            torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-7)


def test_logits_match_the_reloaded_checkpoint(tiny_run: Path) -> None:
    """Ours over the weights of a saved checkpoint vs transformers' own forward of it."""
    from transformers import GPTNeoXForCausalLM

    folder = tiny_run / "checkpoints" / "step12"
    model = GPTNeoXForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    reference = GPTNeoXForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    ids = torch.randint(0, model.config.vocab_size, (3, 16), generator=torch.Generator().manual_seed(1))  # fmt: skip
    with torch.no_grad():
        ours = FastGPTNeoX(model).logits(ids)
        theirs = reference(input_ids=ids).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())


def test_shares_the_models_parameters() -> None:
    model = build_model(ModelShape(32, 2, 2, 256, 16), seed=0)
    fast = FastGPTNeoX(model)
    assert {id(p) for p in fast.parameters()} == {id(p) for p in model.parameters()}
    assert not fast.state_dict().keys() - {f"model.{k}" for k in model.state_dict()}


def hf_reference_losses(recipe: dict, data: dict) -> list[float]:
    """The plain transformers training step (eager attention, unfused loss), same everything."""
    header = read_header(data["train"].with_suffix(".json"))
    cfg = TrainConfig.from_dict(recipe["train"])
    shape = shape_from_recipe(recipe["model"], cfg.seq_len, header.vocab_size, header.eos_id)
    model = build_model(shape, cfg.seed)
    model.config._attn_implementation = "eager"
    reference = TransformersLoss(model)
    optimizer = make_optimizer(model, cfg, fused=False)
    batches = TokenBatches(open_tokens(data["train"]), cfg.seq_len, cfg.batch_size, cfg.seed)
    losses = []
    for update in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(
                update, cfg.steps, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio
            )
        loss, _ = optimizer_step(reference, optimizer, batches.batch(update), cfg.grad_clip, None)
        losses.append(loss.item())
    return losses


def test_same_loss_curve_as_transformers_for_200_steps(tiny_data: dict, tmp_path: Path) -> None:
    recipe = tiny_recipe(steps=200, checkpoint_steps=[200])
    train_tiny(tmp_path, tiny_data, recipe, log_every=1)
    ours = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]  # fmt: skip
    theirs = hf_reference_losses(recipe, tiny_data)
    worst = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    print(f"fast vs transformers eager, 200 steps fp32: max |Δloss| = {worst:.2e}")
    assert ours[-1] < ours[0] - 1.0  # it learned
    assert worst < CURVE_TOLERANCE


def test_activation_checkpointing_changes_what_is_kept_not_what_is_computed() -> None:
    """Same loss and gradients, bit for bit on CPU; the tensors autograd keeps for backward (the
    ones outside the checkpointed layers, plus one input per layer) shrink to a small fraction."""
    model = build_model(ModelShape(64, 4, 2, 512, 128), seed=0)
    ids = torch.randint(0, 512, (4, 129), generator=torch.Generator().manual_seed(0))

    def run(checkpoint_layers: bool) -> tuple[torch.Tensor, list[torch.Tensor], int]:
        fast = FastGPTNeoX(model, 64, checkpoint_layers)
        kept: list[int] = []

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            kept.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = fast(ids[:, :-1], ids[:, 1:])
        model.zero_grad()
        loss.backward()
        layer_inputs = (
            len(model.gpt_neox.layers) * ids[:, :-1].numel() * 64 * 4 if checkpoint_layers else 0
        )
        return loss.detach(), [p.grad.clone() for p in model.parameters()], sum(kept) + layer_inputs

    full_loss, full_grads, full_bytes = run(False)
    ckpt_loss, ckpt_grads, ckpt_bytes = run(True)
    assert torch.equal(full_loss, ckpt_loss)
    assert all(torch.equal(a, b) for a, b in zip(full_grads, ckpt_grads, strict=True))
    assert ckpt_bytes < 0.35 * full_bytes, (ckpt_bytes, full_bytes)
