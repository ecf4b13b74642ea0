"""A configured LM head, as the config and the recipes spell it: no torch here, so the config
checks and the plan (which run in Snakemake's process) can name heads without importing one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class HeadSpec:
    """A configured head: `kind` (linear, tied, low_rank, mixture_of_softmaxes) and `size`, the
    rank of a low-rank head or the components of a mixture (None for the others)."""

    kind: str = "linear"
    size: int | None = None

    SIZE_NAMES: ClassVar[dict[str, str]] = {
        "low_rank": "rank",
        "mixture_of_softmaxes": "components",
    }
    KINDS: ClassVar[tuple[str, ...]] = ("linear", "tied", "low_rank", "mixture_of_softmaxes")

    @classmethod
    def of(cls, value: str | Mapping[str, Any] | None) -> HeadSpec:
        """From the config's spelling (`linear`, `tied`, `{low_rank: {rank: r}}`,
        `{mixture_of_softmaxes: {components: k}}`) or a recipe's (`{"kind", "rank"|"components"}`)."""
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(value)
        if "kind" in value:
            kind = value["kind"]
            return cls(kind, value.get(cls.SIZE_NAMES.get(kind, ""), None))
        ((kind, options),) = value.items()
        return cls(kind, options[cls.SIZE_NAMES[kind]])

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"head: unknown kind {self.kind!r} (known: {', '.join(self.KINDS)})")
        if (self.size is None) != (self.kind not in self.SIZE_NAMES):
            raise ValueError(
                f"head: {self.kind} {'needs' if self.size is None else 'takes no'} size"
            )

    def recipe(self) -> dict[str, Any]:
        """Its part of a pretrain recipe: `{"kind": …}` and the size under its name."""
        if self.size is None:
            return {"kind": self.kind}
        return {"kind": self.kind, self.SIZE_NAMES[self.kind]: self.size}

    @property
    def suffix(self) -> str:
        """Its part of a run's name: none for linear, `-tied`, `-lowrank{r}`, `-mos{k}`."""
        short = {
            "linear": "",
            "tied": "-tied",
            "low_rank": "-lowrank",
            "mixture_of_softmaxes": "-mos",
        }
        return short[self.kind] + (str(self.size) if self.size is not None else "")

    @property
    def label(self) -> str:
        """For figures and tables: `linear`, `tied`, `low-rank r=4`, `MoS k=4`."""
        if self.kind == "low_rank":
            return f"low-rank r={self.size}"
        if self.kind == "mixture_of_softmaxes":
            return f"MoS k={self.size}"
        return self.kind

    @property
    def class_name(self) -> str:
        """The head class's name (`HEADS`): a tied head is the linear one."""
        return "linear" if self.kind == "tied" else self.kind

    def logit_rank(self, width: int) -> int:
        """The rank its logit matrix can have at most as a linear map of the final hidden state:
        the rank for a low-rank head, the width for the others (a mixture's log-probabilities
        are not a linear map, which is why it can break the bottleneck)."""
        return min(width, self.size) if self.kind == "low_rank" else width
