"""The fused, chunked mixture-of-softmaxes cross-entropy computes what plain autograd over the
full (N, K, V) logits computes: loss and the gradients of latents, decoder and log prior, eager,
compiled and under bf16 autocast."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from saturation.model.losses import linear_cross_entropy, mixture_cross_entropy

N, K, D, V, CHUNK = 37, 3, 6, 50, 8  # 37 = four chunks of 8 and one of 5


def reference(
    latents: torch.Tensor, decoder: torch.Tensor, log_prior: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """The mixture's loss the plain way: all (N, K, V) logits at once."""
    log_probs = torch.log_softmax(latents @ decoder.t(), dim=-1)  # (N, K, V)
    target_log_probs = log_probs.gather(2, targets[:, None, None].expand(-1, latents.shape[1], 1))
    return -torch.logsumexp(log_prior + target_log_probs.squeeze(2), dim=1).mean()


def inputs(seed: int = 0, n: int = N, k: int = K) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    latents = torch.tanh(2 * torch.randn(n, k, D, generator=gen))
    decoder = 2 * torch.randn(V, D, generator=gen)
    log_prior = torch.log_softmax(torch.randn(n, k, generator=gen), dim=-1)
    targets = torch.randint(0, V, (n,), generator=gen)
    return latents, decoder, log_prior, targets


def loss_and_grads(
    fn: Callable[..., torch.Tensor],
    latents: torch.Tensor,
    decoder: torch.Tensor,
    log_prior: torch.Tensor,
    targets: torch.Tensor,
    *args: int,
    scale: float = 1.0,
) -> tuple[torch.Tensor, ...]:
    """The loss and its gradients with respect to latents, decoder and log prior."""
    leaves = [x.detach().clone().requires_grad_() for x in (latents, decoder, log_prior)]
    loss = fn(*leaves, targets, *args)
    return (loss, *torch.autograd.grad(scale * loss, leaves))


def test_matches_plain_autograd_in_fp32() -> None:
    latents, decoder, log_prior, targets = inputs()
    want = loss_and_grads(
        reference, latents.double(), decoder.double(), log_prior.double(), targets
    )
    got = loss_and_grads(mixture_cross_entropy, latents, decoder, log_prior, targets, CHUNK)
    for name, g, w in zip(("loss", "latents", "decoder", "log_prior"), got, want, strict=True):
        assert g.dtype == torch.float32, name
        torch.testing.assert_close(g, w.float(), atol=1e-5, rtol=1e-5, msg=name)


def test_one_component_is_the_linear_head() -> None:
    latents, decoder, _, targets = inputs(seed=1, k=1)
    log_prior = torch.zeros(N, 1)
    loss, g_latents, g_decoder, g_log_prior = loss_and_grads(
        mixture_cross_entropy, latents, decoder, log_prior, targets, CHUNK
    )
    h, w = latents[:, 0].clone().requires_grad_(), decoder.clone().requires_grad_()
    want_loss = linear_cross_entropy(h, w, targets, CHUNK)
    want = (want_loss, *torch.autograd.grad(want_loss, (h, w)))
    torch.testing.assert_close(loss, want[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(g_latents[:, 0], want[1], atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(g_decoder, want[2], atol=1e-7, rtol=1e-5)
    # one component takes all the responsibility: d loss / d log π = −1/N
    torch.testing.assert_close(g_log_prior, torch.full((N, 1), -1 / N))


def test_upstream_gradient_scales_the_gradients() -> None:
    latents, decoder, log_prior, targets = inputs(seed=2)
    args = (mixture_cross_entropy, latents, decoder, log_prior, targets, CHUNK)
    unit, scaled = loss_and_grads(*args), loss_and_grads(*args, scale=2.5)
    for u, s in zip(unit[1:], scaled[1:], strict=True):
        torch.testing.assert_close(s, 2.5 * u, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("latents_dtype", [torch.float32, torch.bfloat16])
def test_bf16_autocast_tracks_fp32(latents_dtype: torch.dtype) -> None:
    """Under autocast the latents may already be bf16 (tanh of an autocast projection) while the
    decoder and log prior are fp32; the loss is fp32 and each gradient has its input's dtype."""
    latents, decoder, log_prior, targets = inputs(seed=3)
    want = loss_and_grads(reference, latents, decoder, log_prior, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_and_grads(
            mixture_cross_entropy, latents.to(latents_dtype), decoder, log_prior, targets, CHUNK
        )
    assert got[0].dtype == torch.float32
    assert [g.dtype for g in got[1:]] == [latents_dtype, torch.float32, torch.float32]
    torch.testing.assert_close(got[0], want[0], atol=2e-2, rtol=2e-2)
    for name, g, w in zip(("latents", "decoder", "log_prior"), got[1:], want[1:], strict=True):
        assert (g.float() - w).norm() <= 2e-2 * w.norm(), name  # measured ≤ 6e-3


@pytest.mark.parametrize("bf16", [False, True])
def test_compiled_computes_what_eager_does(bf16: bool) -> None:
    """Compiled, the onehot is an elementwise comparison instead of eager's scatter."""
    latents, decoder, log_prior, targets = inputs(seed=4)
    compiled = torch.compile(mixture_cross_entropy, fullgraph=True)  # no silent eager fallback
    results = []
    for fn in (mixture_cross_entropy, compiled):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            results.append(loss_and_grads(fn, latents, decoder, log_prior, targets, CHUNK))
    eager, fused = results
    for name, f, e in zip(("loss", "latents", "decoder", "log_prior"), fused, eager, strict=True):
        torch.testing.assert_close(f, e, atol=1e-5, rtol=1e-5, msg=name)
