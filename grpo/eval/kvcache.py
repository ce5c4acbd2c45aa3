"""KV-cache memory arithmetic and the preflight that refuses a rollout plan that cannot fit.

Per token, a decoder caches one key and one value vector per layer and KV head:
``layers x kv_heads x head_dim x 2 x bytes``. GQA and MQA shrink ``kv_heads`` below the attention heads (read
from ``num_key_value_heads``); MLA-style models (DeepSeek-V2/V3: ``kv_lora_rank``) cache one compressed latent of
``kv_lora_rank + qk_rope_head_dim`` values per layer instead. A GRPO step holds ``prompts x num_generations``
sequences of ``prompt + completion`` tokens at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1, "int8": 1}


@dataclass(frozen=True)
class KVShape:
    layers: int
    kv_heads: int
    head_dim: int
    latent_dim: int | None = None  # MLA: cached values per layer per token (replaces 2 x kv_heads x head_dim)

    @property
    def values_per_token(self) -> int:
        if self.latent_dim is not None:
            return self.layers * self.latent_dim
        return self.layers * self.kv_heads * self.head_dim * 2


def text_config(config: Any) -> Any:
    """The language model's part of a transformers config (itself for text-only models)."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def shape_of(config: Any) -> KVShape:
    """The cache shape of a transformers config (or any object with the same attribute names)."""
    text = text_config(config)
    layers = text.num_hidden_layers
    heads = text.num_attention_heads
    kv_lora_rank = getattr(text, "kv_lora_rank", None)
    if kv_lora_rank:
        return KVShape(layers, 1, 0, latent_dim=kv_lora_rank + getattr(text, "qk_rope_head_dim", 0))
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return KVShape(layers, kv_heads, head_dim)


def bytes_per_token(config: Any, dtype: str = "bfloat16") -> int:
    return shape_of(config).values_per_token * DTYPE_BYTES[dtype]


def rollout_bytes(config: Any, sequences: int, prompt_tokens: int, completion_tokens: int,
                  dtype: str = "bfloat16") -> int:
    """KV cache of ``sequences`` sequences (prompts x num_generations) at full prompt + completion length."""
    return sequences * (prompt_tokens + completion_tokens) * bytes_per_token(config, dtype)


def free_memory_bytes(device: str) -> int:
    """Free memory where the cache will live: that GPU's free memory (``cuda:1`` under accelerate launch is not
    the current GPU of every caller), or the host's available memory."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OSError("cannot read available memory from /proc/meminfo")


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Plan:
    need: int
    free: int
    sequences: int
    tokens_per_sequence: int

    @property
    def fits(self) -> bool:
        return self.need <= self.free

    def message(self) -> str:
        return (f"KV cache for {self.sequences} sequences x {self.tokens_per_sequence} tokens: {human(self.need)} "
                f"(free: {human(self.free)})")

    def largest_batch(self) -> int:
        per_sequence = self.need // max(1, self.sequences)
        return max(0, self.free // max(1, per_sequence))


def plan(config: Any, sequences: int, prompt_tokens: int, completion_tokens: int, dtype: str,
         device: str) -> Plan:
    need = rollout_bytes(config, sequences, prompt_tokens, completion_tokens, dtype)
    return Plan(need=need, free=free_memory_bytes(device), sequences=sequences,
                tokens_per_sequence=prompt_tokens + completion_tokens)


def auto_batch_size(config: Any, tokens_per_sequence: int, dtype: str, device: str, share: float = 0.5) -> int:
    """The largest batch whose KV cache takes at most ``share`` of free memory, capped where more batching stops
    paying off (32 sequences on a CPU, 256 on a GPU). At least 1."""
    per_sequence = tokens_per_sequence * bytes_per_token(config, dtype)
    fitting = int(free_memory_bytes(device) * share) // max(1, per_sequence)
    return max(1, min(fitting, 256 if device.startswith("cuda") else 32))
