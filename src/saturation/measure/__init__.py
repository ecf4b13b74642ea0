"""What is measured on every harvested checkpoint: the held-out forward pass and its meters
(`heldout`), the head's spectrum (`spectra`), anisotropy (`anisotropy`), and the record of one
checkpoint (`analysis`)."""
