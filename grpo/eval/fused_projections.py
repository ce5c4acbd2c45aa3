"""One matrix product for each layer's query/key/value projections and one for its gate/up projections, in models
that only decode (``grpo eval``'s merged model, the rollouts' merged copy).

Why: at batch 64 a SmolLM2-135M decode step is about 500 small kernels on an H200, each a few microseconds, so the
step costs what its kernels count, not what its weights weigh. Three projections of one input are three GEMM
launches; one product with the three weights stacked is one. One decode step at batch 64 took 1.72 ms with
both fusions and 2.05 ms without (407 kernels against 497; ``scripts/diag_decode_step.py``, docs/benchmarks.md).
transformers 5.x has no fused layout for Llama or Qwen2, and inductor's own concatenation of linears is a
``freezing`` pass, whose compilation of this model did not finish in 10 minutes on the H200.

How: the stacked weight (and bias) is one tensor, registered on the attention or MLP module as a non-persistent
buffer, and each projection's own parameter becomes a view into it (``param.data``: the same ``Parameter`` object,
so whoever holds it, like :class:`grpo.train.merged_copy.MergedCopy`'s refresh, writes into the stacked weight).
The module's ``forward`` is replaced on the instance by the class's own computation with the one product: the code
of transformers' ``LlamaAttention`` / ``Qwen2Attention`` (5.x) and of their MLPs, for exactly those classes. Nothing
else changes: state dicts, parameter names and values, the other modules.

When it does not apply, nothing is changed and :func:`fuse_projections` says why: a class not listed, projections that
are not plain frozen ``nn.Linear`` layers of one dtype and device (a LoRA layer, a trainable weight: its gradient
would go to the buffer, not the parameter), hooks on them (they would be skipped), or ZeRO-3's partitioned
parameters, or a forward already set on the instance by some other patch. After fusing, each fused module is
given the inputs it saw in one unfused forward of a few tokens, and its output compared with the unfused one; if
any disagrees (a transformers version whose attention computes differently), every module is put back and the
reason is returned.

What fusing cannot see by itself: moving or casting the model (``.to``, ``deepcopy``) gives the parameters new
storage apart from the stacked buffers, and wrapping a projection in an adapter afterwards bypasses the adapter;
either would decode wrongly. Whoever owns the model calls :func:`fuse_projections` again after such a change: it
fuses the stale modules again or, for a model that no longer qualifies, undoes the fusion
(:class:`grpo.train.rollout.StaticLoopRollouts` calls it before every rollout).
"""

from __future__ import annotations

import functools
from types import MethodType

import torch
from torch import nn
from torch.nn import functional

QKV = ("q_proj", "k_proj", "v_proj")
GATE_UP = ("gate_proj", "up_proj")


def tolerance(dtype: torch.dtype) -> float:
    """How far (relative to its norm) a fused module's output may be from its own forward's on the same input: a few
    rounding steps of the dtype (bf16 rounds to 2**-8 per entry; float32 to 2**-24, though a product of another
    shape sums in another order), where a wrongly wired product is off by the order of the output itself."""
    return max(4 * torch.finfo(dtype).eps, 1e-4)


def _attention_forward(self, hidden_states, position_embeddings=None, attention_mask=None, past_key_values=None,
                       **kwargs):
    """``LlamaAttention.forward`` / ``Qwen2Attention.forward`` (transformers 5.x) with q, k and v from one product."""
    from transformers.models.llama.modeling_llama import ALL_ATTENTION_FUNCTIONS, apply_rotary_pos_emb, \
        eager_attention_forward

    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.head_dim)
    projected = functional.linear(hidden_states, self.fused_qkv_weight, self.fused_qkv_bias)
    query, key, value = (t.view(hidden_shape).transpose(1, 2) for t in projected.split(self.fused_sizes, dim=-1))
    cos, sin = position_embeddings
    query, key = apply_rotary_pos_emb(query, key, cos, sin)
    if past_key_values is not None:
        key, value = past_key_values.update(key, value, self.layer_idx)
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
    if hasattr(self, "sliding_window"):  # Qwen2Attention passes its window; LlamaAttention has none
        kwargs["sliding_window"] = self.sliding_window
    output, weights = attend(self, query, key, value, attention_mask,
                             dropout=0.0 if not self.training else self.attention_dropout, scaling=self.scaling,
                             **kwargs)
    return self.o_proj(output.reshape(*input_shape, -1).contiguous()), weights


