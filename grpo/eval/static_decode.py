"""A fixed-shape decode loop over a static KV cache: one step function per token, no host sync inside it.

Why: profiling ``model.generate`` with the static cache on a GPU put the bound on the Python work around each
decode step (logits processors, stopping criteria, bookkeeping), not on the forward. Here every step is the same
function over tensors of one shape (current tokens, position ids, a cache-length attention mask that the step fills
in place, a ``finished`` flag per row, the output buffer), so on CUDA it can be compiled once with
``torch.compile(mode="reduce-overhead")``, which replays it as a CUDA graph: one launch per token instead of
hundreds. The host asks "all rows finished?" only every ``sync_every`` tokens, and reads the answer one period later
(:meth:`StaticDecoder.__call__` says why); rows that finished earlier are fed pad tokens meanwhile, and everything
after a row's eos is pad, as ``model.generate`` leaves it.

How the step runs (``runner``, :data:`RUNNERS`):
- ``compiled`` (the default on CUDA): ``torch.compile`` fuses the step's elementwise work into few kernels and
  records the CUDA graph after its own warm-up runs, falling back to running the step without a graph (rather than
  replaying a wrong one) when something in it cannot be captured. The fastest step (1.2 ms at batch 64 on an
  H200), but compiling it costs 38-49 s in a fresh process and 8-10 s even from inductor's cache
  (docs/benchmarks.md).
- ``graph`` (CUDA only): the step as PyTorch runs it eagerly, captured by hand into a ``torch.cuda.CUDAGraph`` after
  the first prefill (:meth:`StaticDecoder._capture`): nothing compiles, so a first call of 256 tokens at batch 64,
  capture included, takes 1.3 s, and each token is still one graph launch; its kernels are the unfused eager ones
  (3.2 ms a step at batch 64). For work too short to repay compiling: evaluations
  (:data:`grpo.eval.generation.EVAL_RUNNER`). A replay repeats the captured kernels
  with the captured addresses and nothing of the Python that launched them, so the capture is valid only because
  every value that changes between steps lives on the device: the buffers below, updated in place, and
  transformers' ``StaticCache``, which keeps its tensors for the decoder's life (reset in place) and counts its
  write position in a device tensor (``StaticLayer.cumulative_length``, also the mask's offset). What would break
  it, and is refused: sliding-window layers (their position is a Python int; :func:`unsupported_reason`) and
  rotary embeddings that read the positions on the host (:func:`graph_unsupported_reason`). The weights are read
  where they were at capture: a model whose parameters move (ZeRO-3 gathers them anew for each evaluation) is
  captured again (:meth:`StaticDecoder.prefill`).
- ``eager``: no graph (the default off CUDA).

Sampling draws its randomness from the caller's ``torch.Generator`` *outside* the step (one small kernel launch, no
sync): one exponential number per row and vocabulary entry, and the step picks the token that arrives first in an
"exponential race" (the argmax of probability / noise, which is token j with probability p_j). The compiled graph
needs no generator state, the tokens drawn do not depend on ``sync_every``, and the step needs no cumulative sum
over the vocabulary: inductor (torch 2.11, H200) failed to generate the kernel for a cumsum over 49,152 entries
(docs/benchmarks.md). Top-p still needs the cumulative mass of the sorted probabilities; it is summed in blocks of
:data:`CUMSUM_BLOCK`, each scan short enough not to be split.

Attention: each decode step reads grouped-query keys and values where the cache holds them
(:mod:`grpo.eval.grouped_attention`) instead of transformers' repeated copies of them, on CUDA through a kernel
that splits the cache across thread blocks (:mod:`grpo.eval.split_kv_attention`); prefill is the model's own.

Scope: Llama and Qwen2 families (their forward takes ``past_key_values``, ``position_ids``, ``attention_mask``,
``logits_to_keep``; transformers 5.x dropped ``cache_position``, the static cache counts its own write position on
the device), full attention only, SDPA or eager attention, greedy or temperature / top-k / top-p sampling, and
generation configs that ask for nothing more (no repetition penalty, minimum length, ...), and transformers' own
forwards (not those Unsloth puts on its classes). :func:`unsupported_reason`
decides by those explicit checks; :func:`grpo.eval.generation.generate` falls back to ``model.generate`` when it
returns a reason. LoRA models from ``peft.get_peft_model`` pass the arguments through to the base model and work.

Wired into evaluation (``SamplingParams.decoder``, ``eval.decoder``) and, opt-in, into TRL's GRPO rollouts
(``train.rollout_decoder``, :func:`grpo.train.rollout.install_static_loop`); tested on a CPU (eager) and on an
H200 (compiled and graph, tests/gpu/), measured in docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, StaticCache

from grpo.eval.grouped_attention import decode_attention, split_kv_refusal
from grpo.eval.kvcache import text_config

SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2"})
RUNNERS = ("compiled", "graph", "eager")  # how the step runs: module docstring
# rotary-embedding types whose forward reads max(position_ids) on the host (transformers' dynamic_rope_update)
HOST_POSITION_ROPE = ("dynamic", "longrope")
# eager steps before the hand capture (Triton's and cuBLAS's first-call work must not be captured); one, because each
# writes one cache slot and output column past the prompt, and a decoder of 2 new tokens has room for only one
GRAPH_WARMUP_STEPS = 1
SYNC_EVERY = 8  # tokens between the host's "all rows finished?" questions (at most 2x this many steps after the last)
SUPPORTED_ATTENTION = frozenset({"sdpa", "eager"})
# Packages that replace transformers' forward methods for the whole process: Unsloth, when it loads a model, assigns
# its own forwards to transformers' Llama/Qwen2 classes (any model built afterwards has them too); they read positions
# on the host (``int(position_ids.max())``), which neither compiles nor captures (tests/gpu/test_gpu_paths.py)
FOREIGN_FORWARD_PACKAGES = ("unsloth",)
# Generation-config fields that add logits processing, stopping rules or other outputs this loop does not implement,
# each with the values at which ``model.generate`` does nothing for it (None, unset, always counts as such). A config
# that sets any of them otherwise (Qwen2.5-Instruct ships repetition_penalty 1.05, which ``model.generate`` applies
# even when greedy) is decoded by ``model.generate`` instead. The neutral values matter for a config as ``generate``
# resolves it (TRL's rollout config, filled from transformers' global defaults: repetition_penalty 1.0, ...).
UNSUPPORTED_GENERATION_SETTINGS: dict[str, tuple] = {
    "repetition_penalty": (1.0,), "encoder_repetition_penalty": (1.0,), "no_repeat_ngram_size": (0,),
    "min_length": (0,), "min_new_tokens": (0,), "bad_words_ids": (), "suppress_tokens": (),
    "begin_suppress_tokens": (), "forced_bos_token_id": (), "forced_eos_token_id": (), "sequence_bias": (),
    "min_p": (), "top_h": (), "typical_p": (1.0,), "epsilon_cutoff": (0.0,), "eta_cutoff": (0.0,),
    "exponential_decay_length_penalty": (), "remove_invalid_values": (False,), "renormalize_logits": (False,),
    "num_beams": (1,), "num_beam_groups": (1,), "diversity_penalty": (0.0,), "penalty_alpha": (),
    "dola_layers": (), "constraints": (), "force_words_ids": (), "guidance_scale": (1.0,),
    "watermarking_config": (), "stop_strings": (), "max_time": (), "token_healing": (False,),
    "prompt_lookup_num_tokens": (), "num_return_sequences": (1,), "return_dict_in_generate": (False,),
}


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: argmax when ``do_sample`` is False, else ``softmax(logits / temperature)``
    restricted to the ``top_k`` most likely tokens (0: all) and then to the nucleus of mass ``top_p``."""

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self):
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1 and self.top_k >= 0):
            raise ValueError(f"sampling needs temperature > 0, 0 < top_p <= 1 and top_k >= 0, got {self}")


