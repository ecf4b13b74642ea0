"""One module per paper figure; each reads only the tidy table and writes PNG + PDF."""
