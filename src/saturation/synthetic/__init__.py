"""A synthetic Markov language with a known logit rank (`language`) and the exact best
cross-entropy of rank-constrained heads on it (`oracles`): the softmax bottleneck measured
against an answer known in advance. numpy, scipy and torch only."""

from __future__ import annotations

from saturation.synthetic.language import (
    Language,
    LanguageSpec,
    build_language,
    context_index,
    context_tokens,
    sample_documents,
    stationary_distribution,
)
from saturation.synthetic.oracles import (
    OracleResult,
    head_family_loss,
    oracle_table,
    svd_bound_loss,
    unconstrained_rank_loss,
)

__all__ = [
    "Language",
    "LanguageSpec",
    "OracleResult",
    "build_language",
    "context_index",
    "context_tokens",
    "head_family_loss",
    "oracle_table",
    "sample_documents",
    "stationary_distribution",
    "svd_bound_loss",
    "unconstrained_rank_loss",
]