def unsupported_reason(model, generation_config: GenerationConfig | None = None) -> str | None:
    """Why this loop cannot decode ``model`` exactly as ``model.generate`` would (None: it can), with
    ``generation_config`` (default: the model's own; a caller that passes ``generate`` a config of its own, as TRL's
    rollouts do, checks that config as ``generate`` resolves it)."""
    config = text_config(model.config)
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        return f"model type {config.model_type!r} is not one of {sorted(SUPPORTED_MODEL_TYPES)}"
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder models are not supported"
    layer_types = getattr(config, "layer_types", None) or []
    if getattr(config, "sliding_window", None) is not None or any(kind != "full_attention" for kind in layer_types):
        return "sliding-window (or other non-full) attention layers are not supported"
    attention = getattr(config, "_attn_implementation", None)
    if attention not in SUPPORTED_ATTENTION:
        return f"attention implementation {attention!r} is not one of {sorted(SUPPORTED_ATTENTION)}"
    foreign = foreign_forward(model)
    if foreign is not None:
        return f"{foreign}, which this loop cannot compile or capture"
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
        return "prompt-learning PEFT adapters (prefix or prompt tuning) change the cache and are not supported"
    if generation_config is None:
        generation_config = getattr(model, "generation_config", None) or GenerationConfig()
    changed = [name for name, neutral in UNSUPPORTED_GENERATION_SETTINGS.items()
               if getattr(generation_config, name, None) not in (None, *neutral)]
    if changed:
        return f"the generation config sets {', '.join(changed)}, which this loop does not implement"
    return None