def _mlp_forward(self, x):
    """``LlamaMLP.forward`` / ``Qwen2MLP.forward`` with gate and up from one product."""
    gate, up = functional.linear(x, self.fused_gate_up_weight, self.fused_gate_up_bias).chunk(2, dim=-1)
    return self.down_proj(self.act_fn(gate) * up)


@functools.cache
def _supported() -> dict[type, tuple[tuple[str, ...], str, object]]:
    """Module class -> (its projections to stack, the buffers' prefix, the fused forward); built once (the rollouts
    check the fusion before every rollout)."""
    from transformers.models.llama.modeling_llama import LlamaAttention, LlamaMLP
    from transformers.models.qwen2.modeling_qwen2 import Qwen2Attention, Qwen2MLP

    return {LlamaAttention: (QKV, "fused_qkv", _attention_forward),
            Qwen2Attention: (QKV, "fused_qkv", _attention_forward),
            LlamaMLP: (GATE_UP, "fused_gate_up", _mlp_forward),
            Qwen2MLP: (GATE_UP, "fused_gate_up", _mlp_forward)}


def _fused_here(module: nn.Module) -> bool:
    """Whether ``module``'s instance forward is one this module set."""
    forward = vars(module).get("forward")
    return getattr(forward, "__func__", None) in {entry[2] for entry in _supported().values()}


def is_fused(model) -> bool:
    """Whether any module of ``model`` computes with fused projections."""
    return any(_fused_here(module) for module in model.modules())


def _unfusable_reason(name: str, module: nn.Module, projections: tuple[str, ...]) -> str | None:
    layers = [getattr(module, p, None) for p in projections]
    if any(type(layer) is not nn.Linear for layer in layers):
        return f"{name}'s projections are not all plain nn.Linear layers (a LoRA layer, a quantized one)"
    if ("forward" in vars(module) and not _fused_here(module)) or any("forward" in vars(layer) for layer in layers):
        return f"{name} or its projections have a forward set on the instance (another patch), which fusing would skip"
    weights = [layer.weight for layer in layers]
    if any(w.requires_grad for w in weights):
        return f"{name}'s projection weights are trainable (their gradients would go to the stacked copy)"
    if len({(w.dtype, w.device) for w in weights}) != 1 or len({w.shape[1] for w in weights}) != 1:
        return f"{name}'s projections differ in dtype, device or input size"
    if len({layer.bias is None for layer in layers}) != 1:
        return f"{name}'s projections differ in having a bias"
    if any(m._forward_hooks or m._forward_pre_hooks for m in (module, *layers)):
        return f"{name} or its projections have forward hooks, which the one product would skip"
    if any(hasattr(w, "ds_id") for w in weights):
        return "DeepSpeed ZeRO-3 partitions the parameters"
    return None


def _intact(module: nn.Module, projections: tuple[str, ...], prefix: str) -> bool:
    """Whether ``module`` is fused and every projection's parameters still view its stacked buffers."""
    stacked = getattr(module, f"{prefix}_weight", None)
    if stacked is None or not _fused_here(module):
        return False
    for kind in ("weight", "bias"):
        whole = getattr(module, f"{prefix}_{kind}")
        if whole is None:
            continue
        offset = 0
        for projection in projections:
            part = getattr(getattr(module, projection), kind)
            if part.data_ptr() != whole[offset:].data_ptr():
                return False
            offset += part.shape[0]
    return True


