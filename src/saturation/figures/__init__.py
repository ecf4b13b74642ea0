"""One module per paper figure; each reads one table and writes PNG + PDF.

`FIGURES` maps each figure module to the table it reads, in the order the report shows them: a
tidy table ("metrics", "spectra") or the scaling stage's comparison table ("scaling", drawn only
where `scaling.enabled`).
"""

FIGURES: dict[str, str] = {
    "loss_curve": "metrics",  # paper Fig. 1a
    "scaling_law": "scaling",  # Fig. 1b
    "anisotropy_depth": "metrics",  # Fig. 2
    "benchmark_perplexity": "metrics",  # Fig. 3
    "spectrum_heatmap": "spectra",  # Fig. 4
    "singular_entropy": "metrics",  # Fig. 5
}

# Fig. 3's y axis, in order of preference: WikiText's word perplexity, else the held-out analogue
WORD_PERPLEXITY_METRICS = ("wikitext/word_perplexity", "sat_wordperplexity/word_perplexity")
