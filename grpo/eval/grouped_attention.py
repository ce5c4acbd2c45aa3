"""Grouped-query attention for one-token decode steps without repeating the keys and values.

Why: transformers' SDPA attention (5.x, ``integrations/sdpa_attention.py``) copies every key and value head
``num_key_value_groups`` times (``repeat_kv``) whenever it is given an attention mask, and the static decode loop
always gives one (left padding, unwritten cache slots). For SmolLM2 (9 query heads, 3 key/value heads) that writes
the layer's whole static cache of keys and of values out again, three times the size, in every layer of every
decode step: a quarter of the loop's time per step at batch 64 on an H200 (docs/benchmarks.md). torch's own ``enable_gqa`` is used by transformers only
without a mask, since the masked kernels fall back to the math path.

How: with one query token, the ``groups`` query heads that share a key/value head can be read as ``groups`` query
*positions* of that key/value head: all of them attend the same keys under the same padding mask, and no causal
structure separates them. So the query is folded to batch x kv_heads x groups x head_dim and passed to
``scaled_dot_product_attention`` with the keys and values as the cache holds them. Same kernels, same float32
softmax inside them, no copy; head ``kv * groups + g`` comes back where ``repeat_kv`` would have put it.

On CUDA, where Triton can take the call (:func:`grpo.eval.split_kv_attention.supports`), the decode step goes to
:mod:`grpo.eval.split_kv_attention` instead: the same grouped reading, in a kernel that splits each head's cache
across thread blocks and loads only the slots the mask keeps (:data:`SPLIT_KV_NAME`, the default of
:func:`decode_attention`).

Every other call (prefill and training forwards with more than one query token, dropout, position biases, a mask
per head, models without grouped heads) goes to transformers' SDPA attention unchanged. The implementation is
registered under :data:`NAME`, with SDPA's mask, and switched on only around the static loop's decode steps
(:func:`decode_attention`), so the model's own setting is what every other forward sees. Only models that attend
with SDPA are switched: a model loaded with eager attention keeps it, and its decode steps their eager numerics.
The switch writes the model's config, so one model must not decode in two threads at once; each setting is its
own compiled variant of the decode step (dynamo guards on it), never a wrong reuse of the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from grpo.eval import split_kv_attention
from grpo.eval.kvcache import shape_of, text_config

NAME = "grpo_grouped_decode_sdpa"
SPLIT_KV_NAME = "grpo_split_kv_decode"
SWITCHABLE = frozenset({"sdpa"})  # the implementation whose decode steps this replaces


def grouped_decode_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                             **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: query batch x heads x q_len x dim, key and value batch x kv_heads
    x kv_len x dim, output batch x q_len x heads x dim."""
    groups = getattr(module, "num_key_value_groups", 1)
    batch, heads, query_length, head_dim = query.shape
    per_head_mask = attention_mask is not None and attention_mask.ndim == 4 and attention_mask.shape[1] != 1
    if query_length != 1 or groups == 1 or dropout or per_head_mask or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    folded = query.reshape(batch, heads // groups, groups, head_dim)
    output = torch.nn.functional.scaled_dot_product_attention(folded, key, value, attn_mask=attention_mask,
                                                              scale=scaling)
    return output.reshape(batch, 1, heads, head_dim), None


def split_kv_decode_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                              attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                              **kwargs) -> tuple[torch.Tensor, None]:
    """:func:`grouped_decode_attention`, with the one-token steps that :mod:`grpo.eval.split_kv_attention` supports
    on CUDA computed by its split-cache kernel."""
    if (query.device.type == "cuda" and not dropout and kwargs.get("position_bias") is None
            and split_kv_attention.supports(query, key, value, attention_mask)):
        scale = query.shape[-1] ** -0.5 if scaling is None else scaling
        return split_kv_attention.decode_attention(query, key, value, attention_mask, scale), None
    return grouped_decode_attention(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                    **kwargs)


for _name, _function in ((NAME, grouped_decode_attention), (SPLIT_KV_NAME, split_kv_decode_attention)):
    AttentionInterface.register(_name, _function)
    AttentionMaskInterface.register(_name, sdpa_mask)


def applies_to(model) -> bool:
    """Whether switching ``model`` to the grouped decode attention changes anything: it attends with SDPA, and its
    query heads share key/value heads."""
    return _switchable(text_config(model.config))


def _switchable(config) -> bool:
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return config._attn_implementation in SWITCHABLE and heads is not None and heads > kv_heads


def split_kv_refusal(model) -> str | None:
    """Why :mod:`grpo.eval.split_kv_attention`'s kernels refuse ``model``'s decode steps, which they would take (a
    CUDA model switched to the grouped attention): they do not run, or do not agree with SDPA, on its GPU and
    dtype. None when they take them, and for models whose steps never reach them (off CUDA, not switched)."""
    config = text_config(model.config)
    parameter = next(model.parameters())
    if not _switchable(config) or parameter.device.type != "cuda":
        return None
    cache = shape_of(config)
    dtype = getattr(model, "dtype", parameter.dtype)
    return split_kv_attention.unusable_reason(parameter.device, dtype, cache.head_dim,
                                              config.num_attention_heads // cache.kv_heads)


@contextmanager
def decode_attention(model, enabled: bool = True, split_kv: bool = True) -> Iterator[None]:
    """``model`` attends with :func:`split_kv_decode_attention` (``split_kv``) or :func:`grouped_decode_attention`
    inside the block (when ``enabled`` and it :func:`applies_to` the model), with its own implementation again
    afterwards."""
    config = text_config(model.config)
    if not (enabled and _switchable(config)):
        yield
        return
    # The internal attribute, as transformers' own set_attn_implementation writes it: the property's setter would
    # also rewrite sub-configs, and restoring through it could flatten settings of their own.
    previous = config._attn_implementation_internal
    config._attn_implementation_internal = SPLIT_KV_NAME if split_kv else NAME
    try:
        yield
    finally:
        config._attn_implementation_internal = previous