def _stack(module: nn.Module, projections: tuple[str, ...], prefix: str, forward) -> None:
    layers = [getattr(module, p) for p in projections]
    for kind in ("weight", "bias"):
        parts = [getattr(layer, kind) for layer in layers]
        whole = None if parts[0] is None else torch.cat([p.detach() for p in parts])
        module.register_buffer(f"{prefix}_{kind}", whole, persistent=False)
        offset = 0
        for part in parts if whole is not None else ():
            part.data = whole[offset:offset + part.shape[0]]
            offset += part.shape[0]
    module.fused_sizes = [layer.out_features for layer in layers]  # where the attention's forward splits
    module.forward = MethodType(forward, module)


def _unstack(module: nn.Module, prefix: str) -> None:
    """The class's own forward back (a forward set by anything else stays); the parameters keep their (viewing)
    storage, which holds the same values."""
    if _fused_here(module):
        del module.forward
    for kind in ("weight", "bias"):
        module._buffers.pop(f"{prefix}_{kind}", None)
    vars(module).pop("fused_sizes", None)


def _first(output) -> torch.Tensor:
    return (output[0] if isinstance(output, tuple) else output).float()


def _probe(model, modules: list[nn.Module]) -> list[tuple[tuple, dict, torch.Tensor]]:
    """Each module's inputs and output in one forward of a few tokens through ``model``."""
    index = {id(m): i for i, m in enumerate(modules)}
    slots: list = [None] * len(modules)

    def keep(module, args, kwargs, output):
        slots[index[id(module)]] = (args, kwargs, _first(output))

    handles = [m.register_forward_hook(keep, with_kwargs=True) for m in modules]
    try:
        device = next(model.parameters()).device
        vocab = model.get_input_embeddings().weight.shape[0]
        model(input_ids=torch.arange(8, device=device).remainder(vocab).unsqueeze(0), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return slots


@torch.no_grad()
def fuse_projections(model) -> str | None:
    """Fuse every supported attention's and MLP's projections of ``model`` (a transformers causal LM); None when
    they are fused and compute as the model's own, else why nothing is (and nothing is left fused).

    Call it again after anything that changes the projections (moving or casting the model, wrapping a layer in an
    adapter): modules whose views are intact are left as they are (a walk over the modules, no forward), those whose
    parameters got new storage are fused again from their current values, and a model that no longer qualifies is
    unfused entirely."""
    supported = _supported()
    targets = [(name, module, *supported[type(module)]) for name, module in model.named_modules()
               if type(module) in supported]
    if not targets:
        return "no Llama or Qwen2 attention or MLP modules"
    for name, module, projections, _, _ in targets:
        reason = _unfusable_reason(name, module, projections)
        if reason is not None:
            unfuse_projections(model)
            return reason
    stale = [t for t in targets if not _intact(t[1], t[2], t[3])]
    if not stale:
        return None
    for _, module, _, prefix, _ in stale:
        _unstack(module, prefix)
    probed = _probe(model, [t[1] for t in stale])
    for _, module, projections, prefix, forward in stale:
        _stack(module, projections, prefix, forward)
    for (name, module, projections, _, _), (args, kwargs, expected) in zip(stale, probed):
        error = float((_first(module(*args, **kwargs)) - expected).norm() / expected.norm().clamp_min(1e-12))
        limit = tolerance(getattr(module, projections[0]).weight.dtype)
        if not error <= limit:
            unfuse_projections(model)
            return (f"{name} computes differently fused: its output is {error:.3g} (relative) away from its own "
                    f"forward's on the same input, over {limit:.3g}")
    return None


def unfuse_projections(model) -> None:
    """Every module :func:`fuse_projections` fused computes with its own projections again."""
    supported = _supported()
    for module in model.modules():
        if type(module) in supported:
            _unstack(module, supported[type(module)][1])
