"""The models this project trains and measures: GPT-NeoX (Pythia) shapes (`shape`), the LM head
seam (`heads`), the head fused with its loss (`losses`), a lean forward over a model's own
parameters (`neox`) and a checkpoint read into it without transformers (`weights`)."""
