"""MERT v1 (Li et al. 2024, ``m-a-p/MERT-v1-95M`` and ``-330M``) as a subclass of ``transformers.HubertModel``.

MERT's hub repositories ship their own modelling code (``trust_remote_code``), which breaks on transformers 4.48
and later (transformers issue 36134), and which would run whatever the repository holds at load time. MARBLE v2
therefore loads the weights into a ``HubertModel`` subclass of its own (``marble/encoders/MERT/``); this is ours.

What MERT v1 adds to HuBERT, and what this class does with it:

- ``deepnorm``: residual branches scaled by ``(2 L) ** 0.25`` (post-layer-norm); applied here.
- ``attention_relax``: the attention logits are divided by it, shifted by their maximum and multiplied back
  before the softmax. That equals the plain softmax (softmax is shift-invariant); it only keeps float16 from
  overflowing, so in float32 the plain attention gives the same numbers.
- ``feature_extractor_cqt`` (a CQT beside the convolutional features): no released v1 model uses it; refused.
- ``conv_pos_batch_norm``: absent from MERT's configs, where newer transformers would read a default; off.

The weights' names are HuBERT's, so ``from_pretrained`` loads MERT's checkpoints as they are.
"""
from __future__ import annotations

import math

import torch
from transformers import HubertConfig, HubertModel
from transformers.models.hubert.modeling_hubert import HubertEncoderLayer

from genre.runtime.errors import ConfigError


class MERTConfig(HubertConfig):
    """HuBERT's configuration with MERT v1's keys (``config.json`` of the hub repositories)."""

    model_type = "mert_model"

    def __init__(self, feature_extractor_cqt: bool = False, feature_extractor_cqt_bins: int = 336,
                 deepnorm: bool = False, attention_relax: float = -1.0, sample_rate: int = 24000, **kwargs):
        kwargs.pop("auto_map", None)   # the hub's remote code, never run here
        super().__init__(**kwargs)
        self.feature_extractor_cqt = feature_extractor_cqt
        self.feature_extractor_cqt_bins = feature_extractor_cqt_bins
        self.deepnorm = deepnorm
        self.attention_relax = attention_relax
        self.sample_rate = sample_rate
        self.conv_pos_batch_norm = False   # MERT's positional convolution has no batch norm


class DeepNormEncoderLayer(HubertEncoderLayer):
    """A HuBERT encoder layer (post-layer-norm) whose residual inputs are scaled by ``alpha`` (DeepNet)."""

    def __init__(self, config: MERTConfig):
        super().__init__(config)
        self.residual_alpha = math.pow(2.0 * config.num_hidden_layers, 0.25)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        residual = hidden_states
        hidden_states, _ = self.attention(hidden_states, attention_mask=attention_mask, **kwargs)
        hidden_states = self.layer_norm(residual * self.residual_alpha + self.dropout(hidden_states))
        hidden_states = hidden_states * self.residual_alpha + self.feed_forward(hidden_states)
        return self.final_layer_norm(hidden_states)


class MERTModel(HubertModel):
    """``HubertModel`` with MERT v1's configuration: ``output_hidden_states=True`` gives the convolutional
    features' projection and each transformer layer (13 for the 95M model, 25 for the 330M one)."""

    config_class = MERTConfig

    def __init__(self, config: MERTConfig):
        if getattr(config, "feature_extractor_cqt", False):
            raise ConfigError("this MERT checkpoint adds CQT features (feature_extractor_cqt=true), which no "
                              "released MERT v1 model does and genre does not build; use m-a-p/MERT-v1-95M or -330M")
        super().__init__(config)
        if getattr(config, "deepnorm", False):
            if config.do_stable_layer_norm:
                raise ConfigError("MERT with deepnorm needs post-layer-norm (do_stable_layer_norm=false)")
            self.encoder.layers = torch.nn.ModuleList(DeepNormEncoderLayer(config)
                                                      for _ in range(config.num_hidden_layers))
            self.post_init()