def foreign_forward(model) -> str | None:
    """Which of ``model``'s modules runs a forward from one of :data:`FOREIGN_FORWARD_PACKAGES` (None: none), as
    "LlamaModel.forward comes from unsloth.models.llama"; a forward set on the instance counts as well as the class's."""
    for module in model.modules() if hasattr(model, "modules") else ():
        forward = vars(module).get("forward") or type(module).forward
        origin = getattr(forward, "__module__", None) or ""
        if origin.startswith(FOREIGN_FORWARD_PACKAGES):
            return f"{type(module).__name__}.forward comes from {origin}"
    return None


def graph_unsupported_reason(model) -> str | None:
    """Why the ``graph`` runner cannot capture ``model``'s decode step (None: it can): what a replay would freeze
    beyond :func:`unsupported_reason`'s checks."""
    rope = getattr(text_config(model.config), "rope_parameters", None) or {}
    rope_type = rope.get("rope_type", "default") if isinstance(rope, dict) else "default"
    if rope_type in HOST_POSITION_ROPE:
        return (f"rope_type {rope_type!r} reads the positions on the host in every forward, which a captured graph "
                "would freeze")
    return None


CUMSUM_BLOCK = 256


def blocked_cumsum(values: torch.Tensor, block: int = CUMSUM_BLOCK) -> torch.Tensor:
    """``values.cumsum(-1)`` of a batch x width tensor as two short scans (within blocks of ``block`` entries, then
    over the block totals): the same sums, in a form inductor compiles for a vocabulary-wide row."""
    batch, width = values.shape
    padded = torch.nn.functional.pad(values, (0, -width % block)).reshape(batch, -1, block)
    within = padded.cumsum(dim=-1)
    totals = within[..., -1]
    before = totals.cumsum(dim=-1) - totals
    return (within + before[..., None]).reshape(batch, -1)[:, :width]


