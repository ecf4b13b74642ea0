"""How a job runs, never what it computes: the config's `runtime` section as one object.

The schema (workflow/schemas/config.schema.yaml) is the one place that lists the options and
their defaults; `Runtime` carries whatever the section holds, plus what a job knows of itself
(the cores and processes Snakemake gave it), to the code that uses it, across a torchrun launch
too (`to_json`). A new option is two edits: the schema, and the place that reads it. None of it
is part of any stage's recipe, so changing it reruns nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


class Runtime(Mapping[str, Any]):
    """Read-only options by attribute (`runtime.log_every`) or key.

    Besides the config section, a job adds `threads` (torch threads of this process, None for
    torch's default), `processes` (data-parallel training processes) and, for tests,
    `stop_at_step` (checkpoint there and stop, resumable, as on SIGTERM).
    """

    JOB_DEFAULTS: Mapping[str, Any] = {"threads": None, "processes": 1, "stop_at_step": None}

    def __init__(self, options: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_options", {**self.JOB_DEFAULTS, **options})

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None = None, **job: Any) -> Runtime:
        """The schema's defaults, the config's `runtime` section over them, then the job's own."""
        from saturation.config import section_defaults

        return cls({**section_defaults("runtime"), **(section or {}), **job})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy and pickle probe dunders before `_options` exists
            raise AttributeError(name)
        try:
            return self._options[name]
        except KeyError:
            raise AttributeError(f"runtime has no option {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Runtime is read-only: use replace()")

    def __getitem__(self, key: str) -> Any:
        return self._options[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def __repr__(self) -> str:
        return f"Runtime({self._options!r})"

    def replace(self, **changes: Any) -> Runtime:
        return Runtime({**self._options, **changes})

    def to_json(self) -> str:
        return json.dumps(self._options, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Runtime:
        return cls(json.loads(text))


def resolve_device(requested: str) -> torch.device:
    """`runtime.device` as a torch device: `auto` is the GPU where there is one, else the CPU."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)
