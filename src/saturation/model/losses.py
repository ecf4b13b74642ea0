"""The LM head fused with the next-token cross-entropy, computed chunk by chunk.

At the small widths this project studies, the cost of a training step is the head and the
cross-entropy over V logits, not the transformer: here the logits exist one chunk of tokens at a
time, and their gradient is formed in the forward pass, so the full fp32 (N, V) logits and their
gradient are never materialised.
"""

from __future__ import annotations

from typing import Any

import torch


class LinearCrossEntropy(torch.autograd.Function):
    """mean_i CE(hidden_i · Wᵀ, target_i), with the gradients computed chunk by chunk.

    The loss is the last op of the graph, so the gradient of each chunk's logits,
    (softmax − onehot) / N, can be folded into dhidden and dW right away; backward only scales
    them by the incoming gradient. That gradient is formed in fp32 and only then cast to the
    matmuls' dtype: for a confidently predicted target, p − 1 is tiny, and subtracting 1 after
    rounding p to bf16 (2⁻⁹ steps near 1) would leave mostly rounding error. Compiled, the onehot
    is an elementwise comparison with the vocabulary ids, which torch.compile fuses into the
    softmax pass (a scatter at the targets there cost 2 of the 17.4 ms of a width-512 H100 step,
    benchmarks/RESULTS.md); eager, it is that scatter, since the comparison would be two more
    (chunk, V) passes (20 % of an eager step at d = 32 on CPU). Matmuls run in `compute` (bf16
    under autocast); the softmax and the dW accumulation in fp32.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        chunk: int,
        compute: torch.dtype,
    ) -> torch.Tensor:
        n = hidden.shape[0]
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        compiling = torch.compiler.is_compiling()
        if compiling:
            vocab_ids = torch.arange(weight.shape[0], device=weight.device)
        else:
            rows = torch.arange(min(chunk, n), device=targets.device)
        with torch.autocast(hidden.device.type, enabled=False):  # dtypes are explicit here
            w = weight.to(compute)
            for start in range(0, n, chunk):
                h = hidden[start : start + chunk].to(compute)
                t = targets[start : start + chunk]
                logp = torch.log_softmax((h @ w.t()).float(), dim=-1)  # (c, V), one fused pass
                total -= logp.gather(1, t[:, None]).sum()
                # softmax − onehot in fp32 until the cast, so 1 − p of a confident target survives
                probs = logp.exp_()
                if compiling:  # elementwise: fused into the softmax's pass
                    probs = probs - (vocab_ids == t[:, None]).float()
                else:  # eager: one subtraction per row, where the comparison is a (c, V) pass
                    probs[rows[: len(t)], t] -= 1.0
                grad_logits = probs.div_(n).to(compute)
                grad_hidden[start : start + chunk] = grad_logits @ w
                if compute == torch.float32:
                    grad_weight.addmm_(grad_logits.t(), h)
                else:  # a low-precision matmul, accumulated in fp32
                    grad_weight.add_((grad_logits.t() @ h).float())
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total / n

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            grad_hidden * grad_loss.to(grad_hidden.dtype),
            (grad_weight * grad_loss).to(ctx.weight_dtype),
            None,
            None,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Mean cross-entropy of `hidden` (N, d) through the head `weight` (V, d) against `targets`."""
    device_type = hidden.device.type
    compute = (
        torch.get_autocast_dtype(device_type)
        if torch.is_autocast_enabled(device_type)
        else hidden.dtype
    )
    return LinearCrossEntropy.apply(hidden, weight, targets, chunk, compute)


def loss_chunk_for(device: torch.device) -> int:
    """Tokens per logits chunk: on CPU (256, V) fp32 stays in cache (256 measured best at V=4k,
    benchmarks/RESULTS.md); a GPU wants large matmuls and has the memory for them."""
    return 8192 if device.type == "cuda" else 256


