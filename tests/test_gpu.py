"""The GPU training path: bf16 autocast in the fused loss, torch.compile, fused AdamW, TF32.

Skipped where no CUDA device is visible (CI). On a GPU node: `pytest -m gpu -rP tests/test_gpu.py`
(-rP prints the measured deviations). The CPU tests pin the maths in fp32; these pin what only a GPU
runs, against fp64/fp32 references computed on the same device.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmarks.baselines import TransformersLoss
from saturation.model.losses import linear_cross_entropy
from saturation.model.neox import FastGPTNeoX
from saturation.model.shape import ModelShape, build_model
from saturation.tokenizer import train_bpe_tokenizer
from saturation.tokens import open_tokens, tokenize_split
from saturation.train.data import TokenBatches
from saturation.train.recipe import TrainConfig
from saturation.train.signals import TrainingStopped
from saturation.train.speed import choose_speed_path
from saturation.train.step import make_optimizer, optimizer_step
from tests.conftest import ROOT, tiny_recipe, train_tiny

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")


@pytest.fixture
def exact_fp32():
    """fp32 matmuls without TF32 for the duration of a test (choose_speed_path turns TF32 on)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="module")
def text_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real English text that travels with the repository (its docs), tokenized by our code: GPU
    nodes may lack the corpus packages, and these tests need text with structure, not noise."""
    root = tmp_path_factory.mktemp("gpu_data")
    paragraphs = [
        block.strip()
        for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for block in doc.read_text(encoding="utf-8").split("\n\n")
        if len(block.strip()) > 40
    ]
    docs = root / "train.jsonl"
    docs.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in
                            enumerate(paragraphs)))  # fmt: skip
    train_bpe_tokenizer(docs, root / "tokenizer", vocab_size=512)
    tokenize_split(docs, root / "tokenizer", root / "train.bin", root / "train.json", threads=1)
    return {"tokenizer": root / "tokenizer", "train": root / "train.bin"}


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.double() - reference.double()).norm() / reference.double().norm())


@pytest.mark.parametrize("autocast", [None, torch.bfloat16])
@pytest.mark.parametrize("chunk", [1000, 8192])
def test_fused_loss_and_grads_match_fp64(exact_fp32, autocast, chunk) -> None:
    """fp32: summation order only. bf16 operands: the error of bf16 rounding (~4e-3 per element),
    no more, so the fp32 softmax and the fp32 dW accumulation work as designed."""
    gen = torch.Generator(device=CUDA).manual_seed(0)
    hidden = torch.randn(6000, 256, device=CUDA, generator=gen, requires_grad=True)
    weight = (0.05 * torch.randn(8192, 256, device=CUDA, generator=gen)).requires_grad_()
    targets = torch.randint(0, 8192, (6000,), device=CUDA, generator=gen)
    with torch.autocast("cuda", dtype=autocast or torch.float32, enabled=autocast is not None):
        loss = linear_cross_entropy(hidden, weight, targets, chunk)
    loss.backward()
    h64, w64 = hidden.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    reference = F.cross_entropy(h64 @ w64.t(), targets)
    reference.backward()
    bounds = (1e-6, 1e-5) if autocast is None else (2e-3, 2e-2)  # (loss, gradients)
    errors = [relative_error(loss, reference), relative_error(hidden.grad, h64.grad),
              relative_error(weight.grad, w64.grad)]  # fmt: skip
    print(f"autocast {autocast}, chunk {chunk}: relative errors loss/dh/dW {errors}")
    assert loss.dtype == torch.float32 and hidden.grad.dtype == weight.grad.dtype == torch.float32
    assert errors[0] < bounds[0] and max(errors[1:]) < bounds[1]


def test_logits_match_transformers_on_gpu(exact_fp32) -> None:
    """The same function as transformers' forward on the GPU's own kernels (SDPA's efficient
    attention instead of the CPU's), fp32 without TF32."""
    model = build_model(ModelShape(128, 2, 2, 512, 256), seed=0).to(CUDA).eval()
    ids = torch.randint(0, 512, (4, 256), device=CUDA)
    with torch.no_grad():
        ours = FastGPTNeoX(model, 8192).to(CUDA).logits(ids)
        theirs = model(input_ids=ids).logits
    error = relative_error(ours, theirs)
    print(f"logits relative error vs transformers (fp32, cuda): {error:.2e}")
    assert error < 1e-5


def _curve(step_fn, model, batches: TokenBatches, steps: int, autocast: str | None) -> list[float]:
    cfg = TrainConfig(seed=0, steps=steps, batch_size=batches.batch_size,
                      seq_len=batches.seq_len, lr=2e-3, min_lr_ratio=1.0, warmup_steps=0,
                      betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, grad_clip=1.0,
                      checkpoint_steps=())  # fmt: skip
    optimizer = make_optimizer(model, cfg, fused=True)
    losses = []
    for step in range(steps):
        batch = batches.batch(step).to(CUDA)
        loss, _ = optimizer_step(step_fn, optimizer, batch, cfg.grad_clip, autocast)
        losses.append(loss)
    return [float(x) for x in losses]


def test_compiled_bf16_training_tracks_fp32(exact_fp32, text_data: dict[str, Path]) -> None:
    """What pretrain runs on a GPU (compiled, bf16 autocast, fused AdamW, TF32) stays as close to
    an fp32 transformers run as transformers' own bf16 run does, over 150 steps of real text."""
    shape = ModelShape(128, 2, 2, 512, 128)
    batches = TokenBatches(open_tokens(text_data["train"]), 128, 8, seed=0)
    steps = 150

    def run(impl: str, autocast: str | None) -> list[float]:
        model = build_model(shape, seed=0).to(CUDA).train()
        if impl == "ours":
            step_fn = torch.compile(FastGPTNeoX(model, 8192).to(CUDA))
        else:
            step_fn = TransformersLoss(model)
        return _curve(step_fn, model, batches, steps, autocast)

    reference = run("transformers", None)  # fp32 truth, TF32 off
    choose_speed_path(
        TrainConfig.from_dict(tiny_recipe()["train"]), CUDA, 1
    )  # TF32 on, as pretrain
    hf_bf16 = run("transformers", "bfloat16")
    ours = run("ours", "bfloat16")
    deviation = {
        name: max(abs(a - b) for a, b in zip(curve, reference, strict=True))
        for name, curve in (("transformers bf16", hf_bf16), ("ours compiled bf16", ours))
    }
    print(f"loss {reference[0]:.3f} → {reference[-1]:.3f} (fp32); max |Δloss| vs fp32: {deviation}")
    assert reference[-1] < reference[0] - 1.0  # it learns: the comparison is not of flat curves
    assert deviation["ours compiled bf16"] <= 2 * deviation["transformers bf16"] + 0.02


def test_pretrain_on_gpu_resumes(tmp_path: Path, text_data: dict[str, Path]) -> None:
    """The pretrain entry point on a GPU: the speed path it reports, checkpoints that load on the
    CPU, and a stop/resume that lands where an uninterrupted run does (within bf16 noise: GPU
    kernels are not bit-deterministic, so the CPU tests own bit-exactness)."""
    from transformers import GPTNeoXForCausalLM

    recipe = tiny_recipe(steps=60, compile="auto", checkpoint_steps=[0, 30, 60])
    recipe["model"] |= {"width": 64, "layers": 2, "heads": 2}
    recipe["train"] |= {"seq_len": 64, "batch_size": 8}
    whole = train_tiny(tmp_path / "whole", text_data, recipe, device="cuda")
    assert whole["speed_path"]["device"] == "cuda"
    assert whole["speed_path"]["autocast_dtype"] == "bfloat16"
    assert whole["speed_path"]["compiled"] and whole["speed_path"]["fused_adamw"]

    with pytest.raises(TrainingStopped):
        train_tiny(tmp_path / "split", text_data, recipe, device="cuda", stop_at_step=23)
    resumed = train_tiny(tmp_path / "split", text_data, recipe, device="cuda")
    assert resumed["resumed_from"] == 23

    def last_loss(run: str) -> float:
        rows = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return json.loads(rows[-1])["loss"]

    first = json.loads((tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    print(f"pretrain on cuda: loss {first:.3f} → {last_loss('whole'):.4f}; "
          f"stopped at 23 and resumed → {last_loss('split'):.4f}")  # fmt: skip
    assert last_loss("whole") < first - 0.5
    assert abs(last_loss("split") - last_loss("whole")) < 0.05
    final = next(c for c in whole["checkpoints"] if c["step"] == 60)
    reloaded = GPTNeoXForCausalLM.from_pretrained(tmp_path / "whole" / final["path"])
    assert reloaded.config.hidden_size == 64 and not any(
        p.is_cuda or not torch.isfinite(p).all() for p in reloaded.parameters()
    )


def test_a_head_trains_on_the_gpu_as_on_the_cpu(exact_fp32) -> None:
    """The head sweep's training (saturation.measure.rank_heads) on the device: the minibatch
    draws are made on the CPU, so the same seed trains the same head on either device, up to
    fp32 reduction order."""
    from saturation.measure.rank_heads import HeadConfig, HeadTraining, SweepData, train_head

    generator = torch.Generator().manual_seed(0)
    states = torch.randn(4096, 32, generator=generator)
    mixing = torch.randn(32, 4, generator=generator) @ torch.randn(4, 500, generator=generator)
    targets = (states @ mixing).argmax(dim=1)  # a rank-4 rule a rank-8 head can learn
    training = HeadTraining(steps=100, batch_tokens=256, warmup_fraction=0.1, min_lr_ratio=0.1,
                            weight_decay=0.0, eval_every=50, seed=0)  # fmt: skip

    def on(device: torch.device) -> float:
        h, t = states.to(device), targets.to(device)
        data = SweepData((h.half(), t), (h[:1024], t[:1024]), (h[1024:2048], t[1024:2048]), 500, 32)
        return train_head(data, HeadConfig(8, "scaled", 5e-2), training, chunk=8192).loss

    cpu, gpu = on(torch.device("cpu")), on(CUDA)
    assert gpu == pytest.approx(cpu, abs=1e-3) and gpu < 5.0  # log 500 = 6.21
