"""Paper Fig. 7: the dimensionality of the data. W-error(d), the share of the Frobenius norm that
the best rank-d approximation leaves, of the C × V matrix of empirical next-token distributions
of the corpus's (n − 1)-token contexts, against d (log scale); beside it (beyond the paper) the
same for the row-centred smoothed log-probabilities, the logits a rank-d softmax head produces.

A curve still high at the trained widths says the data's distributions need more dimensions than
those heads have: in the paper, W-error stays well above 0 up to d ≈ 1,000 on the Pile.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from saturation.figures import DEFAULT_OPTIONS, FigureOptions, style

KINDS = {  # kind: (label, line style)
    "probabilities": ("next-token probabilities (paper)", "o-"),
    "logits": ("row-centred log-probabilities (logits)", "s--"),
}


def plot(
    table: pd.DataFrame, png: str | Path, pdf: str | Path, options: FigureOptions = DEFAULT_OPTIONS
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    if table.empty:
        raise ValueError("the ngram table is empty")
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for kind, (label, line) in KINDS.items():
        curve = table[table["kind"] == kind].sort_values("d")
        if not curve.empty:
            ax.plot(curve["d"], curve["w_error"], line, markersize=4, label=label)
    first = table.iloc[0]
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("rank d")
    ax.set_ylabel("W-error(d) = ‖σ_{d+1:}‖ / ‖W‖_F")
    ax.set_title(
        f"{int(first['n'])}-gram contexts: C = {int(first['contexts']):,}, "
        f"{int(first['nnz']):,} non-zeros"
    )
    ax.legend(fontsize=8)
    style.save(fig, png, pdf)
    return fig
