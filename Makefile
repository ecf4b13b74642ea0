# The two commands: `make run` (the whole workflow on config.yaml) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed on its own so a cluster can pick its CUDA build: make TORCH_SPEC='torch==2.13.0+cu128' …
TORCH_SPEC ?= torch==2.13.0
# One stamp per torch spec (named by its checksum, the spec inside): a TORCH_SPEC given on the
# command line or in the environment that is not the installed one reinstalls torch. Without one,
# the installed build stays (`make run` does not swap a CUDA build back to the default).
TORCH_STAMP := $(VENV)/.torch-$(firstword $(shell printf '%s' '$(TORCH_SPEC)' | cksum))
ifeq ($(origin TORCH_SPEC),file)
TORCH_STAMP := $(firstword $(wildcard $(VENV)/.torch-*) $(if $(wildcard $(VENV)/.installed),,$(TORCH_STAMP)))
endif
CORES ?= all
SNAKEMAKE_ARGS ?=
# Config files on top of the embedded default (`make run CONFIG="configs/micro.yaml mine.yaml"`),
# checked first: Snakemake's own message for a broken --configfile names no file.
CONFIG ?=
CONFIG_ARGS := $(if $(strip $(CONFIG)),--configfile $(CONFIG))

.PHONY: install run test lint format clean-venv slurm-up slurm-down

install: $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.torch-%: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	rm -f $(VENV)/.torch-*
	printf '%s\n' '$(TORCH_SPEC)' > $@

$(VENV)/.installed: requirements.lock pyproject.toml $(TORCH_STAMP)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

run: install
	$(if $(strip $(CONFIG)),$(BIN)/python -m saturation.config $(CONFIG))
	$(BIN)/snakemake --cores $(CORES) $(CONFIG_ARGS) $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --cores 1 $(CONFIG_ARGS) $(SNAKEMAKE_ARGS) --report results/report.html

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt Snakefile workflow/rules

test: lint
	$(BIN)/pytest

clean-venv:
	rm -rf $(VENV)

# A throwaway single-node SLURM on this Debian machine (root, apt-get), shaped after profiles/slurm:
# what tests/test_slurm.py brings up and purges by itself. Try the profile against it by hand.
slurm-up: install
	$(BIN)/python tests/slurm/cluster.py up

slurm-down:
	bash tests/slurm/down.sh --purge
