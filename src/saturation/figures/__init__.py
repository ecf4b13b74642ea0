"""One module per paper figure; each reads one table and writes PNG + PDF.

Each module's `plot(table, png, pdf, options)` draws it; `options` (`FigureOptions`, from the
config's `figures` section and `summary.confidence`) is what a figure may be asked to show.

`FIGURES` maps each figure module to the table it reads, in the order the report shows them: a
tidy table ("metrics", "spectra"; "bottleneck", drawn only where a synthetic language is
configured), the scaling stage's comparison table ("scaling", drawn only where `scaling.enabled`)
or the ngram stage's W-error curves ("ngram", drawn where that stage is planned); the head
sweeps' table ("heads") is drawn where a run is swept.
"""

from dataclasses import dataclass

FIGURES: dict[str, str] = {
    "bottleneck": "bottleneck",  # beyond the paper: loss vs width on a synthetic language
    "loss_curve": "metrics",  # paper Fig. 1a
    "scaling_law": "scaling",  # Fig. 1b
    "anisotropy_depth": "metrics",  # Fig. 2
    "benchmark_perplexity": "metrics",  # Fig. 3
    "spectrum_heatmap": "spectra",  # Fig. 4
    "singular_entropy": "metrics",  # Fig. 5
    "rank_heads": "heads",  # Fig. 6
    "data_dimensionality": "ngram",  # Fig. 7
    "loss_vs_w_error": "heads",  # Fig. 8
    "head_learning_rates": "heads",  # Fig. 9
}


@dataclass(frozen=True)
class FigureOptions:
    """Choices a figure's reader makes, never its data: which head the spectrum figures show
    (Fig. 4 and Fig. 5: the raw head W, the row-centred head W − 1m̄ᵀ, or both side by side)
    and the coverage of the across-seed bands where a model has more than one seed."""

    head: str = "both"  # raw | centred | both
    confidence: float = 0.95

    @property
    def heads(self) -> list[str]:
        return ["raw", "centred"] if self.head == "both" else [self.head]


DEFAULT_OPTIONS = FigureOptions()


# Fig. 3's y axis, in order of preference: WikiText's word perplexity, else the held-out analogue
WORD_PERPLEXITY_METRICS = ("wikitext/word_perplexity", "sat_wordperplexity/word_perplexity")