class MixtureCrossEntropy(torch.autograd.Function):
    """mean_i −log Σ_k π_ik softmax(h_ik · Wᵀ)[target_i]: a mixture-of-softmaxes head (Yang et al.
    2018) fused with its cross-entropy, chunk by chunk.

    Unfused, autograd would keep each component's fp32 (N, V) logits (or log-softmax) for
    backward, K of them: K times the single-softmax head's largest activation. Here, as in
    `LinearCrossEntropy`, the gradients are formed in the forward pass and backward only scales
    them, and at most one component's (chunk, V) fp32 logits exist at a time. Each chunk takes two
    passes over the components: the first keeps only each component's logsumexp and target logit,
    enough for the loss and the responsibilities r_ik = softmax_k(log π_ik + log p_ik(target)); the
    second recomputes the logits to form r_ik (softmax − onehot) / N and fold it into the latents'
    and decoder's gradients. So the logits matmul runs twice per component: four (chunk, V)
    matmuls per component where K linear heads take three, for K-fold less memory than autograd.
    The onehot and dtype handling are `LinearCrossEntropy`'s (see there): fp32 until the cast to
    `compute`, an elementwise comparison compiled and a scatter eager.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        latents: torch.Tensor,
        decoder: torch.Tensor,
        log_prior: torch.Tensor,
        targets: torch.Tensor,
        chunk: int,
        compute: torch.dtype,
    ) -> torch.Tensor:
        n, components = latents.shape[:2]
        grad_latents = torch.empty_like(latents)
        grad_decoder = torch.zeros(decoder.shape, dtype=torch.float32, device=decoder.device)
        grad_log_prior = torch.empty(log_prior.shape, dtype=torch.float32, device=log_prior.device)
        total = torch.zeros((), dtype=torch.float32, device=latents.device)
        compiling = torch.compiler.is_compiling()
        if compiling:
            vocab_ids = torch.arange(decoder.shape[0], device=decoder.device)
        else:
            rows = torch.arange(min(chunk, n), device=targets.device)
        with torch.autocast(latents.device.type, enabled=False):  # dtypes are explicit here
            w = decoder.to(compute)
            for start in range(0, n, chunk):
                h = latents[start : start + chunk].to(compute)  # (c, K, d)
                t = targets[start : start + chunk]
                # pass 1: each component's log-normaliser and target logit, (c, V) logits freed
                lse, log_joint = [], []
                for k in range(components):
                    logits = (h[:, k] @ w.t()).float()
                    lse_k = torch.logsumexp(logits, dim=-1)
                    lse.append(lse_k)
                    log_joint.append(logits.gather(1, t[:, None]).squeeze(1) - lse_k)
                    del logits  # else alive while the next component's logits are computed
                log_norm = torch.stack(lse, dim=1)  # (c, K)
                joint = log_prior[start : start + chunk].float() + torch.stack(log_joint, dim=1)
                mixed = torch.logsumexp(joint, dim=1)  # (c,): −loss_i
                total -= mixed.sum()
                resp = (joint - mixed[:, None]).exp_()  # (c, K) responsibilities
                grad_log_prior[start : start + chunk] = resp / -n
                scale = resp.div_(n)
                # pass 2: recompute each component's logits for r (softmax − onehot) / N
                for k in range(components):
                    logits = (h[:, k] @ w.t()).float()
                    probs = logits.sub_(log_norm[:, k, None]).exp_()
                    if compiling:  # elementwise: fused into the softmax's pass
                        probs = probs - (vocab_ids == t[:, None]).float()
                    else:  # eager: one subtraction per row
                        probs[rows[: len(t)], t] -= 1.0
                    grad_logits = probs.mul_(scale[:, k, None]).to(compute)
                    grad_latents[start : start + chunk, k] = grad_logits @ w
                    if compute == torch.float32:
                        grad_decoder.addmm_(grad_logits.t(), h[:, k])
                    else:  # a low-precision matmul, accumulated in fp32
                        grad_decoder.add_((grad_logits.t() @ h[:, k]).float())
                    del logits, probs, grad_logits
        ctx.save_for_backward(grad_latents, grad_decoder, grad_log_prior)
        ctx.decoder_dtype = decoder.dtype
        ctx.log_prior_dtype = log_prior.dtype
        return total / n

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grad_latents, grad_decoder, grad_log_prior = ctx.saved_tensors
        return (
            grad_latents * grad_loss.to(grad_latents.dtype),
            (grad_decoder * grad_loss).to(ctx.decoder_dtype),
            (grad_log_prior * grad_loss).to(ctx.log_prior_dtype),
            None,
            None,
            None,
        )


def mixture_cross_entropy(
    latents: torch.Tensor,
    decoder: torch.Tensor,
    log_prior: torch.Tensor,
    targets: torch.Tensor,
    chunk: int,
) -> torch.Tensor:
    """Mean over i of −log Σ_k exp(log_prior[i,k] + log_softmax(latents[i,k] @ decoder.T)[t_i]).

    latents (N, K, d): each component's hidden vector; decoder (V, d): the shared output
    embedding; log_prior (N, K): log mixture weights; targets t (N,); chunk: tokens per chunk.
    """
    device_type = latents.device.type
    compute = (
        torch.get_autocast_dtype(device_type)
        if torch.is_autocast_enabled(device_type)
        else latents.dtype
    )
    return MixtureCrossEntropy.apply(latents, decoder, log_prior, targets, chunk, compute)
