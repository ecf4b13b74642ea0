"""GPT-NeoX with another LM head, as a transformers model: `saturation_neox`.

A low-rank or mixture-of-softmaxes head (saturation.model.heads) is not GPT-NeoX's, so its
checkpoints name their own model_type, `saturation_neox`, and carry the head in config.json
(`saturation_head`, `saturation_head_size`). Importing this module registers that type with
`AutoConfig` and `AutoModelForCausalLM`, so `AutoModelForCausalLM.from_pretrained` and
lm-evaluation-harness load those checkpoints with no `trust_remote_code` and no hub. It is not
imported by `import saturation`: transformers costs ≈ 4 s to import, which jobs that never build a
transformers model (analysis reads checkpoints without it) should not pay; every saturation module
that builds or loads transformers models imports it (`saturation.model.shape.build_model`,
`saturation.model.hf_forward`, `saturation.evaluate.lmeval`). `linear` and `tied` checkpoints
stay stock GPT-NeoX.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM
from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXModel, GPTNeoXPreTrainedModel

from saturation.model.heads import HEAD_KEY, HEAD_SIZE_KEY, HEADS

MODEL_TYPE = "saturation_neox"


@strict
class SaturationNeoXConfig(GPTNeoXConfig):
    """GPT-NeoX's config and the head (`saturation.model.heads.HEADS` name and size)."""

    model_type = MODEL_TYPE
    saturation_head: str = "low_rank"
    saturation_head_size: int = 1

    def validate_architecture(self) -> None:
        super().validate_architecture()
        if self.saturation_head not in HEADS or self.saturation_head == "linear":
            raise ValueError(f"{HEAD_KEY}: {self.saturation_head!r} is not a head of {MODEL_TYPE}")
        if self.saturation_head_size < 1:
            raise ValueError(f"{HEAD_SIZE_KEY}: must be at least 1")


class SaturationNeoXForCausalLM(GPTNeoXForCausalLM):
    """GPTNeoXForCausalLM with the configured head as `lm_head`: GPT-NeoX's forward, loss and
    generation unchanged, since the head module maps the final hidden state to logits (a
    mixture's log-probabilities are such logits)."""

    config_class = SaturationNeoXConfig
    _tied_weights_keys = {}  # noqa: RUF012 - transformers' class attribute; nothing is tied
    _tp_plan = {}  # noqa: RUF012 - the head is not a plain column-parallel linear
    _pp_plan = {}  # noqa: RUF012

    def __init__(self, config: SaturationNeoXConfig) -> None:
        GPTNeoXPreTrainedModel.__init__(self, config)  # not GPT-NeoX's: no V × d linear to drop
        self.gpt_neox = GPTNeoXModel(config)
        head = HEADS[config.saturation_head].modules(
            config.hidden_size, config.vocab_size, config.saturation_head_size, nn.Linear
        )
        (self.lm_head,) = head.values()
        self.post_init()


AutoConfig.register(MODEL_TYPE, SaturationNeoXConfig, exist_ok=True)
AutoModelForCausalLM.register(SaturationNeoXConfig, SaturationNeoXForCausalLM, exist_ok=True)