def next_tokens(logits: torch.Tensor, noise: torch.Tensor | None, sampling: Sampling) -> torch.Tensor:
    """The chosen token per row of ``logits`` (batch x vocab), in float32 as ``model.generate`` chooses.

    Sampling takes ``noise``, batch x vocab numbers drawn from Exp(1), and picks the argmax of probability / noise
    (the first arrival of independent exponential clocks of rates p_i is token j with probability p_j / sum p): in
    vocabulary order without filters, over the tokens sorted by probability with top-k / top-p. Top-k keeps every
    token tied with the k-th, as transformers does. A token of
    probability zero is never picked (its ratio is 0 and the most likely token's is positive). Top-p keeps the most
    likely tokens up to and including the one that makes their mass reach ``top_p`` (transformers'
    ``TopPLogitsWarper``; the most likely token always stays).
    """
    scores = logits.float()
    if not sampling.do_sample:
        return scores.argmax(dim=-1)
    scores = scores / sampling.temperature
    order = None
    if sampling.top_k or sampling.top_p < 1:
        scores, order = scores.sort(dim=-1, descending=True)
        if sampling.top_k:  # every token tied with the k-th stays, as transformers' TopKLogitsWarper keeps them
            kth = scores[:, min(sampling.top_k, scores.shape[-1]) - 1 :][:, :1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if sampling.top_p < 1:
        mass_before = blocked_cumsum(probs) - probs  # mass of the strictly more likely tokens
        probs = probs.masked_fill(mass_before >= sampling.top_p, 0.0)
    clocks = noise.clamp_min(torch.finfo(torch.float32).tiny)  # Exp(1) can draw 0
    index = (probs / clocks).argmax(dim=-1, keepdim=True)
    return (index if order is None else order.gather(-1, index)).squeeze(-1)


@dataclass
class _Buffers:
    """Every tensor the step reads or writes; one shape for the decoder's life, updated in place."""

    tokens: torch.Tensor  # batch x 1: the last chosen token, the next step's input
    positions: torch.Tensor  # batch x 1: its position id (real tokens before it, left padding excluded)
    mask: torch.Tensor  # batch x max_cache_len: 1 where the cache holds a real token
    write: torch.Tensor  # (1,): the cache position: the slot ``tokens`` goes to in the next step
    column: torch.Tensor  # (1,): the output column of the next chosen token
    finished: torch.Tensor  # batch: the row has chosen an eos
    lengths: torch.Tensor  # batch: tokens generated up to and including the eos
    out: torch.Tensor  # batch x max_new_tokens: the chosen tokens, pad after eos
    noise: torch.Tensor  # batch x vocab (sampling) or batch x 0: this step's Exp(1) draws
    eos: torch.Tensor  # the eos ids
    logps: torch.Tensor  # batch x max_new_tokens (recorded) or batch x 0: each chosen token's log-probability


def chosen_logprobs(logits: torch.Tensor, chosen: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """Each row's log-probability of its chosen token under ``softmax(logits / temperature)`` in float32 (temperature
    1 when greedy): what TRL's training forward computes for the same token (it divides by the same temperature and
    applies no top-k / top-p), so the two differ only by the numerics of the models that produced the logits."""
    scale = sampling.temperature if sampling.do_sample else 1.0
    return torch.log_softmax(logits.float() / scale, dim=-1).gather(-1, chosen[:, None]).squeeze(-1)


def _choose(buffers: _Buffers, logits: torch.Tensor, sampling: Sampling, pad_id: int) -> None:
    """Choose every row's next token from ``logits`` (batch x vocab), record its log-probability when the buffers
    keep them (0 for rows already finished), and write it out."""
    chosen = next_tokens(logits, buffers.noise, sampling)
    if buffers.logps.shape[1]:  # a shape, fixed for the decoder's life: one branch per compiled graph
        logps = torch.where(buffers.finished, 0.0, chosen_logprobs(logits, chosen, sampling))
        buffers.logps.index_copy_(1, buffers.column, logps[:, None])
    _record(buffers, chosen, pad_id)


def _record(buffers: _Buffers, chosen: torch.Tensor, pad_id: int) -> None:
    """Write the chosen tokens (pad for finished rows) to the output and make them the next input."""
    chosen = torch.where(buffers.finished, pad_id, chosen)
    buffers.out.index_copy_(1, buffers.column, chosen[:, None])
    buffers.lengths.add_((~buffers.finished).long())
    buffers.finished.logical_or_(torch.isin(chosen, buffers.eos))
    buffers.tokens.copy_(chosen[:, None])
    buffers.column.add_(1)


def _decode_step(model, cache: StaticCache, buffers: _Buffers, sampling: Sampling, pad_id: int) -> None:
    """One token for every row: the function compiled (and graph-replayed) on CUDA. Reads and writes only the
    fixed-shape tensors of ``buffers`` and the cache, returns nothing and never syncs with the host."""
    buffers.mask.index_fill_(1, buffers.write, 1)
    logits = model(input_ids=buffers.tokens, attention_mask=buffers.mask, position_ids=buffers.positions,
                   past_key_values=cache, use_cache=True).logits[:, -1, :]
    _choose(buffers, logits, sampling, pad_id)
    buffers.positions.add_(1)
    buffers.write.add_(1)


_COMPILED_STEPS: dict[bool, object] = {}


def default_runner(device: torch.device) -> str:
    """The runner a decoder gets when none is asked for: ``compiled`` on CUDA, ``eager`` elsewhere."""
    return "compiled" if device.type == "cuda" else "eager"

_REPORTED_REFUSALS: set[str] = set()  # the split-KV refusals already printed


def _compiled_step(fullgraph: bool):
    """One compiled wrapper per ``fullgraph`` setting for the whole process, so decoders share dynamo's cache."""
    if fullgraph not in _COMPILED_STEPS:
        _COMPILED_STEPS[fullgraph] = torch.compile(_decode_step, mode="reduce-overhead", fullgraph=fullgraph)
    return _COMPILED_STEPS[fullgraph]


class StaticDecoder:
    """Decodes left-padded batches of one model with a static cache of ``max_cache_len`` slots.

    Keep one decoder for all batches of a run: the cache and buffers are allocated for the first batch and reused
    (reset) while the batch size stays the same, so the compiled step sees the same shapes and addresses every time.
    ``max_cache_len`` must hold the longest padded prompt plus ``max_new_tokens``; give the same value for every batch
    (:func:`grpo.eval.generation.static_cache_len`) so that one shape serves them all.

    ``runner``: one of :data:`RUNNERS` (module docstring); None: ``compiled`` on CUDA, ``eager`` elsewhere.
    ``fullgraph`` (``compiled``) makes a graph break an error instead of a silent split (the CUDA graph then covers
    less of the step). ``generation_config``: the
    settings the caller decodes with, when not the model's own (checked by :func:`unsupported_reason`).
    ``grouped_attention``: decode steps read grouped-query keys and values where the cache holds them
    (:mod:`grpo.eval.grouped_attention`) instead of transformers' repeated copies; turned off only to measure the
    copies (``grpo bench kv --loop-repeated-kv``). ``split_kv_attention``: those reads go to
    :mod:`grpo.eval.split_kv_attention`'s kernel on CUDA where it supports the call (off: SDPA's kernels, to
    measure what the kernel saves, ``grpo bench kv --no-split-kv``); turned off, saying why, when the kernels do not
    run or agree with SDPA on the model's GPU and dtype (:func:`grpo.eval.grouped_attention.split_kv_refusal`). ``logprobs``: also record each chosen token's log-probability
    (:func:`chosen_logprobs`, read with :meth:`result_logprobs`): the sampler's side of an off-policy correction
    (``train.rollout_off_policy_correction``).
    """

    def __init__(self, model, max_cache_len: int, max_new_tokens: int, eos_ids: Iterable[int], pad_id: int,
                 sampling: Sampling = Sampling(), sync_every: int = SYNC_EVERY, runner: str | None = None,
                 fullgraph: bool = False, generation_config: GenerationConfig | None = None,
                 grouped_attention: bool = True, logprobs: bool = False, split_kv_attention: bool = True):
        reason = unsupported_reason(model, generation_config)
        if reason is not None:
            raise ValueError(f"static decode loop: {reason}; use model.generate")
        if sync_every < 1 or max_new_tokens < 1:
            raise ValueError(f"sync_every ({sync_every}) and max_new_tokens ({max_new_tokens}) must be at least 1")
        self.model, self.max_cache_len, self.max_new_tokens = model, max_cache_len, max_new_tokens
        self.eos_ids, self.pad_id = sorted(set(eos_ids)), pad_id
        self.sampling, self.sync_every, self.grouped_attention = sampling, sync_every, grouped_attention
        self.logprobs = logprobs
        self.split_kv_attention = split_kv_attention and not (grouped_attention and self._split_kv_refused(model))
        self.device = next(model.parameters()).device
        head = model.get_output_embeddings()
        self._vocab_size = getattr(head, "out_features", None) or head.weight.shape[0]  # the logits' width
        self.runner = runner or default_runner(self.device)
        if self.runner not in RUNNERS:
            raise ValueError(f"runner {self.runner!r}: expected one of {', '.join(RUNNERS)}")
        if self.runner == "graph":
            reason = graph_unsupported_reason(model) or (None if self.device.type == "cuda" else "CUDA only")
            if reason is not None:
                raise ValueError(f"runner 'graph': {reason}")
        self._step = _compiled_step(fullgraph) if self.runner == "compiled" else _decode_step
        self._graph: torch.cuda.CUDAGraph | None = None  # the ``graph`` runner's capture, for the current buffers
        self._captured_weights: tuple[int, ...] = ()  # where the model's tensors were when it was captured
        self._cache: StaticCache | None = None
        self._buffers: _Buffers | None = None
        # where :meth:`ask_all_finished` copies the flag: pinned, so the copy is asynchronous
        self._finished_copy = torch.zeros((), dtype=torch.bool, pin_memory=self.device.type == "cuda")
        self._generator: torch.Generator | None = None

    @property
    def compiled(self) -> bool:
        return self.runner == "compiled"

    @property
    def fixed_shape(self) -> bool:
        """Whether a new batch size costs a compilation or a capture (callers pad a short last batch instead)."""
        return self.runner != "eager"

    @staticmethod
    def _split_kv_refused(model) -> bool:
        """Whether the split-KV kernels refuse this model's decode steps (on a GPU or Triton version they fail
        on): then the steps attend through SDPA, and the reason is printed the first time it comes up."""
        reason = split_kv_refusal(model)
        if reason is not None and reason not in _REPORTED_REFUSALS:  # once per process, not per decoder
            _REPORTED_REFUSALS.add(reason)
            print(f"[grpo] static decode loop: split-KV decode attention off ({reason}); SDPA decodes", flush=True)
        return reason is not None

    def serves(self, model, max_cache_len: int, max_new_tokens: int, eos_ids: Iterable[int], pad_id: int,
               sampling: Sampling, logprobs: bool = False) -> bool:
        """Whether this decoder can take calls with these settings as a new one would (its cache at least as long):
        reusing it keeps the compiled step's shapes and buffer addresses, so nothing compiles or records again."""
        return (self.model is model and self.max_cache_len >= max_cache_len  # (PEFT forwards lookups)
                and self.max_new_tokens == max_new_tokens and self.eos_ids == sorted(set(eos_ids))
                and self.pad_id == pad_id and self.sampling == sampling and self.logprobs == logprobs
                and self.device == next(model.parameters()).device)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generator: torch.Generator | None = None,
                 max_new_tokens: int | None = None) -> torch.Tensor:
        """The new tokens, batch x (the longest row's length up to and including its eos), pad after each eos;
        exactly what ``model.generate(...)[:, prompt_length:]`` returns for the same settings when greedy.

        ``generator`` (on the model's device) draws the sampling randomness; ``max_new_tokens`` may lower the
        decoder's limit for this call.

        Stopping: every ``sync_every`` tokens the host asks whether all rows have finished and reads the answer it
        asked for ``sync_every`` tokens earlier; once that says yes it stops (the steps since only wrote pad). Why
        the lag: reading the flag at once would wait until the GPU had run every step enqueued so far, and the GPU
        would then idle while the host enqueued the next one (0.5-1.0 ms a step on an H200 at batch 64, against
        the step's 1.2-1.4: docs/benchmarks.md). Waiting for an answer a period old leaves the steps enqueued since
        on the GPU's queue, so it keeps working while the host waits. Cost: up to ``2 * sync_every`` steps after
        the last row's eos instead of ``sync_every``. On a CPU the answer is there at once and the lag only costs
        those steps; one rule everywhere keeps where the loop stops the same on every device.
        """
        limit = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        if not 1 <= limit <= self.max_new_tokens:
            raise ValueError(f"max_new_tokens {limit} must be in 1..{self.max_new_tokens} (the decoder's limit)")
        self.prefill(input_ids, attention_mask, generator)
        asked = None
        for generated in range(1, limit):
            if generated % self.sync_every == 0:
                if asked is not None and asked():
                    break
                asked = self.ask_all_finished()
            self.step()
        return self.result()

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                generator: torch.Generator | None = None) -> None:
        """Reset the cache and buffers, run the prompts through the model's own forward and choose the first token."""
        batch, prompt_length = input_ids.shape
        if prompt_length + self.max_new_tokens > self.max_cache_len:
            raise ValueError(f"max_cache_len {self.max_cache_len} is shorter than the padded prompt ({prompt_length} "
                             f"tokens) plus max_new_tokens ({self.max_new_tokens})")
        if not bool(attention_mask[:, -1].all()):
            raise ValueError("the static decode loop needs left padding (every row's last prompt token is real)")
        if self.sampling.do_sample and generator is None:
            raise ValueError("sampling needs a torch.Generator on the model's device")
        self._generator = generator
        buffers = self._prepare(batch)
        if self._graph is not None and self._captured_weights != self._weight_addresses():
            self._graph = None  # the weights moved since the capture, which would read their old memory
        if self.runner == "graph" and self._graph is None and self.max_new_tokens > 1:  # (1 token: no step)
            state = None if generator is None else generator.get_state()
            self._fill(buffers, input_ids, attention_mask)  # the cache allocates its tensors in the first forward
            self._graph = self._capture()  # (its warm-up steps decode: the prompts are filled in again below)
            self._captured_weights = self._weight_addresses()
            if state is not None:
                generator.set_state(state)  # the same draws as the other runners
            self._cache.reset()
        self._fill(buffers, input_ids, attention_mask)

    def _fill(self, buffers: _Buffers, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Reset the buffers for these prompts, run them through the model into the cache, choose the first token."""
        prompt_length = input_ids.shape[1]
        buffers.mask.zero_()
        buffers.mask[:, :prompt_length] = attention_mask
        positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        buffers.finished.zero_()
        buffers.lengths.zero_()
        buffers.out.fill_(self.pad_id)
        buffers.column.zero_()
        self._draw_noise()
        logits = self.model(input_ids=input_ids, attention_mask=buffers.mask, position_ids=positions,
                            past_key_values=self._cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
        _choose(buffers, logits, self.sampling, self.pad_id)
        buffers.positions.copy_(positions[:, -1:] + 1)
        buffers.write.fill_(prompt_length)

    @torch.inference_mode()
    def step(self) -> None:
        """One more token for every row (no host sync)."""
        self._draw_noise()
        if self._graph is not None:
            self._graph.replay()
            return
        if self.compiled and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        self._run_step()

    def _run_step(self) -> None:
        with decode_attention(self.model, self.grouped_attention, self.split_kv_attention):
            self._step(self.model, self._cache, self._buffers, self.sampling, self.pad_id)

    def _weight_addresses(self) -> tuple[int, ...]:
        return tuple(tensor.data_ptr() for tensor in (*self.model.parameters(), *self.model.buffers()))

    def _capture(self) -> torch.cuda.CUDAGraph:
        """The ``graph`` runner's step, captured as PyTorch's docs prescribe: warm-up steps on a side stream (first
        calls allocate workspaces and build Triton kernels, which a capture must not contain), then one captured
        step. The warm-up steps really decode; :meth:`prefill` fills the prompts in again afterwards."""
        with torch.cuda.device(self.device):
            current, side = torch.cuda.current_stream(), torch.cuda.Stream()
            side.wait_stream(current)
            with torch.cuda.stream(side):
                for _ in range(GRAPH_WARMUP_STEPS):
                    self._run_step()
            current.wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # a stream of this device: torch.cuda.graph's default capture stream is made once per process, on
            # whichever device was current at the first capture
            with torch.cuda.graph(graph, stream=torch.cuda.Stream()):
                self._run_step()
        return graph

    def ask_all_finished(self) -> Callable[[], bool]:
        """Whether every row has finished after the steps enqueued so far, as a call that answers later: on CUDA
        the flag is copied to pinned host memory behind those steps, and the call waits only for them (not for
        steps enqueued after this question). The one host sync of the loop, made by :meth:`__call__`."""
        flag = self._buffers.finished.all()
        if self.device.type != "cuda":
            answer = bool(flag)
            return lambda: answer
        self._finished_copy.copy_(flag, non_blocking=True)  # (one question pending at a time: __call__ reads it
        copied = torch.cuda.Event()                           # before asking again)
        copied.record(torch.cuda.current_stream(self.device))  # the copy's stream, whichever device is current

        def answer() -> bool:
            copied.synchronize()
            return bool(self._finished_copy)

        return answer

    def result(self) -> torch.Tensor:
        return self._buffers.out[:, :self._width()].clone()

    def result_logprobs(self) -> torch.Tensor:
        """The log-probability of each token :meth:`result` holds, float32, as :func:`chosen_logprobs` gives it (0
        after a row's eos); only for a decoder made with ``logprobs``."""
        if not self.logprobs:
            raise ValueError("this decoder does not record log-probabilities (make it with logprobs=True)")
        return self._buffers.logps[:, :self._width()].clone()

    def _width(self) -> int:
        """The longest row's generated tokens, up to and including its eos (a host sync)."""
        return int(self._buffers.lengths.max())

    def _draw_noise(self) -> None:
        if self.sampling.do_sample:
            self._buffers.noise.exponential_(generator=self._generator)

    def _prepare(self, batch: int) -> _Buffers:
        """The cache and buffers for ``batch`` rows: reset when the batch size is the one they were made for."""
        if self._buffers is not None and self._buffers.tokens.shape[0] == batch:
            self._cache.reset()
            return self._buffers
        device, long = self.device, torch.long
        self._graph = None  # captured with the old buffers' addresses
        self._cache = StaticCache(config=self.model.config, max_cache_len=self.max_cache_len)
        self._buffers = _Buffers(
            tokens=torch.zeros(batch, 1, dtype=long, device=device),
            positions=torch.zeros(batch, 1, dtype=long, device=device),
            mask=torch.zeros(batch, self.max_cache_len, dtype=long, device=device),
            write=torch.zeros(1, dtype=long, device=device), column=torch.zeros(1, dtype=long, device=device),
            finished=torch.zeros(batch, dtype=torch.bool, device=device),
            lengths=torch.zeros(batch, dtype=long, device=device),
            out=torch.zeros(batch, self.max_new_tokens, dtype=long, device=device),
            noise=torch.zeros(batch, self._vocab_size if self.sampling.do_sample else 0, device=device),
            eos=torch.tensor(self.eos_ids, dtype=long, device=device),
            logps=torch.zeros(batch, self.max_new_tokens if self.logprobs else 0, device=device))
        if self.compiled:  # fixed addresses: CUDA graphs replay in place instead of copying or skipping the graph
            for tensor in vars(self._buffers).values():
                torch._dynamo.mark_static_address(tensor)
        return self._buffers


def kept_decoder(model, max_cache_len: int, max_new_tokens: int, eos_ids: Iterable[int], pad_id: int,
                 sampling: Sampling = Sampling(), runner: str | None = None) -> StaticDecoder:
    """The decoder an earlier call kept on ``model`` when its settings are the same (``runner`` None: any) and its
    cache is at least ``max_cache_len`` long; else a new one, kept there in its place.

    Why: callers generate chunk by chunk (``grpo eval``) or every N training steps (held-out evals), each call
    sizing the cache for its own prompts. A new length is a new shape, so the step would compile again; new buffers
    of the same shape make the CUDA graph record again. transformers keeps ``model._cache`` for its static cache
    the same way; the cache stays allocated while the model lives (delete ``model._grpo_static_decoder`` to free it).
    """
    kept = getattr(model, "_grpo_static_decoder", None)
    if (kept is not None and kept.serves(model, max_cache_len, max_new_tokens, eos_ids, pad_id, sampling)
            and runner in (None, kept.runner)):
        return kept
    decoder = StaticDecoder(model, max_cache_len, max_new_tokens, eos_ids, pad_id, sampling, runner=runner)
    model._grpo_static_decoder = decoder
    return decoder


def decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
           eos_ids: Iterable[int], pad_id: int, sampling: Sampling = Sampling(),
           generator: torch.Generator | None = None, max_cache_len: int | None = None, sync_every: int = SYNC_EVERY,
           runner: str | None = None) -> torch.Tensor:
    """One batch through a fresh :class:`StaticDecoder` (cache: prompt + ``max_new_tokens`` unless given)."""
    length = max_cache_len or input_ids.shape[1] + max_new_tokens
    decoder = StaticDecoder(model, length, max_new_tokens, eos_ids, pad_id, sampling, sync_every, runner)
    return decoder(input_ids, attention_mask, generator)
